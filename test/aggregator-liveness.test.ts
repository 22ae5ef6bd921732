// A gateway that has just started, with a real Mosquitto and influxd: its first window is cut short
// (from the start to the next window boundary, often a second or two of a minute's window) and must
// not be taken as the window length, or the aggregator records the gateway missing a few seconds
// later (log 'gateway missing', a gateway_status point missing=true on the dashboards) and back at
// its next window. Its next window tells the length; silence is counted from then on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsTopic, encode, statusTopic } from '../contract/index.ts';
import { publisher, quickAggregatorConfig, status, until, window } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-liveness') && need('influxd', 'influxdb', 'aggregator-liveness');

describe.skipIf(!ok)('aggregator: liveness of a gateway that has just started', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let pub: MqttClient;
  let agg: Aggregator;

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    await influx.query('CREATE DATABASE "presence"', 'POST');
    pub = await publisher(broker.url);
    agg = new Aggregator(quickAggregatorConfig(broker.url, influx.url, 'agg-liveness'));
    await agg.start();
  });

  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  const missingPoints = () => influx.count('gateway_status', 'missing_windows', `"site"='live' AND "missing"=true`);
  const stored = () => influx.count('presence', 'devices', `"site"='live'`);

  it('does not record a gateway missing for the length of its windows cut short at a stop and a start; learns it from a complete one', async () => {
    const topic = countsTopic('live', 'gw-1');
    // 5-s windows; the gateway started 300 ms before a boundary, so its first window spans 300 ms
    const boundary = Math.floor(Date.now() / 5000) * 5000;
    // a restart the aggregator saw nothing before: the last window of the run that stopped (700 ms,
    // waiting in the aggregator's session), then the first of the new run (300 ms)
    const last = { ...window('live', 'gw-1', 1, boundary - 5000, 700), complete: false };
    const first = { ...window('live', 'gw-1', 2, boundary - 300, 300), complete: false };
    await pub.publishAsync(topic, encode(last), { qos: 1 });
    await pub.publishAsync(topic, encode(first), { qos: 1 });
    await until('the first window written', stored, (n) => n === 4);
    // 2 x 700 ms passed many times over; the next window is not due for seconds
    await new Promise((r) => setTimeout(r, 2500));
    expect(agg.missingGateways()).not.toContain('live/gw-1');
    expect(await missingPoints()).toBe(0);

    // the next window, complete, tells the length (1 s here): silent for 2 of them, the gateway is missing
    await pub.publishAsync(topic, encode(window('live', 'gw-1', 3, boundary, 1000)), { qos: 1 });
    await until('the complete window written', stored, (n) => n === 6);
    await until(
      'the gateway recorded missing',
      () => agg.missingGateways(),
      (m) => m.includes('live/gw-1'),
      10_000,
    );
    await until('its missing point written', missingPoints, (n) => n === 1);
  });

  it('a gateway whose windows are all cut short (a capture command that keeps restarting) gets the longest of three in a row as its length', async () => {
    const topic = countsTopic('live', 'gw-2');
    const t = Math.floor(Date.now() / 1000) * 1000 - 3000;
    for (let seq = 1; seq <= 3; seq++)
      await pub.publishAsync(topic, encode({ ...window('live', 'gw-2', seq, t + (seq - 1) * 1000, seq === 2 ? 1000 : 400), complete: false }), { qos: 1 });
    await until(
      'recorded missing after 2 x 1 s',
      () => agg.missingGateways(),
      (m) => m.includes('live/gw-2'),
      10_000,
    );
  });

  it('presence_aggregator_gateways_known counts the gateways whose counts messages were accepted, not those heard only through statuses, and its help says so', async () => {
    const known = async () => {
      const text = await agg.metrics.registry.getSingleMetricAsString('presence_aggregator_gateways_known');
      return { help: /^# HELP \S+ (.*)$/m.exec(text)![1], value: Number(/^presence_aggregator_gateways_known (\S+)$/m.exec(text)![1]) };
    };
    const before = (await known()).value;
    const statuses = () => influx.count('gateway_status', 'uptime_s', `"site"='live' AND "gateway"='gw-status-only'`);
    await pub.publishAsync(statusTopic('live', 'gw-status-only'), JSON.stringify(status('live', 'gw-status-only')), { qos: 1 });
    await until('the status written', statuses, (n) => n === 1);
    expect((await known()).value).toBe(before);
    const t = Math.floor(Date.now() / 60_000) * 60_000 - 60_000;
    await pub.publishAsync(countsTopic('live', 'gw-3'), encode(window('live', 'gw-3', 1, t, 60_000)), { qos: 1 });
    await until(
      'the window counted',
      async () => (await known()).value,
      (n) => n === before + 1,
    );
    const { help } = await known();
    expect(help).toMatch(/counts message accepted since this aggregator started/);
    expect(help).toMatch(/heard only through status messages.*is not counted/);
  });
});
