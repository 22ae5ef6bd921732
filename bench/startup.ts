// Start-up cost of the `presence` CLI: wall time and peak RSS of `presence --version`, and the RSS of
// an idle `presence gateway` (source pcap on stdin with nothing arriving, connected to an embedded
// Aedes broker), for the compiled build (scripts/presence.js -> dist/) against the TypeScript sources
// run through tsx as before the build existed (every subcommand's module loaded), in the same run.
// Also shown: the sources through tsx with the lazy subcommand loading, to separate the two effects,
// and the compiled gateway with the node flags the shipped systemd unit starts it with
// (gateway/presence-gateway.service ExecStart; their CPU cost per frame: `npm run bench -- gateway`),
// and the compiled gateway with V8's defaults instead of the two V8 flags the bin sets for `gateway`
// (scripts/presence.js; named on node's command line, they win): the gateway as it idled before.
// Goals: --version <= 0.3 s; idle gateway <= 60 MB RSS (a Pi Zero 2 has 512 MB), as started by hand
// and as the unit starts it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { unitNodeFlags } from './gateway.ts';

const ROOT = join(import.meta.dirname, '..');
const SMOKE = process.env.BENCH_SMOKE === '1';
const RUNS = SMOKE ? 1 : 7;
const IDLE_MS = SMOKE ? 500 : 3000;
/** A second reading of the compiled gateway, once V8's memory reducer (~8 s after start-up's full GC) has returned start-up's garbage. */
const SETTLE_MS = SMOKE ? 0 : 15_000;
const IDLE_RUNS = SMOKE ? 1 : 3;
const GOAL_SECONDS = 0.3;
const GOAL_IDLE_MB = 60;
/** V8's own values of the flags scripts/presence.js sets for `gateway`; given to node, they win over the bin's. */
const V8_DEFAULTS = ['--opt', '--semi-space-growth-factor=2'];

interface Variant {
  name: string;
  args: string[];
}

function variants(dir: string): Variant[] {
  const tsx = import.meta.resolve('tsx/esm/api');
  const cli = pathToFileURL(join(ROOT, 'scripts', 'cli.ts')).href;
  const eager = join(dir, 'tsx-eager.mjs');
  const lazy = join(dir, 'tsx-lazy.mjs');
  // As scripts/presence.js was: tsx's loader, then the CLI with every subcommand registered.
  writeFileSync(
    eager,
    // (commander's exitOverride throws for --version: exit as main() does)
    `import { register } from '${tsx}';\nregister();\nconst { buildProgram } = await import('${cli}');\n` +
      `try { await (await buildProgram()).parseAsync(process.argv); } catch (e) { if (e?.code === 'commander.version') process.exit(e.exitCode); throw e; }\n`,
  );
  writeFileSync(lazy, `import { register } from '${tsx}';\nregister();\nconst { main } = await import('${cli}');\nawait main(process.argv);\n`);
  return [
    { name: 'compiled (dist/)', args: [join(ROOT, 'scripts', 'presence.js')] },
    { name: 'tsx, all subcommands (as before)', args: [eager] },
    { name: 'tsx, lazy subcommands', args: [lazy] },
  ];
}

/**
 * Runs to the end; wall time from spawn to exit, and the child's own peak RSS: VmHWM of its own
 * address space, read from /proc/self/status by the exit hook. (Not process.resourceUsage().maxRSS:
 * Linux folds the peak of the address space a process had before exec into it, which for a spawned
 * child is the parent's: a node child of a 300 MB parent reports 300 MB there and 40 MB here.)
 */
function once(args: string[], rssHook: string): Promise<{ s: number; mb: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--require', rssHook, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      const s = (performance.now() - t0) / 1000;
      const m = /^presence-bench-vmhwm (\d+)$/m.exec(err);
      if (code !== 0 || !m) reject(new Error(`${args.join(' ')} exited ${code}: ${err.slice(-400)}`));
      else resolve({ s, mb: Number(m[1]) / 1024, out });
    });
  });
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;

async function embeddedBroker(): Promise<{ url: string; stop: () => Promise<void> }> {
  const { Aedes } = await import('aedes');
  const aedes = await Aedes.createBroker();
  const server: Server = createServer(aedes.handle as never);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { url: `mqtt://127.0.0.1:${port}`, stop: () => new Promise<void>((r) => aedes.close(() => server.close(() => r()))) };
}

type Idle = Rss & { startS: number; settled?: number };

interface Rss {
  rss: number;
  hwm: number;
  /** Private memory; the rest of the RSS is file-backed (mostly node's own binary, shared and reclaimable). */
  anon: number;
}

function rssMb(pid: number): Rss {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024, anon: kb('RssAnon') / 1024 };
}

const gatewayArgs = (url: string, dir: string, i: number) => [
  'gateway',
  ...['--site', 'bench', '--zone', 'z', '--id', `idle-${i}`, '--mqtt-url', url],
  ...['--source', 'pcap:-', '--queue-dir', join(dir, `q${i}`), '--log-level', 'info'],
];

/** Starts a process, waits until its stderr shows `ready`, lets it idle, reads its RSS, stops it. */
async function idle(name: string, args: string[], ready: string, settle = false): Promise<Idle> {
  const t0 = performance.now();
  // stdin stays open with nothing written: for the gateway, a capture with no frames arriving
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  try {
    await Promise.race([
      new Promise<void>((resolve) =>
        child.stderr!.on('data', (d) => {
          err += d;
          if (err.includes(ready)) resolve();
        }),
      ),
      exited.then((c) => Promise.reject(new Error(`${name}: exited ${c} before it was ready: ${err.slice(-400)}`))),
    ]);
    const startS = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, IDLE_MS));
    if (child.exitCode !== null) throw new Error(`${name}: exited ${child.exitCode} while idle: ${err.slice(-400)}`);
    const at = rssMb(child.pid!);
    if (!settle || SETTLE_MS === 0) return { ...at, startS };
    await new Promise((r) => setTimeout(r, SETTLE_MS - IDLE_MS));
    if (child.exitCode !== null) throw new Error(`${name}: exited ${child.exitCode} while idle: ${err.slice(-400)}`);
    return { ...at, startS, settled: rssMb(child.pid!).rss };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

/** The run with the median RSS of `n` (RSS at idle varies by a few MB from run to run). */
async function idleMedian(n: number, name: string, args: (k: number) => string[], ready: string, settle = false): Promise<Idle> {
  const runs: Idle[] = [];
  for (let k = 0; k < n; k++) runs.push(await idle(name, args(k), ready, settle));
  const settled = runs.map((r) => r.settled).filter((x) => x !== undefined);
  return { ...runs.sort((a, b) => a.rss - b.rss)[runs.length >> 1]!, settled: settled.length ? median(settled) : undefined };
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-startup-'));
  try {
    const hook = join(dir, 'vmhwm.cjs');
    writeFileSync(
      hook,
      "process.on('exit', () => { const fs = require('node:fs'); const kb = /VmHWM:\\s+(\\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]; fs.writeSync(2, '\\npresence-bench-vmhwm ' + kb + '\\n'); });\n",
    );
    const vs = variants(dir);
    const fmt = (x: number, d = 2) => x.toFixed(d);
    const empty: number[] = [];
    for (let r = 0; r < RUNS; r++) empty.push((await once(['-e', ''], hook)).s);
    const bare = median(empty);
    console.log(`startup: medians of ${RUNS} runs each; node with an empty script: ${fmt(bare)} s`);
    const version: Array<{ s: number; mb: number }> = [];
    for (const v of vs) {
      const s: number[] = [];
      const mb: number[] = [];
      // interleaving would mix cache states; each variant runs back to back after one warm-up
      await once([...v.args, '--version'], hook);
      for (let r = 0; r < RUNS; r++) {
        const x = await once([...v.args, '--version'], hook);
        if (x.out.trim() === '') throw new Error(`${v.name}: --version printed nothing`);
        s.push(x.s);
        mb.push(x.mb);
      }
      version.push({ s: median(s), mb: median(mb) });
    }
    for (const [i, v] of vs.entries()) {
      const x = version[i]!;
      console.log(
        `startup: presence --version, ${v.name.padEnd(34)} ${fmt(x.s)} s, peak RSS ${fmt(x.mb, 0)} MB${i > 0 ? `  (compiled: ${fmt(version[0]!.s / x.s)}x the time, ${fmt(version[0]!.mb / x.mb)}x the RSS)` : ''}`,
      );
    }
    const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
    console.log(`startup: goal --version <= ${GOAL_SECONDS} s: ${verdict(version[0]!.s <= GOAL_SECONDS)} (${fmt(version[0]!.s)} s)`);

    const broker = await embeddedBroker();
    try {
      const floor = await idle('node', ['-e', "process.stderr.write('ready'); setInterval(() => {}, 1e9);"], 'ready');
      const gw: Idle[] = [];
      // the compiled gateway, by hand and as the unit starts it: the median of IDLE_RUNS runs; the tsx variants: one run
      for (const [i, v] of vs.entries())
        gw.push(
          await idleMedian(i === 0 ? IDLE_RUNS : 1, v.name, (k) => [...v.args, ...gatewayArgs(broker.url, dir, 10 * i + k)], 'connected to broker', i === 0),
        );
      const flags = unitNodeFlags();
      const unit = await idleMedian(
        IDLE_RUNS,
        'unit',
        (k) => [...flags, ...vs[0]!.args, ...gatewayArgs(broker.url, dir, 100 + k)],
        'connected to broker',
        true,
      );
      const defaults = await idleMedian(
        IDLE_RUNS,
        'defaults',
        (k) => [...V8_DEFAULTS, ...vs[0]!.args, ...gatewayArgs(broker.url, dir, 200 + k)],
        'connected to broker',
        true,
      );
      const line = (what: string, x: Idle) =>
        `startup: idle ${what} RSS ${fmt(x.rss, 1)} MB (private ${fmt(x.anon, 1)} MB, peak ${fmt(x.hwm, 1)} MB` +
        `${x.settled === undefined ? '' : `; ${SETTLE_MS / 1000} s after connecting ${fmt(x.settled, 1)} MB`})`;
      console.log(
        `startup: idle RSS ${IDLE_MS / 1000} s after connecting; compiled gateway: the median of ${IDLE_RUNS} runs` +
          (SETTLE_MS > 0 ? `, and the median RSS of the same runs ${SETTLE_MS / 1000} s after connecting (after V8's memory reducer)` : ''),
      );
      console.log(`${line('node, empty event loop (the floor)'.padEnd(52), floor)}`);
      for (const [i, v] of vs.entries()) {
        const x = gw[i]!;
        const ratio = i > 0 ? `  (compiled: ${fmt(gw[0]!.rss / x.rss)}x the RSS)` : '';
        console.log(`${line(`presence gateway, ${v.name.padEnd(34)}`, x)}, connected after ${fmt(x.startS)} s${ratio}`);
      }
      console.log(`${line(`presence gateway, compiled, the unit's node flags ${flags.join(' ')}`.padEnd(52), unit)}, connected after ${fmt(unit.startS)} s`);
      console.log(
        `${line(`presence gateway, compiled, V8's defaults ${V8_DEFAULTS.join(' ')} (as before the bin set its flags)`.padEnd(52), defaults)}, connected after ${fmt(defaults.startS)} s  (by hand: ${fmt(gw[0]!.rss / defaults.rss)}x the RSS)`,
      );
      console.log(
        `startup: goal idle gateway <= ${GOAL_IDLE_MB} MB RSS: started by hand ${verdict(gw[0]!.rss <= GOAL_IDLE_MB)} (${fmt(gw[0]!.rss, 1)} MB), ` +
          `as the systemd unit starts it ${verdict(unit.rss <= GOAL_IDLE_MB)} (${fmt(unit.rss, 1)} MB)`,
      );
    } finally {
      await broker.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
