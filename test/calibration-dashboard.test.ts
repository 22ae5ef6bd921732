// The crowd dashboard with calibrated and uncalibrated zones, against a real influxd: people (and
// the band people_low..people_high) only where a zone is calibrated for a radio, the count of
// devices labelled "devices (uncalibrated)" everywhere else, and nothing else when no zone is.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { need } from './support/need.ts';
import { Influxd } from './support/influxd.ts';
import { countsLines } from '../aggregator/messages.ts';
import { InfluxQL, describeResult, loadDashboard, runDashboard, type QueryResult, type VariableResult } from '../dashboards/queries.ts';
import { hallCalibration, window } from './aggregator-helpers.ts';

const ok = need('influxd', 'influxdb', 'calibration-dashboard');
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
    for (const [db, lines] of [
      ['calibrated', withPeople],
      ['uncalibrated', without],
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

  it('every panel query returns data when one zone is calibrated', () => {
    expect(both.queries.filter((x) => x.error || x.rows === 0).map(describeResult)).toEqual([]);
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
    expect(others.filter((x) => x.error || x.rows === 0).map(describeResult)).toEqual([]);
  });
});
