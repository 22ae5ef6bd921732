// Device addresses (48-bit: Wi-Fi MAC, BLE address) in free text: the pattern that finds every
// written form of one, and the sanitiser that makes a capture tool's message safe to publish.
// The status schema's `last_error` pattern embeds ADDRESS_PATTERN (test/contract.test.ts checks that
// the two stay the same), so a status carrying an address fails validation at the aggregator too.

const H = '[0-9A-Fa-f]';
/** Optional `0x` before a group. */
const P = '(?:0[xX])?';

/**
 * Any written form of 6 bytes, either byte order (the shape does not depend on the order), any case:
 * - six groups of 2 hex digits with one separator used throughout: `:` `-` `.` `_` space or `,`/`, `
 *   (`aa:bb:..`, `AA-BB-..`, `aa bb ..`, `aa_bb_..`, `0xaa, 0xbb, ..`);
 * - ether_ntoa's colon form without leading zeros (`a:b:c:d:e:f`, `0:1a:2b:3:4d:5e`);
 * - three groups of 4 (`aabb.ccdd.eeff`, `aabb-ccdd-eeff`), two groups of 6 (`aabbcc-ddeeff`);
 * - any run of 12 or more hex digits (`aabbccddeeff`, `0xaabbccddeeff`).
 * One separator throughout (a back-reference), so dates like `2026-04-27 12:00:00` are not taken
 * for addresses. ECMA-262 syntax without flags, as JSON Schema `pattern` uses it; groups 1 and 2 are
 * the separators (the pattern must stay first inside any pattern that embeds it).
 */
export const ADDRESS_PATTERN =
  `${P}${H}{2}(, ?|[-:._ ])${P}${H}{2}(?:\\1${P}${H}{2}){4}` +
  `|${H}{1,2}(?::${H}{1,2}){5}` +
  `|${P}${H}{4}([-:._ ])${H}{4}\\2${H}{4}` +
  `|${P}${H}{6}[-:._ ]${H}{6}` +
  `|${P}${H}{12}`;
const ADDRESS_RE = new RegExp(ADDRESS_PATTERN, 'g');

/** Longest message the status carries. */
export const MAX_MESSAGE_LENGTH = 200;
/** What a published message may be: printable ASCII, bounded, with no address form in it. */
export const MESSAGE_PATTERN = `^(?!.*(?:${ADDRESS_PATTERN}))[ -~]{0,${MAX_MESSAGE_LENGTH}}$`;

/** Replaces anything shaped like a device address with "<addr>". */
export function redactAddresses(text: string): string {
  let out = text;
  // A replacement can bring two halves together (`aa:bb<addr>` has none, but be sure): until stable.
  for (let i = 0; i < 4; i++) {
    const next = out.replace(ADDRESS_RE, '<addr>');
    if (next === out) break;
    out = next;
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
