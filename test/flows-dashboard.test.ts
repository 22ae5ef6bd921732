// The traffic dashboard's corridor flow panels against a real influxd: the flow points the
// aggregator's corridor intake writes (from reference sketches of a known run) come back per pair
// with their bounds, and the per-pair table sums what was written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { need } from './support/need.ts';
import { Influxd } from './support/influxd.ts';
import { CorridorFlows, type FlowPointFields } from '../aggregator/flows/intake.ts';
import { InfluxQL, describeResult, loadDashboard, runDashboard, type QueryResult } from '../dashboards/queries.ts';
import { encode, sketchTopic } from '../contract/index.ts';
import { corridorRun } from './support/corridor.ts';
import { countsLines } from '../aggregator/messages.ts';
import { window } from './aggregator-helpers.ts';

const ok = need('influxd', 'influxdb', 'flows-dashboard');
const traffic = loadDashboard(join(import.meta.dirname, '..', 'dashboards', 'traffic.json'));

describe.skipIf(!ok)('traffic dashboard: corridor flow panels (real influxd)', () => {
  const influx = new Influxd('flows');
  const end = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const start = end - 3_600_000;
  const points: FlowPointFields[] = [];
  let queries: QueryResult[] = [];

  beforeAll(async () => {
    await influx.start();
    const flows = new CorridorFlows([{ group: 'main-street', site: 'corridor', members: ['gw-a', 'gw-b'], horizon: 180_000 }], {
      maxAheadMs: 300_000,
      seed: 1,
      onPoint: (p) => points.push(p),
    });
    flows.own('main-street', start);
    const lines: string[] = [];
    for (const s of corridorRun({ site: 'corridor', group: 'main-street', startMs: start, windows: 60, label: 'dash' }).messages) {
      const r = flows.accept(sketchTopic(s.site, s.gateway), encode(s), Date.now());
      if (!r.ok) throw new Error(r.detail);
      lines.push(...r.lines);
    }
    // the dashboard's site variable reads the counts measurement
    for (let i = 0; i < 60; i++)
      for (const gw of ['gw-a', 'gw-b']) lines.push(...countsLines(window('corridor', gw, i, start + i * 60_000, 60_000, gw), start + i * 60_000, null));
    const res = await fetch(`${influx.url}/write?db=flows&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    ({ queries } = await runDashboard(traffic, new InfluxQL({ url: influx.url, database: 'flows' }), {
      range: { from: start, to: end + 60_000 },
      select: { zone: '$__all', gateway: '$__all' },
      dataSourceInterval: '1m',
    }));
  }, 60_000);
  afterAll(async () => {
    await influx.dispose();
  });

  it('every flow panel returns data for both directions, with the bounds', () => {
    const flowQueries = queries.filter((q) => q.query.includes('FROM "flow"'));
    expect(flowQueries.length).toBe(10);
    expect(flowQueries.filter((q) => q.error || q.rows === 0).map(describeResult)).toEqual([]);
    for (const q of flowQueries.filter((x) => x.series.length)) {
      const pairs = q.series.map((s) => `${s.tags?.from}>${s.tags?.to}`).sort();
      expect(pairs).toEqual(['gw-a>gw-b', 'gw-b>gw-a']);
    }
  });

  it('the table sums the written flows per pair', () => {
    const table = queries.find((q) => q.panelTitle.startsWith('Per corridor pair'))!;
    for (const s of table.series) {
      const written = points.filter((p) => p.from === s.tags?.from && p.to === s.tags?.to);
      const flow = s.values[0][s.columns.indexOf('flow')] as number;
      expect(flow).toBeCloseTo(
        written.reduce((n, p) => n + Math.round(p.estimate.count * 100) / 100, 0),
        1,
      );
    }
    expect(points.length).toBeGreaterThanOrEqual(20);
  });
});
