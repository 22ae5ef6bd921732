// Checksums the generated frames carry: the 802.11 FCS (CRC-32) and the Bluetooth LE CRC-24.

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** IEEE 802.3 / 802.11 CRC-32 (reflected, init and final xor 0xFFFFFFFF), as the FCS carries it. */
export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC32_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** CRC init of the advertising physical channel (Core Spec Vol 6 Part B 3.1.1: 0x555555). */
export const BLE_ADV_CRC_INIT = 0x555555;

function reverse24(v: number): number {
  let r = 0;
  for (let i = 0; i < 24; i++) if (v & (1 << i)) r |= 1 << (23 - i);
  return r;
}

/**
 * Bluetooth LE link-layer CRC-24 (polynomial x^24+x^10+x^9+x^6+x^4+x^3+x+1) over the PDU (header and
 * payload), bits in air order (least significant bit of each byte first). Returns the three CRC bytes
 * in the order they follow the PDU in a capture.
 */
export function bleCrc24(pdu: Uint8Array, crcInit = BLE_ADV_CRC_INIT): [number, number, number] {
  let state = reverse24(crcInit & 0xffffff);
  for (let i = 0; i < pdu.length; i++) {
    let cur = pdu[i];
    for (let j = 0; j < 8; j++) {
      const next = (state ^ cur) & 1;
      cur >>= 1;
      state >>>= 1;
      if (next) {
        state |= 1 << 23;
        state ^= 0x5a6000;
      }
    }
  }
  return [state & 0xff, (state >>> 8) & 0xff, (state >>> 16) & 0xff];
}
