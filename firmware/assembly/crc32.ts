// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the 802.11 frame check sequence.
// Slicing-by-4 over a static 4 KiB table that is filled on first use; never allocates.

const TABLE: usize = memory.data(4 * 256 * 4, 16);
let ready = false;

function init(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    store<u32>(TABLE + (<usize>i << 2), c);
  }
  for (let i: u32 = 0; i < 256; i++) {
    let c = load<u32>(TABLE + (<usize>i << 2));
    for (let t: u32 = 1; t < 4; t++) {
      c = load<u32>(TABLE + (<usize>(c & 0xff) << 2)) ^ (c >>> 8);
      store<u32>(TABLE + ((<usize>t * 256 + <usize>i) << 2), c);
    }
  }
  ready = true;
}

@inline function t(n: u32, i: u32): u32 {
  return load<u32>(TABLE + ((<usize>n * 256 + <usize>i) << 2));
}

/** CRC-32 of [ptr, ptr + len). */
export function crc32(ptr: usize, len: u32): u32 {
  if (!ready) init();
  let c: u32 = 0xffffffff;
  let p = ptr;
  const end = ptr + <usize>len;
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
