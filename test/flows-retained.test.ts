// A corridor sketch published with the retain flag, with a real Mosquitto: sketches are never retained
// (contract/README.md), but a broker keeps such a copy and sends it again at every subscribe, so at
// each start and reconnect of the aggregator's corridor link. The stored copy is rejected
// (`retained`), as a retained counts message is: it is not a window as it was sent, and a stale one
// must not become the first window the group's flows start from. The live sketches are computed as
// without it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { Aggregator } from '../aggregator/aggregator.ts';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { publishAll, publisher, until } from './aggregator-helpers.ts';
import { corridorRun, sketchItem } from './support/corridor.ts';

const ok = need('mosquitto', 'mosquitto', 'flows-retained');
const GROUP = { group: 'ret-street', site: 'ret', members: ['gw-a', 'gw-b'], horizon: '3m' };

describe.skipIf(!ok)('corridor flows: a retained sketch', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-flows-retained-'));
  let pub: MqttClient;

  beforeAll(async () => {
    await broker.start();
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    await pub?.endAsync().catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('rejects the stored copy at each subscribe, and the flows are those of the live sketches alone', async () => {
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    // a day-old sketch of gw-a, kept by the broker
    const stale = corridorRun({ site: 'ret', group: 'ret-street', startMs: hour - 24 * 3_600_000, windows: 1, label: 'stale' });
    const item = sketchItem(stale.messages[0]);
    await pub.publishAsync(item.topic, item.payload, { qos: 1, retain: true });

    const agg = new Aggregator({
      mqtt: { url: broker.url, clientId: 'flows-retained' },
      out: join(dir, 'flows.lp'),
      http: { port: null },
      logLevel: 'silent',
      corridors: [GROUP],
    });
    const rejected: string[] = [];
    const flows: string[] = [];
    agg.on('rejected', (reason: string) => rejected.push(reason));
    agg.on('flows', (l: string[]) => flows.push(...l));
    try {
      await agg.start();
      await until(
        'the group owned',
        () => agg.flows!.owns('ret-street'),
        (v) => v,
      );
      await until(
        'the stored copy rejected',
        () => rejected.filter((r) => r === 'retained').length,
        (n) => n === 1,
      );

      // 15 live windows two hours ago: intervals 0 and 1 are computed as their sketches come
      const start = hour - 2 * 3_600_000;
      const live = corridorRun({ site: 'ret', group: 'ret-street', startMs: start, windows: 15, label: 'live' });
      await publishAll(pub, live.messages.map(sketchItem), 10);
      await until(
        'intervals 0 and 1 computed',
        () => new Set(flows.map((l) => l.split(' ').at(-1))).size,
        (n) => n === 2,
      );
      const times = [...new Set(flows.map((l) => Number(l.split(' ').at(-1))))].sort((a, b) => a - b);
      expect(times).toEqual([start, start + 5 * 60_000]);

      // a reconnect (broker restart) sends the stored copy again: rejected again, nothing computed from it
      await broker.restart();
      await until(
        'the stored copy rejected again after the reconnect',
        () => rejected.filter((r) => r === 'retained').length,
        (n) => n === 2,
        20_000,
      );
      expect(rejected.filter((r) => r !== 'retained')).toEqual([]);
      expect(new Set(flows.map((l) => l.split(' ').at(-1))).size).toBe(2);
    } finally {
      await agg.stop(2000);
    }
  }, 60_000);
});
