// Gateway cost at 10,000 frames/s: a generated capture (Wi-Fi probe requests + BLE adverts from a
// crowd with rotating addresses) is replayed in real time by `presence gateway` as a separate process
// publishing to a broker (Mosquitto if installed, else an embedded Aedes). Reported: the process's
// CPU share of one core and its CPU time as a ratio to the firmware alone processing the same frames
// in this run (the baseline), and its RSS at start / middle / end of the replay (flat = no growth).
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { readCaptureFile } from '../gateway/capture/pcap.ts';
import { BLE_PDU, bleAdvertLL, probeRequest } from '../simulator/frames.ts';
import { pcapngHeader, pcapngPacket } from '../simulator/pcap-writer.ts';
import { LINKTYPE } from '../firmware/host/types.ts';
import { Rng } from '../simulator/rng.ts';

const ROOT = join(import.meta.dirname, '..');
const RATE = 10_000; // frames per second of capture time
const SECONDS = Number(process.env.BENCH_GATEWAY_SECONDS ?? 40);
const WINDOW = '10s';
/** Goal (issue 11): the paced gateway's CPU per frame at most this many times the firmware alone's. */
const GOAL_RATIO = 4;

/** Seeded: the same capture every run. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.float();
}

/** pcapng with two interfaces (radiotap Wi-Fi, BLE LL): RATE frames/s for SECONDS, 2,000 devices rotating addresses. */
export function makeCapture(path: string, startMs: number, seconds = SECONDS): number {
  const r = rng(42);
  const ies = Uint8Array.from([0x00, 0x00, 0x01, 0x08, 0x82, 0x84, 0x8b, 0x96, 0x0c, 0x12, 0x18, 0x24, 0x32, 0x04, 0x30, 0x48, 0x60, 0x6c]);
  const adv = Uint8Array.from([0x02, 0x01, 0x06, 0x03, 0x03, 0x6f, 0xfd]);
  const parts: Buffer[] = [
    pcapngHeader([
      { linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' },
      { linkType: LINKTYPE.BLUETOOTH_LE_LL_WITH_PHDR, name: 'ble0' },
    ]),
  ];
  const n = RATE * seconds;
  const addr = new Uint8Array(6);
  for (let i = 0; i < n; i++) {
    const t = startMs + (i * 1000) / RATE;
    const device = Math.floor(r() * 2000);
    const epoch = Math.floor(t / 15 / 60_000); // addresses rotate every 15 minutes
    let x = (device * 2654435761 + epoch * 97) >>> 0;
    for (let k = 0; k < 6; k++) {
      x = (x * 1103515245 + 12345) >>> 0;
      addr[k] = x >>> 24;
    }
    if (i % 2 === 0) {
      addr[0] = (addr[0] & 0xfc) | 0x02;
      parts.push(
        pcapngPacket(0, t, probeRequest({ sa: addr, seq: i & 0xfff, ies, channel: 1 + (i % 11), signalDbm: -40 - Math.floor(r() * 50), tsfUs: i * 100 })),
      );
    } else {
      addr[0] |= 0xc0;
      parts.push(
        pcapngPacket(
          1,
          t,
          bleAdvertLL({
            pduType: BLE_PDU.ADV_IND,
            adva: addr,
            random: true,
            advData: adv,
            channel: ([37, 38, 39] as const)[i % 3],
            signalDbm: -50 - Math.floor(r() * 40),
          }),
        ),
      );
    }
  }
  writeFileSync(path, Buffer.concat(parts));
  return n;
}

function hasBinary(bin: string): boolean {
  return ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/bin'].some((d) => existsSync(join(d, bin)));
}

async function startBroker(dir: string): Promise<{ url: string; kind: string; stop: () => Promise<void> }> {
  if (process.env.BENCH_BROKER !== 'aedes' && hasBinary('mosquitto')) {
    const { Mosquitto } = await import('../test/support/mosquitto.ts');
    const m = await new Mosquitto().start();
    return { url: m.url, kind: 'Mosquitto', stop: () => m.dispose() };
  }
  const { Aedes } = await import('aedes');
  const aedes = await Aedes.createBroker();
  const server: Server = createServer(aedes.handle as never);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  void dir;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    kind: 'Aedes (embedded)',
    stop: () => new Promise<void>((r) => aedes.close(() => server.close(() => r()))),
  };
}

const TICK = 100; // USER_HZ on Linux
export function procCpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / TICK; // utime + stime
}
function procRssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** The firmware alone, in this process, on the same frames with the same windows: CPU seconds. */
async function firmwareBaseline(path: string): Promise<{ cpu: number; frames: number }> {
  const frames: Frame[] = [];
  for await (const batch of readCaptureFile(path)) for (const f of batch) frames.push(f);
  const fw = await Firmware.load();
  const windowMs = 10_000;
  const t0 = process.cpuUsage();
  let end = Math.floor(frames[0].timestampMs / windowMs) * windowMs + windowMs;
  fw.beginWindow({ ignoreFcs: false });
  const BATCH = 512;
  for (let i = 0; i < frames.length; i += BATCH) {
    const batch = frames.slice(i, i + BATCH);
    if (batch[0].timestampMs >= end) {
      fw.endWindow();
      fw.beginWindow({ ignoreFcs: false });
      end += windowMs;
    }
    fw.ingestMany(batch);
  }
  fw.endWindow();
  const d = process.cpuUsage(t0);
  return { cpu: (d.user + d.system) / 1e6, frames: frames.length };
}

interface Sample {
  t: number;
  rss: number;
  cpu: number;
}

function rssLine(samples: Sample[]): string {
  const at = (f: number) => samples[Math.min(samples.length - 1, Math.floor(f * (samples.length - 1)))].rss;
  const fmt = (x: number) => x.toFixed(1);
  const max = Math.max(...samples.map((s) => s.rss));
  return `after load ${fmt(at(0))} MB, at 1/4 ${fmt(at(0.25))} MB, 1/2 ${fmt(at(0.5))} MB, end ${fmt(at(1))} MB (1/4 -> end: ${at(1) - at(0.25) >= 0 ? '+' : ''}${fmt(at(1) - at(0.25))} MB; max ${fmt(max)} MB)`;
}

/** Runs `presence gateway` on the capture; samples its CPU and RSS every 250 ms (from 1.5 s on when paced). */
async function replay(
  capture: string,
  url: string,
  queueDir: string,
  speed: string,
): Promise<{ a: Sample; z: Sample; samples: Sample[]; wall: number } | null> {
  const wallStart = performance.now();
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'scripts', 'presence.js'),
      'gateway',
      '--site',
      'bench',
      '--zone',
      'z',
      '--id',
      'g',
      '--mqtt-url',
      url,
      '--source',
      `pcap:${capture}`,
      '--speed',
      speed,
      '--window',
      WINDOW,
      '--queue-dir',
      queueDir,
      '--log-level',
      'warn',
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let alive = true;
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  void exited.then(() => (alive = false));
  const samples: Sample[] = [];
  // A max-speed replay of the whole capture takes well under a second: sample it from the start, often.
  const every = speed === 'max' ? 25 : 250;
  await new Promise((r) => setTimeout(r, speed === 'max' ? 0 : 1500));
  while (alive) {
    try {
      const rss = procRssMb(child.pid!);
      if (rss > 0) samples.push({ t: (performance.now() - wallStart) / 1000, rss, cpu: procCpuSeconds(child.pid!) }); // 0: exiting
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, every));
  }
  const code = await exited;
  const wall = (performance.now() - wallStart) / 1000;
  if (code !== 0 || samples.length < (speed === 'max' ? 1 : 2)) {
    console.log(`gateway --speed ${speed}: replay failed (exit ${code}, ${samples.length} samples): ${stderr.slice(-500)}`);
    process.exitCode = 1;
    return null;
  }
  return { a: samples[0], z: samples[samples.length - 1], samples, wall };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-gw-'));
  try {
    const capture = join(dir, 'crowd.pcapng');
    const start = Date.parse('2026-08-01T12:00:00.000Z');
    const frames = makeCapture(capture, start);
    const base = await firmwareBaseline(capture);
    const broker = await startBroker(dir);
    try {
      const paced = await replay(capture, broker.url, join(dir, 'q1'), '1');
      const fmt = (x: number, d = 1) => x.toFixed(d);
      console.log(`capture: ${frames} frames (Wi-Fi + BLE, 2,000 devices), ${SECONDS} s at ${RATE} frames/s, ${WINDOW} windows; broker: ${broker.kind}`);
      console.log(
        `baseline (firmware alone, in-process, same frames and windows): ${fmt(base.cpu, 3)} CPU s for ${base.frames} frames = ${fmt((base.cpu / base.frames) * 1e6, 2)} us/frame`,
      );
      if (!paced) return;
      const perFrameFw = base.cpu / base.frames;
      {
        const { a, samples } = paced;
        // Steady state: while the capture is being replayed (start-up and the final flush excluded).
        const z = samples.filter((x) => x.t <= SECONDS).at(-1) ?? paced.z;
        const cpu = z.cpu - a.cpu;
        const wall = z.t - a.t;
        const perFrame = cpu / (wall * RATE);
        console.log(
          `--speed 1 (${RATE} frames/s): gateway process CPU ${fmt((cpu / wall) * 100)} % of one core over ${fmt(wall)} s = ${fmt(perFrame * 1e6, 2)} us/frame`,
        );
        const ratio = perFrame / perFrameFw;
        console.log(`  gateway / firmware-alone CPU per frame: ${fmt(ratio, 2)}x (goal <= ${GOAL_RATIO}x: ${ratio <= GOAL_RATIO ? 'met' : 'missed'})`);
        console.log(`  RSS ${rssLine(samples)}`);
      }
      const fast = await replay(capture, broker.url, join(dir, 'q2'), 'max');
      if (fast) {
        const cpu = fast.z.cpu;
        console.log(
          `--speed max: ${frames} frames in ${fmt(fast.wall)} s = ${Math.round(frames / fast.wall)} frames/s (whole run incl. start-up), CPU ${fmt((cpu / frames) * 1e6, 2)} us/frame = ${fmt(cpu / frames / perFrameFw, 2)}x firmware alone`,
        );
        console.log(
          `  RSS, whole run (mostly start-up; the paced run above shows the steady state): max ${Math.max(...fast.samples.map((x) => x.rss)).toFixed(1)} MB`,
        );
      }
    } finally {
      await broker.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
