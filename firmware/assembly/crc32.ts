// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the 802.11 frame check sequence.
// Slicing-by-16 over a static 16 KiB table that is filled when the module starts (filled on first
// use, it would tell whether the module ever checked an FCS); never allocates.

// @ts-ignore: decorator
@inline const SLICES: u32 = 16;
const TABLE: usize = memory.data(<i32>(SLICES * 256 * 4), 16);

function init(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    store<u32>(TABLE + (<usize>i << 2), c);
  }
  for (let i: u32 = 0; i < 256; i++) {
    let c = load<u32>(TABLE + (<usize>i << 2));
    for (let t: u32 = 1; t < SLICES; t++) {
      c = load<u32>(TABLE + (<usize>(c & 0xff) << 2)) ^ (c >>> 8);
      store<u32>(TABLE + ((<usize>t * 256 + <usize>i) << 2), c);
    }
  }
}
init();

/** Entry i of table n (the CRC of byte i followed by n zero bytes). */
// @ts-ignore: decorator
@inline function t(n: u32, i: u32): u32 {
  return load<u32>(TABLE + (<usize>n << 10) + (<usize>i << 2));
}

/** Entry of table n for the byte at p. */
// @ts-ignore: decorator
@inline function tb(n: u32, p: usize): u32 {
  return load<u32>(TABLE + (<usize>n << 10) + (<usize>load<u8>(p) << 2));
}

/**
 * CRC-32 of [ptr, ptr + len). Per 16 bytes: the twelve lookups that do not depend on the running
 * CRC read their bytes straight from memory (one load each, no shifts and masks) and are XORed as
 * a tree while the four that do wait for it; the CRC's chain from one block to the next is then
 * four lookups and a few XORs long instead of sixteen XORs.
 */
export function crc32(ptr: usize, len: u32): u32 {
  let c: u32 = 0xffffffff;
  let p = ptr;
  const end = ptr + <usize>len;
  while (p + 16 <= end) {
    const x = ((tb(11, p + 4) ^ tb(10, p + 5)) ^ (tb(9, p + 6) ^ tb(8, p + 7))) ^
      ((tb(7, p + 8) ^ tb(6, p + 9)) ^ (tb(5, p + 10) ^ tb(4, p + 11))) ^
      ((tb(3, p + 12) ^ tb(2, p + 13)) ^ (tb(1, p + 14) ^ tb(0, p + 15)));
    const a = load<u32>(p) ^ c;
    c = x ^ ((t(15, a & 0xff) ^ t(14, (a >>> 8) & 0xff)) ^ (t(13, (a >>> 16) & 0xff) ^ t(12, a >>> 24)));
    p += 16;
  }
  while (p + 4 <= end) {
    c ^= load<u32>(p);
    c = t(3, c & 0xff) ^ t(2, (c >>> 8) & 0xff) ^ t(1, (c >>> 16) & 0xff) ^ t(0, c >>> 24);
    p += 4;
  }
  while (p < end) {
    c = t(0, (c ^ <u32>load<u8>(p)) & 0xff) ^ (c >>> 8);
    p++;
  }
  return c ^ 0xffffffff;
}
