// The reference corridor sketch (test/support/sketch-reference.ts) against the spec's formulas
// computed another way: node:crypto's HKDF, the threshold at its boundary, the flip rate.
import { hkdfSync, randomBytes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { describe, expect, it } from 'vitest';
import {
  addressOctets,
  epochKey,
  epochOf,
  epsilonPerSketch,
  flipThreshold,
  quantisedP,
  randomisedResponse,
  sketchBit,
  sketchPosition,
  trueSketch,
} from './support/sketch-reference.ts';

describe('corridor sketch reference', () => {
  it('derives the epoch key as node:crypto HKDF-SHA256 does', () => {
    const secret = randomBytes(32);
    const got = epochKey(secret, 'main-street', 493_000);
    const want = new Uint8Array(hkdfSync('sha256', secret, 'presence-corridor/v1', 'main-street/493000', 32));
    expect(Buffer.from(got).toString('hex')).toBe(Buffer.from(want).toString('hex'));
    expect(epochOf(3_600_000 * 493_000 + 59_000, 3_600_000)).toBe(493_000);
  });

  it('places a device by the first four digest bytes, little-endian, masked to m', () => {
    const key = randomBytes(32);
    const msg = Uint8Array.from([0x02, 0x74, 0x42, 0xc0, 0x94, 0x26, 0xbb]);
    const h = blake2s(msg, { key, dkLen: 32 });
    const word = new DataView(h.buffer, h.byteOffset).getUint32(0, true);
    expect(sketchPosition(key, 'ble', '74:42:C0:94:26:bb', 8192)).toBe(word % 8192);
    expect(sketchPosition(key, 'ble', addressOctets('74:42:c0:94:26:bb'), 1 << 16)).toBe(word % 65536);
    // the radio tag separates Wi-Fi and BLE with the same octets
    const wifi = blake2s(Uint8Array.from([0x01, ...msg.subarray(1)]), { key, dkLen: 32 });
    expect(sketchPosition(key, 'wifi', '74:42:c0:94:26:bb', 1 << 20)).toBe(new DataView(wifi.buffer, wifi.byteOffset).getUint32(0, true) % (1 << 20));
    expect(() => sketchPosition(key, 'ble', '74:42:c0:94:26', 8192)).toThrow(/six hex octets/);
    expect(() => sketchPosition(key, 'ble', '74:42:c0:94:26:bb', 1000)).toThrow(/power of two/);
  });

  it('sets one bit per device, bit i at bytes[i >> 3] >> (i & 7)', () => {
    const key = randomBytes(32);
    const devices = Array.from({ length: 50 }, (_, i) => ({
      radio: i % 2 ? ('ble' as const) : ('wifi' as const),
      address: randomBytes(6),
    }));
    const bits = trueSketch(key, devices, 1024);
    expect(bits.length).toBe(128);
    const positions = new Set(devices.map((d) => sketchPosition(key, d.radio, d.address, 1024)));
    for (let i = 0; i < 1024; i++) expect(sketchBit(bits, i)).toBe(positions.has(i) ? 1 : 0);
  });

  it('randomised response: u < T takes bit 15 of the second word, otherwise the true bit', () => {
    const m = 16;
    const t = flipThreshold(0.25);
    expect(t).toBe(16384);
    const truth = Uint8Array.from([0xff, 0x00]); // bits 0..7 set
    const scratch = new Uint8Array(m * 4);
    const put = (i: number, u: number, r: number) => {
      scratch[4 * i] = u & 0xff;
      scratch[4 * i + 1] = u >> 8;
      scratch[4 * i + 2] = r & 0xff;
      scratch[4 * i + 3] = r >> 8;
    };
    for (let i = 0; i < m; i++) put(i, t, 0x8000); // u = T: keep the true bit
    put(0, t - 1, 0x7fff); // replaced by 0
    put(9, 0, 0x8000); // replaced by 1
    put(10, t - 1, 0x7fff); // replaced by 0 (was 0)
    const out = randomisedResponse(truth, m, 0.25, scratch);
    expect(Array.from({ length: m }, (_, i) => sketchBit(out, i)).join('')).toBe('0111111101000000');
    expect(randomisedResponse(truth, m, 0, new Uint8Array(m * 4))).toEqual(truth);
    expect(() => randomisedResponse(truth, m, 0.25, new Uint8Array(m * 4 - 1))).toThrow(/scratch/);
  });

  it('flips each bit with probability q/2 and reports epsilon from the quantised p', () => {
    const m = 1 << 16;
    const p = 0.3;
    const truth = randomBytes(m >> 3);
    const out = randomisedResponse(truth, m, p, randomBytes(m * 4));
    let flips = 0;
    for (let i = 0; i < m; i++) flips += sketchBit(out, i) ^ sketchBit(truth, i);
    const q = quantisedP(p);
    const sd = Math.sqrt((m * q) / 2);
    expect(Math.abs(flips - (m * q) / 2)).toBeLessThan(5 * sd);
    expect(epsilonPerSketch(p)).toBeCloseTo(Math.log((1 - q / 2) / (q / 2)), 12);
  });
});
