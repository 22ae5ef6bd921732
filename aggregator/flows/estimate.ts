// Flows and travel times between two gateways of a corridor group from their noisy sketches
// (issue 13; the sketch is specified in contract/README and test/support/sketch-reference.ts).
// Pure and deterministic: no clock, no I/O, randomness only from a seed given by the caller.
//
// A sketch is an m-bit map in which each matchable device heard in the window set one bit (keyed
// hash, one key per group and epoch), published after randomised response: every bit is replaced by
// a fair coin with probability q (the published, quantised p), so it is the true bit with
// probability 1 - q/2. With f = q/2:
//
// 1. Debiasing. g_i = (bit_i - f) / (1 - 2f) is an unbiased estimate of the true bit i, with
//    variance v + x_i(1 - ...) where v = f(1 - f) / (1 - 2f)^2 at a true 0. Sketches carry
//    independent noise, so a product of g's of different sketches is an unbiased estimate of the
//    product of their true bits: inverting the per-bit response on the joint (a, b) distribution.
// 2. Run starts (double matches). A device heard in k consecutive windows at A and j at B would
//    match k * j times (a pedestrian in reach for three minutes: 9 matches). The estimator works on
//    run starts instead: s_t = g_t * (1 - g_{t-1}) estimates "the bit is set in window t and was
//    not in t - 1". A device whose presence at a gateway is one run of consecutive windows has
//    exactly one run start there, so it matches exactly once, at the lag between the windows where
//    it was first heard at A and first heard at B. The share of a gateway's devices that were also
//    heard in the window before (`repeatShare`) is measured the same way and reported.
// 3. Pair count. C(t, l) = sum_i sA_t,i * sB_t+l,i - (sum sA_t)(sum sB_t+l) / m: the expected chance
//    collisions of unrelated devices on one bit are subtracted (first-order linear counting; the
//    load of a window, tens of devices in m >= 1024 bits, keeps the higher orders negligible).
//    Variance estimate: sum_i (x_i^2 - x_i) with x_i = sA_i sB_i (for a true product t of 0 or 1,
//    E[x^2] = Var x + t and E[x] = t: unbiased for the noise's variance; sum x^2 alone would count
//    every true match as variance and weigh the lags that hold the flow down).
// 4. Directions and lag 0. A -> B devices appear at lags l >= 0, B -> A at l <= 0; both share lag
//    0 (passing both gateways within one window). For a device with travel time tau and a uniform
//    phase in the window, the lag is k = floor(tau / W) with probability 1 - frac and k + 1 with
//    probability frac (frac = tau / W - k). Lag 0 is split between the directions by an EM fit
//    (Richardson-Lucy, started flat) of both directions' travel-time distributions on a grid of W/6
//    to the lag counts pooled over all windows given.
// 5. Travel time. The lag counts fix the mean travel time exactly (E[lag] = E[tau] / W) but not how
//    the mass spreads inside a window: a point at 36 s and a spread over 0-72 s give the same lags,
//    and a lag between two modes (cars' lag 1 and cyclists' lag 1) can belong to either window-sized
//    range. The estimator takes the most concentrated distribution with the observed lags
//    (concentrated: each lag's count goes with the range whose mass it joins): exact for a narrow
//    distribution (vehicles at about one speed), and for a mix of narrow modes it keeps a mode's two
//    lags together (80 % cars at 45 s beside cyclists at 111 s: read 46 s; the least dispersed
//    reading, leastDispersed, used before, read 39 s). The lags cannot tell which mode a shared lag
//    belongs to: it goes with the larger neighbouring lag, which misreads a mix where the slower
//    mode's upper lag outweighs the faster one's lower lag (60 % cars: read in the cyclists'
//    window). A distribution spread over several windows is read as points either way: its median
//    within about 10 %, its 85th percentile too low.
//    Median and 85th percentile come from it.
// 6. Per interval. Both directions' flows of an interval (windows of the origin gateway starting in
//    it) by weighted least squares on the interval's lag sums (weightedFlows): lag l of A -> B is
//    expected to hold N_ab times the direction's lag profile at l, lag 0 holds both directions, and
//    each lag sum weighs with the inverse of its noise variance, so the lags where the profile
//    expects few devices add little of their noise (a plain sum over lags 0..L added all of it).
//    The profiles come from the interval's lag sums plus the pair's history (LagHistory: the lag
//    sums of earlier intervals, decayed; numbers per lag, never a sketch). Cells that cannot be
//    observed (no sketch, another epoch's key) enter through the share of rows that have them.
//    Bounds: +-z standard deviations of the fit's noise and of a Poisson count of the matched
//    devices (which devices were heard, and in which interval their run started). The flow is of matched devices, times the pair's
//    expansion factor when one is given (calibrated against a reference count; see the aggregator
//    README). Travel-time median and 85th percentile per interval from the interval's own lag
//    counts plus the history's profile weighted as one interval (travelPrior); bounds from a
//    parametric bootstrap (cells redrawn with their variance, seeded by the caller).
import { unsafeUniformIntDistribution, xoroshiro128plus, type RandomGenerator } from 'pure-rand';

export interface NoisySketch {
  /** m / 8 bytes, bit i at (bits[i >> 3] >> (i & 7)) & 1. */
  bits: Uint8Array;
  m: number;
  /** The published (quantised) probability that a bit is replaced by a fair coin. */
  p: number;
}

/** Unbiased per-bit estimates of the true bitmap. */
export function debias(s: NoisySketch): Float64Array {
  const f = s.p / 2;
  if (!(f >= 0 && f < 0.5)) throw new Error(`p = ${s.p}: must be in [0, 1)`);
  if (s.bits.length * 8 !== s.m) throw new Error(`sketch has ${s.bits.length} bytes, m = ${s.m} needs ${s.m / 8}`);
  const one = (1 - f) / (1 - 2 * f);
  const zero = -f / (1 - 2 * f);
  const g = new Float64Array(s.m);
  for (let i = 0; i < s.m; i++) g[i] = (s.bits[i >> 3] >> (i & 7)) & 1 ? one : zero;
  return g;
}

/**
 * Run-start estimates: g_t * (1 - g_{t-1}) bit by bit, divided by the share of bits clear in t - 1
 * (a device's run start is visible only when no other device set its bit in the window before);
 * without the previous window, g_t.
 */
export function runStarts(cur: Float64Array, prev: Float64Array | null): Float64Array {
  if (!prev) return cur;
  if (prev.length !== cur.length) throw new Error(`run starts: sketches of ${prev.length} and ${cur.length} bits`);
  let set = 0;
  for (let i = 0; i < prev.length; i++) set += prev[i];
  const k = 1 / Math.max(0.05, 1 - Math.max(0, set / prev.length));
  const s = new Float64Array(cur.length);
  for (let i = 0; i < cur.length; i++) s[i] = cur[i] * (1 - prev[i]) * k;
  return s;
}

export interface Cell {
  count: number;
  variance: number;
}

/** Estimated devices shared by two debiased (or run-start) vectors, chance collisions removed. */
export function matchCount(a: Float64Array, b: Float64Array): Cell {
  if (a.length !== b.length) throw new Error(`match: sketches of ${a.length} and ${b.length} bits`);
  let dot = 0;
  let sa = 0;
  let sb = 0;
  let v = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] * b[i];
    dot += x;
    sa += a[i];
    sb += b[i];
    // x^2 - x: unbiased for the variance of x when the true product is 0 or 1 (E[x^2] = Var + t, E[x] = t, t^2 = t)
    v += x * x - x;
  }
  // A matched device's bit also carries other devices' bits with probability alpha (beta), and the
  // subtraction above takes those away from it too: E[dot - sa * sb / m] = matches (1 - alpha)(1 - beta).
  const m = a.length;
  const k = 1 / (Math.max(0.05, 1 - Math.max(0, sa / m)) * Math.max(0.05, 1 - Math.max(0, sb / m)));
  return { count: (dot - (sa * sb) / m) * k, variance: Math.max(v, 0) * k * k };
}

/** Estimated distinct devices of a debiased vector (linear counting on the debiased zero share). */
export function deviceCount(g: Float64Array): number {
  let ones = 0;
  for (let i = 0; i < g.length; i++) ones += g[i];
  const zeros = Math.min(Math.max(g.length - ones, 0.5), g.length);
  return -g.length * Math.log(zeros / g.length);
}

/** The sketches of one gateway by window index (consecutive windows differ by 1). */
export type WindowSketches = Map<number, NoisySketch & { epoch: number; keyCheck?: string }>;

/**
 * Whether two sketches are under one key: one epoch, and the same key_check where both gave one
 * (a member holding another secret would match nothing: a flow of about 0, written as if measured).
 */
function sameKey(a: { epoch: number; keyCheck?: string }, b: { epoch: number; keyCheck?: string }): boolean {
  return a.epoch === b.epoch && (a.keyCheck === undefined || b.keyCheck === undefined || a.keyCheck === b.keyCheck);
}

/** Lag counts of the ordered pair (from, to): rows by `from`'s window, cells for lags 0..maxLag. */
export interface DirectedLags {
  rows: Map<number, Array<Cell | null>>;
}

export interface PairLags {
  ab: DirectedLags;
  ba: DirectedLags;
  /** Share of each gateway's heard devices that were heard in its window before (double matches without the run starts). */
  repeatShare: { a: number; b: number };
}

function prepared(ws: WindowSketches): Map<number, { g: Float64Array; s: Float64Array; epoch: number; keyCheck?: string }> {
  const out = new Map<number, { g: Float64Array; s: Float64Array; epoch: number; keyCheck?: string }>();
  const keys = [...ws.keys()].sort((x, y) => x - y);
  for (const t of keys) {
    const sk = ws.get(t)!;
    const g = debias(sk);
    const prev = out.get(t - 1);
    // a run started in the previous epoch is not visible: its bits are under another key
    out.set(t, { g, s: runStarts(g, prev && sameKey(prev, sk) ? prev.g : null), epoch: sk.epoch, keyCheck: sk.keyCheck });
  }
  return out;
}

function repeatShare(p: ReturnType<typeof prepared>): number {
  let rep = 0;
  let all = 0;
  for (const [t, x] of p) {
    all += Math.max(deviceCount(x.g), 0);
    const prev = p.get(t - 1);
    if (prev && sameKey(prev, x)) rep += matchCount(x.g, prev.g).count;
  }
  return all > 0 ? Math.max(0, rep) / all : 0;
}

/**
 * All lag counts between two gateways' sketches, for lags 0..maxLag windows in both directions.
 * Pairs of windows in different epochs, or with different key_checks (different keys), are null: not observable.
 */
export function pairLags(a: WindowSketches, b: WindowSketches, maxLag: number, windows?: Iterable<number>): PairLags {
  const pa = prepared(a);
  const pb = prepared(b);
  const dir = (x: typeof pa, y: typeof pb): DirectedLags => {
    const rows = new Map<number, Array<Cell | null>>();
    for (const t of windows ?? x.keys()) {
      const from = x.get(t);
      if (!from) continue;
      const row: Array<Cell | null> = [];
      for (let l = 0; l <= maxLag; l++) {
        const to = y.get(t + l);
        row.push(to && sameKey(to, from) ? matchCount(from.s, to.s) : null);
      }
      rows.set(t, row);
    }
    return { rows };
  };
  return { ab: dir(pa, pb), ba: dir(pb, pa), repeatShare: { a: repeatShare(pa), b: repeatShare(pb) } };
}

// ---- travel-time fit ----

/** Grid cells per window for the travel-time fit. */
export const GRID_PER_WINDOW = 6;

interface Fit {
  ab: Float64Array;
  ba: Float64Array;
}

/** Lag distribution of a travel time tau (in windows): [lag, probability] pairs. */
function kernel(tauW: number): [number, number, number] {
  const k = Math.floor(tauW);
  return [k, 1 - (tauW - k), tauW - k];
}

/**
 * EM for the two directions' travel-time weights on the grid, given lag sums yAb[l], yBa[l]
 * (l = 1..L; index 0 unused) and the shared lag 0 sum y0. Negative sums count as 0.
 */
function em(yAb: Float64Array, yBa: Float64Array, y0: number, L: number, start: Fit | null, iterations: number): Fit {
  const J = L * GRID_PER_WINDOW;
  const ab = new Float64Array(J);
  const ba = new Float64Array(J);
  const pos = (x: number) => Math.max(x, 0);
  const total = pos(y0) + yAb.reduce((s, x) => s + pos(x), 0) + yBa.reduce((s, x) => s + pos(x), 0);
  if (start) {
    ab.set(start.ab);
    ba.set(start.ba);
  } else {
    ab.fill(total / (2 * J) || 1e-9);
    ba.fill(total / (2 * J) || 1e-9);
  }
  if (total <= 0) return { ab: new Float64Array(J), ba: new Float64Array(J) };
  // make sure no cell is stuck at exactly 0 (EM is multiplicative)
  for (let j = 0; j < J; j++) {
    ab[j] = Math.max(ab[j], 1e-6 * (total / J));
    ba[j] = Math.max(ba[j], 1e-6 * (total / J));
  }
  const kern = Array.from({ length: J }, (_, j) => kernel((j + 0.5) / GRID_PER_WINDOW));
  const muAb = new Float64Array(L + 2);
  const muBa = new Float64Array(L + 2);
  for (let it = 0; it < iterations; it++) {
    muAb.fill(0);
    muBa.fill(0);
    for (let j = 0; j < J; j++) {
      const [k, p0, p1] = kern[j];
      muAb[k] += ab[j] * p0;
      muAb[k + 1] += ab[j] * p1;
      muBa[k] += ba[j] * p0;
      muBa[k + 1] += ba[j] * p1;
    }
    const mu0 = muAb[0] + muBa[0];
    const ratio = (y: number, mu: number) => (mu > 0 ? pos(y) / mu : 0);
    const r0 = ratio(y0, mu0);
    for (let j = 0; j < J; j++) {
      const [k, p0, p1] = kern[j];
      const rA0 = k === 0 ? r0 : ratio(yAb[k], muAb[k]);
      const rA1 = k + 1 <= L ? ratio(yAb[k + 1], muAb[k + 1]) : 0;
      const rB0 = k === 0 ? r0 : ratio(yBa[k], muBa[k]);
      const rB1 = k + 1 <= L ? ratio(yBa[k + 1], muBa[k + 1]) : 0;
      const norm = p0 + (k + 1 <= L ? p1 : 0);
      ab[j] *= norm > 0 ? (p0 * rA0 + p1 * rA1) / norm : 0;
      ba[j] *= norm > 0 ? (p0 * rB0 + p1 * rB1) / norm : 0;
    }
  }
  return { ab, ba };
}

/** Share of the lag 0 count that belongs to each direction under a fit. */
function lagZeroShare(fit: Fit): { ab: number; ba: number } {
  let a = 0;
  let b = 0;
  for (let j = 0; j < fit.ab.length; j++) {
    const [k, p0] = kernel((j + 0.5) / GRID_PER_WINDOW);
    if (k !== 0) continue;
    a += fit.ab[j] * p0;
    b += fit.ba[j] * p0;
  }
  return a + b > 0 ? { ab: a / (a + b), ba: b / (a + b) } : { ab: 0.5, ba: 0.5 };
}

/**
 * The least dispersed travel-time distribution with the lag distribution y (lags 0..L of one
 * direction; negative counts as 0), as point masses [tau in windows, mass]. Mass in window interval
 * [k, k + 1) reaches lags k and k + 1 linearly in tau, so within an interval a point at the mean is
 * exactly as likely as any spread: the data cannot tell them apart. Of all distributions with this
 * lag distribution this one has the least variance (minimum E[tau^2] at the fixed mean): each lag's
 * count is split between the interval below and the one above it, the split chosen by dynamic
 * programming on a grid of `steps` levels. Vehicles at about one speed make a narrow travel-time
 * distribution, so this suits them better than a fit spreading the mass over the window.
 */
export function leastDispersed(y: ArrayLike<number>, steps = 24): Array<[number, number]> {
  return splitLags(y, steps, (k, u, v) => (u + v > 0 ? (k * (u + v) + v) ** 2 / (u + v) : 0));
}

/**
 * The most concentrated travel-time distribution with the lag distribution y: each lag's count is
 * split between the window-sized range below and the one above it so that the mass gathers in as few
 * ranges as possible (the sum of the ranges' squared masses is largest). A narrow mode (vehicles at
 * about one speed) fills lags k and k + 1 of one range; the least dispersed reading moves part of a
 * mix's shared lag to the next range, and reads the first mode early (80 % cars at 45 s beside
 * cyclists at 111 s: 39 s); this one gives a shared lag to the range of the larger neighbouring
 * lag (46 s), and misreads a mix where that is the slower mode's (60 % cars: over 60 s).
 */
export function concentrated(y: ArrayLike<number>, steps = 24): Array<[number, number]> {
  return splitLags(y, steps, (_k, u, v) => -((u + v) ** 2));
}

function splitLags(y: ArrayLike<number>, steps: number, cost: (k: number, u: number, v: number) => number): Array<[number, number]> {
  const L = y.length - 1;
  const P = Array.from({ length: L + 1 }, (_, l) => Math.max(0, y[l]));
  if (!P.some((x) => x > 0)) return [];
  // a[l] = share of P_l given to interval l (its lower lag); the rest goes to interval l - 1
  const level = (l: number, i: number) => (l === 0 ? P[0] : (P[l] * i) / steps);
  const S = steps + 1;
  let best = new Float64Array(S).fill(Infinity);
  const back: Int32Array[] = [];
  best[0] = 0; // lag 0: all of it to interval 0 (level index irrelevant)
  const firstLevels = 1;
  for (let l = 1; l <= L; l++) {
    const next = new Float64Array(S).fill(Infinity);
    const from = new Int32Array(S);
    for (let i = 0; i < S; i++) {
      const a = level(l, i);
      const v = P[l] - a; // to interval l - 1
      for (let j = 0; j < (l === 1 ? firstLevels : S); j++) {
        if (!Number.isFinite(best[j])) continue;
        const c = best[j] + cost(l - 1, level(l - 1, j), v);
        if (c < next[i]) {
          next[i] = c;
          from[i] = j;
        }
      }
    }
    back.push(from);
    best = next;
  }
  let bi = 0;
  let bc = Infinity;
  for (let i = 0; i < S; i++) {
    const c = best[i] + cost(L, level(L, i), 0);
    if (c < bc) {
      bc = c;
      bi = i;
    }
  }
  // walk back: the level chosen at every lag
  const choice = new Array<number>(L + 1).fill(0);
  choice[L] = bi;
  for (let l = L; l >= 1; l--) choice[l - 1] = back[l - 1][choice[l]];
  const points: Array<[number, number]> = [];
  for (let k = 0; k <= L; k++) {
    const u = level(k, choice[k]);
    const v = k < L ? P[k + 1] - level(k + 1, choice[k + 1]) : 0;
    if (u + v > 0) points.push([k + v / (u + v), u + v]);
  }
  return points;
}

/** Quantile q of point masses sorted by tau; null without mass. */
export function pointQuantile(points: Array<[number, number]>, q: number): number | null {
  const total = points.reduce((s, [, w]) => s + w, 0);
  if (!(total > 0)) return null;
  let acc = 0;
  for (const [tau, w] of points) {
    acc += w;
    if (acc >= q * total - 1e-12) return tau;
  }
  return points[points.length - 1][0];
}

// ---- per interval ----

export interface FlowEstimate {
  /** First window (of the origin gateway) of the interval. */
  firstWindow: number;
  windows: number;
  count: number;
  countLow: number;
  countHigh: number;
  /** Travel times (s): null when the interval's flow is not above 0 at the bounds' level (countLow 0):
   *  the lag counts are then noise, and a time read from them would be one of nothing. */
  travelMedianS: number | null;
  travelMedianLowS: number | null;
  travelMedianHighS: number | null;
  travelP85S: number | null;
  travelP85LowS: number | null;
  travelP85HighS: number | null;
}

export interface FlowOptions {
  windowS: number;
  maxLag: number;
  /** Windows per interval (5-min intervals of 60-s windows: 5). */
  intervalWindows: number;
  /** Bootstrap replicates for the travel-time bounds (0: no bounds). */
  bootstrap?: number;
  seed?: number;
  /** Confidence z for the bounds (1.96: 95 %). */
  z?: number;
  emIterations?: number;
  /**
   * The pair's lag counts of earlier intervals (LagHistory.sums; aggregates only, never a sketch):
   * with them the lag profile of each direction and the split of lag 0 are fitted on far more
   * devices than one interval holds. Without: on the lag counts given alone.
   */
  history?: LagSums | null;
  /**
   * Expansion factor per direction: matched devices times this is the flow reported (count and its
   * bounds). 1 (default): the flow of matched devices. See estimatePairFlows.
   */
  expansion?: { ab: number; ba: number };
  /** Weight of the history's lag profile in an interval's travel times, in intervals (default 1; 0: the interval's own counts only). */
  travelPrior?: number;
}

/** Lag sums of both directions (ab[0] and ba[0] are the same lag-0 sum). */
export interface LagSums {
  ab: Float64Array;
  ba: Float64Array;
}

export interface PairFlows {
  ab: FlowEstimate[];
  ba: FlowEstimate[];
  pooled: { abMedianS: number | null; baMedianS: number | null; lagZeroShareAb: number };
  repeatShare: { a: number; b: number };
  /** This call's lag sums (all rows given), to fold into the pair's history. */
  sums: LagSums;
}

function sums(d: DirectedLags, ts: Iterable<number>, L: number): { y: Float64Array; v: Float64Array; rows: Float64Array } {
  const y = new Float64Array(L + 1);
  const v = new Float64Array(L + 1);
  // rows in which lag l could be observed (both sketches there, one epoch)
  const rows = new Float64Array(L + 1);
  for (const t of ts) {
    const row = d.rows.get(t);
    if (!row) continue;
    for (let l = 0; l <= L; l++) {
      const c = row[l];
      if (!c) continue;
      y[l] += c.count;
      v[l] += c.variance;
      rows[l]++;
    }
  }
  return { y, v, rows };
}

/** The lag sums of both directions over all rows of pairLags (what estimatePairFlows returns as `sums`). */
export function lagSums(lags: PairLags, L: number): LagSums {
  return { ab: sums(lags.ab, lags.ab.rows.keys(), L).y, ba: sums(lags.ba, lags.ba.rows.keys(), L).y };
}

/**
 * The lag counts of a pair's past intervals, decayed: after each interval the sums are multiplied
 * by `decay` and the interval's sums added (0.9 per 5-min interval: a half-life of about half an
 * hour). Numbers of device pairs per lag only, never a sketch or a bit.
 */
export class LagHistory {
  private readonly ab: Float64Array;
  private readonly ba: Float64Array;
  private used = false;
  /** The sums before the last add and the interval it was for (one step of undo, for a take-over). */
  private before: { ab: Float64Array; ba: Float64Array; used: boolean; first: number } | null = null;
  constructor(
    readonly maxLag: number,
    private readonly decay = 0.9,
  ) {
    this.ab = new Float64Array(maxLag + 1);
    this.ba = new Float64Array(maxLag + 1);
  }
  get sums(): LagSums | null {
    return this.used ? { ab: this.ab, ba: this.ba } : null;
  }
  /** Folds in the sums of the interval starting at window `first`. */
  add(s: LagSums, first = Number.NaN): void {
    this.before = { ab: Float64Array.from(this.ab), ba: Float64Array.from(this.ba), used: this.used, first };
    for (let l = 0; l <= this.maxLag; l++) {
      this.ab[l] = this.ab[l] * this.decay + (s.ab[l] ?? 0);
      this.ba[l] = this.ba[l] * this.decay + (s.ba[l] ?? 0);
    }
    this.used = true;
  }
  /** Takes back the last add if it was for the interval at window `first` or later (it is to be computed again). */
  undoFrom(first: number): void {
    const b = this.before;
    if (!b || !(b.first >= first)) return;
    this.ab.set(b.ab);
    this.ba.set(b.ba);
    this.used = b.used;
    this.before = null;
  }
}

function normal(rng: RandomGenerator): number {
  // Box-Muller from two 31-bit uniforms
  const u1 = (unsafeUniformIntDistribution(1, 0x7fffffff, rng) + 0.5) / 0x80000000;
  const u2 = unsafeUniformIntDistribution(0, 0x7fffffff, rng) / 0x80000000;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

function percentile(xs: number[], q: number): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((x, y) => x - y);
  const i = Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))));
  return s[i];
}

/**
 * Both directions' flows of one interval by weighted least squares on its lag sums: lag l of
 * A -> B has expectation N_ab * a_l * pi_ab[l] (a_l: share of the interval's rows in which lag l
 * was observable), B -> A likewise, and lag 0 is shared: N_ab a_0 pi_ab[0] + N_ba a_0 pi_ba[0].
 * Each lag sum is weighted by the inverse of its variance, so lags where the profile expects few
 * devices add little of their noise (a plain sum over lags 0..L adds every lag's noise at full
 * weight). Returns the two flows and their covariance.
 */
function weightedFlows(
  ab: { y: Float64Array; v: Float64Array; rows: Float64Array },
  ba: { y: Float64Array; v: Float64Array; rows: Float64Array },
  pi: { ab: Float64Array; ba: Float64Array },
  windows: number,
): { nab: number; nba: number; vab: number; vba: number } {
  const L = ab.y.length - 1;
  let sxx = 0;
  let szz = 0;
  let sxy = 0;
  let szy = 0;
  let sxz = 0;
  // no lag sum is trusted to better than half a device (noise-free sketches would give 0 variance)
  const floor = (v: number) => Math.max(v, 0.25);
  for (let l = 1; l <= L; l++) {
    const x = (ab.rows[l] / windows) * pi.ab[l];
    const z = (ba.rows[l] / windows) * pi.ba[l];
    if (ab.rows[l] > 0) {
      sxx += (x * x) / floor(ab.v[l]);
      sxy += (x * ab.y[l]) / floor(ab.v[l]);
    }
    if (ba.rows[l] > 0) {
      szz += (z * z) / floor(ba.v[l]);
      szy += (z * ba.y[l]) / floor(ba.v[l]);
    }
  }
  // lag 0: rows of A's windows and B's windows are the same windows here; use A's
  const a0 = Math.max(ab.rows[0], ba.rows[0]) / windows;
  if (a0 > 0) {
    const v0 = floor(Math.max(ab.v[0], ba.v[0]));
    const y0 = ab.rows[0] >= ba.rows[0] ? ab.y[0] : ba.y[0];
    const x0 = a0 * pi.ab[0];
    const z0 = a0 * pi.ba[0];
    sxx += (x0 * x0) / v0;
    szz += (z0 * z0) / v0;
    sxz += (x0 * z0) / v0;
    sxy += (x0 * y0) / v0;
    szy += (z0 * y0) / v0;
  }
  const det = sxx * szz - sxz * sxz;
  if (!(det > 1e-18)) {
    // one direction without a profile: fit the other alone
    return {
      nab: sxx > 0 ? sxy / sxx : 0,
      nba: szz > 0 ? szy / szz : 0,
      vab: sxx > 0 ? 1 / sxx : 0,
      vba: szz > 0 ? 1 / szz : 0,
    };
  }
  return {
    nab: (szz * sxy - sxz * szy) / det,
    nba: (sxx * szy - sxz * sxy) / det,
    vab: szz / det,
    vba: sxx / det,
  };
}

/**
 * Flows and travel times in both directions of one pair, per interval of `intervalWindows` windows
 * (interval k holds the origin windows firstWindow..firstWindow + intervalWindows - 1 where
 * firstWindow is a multiple of intervalWindows), from the lag counts of pairLags.
 */
export function estimatePairFlows(lags: PairLags, o: FlowOptions): PairFlows {
  const L = o.maxLag;
  const z = o.z ?? 1.96;
  const iters = o.emIterations ?? 3000;
  const all = (d: DirectedLags) => sums(d, d.rows.keys(), L);
  const pAb = all(lags.ab);
  const pBa = all(lags.ba);
  // the profiles: this call's lag sums plus the pair's history (lag 0 is the same product in both
  // directions: take it once)
  const h = o.history;
  const yAb = Float64Array.from(pAb.y, (y, l) => y + (h ? h.ab[l] : 0));
  const yBa = Float64Array.from(pBa.y, (y, l) => y + (h ? h.ba[l] : 0));
  const pooled = em(yAb, yBa, yAb[0], L, null, iters);
  const share = lagZeroShare(pooled);
  // Lag profiles for the weighting: the lag sums themselves, not clipped at 0 (clipping would give
  // the empty lags the positive part of their noise as mass, and the flows would be read too high);
  // lag 0 split by the EM fit's share
  const profile = (y: Float64Array, sh: number) => {
    const pr = Float64Array.from(y);
    pr[0] = y[0] * sh;
    const total = pr.reduce((a, b) => a + b, 0);
    return total > 0 ? pr.map((x) => x / total) : new Float64Array(L + 1);
  };
  const pi = { ab: profile(yAb, share.ab), ba: profile(yBa, share.ba) };
  const rng = xoroshiro128plus(o.seed ?? 1);
  const expansion = o.expansion ?? { ab: 1, ba: 1 };

  const firsts = new Set<number>();
  for (const d of [lags.ab, lags.ba]) for (const t of d.rows.keys()) firsts.add(Math.floor(t / o.intervalWindows) * o.intervalWindows);
  const intervals = [...firsts].sort((x, y) => x - y);
  const out: { ab: FlowEstimate[]; ba: FlowEstimate[] } = { ab: [], ba: [] };
  for (const first of intervals) {
    const ts = Array.from({ length: o.intervalWindows }, (_, i) => first + i);
    const own = { ab: sums(lags.ab, ts, L), ba: sums(lags.ba, ts, L) };
    const f = weightedFlows(own.ab, own.ba, pi, o.intervalWindows);
    for (const dir of ['ab', 'ba'] as const) {
      const d = lags[dir];
      const windows = ts.filter((t) => d.rows.has(t)).length;
      if (!windows) continue;
      const k = expansion[dir];
      const count = (dir === 'ab' ? f.nab : f.nba) * k;
      // the bounds: the randomised response's noise (the fit's variance) and the variation of which
      // devices were heard and in which interval their run started, taken as Poisson (the matched count)
      const matched = dir === 'ab' ? f.nab : f.nba;
      const sd = Math.sqrt((dir === 'ab' ? f.vab : f.vba) + Math.max(matched, 0)) * k;
      const sh = share[dir];
      // travel times: the most concentrated distribution with this interval's lag counts (lag 0: the direction's share)
      const y = own[dir];
      const travel = (yy0: Float64Array) => {
        const yy = Float64Array.from(yy0);
        yy[0] *= sh;
        const pts = concentrated(yy);
        return [pointQuantile(pts, 0.5), pointQuantile(pts, 0.85)];
      };
      // with a history: its lag profile, weighted as `travelPrior` intervals of this size, is added
      // to the interval's own lag counts (a shrinkage towards the recent profile; one interval's
      // counts alone flip the median between modes on their noise)
      const prior = (h ? (o.travelPrior ?? 1) : 0) * Math.max(0, dir === 'ab' ? f.nab : f.nba);
      const yt = Float64Array.from(y.y, (v, l) => v + prior * (l === 0 ? pi[dir][0] / sh : pi[dir][l]));
      const countLow = Math.max(0, count - z * sd);
      // no flow told apart from none: no travel time either (the lag counts are the sketches' noise,
      // as between gateways of different groups' secrets, and would still give one)
      const timed = countLow > 0;
      const [med, p85] = travel(yt);
      const meds: number[] = [];
      const p85s: number[] = [];
      // (run whether timed or not: the replicates of the next intervals draw the same numbers)
      for (let r = 0; r < (o.bootstrap ?? 40); r++) {
        const [a, b] = travel(yt.map((v, l) => v + Math.sqrt(y.v[l]) * normal(rng)));
        if (a !== null) meds.push(a);
        if (b !== null) p85s.push(b);
      }
      const s = (x: number | null) => (x === null || !timed ? null : x * o.windowS);
      const lo = (z === 1.96 ? 0.025 : 0.16) as number;
      out[dir].push({
        firstWindow: first,
        windows,
        count,
        countLow,
        countHigh: Math.max(0, count + z * sd),
        travelMedianS: s(med),
        travelMedianLowS: s(percentile(meds, lo)),
        travelMedianHighS: s(percentile(meds, 1 - lo)),
        travelP85S: s(p85),
        travelP85LowS: s(percentile(p85s, lo)),
        travelP85HighS: s(percentile(p85s, 1 - lo)),
      });
    }
  }
  const med = (y: Float64Array, sh: number) => {
    const yy = Float64Array.from(y);
    yy[0] *= sh;
    const q = pointQuantile(concentrated(yy), 0.5);
    return q === null ? null : q * o.windowS;
  };
  return {
    ab: out.ab,
    ba: out.ba,
    pooled: { abMedianS: med(pAb.y, share.ab), baMedianS: med(pBa.y, share.ba), lagZeroShareAb: share.ab },
    repeatShare: lags.repeatShare,
    sums: { ab: pAb.y, ba: pBa.y },
  };
}
