// Small counts (gateway/privacy.ts): suppression below k and the differential-privacy noise, applied
// in the gateway before a window is queued, logged or published.
//   - the noise is the two-sided geometric (discrete Laplace): mean 0, variance 2a / (1 - a)^2 with
//     a = exp(-epsilon), P(0) = (1 - a) / (1 + a), symmetric; fixed bounds that a one-sided, mis-scaled
//     or rounded-continuous sampler fails;
//   - it comes from Node's CSPRNG (randomFillSync is watched), the same number of draws every window;
//   - what is published depends on the two counts of a radio, k and the random draws only;
//   - a real gateway publishing to a real Mosquitto: a radio below k goes out as zeros (frames too)
//     with suppressed: true, one above k unchanged; the message logged and queued is the published one;
//   - what the noise's scale rests on, with the real firmware: one address raises devices by 1;
//     counted fixed, moved into a burst and fixed again it raises the rounded estimate by 2 in a
//     60-s window (1 1/6 of the mean), the scale of the estimate's noise; and the ways one address
//     moves the estimate by more, up and down (why the epsilon is not a guarantee for `estimate`);
//   - simulate --evaluate's table of the cost of each setting agrees with the evaluation at k = 0.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { bleCapture, config, subscriber, wifiCapture } from './gateway-support.ts';
import { Gateway } from '../gateway/gateway.ts';
import { cryptoUniform, dailyBudget, estimateSensitivity, noiseVariance, protect, twoSidedGeometric, type Uniform } from '../gateway/privacy.ts';
import { countsTopic, validateCounts, type CountsMessage } from '../contract/index.ts';
import { countsLines, countsPoints, msSettings } from '../aggregator/messages.ts';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { probeRequest } from '../simulator/frames.ts';
import { Rng } from '../simulator/rng.ts';

/** Every draw's size and target; `bytesAre` (a test's) makes the CSPRNG's bytes that value instead. */
const draws = vi.hoisted(() => ({ bytes: [] as number[], targets: [] as NodeJS.ArrayBufferView[], bytesAre: null as number | null }));
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  const randomFillSync = ((buf: NodeJS.ArrayBufferView, offset?: number, size?: number) => {
    const out = real.randomFillSync(buf as Uint8Array, offset, size);
    const n = size ?? buf.byteLength - (offset ?? 0);
    if (draws.bytesAre !== null) new Uint8Array(buf.buffer, buf.byteOffset + (offset ?? 0), n).fill(draws.bytesAre);
    draws.bytes.push(n);
    draws.targets.push(buf);
    return out;
  }) as typeof real.randomFillSync;
  return { ...real, default: { ...real, randomFillSync }, randomFillSync };
});

/** A deterministic uniform stream on (0, 1] for reproducible property tests (the gateway uses the CSPRNG). */
function seeded(seed: number): Uniform & { used: number } {
  const rng = new Rng(seed);
  const f = (() => {
    f.used++;
    return (rng.u32() + 1) / 4294967296;
  }) as Uniform & { used: number };
  f.used = 0;
  return f;
}

/** Every number in a log line under a key path that names Wi-Fi (`wifi`, `wifi_devices`, `wifi.frames`, ...). */
function wifiNumbers(v: unknown, path = ''): Array<[string, number]> {
  if (typeof v === 'number') return /wifi/i.test(path) ? [[path, v]] : [];
  if (v === null || typeof v !== 'object') return [];
  return Object.entries(v).flatMap(([k, x]) => wifiNumbers(x, path ? `${path}.${k}` : k));
}

const msg = (wifi: Partial<CountsMessage['wifi']>, ble: Partial<CountsMessage['ble']> = {}): CountsMessage => ({
  v: 1,
  site: 's',
  zone: 'z',
  gateway: 'g',
  seq: 1,
  start: '2026-06-01T12:00:00.000Z',
  end: '2026-06-01T12:01:00.000Z',
  complete: true,
  wifi: { frames: 120, devices: 3, estimate: 2, probes: 118, rejected: 2, weak: 0, exact: true, ...wifi },
  ble: { frames: 900, devices: 40, estimate: 31, adverts: 890, rejected: 10, weak: 1, exact: true, ...ble },
});

describe('small counts: the noise', () => {
  for (const epsilon of [1, 0.5, 0.1]) {
    it(`two-sided geometric with epsilon ${epsilon}: mean 0, variance 2a/(1-a)^2, P(0) = (1-a)/(1+a), symmetric`, () => {
      const n = 200_000;
      const a = Math.exp(-epsilon);
      let sum = 0;
      let sq = 0;
      let zeros = 0;
      let plus1 = 0;
      let minus1 = 0;
      let nonInteger = 0;
      for (let i = 0; i < n; i++) {
        const z = twoSidedGeometric(epsilon, 1);
        if (!Number.isInteger(z)) nonInteger++;
        sum += z;
        sq += z * z;
        if (z === 0) zeros++;
        if (z === 1) plus1++;
        if (z === -1) minus1++;
      }
      expect(nonInteger).toBe(0);
      const variance = (2 * a) / (1 - a) ** 2;
      expect(noiseVariance(epsilon)).toBeCloseTo(variance, 9);
      const mean = sum / n;
      // Bounds: 8 standard errors for the mean, 5 % for the variance (its standard error is ~0.5 %),
      // 0.01 for P(0) (standard error ~0.001): a correct sampler passes by far, a broken one fails.
      expect(Math.abs(mean)).toBeLessThan(8 * Math.sqrt(variance / n));
      expect(sq / n - mean * mean).toBeGreaterThan(variance * 0.95);
      expect(sq / n - mean * mean).toBeLessThan(variance * 1.05);
      expect(Math.abs(zeros / n - (1 - a) / (1 + a))).toBeLessThan(0.01);
      expect(Math.abs(plus1 - minus1) / n).toBeLessThan(0.01);
    });
  }

  it('as protect() applies it in 60-s windows: standard deviation 1.4 / 2.8 / 14.1 on devices, twice that on the estimate (its sensitivity 2)', () => {
    const n = 100_000;
    const uniform = seeded(11);
    for (const [epsilon, sdDevices, sdEstimate] of [
      [1, 1.4, 2.8],
      [0.5, 2.8, 5.6],
      [0.1, 14.1, 28.3],
    ] as const) {
      let dev = 0;
      let est = 0;
      for (let i = 0; i < n; i++) {
        const m = protect(msg({ devices: 100_000, estimate: 100_000 }), { minCount: 0, epsilon, windowMs: 60_000 }, uniform);
        dev += (m.wifi.devices - 100_000) ** 2;
        est += (m.wifi.estimate - 100_000) ** 2;
      }
      // the figures of gateway/README.md, to their 0.1, and the variance 2a/(1-a)^2 with a = exp(-epsilon / sensitivity)
      expect(Math.sqrt(dev / n)).toBeCloseTo(sdDevices, 0);
      expect(Math.sqrt(est / n)).toBeCloseTo(sdEstimate, 0);
      expect(Math.abs(dev / n / noiseVariance(epsilon) - 1)).toBeLessThan(0.05);
      expect(Math.abs(est / n / noiseVariance(epsilon, 2) - 1)).toBeLessThan(0.05);
      expect(Math.sqrt(noiseVariance(epsilon))).toBeCloseTo(sdDevices, 1);
      expect(Math.sqrt(noiseVariance(epsilon, 2))).toBeCloseTo(sdEstimate, 1);
    }
  });

  it('the bounds above fail a broken sampler (one-sided, epsilon halved, rounded continuous Laplace)', () => {
    const n = 200_000;
    const epsilon = 0.5;
    const a = Math.exp(-epsilon);
    const variance = (2 * a) / (1 - a) ** 2;
    const stats = (draw: () => number) => {
      let sum = 0;
      let sq = 0;
      let zeros = 0;
      for (let i = 0; i < n; i++) {
        const z = draw();
        sum += z;
        sq += z * z;
        if (z === 0) zeros++;
      }
      const mean = sum / n;
      return {
        meanOk: Math.abs(mean) < 8 * Math.sqrt(variance / n),
        varOk: Math.abs((sq / n - mean * mean) / variance - 1) < 0.05,
        zeroOk: Math.abs(zeros / n - (1 - a) / (1 + a)) < 0.01,
      };
    };
    const ok = (s: ReturnType<typeof stats>) => s.meanOk && s.varOk && s.zeroOk;
    expect(ok(stats(() => twoSidedGeometric(epsilon, 1)))).toBe(true);
    expect(ok(stats(() => Math.floor(Math.log(cryptoUniform()) / -epsilon)))).toBe(false); // one-sided
    expect(ok(stats(() => twoSidedGeometric(epsilon / 2, 1)))).toBe(false); // wrong scale
    expect(ok(stats(() => Math.round((Math.log(cryptoUniform()) - Math.log(cryptoUniform())) / epsilon)))).toBe(false); // rounded Laplace
  }, 300_000); // CPU-bound: the timeout is only a safety net for a loaded machine

  it('at the smallest epsilon the config allows, the noisy counts stay counts the contract holds (a window is never dropped for them)', () => {
    // The first draw of each pair the smallest uniform, the second 1: the largest positive noise.
    let i = 0;
    const extreme: Uniform = () => (i++ % 2 === 0 ? 2 ** -53 : 1);
    for (const epsilon of [0.000001, 1e-9, 1e-15, 1e-300]) {
      i = 0;
      const out = protect(msg({}), { minCount: 0, epsilon, windowMs: 60_000 }, extreme);
      const valid = validateCounts(out);
      expect(valid.ok, `epsilon ${epsilon}: ${valid.ok ? '' : valid.reason}`).toBe(true);
      for (const r of [out.wifi, out.ble]) for (const n of [r.devices, r.estimate]) expect(Number.isSafeInteger(n)).toBe(true);
      // With protection below the counts, they are kept (not suppressed).
      expect(validateCounts(protect(msg({}), { minCount: 5, epsilon, windowMs: 60_000 }, extreme)).ok).toBe(true);
    }
    // Both draws of a pair the smallest uniform: a count the contract holds, not an infinity
    // (the difference of two would be no number at all)
    for (const epsilon of [1e-300]) {
      const out = protect(msg({}), { minCount: 0, epsilon, windowMs: 60_000 }, () => 2 ** -53);
      const valid = validateCounts(out);
      expect(valid.ok, `epsilon ${epsilon}: ${valid.ok ? '' : valid.reason}`).toBe(true);
    }
    // An epsilon whose rate underflows to 0 draws no noise at all: refused, never a count sent exact
    // (the config refuses anything below 0.000001 first: test/gateway-config.test.ts)
    expect(() => protect(msg({}), { minCount: 0, epsilon: Number.MIN_VALUE, windowMs: 60_000 })).toThrow(RangeError);
  });

  it('a tiny epsilon still draws noise: the two draws of a noise value were each capped at 2^53 - 1 and cancelled, so below about 1e-15 the counts went out exact while the message claimed the epsilon', () => {
    for (const epsilon of [1e-300, 1e-16, 1e-15, 0.000001]) {
      let zero = 0;
      for (let i = 0; i < 2000; i++) if (twoSidedGeometric(epsilon, 1) === 0) zero++;
      // P(0) = (1 - a) / (1 + a), about epsilon / 2 here: none in 2000
      expect(zero, `epsilon ${epsilon}`).toBe(0);
      // and the counts as published are not the counts: 0 or far beyond, never the 3 counted
      let exact = 0;
      for (let i = 0; i < 200; i++) if (protect(msg({}), { minCount: 0, epsilon, windowMs: 60_000 }).wifi.devices === msg({}).wifi.devices) exact++;
      expect(exact, `epsilon ${epsilon}`).toBe(0);
    }
  });

  it('draws from the CSPRNG: uniforms in (0, 1], two 8-byte draws per noise value, the same number every window', () => {
    let outside = 0;
    for (let i = 0; i < 10_000; i++) {
      const u = cryptoUniform();
      if (!(u > 0 && u <= 1)) outside++;
    }
    expect(outside).toBe(0);
    const perWindow = (m: CountsMessage) => {
      draws.bytes.length = 0;
      protect(m, { minCount: 15, epsilon: 0.5, windowMs: 60_000 });
      return [...draws.bytes];
    };
    const small = perWindow(msg({ devices: 0, estimate: 0, frames: 0 }, { devices: 1, estimate: 1 }));
    const big = perWindow(msg({ devices: 5000, estimate: 3000 }, { devices: 20_000, estimate: 9000, exact: false }));
    // 2 radios x (devices, estimate) x 2 geometric draws, each one call of 8 bytes.
    expect(small).toEqual(Array(8).fill(8));
    expect(big).toEqual(small);
    draws.bytes.length = 0;
    protect(msg({}), { minCount: 15, windowMs: 60_000 });
    expect(draws.bytes).toEqual([]); // suppression alone draws nothing
  });

  it('a uniform is 53 bits of its 8 random bytes: all bits set give exactly 1, none 2^-53; the bytes are zero-filled once read', () => {
    try {
      draws.targets.length = 0;
      draws.bytesAre = 0xff;
      expect(cryptoUniform()).toBe(1);
      draws.bytesAre = 0x00;
      expect(cryptoUniform()).toBe(2 ** -53);
      draws.bytesAre = null;
      for (let i = 0; i < 100; i++) cryptoUniform();
    } finally {
      draws.bytesAre = null;
    }
    // the noise can be taken off a published count by whoever reads these bytes: none is left
    expect(draws.targets.length).toBe(102);
    for (const t of draws.targets) expect(new Uint8Array(t.buffer, t.byteOffset, t.byteLength).every((b) => b === 0)).toBe(true);
  });
});

describe('small counts: suppression', () => {
  it('a radio below k is published as zeros, every count of it, with suppressed: true; one at or above k unchanged', () => {
    // every count of the radio is non-zero before, so each one is seen to be zeroed (weak too: the
    // address slots heard below the RSSI gate, one phone at the edge of the range)
    const out = protect(msg({ weak: 7 }), { minCount: 5, windowMs: 60_000 });
    expect(out.wifi).toEqual({ frames: 0, devices: 0, estimate: 0, probes: 0, rejected: 0, weak: 0, exact: true, suppressed: true });
    expect(out.ble).toEqual({ ...msg({}).ble, suppressed: false });
    expect(protect(msg({}, { devices: 2, estimate: 1 }), { minCount: 5, windowMs: 60_000 }).ble).toEqual({
      frames: 0,
      devices: 0,
      estimate: 0,
      adverts: 0,
      rejected: 0,
      weak: 0,
      exact: true,
      suppressed: true,
    });
    expect(out.privacy).toEqual({ min_count: 5 });
    expect(validateCounts(out).ok).toBe(true);
    // devices at k but estimate below it: suppressed (both must reach k).
    expect(protect(msg({ devices: 5, estimate: 4 }), { minCount: 5, windowMs: 60_000 }).wifi.suppressed).toBe(true);
    expect(protect(msg({ devices: 5, estimate: 5 }), { minCount: 5, windowMs: 60_000 }).wifi).toEqual({
      ...msg({ devices: 5, estimate: 5 }).wifi,
      suppressed: false,
    });
    // Off: the message is unchanged, no privacy block, no flag.
    expect(protect(msg({}), { minCount: 0, windowMs: 60_000 })).toEqual(msg({}));
  });

  it('noise first, then suppression on the noisy counts; results clamped at 0; the privacy block names both', () => {
    const u = seeded(3);
    for (let i = 0; i < 2000; i++) {
      const out = protect(msg({ devices: i % 30, estimate: i % 20 }), { minCount: 10, epsilon: 0.5, windowMs: 60_000 }, u);
      expect(validateCounts(out).ok).toBe(true);
      expect(out.privacy).toEqual({ min_count: 10, epsilon: 0.5 });
      for (const r of [out.wifi, out.ble]) {
        expect(r.devices).toBeGreaterThanOrEqual(0);
        expect(r.estimate).toBeGreaterThanOrEqual(0);
        if (r.suppressed) expect([r.devices, r.estimate, r.frames]).toEqual([0, 0, 0]);
        else expect(Math.min(r.devices, r.estimate)).toBeGreaterThanOrEqual(10);
      }
    }
  });

  it('what is published depends on the two counts, k and the random draws only: every other field can change', () => {
    const rng = new Rng(9);
    for (let i = 0; i < 3000; i++) {
      const counts = { devices: rng.int(0, 40), estimate: rng.int(0, 40) };
      const a = msg({ ...counts }, { ...counts });
      // Same counts, every other field different.
      const b: CountsMessage = {
        ...a,
        site: 'other',
        zone: 'y',
        gateway: 'h',
        seq: rng.int(0, 1e9),
        start: '2030-01-01T00:00:00.000Z',
        end: '2030-01-01T00:15:00.000Z',
        complete: false,
        wifi: { frames: rng.int(0, 1e6), ...counts, probes: rng.int(0, 1e6), rejected: rng.int(0, 1e6), weak: rng.int(0, 1e6), exact: rng.chance(0.5) },
        ble: { frames: rng.int(0, 1e6), ...counts, adverts: rng.int(0, 1e6), rejected: rng.int(0, 1e6), exact: rng.chance(0.5) },
      };
      const settings = { minCount: rng.int(0, 20), epsilon: rng.chance(0.5) ? 0.1 + rng.float() : undefined, windowMs: 60_000 };
      const ua = seeded(i);
      const ub = seeded(i);
      const pa = protect(a, settings, ua);
      const pb = protect(b, settings, ub);
      expect(ua.used).toBe(ub.used);
      for (const r of ['wifi', 'ble'] as const) {
        expect([pb[r].devices, pb[r].estimate, pb[r].suppressed]).toEqual([pa[r].devices, pa[r].estimate, pa[r].suppressed]);
      }
      expect(pb.privacy).toEqual(pa.privacy);
    }
  });

  it('the aggregator stores the flag: suppressed=T / F on the point, nothing when the gateway does not protect', () => {
    const out = protect(msg({}), { minCount: 5, windowMs: 60_000 });
    const lines = countsLines(out);
    expect(lines[0]).toMatch(/ complete=T,devices=0i,estimate=0i,frames=0i,rejected=0i,suppressed=T \d+$/);
    expect(lines[1]).toMatch(/,suppressed=F \d+$/);
    expect(lines).toEqual(countsPoints(out).map((p) => p.toLineProtocol(msSettings)));
    expect(countsLines(msg({})).join('\n')).not.toContain('suppressed');
  });

  it('limit: exact is published as counted, with noise and suppression alike: one address past 49,152 flips it', () => {
    // the firmware: exact up to its table's 49,152 addresses inclusive, not one more
    const fw = Firmware.loadSync();
    const x = fw.exports;
    const mem = new Uint8Array(x.memory.buffer);
    const run = (n: number) => {
      fw.beginWindow();
      for (let done = 0; done < n; ) {
        const k = Math.min(4096, n - done);
        for (let j = 0; j < k; j++) mem.set([0x02, 0x11, 0, (done + j) >> 16, ((done + j) >> 8) & 0xff, (done + j) & 0xff], x.batch_ptr() + 6 * j);
        x.count_addresses(1, 1, x.batch_ptr(), k);
        done += k;
      }
      return fw.endWindow().wifi;
    };
    expect(run(49_152).exact).toBe(true);
    expect(run(49_153).exact).toBe(false);
    // and the gateway publishes it as it is: no noise, no suppression touches it
    const uniform = seeded(5);
    for (const exact of [true, false])
      for (const s of [
        { minCount: 0, epsilon: 0.1, windowMs: 60_000 },
        { minCount: 100_000, epsilon: 1, windowMs: 60_000 },
        { minCount: 5, windowMs: 60_000 },
      ])
        for (let i = 0; i < 50; i++) expect(protect(msg({ devices: 49_152, estimate: 9000, exact }), s, uniform).wifi.exact).toBe(exact);
  });

  it('budget per day: 2 x epsilon per window (devices and estimate of a radio), times the windows of a day', () => {
    expect(dailyBudget(60_000, 0.5)).toEqual({ windowsPerDay: 1440, perWindow: 1, perDay: 1440 });
    expect(dailyBudget(900_000, 0.1).perDay).toBeCloseTo(19.2, 9);
    // the rounded rise of one address counted fixed, moved into a burst once and fixed again
    expect(estimateSensitivity(60_000)).toBe(2); // 1 + 1/6, rounded up
    expect(estimateSensitivity(900_000)).toBe(2); // 1 + 1/90
    expect(estimateSensitivity(10_000)).toBe(2); // 1 + 1
    expect(estimateSensitivity(45_000)).toBe(2); // 1 + 1/4.5; BLE 2/1.5
    expect(estimateSensitivity(61_000)).toBe(3); // 2/1.017 + 1/6.1
  });
});

describe('small counts: what one address does to the counts (real firmware)', () => {
  const fw = Firmware.loadSync();
  const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
  const IES = Uint8Array.from([0x00, 0x00, 0x01, 0x04, 0x02, 0x04, 0x0b, 0x16]);
  const mac = (i: number, first: number) => Uint8Array.from([first, 0x10, 0x20, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]);
  /** A probe request; first 0x02: a randomised (locally administered) address, 0x00: one a device keeps. */
  const probe = (addr: number, t: number, signalDbm: number, first = 0x02): Frame => ({
    linkType: 127,
    timestampMs: t,
    data: probeRequest({ sa: mac(addr, first), seq: addr & 0xfff, ies: IES, channel: 6, signalDbm, tsfUs: 0 }),
  });
  const fixed = (addr: number, t: number, signalDbm: number): Frame => probe(addr, t, signalDbm, 0x00);
  const count = (frames: Frame[], span?: { startMs: number; endMs: number }) => {
    fw.beginWindow(span ?? {});
    fw.ingestMany([...frames].sort((x, y) => x.timestampMs - y.timestampMs));
    return fw.endWindow().wifi;
  };

  it('on a fixed grid (window span given) one more randomised address raises devices by exactly 1 and the estimate by at most 1', () => {
    const rng = new Rng(21);
    const span = { startMs: T0, endMs: T0 + 60_000 };
    let rose = 0;
    for (let trial = 0; trial < 150; trial++) {
      const frames: Frame[] = [];
      const n = rng.int(1, 40);
      for (let d = 0; d < n; d++) for (let k = rng.int(1, 6); k > 0; k--) frames.push(probe(d, T0 + rng.int(0, 59_999), -40 - rng.int(0, 50)));
      const extra: Frame[] = [];
      for (let k = rng.int(1, 8); k > 0; k--) extra.push(probe(1000, T0 + rng.int(0, 59_999), -40 - rng.int(0, 50)));
      const without = count(frames, span);
      const withOne = count([...frames, ...extra], span);
      expect(withOne.devices - without.devices).toBe(1);
      expect(withOne.estimate - without.estimate).toBeLessThanOrEqual(1);
      if (withOne.estimate > without.estimate) rose++;
    }
    expect(rose).toBeGreaterThan(10);
  });

  it("the scale of the estimate's noise: one address counted fixed, moved into a burst by a chain and fixed again raises the rounded estimate by 2 in a 60-s window (1 1/6 of the mean)", () => {
    const span = { startMs: T0, endMs: T0 + 60_000 };
    // W starts a burst at -78 dBm, Y 700 ms later is linked to it (1 s, 8 dB); a lone burst in another
    // 10-s sub-window: 2 bursts over six 10-s sub-windows, a mean of 0.333 (published: 0)
    const base = [probe(1, T0 + 500, -78), probe(2, T0 + 1200, -78), probe(3, T0 + 45_000, -50)];
    // X keeps its address: alone at 1000 ms (fixed), Y chains to it (200 ms, 2 dB) and moves it into
    // a burst; alone again 14 s later: fixed again
    const x = [fixed(9, T0 + 1000, -80), fixed(9, T0 + 15_000, -80)];
    const without = count(base, span);
    const withX = count([...base, ...x], span);
    expect(withX.devices - without.devices).toBe(1);
    expect(withX.estimateMean - without.estimateMean).toBeCloseTo(7 / 6, 2);
    expect([without.estimate, withX.estimate]).toEqual([0, 2]); // 0.333 and 1.5, rounded
    // a scale below this rise (1, 1 1/6) would understate it
    expect(estimateSensitivity(60_000)).toBeGreaterThanOrEqual(withX.estimate - without.estimate);
  });

  it('NOT bounded: one address can raise the estimate by many (the chain table keeps one frame per dBm value)', () => {
    // 40 devices that keep their address, each heard once, 1.4 s apart at -40 ... -79 dBm; 200 ms
    // after each, a random address at the same signal chains to it and moves it into a burst:
    // 40 bursts over six 10-s sub-windows, nothing fixed.
    const span = { startMs: T0, endMs: T0 + 60_000 };
    const base: Frame[] = [];
    const one: Frame[] = [fixed(7, T0 + 100, -90)];
    for (let i = 0; i < 40; i++) {
      const t = T0 + 1000 + i * 1400;
      base.push(fixed(100 + i, t, -40 - i), probe(1000 + i, t + 200, -40 - i));
      one.push(fixed(7, t + 100, -40 - i)); // one more address heard between the two, at the same signal
    }
    const without = count(base, span);
    const withOne = count([...base, ...one], span);
    // (7 and 42 below, unless two of the addresses share a bit of the sub-window map under this
    // window's random key, about 1 window in 100 here: one of the two then reads one off)
    expect(without.estimate).toBeGreaterThanOrEqual(7); // 40 / 6
    expect(without.estimate).toBeLessThanOrEqual(8);
    expect(withOne.devices - without.devices).toBe(1);
    // its frame replaces the fixed device's in the chain table: the random address chains to it
    // and moves nothing, so all 40 devices stay fixed (and one more: itself)
    expect(withOne.estimate).toBeGreaterThanOrEqual(41);
    expect(withOne.estimate).toBeLessThanOrEqual(42);
    expect(withOne.estimate - without.estimate).toBeGreaterThan(10 * estimateSensitivity(60_000));
  });

  it('NOT bounded the other way: one address can lower the estimate by many (links, and a grid set by the first and last frame)', () => {
    // (a) 20 devices, each heard once, 1.4 s apart at -50 dBm: 20 bursts over three 10-s sub-windows.
    // One more device probing 0.5 s before each of them at the same signal links all their new
    // addresses to itself.
    const crowd = Array.from({ length: 20 }, (_, d) => probe(d, T0 + 1000 + d * 1400, -50));
    const linker = Array.from({ length: 20 }, (_, d) => probe(500, T0 + 500 + d * 1400, -50));
    const span = { startMs: T0, endMs: T0 + 30_000 };
    const a0 = count(crowd, span);
    const a1 = count([...crowd, ...linker], span);
    expect(a0.estimate).toBe(7); // 20 / 3
    expect(a1.devices).toBe(21);
    expect(a1.estimate).toBe(1); // the floor: new addresses / 7 per 10-s sub-window
    // (b) Without a span (how the gateway's window clock opens windows), the divisor runs from the
    // first to the last frame: 20 devices 1.1 s apart in the first 22 s read 7 (20 over three 10-s
    // sub-windows); one frame at 35 s lowers it to 5 (21 over four).
    const early = Array.from({ length: 20 }, (_, d) => probe(d, T0 + d * 1100, -50));
    const b0 = count(early);
    const b1 = count([...early, probe(777, T0 + 35_000, -50)]);
    expect(b0.estimate).toBe(7);
    expect(b1.estimate).toBe(5);
  });
});

const SUITE = 'small counts through a real gateway and Mosquitto';
const ok = need('mosquitto', 'mosquitto', SUITE);

describe.skipIf(!ok)(SUITE, () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-privacy-'));
  const start = Date.UTC(2026, 5, 1, 12, 0, 0);
  let wifi: ReturnType<typeof wifiCapture>;
  let ble: ReturnType<typeof bleCapture>;
  beforeAll(async () => {
    await broker.start();
    // 3 Wi-Fi devices (below k = 5) and 20 BLE devices (above it), for 3 minutes.
    wifi = wifiCapture(join(dir, 'wifi.pcap'), { devices: 3, startMs: start, durationMs: 180_000, framesPerS: 0.5 });
    ble = bleCapture(join(dir, 'ble.pcap'), { devices: 20, startMs: start, durationMs: 180_000, framesPerS: 40 });
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(site: string, flags: { privacyMinCount?: string; privacyEpsilon?: string }) {
    const logs: Array<Record<string, unknown>> = [];
    // trace: every line the gateway can write, debug and trace included
    const log = pino({ level: 'trace' }, { write: (s: string) => void logs.push(JSON.parse(s)) });
    const sub = await subscriber(broker.url, { filter: countsTopic(site, 'g') });
    const queued: CountsMessage[] = [];
    const gw = new Gateway({
      config: config({
        site,
        zone: 'z',
        id: 'g',
        mqttUrl: broker.url,
        source: [`wifi=pcap:${wifi.path}`, `ble=pcap:${ble.path}`],
        speed: 'max',
        window: '60s',
        queueDir: join(dir, `q-${site}`),
        ...flags,
      }),
      log,
      onWindow: (m) => queued.push(m),
    });
    await gw.run();
    await sub.client.endAsync();
    const published = sub.messages.map((m) => JSON.parse(m.payload.toString()) as CountsMessage).sort((x, y) => x.seq - y.seq);
    return { published, queued, logs };
  }

  it('k = 5: the Wi-Fi radio (3 devices) goes out as zeros with suppressed: true, BLE (20) as counted; logged and queued = published', async () => {
    const plain = await run('plain', {});
    expect(plain.published.length).toBeGreaterThanOrEqual(3);
    expect(plain.published.some((m) => m.wifi.devices === 3)).toBe(true); // without k the small count is published
    for (const m of plain.published) expect(m.privacy === undefined && m.wifi.suppressed === undefined).toBe(true);

    const { published, queued, logs } = await run('kfive', { privacyMinCount: '5' });
    expect(published.length).toBe(plain.published.length);
    for (const m of published) {
      expect(validateCounts(m).ok).toBe(true);
      expect(m.privacy).toEqual({ min_count: 5 });
      expect(m.wifi).toEqual({ frames: 0, devices: 0, estimate: 0, probes: 0, rejected: 0, weak: 0, exact: true, suppressed: true });
    }
    // BLE: the windows with the whole crowd are published unchanged (a window cut short at either
    // end of the capture may fall below k, then it is suppressed too).
    const full = published.filter((m) => m.complete);
    expect(full.length).toBeGreaterThanOrEqual(2);
    for (const m of full) {
      const p = plain.published.find((x) => x.seq === m.seq - plain.published[0].seq + published[0].seq) ?? plain.published.find((x) => x.start === m.start)!;
      // The estimate reads a map of hashed addresses under each window's own random key: in one
      // window in a hundred or so two of the 20 addresses share a bit, and the two runs differ by one.
      expect(m.ble).toEqual({ ...p.ble, estimate: m.ble.estimate, suppressed: false });
      expect(Math.abs(m.ble.estimate - p.ble.estimate)).toBeLessThanOrEqual(1);
      expect(m.ble.devices).toBe(20);
    }
    // What was queued (and would be sent again after a restart) is exactly what was published.
    expect(published).toEqual(queued);
    // The log line of each window carries the published counts only.
    const lines = logs.filter((l) => l.msg === 'window closed');
    expect(lines.length).toBe(published.length);
    for (const l of lines) expect(l.wifi).toBe(0);
    // No line at any level carries a Wi-Fi count before protection, under any name (`wifi`,
    // `wifi_devices`, `wifi.devices`, ...): every number under a key naming Wi-Fi is 0. Control: the
    // run without k logs its Wi-Fi counts under those names, so the scan sees them.
    const numbers = (ls: Array<Record<string, unknown>>) => ls.flatMap((l) => wifiNumbers(l));
    expect(numbers(plain.logs).some(([, v]) => v > 0)).toBe(true);
    expect(numbers(logs).length).toBeGreaterThanOrEqual(lines.length);
    expect(numbers(logs).filter(([, v]) => v !== 0)).toEqual([]);
  });

  it('epsilon = 1 with k = 5: noisy counts, drawn once per window (queued = published), the privacy block says so', async () => {
    const { published, queued } = await run('noisy', { privacyMinCount: '5', privacyEpsilon: '1' });
    expect(published.length).toBeGreaterThanOrEqual(3);
    expect(published).toEqual(queued);
    for (const m of published) {
      expect(validateCounts(m).ok).toBe(true);
      expect(m.privacy).toEqual({ min_count: 5, epsilon: 1 });
      for (const r of [m.wifi, m.ble]) if (!r.suppressed) expect(Math.min(r.devices, r.estimate)).toBeGreaterThanOrEqual(5);
    }
    // BLE's 20 devices stay near 20 (the noise has standard deviation 1.4 at epsilon 1).
    for (const m of published.filter((x) => x.complete)) expect(Math.abs(m.ble.devices - 20)).toBeLessThanOrEqual(20);
  });
});

describe('small counts: the accuracy each setting costs (simulate --evaluate)', () => {
  it('k = 0 without noise scores as the evaluation does; noise and k cost accuracy as they should', async () => {
    const { evaluate } = await import('../simulator/evaluate.ts');
    const e = await evaluate({ scenario: 'quiet-night', seed: 1, durationS: 900 });
    const row = (k: number, eps: number | null) => e.privacy.find((r) => r.minCount === k && r.epsilon === eps)!;
    expect(e.privacy.length).toBe(12);
    const plain = row(0, null);
    for (const radio of ['wifi', 'ble'] as const) {
      expect(plain[radio].devicesMape).toBe(e.overall[radio].devicesMape);
      expect(plain[radio].estimateMape).toBe(e.overall[radio].estimateMape);
      expect(plain[radio].peopleMape).toBe(e.overall.people[radio]?.mape ?? null);
      expect(plain[radio].suppressedPct).toBe(0);
      // Strong noise costs more than none; k = 15 on a quiet night suppresses (almost) everything.
      expect(row(0, 0.1)[radio].estimateMape).toBeGreaterThan(plain[radio].estimateMape);
      expect(row(15, null)[radio].suppressedPct).toBeGreaterThan(90);
      expect(row(5, null)[radio].suppressedPct).toBeGreaterThan(0);
    }
  });
});
