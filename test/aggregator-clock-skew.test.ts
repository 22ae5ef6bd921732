// A gateway whose clock runs an hour behind, with a real Mosquitto and influxd: its windows are not
// refused (a window in the past is what a queue sends after an outage), so they were stored an hour
// in the past and the dashboards showed the gateway silent now, with nothing saying why. Its live
// statuses, stamped by its clock and never delivered before they were sent, tell: one warn line
// once they have come an hour late over a few minutes. A status late once (a backlog after the
// aggregator was away) or a burst of them is not a clock. The aggregator's clock is moved forward
// between the statuses (Date.now), so the minutes pass in seconds.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Writable } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { encode, statusTopic } from '../contract/index.ts';
import { publisher, status, until } from './aggregator-helpers.ts';

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

  it('a gateway whose clock is days behind: the page shows it online with its clock behind, not offline after the offline status the broker stamped on receipt', async () => {
    const DAYS = 3 * 24 * HOUR;
    const gw = 'gw-days';
    // its last will from before (no ts: stamped on receipt, by the aggregator's clock), retained
    await pub.publishAsync(statusTopic('skew', gw), encode({ v: 1, site: 'skew', gateway: gw, state: 'offline' }), { qos: 1, retain: true });
    await until(
      `${gw} offline written`,
      () => influx.count('gateway_status', 'up', `"gateway"='${gw}'`),
      (c) => c === 1,
    );
    const shown = () => agg.recent!.snapshot().gateways.find((g) => g.gateway === gw)!;
    expect(shown().state).toBe('offline');
    // then online, every status stamped three days back by its clock, one every 90 s of the aggregator's
    for (let i = 0; i < 4; i++) {
      if (i > 0) clock.offset += 90_000;
      await pub.publishAsync(statusTopic('skew', gw), encode(status('skew', gw, new Date(Date.now() - DAYS))), { qos: 1, retain: true });
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
  });
});
