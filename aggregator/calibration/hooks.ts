// Small hooks that put calibrated people where a person looks: `presence replay --calibration`
// and the aggregator's points. Kept here so the files they hook into change by a few lines.
import { BURST_ADDRESSES_DEFAULT } from '../../firmware/host/types.ts';
import type { Logger } from 'pino';
import { Calibration, type CountsWindow, type People } from './apply.ts';
import { CalibrationFileError, readCalibration } from './file.ts';
import { CALIBRATION_FILE_HINT } from './reload.ts';

/** The radio counts a calibration reads (the shape of a replay window or a counts message). */
interface RadioCounts {
  devices: number;
  estimate: number;
}

/** People of a replayed window, with the radio the calibration reads and a note for the replay's notes. */
export type ReplayPeople = ((w: { wifi: RadioCounts; ble: RadioCounts }) => { people: People }) & { radio: 'wifi' | 'ble'; note?: string };

/**
 * Loads a calibration for `presence replay --calibration FILE --zone Z` and returns what to add to
 * each window. The zone must be in the file, and the window length must be the one it was fitted on.
 */
export function replayPeople(file: string, zone: string | undefined, windowMs: number | 'all', rssiMinDbm?: number, burstAddresses?: number): ReplayPeople {
  let cal: Calibration;
  try {
    cal = new Calibration(readCalibration(file), file);
  } catch (e) {
    // A file that does not read (bad YAML, a value hand-edited out of bounds) is named as the
    // aggregator names it, with the same fix (it got the hint to read replay's --help).
    throw Object.assign(new CalibrationFileError(`--calibration ${(e as Error).message}`), { hint: CALIBRATION_FILE_HINT });
  }
  if (!zone) throw new CalibrationFileError(`--calibration needs --zone (zones in ${file}: ${cal.zones().join(', ')})`);
  const z = cal.zone(zone);
  if (!z)
    throw new CalibrationFileError(
      `zone ${zone} is not in ${file} (zones there: ${cal.zones().join(', ')}); fix: pass one of them to --zone, or calibrate this zone`,
    );
  const fitted = cal.file.estimator.window_s * 1000;
  if (windowMs !== fitted) {
    throw new CalibrationFileError(
      `${file} was fitted on ${cal.file.estimator.window_s} s windows; fix: replay with --window ${cal.file.estimator.window_s}s (a count of ${windowMs === 'all' ? 'the whole capture' : `${windowMs / 1000} s windows`} means something else)`,
    );
  }
  const { field, radio, rssi_min_dbm: rssi, counted_by: countedBy } = cal.file.estimator;
  const fn = (w: { wifi: RadioCounts; ble: RadioCounts }) => ({ people: cal.apply(zone, w[radio][field])! });
  if (countedBy === 'gateways') {
    // Fitted on what the gateways stored: their frame gate and burst divisor are not in the file, so
    // they cannot be checked; the note says the replay must use the gateways' own.
    return Object.assign(fn, {
      radio,
      note: `${file} was fitted on the counts the gateways stored, whose --rssi-min and --burst-addresses it does not record: its people hold for this replay only if it used the gateways' settings`,
    });
  }
  if (rssi !== rssiMinDbm) {
    const fix = rssi === undefined ? 'replay without --rssi-min' : `replay with --rssi-min ${rssi}`;
    throw new CalibrationFileError(
      `${file} was fitted on ${rssi === undefined ? 'all frames' : `frames of ${rssi} dBm and stronger`}; fix: ${fix} (other frames give other counts)`,
    );
  }
  const fittedBurst = cal.file.estimator.burst_addresses ?? BURST_ADDRESSES_DEFAULT;
  const givenBurst = burstAddresses ?? BURST_ADDRESSES_DEFAULT;
  if (radio === 'wifi' && field === 'estimate' && fittedBurst !== givenBurst) {
    throw new CalibrationFileError(
      `${file} was fitted on Wi-Fi estimates counted with ${fittedBurst} burst addresses; fix: replay with --burst-addresses ${fittedBurst} (another divisor gives other estimates)`,
    );
  }
  return Object.assign(fn, { radio });
}

/**
 * Says (once per calibration, site, zone and window length; warn) when a calibrated zone's complete
 * windows get no people because they are not the length the calibration was fitted on: the zone
 * then shows devices (uncalibrated), and without this line nothing would tell why.
 */
export class WindowMismatchNotes {
  private cal: Calibration | null = null;
  private readonly said = new Set<string>();

  check(cal: Calibration | null, m: CountsWindow & { gateway: string }, log: Logger): void {
    if (!cal || !m.complete || !cal.zone(m.zone, m.site)) return;
    const fitted = cal.file.estimator.window_s;
    const len = (Date.parse(m.end) - Date.parse(m.start)) / 1000;
    if (len === fitted) return;
    if (cal !== this.cal) {
      this.cal = cal;
      this.said.clear();
    }
    const key = `${m.site}/${m.zone}/${len}`;
    if (this.said.has(key) || this.said.size >= 1000) return;
    this.said.add(key);
    log.warn(
      { site: m.site, zone: m.zone, gateway: m.gateway, window_s: len, calibration: cal.source, calibration_window_s: fitted },
      `calibrated zone gets no people: its gateways count ${len} s windows, the calibration was fitted on ${fitted} s windows; fix: calibrate on ${len} s windows (presence calibrate --window ${len}s) or set the gateways' window to ${fitted}s`,
    );
  }
}

/**
 * Zones of a calibration that no registered gateway is in: their people are never written, which
 * nothing else would show (a zone id mistyped in `presence calibrate --zone`, or a calibration of
 * another site). Empty without a registry, or when unregistered gateways are accepted (they may be
 * in any zone).
 */
export function calibratedZonesOutsideRegistry(cal: Calibration, registry: Array<{ site: string; zone: string }>, allowUnknown: boolean): string[] {
  if (registry.length === 0 || allowUnknown) return [];
  return cal.zones().filter((zone) => !registry.some((g) => cal.zone(zone, g.site) !== null && g.zone === zone));
}

/** Says (warn) which zones of the calibration no registered gateway is in; nothing when all are. */
export function warnCalibratedZonesOutsideRegistry(
  cal: Calibration,
  file: string,
  identity: { entries: Array<{ site: string; zone: string }>; allowUnknown: boolean },
  log: Logger,
): void {
  const outside = calibratedZonesOutsideRegistry(cal, identity.entries, identity.allowUnknown);
  if (outside.length === 0) return;
  const registered = [...new Set(identity.entries.map((g) => `${g.site}/${g.zone}`))].sort();
  log.warn(
    {
      file,
      zones: outside,
      registered_zones: registered.slice(0, 50),
      fix: 'the calibration must name the zones as the gateways are registered (presence calibrate --zone, gateways.registry): calibrate those zones, or correct the ids',
    },
    `calibration zone${outside.length === 1 ? '' : 's'} ${outside.slice(0, 20).join(', ')} ${outside.length === 1 ? 'is' : 'are'} in no registered gateway's zone: no window there gets people`,
  );
}
