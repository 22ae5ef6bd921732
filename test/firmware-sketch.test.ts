// The firmware's corridor sketch against the TypeScript reference (test/support/sketch-reference.ts):
// which addresses enter (per class, from real frames), the keyed position, the epoch key per epoch,
// randomised response bit for bit for given scratch bytes, and its flip rate over CSPRNG bytes.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Firmware, KEY_CHECK_LABEL, keyCheckOf } from '../firmware/host/firmware.ts';
import { blake2s } from '@noble/hashes/blake2.js';
import type { Frame } from '../firmware/host/types.ts';
import { BLE_PDU, bleAdvertHci, bleAdvertLL, probeRequest } from '../simulator/frames.ts';
import { epochKey, randomisedResponse, sketchBit, sketchPosition, trueSketch, type SketchDevice } from './support/sketch-reference.ts';

const HOUR = 3_600_000;
const IES = Uint8Array.from([0x00, 0x00, 0x01, 0x04, 0x02, 0x04, 0x0b, 0x16]);
const IBEACON = Uint8Array.from([2, 1, 6, 0x1a, 0xff, 0x4c, 0x00, 0x02, 0x15, ...new Array(21).fill(0x42)]);
const RADIO_WIFI = 1;
const RADIO_BLE = 2;
const ADDR_WIFI_GLOBAL = 0;
const ADDR_BLE_PUBLIC = 2;

function addr(first: number, i: number, salt = 0): Uint8Array {
  return Uint8Array.from([first, 0x5a, salt & 0xff, (i >>> 8) & 0xff, i & 0xff, 0xc3]);
}

/** Traffic of every address class, and the devices of it that must enter the sketch. */
function traffic(n: number, t0: number, salt = 0): { frames: Frame[]; enter: SketchDevice[]; stay: SketchDevice[] } {
  const frames: Frame[] = [];
  const enter: SketchDevice[] = [];
  const stay: SketchDevice[] = [];
  const probe = (sa: Uint8Array, i: number) =>
    frames.push({ linkType: 127, timestampMs: t0 + i, data: probeRequest({ sa, seq: i & 0xfff, ies: IES, channel: 6, signalDbm: -50, tsfUs: i }) });
  const ll = (adva: Uint8Array, i: number, advData = Uint8Array.from([2, 1, 6])) =>
    frames.push({
      linkType: 256,
      timestampMs: t0 + i,
      data: bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva, random: true, advData, channel: 37, signalDbm: -60 }),
    });
  for (let i = 0; i < n; i++) {
    const global = addr(0x00 | ((i & 0x3f) << 2), i, salt); // Wi-Fi, locally administered bit clear
    probe(global, i);
    probe(global, i + 0.5); // heard twice: one bit all the same
    enter.push({ radio: 'wifi', address: global });
    const local = addr(0x02 | ((i & 0x3f) << 2), i, salt); // per-scan random Wi-Fi
    probe(local, i);
    stay.push({ radio: 'wifi', address: local });
    const stat = addr(0xc0 | (i & 0x3f), i, salt); // BLE random static
    ll(stat, i);
    enter.push({ radio: 'ble', address: stat });
    const rpa = addr(0x40 | (i & 0x3f), i, salt); // BLE resolvable private
    ll(rpa, i);
    enter.push({ radio: 'ble', address: rpa });
    const nrpa = addr(0x00 | (i & 0x3f), i, salt + 1); // BLE non-resolvable private
    ll(nrpa, i);
    stay.push({ radio: 'ble', address: nrpa });
    const beacon = addr(0xc0 | (i & 0x3f), i, salt + 2); // a random static address, but an iBeacon
    ll(beacon, i, IBEACON);
    stay.push({ radio: 'ble', address: beacon });
    const pub = addr(0x00 | (i & 0x3f), i, salt + 3); // BLE public (HCI report)
    frames.push({
      linkType: 201,
      timestampMs: t0 + i,
      data: bleAdvertHci({ pduType: BLE_PDU.ADV_NONCONN_IND, adva: pub, random: false, advData: Uint8Array.from([2, 1, 6]), signalDbm: -70 }),
    });
    enter.push({ radio: 'ble', address: pub });
  }
  return { frames, enter, stay };
}

function ones(bits: Uint8Array): number {
  let n = 0;
  for (const b of bits) for (let k = 0; k < 8; k++) n += (b >> k) & 1;
  return n;
}

describe('firmware corridor sketch', () => {
  it('with p = 0 the sketch is the reference bitmap of exactly the matchable classes, from real frames', () => {
    const fw = Firmware.loadSync();
    const secret = new Uint8Array(randomBytes(32));
    fw.setCorridor({ secret, group: 'main-street', epochMs: HOUR, bits: 8192, p: 0 });
    const start = 493_210 * HOUR + 5 * 60_000;
    const t = traffic(200, start);
    fw.beginWindow({ startMs: start, endMs: start + 60_000 });
    fw.ingestMany(t.frames);
    const c = fw.endWindow();
    expect(c.wifi.devices).toBe(400);
    expect(c.ble.devices).toBe(1000);
    const key = epochKey(secret, 'main-street', 493_210);
    expect(c.sketch).toMatchObject({ group: 'main-street', epoch: 493_210, epochMs: HOUR, m: 8192, p: 0 });
    expect(Buffer.from(c.sketch!.bits).toString('hex')).toBe(Buffer.from(trueSketch(key, t.enter, 8192)).toString('hex'));
    // and none of the others: with them the bitmap would differ
    expect(trueSketch(key, [...t.enter, ...t.stay], 8192)).not.toEqual(c.sketch!.bits);
    expect(ones(c.sketch!.bits)).toBeGreaterThan(700);
    fw.clearCorridor();
  });

  it('key check: the same for every holder of the group secret in an epoch, another each epoch and for another secret; BLAKE2s of a label no device input can be', () => {
    const secret = new Uint8Array(randomBytes(32));
    const other = new Uint8Array(randomBytes(32));
    const start = 493_210 * HOUR + 5 * 60_000;
    const check = (sec: Uint8Array, startMs: number) => {
      const fw = Firmware.loadSync();
      fw.setCorridor({ secret: sec, group: 'main-street', epochMs: HOUR, bits: 1024, p: 0.5 });
      fw.beginWindow({ startMs, endMs: startMs + 60_000 });
      const c = fw.endWindow();
      fw.clearCorridor();
      return c.sketch!.keyCheck;
    };
    const kc = check(secret, start);
    expect(kc).toMatch(/^[0-9a-f]{16}$/);
    expect(check(secret, start + 30 * 60_000)).toBe(kc);
    expect(check(secret, start + HOUR)).not.toBe(kc);
    expect(check(other, start)).not.toBe(kc);
    const key = epochKey(secret, 'main-street', 493_210);
    expect(keyCheckOf(key)).toBe(kc);
    expect(kc).toBe(Buffer.from(blake2s(new TextEncoder().encode(KEY_CHECK_LABEL), { key }).subarray(0, 8)).toString('hex'));
    // a device's position hashes a radio tag and 6 address bytes: 7 bytes, never the label's 30
    expect(new TextEncoder().encode(KEY_CHECK_LABEL).length).toBe(30);
  });

  it('count_addresses sketches by class too, every size from 8 to 32768 bits', () => {
    const fw = Firmware.loadSync();
    const secret = new Uint8Array(randomBytes(32));
    const mem = new Uint8Array(fw.exports.memory.buffer);
    const B = fw.exports.batch_ptr();
    for (const m of [8, 1024, 32768]) {
      fw.setCorridor({ secret, group: 'g1', epochMs: 15 * 60_000, bits: m, p: 0 });
      const start = Date.UTC(2026, 3, 27, 12, 0);
      fw.beginWindow({ startMs: start, endMs: start + 60_000 });
      const wifi = Array.from({ length: 50 }, (_, i) => addr(0x00, i));
      const ble = Array.from({ length: 50 }, (_, i) => addr(0x00, i, 9));
      wifi.forEach((a, i) => {
        mem.set(a, B + 6 * i);
      });
      fw.exports.count_addresses(RADIO_WIFI, ADDR_WIFI_GLOBAL, B, wifi.length);
      ble.forEach((a, i) => {
        mem.set(a, B + 6 * i);
      });
      fw.exports.count_addresses(RADIO_BLE, ADDR_BLE_PUBLIC, B, ble.length);
      const c = fw.endWindow();
      const key = epochKey(secret, 'g1', Math.floor(start / (15 * 60_000)));
      const want = trueSketch(
        key,
        [...wifi.map((a) => ({ radio: 'wifi' as const, address: a })), ...ble.map((a) => ({ radio: 'ble' as const, address: a }))],
        m,
      );
      expect(c.sketch!.bits).toEqual(want);
    }
    fw.clearCorridor();
  });

  it('a window starting in a new epoch is sketched under that epoch key; a window that ends the epoch wipes the key after it', () => {
    const fw = Firmware.loadSync();
    const secret = new Uint8Array(randomBytes(32));
    fw.setCorridor({ secret, group: 'main-street', epochMs: HOUR, bits: 4096, p: 0 });
    const e = 493_300;
    const windows = [e * HOUR + HOUR - 120_000, e * HOUR + HOUR - 60_000, (e + 1) * HOUR];
    const epochs: Array<number | null> = [];
    for (const [k, start] of windows.entries()) {
      const t = traffic(30, start, k);
      fw.beginWindow({ startMs: start, endMs: start + 60_000 });
      fw.ingestMany(t.frames);
      const c = fw.endWindow();
      const epoch = Math.floor(start / HOUR);
      expect(c.sketch!.epoch).toBe(epoch);
      expect(c.sketch!.bits).toEqual(trueSketch(epochKey(secret, 'main-street', epoch), t.enter, 4096));
      epochs.push(fw.currentEpoch);
    }
    // held through the epoch, dropped once its last window closed, the next one taken when needed
    expect(epochs).toEqual([e, null, e + 1]);
    expect(fw.exports.sketch_bits()).toBe(4096);
    fw.clearCorridor();
    expect(fw.exports.sketch_bits()).toBe(0);
  });

  it('randomised response equals the reference for the same scratch bytes (raw ABI, several p and m)', () => {
    const fw = Firmware.loadSync();
    const x = fw.exports;
    const mem = new Uint8Array(x.memory.buffer);
    const B = x.batch_ptr();
    for (const [m, p] of [
      [1024, 0.1],
      [8192, 0.5],
      [32768, 0.25],
      [2048, 1],
    ] as const) {
      const key = new Uint8Array(randomBytes(32));
      mem.set(key, x.epoch_key_ptr());
      expect(x.epoch_begin(m, Math.round(p * 65536))).toBe(1);
      expect(mem.subarray(x.epoch_key_ptr(), x.epoch_key_ptr() + 32).every((b) => b === 0)).toBe(true);
      mem.set(new Uint8Array(randomBytes(32)), x.key_ptr());
      x.window_begin(0, -128);
      const devices = Array.from({ length: 300 }, (_, i) => addr(0x00, i, m & 0xff));
      devices.forEach((a, i) => {
        mem.set(a, B + 6 * i);
      });
      x.count_addresses(RADIO_BLE, ADDR_BLE_PUBLIC, B, devices.length);
      const scratch = new Uint8Array(randomBytes(4 * m));
      expect(x.sketch_scratch_bytes()).toBe(4 * m);
      mem.set(scratch, x.sketch_scratch_ptr());
      x.window_end();
      const got = mem.slice(x.sketch_noisy_ptr(), x.sketch_noisy_ptr() + m / 8);
      const truth = trueSketch(
        key,
        devices.map((a) => ({ radio: 'ble' as const, address: a })),
        m,
      );
      expect(got).toEqual(randomisedResponse(truth, m, p, scratch));
      x.epoch_end();
    }
  });

  it('refuses a sketch size or threshold out of range, and wipes the key it was given all the same', () => {
    const fw = Firmware.loadSync();
    const x = fw.exports;
    const mem = new Uint8Array(x.memory.buffer);
    for (const [m, t] of [
      [1000, 100],
      [65536, 100],
      [4, 100],
      [8192, 65537],
    ]) {
      mem.set(new Uint8Array(randomBytes(32)), x.epoch_key_ptr());
      expect(x.epoch_begin(m!, t!)).toBe(0);
      expect(x.sketch_bits()).toBe(0);
      expect(mem.subarray(x.epoch_key_ptr(), x.epoch_key_ptr() + 32).every((b) => b === 0)).toBe(true);
      expect(mem.subarray(x.sketch_state_ptr(), x.sketch_state_ptr() + 32).every((b) => b === 0)).toBe(true);
    }
    const secret = new Uint8Array(32).fill(7);
    expect(() => fw.setCorridor({ secret: secret.subarray(0, 16), group: 'g', epochMs: HOUR, bits: 8192, p: 0.5 })).toThrow(/at least 32 bytes/);
    expect(() => fw.setCorridor({ secret, group: 'g', epochMs: HOUR, bits: 1000, p: 0.5 })).toThrow(/power of two/);
    expect(() => fw.setCorridor({ secret, group: 'g', epochMs: HOUR, bits: 8192, p: 2 })).toThrow(/from 0 to 1/);
    fw.setCorridor({ secret, group: 'g', epochMs: HOUR, bits: 8192, p: 0.5 });
    expect(() => fw.beginWindow()).toThrow(/startMs and endMs/);
    fw.clearCorridor();
    fw.beginWindow();
    expect(fw.endWindow().sketch).toBeUndefined(); // no corridor: no sketch
  });

  it('flips each bit with probability p / 2 (binomial bound over many bits, CSPRNG scratch)', () => {
    const fw = Firmware.loadSync();
    const secret = new Uint8Array(randomBytes(32));
    const m = 32768;
    for (const p of [0.5, 0.2]) {
      fw.setCorridor({ secret, group: 'rr', epochMs: HOUR, bits: m, p });
      const q = Math.round(p * 65536) / 65536;
      let flips0 = 0;
      let zeros = 0;
      let flips1 = 0;
      let ones_ = 0;
      const start = 493_000 * HOUR;
      for (let w = 0; w < 20; w++) {
        const t = traffic(800, start + w * 60_000, w);
        fw.beginWindow({ startMs: start + w * 60_000, endMs: start + (w + 1) * 60_000 });
        fw.ingestMany(t.frames);
        const c = fw.endWindow();
        expect(c.sketch!.p).toBe(q);
        const truth = trueSketch(epochKey(secret, 'rr', 493_000), t.enter, m);
        for (let i = 0; i < m; i++) {
          const a = sketchBit(truth, i);
          const b = sketchBit(c.sketch!.bits, i);
          if (a === 0) {
            zeros++;
            if (b) flips0++;
          } else {
            ones_++;
            if (!b) flips1++;
          }
        }
      }
      // each direction separately: flipped with probability q/2; 5 standard deviations of the binomial
      for (const [flips, n] of [
        [flips0, zeros],
        [flips1, ones_],
      ]) {
        const mean = (n * q) / 2;
        const sd = Math.sqrt(n * (q / 2) * (1 - q / 2));
        expect(n).toBeGreaterThan(40_000);
        expect(Math.abs(flips - mean)).toBeLessThan(5 * sd);
      }
      fw.clearCorridor();
    }
  });
  it('draws fresh noise for every window: the same devices in two windows of an epoch give sketches that differ where independent draws would', () => {
    // w x epsilon for a device in w sketches (PRIVACY.md) needs each sketch's noise drawn anew; noise
    // drawn once per epoch would leave the same bits flipped in every window of it.
    const fw = Firmware.loadSync();
    const m = 32768;
    const p = 0.5;
    fw.setCorridor({ secret: new Uint8Array(randomBytes(32)), group: 'fresh', epochMs: HOUR, bits: m, p });
    const start = 493_100 * HOUR;
    const sketches: Uint8Array[] = [];
    for (let w = 0; w < 3; w++) {
      fw.beginWindow({ startMs: start + w * 60_000, endMs: start + (w + 1) * 60_000 });
      fw.ingestMany(traffic(800, start + w * 60_000, 7).frames); // the same devices every window
      sketches.push(fw.endWindow().sketch!.bits);
    }
    fw.clearCorridor();
    // a bit is flipped with probability p/2 in each sketch, independently: two sketches of the same
    // truth differ in a bit with probability 2 (p/2)(1 - p/2); 5 standard deviations of the binomial
    const q = 2 * (p / 2) * (1 - p / 2);
    for (const [a, b] of [
      [0, 1],
      [1, 2],
      [0, 2],
    ] as const) {
      let differ = 0;
      for (let i = 0; i < m; i++) differ += sketchBit(sketches[a]!, i) ^ sketchBit(sketches[b]!, i);
      expect(Math.abs(differ - m * q)).toBeLessThan(5 * Math.sqrt(m * q * (1 - q)));
    }
  });

  it('links a device across windows and gateways within an epoch, by design: it sets the same bit in every window of the epoch at every gateway of the group, another in the next epoch', () => {
    // What "no profiling" does not cover (PRIVACY.md): a corridor group's sketches are made to be
    // compared across windows and gateways. Two gateways of one group (two modules, one secret), p = 0.
    const secret = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
    const m = 8192;
    const gateways = [Firmware.loadSync(), Firmware.loadSync()];
    for (const fw of gateways) fw.setCorridor({ secret, group: 'main-street', epochMs: HOUR, bits: m, p: 0 });
    const device = addr(0x00, 77, 5); // Wi-Fi, locally administered bit clear: it enters
    const e = 493_200;
    const setBits = (fw: Firmware, start: number): number[] => {
      fw.beginWindow({ startMs: start, endMs: start + 60_000 });
      fw.ingestMany([
        { linkType: 127, timestampMs: start + 5_000, data: probeRequest({ sa: device, seq: 1, ies: IES, channel: 6, signalDbm: -50, tsfUs: 1 }) },
      ]);
      const bits = fw.endWindow().sketch!.bits;
      const out: number[] = [];
      for (let i = 0; i < m; i++) if (sketchBit(bits, i)) out.push(i);
      return out;
    };
    const a1 = setBits(gateways[0]!, e * HOUR); // gateway A, first window of the epoch
    const b1 = setBits(gateways[1]!, e * HOUR + 20 * 60_000); // gateway B, 20 minutes later
    const a2 = setBits(gateways[0]!, e * HOUR + 59 * 60_000); // gateway A, the epoch's last window
    const next = setBits(gateways[1]!, (e + 1) * HOUR); // gateway B, the next epoch
    expect(a1).toHaveLength(1);
    expect(b1).toEqual(a1);
    expect(a2).toEqual(a1);
    expect(next).toHaveLength(1);
    expect(next).not.toEqual(a1);
    // the position is the keyed one: without the epoch key it cannot be computed
    expect(a1[0]).toBe(sketchPosition(epochKey(secret, 'main-street', e), 'wifi', device, m));
    expect(next[0]).toBe(sketchPosition(epochKey(secret, 'main-street', e + 1), 'wifi', device, m));
    for (const fw of gateways) fw.clearCorridor();
  });

  it("limit: without the key, whoever holds an epoch's sketches follows a device that stays, from window to window and gateway to gateway (p = 0.03)", () => {
    // The key keeps an address from being mapped to its bit; it does not keep a bit from being
    // followed. A device heard at gateway A for 10 windows, then at B for 10, among 40 other devices
    // a window (new ones every window) at each gateway: the broker, the aggregator or an insider with
    // the sketches, and no key, finds one bit that is set at A, then at B, far above the noise:
    // a pseudonym of that device for the epoch, and where it was.
    const secret = new Uint8Array(randomBytes(32));
    const m = 8192;
    const A = Firmware.loadSync();
    const B = Firmware.loadSync();
    for (const fw of [A, B]) fw.setCorridor({ secret, group: 'main-street', epochMs: HOUR, bits: m, p: 0.03 });
    const device = addr(0x00, 4711, 9);
    const e = 493_200;
    let next = 0;
    const sketch = (fw: Firmware, w: number, withDevice: boolean): Uint8Array => {
      const start = e * HOUR + w * 60_000;
      fw.beginWindow({ startMs: start, endMs: start + 60_000 });
      const mem = new Uint8Array(fw.exports.memory.buffer);
      const B0 = fw.exports.batch_ptr();
      const list = Array.from({ length: 40 }, () => addr(0x00, next++ & 0xffff, 100 + (next >>> 16)));
      if (withDevice) list.push(device);
      for (const [i, a] of list.entries()) mem.set(a, B0 + 6 * i);
      fw.exports.count_addresses(RADIO_WIFI, ADDR_WIFI_GLOBAL, B0, list.length);
      return fw.endWindow().sketch!.bits;
    };
    const atA: Uint8Array[] = [];
    const atB: Uint8Array[] = [];
    for (let w = 0; w < 20; w++) {
      atA.push(sketch(A, w, w < 10));
      atB.push(sketch(B, w, w >= 10));
    }
    // the attacker's score, no key: per bit, the windows it is set in at A (0-9) and at B (10-19)
    const score = (i: number) => atA.slice(0, 10).reduce((n, b) => n + sketchBit(b, i), 0) + atB.slice(10).reduce((n, b) => n + sketchBit(b, i), 0);
    const scores = Array.from({ length: m }, (_, i) => score(i));
    const best = scores.indexOf(Math.max(...scores));
    // it is the device's bit (which only the key says), set in (nearly) all 20 sketches (each bit flips
    // with probability 1.5 %) ...
    expect(best).toBe(sketchPosition(epochKey(secret, 'main-street', e), 'wifi', device, m));
    expect(scores[best]).toBeGreaterThanOrEqual(16);
    // ... where no other bit comes near
    expect([...scores].sort((x, y) => y - x)[1]).toBeLessThan(8);
    // and the move is in the sketches too: the bit left A when the device did, and was not at B before
    expect(atA.slice(10).reduce((n, b) => n + sketchBit(b, best), 0)).toBeLessThanOrEqual(3);
    expect(atB.slice(0, 10).reduce((n, b) => n + sketchBit(b, best), 0)).toBeLessThanOrEqual(3);
    for (const fw of [A, B]) fw.clearCorridor();
  });
});
