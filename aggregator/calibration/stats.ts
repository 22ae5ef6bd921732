// Small numeric helpers for calibration: least squares, correlation, quantiles and a seeded
// generator for the bootstrap (pure-rand), so a fit is reproducible byte for byte.
import { xoroshiro128plus, type RandomGenerator } from 'pure-rand';

/** The least of xs (Infinity for none). A loop: Math.min(...xs) throws RangeError past ~100,000 values. */
export function min(xs: ArrayLike<number>): number {
  let m = Infinity;
  for (let i = 0; i < xs.length; i++) if (xs[i] < m) m = xs[i];
  return m;
}

/** The largest of xs (-Infinity for none). A loop: Math.max(...xs) throws RangeError past ~100,000 values. */
export function max(xs: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < xs.length; i++) if (xs[i] > m) m = xs[i];
  return m;
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : NaN;
}

export function sd(xs: ArrayLike<number>): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i] - m) ** 2;
  return Math.sqrt(s / (xs.length - 1));
}

/** Pearson correlation; NaN when either side has no spread. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (n < 2) return NaN;
  const mx = mean(x);
  const my = mean(y);
  let sxy = 0,
    sxx = 0,
    syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : NaN;
}

/** y = a + c x by ordinary least squares; null when x has no spread. */
export function ols(x: ArrayLike<number>, y: ArrayLike<number>): { a: number; c: number; residualSd: number } | null {
  const n = x.length;
  if (n < 2) return null;
  const mx = mean(x);
  const my = mean(y);
  let sxy = 0,
    sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
  }
  if (!(sxx > 1e-12)) return null;
  const c = sxy / sxx;
  const a = my - c * mx;
  let rss = 0;
  for (let i = 0; i < n; i++) rss += (y[i] - a - c * x[i]) ** 2;
  return { a, c, residualSd: Math.sqrt(rss / Math.max(1, n - 2)) };
}

/** y = a + c x + q x^2 by least squares (x centred and scaled for conditioning); null when singular. */
export function quadratic(x: ArrayLike<number>, y: ArrayLike<number>): { q: number; predict(x: number): number } | null {
  const n = x.length;
  if (n < 4) return null;
  const mx = mean(x);
  const s = sd(x) || 1;
  // Normal equations on u = (x - mx) / s: [1 u u^2]
  const m = [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ];
  const v = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const u = (x[i] - mx) / s;
    const r = [1, u, u * u];
    for (let j = 0; j < 3; j++) {
      v[j] += r[j] * y[i];
      for (let k = 0; k < 3; k++) m[j][k] += r[j] * r[k];
    }
  }
  const beta = solve3(m, v);
  if (!beta) return null;
  const [b0, b1, b2] = beta;
  return {
    q: b2 / (s * s),
    predict: (xv: number) => {
      const u = (xv - mx) / s;
      return b0 + b1 * u + b2 * u * u;
    },
  };
}

function solve3(a: number[][], b: number[]): number[] | null {
  const m = a.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < 3; c++) {
    let p = c;
    for (let r = c + 1; r < 3; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
    if (Math.abs(m[p][c]) < 1e-9) return null;
    [m[c], m[p]] = [m[p], m[c]];
    for (let r = 0; r < 3; r++) {
      if (r === c) continue;
      const f = m[r][c] / m[c][c];
      for (let k = c; k < 4; k++) m[r][k] -= f * m[c][k];
    }
  }
  return [m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]];
}

/** Linear-interpolated quantile of a sorted array (type 7, as R's default). */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

export function quantile(xs: ArrayLike<number>, p: number): number {
  return quantileSorted(Float64Array.from(xs).sort(), p);
}

/** Two-sided standard normal quantile for a central interval of `level` (Acklam's approximation). */
export function zFor(level: number): number {
  return normalQuantile(0.5 + level / 2);
}

export function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155211573];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lowP = 0.02425;
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  if (p < lowP) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lowP) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/**
 * P(|T| < t) for Student's t with a whole number `df` of degrees of freedom, by the finite series
 * of Abramowitz and Stegun 26.7.3 and 26.7.4 (exact, no special functions).
 */
function tCentral(t: number, df: number): number {
  const theta = Math.atan(Math.abs(t) / Math.sqrt(df));
  const c2 = Math.cos(theta) ** 2;
  const s = Math.sin(theta);
  let sum = 1;
  let term = 1;
  if (df % 2 === 1) {
    for (let i = 3; i <= df - 2; i += 2) sum += term *= ((i - 1) / i) * c2;
    return df === 1 ? (2 * theta) / Math.PI : (2 / Math.PI) * (theta + s * Math.cos(theta) * sum);
  }
  for (let i = 2; i <= df - 2; i += 2) sum += term *= ((i - 1) / i) * c2;
  return s * sum;
}

/** The p quantile (p in 0.5..1) of Student's t with `df` (whole, from 1) degrees of freedom, by bisection. */
export function tQuantile(p: number, df: number): number {
  if (!(df >= 1) || !(p >= 0.5)) return NaN;
  if (p >= 1) return Infinity;
  const d = Math.floor(df);
  const want = 2 * p - 1;
  let lo = 0;
  let hi = 1;
  while (tCentral(hi, d) < want) hi *= 2;
  for (let i = 0; i < 100 && hi - lo > 1e-10 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (tCentral(mid, d) < want) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The 0.975 quantile of Student's t with `df` degrees of freedom (two-sided 95 %). */
export const t975 = (df: number): number => tQuantile(0.975, df);

/** Seeded uniform integers for resampling. */
export class Resampler {
  private readonly gen: RandomGenerator;
  constructor(seed: number) {
    this.gen = xoroshiro128plus(seed | 0);
  }
  /** Integer in [0, n). */
  index(n: number): number {
    return Math.floor(((this.gen.unsafeNext() >>> 0) / 4294967296) * n);
  }
}
