// A corridor group whose gateways stop, with real servers: an aggregator (in process) on a real
// Mosquitto writes the group's flows to a real InfluxDB 1.6.7; after the last sketch, the interval
// still waiting for its horizon is written once the group has been idle for horizon + one interval
// of the aggregator's clock (advanced by calling the timer's check with a later time, not by
// waiting), with the values a run whose gateways came back would write, and no sketch is held.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { Aggregator } from '../aggregator/aggregator.ts';
import { CorridorFlows } from '../aggregator/flows/intake.ts';
import { encode, sketchTopic } from '../contract/index.ts';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { publishAll, publisher, until } from './aggregator-helpers.ts';
import { corridorRun, sketchItem } from './support/corridor.ts';

const ok = need('mosquitto', 'mosquitto', 'flows-idle') && need('influxd', 'influxdb', 'flows-idle');
const GROUP = { group: 'idle-street', site: 'idle', members: ['gw-a', 'gw-b'], horizon: 180_000 };

describe.skipIf(!ok)('corridor flows: a group whose gateways stop', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let pub: MqttClient;

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it('writes the interval left waiting once the group is idle for horizon + one interval, and then holds no sketch', async () => {
    const agg = new Aggregator({
      mqtt: { url: broker.url, clientId: 'flows-idle' },
      influx: { url: influx.url, api: 'v1', database: 'presence' },
      batch: { flushInterval: '100ms' },
      http: { port: 0, host: '127.0.0.1', page: false },
      logLevel: 'error',
      corridors: [{ ...GROUP, horizon: '3m' }],
    });
    const metric = async (name: string) => {
      const text = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : Number.NaN;
    };
    const flowPoints = () => influx.count('flow', 'count', `"site"='idle'`);
    try {
      await agg.start();
      await until(
        'the group owned',
        () => agg.flows!.owns('idle-street'),
        (v) => v,
      );
      // 40 windows two hours ago (8 intervals): 0..6 are written as the sketches come, 7 waits for its horizon
      const start = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000;
      const run = corridorRun({ site: 'idle', group: 'idle-street', startMs: start, windows: 40, label: 'idle' });
      await publishAll(pub, run.messages.map(sketchItem), 10);
      await until(
        'intervals 0..6 written',
        () => flowPoints(),
        (n) => n === 14,
      );
      await until(
        'the sketches held for the interval waiting',
        () => metric('presence_aggregator_sketches_held'),
        (n) => n === 2 * 6,
      );
      expect(await metric('presence_aggregator_flow_intervals_total')).toBe(7);

      // the gateways stop; the aggregator's clock passes horizon + one interval after the last sketch
      const emitted: string[][] = [];
      agg.on('flows', (l: string[]) => emitted.push(l));
      agg.checkCorridorIdle(Date.now() + CorridorFlows.idleLimit(GROUP));
      expect(emitted).toHaveLength(1);
      const lines = emitted[0];
      expect(await metric('presence_aggregator_sketches_held')).toBe(0);
      expect(agg.flows!.held).toBe(0);
      await until(
        'interval 7 written',
        () => flowPoints(),
        (n) => n === 16,
      );

      // the run whose gateways came back later writes the same points for interval 7
      const on = new CorridorFlows([GROUP], { maxAheadMs: 300_000 });
      on.own('idle-street', start);
      const at = start + 90 * 60_000;
      const later = run.messages.slice(0, 2).map((s) => ({
        ...s,
        epoch: Math.floor(at / 3_600_000),
        window_start: new Date(at).toISOString(),
        window_end: new Date(at + 60_000).toISOString(),
      }));
      const expected: string[] = [];
      for (const s of [...run.messages, ...later]) {
        const r = on.accept(sketchTopic(s.site, s.gateway), encode(s), Date.now());
        expect(r.ok).toBe(true);
        if (r.ok) expected.push(...r.lines);
      }
      const t7 = start + 35 * 60_000;
      expect(lines).toEqual(expected.filter((l) => l.endsWith(` ${t7}`)));
      const rows = await influx.rows(`SELECT "from", "to", "count", "travel_median_s" FROM flow WHERE "site"='idle' AND time = ${t7 * 1e6}`);
      expect(rows).toHaveLength(2);
      for (const r of rows) {
        const line = lines.find((l) => l.startsWith(`flow,from=${r.from},site=idle,to=${r.to} `))!;
        expect(line).toContain(`count=${r.count},`);
        expect(line).toContain(`travel_median_s=${r.travel_median_s},`);
      }
    } finally {
      await agg.stop();
    }
  });
});
