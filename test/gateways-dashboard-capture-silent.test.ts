// A capture command that runs but writes nothing, on the gateways dashboard (real Mosquitto, real
// aggregator, real influxd): the gateway's status says it in a source's silent_s (its state stays
// running), and the aggregator stores the number of such sources (sources_silent) and the longest
// silence (capture_silent_s), 0 when none is silent, so the "Capture silent" panel tells a hung
// capture from a quiet site. The aggregator stored neither, so no panel could tell them apart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { encode, offlineStatus, statusTopic, type SourceStatus } from '../contract/index.ts';
import { InfluxQL, describeResult, loadDashboard, runDashboard, timeRange, type QueryResult } from '../dashboards/queries.ts';
import { publisher, quickAggregatorConfig, status, until } from './aggregator-helpers.ts';

const SUITE = 'gateways-dashboard-capture-silent';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('influxd', 'influxdb', SUITE);
const gateways = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));

describe.skipIf(!ok)('gateways dashboard: a capture command that runs but writes nothing', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let pub: MqttClient;
  let agg: Aggregator;
  const now = Date.now();
  // gw-hung: its Wi-Fi capture writes, then a restarted one writes nothing (silent 15 s, then 75 s),
  // then it writes again; gw-quiet: a quiet site throughout (running, no frame, never silent_s).
  // One status a minute, the last a minute ago.
  const wifi = (silent?: number): SourceStatus => ({
    name: 'wlan0',
    radio: 'wifi',
    state: 'running',
    frames_per_s: 0,
    errors: 0,
    ...(silent === undefined ? {} : { silent_s: silent }),
  });
  const ble: SourceStatus = { name: 'hci0', radio: 'ble', state: 'running', frames_per_s: 4.5, errors: 0, silent_s: 20 };
  const hung: SourceStatus[][] = [[wifi()], [wifi(15)], [wifi(75), ble], [wifi()]];
  const at = (i: number) => new Date(now - (hung.length - i) * 60_000);

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    await influx.query('CREATE DATABASE "presence"', 'POST');
    agg = new Aggregator(quickAggregatorConfig(broker.url, influx.url, 'agg-silent'));
    await agg.start();
    pub = await publisher(broker.url);
    for (let i = 0; i < hung.length; i++) {
      await pub.publishAsync(statusTopic('depot', 'gw-hung'), encode({ ...status('depot', 'gw-hung', at(i)), zone: 'hall', sources: hung[i] }), {
        qos: 1,
        retain: true,
      });
      await pub.publishAsync(statusTopic('depot', 'gw-quiet'), encode({ ...status('depot', 'gw-quiet', at(i)), zone: 'hall', sources: [wifi()] }), {
        qos: 1,
        retain: true,
      });
    }
    // gw-stopped: its capture went silent, then the gateway stopped (the broker's offline last will,
    // no sources): the panel's last value was the silence from before the stop, drawn on until now
    for (const [i, sources] of [[wifi()], [wifi(30)]].entries())
      await pub.publishAsync(statusTopic('depot', 'gw-stopped'), encode({ ...status('depot', 'gw-stopped', at(i + 1)), zone: 'hall', sources }), {
        qos: 1,
        retain: true,
      });
    await pub.publishAsync(statusTopic('depot', 'gw-stopped'), encode(offlineStatus('depot', 'gw-stopped', 'hall')), { qos: 1, retain: true });
    await until(
      'every status written',
      () => influx.count('gateway_status', 'up'),
      (n) => n === 2 * hung.length + 3,
    );
  });

  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it('stores how many sources are capture silent and the longest silence, 0 when none is', async () => {
    const rows = async (gateway: string) =>
      (await influx.rows(`SELECT "sources_silent", "capture_silent_s" FROM "gateway_status" WHERE "gateway" = '${gateway}' AND "up" = 1`)).map((r) => [
        r.sources_silent,
        r.capture_silent_s,
      ]);
    expect(await rows('gw-hung')).toEqual([
      [0, 0],
      [1, 15],
      [2, 75],
      [0, 0],
    ]);
    expect(await rows('gw-quiet')).toEqual([
      [0, 0],
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
  });

  it('the "Capture silent" panel draws the sources capture silent per gateway, in the order the statuses came', async () => {
    const r = await runDashboard(gateways, new InfluxQL({ url: influx.url, database: 'presence' }), {
      range: timeRange('now-1h', 'now'),
      select: { site: 'depot', gateway: '$__all' },
      dataSourceInterval: '1m',
    });
    const panel = r.queries.find((x) => /^Capture silent/.test(x.panelTitle) && x.refId === 'A') as QueryResult;
    expect(panel, r.queries.map((q) => q.panelTitle).join('\n')).toBeDefined();
    expect(panel.error).toBeUndefined();
    const drawn = (gateway: string) => {
      const s = panel.series.find((x) => x.tags?.gateway === gateway);
      expect(s, describeResult(panel)).toBeDefined();
      const col = s!.columns.indexOf('capture');
      const xs = s!.values.map((v) => v[col]).filter((v) => v !== null);
      return xs.filter((x, i) => i === 0 || x !== xs[i - 1]); // fill(previous): each value until the next status
    };
    expect(drawn('gw-hung'), describeResult(panel)).toEqual([0, 1, 2, 0]);
    expect(drawn('gw-quiet')).toEqual([0]);
    expect(drawn('gw-stopped'), describeResult(panel)).toEqual([0, 1, 0]);
  });
});
