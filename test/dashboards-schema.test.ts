// The dashboards without Grafana: each file validates against the schema derived from Grafana's
// dashboard types, imports into any Grafana (datasource as an __inputs entry), uses only known
// variables, and the query expansion follows Grafana's rules for InfluxQL.
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import {
  calculateInterval,
  expandQuery,
  formatInterval,
  loadDashboard,
  panelQueries,
  panelTimeRange,
  parseTime,
  roundInterval,
  timeRange,
  variableQueries,
  variables,
  flatPanels,
  type Dashboard,
  type ResolvedVariable,
} from '../dashboards/queries.ts';
import { GATEWAY_STATUS_MEASUREMENT, INFLUX_SCHEMA, type Measurement, PRESENCE_MEASUREMENT } from '../contract/index.ts';

const root = join(import.meta.dirname, '..');
const FILES = ['crowd', 'traffic', 'gateways'];
const schema = JSON.parse(readFileSync(join(root, 'dashboards/schema/dashboard.schema.json'), 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

function errorsOf(d: unknown): string[] {
  if (validate(d)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
}

const dashboards: Record<string, Dashboard> = Object.fromEntries(FILES.map((f) => [f, loadDashboard(join(root, 'dashboards', `${f}.json`))]));

describe.each(FILES)('dashboards/%s.json', (name) => {
  const d = dashboards[name];

  it("validates against the schema derived from Grafana's dashboard types", () => {
    expect(errorsOf(d)).toEqual([]);
  });

  it('imports into any Grafana: the data source is the DS_PRESENCE input, never a fixed uid', () => {
    const inputs = (d.__inputs as Array<{ name: string; type: string; pluginId: string }>) ?? [];
    expect(inputs).toContainEqual(expect.objectContaining({ name: 'DS_PRESENCE', type: 'datasource', pluginId: 'influxdb' }));
    const text = JSON.stringify(d);
    const uids = [...text.matchAll(/"uid":"([^"]*)"/g)].map((m) => m[1]);
    // Every data-source uid is the input (the dashboard uid and the built-in annotation excepted).
    const foreign = uids.filter((u) => u !== '${DS_PRESENCE}' && u !== d.uid && u !== '-- Grafana --');
    expect(foreign).toEqual([]);
    for (const p of flatPanels(d)) {
      expect(p.datasource, `panel ${p.id}`).toEqual({ type: 'influxdb', uid: '${DS_PRESENCE}' });
      for (const t of p.targets ?? []) expect(t.datasource, `panel ${p.id} ${t.refId}`).toEqual({ type: 'influxdb', uid: '${DS_PRESENCE}' });
    }
    // A datasource variable of the same name lets file provisioning resolve ${DS_PRESENCE} too.
    expect(variables(d)).toContainEqual(expect.objectContaining({ name: 'DS_PRESENCE', type: 'datasource', query: 'influxdb' }));
  });

  it('has unique panel ids and a grid without overlaps', () => {
    const all = d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    const ids = all.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of all) {
      const g = p.gridPos!;
      expect(g.x + g.w, `panel ${p.id} runs past column 24`).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          const c = `${x},${y}`;
          expect(cells.has(c), `panel ${p.id} overlaps another at ${c}`).toBe(false);
          cells.add(c);
        }
    }
  });

  it('uses raw InfluxQL with $timeFilter, $__interval and only variables it defines', () => {
    const defined = new Set(variables(d).map((v) => v.name));
    const builtins = new Set([
      'timeFilter',
      '__interval',
      '__interval_ms',
      'interval',
      'tag_zone',
      'tag_gateway',
      'tag_radio',
      'tag_site',
      'tag_from',
      'tag_to',
      'col',
    ]);
    const queries = panelQueries(d);
    expect(queries.length).toBeGreaterThan(0);
    for (const q of queries) {
      const where = `${name} panel ${q.panelId} ${q.refId}`;
      expect(q.query, where).toContain('$timeFilter');
      expect(q.query, where).toMatch(/^SELECT /);
      // GROUP BY time() follows the panel's interval unless it is a fixed bucket: the hourly heat
      // map, or the minute whose windows the "now" panels take the last of.
      for (const g of q.query.matchAll(/GROUP BY time\(([^)]+)\)/g)) expect(['$__interval', '1h', '1m'], where).toContain(g[1]);
      for (const m of q.query.matchAll(/\$\{?(\w+)/g)) expect(defined.has(m[1]) || builtins.has(m[1]), `${where} uses $${m[1]}`).toBe(true);
      // Tag filters go through regex so that multi-value and All selections work.
      for (const v of ['site', 'zone', 'gateway']) if (q.query.includes(`$${v}`)) expect(q.query, where).toContain(`"${v}" =~ /^$${v}$/`);
    }
    for (const v of variableQueries(d)) {
      // Tag values, or (crowd) the zones calibrated in the range: points marked calibrated (suppressed
      // ones too), or with people (points written before the marker).
      if (v.query.startsWith('SELECT'))
        expect(v.query).toMatch(
          /^SELECT DISTINCT\("zone"\) FROM \(SELECT "zone", "calibrated", "people" FROM "presence" WHERE .*\("calibrated" = true OR "people" >= 0\) AND \$timeFilter\)$/,
        );
      else {
        // tag values of a contract measurement, by one of its tags
        const m = /^SHOW TAG VALUES FROM "(\w+)" WITH KEY = "(\w+)"/.exec(v.query);
        expect(m, v.query).not.toBeNull();
        expect([PRESENCE_MEASUREMENT, GATEWAY_STATUS_MEASUREMENT]).toContain(m![1]);
        expect(INFLUX_SCHEMA[m![1] as Measurement].tags as readonly string[]).toContain(m![2]);
      }
    }
  });

  it('expands every query without leftovers for a sample selection', () => {
    const vars = new Map<string, ResolvedVariable>();
    for (const v of variables(d)) vars.set(v.name, { variable: v, value: v.includeAll ? ['a', 'b'] : v.name === 'capacity' ? '1000' : 'x' });
    const range = timeRange('2026-04-27T10:00:00Z', '2026-04-27T11:00:00Z');
    for (const q of panelQueries(d)) {
      const out = expandQuery(q.query, vars, { range, interval: '1m', intervalMs: 60000 });
      expect(out, `${name} panel ${q.panelId}`).not.toMatch(/\$(?!tag_|col)\w|\[\[/);
    }
  });
});

describe('the crowd, traffic and gateway dashboards cover the issue', () => {
  const types = (d: Dashboard) => flatPanels(d).map((p) => p.type);
  it('crowd: per-zone count with capacity thresholds, last hours, hourly heat map, Wi-Fi and BLE side by side', () => {
    const d = dashboards.crowd;
    expect(types(d)).toEqual(expect.arrayContaining(['stat', 'bargauge', 'timeseries', 'heatmap']));
    const qs = panelQueries(d).map((q) => q.query);
    expect(qs.some((q) => q.includes('$capacity'))).toBe(true);
    expect(qs.some((q) => q.includes(`"radio" = 'wifi'`)) && qs.some((q) => q.includes(`"radio" = 'ble'`))).toBe(true);
    expect(qs.some((q) => q.includes('GROUP BY time(1h)'))).toBe(true);
    expect(variables(d).map((v) => v.name)).toEqual(expect.arrayContaining(['site', 'zone', 'capacity']));
  });
  it('crowd: people only from calibrated fields, with the interval as a band; a count of devices is never called people', () => {
    const d = dashboards.crowd;
    for (const p of flatPanels(d)) {
      for (const t of p.targets ?? []) {
        const where = `crowd panel ${p.id} ${t.refId}`;
        const readsCounts = /"(estimate|devices)"/.test(t.query);
        const readsPeople = /"people(_low|_high)?"/.test(t.query);
        expect(readsCounts && readsPeople, `${where} mixes people and counts`).toBe(false);
        if (readsCounts) {
          // Labelled as devices or addresses, never as people.
          expect(`${t.alias ?? ''}`, where).not.toMatch(/people/i);
          expect(`${p.title} ${t.alias ?? ''}`, where).toMatch(/devices|addresses|capacity/i);
          // Outside the panels that show addresses against the estimate, counts are only of uncalibrated zones.
          if (!/distinct addresses/.test(p.title ?? '') && !/"capacity"/.test(t.query)) expect(t.query, where).toContain('!~ /^$calibrated_wifi$/');
        }
      }
    }
    const band = flatPanels(d).find((p) => p.targets?.some((t) => t.query.includes('"people_low"')));
    expect(band, 'a panel plots people_low / people_high').toBeTruthy();
    expect(band!.repeat).toBe('zone');
    const overrides = JSON.stringify((band as any).fieldConfig.overrides);
    for (const r of ['wifi', 'ble']) expect(overrides).toContain(`{"id":"custom.fillBelowTo","value":"${r} low"}`);
    expect(
      variables(d)
        .filter((v) => v.name.startsWith('calibrated_'))
        .map((v) => [v.name, (v as { hide?: number }).hide, v.includeAll]),
    ).toEqual([
      ['calibrated_wifi', 2, true],
      ['calibrated_ble', 2, true],
    ]);
  });
  it('every series of counts is named for what it counts: "distinct addresses" (devices), "devices" (estimate), never people or a bare "estimate"', () => {
    for (const name of FILES)
      for (const p of flatPanels(dashboards[name]))
        for (const t of p.targets ?? []) {
          const where = `${name} panel ${p.id} ${t.refId}`;
          // The columns of the outer SELECT that read a count per window, and the series names they get.
          const select = /^SELECT (.*?) FROM /.exec(t.query)![1];
          for (const m of select.matchAll(/(?:max|min|last|mean)\("(devices|estimate)"\)(?! \*)(?: AS "([^"]+)")?/g)) {
            const column = m[2] ?? m[0].replace(/\(.*/, '');
            const series = t.alias ? t.alias.replace('$col', column) : `${p.title} ${column}`;
            if (m[1] === 'devices') expect(series, where).toMatch(/distinct addresses/);
            else expect(series, where).toMatch(/devices/);
            expect(series, where).not.toMatch(/people|\bestimate\b(?! \()/);
          }
        }
  });
  it('crowd: only people are coloured against the capacity; a count of devices (uncalibrated) keeps a fixed colour', () => {
    type Override = { matcher: { id: string; options: string }; properties: Array<{ id: string; value: any }> };
    const capacity = flatPanels(dashboards.crowd).filter((p) => p.targets?.some((t) => t.query.includes('$capacity')));
    expect(capacity.length).toBeGreaterThanOrEqual(2);
    for (const p of capacity) {
      const overrides = ((p as any).fieldConfig?.overrides ?? []) as Override[];
      for (const t of p.targets ?? []) {
        if (!t.alias || !/"estimate"/.test(t.query)) continue;
        const series = t.alias.replace(/\$tag_\w+/g, 'x');
        const o = overrides.find((x) => (x.matcher.id === 'byRegexp' ? new RegExp(x.matcher.options).test(series) : x.matcher.options === series));
        expect(o?.properties.find((x) => x.id === 'color')?.value, `panel ${p.id} ${t.refId} "${t.alias}"`).toMatchObject({ mode: 'fixed' });
      }
    }
  });
  it('a time series of the largest count per $__interval says that one point can cover several windows', () => {
    for (const name of FILES)
      for (const p of flatPanels(dashboards[name]))
        if (
          p.type === 'timeseries' &&
          p.targets?.some((t) => /max\("(estimate|people|devices)"\)/.test(t.query) && t.query.includes('GROUP BY time($__interval)'))
        )
          expect((p as { description?: string }).description, `${name} panel ${p.id}`).toMatch(/one point covers several windows .* the largest of them/);
  });
  it('traffic: per corridor and gateway, and the same query shifted by 7 days', () => {
    const d = dashboards.traffic;
    const shifted = flatPanels(d).filter((p) => p.timeShift === '7d');
    expect(shifted.length).toBeGreaterThan(0);
    for (const p of shifted) {
      const twin = flatPanels(d).find((o) => o !== p && !o.timeShift && o.targets?.[0].query === p.targets?.[0].query);
      expect(twin, `panel ${p.id} has an unshifted twin`).toBeTruthy();
    }
    expect(variables(d).map((v) => v.name)).toEqual(expect.arrayContaining(['site', 'zone', 'gateway']));
  });
  it('traffic: a panel of the estimate says it counts devices, not people, in its title and in every series name', () => {
    const counts = flatPanels(dashboards.traffic).filter((p) => p.targets?.some((t) => /"estimate"/.test(t.query ?? '')));
    expect(counts.length).toBeGreaterThanOrEqual(6);
    for (const p of counts) {
      expect(p.title, `panel ${p.id}`).toMatch(/devices/i);
      expect(p.title, `panel ${p.id}`).not.toMatch(/(?<!not )people/);
      for (const t of p.targets ?? []) if (t.alias && /"estimate"/.test(t.query ?? '')) expect(t.alias, `panel ${p.id}`).toMatch(/ devices\b/);
    }
  });
  it('no title, of a panel or a row, claims a privacy property: the corridor flows row says its sketches are noisy and link a device within an epoch, not that they are private', () => {
    // A sketch is differentially private per sketch only: a device that stays sets the same bit in
    // every sketch of its group for an epoch (PRIVACY.md, "Corridor sketches"), so its epsilon adds up.
    for (const name of FILES) {
      const all = dashboards[name].panels.flatMap((p) => [p, ...(p.panels ?? [])]);
      for (const p of all) expect(p.title ?? '', `${name} panel ${p.id}`).not.toMatch(/\b(private|privacy|anonym\w*|untrack\w*|untraceable)\b/i);
    }
    const row = dashboards.traffic.panels.find((p) => p.type === 'row' && /corridor flows/i.test(p.title ?? ''));
    expect(row?.title).toMatch(/noisy sketches/);
    expect(row?.title).toMatch(/link/);
  });
  it('traffic: each time series of devices marks suppressed windows with bars on a hidden axis, named "suppressed (< k)"', () => {
    const series = flatPanels(dashboards.traffic).filter((p) => p.type === 'timeseries' && p.targets?.some((t) => /max\("estimate"\)/.test(t.query ?? '')));
    expect(series.length).toBe(3);
    for (const p of series) {
      const bars = p.targets!.find((t) => /count\("suppressed"\).*"suppressed" = true/.test(t.query ?? ''));
      expect(bars, `panel ${p.id}`).toBeTruthy();
      expect(bars!.alias).toMatch(/ suppressed \(< k\)/);
      const overrides = (
        p as { fieldConfig?: { overrides?: Array<{ matcher: { id: string; options: string }; properties: Array<{ id: string; value: unknown }> }> } }
      ).fieldConfig?.overrides;
      const o = (overrides ?? []).find((x) => x.matcher.id === 'byRegexp' && new RegExp(x.matcher.options).test(bars!.alias!.replace(/\$tag_\w+/g, 'x')));
      expect(o, `panel ${p.id}: an override for the bars`).toBeTruthy();
      const props = Object.fromEntries(o!.properties.map((x) => [x.id, x.value]));
      expect(props).toMatchObject({ 'custom.drawStyle': 'bars', 'custom.axisPlacement': 'hidden', max: 1 });
    }
  });
  it('gateways: online, last seen, frames/s, errors, queue depth, missing windows', () => {
    const all = panelQueries(dashboards.gateways)
      .map((q) => q.query)
      .join('\n');
    for (const f of ['"up"', '"frames_per_s"', '"frames"', '"errors"', '"queue_depth"', '"missing_windows"']) expect(all).toContain(f);
  });
});

describe('the schema rejects what Grafana would not load', () => {
  const good = dashboards.crowd;
  const broken = (mutate: (d: any) => void): any => {
    const d = structuredClone(good) as any;
    mutate(d);
    return d;
  };
  it.each([
    ['no title', (d: any) => delete d.title],
    ['a uid longer than 40 characters', (d: any) => (d.uid = 'x'.repeat(41))],
    ['a panel without gridPos', (d: any) => delete d.panels[1].gridPos],
    ['a panel wider than the grid', (d: any) => (d.panels[1].gridPos.w = 25)],
    ['an unknown panel key (typo)', (d: any) => (d.panels[1].tragets = [])],
    ['a target without refId', (d: any) => delete d.panels[1].targets[0].refId],
    ['a builder (non-raw) target', (d: any) => (d.panels[1].targets[0].rawQuery = false)],
    ['an unknown result format', (d: any) => (d.panels[1].targets[0].resultFormat = 'csv')],
    ['a threshold step without colour', (d: any) => delete d.panels[1].fieldConfig.defaults.thresholds.steps[0].color],
    ['a query variable without datasource', (d: any) => delete d.templating.list[1].datasource],
    ['a variable with an unknown type', (d: any) => (d.templating.list[1].type = 'dropdown')],
    ['a bad time expression', (d: any) => (d.time.from = 'six hours ago')],
    ['a datasource input without plugin', (d: any) => delete d.__inputs[0].pluginId],
    ['a bad timeShift', (d: any) => (d.panels[1].timeShift = 'a week')],
  ])('%s', (_what, mutate) => {
    expect(errorsOf(broken(mutate)).length).toBeGreaterThan(0);
  });
});

describe('provisioning files', () => {
  it('datasource: one InfluxQL data source with a database and a min interval', () => {
    const y = YAML.parse(readFileSync(join(root, 'dashboards/provisioning/datasources/presence.yaml'), 'utf8'));
    expect(y.apiVersion).toBe(1);
    expect(y.datasources).toHaveLength(1);
    const ds = y.datasources[0];
    expect(ds).toMatchObject({ type: 'influxdb', access: 'proxy', jsonData: { dbName: 'presence', httpMode: 'POST' } });
    expect(ds.url).toMatch(/^https?:\/\//);
    expect(ds.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
  });
  it('dashboards: a file provider', () => {
    const y = YAML.parse(readFileSync(join(root, 'dashboards/provisioning/dashboards/presence.yaml'), 'utf8'));
    expect(y.apiVersion).toBe(1);
    expect(y.providers[0]).toMatchObject({ type: 'file', options: { path: expect.any(String) } });
  });
});

describe('query expansion follows Grafana', () => {
  const v = (name: string, value: string | string[], multi = false, includeAll = false, raw?: string): [string, ResolvedVariable] => [
    name,
    { variable: { name, multi, includeAll }, value, raw },
  ];

  it("$timeFilter is the backend's epoch-ms range", () => {
    const range = { from: 1777284000000, to: 1777287600000 };
    expect(expandQuery('WHERE $timeFilter', new Map(), { range, interval: '1m', intervalMs: 60000 })).toBe(
      'WHERE time >= 1777284000000ms and time <= 1777287600000ms',
    );
  });

  it('single values are raw, multi and All are escaped regex alternations', () => {
    const vars = new Map([v('site', 'dam'), v('zone', ['a.1', 'b']), v('gateway', ['g1'], true, true), v('any', ['x', 'y'], true, true, '.*')]);
    expect(expandQuery(`"site" =~ /^$site$/`, vars)).toBe('"site" =~ /^dam$/');
    expect(expandQuery(`"zone" =~ /^\${zone}$/`, new Map([v('zone', ['a.1', 'b'], true)]))).toBe('"zone" =~ /^(a\\.1|b)$/');
    expect(expandQuery(`"gateway" =~ /^[[gateway]]$/`, vars)).toBe('"gateway" =~ /^g1$/');
    expect(expandQuery(`"x" =~ /^$any$/`, vars)).toBe('"x" =~ /^.*$/');
    expect(expandQuery(`\${zone:csv}`, vars)).toBe('a.1,b');
    expect(() => expandQuery('$nope', vars)).toThrow(/\$nope/);
  });

  it('$__interval: rounded range / resolution, raised to the min interval, written like Grafana', () => {
    const six = { from: 0, to: 6 * 3600_000 };
    expect(calculateInterval(six, { maxDataPoints: 1600 })).toEqual({ interval: '15s', intervalMs: 15000 });
    expect(calculateInterval(six, { maxDataPoints: 1600, minInterval: '1m' })).toEqual({ interval: '1m', intervalMs: 60000 });
    expect(calculateInterval({ from: 0, to: 7 * 86400_000 }, { maxDataPoints: 800 })).toEqual({ interval: '15m', intervalMs: 900000 });
    expect(roundInterval(5)).toBe(1);
    expect(roundInterval(100_000)).toBe(120_000);
    expect(formatInterval(500)).toBe('500ms');
    expect(formatInterval(3 * 3600_000)).toBe('3h');
    expect(formatInterval(86400_000)).toBe('1d');
  });

  it('panel timeShift moves the range back; timeFrom only applies over a relative range', () => {
    const now = Date.parse('2026-11-23T12:34:56Z');
    expect(parseTime('now/d', now)).toBe(Date.parse('2026-11-23T00:00:00Z'));
    expect(parseTime('now-7d/d', now)).toBe(Date.parse('2026-11-16T00:00:00Z'));
    expect(parseTime('now/d', now, true)).toBe(Date.parse('2026-11-23T23:59:59.999Z'));
    const today = timeRange('now/d', 'now', now);
    const shifted = panelTimeRange(today, { timeShift: '7d' }, now);
    expect(shifted.from).toBe(Date.parse('2026-11-16T00:00:00Z'));
    expect(shifted.to).toBe(Date.parse('2026-11-16T12:34:56Z'));
    expect(panelTimeRange(today, { timeFrom: '1h' }, now).from).toBe(now - 3600_000);
    const absolute = timeRange('2026-11-20T00:00:00Z', '2026-11-21T00:00:00Z', now);
    expect(panelTimeRange(absolute, { timeFrom: '1h' }, now).from).toBe(absolute.from);
  });
});
