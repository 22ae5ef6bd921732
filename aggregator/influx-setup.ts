// `presence influx setup`: retention for the stored counts. InfluxDB 1.x: the database, two
// retention policies and a continuous query, created over the HTTP API (/query), idempotently:
//
//   detail   (DEFAULT, e.g. 30d)  what the aggregator writes (it names no policy) and what the
//                                dashboards read (their queries name none): the 1-minute windows.
//   hourly   (e.g. 400d)         hourly aggregates, written by the continuous query presence_hourly
//                                from detail: mean and max of devices, estimate and people, the sum
//                                of frames and the number of windows, per site, zone, gateway and radio;
//                                every run recomputes the last day's hours (RESAMPLE FOR 1d), so
//                                windows written late reach it too.
//
// Detail older than its duration is deleted by InfluxDB itself (the retention service), so 1-minute
// data does not outlive the policy. gateway_status stays in detail only. Running it again changes
// the durations to the ones given (ALTER) and recreates the continuous query: the result is the same.
// InfluxDB 2.x and 3.x: prints the exact commands (buckets with retention, the InfluxQL mapping,
// a Flux task for 2.x); it does not call their APIs.
import { exitUsage } from '../scripts/lib/usage.ts';
import { type Command, Option } from 'commander';
import { influxCredentials, influxUrlProblem, readSecretFile, redactUrl, redactUrlsIn } from '../scripts/lib/secrets.ts';
import { durationMs, parseDuration, TIMER_MAX_MS } from '../scripts/lib/duration.ts';
import { BodyTooLargeError, DeadlineError, endpointUnder, fetchText, notInfluxQlShape, sentCredentials, withoutSecrets } from '../scripts/lib/http-body.ts';

export const DETAIL_RP = 'detail';
export const HOURLY_RP = 'hourly';
export const HOURLY_CQ = 'presence_hourly';
const MEASUREMENT = 'presence';
const HOUR_MS = 3_600_000;

export interface SetupOptions {
  url: string;
  database: string;
  /** Duration of the 1-minute detail (ms). */
  detailMs: number;
  /** Duration of the hourly aggregates (ms). */
  hourlyMs: number;
  username?: string;
  password?: string;
  /** How long one query may take, its answer included (default SETUP_QUERY_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** An InfluxQL identifier, double-quoted. */
export function ident(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * The longest retention: InfluxDB keeps a duration in 64-bit nanoseconds (at most 2^63 - 1, about
 * 106,751.99 days); a longer one (99999999d) was taken without a word and stored as another
 * (1923246h25m, its nanoseconds wrapped).
 */
export const RETENTION_MAX_DAYS = 106_751;

const TOO_LONG = `at most ${RETENTION_MAX_DAYS}d (about 292 years: InfluxDB keeps a duration in 64-bit nanoseconds)`;

/** What a retention of `ms` must be, for the line that refuses it; null when InfluxDB takes it. */
export function retentionRule(ms: number): string | null {
  // too long first: 99999999999999999999d is no whole number of hours in a double, and was told so
  if (ms > RETENTION_MAX_DAYS * 24 * HOUR_MS) return TOO_LONG;
  if (!(ms >= 2 * HOUR_MS) || ms % HOUR_MS !== 0) return 'whole hours or days, at least 2h';
  return null;
}

/** An InfluxQL duration literal of whole hours or days: 30d, 36h. */
export function influxDuration(ms: number): string {
  const rule = retentionRule(ms);
  if (rule === TOO_LONG) throw new Error(`a retention must be ${TOO_LONG}`);
  if (rule) throw new Error(`a retention must be whole hours, at least 2h (got ${ms} ms)`);
  return ms % (24 * HOUR_MS) === 0 ? `${ms / (24 * HOUR_MS)}d` : `${ms / HOUR_MS}h`;
}

/** The SELECT ... INTO of the continuous query (without its time range and GROUP BY). */
export function hourlySelect(db: string): string {
  const from = `${ident(db)}.${ident(DETAIL_RP)}.${ident(MEASUREMENT)}`;
  const into = `${ident(db)}.${ident(HOURLY_RP)}.${ident(MEASUREMENT)}`;
  return (
    'SELECT mean("devices") AS "devices", max("devices") AS "devices_max", mean("estimate") AS "estimate", max("estimate") AS "estimate_max", ' +
    'mean("people") AS "people", max("people") AS "people_max", sum("frames") AS "frames", count("estimate") AS "windows" ' +
    `INTO ${into} FROM ${from}`
  );
}

/** GROUP BY of the continuous query: hours, every tag kept. */
export const HOURLY_GROUP_BY = 'GROUP BY time(1h), *';

/**
 * How far back every run of the continuous query recomputes. Without it InfluxDB computes each hour
 * once, when it ends, and never again: windows that reach the database later (a gateway's queue
 * sent after an outage, an aggregator catching up on the broker's backlog) were in detail but never
 * in hourly. Each run now recomputes the last day's hours (the same series and times: the rows are
 * replaced, not added).
 */
export const HOURLY_RESAMPLE = 'RESAMPLE FOR 1d';

/** The statements setup runs, in order, given what exists already. */
export function setupStatements(o: SetupOptions, existing: { policies: Map<string, number>; cqs: Set<string> }): string[] {
  const db = ident(o.database);
  const out = [`CREATE DATABASE ${db}`];
  const policy = (name: string, ms: number, isDefault: boolean) => {
    const d = influxDuration(ms);
    // A policy shortened below 7 days gets the shard duration InfluxDB gives a new one of that length
    // (1h under 2 days, else 1d), its shards may be 168h (a policy made by hand, or first with a
    // longer duration), and InfluxDB refuses a duration shorter than the shards ('retention policy
    // duration must be greater than the shard duration': --detail 2h on an existing database).
    // One lengthened from below 7 days gets InfluxDB's shards for its new length too (1d up to 180
    // days, else 7d), not the 1h or 1d given when it was short (2h then 30d: 720 shard groups, not 30).
    const before = existing.policies.get(name);
    const wasShort = before !== undefined && before > 0 && before < 7 * 24 * HOUR_MS;
    const shardOf = (d: number) => (d < 48 * HOUR_MS ? '1h' : d < 180 * 24 * HOUR_MS ? '1d' : '7d');
    const shard = ms < 7 * 24 * HOUR_MS || wasShort ? ` SHARD DURATION ${shardOf(ms)}` : '';
    if (existing.policies.has(name)) out.push(`ALTER RETENTION POLICY ${ident(name)} ON ${db} DURATION ${d}${shard}${isDefault ? ' DEFAULT' : ''}`);
    else out.push(`CREATE RETENTION POLICY ${ident(name)} ON ${db} DURATION ${d} REPLICATION 1${isDefault ? ' DEFAULT' : ''}`);
  };
  policy(DETAIL_RP, o.detailMs, true);
  policy(HOURLY_RP, o.hourlyMs, false);
  if (existing.cqs.has(HOURLY_CQ)) out.push(`DROP CONTINUOUS QUERY ${ident(HOURLY_CQ)} ON ${db}`);
  out.push(`CREATE CONTINUOUS QUERY ${ident(HOURLY_CQ)} ON ${db} ${HOURLY_RESAMPLE} BEGIN ${hourlySelect(o.database)} ${HOURLY_GROUP_BY} END`);
  return out;
}

/** "720h0m0s" (SHOW RETENTION POLICIES) in ms, read with the one duration parser; "0s" is infinite (0). */
export function parseInfluxDuration(text: string): number {
  const ms = durationMs(text, { zero: true });
  return Number.isNaN(ms) ? 0 : ms;
}

interface QueryResult {
  results?: Array<{ error?: string; series?: Array<{ name?: string; columns: string[]; values?: unknown[][] }> }>;
  error?: string;
}

/** Why a fetch found no server, by name: fetch says only "fetch failed", the reason is its cause
 *  (ECONNREFUSED, ENOTFOUND, "bad port" for a port fetch refuses to use); URLs in it redacted. */
export function unreachableReason(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  // Node's fetch refuses the Fetch standard's blocked ports (1, 6000 of X11, 10080, ...) before any
  // connection; InfluxDB may well listen there, and the aggregator's own writes (node:http) would reach it.
  if (!cause?.code && cause?.message === 'bad port') return BAD_PORT;
  return redactUrlsIn(cause?.code ?? cause?.message ?? (e as Error).message);
}

export const BAD_PORT =
  "bad port: one of the ports the Fetch standard blocks (1, 6000, 6665-6669, 10080 and others; https://fetch.spec.whatwg.org/#port-blocking), which this command's HTTP client (Node's fetch) will not connect to; run InfluxDB on another port";

export interface ServerInfo {
  /** X-Influxdb-Version of /ping, null when the server sends none (VictoriaMetrics). */
  version: string | null;
  major: number | null;
  minor: number | null;
}

/** Asks /ping who answers (the aggregator's start-up check, the demo, setup and calibrate). */
export async function detectServer(url: string, timeoutMs: number): Promise<ServerInfo | { unreachable: string }> {
  let res: Response;
  try {
    res = await fetch(endpointUnder(url, 'ping'), { signal: AbortSignal.timeout(timeoutMs) });
    // Only the status and headers count: a body (none from InfluxDB) is not read, however long.
    await res.body?.cancel();
  } catch (e) {
    return { unreachable: unreachableReason(e) };
  }
  if (!res.ok) return { unreachable: `/ping answered ${res.status}` };
  const version = res.headers.get('x-influxdb-version');
  const m = version ? /^v?(\d+)\.(\d+)/.exec(version) : null;
  return { version, major: m ? Number(m[1]) : null, minor: m ? Number(m[2]) : null };
}

/**
 * Why the server at `url` runs no InfluxQL although it answers: its /ping has no X-Influxdb-Version,
 * as VictoriaMetrics' does. VictoriaMetrics answers every /query with one made-up database,
 * "_internal", so a setup "succeeded" and a stored series was "absent, the site holds _internal".
 * Null when the server names a version, or does not answer /ping (the query then says why).
 */
export async function noInfluxQl(url: string, timeoutMs = 10_000): Promise<string | null> {
  // /ping waits at most 10 s, or the --influx-timeout of the command when that is shorter: a server
  // that answers nothing took 10 s more than the timeout given before its query timed out.
  const server = await detectServer(url, Math.min(timeoutMs, 10_000));
  if ('unreachable' in server || server.version) return null;
  return `${redactUrl(url)} answers /ping without X-Influxdb-Version, as VictoriaMetrics does, not as InfluxDB: it runs no InfluxQL (every query gets the same made-up answer)`;
}

/** How long one setup or start-up query may take, its answer included (InfluxQl's default). */
export const SETUP_QUERY_TIMEOUT_MS = 60_000;
/** The longest answer read (SHOW DATABASES, RETENTION POLICIES, CONTINUOUS QUERIES: a few kB). */
const SETUP_ANSWER_MAX_BYTES = 16 * 2 ** 20;

/**
 * A statement InfluxDB answered with an error: `status` is the HTTP status (401: no credentials or
 * wrong ones, 403: no rights), `said` what the server said (credentials shown as ***). Its message is
 * the setup's, with what to do in `presence influx setup`'s flags; a caller with other ways to give
 * credentials (the demo's environment variables) says its own from these.
 */
export class InfluxQlRefusal extends Error {
  override name = 'InfluxQlRefusal';
  constructor(
    message: string,
    readonly status: number,
    readonly said: string,
  ) {
    super(message);
  }
}

/** A small InfluxDB 1.x /query client (POST for statements that change something). */
export class InfluxQl {
  constructor(private readonly o: Pick<SetupOptions, 'url' | 'username' | 'password' | 'timeoutMs'>) {}

  async run(q: string, db?: string): Promise<QueryResult> {
    const params = new URLSearchParams({ q });
    if (db) params.set('db', db);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (this.o.username) headers.authorization = `Basic ${Buffer.from(`${this.o.username}:${this.o.password ?? ''}`).toString('base64')}`;
    let res: Response;
    let text: string;
    try {
      ({ res, text } = await fetchText(
        endpointUnder(this.o.url, 'query'),
        { method: 'POST', headers, body: params },
        this.o.timeoutMs ?? SETUP_QUERY_TIMEOUT_MS,
        SETUP_ANSWER_MAX_BYTES,
      ));
    } catch (e) {
      if (e instanceof DeadlineError)
        throw new Error(
          `InfluxDB at ${redactUrl(this.o.url)} did not answer "${q}" within ${e.timeoutMs / 1000} s; check that influxd runs there and is not overloaded`,
        );
      if (e instanceof BodyTooLargeError)
        throw new Error(
          `InfluxDB at ${redactUrl(this.o.url)} answered "${q}" with more than ${e.maxBytes / 2 ** 20} MiB; check that --influx-url is an InfluxDB 1.x`,
        );
      throw new Error(
        `InfluxDB at ${redactUrl(this.o.url)} cannot be reached: ${unreachableReason(e)}; check the host and port in --influx-url and that influxd runs there`,
      );
    }
    // What the server says, as a message shows it: control characters escaped, the credentials sent to it as ***.
    const shown = (t: string) => withoutSecrets(t, sentCredentials(this.o));
    let body: QueryResult;
    try {
      body = JSON.parse(text) as QueryResult;
    } catch {
      throw new Error(`InfluxDB at ${redactUrl(this.o.url)} answered ${res.status} with something that is not JSON: ${shown(text)}`);
    }
    const shape = notInfluxQlShape(body);
    if (shape)
      throw new Error(`InfluxDB at ${redactUrl(this.o.url)} answered ${res.status} with JSON that is not an InfluxQL result (${shape}): ${shown(text)}`);
    const err = body.error ?? body.results?.find((r) => r?.error)?.error;
    if (!res.ok || err) {
      const said = shown(redactUrlsIn(String(err ?? res.status)));
      throw new InfluxQlRefusal(`InfluxDB at ${redactUrl(this.o.url)} refused "${q}": ${said}${this.authFix(res.status)}`, res.status, said);
    }
    return body;
  }

  /**
   * What to do about a refusal for want of credentials (401: none, or a wrong user name or password)
   * or of rights (403: a user that is no admin); '' for any other status. The line said only what
   * InfluxDB said ("unable to parse authentication credentials") and the hint pointed to --help.
   */
  private authFix(status: number): string {
    const admin = 'it creates the database, retention policies and continuous query, which takes a 1.x admin user';
    if (status === 401)
      return this.o.username
        ? `; fix: check the user name ${this.o.username} and its password (${admin})`
        : `; fix: ${admin}: give --influx-username with INFLUX_PASSWORD or --influx-password-file`;
    if (status === 403)
      return `; fix: ${admin}: run it as an admin user, or grant this one (GRANT ALL PRIVILEGES TO ${this.o.username ? ident(this.o.username) : 'the user'})`;
    return '';
  }

  /** Retention policies of a database: name -> duration (ms, 0 = infinite), and which is the default. */
  async policies(db: string): Promise<{ durations: Map<string, number>; defaultPolicy: string | null }> {
    const durations = new Map<string, number>();
    let defaultPolicy: string | null = null;
    const body = await this.run(`SHOW RETENTION POLICIES ON ${ident(db)}`);
    const s = body.results?.[0]?.series?.[0];
    if (!s) return { durations, defaultPolicy };
    const col = (c: string) => s.columns.indexOf(c);
    for (const v of s.values ?? []) {
      durations.set(String(v[col('name')]), parseInfluxDuration(String(v[col('duration')])));
      if (v[col('default')] === true) defaultPolicy = String(v[col('name')]);
    }
    return { durations, defaultPolicy };
  }

  /** Names of the continuous queries of a database. */
  async continuousQueries(db: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const body = await this.run('SHOW CONTINUOUS QUERIES');
    for (const s of body.results?.[0]?.series ?? []) {
      if (s.name !== db) continue;
      for (const v of s.values ?? []) out.set(String(v[0]), String(v[1]));
    }
    return out;
  }

  async databases(): Promise<string[]> {
    const body = await this.run('SHOW DATABASES');
    return (body.results?.[0]?.series?.[0]?.values ?? []).map((v) => String(v[0]));
  }
}

/** Creates or updates the database, both policies and the continuous query. Returns the statements run. */
export async function setupInflux1(o: SetupOptions, print: (line: string) => void = () => {}): Promise<string[]> {
  const client = new InfluxQl(o);
  const exists = (await client.databases()).includes(o.database);
  const policies = exists ? (await client.policies(o.database)).durations : new Map<string, number>();
  const cqs = exists ? new Set((await client.continuousQueries(o.database)).keys()) : new Set<string>();
  const statements = setupStatements(o, { policies, cqs });
  for (const q of statements) {
    print(q);
    await client.run(q, o.database);
  }
  return statements;
}

/** The commands for InfluxDB 2.x: buckets with retention, InfluxQL mappings (dashboards), the Flux task. */
export function guidance2(o: { bucket: string; org: string; detail: string; hourly: string; database: string }): string {
  const hourlyBucket = `${o.bucket}_hourly`;
  return `# InfluxDB 2.x: two buckets, the InfluxQL mapping the dashboards use, and a task that downsamples.
# (A bucket that exists already: influx bucket update --id <id> --retention ${o.detail})
influx bucket create --org ${o.org} --name ${o.bucket} --retention ${o.detail}
influx bucket create --org ${o.org} --name ${hourlyBucket} --retention ${o.hourly}
influx v1 dbrp create --org ${o.org} --db ${o.database} --rp ${DETAIL_RP} --bucket-id <id of ${o.bucket}> --default
influx v1 dbrp create --org ${o.org} --db ${o.database} --rp ${HOURLY_RP} --bucket-id <id of ${hourlyBucket}>
influx task create --org ${o.org} --file ${HOURLY_CQ}.flux     # the file below

# ---- ${HOURLY_CQ}.flux ----
option task = {name: "${HOURLY_CQ}", every: 1h, offset: 5m}

// every run recomputes the last day's hours, as the 1.x query (RESAMPLE FOR 1d): windows a gateway's
// queue sends late still reach their hour; a point written again replaces the one of the run before
data = from(bucket: "${o.bucket}")
    |> range(start: -1d)
    |> filter(fn: (r) => r._measurement == "${MEASUREMENT}")

data
    |> filter(fn: (r) => r._field == "devices" or r._field == "estimate" or r._field == "people")
    |> aggregateWindow(every: 1h, fn: mean, createEmpty: false, timeSrc: "_start")
    |> to(bucket: "${hourlyBucket}")

data
    |> filter(fn: (r) => r._field == "devices" or r._field == "estimate" or r._field == "people")
    |> aggregateWindow(every: 1h, fn: max, createEmpty: false, timeSrc: "_start")
    |> map(fn: (r) => ({r with _field: r._field + "_max"}))
    |> to(bucket: "${hourlyBucket}")

data
    |> filter(fn: (r) => r._field == "frames")
    |> aggregateWindow(every: 1h, fn: sum, createEmpty: false, timeSrc: "_start")
    |> to(bucket: "${hourlyBucket}")

data
    |> filter(fn: (r) => r._field == "estimate")
    |> aggregateWindow(every: 1h, fn: count, createEmpty: false, timeSrc: "_start")
    |> map(fn: (r) => ({r with _field: "windows"}))
    |> to(bucket: "${hourlyBucket}")
`;
}

/** The commands for InfluxDB 3 (Core, Enterprise). */
export function guidance3(o: { database: string; detail: string; hourly: string }): string {
  return `# InfluxDB 3: a database per retention (in Core a database's retention cannot be changed later).
influxdb3 create database --retention-period ${o.detail} ${o.database}
influxdb3 create database --retention-period ${o.hourly} ${o.database}_hourly
# InfluxDB 3 has no continuous queries: downsample ${o.database} into ${o.database}_hourly once an hour with a
# Processing Engine schedule trigger (a downsampling plugin), or keep only the 1-minute detail.
`;
}

interface SetupFlags {
  influxUrl?: string;
  influxVersion: string;
  influxDb?: string;
  influxUsername?: string;
  influxPassword?: string;
  influxPasswordFile?: string;
  influxOrg?: string;
  influxBucket?: string;
  detail: string;
  hourly: string;
  print?: boolean;
  influxTimeout: string;
}

export function registerInflux(program: Command): void {
  const influx = program.command('influx').description('InfluxDB administration for the stored counts');
  influx
    .command('setup')
    .description(
      `InfluxDB 1.x: create the database, the retention policies "${DETAIL_RP}" (DEFAULT: the 1-minute windows the aggregator writes and the dashboards read) and "${HOURLY_RP}" (hourly aggregates), and the continuous query ${HOURLY_CQ} that fills it; safe to run again. 2.x/3.x: print the commands.`,
    )
    .option('--influx-url <url>', 'InfluxDB URL (env INFLUX_URL; default http://127.0.0.1:8086)')
    .addOption(
      new Option('--influx-version <version>', 'InfluxDB major version: 1 (set up over /query), 2 or 3 (print the commands)')
        .choices(['1', '2', '3'])
        .default('1'),
    )
    .option('--influx-db <database>', 'database (env INFLUX_DB; default presence)')
    .option('--influx-username <name>', '1.x user, with admin rights on a server with auth (env INFLUX_USERNAME)')
    .option('--influx-password <password>', '1.x password (env INFLUX_PASSWORD); prefer INFLUX_PASSWORD or a file')
    .option('--influx-password-file <file>', 'file whose first line is the 1.x password (env INFLUX_PASSWORD_FILE)')
    .option('--influx-org <org>', '2.x organisation (env INFLUX_ORG)')
    .option('--influx-bucket <bucket>', '2.x bucket of the 1-minute windows (env INFLUX_BUCKET; default: the database name)')
    .option('--detail <duration>', 'how long the 1-minute windows are kept, e.g. 30d', '30d')
    .option('--hourly <duration>', 'how long the hourly aggregates are kept, e.g. 400d', '400d')
    .option('--print', 'print the statements, change nothing')
    .option('--influx-timeout <duration>', 'the longest one query may take, its answer included', '60s')
    .action(async (f: SetupFlags) => {
      // Flags win over the environment (defaults are not shown in --help: a URL may hold a password).
      const env = process.env;
      const urlName = f.influxUrl === undefined && env.INFLUX_URL !== undefined ? 'INFLUX_URL' : '--influx-url';
      f.influxUrl ??= env.INFLUX_URL ?? 'http://127.0.0.1:8086';
      f.influxDb ??= env.INFLUX_DB;
      f.influxUsername ??= env.INFLUX_USERNAME;
      f.influxPasswordFile ??= env.INFLUX_PASSWORD_FILE;
      f.influxOrg ??= env.INFLUX_ORG;
      f.influxBucket ??= env.INFLUX_BUCKET;
      const fail = (msg: string): never => exitUsage('influx setup', new Error(redactUrlsIn(msg)));
      const ms = (flag: string, text: string) => {
        let v: number;
        try {
          v = parseDuration(text);
        } catch {
          return fail(`--${flag} "${text}": must be a duration like 30d or 36h`);
        }
        const rule = retentionRule(v);
        return rule ? fail(`--${flag} "${text}": must be ${rule}`) : v;
      };
      const detailMs = ms('detail', f.detail);
      const hourlyMs = ms('hourly', f.hourly);
      const timeoutMs = durationMs(f.influxTimeout);
      if (!(timeoutMs <= TIMER_MAX_MS)) fail(`--influx-timeout "${f.influxTimeout}": must be a duration like 10s or 2m, at most 24d`);
      const database = f.influxDb ?? 'presence';
      if (f.influxVersion === '2') {
        process.stdout.write(
          guidance2({
            bucket: f.influxBucket ?? database,
            org: f.influxOrg ?? 'ORG',
            detail: influxDuration(detailMs),
            hourly: influxDuration(hourlyMs),
            database,
          }),
        );
        return;
      }
      if (f.influxVersion === '3') {
        process.stdout.write(guidance3({ database, detail: influxDuration(detailMs), hourly: influxDuration(hourlyMs) }));
        return;
      }
      const urlProblem = influxUrlProblem(f.influxUrl, urlName);
      // Already without credentials; redactUrlsIn would cut a URL with a space in it.
      if (urlProblem) exitUsage('influx setup', new Error(urlProblem));
      let password = f.influxPassword ?? process.env.INFLUX_PASSWORD;
      try {
        if (password === undefined && f.influxPasswordFile) password = readSecretFile(f.influxPasswordFile, '--influx-password-file');
      } catch (e) {
        fail((e as Error).message);
      }
      const o: SetupOptions = influxCredentials({
        url: f.influxUrl ?? 'http://127.0.0.1:8086',
        database,
        detailMs,
        hourlyMs,
        username: f.influxUsername,
        password,
        timeoutMs,
      });
      if (f.print) {
        for (const q of setupStatements(o, { policies: new Map(), cqs: new Set() })) process.stdout.write(`${q};\n`);
        return;
      }
      const notInflux = await noInfluxQl(o.url, timeoutMs);
      if (notInflux) {
        fail(
          `${notInflux}, so it keeps no database, retention policy or continuous query to set up; fix: nothing to set up there (VictoriaMetrics keeps what the aggregator writes with --influx-api v2 for its -retentionPeriod), or give --influx-url an InfluxDB 1.x`,
        );
      }
      try {
        await setupInflux1(o, (q) => process.stdout.write(`${q}\n`));
        const { durations, defaultPolicy } = await new InfluxQl(o).policies(database);
        const shown = [...durations]
          .map(([n, d]) => `${n} ${d === 0 ? 'infinite' : influxDurationOrHours(d)}${n === defaultPolicy ? ' (default)' : ''}`)
          .join(', ');
        process.stdout.write(`database ${database} at ${redactUrl(o.url)}: retention policies ${shown}; continuous query ${HOURLY_CQ}\n`);
      } catch (e) {
        fail((e as Error).message);
      }
    });
}

function influxDurationOrHours(ms: number): string {
  return ms % HOUR_MS === 0 && ms >= 2 * HOUR_MS ? influxDuration(ms) : `${ms / HOUR_MS}h`;
}
