// What a gateway's status says of windows that do not reach the aggregator, on the gateways dashboard
// (real Mosquitto, real aggregator, real influxd): queue_dropped (windows thrown away from a full
// queue: lost), publish_refused (publishes the broker refused: held back) and queue_state (disk_full,
// write_failed: the queue folder cannot be written, windows are held in memory). The aggregator
// stored none of them, so no panel could show a gateway losing windows or its disk full.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { encode, statusTopic, type StatusMessage } from '../contract/index.ts';
import { InfluxQL, describeResult, loadDashboard, runDashboard, timeRange, type QueryResult } from '../dashboards/queries.ts';
import { publisher, quickAggregatorConfig, status, until } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'gateways-dashboard-queue') && need('influxd', 'influxdb', 'gateways-dashboard-queue');
const gateways = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));

describe.skipIf(!ok)('gateways dashboard: windows a gateway lost or holds back, and its queue folder', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let pub: MqttClient;
  let agg: Aggregator;
  const now = Date.now();
  // gw-q: ok, then its disk full, then a write error with windows dropped and publishes refused;
  // gw-fine: ok throughout. One status a minute, the last a minute ago.
  const states: Array<Pick<StatusMessage, 'queue_state' | 'queue_dropped' | 'publish_refused'>> = [
    { queue_state: 'ok', queue_dropped: 0, publish_refused: 0 },
    { queue_state: 'disk_full', queue_dropped: 0, publish_refused: 1 },
    { queue_state: 'write_failed', queue_dropped: 7, publish_refused: 3 },
  ];
  const at = (i: number) => new Date(now - (states.length - i) * 60_000);

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    await influx.query('CREATE DATABASE "presence"', 'POST');
    agg = new Aggregator(quickAggregatorConfig(broker.url, influx.url, 'agg-queue'));
    await agg.start();
    pub = await publisher(broker.url);
    for (let i = 0; i < states.length; i++) {
      await pub.publishAsync(statusTopic('depot', 'gw-q'), encode({ ...status('depot', 'gw-q', at(i)), zone: 'hall', ...states[i] }), { qos: 1, retain: true });
      await pub.publishAsync(statusTopic('depot', 'gw-fine'), encode({ ...status('depot', 'gw-fine', at(i)), zone: 'hall', ...states[0] }), {
        qos: 1,
        retain: true,
      });
    }
    await until(
      'every status written',
      () => influx.count('gateway_status', 'up'),
      (n) => n === 2 * states.length,
    );
  });

  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  const run = async () =>
    runDashboard(gateways, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: timeRange('now-1h', 'now'),
      select: { site: 'depot', gateway: '$__all' },
      dataSourceInterval: '1m',
    });
  const q = (r: { queries: QueryResult[] }, title: RegExp) => r.queries.find((x) => title.test(x.panelTitle) && x.refId === 'A')!;
  /** The non-null values of one column of one gateway, in time order. */
  const drawn = (r: QueryResult, gateway: string, column: string) => {
    const s = r.series.find((x) => x.tags?.gateway === gateway)!;
    expect(s, describeResult(r)).toBeDefined();
    const col = s.columns.indexOf(column);
    return s.values.map((v) => v[col]).filter((v) => v !== null);
  };

  it('draws the windows a gateway dropped from its full queue and the publishes the broker refused, as the gateway counts them', async () => {
    const lost = q(await run(), /^Windows lost or held back/);
    expect(lost.error).toBeUndefined();
    expect(drawn(lost, 'gw-q', 'dropped (queue full)'), describeResult(lost)).toEqual([0, 0, 7]);
    expect(drawn(lost, 'gw-q', 'refused by the broker')).toEqual([0, 1, 3]);
    expect(drawn(lost, 'gw-fine', 'dropped (queue full)')).toEqual([0, 0, 0]);
  });

  it('shows a queue folder that cannot be written, and tells a full disk from another write error', async () => {
    const folder = q(await run(), /^Queue folder/);
    expect(folder.error).toBeUndefined();
    // fill(previous) carries each state until the next status: the states in the order they came
    const changes = (xs: unknown[]) => xs.filter((x, i) => i === 0 || x !== xs[i - 1]);
    expect(changes(drawn(folder, 'gw-q', 'queue folder')), describeResult(folder)).toEqual([true, false]);
    expect(changes(drawn(folder, 'gw-q', 'disk full'))).toEqual([false, true, false]);
    expect(changes(drawn(folder, 'gw-fine', 'queue folder'))).toEqual([true]);
    expect(changes(drawn(folder, 'gw-fine', 'disk full'))).toEqual([false]);
  });
});
