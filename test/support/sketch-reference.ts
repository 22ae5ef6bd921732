// The corridor sketch of firmware/README.md ("Corridor sketch") and contract/README.md written a second time, plainly, in
// TypeScript with @noble/hashes: the firmware's sketch must equal it bit for bit (with p = 0 the
// true bitmap, with any p the same noisy bitmap for the same scratch bytes). Test-only: it is
// not shipped and never runs in the gateway.
//
//   epoch             floor(window_start_ms / epoch_ms)
//   epoch key K_e     HKDF-SHA256(ikm = group secret, salt = "presence-corridor/v1",
//                                 info = "<group>/<epoch>", length 32)
//   position          h = BLAKE2s-256(key = K_e, msg = [radio tag] ++ address octets 0..5 in
//                         display order), radio tag 0x01 Wi-Fi, 0x02 BLE;
//                     bit = (h[0] | h[1] << 8 | h[2] << 16 | h[3] << 24) >>> 0 & (m - 1)
//   bitmap            m bits, bit i is (bytes[i >> 3] >> (i & 7)) & 1
//   randomised        scratch of 4 bytes per bit: u_i = uint16 LE at scratch[4i],
//   response          r_i = uint16 LE at scratch[4i + 2]; T = round(p * 65536);
//                     out_i = u_i < T ? r_i >> 15 : true_i.
//                     Each output bit is the true bit with probability 1 - q/2 and flipped with
//                     probability q/2, q = T / 65536 the quantised p that the payload carries.
import { blake2s } from '@noble/hashes/blake2.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

export type SketchRadio = 'wifi' | 'ble';
export const RADIO_TAG: Record<SketchRadio, number> = { wifi: 0x01, ble: 0x02 };
export const EPOCH_SALT = 'presence-corridor/v1';
/** Scratch bytes the randomised response consumes per bit of the sketch. */
export const SCRATCH_BYTES_PER_BIT = 4;

export interface SketchDevice {
  radio: SketchRadio;
  /** "aa:bb:cc:dd:ee:ff" (display order) or the 6 octets in display order. */
  address: string | Uint8Array;
}

/** The 6 octets of an address in display order. */
export function addressOctets(address: string | Uint8Array): Uint8Array {
  if (typeof address !== 'string') {
    if (address.length !== 6) throw new Error(`address has ${address.length} octets, not 6`);
    return address;
  }
  const parts = address.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`address "${address}" is not six hex octets separated by ':'`);
  }
  return Uint8Array.from(parts.map((p) => Number.parseInt(p, 16)));
}

/** The epoch a window belongs to: epochs are aligned to Unix time. */
export function epochOf(windowStartMs: number, epochMs: number): number {
  return Math.floor(windowStartMs / epochMs);
}

/** K_e = HKDF-SHA256(secret, salt "presence-corridor/v1", info "<group>/<epoch>", 32 bytes). */
export function epochKey(secret: Uint8Array, group: string, epoch: number): Uint8Array {
  const enc = new TextEncoder();
  return hkdf(sha256, secret, enc.encode(EPOCH_SALT), enc.encode(`${group}/${epoch}`), 32);
}

function checkM(m: number): void {
  if (!Number.isInteger(m) || m < 8 || (m & (m - 1)) !== 0) throw new Error(`m = ${m} is not a power of two >= 8`);
}

/** The bit a device sets in a sketch of m bits under the epoch key. */
export function sketchPosition(key: Uint8Array, radio: SketchRadio, address: string | Uint8Array, m: number): number {
  checkM(m);
  const msg = new Uint8Array(7);
  msg[0] = RADIO_TAG[radio];
  msg.set(addressOctets(address), 1);
  const h = blake2s(msg, { key, dkLen: 32 });
  return ((h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0) & (m - 1);
}

/** The true bitmap (m / 8 bytes) of the devices heard in one window. */
export function trueSketch(key: Uint8Array, devices: Iterable<SketchDevice>, m: number): Uint8Array {
  checkM(m);
  const bits = new Uint8Array(m >> 3);
  for (const d of devices) {
    const i = sketchPosition(key, d.radio, d.address, m);
    bits[i >> 3] |= 1 << (i & 7);
  }
  return bits;
}

/** T = round(p * 65536), the threshold the firmware compares u_i with. */
export function flipThreshold(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new Error(`p = ${p} is not in [0, 1]`);
  return Math.round(p * 65536);
}

/** The quantised p, T / 65536: the value the payload carries and epsilon is computed from. */
export function quantisedP(p: number): number {
  return flipThreshold(p) / 65536;
}

/** Epsilon of one sketch for one device: ln((1 - q/2) / (q/2)), q the quantised p. */
export function epsilonPerSketch(p: number): number {
  const q = quantisedP(p);
  return Math.log((1 - q / 2) / (q / 2));
}

/**
 * The published (noisy) bitmap: randomised response on every bit with the scratch bytes
 * (SCRATCH_BYTES_PER_BIT per bit, m * 4 bytes) the host draws from a CSPRNG.
 */
export function randomisedResponse(trueBits: Uint8Array, m: number, p: number, scratch: Uint8Array): Uint8Array {
  checkM(m);
  if (trueBits.length !== m >> 3) throw new Error(`bitmap has ${trueBits.length} bytes, m / 8 = ${m >> 3}`);
  if (scratch.length < m * SCRATCH_BYTES_PER_BIT) {
    throw new Error(`scratch has ${scratch.length} bytes, the sketch needs ${m * SCRATCH_BYTES_PER_BIT}`);
  }
  const t = flipThreshold(p);
  const out = new Uint8Array(m >> 3);
  for (let i = 0; i < m; i++) {
    const o = i * SCRATCH_BYTES_PER_BIT;
    const u = scratch[o] | (scratch[o + 1] << 8);
    const r = scratch[o + 2] | (scratch[o + 3] << 8);
    const bit = u < t ? r >> 15 : (trueBits[i >> 3] >> (i & 7)) & 1;
    out[i >> 3] |= bit << (i & 7);
  }
  return out;
}

/** The noisy sketch of the devices of one window, scratch as for randomisedResponse. */
export function noisySketch(key: Uint8Array, devices: Iterable<SketchDevice>, m: number, p: number, scratch: Uint8Array): Uint8Array {
  return randomisedResponse(trueSketch(key, devices, m), m, p, scratch);
}

/** Bit i of a published bitmap. */
export function sketchBit(bits: Uint8Array, i: number): number {
  return (bits[i >> 3] >> (i & 7)) & 1;
}
