// `presence influx setup` against a real influxd 1.6.7: the database, the retention policies "detail"
// (DEFAULT, 30d) and "hourly" (400d) with their durations as SHOW RETENTION POLICIES reports them,
// detail older than 30 days refused on write, the continuous query, idempotence (a second run, and a run with other durations), 1-minute points
// written as the aggregator writes them (no policy named) landing in detail and read back by a
// query that names no policy (as the dashboards' do), and the continuous query's body turning them
// into the hourly aggregates. (The fixture runs influxd with the continuous-query service off, so the
// test runs the query's SELECT ... INTO itself, for two whole hours.)
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { need } from './support/need.ts';
import { Influxd } from './support/influxd.ts';
import { DETAIL_RP, HOURLY_CQ, HOURLY_GROUP_BY, HOURLY_RP, hourlySelect, InfluxQl, setupInflux1, setupStatements } from '../aggregator/influx-setup.ts';
import { countsLines } from '../aggregator/messages.ts';
import type { CountsMessage } from '../contract/index.ts';
import { buildProgram } from '../scripts/cli.ts';

const SUITE = 'presence influx setup';
const ok = need('influxd', 'influxdb', SUITE);
const DAY = 86_400_000;
const HOUR = 3_600_000;

describe('influx setup statements', () => {
  it('creates what is missing, alters what exists, recreates the continuous query', () => {
    const o = { url: 'http://x', database: 'presence', detailMs: 30 * DAY, hourlyMs: 400 * DAY };
    expect(setupStatements(o, { policies: new Map(), cqs: new Set() }).slice(0, 3)).toEqual([
      'CREATE DATABASE "presence"',
      'CREATE RETENTION POLICY "detail" ON "presence" DURATION 30d REPLICATION 1 DEFAULT',
      'CREATE RETENTION POLICY "hourly" ON "presence" DURATION 400d REPLICATION 1',
    ]);
    const again = setupStatements(
      { ...o, detailMs: 36 * HOUR },
      {
        policies: new Map([
          ['detail', 30 * DAY],
          ['hourly', 400 * DAY],
        ]),
        cqs: new Set([HOURLY_CQ]),
      },
    );
    expect(again.slice(1, 4)).toEqual([
      // shorter than 7 days: with the shard duration InfluxDB gives a new policy that long (a 168h shard refused 2h)
      'ALTER RETENTION POLICY "detail" ON "presence" DURATION 36h SHARD DURATION 1h DEFAULT',
      'ALTER RETENTION POLICY "hourly" ON "presence" DURATION 400d',
      'DROP CONTINUOUS QUERY "presence_hourly" ON "presence"',
    ]);
    expect(again[4]).toMatch(
      /^CREATE CONTINUOUS QUERY "presence_hourly" ON "presence" RESAMPLE FOR 1d BEGIN SELECT .* INTO "presence"."hourly"."presence" FROM "presence"."detail"."presence" GROUP BY time\(1h\), \* END$/,
    );
    expect(() => setupStatements({ ...o, detailMs: HOUR }, { policies: new Map(), cqs: new Set() })).toThrow(/at least 2h/);
    // past InfluxDB's 64-bit nanoseconds: 99999999d was stored as 1923246h25m3.9s without a word
    expect(setupStatements({ ...o, hourlyMs: 106_751 * DAY }, { policies: new Map(), cqs: new Set() })[2]).toContain('DURATION 106751d');
    expect(() => setupStatements({ ...o, hourlyMs: 99_999_999 * DAY }, { policies: new Map(), cqs: new Set() })).toThrow(
      'a retention must be at most 106751d (about 292 years: InfluxDB keeps a duration in 64-bit nanoseconds)',
    );
    // so far past it that it is no whole number of hours in a double: still "at most", not "whole hours"
    expect(() => setupStatements({ ...o, hourlyMs: 1e20 * DAY }, { policies: new Map(), cqs: new Set() })).toThrow('a retention must be at most 106751d');
  });
});

describe.skipIf(!ok)(SUITE, () => {
  const influx = new Influxd('city');
  beforeAll(async () => {
    await influx.start();
  });
  afterAll(async () => {
    await influx.dispose();
  });

  const policies = async (db: string) => {
    const rows = await influx.rows(`SHOW RETENTION POLICIES ON "${db}"`);
    return Object.fromEntries(rows.map((r) => [r.name as string, { duration: r.duration, default: r.default }]));
  };

  it('creates the database, detail (30d, default) and hourly (400d) and the continuous query; a second run changes nothing', async () => {
    const o = { url: influx.url, database: 'presence_city', detailMs: 30 * DAY, hourlyMs: 400 * DAY };
    await setupInflux1(o);
    const first = await policies('presence_city');
    expect(first[DETAIL_RP]).toEqual({ duration: '720h0m0s', default: true });
    expect(first[HOURLY_RP]).toEqual({ duration: '9600h0m0s', default: false });
    await setupInflux1(o);
    expect(await policies('presence_city')).toEqual(first);
    const cqs = await new InfluxQl(o).continuousQueries('presence_city');
    expect([...cqs.keys()]).toEqual([HOURLY_CQ]);
    expect(cqs.get(HOURLY_CQ)).toContain('INTO presence_city.hourly.presence FROM presence_city.detail.presence');
    // Every run recomputes the last day: windows written after their hour ended (a gateway's queue
    // after an outage) reach the hourly aggregates too.
    expect(cqs.get(HOURLY_CQ)).toContain(' ON presence_city RESAMPLE FOR 1d BEGIN ');
    // Other durations: altered in place, still one continuous query.
    await setupInflux1({ ...o, detailMs: 7 * DAY, hourlyMs: 800 * DAY });
    const changed = await policies('presence_city');
    expect(changed[DETAIL_RP]).toEqual({ duration: '168h0m0s', default: true });
    expect(changed[HOURLY_RP]).toEqual({ duration: '19200h0m0s', default: false });
    // Shortened below its shards (30d made 24h shards, 7d kept them): InfluxDB refused 2h ('retention policy duration must be greater than the shard duration')
    await setupInflux1({ ...o, detailMs: 2 * HOUR, hourlyMs: 800 * DAY });
    expect((await policies('presence_city'))[DETAIL_RP]).toEqual({ duration: '2h0m0s', default: true });
    expect([...(await new InfluxQl(o).continuousQueries('presence_city')).keys()]).toEqual([HOURLY_CQ]);
    // Lengthened again: the shards InfluxDB gives a new policy that long (1d for 30d), not the 1h of
    // the 2h policy kept (720 shard groups over 30 days instead of 30).
    await setupInflux1({ ...o, detailMs: 30 * DAY, hourlyMs: 800 * DAY });
    const shards = async () =>
      Object.fromEntries((await influx.rows(`SHOW RETENTION POLICIES ON "presence_city"`)).map((r) => [r.name as string, r.shardGroupDuration]));
    expect(await shards()).toMatchObject({ [DETAIL_RP]: '24h0m0s', [HOURLY_RP]: '168h0m0s' });
    await setupInflux1({ ...o, detailMs: 2 * HOUR, hourlyMs: 800 * DAY });
    await setupInflux1({ ...o, detailMs: 200 * DAY, hourlyMs: 800 * DAY });
    expect(await shards()).toMatchObject({ [DETAIL_RP]: '168h0m0s' });
    // A policy long already keeps the shards it has (one an operator chose).
    await new InfluxQl(o).run('ALTER RETENTION POLICY "detail" ON "presence_city" SHARD DURATION 2d');
    await setupInflux1({ ...o, detailMs: 300 * DAY, hourlyMs: 800 * DAY });
    expect(await shards()).toMatchObject({ [DETAIL_RP]: '48h0m0s' });
  });

  it('on a database that exists (the fixture made it): 1-minute counts land in detail, a query naming no policy reads them, the CQ body makes the hourly aggregates', async () => {
    await setupInflux1({ url: influx.url, database: 'city', detailMs: 30 * DAY, hourlyMs: 400 * DAY });
    expect((await policies('city'))[DETAIL_RP]).toEqual({ duration: '720h0m0s', default: true });
    // Two whole hours of 1-minute windows, two gateways, written as the aggregator writes them.
    const h0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const lines: string[] = [];
    const expected = new Map<string, { devices: number[]; estimate: number[]; frames: number }>();
    for (const gateway of ['gw-1', 'gw-2']) {
      for (let i = 0; i < 120; i++) {
        const start = h0 + i * 60_000;
        const devices = 10 + ((i * 7 + (gateway === 'gw-2' ? 3 : 0)) % 23);
        const estimate = Math.round(devices / 2);
        const m: CountsMessage = {
          v: 1,
          site: 'utrecht',
          zone: 'neude',
          gateway,
          seq: i,
          start: new Date(start).toISOString(),
          end: new Date(start + 60_000).toISOString(),
          complete: true,
          wifi: { frames: 100 + i, devices, estimate },
          ble: { frames: 50, devices: 5, estimate: 5 },
        };
        lines.push(...countsLines(m));
        const key = `${gateway} ${Math.floor(i / 60)}`;
        const e = expected.get(key) ?? { devices: [], estimate: [], frames: 0 };
        e.devices.push(devices);
        e.estimate.push(estimate);
        e.frames += 100 + i;
        expected.set(key, e);
      }
    }
    const res = await fetch(`${influx.url}/write?db=city&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    // As the dashboards query: no policy named, so the default one (detail).
    expect(await influx.count('presence', 'estimate')).toBe(480);
    expect((await influx.rows('SELECT count("estimate") FROM "detail"."presence"'))[0].count).toBe(480);
    expect(await influx.rows('SELECT count("estimate") FROM "autogen"."presence"')).toEqual([]);

    // Detail older than its policy is refused (InfluxDB deletes older shards by itself; not waited for here);
    // the hourly policy takes it.
    const old = Date.now() - 31 * DAY;
    const refused = await fetch(`${influx.url}/write?db=city&precision=ms`, {
      method: 'POST',
      body: `presence,site=s,zone=z,gateway=g,radio=wifi devices=1i ${old}`,
    });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('points beyond retention policy dropped=1');
    const kept = await fetch(`${influx.url}/write?db=city&rp=hourly&precision=ms`, {
      method: 'POST',
      body: `presence,site=s,zone=z,gateway=g,radio=wifi devices=1 ${old}`,
    });
    expect(kept.status).toBe(204);

    await influx.query(`${hourlySelect('city')} WHERE time >= ${h0}ms AND time < ${h0 + 2 * HOUR}ms ${HOURLY_GROUP_BY}`, 'POST');
    const hourly = await influx.rows(`SELECT * FROM "city"."hourly"."presence" WHERE "radio" = 'wifi' AND time >= ${h0}ms GROUP BY "gateway"`);
    expect(hourly.length).toBe(4);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    for (const row of hourly) {
      const e = expected.get(`${row.gateway} ${Math.round((row.time - h0) / HOUR)}`)!;
      expect(row.time === h0 || row.time === h0 + HOUR).toBe(true);
      expect(row.devices).toBeCloseTo(mean(e.devices), 9);
      expect(row.devices_max).toBe(Math.max(...e.devices));
      expect(row.estimate).toBeCloseTo(mean(e.estimate), 9);
      expect(row.estimate_max).toBe(Math.max(...e.estimate));
      expect(row.frames).toBe(e.frames);
      expect(row.windows).toBe(60);
      expect(row.site).toBe('utrecht');
      expect(row.zone).toBe('neude');
    }
  });

  it('is the command `presence influx setup`, registered in the CLI', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
    try {
      const argv = ['node', 'presence', 'influx', 'setup', '--influx-url', influx.url, '--influx-db', 'from_cli', '--detail', '14d'];
      await (await buildProgram(argv)).parseAsync(argv);
    } finally {
      spy.mockRestore();
    }
    expect(out.join('')).toContain('database from_cli at');
    expect((await policies('from_cli'))[DETAIL_RP]).toEqual({ duration: '336h0m0s', default: true });
    expect((await policies('from_cli'))[HOURLY_RP]).toEqual({ duration: '9600h0m0s', default: false });
  });
});
