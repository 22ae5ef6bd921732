// `npm start` (presence demo) on its own: it finishes by itself, prints a non-empty count table and
// leaves a line-protocol file that loads into a real influxd, where every dashboard query (and every
// variable query) returns data.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, existsSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import { need } from './support/need.ts';
import { Influxd } from './support/influxd.ts';
import { InfluxQL, describeResult, loadDashboard, runDashboard, type QueryResult, type VariableResult } from '../dashboards/queries.ts';
import { CountTable, countingError, EmbeddedBroker, peopleError, receivedAndDrained, runDemo, summary } from '../scripts/demo/index.ts';
import type { CountsMessage } from '../contract/index.ts';
import mqtt from 'mqtt';
import { Aggregator } from '../aggregator/aggregator.ts';
import { TcpRelay } from './support/tcp-relay.ts';
import { loadScenario } from '../simulator/scenario.ts';
import { gatewayBurstAddresses } from '../simulator/evaluate.ts';
import { BURST_ADDRESSES_DEFAULT } from '../firmware/host/types.ts';
import { countsItem, publishAll, status, statusItem, windows } from './aggregator-helpers.ts';

const SUITE = 'demo (npm start)';
const root = join(import.meta.dirname, '..');
const hasInflux = need('influxd', 'influxdb', SUITE);
/** A short demo at full speed on a small crowd, this week only, no live page, no calibration. */
const quickDemo = (minutes: number) => [
  'scripts/presence.js',
  'demo',
  '--minutes',
  String(minutes),
  '--speed',
  'max',
  '--scale',
  '0.05',
  '--no-last-week',
  '--no-live',
  '--no-calibrate',
];

function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  influx: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    // No InfluxDB configured unless given: the demo falls back to its line-protocol file.
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INFLUX_'))), ...influx };
    const p = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    // A safety net only (the test waits for the exit): a demo that never ends is killed with its output.
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`demo did not exit (safety net of ${timeoutMs} ms)\n${stdout}\n${stderr}`));
    }, timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

describe(SUITE, () => {
  const out = mkdtempSync(join(tmpdir(), 'presence-demo-test-'));
  let result: Awaited<ReturnType<typeof run>>;
  let influxd: Influxd;
  const results: Record<string, { variables: VariableResult[]; queries: QueryResult[] }> = {};

  beforeAll(async () => {
    // The real entry point of `npm start`, shortened: 5 simulated minutes, replayed at full speed.
    result = await run(
      process.execPath,
      ['scripts/presence.js', 'demo', '--minutes', '5', '--speed', 'max', '--scale', '0.05', '--no-live', '--out', out],
      240_000,
    );
    const lp = join(out, 'presence.lp');
    if (hasInflux && existsSync(lp)) {
      influxd = await new Influxd('presence').start();
      // Loaded the way the demo tells the user to: POST /write?db=presence&precision=ms.
      const res = await fetch(`${influxd.url}/write?db=presence&precision=ms`, { method: 'POST', body: readFileSync(lp) });
      if (res.status !== 204) throw new Error(`loading ${lp} failed: ${res.status} ${await res.text()}`);
      const times = readFileSync(lp, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('presence,'))
        .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
      const todayFrom = Math.min(...times.filter((t) => t > Date.now() - 86400_000));
      const db = new InfluxQL({ url: influxd.url, database: 'presence' });
      const now = Date.now();
      for (const name of ['crowd', 'traffic', 'gateways']) {
        results[name] = await runDashboard(loadDashboard(join(root, 'dashboards', `${name}.json`)), db, {
          now,
          range: { from: todayFrom - 60_000, to: now + 60_000 },
          select: { zone: '$__all', gateway: '$__all' },
        });
      }
    }
  }, 300_000);

  afterAll(async () => {
    await influxd?.dispose();
    rmSync(out, { recursive: true, force: true });
  });

  // How long it takes is the bench's business; here it must end by itself (exit 0, not killed).
  it('finishes by itself, with a non-empty count table and where the results are', () => {
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Wi-Fi \/ BLE/);
    // At least one row of counts: a window start followed by "wifi / ble" cells.
    const rows = result.stdout.split('\n').filter((l) => /\d{4}-\d\d-\d\d \d\d:\d\d/.test(l) && /\d+ \/ \d+/.test(l));
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(result.stdout).toContain('presence.lp');
    // The summary comes once the aggregator has written everything the gateways published: the points
    // it says were written are the lines of the file.
    const written = /, (\d+) points written,/.exec(result.stdout);
    expect(written, result.stdout).not.toBeNull();
    expect(readFileSync(join(out, 'presence.lp'), 'utf8').split('\n').filter(Boolean).length).toBe(Number(written![1]));
    expect(result.stdout).toMatch(/curl -XPOST 'http:\/\/127\.0\.0\.1:8086\/write\?db=presence&precision=ms'/);
    expect(result.stdout).toMatch(
      /error against the simulator's ground truth, devices \(uncalibrated\): .*Wi-Fi [\d.]+ %, BLE [\d.]+ % \(.*README\.md, "Limits a traffic engineer should know"\)/,
    );
    // Only what a user opens next stays: the captures are deleted and the size of what is left is said.
    expect(result.stdout).toMatch(
      /\/ holds [\d.]+ (kB|MB) from this run; the 6 simulated captures \([\d.]+ (kB|MB)\) were deleted \(--keep-pcaps keeps them\)\n/,
    );
    const left = readdirSync(out, { recursive: true })
      .map(String)
      .filter((f) => /\.pcap(ng)?$/.test(f));
    expect(left).toEqual([]);
  });

  it('runs its gateways with the burst addresses their simulated radio hears, as gateway/README.md says to set it (about 2.4 hopping over 1, 6 and 11), not the default of 7, and says so', () => {
    const scenario = loadScenario('kingsday-square', { scale: 0.05 });
    const burst = gatewayBurstAddresses(scenario);
    expect(burst.every((b) => b !== BURST_ADDRESSES_DEFAULT)).toBe(true);
    // What each gateway ran with: its own log line at the start (today's and last week's run).
    const starts = readFileSync(join(out, 'demo.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string; gateway?: string; burst_addresses?: number })
      .filter((l) => l.msg === 'gateway starting');
    expect(starts.length).toBe(2 * scenario.gateways.length);
    for (const l of starts) expect(l.burst_addresses, l.gateway).toBe(burst[scenario.gateways.findIndex((g) => g.id === l.gateway)]);
    // The printed line a user would copy from.
    const line = result.stdout.split('\n').find((l) => l.startsWith('gateways: estimator.burst_addresses'));
    expect(line, result.stdout).toBeDefined();
    for (const [i, g] of scenario.gateways.entries())
      expect(line).toContain(`${g.id} ${burst[i]} (one radio hopping over channels 1, 6 and 11, ${g.wifi!.dwellMs} ms each)`);
  });

  it('shows people only from a calibration fitted on another seed, and says which number is which', () => {
    // The calibration: fitted on seed 1 + 100, written where the aggregator reads it.
    expect(result.stdout).toMatch(/fitting a people calibration .* \(seed 101\)/);
    const m = /people from the (Wi-Fi|BLE) estimate .*: (.*calibration\.yaml)/.exec(result.stdout);
    expect(m, result.stdout).not.toBeNull();
    expect(existsSync(join(out, 'calibration.yaml'))).toBe(true);
    expect(result.stdout).toMatch(
      /counts per zone and window: people \(calibrated from the (Wi-Fi|BLE) estimate, fitted on seed 101\) \| devices \(uncalibrated: the estimate, devices present averaged over the window, not the distinct addresses\), Wi-Fi \/ BLE/,
    );
    expect(result.stdout).toMatch(
      /error against the simulator's ground truth, people \(calibrated from the .*\): vs people present, .*MAPE [\d.]+ %, MAE [\d.]+ people/,
    );
    // Cells: people | Wi-Fi / BLE devices.
    expect(result.stdout).toMatch(/\d+ \| \d+ \/ \d+/);
    // Nothing calls a device count people.
    expect(result.stdout).not.toMatch(/estimated people/);
    // The aggregator wrote people for the calibrated radio, and only for it.
    const radio = m![1] === 'Wi-Fi' ? 'wifi' : 'ble';
    const lines = readFileSync(join(out, 'presence.lp'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('presence,'));
    expect(
      lines.filter((l) => l.includes(`radio=${radio},`) && / people=[\d.]+,people_high=/.test(l.replace(/^[^ ]+/, ' ').replace(/,people=/, ' people='))).length,
    ).toBeGreaterThan(0);
    expect(lines.filter((l) => !l.includes(`radio=${radio},`) && l.includes('people='))).toEqual([]);
  });

  it.skipIf(!hasInflux)(
    'with INFLUX_URL set, writes to that InfluxDB instead of a file',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'presence-demo-influx-'));
      const db = await new Influxd('demo').start();
      try {
        const r = await run(process.execPath, [...quickDemo(3), '--out', dir], 150_000, {
          INFLUX_URL: db.url,
          INFLUX_API: 'v1',
          INFLUX_DB: 'demo',
        });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain(db.url);
        expect(existsSync(join(dir, 'presence.lp'))).toBe(false);
        // Without a calibration the table says it shows devices, not people, and no people are claimed.
        expect(r.stdout).toContain(
          'counts per zone and window: devices (uncalibrated, not people: the estimate, devices present averaged over the window, not the distinct addresses), Wi-Fi / BLE',
        );
        expect(r.stdout).not.toMatch(/people \(calibrated|people from the/);
        expect(existsSync(join(dir, 'calibration.yaml'))).toBe(false);
        // Three gateways, three or four windows each (the first and last cut short), Wi-Fi and BLE.
        expect(await db.count('presence', 'estimate')).toBeGreaterThanOrEqual(3 * 3 * 2);
        expect(await db.count('gateway_status', 'up')).toBeGreaterThan(0);
      } finally {
        await db.dispose();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    200_000,
  );

  it.skipIf(!hasInflux)(
    'with INFLUX_DB naming a database that does not exist, says how to create it with what the demo takes (INFLUX_CREATE=true, not an aggregator flag)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'presence-demo-nodb-'));
      const db = await new Influxd('demo').start();
      try {
        const env = { INFLUX_URL: db.url, INFLUX_API: 'v1', INFLUX_DB: 'nodb' };
        const args = [...quickDemo(2), '--out', dir];
        const r = await run(process.execPath, args, 150_000, env);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/has no database "nodb"/);
        expect(r.stderr).toContain('presence influx setup --influx-url');
        expect(r.stderr).toContain('or run the demo with INFLUX_CREATE=true');
        expect(r.stderr).not.toMatch(/start the aggregator|--influx-create/);
        const created = await run(process.execPath, args, 150_000, { ...env, INFLUX_CREATE: 'true' });
        expect(created.code, created.stderr).toBe(0);
      } finally {
        await db.dispose();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    300_000,
  );

  it.skipIf(!hasInflux)(
    'a wrong INFLUX_URL or a missing database is said before the calibration fit, not after it',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'presence-demo-early-'));
      const db = await new Influxd('demo').start();
      // a port that was free a moment ago: nothing answers there
      const port = await new Promise<number>((resolve) => {
        const srv = createServer().listen(0, '127.0.0.1', () => {
          const p = (srv.address() as { port: number }).port;
          srv.close(() => resolve(p));
        });
      });
      try {
        // with the calibration fit on (the default): the error comes before the fit starts
        const args = ['scripts/presence.js', 'demo', '--minutes', '2', '--speed', 'max', '--scale', '0.05', '--no-live', '--no-hold', '--out', dir];
        const nodb = await run(process.execPath, args, 150_000, { INFLUX_URL: db.url, INFLUX_API: 'v1', INFLUX_DB: 'nodb' });
        expect(nodb.code).toBe(1);
        expect(nodb.stderr).toMatch(/has no database "nodb"/);
        expect(nodb.stdout).not.toContain('fitting a people calibration');
        const away = await run(process.execPath, args, 150_000, { INFLUX_URL: `http://127.0.0.1:${port}`, INFLUX_API: 'v1', INFLUX_DB: 'demo' });
        expect(away.code).toBe(1);
        expect(away.stderr).toContain(`INFLUX_URL http://127.0.0.1:${port}: no InfluxDB answers (ECONNREFUSED)`);
        expect(away.stdout).not.toContain('fitting a people calibration');
      } finally {
        await db.dispose();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    300_000,
  );

  it('leaves line protocol for presence and gateway_status', () => {
    const text = readFileSync(join(out, 'presence.lp'), 'utf8');
    expect(text).toMatch(/^presence,/m);
    expect(text).toMatch(/^gateway_status,/m);
    // Counts only: no field or tag that could carry an address or a hash.
    expect(text).not.toMatch(/([0-9a-f]{2}:){5}[0-9a-f]{2}/i);
    expect(text).not.toMatch(/hash|mac=|addr/i);
  });

  it.skipIf(!hasInflux).each(['crowd', 'traffic', 'gateways'])('%s: every variable query and every panel query returns data from the loaded file', (name) => {
    const r = results[name];
    expect(r, 'dashboards were not run (no line-protocol file)').toBeTruthy();
    // People exist only for calibrated zones and radios: the demo's calibration file maps one radio,
    // so the other radio's calibrated-zone variable is empty and its zones show as devices
    // (uncalibrated); without a calibration the queries of people are empty too (both cases:
    // test/calibration-dashboard.test.ts).
    const lp = readFileSync(join(out, 'presence.lp'), 'utf8').split('\n');
    const calibratedRadios = new Set(lp.filter((l) => /[ ,]people=/.test(l)).map((l) => /radio=(\w+)/.exec(l)?.[1]));
    const calibrated = calibratedRadios.size > 0;
    for (const v of r.variables)
      if (!v.name.startsWith('calibrated_') || calibratedRadios.has(v.name.slice('calibrated_'.length)))
        expect(v.values.length, `${name} variable ${v.name}: ${v.expanded}`).toBeGreaterThan(0);
    // The demo's gateways are no corridor group, so it writes no flow points: the traffic
    // dashboard's flow panels have data in test/e2e.test.ts and test/flows-dashboard.test.ts.
    const flows = lp.some((l) => l.startsWith('flow,'));
    // Nor do they protect small counts: the queries of suppressed windows have data in
    // test/calibration-dashboard.test.ts.
    const suppressed = lp.some((l) => l.includes('suppressed=T'));
    const empty = r.queries
      .filter(
        (q) =>
          q.error ||
          (q.rows === 0 &&
            (calibrated || !/"people/.test(q.expanded)) &&
            (flows || !/FROM "flow"/.test(q.expanded)) &&
            (suppressed || !/count\("suppressed"\) AS "suppressed"/.test(q.expanded)) &&
            // the zones' gateways offline now: rows only where one is (tested in test/calibration-dashboard.test.ts)
            !/count\("missing"\) AS "offline"/.test(q.expanded) &&
            // a gateway's clock behind: rows only where the aggregator judged one behind (test/aggregator-clock-skew.test.ts)
            !/"clock_behind_s"/.test(q.expanded)),
      )
      .map(describeResult);
    expect(empty).toEqual([]);
  });
});

describe('demo helpers', () => {
  const msg = (gateway: string, zone: string, start: string, wifi: number, ble: number, complete = true): CountsMessage => ({
    v: 1,
    site: 's',
    zone,
    gateway,
    seq: 1,
    start,
    end: new Date(Math.floor(Date.parse(start) / 60_000) * 60_000 + 60_000).toISOString(),
    complete,
    wifi: { frames: 1, devices: wifi, estimate: wifi },
    ble: { frames: 1, devices: ble, estimate: ble },
  });

  it('the table puts a window cut short at the capture start in its slot and keeps the larger estimate per zone', () => {
    const t = new CountTable(60_000);
    t.add(msg('g1', 'a', '2026-04-27T10:00:17.500Z', 5, 9, false));
    t.add(msg('g2', 'a', '2026-04-27T10:00:00.000Z', 7, 3));
    t.add(msg('g3', 'b', '2026-04-27T10:01:00.000Z', 2, 4));
    expect(t.windows).toBe(2);
    expect(t.rows()).toEqual([
      ['2026-04-27 10:00', '7 / 9 *', ''],
      ['2026-04-27 10:01', '', '2 / 4'],
    ]);
  });

  it('a window that is not a whole number of minutes (--window 30s) shows its start with seconds: rows never read the same time', () => {
    const t = new CountTable(30_000);
    t.add(msg('g1', 'a', '2026-04-27T10:00:00.000Z', 1, 2));
    t.add(msg('g1', 'a', '2026-04-27T10:00:30.000Z', 3, 4));
    expect(t.rows().map((r) => r[0])).toEqual(['2026-04-27 10:00:00', '2026-04-27 10:00:30']);
    const m = new CountTable(120_000);
    m.add(msg('g1', 'a', '2026-04-27T10:02:00.000Z', 1, 2));
    expect(m.rows()[0][0]).toBe('2026-04-27 10:02');
  });

  it('the summary says how demo.log is written (--log-format pretty: readable lines, not JSON) and counts one gateway and one zone in the singular', () => {
    const input = (logFormat: 'json' | 'pretty', gateways: number) => ({
      outDir: '/tmp/d',
      logFile: '/tmp/d/demo.log',
      logFormat,
      lpFile: null,
      target: 'http://127.0.0.1:8086/',
      drained: true,
      aggregator: { writeFailures: 0, pointsWritten: 3, rejected: 0 },
      period: { gateways: Array(gateways).fill({}), zones: Array.from({ length: gateways }, (_, i) => `z${i}`), site: 's' },
      table: { windows: gateways, messages: gateways },
      messages: [],
      truth: [],
    });
    const pretty = summary(input('pretty', 1));
    expect(pretty).toMatch(/demo\.log {2}logs of the gateways and the aggregator \(readable lines\)/);
    expect(pretty).toMatch(/^1 gateway in 1 zone of site "s": 1 window, 1 count message, /m);
    const json = summary(input('json', 3));
    expect(json).toMatch(/demo\.log {2}logs of the gateways and the aggregator \(JSON\)/);
    expect(json).toMatch(/^3 gateways in 3 zones of site "s": 3 windows, 3 count messages, /m);
  });

  /** runDemo with these options refuses them as `error` before anything runs: no --out folder made. */
  const refusedBeforeRun = async (name: string, opts: { scenario: string; minutes: number; window: string }, error: object) => {
    const out = join(tmpdir(), `presence-demo-${name}-${process.pid}`);
    await expect(runDemo({ ...opts, speed: 'max', scale: 0.1, seed: 1, out, lastWeek: false, live: false, httpPort: 'off' })).rejects.toMatchObject({
      name: 'UsageError',
      ...error,
    });
    expect(existsSync(out)).toBe(false);
  };

  it('a --window longer than the run is refused before anything runs, naming both flags', async () => {
    await refusedBeforeRun(
      'window',
      { scenario: 'kingsday-square', minutes: 5, window: '7m' },
      {
        message: '--window 7m: longer than the run (--minutes 5), so no whole window would be counted',
        hint: expect.stringMatching(/--window of at most the run/),
      },
    );
  });

  it('a --window under 1s is refused before anything runs, as the gateways refuse it', async () => {
    await refusedBeforeRun(
      'short-window',
      { scenario: 'quiet-night', minutes: 2, window: '500ms' },
      { message: "--window 500ms: must be at least 1s, as a gateway's window (gateway/README.md, gateway.window)" },
    );
  });

  it('a bare --window under 1s gets its one error line, not also a deprecation line saying to write it "0.5s"', async () => {
    const out = mkdtempSync(join(tmpdir(), 'presence-demo-bare-window-'));
    try {
      const r = await run(process.execPath, [...quickDemo(2), '--window', '0.5', '--http-port', 'off', '--out', out], 60_000);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("presence demo: --window 0.5: must be at least 1s, as a gateway's window");
      expect(r.stderr).not.toContain('warning');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 90_000);

  it('a run of fewer windows than a people calibration needs says so in one line, with the --minutes that would do, and fits nothing', async () => {
    const out = mkdtempSync(join(tmpdir(), 'presence-demo-short-'));
    let text = '';
    const sink = new PassThrough();
    sink.on('data', (d) => (text += d));
    try {
      const opts = {
        scenario: 'quiet-night',
        minutes: 2,
        window: '60s',
        speed: 'max',
        scale: 0.1,
        seed: 1,
        out,
        lastWeek: false,
        live: false,
        httpPort: 'off',
      };
      await runDemo(opts, sink);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const lines = text.split('\n').filter((l) => /calibration/.test(l));
    expect(lines[0]).toBe(
      'no people calibration: the run holds 2 windows of 60 s and a fit needs at least 3 (--minutes 3 or more, or a shorter --window): the table shows devices (uncalibrated: the estimate, devices present averaged over the window) only',
    );
    expect(text).not.toMatch(/fitting a people calibration|window\(s\) paired with the truth/);
  }, 120_000);

  it('with a calibration, a cell shows the largest calibrated people of the zone beside its devices', () => {
    const people = (m: CountsMessage) => (m.zone === 'a' ? m.ble.estimate * 2 : null);
    const t = new CountTable(60_000, people);
    t.add(msg('g1', 'a', '2026-04-27T10:00:00.000Z', 5, 9));
    t.add(msg('g2', 'a', '2026-04-27T10:00:00.000Z', 7, 3));
    t.add(msg('g3', 'b', '2026-04-27T10:00:00.000Z', 2, 4));
    expect(t.rows()).toEqual([['2026-04-27 10:00', '18 | 7 / 9', '- | 2 / 4']]);
  });

  it('the error of calibrated people is against people present, over windows with people present', () => {
    const truth = [
      { gateway: 'g1', start: '2026-04-27T10:00:00.000Z', end: '2026-04-27T10:01:00.000Z', peopleMean: 10 },
      { gateway: 'g1', start: '2026-04-27T10:01:00.000Z', end: '2026-04-27T10:02:00.000Z', peopleMean: 0 },
      { gateway: 'g1', start: '2026-04-27T10:02:00.000Z', end: '2026-04-27T10:03:00.000Z', peopleMean: 4 },
    ];
    const ms = [
      msg('g1', 'a', '2026-04-27T10:00:00.000Z', 12, 0),
      msg('g1', 'a', '2026-04-27T10:01:00.000Z', 3, 0),
      msg('g1', 'a', '2026-04-27T10:02:00.000Z', 5, 0),
    ];
    // |12-10|/10 = 20 %, |5-4|/4 = 25 % -> 22.5 %; MAE (2 + 1) / 2 = 1.5; the empty window is not scored.
    expect(peopleError(ms, truth, (m) => m.wifi.estimate)).toEqual({ windows: 2, mape: 22.5, mae: 1.5 });
  });

  it('the summary says in how many scored windows the truth lay inside the people interval, at its level', () => {
    const truth = [
      { gateway: 'g1', start: '2026-04-27T10:00:00.000Z', end: '2026-04-27T10:01:00.000Z', peopleMean: 10, devices: { wifi: 1, ble: 1 } },
      { gateway: 'g1', start: '2026-04-27T10:01:00.000Z', end: '2026-04-27T10:02:00.000Z', peopleMean: 0, devices: { wifi: 1, ble: 1 } },
      { gateway: 'g1', start: '2026-04-27T10:02:00.000Z', end: '2026-04-27T10:03:00.000Z', peopleMean: 4, devices: { wifi: 1, ble: 1 } },
    ];
    const ms = [
      msg('g1', 'a', '2026-04-27T10:00:00.000Z', 12, 0),
      msg('g1', 'a', '2026-04-27T10:01:00.000Z', 3, 0),
      msg('g1', 'a', '2026-04-27T10:02:00.000Z', 5, 0),
    ];
    // 10 lies in 11 .. 13? no; 4 in 4 .. 6? yes: 1 of the 2 scored windows (the empty one is not scored).
    const interval = (m: CountsMessage) => ({ low: m.wifi.estimate - 1, high: m.wifi.estimate + 1 });
    expect(peopleError(ms, truth, (m) => m.wifi.estimate, interval)).toEqual({ windows: 2, mape: 22.5, mae: 1.5, inside: 1 });
    expect(peopleError(ms, truth, (m) => m.wifi.estimate)).toEqual({ windows: 2, mape: 22.5, mae: 1.5 });
    const text = summary({
      outDir: '/tmp/d',
      logFile: '/tmp/d/demo.log',
      logFormat: 'json',
      lpFile: null,
      target: 'http://127.0.0.1:8086/',
      drained: true,
      aggregator: { writeFailures: 0, pointsWritten: 6, rejected: 0 },
      period: { gateways: [{}], zones: ['a'], site: 's' },
      table: { windows: 3, messages: 3 },
      messages: ms,
      truth,
      people: { of: (m) => m.wifi.estimate, label: 'calibrated', file: '/tmp/d/calibration.yaml', interval: { of: interval, level: 0.9 } },
    });
    expect(text).toMatch(/MAPE 22\.5 %, MAE 1\.5 people; the truth inside the window's 90 % interval in 1 of them \(50 %\)/);
  });

  it('the error against the truth is the mean absolute percentage per radio over windows with devices in reach', () => {
    const truth = [
      { gateway: 'g1', start: '2026-04-27T10:00:00.000Z', end: '2026-04-27T10:01:00.000Z', devices: { wifi: 10, ble: 0 } },
      { gateway: 'g1', start: '2026-04-27T10:01:00.000Z', end: '2026-04-27T10:02:00.000Z', devices: { wifi: 20, ble: 4 } },
    ];
    const e = countingError(
      [
        msg('g1', 'a', '2026-04-27T10:00:30.000Z', 12, 1, false),
        msg('g1', 'a', '2026-04-27T10:01:00.000Z', 15, 6),
        msg('g9', 'a', '2026-04-27T10:01:00.000Z', 1, 1),
      ],
      truth,
    );
    // Wi-Fi: |12-10|/10 = 20 %, |15-20|/20 = 25 % -> 22.5 %; BLE: only the second window, |6-4|/4 = 50 %.
    expect(e).toEqual({ windows: 2, wifi: 22.5, ble: 50 });
    // The BLE estimate leaves beacons out: it is scored against the BLE devices that are not beacons.
    const withBeacons = truth.map((w) => ({ ...w, devices: { ...w.devices, ble: w.devices.ble + 2, byKind: { beacon: 2 } } }));
    expect(countingError([msg('g1', 'a', '2026-04-27T10:01:00.000Z', 15, 6)], withBeacons)).toEqual({ windows: 1, wifi: 25, ble: 50 });
  });
});

describe('demo: a folder that already holds files', () => {
  it("prints the size of this run's files, names apart the files it did not write and leaves them, deletes only its own captures, and writes demo.log anew", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-demo-again-'));
    try {
      // A user's own capture, one an earlier run kept (another scenario's gateway), an earlier run's log
      // (the folder marked by that run).
      writeFileSync(join(dir, '.presence-demo'), '');
      writeFileSync(join(dir, 'mine.pcap'), Buffer.alloc(5000));
      mkdirSync(join(dir, 'today'));
      writeFileSync(join(dir, 'today', 'gw-elsewhere.pcapng'), Buffer.alloc(300_000));
      writeFileSync(join(dir, 'demo.log'), 'a line of an earlier run\n'.repeat(20_000));
      const r = await run(process.execPath, [...quickDemo(2), '--http-port', 'off', '--out', dir], 150_000);
      expect(r.code, r.stderr).toBe(0);
      expect(existsSync(join(dir, 'mine.pcap'))).toBe(true);
      expect(existsSync(join(dir, 'today', 'gw-elsewhere.pcapng'))).toBe(true);
      expect(readFileSync(join(dir, 'demo.log'), 'utf8')).not.toContain('a line of an earlier run');
      const files = readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name));
      expect(files.filter((f) => /\.pcap(ng)?$/.test(f)).sort()).toEqual([join(dir, 'mine.pcap'), join(dir, 'today', 'gw-elsewhere.pcapng')]);
      const own = files.filter((f) => !/mine\.pcap$|gw-elsewhere\.pcapng$/.test(f)).reduce((n, f) => n + statSync(f).size, 0);
      const line = r.stdout.split('\n').find((l) => l.startsWith(`${dir}/ holds `));
      expect(line, r.stdout).toBe(
        `${dir}/ holds ${Math.round(own / 1024)} kB from this run; the 3 simulated captures (${/captures \(([\d.]+ (kB|MB))\)/.exec(line ?? '')?.[1]}) were deleted (--keep-pcaps keeps them); ` +
          "it also holds 2 files (298 kB) this run did not write, from an earlier run or not the demo's, left as they were: mine.pcap, today/gw-elsewhere.pcapng",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 200_000);
});

describe("demo: a folder with files of the demo's names that no demo run wrote", () => {
  it("refuses before anything runs, naming them, and leaves them and the folder as they were (a presence.lp of the user's was overwritten without a word)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-demo-foreign-'));
    try {
      writeFileSync(join(dir, 'presence.lp'), 'my own line protocol\n');
      mkdirSync(join(dir, 'today'));
      writeFileSync(join(dir, 'today', 'truth.json'), '{"mine":true}');
      const r = await run(process.execPath, [...quickDemo(2), '--http-port', 'off', '--out', dir], 60_000);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `presence demo: --out ${dir}: this run would overwrite presence.lp, today/truth.json there, which no demo run wrote (no .presence-demo in the folder)`,
      );
      expect(readFileSync(join(dir, 'presence.lp'), 'utf8')).toBe('my own line protocol\n');
      expect(readFileSync(join(dir, 'today', 'truth.json'), 'utf8')).toBe('{"mine":true}');
      expect(readdirSync(dir).sort()).toEqual(['presence.lp', 'today']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe("demo: the gateways' queues folder", () => {
  it("refuses a queues/ folder no demo run wrote, naming it and leaving it as it was (a gateway's queue in it was read as the demo's: its *.tmp files removed, its windows/<n>.json taken as queued windows), and reuses its own on a second run", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-demo-queues-'));
    try {
      const foreign = join(dir, 'foreign');
      mkdirSync(join(foreign, 'queues', 'gw-west', 'windows'), { recursive: true });
      writeFileSync(join(foreign, 'queues', 'gw-west', 'notes.tmp'), 'mine\n');
      writeFileSync(join(foreign, 'queues', 'gw-west', 'windows', '1.json'), '{"mine":true}');
      const r = await run(process.execPath, [...quickDemo(2), '--http-port', 'off', '--out', foreign], 60_000);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `presence demo: --out ${foreign}: this run would overwrite queues/ there, which no demo run wrote (no .presence-demo in the folder)`,
      );
      expect(readdirSync(foreign, { recursive: true }).map(String).sort()).toEqual([
        'queues',
        join('queues', 'gw-west'),
        join('queues', 'gw-west', 'notes.tmp'),
        join('queues', 'gw-west', 'windows'),
        join('queues', 'gw-west', 'windows', '1.json'),
      ]);
      expect(readFileSync(join(foreign, 'queues', 'gw-west', 'notes.tmp'), 'utf8')).toBe('mine\n');
      // the demo's own folder, queues/ and all, is taken again by the next run
      const own = join(dir, 'own');
      for (let i = 0; i < 2; i++) {
        // Windows an earlier run left queued (it was stopped before sending them) are dropped, said
        // once, not sent to this run's aggregator among its own: the second run finds two.
        if (i === 1) {
          mkdirSync(join(own, 'queues', 'gw-west', 'windows'), { recursive: true });
          for (const n of [900001, 900002])
            writeFileSync(join(own, 'queues', 'gw-west', 'windows', `${n}.json`), readFileSync(join(foreign, 'queues', 'gw-west', 'windows', '1.json')));
        }
        const d = await run(process.execPath, [...quickDemo(2), '--http-port', 'off', '--out', own], 150_000);
        expect(d.code, d.stderr).toBe(0);
        expect(existsSync(join(own, 'queues', 'gw-west', 'seq'))).toBe(true);
        const said = 'presence demo: dropped 2 windows an earlier run left queued in queues/ (it was stopped before sending them)';
        if (i === 1) expect(d.stdout).toContain(said);
        else expect(d.stdout).not.toContain('dropped');
        expect(readdirSync(join(own, 'queues', 'gw-west', 'windows')).filter((f) => f.startsWith('9000'))).toEqual([]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 400_000);
});

describe('demo: a folder whose .presence-demo is no file of its own', () => {
  it('refuses a link or a folder of that name before anything runs: a link was written through (the file it points to overwritten) and taken as the mark, and a folder gave EISDIR', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-demo-marklink-'));
    try {
      const target = join(dir, 'elsewhere.txt');
      writeFileSync(target, "not the demo's\n");
      const out = join(dir, 'out');
      mkdirSync(out);
      symlinkSync(target, join(out, '.presence-demo'));
      writeFileSync(join(out, 'presence.lp'), 'my own line protocol\n');
      const r = await run(process.execPath, [...quickDemo(2), '--http-port', 'off', '--out', out], 60_000);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`presence demo: --out ${out}: .presence-demo there is a symbolic link, where a demo run marks its folder with a file`);
      expect(readFileSync(target, 'utf8')).toBe("not the demo's\n");
      expect(readFileSync(join(out, 'presence.lp'), 'utf8')).toBe('my own line protocol\n');
      rmSync(join(out, '.presence-demo'));
      mkdirSync(join(out, '.presence-demo'));
      const d = await run(process.execPath, [...quickDemo(2), '--http-port', 'off', '--out', out], 60_000);
      expect(d.code).toBe(2);
      expect(d.stderr).toContain(`presence demo: --out ${out}: .presence-demo there is not a file, where a demo run marks its folder with a file`);
      expect(readdirSync(out).sort()).toEqual(['.presence-demo', 'presence.lp']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('demo --hold: after the run', () => {
  it('records no gateway as missing while the page stays up: they stopped because the replay ended (it wrote missing points after the summary and the page showed every gateway missing)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'presence-demo-hold-'));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INFLUX_')));
    // 5-s windows: the aggregator records a gateway missing after 2 window lengths of silence (10 s).
    const args = ['scripts/presence.js', 'demo', '--minutes', '1', '--window', '5s', '--speed', 'max', '--scale', '0.05'];
    const p = spawn(process.execPath, [...args, '--no-live', '--no-calibrate', '--no-last-week', '--http-port', '0', '--hold', '--out', out], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d) => (stdout += d));
    p.stderr!.on('data', (d) => (stderr += d));
    const exit = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 200_000;
      while (!stdout.includes('the page stays at') && p.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(stdout, stderr).toContain('the page stays at');
      const url = /page: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout)![1];
      const points = Number(/(\d+) points of InfluxDB line protocol/.exec(stdout)![1]);
      // Three times the silence that makes a gateway missing.
      await new Promise((r) => setTimeout(r, 30_000));
      const lp = readFileSync(join(out, 'presence.lp'), 'utf8').trim().split('\n');
      expect(lp.filter((l) => /\bmissing=T/.test(l))).toEqual([]);
      expect(lp).toHaveLength(points);
      const recent = (await (await fetch(`${url}api/recent`)).json()) as { gateways: Array<{ gateway: string; missing: boolean }> };
      expect(recent.gateways.map((g) => g.gateway).sort()).toEqual(['gw-east', 'gw-north', 'gw-west']);
      for (const g of recent.gateways) expect(g.missing, g.gateway).toBe(false);
    } finally {
      p.kill('SIGINT');
      expect(await exit).toBe(0);
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('demo: the end of a run', () => {
  const lineCount = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0);

  it("drains the aggregator only once it has received every message the gateways published: the broker's acknowledgement is not its delivery", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-demo-end-'));
    const broker = await new EmbeddedBroker().start();
    // The aggregator reads the broker through a relay that can hold back what the broker sends it.
    const relay = await new TcpRelay(broker.port).start();
    const lp = join(dir, 'presence.lp');
    const aggregator = new Aggregator({
      mqtt: { url: `mqtt://127.0.0.1:${relay.port}`, clientId: 'demo-end-aggregator' },
      out: lp,
      http: { port: null },
      logLevel: 'error',
    });
    const pub = await mqtt.connectAsync(broker.url, { clientId: 'demo-end-gateways', protocolVersion: 4 });
    try {
      await aggregator.start();
      // As on a loaded machine: the gateways publish and are acknowledged by the broker (QoS 1)
      // before the aggregator has read any of it from its connection.
      relay.hold();
      const sent = windows('demo-end', 3, 5);
      await publishAll(pub, [...sent.map(countsItem), statusItem(status('demo-end', 'gw-0'))]);
      expect(broker.published).toBe(sent.length + 1);
      expect(aggregator.stats().received).toBe(0);
      // Draining now (what the demo did) finds nothing to write and says everything is written.
      expect(await aggregator.drain(1000)).toBe(true);
      expect(lineCount(lp)).toBe(0);
      const done = receivedAndDrained(aggregator, () => broker.published, 30_000);
      relay.release();
      expect(await done).toBe(true);
      expect(aggregator.stats().received).toBe(sent.length + 1);
      // Three points a window (Wi-Fi, BLE, its marker in gateway_status), one for the status.
      expect(lineCount(lp)).toBe(3 * sent.length + 1);
      expect(aggregator.stats().pointsWritten).toBe(3 * sent.length + 1);
    } finally {
      relay.release();
      await pub.endAsync();
      await aggregator.stop(2000);
      relay.close();
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives up after its time when a message never reaches the aggregator, and says so (false)', async () => {
    let drains = 0;
    const aggregator = {
      stats: () => ({ received: 2 }),
      drain: async () => {
        drains++;
        return true;
      },
    };
    expect(await receivedAndDrained(aggregator, () => 3, 200)).toBe(false);
    expect(drains).toBe(0);
    expect(await receivedAndDrained(aggregator, () => 2, 200)).toBe(true);
    expect(drains).toBe(1);
  });
});

describe('demo: progress when stdout is no terminal', () => {
  // Between "simulating today and replaying it through the gateways ..." and the table nothing was
  // printed (over a minute for the default run); now plain lines say the stage and how far it is.
  it('prints plain progress lines of the simulator and the replay, without terminal codes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-demo-progress-'));
    try {
      // At 30x (the default speed) the replay of 2 minutes takes 4 s: a line at 50% (most often) and at its end.
      const args = ['scripts/presence.js', 'demo', '--minutes', '2', '--scale', '0.05', '--no-last-week', '--no-calibrate', '--http-port', 'off', '--out', dir];
      for (const extra of [[], ['--no-live']]) {
        const r = await run(process.execPath, [...args, ...extra], 120_000);
        expect(r.code, r.stderr).toBe(0);
        const after = r.stdout.slice(
          r.stdout.indexOf('simulating today and replaying it through the gateways ...'),
          r.stdout.indexOf('counts per zone and window'),
        );
        expect(after).toMatch(/^simulating today: 2 of 2 simulated minutes \(100%\)$/m);
        expect(after).toMatch(/^replaying today through 3 gateways: 2 of 2 simulated minutes \(100%\)$/m);
        expect(r.stdout).not.toContain('\x1b');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});

describe('demo: progress of the calibration run', () => {
  // The calibration run (as long as today's period) printed nothing between "fitting a people
  // calibration ..." and its result, on a terminal or not, while the rest of the run shows its progress.
  const args = (dir: string) => [
    'scripts/presence.js',
    'demo',
    '--minutes',
    '3',
    '--scale',
    '0.05',
    '--speed',
    'max',
    '--no-last-week',
    '--http-port',
    'off',
    '--no-hold',
    '--out',
    dir,
  ];

  it('prints plain progress lines of it when stdout is no terminal, without terminal codes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-demo-calprogress-'));
    try {
      const r = await run(process.execPath, args(dir), 120_000);
      expect(r.code, r.stderr).toBe(0);
      const during = r.stdout.slice(r.stdout.indexOf('fitting a people calibration'), r.stdout.indexOf('people from the'));
      expect(during).toMatch(/^counting the calibration run \(seed 101\): 3 of 3 simulated minutes \(100%\)$/m);
      expect(r.stdout).not.toContain('\x1b');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);

  it.skipIf(!need('script', 'util-linux', 'demo: progress on a terminal'))(
    'shows a progress bar of it on a terminal (the live table comes only with the replay)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'presence-demo-calprogress-'));
      try {
        // script(1)'s pseudo-terminal, tall enough for the live table
        const command = `stty rows 40 cols 120; exec ${process.execPath} ${args(dir).join(' ')}`;
        const r = await run('script', ['-qec', command, '/dev/null'], 120_000);
        expect(r.code, r.stdout).toBe(0);
        const during = r.stdout.slice(r.stdout.indexOf('fitting a people calibration'), r.stdout.indexOf('people from the'));
        expect(during).toMatch(/counting the calibration run \(seed 101\) \[[^\]]*\] 100% \| 3\/3 simulated minutes/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    150_000,
  );

  it.skipIf(!need('script', 'util-linux', 'demo: progress on a terminal'))(
    'shows a bar for each stage before the live table on a terminal: last week simulated and replayed, today simulated',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'presence-demo-stagebars-'));
      try {
        // with last week; the stages ran without a word on a terminal, where the plain lines are not printed
        const command = `stty rows 40 cols 120; exec ${process.execPath} ${args(dir)
          .filter((a) => a !== '--no-last-week')
          .join(' ')} --no-calibrate`;
        const r = await run('script', ['-qec', command, '/dev/null'], 120_000);
        expect(r.code, r.stdout).toBe(0);
        const lastWeek = r.stdout.slice(r.stdout.indexOf('simulating the same time one week earlier'), r.stdout.indexOf('simulating today and replaying'));
        expect(lastWeek).toMatch(/simulating last week \[[^\]]*\] 100% \| 3\/3 simulated minutes/);
        expect(lastWeek).toMatch(/replaying last week through 3 gateways \[[^\]]*\] 100% \| 3\/3 simulated minutes/);
        const today = r.stdout.slice(r.stdout.indexOf('simulating today and replaying'));
        expect(today).toMatch(/simulating today \[[^\]]*\] 100% \| 3\/3 simulated minutes/);
        expect(today).not.toMatch(/replaying today through/); // the live table shows that
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    150_000,
  );
});

describe.skipIf(!hasInflux)('demo: an InfluxDB 1.x with auth-enabled', () => {
  // The demo takes its credentials from the environment only: its lines named the flags
  // --influx-username and --influx-password-file, and said "refuses the credentials" when none were given.
  const influxd = new Influxd('presence', { username: 'admin', password: 'admin-S3cret' });
  const dir = mkdtempSync(join(tmpdir(), 'presence-demo-auth-'));
  beforeAll(async () => {
    await influxd.start();
  }, 60_000);
  afterAll(async () => {
    await influxd.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  const demo = (env: Record<string, string>, out = dir) =>
    run(process.execPath, [...quickDemo(2), '--http-port', 'off', '--out', out], 60_000, {
      INFLUX_URL: influxd.url,
      INFLUX_API: 'v1',
      INFLUX_DB: 'presence',
      ...env,
    });

  it('no credentials: says none were given and names the environment variables, and makes no --out folder', async () => {
    // checked before anything is written: the new folder was made, marked as the demo's, with a demo.log
    const out = join(dir, 'new');
    const r = await demo({}, out);
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(r.stderr).toContain(`presence demo: InfluxDB 1.6.7~rc0 at ${influxd.url} asks for credentials and no credentials were given`);
    expect(r.stderr).toContain('set INFLUX_USERNAME with INFLUX_PASSWORD or INFLUX_PASSWORD_FILE');
    expect(r.stderr).not.toContain('refuses the credentials');
    expect(r.stderr).not.toContain('--influx-');
  }, 90_000);

  it("a wrong password: says the credentials given are refused, names the variables and shows no password, and leaves an earlier run's folder as it was", async () => {
    // an earlier run's folder: its demo.log was replaced by one of the refused check
    const out = join(dir, 'earlier');
    mkdirSync(out);
    writeFileSync(join(out, '.presence-demo'), 'presence demo writes this folder\n');
    writeFileSync(join(out, 'demo.log'), 'the earlier run\n');
    const r = await demo({ INFLUX_USERNAME: 'admin', INFLUX_PASSWORD: 'Wr0ng-pass' }, out);
    expect(r.code).toBe(1);
    expect(readdirSync(out).sort()).toEqual(['.presence-demo', 'demo.log']);
    expect(readFileSync(join(out, 'demo.log'), 'utf8')).toBe('the earlier run\n');
    expect(r.stderr).toContain(
      'refuses the credentials given (authorization failed): check the user name admin (INFLUX_USERNAME) and its password (INFLUX_PASSWORD or INFLUX_PASSWORD_FILE)',
    );
    expect(r.stderr).not.toContain('--influx-');
    expect(r.stderr).not.toContain('Wr0ng-pass');
  }, 90_000);
});
