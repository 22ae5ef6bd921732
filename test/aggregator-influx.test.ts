// Aggregator against a real Mosquitto and a real influxd 1.6.7 through the 1.x write path:
// every published window is stored once; duplicates, bad messages, InfluxDB down for a while and a
// broker restart change nothing about that.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsTopic, statusTopic, MAX_PAYLOAD_BYTES } from '../contract/index.ts';
import { countsItem, publishAll, publisher, status, statusItem, until, window, windows } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-influx') && need('influxd', 'influxdb', 'aggregator-influx');

describe.skipIf(!ok)('aggregator -> influxd 1.6 (1.x path)', () => {
  // As root, Mosquitto drops to user mosquitto, which cannot write the temp dir: keep root so persistence works.
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let agg: Aggregator;
  let pub: MqttClient;
  const wifi = (where = '') => influx.count('presence', 'devices', `"radio"='wifi'${where ? ` AND ${where}` : ''}`);

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    agg = new Aggregator({
      mqtt: { url: broker.url, clientId: 'agg-influx-test' },
      influx: { url: influx.url, api: 'v1', database: 'presence' },
      batch: { size: 300, flushInterval: '50ms', maxBuffer: 1000, maxRetryDelay: '500ms' },
      http: { port: 0, host: '127.0.0.1' },
      missingCheckInterval: '100ms',
      logLevel: 'error',
    });
    await agg.start();
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    await pub?.endAsync().catch(() => {});
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it('stores N published windows as N points per radio, with the contract fields and tags', async () => {
    const msgs = windows('site-a', 5, 200); // 1000 windows
    await publishAll(pub, msgs.map(countsItem));
    await until(
      '1000 windows in influxd',
      () => wifi(`"site"='site-a'`),
      (n) => n === 1000,
    );
    expect(await influx.count('presence', 'devices', `"radio"='ble' AND "site"='site-a'`)).toBe(1000);
    const m = msgs[7];
    const rows = await influx.rows(
      `SELECT * FROM presence WHERE "gateway"='${m.gateway}' AND "site"='site-a' AND time = ${Date.parse(m.start)}ms GROUP BY "radio"`,
    );
    expect(rows).toHaveLength(2);
    const w = rows.find((r) => r.radio === 'wifi')!;
    expect(w).toMatchObject({
      time: Date.parse(m.start),
      devices: m.wifi.devices,
      estimate: m.wifi.estimate,
      frames: m.wifi.frames,
      complete: true,
      zone: 'zone-a',
    });
    const b = rows.find((r) => r.radio === 'ble')!;
    expect(b).toMatchObject({ devices: m.ble.devices, estimate: m.ble.estimate, frames: m.ble.frames });
    // integer fields stay integers
    const types = await influx.query('SHOW FIELD KEYS FROM presence');
    expect(Object.fromEntries(types.results[0].series[0].values)).toMatchObject({
      devices: 'integer',
      estimate: 'integer',
      frames: 'integer',
      complete: 'boolean',
    });
    expect(agg.stats().queueDepth).toBe(0);
  });

  it('writes the same window twice as one point', async () => {
    const msgs = windows('site-dup', 2, 50);
    const ackedBefore = agg.stats().acked;
    await publishAll(pub, [...msgs, ...msgs.slice(0, 40)].map(countsItem));
    // A message is acknowledged only after its write: once all 140 are, every write is done, and the
    // 40 copies must not have added a point.
    await until(
      'all 140 acknowledged (written)',
      () => agg.stats().acked - ackedBefore,
      (n) => n >= 140,
    );
    expect(await wifi(`"site"='site-dup'`)).toBe(100);
  });

  // InfluxDB keys a point by its start: a window that overlaps an accepted one with another start would be
  // a point of its own beside it, and every sum over time (frames, the number of windows, the hourly
  // aggregates) would count the time they share twice. The first is kept; the overlapping one is rejected.
  it('stores no window that overlaps one accepted before: a sum over time counts each moment once', async () => {
    const t0 = Math.floor((Date.now() - 3_600_000) / 300_000) * 300_000;
    const five = window('site-ov', 'gw-ov', 1, t0, 300_000); // 5-min windows
    const oneMin = window('site-ov', 'gw-ov', 2, t0 + 120_000, 60_000); // restarted with 1-min windows
    const back = window('site-ov', 'gw-ov', 3, t0 + 240_000, 60_000); // ... and the clock went back
    const before = window('site-ov', 'gw-ov', 4, t0 - 60_000, 60_000); // ends where the first starts: no overlap
    const after = window('site-ov', 'gw-ov', 5, t0 + 300_000, 60_000); // starts where it ends: no overlap
    await publishAll(pub, [five, oneMin, back, before, after].map(countsItem));
    await until(
      'the last window stored',
      () => wifi(`"site"='site-ov' AND time = ${Date.parse(after.start)}ms`),
      (n) => n === 1,
    );
    expect(await wifi(`"site"='site-ov'`)).toBe(3);
    const [sum] = await influx.rows(`SELECT sum("frames") AS frames FROM presence WHERE "site"='site-ov' AND "radio"='wifi'`);
    expect(sum.frames).toBe(five.wifi.frames + before.wifi.frames + after.wifi.frames);
    const text = await agg.metrics.registry.getSingleMetricAsString('presence_aggregator_rejected_total');
    expect(text).toMatch(/presence_aggregator_rejected_total\{reason="overlap"\} 2$/m);
  });

  it('rejects bad messages by reason, acks them, and stores every good one mixed among them', async () => {
    const before = agg.stats();
    const good = windows('site-bad', 3, 40);
    const future = window('site-bad', 'gw-0', 999, Date.now() + 3600_000);
    const wrongGw = window('site-bad', 'gw-other', 1, Date.now() - 10_000);
    const negative = { ...window('site-bad', 'gw-0', 998, Date.now() - 20_000), wifi: { frames: 1, devices: -3, estimate: 0 } };
    const missingKey = { ...window('site-bad', 'gw-0', 997, Date.now() - 30_000) } as Record<string, unknown>;
    delete missingKey.ble;
    const wrongType = { ...window('site-bad', 'gw-0', 996, Date.now() - 40_000), seq: 'seven' };
    const bad = [
      { topic: countsTopic('site-bad', 'gw-0'), payload: '{"v":1,"site":' },
      { topic: countsTopic('site-bad', 'gw-0'), payload: JSON.stringify(negative) },
      { topic: countsTopic('site-bad', 'gw-0'), payload: JSON.stringify(missingKey) },
      { topic: countsTopic('site-bad', 'gw-0'), payload: JSON.stringify(wrongType) },
      { topic: countsTopic('site-bad', 'gw-0'), payload: JSON.stringify(wrongGw) },
      { topic: countsTopic('site-other', 'gw-0'), payload: JSON.stringify(good[0]) },
      { topic: countsTopic('site-bad', 'gw-0'), payload: JSON.stringify(future) },
      { topic: countsTopic('site-bad', 'gw-0'), payload: JSON.stringify({ ...good[0], pad: 'x'.repeat(MAX_PAYLOAD_BYTES) }) },
      { topic: statusTopic('site-bad', 'gw-0'), payload: '{"v":1,"site":"site-bad","gateway":"gw-0","state":"sleeping"}' },
    ];
    const items: Array<{ topic: string; payload: Buffer | string }> = good.map(countsItem);
    bad.forEach((b, i) => {
      items.splice(i * 12 + 5, 0, b);
    });
    await publishAll(pub, items, 20);
    await until(
      'good windows stored',
      () => wifi(`"site"='site-bad'`),
      (n) => n === good.length,
    );
    await until(
      'all acked',
      () => agg.stats().queueDepth,
      (n) => n === 0,
    );
    expect(agg.stats().rejected - before.rejected).toBe(bad.length);
    const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
    const byReason = (r: string) => Number(new RegExp(`presence_aggregator_rejected_total\\{reason="${r}"\\} (\\d+)`).exec(metrics)?.[1]);
    expect(byReason('bad_json')).toBe(1);
    expect(byReason('invalid')).toBe(4); // negative, missing key, wrong type, bad status state
    expect(byReason('topic_mismatch')).toBe(2);
    expect(byReason('future')).toBe(1);
    expect(byReason('too_large')).toBe(1);
    expect(metrics).toMatch(/presence_aggregator_write_seconds_bucket/);
    expect(metrics).toMatch(/presence_aggregator_queue_depth 0/);
    const health = await fetch(`http://127.0.0.1:${agg.httpPort}/healthz`);
    expect(health.status).toBe(200);
    // the rejected ones are acknowledged: nothing comes back after a reconnect of the session
    expect(await wifi(`"site"='site-other'`)).toBe(0);
  });

  it('writes gateway status and records a gateway silent for two windows as missing', async () => {
    await publishAll(pub, [statusItem(status('site-st', 'gw-s'))]);
    const start = Date.now() - 2000;
    await publishAll(
      pub,
      [0, 1, 2].map((s) => countsItem(window('site-st', 'gw-s', s, start + s * 400, 400))),
    );
    await until(
      'missing recorded',
      () => influx.count('gateway_status', 'missing_windows', `"gateway"='gw-s' AND "missing"=true`),
      (n) => n === 1,
      30_000,
    );
    expect(agg.missingGateways()).toContain('site-st/gw-s');
    const rows = await influx.rows(`SELECT * FROM gateway_status WHERE "gateway"='gw-s' AND "online"=true`);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ online: true, queue_depth: 3, uptime_s: 12.5, frames_per_s: 15, errors: 3 });
    // it comes back: a missing=false point
    await publishAll(pub, [countsItem(window('site-st', 'gw-s', 3, Date.now() - 1000, 400))]);
    await until(
      'back recorded',
      () => influx.count('gateway_status', 'missing_windows', `"gateway"='gw-s' AND "missing"=false`),
      (n) => n === 1,
      30_000,
    );
  });

  it('keeps memory bounded while influxd is down and stores everything once it returns', async () => {
    await influx.stop();
    const ackedBefore = agg.stats().acked;
    const msgs = windows('site-down', 4, 600); // 2400 windows, more than maxBuffer (1000)
    const publishing = publishAll(pub, msgs.map(countsItem));
    let maxDepth = 0;
    // Watch the buffer until the events this test is about: writes failed and messages are held.
    await until(
      'failed writes with messages held',
      () => {
        maxDepth = Math.max(maxDepth, agg.stats().queueDepth);
        return agg.stats().writeFailures > 0 && maxDepth > 0;
      },
      (v) => v,
      50_000,
    );
    // All 2400 are at the broker now (it acknowledged them to the publisher), while the aggregator
    // still cannot write: what it holds stays within maxBuffer.
    await publishing;
    maxDepth = Math.max(maxDepth, agg.stats().queueDepth);
    expect(agg.stats().writeFailures).toBeGreaterThan(0);
    expect(agg.stats().acked).toBe(ackedBefore); // no PUBACK for anything not written
    expect(maxDepth).toBeGreaterThan(0);
    expect(maxDepth).toBeLessThanOrEqual(1000);
    const health = await fetch(`http://127.0.0.1:${agg.httpPort}/healthz`);
    expect(health.status).toBe(503);
    await influx.start();
    await until(
      'all 2400 windows after influxd returns',
      () => wifi(`"site"='site-down'`),
      (n) => n === 2400,
      40_000,
    );
  });

  it('loses nothing across a broker restart', async () => {
    const msgs = windows('site-restart', 4, 200);
    await publishAll(pub, msgs.slice(0, 400).map(countsItem));
    await broker.restart();
    await publishAll(pub, msgs.slice(400).map(countsItem));
    await until(
      'all windows after the broker restart',
      () => wifi(`"site"='site-restart'`),
      (n) => n === 800,
      30_000,
    );
  });
});
