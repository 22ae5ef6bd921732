// The gateway's live page under load: `presence gateway` reads a generated capture (the gateway
// bench's: Wi-Fi probe requests and BLE adverts, 2,000 devices) from standard input as fast as it
// can, once with no page viewer and once with 50 (40 reading every picture, 10 that never read a
// byte), pictures every 10 ms (a hundred times the default rate), in the same run, alternating, five
// times each. Reported: frames per second of each (median), and the ratio with 50 viewers to none
// (the baseline). The broker is down on purpose, so the process stays up after the input ends and
// its windows wait in the queue: the same work in both modes, no broker in the measurement.
import { spawn } from 'node:child_process';
import { rmSync, mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCapture, procCpuSeconds } from './gateway.ts';

const ROOT = join(import.meta.dirname, '..');
const SMOKE = !!process.env.BENCH_SMOKE;
const ROUNDS = SMOKE ? 1 : 5;
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
  pictures(): number[];
  close(): void;
}

async function viewers(port: number, readers: number, stalled: number): Promise<Viewers> {
  const counts = new Array<number>(readers).fill(0);
  const closers: Array<() => void> = [];
  await Promise.all(
    Array.from(
      { length: readers },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port, path: '/events' }, (res) => {
            let tail = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => {
              const s = tail + d;
              counts[i] += s.split('event: snapshot\n').length - 1;
              tail = s.slice(-15);
            });
            res.on('error', () => {});
            closers.push(() => res.destroy());
            resolve();
          });
          req.on('error', reject);
          req.end();
        }),
    ),
  );
  for (let i = 0; i < stalled; i++) {
    const s: Socket = await new Promise((resolve, reject) => {
      const c = connect(port, '127.0.0.1', () => {
        c.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        c.pause();
        resolve(c);
      });
      c.once('error', reject);
    });
    s.on('error', () => {});
    closers.push(() => s.destroy());
  }
  return {
    pictures: () => counts,
    close: () => {
      for (const c of closers) c();
    },
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

/** One run: frames per second from the first byte on standard input to "sources ended". */
async function once(
  capture: string,
  frames: number,
  n: { readers: number; stalled: number },
  dir: string,
): Promise<{ fps: number; cpuUsPerFrame: number; dropped: number }> {
  const port = await freePort();
  // The capture comes from `cat`, started when told (a line on its stdin), straight into the
  // gateway's standard input: this process, busy with the viewers, does not carry it.
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
    // Started up in both modes alike: a picture that carries the machine checks (run at start).
    await ready(port);
    if (n.readers + n.stalled > 0) {
      v = await viewers(port, n.readers, n.stalled);
      await waitUntil(() => v!.pictures().every((c) => c > 0), 'a picture for every reader');
    }
    const t0 = performance.now();
    const cpu0 = procCpuSeconds(child.pid!);
    writer.stdin!.end('go\n');
    await waitUntil(() => ended > 0 || child.exitCode !== null, 'the gateway to read the whole capture', 300_000);
    if (!ended) throw new Error(`bench web: the gateway exited early: ${stderr.slice(-800)}`);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const dropped = Number(/^presence_gateway_page_viewers_dropped_total (\S+)/m.exec(metrics)?.[1] ?? 0);
    const windowFrames = [...metrics.matchAll(/^presence_gateway_window_frames_total\{radio="\w+"\} (\S+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
    if (windowFrames !== frames) throw new Error(`bench web: ${windowFrames} frames counted in windows, the capture has ${frames}`);
    return { fps: frames / ((ended - t0) / 1000), cpuUsPerFrame: ((cpuEnd - cpu0) * 1e6) / frames, dropped };
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
    const frames = makeCapture(path, Date.UTC(2026, 3, 27, 12, 0, 0), SMOKE ? 10 : 100);
    console.log(
      `capture: ${frames.toLocaleString('en')} frames on standard input at full speed; pictures every ${UPDATE}; ${ROUNDS} run(s) each, alternating; load average ${loadavg()[0]!.toFixed(1)}`,
    );
    const none: Awaited<ReturnType<typeof once>>[] = [];
    const fifty: Awaited<ReturnType<typeof once>>[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      none.push(await once(path, frames, { readers: 0, stalled: 0 }, dir));
      fifty.push(await once(path, frames, { readers: READERS, stalled: STALLED }, dir));
    }
    const a = median(none.map((x) => x.fps));
    const b = median(fifty.map((x) => x.fps));
    const ratio = b / a;
    const cpuA = median(none.map((x) => x.cpuUsPerFrame));
    const cpuB = median(fifty.map((x) => x.cpuUsPerFrame));
    const fmt = (x: number) => Math.round(x).toLocaleString('en');
    const runs = (xs: typeof none) => xs.map((x) => fmt(x.fps)).join(', ');
    console.log(`no viewers: ${fmt(a)} frames/s, gateway CPU ${cpuA.toFixed(2)} us/frame (runs: ${runs(none)})`);
    console.log(
      `${READERS + STALLED} viewers (${STALLED} never reading): ${fmt(b)} frames/s, gateway CPU ${cpuB.toFixed(2)} us/frame (runs: ${runs(fifty)}); stalled viewers dropped during the replays: ${fifty.reduce((s, x) => s + x.dropped, 0)}`,
    );
    console.log(
      `ratio frames/s 50 viewers / none: ${ratio.toFixed(2)}   goal >= ${GOAL_RATIO}: ${ratio >= GOAL_RATIO ? 'PASS' : 'FAIL'}; gateway CPU per frame 50 viewers / none: ${(cpuB / cpuA).toFixed(2)} (the viewers run on this machine too)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
