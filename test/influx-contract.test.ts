// The stored side of the contract (contract/influx.ts): what the aggregator writes to InfluxDB and
// what the dashboards query use exactly the measurements, tags and fields the contract lists, so
// the names have one source: a field written but not listed, or a dashboard querying a name the
// aggregator does not write, fails here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLOW_MEASUREMENT, GATEWAY_STATUS_MEASUREMENT, INFLUX_SCHEMA, PRESENCE_MEASUREMENT, type Measurement } from '../contract/index.ts';
import { flowLine } from '../aggregator/flows/intake.ts';
import { countsLines, missingLines, statusLines } from '../aggregator/messages.ts';
import { hallCalibration, status, window } from './aggregator-helpers.ts';

/** Measurement, tag keys and field keys of one line of line protocol (no escaped spaces or commas in these test values). */
function parseLine(line: string): { measurement: string; tags: string[]; fields: string[] } {
  const [series, fieldSet] = line.split(' ');
  const [measurement, ...tags] = series.split(',');
  return { measurement, tags: tags.map((t) => t.split('=')[0]), fields: fieldSet.split(',').map((f) => f.split('=')[0]) };
}

const cal = hallCalibration();

describe('InfluxDB names: one source, contract/influx.ts', () => {
  it('every point the aggregator writes uses only the contract measurement, tags and fields, and together they use all of them', () => {
    const t0 = Date.UTC(2026, 2, 10, 16);
    const counts = { ...window('s', 'g', 1, t0, 60_000, 'hall'), wifi: { frames: 9, devices: 5, estimate: 4, rejected: 1, suppressed: false } };
    const st = {
      ...status('s', 'g'),
      zone: 'hall',
      uptime_s: 5,
      queue_depth: 0,
      queue_dropped: 0,
      queue_state: 'ok' as const,
      publish_refused: 0,
      sources: [{ name: 'w', state: 'running' as const, frames_per_s: 1, frames: 9, errors: 0 }],
    };
    const flow = {
      firstWindow: 0,
      windows: 5,
      count: 3,
      countLow: 2,
      countHigh: 4,
      travelMedianS: 60,
      travelMedianLowS: 50,
      travelMedianHighS: 70,
      travelP85S: 90,
      travelP85LowS: 80,
      travelP85HighS: 100,
    };
    const lines = [
      ...countsLines(counts, t0, cal),
      ...statusLines(st, t0),
      ...statusLines(st, t0, false, 3 * 86_400_000),
      ...missingLines('s', 'g', 2, t0),
      flowLine('s', 'a', 'b', t0, flow, 300),
    ];
    const seen = new Map<string, { tags: Set<string>; fields: Set<string> }>();
    for (const line of lines) {
      const { measurement, tags, fields } = parseLine(line);
      expect(Object.keys(INFLUX_SCHEMA), line).toContain(measurement);
      const spec = INFLUX_SCHEMA[measurement as Measurement];
      for (const t of tags) expect(spec.tags, `${line}: tag ${t}`).toContain(t);
      for (const f of fields) expect(spec.fields, `${line}: field ${f}`).toContain(f);
      const s = seen.get(measurement) ?? { tags: new Set(), fields: new Set() };
      for (const t of tags) s.tags.add(t);
      for (const f of fields) s.fields.add(f);
      seen.set(measurement, s);
    }
    for (const [m, spec] of Object.entries(INFLUX_SCHEMA)) {
      expect([...(seen.get(m)?.tags ?? [])].sort(), m).toEqual([...spec.tags].sort());
      expect([...(seen.get(m)?.fields ?? [])].sort(), m).toEqual([...spec.fields].sort());
    }
  });

  it('every dashboard query reads a contract measurement and only its tags and fields', () => {
    let queries = 0;
    for (const file of ['crowd', 'traffic', 'gateways']) {
      const text = readFileSync(join(import.meta.dirname, '..', 'dashboards', `${file}.json`), 'utf8');
      const all = JSON.stringify(JSON.parse(text));
      for (const m of all.matchAll(/"query":"((?:[^"\\]|\\.)*)"/g)) {
        const q = JSON.parse(`"${m[1]}"`) as string;
        const from = [...q.matchAll(/FROM "(\w+)"/g)].map((x) => x[1]);
        if (from.length === 0) continue;
        queries++;
        for (const measurement of from) expect([PRESENCE_MEASUREMENT, GATEWAY_STATUS_MEASUREMENT, FLOW_MEASUREMENT], `${file}: ${q}`).toContain(measurement);
        // quoted names that are neither a measurement nor an alias (AS "x", which an outer query
        // reads from its subqueries) are tags or fields of one of the measurements it reads
        const known = from.flatMap((m) => [...INFLUX_SCHEMA[m as Measurement].tags, ...INFLUX_SCHEMA[m as Measurement].fields]);
        const aliases = new Set([...q.matchAll(/AS "([^"]*)"/g)].map((x) => x[1]));
        const names = q
          .replace(/AS "[^"]*"/g, '')
          .replace(/FROM "\w+"/g, '')
          .matchAll(/"([^"]+)"/g);
        for (const [, name] of names) if (!aliases.has(name) || !/FROM \(/.test(q)) expect(known, `${file}: ${name} in ${q}`).toContain(name);
      }
    }
    expect(queries).toBeGreaterThan(20);
  });
});
