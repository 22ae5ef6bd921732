// `presence demo` (npm start): the whole pipeline on one machine with nothing installed. The
// simulator makes captures and ground truth for a few gateways, the gateways (real WASM firmware)
// replay them accelerated into an MQTT broker embedded in this process (Aedes on a free loopback
// port), the aggregator writes what arrives to a line-protocol file (or to InfluxDB when INFLUX_URL
// is set), and the terminal shows a live table of the counts passing through the broker, per zone
// and window.
//
// The same orchestration (runPeriod) drives the end-to-end test against Mosquitto and influxd.
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { pino, type Logger } from 'pino';
import { parseTopic, validateCounts, type CountsMessage } from '../contract/index.ts';
import { loadConfig as loadGatewayConfig } from '../gateway/config.ts';
import { Gateway } from '../gateway/gateway.ts';
import { simulate, type SimulateResult } from '../simulator/index.ts';

// ---------------------------------------------------------------------------------------- pipeline

export interface PeriodOptions {
  /** Built-in scenario name or a scenario file. */
  scenario: string;
  seed: number;
  /** Simulated time: start (ms since the epoch), length and window (s). */
  startMs: number;
  durationS: number;
  windowS: number;
  /** Multiplier of the scenario's crowd sizes and flow rates. */
  scale?: number;
  /** Folder for this period's captures and ground truth. */
  dir: string;
  /** Folder of the gateways' durable queues (shared between periods: seq goes on). */
  queueDir: string;
  /** Broker the gateways publish to. */
  mqttUrl: string;
  /** Replay speed of the captures: 'max' or a factor (1 = real time). */
  speed: number | 'max';
  log: Logger;
  /** Called for each window a gateway closes (after it is queued on disk). */
  onWindow?: (m: CountsMessage) => void;
}

export interface GatewayRun {
  gateway: string;
  zone: string;
  windows: number;
  failedSources: number;
}

export interface PeriodResult {
  site: string;
  zones: string[];
  gateways: GatewayRun[];
  simulation: SimulateResult;
}

/** Simulates one period (captures per gateway + ground truth in `dir`) and replays every gateway's
 *  capture through a real gateway (WASM firmware, on-disk queue, MQTT QoS 1) into the broker. */
export async function runPeriod(o: PeriodOptions): Promise<PeriodResult> {
  mkdirSync(o.dir, { recursive: true });
  const simulation = await simulate({
    scenario: o.scenario,
    seed: o.seed,
    durationS: o.durationS,
    windowS: o.windowS,
    start: o.startMs,
    outDir: o.dir,
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
  });
  const gateways = simulation.gateways.map((g) => {
    const config = loadGatewayConfig(
      {
        site: simulation.site,
        zone: g.zone,
        id: g.id,
        window: `${simulation.windowS}s`,
        clock: 'capture',
        source: [`capture=pcap:${g.pcap}`],
        speed: String(o.speed),
        mqtt: o.mqttUrl,
        queueDir: join(o.queueDir, g.id),
        logLevel: 'info',
      },
      {},
    );
    const gw = new Gateway({ config, log: o.log.child({ component: 'gateway', gateway: g.id }) });
    if (o.onWindow) gw.on('window', o.onWindow);
    return { g, gw };
  });
  try {
    await Promise.all(gateways.map(({ gw }) => gw.start()));
    await Promise.all(gateways.map(({ gw }) => gw.done));
  } catch (e) {
    await Promise.all(gateways.map(({ gw }) => gw.stop().catch(() => {})));
    throw e;
  }
  return {
    site: simulation.site,
    zones: [...new Set(simulation.gateways.map((g) => g.zone))].sort(),
    gateways: gateways.map(({ g, gw }) => ({
      gateway: g.id,
      zone: g.zone,
      windows: gw.windowsClosed,
      failedSources: gw.sources.filter((s) => s.state === 'failed').length,
    })),
    simulation,
  };
}

// ---------------------------------------------------------------------------------------- broker

/** Aedes (MQTT 3.1.1) in this process on a free loopback port. */
export class EmbeddedBroker {
  private server: Server | null = null;
  private aedes: any = null;
  port = 0;

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(onPublish?: (topic: string, payload: Buffer) => void): Promise<this> {
    const { Aedes } = (await import('aedes')) as unknown as { Aedes: { createBroker(o?: object): Promise<any> } };
    this.aedes = await Aedes.createBroker();
    if (onPublish) this.aedes.on('publish', (packet: { topic: string; payload: Buffer }, client: unknown) => client && onPublish(packet.topic, packet.payload));
    this.server = createServer(this.aedes.handle);
    await new Promise<void>((res, rej) => {
      this.server!.once('error', rej);
      this.server!.listen(0, '127.0.0.1', () => res());
    });
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.aedes ? this.aedes.close(() => r()) : r()));
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server?.unref();
  }
}

// ---------------------------------------------------------------------------------------- table

/** Counts per window and zone: the largest estimate among the zone's gateways, per radio. */
export class CountTable {
  /** @param windowMs window length: a window cut short at the start of a capture goes in its slot. */
  constructor(private readonly windowMs: number) {}

  private readonly cells = new Map<number, Map<string, { wifi: number; ble: number; complete: boolean }>>();
  readonly zones = new Set<string>();
  messages = 0;

  add(m: CountsMessage): void {
    this.messages++;
    const t = Math.floor(Date.parse(m.start) / this.windowMs) * this.windowMs;
    let row = this.cells.get(t);
    if (!row) this.cells.set(t, (row = new Map()));
    this.zones.add(m.zone);
    const c = row.get(m.zone) ?? { wifi: 0, ble: 0, complete: true };
    c.wifi = Math.max(c.wifi, m.wifi.estimate);
    c.ble = Math.max(c.ble, m.ble.estimate);
    c.complete &&= m.complete;
    row.set(m.zone, c);
  }

  get windows(): number {
    return this.cells.size;
  }

  /** Rows of the last `last` windows: [time, "wifi / ble" per zone]. */
  rows(last = 12): string[][] {
    const zones = [...this.zones].sort();
    return [...this.cells.keys()]
      .sort((a, b) => a - b)
      .slice(-last)
      .map((t) => {
        const row = this.cells.get(t)!;
        return [
          new Date(t).toISOString().slice(0, 16).replace('T', ' '),
          ...zones.map((z) => {
            const c = row.get(z);
            return c ? `${c.wifi} / ${c.ble}${c.complete ? '' : ' *'}` : '';
          }),
        ];
      });
  }

  async render(title: string, last = 12): Promise<string> {
    const { default: Table } = (await import('cli-table3')) as unknown as { default: new (o: object) => { push(r: string[]): void; toString(): string } };
    const zones = [...this.zones].sort();
    const table = new Table({ head: ['window start (UTC)', ...zones.map((z) => `${z}\nWi-Fi / BLE`)], style: { head: [], border: [], compact: true } });
    for (const r of this.rows(last)) table.push(r);
    return `${title}\n${table.toString()}`;
  }
}

// ---------------------------------------------------------------------------------------- demo

/** Mean absolute percentage error of the published estimates against the truth's devices in reach,
 *  per radio, over the windows where the truth is above zero (as simulator/evaluate.ts scores it). */
export function countingError(
  messages: CountsMessage[],
  truth: Array<{ gateway: string; start: string; end: string; devices: { wifi: number; ble: number } }>,
): { windows: number; wifi: number; ble: number } {
  const acc = { wifi: { n: 0, e: 0 }, ble: { n: 0, e: 0 } };
  let windows = 0;
  for (const m of messages) {
    // The truth window holding the message's start (a window cut short starts inside it).
    const at = Date.parse(m.start);
    const t = truth.find((w) => w.gateway === m.gateway && Date.parse(w.start) <= at && at < Date.parse(w.end));
    if (!t) continue;
    windows++;
    for (const r of ['wifi', 'ble'] as const) {
      if (t.devices[r] <= 0) continue;
      acc[r].n++;
      acc[r].e += Math.abs(m[r].estimate - t.devices[r]) / t.devices[r];
    }
  }
  const pct = (a: { n: number; e: number }) => (a.n ? Math.round((a.e / a.n) * 1000) / 10 : 0);
  return { windows, wifi: pct(acc.wifi), ble: pct(acc.ble) };
}

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
}

function parseWindowS(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m)?$/.exec(text.trim());
  if (!m) throw new Error(`--window "${text}": must be a duration like 30s or 1m`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

function lineCount(file: string): number {
  if (!existsSync(file)) return 0;
  const text = readFileSync(file, 'utf8');
  return text.split('\n').filter((l) => l.trim() && !l.startsWith('#')).length;
}

export async function runDemo(opts: DemoOptions, out: NodeJS.WritableStream = process.stdout): Promise<{ lpFile: string | null; table: CountTable; points: number; complete: boolean }> {
  const outDir = resolve(opts.out);
  mkdirSync(outDir, { recursive: true });
  const windowS = parseWindowS(opts.window);
  const speed: number | 'max' = opts.speed === 'max' ? 'max' : Number(opts.speed);
  if (speed !== 'max' && !(speed > 0)) throw new Error(`--speed "${opts.speed}": must be a number above 0 or max`);
  if (!(opts.minutes > 0)) throw new Error(`--minutes "${opts.minutes}": must be a number above 0`);
  if (!(opts.scale > 0)) throw new Error(`--scale "${opts.scale}": must be a number above 0 (1 = the scenario's full crowd)`);
  if (!Number.isInteger(opts.seed)) throw new Error(`--seed "${opts.seed}": must be a whole number`);
  const durationS = Math.round(opts.minutes * 60);
  const logFile = join(outDir, 'demo.log');
  const log = pino({ level: 'info', base: { app: 'presence-demo' } }, pino.destination({ dest: logFile, sync: true, mkdir: true }));
  // The simulated hour ends at the current window boundary, so the dashboards' "last hours" show it.
  const endMs = Math.floor(Date.now() / (windowS * 1000)) * windowS * 1000;
  const startMs = endMs - durationS * 1000;

  const table = new CountTable(windowS * 1000);
  const lp = join(outDir, 'presence.lp');
  const { loadConfig } = await import('../aggregator/config.ts');
  const { Aggregator } = await import('../aggregator/aggregator.ts');
  // The table shows what passes through the broker: every counts message of today's period.
  const messages = new Map<string, CountsMessage>(); // by gateway and window: a QoS 1 resend is one window
  let dirty = false;
  const broker = await new EmbeddedBroker().start((topic, payload) => {
    if (parseTopic(topic)?.kind !== 'counts') return;
    let v: ReturnType<typeof validateCounts>;
    try {
      v = validateCounts(JSON.parse(payload.toString('utf8')));
    } catch {
      return; // not JSON: the aggregator rejects and counts it
    }
    if (!v.ok || Date.parse(v.value.start) < startMs - windowS * 1000) return; // invalid, or last week's
    const key = `${v.value.gateway} ${v.value.start}`;
    if (messages.has(key)) return;
    messages.set(key, v.value);
    table.add(v.value);
    dirty = true;
  });
  const aggConfig = loadConfig(
    { mqttUrl: broker.url, mqttVersion: '4', out: lp, httpPort: 'off', clientId: 'presence-demo-aggregator', logLevel: 'info' },
    // An empty variable (INFLUX_URL= in a shell profile) means "not set".
    Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== '')),
  );
  const toFile = !aggConfig.influx.url;
  if (!toFile) {
    // Fail fast with a clear message rather than retrying writes into nothing.
    try {
      await fetch(new URL('/ping', aggConfig.influx.url), { signal: AbortSignal.timeout(5000) });
    } catch (e) {
      await broker.stop();
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`INFLUX_URL ${aggConfig.influx.url}: no InfluxDB answers (${cause?.code ?? cause?.message ?? (e as Error).message}); unset INFLUX_URL to write a line-protocol file instead`);
    }
  }
  if (toFile && existsSync(lp)) {
    const { rmSync } = await import('node:fs');
    rmSync(lp); // a fresh file per run
  }
  const aggregator = new Aggregator(aggConfig, { logger: log.child({ component: 'aggregator' }) });
  await aggregator.start();

  const write = (s: string) => out.write(s);
  write(`presence demo: ${opts.scenario}, ${opts.minutes} simulated minutes in ${windowS}-s windows, replayed at ${speed === 'max' ? 'full speed' : `${speed}x`}; broker ${broker.url} (embedded)\n`);
  write(`aggregator writes to ${aggregator.sink.target}\n`);
  try {
    if (opts.lastWeek) {
      write('simulating the same time one week earlier (for the traffic dashboard\'s comparison) ...\n');
      await runPeriod({
        scenario: opts.scenario, seed: opts.seed + 7, startMs: startMs - 7 * 86400_000, durationS, windowS, scale: opts.scale,
        dir: join(outDir, 'last-week'), queueDir: join(outDir, 'queues'), mqttUrl: broker.url, speed: 'max', log,
      });
    }
    write('simulating today and replaying it through the gateways ...\n');
    const { default: logUpdate } = (await import('log-update')) as unknown as { default: ((s: string) => void) & { done(): void } };
    // Live only on a terminal tall enough for a few rows (log-update cuts what does not fit).
    const rows = (out as NodeJS.WriteStream).rows ?? 0;
    const live = opts.live && (out as NodeJS.WriteStream).isTTY === true && out === process.stdout && rows >= 12;
    const lastRows = Math.max(3, rows - 10);
    const redraw = async () => {
      if (!dirty) return;
      dirty = false;
      const s = aggregator.stats();
      logUpdate(await table.render(`windows ${table.windows}, messages ${table.messages}, points written ${s.pointsWritten}`, lastRows));
    };
    const timer = live ? setInterval(() => void redraw(), 250) : null;
    const today = await runPeriod({
      scenario: opts.scenario, seed: opts.seed, startMs, durationS, windowS, scale: opts.scale,
      dir: join(outDir, 'today'), queueDir: join(outDir, 'queues'), mqttUrl: broker.url, speed, log,
    });
    const drained = await aggregator.drain(30_000);
    if (timer) clearInterval(timer);
    dirty = true;
    if (live) {
      await redraw();
      logUpdate.done();
    } else write((await table.render(`counts per zone and window (estimated people, Wi-Fi / BLE; * = window cut short)`, 1000)) + '\n');
    const stats = aggregator.stats();
    await aggregator.stop();
    await broker.stop();
    log.flush();

    const rel = (p: string) => {
      const r = relative(process.cwd(), p);
      return r === '' ? '.' : r.startsWith('..') ? p : r;
    };
    write('\n');
    if (!drained || stats.writeFailures > 0)
      write(`warning: the aggregator could not write everything to ${aggregator.sink.target} (${stats.writeFailures} failed writes); see ${logFile}\n`);
    write(`${today.gateways.length} gateways in ${today.zones.length} zones of site "${today.site}": ${table.windows} windows, ${table.messages} count messages, ${stats.pointsWritten} points written, ${stats.rejected} rejected\n`);
    const err = countingError([...messages.values()], today.simulation.truth.windows);
    if (err.windows)
      write(
        `error against the simulator's ground truth (estimate vs devices in reach, mean over ${err.windows} gateway windows): Wi-Fi ${err.wifi} %, BLE ${err.ble} %\n`,
      );
    write(`results in ${rel(outDir)}/\n`);
    if (toFile) {
      const points = lineCount(lp);
      write(`  ${rel(lp)}  ${points} points of InfluxDB line protocol (ms timestamps), ${Math.round(statSync(lp).size / 1024)} KiB\n`);
      write(`  load into InfluxDB 1.x:  curl -XPOST 'http://127.0.0.1:8086/write?db=presence&precision=ms' --data-binary @${rel(lp)}\n`);
      write(`  load into InfluxDB 2.x:  influx write --bucket presence --precision ms --file ${rel(lp)}\n`);
    } else if (drained) {
      write(`  points went to ${aggregator.sink.target}\n`);
    }
    write(`  ${rel(join(outDir, 'today'))}/  simulated captures (pcap, open in Wireshark) and ground truth\n`);
    write(`  ${rel(logFile)}  logs of the gateways and the aggregator (JSON)\n`);
    write('then open the dashboards (dashboards/*.json) in Grafana: see docs/deployment.md\n');
    return { lpFile: toFile ? lp : null, table, points: stats.pointsWritten, complete: drained && stats.writeFailures === 0 };
  } catch (e) {
    await aggregator.stop(2000).catch(() => {});
    await broker.stop().catch(() => {});
    throw e;
  }
}

function positive(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number above 0.');
  return n;
}
function whole(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('must be a whole number.');
  return n;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('Run the whole pipeline here, nothing installed: simulated crowd -> gateways (WASM) -> embedded MQTT broker -> aggregator -> line-protocol file (or InfluxDB with INFLUX_URL)')
    .option('--scenario <name|file>', 'built-in scenario or scenario file', 'kingsday-square')
    .option('--minutes <n>', 'simulated minutes', positive, 30)
    .option('--window <duration>', 'window length', '60s')
    .option('--speed <factor|max>', 'replay speed of the captures (1 = real time)', '30')
    .option('--scale <factor>', 'multiplier of the scenario\'s crowd (kingsday-square at 0.1: 50 people at the start, about 320 after 30 minutes)', positive, 0.1)
    .option('--seed <n>', 'simulator seed', whole, 1)
    .option('-o, --out <dir>', 'folder for the results', 'presence-demo')
    .option('--no-last-week', 'skip simulating the same time one week earlier')
    .option('--no-live', 'print the table once at the end instead of updating it')
    .action(async (o: DemoOptions) => {
      try {
        const r = await runDemo(o);
        process.exit(r.complete ? 0 : 1);
      } catch (e) {
        process.stderr.write(`presence demo: ${(e as Error).message}\n`);
        process.exit(1);
      }
    });
}
