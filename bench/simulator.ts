// Simulator throughput and memory, as ratios against baselines measured in the same run:
//  - generation: frames/s of `simulate` (kingsday-square, people moving, devices scanning and
//    advertising, reception at three gateways, pcapng + truth written) against only encoding and
//    writing the same number of pre-built frames to a pcapng file (the I/O floor);
//  - scaling: time for twice the crowd against the crowd (about 2 when generation is linear);
//  - memory: heap growth of a 4x longer run against the short one (about 1: streaming, no frame arrays).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { simulate } from '../simulator/index.ts';
import { probeRequest } from '../simulator/frames.ts';
import { CaptureWriter, FileSink } from '../simulator/pcap-writer.ts';

/** Best of `rounds` runs; heapMb is the peak heap in use during the runs (absolute). */
async function timed<T>(fn: () => Promise<T>, rounds = 2): Promise<{ ms: number; value: T; heapMb: number }> {
  let best: { ms: number; value: T; heapMb: number } | null = null;
  for (let r = 0; r < rounds; r++) {
    const one = await timedOnce(fn);
    const peak = Math.max(one.heapMb, best === null ? 0 : best.heapMb);
    if (best === null || one.ms < best.ms) best = { ...one, heapMb: peak };
    else best.heapMb = peak;
  }
  return best!;
}

async function timedOnce<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T; heapMb: number }> {
  let peak = process.memoryUsage().heapUsed;
  const iv = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 5);
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  clearInterval(iv);
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  return { ms, value, heapMb: peak / 1e6 };
}

/** Smoke mode (npm run bench -- --smoke): a tenth of every duration. */
const T = process.env.BENCH_SMOKE === '1' ? 0.1 : 1;

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-sim-'));
  try {
    const opts = { scenario: 'kingsday-square', seed: 1, durationS: 600 * T, scale: 0.05 };
    await simulate({ ...opts, durationS: 60 * T, outDir: join(dir, 'warm-up') });
    const sim = await timed(() => simulate({ ...opts, outDir: join(dir, 'a') }));
    const frames = sim.value.truth.totals.frames.wifi + sim.value.truth.totals.frames.ble;
    const sa = Uint8Array.of(0xda, 1, 2, 3, 4, 5);
    const ies = new Uint8Array(120);
    const prebuilt = Array.from({ length: 1024 }, (_, i) => probeRequest({ sa, seq: i, ies, channel: 6, signalDbm: -70, tsfUs: i }));
    const base = await timed(async () => {
      const w = CaptureWriter.pcapng(new FileSink(join(dir, 'base.pcapng')), [{ linkType: 127, name: 'wlan0mon' }]);
      for (let i = 0; i < frames; i++) w.write(0, 1e12 + i, prebuilt[i & 1023]);
      await w.close();
    });
    const fps = (frames / sim.ms) * 1000;
    const baseFps = (frames / base.ms) * 1000;
    console.log(
      `simulator: kingsday-square 10 min at scale 0.05: ${frames} frames (${sim.value.truth.totals.people} people) in ${sim.ms.toFixed(0)} ms = ${Math.round(fps)} frames/s`,
    );
    console.log(
      `simulator: writing the same number of pre-built frames (I/O floor): ${Math.round(baseFps)} frames/s; generation costs ${(baseFps / fps).toFixed(1)}x the floor`,
    );

    const double = await timed(() => simulate({ ...opts, scale: 0.1, outDir: join(dir, 'b') }));
    const frames2 = double.value.truth.totals.frames.wifi + double.value.truth.totals.frames.ble;
    console.log(`simulator: twice the crowd: ${(frames2 / frames).toFixed(2)}x the frames in ${(double.ms / sim.ms).toFixed(2)}x the time`);

    // Memory on a steady flow (traffic-corridor): a 4x longer run should not hold 4x the heap.
    const flow = { scenario: 'traffic-corridor', seed: 1, scale: 1 };
    const short = await timed(() => simulate({ ...flow, durationS: 900 * T, outDir: join(dir, 'c') }));
    const long = await timed(() => simulate({ ...flow, durationS: 3600 * T, outDir: join(dir, 'd') }));
    console.log(
      `simulator: traffic-corridor 60 min vs 15 min: ${(long.ms / short.ms).toFixed(2)}x the time, peak heap ${long.heapMb.toFixed(1)} MB vs ${short.heapMb.toFixed(1)} MB (${(long.heapMb / Math.max(0.1, short.heapMb)).toFixed(2)}x)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
