// The gateway's live page under load: `presence gateway` reads a generated capture (the gateway
// bench's: Wi-Fi probe requests and BLE adverts, 2,000 devices; 300 s of it, 3,000,000 frames, so a
// replay lasts seconds) from standard input as fast as it can, with no page viewer, with one reading
// viewer, and with 50 (40 reading every picture, 10 that never read a byte), pictures every 10 ms (a
// hundred times the default rate), in the same run, alternating, five times each. The viewers run in
// a process of their own on raw sockets (the readers take every byte and count the pictures with a
// Buffer search): they cost the machine what a browser's network stack would, about 0.1 s of CPU for
// all 50 in a replay, not a parser per viewer in the bench's own process. Reported: frames per second
// of each mode (median), the gateway's CPU per frame (its /proc utime + stime over the replay), the
// pictures each reader had and the viewers the gateway dropped; the goal is the ratio of frames per
// second with 50 viewers to none. The 1-viewer mode splits the cost: per picture (1 viewer / none)
// and per viewer (50 / 1). The gateway writes to each viewer at most every 50 ms (scripts/lib/web.ts
// SseHub writeIntervalMs), so here about five pictures go in each write. The broker is down on purpose, so the process stays up after the input
// ends and its windows wait in the queue: the same work in every mode, no broker in the measurement.
import { spawn } from 'node:child_process';
import { rmSync, mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCapture, procCpuSeconds } from './gateway.ts';

const ROOT = join(import.meta.dirname, '..');
const SMOKE = !!process.env.BENCH_SMOKE;
const ROUNDS = SMOKE ? 1 : Number(process.env.BENCH_WEB_ROUNDS ?? 5);
/** Seconds of generated capture (10,000 frames a second): long enough that a replay takes seconds, not a fraction of one. */
const SECONDS = SMOKE ? 10 : Number(process.env.BENCH_WEB_SECONDS ?? 300);
const READERS = 40;
const STALLED = 10;
const UPDATE = '10ms';
/** Goal: with 50 viewers the gateway keeps at least this share of its frames per second. */
const GOAL_RATIO = 0.8;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`bench web: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

interface Viewers {
  /** Pictures each reader has had so far, and whether the gateway closed its connection. */
  report(): Promise<{ pictures: number[]; closed: number[]; stalledClosed: number; cpuSeconds: number }>;
  close(): void;
}

// The viewers' process: `readers` raw sockets that read everything and count the pictures with a
// Buffer search (what a browser's network stack costs the gateway: a socket that takes its bytes),
// and `stalled` sockets that send their request and never read a byte. Prints "ready" once every
// reader has had a picture; on a line on its stdin prints its counts as JSON.
const VIEWERS = `
const net = require('node:net');
const [port, readers, stalled] = process.argv.slice(1).map(Number);
const marker = Buffer.from('event: snapshot\\n');
const pictures = new Array(readers).fill(0), closed = new Array(readers).fill(0);
let stalledClosed = 0, ready = false;
const request = 'GET /events HTTP/1.1\\r\\nHost: 127.0.0.1:' + port + '\\r\\nAccept: text/event-stream\\r\\n\\r\\n';
for (let i = 0; i < readers; i++) {
  const s = net.connect(port, '127.0.0.1', () => s.write(request));
  let tail = Buffer.alloc(0);
  s.on('data', (d) => {
    const b = tail.length ? Buffer.concat([tail, d]) : d;
    for (let at = b.indexOf(marker); at >= 0; at = b.indexOf(marker, at + marker.length)) pictures[i]++;
    tail = b.subarray(Math.max(0, b.length - marker.length + 1));
    if (!ready && pictures.every((n) => n > 0)) { ready = true; process.stdout.write('ready\\n'); }
  });
  s.on('close', () => { closed[i] = 1; });
  s.on('error', () => {});
}
for (let i = 0; i < stalled; i++) {
  const s = net.connect(port, '127.0.0.1', () => { s.write(request); s.pause(); });
  s.on('close', () => stalledClosed++);
  s.on('error', () => {});
}
if (readers === 0) { ready = true; process.stdout.write('ready\\n'); }
process.stdin.on('data', () => {
  const u = process.cpuUsage();
  process.stdout.write(JSON.stringify({ pictures, closed, stalledClosed, cpuSeconds: (u.user + u.system) / 1e6 }) + '\\n');
});
`;

async function viewers(port: number, readers: number, stalled: number): Promise<Viewers> {
  const p = spawn(process.execPath, ['-e', VIEWERS, String(port), String(readers), String(stalled)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const waiters: Array<(line: string) => void> = [];
  p.stdout!.setEncoding('utf8');
  p.stdout!.on('data', (d: string) => {
    out += d;
    for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      waiters.shift()?.(line);
    }
  });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      waiters.push(resolve);
      p.once('exit', (c) => reject(new Error(`bench web: the viewers' process exited (${c})`)));
    });
  const ready = await next();
  if (ready !== 'ready') throw new Error(`bench web: the viewers' process said ${ready}`);
  return {
    report: async () => {
      const line = next();
      p.stdin!.write('report\n');
      return JSON.parse(await line);
    },
    close: () => p.kill('SIGKILL'),
  };
}

/** Resolves once a picture with the machine checks comes (the gateway has started up); closes that viewer. */
function ready(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events' }, (res) => {
      let all = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        all += d;
        if (/"checks":\{/.test(all)) {
          res.destroy();
          resolve();
        }
      });
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end();
  });
}

interface Run {
  fps: number;
  cpuUsPerFrame: number;
  /** Viewers the gateway dropped (its metric), readers among them (closed on the viewers' side). */
  dropped: number;
  readersClosed: number;
  /** Pictures the slowest and the fastest reader had during the replay; CPU seconds of the viewers' process. */
  pictures: [number, number];
  viewersCpu: number;
}

/** One run: frames per second from the first byte on standard input to "sources ended". */
async function once(capture: string, frames: number, n: { readers: number; stalled: number }, dir: string): Promise<Run> {
  const port = await freePort();
  // The capture comes from `cat`, started when told (a line on its stdin), straight into the
  // gateway's standard input: this process does not carry it.
  const writer = spawn('/bin/sh', ['-c', 'read _; exec cat "$0"', capture], { stdio: ['pipe', 'pipe', 'ignore'] });
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'scripts', 'presence.js'),
      'gateway',
      ...['--site', 'bench', '--zone', 'z', '--id', 'web', '--mqtt-url', `mqtt://127.0.0.1:${await freePort()}`],
      ...['--source', 'stdin', '--clock', 'capture', '--window', '10s', '--queue-dir', join(dir, `q-${port}`)],
      ...['--http-port', String(port), '--http-update', UPDATE, '--log-level', 'info', '--log-format', 'json'],
    ],
    { cwd: ROOT, stdio: [writer.stdout!, 'ignore', 'pipe'] },
  );
  let stderr = '';
  let ended = 0;
  let cpuEnd = 0;
  child.stderr!.on('data', (d) => {
    stderr += d;
    if (!ended && stderr.includes('sources ended')) {
      ended = performance.now();
      cpuEnd = procCpuSeconds(child.pid!);
    }
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let v: Viewers | null = null;
  try {
    await waitUntil(() => listening(port), 'the gateway to listen');
    // Started up in every mode alike: a picture that carries the machine checks (run at start).
    await ready(port);
    if (n.readers + n.stalled > 0) v = await viewers(port, n.readers, n.stalled);
    const before = v ? await v.report() : null;
    const t0 = performance.now();
    const cpu0 = procCpuSeconds(child.pid!);
    writer.stdin!.end('go\n');
    await waitUntil(() => ended > 0 || child.exitCode !== null, 'the gateway to read the whole capture', 300_000);
    if (!ended) throw new Error(`bench web: the gateway exited early: ${stderr.slice(-800)}`);
    const after = v ? await v.report() : null;
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const dropped = Number(/^presence_gateway_page_viewers_dropped_total (\S+)/m.exec(metrics)?.[1] ?? 0);
    const windowFrames = [...metrics.matchAll(/^presence_gateway_window_frames_total\{radio="\w+"\} (\S+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
    if (windowFrames !== frames) throw new Error(`bench web: ${windowFrames} frames counted in windows, the capture has ${frames}`);
    const got = after ? after.pictures.map((x, i) => x - before!.pictures[i]!) : [0];
    return {
      fps: frames / ((ended - t0) / 1000),
      cpuUsPerFrame: ((cpuEnd - cpu0) * 1e6) / frames,
      dropped,
      readersClosed: after ? after.closed.reduce((s, x) => s + x, 0) : 0,
      pictures: [Math.min(...got), Math.max(...got)],
      viewersCpu: after ? after.cpuSeconds - before!.cpuSeconds : 0,
    };
  } finally {
    v?.close();
    writer.kill('SIGKILL');
    child.kill('SIGKILL');
    await exited;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-web-'));
  try {
    const path = join(dir, 'capture.pcapng');
    const frames = makeCapture(path, Date.UTC(2026, 3, 27, 12, 0, 0), SECONDS);
    console.log(
      `capture: ${frames.toLocaleString('en')} frames on standard input at full speed; pictures every ${UPDATE}; ${ROUNDS} run(s) of each mode, alternating; viewers in their own process; ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)}`,
    );
    const modes = [
      { name: 'no viewer', readers: 0, stalled: 0 },
      { name: '1 reading viewer', readers: 1, stalled: 0 },
      { name: `${READERS + STALLED} viewers (${STALLED} never reading)`, readers: READERS, stalled: STALLED },
    ];
    const results: Run[][] = modes.map(() => []);
    for (let r = 0; r < ROUNDS; r++) for (const [i, m] of modes.entries()) results[i]!.push(await once(path, frames, m, dir));
    const fmt = (x: number) => Math.round(x).toLocaleString('en');
    const fps = results.map((xs) => median(xs.map((x) => x.fps)));
    const cpu = results.map((xs) => median(xs.map((x) => x.cpuUsPerFrame)));
    for (const [i, m] of modes.entries()) {
      const xs = results[i]!;
      const viewers =
        m.readers > 0
          ? `; pictures per reader during a replay ${Math.min(...xs.map((x) => x.pictures[0]))}-${Math.max(...xs.map((x) => x.pictures[1]))}, viewers' process CPU ${xs.map((x) => x.viewersCpu.toFixed(2)).join(', ')} s, viewers dropped ${xs.map((x) => x.dropped).join(', ')} (readers among them ${xs.reduce((s, x) => s + x.readersClosed, 0)})`
          : '';
      console.log(
        `${m.name}: ${fmt(fps[i]!)} frames/s, gateway CPU ${cpu[i]!.toFixed(3)} us/frame (runs: ${xs.map((x) => fmt(x.fps)).join(', ')}; CPU ${xs.map((x) => x.cpuUsPerFrame.toFixed(3)).join(', ')})${viewers}`,
      );
    }
    const ratio = fps[2]! / fps[0]!;
    console.log(
      `ratio frames/s ${READERS + STALLED} viewers / none: ${ratio.toFixed(2)}   goal >= ${GOAL_RATIO}: ${ratio >= GOAL_RATIO ? 'PASS' : 'FAIL'}; 1 viewer / none: ${(fps[1]! / fps[0]!).toFixed(2)}; gateway CPU per frame ${READERS + STALLED} viewers / none: ${(cpu[2]! / cpu[0]!).toFixed(2)}, 1 viewer / none: ${(cpu[1]! / cpu[0]!).toFixed(2)}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
