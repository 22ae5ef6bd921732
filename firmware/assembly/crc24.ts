// Bluetooth LE link-layer CRC-24 (Core spec Vol 6 Part B 3.1.1): polynomial
// x^24 + x^10 + x^9 + x^6 + x^4 + x^3 + x + 1, bits processed least significant first, the shift
// register preset from CRC_INIT (0x555555 on the advertising physical channel). Computed here as a
// reflected CRC (reflected polynomial 0xDA6000, reflected preset), byte-wise over a static table.

export const ADV_CRC_INIT: u32 = 0x555555;

const TABLE: usize = memory.data(256 * 4, 16);

function init(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xda6000 : c >>> 1;
    store<u32>(TABLE + (<usize>i << 2), c);
  }
}
// Filled when the module starts, not on first use: whether it is filled would otherwise tell
// whether the module ever saw a BLE packet whose CRC it had to compute.
init();

function rev8(b: u32): u32 {
  b = ((b & 0xf0) >>> 4) | ((b & 0x0f) << 4);
  b = ((b & 0xcc) >>> 2) | ((b & 0x33) << 2);
  b = ((b & 0xaa) >>> 1) | ((b & 0x55) << 1);
  return b;
}

/** Bit-reverses a 24-bit value. */
export function bitReverse24(v: u32): u32 {
  return (rev8(v & 0xff) << 16) | (rev8((v >>> 8) & 0xff) << 8) | rev8((v >>> 16) & 0xff);
}

/**
 * CRC-24 of the PDU [ptr, ptr + len) (header and payload), as it is transmitted: the returned value
 * compares equal to the three CRC octets read little-endian (first octet in the low byte).
 */
export function crc24(ptr: usize, len: u32, crcInit: u32): u32 {
  let c = bitReverse24(crcInit);
  const end = ptr + <usize>len;
  for (let p = ptr; p < end; p++) {
    c = (c >>> 8) ^ load<u32>(TABLE + (<usize>((c ^ <u32>load<u8>(p)) & 0xff) << 2));
  }
  return c;
}
