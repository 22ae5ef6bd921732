// The flow estimator (aggregator/flows/estimate.ts) on sketches made by the reference sketch
// (test/support/sketch-reference.ts) from devices with known passing times.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  debias,
  estimatePairFlows,
  LagHistory,
  concentrated,
  leastDispersed,
  matchCount,
  pairLags,
  pointQuantile,
  runStarts,
  type WindowSketches,
} from '../aggregator/flows/estimate.ts';
import { noisySketch, trueSketch } from './support/sketch-reference.ts';

/** Deterministic bytes (a test needs reproducible noise; the gateway draws them from the CSPRNG). */
function bytes(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0, c = 0; i < n; c++) {
    const h = createHash('sha256').update(`${label}/${c}`).digest();
    out.set(h.subarray(0, Math.min(32, n - i)), i);
    i += 32;
  }
  return out;
}

const KEY = bytes('key', 32);
const W = 60;

interface Dev {
  address: Uint8Array;
  /** Windows heard at A and at B. */
  a: number[];
  b: number[];
}

function sketches(devs: Dev[], which: 'a' | 'b', windows: number, m: number, p: number, label: string): WindowSketches {
  const out: WindowSketches = new Map();
  for (let t = 0; t < windows; t++) {
    const heard = devs.filter((d) => d[which].includes(t)).map((d) => ({ radio: 'ble' as const, address: d.address }));
    out.set(t, { bits: noisySketch(KEY, heard, m, p, bytes(`${label}/${which}/${t}`, m * 4)), m, p, epoch: 0 });
  }
  return out;
}

describe('flow estimator', () => {
  it('debiases the randomised response: the mean of g over many sketches is the true bit', () => {
    const m = 64;
    const truth = trueSketch(KEY, [{ radio: 'wifi', address: '00:11:22:33:44:55' }], m);
    const acc = new Float64Array(m);
    const n = 4000;
    for (let r = 0; r < n; r++) {
      const g = debias({ bits: noisySketch(KEY, [{ radio: 'wifi', address: '00:11:22:33:44:55' }], m, 0.4, bytes(`d${r}`, m * 4)), m, p: 0.4 });
      for (let i = 0; i < m; i++) acc[i] += g[i];
    }
    for (let i = 0; i < m; i++) expect(acc[i] / n).toBeCloseTo((truth[i >> 3] >> (i & 7)) & 1, 1);
    expect(() => debias({ bits: new Uint8Array(4), m: 64, p: 0.1 })).toThrow(/m = 64 needs 8/);
  });

  it('counts a device heard in two consecutive windows at each gateway once (run starts), not four times', () => {
    const m = 1 << 16;
    const devs: Dev[] = Array.from({ length: 40 }, (_, i) => ({ address: bytes(`dev${i}`, 6), a: [2, 3], b: [4, 5] }));
    const A = sketches(devs, 'a', 10, m, 0, 'x');
    const B = sketches(devs, 'b', 10, m, 0, 'x');
    const gA = (t: number) => debias(A.get(t)!);
    const gB = (t: number) => debias(B.get(t)!);
    // plain window products see every device 4 times
    let plain = 0;
    for (const t of [2, 3]) for (const u of [4, 5]) plain += matchCount(gA(t), gB(u)).count;
    expect(plain).toBeCloseTo(160, 0);
    const lags = pairLags(A, B, 4);
    expect(lags.ab.rows.get(2)![2]!.count).toBeCloseTo(40, 0);
    expect(lags.ab.rows.get(3)![1]!.count).toBeCloseTo(0, 0);
    expect(lags.repeatShare.a).toBeCloseTo(0.5, 1); // every device heard twice: half the window-devices are repeats
    expect(runStarts(gA(3), gA(2)).reduce((s, x) => s + x, 0)).toBeCloseTo(0, 6);
  });

  it('recovers a narrow travel time inside one window (least dispersed), and a two-mode mix', () => {
    // 36 s in 60-s windows: lag 0 w.p. 0.4, lag 1 w.p. 0.6
    expect(pointQuantile(leastDispersed([40, 60, 0, 0]), 0.5)! * W).toBeCloseTo(36, 6);
    // 70 % at 36 s, 30 % at 111 s (lags 1, 2 with 0.15, 0.85)
    const y = [0.7 * 0.4, 0.7 * 0.6 + 0.3 * 0.15, 0.3 * 0.85, 0, 0];
    const pts = leastDispersed(y);
    // the least dispersed reading of this mix puts its median at 28 s: within half a window, not exact
    expect(pointQuantile(pts, 0.5)! * W).toBeGreaterThan(25);
    expect(pointQuantile(pts, 0.5)! * W).toBeLessThan(45);
    expect(pointQuantile(pts, 0.85)! * W).toBeGreaterThan(90);
    expect(leastDispersed([0, -3, 0])).toEqual([]);
  });

  it("reads a mix of narrow modes with each mode's lags together (most concentrated), and where that fails", () => {
    expect(pointQuantile(concentrated([40, 60, 0, 0]), 0.5)! * W).toBeCloseTo(36, 6);
    // 80 % cars at 45 s (lags 0, 1 with 0.25, 0.75), 20 % cyclists at 111 s (lags 1, 2 with 0.15, 0.85)
    const mix = (cars: number) => [cars * 0.25, cars * 0.75 + (1 - cars) * 0.15, (1 - cars) * 0.85, 0, 0];
    const y = mix(0.8);
    expect(Math.abs(pointQuantile(concentrated(y), 0.5)! * W - 45)).toBeLessThan(1.5); // 45.8: lag 1 stays with the cars
    expect(pointQuantile(leastDispersed(y), 0.5)! * W).toBeLessThan(41); // the reading used before: the cars early
    expect(pointQuantile(concentrated(y), 0.85)! * W).toBeGreaterThan(90);
    // the limit: with 60 % cars the cyclists' lag 2 outweighs the cars' lag 0, the shared lag 1 goes
    // to the cyclists and the median is read in their window (README: "How a flow is estimated")
    expect(pointQuantile(concentrated(mix(0.6)), 0.5)! * W).toBeGreaterThan(60);
    expect(concentrated([0, -3, 0])).toEqual([]);
  });

  it('estimates flow per interval and travel median from noisy sketches, truth within the bounds', () => {
    const m = 2048;
    const p = 0.05;
    const windows = 40;
    const devs: Dev[] = [];
    const truth = new Map<number, { n: number; travel: number[] }>();
    let k = 0;
    for (let t = 0; t < windows - 8; t++) {
      for (let i = 0; i < 12; i++, k++) {
        const phase = ((k * 37) % 60) + 0.5;
        const tau = k % 5 === 0 ? 100 + (k % 20) : 30 + (k % 10);
        const ta = t * W + phase;
        const tb = ta + tau;
        const ab = i % 2 === 0;
        const [x, y] = ab ? [ta, tb] : [tb, ta];
        const win = (s: number) => [Math.floor(s / W), ...(k % 3 === 0 ? [Math.floor(s / W) + 1] : [])];
        devs.push({ address: bytes(`car${k}`, 6), a: win(x), b: win(y) });
        if (ab) {
          const iv = Math.floor(Math.floor(ta / W) / 5) * 5;
          const acc = truth.get(iv) ?? { n: 0, travel: [] };
          acc.n++;
          acc.travel.push(tau);
          truth.set(iv, acc);
        }
      }
      // devices heard at one gateway only
      for (let i = 0; i < 30; i++, k++) devs.push({ address: bytes(`other${k}`, 6), a: i % 2 ? [t] : [], b: i % 2 ? [] : [t] });
    }
    const A = sketches(devs, 'a', windows, m, p, 'n');
    const B = sketches(devs, 'b', windows, m, p, 'n');
    const f = estimatePairFlows(pairLags(A, B, 6), { windowS: W, maxLag: 6, intervalWindows: 5, seed: 3 });
    let inside = 0;
    let scored = 0;
    let err = 0;
    for (const e of f.ab) {
      const t = truth.get(e.firstWindow);
      if (!t || e.firstWindow + 4 > windows - 8 - 1) continue;
      scored++;
      if (t.n >= e.countLow && t.n <= e.countHigh) inside++;
      err += Math.abs(e.count - t.n) / t.n;
      expect(e.countLow).toBeLessThanOrEqual(e.count);
      expect(e.countHigh).toBeGreaterThanOrEqual(e.count);
      expect(e.travelMedianLowS!).toBeLessThanOrEqual(e.travelMedianHighS!);
    }
    expect(scored).toBeGreaterThanOrEqual(5);
    expect(inside / scored).toBeGreaterThanOrEqual(0.6);
    expect(err / scored).toBeLessThan(0.3);
    // pooled travel median: 80 % of the devices at 30-39 s, 20 % at 100-119 s
    expect(f.pooled.abMedianS!).toBeGreaterThan(25);
    expect(f.pooled.abMedianS!).toBeLessThan(50);
  });

  it('gives no travel time to an interval whose flow is not above 0: gateways keyed with two different secrets', () => {
    // The devices of the test above pass both gateways, but B places its bits under another group
    // secret's key (a gateway given the secret of another presence corridor init): the lag counts are
    // the sketches' noise. Before, each interval still got a travel median of some minutes.
    const m = 2048;
    const p = 0.05;
    const windows = 40;
    const OTHER = bytes('other key', 32);
    const devs: Dev[] = [];
    for (let k = 0; k < 12 * (windows - 8); k++) {
      const t = Math.floor(k / 12);
      devs.push({ address: bytes(`car${k}`, 6), a: [t], b: [t + (k % 3)] });
    }
    const A = sketches(devs, 'a', windows, m, p, 'w');
    const B: WindowSketches = new Map();
    for (let t = 0; t < windows; t++) {
      const heard = devs.filter((d) => d.b.includes(t)).map((d) => ({ radio: 'ble' as const, address: d.address }));
      B.set(t, { bits: noisySketch(OTHER, heard, m, p, bytes(`w/b/${t}`, m * 4)), m, p, epoch: 0 });
    }
    const f = estimatePairFlows(pairLags(A, B, 6), { windowS: W, maxLag: 6, intervalWindows: 5, seed: 3 });
    const all = [...f.ab, ...f.ba];
    expect(all.length).toBeGreaterThanOrEqual(14);
    for (const e of all) {
      expect(e.countLow, `interval ${e.firstWindow}`).toBe(0);
      expect([e.travelMedianS, e.travelMedianLowS, e.travelMedianHighS, e.travelP85S, e.travelP85LowS, e.travelP85HighS]).toEqual([
        null,
        null,
        null,
        null,
        null,
        null,
      ]);
    }
    // the same devices under one key: the flow is found and timed
    const same = estimatePairFlows(pairLags(A, sketches(devs, 'b', windows, m, p, 'w'), 6), { windowS: W, maxLag: 6, intervalWindows: 5, seed: 3 });
    expect(same.ab.filter((e) => e.countLow > 0 && e.travelMedianS !== null).length).toBeGreaterThanOrEqual(5);
  });

  it('keeps a decayed history of lag sums (numbers per lag only), and the weighted fit stays unbiased with it', () => {
    const h = new LagHistory(3, 0.5);
    expect(h.sums).toBeNull();
    h.add({ ab: Float64Array.from([4, 8, 0, 0]), ba: Float64Array.from([4, 2, 0, 0]) });
    h.add({ ab: Float64Array.from([2, 2, 2, 2]), ba: Float64Array.from([2, 0, 0, 0]) });
    expect([...h.sums!.ab]).toEqual([4, 6, 2, 2]);
    expect([...h.sums!.ba]).toEqual([4, 1, 0, 0]);
    // 30 devices A -> B per 5-window interval at lag 1, none back: with a history of the same
    // profile the flow per interval is the 30 (noise-free sketches)
    const m = 1 << 14;
    const devs: Dev[] = [];
    for (let t = 0; t < 20; t++) for (let i = 0; i < 6; i++) devs.push({ address: bytes(`h${t}/${i}`, 6), a: [t], b: [t + 1] });
    const A = sketches(devs, 'a', 22, m, 0, 'h');
    const B = sketches(devs, 'b', 22, m, 0, 'h');
    const lags = pairLags(A, B, 3, [5, 6, 7, 8, 9]);
    const history = new LagHistory(3);
    history.add({ ab: Float64Array.from([0, 300, 0, 0]), ba: Float64Array.from([0, 0, 0, 0]) });
    const f = estimatePairFlows(lags, { windowS: W, maxLag: 3, intervalWindows: 5, history: history.sums, expansion: { ab: 2, ba: 1 } });
    expect(f.ab[0].count).toBeCloseTo(60, 0); // 30 matched x 2
    expect(f.ba[0].count).toBeCloseTo(0, 0);
    expect([...f.sums.ab].map((x) => Math.round(x) + 0)).toEqual([0, 30, 0, 0]);
  });
});
