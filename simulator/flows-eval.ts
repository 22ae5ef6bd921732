// Flows evaluation (issue 13): the corridor sketches of every gateway, window by window, through the
// flow estimator of the aggregator (aggregator/flows/estimate.ts), scored against the truth of the
// matchable devices that passed one gateway and then another; beside it the same figures for an
// exact re-identification baseline (addresses matched with their capture times: what a system that
// keeps identifiers reaches), computed here only and never anywhere else.
//
// Truth, precisely: a matchable identity is one radio of one device whose address class enters the
// sketch (BLE public, static random and resolvable private addresses of devices that are not
// beacons; Wi-Fi addresses with the locally administered bit clear), with that radio on. It passed
// A then B when its agent's path passed within reach of A at t_A (closest point) and of B at
// t_B > t_A. Flow of (A, B) in a 5-min interval: such identities whose t_A falls in the interval
// (intervals on multiples of 5 min UTC); their travel times t_B - t_A give the interval's median.
// A device with both a global Wi-Fi address and a BLE address is two identities, as it is two bits
// of the sketch; an identity not heard at A or B (or whose BLE address rotated between them) is in
// the truth and missed by both the sketches and the baseline: 13-15 % of the identities on the two
// scenarios, nearly all of the uncalibrated baseline's error. Both are therefore scaled by an
// expansion factor calibrated on a run with another seed (evaluateFlows), and the uncalibrated
// figures are reported beside (`matched_*`). A second truth counts travellers (agents: a vehicle
// with its occupants is one), whatever devices they carry (`travellers_count_error_pct`).
import { randomBytes } from 'node:crypto';
import type { Frame } from '../firmware/host/types.ts';
import { WindowClock } from '../gateway/window.ts';
import { CONTRACT_VERSION, encode, quantisedP, sketchEpsilon, sketchTopic, type SketchMessage } from '../contract/index.ts';
import { CorridorFlows } from '../aggregator/flows/intake.ts';
import { pairLags, type FlowEstimate, type WindowSketches } from '../aggregator/flows/estimate.ts';
import type { Device } from './engine/devices.ts';
import type { Agent } from './engine/population.ts';
import type { Scenario } from './scenario.ts';
import { runScenario, type BleLink, type Radio } from './sim.ts';

/** Sketch defaults (the gateway's corridor defaults follow these; README "Flows"). */
export const SKETCH_DEFAULTS = { m: 8192, p: 0.03, epochS: 3600, horizonS: 600, intervalS: 300 };
/** Intervals with fewer true identities than this are not scored (a percentage of 3 says little). */
export const MIN_SCORED_FLOW = 10;

export interface FlowsScore {
  /**
   * Mean absolute percentage error of the flow per 5-min interval (intervals with truth >= MIN_SCORED_FLOW),
   * the aggregator's flow with the expansion factors calibrated on another run (evaluateFlows).
   */
  count_error_pct: number | null;
  /** Same for the travel-time median of the interval. */
  travel_median_error_pct: number | null;
  /** The re-identification baseline, calibrated the same way (its own factors). */
  baseline_count_error_pct: number | null;
  baseline_travel_median_error_pct: number | null;
  /** Epsilon per device per epoch of the worst device of the run (sketches it entered x epsilon per sketch). */
  epsilon: number;
  epsilon_median: number;
  epsilon_p95: number;
  epsilon_per_sketch: number;
  sketches_per_device: { median: number; p95: number; max: number };
  /** Without calibration: the matched devices against the truth (the estimate divided by its factor), and the baseline's matches. */
  matched_count_error_pct: number | null;
  baseline_matched_count_error_pct: number | null;
  /**
   * Flow of travellers (agents: a vehicle with its occupants is one, a cyclist, a pedestrian; with or
   * without a matchable device): matched devices times a factor calibrated the same way against
   * travellers. Intervals with >= MIN_SCORED_FLOW travellers.
   */
  travellers_count_error_pct: number | null;
  /** Seed of the calibration run (null: not calibrated, every factor 1). */
  calibration_seed: number | null;
  m: number;
  p: number;
  epoch_s: number;
  interval_s: number;
  /** How the sketches were made: by the gateway's WASM firmware from the simulated frames, on the gateway's window clock. */
  sketch_path: 'firmware';
  /** Intervals scored, and the share of them whose true flow lies within the estimate's bounds. */
  intervals: number;
  count_bounds_coverage: number | null;
  /** Measured share of a gateway's matchable identities heard again in its next window (from the sketches), per gateway. */
  repeat_share: Record<string, number>;
  pairs: Array<{
    from: string;
    to: string;
    truth: number;
    travellers: number;
    estimate: number;
    baseline: number;
    expansion: number;
    count_error_pct: number | null;
    matched_count_error_pct: number | null;
    travel_median_error_pct: number | null;
    baseline_count_error_pct: number | null;
    baseline_travel_median_error_pct: number | null;
    truth_travel_median_s: number | null;
    estimate_travel_median_s: number | null;
  }>;
}

export interface FlowsOptions {
  seed: number;
  bleLink?: BleLink;
  m?: number;
  p?: number;
  epochS?: number;
  horizonS?: number;
  /** Path of the WASM module (default: the firmware's build). */
  wasmPath?: string;
  /** Calibrate the expansion factors on a run with another seed first (default true; false: factors 1). */
  calibrate?: boolean;
  /** Seed of that run (default seed + 1000). */
  calibrationSeed?: number;
}

interface Identity {
  device: Device;
  radio: Radio;
}

/** Whether this radio of the device enters the corridor sketch (the firmware's classes). */
export function matchable(d: Device, radio: Radio): boolean {
  if (d.kind === 'beacon') return false;
  if (radio === 'wifi') return d.wifiOn && !!d.model.wifi && d.model.wifi.macPolicy === 'fixed' && !d.macLocal;
  return d.bleOn && !!d.model.ble;
}

const median = (xs: number[]): number | null => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
};
const r1 = (x: number | null) => (x === null ? null : Math.round(x * 10) / 10);

/** Whether the scenario has flow crowds passing at least two gateways (else no flows evaluation). */
export function hasCorridor(s: Scenario): boolean {
  return s.gateways.length >= 2 && s.crowds.some((c) => c.type === 'flow');
}

/** What one run gives per ordered pair "a>b" (gateway indexes) and complete interval. */
interface Collected {
  rows: Map<string, Array<{ first: number; truth: Acc | undefined; travellers: number; baseline: Acc; estimate: FlowEstimate }>>;
  perDevice: Map<string, number>;
  repeat: Record<string, number>;
  m: number;
  p: number;
  epochMs: number;
  intervalWindows: number;
}
type Acc = { n: number; travel: number[] };

/**
 * Flows with expansion factors calibrated on another run. The sketches estimate the devices heard
 * at both gateways; identities missed at either (a car's Wi-Fi that does not probe in reach, a BLE
 * address that rotated between them) are not in them: the matched count is short of the truth by
 * a share that depends on the site's devices and radio, not on the interval. As a field engineer
 * would calibrate against a reference count once, the evaluation runs the scenario first with
 * another seed (`calibrationSeed`, default seed + 1000: other people, devices and sketches) and
 * takes, per ordered pair, expansion = true flow / matched estimate summed over that run's
 * complete intervals; the scored run's aggregator writes matched x expansion (the aggregator's
 * `corridors[].expansion`). The baseline is calibrated the same way with its own factor. The
 * uncalibrated figures are reported beside them (`matched_*`).
 */
export async function evaluateFlows(s: Scenario, o: FlowsOptions): Promise<FlowsScore> {
  const calibrate = o.calibrate !== false;
  // Within the generator's 32 bits, as it reads a seed (seed 4294967295 calibrates on 999, not "4294968295").
  const calibrationSeed = o.calibrationSeed ?? (o.seed + 1000) >>> 0;
  const expansion = new Map<string, { est: number; base: number; travellers: number }>();
  if (calibrate) {
    const c = await collect(s, { ...o, seed: calibrationSeed }, null);
    for (const [k, rows] of c.rows) {
      let t = 0;
      let e = 0;
      let b = 0;
      let tr = 0;
      for (const r of rows) {
        t += r.truth?.n ?? 0;
        e += r.estimate.count;
        b += r.baseline.n;
        tr += r.travellers;
      }
      const f = (num: number, den: number) => (num > 0 && den > 0 ? num / den : 1);
      expansion.set(k, { est: f(t, e), base: f(t, b), travellers: f(tr, e) });
    }
  }
  const run = await collect(s, o, expansion);
  return score(s, run, expansion, calibrate ? calibrationSeed : null);
}

async function collect(s: Scenario, o: FlowsOptions, expansion: Map<string, { est: number }> | null): Promise<Collected> {
  const m = o.m ?? SKETCH_DEFAULTS.m;
  const p = quantisedP(o.p ?? SKETCH_DEFAULTS.p);
  const epochMs = (o.epochS ?? SKETCH_DEFAULTS.epochS) * 1000;
  const windowMs = s.windowS * 1000;
  const intervalWindows = Math.max(1, Math.round((SKETCH_DEFAULTS.intervalS * 1000) / windowMs));
  const maxLag = Math.ceil(((o.horizonS ?? SKETCH_DEFAULTS.horizonS) * 1000) / windowMs);
  const G = s.gateways.length;
  const win = (tS: number) => Math.floor((s.startMs + tS * 1000) / windowMs);

  // per gateway: window -> identity keys heard; identity key -> first/last capture time (baseline)
  const heard: Array<Map<number, Map<string, Identity>>> = s.gateways.map(() => new Map());
  const seen: Array<Map<string, { first: number; last: number }>> = s.gateways.map(() => new Map());
  const passes: Array<{ agent: Agent; passes: Array<{ gateway: number; t: number }> }> = [];
  // The real sketch path: one firmware per gateway on the gateway's window clock, all in one group
  // (one secret, drawn from the CSPRNG here as `presence corridor init` does).
  const { Firmware } = await import('../firmware/host/firmware.ts');
  const secret = randomBytes(32);
  const fws = await Promise.all(s.gateways.map(() => Firmware.load(o.wasmPath)));
  for (const fw of fws) fw.setCorridor({ secret, group: 'sim', epochMs, bits: m, p });
  secret.fill(0);
  const clocks = fws.map((fw) => new WindowClock(fw, { windowMs }));
  for (const c of clocks) c.open(s.startMs);
  const pending: Frame[][] = s.gateways.map(() => []);
  const sketches: WindowSketches[] = s.gateways.map(() => new Map());
  const keep = (g: number, counts: { sketch?: { bits: Uint8Array; m: number; p: number; epoch: number } } | undefined, startMs: number) => {
    const sk = counts?.sketch;
    if (sk) sketches[g].set(Math.floor(startMs / windowMs), { bits: sk.bits, m: sk.m, p: sk.p, epoch: sk.epoch });
  };
  const flush = (g: number) => {
    if (pending[g].length) fws[g].ingestMany(pending[g]);
    pending[g] = [];
  };
  const gen = runScenario(s, {
    seed: o.seed,
    bleLink: o.bleLink,
    tap: {
      passes: (agent, ps) => passes.push({ agent, passes: ps }),
      captured: (g, radio, d, t) => {
        if (!matchable(d, radio)) return;
        const key = `${radio}/${radio === 'wifi' ? d.macKey : d.bleKey}`;
        const w = win(t);
        let hw = heard[g].get(w);
        if (!hw) heard[g].set(w, (hw = new Map()));
        hw.set(key, { device: d, radio });
        const sn = seen[g].get(key);
        if (sn) sn.last = t;
        else seen[g].set(key, { first: t, last: t });
      },
    },
  });
  for (let r = gen.next(); !r.done; r = gen.next()) {
    const ev = r.value;
    if (ev.type === 'frame') {
      pending[ev.gateway].push(ev.frame);
      if (pending[ev.gateway].length >= 512) flush(ev.gateway);
    } else
      ev.windows.forEach((t, g) => {
        flush(g);
        const end = Date.parse(t.end);
        const start = Date.parse(t.start);
        const w = end >= clocks[g].end ? clocks[g].step(end) : clocks[g].close(end);
        keep(g, w?.counts, start);
      });
  }
  clocks.forEach((c, g) => {
    // a run that ends between two boundaries leaves its last window open
    const open = c.window;
    if (open) keep(g, c.close()?.counts, open.nominalStart);
  });
  for (const fw of fws) fw.clearCorridor();

  // epsilon: the sketches each device entered per epoch (every matchable identity heard in a window is one bit)
  const firstW = win(0);
  const lastW = win(s.durationS - 1e-6);
  const perDevice = new Map<string, number>(); // device/epoch -> sketches it entered
  for (let g = 0; g < G; g++)
    for (const [w, ids] of heard[g]) {
      const epoch = Math.floor((w * windowMs) / epochMs);
      for (const id of ids.values()) {
        const pk = `${id.device.id}/${epoch}`;
        perDevice.set(pk, (perDevice.get(pk) ?? 0) + 1);
      }
    }

  // truth per ordered pair and interval; baseline by re-identification
  const intervalOf = (tS: number) => Math.floor(win(tS) / intervalWindows) * intervalWindows;
  const truth = new Map<string, Map<number, Acc>>();
  const travellers = new Map<string, Map<number, number>>();
  const add = (map: Map<string, Map<number, Acc>>, a: number, b: number, iv: number, travel: number) => {
    const k = `${a}>${b}`;
    let mm = map.get(k);
    if (!mm) map.set(k, (mm = new Map()));
    const acc = mm.get(iv) ?? { n: 0, travel: [] };
    acc.n++;
    acc.travel.push(travel);
    mm.set(iv, acc);
  };
  for (const { agent, passes: ps } of passes) {
    for (let i = 0; i < ps.length; i++)
      for (let j = i + 1; j < ps.length; j++) {
        const a = ps[i];
        const b = ps[j];
        if (a.t < 0 || b.t >= s.durationS || b.t <= a.t) continue;
        // travellers: the agent (a vehicle with its occupants, a cyclist, a pedestrian), with or without a matchable device
        const tk = `${a.gateway}>${b.gateway}`;
        const tm = travellers.get(tk) ?? new Map<number, number>();
        travellers.set(tk, tm);
        tm.set(intervalOf(a.t), (tm.get(intervalOf(a.t)) ?? 0) + 1);
        for (const d of agent.devices)
          for (const radio of ['wifi', 'ble'] as const) if (matchable(d, radio)) add(truth, a.gateway, b.gateway, intervalOf(a.t), b.t - a.t);
      }
  }
  const baseline = new Map<string, Map<number, Acc>>();
  for (let a = 0; a < G; a++)
    for (let b = 0; b < G; b++) {
      if (a === b) continue;
      for (const [key, sa] of seen[a]) {
        const sb = seen[b].get(key);
        if (!sb) continue;
        const ta = (sa.first + sa.last) / 2;
        const tb = (sb.first + sb.last) / 2;
        if (tb > ta) add(baseline, a, b, intervalOf(ta), tb - ta);
      }
    }

  // The aggregator's path: the sketches as contract messages, in window order, through its corridor
  // intake (one group of all the scenario's gateways), which computes each interval once its
  // horizon has passed, from that interval's sketches only (and the pair's lag history).
  const lastScored = lastW - maxLag; // an interval is complete when its last window's horizon is in the run
  const repeat: Record<string, number> = {};
  const estimates = new Map<string, FlowEstimate[]>();
  const ids = s.gateways.map((g) => g.id);
  const exp: Record<string, number> = {};
  if (expansion)
    for (const [k, f] of expansion) {
      const [a, b] = k.split('>').map(Number);
      exp[`${ids[a]}>${ids[b]}`] = f.est;
    }
  const flows = new CorridorFlows(
    [{ group: 'sim', site: s.site, members: ids, horizon: maxLag * windowMs, ...(Object.keys(exp).length ? { expansion: exp } : {}) }],
    {
      maxAheadMs: Number.POSITIVE_INFINITY,
      seed: o.seed,
      onPoint: (pt) => {
        const k = `${ids.indexOf(pt.from)}>${ids.indexOf(pt.to)}`;
        const list = estimates.get(k) ?? [];
        list.push(pt.estimate);
        estimates.set(k, list);
      },
    },
  );
  flows.own('sim', s.startMs);
  for (let w = firstW; w <= lastW; w++)
    for (let g = 0; g < G; g++) {
      const sk = sketches[g].get(w);
      if (!sk) continue;
      const startMs = w * windowMs;
      const message: SketchMessage = {
        v: CONTRACT_VERSION,
        site: s.site,
        gateway: ids[g],
        group: 'sim',
        epoch: sk.epoch,
        epoch_s: epochMs / 1000,
        window_start: new Date(startMs).toISOString(),
        window_end: new Date(startMs + windowMs).toISOString(),
        m: sk.m,
        p: sk.p,
        bits: Buffer.from(sk.bits).toString('base64'),
      };
      const r = flows.accept(sketchTopic(s.site, ids[g]), encode(message), startMs + windowMs);
      if (!r.ok) throw new Error(`flows evaluation: the aggregator rejected a sketch: ${r.reason}: ${r.detail}`);
    }
  // a repeat share per gateway (measured from the sketches; the aggregator does not report it)
  for (let g = 0; g + 1 < G; g += 2) {
    const lags = pairLags(sketches[g], sketches[g + 1], 1);
    repeat[ids[g]] = r1(lags.repeatShare.a * 100)! / 100;
    repeat[ids[g + 1]] = r1(lags.repeatShare.b * 100)! / 100;
  }
  if (G % 2) repeat[ids[G - 1]] = r1(pairLags(sketches[G - 1], sketches[0], 1).repeatShare.a * 100)! / 100;
  const rows: Collected['rows'] = new Map();
  for (let a = 0; a < G; a++)
    for (let b = 0; b < G; b++) {
      if (a === b) continue;
      const k = `${a}>${b}`;
      const list: Array<{ first: number; truth: Acc | undefined; travellers: number; baseline: Acc; estimate: FlowEstimate }> = [];
      for (const e of estimates.get(k) ?? []) {
        // complete intervals only: all their windows in the run and within the horizon of its end
        if (e.firstWindow < firstW || e.firstWindow + intervalWindows - 1 > lastScored) continue;
        list.push({
          first: e.firstWindow,
          truth: truth.get(k)?.get(e.firstWindow),
          travellers: travellers.get(k)?.get(e.firstWindow) ?? 0,
          baseline: baseline.get(k)?.get(e.firstWindow) ?? { n: 0, travel: [] },
          estimate: e,
        });
      }
      rows.set(k, list);
    }
  return { rows, perDevice, repeat, m, p, epochMs, intervalWindows };
}

/** The relative errors scored per interval: flow (c), travel median (t), the baseline's (bc, bt), uncalibrated (mc, mbc), travellers (tc). */
const ERROR_KEYS = ['c', 't', 'bc', 'bt', 'mc', 'mbc', 'tc'] as const;
const errorLists = () => Object.fromEntries(ERROR_KEYS.map((k) => [k, [] as number[]])) as Record<(typeof ERROR_KEYS)[number], number[]>;

function score(
  s: Scenario,
  run: Collected,
  expansion: Map<string, { est: number; base: number; travellers: number }>,
  calibrationSeed: number | null,
): FlowsScore {
  const G = s.gateways.length;
  const eps = sketchEpsilon(run.p);
  const rows: FlowsScore['pairs'] = [];
  const errs = { ...errorLists(), cover: [] as number[] };
  const pct = (xs: number[]) => (xs.length ? r1((xs.reduce((u, v) => u + v, 0) / xs.length) * 100) : null);
  for (let a = 0; a < G; a++)
    for (let b = a + 1; b < G; b++)
      for (const [x, y] of [
        [a, b],
        [b, a],
      ]) {
        const k = `${x}>${y}`;
        const f = expansion.get(k) ?? { est: 1, base: 1, travellers: 1 };
        const pe = errorLists();
        let sumT = 0;
        let sumE = 0;
        let sumB = 0;
        let sumTr = 0;
        const tMed: number[] = [];
        const eMed: number[] = [];
        for (const r of run.rows.get(k) ?? []) {
          const e = r.estimate;
          const t = r.truth;
          const bb = r.baseline;
          // the sums cover every complete interval (pairs without traffic show what the estimate makes of none)
          sumT += t?.n ?? 0;
          sumE += e.count;
          sumB += bb.n * f.base;
          sumTr += r.travellers;
          if (!t || t.n < MIN_SCORED_FLOW) continue;
          const tm = median(t.travel)!;
          pe.c.push(Math.abs(e.count - t.n) / t.n);
          pe.mc.push(Math.abs(e.count / f.est - t.n) / t.n);
          pe.bc.push(Math.abs(bb.n * f.base - t.n) / t.n);
          pe.mbc.push(Math.abs(bb.n - t.n) / t.n);
          if (r.travellers >= MIN_SCORED_FLOW) pe.tc.push(Math.abs((e.count / f.est) * f.travellers - r.travellers) / r.travellers);
          errs.cover.push(t.n >= e.countLow && t.n <= e.countHigh ? 1 : 0);
          if (e.travelMedianS !== null) pe.t.push(Math.abs(e.travelMedianS - tm) / tm);
          const bm = median(bb.travel);
          if (bm !== null) pe.bt.push(Math.abs(bm - tm) / tm);
          tMed.push(tm);
          if (e.travelMedianS !== null) eMed.push(e.travelMedianS);
        }
        rows.push({
          from: s.gateways[x].id,
          to: s.gateways[y].id,
          truth: sumT,
          travellers: sumTr,
          estimate: Math.round(sumE),
          baseline: Math.round(sumB),
          expansion: Math.round(f.est * 1000) / 1000,
          count_error_pct: pct(pe.c),
          matched_count_error_pct: pct(pe.mc),
          travel_median_error_pct: pct(pe.t),
          baseline_count_error_pct: pct(pe.bc),
          baseline_travel_median_error_pct: pct(pe.bt),
          truth_travel_median_s: r1(median(tMed)),
          estimate_travel_median_s: r1(median(eMed)),
        });
        for (const key of ERROR_KEYS) errs[key].push(...pe[key]);
      }
  const counts = [...run.perDevice.values()];
  const maxSk = counts.length ? Math.max(...counts) : 0;
  const medSk = median(counts) ?? 0;
  const sorted = [...counts].sort((u, v) => u - v);
  const p95Sk = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(0.95 * sorted.length))] : 0;
  return {
    count_error_pct: pct(errs.c),
    travel_median_error_pct: pct(errs.t),
    baseline_count_error_pct: pct(errs.bc),
    baseline_travel_median_error_pct: pct(errs.bt),
    epsilon: r1(maxSk * eps)!,
    epsilon_median: r1(medSk * eps)!,
    epsilon_p95: r1(p95Sk * eps)!,
    epsilon_per_sketch: Math.round(eps * 1000) / 1000,
    sketches_per_device: { median: medSk, p95: p95Sk, max: maxSk },
    matched_count_error_pct: pct(errs.mc),
    baseline_matched_count_error_pct: pct(errs.mbc),
    travellers_count_error_pct: pct(errs.tc),
    calibration_seed: calibrationSeed,
    m: run.m,
    p: run.p,
    epoch_s: run.epochMs / 1000,
    interval_s: run.intervalWindows * s.windowS,
    sketch_path: 'firmware',
    intervals: errs.c.length,
    count_bounds_coverage: errs.cover.length ? r1((errs.cover.reduce((u, v) => u + v, 0) / errs.cover.length) * 100)! / 100 : null,
    repeat_share: run.repeat,
    pairs: rows,
  };
}
