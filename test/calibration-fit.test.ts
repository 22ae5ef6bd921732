// Calibration core: the fit people = k * (estimate - b), its bootstrap interval, shrinkage, the
// checks that warn when data cannot support a fit, the calibration file and the truth readers.
import { afterAll, describe, it, expect, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyZone,
  Calibration,
  fit,
  fitZone,
  formatCalibration,
  leaveOneOut,
  meanOccupancy,
  parseCalibration,
  parseOccupancy,
  parsePointCounts,
  pairOccupancy,
  pairPointCounts,
  readCalibration,
  toCalibrationFile,
  writeCalibration,
  CalibrationFileError,
  TruthError,
  type Sample,
} from '../aggregator/calibration/index.ts';
import { checkWithinCapture, readOccupancy } from '../aggregator/calibration/truth.ts';
import { t975 } from '../aggregator/calibration/stats.ts';
import { smallSample } from '../aggregator/calibration/fit.ts';
import { describeFit } from '../aggregator/calibration/cli.ts';
import { mountSmallFs } from './support/small-fs.ts';

/** A full disk for the calibration file: a small tmpfs of this file's own (root or CAP_SYS_ADMIN; skipped with a line saying why, failed under CI). */
const fullRoot = mkdtempSync(join(tmpdir(), 'presence-calibration-full-'));
const full = join(fullRoot, 'mnt');
mkdirSync(full);
const fullMounted = mountSmallFs('calibration file on a full disk', full, 'size=16k,mode=0755');
afterAll(() => {
  if (fullMounted) execFileSync('umount', ['-l', full]);
  rmSync(fullRoot, { recursive: true, force: true });
});

/** Deterministic normal noise (LCG + Box-Muller), so the tests do not depend on luck. */
function noise(seed: number) {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  return (sd = 1) => sd * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** Windows of `sessions` days where estimate = b + people / k + noise, and each day its own offset. */
function synthetic(opts: {
  k: number;
  b: number;
  sessions: number;
  windows: number;
  zone?: string;
  seed?: number;
  dayShift?: number;
  curve?: number;
}): Sample[] {
  const n = noise(opts.seed ?? 7);
  const out: Sample[] = [];
  for (let d = 0; d < opts.sessions; d++) {
    const shift = n(opts.dayShift ?? 0.5);
    for (let i = 0; i < opts.windows; i++) {
      const people = Math.max(0, Math.round(8 + 10 * Math.sin(i / 15 + d)));
      const bent = opts.curve ? opts.curve * people * people : 0;
      const estimate = Math.max(0, opts.b + (people + bent) / opts.k + shift + n(1));
      out.push({ estimate, people, session: `day-${d}`, zone: opts.zone, time: d * 86_400_000 + i * 60_000 });
    }
  }
  return out;
}

describe('fit', () => {
  it('fits and summarises 300,000 windows (Math.min(...xs) threw RangeError past about 100,000)', () => {
    const r = fit(synthetic({ k: 0.5, b: 6, sessions: 3, windows: 100_000 }), { replicates: 50 });
    expect(r.zones[0].data.windows).toBe(300_000);
    expect(r.zones[0].data.people.max).toBe(18);
    expect(r.zones[0].data.to).toBe(new Date(2 * 86_400_000 + 99_999 * 60_000).toISOString());
  }, 120_000);

  it('recovers k and b, with an interval that covers them', () => {
    const z = fitZone(synthetic({ k: 0.5, b: 6, sessions: 8, windows: 120 }));
    expect(z.k.value).toBeGreaterThan(0.45);
    expect(z.k.value).toBeLessThan(0.55);
    expect(z.k.low).toBeLessThan(0.5);
    expect(z.k.high).toBeGreaterThan(z.k.value);
    expect(z.b.low).toBeLessThan(6.8);
    expect(z.b.high).toBeGreaterThan(5.2);
    expect(z.data.sessions).toBe(8);
    expect(z.data.windows).toBe(960);
    expect(z.warnings).toEqual([]);
  });

  it('is reproducible: the same samples give the same fit', () => {
    const s = synthetic({ k: 0.3, b: 10, sessions: 5, windows: 60 });
    expect(fitZone(s)).toEqual(fitZone(s));
  });

  it('widens the interval when days differ (bootstrap over sessions, not windows)', () => {
    const calm = fitZone(synthetic({ k: 0.5, b: 6, sessions: 6, windows: 100, dayShift: 0.1 }));
    const moody = fitZone(synthetic({ k: 0.5, b: 6, sessions: 6, windows: 100, dayShift: 4 }));
    expect(moody.b.high - moody.b.low).toBeGreaterThan(3 * (calm.b.high - calm.b.low));
  });

  it('warns when the line misses whole sessions (the people per counted device changed between them), not when they agree', () => {
    const disagree =
      /^zone \S+: the sessions disagree: over a session the line reads on average from ([\d.]+) people too few \(day-\d\) to ([\d.]+) people too many \(day-\d\), and misses (\d) of 6 sessions by more than 1 person or 15 % of their people, whichever is more: .*recalibrate when the zone changes$/;
    // dayShift 0.1 / 0.5 in estimate units is 0.05 / 0.25 people at k 0.5: the sessions agree.
    for (const dayShift of [0.1, 0.5]) {
      const z = fitZone(synthetic({ k: 0.5, b: 6, sessions: 6, windows: 100, dayShift, zone: 'lab' }));
      expect(z.warnings.filter((w) => disagree.test(w))).toEqual([]);
    }
    // 4 in estimate units is about 2 people a session, either way.
    const moody = fitZone(synthetic({ k: 0.5, b: 6, sessions: 6, windows: 100, dayShift: 4, zone: 'lab' }));
    const w = moody.warnings.find((x) => disagree.test(x));
    expect(w, moody.warnings.join('\n')).toBeDefined();
    const [, few, many, off] = disagree.exec(w!)!;
    expect(Number(few)).toBeGreaterThan(1);
    expect(Number(many)).toBeGreaterThan(1);
    expect(Number(off)).toBeGreaterThanOrEqual(2);
  });

  it('does not judge sessions of fewer than 10 windows, nor a single session', () => {
    const short = fitZone(synthetic({ k: 0.5, b: 6, sessions: 6, windows: 9, dayShift: 4, zone: 'lab' }));
    expect(short.warnings.some((w) => w.includes('sessions disagree'))).toBe(false);
    const one = fitZone(synthetic({ k: 0.5, b: 6, sessions: 1, windows: 300, dayShift: 4, zone: 'lab' }));
    expect(one.warnings.some((w) => w.includes('sessions disagree'))).toBe(false);
  });

  it('shrinks a zone with little data toward the other zones, and not a zone with much', () => {
    const samples = [
      ...synthetic({ k: 0.5, b: 6, sessions: 6, windows: 100, zone: 'a', seed: 1 }),
      ...synthetic({ k: 0.55, b: 5, sessions: 6, windows: 100, zone: 'b', seed: 2 }),
      ...synthetic({ k: 0.45, b: 7, sessions: 6, windows: 100, zone: 'c', seed: 3 }),
      // Zone d: two short, noisy sessions whose own line is off.
      ...synthetic({ k: 0.9, b: 0, sessions: 2, windows: 12, zone: 'd', seed: 4, dayShift: 3 }),
    ];
    const r = fit(samples);
    expect(r.global).not.toBeNull();
    const d = r.zones.find((z) => z.zone === 'd')!;
    const a = r.zones.find((z) => z.zone === 'a')!;
    expect(d.shrinkage.k).toBeLessThan(a.shrinkage.k);
    // Pulled from its own value toward the prior mean.
    expect(Math.abs(d.k.value - r.global!.k.mean)).toBeLessThan(Math.abs(d.unshrunk.k - r.global!.k.mean));
    expect(d.warnings.join(' ')).toMatch(/2 sessions only/);
  });

  it('fits the other zones when one cannot be fitted, and says why', () => {
    const good = synthetic({ k: 0.5, b: 6, sessions: 4, windows: 60, zone: 'a' });
    const flat = [1, 2, 3, 4].map((p) => ({ estimate: 7, people: p, session: 'x', zone: 'z' }));
    const r = fit([...good, ...flat]);
    expect(r.zones.map((z) => z.zone)).toEqual(['a']);
    expect(r.skipped).toEqual([{ zone: 'z', reason: expect.stringMatching(/zone z: the estimate does not rise with people/) }]);
    expect(() => fit(flat)).toThrow(/zone z: the estimate does not rise/);
  });

  it('shrinks toward a given prior for a single zone', () => {
    const few = synthetic({ k: 0.9, b: 0, sessions: 2, windows: 10, seed: 9, dayShift: 3 });
    const own = fitZone(few);
    const shrunk = fitZone(few, { prior: { k: { mean: 0.5, sd: 0.02 }, b: { mean: 6, sd: 0.5 } } });
    expect(own.shrinkage).toEqual({ k: 1, b: 1 });
    expect(shrunk.shrinkage.k).toBeLessThan(1);
    expect(Math.abs(shrunk.k.value - 0.5)).toBeLessThan(Math.abs(own.k.value - 0.5));
  });

  it('the interval of k and b from a few sessions holds the true line about as often as its level says', () => {
    // 3 days, each with its own people per device (sd 10 %) and offset: a bootstrap over 3 sessions
    // spreads by sqrt(2/3) of the estimate's spread and its percentiles know 2 degrees of freedom,
    // so its 90 % intervals held the true k in 69 % and b in 62 % of such data sets.
    let inK = 0;
    let inB = 0;
    const trials = 100;
    for (let t = 0; t < trials; t++) {
      const n = noise(500 + t);
      const samples: Sample[] = [];
      for (let d = 0; d < 3; d++) {
        const perPerson = 2 * (1 + n(0.1));
        const shift = n(0.5);
        for (let i = 0; i < 120; i++) {
          const people = Math.max(0, Math.round(8 + 10 * Math.sin(i / 15 + d)));
          samples.push({ estimate: Math.max(0, 6 + shift + people / perPerson + n(1)), people, session: `d${d}`, time: d * 86_400_000 + i * 60_000 });
        }
      }
      const z = fitZone(samples, { replicates: 200 });
      if (z.k.low <= 2 && z.k.high >= 2) inK++;
      if (z.b.low <= 6 && z.b.high >= 6) inB++;
    }
    expect(inK / trials).toBeGreaterThanOrEqual(0.8);
    expect(inB / trials).toBeGreaterThanOrEqual(0.8);
    expect(smallSample(3, 0.9)).toBeCloseTo(2.17, 2);
    expect(smallSample(1, 0.9)).toBe(1);
  });

  it('a zone leaning wholly on a prior keeps the uncertainty of its mean: no interval of width 0', () => {
    // Two zones that agree within their errors (here: alike): random effects put the spread between zones at 0.
    const two = fit([
      ...synthetic({ k: 0.5, b: 6, sessions: 6, windows: 100, zone: 'a', seed: 1 }),
      ...synthetic({ k: 0.5, b: 6, sessions: 6, windows: 100, zone: 'b', seed: 1 }),
    ]);
    const prior = two.global!;
    expect(prior.k.sd).toBe(0);
    expect(prior.k.mean_sd).toBeGreaterThan(0);
    for (const z of two.zones) expect(z.k.high - z.k.low).toBeGreaterThan(0);
    // The file holds the prior with its mean's sd, and reads back with it.
    const dir = mkdtempSync(join(tmpdir(), 'cal-prior-'));
    try {
      writeCalibration(join(dir, 'two.yaml'), toCalibrationFile(two, { field: 'estimate', radio: 'wifi', window_s: 60, version: 'test' }));
      expect(readCalibration(join(dir, 'two.yaml')).global).toEqual(prior);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // A third zone with noisy data of its own is pulled onto the prior (own weight 0), and its k
    // is as uncertain as the prior's mean, not known exactly (it was 0.5 .. 0.5, sd 0).
    const third = fitZone(synthetic({ k: 0.9, b: 0, sessions: 3, windows: 40, seed: 9, dayShift: 3 }), { prior });
    expect(third.shrinkage.k).toBe(0);
    expect(third.k.sd).toBeCloseTo(prior.k.mean_sd!, 6);
    expect(third.k.high - third.k.low).toBeGreaterThan(2 * prior.k.mean_sd!);
    expect(third.k.low).toBeLessThan(prior.k.mean);
    expect(third.k.high).toBeGreaterThan(prior.k.mean);
  });

  it('warns when the data cannot support a fit', () => {
    const one = fitZone(synthetic({ k: 0.5, b: 6, sessions: 1, windows: 100 }));
    expect(one.warnings.join('\n')).toMatch(/one session only/);
    // A day of a few counts (8 windows): the interval still has a width (one block of 10 windows
    // resampled gave the same line every time: low = value = high)
    for (const windows of [8, 12, 25]) {
      const few = fitZone(synthetic({ k: 0.5, b: 6, sessions: 1, windows, seed: 4 }));
      expect(few.warnings.join('\n')).toMatch(/one session only/);
      expect(few.k.high - few.k.low, `${windows} windows`).toBeGreaterThan(0.01 * few.k.value);
    }
    const flat = fitZone(synthetic({ k: 0.5, b: 6, sessions: 4, windows: 50 }).map((s) => ({ ...s, people: 5 + (s.time! % 120_000 ? 0 : 0.2) })));
    expect(flat.warnings.join('\n')).toMatch(/occupancy hardly varies/);
    const bent = fitZone(synthetic({ k: 0.5, b: 6, sessions: 8, windows: 120, curve: 0.15 }));
    expect(bent.warnings.join('\n')).toMatch(/not a straight line/);
    const straight = fitZone(synthetic({ k: 0.5, b: 6, sessions: 8, windows: 120 }));
    expect(straight.warnings.join('\n')).not.toMatch(/straight line/);
    const occupied = fitZone(synthetic({ k: 0.5, b: 6, sessions: 4, windows: 60 }).filter((s) => s.people > 0));
    expect(occupied.warnings.join('\n')).toMatch(/no empty-room windows/);
    // Occupancy that varies, an estimate that does not follow it (its windows' people shuffled
    // across the sessions): a line through noise; the straight relation above draws no such word.
    const good = synthetic({ k: 0.5, b: 6, sessions: 4, windows: 60 });
    const n = noise(3);
    const order = good.map((_, i) => i).sort((i, j) => Math.sin(i * 12.9898 + n(1)) - Math.sin(j * 12.9898));
    const noisy = fitZone(good.map((s, i) => ({ ...s, people: good[order[i]].people })));
    expect(noisy.warnings.join('\n')).toMatch(/^zone \S+: the estimate hardly follows the people in these data \(Pearson r -?0\.\d\d, below 0\.5\)/m);
    expect(straight.warnings.join('\n')).not.toMatch(/hardly follows/);
    expect(fitZone(good).warnings.join('\n')).not.toMatch(/hardly follows/);
  });

  it('does not call a curve real that a few sessions cannot tell from how they differ, and says it cannot tell', () => {
    /** Sessions of 120 windows, each bent by its own amount (estimate in units of 0.5 people, b 6). */
    const bentBy = (curves: number[]) => {
      const n = noise(7);
      return curves.flatMap((c, d) =>
        Array.from({ length: 120 }, (_, i): Sample => {
          const people = Math.max(0, Math.round(8 + 10 * Math.sin(i / 15 + d)));
          return { estimate: Math.max(0, 6 + (people + c * (people - 9) ** 2) / 0.5 + n(1)), people, session: `day-${d}`, time: d * 86_400_000 + i * 60_000 };
        }),
      );
    };
    const straightness = (z: { warnings: string[] }) => z.warnings.filter((w) => /straight line/.test(w));
    // Three sessions bending the same way by very different amounts (as three of any straight
    // relation do one time in four): the bootstrap's percentiles over 3 sessions are about the
    // least and largest single session's curve, and read as a 95 % interval without 0.
    const three = straightness(fitZone(bentBy([0.01, 0.04, 0.12])));
    expect(three).toHaveLength(1);
    expect(three[0]).toMatch(
      /cannot tell whether the relation is a straight line: .* \(95 % interval over 3 sessions -?[\d.]+ to [\d.]+\), but that is within/,
    );
    expect(three[0]).not.toMatch(/not a straight line/);
    // One session: the bootstrap is over blocks of its windows, not sessions; no interval is claimed.
    const one = straightness(fitZone(bentBy([0.1])));
    expect(one).toHaveLength(1);
    expect(one[0]).toMatch(/cannot tell whether .* 1 session\(s\) cannot tell that from how sessions differ/);
    expect(one[0]).not.toMatch(/95 %/);
    // (Student's t of the interval: tabled to 30 degrees of freedom, then an expansion)
    for (const [df, t] of [
      [1, 12.706],
      [2, 4.303],
      [11, 2.201],
      [30, 2.042],
      [40, 2.021],
    ])
      expect(t975(df)).toBeCloseTo(t, 3);
    // Three sessions bending alike: that the sessions do tell.
    expect(straightness(fitZone(bentBy([0.1, 0.1, 0.1])))[0]).toMatch(/not a straight line: .* \(95 % interval over 3 sessions -[\d.]+ to -[\d.]+\)/);
  });

  it('holds b at 0 when the line would put an empty room below zero, and says so', () => {
    // A room read well (estimate = people / 2 + noise, empty windows included), then truth that
    // keeps 3 people counted for 200 windows in which the sensor hears nobody.
    const good = synthetic({ k: 2, b: 0.5, sessions: 4, windows: 120, seed: 11, dayShift: 0.1 });
    const silent = Array.from({ length: 200 }, (_, i) => ({ estimate: 0, people: 3, session: 'day-9', time: 9 * 86_400_000 + i * 60_000 }));
    const z = fitZone([...good, ...silent]);
    expect(z.b.value).toBe(0);
    expect(z.b.low).toBe(0);
    expect(z.warnings.join('\n')).toMatch(/the line put b \(the estimate with nobody there\) at -\d+\.\d\d, below zero: b is 0/);
    expect(applyZone(z, 0).value).toBe(0);
    // printed as held, with the b the line gave, not as a fitted 0.00 (its interval was 0.00 .. 0.00)
    expect(z.b_below_zero).toBeLessThan(0);
    expect(describeFit(z, 'estimate')).toMatch(
      /^ {2}b 0 {2}\(held at 0: the line put it at -\d+\.\d\d, below zero; see the warning; 90 % interval over the bootstrap \d+\.\d\d \.\. \d+\.\d\d\) {3}estimate with nobody there$/m,
    );
    // k: least squares of people on the estimate through zero
    const all = [...good, ...silent];
    const ratio = all.reduce((a, s) => a + s.estimate * s.people, 0) / all.reduce((a, s) => a + s.estimate * s.estimate, 0);
    expect(z.k.value).toBeCloseTo(ratio, 4);
    // the same room without the silent windows: b is its own, above zero, and no such warning
    const own = fitZone(good);
    expect(own.b.value).toBeGreaterThan(0);
    expect(own.warnings.join('\n')).not.toMatch(/below zero/);
  });

  it('leaves a negative b alone when no window was empty (b is then an extrapolation)', () => {
    const n = noise(5);
    const samples = Array.from({ length: 240 }, (_, i) => {
      const people = 3 + (i % 8);
      return { estimate: 2 * people - 4 + n(0.3), people, session: `day-${i % 4}`, time: i * 60_000 };
    });
    const z = fitZone(samples);
    expect(z.b.value).toBeLessThan(-1.5);
    expect(z.warnings.join('\n')).toMatch(/no empty-room windows/);
    expect(z.warnings.join('\n')).not.toMatch(/below zero/);
  });

  it('makes no straight-line judgement against a line whose slope the data do not fix', () => {
    // Three sessions of 12 to 17 people whose estimate does not follow them (r 0.08): the slope is
    // undetermined, so b is held at 0; a curve against it was reported as -1.84 people (95 % -15 ..).
    const n = noise(4);
    const samples = Array.from({ length: 300 }, (_, i) => ({
      estimate: Math.max(0, 11 + n(3)),
      people: 12 + (i % 6),
      session: `day-${i % 3}`,
      time: i * 60_000,
    }));
    const z = fitZone(samples);
    expect(z.warnings.join('\n')).toMatch(/the data cannot tell k from b/);
    expect(z.warnings.join('\n')).not.toMatch(/straight line/);
  });

  it('puts the line through zero when the data cannot tell k from b, and says so', () => {
    // Occupancy between 3 and 5 people while the estimate's noise is as large as a person's share:
    // the slope swings from sample to sample, so b is held at 0 and only k is fitted.
    const n = noise(4);
    const samples = Array.from({ length: 60 }, (_, i) => {
      const people = 3 + (i % 3);
      return { estimate: Math.max(0, people / 2 + n(1)), people, session: 'run', time: i * 60_000 };
    });
    const z = fitZone(samples);
    expect(z.warnings.join('\n')).toMatch(/the data cannot tell k from b \(its slope varies by \d+ % over the bootstrap, more than 25 %\): b is 0/);
    expect(z.b).toEqual({ value: 0, low: 0, high: 0, sd: 0 });
    const ratio = samples.reduce((a, s) => a + s.estimate * s.people, 0) / samples.reduce((a, s) => a + s.estimate * s.estimate, 0);
    expect(z.k.value).toBeCloseTo(ratio, 4);
    // the same room read with little noise: the slope is determined, b is fitted as before
    const quiet = noise(4);
    const clean = samples.map((s) => ({ ...s, estimate: 1 + s.people / 2 + quiet(0.02) }));
    const c = fitZone(clean);
    expect(c.warnings.join('\n')).not.toMatch(/cannot tell k from b/);
    expect(c.b.value).toBeCloseTo(1, 1);
    // several zones, one held at zero: the others' b are fitted and shrunk among themselves, none is NaN
    const r = fit([
      ...samples.map((s) => ({ ...s, zone: 'flat' })),
      ...synthetic({ k: 0.5, b: 6, sessions: 4, windows: 60, zone: 'a' }),
      ...synthetic({ k: 0.5, b: 4, sessions: 4, windows: 60, zone: 'b', seed: 9 }),
    ]);
    const byZone = Object.fromEntries(r.zones.map((x) => [x.zone, x]));
    expect(byZone.flat.b.value).toBe(0);
    for (const x of r.zones) for (const v of [x.k.value, x.b.value, x.k.low, x.b.high]) expect(Number.isFinite(v)).toBe(true);
    expect(byZone.a.b.value).toBeGreaterThan(3);
  });

  it('names the field it fitted (--field devices) in its refusal and warnings, not the estimate', () => {
    const flat = [1, 2, 3, 4].map((p) => ({ estimate: 7, people: p, session: 'x' }));
    expect(() => fitZone(flat, { field: 'devices' })).toThrow(/zone default: the devices count does not rise with people/);
    const good = synthetic({ k: 2, b: 0.5, sessions: 4, windows: 120, seed: 11, dayShift: 0.1 });
    const silent = Array.from({ length: 200 }, (_, i) => ({ estimate: 0, people: 3, session: 'day-9', time: 9 * 86_400_000 + i * 60_000 }));
    const held = fitZone([...good, ...silent], { field: 'devices' }).warnings.join('\n');
    expect(held).toMatch(/the line put b \(the devices count with nobody there\)/);
    expect(held).not.toMatch(/estimate/);
    // devices that do not follow the people (their windows' people shuffled): the low r is said of
    // the devices count (it called the distinct addresses "the estimate")
    const n = noise(3);
    const order = good.map((_, i) => i).sort((i, j) => Math.sin(i * 12.9898 + n(1)) - Math.sin(j * 12.9898));
    const noisy = fitZone(
      good.map((s, i) => ({ ...s, people: good[order[i]].people })),
      { field: 'devices' },
    ).warnings.join('\n');
    expect(noisy).toMatch(/^zone \S+: the devices count hardly follows the people in these data \(Pearson r -?0\.\d\d, below 0\.5\)/m);
    expect(noisy).not.toMatch(/estimate/);
  });

  it('refuses what cannot be fitted at all, with the reason', () => {
    expect(() => fitZone([])).toThrow(/nothing to fit/);
    expect(() => fitZone([1, 2, 3, 4].map((p) => ({ estimate: 7, people: p, session: 'x' })))).toThrow(/the estimate does not rise with people/);
    expect(() => fitZone([1, 2, 3, 4].map((e) => ({ estimate: e, people: 6, session: 'x' })))).toThrow(/all had the same number of people \(6\)/);
    // two windows on a clean line are still too few
    expect(() => fitZone([1, 2].map((p) => ({ estimate: 2 * p, people: p, session: 'x' })))).toThrow(
      /2 window\(s\) paired with the truth; a fit needs at least 3/,
    );
  });

  it('holds b at 0 when more than 5 % of the bootstrap samples give no rising line, however steady the slope of the others', () => {
    // Of two sessions one has a constant 5 people: a quarter of the samples draw it twice and have
    // no line at all; the others' slope is nearly exact (the varied session on a clean line).
    const varied = Array.from({ length: 30 }, (_, i) => ({
      estimate: 2 + (1 + (i % 10)) / 2 + (((i * 7) % 5) - 2) * 0.01,
      people: 1 + (i % 10),
      session: 'varied',
      time: i * 60_000,
    }));
    const flat = Array.from({ length: 30 }, (_, i) => ({ estimate: 4.5 + (((i * 3) % 5) - 2) * 0.01, people: 5, session: 'flat', time: 1e7 + i * 60_000 }));
    const z = fitZone([...varied, ...flat]);
    expect(z.warnings.join('\n')).toMatch(/cannot tell k from b \(more than 5 % of the bootstrap samples give no rising line\): b is 0/);
    expect(z.b).toEqual({ value: 0, low: 0, high: 0, sd: 0 });
  });
});

describe('apply', () => {
  const z = fitZone(synthetic({ k: 0.5, b: 6, sessions: 8, windows: 120 }));

  it('gives people = k (estimate - b) with an interval around it', () => {
    const p = applyZone(z, 26);
    expect(p.value).toBeCloseTo(z.k.value * (26 - z.b.value), 1);
    expect(p.low).toBeLessThan(p.value);
    expect(p.high).toBeGreaterThan(p.value);
  });

  it('never gives negative people', () => {
    for (const e of [0, 1, 3, 5]) {
      const p = applyZone(z, e);
      expect(p.value).toBeGreaterThanOrEqual(0);
      expect(p.low).toBeGreaterThanOrEqual(0);
      expect(p.high).toBeGreaterThanOrEqual(p.value);
    }
  });

  it('covers about `level` of the windows it was fitted on', () => {
    const s = synthetic({ k: 0.5, b: 6, sessions: 8, windows: 120, seed: 21 });
    const inside = s.filter((x) => {
      const p = applyZone(z, x.estimate);
      return x.people >= p.low && x.people <= p.high;
    }).length;
    expect(inside / s.length).toBeGreaterThan(0.8);
    expect(inside / s.length).toBeLessThan(0.99);
  });

  it('looks zones up by name (and site when the file names one)', () => {
    const file = toCalibrationFile(fit(synthetic({ k: 0.5, b: 6, sessions: 4, windows: 60, zone: 'hall' })), {
      field: 'estimate',
      radio: 'wifi',
      window_s: 60,
    });
    file.zones.hall.site = 'station';
    const c = new Calibration(file);
    expect(c.apply('hall', 20, 'station')).not.toBeNull();
    expect(c.apply('hall', 20, 'elsewhere')).toBeNull();
    expect(c.apply('platform', 20, 'station')).toBeNull();
    expect(c.apply('constructor', 20)).toBeNull();
  });
});

describe('leave one session out', () => {
  it('scores the calibrated estimate and a calibrated count of addresses side by side', () => {
    const s = synthetic({ k: 0.5, b: 6, sessions: 4, windows: 80 }).map((x) => ({ ...x, devices: x.estimate * 3 + 2, time: x.time }));
    const r = leaveOneOut(s);
    expect(r.sessions.map((x) => x.session)).toEqual(['day-0', 'day-1', 'day-2', 'day-3']);
    expect(r.overall.estimate.windows).toBe(320);
    expect(r.overall.estimate.mae_occupied).toBeGreaterThan(0);
    expect(r.overall.estimate.mae_occupied).toBeLessThan(2.5);
    expect(r.overall.estimate.r).toBeGreaterThan(0.9);
    // The 90 % interval holds about 90 % of the held-out windows.
    expect(r.overall.estimate.coverage).toBeGreaterThan(0.8);
    expect(r.overall.estimate.coverage).toBeLessThan(0.99);
    // devices is an exact linear function of the estimate here: same calibrated people.
    expect(r.overall.devices.mae_occupied).toBeCloseTo(r.overall.estimate.mae_occupied!, 6);
    expect(() => leaveOneOut(s.filter((x) => x.session === 'day-0'))).toThrow(/at least 2 sessions/);
  });
});

describe('calibration file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-calibration-'));
  const file = toCalibrationFile(fit(synthetic({ k: 0.5, b: 6, sessions: 4, windows: 60, zone: 'lab' })), {
    field: 'estimate',
    radio: 'wifi',
    window_s: 60,
    firmware: 'sha256:00',
    version: '0.1.0',
  });

  it('round-trips through YAML', () => {
    const path = join(dir, 'c.yaml');
    writeCalibration(path, file);
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/^# presence-counter calibration/);
    expect(readCalibration(path)).toEqual(JSON.parse(JSON.stringify(file)));
    expect(formatCalibration(file)).toBe(text);
  });

  it('a link at the path is written through: the file it names gets the calibration and the link stays (it was replaced by a file)', () => {
    const real = join(dir, 'season.yaml');
    writeCalibration(real, { ...file, level: 0.8 });
    const link = join(dir, 'current.yaml');
    symlinkSync('season.yaml', link);
    writeCalibration(link, file);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readCalibration(real)).toEqual(JSON.parse(JSON.stringify(file)));
  });

  it('a link at the temporary name does not get the file it points to overwritten (a folder others can write)', () => {
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'keep me\n');
    const path = join(dir, 'linked.yaml');
    symlinkSync(victim, `${path}.tmp-${process.pid}`);
    writeCalibration(path, file);
    expect(readFileSync(victim, 'utf8')).toBe('keep me\n');
    expect(readCalibration(path)).toEqual(JSON.parse(JSON.stringify(file)));
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
  });

  it.skipIf(!fullMounted)(
    'a full disk is named as one, with what to do, and leaves no temporary file: it said "cannot write it (ENOSPC); fix: choose a path in a folder that exists and can be written"',
    () => {
      try {
        writeFileSync(join(full, 'filler'), Buffer.alloc(64 * 1024));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
      const path = join(full, 'cal.yaml');
      expect(() => writeCalibration(path, file)).toThrow(CalibrationFileError);
      expect(() => writeCalibration(path, file)).toThrow(
        `${path}: no space left on the device of ${full} (or the quota is full); free some there, or choose a path on another device, then run it again`,
      );
      expect(readdirSync(full)).toEqual(['filler']);
    },
  );

  it.each([
    ['not YAML', 'zones: [a\nb: 1', /x\.yaml:2:1: not valid YAML/],
    ['not a mapping', '- 1\n', /not a calibration file/],
    ['wrong format', (t: string) => t.replace('presence-calibration/1', 'something/2'), /format: must be "presence-calibration\/1"/],
    ['k not positive', (t: string) => t.replace(/(k:\n\s+value: )[\d.]+/, '$1-0.5'), /zones\.lab\.k\.value: must be above 0/],
    ['missing b', (t: string) => t.replace(/\n {4}b:\n( {6}.*\n){4}/, '\n'), /zones\.lab: missing key "b"/],
    ['unknown key', (t: string) => t.replace('level: 0.9', 'level: 0.9\nlevle: 0.8'), /unknown key "levle"/],
    ['no zones', (t: string) => t.replace(/zones:\n[\s\S]*$/, 'zones: {}\n'), /zones: must name at least one zone/],
    ['not a number', (t: string) => t.replace(/residual_sd: [\d.]+/, 'residual_sd: .nan'), /zones\.lab\.residual_sd: must be a finite number/],
    // Finite but so large that people came out as Infinity, which line protocol cannot hold (the point was refused).
    // No gateway can publish zone "Lab" (ids are lower case): such a file would never give people.
    ['a zone no gateway can publish', (t: string) => t.replace(/\n {2}lab:\n/, '\n  Lab:\n'), /zones: zone name "Lab" is not a zone id \(lower case/],
    [
      'a site no gateway can publish',
      (t: string) => t.replace(/\n {2}lab:\n/, '\n  lab:\n    site: Station\n'),
      /zones\.lab\.site: must be an id \(lower case/,
    ],
    ['a huge residual sd', (t: string) => t.replace(/residual_sd: [\d.]+/, 'residual_sd: 1e200'), /zones\.lab\.residual_sd: must be at most 1000000 /],
    ['a huge k', (t: string) => t.replace(/(k:\n\s+value: )[\d.]+/, '$11e300'), /zones\.lab\.k\.value: must be at most 1000000 /],
  ])('says what is wrong: %s', (_name, edit, message) => {
    const good = formatCalibration(file);
    const text = typeof edit === 'string' ? edit : edit(good);
    expect(() => parseCalibration(text, 'x.yaml')).toThrow(CalibrationFileError);
    expect(() => parseCalibration(text, 'x.yaml')).toThrow(message);
  });

  it('a wrong value names the file, the line of its key and the value; an unknown key its own line', () => {
    const good = formatCalibration(file);
    const lineOf = (text: string, re: RegExp) => text.split('\n').findIndex((l) => re.test(l)) + 1;
    const quoted = good.replace(/(k:\n\s+value: )([\d.]+)/, '$1"$2"');
    expect(() => parseCalibration(quoted, 'x.yaml')).toThrow(
      new RegExp(`^x\\.yaml:${lineOf(quoted, /^ {6}value: "/)}: zones\\.lab\\.k\\.value: must be a finite number \\(got "[\\d.]+"\\)$`),
    );
    const radio = good.replace('radio: wifi', 'radio: WIFI');
    expect(() => parseCalibration(radio, 'x.yaml')).toThrow(
      `x.yaml:${lineOf(radio, /radio: WIFI/)}: estimator.radio: must be one of "wifi", "ble" (got "WIFI")`,
    );
    const nan = good.replace(/residual_sd: [\d.]+/, 'residual_sd: .nan');
    expect(() => parseCalibration(nan, 'x.yaml')).toThrow(
      `x.yaml:${lineOf(nan, /residual_sd: \.nan/)}: zones.lab.residual_sd: must be a finite number (got NaN)`,
    );
    const extra = good.replace('level: 0.9', 'level: 0.9\nlevle: 0.8');
    expect(() => parseCalibration(extra, 'x.yaml')).toThrow(`x.yaml:${lineOf(extra, /^levle:/)}: (top): unknown key "levle"`);
    const missing = good.replace(/\n {4}b:\n( {6}.*\n){4}/, '\n');
    expect(() => parseCalibration(missing, 'x.yaml')).toThrow(`x.yaml:${lineOf(missing, /^ {2}lab:/)}: zones.lab: missing key "b"`);
  });

  it('a file of many bad zones names the first problems with their lines and counts the rest, at once', () => {
    // Each problem's line was looked up by a scan of its mapping: 16,000 bad zones took 16 s, a
    // 4 MiB file hours, with the aggregator stopped on its SIGHUP; the message held every problem.
    const n = 20_000;
    const text = `${formatCalibration(file).replace(/\nzones:[\s\S]*$/, '\nzones:\n')}${Array.from({ length: n }, (_, i) => `  z${i}: 1\n`).join('')}`;
    const zonesLine = text.split('\n').indexOf('zones:') + 1;
    const started = performance.now();
    let message = '';
    try {
      parseCalibration(text, 'x.yaml');
    } catch (e) {
      expect(e).toBeInstanceOf(CalibrationFileError);
      message = (e as Error).message;
    }
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(message).toMatch(
      new RegExp(`^x\\.yaml:${zonesLine + 1}: zones\\.z0: must be a mapping of keys \\(got 1\\); x\\.yaml:${zonesLine + 2}: zones\\.z1: `),
    );
    expect(message.split('; x.yaml:')).toHaveLength(20);
    expect(message).toMatch(/; and 19980 more problem\(s\) \(fix these first\)$/);
  });

  it('a YAML tag it does not know is one problem in the error, not a warning of its own on stderr (the aggregator logs JSON there)', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const text = formatCalibration(file).replace(/\n {2}lab:\n/, '\n  lab: !!js/function "f"\n  old:\n');
      expect(() => parseCalibration(text, 'x.yaml')).toThrow(/x\.yaml:\d+: zones\.lab: must be a mapping of keys \(got "f"\)/);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });

  it('a missing file is named', () => {
    expect(() => readCalibration(join(dir, 'nope.yaml'))).toThrow(/nope\.yaml: no such file/);
  });

  it('cleans up', () => rmSync(dir, { recursive: true, force: true }));
});

describe('truth', () => {
  const csv = 'time;occupancy\n2022-10-18T09:00:00Z;0\n2022-10-18T09:00:30Z;4\n2022-10-18T09:02:00Z;2\n2022-10-18T09:03:00Z;2\n';

  it('weights the step function by time', () => {
    const o = parseOccupancy(csv, 'a.csv');
    const t = (s: string) => Date.parse(`2022-10-18T${s}Z`);
    expect(meanOccupancy(o, t('09:00:00'), t('09:01:00'))).toBe(2);
    expect(meanOccupancy(o, t('09:01:00'), t('09:02:00'))).toBe(4);
    expect(meanOccupancy(o, t('09:02:00'), t('09:03:00'))).toBe(2);
    // Not known before the first row or after the last.
    expect(meanOccupancy(o, t('08:59:00'), t('09:00:00'))).toBeNull();
    expect(meanOccupancy(o, t('09:02:30'), t('09:03:30'))).toBeNull();
  });

  it('weights the same on a truth of many rows (repeated times too) as a scan of every row, and fast: 1,000,000 rows by 20,000 windows', () => {
    const n = 1_000_000;
    const times: number[] = [];
    const people: number[] = [];
    let t = 0;
    for (let i = 0; i < n; i++) {
      t += i % 5 === 0 ? 0 : (i * 7919) % 13; // every fifth row repeats the time before it
      times.push(t);
      people.push((i * 31) % 17);
    }
    const o = { file: 'big.csv', times, people, lines: times.map((_, i) => i + 2) };
    const scan = (a: number, b: number) => {
      let sum = 0;
      for (let i = 0; i < n - 1; i++) sum += people[i] * Math.max(0, Math.min(b, times[i + 1]) - Math.max(a, times[i]));
      return sum / (b - a);
    };
    for (const [a, b] of [
      [0, 1],
      [5, 500],
      [times[1234], times[1234] + 60],
      [times[n - 1] - 100, times[n - 1]],
      [123_456, 4_000_000],
    ])
      expect(meanOccupancy(o, a, b)).toBeCloseTo(scan(a, b), 9);
    const step = Math.floor(times[n - 1] / 20_000);
    const t0 = performance.now();
    for (let w = 0; w < 20_000 - 1; w++) meanOccupancy(o, w * step, (w + 1) * step);
    // a scan of every row for every window: 2e10 steps, minutes
    expect(performance.now() - t0).toBeLessThan(5_000);
  });

  it('pairs only whole windows inside the truth', () => {
    const o = parseOccupancy(csv, 'a.csv');
    const w = [0, 1, 2, 3].map((i) => ({
      start: Date.parse('2022-10-18T08:59:00Z') + i * 60_000,
      end: Date.parse('2022-10-18T09:00:00Z') + i * 60_000,
      estimate: i,
      devices: i,
    }));
    expect(pairOccupancy(w, o, 'day').map((p) => p.people)).toEqual([2, 4, 2]);
  });

  it('pairs point counts with the window holding them', () => {
    const counts = parsePointCounts('time;people\n2025-06-01T12:00:30Z;140\n2025-06-01T12:05:00Z;90\n', 'c.csv');
    const w = [{ start: Date.parse('2025-06-01T12:00:00Z'), end: Date.parse('2025-06-01T12:01:00Z'), estimate: 300, devices: 310 }];
    const r = pairPointCounts(w, counts, 'z');
    expect(r.paired).toEqual([{ ...w[0], people: 140, session: '2025-06-01', zone: 'z' }]);
    expect(r.unmatched.map((c) => c.line)).toEqual([3]);
  });

  it('averages the point counts of one window into one pair (six counts were six samples of one estimate)', () => {
    const counts = parsePointCounts(
      'time;people\n2025-06-01T12:00:05Z;100\n2025-06-01T12:00:25Z;110\n2025-06-01T12:00:45Z;120\n2025-06-01T12:01:10Z;90\n',
      'c.csv',
    );
    const w = [0, 1].map((i) => ({
      start: Date.parse('2025-06-01T12:00:00Z') + i * 60_000,
      end: Date.parse('2025-06-01T12:01:00Z') + i * 60_000,
      estimate: 300 - i,
      devices: 310,
    }));
    const r = pairPointCounts(w, counts, 'z');
    expect(r.paired).toEqual([
      { ...w[0], people: 110, session: '2025-06-01', zone: 'z' },
      { ...w[1], people: 90, session: '2025-06-01', zone: 'z' },
    ]);
    expect(r.unmatched).toEqual([]);
  });

  it('a header with spaces around its fields reads as the rows do (" time; occupancy" was refused while "t; 3" rows were read)', () => {
    const o = parseOccupancy(' Time ; Occupancy \n2022-10-18T09:00:00Z; 1\n2022-10-18T10:00:00Z ;3\n', 'a.csv');
    expect(o.people).toEqual([1, 3]);
    expect(parsePointCounts('time; people\n2025-06-01T12:00:30Z; 140\n', 'c.csv').map((c) => c.people)).toEqual([140]);
    // a header that is another one still says what it must be
    expect(() => parseOccupancy('time; count\n2022-10-18T09:00:00Z;1\n', 'a.csv')).toThrow(/^a\.csv:1: header is "time; count", expected "time;occupancy"/);
  });

  it('a spreadsheet\'s export reads as written by hand: a trailing ";" on every line, fields in quotes, a small z (all three were refused)', () => {
    const want = { times: [Date.parse('2024-02-08T10:00:00Z'), Date.parse('2024-02-08T11:00:00Z')], people: [3, 0] };
    for (const text of [
      'time;occupancy;\r\n2024-02-08T10:00:00Z;3;\r\n2024-02-08T11:00:00Z;0;\r\n',
      '"time";"occupancy"\n"2024-02-08T10:00:00Z";"3"\n"2024-02-08T11:00:00Z";"0"\n',
      '"time";"occupancy";\n"2024-02-08T10:00:00Z";"3";\n"2024-02-08T11:00:00Z";"0";;\n',
      'time;occupancy\n2024-02-08t10:00:00z;3\n2024-02-08T11:00:00z;0\n',
    ]) {
      const o = parseOccupancy(text, 'a.csv');
      expect({ times: o.times, people: o.people }, text).toEqual(want);
    }
    expect(parsePointCounts('"time";"people";\n"2025-06-01T12:00:30z";"140";\n', 'c.csv').map((c) => [c.time, c.people])).toEqual([
      [Date.parse('2025-06-01T12:00:30Z'), 140],
    ]);
    // Still refused where a field would be lost or guessed: a field between two ";", a time without its zone.
    expect(() => parseOccupancy('time;occupancy\n2024-02-08T10:00:00Z;;3\n', 'a.csv')).toThrow(
      /^a\.csv:2: "2024-02-08T10:00:00Z;;3" has 3 field\(s\), expected 2/,
    );
    expect(() => parseOccupancy('time;occupancy\n"2024-02-08T10:00:00";"3"\n', 'a.csv')).toThrow(/^a\.csv:2: time "2024-02-08T10:00:00" has no time zone/);
    expect(() => parseOccupancy('time;occupancy\n2024-02-08T10:00:00Z;"2,5"\n', 'a.csv')).toThrow(/^a\.csv:2: occupancy "2,5" has a decimal comma/);
  });

  it("occupancy with decimals is an average (a camera's mean over its interval), weighted by time as whole counts are", () => {
    const o = parseOccupancy('time;occupancy\n2024-02-08T10:00:00Z;1.5\n2024-02-08T10:01:00Z;3\n2024-02-08T10:02:00Z;0\n', 'a.csv');
    expect(o.people).toEqual([1.5, 3, 0]);
    expect(meanOccupancy(o, Date.parse('2024-02-08T10:00:00Z'), Date.parse('2024-02-08T10:02:00Z'))).toBe(2.25);
  });

  it('an empty truth file (or one of a byte-order mark and blank lines) says it is empty, not that its header "" is wrong', () => {
    for (const text of ['', '\n\n', '\uFEFF\r\n'])
      expect(() => parseOccupancy(text, 'a.csv')).toThrow(
        /^a\.csv: is empty; fix: write the header time;occupancy, then a row per change of the people present \(like 2022-10-18T08:54:02Z;3\) up to the end of the observation$/,
      );
    expect(() => parsePointCounts('', 'b.csv')).toThrow(/^b\.csv: is empty; fix: write the header time;people, then a row per count/);
  });

  it('a truth time outside the capture: another day says to pair the files, the same day to write UTC or drop the rows past the capture', () => {
    const o = parseOccupancy('time;occupancy\n2022-10-18T09:00:00Z;1\n2022-10-18T12:00:00Z;3\n2022-10-18T18:00:00Z;0\n', 'a.csv');
    const [first, last] = [Date.parse('2022-10-18T08:55:00Z'), Date.parse('2022-10-18T13:50:00Z')];
    expect(() => checkWithinCapture(o, first, last, 60_000, 'day.pcap')).toThrow(
      /^a\.csv:4: time 2022-10-18T18:00:00\.000Z is outside the capture day\.pcap .*; fix: write times in UTC \(Z\), and remove the rows after the capture ends$/,
    );
    // first and last are window bounds (whole minutes), not frame times: said as such, with the slack.
    expect(() => checkWithinCapture(o, first, last, 60_000, 'day.pcap')).toThrow(
      'outside the capture day.pcap (its frames lie in the windows from 2022-10-18T08:55:00.000Z to 2022-10-18T13:50:00.000Z; a row may be at most 60 s outside them); fix:',
    );
    const other = parseOccupancy('time;occupancy\n2022-10-25T09:00:00Z;1\n2022-10-25T12:00:00Z;3\n', 'b.csv');
    expect(() => checkWithinCapture(other, first, last, 60_000, 'day.pcap')).toThrow(/^b\.csv:2: .*; fix: pair each --capture with its own --truth file/);
    // a time written with an offset: shown as written and in UTC (it named only a UTC time the file
    // does not hold), and the fix names the offset (a winter offset written in summer moves every row)
    const local = parseOccupancy('time;occupancy\n2022-10-18T09:00:00+02:00;1\n2022-10-18T12:00:00+02:00;0\n', 'c.csv');
    expect(() => checkWithinCapture(local, first, last, 60_000, 'day.pcap')).toThrow(
      /^c\.csv:2: time 2022-10-18T09:00:00\+02:00 \(2022-10-18T07:00:00\.000Z in UTC\) is outside the capture day\.pcap .*; fix: check that \+02:00 is the offset from UTC of the clock that wrote the row \(summer time is another offset than winter time\), or write times in UTC \(Z\); then remove any rows before the capture starts$/,
    );
    // +00:00 is UTC: said as before
    const utc = parseOccupancy('time;occupancy\n2022-10-18T09:00:00+00:00;1\n2022-10-18T18:00:00+00:00;0\n', 'd.csv');
    expect(() => checkWithinCapture(utc, first, last, 60_000, 'day.pcap')).toThrow(
      /^d\.csv:3: time 2022-10-18T18:00:00\.000Z is outside .*; fix: write times in UTC \(Z\), and remove/,
    );
  });

  it.each([
    // the fix says which form takes which file, not "pass it where time;people truth is expected"
    [
      'time;people\n2022-10-18T09:00:00Z;1\n',
      /a\.csv:1: header is "time;people", expected "time;occupancy"; fix: this is a time;people file \(people counted at moments\), the truth of stored counts \(--influx-url\); --capture takes a time;occupancy file/,
    ],
    ['time;occupancy\n2022-10-18T09:00:00Z;1\n18.10.2022 09:01;2\n', /a\.csv:3: "18\.10\.2022 09:01" is not a time; fix: use ISO 8601/],
    // Date.parse read it as 2022-03-02: a typo moved the row by days without a word
    [
      'time;occupancy\n2022-02-28T09:00:00Z;1\n2022-02-30T09:01:00Z;2\n',
      /^a\.csv:3: "2022-02-30T09:01:00Z" is not a date \(month 02 of 2022 has no day 30\); fix: correct the date$/,
    ],
    ['time;occupancy\n2022-10-18T09:00:00Z;1\n2022-10-18T09:01:00Z;-2\n', /a\.csv:3: occupancy "-2" is not a number of people; fix:/],
    // a time without its zone: said as such (it was "is not a time; fix: use ISO 8601 with a zone")
    [
      'time;occupancy\n2022-10-18T09:00:00Z;1\n2022-10-18T09:01:00;2\n',
      /^a\.csv:3: time "2022-10-18T09:01:00" has no time zone; fix: add it: Z when the time is UTC \(2022-10-18T09:01:00Z\), else its offset from UTC/,
    ],
    // a spreadsheet in a locale with a decimal comma
    [
      'time;occupancy\n2022-10-18T09:00:00Z;1\n2022-10-18T09:01:00Z;2,5\n',
      /^a\.csv:3: occupancy "2,5" has a decimal comma; fix: write it with a decimal point, like 2\.5$/,
    ],
    ['time;occupancy\n2022-10-18T09:00:00Z;1\n2022-10-18T09:01:00Z,3\n', /a\.csv:3: .* has 1 field\(s\), expected 2/],
    ['time;occupancy\n2022-10-18T09:05:00Z;1\n2022-10-18T09:01:00Z;3\n', /a\.csv:3: time .* is earlier than the row before it \(line 2\); fix: sort/],
    // two rows of one time with other people: the first held for no time and was dropped without a word
    [
      'time;occupancy\n2022-10-18T09:00:00Z;1\n2022-10-18T09:05:00Z;4\n2022-10-18T09:05:00+00:00;7\n2022-10-18T09:10:00Z;0\n',
      /^a\.csv:4: time 2022-10-18T09:05:00\.000Z is also the time of line 3, which gives 4 people there and this line 7 \(the earlier row would hold for no time\); fix: keep one row per time: the people present from that moment on$/,
    ],
    ['time;occupancy\n2022-10-18T09:05:00Z;1\n', /a\.csv: holds 1 row\(s\).*; fix: add a row at the end/],
    // a spreadsheet's export: the separator is named, not only the header
    [
      'time,occupancy\r\n2022-10-18T09:00:00Z,1\r\n',
      /^a\.csv:1: header is "time,occupancy", expected "time;occupancy"; fix: the fields are separated by ",": separate them with ";" in every line \(time;occupancy\)$/,
    ],
    ['\uFEFFtime\toccupancy\n', /a\.csv:1: .*; fix: the fields are separated by tabs: separate them with ";"/],
    // a capture given as the truth: said as such, its bytes not echoed to the terminal
    [
      '\u00d4\u00c3\u00b2\u00a1\u0002\u0000\u0004\u0000time;occupancy',
      /^a\.csv: is not a text file \(it holds binary data, as a capture does\); fix: give --truth the time;occupancy CSV/,
    ],
    // a long row is shown cut short
    [`time;occupancy\n${'x'.repeat(100_000)}\n`, /^a\.csv:2: "x{57}\.\.\." has 1 field\(s\), expected 2/],
  ])('bad truth rows give one line naming file, line and fix (%#)', (text, message) => {
    let err: unknown;
    try {
      parseOccupancy(text, 'a.csv');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TruthError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });

  it('a row repeated whole (same time, same people) is read: it changes nothing', () => {
    const o = parseOccupancy('time;occupancy\n2022-10-18T09:00:00Z;1\n2022-10-18T09:05:00Z;4\n2022-10-18T09:05:00Z;4\n2022-10-18T09:10:00Z;0\n', 'a.csv');
    expect(meanOccupancy(o, Date.parse('2022-10-18T09:00:00Z'), Date.parse('2022-10-18T09:10:00Z'))).toBe(2.5);
  });

  it('line ends of any system: \\r\\n, \\n and a lone \\r (it read the whole file as its header); empty lines are skipped', () => {
    const rows = ['time;occupancy', '2022-10-18T09:00:00Z;1', '', '2022-10-18T09:01:00Z;3', '2022-10-18T09:02:00Z;0'];
    for (const end of ['\r\n', '\n', '\r']) {
      const o = parseOccupancy(`\uFEFF${rows.join(end)}${end}`, 'a.csv');
      expect(o.people).toEqual([1, 3, 0]);
      expect(o.lines).toEqual([2, 4, 5]);
    }
  });

  it('a truth file saved as UTF-16 with its byte-order mark (a spreadsheet\'s "Unicode text") is read; it was refused as binary', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-truth-'));
    try {
      const text = 'time;occupancy\r\n2022-10-18T09:00:00Z;1\r\n2022-10-18T09:01:00Z;3\r\n';
      const le = join(dir, 'le.csv');
      writeFileSync(le, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]));
      const be = join(dir, 'be.csv');
      writeFileSync(be, Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]));
      for (const f of [le, be]) expect(readOccupancy(f).people).toEqual([1, 3]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an occupancy file given to the stored form (a lab day's truth with --influx-url): the fix says it is --capture's truth and what the stored form takes", () => {
    expect(() => parsePointCounts('time;occupancy\n2023-03-14T08:00:00Z;3\n', 'day_occupancy.csv')).toThrow(
      /^day_occupancy\.csv:1: header is "time;occupancy", expected "time;people"; fix: this is a time;occupancy file \(the people present from each time on\), the truth of --capture; fitting stored counts \(--influx-url\) takes people counted at moments, a time;people file/,
    );
  });
});
