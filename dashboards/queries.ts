// Runs a Grafana dashboard's InfluxQL the way Grafana would, without Grafana: extracts every panel
// query and template-variable query, resolves the variables against the database (SHOW TAG VALUES),
// applies the panel's time overrides (timeShift, timeFrom) and expands $timeFilter, $__interval,
// $__interval_ms, $interval, $__from/$__to, $__range and the dashboard's own variables ($site,
// ${zone}, [[gateway]], ${zone:regex}, ...) with the InfluxDB data source's formatting rules.
//
// Grafana's rules reproduced here (see dashboards/README.md for the sources):
// - $timeFilter -> `time >= <from>ms and time <= <to>ms` (backend influxql models/query.go, Build).
// - $__interval: rangeutil.calculateInterval: roundInterval((to - from) / maxDataPoints), raised to the
//   panel's min interval (panel.interval, else the data source's timeInterval); written with
//   gtime.FormatInterval ("1m", "30s", "2h", "1d", "500ms").
// - A variable that is neither multi nor includeAll is inserted raw; otherwise each value is regex
//   escaped and several values become `(a|b|c)` (InfluxQueryModel.interpolateQueryStr). "All" is the
//   custom allValue when set (inserted unformatted), else every option.
// - timeShift moves the panel's range back; timeFrom replaces it only when the dashboard range is
//   relative (applyPanelTimeOverrides).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { endpointUnder, fetchText, notInfluxQlShape, sentCredentials, withoutSecrets } from '../scripts/lib/http-body.ts';

// ----------------------------------------------------------------------------------------- types

export interface DataSourceRef {
  type?: string;
  uid?: string;
}
export interface Target {
  refId: string;
  query: string;
  rawQuery?: boolean;
  resultFormat?: 'time_series' | 'table' | 'logs';
  alias?: string;
  hide?: boolean;
  datasource?: DataSourceRef;
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  interval?: string;
  maxDataPoints?: number;
  timeShift?: string;
  timeFrom?: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  repeat?: string;
  targets?: Target[];
  panels?: Panel[];
  datasource?: DataSourceRef;
}
export interface VariableOption {
  text: string | string[];
  value: string | string[];
  selected?: boolean;
}
export interface Variable {
  name: string;
  type: 'query' | 'custom' | 'textbox' | 'constant' | 'datasource' | 'interval' | 'adhoc' | 'groupby' | 'system';
  query?: string | { query: string };
  includeAll?: boolean;
  multi?: boolean;
  allValue?: string | null;
  regex?: string;
  current?: Partial<VariableOption>;
  options?: VariableOption[];
}
export interface Dashboard {
  uid: string;
  title: string;
  time?: { from: string; to: string };
  panels: Panel[];
  templating?: { list?: Variable[] };
  [key: string]: unknown;
}

/** A time range in epoch milliseconds, with the raw expressions when it was relative. */
export interface TimeRange {
  from: number;
  to: number;
  raw?: { from: string; to: string };
}

export interface PanelQuery {
  dashboard: string;
  panelId: number;
  panelTitle: string;
  panelType: string;
  refId: string;
  /** The query as written in the dashboard. */
  query: string;
  resultFormat: string;
  /** Panel settings that shape the expansion. */
  interval?: string;
  maxDataPoints?: number;
  timeShift?: string;
  timeFrom?: string;
  /** Width of the panel in grid columns (24 = full width): its resolution when maxDataPoints is unset. */
  width: number;
}
export interface VariableQuery {
  dashboard: string;
  name: string;
  query: string;
}

// ----------------------------------------------------------------------------------------- loading

export function loadDashboard(file: string): Dashboard {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const d = parsed as Dashboard;
  if (!d || typeof d !== 'object' || !Array.isArray(d.panels)) throw new Error(`${file}: no "panels" array; not a dashboard`);
  return d;
}

/** Panels in reading order, rows flattened (a collapsed row keeps its panels inside). */
export function flatPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  for (const p of d.panels) {
    if (p.type === 'row') out.push(...(p.panels ?? []));
    else out.push(p);
  }
  return out;
}

export function variables(d: Dashboard): Variable[] {
  return d.templating?.list ?? [];
}

function variableQueryText(v: Variable): string {
  if (typeof v.query === 'string') return v.query;
  return v.query?.query ?? '';
}

/** Every panel query (hidden ones included) of a dashboard. */
export function panelQueries(d: Dashboard, name = d.uid): PanelQuery[] {
  const out: PanelQuery[] = [];
  for (const p of flatPanels(d)) {
    for (const t of p.targets ?? []) {
      out.push({
        dashboard: name,
        panelId: p.id,
        panelTitle: p.title,
        panelType: p.type,
        refId: t.refId,
        query: t.query,
        resultFormat: t.resultFormat ?? 'time_series',
        interval: p.interval,
        maxDataPoints: p.maxDataPoints,
        timeShift: p.timeShift,
        timeFrom: p.timeFrom,
        width: p.gridPos?.w ?? 24,
      });
    }
  }
  return out;
}

/** Every variable that queries the data source. */
export function variableQueries(d: Dashboard, name = d.uid): VariableQuery[] {
  return variables(d)
    .filter((v) => v.type === 'query')
    .map((v) => ({ dashboard: name, name: v.name, query: variableQueryText(v) }));
}

// ----------------------------------------------------------------------------------------- time

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  M: 2_592_000_000,
  y: 31_536_000_000,
};

/** "1m" -> 60000 (Grafana's rangeutil.intervalToMs; a bare number means seconds). */
export function intervalToMs(text: string): number {
  const s = text.replace(/^>/, '').trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|[smhdwMy])$/.exec(s);
  if (!m) throw new Error(`"${text}" is not an interval (a number and one of ms, s, m, h, d, w, M, y)`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

/** Grafana's rangeutil.roundInterval: a raw interval (ms) to a "nice" one. */
export function roundInterval(ms: number): number {
  const ladder: Array<[number, number]> = [
    [10, 1],
    [15, 10],
    [35, 20],
    [75, 50],
    [150, 100],
    [350, 200],
    [750, 500],
    [1500, 1000],
    [3500, 2000],
    [7500, 5000],
    [12500, 10000],
    [17500, 15000],
    [25000, 20000],
    [45000, 30000],
    [90000, 60000],
    [210000, 120000],
    [450000, 300000],
    [750000, 600000],
    [1050000, 900000],
    [1500000, 1200000],
    [2700000, 1800000],
    [5400000, 3600000],
    [9000000, 7200000],
    [16200000, 10800000],
    [32400000, 21600000],
    [86400000, 43200000],
    [604800000, 86400000],
    [1814400000, 604800000],
    [3628800000, 2592000000],
  ];
  for (const [below, value] of ladder) if (ms < below) return value;
  return 31536000000;
}

/** Go's gtime.FormatInterval, as Grafana's InfluxDB backend writes $__interval. */
export function formatInterval(ms: number): string {
  const steps: Array<[number, string]> = [
    [UNIT_MS.y, 'y'],
    [UNIT_MS.d, 'd'],
    [UNIT_MS.h, 'h'],
    [UNIT_MS.m, 'm'],
    [UNIT_MS.s, 's'],
    [1, 'ms'],
  ];
  for (const [size, unit] of steps) if (ms >= size) return `${Math.floor(ms / size)}${unit}`;
  return '1ms';
}

export interface IntervalOptions {
  /** Panel min interval (panel.interval). */
  minInterval?: string;
  /** Data source min interval (jsonData.timeInterval), used when the panel sets none. */
  dataSourceInterval?: string;
  /** Data points the panel asks for (panel.maxDataPoints, else its width in pixels). */
  maxDataPoints: number;
}

/** Grafana's rangeutil.calculateInterval with the panel / data-source lower limit. */
export function calculateInterval(range: TimeRange, opts: IntervalOptions): { interval: string; intervalMs: number } {
  const low = opts.minInterval ?? opts.dataSourceInterval;
  const lowMs = low ? intervalToMs(low) : 1;
  let intervalMs = roundInterval((range.to - range.from) / Math.max(1, opts.maxDataPoints));
  if (lowMs > intervalMs) intervalMs = lowMs;
  return { interval: formatInterval(intervalMs), intervalMs };
}

/** Resolves a Grafana time expression (now, now-6h, now/d, now-7d/d, ISO, epoch ms) against `now`. */
export function parseTime(expr: string, now: number, roundUp = false): number {
  const e = expr.trim();
  if (/^\d+$/.test(e)) return Number(e);
  if (!e.startsWith('now')) {
    const t = Date.parse(e);
    if (Number.isNaN(t)) throw new Error(`"${expr}" is not a time (now-6h, now/d, ISO 8601 or epoch ms)`);
    return t;
  }
  let t = new Date(now);
  let rest = e.slice(3);
  const re = /^([+-])(\d+)(ms|[smhdwMy])|^\/([smhdwMy])/;
  while (rest.length) {
    const m = re.exec(rest);
    if (!m) throw new Error(`"${expr}" is not a time expression`);
    if (m[4]) t = roundTo(t, m[4], roundUp);
    else {
      const n = Number(m[2]) * (m[1] === '-' ? -1 : 1);
      t = addUnits(t, n, m[3]);
    }
    rest = rest.slice(m[0].length);
  }
  return t.getTime();
}

function addUnits(t: Date, n: number, unit: string): Date {
  const d = new Date(t);
  if (unit === 'M') d.setUTCMonth(d.getUTCMonth() + n);
  else if (unit === 'y') d.setUTCFullYear(d.getUTCFullYear() + n);
  else d.setTime(d.getTime() + n * UNIT_MS[unit]);
  return d;
}

// Rounding uses UTC (a dashboard with timezone "utc"); browsers round in their own zone.
function roundTo(t: Date, unit: string, up: boolean): Date {
  const d = new Date(t);
  const fields: Array<[string, () => void]> = [
    ['y', () => d.setUTCMonth(0, 1)],
    ['M', () => d.setUTCDate(1)],
    ['d', () => d.setUTCHours(0)],
    ['h', () => d.setUTCMinutes(0)],
    ['m', () => d.setUTCSeconds(0)],
    ['s', () => d.setUTCMilliseconds(0)],
  ];
  if (unit === 'w') {
    const day = (d.getUTCDay() + 6) % 7; // weeks start on Monday
    d.setUTCDate(d.getUTCDate() - day);
    d.setUTCHours(0, 0, 0, 0);
  } else {
    let on = false;
    for (const [u, clear] of fields) {
      if (u === unit) on = true;
      if (on) clear();
    }
    if (unit === 'y') d.setUTCHours(0, 0, 0, 0);
    if (unit === 'M' || unit === 'd') d.setUTCHours(0, 0, 0, 0);
    if (unit === 'h') d.setUTCMinutes(0, 0, 0);
    if (unit === 'm') d.setUTCSeconds(0, 0);
  }
  if (up) return new Date(addUnits(d, 1, unit).getTime() - 1);
  return d;
}

/** The dashboard range from expressions like {from: 'now-6h', to: 'now'}. */
export function timeRange(from: string, to: string, now = Date.now()): TimeRange {
  return { from: parseTime(from, now, false), to: parseTime(to, now, true), raw: { from, to } };
}

/** Grafana's applyPanelTimeOverrides: timeFrom (only over a relative range), then timeShift. */
export function panelTimeRange(range: TimeRange, panel: { timeFrom?: string; timeShift?: string }, now = Date.now()): TimeRange {
  let r = range;
  if (panel.timeFrom && r.raw && r.raw.from.startsWith('now')) {
    const from = /^\d/.test(panel.timeFrom) ? `now-${panel.timeFrom}` : panel.timeFrom;
    r = timeRange(from, 'now', now);
  }
  if (panel.timeShift) {
    const shift = panel.timeShift.replace(/\/.*$/, '');
    const ms = intervalToMs(shift);
    r = { from: r.from - ms, to: r.to - ms, raw: r.raw };
  }
  return r;
}

// ----------------------------------------------------------------------------------------- variables

/** The value a variable takes: one string, or several (multi / All). */
export type VariableValue = string | string[];

/** Grafana's escapeRegex (@grafana/data). */
export function escapeRegex(value: string): string {
  return value.replace(/[\\^$*+?.()|[\]{}/]/g, '\\$&');
}

/** The InfluxDB data source's formatting of a variable value in a query. */
export function formatInfluxValue(value: VariableValue, variable: Pick<Variable, 'multi' | 'includeAll'>): string {
  if (!variable.multi && !variable.includeAll) return Array.isArray(value) ? value.join(',') : value;
  if (typeof value === 'string') return escapeRegex(value);
  const escaped = value.map(escapeRegex);
  if (escaped.length === 1) return escaped[0];
  return '(' + escaped.join('|') + ')';
}

function applyFormat(value: VariableValue, format: string): string {
  const arr = Array.isArray(value) ? value : [value];
  switch (format) {
    case 'raw':
      return arr.join(',');
    case 'regex':
      return arr.length === 1 ? escapeRegex(arr[0]) : '(' + arr.map(escapeRegex).join('|') + ')';
    case 'pipe':
      return arr.join('|');
    case 'csv':
      return arr.join(',');
    case 'singlequote':
      return arr.map((v) => `'${v.replace(/'/g, "\\'")}'`).join(',');
    case 'doublequote':
      return arr.map((v) => `"${v.replace(/"/g, '\\"')}"`).join(',');
    case 'sqlstring':
      return arr.map((v) => `'${v.replace(/'/g, "''")}'`).join(',');
    default:
      throw new Error(`unknown variable format ":${format}"`);
  }
}

/** A resolved variable: its definition and the value(s) it currently takes. */
export interface ResolvedVariable {
  variable: Pick<Variable, 'name' | 'multi' | 'includeAll'>;
  value: VariableValue;
  /** Custom all value to insert unformatted (when "All" is selected and allValue is set). */
  raw?: string;
}

export interface Builtins {
  range: TimeRange;
  interval: string;
  intervalMs: number;
}

// $name, ${name}, ${name:format}, [[name]], [[name:format]]
const VAR_RE = /\$(\w+)|\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]/g;

/**
 * Expands one query like Grafana: dashboard variables (frontend templateSrv with the InfluxDB
 * formatter), then $timeFilter / $__interval / $__interval_ms / $interval (backend Build).
 * An unknown variable is an error naming it (Grafana would leave the text and InfluxDB reject it).
 */
export function expandQuery(query: string, vars: Map<string, ResolvedVariable>, builtins?: Builtins): string {
  const b = builtins;
  const builtinValue = (name: string): string | undefined => {
    if (!b) return undefined;
    switch (name) {
      case 'timeFilter':
        return `time >= ${Math.floor(b.range.from)}ms and time <= ${Math.floor(b.range.to)}ms`;
      case '__interval':
      case 'interval':
        return b.interval;
      case '__interval_ms':
        return String(b.intervalMs);
      case '__from':
        return String(Math.floor(b.range.from));
      case '__to':
        return String(Math.floor(b.range.to));
      case '__range_ms':
        return String(Math.floor(b.range.to - b.range.from));
      case '__range_s':
        return String(Math.round((b.range.to - b.range.from) / 1000));
      case '__range':
        return `${Math.round((b.range.to - b.range.from) / 1000)}s`;
      default:
        return undefined;
    }
  };
  return query.replace(VAR_RE, (whole, n1, n2, f2, n3, f3) => {
    const name: string = n1 ?? n2 ?? n3;
    const format: string | undefined = f2 ?? f3;
    const builtin = builtinValue(name);
    if (builtin !== undefined) return builtin;
    const v = vars.get(name);
    if (!v) {
      if (!b && ['timeFilter', '__interval', 'interval', '__interval_ms', '__from', '__to', '__range', '__range_ms', '__range_s'].includes(name)) return whole;
      throw new Error(`query uses $${name}, which is neither a dashboard variable nor a Grafana built-in: ${query}`);
    }
    if (v.raw !== undefined && !format) return v.raw;
    return format ? applyFormat(v.value, format) : formatInfluxValue(v.value, v.variable);
  });
}

// ----------------------------------------------------------------------------------------- InfluxDB

export interface InfluxSeries {
  name?: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

export interface InfluxOptions {
  /** http://host:8086 */
  url: string;
  /** Database (1.x), or a DBRP-mapped bucket name (2.x, 3.x). */
  database: string;
  username?: string;
  password?: string;
  /** API token (2.x / 3.x): sent as `Authorization: Token ...`. */
  token?: string;
  retentionPolicy?: string;
  /** How long one query may take, answer included (default 60 s); past it the query fails (DeadlineError). */
  timeoutMs?: number;
  /** The most bytes an answer may have (default 256 MiB); a longer one is cut off and the query fails (BodyTooLargeError). */
  maxResponseBytes?: number;
}

export const INFLUXQL_TIMEOUT_MS = 60_000;
export const INFLUXQL_MAX_RESPONSE_BYTES = 256 * 2 ** 20;

/** Minimal InfluxQL client over the /query HTTP API (1.x; 2.x and 3.x through their v1 compatibility API). */
export class InfluxQL {
  constructor(readonly opts: InfluxOptions) {}

  async query(q: string): Promise<InfluxSeries[]> {
    const params = new URLSearchParams({ db: this.opts.database, q, epoch: 'ms' });
    if (this.opts.retentionPolicy) params.set('rp', this.opts.retentionPolicy);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (this.opts.token) headers.authorization = `Token ${this.opts.token}`;
    else if (this.opts.username) headers.authorization = `Basic ${Buffer.from(`${this.opts.username}:${this.opts.password ?? ''}`).toString('base64')}`;
    const { res, text } = await fetchText(
      endpointUnder(this.opts.url, 'query'),
      { method: 'POST', headers, body: params.toString() },
      this.opts.timeoutMs ?? INFLUXQL_TIMEOUT_MS,
      this.opts.maxResponseBytes ?? INFLUXQL_MAX_RESPONSE_BYTES,
    );
    // What the server says is shown escaped, less the credentials sent to it (a server may echo them).
    const shown = (t: string) => withoutSecrets(t, sentCredentials(this.opts));
    let body: { results?: Array<{ series?: InfluxSeries[]; error?: string }>; error?: string };
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`InfluxDB answered ${res.status} with something that is not JSON: ${shown(text)}`);
    }
    const shape = notInfluxQlShape(body);
    if (shape) throw new Error(`InfluxDB answered ${res.status} with JSON that is not an InfluxQL result (${shape}): ${shown(text)}`);
    if (!res.ok || body.error) throw new Error(`InfluxDB rejected the query (${res.status}): ${shown(body.error ?? text)}\n  query: ${q}`);
    const r = body.results?.[0];
    if (r?.error) throw new Error(`InfluxDB rejected the query: ${shown(r.error)}\n  query: ${q}`);
    return (r?.series ?? []).map((s) => ({ ...s, values: s.values ?? [] }));
  }

  /** Writes line protocol (precision ns unless given) through /write. */
  async write(lines: string, precision: 'ns' | 'ms' | 's' = 'ns'): Promise<void> {
    const params = new URLSearchParams({ db: this.opts.database, precision });
    const headers: Record<string, string> = { 'content-type': 'text/plain' };
    if (this.opts.token) headers.authorization = `Token ${this.opts.token}`;
    else if (this.opts.username) headers.authorization = `Basic ${Buffer.from(`${this.opts.username}:${this.opts.password ?? ''}`).toString('base64')}`;
    const res = await fetch(endpointUnder(this.opts.url, `write?${params}`), { method: 'POST', headers, body: lines });
    if (res.status !== 204) throw new Error(`InfluxDB refused the write (${res.status}): ${(await res.text()).slice(0, 300)}`);
  }
}

/** Number of data rows (with at least one non-null value besides time) across the series. */
export function countRows(series: InfluxSeries[]): number {
  let n = 0;
  for (const s of series) {
    const timeCol = s.columns.indexOf('time');
    for (const row of s.values ?? []) {
      if (row.some((v, i) => i !== timeCol && v !== null && v !== undefined)) n++;
    }
  }
  return n;
}

// ----------------------------------------------------------------------------------------- running

/** Values of a SHOW TAG VALUES (or any one-column) answer: the "value" column, else the first non-key one. */
export function tagValues(series: InfluxSeries[]): string[] {
  const out = new Set<string>();
  for (const s of series) {
    let col = s.columns.indexOf('value');
    if (col < 0) col = s.columns.findIndex((c) => c !== 'key' && c !== 'time');
    if (col < 0) col = 0;
    for (const row of s.values ?? []) if (row[col] !== null && row[col] !== undefined) out.add(String(row[col]));
  }
  return [...out];
}

function customOptions(v: Variable): string[] {
  // "a,b,c" or "text : value" pairs, comma separated (escaped commas not supported).
  return variableQueryText(v)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (s.includes(' : ') ? s.split(' : ')[1].trim() : s));
}

export interface RunOptions {
  /** Dashboard range; default: the dashboard's own time. */
  range?: TimeRange;
  /** "now" for relative expressions. */
  now?: number;
  /** Values to select per variable instead of the saved current / first option ('$__all' for All). */
  select?: Record<string, VariableValue>;
  /** Data source min interval (jsonData.timeInterval). */
  dataSourceInterval?: string;
  /** Pixels of a full-width panel (resolution when maxDataPoints is unset). Default 1600. */
  screenWidth?: number;
}

export interface VariableResult {
  name: string;
  query: string;
  expanded: string;
  values: string[];
}
export interface QueryResult extends PanelQuery {
  expanded: string;
  range: TimeRange;
  interval: string;
  series: InfluxSeries[];
  rows: number;
  error?: string;
}

/** Resolves the dashboard's variables in order (later ones may use earlier ones), querying InfluxDB. */
export async function resolveVariables(
  d: Dashboard,
  db: InfluxQL,
  range: TimeRange,
  opts: RunOptions = {},
): Promise<{ vars: Map<string, ResolvedVariable>; results: VariableResult[] }> {
  const vars = new Map<string, ResolvedVariable>();
  const results: VariableResult[] = [];
  const builtins: Builtins = { range, interval: '1m', intervalMs: 60_000 };
  for (const v of variables(d)) {
    let options: string[];
    if (v.type === 'datasource') {
      vars.set(v.name, { variable: v, value: 'presence' });
      continue;
    } else if (v.type === 'query') {
      const q = variableQueryText(v);
      const expanded = expandQuery(q, vars, builtins);
      options = tagValues(await db.query(expanded));
      if (v.regex) {
        const m = /^\/(.*)\/([a-z]*)$/.exec(v.regex);
        const re = m ? new RegExp(m[1], m[2]) : new RegExp(v.regex);
        options = options.filter((o) => re.test(o));
      }
      results.push({ name: v.name, query: q, expanded, values: options });
    } else if (v.type === 'custom' || v.type === 'interval') {
      options = customOptions(v);
    } else if (v.type === 'textbox' || v.type === 'constant') {
      const cur = v.current?.value;
      options = [typeof cur === 'string' && cur !== '' ? cur : variableQueryText(v)];
    } else {
      continue;
    }
    const wanted = opts.select?.[v.name] ?? v.current?.value;
    const wantsAll = wanted === '$__all' || (Array.isArray(wanted) && wanted.includes('$__all'));
    let value: VariableValue;
    let raw: string | undefined;
    if (wantsAll && v.includeAll) {
      value = options;
      if (v.allValue) raw = v.allValue;
    } else if (wanted !== undefined && (Array.isArray(wanted) ? wanted.length > 0 : wanted !== '')) {
      value = Array.isArray(wanted) && !v.multi ? wanted[0] : wanted;
    } else {
      value = options[0] ?? '';
    }
    vars.set(v.name, { variable: v, value, raw });
  }
  return { vars, results };
}

/** Expands one panel query for a dashboard range and resolved variables. */
export function expandPanelQuery(
  q: PanelQuery,
  vars: Map<string, ResolvedVariable>,
  range: TimeRange,
  opts: RunOptions = {},
): { expanded: string; range: TimeRange; interval: string } {
  const now = opts.now ?? Date.now();
  const r = panelTimeRange(range, q, now);
  const width = Math.round(((opts.screenWidth ?? 1600) * q.width) / 24);
  const { interval, intervalMs } = calculateInterval(r, {
    minInterval: q.interval,
    dataSourceInterval: opts.dataSourceInterval,
    maxDataPoints: q.maxDataPoints ?? width,
  });
  return { expanded: expandQuery(q.query, vars, { range: r, interval, intervalMs }), range: r, interval };
}

/**
 * Runs every variable query and every panel query of a dashboard against InfluxDB. Errors of single
 * queries are reported in their result (error), not thrown, so one report shows them all.
 */
export async function runDashboard(d: Dashboard, db: InfluxQL, opts: RunOptions = {}): Promise<{ variables: VariableResult[]; queries: QueryResult[] }> {
  const now = opts.now ?? Date.now();
  const range = opts.range ?? timeRange(d.time?.from ?? 'now-6h', d.time?.to ?? 'now', now);
  const { vars, results } = await resolveVariables(d, db, range, opts);
  const queries: QueryResult[] = [];
  for (const q of panelQueries(d)) {
    try {
      const e = expandPanelQuery(q, vars, range, { ...opts, now });
      const series = await db.query(e.expanded);
      queries.push({ ...q, ...e, series, rows: countRows(series) });
    } catch (err) {
      queries.push({ ...q, expanded: '', range, interval: '', series: [], rows: 0, error: (err as Error).message });
    }
  }
  return { variables: results, queries };
}

/** One line per query for logs and test failures. */
export function describeResult(r: QueryResult): string {
  const where = `${r.dashboard} panel ${r.panelId} "${r.panelTitle}" ${r.refId}`;
  if (r.error) return `${where}: ERROR ${r.error}`;
  return `${where}: ${r.rows} rows (interval ${r.interval}) <- ${r.expanded}`;
}

export function dashboardName(file: string): string {
  return basename(file, '.json');
}
