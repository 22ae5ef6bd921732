// Start-up checks of the aggregator's InfluxDB, before it subscribes: a mistake that would otherwise
// end in endless write retries stops the aggregator (exit 2) with the fix.
//
// - The server is identified by its /ping answer: InfluxDB sends X-Influxdb-Version (1.6.7, 1.8.10,
//   v2.7.1, 3.x); VictoriaMetrics answers 204 without it (its write endpoints say 1.8.0).
// - --influx-api v2 against InfluxDB 1.0-1.7 (no /api/v2/write): stops, naming --influx-api v1.
//   Combinations that can work go on with a warning: v1 against InfluxDB 2.x (its /write needs a
//   DBRP mapping), either API against VictoriaMetrics or InfluxDB 1.8+ / 3.x.
// - InfluxDB 1.x: a missing database (or influx.retention_policy) is created when influx.create is set
//   (the database as `presence influx setup` makes it, with influx.retention as its default policy);
//   otherwise the aggregator stops and prints the command that creates it.
// - InfluxDB 2.x (v2 API): a missing bucket stops the aggregator with the `influx bucket create`
//   command (influx.create does not create 2.x buckets).
// - A server that does not answer is not checked: the aggregator starts and retries its writes
//   (warning logged), as it does when InfluxDB goes away later.
// - recreateMissing(): with influx.create, a write answered 404 runs the same checks again, so a
//   database missing once InfluxDB answers (it was down at start and came back empty, or the database
//   was dropped) is created then, as at start, instead of the writes failing for ever.
import type { Logger } from 'pino';
import type { InfluxConfig } from './config.ts';
import { detectServer, ident, influxDuration, InfluxQl, retentionRule, setupInflux1, type ServerInfo, unreachableReason } from './influx-setup.ts';
import { redactUrl as redact, redactUrlsIn } from '../scripts/lib/secrets.ts';
import { BodyTooLargeError, boundedText, endpointUnder } from '../scripts/lib/http-body.ts';
import { distance } from '../scripts/lib/config-loader.ts';
import { formatDuration } from '../scripts/lib/duration.ts';

/** The URL as given, without credentials (no trailing slash added): for messages and commands. */
function redactUrl(url: string | undefined): string {
  const r = redact(url);
  return url && !url.endsWith('/') ? r.replace(/\/$/, '') : r;
}

/** A mistake found at start; the message says what is wrong and the fix. The CLI exits 2. */
export class PreflightError extends Error {
  override name = 'PreflightError';
}

const HOURLY_MS = 400 * 24 * 3_600_000;
/** influx.retention when unset (as `presence influx setup --detail`). */
const DEFAULT_RETENTION_MS = 30 * 24 * 3_600_000;

/** Runs the checks; throws PreflightError on a mistake that needs the operator. */
export async function preflight(cfg: InfluxConfig, log: Logger): Promise<ServerInfo | null> {
  return (await check(cfg, log)).server;
}

/**
 * With influx.create, after a write was answered 404: the checks of the start again, creating a
 * missing InfluxDB 1.x database or retention policy. True when it created something (the write can
 * be tried again at once). A mistake that needs the operator (PreflightError) is thrown, as at start.
 */
export async function recreateMissing(cfg: InfluxConfig, log: Logger): Promise<boolean> {
  if (!cfg.url || !cfg.create) return false;
  return (await check(cfg, log)).created;
}

async function check(cfg: InfluxConfig, log: Logger): Promise<{ server: ServerInfo | null; created: boolean }> {
  const none = { server: null, created: false };
  if (!cfg.url) return none;
  const url = redactUrl(cfg.url);
  const server = await detectServer(cfg.url, cfg.timeout);
  if ('unreachable' in server) {
    log.warn(
      { influx: url, err: server.unreachable },
      'InfluxDB does not answer /ping: check the host and port of influx.url (--influx-url, INFLUX_URL) and that InfluxDB runs there; not checked at start: writes are retried until it answers',
    );
    return none;
  }
  const { version, major, minor } = server;
  if (version === null) {
    log.info({ influx: url }, 'the server answers /ping without X-Influxdb-Version (as VictoriaMetrics does): API, database and bucket not checked');
    return { server, created: false };
  }
  log.info({ influx: url, version, api: cfg.api }, 'InfluxDB found');
  if (major === 1) {
    const v2Capable = (minor ?? 0) >= 8;
    if (cfg.api === 'v2' && !v2Capable) {
      const db = cfg.database ?? cfg.bucket?.split('/')[0] ?? 'presence';
      throw new PreflightError(
        `InfluxDB ${version} at ${url} has no v2 write API (/api/v2/write answers 404 before 1.8): start the aggregator with --influx-api v1 --influx-db ${db}${cfg.retentionPolicy ? ` --influx-rp ${cfg.retentionPolicy}` : ''} (INFLUX_API=v1, or influx.api: v1 in the config file)`,
      );
    }
    const [database, rpFromBucket] = cfg.api === 'v2' && cfg.bucket ? cfg.bucket.split('/') : [cfg.database, cfg.retentionPolicy];
    if (!database) return { server, created: false };
    return { server, created: await checkInflux1(cfg, database, rpFromBucket || undefined, version, log) };
  }
  if (major === 2) {
    if (cfg.api === 'v1') {
      log.warn(
        { influx: url, version },
        'InfluxDB 2.x: its native API is --influx-api v2 (with --influx-org and --influx-bucket); /write of --influx-api v1 works only through a DBRP mapping (influx v1 dbrp create)',
      );
      return { server, created: false };
    }
    await checkBucket2(cfg, version, log);
    return { server, created: false };
  }
  // InfluxDB 3 makes a database on its first write; later versions: nothing known to check.
  return { server, created: false };
}

/** True when it created the database or the retention policy. */
async function checkInflux1(cfg: InfluxConfig, database: string, rp: string | undefined, version: string, log: Logger): Promise<boolean> {
  const url = redactUrl(cfg.url);
  const client = new InfluxQl({ url: cfg.url!, username: cfg.username, password: cfg.password, timeoutMs: cfg.timeout });
  let databases: string[];
  try {
    databases = await client.databases();
  } catch (e) {
    const msg = redactUrlsIn((e as Error).message);
    if (/auth|401|403/i.test(msg))
      throw new PreflightError(
        `InfluxDB ${version} at ${url} refuses the credentials (${msg}): check influx.username and influx.password (INFLUX_USERNAME, INFLUX_PASSWORD or INFLUX_PASSWORD_FILE)`,
        { cause: e },
      );
    log.warn({ influx: url, err: msg }, 'cannot list the databases; not checked at start');
    return false;
  }
  const retention = cfg.retention ?? DEFAULT_RETENTION_MS;
  const rule = retentionRule(retention);
  // With influx.create the configuration refused such a retention already, naming the flag or the
  // file's key (config.ts); one given in memory is named by its key. Without influx.create it only
  // goes into the command printed: left out there, with why, instead of hiding the missing database.
  const duration = () => {
    if (rule) throw new PreflightError(`influx.retention: must be ${rule}, to create the database or policy (got ${formatDuration(retention)})`);
    return influxDuration(retention);
  };
  const printed = rule ? influxDuration(DEFAULT_RETENTION_MS) : influxDuration(retention);
  const leftOut = rule ? `\ninflux.retention (${formatDuration(retention)}) is left out of that command: it must be ${rule}` : '';
  let created = false;
  if (!databases.includes(database)) {
    if (cfg.create) {
      const d = duration();
      const statements = await setupInflux1({
        url: cfg.url!,
        database,
        detailMs: retention,
        hourlyMs: Math.max(HOURLY_MS, retention),
        username: cfg.username,
        password: cfg.password,
        timeoutMs: cfg.timeout,
      });
      log.info({ influx: url, database, statements }, `created database ${database} (default retention policy detail ${d}) as presence influx setup does`);
      created = true;
    } else {
      // A misspelt name is told so first: creating it would store the counts apart from the dashboards'.
      const present = databases.filter((d) => !d.startsWith('_'));
      const near = present
        .filter((d) => distance(d, database) <= Math.max(2, Math.floor(database.length / 3)))
        .sort((a, b) => distance(a, database) - distance(b, database));
      throw new PreflightError(
        `InfluxDB ${version} at ${url} has no database "${database}" (it has ${present.length ? present.map((d) => `"${d}"`).join(', ') : 'none'}).` +
          (near.length ? ` Did you mean "${near[0]}"? Then fix --influx-db (influx.database, INFLUX_DB).` : '') +
          ` Create it with\n` +
          `  presence influx setup --influx-url ${url} --influx-db ${database} --detail ${printed}\n` +
          `or start the aggregator with --influx-create (INFLUX_CREATE=true, or influx.create: true in the config file)${leftOut}`,
      );
    }
  }
  if (!rp) return created;
  const { durations } = await client.policies(database);
  if (durations.has(rp)) return created;
  const statement = (d: string) => `CREATE RETENTION POLICY ${ident(rp)} ON ${ident(database)} DURATION ${d} REPLICATION 1`;
  if (cfg.create) {
    const create = statement(duration());
    await client.run(create, database);
    log.info({ influx: url, database, statement: create }, `created retention policy ${rp}`);
    return true;
  }
  throw new PreflightError(
    `InfluxDB ${version} at ${url} has no retention policy "${rp}" on database "${database}". Create it with\n` +
      `  curl -XPOST '${url}/query' --data-urlencode 'q=${statement(printed)}'\n` +
      `or start the aggregator with --influx-create, or without --influx-rp (the database's default policy)${leftOut}`,
  );
}

/** The longest answer to the bucket list read at start. */
const BUCKETS_MAX_BYTES = 2 ** 20;

async function checkBucket2(cfg: InfluxConfig, version: string, log: Logger): Promise<void> {
  const url = redactUrl(cfg.url);
  const bucket = cfg.bucket ?? `${cfg.database}${cfg.retentionPolicy ? `/${cfg.retentionPolicy}` : ''}`;
  const params = new URLSearchParams({ name: bucket });
  if (cfg.org) params.set('org', cfg.org);
  let res: Response;
  let body: { buckets?: unknown[]; message?: string } = {};
  try {
    res = await fetch(endpointUnder(cfg.url!, `api/v2/buckets?${params}`), {
      headers: cfg.token ? { authorization: `Token ${cfg.token}` } : {},
      signal: AbortSignal.timeout(cfg.timeout),
    });
    // (a list of buckets is a few kB: a longer answer is not read, whatever the server sends)
    const text = await boundedText(res, BUCKETS_MAX_BYTES);
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = {};
    }
    if (body === null || typeof body !== 'object') body = {};
  } catch (e) {
    const err = e instanceof BodyTooLargeError ? `its answer is longer than ${e.maxBytes / 2 ** 20} MiB` : unreachableReason(e);
    log.warn({ influx: url, err }, 'cannot list the buckets; not checked at start');
    return;
  }
  if (res.status === 401)
    throw new PreflightError(
      `InfluxDB ${version} at ${url} refuses the token (401${body.message ? ` ${body.message}` : ''}): check influx.token (INFLUX_TOKEN or INFLUX_TOKEN_FILE)`,
    );
  const missing = (res.ok && Array.isArray(body.buckets) && body.buckets.length === 0) || (res.status === 404 && /not found/i.test(body.message ?? ''));
  if (!missing) {
    if (!res.ok)
      log.warn({ influx: url, status: res.status, err: body.message }, 'cannot list the buckets (a write-only token may not read them); not checked at start');
    return;
  }
  let d = '30d';
  try {
    d = influxDuration(cfg.retention ?? 30 * 24 * 3_600_000);
  } catch {
    // keep 30d in the hint
  }
  throw new PreflightError(
    `InfluxDB ${version} at ${url} has no bucket "${bucket}"${cfg.org ? ` in organisation "${cfg.org}"` : ''}. Create it with\n` +
      `  influx bucket create --org ${cfg.org ?? 'ORG'} --name ${bucket} --retention ${d}\n` +
      `(presence influx setup --influx-version 2 prints it with the downsampling task; --influx-create creates 1.x databases only)`,
  );
}
