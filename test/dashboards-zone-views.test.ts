// What the crowd dashboard draws for a zone, against what the aggregator wrote and shows on its page
// (real Mosquitto, real aggregator, real influxd):
// - a calibrated zone with two gateways: the people line is the larger of their people in each
//   window, and its band is that count's own interval (its people_low and people_high), as on the
//   aggregator's page, not the lowest low of any gateway of the zone;
// - "Now per zone" and the occupancy gauge: the zone's last window, as on the page, whatever the
//   range (not the largest of the windows of the range's last step of several minutes);
// - the hourly heat maps: an hour without any window has no cell, a counted 0 has one;
// - a gateway whose windows stopped while it goes on sending its status (a live process whose
//   counts no longer come): the page says missing, and so do the gateways dashboard's "Online now"
//   and "Missing windows" and the crowd dashboard's "Now per zone", after every later status too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { need } from './support/need.ts';
import { Influxd } from './support/influxd.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import type { CountsMessage, StatusMessage } from '../contract/index.ts';
import { InfluxQL, describeResult, flatPanels, loadDashboard, runDashboard, type QueryResult } from '../dashboards/queries.ts';
import { calibratedAggregator, countsItem, hallCalibration, publishAll, publisher, status, statusItem, until, window } from './aggregator-helpers.ts';

const ok = need('influxd', 'influxdb', 'dashboards-zone-views') && need('mosquitto', 'mosquitto', 'dashboards-zone-views');
const crowd = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'crowd.json'));

interface RecentPeople {
  value: number;
  low: number;
  high: number;
}

describe.skipIf(!ok)('crowd dashboard: a zone as the aggregator wrote it and shows it on its page', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let agg: Aggregator | null = null;
  const hour = 3_600_000;
  // Three whole hours back from the last full hour: hall in the first hour, gate in the first and
  // the last, nothing in the middle one.
  const end = Math.floor(Date.now() / hour) * hour;
  const start = end - 3 * hour;
  const hallWindows = 30;
  const range = { from: start, to: end - 1 };
  const run = (select: Record<string, string | string[]>) =>
    runDashboard(crowd, new InfluxQL({ url: influx.url, database: 'presence' }), { range, select, dataSourceInterval: '1m' });
  const q = (r: { queries: QueryResult[] }, panelTitle: RegExp, refId: string) => r.queries.find((x) => panelTitle.test(x.panelTitle) && x.refId === refId)!;
  let page: Map<number, RecentPeople>;
  let pageLast: { t: number; ble: number; people: number };

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    agg = calibratedAggregator(broker.url, influx.url, 'zone-views', hallCalibration());
    await agg.start();
    const withWifi = (m: CountsMessage, estimate: number, devices = estimate + 3): CountsMessage => ({ ...m, wifi: { ...m.wifi, estimate, devices } });
    const withBle = (m: CountsMessage, estimate: number): CountsMessage => ({ ...m, ble: { ...m.ble, estimate, devices: estimate + 2 } });
    const msgs: CountsMessage[] = [];
    for (let i = 0; i < hallWindows; i++) {
      const t = start + i * 60_000;
      // hall (calibrated on Wi-Fi) has two gateways: gw-h1 over the whole hall, gw-h2 at its edge,
      // which hears fewer; in every fifth window gw-h2 hears more.
      const big = 40 + (i % 7);
      const small = i % 5 === 0 ? big + 6 : 12 + (i % 3);
      // BLE (uncalibrated here) falls over the half hour
      msgs.push(
        withBle(withWifi(window('station', 'gw-h1', i, t, 60_000, 'hall'), big), 60 - i),
        withBle(withWifi(window('station', 'gw-h2', i, t, 60_000, 'hall'), small), 10),
      );
    }
    // gate (uncalibrated): windows in the first hour, then none for an hour, then windows in which
    // its gateway (no small-count protection) heard nobody: a counted 0.
    for (let i = 0; i < 10; i++) msgs.push(withWifi(window('station', 'gw-g', i, start + i * 60_000, 60_000, 'gate'), 9));
    for (let i = 0; i < 10; i++) {
      const m = window('station', 'gw-g', 100 + i, start + 2 * hour + i * 60_000, 60_000, 'gate');
      msgs.push({ ...m, wifi: { frames: 0, devices: 0, estimate: 0 }, ble: { frames: 0, devices: 0, estimate: 0 } });
    }
    const pub = await publisher(broker.url);
    try {
      await publishAll(pub, msgs.map(countsItem));
    } finally {
      await pub.endAsync();
    }
    await until(
      'every point in influxd',
      () => influx.count('presence', 'estimate'),
      (n) => n === 2 * msgs.length,
    );
    const recent = (await (await fetch(`http://127.0.0.1:${agg.httpPort}/api/recent`)).json()) as {
      zones: Array<{ zone: string; windows: Array<{ t: number; people: RecentPeople | null; ble: { estimate: number } }> }>;
    };
    const hall = recent.zones.find((z) => z.zone === 'hall')!;
    page = new Map(hall.windows.filter((w) => w.people).map((w) => [w.t, w.people!]));
    const last = hall.windows.reduce((a, b) => (b.t > a.t ? b : a));
    pageLast = { t: last.t, ble: last.ble.estimate, people: last.people!.value };
  }, 60_000);
  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it("the people band is the interval of the zone's count, the same as on the aggregator's page, in every window", async () => {
    expect(page.size).toBe(hallWindows);
    const r = await run({ zone: 'hall' });
    const band = q(r, /people \(calibrated, with interval\)/, 'A');
    expect(band.interval, describeResult(band)).toBe('1m');
    const s = band.series.find((x) => x.tags?.radio === 'wifi')!;
    const col = (c: string) => s.columns.indexOf(c);
    const shown = new Map(
      s.values
        .filter((row) => row[col('people')] !== null)
        .map((row) => [row[0] as number, { value: row[col('people')], low: row[col('low')], high: row[col('high')] }]),
    );
    expect(shown.size).toBe(hallWindows);
    for (const [t, p] of page) expect(shown.get(t), new Date(t).toISOString()).toEqual(p);
  });

  it("'Now per zone' and the occupancy gauge show the zone's last window, as the page does, over any range", async () => {
    // The last five minutes of the hall held more (people and BLE devices) than its last window.
    expect(pageLast).toEqual({ t: start + (hallWindows - 1) * 60_000, ble: 31, people: 18.5 });
    for (const hours of [6, 24, 24 * 7]) {
      const r = await runDashboard(crowd, new InfluxQL({ url: influx.url, database: 'presence' }), {
        range: { from: end - hours * hour, to: end - 1 },
        select: { zone: 'hall' },
        dataSourceInterval: '1m',
      });
      const last = (ref: string, radio: string, panel = /^Now per zone/) => {
        const res = q(r, panel, ref);
        const s = res.series.find((x) => (x.tags?.radio ?? radio) === radio);
        return [s?.values.at(-1), describeResult(res)] as const;
      };
      const [people, pq] = last('A', 'wifi');
      expect(people, `${hours} h: ${pq}`).toEqual([pageLast.t, pageLast.people]);
      const [ble, bq] = last('C', 'ble');
      expect(ble, `${hours} h: ${bq}`).toEqual([pageLast.t, pageLast.ble]);
      const [occupancy, oq] = last('A', 'wifi', /^Occupancy now/);
      expect(occupancy?.[1], `${hours} h: ${oq}`).toBeCloseTo((pageLast.people * 100) / 1000, 6);
    }
  });

  it('over intervals of several windows the band is that of the peak window drawn', async () => {
    // Two days on a half-width panel are drawn in 5-minute steps: the line is each step's largest
    // people, and its band that window's interval.
    const wide = await runDashboard(crowd, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: { from: end - 48 * hour, to: end - 1 },
      select: { zone: 'hall' },
      dataSourceInterval: '1m',
    });
    const band = q(wide, /people \(calibrated, with interval\)/, 'A');
    expect(band.interval, describeResult(band)).toBe('5m');
    const s = band.series.find((x) => x.tags?.radio === 'wifi')!;
    const rows = s.values.filter((row) => row[1] !== null);
    expect(rows).toHaveLength(hallWindows / 5);
    for (const [t, value, low, high] of rows) {
      const inStep = [...page].filter(([w]) => w >= (t as number) && w < (t as number) + 5 * 60_000).map(([, p]) => p);
      const peak = inStep.reduce((a, b) => (b.value > a.value ? b : a));
      expect({ value, low, high }, new Date(t as number).toISOString()).toEqual(peak);
    }
  });

  it('the hourly heat maps: an hour without windows has no cell, an hour counted 0 has a 0 cell that is drawn', async () => {
    const r = await run({ zone: '$__all' });
    const devices = q(r, /^Peak devices by hour/, 'A');
    const gateWifi = devices.series.find((x) => x.tags?.zone === 'gate' && x.tags?.radio === 'wifi')!;
    expect(gateWifi.values, describeResult(devices)).toEqual([
      [start, 9],
      [start + 2 * hour, 0],
    ]);
    const hallBle = devices.series.find((x) => x.tags?.zone === 'hall' && x.tags?.radio === 'ble')!;
    expect(hallBle.values.map((row) => row[0])).toEqual([start]);
    // Grafana's heat map hides the cells at or below filterValues.le: a 0 must stay visible.
    for (const title of [/^Peak devices by hour/, /^Peak people by hour/]) {
      const p = flatPanels(crowd).find((x) => title.test(x.title)) as { options?: { filterValues?: { le?: number } } };
      const le = p.options?.filterValues?.le;
      // (absent, Grafana's default 1e-9 applies)
      expect(le !== undefined && le < 0, `${title}: filterValues.le ${le} hides a counted 0`).toBe(true);
    }
  });
});

describe.skipIf(!ok)('a gateway whose windows stopped while its status goes on (real Mosquitto, real aggregator, real influxd)', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let agg: Aggregator;
  const gateways = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));
  const traffic = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'traffic.json'));
  const begin = Date.now() - 60_000;
  const online = (ts: number): StatusMessage => ({ ...status('station', 'gw-s', new Date(ts)), zone: 'hall' });
  const dashboard = (d: typeof crowd, select: Record<string, string | string[]>) =>
    runDashboard(d, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: { from: begin, to: Date.now() + 60_000 },
      select,
      dataSourceInterval: '1m',
    });
  const q = (r: { queries: QueryResult[] }, panelTitle: RegExp, refId: string) => r.queries.find((x) => panelTitle.test(x.panelTitle) && x.refId === refId)!;
  /** What the "Online now" stat shows for gw-s: the text its value mapping gives the last value. */
  const onlineNow = (r: { queries: QueryResult[] }) => {
    const res = q(r, /^Online now$/, 'A');
    const v = res.series.find((s) => s.tags?.gateway === 'gw-s')?.values.at(-1)?.[1];
    const panel = flatPanels(gateways).find((p) => p.title === 'Online now') as unknown as {
      fieldConfig: { defaults: { mappings: Array<{ options: Record<string, { text: string }> }> } };
    };
    return panel.fieldConfig.defaults.mappings[0].options[String(v)]?.text ?? `${v} (${describeResult(res)})`;
  };
  const pageSays = async () => {
    const recent = (await (await fetch(`http://127.0.0.1:${agg.httpPort}/api/recent`)).json()) as { gateways: Array<{ gateway: string; missing: boolean }> };
    return recent.gateways.find((g) => g.gateway === 'gw-s')?.missing;
  };

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    agg = new Aggregator({
      mqtt: { url: broker.url, clientId: 'zone-views-silent' },
      influx: { url: influx.url, api: 'v1', database: 'presence', create: true },
      batch: { flushInterval: '20ms', maxRetryDelay: '300ms' },
      http: { port: 0, host: '127.0.0.1' },
      missingAfterWindows: 2,
      missingCheckInterval: '100ms',
      logLevel: 'silent',
    });
    await agg.start();
  }, 60_000);
  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it('stays missing on the page and on both dashboards when its next status says online', async () => {
    const pub = await publisher(broker.url);
    try {
      // 1-s windows, then only status messages (a gateway republishes its status at least every status.interval)
      const t0 = Math.floor(Date.now() / 1000) * 1000 - 3000;
      await publishAll(
        pub,
        [0, 1, 2].map((i) => countsItem(window('station', 'gw-s', i, t0 + i * 1000, 1000, 'hall'))),
      );
      await publishAll(pub, [statusItem(online(Date.now()))]);
      await until(
        'the gateway recorded missing',
        () => agg.missingGateways(),
        (m) => m.includes('station/gw-s'),
        10_000,
      );
      await until(
        'its missing point written',
        () => influx.count('gateway_status', 'missing_windows', `"missing"=true`),
        (n) => n === 1,
      );
      await new Promise((r) => setTimeout(r, 50));
      await publishAll(pub, [statusItem(online(Date.now()))]);
      await until(
        'both status points written',
        () => influx.count('gateway_status', 'up'),
        (n) => n === 2,
      );
    } finally {
      await pub.endAsync();
    }
    expect(await pageSays()).toBe(true);

    const g = await dashboard(gateways, { site: 'station', gateway: '$__all' });
    const silent = q(g, /^Missing windows/, 'A').series.find((s) => s.tags?.gateway === 'gw-s')!;
    const col = silent.columns.indexOf('silent');
    const values = silent.values.map((row) => row[col]).filter((v) => v !== null);
    expect(values.at(-1), describeResult(q(g, /^Missing windows/, 'A'))).toBe(true);
    // ... as the panel's description says (it had said that every status message records it as reporting)
    const described = (flatPanels(gateways).find((p) => /^Missing windows/.test(p.title)) as { description?: string }).description;
    expect(described).toMatch(/A status message does not mark a silent gateway as reporting/);
    expect(described).not.toMatch(/every status message records it as reporting/);

    // "Online now" reads "missing" (its value mapping of -1), as the page does, not "online"
    expect(onlineNow(g)).toBe('missing');

    const c = await dashboard(crowd, { site: 'station', zone: '$__all' });
    const tile = q(c, /^Now per zone/, 'E');
    expect(
      tile.series.map((s) => [s.tags?.zone, s.values.at(-1)?.[1]]),
      describeResult(tile),
    ).toEqual([['hall', 1]]);
    // ... and so does the traffic dashboard's tile of the corridor
    const t = q(await dashboard(traffic, { site: 'station', zone: '$__all', gateway: '$__all', radio: 'wifi' }), /^Gateways offline or silent now/, 'A');
    expect(
      t.series.map((s) => [s.tags?.zone, s.values.at(-1)?.[1]]),
      describeResult(t),
    ).toEqual([['hall', 1]]);

    // Its next window brings it back everywhere.
    const back = await publisher(broker.url);
    try {
      await publishAll(back, [countsItem(window('station', 'gw-s', 9, Math.floor(Date.now() / 1000) * 1000, 1000, 'hall'))]);
      await publishAll(back, [statusItem(online(Date.now() + 20))]);
    } finally {
      await back.endAsync();
    }
    await until('the page says back', pageSays, (m) => m === false);
    await until(
      'the status written',
      () => influx.count('gateway_status', 'up'),
      (n) => n === 3,
    );
    const again = await dashboard(crowd, { site: 'station', zone: '$__all' });
    expect(q(again, /^Now per zone/, 'E').series).toEqual([]);
    expect(
      q(await dashboard(traffic, { site: 'station', zone: '$__all', gateway: '$__all', radio: 'wifi' }), /^Gateways offline or silent now/, 'A').series,
    ).toEqual([]);
    expect(onlineNow(await dashboard(gateways, { site: 'station', gateway: '$__all' }))).toBe('online');
  });
});
