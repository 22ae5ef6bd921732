// Keyed BLAKE2s in the firmware against RFC 7693 Appendix B, the reference keyed KAT vectors, and
// @noble/hashes byte for byte.
import { describe, expect, it } from 'vitest';
import { blake2s as nobleBlake2s } from '@noble/hashes/blake2.js';
import { Firmware } from '../firmware/host/firmware.ts';
import { rng } from './support/rng.ts';

const fw = Firmware.loadSync();
const x = fw.exports;
const mem = new Uint8Array(x.memory.buffer);
// inputs go into the batch buffer (no window is open, so nothing else uses it)
const KEY = x.batch_ptr();
const MSG = KEY + 64;
const OUT = KEY + 32 * 1024;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function wasmBlake2s(msg: Uint8Array, key: Uint8Array, outLen = 32): Uint8Array {
  mem.set(key, KEY);
  mem.set(msg, MSG);
  expect(x.blake2s(KEY, key.length, MSG, msg.length, OUT, outLen)).toBe(1);
  return mem.slice(OUT, OUT + outLen);
}

describe('firmware BLAKE2s', () => {
  it('RFC 7693 Appendix B: BLAKE2s-256("abc")', () => {
    expect(hex(wasmBlake2s(new TextEncoder().encode('abc'), new Uint8Array(0)))).toBe('508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  });

  // blake2s-kat.txt (reference implementation): key = 00..1f, input = 00..n-1, 32-byte digest
  const KAT: Array<[number, string]> = [
    [0, '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49'],
    [1, '40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1'],
    [2, '6bb71300644cd3991b26ccd4d274acd1adeab8b1d7914546c1198bbe9fc9d803'],
    [3, '1d220dbe2ee134661fdf6d9e74b41704710556f2f6e5a091b227697445dbea6b'],
    [32, 'c03bc642b20959cbe133a0303e0c1abff3e31ec8e1a328ec8565c36decff5265'],
    [63, 'c65382513f07460da39833cb666c5ed82e61b9e998f4b0c4287cee56c3cc9bcd'],
    [64, '8975b0577fd35566d750b362b0897a26c399136df07bababbde6203ff2954ed4'],
    [65, '21fe0ceb0052be7fb0f004187cacd7de67fa6eb0938d927677f2398c132317a8'],
    [128, '0c311f38c35a4fb90d651c289d486856cd1413df9b0677f53ece2cd9e477c60a'],
    [129, '46a73a8dd3e70f59d3942c01df599def783c9da82fd83222cd662b53dce7dbdf'],
    [255, '3fb735061abc519dfe979e54c1ee5bfad0a9d858b3315bad34bde999efd724dd'],
  ];
  const katKey = Uint8Array.from({ length: 32 }, (_, i) => i);
  for (const [n, digest] of KAT) {
    it(`keyed KAT, ${n}-byte input`, () => {
      const msg = Uint8Array.from({ length: n }, (_, i) => i);
      expect(hex(wasmBlake2s(msg, katKey))).toBe(digest);
    });
  }

  it('matches @noble/hashes for random keys, messages and digest lengths', () => {
    const { next } = rng(0x5eed);
    for (let i = 0; i < 600; i++) {
      const keyLen = i % 3 === 0 ? 32 : next() % 33;
      const msgLen = i < 300 ? i : next() % 1000;
      const outLen = i % 2 === 0 ? 32 : 1 + (next() % 32);
      const key = Uint8Array.from({ length: keyLen }, () => next() & 0xff);
      const msg = Uint8Array.from({ length: msgLen }, () => next() & 0xff);
      const expected = nobleBlake2s(msg, keyLen ? { key, dkLen: outLen } : { dkLen: outLen });
      const got = wasmBlake2s(msg, key, outLen);
      if (hex(got) !== hex(expected)) throw new Error(`case ${i}: key ${keyLen} B, msg ${msgLen} B, out ${outLen} B differs`);
    }
  });

  it('refuses out-of-range digest and key lengths without writing', () => {
    mem.fill(0xaa, OUT, OUT + 40);
    expect(x.blake2s(KEY, 32, MSG, 3, OUT, 0)).toBe(0);
    expect(x.blake2s(KEY, 32, MSG, 3, OUT, 33)).toBe(0);
    expect(x.blake2s(KEY, 33, MSG, 3, OUT, 32)).toBe(0);
    expect(mem.subarray(OUT, OUT + 40).every((b) => b === 0xaa)).toBe(true);
  });

  it('the per-address path (key state precomputed per window, one compression) equals keyed BLAKE2s-64', () => {
    const { next } = rng(42);
    for (let w = 0; w < 5; w++) {
      const key = Uint8Array.from({ length: 32 }, () => next() & 0xff);
      // the module's own ABI under a known key (the wrapper's beginWindow draws a random one)
      mem.set(key, x.key_ptr());
      x.window_begin(0, -128);
      const addr = x.batch_ptr();
      for (let i = 0; i < 200; i++) {
        const radio = 1 + (i & 1);
        const group = (i >> 1) & 1;
        const a = Uint8Array.from({ length: 6 }, () => next() & 0xff);
        mem.set(a, addr);
        const got = BigInt.asUintN(64, x.hash_address(radio, group, addr));
        const digest = nobleBlake2s(Uint8Array.from([radio, group, ...a]), { key, dkLen: 8 });
        expect(got).toBe(new DataView(digest.buffer, digest.byteOffset).getBigUint64(0, true));
      }
      x.window_end();
    }
  });
});
