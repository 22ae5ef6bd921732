// The crowd dashboard with calibrated and uncalibrated zones, against a real influxd: people (and
// the band people_low..people_high) only where a zone is calibrated for a radio, the count of
// devices labelled "devices (uncalibrated)" everywhere else, and nothing else when no zone is.
// Windows the gateways suppressed (privacy.min_count), through the real aggregator and a real
// Mosquitto: a calibrated zone stays calibrated when all its windows are suppressed, and a
// suppressed window is shown as suppressed, never as 0 people or as devices (uncalibrated).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { need } from './support/need.ts';
import { Influxd } from './support/influxd.ts';
import { Mosquitto } from './support/mosquitto.ts';
import type { Aggregator } from '../aggregator/aggregator.ts';
import { Calibration, parseCalibration } from '../aggregator/calibration/index.ts';
import { countsLines } from '../aggregator/messages.ts';
import { protect } from '../gateway/privacy.ts';
import type { CountsMessage, StatusMessage } from '../contract/index.ts';
import {
  InfluxQL,
  describeResult,
  flatPanels,
  intervalToMs,
  loadDashboard,
  runDashboard,
  timeRange,
  type Dashboard,
  type Panel,
  type QueryResult,
  type VariableResult,
} from '../dashboards/queries.ts';
import { calibratedAggregator, countsItem, hallCalibration, publishAll, publisher, status, statusItem, until, window } from './aggregator-helpers.ts';

/** Grafana value mappings and field config, as far as the tests read them. */
interface ValueMapping {
  type: string;
  options: Record<string, any>;
}
interface FieldConfig {
  defaults: { mappings?: ValueMapping[] };
  overrides?: Array<{ matcher: { id: string; options: string }; properties: Array<{ id: string; value: unknown }> }>;
}

/** What Grafana shows for a field's value in a panel: the text of its value mapping (value and null ones), else the number. */
function shownIn(d: Dashboard, panelTitle: RegExp, field: string, value: unknown): string {
  const p = flatPanels(d).find((x) => panelTitle.test(x.title)) as Panel & { fieldConfig: FieldConfig };
  const byName = p.fieldConfig.overrides
    ?.find((o) => o.matcher.id === 'byName' && o.matcher.options === field)
    ?.properties.find((x) => x.id === 'mappings')?.value;
  for (const m of (byName ?? p.fieldConfig.defaults.mappings ?? []) as ValueMapping[]) {
    if (m.type === 'value' && value !== null && m.options[String(value)]) return m.options[String(value)].text;
    if (m.type === 'special' && value === null && m.options.match === 'null') return m.options.result.text;
  }
  return String(value);
}

const ok = need('influxd', 'influxdb', 'calibration-dashboard');
const okBroker = ok && need('mosquitto', 'mosquitto', 'calibration-dashboard (suppressed windows)');
/** Queries that count the windows the gateways suppressed: they have rows only where some window was. */
const readsSuppressed = (r: QueryResult) => /count\("suppressed"\) AS "suppressed"/.test(r.expanded);
/** The query of the gateways offline now: rows only where one is (the first suite writes no status). */
const readsOffline = (r: QueryResult) => /count\("missing"\) AS "offline"/.test(r.expanded);
const crowd = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'crowd.json'));
const cal = hallCalibration();

describe.skipIf(!ok)('crowd dashboard: calibrated people with a band, uncalibrated devices labelled as such (real influxd)', () => {
  const influx = new Influxd('calibrated');
  const end = Math.floor(Date.now() / 60_000) * 60_000;
  const start = end - 60 * 60_000;
  const run = async (database: string, select: Record<string, string | string[]> = { zone: '$__all' }) =>
    runDashboard(crowd, new InfluxQL({ url: influx.url, database }), { range: { from: start - 60_000, to: end + 60_000 }, select, dataSourceInterval: '1m' });
  let both: { variables: VariableResult[]; queries: QueryResult[] };
  let none: { variables: VariableResult[]; queries: QueryResult[] };
  const q = (r: typeof both, panelTitle: RegExp, refId: string) => r.queries.find((x) => panelTitle.test(x.panelTitle) && x.refId === refId)!;
  const keys = (r: QueryResult) => r.series.map((s) => `${s.tags?.zone ?? '*'}/${s.tags?.radio ?? '*'}`).sort();

  beforeAll(async () => {
    await influx.start();
    await influx.query('CREATE DATABASE "uncalibrated"', 'POST');
    await influx.query('CREATE DATABASE "before_marker"', 'POST');
    const withPeople: string[] = [];
    const without: string[] = [];
    for (let i = 0; i < 60; i++) {
      for (const [gw, zone] of [
        ['gw-h', 'hall'],
        ['gw-g', 'gate'],
      ]) {
        const m = window('station', gw, i, start + i * 60_000, 60_000, zone);
        withPeople.push(...countsLines(m, Date.parse(m.start), cal));
        without.push(...countsLines(m, Date.parse(m.start), null));
      }
    }
    expect(withPeople.join('\n')).toContain('people=');
    expect(withPeople.join('\n')).toContain(' calibrated=T,');
    for (const [db, lines] of [
      ['calibrated', withPeople],
      ['uncalibrated', without],
      // Points written before the aggregator marked calibrated points: people, no `calibrated`.
      ['before_marker', withPeople.map((l) => l.replace(' calibrated=T,', ' '))],
    ] as const) {
      const res = await fetch(`${influx.url}/write?db=${db}&precision=ms`, { method: 'POST', body: lines.join('\n') });
      expect(res.status).toBe(204);
    }
    both = await run('calibrated');
    none = await run('uncalibrated');
  }, 60_000);
  afterAll(async () => {
    await influx.dispose();
  });

  it('finds the calibrated zones per radio', () => {
    const v = (r: typeof both, n: string) => r.variables.find((x) => x.name === n)!.values;
    expect(v(both, 'calibrated_wifi')).toEqual(['hall']);
    expect(v(both, 'calibrated_ble')).toEqual([]);
    expect(v(none, 'calibrated_wifi')).toEqual([]);
  });

  it('finds a zone with people as calibrated in points written before the calibrated marker', async () => {
    const old = await run('before_marker');
    expect(old.variables.find((x) => x.name === 'calibrated_wifi')!.values).toEqual(['hall']);
    expect(keys(q(old, /^Now per zone/, 'C'))).toEqual(['gate/ble', 'gate/wifi', 'hall/ble']);
  });

  it('every panel query returns data when one zone is calibrated (those of suppressed windows: none here)', () => {
    expect(both.queries.filter((x) => x.error || (x.rows === 0 && !readsSuppressed(x) && !readsOffline(x))).map(describeResult)).toEqual([]);
    expect(both.queries.filter(readsSuppressed).map((x) => x.rows)).toEqual([0, 0]);
    expect(both.queries.filter(readsOffline).map((x) => x.rows)).toEqual([0]);
  });

  it('people only for the calibrated zone and radio; devices (uncalibrated) for every other zone and radio', () => {
    expect(keys(q(both, /^Now per zone/, 'A'))).toEqual(['hall/wifi']);
    expect(keys(q(both, /^Now per zone/, 'C'))).toEqual(['gate/ble', 'gate/wifi', 'hall/ble']);
    expect(keys(q(both, /^Peak devices by hour/, 'A'))).toEqual(['gate/ble', 'gate/wifi', 'hall/ble']);
    expect(keys(q(both, /^Peak people by hour/, 'A'))).toEqual(['hall/*']);
  });

  it('the band: people_low <= people <= people_high in every window of the calibrated zone', async () => {
    const hall = await run('calibrated', { zone: 'hall' });
    const band = q(hall, /people \(calibrated, with interval\)/, 'A');
    expect(keys(band)).toEqual(['*/wifi']);
    const s = band.series[0];
    const col = (c: string) => s.columns.indexOf(c);
    let rows = 0;
    for (const row of s.values) {
      if (row[col('people')] === null) continue;
      rows++;
      expect(row[col('low')] as number).toBeLessThanOrEqual(row[col('people')] as number);
      expect(row[col('high')] as number).toBeGreaterThanOrEqual(row[col('people')] as number);
      expect(row[col('low')] as number).toBeGreaterThanOrEqual(0);
    }
    expect(rows).toBe(60);
    // In the hall's panel, only BLE is uncalibrated.
    expect(keys(q(hall, /people \(calibrated, with interval\)/, 'B'))).toEqual(['*/ble']);
  });

  it('with no calibration at all: no people anywhere, every zone and radio as devices (uncalibrated)', () => {
    for (const r of none.queries.filter((x) => /"people/.test(x.expanded))) expect(r.rows, describeResult(r)).toBe(0);
    expect(keys(q(none, /^Now per zone/, 'C'))).toEqual(['gate/ble', 'gate/wifi', 'hall/ble', 'hall/wifi']);
    const others = none.queries.filter((x) => !/"people/.test(x.expanded));
    expect(others.filter((x) => x.error || (x.rows === 0 && !readsSuppressed(x) && !readsOffline(x))).map(describeResult)).toEqual([]);
  });
});

describe.skipIf(!okBroker)('crowd dashboard: windows the gateways suppressed (real aggregator, real Mosquitto, real influxd)', () => {
  // hall and quiet are calibrated on Wi-Fi, gate is not. Every gateway protects small counts (k = 5).
  // hall's last 10 windows and every window of quiet have fewer than k devices: suppressed.
  const k = 5;
  const cal = new Calibration(
    parseCalibration(`format: presence-calibration/1
estimator: { field: estimate, radio: wifi, window_s: 60 }
level: 0.9
zones:
  hall: { k: { value: 0.5, low: 0.45, high: 0.55, sd: 0.03 }, b: { value: 4, low: 3, high: 5, sd: 0.6 }, corr_kb: 0.4, residual_sd: 1.5 }
  quiet: { k: { value: 0.5, low: 0.45, high: 0.55, sd: 0.03 }, b: { value: 4, low: 3, high: 5, sd: 0.6 }, corr_kb: 0.4, residual_sd: 1.5 }
`),
  );
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let agg: Aggregator | null = null;
  const end = Math.floor(Date.now() / 60_000) * 60_000;
  const start = end - 60 * 60_000;
  const suppressedStarts = Array.from({ length: 10 }, (_, i) => start + (50 + i) * 60_000);
  const offlineAt = end - 7 * 3600_000;
  const run = async (select: Record<string, string | string[]> = { zone: '$__all' }) =>
    runDashboard(crowd, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: { from: start - 60_000, to: end + 60_000 },
      select,
      dataSourceInterval: '1m',
    });
  const q = (r: { queries: QueryResult[] }, panelTitle: RegExp, refId: string) => r.queries.find((x) => panelTitle.test(x.panelTitle) && x.refId === refId)!;
  const keys = (r: QueryResult) => r.series.map((s) => `${s.tags?.zone ?? '*'}/${s.tags?.radio ?? '*'}`).sort();
  /** [time, value] of one column of a series, null values included. */
  const column = (r: QueryResult, radio: string, c: string) => {
    const s = r.series.find((x) => x.tags?.radio === radio);
    return s ? s.values.map((row) => [row[0] as number, row[s.columns.indexOf(c)]] as const) : [];
  };
  let all: { variables: VariableResult[]; queries: QueryResult[] };

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    agg = calibratedAggregator(broker.url, influx.url, 'cal-dash-suppressed', cal);
    await agg.start();
    const few = (m: CountsMessage): CountsMessage => ({
      ...m,
      wifi: { ...m.wifi, frames: 40, devices: 2, estimate: 1 },
      ble: { ...m.ble, frames: 30, devices: 3, estimate: 2 },
    });
    // gate's gateway drops 6 Wi-Fi and 3 BLE frames (bad FCS / CRC) in every window
    const withRejected = (m: CountsMessage): CountsMessage => ({ ...m, wifi: { ...m.wifi, rejected: 6 }, ble: { ...m.ble, rejected: 3 } });
    const msgs: CountsMessage[] = [];
    for (let i = 0; i < 60; i++) {
      const t = start + i * 60_000;
      const hall = window('station', 'gw-h', i, t, 60_000, 'hall');
      msgs.push(
        protect(i < 50 ? hall : few(hall), { minCount: k, windowMs: 60_000 }),
        protect(few(window('station', 'gw-q', i, t, 60_000, 'quiet')), { minCount: k, windowMs: 60_000 }),
        protect(withRejected(window('station', 'gw-g', i, t, 60_000, 'gate')), { minCount: k, windowMs: 60_000 }),
      );
    }
    // Another site (after "station", so not the dashboards' default): a gateway without small-count
    // protection that heard nobody, whose 0 is a count.
    for (let i = 0; i < 5; i++) {
      const w = window('yard', 'gw-y', i, start + i * 60_000, 60_000, 'lane');
      msgs.push({ ...w, wifi: { ...w.wifi, frames: 3, devices: 0, estimate: 0 }, ble: { ...w.ble, frames: 2, devices: 0, estimate: 0 } });
    }
    // ... and one that restarted in its third minute: that window is cut in two, both cut short.
    for (const [seq, at, len] of [
      [0, 0, 60],
      [1, 60, 60],
      [2, 120, 20],
      [3, 160, 20],
      [4, 180, 60],
      [5, 240, 60],
    ])
      msgs.push({ ...window('yard', 'gw-r', seq, start + at * 1000, len * 1000, 'dock'), complete: len === 60 });
    // Status: gw-g online now; gw-old online until 7 hours ago, then offline (before a 6-hour range).
    const statuses: StatusMessage[] = [
      status('station', 'gw-g', new Date(end)),
      status('station', 'gw-h', new Date(end)),
      status('station', 'gw-q', new Date(end)),
      status('station', 'gw-old', new Date(offlineAt - 60_000)),
      { v: 1, site: 'station', gateway: 'gw-old', state: 'offline', ts: new Date(offlineAt).toISOString() },
      // gate's second gateway went offline half an hour ago
      { ...status('station', 'gw-g2', new Date(end - 40 * 60_000)), zone: 'gate' },
      { v: 1, site: 'station', zone: 'gate', gateway: 'gw-g2', state: 'offline', ts: new Date(end - 30 * 60_000).toISOString() },
      status('yard', 'gw-y', new Date(end)),
      status('yard', 'gw-r', new Date(end)),
    ];
    const pub = await publisher(broker.url);
    try {
      await publishAll(pub, [...msgs.map(countsItem), ...statuses.map(statusItem)]);
    } finally {
      await pub.endAsync();
    }
    await until(
      'all 382 points in influxd',
      () => influx.count('presence', 'estimate'),
      (n) => n === 2 * msgs.length,
    );
    await until(
      'the 9 status points in influxd',
      () => influx.count('gateway_status', 'up'),
      (n) => n === statuses.length,
    );
    all = await run();
  }, 60_000);
  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it('the aggregator marks every Wi-Fi point of the calibrated zones calibrated, suppressed or not; suppressed ones get no people', async () => {
    const rows = await influx.rows(`SELECT "calibrated", "people", "suppressed", "estimate" FROM "presence" WHERE "radio" = 'wifi' GROUP BY "zone"`);
    const of = (zone: string) => rows.filter((r) => r.zone === zone);
    for (const zone of ['hall', 'quiet']) expect(of(zone).map((r) => r.calibrated)).toEqual(Array(60).fill(true));
    expect(of('gate').map((r) => r.calibrated)).toEqual(Array(60).fill(null));
    expect(of('quiet').map((r) => [r.suppressed, r.estimate, r.people])).toEqual(Array(60).fill([true, 0, null]));
    expect(
      of('hall')
        .filter((r) => r.suppressed)
        .map((r) => [r.time, r.people]),
    ).toEqual(suppressedStarts.map((t) => [t, null]));
    expect(
      (await influx.rows(`SELECT "calibrated" FROM "presence" WHERE "radio" = 'ble'`)).filter((r) => r.calibrated !== null),
      'BLE is not calibrated',
    ).toEqual([]);
  });

  it('lists a calibrated zone whose windows in the range were all suppressed as calibrated', async () => {
    const v = (r: typeof all, n: string) => r.variables.find((x) => x.name === n)!.values;
    expect(v(all, 'calibrated_wifi')).toEqual(['hall', 'quiet']);
    expect(v(all, 'calibrated_ble')).toEqual([]);
    // Only the suppressed windows in the range: still calibrated.
    const late = await runDashboard(crowd, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: { from: suppressedStarts[0], to: end },
      select: { zone: '$__all' },
      dataSourceInterval: '1m',
    });
    expect(v(late, 'calibrated_wifi')).toEqual(['hall', 'quiet']);
    // Now per zone: no counted window of hall or quiet in this range, so no devices tile for them.
    expect(keys(q(late, /^Now per zone/, 'C'))).toEqual(['gate/ble', 'gate/wifi']);
  });

  it('never shows the calibrated radio of an all-suppressed zone as devices (uncalibrated); says "suppressed (< k)" instead', () => {
    expect(keys(q(all, /^Peak devices by hour/, 'A'))).toEqual(['gate/ble', 'gate/wifi', 'hall/ble', 'quiet/ble']);
    // Now per zone: the devices (uncalibrated) tile is the zone's last counted window, never a
    // suppressed 0; absent where no window in the range was counted (quiet).
    const devices = q(all, /^Now per zone/, 'C');
    expect(keys(devices)).toEqual(['gate/ble', 'gate/wifi', 'hall/ble']);
    const lastCounted = (zone: string) =>
      devices.series
        .find((s) => s.tags?.zone === zone && s.tags?.radio === 'ble')!
        .values.filter((row) => row[1] !== null)
        .at(-1);
    // hall's windows 50-59 were suppressed: its last counted one is window 49 (BLE estimate 15 + 49 % 3)
    expect(lastCounted('hall')).toEqual([suppressedStarts[0] - 60_000, 16]);
    expect(lastCounted('gate')![0]).toBe(start + 59 * 60_000);
    for (const s of devices.series) for (const row of s.values) expect(row[1], `${s.tags?.zone} ${s.tags?.radio}`).not.toBe(0);
    // "Now": the zones whose last window was suppressed, one tile per zone and radio.
    const now = q(all, /^Now per zone/, 'D');
    expect(keys(now)).toEqual(['hall/ble', 'hall/wifi', 'quiet/ble', 'quiet/wifi']);
    for (const s of now.series) expect(s.values.map((row) => row[1])).toEqual([1]);
    // A zone with a gateway that is offline now gets a tile saying so: its other tiles may be older.
    const offline = q(all, /^Now per zone/, 'E');
    expect(offline.series.map((s) => [s.tags?.zone, s.values.map((row) => row[1])])).toEqual([['gate', [1]]]);
    // The calibrated zones have people only where a window was counted: quiet has none.
    expect(keys(q(all, /^Now per zone/, 'A'))).toEqual(['hall/wifi']);
    // Occupancy now: a calibrated zone whose last window was suppressed reads "suppressed (< k)", not
    // the occupancy of its last counted window.
    const occupancy = q(all, /^Occupancy now/, 'A');
    expect(
      Object.fromEntries(
        occupancy.series.map((s) => [s.tags!.zone, shownIn(crowd, /^Occupancy now/, 'x', s.values.filter((row) => row[1] !== null).at(-1)![1])]),
      ),
    ).toEqual({ hall: 'suppressed (< k)', quiet: 'suppressed (< k)' });
    // (one value per zone: its last window, the suppressed one at suppressedStarts[9])
    expect(occupancy.series.find((s) => s.tags?.zone === 'hall')!.values).toEqual([[suppressedStarts[9], -1]]);
    expect(keys(q(all, /^Peak people by hour/, 'A'))).toEqual(['hall/*']);
  });

  it('traffic: a window the gateways suppressed carries a bar "suppressed (< k)" beside its 0 devices, per corridor and per gateway', async () => {
    const traffic = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'traffic.json'));
    const r = await runDashboard(traffic, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: { from: start - 60_000, to: end + 60_000 },
      select: { site: 'station', zone: '$__all', gateway: '$__all', radio: 'wifi' },
      dataSourceInterval: '1m',
    });
    const starts = (x: QueryResult, tag: string, value: string) =>
      x.series
        .find((s) => s.tags?.[tag] === value)
        ?.values.filter((row) => row[1] !== null)
        .map((row) => row[0] as number) ?? [];
    const corridor = q(r, /^Devices per corridor \(not people\): selected range$/, 'B');
    expect(starts(corridor, 'zone', 'quiet')).toEqual(Array.from({ length: 60 }, (_, i) => start + i * 60_000));
    expect(starts(corridor, 'zone', 'hall')).toEqual(suppressedStarts);
    expect(starts(corridor, 'zone', 'gate')).toEqual([]);
    // the 0 devices the bars stand beside
    const devices = q(r, /^Devices per corridor \(not people\): selected range$/, 'A');
    expect(
      new Set(
        devices.series
          .find((s) => s.tags?.zone === 'quiet')!
          .values.filter((row) => row[1] !== null)
          .map((row) => row[1]),
      ),
    ).toEqual(new Set([0]));
    expect(starts(q(r, /^Devices per gateway/, 'B'), 'gateway', 'gw-h')).toEqual(suppressedStarts);
  });

  it('traffic: the peak gauges and the per-gateway table read "suppressed (< k)" where every window was suppressed, never 0; a counted 0 stays 0', async () => {
    const traffic = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'traffic.json'));
    const db = new InfluxQL({ url: influx.url, database: 'presence' });
    const shown = (panelTitle: RegExp, field: string, value: unknown) => shownIn(traffic, panelTitle, field, value);
    for (const radio of ['wifi', 'ble']) {
      const r = await runDashboard(traffic, db, {
        range: { from: start - 60_000, to: end + 60_000 },
        select: { site: 'station', zone: '$__all', gateway: '$__all', radio },
        dataSourceInterval: '1m',
      });
      for (const title of [/^Peak devices per corridor \(not people\): selected range$/, /^Peak devices per corridor \(not people\): one week earlier$/]) {
        const gauge = q(r, title, 'A');
        expect(gauge.error, describeResult(gauge)).toBeUndefined();
        if (/week earlier/.test(gauge.panelTitle)) {
          expect(gauge.series, 'no data a week earlier: no bars').toEqual([]);
          continue;
        }
        const peaks = Object.fromEntries(gauge.series.map((s) => [s.tags!.zone, shown(title, 'peak', s.values[0][1])]));
        // hall: its counted windows' peak (window(): Wi-Fi estimates 8-12, BLE 15-17); quiet: every window suppressed.
        expect(peaks, radio).toEqual(
          radio === 'wifi' ? { gate: '12', hall: '12', quiet: 'suppressed (< k)' } : { gate: '17', hall: '17', quiet: 'suppressed (< k)' },
        );
      }
      const table = q(r, /^Per gateway: windows, frames and peak devices$/, 'A');
      expect(table.error, describeResult(table)).toBeUndefined();
      const rows = Object.fromEntries(
        table.series.map((s) => [
          s.tags!.gateway,
          Object.fromEntries(s.columns.filter((c) => c !== 'time').map((c, i) => [c, shown(/^Per gateway: windows/, c, s.values[0][i + 1])])),
        ]),
      );
      expect(rows['gw-q'], radio).toEqual({
        windows: '60',
        'cut short': '0',
        'suppressed windows (< k)': '60',
        frames: '0',
        'peak devices': 'suppressed (< k)',
      });
      expect(rows['gw-h']).toMatchObject({ windows: '60', 'suppressed windows (< k)': '10', 'peak devices': radio === 'wifi' ? '12' : '17' });
      expect(rows['gw-g']).toMatchObject({ windows: '60', 'suppressed windows (< k)': '0', 'peak devices': radio === 'wifi' ? '12' : '17' });
    }
    // A gateway without small-count protection that counted 0 devices: its peak is 0, not suppressed.
    const yard = await runDashboard(traffic, db, {
      range: { from: start - 60_000, to: end + 60_000 },
      select: { site: 'yard', zone: 'lane', gateway: '$__all', radio: 'wifi' },
      dataSourceInterval: '1m',
    });
    const gauge = q(yard, /^Peak devices per corridor \(not people\): selected range$/, 'A');
    expect(gauge.series.map((s) => [s.tags!.zone, shown(/^Peak devices per corridor/, 'peak', s.values[0][1])])).toEqual([['lane', '0']]);
    const table = q(yard, /^Per gateway: windows, frames and peak devices$/, 'A');
    expect(table.series.map((s) => s.values[0].slice(1).map((v, i) => shown(/^Per gateway: windows/, s.columns[i + 1], v)))).toEqual([
      ['5', '0', '0', '15', '0'],
    ]);
  });

  it('windows cut short (complete=false): counted apart from whole windows, so a restart inside a window does not pass for one window more', async () => {
    const db = new InfluxQL({ url: influx.url, database: 'presence' });
    const range = { from: start - 60_000, to: end + 60_000 };
    const gateways = await runDashboard(loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json')), db, {
      range,
      select: { site: 'yard', gateway: '$__all' },
      dataSourceInterval: '1m',
    });
    // One series (one tile) per gateway: every series, not one per gateway picked from them.
    const counts = (refId: string) => q(gateways, /^Windows received in range/, refId).series.map((s) => [s.tags!.gateway, s.values.map((row) => row[1])]);
    expect(counts('A')).toEqual([
      ['gw-r', [4]],
      ['gw-y', [5]],
    ]);
    expect(counts('B')).toEqual([['gw-r', [2]]]);
    const traffic = await runDashboard(loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'traffic.json')), db, {
      range,
      select: { site: 'yard', zone: 'dock', gateway: '$__all', radio: 'wifi' },
      dataSourceInterval: '1m',
    });
    const table = q(traffic, /^Per gateway: windows, frames and peak devices$/, 'A');
    expect(table.series.map((s) => [s.tags!.gateway, s.values[0][s.columns.indexOf('windows')], s.values[0][s.columns.indexOf('cut short')]])).toEqual([
      ['gw-r', 6, 2],
    ]);
  });

  it('gateways: the frames and rejected frames of a suppressed window (published as 0) carry a bar "suppressed (< k)"', async () => {
    const gateways = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));
    const r = await runDashboard(gateways, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: { from: start - 60_000, to: end + 60_000 },
      select: { site: 'station', gateway: '$__all' },
      dataSourceInterval: '1m',
    });
    for (const title of [/^Frames\/s per radio/, /^Rejected frames per/]) {
      const panel = flatPanels(gateways).find((p) => title.test(p.title))! as Panel & { fieldConfig: FieldConfig };
      const bars = q(r, title, 'B');
      expect(panel.targets?.find((t) => t.refId === 'B')?.alias, `${title}: a query of the suppressed windows`).toMatch(/ suppressed \(< k\)$/);
      const times = (gateway: string, radio: string) =>
        bars.series
          .find((s) => s.tags?.gateway === gateway && s.tags?.radio === radio)
          ?.values.filter((row) => row[1] !== null)
          .map((row) => row[0]) ?? [];
      for (const radio of ['wifi', 'ble']) {
        expect(times('gw-q', radio)).toEqual(Array.from({ length: 60 }, (_, i) => start + i * 60_000));
        expect(times('gw-h', radio)).toEqual(suppressedStarts);
        expect(times('gw-g', radio)).toEqual([]);
      }
      const o = panel.fieldConfig.overrides?.find((x) => x.matcher.id === 'byRegexp' && new RegExp(x.matcher.options).test('gw-q wifi suppressed (< k)'));
      expect(Object.fromEntries(o!.properties.map((x) => [x.id, x.value]))).toMatchObject({
        'custom.drawStyle': 'bars',
        'custom.axisPlacement': 'hidden',
        max: 1,
      });
    }
  });

  it('gateways: rejected frames are a rate, per minute, the same whatever the range (and so the interval)', async () => {
    const gateways = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));
    const db = new InfluxQL({ url: influx.url, database: 'presence' });
    for (const [from, interval] of [
      [start, '1m'],
      [end - 48 * 3600_000, '5m'],
    ] as const) {
      const r = await runDashboard(gateways, db, { range: { from, to: end }, select: { site: 'station', gateway: 'gw-g' }, dataSourceInterval: '1m' });
      const rejected = q(r, /^Rejected frames per/, 'A');
      expect(rejected.interval).toBe(interval);
      const ms = intervalToMs(interval);
      for (const [radio, perWindow] of [
        ['wifi', 6],
        ['ble', 3],
      ] as const) {
        // the intervals wholly inside gate's hour of windows
        const inner = rejected.series
          .find((s) => s.tags?.radio === radio)!
          .values.filter((row) => (row[0] as number) >= start && (row[0] as number) + ms <= end)
          .map((row) => row[1]);
        expect(inner.length, `${radio} over ${interval}`).toBeGreaterThanOrEqual(10);
        expect(new Set(inner), `${radio} over ${interval}`).toEqual(new Set([perWindow]));
      }
    }
    expect(flatPanels(gateways).find((p) => /^Rejected frames per/.test(p.title))!.title).toMatch(/per minute/);
    // The source errors panel points there: it had said rejected frames were not stored, so not shown.
    const errors = (flatPanels(gateways).find((p) => /^Source errors/.test(p.title)) as { description?: string }).description;
    expect(errors).not.toMatch(/not stored/);
    expect(errors).toMatch(/stored per window and radio \(rejected, from the counts messages\) and shown in "Rejected frames per minute, per radio"/);
  });

  it('gateways: a gateway that reported its status in the range but sent no window shows 0 whole windows, not nothing', async () => {
    const gateways = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));
    const r = await runDashboard(gateways, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: { from: start - 60_000, to: end + 60_000 },
      select: { site: 'station', gateway: '$__all' },
      dataSourceInterval: '1m',
    });
    // One series (one tile) per gateway, each with its whole windows: a query of two measurements
    // gave two series per gateway (InfluxQL keeps measurements apart, even in an outer query).
    const windows = q(r, /^Windows received in range/, 'A').series.map((s) => [s.tags!.gateway, s.values.map((row) => row[1])]);
    // gw-g2 (status only, online then offline half an hour ago) sent none; gw-old's status is before the range
    expect(windows).toEqual([
      ['gw-g', [60]],
      ['gw-g2', [0]],
      ['gw-h', [60]],
      ['gw-q', [60]],
    ]);
  });

  it('traffic: a corridor with a gateway offline now says so, also when it went offline before the range; the others read none', async () => {
    const traffic = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'traffic.json'));
    const db = new InfluxQL({ url: influx.url, database: 'presence' });
    const panel = flatPanels(traffic).find((p) => /^Gateways offline or silent now/.test(p.title)) as Panel & {
      fieldConfig: { defaults: { noValue?: string } };
    };
    expect(panel.fieldConfig.defaults.noValue).toBe('none');
    // gate's second gateway went offline half an hour ago: inside a 6-hour range, before a 10-minute one
    for (const from of ['now-6h', 'now-10m']) {
      const r = await runDashboard(traffic, db, {
        range: timeRange(from, 'now'),
        select: { site: 'station', zone: '$__all', gateway: '$__all', radio: 'wifi' },
        dataSourceInterval: '1m',
      });
      const offline = q(r, /^Gateways offline or silent now/, 'A');
      expect(offline.error, describeResult(offline)).toBeUndefined();
      expect(
        offline.series.map((s) => [s.tags?.zone, s.values.map((row) => row[1])]),
        from,
      ).toEqual([['gate', [1]]]);
      expect(panel.targets?.[0].alias).toBe('$tag_zone gateways offline or silent');
    }
    // a corridor whose gateways all report: no tile, so the panel reads "none"
    const quiet = await runDashboard(traffic, db, {
      range: timeRange('now-6h', 'now'),
      select: { site: 'station', zone: ['hall', 'quiet'], gateway: '$__all', radio: 'wifi' },
      dataSourceInterval: '1m',
    });
    expect(q(quiet, /^Gateways offline or silent now/, 'A').series).toEqual([]);
  });

  it('gateways: a gateway that went offline before the range is still listed as offline, with when it was last seen', async () => {
    const gateways = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));
    const r = await runDashboard(gateways, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: timeRange('now-6h', 'now'),
      select: { site: 'station', gateway: '$__all' },
      dataSourceInterval: '1m',
    });
    expect(r.variables.find((v) => v.name === 'gateway')!.values).toEqual(['gw-g', 'gw-g2', 'gw-h', 'gw-old', 'gw-q']);
    const last = (title: RegExp) =>
      Object.fromEntries(
        q(r, title, 'A')
          .series.filter((s) => s.values.length)
          .map((s) => [s.tags!.gateway, s.values.at(-1)!] as const),
      );
    // the stat maps up 0 / 1 to offline / online
    expect(last(/^Online now$/)).toMatchObject({ 'gw-g': [end, 1], 'gw-old': [offlineAt, 0] });
    expect(last(/^Last seen$/)).toMatchObject({ 'gw-g': [end, 1], 'gw-old': [offlineAt, 0] });
  });

  it('draws a suppressed window as suppressed, never as 0 people: a gap in the people, a bar "suppressed (< k)"', async () => {
    const quiet = await run({ zone: 'quiet' });
    const panel = /people \(calibrated, with interval\)/;
    expect(
      q(quiet, panel, 'A')
        .series.flatMap((s) => s.values.map((row) => row[1]))
        .filter((x) => x !== null),
    ).toEqual([]);
    expect(keys(q(quiet, panel, 'B'))).toEqual(['*/ble']);
    const bars = q(quiet, panel, 'C');
    expect(keys(bars)).toEqual(['*/ble', '*/wifi']);
    expect(column(bars, 'wifi', 'suppressed').map(([t]) => t)).toEqual(Array.from({ length: 60 }, (_, i) => start + i * 60_000));

    const hall = await run({ zone: 'hall' });
    const people = new Map(column(q(hall, panel, 'A'), 'wifi', 'people'));
    expect(suppressedStarts.map((t) => people.get(t))).toEqual(Array(10).fill(null));
    const counted = [...people].filter(([t]) => t >= start && t < suppressedStarts[0]);
    expect(counted).toHaveLength(50);
    for (const [, p] of counted) expect(p).toBeGreaterThan(0);
    expect(column(q(hall, panel, 'C'), 'wifi', 'suppressed').map(([t]) => t)).toEqual(suppressedStarts);
    // No people query of the dashboard returns 0 people anywhere: every counted window here has
    // people above 0 (a band's low end may be 0), the only 0 counts are the suppressed ones.
    for (const r of [...all.queries, ...quiet.queries, ...hall.queries].filter((x) => /"people"/.test(x.expanded)))
      for (const s of r.series) for (const row of s.values) expect(row[1], describeResult(r)).not.toBe(0);
  });

  it('every panel query returns data', () => {
    expect(all.queries.filter((x) => x.error || x.rows === 0).map(describeResult)).toEqual([]);
  });
});
