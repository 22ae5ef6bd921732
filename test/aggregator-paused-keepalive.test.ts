// While InfluxDB is down the aggregator stops reading from the broker at batch.max_buffer
// unacknowledged messages. The broker's PINGRESP and SUBACK then wait unread behind the held
// messages: left to mqtt.js the connection was closed for a "Keepalive timeout" every 1.5 keepalives
// (logged as "no connection to the MQTT broker ... check mqtt.url, that the broker is running"), and
// an aggregator started on a session backlog above max_buffer never read its SUBACK and stopped with
// "cannot start: Connection closed". Real Mosquitto and influxd 1.6.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { COUNTS_FILTER, STATUS_FILTER } from '../contract/index.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-paused-keepalive') && need('influxd', 'influxdb', 'aggregator-paused-keepalive');

describe.skipIf(!ok)('aggregator paused at max_buffer while InfluxDB is down', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let agg: Aggregator | null = null;
  const lines: Array<{ msg: string; level: number; err?: string }> = [];

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
  });

  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  /** The aggregator's persistent session at the broker (as after an earlier run of it), holding 300
   *  windows of `site` (more than max_buffer, 20) published while it was away; InfluxDB stopped. */
  async function backlog(clientId: string, site: string): Promise<void> {
    const earlier = await mqtt.connectAsync(broker.url, {
      clientId,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
    });
    await earlier.subscribeAsync({ [COUNTS_FILTER]: { qos: 1 }, [STATUS_FILTER]: { qos: 1 } });
    await earlier.endAsync();
    const pub = await publisher(broker.url);
    await publishAll(pub, windows(site, 3, 100).map(countsItem));
    await pub.endAsync();
    await influx.stop();
  }

  function aggregator(clientId: string): Aggregator {
    lines.length = 0;
    return new Aggregator(
      {
        mqtt: { url: broker.url, clientId, keepalive: '1s' },
        influx: { url: influx.url, api: 'v1', database: 'presence' },
        batch: { size: 20, flushInterval: '50ms', maxBuffer: 20, maxRetryDelay: '300ms' },
        http: { port: 0, host: '127.0.0.1' },
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
  }

  /** An aggregator started on backlog(clientId, site), once it holds max_buffer messages while its
   *  writes fail; `started` settles when start() does, `startError` is what it rejected with. */
  async function pausedOnBacklog(clientId: string, site: string): Promise<{ running: Aggregator; started: Promise<unknown>; startError: () => unknown }> {
    await backlog(clientId, site);
    const running = aggregator(clientId);
    agg = running;
    let error: unknown = null;
    const started = running.start().catch((e) => (error = e));
    await until(
      'writes failing with max_buffer messages held',
      () => running.stats(),
      (st) => st.writeFailures > 0 && st.queueDepth >= 20,
      20_000,
    );
    return { running, started, startError: () => error };
  }

  it('keeps its connection and starts on a session backlog above max_buffer; every window is stored once when InfluxDB returns', async () => {
    const { running, started, startError } = await pausedOnBacklog('agg-paused', 'site-paused');
    // Eight keepalives paused: mqtt.js alone closed the connection after 1.5.
    await new Promise((r) => setTimeout(r, 8_000));
    expect(startError()).toBeNull();
    const connectionLines = lines.filter((l) => /Keepalive timeout|connection to the broker closed|subscribe|cannot start/.test(`${l.msg} ${l.err ?? ''}`));
    expect(connectionLines).toEqual([]);
    const health = (await (await fetch(`http://127.0.0.1:${running.httpPort}/healthz`)).json()) as { problems: string[] };
    expect(health.problems.join('\n')).not.toMatch(/MQTT broker/);
    expect(running.stats().acked).toBe(0);
    expect(running.stats().queueDepth).toBeLessThanOrEqual(20);

    await influx.start();
    await started;
    expect(startError()).toBeNull();
    await until(
      'all 300 windows stored',
      () => influx.count('presence', 'devices', `"radio"='wifi' AND "site"='site-paused'`),
      (n) => n === 300,
      60_000,
    );
    await until(
      'all 300 acknowledged',
      () => agg!.stats().acked,
      (n) => n >= 300,
      30_000,
    );
    expect(lines.filter((l) => /Keepalive timeout|cannot start/.test(`${l.msg} ${l.err ?? ''}`))).toEqual([]);
    await running.stop(2000);
    agg = null;
  }, 120_000);

  it('a broker restart before the SUBACK was read does not stop the start: it subscribes on the next connection', async () => {
    const { started, startError } = await pausedOnBacklog('agg-paused-2', 'site-paused-2');
    await broker.restart();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(startError()).toBeNull();
    await influx.start();
    await started;
    expect(startError()).toBeNull();
    await until(
      'all 300 windows stored',
      () => influx.count('presence', 'devices', `"radio"='wifi' AND "site"='site-paused-2'`),
      (n) => n === 300,
      60_000,
    );
    expect(lines.some((l) => l.msg.includes('subscribing again on the next one'))).toBe(true);
  }, 120_000);
});
