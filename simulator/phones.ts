// Single-phone figures: how many addresses one phone shows per minute and how its probe bursts are
// built. Measured by the same code on a real single-phone capture (the ProbingPatternsDataset files
// in ../shared/captures/wifi) and on the simulator's model of that phone, so the two can be compared:
// the phone models in devices.ts carry the measured figures, and test/simulator-phones.test.ts
// checks that the simulated ones match them.
//
// The capture set-up is rebuilt in the simulator: one phone next to three sniffers fixed on
// channels 1, 6 and 11 (which, with adjacent-channel reception, hear all of channels 1-13 but no
// 5 GHz), their frames merged into one capture.
//
// Addresses are handled in memory only, to group probes into bursts; only counts come out.
import type { Frame } from '../firmware/host/types.ts';
import { LINKTYPE } from '../firmware/host/types.ts';
import { MODELS } from './devices.ts';
import { resolveScenario } from './scenario.ts';
import { runScenario } from './sim.ts';

/** Probes further apart than this start a new burst. */
export const BURST_GAP_MS = 1000;
/** Window of the per-minute count. */
export const WINDOW_MS = 60_000;

export interface PhoneFigures {
  /** Whole 1-minute windows (aligned to the minute, as the gateways count) between the phone's first and last probe. */
  windows: number;
  /** Distinct source addresses per whole window, as the firmware counts them (`devices`), mean over the windows. */
  addressesPerMinute: number;
  /**
   * New addresses per whole window (each address counted in the window of its first probe), mean.
   * Equal to addressesPerMinute unless bursts straddle window boundaries, which counts their address
   * in two windows: this one does not depend on where the phone's scans fall against the minute.
   */
  newAddressesPerMinute: number;
  /** Bursts (probes closer than BURST_GAP_MS) starting in those windows. */
  bursts: number;
  /** Distinct addresses per burst, mean. */
  addressesPerBurst: number;
  /** Probe requests per burst, mean. */
  probesPerBurst: number;
  /** Time from one burst's start to the next one's, mean (s). */
  burstIntervalS: number;
  /** Standard errors of the means above (sd / sqrt(n)): how well a capture of this length pins them down. */
  se: { addressesPerMinute: number; newAddressesPerMinute: number; addressesPerBurst: number; probesPerBurst: number; burstIntervalS: number };
}

interface Probe {
  t: number;
  sa: string;
}

/** Probe requests (radiotap + 802.11, subtype 4) of a list of frames, with their source address. */
function probesOf(frames: readonly Frame[]): Probe[] {
  const out: Probe[] = [];
  for (const f of frames) {
    if ((f.linkType & 0x03ffffff) !== LINKTYPE.IEEE802_11_RADIOTAP || f.data.length < 4) continue;
    const rt = f.data[2] | (f.data[3] << 8);
    if (f.data.length < rt + 16 || f.data[rt] !== 0x40) continue;
    out.push({ t: f.timestampMs, sa: Buffer.from(f.data.subarray(rt + 10, rt + 16)).toString('hex') });
  }
  return out.sort((a, b) => a.t - b.t);
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * The figures of one phone's frames (one phone only: bursts are found by time). `ignoreFcs` counts
 * frames whose FCS fails, as the anonymised dataset needs.
 */
export async function phoneFigures(frames: readonly Frame[], opts: { ignoreFcs?: boolean; wasmPath?: string } = {}): Promise<PhoneFigures> {
  const probes = probesOf(frames);
  if (!probes.length) throw new Error('phoneFigures: no probe requests in the frames');
  const first = probes[0].t;
  const last = probes[probes.length - 1].t;
  const from = Math.ceil(first / WINDOW_MS) * WINDOW_MS;
  const to = Math.floor(last / WINDOW_MS) * WINDOW_MS;
  if (to <= from) throw new Error('phoneFigures: the frames span no whole minute');

  // Addresses per minute: what the firmware counts in each whole window.
  const { Firmware } = await import('../firmware/host/firmware.ts');
  const { replayFrames } = await import('../gateway/replay.ts');
  const fw = await Firmware.load(opts.wasmPath);
  const sorted = [...frames].sort((a, b) => a.timestampMs - b.timestampMs);
  const perWindow: number[] = [];
  for await (const w of replayFrames([sorted], fw, { window: WINDOW_MS, ignoreFcs: opts.ignoreFcs })) {
    const s = Date.parse(w.start!);
    if (s >= from && s + WINDOW_MS <= to) perWindow.push(w.wifi.devices);
  }
  // Replay prints every window up to a long jump of the clock; any it leaves out had no frames.
  const windows = (to - from) / WINDOW_MS;
  while (perWindow.length < windows) perWindow.push(0);

  // New addresses per window: each address in the window of its first probe.
  const firstSeen = new Map<string, number>();
  for (const p of probes) if (!firstSeen.has(p.sa)) firstSeen.set(p.sa, p.t);
  const fresh = new Array<number>(windows).fill(0);
  for (const t of firstSeen.values()) if (t >= from && t < to) fresh[Math.floor((t - from) / WINDOW_MS)]++;

  // Bursts starting inside the whole windows.
  const bursts: Probe[][] = [];
  for (const p of probes) {
    const cur = bursts[bursts.length - 1];
    if (cur && p.t - cur[cur.length - 1].t <= BURST_GAP_MS) cur.push(p);
    else bursts.push([p]);
  }
  const inside = bursts.filter((b) => b[0].t >= from && b[0].t < to);
  const starts = inside.map((b) => b[0].t);
  const gaps = starts.slice(1).map((t, i) => (t - starts[i]) / 1000);
  const addrs = inside.map((b) => new Set(b.map((p) => p.sa)).size);
  const sizes = inside.map((b) => b.length);
  return {
    windows,
    addressesPerMinute: round(mean(perWindow)),
    newAddressesPerMinute: round(mean(fresh)),
    bursts: inside.length,
    addressesPerBurst: round(mean(addrs)),
    probesPerBurst: round(mean(sizes), 1),
    burstIntervalS: round(mean(gaps), 1),
    se: {
      addressesPerMinute: round(se(perWindow)),
      newAddressesPerMinute: round(se(fresh)),
      addressesPerBurst: round(se(addrs)),
      probesPerBurst: round(se(sizes), 1),
      burstIntervalS: round(se(gaps), 1),
    },
  };
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}
function se(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1) / xs.length);
}

/** Frames of a capture file. */
export async function captureFrames(path: string): Promise<Frame[]> {
  const { readCaptureFile } = await import('../gateway/capture/pcap.ts');
  const out: Frame[] = [];
  for await (const batch of readCaptureFile(path)) out.push(...batch);
  return out;
}

/**
 * The frames one simulated phone of `model` sends during `durationS`, as three sniffers fixed on
 * channels 1, 6 and 11 right beside it capture them (merged, in time order).
 */
export function simulatedPhoneFrames(model: string, opts: { seed?: number; durationS?: number } = {}): Frame[] {
  const sniffer = (ch: number) => ({ channels: [ch], dwell: '24h', switch: '0ms' });
  return phoneHeardBy(model, [sniffer(1), sniffer(6), sniffer(11)], opts);
}

/** A Wi-Fi receiver as a scenario gives it (`gateways[].wifi`). */
export interface ReceiverSpec {
  channels: number[];
  /** A duration with its unit: 250ms, 24h. */
  dwell: string;
  switch?: string;
}

/** The frames one simulated phone of `model` sends during `durationS`, as receivers right beside it hear them (merged, in time order). */
export function phoneHeardBy(model: string, receivers: readonly ReceiverSpec[], opts: { seed?: number; durationS?: number } = {}): Frame[] {
  if (!MODELS[model]?.wifi) throw new Error(`simulatedPhoneFrames: "${model}" is not a Wi-Fi device model`);
  const s = resolveScenario(
    {
      name: 'single-phone',
      site: 'lab',
      start: '2026-01-01T00:00:00Z',
      duration: `${opts.durationS ?? 3600}s`,
      window: '60s',
      gateways: receivers.map((wifi, i) => ({ id: `rx${i}`, zone: 'bench', position: [0, 0], wifi, ble: false })),
      fixed: [{ model, position: [1, 0], count: 1 }],
      environment: { shadowing_db: 0, fading_db: 0 },
    },
    'single-phone',
  );
  const frames: Frame[] = [];
  for (const ev of runScenario(s, { seed: opts.seed ?? 1 })) if (ev.type === 'frame' && ev.radio === 'wifi') frames.push(ev.frame);
  return frames;
}

/** Sub-window of the firmware's burst count (WIFI_SUB_MS of firmware/assembly/estimator.ts). */
export const BURST_SUB_MS = 10_000;

/**
 * Addresses of one scan burst a receiver hears, as the firmware's floor divides by them: distinct
 * source addresses of probe requests per 10-s sub-window (a grid from the first probe) in which the
 * phone is heard, mean over those sub-windows. One phone's frames only.
 */
export function burstAddressesHeard(frames: readonly Frame[]): { subwindows: number; mean: number; se: number } {
  const probes = probesOf(frames);
  if (!probes.length) throw new Error('burstAddressesHeard: no probe requests in the frames');
  const origin = probes[0].t;
  const subs = new Map<number, Set<string>>();
  for (const p of probes) {
    const k = Math.floor((p.t - origin) / BURST_SUB_MS);
    let set = subs.get(k);
    if (!set) subs.set(k, (set = new Set()));
    set.add(p.sa);
  }
  const sizes = [...subs.values()].map((x) => x.size);
  return { subwindows: sizes.length, mean: round(mean(sizes)), se: round(se(sizes)) };
}
