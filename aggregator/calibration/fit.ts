// The fit: people = k * (estimate - b) per zone, from windows paired with ground truth.
//
// - Classical calibration: the estimate is the measurement, so the line is fitted the way the
//   counts arise, estimate = b + people / k (least squares of the estimate on people), then
//   inverted. b is then what the estimate shows with nobody there (fixed equipment), k the people
//   per unit of estimate. Unlike a regression of people on the estimate, this does not pull every
//   reading toward the mean occupancy of the calibration days, so it carries over to a zone whose
//   crowds are larger or smaller than those it was fitted on.
// - The interval comes from a bootstrap over sessions (days, captures): whole sessions are drawn
//   with replacement, so day-to-day differences (other phones, other habits) widen it, as they
//   should. Windows of one session are not independent, so resampling windows would be too narrow.
//   With few sessions the bootstrap is itself too narrow; its spread is widened (smallSample).
// - Shrinkage: each zone's k and b are pulled toward a global prior by how uncertain they are
//   (normal-normal empirical Bayes): weight w = tau^2 / (tau^2 + v), v the zone's bootstrap
//   variance, tau^2 the spread between zones. With several zones the prior is estimated from them
//   (DerSimonian-Laird); a single zone can be given one (e.g. the `global` of an earlier file). The
//   shrunk value's variance is w v + (1 - w)^2 m^2, m the standard error of the prior's mean, so a
//   zone that leans wholly on the prior is as uncertain as that mean, never exact.
import { checkFit, fieldWords, type FitChecks } from './checks.ts';
import { max, mean, min, normalQuantile, ols, pearson, quantileSorted, Resampler, sd, tQuantile } from './stats.ts';

/** One window paired with its ground truth. */
export interface Sample {
  /** The counts field being calibrated (normally `estimate`). */
  estimate: number;
  /** Time-weighted people present in the window (ground truth). */
  people: number;
  /** Session the window belongs to (a day, a capture): the unit of the bootstrap. */
  session: string;
  /** Zone; omitted means one zone. */
  zone?: string;
  /** Window start (ms), for the data summary. */
  time?: number;
}

export interface Param {
  value: number;
  low: number;
  high: number;
  /** Standard deviation over the bootstrap (after shrinkage). */
  sd: number;
}

/**
 * One parameter's prior: `mean`, `sd` the spread between zones (tau), and `mean_sd` the standard
 * error of `mean` itself (it was estimated from a few zones), which a zone leaning on the prior
 * keeps in its interval (absent: 0, as in files written before it was recorded).
 */
export interface PriorParam {
  mean: number;
  sd: number;
  mean_sd?: number;
}

export interface Prior {
  k: PriorParam;
  b: PriorParam;
}

export interface DataSummary {
  sessions: number;
  session_ids: string[];
  windows: number;
  occupied_windows: number;
  empty_windows: number;
  people: { min: number; mean: number; max: number };
  /** Of the field fitted: the estimate, or the devices count with `field: devices`. */
  estimate: { min: number; mean: number; max: number };
  from?: string;
  to?: string;
}

export interface ZoneFit {
  zone: string;
  k: Param;
  b: Param;
  /** Correlation of k and b over the bootstrap (needed for the interval of a prediction). */
  corr_kb: number;
  /** Standard deviation of people around the line, per window (in-sample). */
  residual_sd: number;
  /** Central interval level of low/high, e.g. 0.9. */
  level: number;
  /** Weight of the zone's own data in k and b (1 = no shrinkage). */
  shrinkage: { k: number; b: number };
  /** The zone's own fit before shrinkage. */
  unshrunk: { k: number; b: number };
  /** Set when b is held at 0 because the line put it below zero: that b. */
  b_below_zero?: number;
  data: DataSummary;
  /** In-sample agreement: Pearson r of estimate vs people, mean absolute error of the fit. */
  quality: { r: number; mae: number };
  warnings: string[];
}

export interface FitOptions {
  /** Central interval level (default 0.9). */
  level?: number;
  /** Bootstrap replicates (default 1000). */
  replicates?: number;
  /** Seed of the bootstrap (default 1): the same data gives the same file. */
  seed?: number;
  /** Prior for shrinkage; with several zones and none given, it is estimated from the zones. */
  prior?: Prior;
  /** Name of the counts field in `Sample.estimate` (default `estimate`), for the messages. */
  field?: string;
}

export interface FitResult {
  zones: ZoneFit[];
  /** With several zones: those that could not be fitted, and why (the others are still fitted). */
  skipped: Array<{ zone: string; reason: string }>;
  /** The prior the zones were shrunk toward (null: none, a single zone without a given prior). */
  global: Prior | null;
}

export class FitError extends Error {
  /** `not_rising`: the counts do not rise with people (the caller knows the fix: another radio, the truth's zone and times). */
  constructor(
    message: string,
    readonly code?: 'not_rising',
  ) {
    super(message);
    this.name = 'FitError';
  }
}

/** estimate = a + c * people */
export interface Line {
  a: number;
  c: number;
  /** Set when the least-squares line put b below 0 on data with empty-room windows: that b (the line was then fitted through zero). */
  negativeB?: number;
  /**
   * Set when the least-squares line's slope was too poorly determined to tell k from b (its relative
   * spread over the bootstrap, or Infinity when more than 5 % of the samples gave no rising line):
   * the line was then fitted through zero.
   */
  slopeSpread?: number;
}

/**
 * Above this relative spread of the line's slope over the bootstrap (standard deviation over the
 * slope) k cannot be told from b: the two trade off against each other along the data, so b is 0
 * and only the ratio of people to the estimate is fitted (through zero).
 */
export const MAX_SLOPE_SPREAD = 0.25;

/** Relative spread of the slope c = 1 / k over the bootstrap; Infinity when over 5 % of the samples give no rising line. */
function slopeSpread(boot: Boot, c: number, replicates: number): number {
  if (boot.degenerate > replicates * 0.05 || boot.k.length < 10 || !(c > 0)) return Infinity;
  return sd(Array.from(boot.k, (k) => 1 / k)) / c;
}

/** Least squares of people on the estimate through zero: estimate = people / k with k = sum(e p) / sum(e e). */
function throughZero(samples: Sample[]): { a: number; c: number } {
  let sep = 0;
  let see = 0;
  for (const s of samples) {
    sep += s.estimate * s.people;
    see += s.estimate * s.estimate;
  }
  return { a: 0, c: sep > 1e-12 ? see / sep : 0 };
}

/** The line of the samples; `zero`: through zero whatever the data (the slope could not be told from b). */
function lineOf(samples: Sample[], zero = false): Line | null {
  if (zero) return samples.some((s) => s.estimate > 0 && s.people > 0) ? throughZero(samples) : null;
  const r = ols(
    samples.map((s) => s.people),
    samples.map((s) => s.estimate),
  );
  // With empty-room windows in the data, b < 0 would say an empty room reads below zero, which no
  // count can: it comes from truth that counts people the sensor does not hear (a count kept after
  // they left its range), and it inflates every prediction (b = -0.8 shows 1 person in a silent
  // room). Without them b is an extrapolation beyond the data (a curve below the fewest people
  // seen can put it below zero) and is left as the line gives it (checks.ts warns).
  if (!r || r.a >= 0 || !samples.some((s) => s.people === 0)) return r && { a: r.a, c: r.c };
  // Then b = 0 and the line goes through zero: people = k * estimate with k by least squares of
  // people on the estimate (through zero a line no longer pivots on the calibration days' mean;
  // its k is the classical one through zero times the squared uncentred correlation of estimate
  // and people: 0.92 on the lab days of ../shared/captures/occupancy). No rising line when no
  // window has both an estimate and people.
  return { ...throughZero(samples), negativeB: r.a };
}

/** k, b of people = k * (estimate - b) from estimate = a + c * people; k is undefined unless c > 0. */
const kb = (r: Line) => ({ k: r.c > 1e-9 ? 1 / r.c : NaN, b: r.a });

function groupBy<T>(xs: T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    let g = m.get(k);
    if (!g) m.set(k, (g = []));
    g.push(x);
  }
  return m;
}

/** Pseudo-sessions for a single session: blocks of `size` consecutive windows (by time). */
function blocks(samples: Sample[], size: number): Map<string, Sample[]> {
  const sorted = [...samples].sort((x, y) => (x.time ?? 0) - (y.time ?? 0));
  const m = new Map<string, Sample[]>();
  sorted.forEach((s, i) => {
    const k = `block-${Math.floor(i / size)}`;
    let g = m.get(k);
    if (!g) m.set(k, (g = []));
    g.push(s);
  });
  return m;
}

interface Boot {
  k: Float64Array;
  b: Float64Array;
  /** Replicates with no usable line (no spread, flat line): left out. */
  degenerate: number;
  units: Map<string, Sample[]>;
  /** Resampled unit lists, reused by the checks (curvature). */
  draws: Sample[][];
}

function bootstrap(samples: Sample[], replicates: number, seed: number, zero = false): Boot {
  let units = groupBy(samples, (s) => s.session);
  // One session: blocks of 10 windows, smaller where that leaves fewer than 5 blocks (a day of a
  // few manual counts is a handful of windows: one block of them gave an interval of zero width).
  if (units.size < 2) units = blocks(samples, Math.min(10, Math.max(1, Math.floor(samples.length / 5))));
  const keys = [...units.keys()];
  const rng = new Resampler(seed);
  const ks: number[] = [];
  const bs: number[] = [];
  const draws: Sample[][] = [];
  let degenerate = 0;
  for (let r = 0; r < replicates; r++) {
    const draw: Sample[] = [];
    for (let i = 0; i < keys.length; i++) for (const s of units.get(keys[rng.index(keys.length)])!) draw.push(s);
    draws.push(draw);
    const line = lineOf(draw, zero);
    const p = line && kb(line);
    if (!p || !Number.isFinite(p.k)) {
      degenerate++;
      continue;
    }
    ks.push(p.k);
    bs.push(p.b);
  }
  return { k: Float64Array.from(ks), b: Float64Array.from(bs), degenerate, units, draws };
}

function summary(samples: Sample[]): DataSummary {
  const sessions = [...new Set(samples.map((s) => s.session))];
  const people = samples.map((s) => s.people);
  const est = samples.map((s) => s.estimate);
  const times = samples.map((s) => s.time).filter((t): t is number => typeof t === 'number');
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const d: DataSummary = {
    sessions: sessions.length,
    session_ids: sessions,
    windows: samples.length,
    occupied_windows: people.filter((p) => p > 0).length,
    empty_windows: people.filter((p) => p === 0).length,
    people: { min: r3(min(people)), mean: r3(mean(people)), max: r3(max(people)) },
    estimate: { min: r3(min(est)), mean: r3(mean(est)), max: r3(max(est)) },
  };
  if (times.length) {
    d.from = new Date(min(times)).toISOString();
    d.to = new Date(max(times)).toISOString();
  }
  return d;
}

interface Unshrunk {
  zone: string;
  samples: Sample[];
  line: Line;
  k: number;
  b: number;
  boot: Boot;
  residualSd: number;
  checks: FitChecks;
  /** Small-sample factor of the bootstrap spread (smallSample): 1 with one session. */
  g: number;
}

/**
 * A bootstrap over n sessions spreads its replicates by sqrt((n - 1) / n) of the spread of the
 * estimate, and its percentiles are those of a normal where only n - 1 degrees of freedom are known:
 * its deviations are widened by sqrt(n / (n - 1)) x t(n - 1) / z at the level (3 sessions at 90 %:
 * 2.17; 12: 1.15). One session (blocks of its windows) is left as it is: its warning says the
 * interval is too narrow.
 */
export function smallSample(sessions: number, level: number): number {
  if (sessions < 2) return 1;
  const q = 0.5 + level / 2;
  return Math.sqrt(sessions / (sessions - 1)) * (tQuantile(q, sessions - 1) / normalQuantile(q));
}

/** Windows paired with the truth that a zone's fit needs at the least. */
export const FIT_MIN_WINDOWS = 3;

function fitOwn(zone: string, samples: Sample[], opts: Required<Omit<FitOptions, 'prior'>>): Unshrunk {
  if (samples.length < FIT_MIN_WINDOWS)
    throw new FitError(
      `zone ${zone}: ${samples.length} window(s) paired with the truth; a fit needs at least ${FIT_MIN_WINDOWS} (better hundreds, over several sessions)`,
    );
  let line = lineOf(samples);
  if (!line)
    throw new FitError(
      `zone ${zone}: the ${samples.length} windows all had the same number of people (${samples[0].people}); a line cannot be fitted: calibrate on periods with different numbers of people`,
    );
  if (!Number.isFinite(kb(line).k)) {
    throw new FitError(
      `zone ${zone}: the ${fieldWords(opts.field)} does not rise with people (it changes by ${line.c.toFixed(3)} per person): it cannot be calibrated to people here`,
      'not_rising',
    );
  }
  let boot = bootstrap(samples, opts.replicates, opts.seed);
  // When the data cannot tell k from b (too little spread in occupancy for the noise of the
  // estimate), a line through both swings with every window; the ratio of people to the estimate
  // is what they do determine: b is 0 and the line goes through zero (bootstrapped the same way).
  if (line.a !== 0) {
    const spread = slopeSpread(boot, line.c, opts.replicates);
    const zero = spread > MAX_SLOPE_SPREAD ? lineOf(samples, true) : null;
    if (zero && zero.c > 1e-9) {
      line = { ...zero, slopeSpread: spread };
      boot = bootstrap(samples, opts.replicates, opts.seed, true);
    }
  }
  const { k, b } = kb(line);
  if (boot.k.length < Math.max(10, opts.replicates / 2)) {
    throw new FitError(
      `zone ${zone}: ${boot.degenerate} of ${opts.replicates} bootstrap samples give no rising line (too few sessions with people varying in them): no interval can be given; calibrate on more sessions`,
    );
  }
  const residualSd = sd(samples.map((s) => s.people - k * (s.estimate - b)));
  const sessions = new Set(samples.map((s) => s.session)).size;
  const checks = checkFit(zone, samples, line, boot.draws, boot.degenerate, opts.replicates, boot.units.size, sessions, opts.field);
  return { zone, samples, line, k, b, boot, residualSd, checks, g: smallSample(sessions, opts.level) };
}

/** Bootstrap variance of a parameter, NaN when there are too few usable replicates. */
function variance(xs: Float64Array): number {
  return xs.length >= 10 ? sd(xs) ** 2 : NaN;
}

/** DerSimonian-Laird: mean, its variance and the between-zone variance of per-zone estimates with variances v. */
function randomEffects(values: number[], v: number[]): { mean: number; meanVar: number; tau2: number } {
  const w = v.map((x) => 1 / Math.max(x, 1e-12));
  const sw = w.reduce((a, b) => a + b, 0);
  const fixed = values.reduce((a, x, i) => a + w[i] * x, 0) / sw;
  const q = values.reduce((a, x, i) => a + w[i] * (x - fixed) ** 2, 0);
  const c = sw - w.reduce((a, x) => a + x * x, 0) / sw;
  const tau2 = Math.max(0, (q - (values.length - 1)) / Math.max(c, 1e-12));
  const ws = v.map((x) => 1 / Math.max(x + tau2, 1e-12));
  const sws = ws.reduce((a, b) => a + b, 0);
  return { mean: values.reduce((a, x, i) => a + ws[i] * x, 0) / sws, meanVar: 1 / sws, tau2 };
}

/** The prior of one parameter as the file writes it, from random effects over the zones. */
const priorParam = (r: { mean: number; meanVar: number; tau2: number }): PriorParam => ({
  mean: round(r.mean),
  sd: round(Math.sqrt(r.tau2)),
  mean_sd: round(Math.sqrt(r.meanVar)),
});

/** Bootstrap variance of a zone's k or b, widened for few sessions (smallSample). */
const zoneVariance = (z: Unshrunk, boot: Float64Array) => variance(boot) * z.g * z.g;

function shrinkParam(own: number, boot: Float64Array, prior: PriorParam | null, level: number, g = 1): { p: Param; w: number } {
  const raw = variance(boot);
  const v = raw * g * g;
  const sorted = Float64Array.from(boot).sort();
  const lo = (1 - level) / 2;
  if (!prior || !Number.isFinite(v)) {
    return {
      p: {
        value: own,
        low: sorted.length ? own + g * (quantileSorted(sorted, lo) - own) : NaN,
        high: sorted.length ? own + g * (quantileSorted(sorted, 1 - lo) - own) : NaN,
        sd: Number.isFinite(v) ? Math.sqrt(v) : NaN,
      },
      w: 1,
    };
  }
  const tau2 = prior.sd ** 2;
  const w = tau2 + v > 0 ? tau2 / (tau2 + v) : 1;
  const value = prior.mean + w * (own - prior.mean);
  // Posterior variance w v + (1 - w)^2 m^2, m the standard error of the prior's mean (estimated
  // from a few zones): without it a zone that leans wholly on the prior (tau 0: the zones agreed
  // within their errors) would get an interval of width 0. The bootstrap percentiles are re-centred
  // and scaled to that spread.
  const m2 = (prior.mean_sd ?? 0) ** 2;
  const post = w * v + (1 - w) ** 2 * m2;
  const f = raw > 0 ? Math.sqrt(post / raw) : 0;
  return {
    p: { value, low: value + f * (quantileSorted(sorted, lo) - own), high: value + f * (quantileSorted(sorted, 1 - lo) - own), sd: Math.sqrt(post) },
    w,
  };
}

function corr(a: Float64Array, b: Float64Array): number {
  const r = pearson(a, b);
  return Number.isFinite(r) ? r : 0;
}

const round = (x: number, d = 6) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
const roundParam = (p: Param): Param => ({ value: round(p.value), low: round(p.low), high: round(p.high), sd: round(p.sd) });

/**
 * Fits every zone in `samples` (a sample without a zone belongs to zone "default").
 * Throws FitError when a zone cannot be fitted at all; otherwise problems are in `warnings`.
 */
export function fit(samples: Sample[], options: FitOptions = {}): FitResult {
  const opts = { level: options.level ?? 0.9, replicates: options.replicates ?? 1000, seed: options.seed ?? 1, field: options.field ?? 'estimate' };
  if (!(opts.level > 0 && opts.level < 1)) throw new FitError(`level must be between 0 and 1 (got ${opts.level})`);
  const clean = samples.filter((s) => Number.isFinite(s.estimate) && Number.isFinite(s.people));
  if (clean.length === 0) throw new FitError('no windows paired with the truth: nothing to fit');
  const byZone = groupBy(clean, (s) => s.zone ?? 'default');
  const own: Unshrunk[] = [];
  const skipped: FitResult['skipped'] = [];
  for (const [zone, xs] of byZone) {
    try {
      own.push(fitOwn(zone, xs, opts));
    } catch (e) {
      // One zone that cannot be fitted does not stop the others; alone, it is the error.
      if (!(e instanceof FitError) || byZone.size === 1) throw e;
      skipped.push({ zone, reason: e.message });
    }
  }
  if (own.length === 0) throw new FitError(skipped.map((x) => x.reason).join('; '));

  // A zone whose line was put through zero because its data could not tell k from b holds b at 0:
  // it is neither shrunk nor part of the prior of b (the other zones' b say nothing about it).
  const bHeld = (z: Unshrunk) => z.line.slopeSpread !== undefined;
  let prior: Prior | null = options.prior ?? null;
  let priorK = prior?.k ?? null;
  let priorB = prior?.b ?? null;
  if (!prior && own.length >= 2) {
    const usable = own.filter((z) => Number.isFinite(zoneVariance(z, z.boot.k)));
    if (usable.length >= 2) {
      const rk = randomEffects(
        usable.map((z) => z.k),
        usable.map((z) => zoneVariance(z, z.boot.k)),
      );
      priorK = priorParam(rk);
      const withB = usable.filter((z) => !bHeld(z) && Number.isFinite(zoneVariance(z, z.boot.b)));
      if (withB.length >= 2) {
        const rb = randomEffects(
          withB.map((z) => z.b),
          withB.map((z) => zoneVariance(z, z.boot.b)),
        );
        priorB = priorParam(rb);
      }
      // the file's global prior needs both (a zone added later is shrunk toward it)
      prior = priorB ? { k: priorK, b: priorB } : null;
    }
  }

  const zones = own.map((z): ZoneFit => {
    const sk = shrinkParam(z.k, z.boot.k, priorK, opts.level, z.g);
    const sb = bHeld(z) ? { p: { value: 0, low: 0, high: 0, sd: 0 }, w: 1 } : shrinkParam(z.b, z.boot.b, priorB, opts.level, z.g);
    const warnings = [...z.checks.warnings];
    if (z.line.negativeB !== undefined) {
      warnings.push(
        `zone ${z.zone}: the line put b (the ${fieldWords(opts.field)} with nobody there) at ${z.line.negativeB.toFixed(2)}, below zero: b is 0 and the line goes through zero; ` +
          'check the truth for people counted while the sensor heard nobody (e.g. a count kept after a session ended)',
      );
    }
    if (z.line.slopeSpread !== undefined) {
      const spread = Number.isFinite(z.line.slopeSpread)
        ? `its slope varies by ${Math.round(z.line.slopeSpread * 100)} % over the bootstrap, more than ${MAX_SLOPE_SPREAD * 100} %`
        : 'more than 5 % of the bootstrap samples give no rising line';
      warnings.push(
        `zone ${z.zone}: the data cannot tell k from b (${spread}): b is 0 and the line goes through zero (people = k * ${opts.field}); ` +
          'calibrate on periods with more spread in occupancy to fit b',
      );
    }
    if (sk.w < 0.5 || sb.w < 0.5) {
      warnings.push(`zone ${z.zone}: little data of its own: k and b lean on the global prior (own weight k ${sk.w.toFixed(2)}, b ${sb.w.toFixed(2)})`);
    }
    const fitted = z.samples.map((s) => sk.p.value * (s.estimate - sb.p.value));
    return {
      zone: z.zone,
      k: roundParam(sk.p),
      b: roundParam(sb.p),
      corr_kb: round(corr(z.boot.k, z.boot.b), 4),
      residual_sd: round(z.residualSd, 4),
      level: opts.level,
      shrinkage: { k: round(sk.w, 4), b: round(sb.w, 4) },
      unshrunk: { k: round(z.k), b: round(z.b) },
      ...(z.line.negativeB === undefined ? {} : { b_below_zero: round(z.line.negativeB, 4) }),
      data: summary(z.samples),
      quality: {
        r: round(
          pearson(
            z.samples.map((s) => s.estimate),
            z.samples.map((s) => s.people),
          ),
          4,
        ),
        mae: round(mean(z.samples.map((s, i) => Math.abs(Math.max(0, fitted[i]) - s.people))), 4),
      },
      warnings,
    };
  });
  return { zones, global: prior, skipped };
}

/** Fits one zone (all samples together, whatever their zone field) and returns its fit. */
export function fitZone(samples: Sample[], options: FitOptions = {}, zone = 'default'): ZoneFit {
  return fit(
    samples.map((s) => ({ ...s, zone })),
    options,
  ).zones[0];
}

/**
 * The prior implied by calibrated zones (random effects over their k and b with their sd), for a
 * file holding several zones: a new zone with little data can be shrunk toward it (`--prior`).
 * Null with fewer than two zones.
 */
export function priorFromZones(zones: Array<{ k: Param; b: Param }>): Prior | null {
  const ok = zones.filter((z) => Number.isFinite(z.k.sd) && Number.isFinite(z.b.sd) && z.k.sd > 0 && z.b.sd > 0);
  if (ok.length < 2) return null;
  const rk = randomEffects(
    ok.map((z) => z.k.value),
    ok.map((z) => z.k.sd ** 2),
  );
  const rb = randomEffects(
    ok.map((z) => z.b.value),
    ok.map((z) => z.b.sd ** 2),
  );
  return { k: priorParam(rk), b: priorParam(rb) };
}
