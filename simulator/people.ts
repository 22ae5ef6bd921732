// People from counts in the evaluation: a calibration (aggregator/calibration: people = k * (estimate
// - b) per zone, the same fit `presence calibrate` makes) fitted on the windows of one simulated run
// and applied to the windows of another run with a different seed, so the score is out of sample.
// One calibration per radio, as a calibration file holds one: people from the Wi-Fi estimate and
// people from the BLE estimate are scored separately.
//
// The truth is people present, time-averaged over the window (`peopleMean`), as the calibration is
// fitted against occupancy in the field.
import { applyZone, fit, FitError, type FitResult, type Sample, type ZoneFit } from '../aggregator/calibration/index.ts';
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
  const samples: Sample[] = windows.map((w) => ({
    estimate: w.counts[radio].estimate,
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

  add(predicted: number, truth: number): void {
    if (truth <= 0) return;
    this.n++;
    this.pctErr += Math.abs(predicted - truth) / truth;
    this.absErr += Math.abs(predicted - truth);
    this.people += truth;
  }

  score(): PeopleScore {
    const r = (x: number) => Math.round(x * 10) / 10;
    const r2 = (x: number) => Math.round(x * 100) / 100;
    return {
      windows: this.n,
      mape: this.n ? r((this.pctErr / this.n) * 100) : 0,
      mae: this.n ? r2(this.absErr / this.n) : 0,
      meanPeople: this.n ? r2(this.people / this.n) : 0,
    };
  }
}

/** Calibrated people for one window, or null when its zone has no calibration. */
export function peopleFor(f: FitResult, radio: CountsRadio, w: CountedWindow): number | null {
  const z: ZoneFit | undefined = f.zones.find((x) => x.zone === w.zone);
  return z ? applyZone(z, w.counts[radio].estimate).value : null;
}

/** Scores calibrated people per gateway and overall, for one radio's calibration. */
export function scorePeople(f: FitResult, radio: CountsRadio, windows: CountedWindow[], gateways: number): { perGateway: PeopleScore[]; overall: PeopleScore } {
  const per = Array.from({ length: gateways }, () => new PeopleAcc());
  const all = new PeopleAcc();
  for (const w of windows) {
    const p = peopleFor(f, radio, w);
    if (p === null) continue;
    per[w.gateway].add(p, peopleOf(w.truth));
    all.add(p, peopleOf(w.truth));
  }
  return { perGateway: per.map((a) => a.score()), overall: all.score() };
}
