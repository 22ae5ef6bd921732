// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the 802.11 frame check sequence.
// Slicing-by-16 over a static 16 KiB table that is filled on first use; never allocates.

// @ts-ignore: decorator
@inline const SLICES: u32 = 16;
const TABLE: usize = memory.data(<i32>(SLICES * 256 * 4), 16);
let ready = false;

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
  ready = true;
}

/** Entry i of table n (the CRC of byte i followed by n zero bytes). */
// @ts-ignore: decorator
@inline function t(n: u32, i: u32): u32 {
  return load<u32>(TABLE + (<usize>n << 10) + (<usize>i << 2));
}

/** CRC-32 of [ptr, ptr + len). */
export function crc32(ptr: usize, len: u32): u32 {
  if (!ready) init();
  let c: u32 = 0xffffffff;
  let p = ptr;
  const end = ptr + <usize>len;
  while (p + 16 <= end) {
    const a = load<u32>(p) ^ c;
    const b = load<u32>(p, 4);
    const d = load<u32>(p, 8);
    const e = load<u32>(p, 12);
    c = t(15, a & 0xff) ^ t(14, (a >>> 8) & 0xff) ^ t(13, (a >>> 16) & 0xff) ^ t(12, a >>> 24) ^
      t(11, b & 0xff) ^ t(10, (b >>> 8) & 0xff) ^ t(9, (b >>> 16) & 0xff) ^ t(8, b >>> 24) ^
      t(7, d & 0xff) ^ t(6, (d >>> 8) & 0xff) ^ t(5, (d >>> 16) & 0xff) ^ t(4, d >>> 24) ^
      t(3, e & 0xff) ^ t(2, (e >>> 8) & 0xff) ^ t(1, (e >>> 16) & 0xff) ^ t(0, e >>> 24);
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
