// Device addresses (48-bit: Wi-Fi MAC, BLE address) in free text: the pattern that finds every
// written form of one, and the sanitiser that makes a capture tool's message safe to publish.
// The status schema's `last_error` pattern embeds ADDRESS_PATTERN (test/contract.test.ts checks that
// the two stay the same), so a status carrying an address fails validation at the aggregator too.

const H = '[0-9A-Fa-f]';
/** Optional `0x` before a group. */
const P = '(?:0[xX])?';

/**
 * Any written form of 6 bytes, either byte order (the shape does not depend on the order), any case,
 * with or without `0x`:
 * - groups of 2 hex digits with one separator used throughout: `:` `-` `.` `_` space or `,`/`, `
 *   (`aa:bb:..`, `AA-BB-..`, `aa bb ..`, `aa_bb_..`, `0xaa, 0xbb, ..`);
 * - ether_ntoa's colon form without leading zeros (`a:b:c:d:e:f`, `0:1a:2b:3:4d:5e`);
 * - groups of 4 (`aabb.ccdd.eeff`, `aabb-ccdd-eeff`) and of 6 (`aabbcc-ddeeff`, `aabbcc:ddeeff`);
 * - any run of 12 or more hex digits (`aabbccddeeff`, `0xaabbccddeeff`).
 * A run of groups is taken whole however long it is (a hex dump, an EUI-64), so an address next to
 * other hex groups is never cut in two with half of it left. One separator throughout (a
 * back-reference), so dates like `2026-04-27 12:00:00` are not taken for addresses. ECMA-262 syntax
 * without flags, as JSON Schema `pattern` uses it; groups 1-3 are separators, so the pattern must be
 * the first capturing part of any pattern that embeds it.
 */
const twos = (n: number) => `${P}${H}{2}(, ?|[-:._ ])${P}${H}{2}(?:\\${n}${P}${H}{2}){4,}`;
const ntoa = `${H}{1,2}(?::${H}{1,2}){5,}`;
const fours = (n: number) => `${P}${H}{4}([-:._ ,])${H}{4}(?:\\${n}${H}{4})+`;
const sixes = (n: number) => `${P}${H}{6}([-:._ ,])${H}{6}(?:\\${n}${H}{6})*`;
const bare = `${P}${H}{12,}`;
export const ADDRESS_PATTERN = [twos(1), ntoa, fours(2), sixes(3), bare].join('|');

/** Each form on its own, anchored where it is tried (sticky). */
const FORMS = [twos(1), ntoa, fours(1), sixes(1), bare].map((f) => new RegExp(f, 'y'));

/** Spans of `text` that are part of some address form, merged. Every form is tried at every
 *  position, so a form that starts inside surrounding text (`cafe cafe aabb:ccdd:eeff` reads as
 *  three groups of 4 up to `aabb`) cannot hide the form that covers the rest of the address. */
function addressSpans(text: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (let i = 0; i < text.length; i++) {
    let end = -1;
    for (const re of FORMS) {
      re.lastIndex = i;
      if (re.test(text)) end = Math.max(end, re.lastIndex);
    }
    if (end < 0) continue;
    const last = spans.at(-1);
    if (last && i <= last[1]) last[1] = Math.max(last[1], end);
    else spans.push([i, end]);
  }
  return spans;
}

/** Longest message the status carries. */
export const MAX_MESSAGE_LENGTH = 200;
/** What a published message may be: printable ASCII, bounded, with no address form in it. */
export const MESSAGE_PATTERN = `^(?!.*(?:${ADDRESS_PATTERN}))[ -~]{0,${MAX_MESSAGE_LENGTH}}$`;

/** Replaces every span shaped like a device address (or part of one) with "<addr>". */
export function redactAddresses(text: string): string {
  let out = text;
  // A replacement could bring two halves together (it cannot with "<addr>", but be sure): until stable.
  for (let round = 0; round < 4; round++) {
    const spans = addressSpans(out);
    if (!spans.length) break;
    let next = '';
    let at = 0;
    for (const [start, end] of spans) {
      next += `${out.slice(at, start)}<addr>`;
      at = end;
    }
    out = next + out.slice(at);
  }
  return out;
}

/**
 * Text from outside (a capture tool's stderr, an exception) made safe to publish: control and
 * non-ASCII characters become spaces, runs of white space one space, addresses "<addr>", and the
 * result is cut to MAX_MESSAGE_LENGTH. Always matches MESSAGE_PATTERN.
 */
export function sanitiseMessage(text: string): string {
  // Redact before and after cutting, so a cut can neither split an address out of the pattern's
  // reach nor leave half of one.
  let s = redactAddresses(
    text
      .replace(/[^ -~]+/g, ' ')
      .replace(/ {2,}/g, ' ')
      .trim(),
  );
  if (s.length > MAX_MESSAGE_LENGTH) s = `${s.slice(0, MAX_MESSAGE_LENGTH - 3)}...`;
  s = redactAddresses(s);
  while (!new RegExp(MESSAGE_PATTERN).test(s)) s = s.slice(0, -1); // cannot loop forever: '' matches
  return s;
}

/** What redactFreeText puts in place of a token that could hold an address. */
export const REDACTED = '<redacted>';

/** Hex group, optionally with `0x`, as a whole alphanumeric word of 1-3 hex digits. */
const SHORT_GROUP = '(?:0[xX])?[0-9A-Fa-f]{1,3}(?![0-9A-Za-z])';
/** Three or more short hex groups joined by separators of 1-8 non-alphanumeric characters (`aa|bb|cc`, `a a b b`, `aa :: bb :: cc`). */
const SHORT_RUN = new RegExp(`(?<![0-9A-Za-z])${SHORT_GROUP}(?:[^0-9A-Za-z]{1,8}${SHORT_GROUP}){2,}`, 'g');
/** Four or more hex digits in a row, after any `0x` (`aabb`, `0xaabbccddeeff`, `2026`). */
const HEX_RUN = /[0-9A-Fa-f]{4,}/g;
/** An escape of a byte or code point: `\xaa`, `\u00aa`, `\x{aa}`, `%aa`. */
const ESCAPE = /\\[xXuU]\{?[0-9A-Fa-f]|%[0-9A-Fa-f]{2}/g;
/** A run of base64/base64url characters. */
const B64_RUN = /[A-Za-z0-9+/_-]{8,}/g;
/** A piece of an ordinary word: lower case, capitalised or upper case letters only. */
const WORD = /^(?:[a-z]+|[A-Z][a-z]+|[A-Z]+)$/;

/** A base64 run that could hold an address: exactly 8 characters (6 bytes), or any with a digit or mixed case. */
function base64Like(run: string): boolean {
  if (run.length === 8) return true;
  return !run.split(/[+/_-]+/).every((piece) => piece === '' || WORD.test(piece));
}

/** A colour or style escape of a terminal (`ESC [ 1 ; 31 m`): set aside, not taken for binary. */
const ANSI_SGR = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`, 'g');
/** A byte that is no text: undecodable (U+FFFD, what a byte that is not UTF-8 becomes) or a control character other than tab (a carriage return within a line too). */
const BINARY = /(?!\t)[\p{Cc}\ufffd]/u;
/**
 * A line of a hex dump (`tshark -x`, `tcpdump -X`, `hexdump -C`, `xxd`, `od -A x -t x1z`): an
 * offset, then two or more groups of 2 or 4 hex digits; its text column shows the same bytes as
 * characters.
 */
const DUMP_LINE = /^\s*(?:0[xX])?[0-9A-Fa-f]{2,8}:?\s+[0-9A-Fa-f]{2}(?:[0-9A-Fa-f]{2})?(?:\s{1,2}[0-9A-Fa-f]{2}(?:[0-9A-Fa-f]{2})?)+(?![0-9A-Za-z])/;
/** An ellipsis after a word (`waiting...`), with closing punctuation after it. */
const ELLIPSIS = /^[^.]+\.{2,3}["')\]]*$/;

/**
 * Whether a token shows bytes as characters, as the text column of a hex dump or `tcpdump -A` does
 * (a byte that prints as itself, every other one as a dot: `....*Marty......`): a run of two or more
 * dots beside anything else, but for an ellipsis after a word and a path's `..` segments.
 */
function dotted(token: string): boolean {
  const t = token.replace(/(^|\/)\.\.(?=\/|$)/g, '$1');
  return /\.\./.test(t) && /[^.]/.test(t) && !ELLIPSIS.test(t);
}

/**
 * Whether a line shows a frame's bytes as characters, where an address's bytes that print stand as
 * they are (`*Marty`, `zQ7#kP`), in no hex or base64 form: a hex dump's line (its text column
 * beside the hex), or bytes that are no text (a capture's raw bytes written as text). Such a line
 * goes whole.
 */
function bytesAsText(line: string): boolean {
  return BINARY.test(line) || DUMP_LINE.test(line);
}

/** Quotes, brackets and punctuation before or after a token, set aside when it is compared with a kept name. */
const AROUND = /^["'`([{<]+|["'`)\]}>,.:;!?]+$/g;

/**
 * Whether a configured name (a capture command's program or interface) may be kept in free text and
 * shown in a fix: more than 2 characters, no white space, no address form, and of the rules of
 * redactFreeText only the base64 one may take it (`wlan0mon`, `enp0s31f6`). Not kept: a name
 * holding 5 or more hex digits in a row (`wlan-00c0ca9a1b`, part of a MAC), an escape, a run of
 * short hex groups, or letters mixing case within a run (`AMDKmhss`, a MAC in base64).
 */
export function keepableName(name: string): boolean {
  if (name.length <= 2 || /\s/.test(name) || redactAddresses(name) !== name) return false;
  if (/[0-9A-Fa-f]{5,}/.test(name.replace(/0[xX](?=[0-9A-Fa-f])/g, 'gg'))) return false;
  if (new RegExp(ESCAPE.source).test(name) || new RegExp(SHORT_RUN.source).test(name)) return false;
  return name.split(/[^A-Za-z]+/).every((piece) => piece === '' || WORD.test(piece));
}

/** The names redactFreeText may keep (keepableName). */
function keptNames(keep: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const name of keep) if (keepableName(name)) out.add(name);
  return out;
}

/**
 * Free text from outside (a capture tool's stderr, an exception message) made fit for a log line:
 * NFKC-normalised (full-width digits and letters become ASCII), format characters (zero-width
 * joiners and spaces, BOM, ...), combining marks and control characters removed (control characters
 * and white space runs become one space); then every white-space-separated token that holds
 * - a run of 4 or more hex digits (`0x` removed first),
 * - an escape (`\xNN`, `\uNNNN`, `%NN`),
 * - a base64/base64url run of exactly 8 characters, or a longer one with a digit or mixed case,
 * - or is part of a run of 3 or more hex groups of 1-3 digits joined by up to 8 non-alphanumeric
 *   characters (`aa|bb|cc`, `A A B B C C`, `aa - bb - cc`, tab-separated pairs),
 * is replaced by `<redacted>` (consecutive ones by one), as is a token with a run of dots beside
 * other characters (`dotted`: a dump's text column). A line that shows bytes as characters (a hex
 * dump's line, raw bytes: `bytesAsText`) becomes one `<redacted>` first. Ordinary words stay readable ("fatal:
 * wlan0: No such device"); words of exactly 8 letters do not, nor numbers of 4 digits or more.
 * Used for every log line and `presence doctor` line that carries a capture tool's text.
 *
 * `keep`: names from the operator's own configuration, such as a capture command's interface
 * (`wlan0mon`, `bluetooth0`, which the rules above take for base64): a token that is one of them,
 * once the quotes and punctuation around it are set aside (`"wlan0mon".`, `'bluetooth0'`,
 * `wlan1mon:`), stays. A name that holds an address form itself (`wlx00c0ca9a1b2c`: a USB adapter
 * named after its MAC) or part of one is not kept, nor is one of 2 characters or fewer (keepableName).
 */
export function redactFreeText(text: string, keep: Iterable<string> = []): string {
  const s = text
    .normalize('NFKC')
    .replace(/[\p{Cf}\p{Mn}\p{Me}]+/gu, '')
    .replace(ANSI_SGR, '')
    .split(/\r?\n|[\u2028\u2029]/)
    .map((line) => (bytesAsText(line.replace(/\r$/, '')) ? REDACTED : line))
    .join('\n')
    .replace(/[\p{Cc}\p{Z}\s]+/gu, ' ')
    .trim();
  if (!s) return s;
  const flagged = new Uint8Array(s.length);
  const mark = (start: number, end: number) => flagged.fill(1, start, end);
  const scan = (re: RegExp, on: string, test?: (m: string) => boolean) => {
    re.lastIndex = 0;
    for (let m = re.exec(on); m; m = re.exec(on)) {
      if (!test || test(m[0])) mark(m.index, m.index + m[0].length);
      if (m[0].length === 0) re.lastIndex++;
    }
  };
  // `0x` taken out without moving positions: replaced by two non-hex letters.
  const no0x = s.replace(/0[xX](?=[0-9A-Fa-f])/g, 'gg');
  scan(HEX_RUN, no0x);
  scan(ESCAPE, s);
  scan(B64_RUN, s, base64Like);
  scan(SHORT_RUN, s);
  const kept = keptNames(keep);
  // Whole tokens: any token touching a flagged character goes, runs of such tokens become one.
  const out: string[] = [];
  let lastRedacted = false;
  for (const m of s.matchAll(/\S+/g)) {
    const start = m.index;
    const bad = m[0] === REDACTED || dotted(m[0]) || (flagged.subarray(start, start + m[0].length).includes(1) && !kept.has(m[0].replace(AROUND, '')));
    if (bad) {
      if (!lastRedacted) out.push(REDACTED);
      lastRedacted = true;
    } else {
      out.push(m[0]);
      lastRedacted = false;
    }
  }
  return out.join(' ');
}
