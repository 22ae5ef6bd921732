// What small-count protection costs in accuracy (`presence simulate --evaluate`): every counted
// window of the evaluation goes through the gateway's own protection (gateway/privacy.ts `protect`,
// on the message gateway/window.ts `countsMessage` builds) for each setting of a grid of minimum
// counts k and epsilons, and the published devices, estimate and calibrated people are scored
// against the simulator's truth as the evaluation scores the unprotected counts (MAPE over windows
// whose truth is above zero; a suppressed window counts with its published 0, and with 0 people).
//
// The noise here comes from a seeded generator (the run's seed), so an evaluation is reproducible;
// the gateway draws it from the CSPRNG. The people calibration is the one the evaluation fitted
// on unprotected counts of another seed.
import type { FitResult } from '../aggregator/calibration/index.ts';
import { countsMessage } from '../gateway/window.ts';
import { protect, type Uniform } from '../gateway/privacy.ts';
import { peopleFor, PEOPLE_TRUTH, RADIOS, type CountedWindow, type CountsRadio } from './people.ts';
import { Rng } from './rng.ts';

/** The settings scored: k in {0, 5, 15} x epsilon in {none, 1, 0.5, 0.1}. */
export const PRIVACY_GRID: { minCounts: number[]; epsilons: Array<number | null> } = { minCounts: [0, 5, 15], epsilons: [null, 1, 0.5, 0.1] };

export interface PrivacyRadioScore {
  /** Windows scored for devices (devices in reach above zero). */
  windows: number;
  /** Windows scored for the estimate (the devices it estimates above zero). */
  estimateWindows: number;
  /** Share of all windows published as suppressed, %. */
  suppressedPct: number;
  devicesMape: number;
  estimateMape: number;
  /** Calibrated people from the published estimate (null: no calibration for this radio). */
  peopleMape: number | null;
}

export interface PrivacyRow {
  minCount: number;
  /** null: no noise. */
  epsilon: number | null;
  wifi: PrivacyRadioScore;
  ble: PrivacyRadioScore;
}

const r1 = (x: number) => Math.round(x * 10) / 10;

/** A deterministic uniform stream on (0, 1]. */
function seededUniform(seed: number): Uniform {
  const rng = new Rng(seed).fork('privacy');
  return () => (rng.u32() + 1) / 4294967296;
}

/**
 * Scores every setting of the grid on the evaluation's windows. `fits`: the people calibration per
 * radio (null or absent: people not scored). `windowMs`: the window length (the estimate's noise
 * scale depends on it).
 */
export function evaluatePrivacy(
  windows: CountedWindow[],
  fits: Partial<Record<CountsRadio, FitResult | null>>,
  windowMs: number,
  seed = 1,
  grid = PRIVACY_GRID,
): PrivacyRow[] {
  const rows: PrivacyRow[] = [];
  const id = { site: 'eval', zone: 'eval', gateway: 'eval' };
  for (const minCount of grid.minCounts) {
    for (const epsilon of grid.epsilons) {
      const uniform = seededUniform(seed + minCount * 1000 + Math.round((epsilon ?? 0) * 1000));
      const acc = Object.fromEntries(RADIOS.map((r) => [r, { n: 0, en: 0, all: 0, suppressed: 0, d: 0, e: 0, pn: 0, p: 0 }])) as Record<
        CountsRadio,
        { n: number; en: number; all: number; suppressed: number; d: number; e: number; pn: number; p: number }
      >;
      for (const w of windows) {
        const start = Date.parse(w.truth.start);
        const m = protect(
          countsMessage(id, 1, { start, end: start + windowMs, complete: true }, w.counts),
          { minCount, ...(epsilon !== null ? { epsilon } : {}), windowMs },
          uniform,
        );
        for (const radio of RADIOS) {
          const a = acc[radio];
          const published = m[radio];
          a.all++;
          if (published.suppressed) a.suppressed++;
          // As the evaluation scores them: devices against devices in reach, the estimate against
          // the devices it estimates (BLE: without beacons, which the firmware leaves out of it).
          const truth = w.truth.devices[radio];
          const etruth = radio === 'ble' ? truth - w.truth.devices.byKind.beacon : truth;
          if (truth > 0) {
            a.n++;
            a.d += Math.abs(published.devices - truth) / truth;
          }
          if (etruth > 0) {
            a.en++;
            a.e += Math.abs(published.estimate - etruth) / etruth;
          }
          const f = fits[radio];
          const people = w.truth[PEOPLE_TRUTH];
          if (f && people > 0) {
            // A suppressed window has no people (the aggregator writes none): it counts as 0, as its devices
            // do. The calibration applied to its published 0 gave k * -b people, which a zone shows nowhere.
            const p = published.suppressed
              ? 0
              : peopleFor(f, radio, { ...w, counts: { ...w.counts, [radio]: { ...w.counts[radio], estimate: published.estimate } } });
            if (p !== null) {
              a.pn++;
              a.p += Math.abs(p - people) / people;
            }
          }
        }
      }
      const score = (radio: CountsRadio): PrivacyRadioScore => {
        const a = acc[radio];
        return {
          windows: a.n,
          estimateWindows: a.en,
          suppressedPct: a.all ? r1((a.suppressed / a.all) * 100) : 0,
          devicesMape: a.n ? r1((a.d / a.n) * 100) : 0,
          estimateMape: a.en ? r1((a.e / a.en) * 100) : 0,
          peopleMape: fits[radio] && a.pn ? r1((a.p / a.pn) * 100) : null,
        };
      };
      rows.push({ minCount, epsilon, wifi: score('wifi'), ble: score('ble') });
    }
  }
  return rows;
}

/** The table `presence simulate --evaluate` prints under the evaluation. */
export function privacyTable(rows: PrivacyRow[], Table: typeof import('cli-table3')): string {
  const t = new Table({
    style: { head: [], border: [] },
    head: [
      'k',
      'epsilon',
      'Wi-Fi\nsuppressed %',
      'Wi-Fi distinct\naddresses MAPE %',
      'Wi-Fi devices\npresent MAPE %',
      'people from\nWi-Fi MAPE %',
      'BLE\nsuppressed %',
      'BLE distinct\naddresses MAPE %',
      'BLE devices\npresent MAPE %',
      'people from\nBLE MAPE %',
    ],
  });
  const p = (x: number | null) => (x === null ? '-' : x);
  // A MAPE over no window (no such radio, nothing of it in reach) is '-', not a perfect 0.
  const m = (x: number, windows: number) => (windows > 0 ? x : '-');
  for (const r of rows)
    t.push([
      r.minCount,
      r.epsilon ?? 'none',
      r.wifi.suppressedPct,
      m(r.wifi.devicesMape, r.wifi.windows),
      m(r.wifi.estimateMape, r.wifi.estimateWindows),
      p(r.wifi.peopleMape),
      r.ble.suppressedPct,
      m(r.ble.devicesMape, r.ble.windows),
      m(r.ble.estimateMape, r.ble.estimateWindows),
      p(r.ble.peopleMape),
    ]);
  return (
    [
      'small counts (gateway privacy.min_count = k, privacy.epsilon): the same windows as published with each setting, against the same truth',
      t.toString(),
      "k = 0, epsilon none is the table above. Noise from a generator seeded with the run's seed (the gateway uses the CSPRNG); a suppressed window counts as 0 (devices, estimate and people).",
    ].join('\n') + '\n'
  );
}
