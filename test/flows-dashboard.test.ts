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

describe.skipIf(!ok)('traffic dashboard: flows of a group whose intervals are not 5 minutes (real influxd)', () => {
  // 2-minute windows: an interval is the whole number of windows nearest 5 minutes, 3 windows, 6 minutes.
  const influx = new Influxd('flows');
  const W = 120_000;
  const end = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const start = end - 30 * W;
  const points: FlowPointFields[] = [];
  let queries: QueryResult[] = [];

  beforeAll(async () => {
    await influx.start();
    const flows = new CorridorFlows([{ group: 'long', site: 'corridor', members: ['gw-a', 'gw-b'], horizon: 240_000 }], {
      maxAheadMs: 300_000,
      seed: 1,
      onPoint: (p) => points.push(p),
    });
    flows.own('long', start);
    const lines: string[] = [];
    for (const s of corridorRun({ site: 'corridor', group: 'long', startMs: start, windows: 30, label: 'long', windowMs: W }).messages) {
      const r = flows.accept(sketchTopic(s.site, s.gateway), encode(s), Date.now());
      if (!r.ok) throw new Error(r.detail);
      lines.push(...r.lines);
    }
    for (let i = 0; i < 30; i++)
      for (const gw of ['gw-a', 'gw-b']) lines.push(...countsLines(window('corridor', gw, i, start + i * W, W, gw), start + i * W, null));
    expect(lines.filter((l) => l.startsWith('flow,')).every((l) => /[ ,]interval_s=360[, ]/.test(l))).toBe(true);
    const res = await fetch(`${influx.url}/write?db=flows&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    ({ queries } = await runDashboard(traffic, new InfluxQL({ url: influx.url, database: 'flows' }), {
      range: { from: start, to: end },
      select: { zone: '$__all', gateway: '$__all' },
      dataSourceInterval: '1m',
    }));
  }, 60_000);
  afterAll(async () => {
    await influx.dispose();
  });

  it('the flow panel reads per 5 minutes: a 6-minute interval counts 5/6 of its devices there; the table sums them all', () => {
    expect(points.length).toBeGreaterThanOrEqual(4);
    for (const [ref, field] of [
      ['A', 'count'],
      ['B', 'countLow'],
      ['C', 'countHigh'],
    ] as const) {
      const panel = queries.find((q) => q.panelTitle.startsWith('Flow per corridor pair') && q.refId === ref)!;
      expect(panel.interval, describeResult(panel)).toBe('5m');
      for (const s of panel.series) {
        const written = points.filter((p) => p.from === s.tags?.from && p.to === s.tags?.to);
        const shown = s.values.filter((row) => row[1] !== null);
        // every 5-minute step holds at most one 6-minute interval's start
        expect(shown.map((row) => row[0])).toEqual(written.map((p) => Math.floor(p.startMs / 300_000) * 300_000));
        for (const [i, p] of written.entries())
          expect(shown[i][1] as number, `${ref} ${s.tags?.from}>${s.tags?.to} ${new Date(p.startMs).toISOString()}`).toBeCloseTo(
            (Math.round(p.estimate[field] * 100) / 100) * (300 / 360),
            6,
          );
      }
    }
    const table = queries.find((q) => q.panelTitle.startsWith('Per corridor pair'))!;
    for (const s of table.series) {
      const written = points.filter((p) => p.from === s.tags?.from && p.to === s.tags?.to);
      expect(s.values[0][s.columns.indexOf('flow')] as number).toBeCloseTo(
        written.reduce((n, p) => n + Math.round(p.estimate.count * 100) / 100, 0),
        1,
      );
    }
  });
});
