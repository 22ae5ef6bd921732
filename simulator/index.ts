// Programmatic API of the simulator.
//
//   simulate({ scenario: 'kingsday-square', seed: 1, durationS: 3600, scale: 0.01, outDir })
//     -> per-gateway capture files + truth.json/truth.csv
//   streamFrames({ scenario, seed, ... })  -> frames of every gateway in time order (for live demos)
//   loadMessages / runLoad                 -> contract-conformant load for aggregators (load.ts)
//   evaluate({ scenario, seed, ... })      -> firmware counts against the truth (evaluate.ts)
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CaptureWriter, FileSink, type CaptureFormat, type Sink } from './pcap-writer.ts';
import { loadScenario, nominalPeople, type Scenario, type ScenarioOverrides } from './scenario.ts';
import { captureInterfaces, gatewayReachM, runScenario, type BleLink, type FrameEvent, type SimEvent, type SimTotals } from './sim.ts';
import { writeTruth, type TruthFile, type TruthWindow } from './truth.ts';

export { loadMessages, runLoad, loadStatuses, type LoadMessage, type LoadOptions, type RunLoadOptions, type RunLoadResult } from './load.ts';
export { loadScenario, resolveScenario, builtinScenarios, ScenarioError, parseDuration, type Scenario } from './scenario.ts';
export { runScenario, type SimEvent, type FrameEvent, type WindowEvent, type BleLink, type SimTotals } from './sim.ts';
export type { TruthFile, TruthWindow } from './truth.ts';

/** Suffix of the files of a run until it has ended (then renamed to their names). */
export const PARTIAL = '.partial';

export interface SimulateOptions extends ScenarioOverrides {
  /** Built-in name, file path, or an already resolved Scenario. */
  scenario: string | Scenario;
  seed?: number;
  /** Output folder (created). */
  outDir: string;
  /** pcapng: one file per gateway with a Wi-Fi and a BLE interface (default). pcap: one file per radio. */
  format?: CaptureFormat;
  bleLink?: BleLink;
  /** Also write truth.csv (default true). */
  csv?: boolean;
  /** Called at every window end. */
  onWindow?: (windows: TruthWindow[]) => void;
  /** Called with the simulated seconds written so far, every 65,536 frames (a progress bar inside long windows). */
  onTime?: (simulatedS: number) => void;
}

export interface SimulatedGateway {
  id: string;
  zone: string;
  site: string;
  /** The gateway's capture (pcapng: both radios; pcap: the Wi-Fi file, or BLE when there is no Wi-Fi radio). */
  pcap: string;
  /** Every capture file of the gateway. */
  pcaps: string[];
  /** Files by radio. */
  files: { wifi?: string; ble?: string };
  frames: number;
}

export interface SimulateResult {
  scenario: Scenario;
  site: string;
  startMs: number;
  windowS: number;
  durationS: number;
  seed: number;
  gateways: SimulatedGateway[];
  truthPath: string;
  truthCsvPath: string | null;
  truth: TruthFile;
}

function applyOverrides(s: Scenario, o: ScenarioOverrides): Scenario {
  const out = { ...s };
  if (o.durationS !== undefined) out.durationS = o.durationS;
  if (o.windowS !== undefined) out.windowS = o.windowS;
  if (o.start !== undefined) out.startMs = new Date(o.start).getTime();
  if (o.scale !== undefined) out.scale = o.scale;
  if (o.people !== undefined) out.scale = o.people / Math.max(1e-9, nominalPeople(s));
  if (o.truthStepS !== undefined) out.truthStepS = o.truthStepS;
  return out;
}

function scenarioOf(o: { scenario: string | Scenario } & ScenarioOverrides): Scenario {
  return typeof o.scenario === 'string' ? loadScenario(o.scenario, o) : applyOverrides(o.scenario, o);
}

/** Generates a scenario's captures (one per gateway) and ground truth into outDir. */
export async function simulate(o: SimulateOptions): Promise<SimulateResult> {
  const s = scenarioOf(o);
  const seed = o.seed ?? 1;
  const format = o.format ?? 'pcapng';
  const bleLink = o.bleLink ?? 'll';
  mkdirSync(o.outDir, { recursive: true });
  // Every file is written under NAME.partial and renamed when the run has ended: a run cut short
  // (Ctrl-C, a full disk) leaves the files of an earlier run in the folder as they were, never
  // captures cut off beside an earlier run's truth. A run that fails removes its .partial files;
  // one killed leaves them, and the next run there writes over them.
  const partials: string[] = [];
  const partial = (path: string) => {
    partials.push(path);
    return `${path}${PARTIAL}`;
  };
  const writers = s.gateways.map((g) => {
    const ifaces = captureInterfaces(g, bleLink);
    const files: { wifi?: string; ble?: string } = {};
    let writer: CaptureWriter;
    let pcaps: string[];
    if (format === 'pcapng') {
      const path = join(o.outDir, `${g.id}.pcapng`);
      for (const i of ifaces) files[i.radio] = path;
      writer = CaptureWriter.pcapng(new FileSink(partial(path)), ifaces);
      pcaps = [path];
    } else {
      const sinks: Sink[] = [];
      pcaps = [];
      for (const i of ifaces) {
        const path = join(o.outDir, `${g.id}.${i.radio}.pcap`);
        files[i.radio] = path;
        pcaps.push(path);
        sinks.push(new FileSink(partial(path)));
      }
      writer = CaptureWriter.pcap(sinks, ifaces);
    }
    const ifaceOf = { wifi: ifaces.findIndex((i) => i.radio === 'wifi'), ble: ifaces.findIndex((i) => i.radio === 'ble') };
    return { g, writer, pcaps, files, ifaceOf };
  });
  const windows: TruthWindow[] = [];
  let wifiFrames = 0;
  let bleFrames = 0;
  let totals: SimTotals;
  const truthPath = join(o.outDir, 'truth.json');
  const truthCsvPath = o.csv === false ? null : join(o.outDir, 'truth.csv');
  let truth: TruthFile;
  try {
    try {
      const run = runScenario(s, { seed, bleLink });
      for (;;) {
        const next = run.next();
        if (next.done) {
          totals = next.value;
          break;
        }
        const ev = next.value;
        if (ev.type === 'frame') {
          const w = writers[ev.gateway];
          w.writer.write(w.ifaceOf[ev.radio], ev.frame.timestampMs, ev.frame.data);
          if (ev.radio === 'wifi') wifiFrames++;
          else bleFrames++;
          if (o.onTime && ((wifiFrames + bleFrames) & 0xffff) === 0) o.onTime((ev.frame.timestampMs - s.startMs) / 1000);
        } else {
          windows.push(...ev.windows);
          o.onWindow?.(ev.windows);
        }
      }
    } finally {
      for (const w of writers) await w.writer.close();
    }
    truth = {
      scenario: s.name,
      description: s.description,
      seed,
      scale: s.scale,
      site: s.site,
      start: new Date(s.startMs).toISOString(),
      durationS: s.durationS,
      windowS: s.windowS,
      gateways: writers.map((w) => ({
        id: w.g.id,
        zone: w.g.zone,
        site: s.site,
        position: w.g.position,
        reachM: Math.round(gatewayReachM(s, w.g) * 10) / 10,
        files: w.pcaps.map((p) => relative(o.outDir, p)),
      })),
      totals: { people: totals.people, devices: totals.devices, frames: { wifi: wifiFrames, ble: bleFrames } },
      windows,
    };
    writeTruth(partial(truthPath), truthCsvPath ? partial(truthCsvPath) : null, truth);
    for (const path of partials) renameSync(`${path}${PARTIAL}`, path);
  } catch (e) {
    for (const path of partials) rmSync(`${path}${PARTIAL}`, { force: true });
    throw e;
  }
  return {
    scenario: s,
    site: s.site,
    startMs: s.startMs,
    windowS: s.windowS,
    durationS: s.durationS,
    seed,
    gateways: writers.map((w) => ({
      id: w.g.id,
      zone: w.g.zone,
      site: s.site,
      pcap: w.files.wifi ?? w.files.ble ?? w.pcaps[0],
      pcaps: w.pcaps,
      files: w.files,
      frames: w.writer.frames,
    })),
    truthPath,
    truthCsvPath,
    truth,
  };
}

export interface StreamOptions extends ScenarioOverrides {
  scenario: string | Scenario;
  seed?: number;
  bleLink?: BleLink;
}

/**
 * Frames of every gateway in time order, plus window truth events, without writing files. Pace
 * them yourself (see live.ts) or feed a gateway directly.
 */
export function streamEvents(o: StreamOptions): { scenario: Scenario; events: Generator<SimEvent> } {
  const s = scenarioOf(o);
  return { scenario: s, events: runScenario(s, { seed: o.seed ?? 1, bleLink: o.bleLink }) };
}

/** Only the frames, tagged with the gateway id. */
export function* streamFrames(o: StreamOptions): Generator<FrameEvent & { gatewayId: string }> {
  const { scenario, events } = streamEvents(o);
  for (const ev of events) if (ev.type === 'frame') yield { ...ev, gatewayId: scenario.gateways[ev.gateway].id };
}

/**
 * Frames of every gateway in time order, released at `speed` times real time (1: real time).
 * For a live demo that feeds gateways in process instead of through pipes.
 */
export async function* pacedFrames(o: StreamOptions & { speed?: number; signal?: AbortSignal }): AsyncGenerator<FrameEvent & { gatewayId: string }> {
  const speed = o.speed ?? 1;
  if (!(speed > 0)) throw new Error(`pacedFrames: speed must be above 0 (got ${speed})`);
  const { scenario, events } = streamEvents(o);
  const wall0 = performance.now();
  for (const ev of events) {
    if (o.signal?.aborted) return;
    if (ev.type !== 'frame') continue;
    const wait = wall0 + (ev.frame.timestampMs - scenario.startMs) / speed - performance.now();
    if (wait > 2) await new Promise((r) => setTimeout(r, wait));
    yield { ...ev, gatewayId: scenario.gateways[ev.gateway].id };
  }
}
