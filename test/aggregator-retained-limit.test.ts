// The broker keeps the last status of every gateway that ever published one, retained: gateways
// stopped long ago, and each virtual gateway of a `presence simulate --load` run (its retained
// offline status). It sends them all at each subscribe, so at every start of the aggregator, before
// any window. With a real Mosquitto and influxd: those copies must not fill gateways.max_known, or
// the windows of a real unregistered gateway new to the process are rejected (gateway_limit) and,
// acknowledged as rejected, lost.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { encode, offlineStatus, statusTopic } from '../contract/index.ts';
import { countsItem, publishAll, publisher, quickAggregatorConfig, until, windows } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-retained-limit') && need('influxd', 'influxdb', 'aggregator-retained-limit');

describe.skipIf(!ok)('aggregator: retained statuses and gateways.max_known', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let pub: MqttClient;
  let agg: Aggregator | null = null;

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    await influx.query('CREATE DATABASE "presence"', 'POST');
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it("the retained offline statuses of 20 gone gateways take none of max_known's 5 places: two new gateways' windows are all stored", async () => {
    for (let i = 0; i < 20; i++) await pub.publishAsync(statusTopic('gone', `gw-${i}`), encode(offlineStatus('gone', `gw-${i}`)), { qos: 1, retain: true });
    const cfg = quickAggregatorConfig(broker.url, influx.url, 'agg-retained-limit');
    agg = new Aggregator({ ...cfg, http: { port: 0, host: '127.0.0.1' }, gateways: { max_known: 5 } });
    const rejected: string[] = [];
    agg.on('rejected', (...args: unknown[]) => rejected.push(JSON.stringify(args)));
    await agg.start();
    await until(
      'the 20 retained statuses taken',
      () => agg!.stats().received,
      (n) => n >= 20,
      10_000,
    );
    await publishAll(pub, windows('live', 2, 30).map(countsItem));
    await until(
      '60 windows stored',
      () => influx.count('presence', 'devices', `"radio"='wifi' AND "site"='live'`),
      (n) => n === 60,
      20_000,
    );
    expect(rejected.filter((r) => r.includes('gateway_limit'))).toEqual([]);
    // The limit still holds for gateways that send windows: 4 more new ones, one past the 5.
    await publishAll(pub, windows('more', 4, 1).map(countsItem));
    await until(
      'one gateway of "more" rejected',
      () => rejected.filter((r) => r.includes('gateway_limit')).length,
      (n) => n === 1,
      10_000,
    );
  }, 60_000);

  it('/healthz says "degraded" once gateways.max_known rejected a message, naming the key and the fix', async () => {
    // The aggregator of the test before, whose limit rejected one gateway of "more".
    const health = (await (await fetch(`http://127.0.0.1:${agg!.httpPort}/healthz`)).json()) as { status: string; problems: string[] };
    expect(health.status).toBe('degraded');
    expect(health.problems).toEqual([
      expect.stringMatching(
        /^1 message\(s\) of unregistered gateways rejected \(gateway_limit\), the latest \d+ s ago: 5 unregistered gateways are known already \(gateways\.max_known\); register the real ones \(gateways\.registry\) or raise gateways\.max_known \(--max-gateways\)$/,
      ),
    ]);
  });
});
