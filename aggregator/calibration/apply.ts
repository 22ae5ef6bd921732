// Applying a calibration: estimate -> people with an interval. people = k * (estimate - b); the
// interval adds the uncertainty of k and b (delta method with their bootstrap sd and correlation)
// to the scatter of single windows around the line (residual_sd), so it says where the people of
// this window are, not only where the line is. A window published with differential-privacy noise
// (privacy.epsilon, gateway/privacy.ts) adds that noise's variance too. Never negative.
import { estimateSensitivity, noiseVariance } from '../../gateway/privacy.ts';
import type { CalibrationFile, ZoneCalibration } from './file.ts';
import { zFor } from './stats.ts';

export interface People {
  value: number;
  low: number;
  high: number;
}

const r2 = (x: number) => Math.round(x * 100) / 100;

/**
 * People for one estimate under one zone's calibration. `noiseVar`: the variance of noise the
 * gateway added to the estimate (0: none), in units of the estimate.
 */
export function applyZone(z: ZoneCalibration, estimate: number, level = z.level ?? 0.9, noiseVar = 0): People {
  const k = z.k.value;
  const b = z.b.value;
  const d = estimate - b;
  const raw = k * d;
  const sk = Number.isFinite(z.k.sd) ? z.k.sd : 0;
  const sb = Number.isFinite(z.b.sd) ? z.b.sd : 0;
  const varLine = d * d * sk * sk + k * k * sb * sb - 2 * d * k * z.corr_kb * sk * sb;
  const s = Math.sqrt(Math.max(0, varLine) + z.residual_sd ** 2 + k * k * noiseVar);
  const h = zFor(level) * s;
  return { value: r2(Math.max(0, raw)), low: r2(Math.max(0, raw - h)), high: r2(Math.max(0, raw + h)) };
}

/** A loaded calibration file, looked up by zone (and site when the zone names one). */
export class Calibration {
  constructor(
    readonly file: CalibrationFile,
    readonly source = 'calibration',
  ) {}

  get field(): 'estimate' | 'devices' {
    return this.file.estimator.field;
  }

  get radio(): 'wifi' | 'ble' {
    return this.file.estimator.radio;
  }

  zones(): string[] {
    return Object.keys(this.file.zones);
  }

  zone(zone: string, site?: string): ZoneCalibration | null {
    const z = Object.hasOwn(this.file.zones, zone) ? this.file.zones[zone] : undefined;
    if (!z || (z.site !== undefined && site !== undefined && z.site !== site)) return null;
    return z;
  }

  /** People for `estimate` in `zone`, or null when the zone is not calibrated. */
  apply(zone: string, estimate: number, site?: string): People | null {
    const z = this.zone(zone, site);
    return z ? applyZone(z, estimate, this.file.level) : null;
  }
}

/** The window of a counts message, as far as calibration cares. */
export interface CountsWindow {
  site: string;
  zone: string;
  start: string;
  end: string;
  complete: boolean;
  /** The gateway's small-count protection, when on: with an epsilon, its counts carry noise. */
  privacy?: { epsilon?: number };
}

/**
 * The zone's calibration when it holds for this radio's counts of a window, or null: the zone is
 * not calibrated, the radio is not the calibrated one, or the window is not one the fit holds for (a
 * complete window of another length, or a cut-short one longer than the fitted length). Suppression
 * does not matter here: a suppressed window of a calibrated zone is still a calibrated zone's window
 * (the aggregator marks its point `calibrated`), it only has no people.
 */
export function calibrationFor(cal: Calibration | null, w: CountsWindow, radio: 'wifi' | 'ble'): ZoneCalibration | null {
  if (!cal || cal.radio !== radio) return null;
  const z = cal.zone(w.zone, w.site);
  if (!z) return null;
  const len = Date.parse(w.end) - Date.parse(w.start);
  const fitted = cal.file.estimator.window_s * 1000;
  return (w.complete ? len === fitted : len <= fitted) ? z : null;
}

/**
 * People for one radio's counts of a window, or null: no calibration holds for it (calibrationFor),
 * or the radio's counts were suppressed
 * by the gateway's small-count protection (their 0 stands for "fewer than min_count", not for a
 * count: people read from it would say 0 with an interval that does not hold the truth). With
 * privacy.epsilon the interval is widened by the variance of the two-sided geometric noise on the
 * calibrated field (sensitivity 1 on devices, estimateSensitivity of the fitted window on the
 * estimate), so it still holds where the people are; null when that interval is not finite (an
 * epsilon below about 1e-16: the noise swamps any count).
 */
export function windowPeople(
  cal: Calibration | null,
  w: CountsWindow,
  radio: 'wifi' | 'ble',
  r: { devices: number; estimate: number; suppressed?: boolean },
): People | null {
  if (r.suppressed === true) return null;
  const z = calibrationFor(cal, w, radio);
  if (!cal || !z) return null;
  const fitted = cal.file.estimator.window_s * 1000;
  const eps = w.privacy?.epsilon;
  const noise = eps !== undefined && eps > 0 ? noiseVariance(eps, cal.field === 'devices' ? 1 : estimateSensitivity(fitted)) : 0;
  const p = applyZone(z, r[cal.field], cal.file.level, noise);
  // An epsilon so small (below about 1e-16) that the noise's variance, or the interval it gives, is
  // past what a double holds: the count says nothing about people, and people_high=Infinity is no
  // value line protocol holds (InfluxDB would refuse the point, counts and all).
  return Number.isFinite(p.high) ? p : null;
}

/**
 * The line-protocol field `calibrated=T` (with its trailing comma, it sorts before `complete`) for
 * one radio's point of a counts message that a calibration holds for, suppressed or not, or ''.
 * It is what keeps a calibrated zone recognisable when none of its windows in a range has people
 * (all suppressed): the crowd dashboard's calibrated_wifi / calibrated_ble select on it.
 */
export function calibratedField(cal: Calibration | null, w: CountsWindow, radio: 'wifi' | 'ble'): string {
  return calibrationFor(cal, w, radio) ? 'calibrated=T,' : '';
}

/**
 * Line-protocol fields `people`, `people_high`, `people_low` (floats, in the client's sorted order)
 * for one radio's point of a counts message, or '' (see windowPeople).
 */
export function peopleFields(
  cal: Calibration | null,
  w: CountsWindow,
  radio: 'wifi' | 'ble',
  r: { devices: number; estimate: number; suppressed?: boolean },
): string {
  const p = windowPeople(cal, w, radio, r);
  return p ? `,people=${p.value},people_high=${p.high},people_low=${p.low}` : '';
}
