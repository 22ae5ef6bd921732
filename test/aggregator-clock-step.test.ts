// The aggregator's wall clock stepped forward (NTP correcting a drifted host, a VM resumed and set
// right, an operator) while its gateways publish on time, with a real Mosquitto and influxd: silence
// was measured on the wall clock, so an hour's step recorded every gateway missing at once (log
// 'gateway missing', a gateway_status point missing=true, the gateways-missing alert) and back at
// its next window. It is measured on the monotonic clock; a gateway that really falls silent is
// still recorded missing.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsTopic, encode } from '../contract/index.ts';
import { publisher, quickAggregatorConfig, until, window } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-clock-step') && need('influxd', 'influxdb', 'aggregator-clock-step');

describe.skipIf(!ok)('aggregator: its wall clock stepped while gateways publish', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let pub: MqttClient;
  let agg: Aggregator;
  const realNow = Date.now.bind(Date);
  const clock = { offset: 0 };

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    pub = await publisher(broker.url);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + clock.offset);
    agg = new Aggregator(quickAggregatorConfig(broker.url, influx.url, 'agg-clock-step'));
    await agg.start();
  });

  afterAll(async () => {
    vi.restoreAllMocks();
    await agg?.stop(2000).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it('a step of an hour records no gateway missing; one that stops publishing still is', async () => {
    const topic = countsTopic('step', 'gw-1');
    const missing: string[] = [];
    agg.on('missing', (site, gateway) => missing.push(`${site}/${gateway}`));
    let seq = 0;
    const publishWindow = () => {
      const start = Math.floor(realNow() / 1000) * 1000 - 1000; // the 1-s window that just ended
      return pub.publishAsync(topic, encode(window('step', 'gw-1', ++seq, start, 1000)), { qos: 1 });
    };
    const everySecond = async (n: number) => {
      for (let i = 0; i < n; i++) {
        await publishWindow();
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    await everySecond(3);
    expect(agg.missingGateways()).toEqual([]);
    // The wall clock jumps an hour ahead between two windows (checks run every 100 ms meanwhile).
    // (1.4 s after the last window: not yet 2 windows of real silence)
    clock.offset = 3_600_000;
    await new Promise((r) => setTimeout(r, 400));
    await everySecond(3);
    expect(missing).toEqual([]);
    expect(await influx.count('gateway_status', 'missing_windows', `"site"='step' AND "missing"=true AND time < now() + 2h`)).toBe(0);
    // silent now: missing after 2 windows (checked every 100 ms)
    await until(
      'the silent gateway recorded missing',
      () => missing,
      (m) => m.includes('step/gw-1'),
      10_000,
    );
  }, 30_000);
});
