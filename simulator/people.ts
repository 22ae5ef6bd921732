// People from counts in the evaluation: a calibration (aggregator/calibration: people = k * (estimate
// - b) per zone, the same fit `presence calibrate` makes) fitted on the windows of one simulated run
// and applied to the windows of another run with a different seed, so the score is out of sample.
// One calibration per radio, as a calibration file holds one: people from the Wi-Fi estimate and
// people from the BLE estimate are scored separately. The evaluation also scores both radios in one
// figure (`fitCombined`): per zone, the two calibrated values weighted by how far each one was off on
// the fitting run (minimum-variance weights from the covariance of their errors there), with an
// interval from the same errors and the calibrations' own uncertainty. No calibration file holds
// that combination: it says what using both radios would give, nothing the aggregator publishes.
//
// The truth is people present, time-averaged over the window (`peopleMean`), as the calibration is
// fitted against occupancy in the field.
import { applyZone, fit, FitError, type FitResult, type People, type Sample, type ZoneFit } from '../aggregator/calibration/index.ts';
import { zFor } from '../aggregator/calibration/stats.ts';
import type { FirmwareWindowCounts } from '../firmware/host/types.ts';
import type { TruthWindow } from './truth.ts';

export type CountsRadio = 'wifi' | 'ble';
export const RADIOS: readonly CountsRadio[] = ['wifi', 'ble'];

/** One gateway window: what the firmware counted and what the simulator knows was there. */
export interface CountedWindow {
  /** Index of the gateway in the scenario. */
  gateway: number;
  zone: string;
  counts: FirmwareWindowCounts;
  truth: TruthWindow;
}

/** The ground truth people are scored against. */
export const PEOPLE_TRUTH = 'peopleMean';
const peopleOf = (t: TruthWindow) => t.peopleMean;

export interface PeopleScore {
  /** Windows scored (people present above zero). */
  windows: number;
  /** Mean absolute percentage error of calibrated people against people present, %. */
  mape: number;
  /** Mean absolute error, people. */
  mae: number;
  /**
   * Weighted absolute percentage error, %: the absolute errors summed over the windows scored,
   * divided by the people summed over them. Unlike the MAPE, a window with few people does not
   * weigh more than a crowded one.
   */
  wape: number;
  /** Share of the windows scored whose people lie inside the interval given with the value, % (the fit's level is 90 %). */
  coverage: number;
  /** Mean people present over the windows scored, for scale. */
  meanPeople: number;
}

/** A radio's calibration as fitted for the evaluation: per zone k and b, or why it could not be fitted. */
export interface FittedCalibration {
  radio: CountsRadio;
  zones: Array<{ zone: string; k: number; b: number; warnings: string[] }>;
  /** Set when no calibration could be fitted (then nothing is scored as people). */
  error?: string;
}

/** Fits people = k * (estimate - b) per zone from the windows of one run (the session is the run). */
export function fitPeople(windows: CountedWindow[], radio: CountsRadio, session: string): { fit: FitResult | null; summary: FittedCalibration } {
  return fitOn(windows, (w) => w.counts[radio].estimate, radio, session);
}

/**
 * The physical devices in reach as the simulator knows them (truth.devices.total): no radio
 * measures this, so people calibrated from it (`fitReference`) are the reference a perfect count
 * of devices would reach; what is left is how many devices the people present happen to carry.
 */
const inReach = (w: CountedWindow) => w.truth.devices.total;

/**
 * The phones in reach as the simulator knows them (truth.devices.byKind.phone): the reference a
 * perfect count of phones alone would reach (watches, earbuds, tablets, laptops, trackers and
 * fixed equipment left out). Beside `inReach` it says how much of the error is the number of
 * devices each person carries rather than the counting.
 */
const phonesInReach = (w: CountedWindow) => w.truth.devices.byKind.phone;

/** What a reference is fitted on: every device in reach, or the phones in reach. */
export type ReferenceTruth = 'devices' | 'phones';
const REFERENCE: Record<ReferenceTruth, (w: CountedWindow) => number> = { devices: inReach, phones: phonesInReach };

/** The same fit on the devices (or phones) in reach (truth) in place of an estimate: the reference. */
export function fitReference(windows: CountedWindow[], session: string, of: ReferenceTruth = 'devices'): FitResult | null {
  return fitOn(windows, REFERENCE[of], 'wifi', session).fit;
}

/** Scores people calibrated from the devices (or phones) in reach (`fitReference`), per gateway and overall. */
export function scoreReference(
  f: FitResult,
  windows: CountedWindow[],
  gateways: number,
  of: ReferenceTruth = 'devices',
): { perGateway: PeopleScore[]; overall: PeopleScore } {
  return scoreWith(
    (w) => {
      const z = zoneOf(f, w.zone);
      return z ? applyZone(z, REFERENCE[of](w)) : null;
    },
    windows,
    gateways,
  );
}

function fitOn(
  windows: CountedWindow[],
  x: (w: CountedWindow) => number,
  radio: CountsRadio,
  session: string,
): { fit: FitResult | null; summary: FittedCalibration } {
  const samples: Sample[] = windows.map((w) => ({
    estimate: x(w),
    people: peopleOf(w.truth),
    session,
    zone: w.zone,
    time: Date.parse(w.truth.start),
  }));
  try {
    const r = fit(samples, { replicates: 200, seed: 1 });
    return { fit: r, summary: { radio, zones: r.zones.map((z) => ({ zone: z.zone, k: z.k.value, b: z.b.value, warnings: z.warnings })) } };
  } catch (e) {
    if (!(e instanceof FitError)) throw e;
    return { fit: null, summary: { radio, zones: [], error: e.message } };
  }
}

export class PeopleAcc {
  private n = 0;
  private pctErr = 0;
  private absErr = 0;
  private people = 0;
  private inside = 0;

  /** One window: the calibrated value (with its interval, when given) and the people present. */
  add(predicted: number | People, truth: number): void {
    if (truth <= 0) return;
    const p = typeof predicted === 'number' ? { value: predicted, low: predicted, high: predicted } : predicted;
    this.n++;
    this.pctErr += Math.abs(p.value - truth) / truth;
    this.absErr += Math.abs(p.value - truth);
    this.people += truth;
    if (truth >= p.low && truth <= p.high) this.inside++;
  }

  score(): PeopleScore {
    const r = (x: number) => Math.round(x * 10) / 10;
    const r2 = (x: number) => Math.round(x * 100) / 100;
    return {
      windows: this.n,
      mape: this.n ? r((this.pctErr / this.n) * 100) : 0,
      mae: this.n ? r2(this.absErr / this.n) : 0,
      wape: this.people > 0 ? r((this.absErr / this.people) * 100) : 0,
      coverage: this.n ? r((this.inside / this.n) * 100) : 0,
      meanPeople: this.n ? r2(this.people / this.n) : 0,
    };
  }
}

const zoneOf = (f: FitResult | null, zone: string): ZoneFit | null => f?.zones.find((x) => x.zone === zone) ?? null;

/** Calibrated people for one window with its interval, or null when its zone has no calibration. */
export function peopleWithInterval(f: FitResult, radio: CountsRadio, w: CountedWindow): People | null {
  const z = zoneOf(f, w.zone);
  return z ? applyZone(z, w.counts[radio].estimate) : null;
}

/** Calibrated people for one window, or null when its zone has no calibration. */
export function peopleFor(f: FitResult, radio: CountsRadio, w: CountedWindow): number | null {
  return peopleWithInterval(f, radio, w)?.value ?? null;
}

/** Scores calibrated people per gateway and overall, for one radio's calibration. */
export function scorePeople(f: FitResult, radio: CountsRadio, windows: CountedWindow[], gateways: number): { perGateway: PeopleScore[]; overall: PeopleScore } {
  return scoreWith((w) => peopleWithInterval(f, radio, w), windows, gateways);
}

function scoreWith(
  people: (w: CountedWindow) => People | null,
  windows: CountedWindow[],
  gateways: number,
): { perGateway: PeopleScore[]; overall: PeopleScore } {
  const per = Array.from({ length: gateways }, () => new PeopleAcc());
  const all = new PeopleAcc();
  for (const w of windows) {
    const p = people(w);
    if (p === null) continue;
    per[w.gateway].add(p, peopleOf(w.truth));
    all.add(p, peopleOf(w.truth));
  }
  return { perGateway: per.map((a) => a.score()), overall: all.score() };
}

/** Both radios in one figure, per zone: people = wifi * Wi-Fi people + (1 - wifi) * BLE people. */
export interface CombinedZone {
  zone: string;
  /** Weight of the Wi-Fi value (0: BLE alone, 1: Wi-Fi alone, when only one radio is calibrated in the zone). */
  wifi: number;
  /** Standard deviation of the combined value around the people on the fitting run (people). */
  residualSd: number;
}

export interface CombinedFit {
  zones: CombinedZone[];
  level: number;
}

/** The uncalibrated part of a prediction's variance: the spread of k and b (delta method, as applyZone). */
function lineVariance(z: ZoneFit, estimate: number): number {
  const d = estimate - z.b.value;
  const sk = Number.isFinite(z.k.sd) ? z.k.sd : 0;
  const sb = Number.isFinite(z.b.sd) ? z.b.sd : 0;
  return Math.max(0, d * d * sk * sk + z.k.value ** 2 * sb * sb - 2 * d * z.k.value * z.corr_kb * sk * sb);
}

/**
 * Fits the combination of both radios' calibrated people per zone on the fitting run's windows:
 * the errors of the two values there (value - people) give a covariance C; the weight of Wi-Fi is
 * the minimum-variance one, (C_bb - C_wb) / (C_ww + C_bb - 2 C_wb), kept within 0..1, and the
 * combination's spread is sqrt(w' C w). A zone calibrated on one radio only takes that radio.
 */
export function fitCombined(windows: CountedWindow[], fits: Record<CountsRadio, FitResult | null>, level = 0.9): CombinedFit | null {
  if (!fits.wifi && !fits.ble) return null;
  const zones: CombinedZone[] = [];
  const names = [...new Set(windows.map((w) => w.zone))];
  for (const zone of names) {
    const zw = zoneOf(fits.wifi, zone);
    const zb = zoneOf(fits.ble, zone);
    if (!zw && !zb) continue;
    const errs: Array<[number, number]> = [];
    for (const w of windows) {
      if (w.zone !== zone) continue;
      const t = peopleOf(w.truth);
      const pw = zw ? zw.k.value * (w.counts.wifi.estimate - zw.b.value) : 0;
      const pb = zb ? zb.k.value * (w.counts.ble.estimate - zb.b.value) : 0;
      errs.push([pw - t, pb - t]);
    }
    const n = Math.max(1, errs.length);
    const cww = errs.reduce((a, [e]) => a + e * e, 0) / n;
    const cbb = errs.reduce((a, [, e]) => a + e * e, 0) / n;
    const cwb = errs.reduce((a, [x, y]) => a + x * y, 0) / n;
    let wifi: number;
    if (!zb) wifi = 1;
    else if (!zw) wifi = 0;
    else {
      const den = cww + cbb - 2 * cwb;
      wifi = den > 1e-12 ? Math.min(1, Math.max(0, (cbb - cwb) / den)) : 0.5;
    }
    const v = wifi * wifi * cww + (1 - wifi) ** 2 * cbb + 2 * wifi * (1 - wifi) * cwb;
    zones.push({ zone, wifi: Math.round(wifi * 1000) / 1000, residualSd: Math.round(Math.sqrt(Math.max(0, v)) * 1000) / 1000 });
  }
  return { zones, level };
}

/**
 * People of one window from both radios with an interval: the weighted values, and the interval
 * from the combination's spread on the fitting run plus the weighted spread of each calibration's
 * k and b at this window's estimates. Null when the zone has neither radio calibrated.
 */
export function combinedFor(c: CombinedFit, fits: Record<CountsRadio, FitResult | null>, w: CountedWindow): People | null {
  const cz = c.zones.find((z) => z.zone === w.zone);
  if (!cz) return null;
  const zw = cz.wifi > 0 ? zoneOf(fits.wifi, w.zone) : null;
  const zb = cz.wifi < 1 ? zoneOf(fits.ble, w.zone) : null;
  let value = 0;
  let lineVar = 0;
  if (zw) {
    value += cz.wifi * zw.k.value * (w.counts.wifi.estimate - zw.b.value);
    lineVar += cz.wifi ** 2 * lineVariance(zw, w.counts.wifi.estimate);
  }
  if (zb) {
    value += (1 - cz.wifi) * zb.k.value * (w.counts.ble.estimate - zb.b.value);
    lineVar += (1 - cz.wifi) ** 2 * lineVariance(zb, w.counts.ble.estimate);
  }
  const h = zFor(c.level) * Math.sqrt(lineVar + cz.residualSd ** 2);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return { value: r2(Math.max(0, value)), low: r2(Math.max(0, value - h)), high: r2(Math.max(0, value + h)) };
}

/** Scores people from both radios per gateway and overall. */
export function scoreCombined(
  c: CombinedFit,
  fits: Record<CountsRadio, FitResult | null>,
  windows: CountedWindow[],
  gateways: number,
): { perGateway: PeopleScore[]; overall: PeopleScore } {
  return scoreWith((w) => combinedFor(c, fits, w), windows, gateways);
}
