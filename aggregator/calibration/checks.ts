// Checks that say when the data cannot support a fit: too few sessions, too few windows, no spread
// in occupancy, an estimate that hardly follows the people (a low r), one that does not rise with people, sessions that the one line misses by
// much (the people per counted device changed between them), and a relation that is not a straight
// line (curvature that the session bootstrap says is real and large enough to matter).
import type { Sample } from './fit.ts';
import { max, mean, min, pearson, quadratic, quantile, sd, t975 } from './stats.ts';

export interface FitChecks {
  warnings: string[];
  /**
   * Quadratic minus straight line at the median occupancy (people), and its 95 % interval over
   * sessions; null when it was too small to matter or could not be judged.
   */
  curvature: { sag: number; low: number; high: number } | null;
}

export const MIN_SESSIONS = 3;
/**
 * Below this Pearson r of the estimate with the people (where occupancy does vary) the estimate
 * hardly follows the people: a line through the data is a line through noise. The lab captures'
 * 12 days together have r 0.89; a flat span of 12-17 people has 0.02.
 */
export const MIN_R = 0.5;
export const MIN_WINDOWS = 30;
/**
 * A session disagrees when the line fitted on all of them misses its windows by more than this on
 * average: 1 person, or 15 % of the session's mean people where that is more. Sessions of fewer than
 * 10 windows are not judged (their mean says little).
 */
export const SESSION_MISS = { people: 1, share: 0.15, minWindows: 10 };

/** The mean miss of the line (people it reads minus people present) per session. */
function sessionMisses(samples: Sample[], line: { a: number; c: number }): { session: string; miss: number; people: number }[] {
  const by = new Map<string, { n: number; miss: number; people: number }>();
  for (const s of samples) {
    const e = by.get(s.session) ?? { n: 0, miss: 0, people: 0 };
    e.n++;
    e.miss += (s.estimate - line.a) / line.c - s.people;
    e.people += s.people;
    by.set(s.session, e);
  }
  return [...by].filter(([, e]) => e.n >= SESSION_MISS.minWindows).map(([session, e]) => ({ session, miss: e.miss / e.n, people: e.people / e.n }));
}

const missWords = (m: { session: string; miss: number }) => `${Math.abs(m.miss).toFixed(1)} people too ${m.miss < 0 ? 'few' : 'many'} (${m.session})`;

/** The counts field as the subject of a sentence: "the estimate", "the devices count". */
export const fieldWords = (field: string) => (field === 'estimate' ? field : `${field} count`);

export function checkFit(
  zone: string,
  samples: Sample[],
  /** The line fitted; `slopeSpread` set: its slope was too poorly determined to fit b (fit.ts). */
  line: { a: number; c: number; slopeSpread?: number },
  draws: Sample[][],
  degenerate: number,
  replicates: number,
  units: number,
  sessions: number,
  /** Name of the counts field fitted (`estimate`, or `devices`: the distinct addresses), for the words. */
  field = 'estimate',
): FitChecks {
  const w: string[] = [];
  const z = `zone ${zone}`;
  if (sessions < MIN_SESSIONS) {
    w.push(
      sessions === 1
        ? `${z}: one session only: the interval comes from blocks of that session's consecutive windows (10, fewer where that leaves under 5 blocks) and is too narrow; calibrate on at least ${MIN_SESSIONS} sessions (days or captures)`
        : `${z}: ${sessions} sessions only: the bootstrap over sessions cannot give an honest interval; calibrate on at least ${MIN_SESSIONS}`,
    );
  }
  if (samples.length < MIN_WINDOWS) w.push(`${z}: ${samples.length} windows only; a fit wants at least ${MIN_WINDOWS}`);

  const people = samples.map((s) => s.people);
  const distinct = new Set(people.map((p) => Math.round(p))).size;
  const spread = sd(people);
  if (distinct < 3 || spread < 1) {
    w.push(
      `${z}: occupancy hardly varies (${distinct} distinct value(s), sd ${spread.toFixed(2)} people): k cannot be told from b; include empty and busy periods`,
    );
  } else {
    const r = pearson(
      people,
      samples.map((s) => s.estimate),
    );
    if (!(r >= MIN_R))
      w.push(
        `${z}: the ${fieldWords(field)} hardly follows the people in these data (Pearson r ${Number.isFinite(r) ? r.toFixed(2) : 'undefined'}, below ${MIN_R}): ` +
          "a line through them says little about a window's people; check the truth's times line up with the capture, that the sensor hears the zone (its RSSI gate), and calibrate on periods whose occupancy changes",
      );
  }
  if (degenerate > replicates * 0.05) {
    w.push(`${z}: ${Math.round((degenerate / replicates) * 100)} % of the bootstrap samples give no rising line: k and b are poorly determined`);
  }
  if (sessions >= 2 && line.c > 0) {
    const misses = sessionMisses(samples, line);
    const off = misses.filter((m) => Math.abs(m.miss) > Math.max(SESSION_MISS.people, SESSION_MISS.share * m.people));
    if (off.length > 0) {
      const sorted = [...misses].sort((x, y) => x.miss - y.miss);
      w.push(
        `${z}: the sessions disagree: over a session the line reads on average from ${missWords(sorted[0])} to ${missWords(sorted[sorted.length - 1])}, ` +
          `and misses ${off.length} of ${misses.length} sessions by more than ${SESSION_MISS.people} person or ${SESSION_MISS.share * 100} % of their people, whichever is more: ` +
          `the people per counted device changed between them (other phones, fixed equipment switched on or off, the sensor moved); ` +
          `expect a new session to be off as much, and recalibrate when the zone changes`,
      );
    }
  }
  if (!samples.some((s) => s.people === 0)) {
    w.push(`${z}: no empty-room windows: b (what fixed equipment shows with nobody there) is extrapolated`);
  }

  // Curvature: a quadratic of the estimate in people against the straight line, compared at the
  // median occupancy and expressed in people (divided by the estimate per person).
  let curvature: FitChecks['curvature'] = null;
  const est = samples.map((s) => s.estimate);
  const quad = quadratic(people, est);
  // Not where the slope could not be told from b (already warned): a curve against a line whose
  // slope the data do not fix says nothing, and its difference divided by that slope runs wild
  // (-31 people at 16 on three lab spans of 12 to 17 people).
  if (quad && units >= 2 && line.c > 0 && line.slopeSpread === undefined) {
    const mid = quantile(people, 0.5);
    const sagOf = (x: number[], y: number[]): number | null => {
      const q = quadratic(x, y);
      if (!q) return null;
      const mx = mean(x);
      const my = mean(y);
      let sxy = 0,
        sxx = 0;
      for (let i = 0; i < x.length; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) ** 2;
      }
      if (!(sxx > 0) || !(sxy > 0)) return null;
      const c = sxy / sxx;
      return (q.predict(mid) - (my - c * mx + c * mid)) / c;
    };
    const sags: number[] = [];
    for (const d of draws.slice(0, 300)) {
      const v = sagOf(
        d.map((s) => s.people),
        d.map((s) => s.estimate),
      );
      if (v !== null) sags.push(v);
    }
    const s0 = sagOf(people, est);
    const range = max(people) - min(people);
    if (s0 !== null && Math.abs(s0) > Math.max(0.5, 0.05 * range)) {
      // Large enough to matter in these data: is it more than the sessions' differences? With few
      // sessions the bootstrap's percentiles cannot say (with 3, its 2.5 % and 97.5 % points are
      // about the least and largest single session's curve, so three sessions bending the same way,
      // which happens one time in four by chance, would read as a 95 % interval without 0). The
      // interval is therefore s0 +- t(n - 1) x its bootstrap sd x sqrt(n / (n - 1)): the sd of a
      // bootstrap over n sessions is short by that factor, and the t quantile is that of n - 1
      // degrees of freedom. Below MIN_SESSIONS, or without enough bootstrap samples, it cannot judge.
      const at = `at the median occupancy (${quantile(people, 0.5).toFixed(1)} people) a curve differs from the line by ${s0.toFixed(2)} people`;
      // Mean of what the line reads minus the people present, by thirds of the occupancy (people).
      const order = [...samples.keys()].sort((i, j) => people[i] - people[j]);
      const third = Math.ceil(order.length / 3);
      const res = [0, 1, 2].map((t) => mean(order.slice(t * third, (t + 1) * third).map((i) => (est[i] - line.a - line.c * people[i]) / line.c)));
      const thirds = `over the lowest, middle and highest third of the occupancy the line reads on average ${res.map((r) => r.toFixed(2)).join(' / ')} people too many (below 0: too few)`;
      const n = sessions;
      const se = n >= MIN_SESSIONS && sags.length >= 20 ? sd(sags) * Math.sqrt(n / (n - 1)) : NaN;
      const h = t975(n - 1) * se;
      if (Number.isFinite(h)) curvature = { sag: s0, low: s0 - h, high: s0 + h };
      const interval = curvature ? ` (95 % interval over ${n} sessions ${curvature.low.toFixed(2)} to ${curvature.high.toFixed(2)})` : '';
      if (curvature && (curvature.low > 0 || curvature.high < 0)) {
        w.push(
          `${z}: the relation is not a straight line: ${at}${interval}; ${thirds}: ` +
            'so the calibration is off within the range it was fitted on, and more beyond it; use it only within that range',
        );
      } else {
        w.push(
          `${z}: cannot tell whether the relation is a straight line: in these data ${at}${interval}, but ${
            curvature
              ? 'that is within what the sessions differ by; ' + thirds + '; calibrate on more sessions over the same range of occupancy to judge'
              : `${n} session(s) cannot tell that from how sessions differ; ${thirds}; calibrate on at least ${MIN_SESSIONS} sessions to judge`
          }`,
        );
      }
    }
  }
  return { warnings: w, curvature };
}
