// Leave one session out: for each session, fit on the others and test on it. Scores the counts
// field `estimate` and, side by side, a calibrated count of distinct addresses (`devices`).
import { fitZone, FitError, type FitOptions, type Sample } from './fit.ts';
import { applyZone, type People } from './apply.ts';
import type { ZoneCalibration } from './file.ts';
import { mean, pearson } from './stats.ts';

/** A window with its truth and both counts fields. */
export interface EvalSample {
  estimate: number;
  devices: number;
  people: number;
  session: string;
  time?: number;
}

export interface Scores {
  windows: number;
  occupied_windows: number;
  empty_windows: number;
  /** Mean absolute error of calibrated people on windows with people present (truth > 0). */
  mae_occupied: number | null;
  /** Mean calibrated people on empty-room windows (truth exactly 0). */
  people_when_empty: number | null;
  /** Pearson r of the uncalibrated field against the truth. */
  r: number | null;
  /** Share of windows whose truth lies inside the calibrated interval [low, high] (nominal: the level). */
  coverage: number | null;
}

export interface SessionScores {
  session: string;
  estimate: Scores;
  devices: Scores;
  /** Why a session could not be scored (e.g. the others cannot be fitted). */
  error?: string;
}

export interface LeaveOneOut {
  sessions: SessionScores[];
  /** Over all held-out windows of all sessions together. */
  overall: { estimate: Scores; devices: Scores };
}

type Field = 'estimate' | 'devices';

function score(field: Field, test: EvalSample[], people: Array<People | null>): Scores {
  const predicted = people.map((p) => (p ? p.value : NaN));
  const occ = test.map((s, i) => ({ s, p: predicted[i] })).filter((x) => x.s.people > 0);
  const empty = test.map((s, i) => ({ s, p: predicted[i] })).filter((x) => x.s.people === 0);
  const scored = test.map((s, i) => ({ s, p: people[i] })).filter((x): x is { s: EvalSample; p: People } => x.p !== null);
  const inside = scored.filter((x) => x.s.people >= x.p.low - 1e-9 && x.s.people <= x.p.high + 1e-9).length;
  const r = pearson(
    test.map((s) => s[field]),
    test.map((s) => s.people),
  );
  const r4 = (x: number) => Math.round(x * 10_000) / 10_000;
  return {
    windows: test.length,
    occupied_windows: occ.length,
    empty_windows: empty.length,
    mae_occupied: occ.length ? r4(mean(occ.map((x) => Math.abs(x.p - x.s.people)))) : null,
    people_when_empty: empty.length ? r4(mean(empty.map((x) => x.p))) : null,
    r: Number.isFinite(r) ? r4(r) : null,
    coverage: scored.length ? r4(inside / scored.length) : null,
  };
}

function asSamples(xs: EvalSample[], field: Field): Sample[] {
  return xs.map((s) => ({ estimate: s[field], people: s.people, session: s.session, time: s.time }));
}

/**
 * For each session: calibrate `estimate` and `devices` on the other sessions, predict people on
 * this one. `options` go to the fit (the bootstrap does not change the line, so few replicates do).
 */
export function leaveOneOut(samples: EvalSample[], options: FitOptions = {}): LeaveOneOut {
  const opts: FitOptions = { replicates: 100, ...options };
  const sessions = [...new Set(samples.map((s) => s.session))];
  if (sessions.length < 2) throw new FitError(`leave-one-out needs at least 2 sessions (got ${sessions.length})`);
  const rows: SessionScores[] = [];
  const pooled: Record<Field, { test: EvalSample[]; pred: People[] }> = { estimate: { test: [], pred: [] }, devices: { test: [], pred: [] } };
  for (const session of sessions) {
    const train = samples.filter((s) => s.session !== session);
    const test = samples.filter((s) => s.session === session);
    const row: Partial<SessionScores> = { session };
    for (const field of ['estimate', 'devices'] as const) {
      let z: ZoneCalibration;
      try {
        z = fitZone(asSamples(train, field), { ...opts, field }, 'loo');
      } catch (e) {
        row.error = (e as Error).message;
        row[field] = score(
          field,
          test,
          test.map(() => null),
        );
        continue;
      }
      const pred = test.map((s) => applyZone(z, s[field]));
      row[field] = score(field, test, pred);
      // (push(...test) throws RangeError past ~100,000 windows)
      for (const s of test) pooled[field].test.push(s);
      for (const p of pred) pooled[field].pred.push(p);
    }
    rows.push(row as SessionScores);
  }
  return {
    sessions: rows,
    overall: { estimate: score('estimate', pooled.estimate.test, pooled.estimate.pred), devices: score('devices', pooled.devices.test, pooled.devices.pred) },
  };
}
