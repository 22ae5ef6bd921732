// `presence demo` (npm start): the whole pipeline on one machine with nothing installed. The
// simulator makes captures and ground truth for a few gateways, the gateways (real WASM firmware)
// replay them accelerated into an MQTT broker embedded in this process (Aedes on a free loopback
// port), the aggregator writes what arrives to a line-protocol file (or to InfluxDB when INFLUX_URL
// is set), and the terminal shows a live table of the counts passing through the broker, per zone
// and window, then a summary.
import { decimal } from '../lib/decimal.ts';
import { UsageError } from '../lib/usage.ts';
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { pino, type Logger } from 'pino';
import { createRootLogger } from '../lib/log.ts';
import { redactUrl } from '../lib/secrets.ts';
import { EmbeddedBroker } from './broker.ts';
import { burstAddressesLine, runPeriod } from './pipeline.ts';
import { MIN_WINDOW_MS } from '../../gateway/config.ts';
import { FIT_MIN_WINDOWS } from '../../aggregator/calibration/fit.ts';
import { fitDemoCalibration, type DemoCalibration } from './calibration.ts';
import { lineCount, summary } from './summary.ts';
import { estimateDemoOutput } from './size.ts';
import type { Aggregator } from '../../aggregator/aggregator.ts';
import { CountTable, countsFeed, tableTitle as countsTitle } from './table.ts';
import type { CountsMessage } from '../../contract/index.ts';
import { ProgressLines, progressBar, StageBars } from '../lib/progress.ts';
import { processAlive } from '../lib/process-alive.ts';
import { DURATION_HINT, durationMs, durationNote } from '../lib/duration.ts';
import { loadScenario, ScenarioError } from '../../simulator/scenario.ts';
import {
  checkCrowd,
  checkDisk,
  checkDuration,
  checkWindows,
  estimateOutput,
  formatBytes as sizeText,
  makeOutDir,
  removeDirs,
  scenarioUsageError,
  SIZE_GUARD_BYTES,
  seedOf,
} from '../../simulator/limits.ts';

export interface DemoOptions {
  scenario: string;
  minutes: number;
  window: string;
  speed: string;
  scale: number;
  seed: number;
  out: string;
  lastWeek: boolean;
  live: boolean;
  /** Fit a people calibration on another seed first (default true); false shows devices only. */
  calibrate?: boolean;
  /** Radio whose estimate the calibration maps to people: wifi, ble or auto (the default: the one that follows people better on the calibration run). */
  calibrationRadio?: string;
  /** Lines of demo.log: json (default) or pretty. */
  logFormat?: string;
  /** Keep the simulated captures (deleted at the end by default). */
  keepPcaps?: boolean;
  /** Port of the page (the aggregator's HTTP server on 127.0.0.1): a number (0: any free one), or
   *  'off'. Default: 8464, or any free port when that one is taken. */
  httpPort?: string;
  /** After the run, keep serving the page until Ctrl-C (SIGINT/SIGTERM); default false. */
  hold?: boolean;
}

/** The demo's page port when none is given; a free one is taken when it is in use. */
export const DEMO_HTTP_PORT = 8464;

function formatBytes(n: number): string {
  return n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} kB`;
}

/** Deletes the captures this run wrote (`paths`: the simulator's, of each period), never another
 *  .pcap in the folder (a user's own, or one an earlier run kept); returns how many and their size. */
export function removeCaptures(paths: readonly string[]): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const p of paths) {
    if (!existsSync(p)) continue;
    bytes += statSync(p).size;
    rmSync(p);
    files++;
  }
  return { files, bytes };
}

/**
 * After a run cut short (Ctrl-C): deletes the captures this run wrote into `today/` and `last-week/`
 * (files new or changed since `before`, the folder as the run found it), the ones the simulator was
 * still writing (NAME.partial) always, the whole ones unless `keepWhole` (--keep-pcaps).
 */
export function removeRunCaptures(outDir: string, before: Map<string, string>, keepWhole: boolean): { files: number; bytes: number } {
  const periods = ['today', 'last-week'].map((d) => join(outDir, d) + sep);
  const mine = [...folderFiles(outDir)]
    .filter(([p, now]) => before.get(p) !== now && periods.some((d) => p.startsWith(d)))
    .map(([p]) => p)
    .filter((p) => (keepWhole ? /\.pcap(ng)?\.partial$/ : /\.pcap(ng)?(\.partial)?$/).test(p));
  return removeCaptures(mine);
}

/**
 * What a run cut short by `signal` says once its aggregator and broker have stopped: where the
 * points it wrote are (the line-protocol file, or INFLUX_URL's target), that they are not the whole
 * run, the captures deleted (removeRunCaptures, done here) and what the folder holds from the run.
 */
function interruptedLines(
  signal: string,
  outDir: string,
  before: Map<string, string>,
  running: { aggregator?: Aggregator; toFile?: boolean },
  keepPcaps: boolean,
  lp: string,
): string {
  const lines: string[] = [];
  const a = running.aggregator;
  if (!a) lines.push('nothing was written yet: the aggregator had not started');
  else if (running.toFile)
    lines.push(`${lp} holds ${lineCount(lp)} points: the windows written before ${signal}, not the whole run (the next run writes it anew)`);
  else lines.push(`${a.stats().pointsWritten} points went to ${a.sink.target}: the windows written before ${signal}, not the whole run`);
  const removed = removeRunCaptures(outDir, before, keepPcaps);
  if (removed.files)
    lines.push(
      `the ${removed.files} simulated captures ${keepPcaps ? 'cut short' : 'this run wrote'} (${formatBytes(removed.bytes)}${keepPcaps ? '' : ', those cut short included'}) were deleted` +
        (keepPcaps ? '; the whole ones are kept (--keep-pcaps)' : ''),
    );
  const queued = queuedWindows(join(outDir, 'queues'));
  if (queued) lines.push(`${queued} window${queued === 1 ? '' : 's'} left queued in queues/, not sent (the next run drops them)`);
  lines.push(`${outDir}/ holds ${formatBytes(folderAfterRun(outDir, before).bytes)} from this run`);
  return lines.map((l) => `presence demo: ${l}\n`).join('');
}

/** Every file below `dir` with its modification time and size ("mtime size"), by path. */
export function folderFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    if (p === join(dir, DEMO_MARKER) || p === join(dir, DEMO_LOCK)) continue; // the folder's mark and lock, not results
    const st = statSync(p, { throwIfNoEntry: false });
    if (st) files.set(p, `${st.mtimeMs} ${st.size}`);
  }
  return files;
}

/**
 * What `dir` holds after a run, split into the files this run wrote (new, or changed since
 * `before`, the folder as the run found it) and the ones it did not (an earlier run's with other
 * options, or not the demo's at all), each with their size: the size printed is the run's own.
 */
export function folderAfterRun(dir: string, before: Map<string, string>): { bytes: number; older: { files: string[]; bytes: number } } {
  let bytes = 0;
  const older = { files: [] as string[], bytes: 0 };
  for (const [p, now] of folderFiles(dir)) {
    const size = Number(now.slice(now.indexOf(' ') + 1));
    if (before.get(p) === now) {
      older.files.push(p);
      older.bytes += size;
    } else bytes += size;
  }
  older.files.sort();
  return { bytes, older };
}

/**
 * The file a demo run leaves in its folder, saying the files of the demo's names beside it are a
 * demo run's: the next run replaces them. Without it, a file of one of those names is not the
 * demo's (a user's own presence.lp or calibration.yaml in the --out given) and the run refuses.
 */
export const DEMO_MARKER = '.presence-demo';

/**
 * The entries of `outDir` (relative paths) a run of these gateways would write over: its files, and
 * its `queues` folder (shown `queues/`), whole: each gateway's queue folder in it is read and
 * written as a queue (a windows/<n>.json taken as a queued window, a *.tmp file removed as a write
 * cut short), so no folder of that name but the demo's own is used.
 */
export function demoFilesThere(outDir: string, gateways: readonly string[], lastWeek: boolean): string[] {
  const names = ['demo.log', 'presence.lp', 'calibration.yaml', 'queues'];
  for (const period of lastWeek ? ['today', 'last-week'] : ['today'])
    for (const n of [...gateways.map((g) => `${g}.pcapng`), 'truth.json', 'truth.csv']) names.push(`${period}/${n}`);
  return names.flatMap((n) => {
    const st = lstatSync(join(outDir, n), { throwIfNoEntry: false });
    return st === undefined ? [] : [st.isDirectory() ? `${n}/` : n];
  });
}

/**
 * Refuses a folder holding files of the demo's names that no demo run wrote (no DEMO_MARKER): the
 * run wrote over them without a word (a presence.lp of the user's in --out .).
 */
export function claimDemoFolder(flag: string, outDir: string, gateways: readonly string[], lastWeek: boolean): void {
  // Only a file of its own counts as the mark: a link (written through, it overwrote the file it
  // points to, outside the folder) or a folder of that name is not one.
  const mark = lstatSync(join(outDir, DEMO_MARKER), { throwIfNoEntry: false });
  if (mark && !mark.isFile())
    throw new UsageError(
      `${flag} ${outDir}: ${DEMO_MARKER} there is ${mark.isSymbolicLink() ? 'a symbolic link' : 'not a file'}, where a demo run marks its folder with a file`,
      `remove ${join(outDir, DEMO_MARKER)} if it is no longer needed, or give another ${flag} (a new folder is made)`,
    );
  if (mark) return;
  const there = demoFilesThere(outDir, gateways, lastWeek);
  if (there.length)
    throw new UsageError(
      `${flag} ${outDir}: this run would overwrite ${there.join(', ')} there, which no demo run wrote (no ${DEMO_MARKER} in the folder)`,
      `give another ${flag} (a new folder is made), or move them; an earlier demo run's files (from before the demo marked its folder) can be removed`,
    );
}

/**
 * The file a running demo holds in its folder (its process id): two runs in one folder (npm start in
 * two terminals) wrote over each other: the second removed the first's queues/ under its running
 * gateways and its presence.lp, both aggregators wrote the same new file, both simulators the same
 * captures. Removed when the run ends; one whose process is gone (killed) is taken over.
 */
export const DEMO_LOCK = '.presence-demo.lock';

/** Takes the folder's DEMO_LOCK, or refuses the run naming the demo that holds it; returns its release. */
export function lockDemoFolder(flag: string, outDir: string): () => void {
  const file = join(outDir, DEMO_LOCK);
  const mine = `${process.pid}\n`;
  for (;;) {
    try {
      writeFileSync(file, mine, { flag: 'wx' });
      return () => {
        if (readFileSync(file, { encoding: 'utf8', flag: 'r' }) === mine) rmSync(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    if (pid > 0 && pid !== process.pid && processAlive(pid))
      throw new UsageError(
        `${flag} ${outDir}: another presence demo (process ${pid}) is running in this folder, and the two would write over each other's results`,
        `wait for it to end, or give another ${flag} (a new folder is made); if no demo runs there, remove ${file}`,
      );
    rmSync(file, { force: true }); // its run was killed: taken over
  }
}

/** Marks the folder as the demo's, once the run is going to write it: this run's files may be replaced by the next. */
function markDemoFolder(outDir: string): void {
  writeFileSync(
    join(outDir, DEMO_MARKER),
    'presence demo writes this folder: its demo.log, presence.lp, calibration.yaml, queues/, today/ and last-week/ files are replaced by the next run\n',
  );
}

/** The windows queued in a demo folder's `queues/` (each gateway's `windows/<n>.json`); 0 for none or a link. */
function queuedWindows(queues: string): number {
  if (!lstatSync(queues, { throwIfNoEntry: false })?.isDirectory()) return 0;
  let n = 0;
  for (const gw of readdirSync(queues, { withFileTypes: true })) {
    if (!gw.isDirectory()) continue;
    const windows = join(queues, gw.name, 'windows');
    if (lstatSync(windows, { throwIfNoEntry: false })?.isDirectory()) n += readdirSync(windows).filter((f) => /^\d+\.json$/.test(f)).length;
  }
  return n;
}

/** Seed of the demo's calibration run: another run of the same scenario and period. */
export const CALIBRATION_SEED_OFFSET = 100;

/** Seconds of --window (scripts/lib/duration.ts; a bare number is seconds, as this flag always read it, with one deprecation line). */
function parseWindowS(text: string): number {
  // The deprecation line of a bare number only once it is taken: `--window 0.5` said "use 0.5s" and
  // then that 0.5 is too short; a refused value gets its one error line.
  const ms = durationMs(text, { bare: 's' });
  if (Number.isNaN(ms)) throw new UsageError(`--window: ${DURATION_HINT} (got "${text}")${durationNote(text)}`);
  // the gateways refuse a shorter one (gateway.window), which they said after the calibration run
  if (ms < MIN_WINDOW_MS) throw new UsageError(`--window ${text}: must be at least 1s, as a gateway's window (gateway/README.md, gateway.window)`);
  durationMs(text, { bare: 's', name: '--window' });
  return ms / 1000;
}

/** The demo's aggregator settings: InfluxDB from the environment (INFLUX_URL and the rest, as the
 *  aggregator reads them), else the line-protocol file `lp`; the page on 127.0.0.1 at `port`. */
async function demoConfig(lp: string, port: string, more: { mqttUrl?: string; calibration?: string } = {}) {
  const { loadConfig } = await import('../../aggregator/config.ts');
  return loadConfig(
    {
      mqttVersion: '4',
      out: lp,
      httpPort: port,
      httpHost: '127.0.0.1',
      mqttClientId: 'presence-demo-aggregator',
      logLevel: 'info',
      ...more,
    },
    // An empty variable (INFLUX_URL= in a shell profile) means "not set".
    Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== '')),
  );
}

/**
 * The demo's line for an InfluxDB 1.x that refused its credentials (401) or its user's rights (403),
 * naming the environment variables the demo reads (it takes no --influx-* flag), and saying so when
 * none were given; null for any other error. The aggregator's and the setup's lines named the flags
 * --influx-username and --influx-password-file and said "refuses the credentials" when none were given.
 */
export function credentialsRefusal(
  refusal: { status: number; said: string } | undefined,
  influx: { url?: string; username?: string; password?: string; token?: string },
  version: string | null,
): string | null {
  if (!refusal || (refusal.status !== 401 && refusal.status !== 403)) return null;
  const at = `InfluxDB${version ? ` ${version}` : ''} at ${redactUrl(influx.url ?? '').replace(/\/$/, '')}`;
  const vars = 'INFLUX_USERNAME with INFLUX_PASSWORD or INFLUX_PASSWORD_FILE';
  if (refusal.status === 403)
    return `${at} refuses the user ${influx.username ?? '(none)'} the rights it needs (${refusal.said}): set ${vars} to a user that may write to INFLUX_DB (an admin user with INFLUX_CREATE=true), or grant this one those rights`;
  // (a user name and password in INFLUX_URL itself count as given)
  if (!influx.username && !influx.password && !influx.token && !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(influx.url ?? ''))
    return `${at} asks for credentials and no credentials were given (${refusal.said}): set ${vars} to a user that may write to INFLUX_DB`;
  return `${at} refuses the credentials given (${refusal.said}): check ${influx.username ? `the user name ${influx.username} (INFLUX_USERNAME)` : 'INFLUX_USERNAME'} and its password (INFLUX_PASSWORD or INFLUX_PASSWORD_FILE)`;
}

/** With INFLUX_URL set: that an InfluxDB answers there, then the aggregator's own start-up check
 *  (aggregator/preflight.ts: API, database or bucket; created with INFLUX_CREATE=true). Run before
 *  the calibration fit, so a wrong URL or a missing database is said at once, not after it.
 *  Returns whether the InfluxDB was checked (the aggregator then does not check it again). */
async function checkInflux(lp: string, port: string, log: Logger): Promise<boolean> {
  const config = await demoConfig(lp, port);
  if (!config.influx.url) return false;
  const { preflight, PreflightError } = await import('../../aggregator/preflight.ts');
  const { detectServer, InfluxQlRefusal } = await import('../../aggregator/influx-setup.ts');
  // Fail fast with a clear message rather than retrying writes into nothing (the aggregator alone
  // would start and retry).
  const server = await detectServer(config.influx.url, 5000);
  if ('unreachable' in server)
    throw new Error(`INFLUX_URL ${config.influx.url}: no InfluxDB answers (${server.unreachable}); unset INFLUX_URL to write a line-protocol file instead`);
  try {
    await preflight(config.influx, log.child({ component: 'aggregator' }));
  } catch (e) {
    // What InfluxDB refused (the cause of the aggregator's line).
    let cause: unknown = e;
    while (cause instanceof Error && !(cause instanceof InfluxQlRefusal)) cause = cause.cause;
    const refusal = credentialsRefusal(cause instanceof InfluxQlRefusal ? cause : undefined, config.influx, server.version);
    if (refusal) throw new Error(refusal, { cause: e });
    // The aggregator's advice names its own flag; the demo takes the variable only.
    if (e instanceof PreflightError)
      e.message = e.message.replace(/or start the aggregator with --influx-create \([^)]*\)/, 'or run the demo with INFLUX_CREATE=true');
    throw e;
  }
  return true;
}

/**
 * A logger that keeps its lines in memory, for the InfluxDB check made before demo.log exists; then
 * `replay` writes them through the run's logger (its format, its redaction; stamped at that moment).
 */
function memoryLog(): { log: Logger; replay(into: Logger): void } {
  const lines: string[] = [];
  const log = pino({ level: 'info', base: null }, { write: (line: string) => void lines.push(line) });
  return {
    log,
    replay(into) {
      for (const line of lines) {
        const { level, time: _time, msg, ...fields } = JSON.parse(line) as { level: number; time: number; msg?: string } & Record<string, unknown>;
        const name = (pino.levels.labels[level] ?? 'info') as 'info';
        into[name](fields, msg);
      }
    },
  };
}

/**
 * Waits until the aggregator has received `sent()` messages (every counts and status message the
 * gateways published: EmbeddedBroker.published) and then until it has written what it received
 * (drain), within `timeoutMs` in all; false when that did not happen in time. A gateway is done once
 * the broker has acknowledged its last message, which says the broker passed it on, not that the
 * aggregator has read it from its connection yet: under load the whole of today's period was still
 * on its way then, so a drain at that moment found nothing to write and returned at once, the table
 * and summary missed it and the file got it only if it arrived before the aggregator stopped.
 */
export async function receivedAndDrained(
  aggregator: { stats(): { received: number }; drain(timeoutMs: number): Promise<boolean> },
  sent: () => number,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (aggregator.stats().received < sent()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return aggregator.drain(Math.max(0, deadline - Date.now()));
}

/** The demo's page port: --http-port as given, else DEMO_HTTP_PORT. */
function pagePort(httpPort: string | undefined): string {
  const port = httpPort ?? String(DEMO_HTTP_PORT);
  if (!/^(\d+|off)$/.test(port) || (port !== 'off' && Number(port) > 65535))
    throw new UsageError(`--http-port "${port}": must be a port number 0..65535 (0: any free port) or off`);
  return port;
}

/** The aggregator of the demo: to INFLUX_URL when set (checked by checkInflux before), else to `lp`
 *  (a fresh file). Its HTTP server (127.0.0.1) serves the page of what it wrote; windows before
 *  `sinceMs` (the week-earlier period) are left out of the page. */
async function startAggregator(
  mqttUrl: string,
  lp: string,
  log: Logger,
  calibration: DemoCalibration | null,
  httpPort: string | undefined,
  sinceMs: number,
  influxChecked: boolean,
): Promise<{ aggregator: import('../../aggregator/aggregator.ts').Aggregator; toFile: boolean }> {
  const { Aggregator } = await import('../../aggregator/aggregator.ts');
  const { HttpPortError } = await import('../lib/http.ts');
  const config = await demoConfig(lp, pagePort(httpPort), { mqttUrl, ...(calibration ? { calibration: calibration.file } : {}) });
  const toFile = !config.influx.url;
  if (toFile && existsSync(lp)) rmSync(lp); // a fresh file per run
  const make = (c: typeof config) =>
    new Aggregator(c, {
      logger: log.child({ component: 'aggregator' }),
      calibration: calibration?.calibration ?? null,
      recent: { since: sinceMs },
      preflighted: influxChecked,
    });
  let aggregator = make(config);
  try {
    await aggregator.start();
  } catch (e) {
    await aggregator.stop(0).catch(() => {});
    // The default port is taken (another demo, another program): any free port will do.
    if (!(e instanceof HttpPortError) || httpPort !== undefined) throw e;
    aggregator = make({ ...config, http: { ...config.http, port: 0 } });
    await aggregator.start();
  }
  return { aggregator, toFile };
}

export async function runDemo(
  opts: DemoOptions,
  out: NodeJS.WritableStream = process.stdout,
): Promise<{ lpFile: string | null; table: CountTable; points: number; complete: boolean }> {
  const outDir = resolve(opts.out);
  const windowS = parseWindowS(opts.window);
  const speed: number | 'max' = opts.speed === 'max' ? 'max' : decimal(String(opts.speed));
  if (speed !== 'max' && !(speed > 0)) throw new UsageError(`--speed "${opts.speed}": must be a number above 0 or max`);
  if (!(opts.minutes > 0)) throw new UsageError(`--minutes "${opts.minutes}": must be a number above 0`);
  if (!(opts.scale > 0)) throw new UsageError(`--scale "${opts.scale}": must be a number above 0 (1 = the scenario's full crowd)`);
  seedOf('--seed', opts.seed);
  // Every option before anything is written: a refused --calibration-radio or --http-port left a new
  // --out folder behind, marked as the demo's, with an empty demo.log.
  const radio = opts.calibrationRadio ?? 'auto';
  if (radio !== 'wifi' && radio !== 'ble' && radio !== 'auto') throw new UsageError(`--calibration-radio "${radio}": must be auto, wifi or ble`);
  const httpPort = pagePort(opts.httpPort);
  const durationS = Math.round(opts.minutes * 60);
  // (1e-300 rounded to a run of 0 s, which the scenario then refused as its own duration)
  if (durationS < 1) throw new UsageError(`--minutes "${opts.minutes}": must be at least one simulated second (0.0167 minutes), like 30`);
  checkDuration('--minutes', durationS, String(opts.minutes), "a demo of a few hours shows the whole pipeline (--minutes 240 is King's Day from start to end)");
  // A window longer than the run: no whole window to count, and no calibration (it needs 3 per
  // zone); it ran with one window cut short and a calibration failure repeated per zone and radio.
  if (windowS > durationS)
    throw new UsageError(
      `--window ${opts.window}: longer than the run (--minutes ${opts.minutes}), so no whole window would be counted`,
      'give a --window of at most the run (the default 60s), or more --minutes',
    );
  // The scenario and its crowd before anything runs: a name that is no scenario, a file with mistakes,
  // or a crowd the simulator cannot hold is one line, not a failure after the calibration run.
  try {
    checkCrowd(loadScenario(opts.scenario, { scale: opts.scale }), { scale: opts.scale });
  } catch (e) {
    throw e instanceof ScenarioError ? scenarioUsageError(e) : e;
  }
  const period = loadScenario(opts.scenario, { scale: opts.scale, durationS, windowS });
  checkWindows(period, { window: opts.window });
  const lp = join(outDir, 'presence.lp');
  // INFLUX_URL and the rest, and the InfluxDB they name, before anything is written: refused (no
  // InfluxDB answers, its credentials or the database refused), a new --out folder was left behind
  // marked as the demo's, with a demo.log of the check, and an earlier run's demo.log there replaced
  // by it. What the check logs is kept and written to demo.log once the run goes ahead.
  const checkLog = memoryLog();
  const influxChecked = await checkInflux(lp, httpPort, checkLog.log);
  const made = makeOutDir('--out', outDir);
  try {
    claimDemoFolder(
      '--out',
      outDir,
      period.gateways.map((g) => g.id),
      opts.lastWeek !== false,
    );
  } catch (e) {
    removeDirs(made);
    throw e;
  }
  // What it writes (the captures of today, and of last week unless --no-last-week, their truth,
  // presence.lp, demo.log, the calibration, the queues) must fit on the disk: the captures alone were
  // counted, and a run of many short windows wrote more beside them than they hold. Past 200 MB of
  // captures it says how much, as presence simulate does.
  const est = estimateOutput(period, opts.seed, 'll', 'pcapng');
  const periods = opts.lastWeek === false ? 1 : 2;
  const captureBytes = est.bytes * periods;
  const output = estimateDemoOutput(period, { captureBytes: est.bytes, periods, calibrate: opts.calibrate !== false, speed });
  try {
    checkDisk(
      outDir,
      output.total,
      'the demo',
      'make it smaller with --minutes or --scale (or a longer --window), or give an --out on a larger disk',
      `the simulated captures of ${periods === 2 ? 'today and a week earlier' : 'today'} ${sizeText(output.captures)}, their truth.json and truth.csv ${sizeText(output.truth)}, ` +
        `presence.lp, demo.log${opts.calibrate !== false ? ', calibration.yaml' : ''} and queues/ ${sizeText(output.other)}`,
    );
  } catch (e) {
    removeDirs(made);
    throw e;
  }
  // One run at a time in a folder; the lock goes when the run ends (and when the process exits).
  let unlock: () => void;
  try {
    unlock = lockDemoFolder('--out', outDir);
  } catch (e) {
    removeDirs(made);
    throw e;
  }
  const release = () => {
    try {
      unlock();
    } catch {
      // gone already
    }
  };
  process.on('exit', release);
  // Marked only now: a run refused for the disk left its new folder behind, holding just the mark.
  markDemoFolder(outDir);
  // The gateways' queues start empty: a run stopped before its windows were all acknowledged left
  // them queued here, and this run's gateways sent them to its new aggregator among its own (another
  // run's counts, of the same simulated times when the period is the same, written with this run's).
  const stale = queuedWindows(join(outDir, 'queues'));
  rmSync(join(outDir, 'queues'), { recursive: true, force: true });
  if (stale > 0)
    out.write(
      `presence demo: dropped ${stale} window${stale === 1 ? '' : 's'} an earlier run left queued in queues/ (it was stopped before sending ${stale === 1 ? 'it' : 'them'})\n`,
    );
  if (captureBytes > SIZE_GUARD_BYTES)
    out.write(`presence demo: the simulated captures come to about ${sizeText(captureBytes)} (deleted at the end unless --keep-pcaps)\n`);
  // What the folder holds before this run: an earlier run's files that this one does not write
  // again are left as they are, and not counted in the size this run prints.
  const before = folderFiles(outDir);
  const logFile = join(outDir, 'demo.log');
  // A fresh log per run, as presence.lp is a fresh file (the log was appended to, run after run).
  rmSync(logFile, { force: true });
  // One file, several components: a root logger without base fields, each part binds its own
  // (component, and site/zone/gateway for a gateway), so no key is written twice (scripts/lib/log.ts).
  // A write to demo.log that fails (the disk of --out filled during the run) ended the demo with a
  // stack trace; now it is said once, and the run goes on (the aggregator says what it could not write).
  let logLost: string | null = null;
  const log = createRootLogger({
    level: 'info',
    dest: logFile,
    format: opts.logFormat === 'pretty' ? 'pretty' : 'json',
    onWriteError: (e) => {
      if (logLost !== null) return;
      logLost = e.code ?? e.message;
      process.stderr.write(
        `presence demo: --out ${outDir}: writing ${logFile} failed (${logLost}${e.code === 'ENOSPC' ? ': no space left on its device' : ''}); its lines are lost until it can be written again: free some space, or give an --out on a larger disk\n`,
      );
    },
  });
  checkLog.replay(log);
  // Ctrl-C (SIGINT) or SIGTERM before the run's end: Node's default ended the process where it stood,
  // without a word, leaving this run's captures (about 94 MB for the default run, those the
  // simulator was writing as NAME.partial) that a run deletes at its end. Now what the aggregator
  // received is written and it and the broker stop, the captures this run wrote are deleted (unless
  // --keep-pcaps; the ones cut short always), it says what was written and where, and exits 130; a
  // second signal ends it at once.
  const running: {
    aggregator?: Aggregator;
    broker?: EmbeddedBroker;
    toFile?: boolean;
    endLive?: () => void;
    endProgress?: () => void;
    endBar?: () => void;
    stopGateways?: (flushMs: number) => Promise<void>;
  } = {};
  let interrupted: Promise<never> | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    interrupted = (async () => {
      running.endLive?.();
      running.endProgress?.();
      running.endBar?.();
      out.write(`\npresence demo: ${signal}: stopping before the end of the run ...\n`);
      // The gateways close their open window as cut short and send what they queued, the aggregator writes it.
      await running.stopGateways?.(1000);
      await running.aggregator?.stop(2000).catch(() => {});
      await running.broker?.stop().catch(() => {});
      log.flush();
      out.write(interruptedLines(signal, outDir, before, running, !!opts.keepPcaps, join(outDir, 'presence.lp')));
      process.exit(130);
    })();
  };
  const stopListening = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // The simulated hour ends at the current window boundary, so the dashboards' "last hours" show it.
    const endMs = Math.floor(Date.now() / (windowS * 1000)) * windowS * 1000;
    const startMs = endMs - durationS * 1000;

    const write = (s: string) => out.write(s);

    // Live only on a terminal tall enough for a few rows (log-update cuts what does not fit).
    const rows = (out as NodeJS.WriteStream).rows ?? 0;
    const live = opts.live && (out as NodeJS.WriteStream).isTTY === true && out === process.stdout && rows >= 12;
    // Without the live table, plain progress lines say how far the calibration run, the simulator and the replay are.
    const progress = live ? null : new ProgressLines(write, durationS);
    running.endProgress = () => progress?.stop();
    // With the live table, bars on the terminal for the stages before it: last week's simulation and
    // replay and today's simulation (the table shows today's replay).
    const bars = live ? await StageBars.create('simulated minutes') : null;
    const minutes = Math.ceil(durationS / 60);
    const minutesOf = (s: number) => (s >= durationS ? minutes : Math.min(minutes, Math.floor(s / 60)));

    // People only from a calibration: fitted on another simulated run of the same scenario and period.
    let cal: DemoCalibration | null = null;
    // A run of fewer windows than a fit needs: said once, not once per zone and radio after a
    // calibration run that cannot succeed.
    const runWindows = Math.ceil(durationS / windowS);
    if (opts.calibrate !== false && runWindows < FIT_MIN_WINDOWS)
      write(
        `no people calibration: the run holds ${runWindows} window${runWindows === 1 ? '' : 's'} of ${windowS} s and a fit needs at least ${FIT_MIN_WINDOWS} (--minutes ${+((FIT_MIN_WINDOWS * windowS) / 60).toFixed(2)} or more, or a shorter --window): the table shows devices (uncalibrated: the estimate, devices present averaged over the window) only\n`,
      );
    else if (opts.calibrate !== false) {
      // Within the generator's 32 bits, as it reads a seed, so the seed printed is the one used.
      const seed = (opts.seed + CALIBRATION_SEED_OFFSET) >>> 0;
      const which = radio === 'auto' ? 'Wi-Fi or BLE estimate, whichever follows people better there' : `${radio === 'wifi' ? 'Wi-Fi' : 'BLE'} estimate`;
      write(`fitting a people calibration (${which}) on another simulated run of the same period (seed ${seed}) ...\n`);
      // Its run is as long as today's and printed nothing until its result: its progress is shown as
      // the rest of the run's, plain lines without the live table, else a bar (the table comes later).
      let countedS = 0;
      const stage = `counting the calibration run (seed ${seed})`;
      progress?.stage(stage, () => countedS);
      const bar = live ? await progressBar(stage, minutes, 'simulated minutes') : null;
      running.endBar = () => bar?.stop();
      const r = await fitDemoCalibration({
        scenario: opts.scenario,
        seed,
        startMs,
        durationS,
        windowS,
        scale: opts.scale,
        radio,
        outDir,
        onSimulatedTime: (s) => {
          countedS = Math.max(countedS, s);
          progress?.tick();
          bar?.update(minutesOf(countedS));
        },
      });
      progress?.finish();
      bar?.stop();
      running.endBar = undefined;
      if ('error' in r)
        write(`no people calibration (${r.error}): the table shows devices (uncalibrated: the estimate, devices present averaged over the window) only\n`);
      else {
        cal = r;
        write(`people from the ${r.radio === 'wifi' ? 'Wi-Fi' : 'BLE'} estimate${r.why ? ` (${r.why})` : ''}: ${r.file}\n`);
      }
    }
    const peopleOf = cal ? (m: CountsMessage) => cal!.calibration.apply(m.zone, m[cal!.radio].estimate, m.site)?.value ?? null : undefined;
    const peopleLabel = cal ? `calibrated from the ${cal.radio === 'wifi' ? 'Wi-Fi' : 'BLE'} estimate, fitted on seed ${cal.seed}` : '';

    const table = new CountTable(windowS * 1000, peopleOf);
    // The table shows what passes through the broker: every counts message of today's period.
    let dirty = false;
    const feed = countsFeed(table, startMs - windowS * 1000, () => (dirty = true));
    const broker = await new EmbeddedBroker().start(feed.onPublish);
    running.broker = broker;
    let started: Awaited<ReturnType<typeof startAggregator>>;
    try {
      started = await startAggregator(broker.url, lp, log, cal, opts.httpPort, startMs - windowS * 1000, influxChecked);
    } catch (e) {
      await broker.stop();
      throw e;
    }
    const { aggregator, toFile } = started;
    running.aggregator = aggregator;
    running.toFile = toFile;

    write(
      `presence demo: ${opts.scenario}, ${opts.minutes} simulated minutes in ${windowS}-s windows, replayed at ${speed === 'max' ? 'full speed' : `${speed}x`}; broker ${broker.url} (embedded)\n`,
    );
    write(`${burstAddressesLine(period)}\n`);
    write(`aggregator writes to ${aggregator.sink.target}\n`);
    const pageUrl = aggregator.httpPort !== null && aggregator.web ? `http://127.0.0.1:${aggregator.httpPort}/` : null;
    if (pageUrl)
      write(
        `page: ${pageUrl}  (open it in a browser: people and devices per zone over time as the aggregator writes them, the simulator's truth beside them, the gateways' states${opts.hold ? '; it stays up after the run until Ctrl-C' : ''})\n`,
      );
    // The captures this run's simulator wrote: the only ones it deletes at the end.
    const captures: string[] = [];
    try {
      const gatewaysText = `${period.gateways.length} gateway${period.gateways.length === 1 ? '' : 's'}`;
      /**
       * Progress callbacks of one period (`name`: today or last week) starting at `fromMs`: plain
       * lines, or with the live table bars, of its replay too when `replayBar` (the table shows
       * today's).
       */
      const periodProgress = (name: string, fromMs: number, replayBar: boolean) => {
        if (!progress && !bars) return {};
        const replayedEnd = new Map<string, number>(period.gateways.map((g) => [g.id, fromMs]));
        // The replay is as far as the gateway furthest behind.
        const replayedS = () => (Math.min(...replayedEnd.values()) - fromMs) / 1000;
        const simulating = `simulating ${name}`;
        const replaying = `replaying ${name} through ${gatewaysText}`;
        let simulatedS = 0;
        let replayed = false;
        progress?.stage(simulating, () => simulatedS);
        if (bars) {
          running.endBar = () => bars.stop();
          bars.stage(simulating, minutes);
        }
        return {
          onSimulatedTime: (s: number) => {
            simulatedS = Math.max(simulatedS, s);
            progress?.tick();
            bars?.update(minutesOf(simulatedS));
          },
          onSimulated: () => {
            simulatedS = durationS;
            progress?.tick();
            bars?.update(minutes);
            progress?.stage(replaying, replayedS);
            replayed = replayBar;
            if (replayBar) bars?.stage(replaying, minutes);
            else bars?.stop();
          },
          onWindow: (m: CountsMessage) => {
            replayedEnd.set(m.gateway, Math.max(replayedEnd.get(m.gateway) ?? fromMs, Date.parse(m.end)));
            progress?.tick();
            if (replayed) bars?.update(minutesOf(replayedS()));
          },
        };
      };
      if (opts.lastWeek) {
        write("simulating the same time one week earlier (for the traffic dashboard's comparison) ...\n");
        const lastWeekStartMs = startMs - 7 * 86400_000;
        const lastWeek = await runPeriod({
          ...periodProgress('last week', lastWeekStartMs, true),
          scenario: opts.scenario,
          seed: (opts.seed + 7) >>> 0,
          startMs: lastWeekStartMs,
          durationS,
          windowS,
          scale: opts.scale,
          dir: join(outDir, 'last-week'),
          queueDir: join(outDir, 'queues'),
          mqttUrl: broker.url,
          onGateways: (stop) => (running.stopGateways = stop),
          speed: 'max',
          log,
        });
        captures.push(...lastWeek.simulation.gateways.flatMap((g) => g.pcaps));
      }
      write('simulating today and replaying it through the gateways ...\n');
      const { default: logUpdate } = (await import('log-update')) as unknown as { default: ((s: string) => void) & { done(): void } };
      const lastRows = Math.max(3, rows - 10);
      const tableTitle = countsTitle(cal ? peopleLabel : null);
      const redraw = async () => {
        if (!dirty) return;
        dirty = false;
        const s = aggregator.stats();
        logUpdate(await table.render(`${tableTitle}\nwindows ${table.windows}, messages ${table.messages}, points written ${s.pointsWritten}`, lastRows));
      };
      const timer = live ? setInterval(() => void redraw(), 250) : null;
      running.endLive = () => {
        if (timer) clearInterval(timer);
        if (live) logUpdate.done();
      };
      bars?.stop();
      const todayProgress = periodProgress('today', startMs, false);
      const today = await runPeriod({
        ...todayProgress,
        scenario: opts.scenario,
        seed: opts.seed,
        startMs,
        durationS,
        windowS,
        scale: opts.scale,
        dir: join(outDir, 'today'),
        queueDir: join(outDir, 'queues'),
        mqttUrl: broker.url,
        onGateways: (stop) => (running.stopGateways = stop),
        speed,
        log,
        // The simulator's people present per zone and window (the largest among the zone's gateways,
        // as the page shows the counts) go to the page beside what the aggregator writes.
        onSimulated: (sim) => {
          todayProgress.onSimulated?.();
          const recent = aggregator.recent;
          if (!recent) return;
          const best = new Map<string, { zone: string; t: number; end: number; people: number }>();
          for (const w of sim.truth.windows) {
            const t = Date.parse(w.start);
            const k = `${w.zone} ${t}`;
            const b = best.get(k);
            if (!b || w.peopleMean > b.people) best.set(k, { zone: w.zone, t, end: Date.parse(w.end), people: w.peopleMean });
          }
          for (const b of best.values()) recent.truth(sim.site, b.zone, b.t, b.end, b.people);
        },
      });
      captures.push(...today.simulation.gateways.flatMap((g) => g.pcaps));
      progress?.end();
      bars?.stop();
      const drained = await receivedAndDrained(aggregator, () => broker.published, 30_000);
      if (interrupted) await interrupted; // its handler says what was written, not the summary
      // The replay is over and its gateways have stopped: not silent gateways to record as missing
      // (with --hold that wrote missing points after the summary's count, and the page showed every
      // gateway missing while it stayed up).
      aggregator.stopSilenceChecks();
      // Nothing more will be written: the page says the replay finished instead of "live" (which
      // only says its stream is connected), so a page held open is not read as data still coming.
      aggregator.recent?.replayEnded();
      if (timer) clearInterval(timer);
      dirty = true;
      if (live) {
        await redraw();
        logUpdate.done();
      } else write((await table.render(tableTitle, 1000)) + '\n');
      const stats = aggregator.stats();
      const hold = !!opts.hold && pageUrl !== null;
      if (!hold) {
        await aggregator.stop();
        await broker.stop();
      }
      log.flush();
      // Keep what a user opens next (line protocol, log, truth, calibration); the captures are large
      // (about 94 MB for the default run) and the ones this run wrote are deleted unless --keep-pcaps.
      // The size of what this run left is printed, and apart from it any file it found and left.
      const removed = opts.keepPcaps ? { files: 0, bytes: 0 } : removeCaptures(captures);

      write(
        summary({
          outDir,
          logFile,
          logFormat: opts.logFormat === 'pretty' ? 'pretty' : 'json',
          lpFile: toFile ? lp : null,
          target: aggregator.sink.target,
          drained,
          aggregator: stats,
          period: today,
          table,
          messages: [...feed.messages.values()],
          truth: today.simulation.truth.windows,
          ...(cal && peopleOf
            ? {
                people: {
                  of: peopleOf,
                  label: peopleLabel,
                  file: cal.file,
                  interval: {
                    of: (m: CountsMessage) => cal!.calibration.apply(m.zone, m[cal!.radio].estimate, m.site),
                    level: cal.calibration.file.level,
                  },
                },
              }
            : {}),
          capturesKept: !!opts.keepPcaps,
        }),
      );
      const kept = folderAfterRun(outDir, before);
      const shown = outDir === resolve('presence-demo') ? 'presence-demo' : outDir;
      const older = kept.older.files;
      write(
        `${shown}/ holds ${formatBytes(kept.bytes)} from this run` +
          (removed.files ? `; the ${removed.files} simulated captures (${formatBytes(removed.bytes)}) were deleted (--keep-pcaps keeps them)` : '') +
          (older.length
            ? `; it also holds ${older.length} ${older.length === 1 ? 'file' : 'files'} (${formatBytes(kept.older.bytes)}) this run did not write, from an earlier run or not the demo's, left as they were: ` +
              `${older
                .slice(0, 3)
                .map((f) => relative(outDir, f))
                .join(', ')}${older.length > 3 ? ', ...' : ''}`
            : '') +
          '\n',
      );
      if (hold) {
        stopListening(); // Ctrl-C now ends the wait below
        // The page stays with the run's charts; its event streams end when the aggregator stops.
        write(`the page stays at ${pageUrl} ; Ctrl-C ends the demo\n`);
        await new Promise<void>((resolve) => {
          const done = () => {
            process.off('SIGINT', done);
            process.off('SIGTERM', done);
            resolve();
          };
          process.on('SIGINT', done);
          process.on('SIGTERM', done);
        });
        await aggregator.stop();
        await broker.stop();
      }
      return { lpFile: toFile ? lp : null, table, points: stats.pointsWritten, complete: drained && stats.writeFailures === 0 };
    } catch (e) {
      running.endProgress?.();
      await aggregator.stop(2000).catch(() => {});
      await broker.stop().catch(() => {});
      throw e;
    }
  } finally {
    // Cut short by a signal: its handler ends the process once it has said what was written.
    if (interrupted) await interrupted;
    running.endProgress?.();
    running.endBar?.();
    stopListening();
    release();
    process.off('exit', release);
  }
}
