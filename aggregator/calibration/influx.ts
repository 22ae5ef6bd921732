// The stored-series form of calibration: a deployed zone's `estimate` series, read back from
// InfluxDB with InfluxQL (1.x /query; 2.x and 3.x through their v1 compatibility API), paired with
// manual or camera counts (`time;people`). A zone's count in a window is the largest among its
// gateways, as on the crowd dashboard, over the windows they counted whole.
import { InfluxQL, tagValues, type InfluxOptions } from '../../dashboards/queries.ts';
import { PRESENCE } from '../messages.ts';
import { pairPointCounts, type CountedWindow, type PairedWindow } from './pair.ts';
import { TruthError, type PointCount } from './truth.ts';
import { max, min } from './stats.ts';
import { BodyTooLargeError, DeadlineError, serverText } from '../../scripts/lib/http-body.ts';
import { redactUrl, redactUrlsIn } from '../../scripts/lib/secrets.ts';
import { noInfluxQl, unreachableReason } from '../influx-setup.ts';

export interface StoredOptions {
  influx: InfluxOptions;
  site: string;
  zone: string;
  radio?: 'wifi' | 'ble';
  windowMs?: number;
}

/** Tag values as a message shows them: escaped (they are the server's text), the first 20 and how many more. */
function names(values: string[]): string {
  const shown = values.slice(0, 20).map((v) => serverText(v, 63));
  return values.length > 20 ? `${shown.join(', ')} and ${values.length - 20} more` : shown.join(', ');
}

/** An InfluxQL string literal. */
const lit = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

export class StoredSeriesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoredSeriesError';
  }
}

/** What the stored series holds between two times: counted windows, and the starts of suppressed ones. */
export interface StoredWindows {
  windows: CountedWindow[];
  /**
   * Starts of windows in which every point of the zone was suppressed by the gateways' small-count
   * protection (privacy.min_count): their 0 means "fewer than the minimum count", not a count.
   */
  suppressed: number[];
  /**
   * Starts of windows that every gateway of the zone counted cut short (`complete` false: it started,
   * stopped or lost its source inside them): their count covers a part of the window only.
   */
  cutShort: number[];
}

/**
 * The zone's windows between `from` and `to` (ms), one per window length, max over its gateways'
 * whole windows; a window whose points were all suppressed (privacy.min_count), or all cut short, is
 * not a counted window.
 */
export async function storedWindows(db: InfluxQL, o: StoredOptions, from: number, to: number): Promise<StoredWindows> {
  const radio = o.radio ?? 'wifi';
  const winMs = o.windowMs ?? 60_000;
  const sites = tagValues(await db.query(`SHOW TAG VALUES FROM "${PRESENCE}" WITH KEY = "site"`));
  if (!sites.includes(o.site)) {
    throw new StoredSeriesError(
      `site ${o.site} is absent from the stored series (measurement ${PRESENCE} in database ${o.influx.database} holds ${sites.length ? `sites ${names(sites)}` : 'no data'}); fix: check --site and --influx-db`,
    );
  }
  const zones = tagValues(await db.query(`SHOW TAG VALUES FROM "${PRESENCE}" WITH KEY = "zone" WHERE "site" = ${lit(o.site)}`));
  if (!zones.includes(o.zone)) {
    throw new StoredSeriesError(
      `zone ${o.zone} is absent from the stored series of site ${o.site} (zones there: ${names(zones) || 'none'}); fix: check --zone`,
    );
  }
  const where =
    `WHERE "site" = ${lit(o.site)} AND "zone" = ${lit(o.zone)} AND "radio" = ${lit(radio)} ` +
    `AND time >= ${Math.floor(from / winMs) * winMs}ms AND time < ${to}ms`;
  const group = `GROUP BY time(${winMs}ms) fill(none)`;
  // A gateway with several points in most windows counts shorter windows than --window: the max over
  // its points would be calibrated as if it were the count of a whole window (and never applied).
  // (A restart can put two cut-short windows into one; that is not most of them.)
  const perGateway = `SELECT count("estimate") AS "n" FROM "${PRESENCE}" ${where} GROUP BY time(${winMs}ms), "gateway" fill(none)`;
  for (const s of await db.query(perGateway)) {
    const ci = (c: string) => s.columns.indexOf(c);
    const ns = s.values.map((row) => row[ci('n')]).filter((n): n is number => typeof n === 'number');
    const several = ns.filter((n) => n > 1).length;
    if (several > ns.length / 2) {
      throw new StoredSeriesError(
        `gateway ${serverText(s.tags?.gateway ?? '?', 63)} of zone ${o.zone} stored several windows in ${several} of its ${ns.length} windows of --window ${winMs / 1000}s: its windows are shorter; fix: give --window the gateways' window length (gateway.window)`,
      );
    }
  }
  // Whole windows only: a gateway's window cut short (complete=false: it started, stopped or lost its
  // source inside it) counted a part of it, which would be fitted as the count of a whole window.
  const whole = `${where} AND "complete" = true`;
  const q = `SELECT max("estimate") AS "estimate", max("devices") AS "devices", count("estimate") AS "n" FROM "${PRESENCE}" ${whole} ${group}`;
  // Points of gateways with small-count protection that were below it (the `suppressed` field).
  const qs = `SELECT count("estimate") AS "n" FROM "${PRESENCE}" ${whole} AND "suppressed" = true ${group}`;
  const suppressedPoints = new Map<number, number>();
  for (const s of await db.query(qs)) {
    const ci = (c: string) => s.columns.indexOf(c);
    for (const row of s.values) if (typeof row[ci('n')] === 'number') suppressedPoints.set(row[ci('time')] as number, row[ci('n')] as number);
  }
  const windows: CountedWindow[] = [];
  const suppressed: number[] = [];
  const counted = new Set<number>();
  for (const s of await db.query(q)) {
    const ci = (c: string) => s.columns.indexOf(c);
    for (const row of s.values) {
      const start = row[ci('time')];
      const estimate = row[ci('estimate')];
      if (typeof estimate !== 'number') continue;
      // (epoch=ms: every row's time is a number of ms; anything else is no InfluxDB answer to this query)
      if (typeof start !== 'number' || !Number.isFinite(start)) {
        throw new StoredSeriesError(
          `InfluxDB at ${redactUrl(o.influx.url)} answered a window without a time in ms (the query asked for epoch=ms); fix: give --influx-url an InfluxDB (1.x, or 2.x/3.x through the v1 API)`,
        );
      }
      counted.add(start);
      // Every point suppressed: the zone's count is unknown below the minimum, not 0.
      if ((suppressedPoints.get(start) ?? 0) >= (row[ci('n')] as number)) {
        suppressed.push(start);
        continue;
      }
      const devices = row[ci('devices')];
      windows.push({ start, end: start + winMs, estimate, devices: typeof devices === 'number' ? devices : estimate });
    }
  }
  // Windows with points, none of them of a whole window.
  const cutShort: number[] = [];
  for (const s of await db.query(`SELECT count("estimate") AS "n" FROM "${PRESENCE}" ${where} ${group}`)) {
    const ci = (c: string) => s.columns.indexOf(c);
    for (const row of s.values) {
      const start = row[ci('time')];
      if (typeof start === 'number' && typeof row[ci('n')] === 'number' && !counted.has(start)) cutShort.push(start);
    }
  }
  return { windows, suppressed, cutShort };
}

/** An InfluxDB that cannot be reached or refuses the query, as one line naming the URL and the fix. */
function storedError(e: unknown, o: StoredOptions): StoredSeriesError {
  const err = e as Error;
  const url = redactUrl(o.influx.url);
  if (err instanceof DeadlineError) {
    return new StoredSeriesError(
      `InfluxDB at ${url} did not answer a query within ${err.timeoutMs / 1000} s; fix: check that InfluxDB runs there and is not overloaded, or give --influx-timeout a longer time`,
    );
  }
  if (err instanceof BodyTooLargeError) {
    return new StoredSeriesError(
      `InfluxDB at ${url} answered a query with more than ${err.maxBytes / 2 ** 20} MiB (the answer was not read further); fix: check that --influx-url is the InfluxDB that holds the series, or calibrate on counts of a shorter span`,
    );
  }
  if (err.message === 'fetch failed') {
    return new StoredSeriesError(`cannot reach InfluxDB at ${url} (${unreachableReason(e)}); fix: check --influx-url and that InfluxDB runs there`);
  }
  const first = redactUrlsIn(err.message.split('\n')[0]).replace(/^InfluxDB /, '');
  // InfluxDB 1.x with auth answers this when the request carries no Basic credentials it can read:
  // none were given, or a token was sent (1.8 and later take one; 1.7 and older do not).
  const unparsed = /unable to parse authentication credentials/i.test(first);
  const fix = unparsed
    ? o.influx.token
      ? 'InfluxDB 1.7 and older take no token: give its 1.x user and password (--influx-username and --influx-password, or INFLUX_USERNAME and INFLUX_PASSWORD) instead of --influx-token or INFLUX_TOKEN'
      : 'it needs a user and password: give --influx-username and --influx-password (or INFLUX_USERNAME and INFLUX_PASSWORD)'
    : /database not found/i.test(first)
      ? 'check --influx-db'
      : /retention policy not found/i.test(first)
        ? "check --influx-rp, or leave it out to read the database's default retention policy"
        : /auth|401|403/i.test(first)
          ? 'check the credentials (--influx-username/--influx-password or --influx-token)'
          : 'check --influx-url and --influx-db';
  return new StoredSeriesError(`InfluxDB at ${url}: ${first}; fix: ${fix}`);
}

/**
 * Pairs point counts with the stored windows; a count without a stored window is an error naming
 * its line. Counts in windows the gateways suppressed (privacy.min_count) are left out, with a note.
 */
export async function pairStored(counts: PointCount[], truthFile: string, o: StoredOptions, note?: (m: string) => void): Promise<PairedWindow[]> {
  const winMs = o.windowMs ?? 60_000;
  const notInflux = await noInfluxQl(o.influx.url, o.influx.timeoutMs);
  if (notInflux) {
    throw new StoredSeriesError(
      `${notInflux}, so the stored series cannot be read there; fix: give --influx-url the InfluxDB the series is in (1.x, or 2.x/3.x through the v1 API), or calibrate with captures (--capture)`,
    );
  }
  const db = new InfluxQL(o.influx);
  const from = min(counts.map((c) => c.time));
  const to = max(counts.map((c) => c.time)) + winMs;
  const stored = await storedWindows(db, o, from, to).catch((e: unknown) => {
    throw e instanceof StoredSeriesError ? e : storedError(e, o);
  });
  const windows = stored.windows;
  const iso = (t: number) => new Date(t).toISOString();
  // Notes on counts left out, written once the rest pair: a truth file refused below gets its one line only.
  const notes: string[] = [];
  /** Leaves out the counts that fall in the given windows, with a note; all of them left out is the file's one error. */
  const leaveOut = (windowStarts: number[], why: string, allWhy: string, fix: string) => {
    const skip = new Set(windowStarts);
    const left = counts.filter((c) => skip.has(Math.floor(c.time / winMs) * winMs));
    if (!left.length) return;
    notes.push(`${truthFile}: ${left.length} count(s) (first on line ${left[0].line}) ${why}`);
    const out = new Set(left);
    counts = counts.filter((c) => !out.has(c));
    if (counts.length === 0) throw new TruthError(truthFile, null, allWhy, fix);
  };
  leaveOut(
    stored.suppressed,
    'fall in windows whose counts the gateways suppressed (privacy.min_count: fewer devices than the minimum, published as 0); they are left out of the fit, which therefore holds no windows below the minimum count',
    'every count falls in a window the gateways suppressed (privacy.min_count)',
    'count at busier times, or calibrate with captures (--capture)',
  );
  leaveOut(
    stored.cutShort,
    `fall in windows that every gateway of zone ${o.zone} counted cut short (complete=false: it started, stopped or lost its source inside them, so its count covers a part of the window); they are left out of the fit`,
    `every count falls in a window that the gateways of zone ${o.zone} counted cut short (complete=false)`,
    'count while the gateways run, not when they start or stop',
  );
  if (windows.length === 0) {
    throw new TruthError(
      truthFile,
      null,
      `no stored ${o.radio ?? 'wifi'} windows of zone ${o.zone} (site ${o.site}) between ${iso(from)} and ${iso(to)} in ${o.influx.retentionPolicy ? `retention policy ${o.influx.retentionPolicy}` : "the database's default retention policy"}`,
      o.influx.retentionPolicy
        ? 'count at times the gateways were running, in UTC (Z)'
        : 'count at times the gateways were running, in UTC (Z); windows older than that policy keeps (30d: presence influx setup) are gone from it, and windows written to another policy (an old capture loaded with --influx-rp autogen) are read with --influx-rp',
    );
  }
  // No two stored windows within one --window of each other: the gateways count longer windows, and a
  // count would be paired with a part of one (or with none, read as gateways that were down).
  // (suppressed and cut-short windows are stored windows too)
  const starts = [...new Set([...windows.map((w) => w.start), ...stored.suppressed, ...stored.cutShort])].sort((a, b) => a - b);
  if (starts.length >= 2) {
    let gap = Infinity;
    for (let i = 1; i < starts.length; i++) gap = Math.min(gap, starts[i] - starts[i - 1]);
    if (gap > winMs) {
      throw new StoredSeriesError(
        `the stored windows of zone ${o.zone} start at least ${gap / 1000} s apart: --window ${winMs / 1000}s is shorter than the gateways' windows; fix: give --window the gateways' window length (gateway.window)`,
      );
    }
  }
  const { paired, unmatched } = pairPointCounts(windows, counts, o.zone);
  if (unmatched.length) {
    const c = unmatched[0];
    const first = min(windows.map((w) => w.start));
    const last = max(windows.map((w) => w.end));
    // A time written with an offset from UTC is shown as written and in UTC: the offset (a clock's
    // winter offset in summer, say) may be what moved it out, and the UTC time is not in the file.
    const offset = /[+-](\d{2}):?(\d{2})$/.exec(c.written ?? '');
    const shifted = offset !== null && offset[1] + offset[2] !== '0000';
    throw new TruthError(
      truthFile,
      c.line,
      `no stored window of zone ${o.zone} holds ${shifted ? `${c.written} (${iso(c.time)} in UTC)` : iso(c.time)} (${unmatched.length} count(s) without one; stored windows from ${iso(first)} to ${iso(last)}, with gaps where no gateway reported)`,
      shifted
        ? `check that ${offset[0]} is the offset from UTC of the clock that wrote the row (summer time is another offset than winter time), or write times in UTC (Z); then remove counts made while the gateways were down`
        : 'remove counts made while the gateways were down, and write times in UTC (Z)',
    );
  }
  // Every paired window counted nothing on this radio: its gateways do not hear it there (no BLE
  // source, or another radio's zone). The fit would fail on the data without saying why.
  const radio = o.radio ?? 'wifi';
  if (paired.length > 0 && paired.every((p) => p.devices === 0 && p.estimate === 0)) {
    const other = radio === 'wifi' ? 'ble' : 'wifi';
    throw new TruthError(
      truthFile,
      null,
      `every stored ${radio} window of zone ${o.zone} that holds a count (${paired.length}, ${iso(min(paired.map((p) => p.start)))} to ${iso(max(paired.map((p) => p.end)))}) counted 0 devices: its gateways heard no ${radio} there`,
      `calibrate the radio they hear (--radio ${other}), or check the gateways' ${radio} sources`,
    );
  }
  for (const n of notes) note?.(n);
  return paired;
}
