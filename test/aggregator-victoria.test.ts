// Aggregator against a real Mosquitto and a real VictoriaMetrics through the v2 write API (the
// client's ordinary WriteApi, /api/v2/write): N windows published, N points stored.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Victoria } from './support/victoria.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { InfluxV2Sink } from '../aggregator/writer.ts';
import { countsLines } from '../aggregator/messages.ts';
import { countsItem, publishAll, publisher, status, statusItem, until, windows } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-victoria') && need('victoria-metrics', 'victoria-metrics', 'aggregator-victoria');

describe.skipIf(!ok)('aggregator -> VictoriaMetrics (v2 path)', () => {
  const broker = new Mosquitto();
  const vm = new Victoria();
  let agg: Aggregator;
  let pub: MqttClient;

  beforeAll(async () => {
    await Promise.all([broker.start(), vm.start()]);
    agg = new Aggregator({
      mqtt: { url: broker.url, clientId: 'agg-vm-test' },
      influx: { url: vm.url, api: 'v2', token: 'unused', org: 'city', bucket: 'presence' },
      batch: { size: 500, flushInterval: '50ms', maxBuffer: 2000, maxRetryDelay: '500ms' },
      http: { port: 0, host: '127.0.0.1' },
      logLevel: 'error',
    });
    await agg.start();
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    await pub?.endAsync().catch(() => {});
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), vm.dispose()]);
  });

  it('stores N published windows (and duplicates once) as N samples per radio and field', async () => {
    const msgs = windows('site-vm', 4, 250); // 1000 windows
    await publishAll(pub, [...msgs, ...msgs.slice(0, 100)].map(countsItem));
    await publishAll(pub, [statusItem(status('site-vm', 'gw-0'))]);
    await until(
      'all acked',
      () => agg.stats().queueDepth,
      (n) => n === 0,
    );
    const count = (m: string) =>
      until(
        m,
        () => vm.count(m),
        (n) => n === 1000,
        20_000,
      );
    expect(await count('presence_devices{radio="wifi",site="site-vm"}')).toBe(1000);
    expect(await count('presence_estimate{radio="ble",site="site-vm"}')).toBe(1000);
    const series = await vm.export('presence_devices{radio="wifi",site="site-vm",gateway="gw-2"}');
    for (const s of series) expect(s.metric).toMatchObject({ __name__: 'presence_devices', zone: 'zone-a', gateway: 'gw-2', site: 'site-vm', radio: 'wifi' });
    const byTime = new Map(series.flatMap((s) => s.timestamps.map((t, i) => [t, s.values[i]] as const)));
    expect(byTime.size).toBe(250);
    // -dedup.minScrapeInterval keeps a window written twice as one sample
    expect(series.reduce((n, s) => n + s.timestamps.length, 0)).toBe(250);
    for (const m of msgs.filter((x) => x.gateway === 'gw-2')) expect(byTime.get(Date.parse(m.start))).toBe(m.wifi.devices);
    expect(
      await until(
        'status',
        () => vm.count('gateway_status_queue_depth{gateway="gw-0"}'),
        (n) => n === 1,
      ),
    ).toBe(1);
  });

  it('retries while VictoriaMetrics is down and stores everything once it is back', async () => {
    await vm.stop();
    const msgs = windows('site-vm-down', 2, 300);
    await publishAll(pub, msgs.map(countsItem));
    await until(
      'write failures',
      () => agg.stats().writeFailures,
      (n) => n > 0,
    );
    await vm.start();
    expect(
      await until(
        'all after restart',
        () => vm.count('presence_frames{radio="wifi",site="site-vm-down"}'),
        (n) => n === 600,
        30_000,
      ),
    ).toBe(600);
  });

  it('splits a write larger than the WriteApi batch into requests it awaits one by one', async () => {
    const sink = new InfluxV2Sink({ url: vm.url, api: 'v2', org: 'city', bucket: 'presence', timeout: 5000 }, 10);
    const lines = windows('site-vm-chunks', 1, 35).flatMap((m) => countsLines(m));
    await sink.write(lines);
    await sink.close();
    expect(
      await until(
        '70 samples',
        () => vm.count('presence_devices{site="site-vm-chunks"}'),
        (n) => n === 70,
      ),
    ).toBe(70);
  });
});
