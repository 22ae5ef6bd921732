// A gateway whose clock runs an hour behind, with a real Mosquitto and influxd: its windows are not
// refused (a window in the past is what a queue sends after an outage), so they were stored an hour
// in the past and the dashboards showed the gateway silent now, with nothing saying why. Its live
// statuses, stamped by its clock and never delivered before they were sent, tell: one warn line
// once they have come an hour late over a few minutes. A status late once (a backlog after the
// aggregator was away) or a burst of them is not a clock. The aggregator's clock is moved forward
// between the statuses (Date.now), so the minutes pass in seconds. A gateway days behind that comes
// back after its offline last will: once its clock is judged behind its status points are stamped by
// the aggregator's clock, so the gateways and traffic dashboards' own InfluxQL reads it online.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { encode, offlineStatus, statusTopic } from '../contract/index.ts';
import { InfluxQL, describeResult, loadDashboard, runDashboard, timeRange, type QueryResult } from '../dashboards/queries.ts';
import { publisher, status, until } from './aggregator-helpers.ts';

const gatewaysDashboard = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));
const trafficDashboard = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'traffic.json'));

const ok = need('mosquitto', 'mosquitto', 'aggregator-clock-skew') && need('influxd', 'influxdb', 'aggregator-clock-skew');
const HOUR = 3_600_000;

describe.skipIf(!ok)('aggregator: a gateway clock behind', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let pub: MqttClient;
  let agg: Aggregator;
  const lines: Array<{ msg: string; level: number; gateway?: string; behind_s?: number }> = [];
  const clock = { offset: 0 };

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    await influx.query('CREATE DATABASE "presence"', 'POST');
    pub = await publisher(broker.url);
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + clock.offset);
    agg = new Aggregator(
      {
        mqtt: { url: broker.url, clientId: 'agg-skew' },
        influx: { url: influx.url, api: 'v1', database: 'presence' },
        batch: { flushInterval: '50ms', maxRetryDelay: '300ms' },
        http: { port: 0 }, // the page's store (agg.recent): what the page shows of each gateway
      },
      {
        logger: pino(
          { level: 'warn' },
          new Writable({
            write(c, _e, cb) {
              lines.push(JSON.parse(String(c)));
              cb();
            },
          }),
        ),
      },
    );
    await agg.start();
  });

  afterAll(async () => {
    vi.restoreAllMocks();
    await agg?.stop(2000).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  const skewLines = (gateway: string) => lines.filter((l) => l.gateway === gateway && l.msg.includes('behind this aggregator'));
  const written = (gateway: string) => influx.count('gateway_status', 'uptime_s', `"gateway"='${gateway}'`);

  it('one line for statuses an hour late over three minutes; none for a late one among timely ones, nor for a burst of late ones', async () => {
    let sent = 0;
    const send = async (gateway: string, lateMs: number) => {
      await pub.publishAsync(statusTopic('skew', gateway), encode(status('skew', gateway, new Date(Date.now() - lateMs))), { qos: 1, retain: true });
      sent++;
    };
    const allWritten = async (gateway: string, n: number) =>
      until(
        `${gateway} statuses written`,
        () => written(gateway),
        (c) => c === n,
      );

    // gw-slow: an hour behind, a status every 90 s of the aggregator's clock
    // gw-ok: on time but for one status delivered 20 min late (a backlog)
    // gw-burst: three statuses 20 min late within seconds (a backlog drained), then nothing
    for (let i = 0; i < 3; i++) {
      await send('gw-slow', HOUR);
      await send('gw-ok', i === 1 ? 20 * 60_000 : 0);
      if (i === 0) for (let b = 0; b < 3; b++) await send('gw-burst', 20 * 60_000 + b * 1000);
      await allWritten('gw-slow', i + 1);
      await allWritten('gw-ok', i + 1);
      if (i < 2) clock.offset += 90_000;
    }
    await send('gw-slow', HOUR);
    await allWritten('gw-slow', 4);
    await allWritten('gw-burst', 3);
    expect(sent).toBe(10);

    const slow = skewLines('gw-slow');
    expect(slow).toHaveLength(1);
    expect(slow[0].level).toBe(40);
    expect(slow[0].behind_s).toBeGreaterThanOrEqual(3599);
    expect(slow[0].behind_s).toBeLessThan(3610);
    expect(slow[0].msg).toMatch(/^the clock of gateway skew\/gw-slow is about 36\d\d s behind this aggregator's: .*presence doctor, "clock synchronised"/);
    expect(skewLines('gw-ok')).toEqual([]);
    expect(skewLines('gw-burst')).toEqual([]);
  });

  it('a gateway whose clock is days behind: the page and the dashboards show it online with its clock behind, not offline after the offline status the broker stamped on receipt', async () => {
    const DAYS = 3 * 24 * HOUR;
    const gw = 'gw-days';
    // its last will from before (no ts: stamped on receipt, by the aggregator's clock), retained
    await pub.publishAsync(statusTopic('skew', gw), encode(offlineStatus('skew', gw, 'hall')), { qos: 1, retain: true });
    await until(
      `${gw} offline written`,
      () => influx.count('gateway_status', 'up', `"gateway"='${gw}'`),
      (c) => c === 1,
    );
    const shown = () => agg.recent!.snapshot().gateways.find((g) => g.gateway === gw)!;
    expect(shown().state).toBe('offline');
    // then online, every status stamped three days back by its clock, one every 90 s of the aggregator's
    const sentTs: number[] = [];
    const receivedAt: number[] = [];
    for (let i = 0; i < 4; i++) {
      if (i > 0) clock.offset += 90_000;
      sentTs.push(Date.now() - DAYS);
      receivedAt.push(Date.now());
      await pub.publishAsync(statusTopic('skew', gw), encode({ ...status('skew', gw, new Date(sentTs[i])), zone: 'hall' }), { qos: 1, retain: true });
      await until(
        `${gw} status ${i + 1} written`,
        () => written(gw),
        (c) => c === i + 1,
      );
      // online from the first one: it came after the offline one
      expect(shown().state, `status ${i + 1}`).toBe('online');
    }
    // and, once its statuses have come that late over three minutes, how far behind (as the log line says it)
    const g = shown();
    expect(g.clock_behind_s).toBeGreaterThanOrEqual(DAYS / 1000 - 1);
    expect(g.clock_behind_s).toBeLessThan(DAYS / 1000 + 10);
    expect(g.status_at).toBeLessThan(Date.now() - DAYS + 60_000);
    expect(skewLines(gw)).toHaveLength(1);

    // The database: the statuses before the judgement (the first two) keep the gateway's ts; from the
    // third on (3 over 3 minutes) they are stamped ts + how far behind, about their receipt, with the
    // gateway's ts and the correction as fields.
    const points = await influx.rows(`SELECT "up", "gateway_ts_ms", "clock_behind_s" FROM "gateway_status" WHERE "gateway"='${gw}' AND "uptime_s" > 0`);
    expect(points.map((p) => p.time)).toEqual([sentTs[0], sentTs[1], expect.any(Number), expect.any(Number)]);
    expect(points.slice(0, 2).map((p) => [p.gateway_ts_ms, p.clock_behind_s])).toEqual([
      [null, null],
      [null, null],
    ]);
    for (const i of [2, 3]) {
      const p = points[i];
      expect(p.gateway_ts_ms, `status ${i + 1}`).toBe(sentTs[i]);
      expect(p.time as number, `status ${i + 1}`).toBeGreaterThanOrEqual(receivedAt[i] - 1000);
      expect(p.time as number, `status ${i + 1}`).toBeLessThan(receivedAt[i] + 5000);
      expect((p.time as number) - sentTs[i]).toBe(Math.round((p.clock_behind_s as number) * 1000));
    }

    // The dashboards' own InfluxQL (last value by time) reads it online now, as the page does: before,
    // the offline point stamped on receipt was newer than every status stamped days back.
    const db = new InfluxQL({ url: influx.url, database: 'presence' });
    const q = (r: { queries: QueryResult[] }, title: RegExp, refId = 'A') => r.queries.find((x) => title.test(x.panelTitle) && x.refId === refId)!;
    const lastOf = (r: QueryResult) => r.series.find((s) => s.tags?.gateway === gw)?.values.at(-1);
    const gatewaysNow = async () =>
      runDashboard(gatewaysDashboard, db, { range: timeRange('now-6h', 'now'), select: { site: 'skew', gateway: gw }, dataSourceInterval: '1m' });
    let r = await gatewaysNow();
    expect(lastOf(q(r, /^Online now$/))?.[1], describeResult(q(r, /^Online now$/))).toBe(1);
    expect(lastOf(q(r, /^Last seen$/)), describeResult(q(r, /^Last seen$/))).toEqual([points[3].time, 1]);
    const timeline = q(r, /^Online \/ offline$/);
    expect(lastOf(timeline)?.[1], describeResult(timeline)).toBe(1);
    // and says how far behind, as the page and the log line do: only from the statuses the aggregator
    // stamped after judging the clock (the first two came before it: nothing drawn for them)
    const behind = q(r, /^Clock behind, seconds/);
    const drawn = behind.series.filter((s) => s.tags?.gateway === gw).flatMap((s) => s.values.filter((v) => v[1] !== null));
    expect(
      drawn.map((v) => v[1]),
      describeResult(behind),
    ).toEqual([points[2].clock_behind_s, points[3].clock_behind_s]);
    expect(drawn[1][1] as number).toBeGreaterThanOrEqual(DAYS / 1000 - 1);
    const tile = q(
      await runDashboard(trafficDashboard, db, {
        range: timeRange('now-6h', 'now'),
        select: { site: 'skew', zone: 'hall', gateway: '$__all', radio: 'wifi' },
        dataSourceInterval: '1m',
      }),
      /^Gateways offline or silent now/,
    );
    expect(tile.series, describeResult(tile)).toEqual([]);

    // A status delivered late out of a backlog (sent 10 minutes ago by this clock) lands when it was
    // sent, not at its delivery; the newest point stays the last live one.
    const backlogTs = Date.now() - DAYS - 10 * 60_000;
    await pub.publishAsync(statusTopic('skew', gw), encode({ ...status('skew', gw, new Date(backlogTs)), zone: 'hall' }), { qos: 1, retain: true });
    await until(
      `${gw} backlog status written`,
      () => written(gw),
      (c) => c === 5,
    );
    const late = await influx.rows(`SELECT "gateway_ts_ms" FROM "gateway_status" WHERE "gateway"='${gw}' AND "gateway_ts_ms" = ${backlogTs}`);
    expect(late).toHaveLength(1);
    expect(late[0].time as number).toBeGreaterThan(Date.now() - 10 * 60_000 - 5000);
    expect(late[0].time as number).toBeLessThan(Date.now() - 10 * 60_000 + 1000);
    r = await gatewaysNow();
    expect(lastOf(q(r, /^Last seen$/))).toEqual([points[3].time, 1]);
  });

  it("a restart with the session kept writes no second point of the gateway's retained status: the new process has not judged the clock yet, and the copy the broker replays landed at its ts, days back", async () => {
    const gw = 'gw-days';
    const all = () => influx.rows(`SELECT "up", "uptime_s", "gateway_ts_ms" FROM "gateway_status" WHERE "gateway"='${gw}'`);
    const before = await all();
    expect(before.length).toBeGreaterThan(0);
    // the same client id: the broker kept the session, and sends every retained status at the subscribe
    await agg.stop(2000);
    agg = new Aggregator(
      {
        mqtt: { url: broker.url, clientId: 'agg-skew' },
        influx: { url: influx.url, api: 'v1', database: 'presence' },
        batch: { flushInterval: '50ms', maxRetryDelay: '300ms' },
        http: { port: 0 },
      },
      { logger: pino({ level: 'silent' }) },
    );
    await agg.start();
    // a live status of another gateway, written: the retained copies sent at the subscribe came before it
    await pub.publishAsync(statusTopic('skew', 'gw-mark'), encode(status('skew', 'gw-mark')), { qos: 1 });
    await until(
      'the marker status written',
      () => written('gw-mark'),
      (n) => n === 1,
    );
    await until(
      'the page took the retained copy',
      () => agg.recent!.snapshot().gateways.find((g) => g.gateway === gw)?.state,
      (s) => s === 'online',
    );
    expect(await all()).toEqual(before);
  });
});
