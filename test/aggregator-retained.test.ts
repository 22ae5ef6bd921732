// A counts message published with the retain flag, with a real Mosquitto and influxd: counts are never
// retained (contract/README.md), but a broker keeps such a copy and sends it again at every subscribe,
// so at each reconnect of the aggregator. The live delivery (and the copy queued for its persistent
// session while it was away) is written; the stored copy sent at a subscribe is rejected (retained),
// and it does not make a gateway that has gone silent look back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { join } from 'node:path';
import { countsTopic, encode, offlineStatus, statusTopic } from '../contract/index.ts';
import { InfluxQL, describeResult, loadDashboard, runDashboard, timeRange } from '../dashboards/queries.ts';
import { publisher, quickAggregatorConfig, status, until, window } from './aggregator-helpers.ts';

const gatewaysDashboard = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'gateways.json'));

const ok = need('mosquitto', 'mosquitto', 'aggregator-retained') && need('influxd', 'influxdb', 'aggregator-retained');

describe.skipIf(!ok)('aggregator: retained counts', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let pub: MqttClient;
  const aggs: Aggregator[] = [];

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    await influx.query('CREATE DATABASE "presence"', 'POST');
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    for (const a of aggs) await a.stop(2000).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  /** An aggregator started, and how many retained copies it has rejected: counted from before its
   *  start, as the stored copy sent at its subscribe can be rejected before start() returns. */
  async function start(): Promise<[Aggregator, () => number]> {
    const a = new Aggregator(quickAggregatorConfig(broker.url, influx.url, 'agg-retained'));
    aggs.push(a);
    let n = 0;
    a.on('rejected', (reason: string) => reason === 'retained' && n++);
    await a.start();
    return [a, () => n];
  }
  const stored = () => influx.count('presence', 'devices', `"site"='ret'`);

  it('writes the live delivery and the copy queued while away, rejects the stored copy at each subscribe, and a silent gateway stays missing', async () => {
    const topic = countsTopic('ret', 'gw-1');
    const t0 = Date.now() - 30_000;
    let [a, seen] = await start();
    await pub.publishAsync(topic, encode(window('ret', 'gw-1', 1, t0)), { qos: 1, retain: true });
    await until('the live window written', stored, (n) => n === 2);
    expect(seen()).toBe(0);

    // away: the next window is queued for the session, and its retained copy replaces the first one
    await a.stop();
    await pub.publishAsync(topic, encode(window('ret', 'gw-1', 2, t0 + 1000)), { qos: 1, retain: true });
    [a, seen] = await start();
    await until('the queued window written', stored, (n) => n === 4);
    await until('the stored copy rejected', seen, (n) => n === 1);

    // 1-s windows: missing after 2 s of silence; a reconnect (broker restart) sends the copy again
    await until(
      'the gateway recorded missing',
      () => a.missingGateways(),
      (m) => m.includes('ret/gw-1'),
      10_000,
    );
    await broker.restart();
    await until('the stored copy rejected again after the reconnect', seen, (n) => n === 2, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(a.missingGateways()).toContain('ret/gw-1');
    expect(await stored()).toBe(4);
    expect(a.stats().queueDepth).toBe(0);
  });

  it("a gateway's retained offline status (no ts, stamped on receipt) is written once, not again at each restart with the session kept: the gateways dashboard's Last seen keeps when it went", async () => {
    const gw = 'gw-stopped';
    const offlinePoints = () => influx.rows(`SELECT "up" FROM "gateway_status" WHERE "site"='ret' AND "gateway"='${gw}'`);
    const startAs = async (clientId: string) => {
      const a = new Aggregator(quickAggregatorConfig(broker.url, influx.url, clientId));
      aggs.push(a);
      await a.start();
      return a;
    };
    /** A live status of another gateway, written: the retained copies sent at the subscribe came before it. */
    let marks = 0;
    const marked = async () => {
      marks++;
      await pub.publishAsync(statusTopic('ret', 'gw-mark'), encode(status('ret', 'gw-mark', new Date(Date.now() - marks))), { qos: 1 });
      await until(
        'the marker status written',
        () => influx.count('gateway_status', 'up', `"gateway"='gw-mark'`),
        (n) => n === marks,
      );
    };
    // (the aggregators of the test before would write the status too, each at its own receipt)
    for (const earlier of aggs.splice(0)) await earlier.stop(2000);
    let a = await startAs('agg-will');
    // the gateway stops (its clean stop and its last will publish the same retained status, without ts)
    await pub.publishAsync(statusTopic('ret', gw), encode(offlineStatus('ret', gw, 'hall')), { qos: 1, retain: true });
    await until('the offline status written', offlinePoints, (p) => p.length === 1);
    const [wentOffline] = await offlinePoints();

    // restarted twice, the session kept: the broker sends the stored copy at each subscribe
    for (let i = 0; i < 2; i++) {
      await a.stop();
      await new Promise((r) => setTimeout(r, 20));
      a = await startAs('agg-will');
      await marked();
      expect(await offlinePoints(), `restart ${i + 1}`).toEqual([wentOffline]);
    }
    const db = new InfluxQL({ url: influx.url, database: 'presence' });
    const r = await runDashboard(gatewaysDashboard, db, { range: timeRange('now-6h', 'now'), select: { site: 'ret', gateway: gw }, dataSourceInterval: '1m' });
    const lastSeen = r.queries.find((q) => q.panelTitle === 'Last seen')!;
    expect(lastSeen.series.find((s) => s.tags?.gateway === gw)?.values.at(-1), describeResult(lastSeen)).toEqual([wentOffline.time, 0]);

    // a first start (no session for this client id): the copy is all it has of the gateway, written at receipt
    await a.stop();
    a = await startAs('agg-will-new');
    await marked();
    expect(await offlinePoints()).toHaveLength(2);
  });
});
