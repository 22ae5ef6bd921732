// Evaluation: runs the firmware (the real WASM module) over a scenario's frames, window by window
// on the same window clock as the gateway and `presence replay` (gateway/window.ts; the firmware
// draws a fresh random key for each window), and scores its `devices` and `estimate` against the ground truth as
// the mean absolute percentage error per window. It then turns the estimates into people with a
// calibration fitted on another run of the scenario (another seed: people.ts) and scores those
// against the people present. A change to counting shows its effect here in one command:
// `presence simulate --evaluate`.
import { BURST_ADDRESSES_DEFAULT, BURST_ADDRESSES_MAX, BURST_ADDRESSES_MIN, type Frame } from '../firmware/host/types.ts';
import { burstAddressesHeard, phoneHeardBy } from './phones.ts';
import { WindowClock } from '../gateway/window.ts';
import { loadScenario, type Scenario, type ScenarioOverrides } from './scenario.ts';
import { runScenario, type BleLink } from './sim.ts';
import { evaluatePrivacy, type PrivacyRow } from './privacy-eval.ts';
import { evaluateFlows, hasCorridor, type FlowsScore } from './flows-eval.ts';
import type { FitResult } from '../aggregator/calibration/index.ts';
import {
  fitCombined,
  fitPeople,
  fitReference,
  PEOPLE_TRUTH,
  RADIOS,
  scoreCombined,
  scorePeople,
  scoreReference,
  type CombinedFit,
  type CountedWindow,
  type CountsRadio,
  type FittedCalibration,
  type PeopleScore,
} from './people.ts';

export interface RadioScore {
  /** Windows scored (truth above zero). */
  windows: number;
  /** Mean absolute percentage error of the firmware's distinct-address count against devices in reach. */
  devicesMape: number;
  /**
   * Same for the firmware's estimate of physical devices, against the devices in reach it estimates:
   * on BLE without beacons (iBeacon, Eddystone), which the firmware leaves out of the estimate.
   */
  estimateMape: number;
  /** Windows scored for the estimate (its truth above zero). */
  estimateWindows: number;
  /** Windows where `devices` differs from the distinct addresses in the capture (should be 0: parity). */
  parityMismatches: number;
  /** Sums over the windows, for a sense of scale. */
  truthDevices: number;
  truthEstimated: number;
  firmwareDevices: number;
  firmwareEstimate: number;
  captureAddresses: number;
}

/** Calibrated people from each radio's estimate (null: no calibration could be fitted for that radio). */
export interface PeopleScores {
  wifi: PeopleScore | null;
  ble: PeopleScore | null;
  /** Both radios in one figure (people.ts, fitCombined; null: neither radio calibrated). */
  combined: PeopleScore | null;
  /**
   * The reference: people calibrated the same way from the devices in reach as the simulator knows
   * them (truth, no radio measures it): what a perfect count of devices would reach.
   */
  reference: PeopleScore | null;
  /**
   * The same from the phones in reach (truth, no radio measures it): what a perfect count of
   * phones alone would reach, the other devices people carry left out.
   */
  phones: PeopleScore | null;
}

export interface GatewayScore {
  id: string;
  zone: string;
  /** Addresses of one scan burst the gateway's firmware was told it hears (the Wi-Fi floor's divisor). */
  burstAddresses: number;
  wifi: RadioScore;
  ble: RadioScore;
  people: PeopleScores;
}

/** Issue 9's goal: people within this mean absolute percentage error, calibration fitted on another seed. */
export const PEOPLE_GOAL_MAPE = 15;

/** The figures of a scenario in one line: the uncalibrated estimates' error and people per radio against the goal. */
export interface EvaluationSummary {
  windows: number;
  /** MAPE % of the uncalibrated estimates against the devices in reach they estimate (null: no window to score, e.g. no such radio). */
  wifiEstimateMape: number | null;
  bleEstimateMape: number | null;
  /** MAPE % of people (calibrated on the fit seed) from each radio, both radios, and the references (null: not calibrated). */
  people: { wifi: number | null; ble: number | null; combined: number | null; reference: number | null; phones: number | null };
  goalMape: number;
  /** The radios (and the combination) whose people are within the goal; empty: not met. */
  met: Array<'wifi' | 'ble' | 'combined'>;
}

/** Summarises an evaluation's overall figures against the people goal. */
export function summarise(overall: { wifi: RadioScore; ble: RadioScore; people: PeopleScores }): EvaluationSummary {
  const p = overall.people;
  const mape = (x: PeopleScore | null) => (x && x.windows > 0 && Number.isFinite(x.mape) ? x.mape : null);
  const people = { wifi: mape(p.wifi), ble: mape(p.ble), combined: mape(p.combined), reference: mape(p.reference), phones: mape(p.phones) };
  const met = (['wifi', 'ble', 'combined'] as const).filter((r) => people[r] !== null && people[r]! <= PEOPLE_GOAL_MAPE);
  return {
    windows: overall.wifi.windows,
    // 0 over no window would read as a perfect score.
    wifiEstimateMape: overall.wifi.estimateWindows > 0 ? overall.wifi.estimateMape : null,
    bleEstimateMape: overall.ble.estimateWindows > 0 ? overall.ble.estimateMape : null,
    people,
    goalMape: PEOPLE_GOAL_MAPE,
    met,
  };
}

export interface Evaluation {
  scenario: string;
  seed: number;
  scale: number;
  durationS: number;
  windowS: number;
  gateways: GatewayScore[];
  /** All gateways together. */
  overall: { wifi: RadioScore; ble: RadioScore; people: PeopleScores };
  /** The overall figures against issue 9's people goal (people MAPE <= 15 %). */
  summary: EvaluationSummary;
  /** The calibrations the people were computed with, fitted on the run with `fitSeed` (null: not calibrated). */
  calibration: { fitSeed: number; truth: typeof PEOPLE_TRUTH; wifi: FittedCalibration; ble: FittedCalibration; combined: CombinedFit | null } | null;
  /** The same windows as the gateway would publish them with small-count protection (simulator/privacy-eval.ts). */
  privacy: PrivacyRow[];
  /** Flows between gateways from the corridor sketches (simulator/flows-eval.ts); null without flow crowds passing two gateways. */
  flows: FlowsScore | null;
}

export interface EvaluateOptions extends ScenarioOverrides {
  scenario: string | Scenario;
  seed?: number;
  bleLink?: BleLink;
  /** Firmware window options. */
  ignoreFcs?: boolean;
  rssiMinDbm?: number;
  /** Path of the WASM module (default: the firmware's build). */
  wasmPath?: string;
  /** Seed of the run the people calibration is fitted on (default: seed + 1; must differ from seed). */
  fitSeed?: number;
  /** Fit and score people (default true); false skips the second run. */
  calibrate?: boolean;
  /** Corridor sketch bits and flip probability for the flows evaluation (defaults: SKETCH_DEFAULTS). */
  sketchBits?: number;
  sketchP?: number;
  /** Skip the flows evaluation. */
  flows?: boolean;
  /** Called at every window end of each simulated run (the scored one, then the fitting one) with the windows done so far over both. */
  onWindow?: (done: number) => void;
  /** Called every 65,536 frames with the simulated seconds done so far over both runs (a progress bar inside long windows). */
  onTime?: (simulatedS: number) => void;
  /**
   * Addresses of one scan burst a gateway hears (the Wi-Fi estimate's floor divisor) for every
   * gateway; default: each gateway's own figure from its simulated receiver (receiverBurstAddresses).
   */
  burstAddresses?: number;
}

/** The phone model, seeds and length of the single-phone runs behind receiverBurstAddresses. */
export const BURST_PHONE = { model: 'iphone-ios17', seeds: [1, 2, 3], durationS: 4 * 3600 } as const;
const burstCache = new Map<string, number>();

/**
 * The addresses of one scan burst a simulated Wi-Fi receiver hears: the simulator's model of the
 * iPhone 11 (the phone behind the firmware's default of 7, which is that phone's real capture as
 * three sniffers fixed on channels 1, 6 and 11 hear it) right beside one receiver set up like
 * this one, distinct addresses per 10-s sub-window in which it is heard (simulator/phones.ts,
 * burstAddressesHeard), pooled over BURST_PHONE's seeds. Measured from the simulator's own frames,
 * never from the people counts.
 */
export function receiverBurstAddresses(wifi: { channels: readonly number[]; dwellMs: number; switchMs: number }): number {
  const key = `${wifi.channels.join(',')}/${wifi.dwellMs}/${wifi.switchMs}`;
  const known = burstCache.get(key);
  if (known !== undefined) return known;
  let sum = 0;
  let n = 0;
  for (const seed of BURST_PHONE.seeds) {
    const frames = phoneHeardBy(BURST_PHONE.model, [{ channels: [...wifi.channels], dwell: `${wifi.dwellMs}ms`, switch: `${wifi.switchMs}ms` }], {
      seed,
      durationS: BURST_PHONE.durationS,
    });
    const m = burstAddressesHeard(frames);
    sum += m.mean * m.subwindows;
    n += m.subwindows;
  }
  const figure = Math.min(BURST_ADDRESSES_MAX, Math.max(BURST_ADDRESSES_MIN, Math.round((sum / n) * 100) / 100));
  burstCache.set(key, figure);
  return figure;
}

interface Acc {
  n: number;
  en: number;
  dErr: number;
  eErr: number;
  parity: number;
  truth: number;
  etruth: number;
  dev: number;
  est: number;
  addr: number;
}
const acc = (): Acc => ({ n: 0, en: 0, dErr: 0, eErr: 0, parity: 0, truth: 0, etruth: 0, dev: 0, est: 0, addr: 0 });
const round = (x: number) => Math.round(x * 10) / 10;

/** `truth`: devices in reach; `etruth`: those the estimate estimates (BLE: without beacons). */
function add(a: Acc, truth: number, etruth: number, devices: number, estimate: number, addresses: number): void {
  if (devices !== addresses) a.parity++;
  a.truth += truth;
  a.etruth += etruth;
  a.dev += devices;
  a.est += estimate;
  a.addr += addresses;
  if (truth > 0) {
    a.n++;
    a.dErr += Math.abs(devices - truth) / truth;
  }
  if (etruth > 0) {
    a.en++;
    a.eErr += Math.abs(estimate - etruth) / etruth;
  }
}
function score(a: Acc): RadioScore {
  return {
    windows: a.n,
    devicesMape: a.n ? round((a.dErr / a.n) * 100) : 0,
    estimateMape: a.en ? round((a.eErr / a.en) * 100) : 0,
    estimateWindows: a.en,
    parityMismatches: a.parity,
    truthDevices: a.truth,
    truthEstimated: a.etruth,
    firmwareDevices: a.dev,
    firmwareEstimate: a.est,
    captureAddresses: a.addr,
  };
}

const BATCH = 512;

/** Per gateway, the burst addresses its firmware is given: the override, else its receiver's figure (7 without Wi-Fi). */
export function gatewayBurstAddresses(s: Scenario, o: Pick<EvaluateOptions, 'burstAddresses'> = {}): number[] {
  return s.gateways.map((g) => o.burstAddresses ?? (g.wifi ? receiverBurstAddresses(g.wifi) : BURST_ADDRESSES_DEFAULT));
}

/**
 * Runs the scenario with `seed` through one Firmware instance per gateway, on the window clock, and
 * returns every gateway window's counts beside its truth.
 */
export async function countWindows(s: Scenario, seed: number, o: EvaluateOptions = { scenario: s }): Promise<CountedWindow[]> {
  const { Firmware } = await import('../firmware/host/firmware.ts');
  const windowOpts = { ignoreFcs: o.ignoreFcs, rssiMinDbm: o.rssiMinDbm };
  const fws = await Promise.all(s.gateways.map(() => Firmware.load(o.wasmPath)));
  const burst = gatewayBurstAddresses(s, o);
  // The simulator's truth windows fall on multiples of the window length, the first one starting
  // with the scenario: the clock opens there and each truth window's end closes the clock's window.
  // The run's end cuts its last window short (a --duration that is not a whole number of windows,
  // or shorter than one), as its truth window is: the firmware is told, so its estimate is the mean
  // over the part simulated (a 2-h window of a 5-min run read an estimate of 0, MAPE 100 %).
  const inputEndMs = s.startMs + s.durationS * 1000;
  const clocks = fws.map(
    (fw, g) => new WindowClock(fw, { windowMs: s.windowS * 1000, inputEndMs, windowOptions: { ...windowOpts, burstAddresses: burst[g] } }),
  );
  const pending: Frame[][] = s.gateways.map(() => []);
  for (const c of clocks) c.open(s.startMs);
  const out: CountedWindow[] = [];
  let windowEnds = 0;
  let frames = 0;
  const flush = (g: number) => {
    if (pending[g].length) fws[g].ingestMany(pending[g]);
    pending[g] = [];
  };
  for (const ev of runScenario(s, { seed, bleLink: o.bleLink })) {
    if (ev.type === 'frame') {
      const p = pending[ev.gateway];
      p.push(ev.frame);
      if (p.length >= BATCH) flush(ev.gateway);
      if (o.onTime && (++frames & 0xffff) === 0) o.onTime((ev.frame.timestampMs - s.startMs) / 1000);
    } else {
      ev.windows.forEach((t, g) => {
        flush(g);
        const end = Date.parse(t.end);
        // the window ends on its boundary (the clock opens the next one), or where the scenario ends
        const w = end >= clocks[g].end ? clocks[g].step(end) : clocks[g].close(end);
        if (!w) throw new Error(`evaluate: truth window ${t.start}..${t.end} has no counted window`);
        out.push({ gateway: g, zone: s.gateways[g].zone, counts: w.counts, truth: t });
      });
      o.onWindow?.(++windowEnds);
    }
  }
  for (const c of clocks) c.close();
  return out;
}

/**
 * Runs the scenario through one Firmware instance per gateway and scores it against the truth; fits
 * a people calibration on a second run (fitSeed) and scores calibrated people on the first.
 */
export async function evaluate(o: EvaluateOptions): Promise<Evaluation> {
  const s = typeof o.scenario === 'string' ? loadScenario(o.scenario, o) : o.scenario;
  const seed = o.seed ?? 1;
  // Within the generator's 32 bits, as it reads a seed: seed 4294967295 is fitted on 0 (it said 4294967296).
  const fitSeed = o.fitSeed ?? (seed + 1) >>> 0;
  if (o.calibrate !== false && fitSeed === seed)
    throw new Error(`evaluate: the calibration must be fitted on another seed than the one it is tested on (both ${seed})`);
  const windows = await countWindows(s, seed, o);
  const scoredEnds = windows.length / Math.max(1, s.gateways.length);
  const burst = gatewayBurstAddresses(s, o);
  const per = s.gateways.map(() => ({ wifi: acc(), ble: acc() }));
  const all = { wifi: acc(), ble: acc() };
  for (const { gateway, counts: c, truth: t } of windows) {
    for (const target of [per[gateway], all]) {
      add(target.wifi, t.devices.wifi, t.devices.wifi, c.wifi.devices, c.wifi.estimate, t.addresses.wifi);
      // Beacons advertise on BLE only: the BLE devices in reach less the beacons are what the estimate counts.
      add(target.ble, t.devices.ble, t.devices.ble - t.devices.byKind.beacon, c.ble.devices, c.ble.estimate, t.addresses.ble);
    }
  }
  const none: PeopleScores = { wifi: null, ble: null, combined: null, reference: null, phones: null };
  const people = { perGateway: s.gateways.map((): PeopleScores => ({ ...none })), overall: { ...none } };
  let calibration: Evaluation['calibration'] = null;
  const fits: Partial<Record<CountsRadio, FitResult | null>> = {};
  if (o.calibrate !== false) {
    const training = await countWindows(s, fitSeed, {
      ...o,
      onWindow: o.onWindow && ((n) => o.onWindow!(scoredEnds + n)),
      onTime: o.onTime && ((t) => o.onTime!(s.durationS + t)),
    });
    const fitted = {} as Record<CountsRadio, FittedCalibration>;
    for (const radio of RADIOS) {
      const { fit, summary } = fitPeople(training, radio, `seed-${fitSeed}`);
      fitted[radio] = summary;
      fits[radio] = fit;
      if (!fit) continue;
      const sc = scorePeople(fit, radio, windows, s.gateways.length);
      sc.perGateway.forEach((p, i) => {
        people.perGateway[i][radio] = p;
      });
      people.overall[radio] = sc.overall;
    }
    const both = { wifi: fits.wifi ?? null, ble: fits.ble ?? null };
    const combined = fitCombined(training, both);
    if (combined) {
      const sc = scoreCombined(combined, both, windows, s.gateways.length);
      sc.perGateway.forEach((p, i) => {
        people.perGateway[i].combined = p;
      });
      people.overall.combined = sc.overall;
    }
    for (const [of, key] of [
      ['devices', 'reference'],
      ['phones', 'phones'],
    ] as const) {
      const reference = fitReference(training, `seed-${fitSeed}`, of);
      if (!reference) continue;
      const sc = scoreReference(reference, windows, s.gateways.length, of);
      sc.perGateway.forEach((p, i) => {
        people.perGateway[i][key] = p;
      });
      people.overall[key] = sc.overall;
    }
    calibration = { fitSeed, truth: PEOPLE_TRUTH, ...fitted, combined };
  }
  const overall = { wifi: score(all.wifi), ble: score(all.ble), people: people.overall };
  return {
    scenario: s.name,
    seed,
    scale: s.scale,
    durationS: s.durationS,
    windowS: s.windowS,
    gateways: s.gateways.map((g, i) => ({
      id: g.id,
      zone: g.zone,
      burstAddresses: burst[i],
      wifi: score(per[i].wifi),
      ble: score(per[i].ble),
      people: people.perGateway[i],
    })),
    overall,
    summary: summarise(overall),
    calibration,
    privacy: evaluatePrivacy(windows, fits, s.windowS * 1000, seed),
    flows: o.flows !== false && hasCorridor(s) ? await evaluateFlows(s, { seed, bleLink: o.bleLink, m: o.sketchBits, p: o.sketchP }) : null,
  };
}
