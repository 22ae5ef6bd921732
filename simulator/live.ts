// Live mode: frames streamed as they "happen", to running gateways, through stdout or named pipes,
// in real time or N times faster. Each output is a capture stream (pcapng with one interface per
// radio, or classic pcap of one radio) that a gateway reads like a monitor-mode capture.
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, statSync, WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { CaptureWriter, StreamSink, type CaptureFormat } from './pcap-writer.ts';
import { loadScenario, type Scenario, type ScenarioOverrides } from './scenario.ts';
import { captureInterfaces, runScenario, type BleLink, type Radio } from './sim.ts';
import type { TruthWindow } from './truth.ts';

export interface LiveOutput {
  /** Gateway id in the scenario. */
  gateway: string;
  stream: Writable;
  /** pcapng (both radios) or pcap (one radio: `radio`). */
  format?: CaptureFormat;
  radio?: Radio;
  /** End the stream when the run finishes (default true; false for stdout). */
  end?: boolean;
  /** Where the stream goes (a path, "stdout"), named in its errors with the gateway. */
  name?: string;
  /** The option that gave its path (--pipe, --out): named in what to do when its disk is full. */
  option?: string;
}

export interface LiveOptions extends ScenarioOverrides {
  scenario: string | Scenario;
  seed?: number;
  bleLink?: BleLink;
  /** Simulated seconds per wall-clock second (1: real time). Infinity: as fast as the readers take it. */
  speed?: number;
  outputs: LiveOutput[];
  onWindow?: (windows: TruthWindow[]) => void;
  signal?: AbortSignal;
}

/** Waits `ms`, or until `signal` aborts. */
const sleep = (ms: number, signal?: AbortSignal) =>
  delay(ms, undefined, { signal }).catch((e: Error) => {
    if (e.name !== 'AbortError') throw e;
  });

export interface LiveResult {
  frames: number;
  windows: number;
  /** The simulated time (ms) of the last frame written, or of the run's start when none was. */
  lastMs: number;
  /** Stopped by `signal` before the end of the run: every output ends on a whole frame, the last at lastMs. */
  stopped: boolean;
}

/** Streams a scenario's frames to the outputs, paced at `speed` times real time. */
export async function runLive(o: LiveOptions): Promise<LiveResult> {
  const s = typeof o.scenario === 'string' ? loadScenario(o.scenario, o) : o.scenario;
  const bleLink = o.bleLink ?? 'll';
  const speed = o.speed ?? 1;
  if (!(speed > 0)) throw new Error(`live: speed must be above 0 (got ${speed})`);
  const byGateway = new Map<number, Array<{ writer: CaptureWriter; iface: Record<Radio, number> }>>();
  for (const out of o.outputs) {
    const gi = s.gateways.findIndex((g) => g.id === out.gateway);
    if (gi < 0) throw new Error(`live: no gateway "${out.gateway}" in scenario ${s.name} (gateways: ${s.gateways.map((g) => g.id).join(', ')})`);
    const g = s.gateways[gi];
    let ifaces = captureInterfaces(g, bleLink);
    // Classic pcap holds one link type: the radio asked for, else Wi-Fi when the gateway has it.
    if (out.format === 'pcap') ifaces = ifaces.filter((i) => i.radio === (out.radio ?? ifaces[0].radio));
    if (!ifaces.length) throw new Error(`live: gateway "${out.gateway}" has no ${out.radio} radio`);
    const sink = new StreamSink(out.stream, out.end ?? true, `of ${out.gateway}${out.name ? ` (${out.name})` : ''}`, out.option);
    const writer = out.format === 'pcap' ? CaptureWriter.pcap([sink], ifaces) : CaptureWriter.pcapng(sink, ifaces);
    const iface = { wifi: ifaces.findIndex((i) => i.radio === 'wifi'), ble: ifaces.findIndex((i) => i.radio === 'ble') };
    byGateway.set(gi, [...(byGateway.get(gi) ?? []), { writer, iface }]);
  }
  const writers = [...byGateway.values()].flat();
  // A named pipe opens once its reader opens it: the clock starts when every output is open. It
  // started before, so the frames due while the stream waited for a gateway came in one burst once
  // it had one (30 s of frames at once for a gateway started 30 s late at --speed 1).
  await Promise.all(o.outputs.map((out) => opened(out.stream, o.signal)));
  const wall0 = performance.now();
  let frames = 0;
  let windows = 0;
  let sinceDrain = 0;
  let lastMs = s.startMs;
  try {
    for (const ev of runScenario(s, { seed: o.seed ?? 1, bleLink })) {
      if (o.signal?.aborted) break;
      if (ev.type === 'window') {
        windows++;
        o.onWindow?.(ev.windows);
        continue;
      }
      const targets = byGateway.get(ev.gateway);
      if (!targets) continue;
      if (Number.isFinite(speed)) {
        const due = wall0 + (ev.frame.timestampMs - s.startMs) / speed;
        const wait = due - performance.now();
        if (wait > 2) {
          await Promise.all(writers.map((w) => w.writer.drain()));
          await sleep(wait, o.signal);
          if (o.signal?.aborted) break;
        }
      }
      for (const t of targets) {
        const i = t.iface[ev.radio];
        if (i < 0) continue;
        t.writer.write(i, ev.frame.timestampMs, ev.frame.data);
        frames++;
        lastMs = ev.frame.timestampMs;
      }
      if (++sinceDrain >= 256) {
        sinceDrain = 0;
        await Promise.all(writers.map((w) => w.writer.drain()));
      }
    }
  } finally {
    // Each frame goes to its stream as one whole record: ending the streams here (at the run's end,
    // or stopped by `signal`) leaves every capture ending on a whole frame.
    for (const w of writers) await w.writer.close().catch(() => {});
  }
  return { frames, windows, lastMs, stopped: !!o.signal?.aborted };
}

/** Resolves once a file stream is open (at once for any other); its failure is the sink's to say. */
function opened(stream: Writable, signal?: AbortSignal): Promise<void> {
  if (!(stream instanceof WriteStream) || !stream.pending || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('open', done);
      stream.off('error', done);
      stream.off('close', done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    stream.once('open', done);
    stream.once('error', done);
    stream.once('close', done);
    signal?.addEventListener('abort', done);
  });
}

/** Opens `path` for live writing; creates a named pipe there first when `fifo` (needs `mkfifo`). */
export function openLivePath(path: string, fifo: boolean): WriteStream {
  if (fifo && !existsSync(path)) execFileSync('mkfifo', [path]);
  if (existsSync(path) && statSync(path).isFIFO()) return createWriteStream(path, { flags: 'w' });
  return createWriteStream(path);
}
