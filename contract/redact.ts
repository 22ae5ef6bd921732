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
  let s = redactAddresses(text.replace(/[^ -~]+/g, ' ').replace(/ {2,}/g, ' ').trim());
  if (s.length > MAX_MESSAGE_LENGTH) s = `${s.slice(0, MAX_MESSAGE_LENGTH - 3)}...`;
  s = redactAddresses(s);
  while (!new RegExp(MESSAGE_PATTERN).test(s)) s = s.slice(0, -1); // cannot loop forever: '' matches
  return s;
}
