// The aggregator's page (aggregator/web.ts, aggregator/recent.ts) with real parts: simulated
// gateways (WASM firmware) replay into a real Mosquitto, the aggregator writes to a real influxd,
// and a real headless Chromium shows the page while it happens.
// - The charts hold exactly what influxd holds (per zone and window the largest among the zone's
//   gateways); people only for the calibrated zone; the gateways' states as written.
// - Only what the database confirmed is shown: with influxd down a received window is not on the
//   page; it appears once written. A rejected message never appears.
// - A radio a gateway suppressed for privacy.min_count (written as zeros, suppressed=true) is a gap
//   in the chart and says suppressed (below k), never 0 devices.
// - 50 viewers of the event stream, 25 of them never reading, while messages flow through the
//   aggregator's own process: the stalled ones are dropped, the readers get every window, every
//   message is written and acknowledged.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Aggregator } from '../aggregator/aggregator.ts';
import { Calibration, parseCalibration } from '../aggregator/calibration/index.ts';
import type { GatewayView, Snapshot, ZoneWindow } from '../aggregator/recent.ts';
import { countsTopic, encode, statusTopic } from '../contract/index.ts';
import { runPeriod, type PeriodResult } from '../scripts/demo/index.ts';
import { countsItem, publishAll, publisher, status, until, window as countsWindow } from './aggregator-helpers.ts';
import { launchBrowser, needChromium, openPage, type Browser, type OpenedPage } from './support/browser.ts';
import { Influxd } from './support/influxd.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { freePort } from './support/ports.ts';
import { eventually } from './support/wait.ts';

const SUITE = 'aggregator page (Mosquitto, influxd, headless Chromium)';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('influxd', 'influxdb', SUITE) && needChromium(SUITE);
const repo = join(import.meta.dirname, '..');
const ZONE = 'square-west';

type Charts = Record<
  string,
  { calibrated: boolean; people: Array<Array<number | null>> | null; devices: number[][]; axes: Record<string, string[]>; series: Record<string, string[]> }
>;

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-web-'));
  const log = pino({ level: 'warn' }, pino.destination({ dest: join(dir, 'test.log'), sync: false }));
  let mosquitto: Mosquitto;
  let influxd: Influxd;
  let aggregator: Aggregator;
  let browser: Browser;
  let opened: OpenedPage;
  let url: string;
  let today: PeriodResult;
  let eventsDuringReplay = 0;

  beforeAll(async () => {
    mosquitto = await new Mosquitto().start();
    influxd = await new Influxd('presence').start();
    browser = await launchBrowser();
    const calibration = new Calibration(
      parseCalibration(
        `format: presence-calibration/1\nestimator: { field: estimate, radio: wifi, window_s: 60 }\nlevel: 0.9\nzones:\n  ${ZONE}:\n` +
          '    k: { value: 0.5, low: 0.4, high: 0.6, sd: 0.05 }\n    b: { value: 2, low: 1, high: 3, sd: 0.5 }\n    corr_kb: 0.3\n    residual_sd: 1\n',
      ),
    );
    aggregator = new Aggregator(
      {
        mqtt: { url: mosquitto.url, client_id: 'presence-web-test-aggregator' },
        influx: { url: influxd.url, api: 'v1', database: 'presence' },
        batch: { max_retry_delay: 500 },
        http: { port: 0 },
      },
      { logger: log.child({ component: 'aggregator' }), calibration },
    );
    await aggregator.start();
    url = `http://127.0.0.1:${aggregator.httpPort}/`;
    // The page is open before anything is written: what it shows comes over the event stream.
    opened = await openPage(browser, url, { timeZone: 'Europe/Amsterdam' });
    const endMs = Math.floor(Date.now() / 60_000) * 60_000;
    today = await runPeriod({
      scenario: 'kingsday-square',
      seed: 21,
      startMs: endMs - 900_000,
      durationS: 900,
      windowS: 60,
      scale: 0.03,
      dir: join(dir, 'today'),
      queueDir: join(dir, 'queues'),
      mqttUrl: mosquitto.url,
      speed: 'max',
      log,
    });
    // A gateway is done once the broker has acknowledged its windows, not once the aggregator has read
    // them: wait for them in influxd, then drain what else it holds.
    const published = today.gateways.reduce((n, g) => n + g.windows, 0);
    await eventually('every window the gateways published is in influxd', async () => (await influxd.count('presence', 'estimate')) >= 2 * published, 90_000);
    if (!(await aggregator.drain(30_000))) throw new Error('the aggregator did not write everything within 30 s');
    await eventually(
      'the page gets an update over its event stream',
      async () => (await opened.page.evaluate(() => (globalThis as any).presencePage.events as number)) > 0,
    );
    eventsDuringReplay = await opened.page.evaluate(() => (globalThis as any).presencePage.events as number);
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await aggregator?.stop(5000).catch(() => {});
    await mosquitto?.dispose();
    await influxd?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const charts = () => opened.page.evaluate(() => (globalThis as any).presencePage.chartData()) as Promise<Charts>;

  /** Per "site/zone", per window start: what influxd holds (the largest among the zone's gateways). */
  async function stored(): Promise<Map<string, Map<number, { wifi: number; ble: number; people: number[] | null }>>> {
    const rows = await influxd.rows('SELECT "estimate", "people", "people_low", "people_high" FROM "presence" GROUP BY "site", "zone", "gateway", "radio"');
    const out = new Map<string, Map<number, { wifi: number; ble: number; people: number[] | null }>>();
    for (const r of rows) {
      const key = `${r.site}/${r.zone}`;
      let z = out.get(key);
      if (!z) out.set(key, (z = new Map()));
      const w = z.get(r.time) ?? { wifi: 0, ble: 0, people: null };
      const radio = r.radio as 'wifi' | 'ble';
      w[radio] = Math.max(w[radio], r.estimate as number);
      if (r.people !== null && r.people !== undefined && (!w.people || (r.people as number) > w.people[0]))
        w.people = [r.people as number, r.people_low as number, r.people_high as number];
      z.set(r.time, w);
    }
    return out;
  }

  it('loads with no console error and takes the windows over its event stream as they are written', async () => {
    expect(eventsDuringReplay).toBeGreaterThan(0);
    expect(opened.errors).toEqual([]);
    // A real deployment: its gateways' replay has stopped, but nothing told the aggregator a replay
    // ended (only the demo does): "live" says the stream is connected, never "replay finished".
    expect(await opened.page.$eval('#live', (e) => [(e as any).dataset.state, e.textContent])).toEqual(['live', 'live']);
    const recent = (await (await fetch(`${url}api/recent`)).json()) as Snapshot;
    expect(recent.replay_ended_at).toBeNull();
  });

  it('its charts hold what influxd holds: people with the interval for the calibrated zone only, devices (uncalibrated) per radio', async () => {
    const db = await stored();
    expect([...db.keys()].sort()).toEqual(today.zones.map((z) => `${today.site}/${z}`));
    await eventually('the page holds every stored window', async () => {
      const c = await charts();
      // (a zone whose chart is not drawn yet has devices: null)
      return [...db].every(([k, z]) => c[k]?.devices?.[0]?.length === z.size);
    });
    const c = await charts();
    for (const [key, z] of db) {
      const ts = [...z.keys()].sort((a, b) => a - b);
      const ws = ts.map((t) => z.get(t)!);
      expect(c[key].devices[0].map((x) => x * 1000)).toEqual(ts);
      expect(c[key].devices[1], `${key} Wi-Fi`).toEqual(ws.map((w) => w.wifi));
      expect(c[key].devices[2], `${key} BLE`).toEqual(ws.map((w) => w.ble));
      expect(c[key].axes.devices).toEqual(['time (Europe/Amsterdam)', 'devices (uncalibrated)']);
      if (key.endsWith(`/${ZONE}`)) {
        expect(c[key].calibrated).toBe(true);
        expect(ws.every((w) => w.people)).toBe(true);
        for (const [i, name] of ['people', 'low', 'high'].entries()) expect(c[key].people![i + 1], `${key} ${name}`).toEqual(ws.map((w) => w.people![i]));
        expect(c[key].axes.people).toEqual(['time (Europe/Amsterdam)', 'people']);
        // no simulator here: no series of its truth, nor a legend entry saying there was one
        expect(c[key].series.people).toEqual(['time', 'people (calibrated)', 'interval low', 'interval high']);
      } else {
        // Never a people chart for a zone without a calibration.
        expect(c[key].calibrated).toBe(false);
        expect(c[key].people).toBeNull();
        expect(ws.every((w) => w.people === null)).toBe(true);
      }
    }
    expect(opened.errors).toEqual([]);
  });

  it("shows each gateway's state as written (its latest gateway_status point)", async () => {
    const rows = await influxd.rows('SELECT last("online") AS "online" FROM "gateway_status" GROUP BY "gateway"');
    expect(rows.map((r) => r.gateway).sort()).toEqual(today.gateways.map((g) => g.gateway).sort());
    const written = async () =>
      Object.fromEntries(
        (await influxd.rows('SELECT last("online") AS "online" FROM "gateway_status" GROUP BY "gateway"')).map((r) => [
          r.gateway as string,
          r.online ? 'online' : 'offline',
        ]),
      );
    const table = async () =>
      opened.page.$$eval('#gateways tbody tr[data-gateway]', (trs) =>
        Object.fromEntries(trs.map((tr) => [tr.querySelectorAll('td')[1].textContent, tr.querySelectorAll('td')[3].textContent])),
      );
    // Wait for the table to settle, then compare: under load a read right after the rows appeared
    // could see a state not yet drawn.
    // (if it never settles, the comparison below shows which gateways differ)
    await eventually('the table shows every gateway with its state as written', async () => sameEntries(await table(), await written())).catch(() => {});
    expect(await table()).toEqual(await written());
  });

  it('shows only what the database confirmed: nothing while influxd is down, the window once written; a rejected message never', async () => {
    const pub = await publisher(mosquitto.url);
    try {
      const snapshot = async () => (await (await fetch(`${url}api/recent`)).json()) as Snapshot;
      const has = (s: Snapshot, zone: string) => s.zones.some((z) => z.zone === zone);
      // A message the contract refuses (an extra field): rejected, acknowledged, never on the page.
      const bad = { ...countsWindow(today.site, 'gw-refused', 1, Date.now() - 120_000, 60_000, 'refused'), mac: 'aa:bb:cc:dd:ee:ff' };
      const rejected = aggregator.stats().rejected;
      await pub.publishAsync(countsTopic(today.site, 'gw-refused'), encode(bad as never), { qos: 1 });
      await eventually('the bad message is rejected', () => aggregator.stats().rejected > rejected);
      await influxd.stop();
      const received = aggregator.stats().received;
      const held = countsWindow(today.site, 'gw-held', 1, Date.now() - 120_000, 60_000, 'held');
      await pub.publishAsync(countsTopic(today.site, 'gw-held'), encode(held), { qos: 1 });
      await eventually(
        'the aggregator has the window and tries to write it',
        () => aggregator.stats().received > received && aggregator.stats().writeFailures > 0,
      );
      expect(aggregator.stats().queueDepth).toBeGreaterThan(0);
      expect(has(await snapshot(), 'held')).toBe(false);
      expect(Object.keys(await charts())).not.toContain(`${today.site}/held`);
      await influxd.start();
      // The zone is in the page's data as soon as the update arrives; its chart is drawn at the next
      // animation frame (until then devices is null): wait for the chart holding the window.
      await eventually('the window is written and drawn on the page', async () => (await charts())[`${today.site}/held`]?.devices?.[0]?.length === 1);
      const c = (await charts())[`${today.site}/held`];
      const db = (await stored()).get(`${today.site}/held`)!;
      expect(c.devices).toEqual([[Date.parse(held.start) / 1000], [db.get(Date.parse(held.start))!.wifi], [db.get(Date.parse(held.start))!.ble]]);
      expect(c.devices[1]).toEqual([held.wifi.estimate]);
      // The snapshot is serialised at most once a second: the next one has it.
      await eventually('the snapshot has the window', async () => has(await snapshot(), 'held'));
      const s = await snapshot();
      expect(has(s, 'refused')).toBe(false);
      expect(Object.keys(await charts())).not.toContain(`${today.site}/refused`);
      expect(opened.errors).toEqual([]);
    } finally {
      await pub.endAsync();
    }
  }, 60_000);

  it('a radio suppressed for privacy.min_count shows as suppressed (below k) and a gap, not as 0 devices', async () => {
    const pub = await publisher(mosquitto.url);
    try {
      const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 300_000;
      const zero = { frames: 0, devices: 0, estimate: 0, suppressed: true };
      const counted = (devices: number, estimate: number) => ({ frames: 50, devices, estimate, suppressed: false });
      const msg = (gateway: string, seq: number, wifi: object, ble: object) => ({
        ...countsWindow(today.site, gateway, seq, t0 + seq * 60_000, 60_000, 'quiet'),
        wifi,
        ble,
        privacy: { min_count: 8 },
      });
      const ms = [
        msg('gw-quiet', 0, counted(12, 10), counted(9, 9)),
        msg('gw-quiet', 1, zero, counted(9, 9)),
        // the zone's largest is known where another gateway counted at least k: only BLE is suppressed
        msg('gw-quiet', 2, zero, zero),
        msg('gw-quiet-2', 2, counted(11, 10), zero),
        msg('gw-quiet', 3, zero, zero),
      ];
      await publishAll(
        pub,
        ms.map((m) => countsItem(m as never)),
        1,
      );
      const key = `${today.site}/quiet`;
      await eventually('the windows are written and drawn', async () => (await charts())[key]?.devices?.[0]?.length === 4);
      const quiet = (where = '') => influxd.rows(`SELECT "estimate", "suppressed" FROM "presence" WHERE "zone" = 'quiet'${where}`);
      await eventually('every point is written', async () => (await quiet()).length === 2 * ms.length);
      // influxd holds the zeros, told apart by suppressed=true
      const sup = await quiet(' AND "suppressed" = true');
      expect(sup.length).toBe(6);
      expect(sup.every((r) => r.estimate === 0)).toBe(true);
      // a gap where suppressed, never 0
      await eventually('the page has every gateway of the last windows', async () => {
        const d = (await charts())[key].devices;
        return d[1][2] === 10;
      });
      const c = (await charts())[key];
      expect(c.devices[1]).toEqual([10, null, 10, null]);
      expect(c.devices[2]).toEqual([9, 9, null, null]);
      const text = await opened.page.$eval(`section[data-zone="${key}"] .suppressed`, (e) => e.textContent);
      expect(text).toMatch(/Wi-Fi suppressed \(below 8\) in 2 of 4 windows/);
      expect(text).toMatch(/BLE suppressed \(below 8\) in 2 of 4 windows/);
      // the legend at the cursor says so for the suppressed radio, and the number for the other
      const legend = await opened.page.evaluate((k) => {
        const u = (globalThis as any).presencePage.zones.get(k).charts.devices;
        u.setCursor({ left: u.valToPos(u.data[0][1], 'x'), top: 10 });
        return [...u.root.querySelectorAll('.u-legend .u-series .u-value')].map((e: any) => e.textContent);
      }, key);
      expect(legend.slice(1)).toEqual(['suppressed (below 8)', '9']);
      // the snapshot carries it too (serialised at most once a second: the next one has the window)
      const last = async () => ((await (await fetch(`${url}api/recent`)).json()) as Snapshot).zones.find((z) => z.zone === 'quiet')?.windows[3];
      await eventually('the snapshot has the last window', async () => (await last()) !== undefined);
      const w = (await last())!;
      expect([w.wifi, w.ble, w.min_count]).toEqual([{ devices: 0, estimate: 0, suppressed: true }, { devices: 0, estimate: 0, suppressed: true }, 8]);
      expect(opened.errors).toEqual([]);
    } finally {
      await pub.endAsync();
    }
  }, 60_000);

  it("a gateway whose capture command writes nothing shows it beside its sources (its status's silent_s), not as a quiet site", async () => {
    const pub = await publisher(mosquitto.url);
    try {
      const base = status(today.site, 'gw-hung');
      const silent = { ...base, zone: 'quiet', sources: [{ ...base.sources![0]!, frames_per_s: 0, silent_s: 150 }, base.sources![1]!] };
      await pub.publishAsync(statusTopic(today.site, 'gw-hung'), encode(silent), { qos: 1, retain: true });
      const cell = () =>
        opened.page.$$eval(
          '#gateways tbody tr[data-gateway]',
          (trs, gw) =>
            trs.find((tr) => (tr as unknown as { dataset: { gateway?: string } }).dataset.gateway === gw)?.querySelectorAll('td')[6].textContent ?? null,
          `${today.site}/gw-hung`,
        );
      await eventually('the page shows gw-hung', async () => (await cell()) !== null);
      expect(await cell()).toBe('2 (0), 1 capture silent 2 minutes');
      // it writes again: the next status has no silent_s, and the page says nothing more
      await pub.publishAsync(statusTopic(today.site, 'gw-hung'), encode({ ...base, zone: 'quiet', ts: new Date(Date.now() + 1000).toISOString() }), {
        qos: 1,
        retain: true,
      });
      await eventually('the page drops the warning', async () => (await cell()) === '2 (0)');
      expect(opened.errors).toEqual([]);
    } finally {
      await pub.endAsync();
    }
  }, 60_000);

  it('beyond loopback the page, its data and its stream need credentials; /metrics and /healthz stay as they are', async () => {
    const start = async (http: Record<string, unknown>, id: string) => {
      const a = new Aggregator(
        { mqtt: { url: mosquitto.url, client_id: id }, influx: { url: influxd.url, api: 'v1', database: 'presence' }, http: { port: 0, ...http } },
        { logger: log.child({ component: id }) },
      );
      await a.start();
      return a;
    };
    const open = await start({ host: '0.0.0.0' }, 'presence-web-test-open');
    const token = await start({ host: '0.0.0.0', token: 'a-long-enough-token' }, 'presence-web-test-token');
    try {
      for (const path of ['/', '/api/recent', '/api/events', '/assets/uPlot.iife.min.js']) {
        const res = await fetch(`http://127.0.0.1:${open.httpPort}${path}`);
        expect(res.status, path).toBe(403);
        expect(await res.text()).toMatch(/http\.user and http\.password .* or http\.token/);
        expect((await fetch(`http://127.0.0.1:${token.httpPort}${path}`)).status, path).toBe(401);
      }
      const ok = await fetch(`http://127.0.0.1:${token.httpPort}/api/recent`, { headers: { authorization: 'Bearer a-long-enough-token' } });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as Snapshot).format).toBe('presence-recent/1');
      expect((await fetch(`http://127.0.0.1:${open.httpPort}/metrics`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${open.httpPort}/healthz`)).status).toBe(200);
      // read-only: another method is 405
      for (const path of ['/metrics', '/healthz']) expect((await fetch(`http://127.0.0.1:${open.httpPort}${path}`, { method: 'POST' })).status, path).toBe(405);
    } finally {
      await open.stop(2000);
      await token.stop(2000);
    }
    // Half a basic auth, or an empty secret, is a configuration error naming the key.
    expect(() => new Aggregator({ http: { user: 'ops' } })).toThrow(/http\.user: is set without http\.password/);
    expect(() => new Aggregator({ http: { token: '' } })).toThrow(/http\.token .* is empty/);
  });
});

/** A metric's value from a Prometheus text page (0 when absent). */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** A reader of the event stream in this process: applies `update` events, and on `reload` loads
 *  /api/recent, as the page does; what it holds is compared with the aggregator's snapshot. */
class Reader {
  windows = new Map<string, ZoneWindow>();
  gateways = new Map<string, GatewayView>();
  updates = 0;
  reloads = 0;
  ended = false;
  res: IncomingMessage | null = null;
  private buf = '';
  private loading: Promise<void> = Promise.resolve();

  constructor(private readonly base: string) {
    get(`${base}api/events`, (res) => {
      this.res = res;
      res.setEncoding('utf8');
      res.on('data', (d: string) => this.take(d));
      res.on('close', () => (this.ended = true));
    });
  }

  private take(d: string): void {
    this.buf += d;
    let i = this.buf.indexOf('\n\n');
    while (i >= 0) {
      const block = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event === 'update' && data) {
        this.updates++;
        const m = JSON.parse(data) as { windows: Array<{ site: string; zone: string; window: ZoneWindow }>; gateways: GatewayView[] };
        for (const w of m.windows) this.keep(`${w.site}/${w.zone}/${w.window.t}`, w.window);
        for (const g of m.gateways) this.keepGateway(g);
      } else if (event === 'reload') {
        this.reloads++;
        this.loading = this.loading.then(() => this.load());
      }
      i = this.buf.indexOf('\n\n');
    }
  }

  async load(): Promise<void> {
    const s = (await (await fetch(`${this.base}api/recent`)).json()) as Snapshot;
    for (const z of s.zones) for (const w of z.windows) this.keep(`${z.site}/${z.zone}/${w.t}`, w);
    for (const g of s.gateways) this.keepGateway(g);
  }

  // As the page: the newest revision wins (the stream and a snapshot overlap).
  private keep(key: string, w: ZoneWindow): void {
    const had = this.windows.get(key);
    if (!had || had.v <= w.v) this.windows.set(key, w);
  }

  private keepGateway(g: GatewayView): void {
    const key = `${g.site}/${g.gateway}`;
    const had = this.gateways.get(key);
    if (!had || had.v <= g.v) this.gateways.set(key, g);
  }

  /** Whether it holds the snapshot's every window and gateway as they are there. */
  matches(s: Snapshot): boolean {
    for (const z of s.zones) for (const w of z.windows) if (JSON.stringify(this.windows.get(`${z.site}/${z.zone}/${w.t}`)) !== JSON.stringify(w)) return false;
    for (const g of s.gateways) {
      const mine = this.gateways.get(`${g.site}/${g.gateway}`);
      if (!mine || mine.v < g.v || mine.last_window !== g.last_window || mine.state !== g.state) return false;
    }
    return true;
  }
}

describe.skipIf(!ok)('aggregator page: 50 viewers, 25 of them never reading, while messages flow', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-viewers-'));
  let mosquitto: Mosquitto;
  let influxd: Influxd;
  let proc: ChildProcess;
  let port: number;
  const readers: Reader[] = [];
  const stalled: Socket[] = [];

  beforeAll(async () => {
    mosquitto = await new Mosquitto().start();
    influxd = await new Influxd('presence').start();
    port = await freePort();
    // The aggregator's own process (the CLI, default settings): the viewers in this process share
    // nothing with it but their sockets.
    proc = spawn(
      process.execPath,
      [
        join(repo, 'scripts/presence.js'),
        'aggregator',
        '--mqtt-url',
        mosquitto.url,
        '--influx-url',
        influxd.url,
        '--influx-api',
        'v1',
        '--influx-db',
        'presence',
        '--http-port',
        String(port),
        '--log-level',
        'warn',
      ],
      { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    await until(
      'the aggregator process to answer /healthz',
      async () => {
        if (proc.exitCode !== null) throw new Error(`aggregator exited ${proc.exitCode}: ${err}`);
        return (await fetch(`http://127.0.0.1:${port}/healthz`)).status;
      },
      (s) => s === 200,
      30_000,
    );
  }, 60_000);

  afterAll(async () => {
    for (const s of stalled) s.destroy();
    for (const r of readers) r.res?.destroy();
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    await mosquitto?.dispose();
    await influxd?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

  it('drops the stalled viewers, keeps the readers up to date, and writes and acknowledges every message', async () => {
    const pub = await publisher(mosquitto.url);
    const GATEWAYS = 40; // one zone each
    const PER_ROUND = 50; // windows per gateway per round: 2000 messages
    let round = 0;
    let published = 0;
    const written = () => influxd.count('presence', 'estimate');
    const base = Date.now() - 3 * 3600_000;
    /** Publishes one round (the next PER_ROUND 1-s windows of every gateway) and waits until written. */
    const publishRound = async (): Promise<number> => {
      const items = [];
      for (let s = round * PER_ROUND; s < (round + 1) * PER_ROUND; s++)
        for (let g = 0; g < GATEWAYS; g++) items.push(countsItem(countsWindow('load', `gw-${g}`, s, base + s * 1000, 1000, `zone-${g}`)));
      round++;
      const t0 = process.hrtime.bigint();
      await publishAll(pub, items);
      published += items.length;
      await until('every message of the round written', written, (n) => n === 2 * published, 120_000);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      // The stream carries the whole round before the next one (so how much it sends does not
      // depend on how fast the machine is): every reader has the round's last window of every zone.
      const last = base + (round * PER_ROUND - 1) * 1000;
      await eventually('the readers have the round', () =>
        readers.every((r) => Array.from({ length: GATEWAYS }, (_, g) => r.windows.has(`load/zone-${g}/${last}`)).every(Boolean)),
      );
      return ms;
    };
    try {
      // No viewer: the baseline of this run.
      const alone = await publishRound();
      const rssAlone = metric(await metrics(), 'process_resident_memory_bytes');
      // 25 readers and 25 that send the request and never read a byte.
      for (let i = 0; i < 25; i++) {
        const r = new Reader(`http://127.0.0.1:${port}/`);
        readers.push(r);
        const s = connect(port, '127.0.0.1', () => {
          s.write(`GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
          s.pause();
        });
        s.on('error', () => {});
        stalled.push(s);
      }
      await eventually('50 viewers connected', async () => metric(await metrics(), 'presence_aggregator_web_viewers') === 50);
      // The readers start from the snapshot, as the page does once its stream is open.
      await Promise.all(readers.map((r) => r.load()));
      // Messages flow until every stalled viewer has fallen behind (the kernel takes a few MB for
      // a socket nobody reads, then the 256 KiB bound) and been dropped: each round sends about
      // 600 kB of updates.
      const withViewers: number[] = [];
      while (metric(await metrics(), 'presence_aggregator_web_viewers_dropped_total') < 25) {
        if (round > 60) throw new Error(`after ${published} messages the stalled viewers are still connected`);
        withViewers.push(await publishRound());
      }
      const m = await metrics();
      expect(metric(m, 'presence_aggregator_web_viewers_dropped_total')).toBe(25);
      expect(metric(m, 'presence_aggregator_web_viewers')).toBe(25);
      // Every message written (two presence points each) and acknowledged.
      expect(await written()).toBe(2 * published);
      expect(metric(m, 'presence_aggregator_acked_total')).toBe(published);
      // Each reader, still connected, holds what the aggregator holds.
      const snap = (await (await fetch(`http://127.0.0.1:${port}/api/recent`)).json()) as Snapshot;
      expect(snap.zones).toHaveLength(GATEWAYS);
      await eventually('every reader holds the snapshot', () => readers.every((r) => r.matches(snap)));
      expect(readers.every((r) => !r.ended && r.updates > 0)).toBe(true);
      const rate = (ms: number) => Math.round(((PER_ROUND * GATEWAYS) / ms) * 1000);
      console.log(
        `aggregator page viewers: ${published} messages in rounds of ${PER_ROUND * GATEWAYS}, published and written: ` +
          `no viewer ${rate(alone)}/s; with 50 viewers (25 stalled until dropped) ${withViewers.map(rate).join(', ')}/s; ` +
          `stalled viewers dropped after ${withViewers.length} round(s); readers got ${readers[0].updates} updates, ${readers[0].reloads} reloads; ` +
          `aggregator resident memory ${Math.round(rssAlone / 2 ** 20)} MiB after the first round, ${Math.round(metric(m, 'process_resident_memory_bytes') / 2 ** 20)} MiB at the end`,
      );
    } finally {
      await pub.endAsync();
    }
  }, 300_000);
});

function sameEntries(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
