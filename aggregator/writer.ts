// Sinks for line protocol: InfluxDB v2 API (also VictoriaMetrics, InfluxDB 1.8+ compatibility API),
// InfluxDB 1.x /write (1.6 and 1.7 have no /api/v2/write), and a line-protocol file.
// Each write() resolves only once the server (or the disk) has confirmed the whole batch, and
// rejects otherwise; the caller retries. Nothing here retries or drops on its own.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { makeFolders } from '../scripts/lib/folders.ts';
import { dirname, resolve } from 'node:path';
import { InfluxDB, HttpError, setLogger, type WriteApi } from '@influxdata/influxdb-client';
import type { InfluxConfig } from './config.ts';
import { holdsUrlCredentials, redactUrl, redactUrlsIn } from '../scripts/lib/secrets.ts';

/** A name given to a free-text setting (an org, a bucket, a database) without the credentials of a URL pasted there. */
const withoutCredentials = (text: string) => (holdsUrlCredentials(text) ? redactUrlsIn(text) : text);
/** Such a name in quotes, as the sink's description (logs, /healthz) shows it. */
const quoted = (text: string | undefined) => JSON.stringify(text === undefined ? text : withoutCredentials(text));
import { withoutSecrets } from '../scripts/lib/http-body.ts';

export interface Sink {
  /** Writes lines of line protocol (ms timestamps). Resolves once confirmed. */
  write(lines: string[]): Promise<void>;
  close(): Promise<void>;
  /** Sends a write of no points (an empty body): the server's answer to the request alone. */
  probe?(): Promise<void>;
  /** Where it writes, for logs (no secrets). */
  readonly target: string;
  /** The credentials it sends (token, password): never shown, even when the server echoes them. */
  readonly secrets?: readonly string[];
}

/** Why InfluxDB refused points: the label of presence_aggregator_points_dropped_total. */
export const DROP_REASONS = ['retention', 'type_conflict', 'bad_line', 'limit', 'too_large', 'refused'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/**
 * What a failed write means, decided once per error (./pipeline.ts acts on it):
 * - partial:   the server stored the batch except `dropped` points it refused for `reason` (InfluxDB
 *              1.x 400 and 2.x 422 "partial write: ... dropped=N"); a retry cannot store them.
 *   refused:   400/422 without a count: some point of the batch is refused; split to find which.
 *   too_large: 413: the body is too large; split the batch (a single point too large is dropped).
 *   throttled: 429, or 503 with Retry-After: wait `retryAfterMs`, then again.
 *   auth:      401/403: credentials refused; retried slowly until fixed (the operator must act).
 *   missing:   404: no such database/bucket (or not an InfluxDB write endpoint), or 1.x 500 "retention
 *              policy not found"; retried slowly.
 *   transient: 5xx, 408, a network error or timeout: retried with backoff.
 *   unexpected: any other status: retried slowly, never dropped silently.
 */
export type WriteFailure =
  | { kind: 'partial'; status: number; dropped: number; reason: DropReason; message: string }
  | { kind: 'refused' | 'too_large' | 'auth' | 'missing' | 'transient' | 'unexpected'; status?: number; message: string }
  | { kind: 'throttled'; status: number; retryAfterMs: number | null; message: string };

/** The server's own words from an error: InfluxDB 1.x {"error": ...}, 2.x {"code", "message"}, or the body. */
function serverMessage(e: HttpError): string {
  const json =
    e.json ??
    (() => {
      try {
        return JSON.parse(e.body ?? '');
      } catch {
        return null;
      }
    })();
  const text = json && typeof json === 'object' ? (json.error ?? json.message) : undefined;
  return (
    String(text ?? e.body ?? e.message ?? '')
      .trim()
      .slice(0, 2000) || `HTTP ${e.statusCode}`
  );
}

/** The reason of a refusal, from the server's message. */
export function dropReason(message: string): DropReason {
  if (/beyond retention/i.test(message)) return 'retention';
  if (/field type conflict|type conflict/i.test(message)) return 'type_conflict';
  if (/max-values-per-tag|max-series|limit exceeded|exceeded/i.test(message)) return 'limit';
  if (/unable to parse|invalid|bad timestamp|pars(e|ing)/i.test(message)) return 'bad_line';
  return 'refused';
}

/** Retry-After in ms (a number of seconds or an HTTP date); null when absent or unreadable. */
export function retryAfterMs(value: unknown, now = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (typeof v !== 'string' || !v.trim()) return null;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}

/** The credentials a sink sends, as a server could echo them: token, password, and the Basic header's user:password (also base64). */
function sentSecrets(cfg: InfluxConfig): string[] {
  const pair = cfg.username ? `${cfg.username}:${cfg.password ?? ''}` : undefined;
  return [cfg.token, cfg.password, pair, pair && Buffer.from(pair).toString('base64')].filter((x): x is string => !!x);
}

/**
 * What a failed write means. `secrets`: the credentials the sink sends, shown as *** in the message
 * (a proxy or a server may echo the Authorization header; the message reaches the log and /healthz,
 * which needs no credentials), whose control characters are escaped (the server's text).
 */
export function classifyWriteError(error: unknown, secrets: readonly string[] = []): WriteFailure {
  const clean = (text: string) => withoutSecrets(redactUrlsIn(text), secrets, 2000);
  if (!(error instanceof HttpError)) {
    const e = error as Error & { code?: string };
    const text = e?.message ?? String(error);
    // Node's file errors begin with their code already ("ENOSPC: no space left on device, write").
    const code = e?.code && !text.startsWith(`${e.code}:`) ? `${e.code}: ` : '';
    return { kind: 'transient', message: clean(`${code}${text}`) };
  }
  const status = error.statusCode;
  const message = clean(serverMessage(error));
  const retryAfter = retryAfterMs(error.headers?.['retry-after']);
  if (status === 400 || status === 422) {
    const m = /dropped=(\d+)/.exec(message);
    // InfluxDB 1.x leaves lines it cannot parse out of dropped=N ("unable to parse '...': ... dropped=0").
    if (m) return { kind: 'partial', status, dropped: Number(m[1]) + (message.match(/unable to parse '/g)?.length ?? 0), reason: dropReason(message), message };
    return { kind: 'refused', status, message };
  }
  if (status === 413) return { kind: 'too_large', status, message };
  if (status === 429 || (status === 503 && retryAfter !== null)) return { kind: 'throttled', status, retryAfterMs: retryAfter, message };
  if (status === 401 || status === 403) return { kind: 'auth', status, message };
  // InfluxDB 1.x answers a write to a retention policy that does not exist (dropped, or never made)
  // with 500 "retention policy not found: NAME": missing, as a database is, not a passing fault.
  if (status === 404 || (status === 500 && /retention policy not found/i.test(message))) return { kind: 'missing', status, message };
  if (status >= 500 || status === 408) return { kind: 'transient', status, message };
  return { kind: 'unexpected', status, message };
}

let loggerSet = false;
/** Routes the client library's own log lines through our logger (once per process). */
export function routeClientLog(log: { warn: (o: object, m: string) => void; error: (o: object, m: string) => void }): void {
  if (loggerSet) return;
  loggerSet = true;
  setLogger({
    error: (message, err) => log.warn({ err: redactUrlsIn(String(err?.message ?? err)) }, `influxdb-client: ${redactUrlsIn(message)}`),
    warn: (message, err) => log.warn({ err: redactUrlsIn(String(err?.message ?? err)) }, `influxdb-client: ${redactUrlsIn(message)}`),
  });
}

/**
 * InfluxDB v2 write API through the client's ordinary WriteApi. The WriteApi's own batching, timer and
 * retry buffer are turned off, and each write() uses a WriteApi of its own whose writeSuccess /
 * writeFailed callbacks settle exactly that request: flush() and close() of the library resolve before
 * an in-flight batch is acknowledged, its callbacks do not. writeFailed returns a promise, so the
 * library neither retries nor logs: the pipeline decides (classifyWriteError).
 */
export class InfluxV2Sink implements Sink {
  readonly target: string;
  readonly secrets: readonly string[];
  private readonly influx: InfluxDB;
  private readonly bucket: string;
  private readonly open = new Set<WriteApi>();

  constructor(
    private readonly cfg: InfluxConfig,
    private readonly maxLines: number,
  ) {
    this.influx = new InfluxDB({
      url: cfg.url!,
      token: cfg.token ?? (cfg.username ? `${cfg.username}:${cfg.password ?? ''}` : undefined),
      timeout: cfg.timeout,
    });
    // InfluxDB 1.8+ takes "db/rp" as the bucket of its v2 compatibility API.
    this.bucket = cfg.bucket ?? `${cfg.database}${cfg.retentionPolicy ? `/${cfg.retentionPolicy}` : ''}`;
    this.target = `${redactUrl(cfg.url)} (v2 API, org ${quoted(cfg.org ?? '')}, bucket ${quoted(this.bucket)})`;
    this.secrets = sentSecrets(cfg);
  }

  async write(lines: string[]): Promise<void> {
    // Never hand a WriteApi more than its batchSize: beyond it, it would send a part on its own.
    for (let i = 0; i < lines.length; i += this.maxLines) await this.send(lines.length <= this.maxLines ? lines : lines.slice(i, i + this.maxLines));
  }

  /** An empty body to /api/v2/write (the client's write API sends nothing for no lines). */
  async probe(): Promise<void> {
    const params = new URLSearchParams({ org: this.cfg.org ?? '', bucket: this.bucket, precision: 'ms' });
    await this.influx.transport.request(`/api/v2/write?${params}`, '', { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' } });
  }

  private send(lines: string[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const api = this.influx.getWriteApi(this.cfg.org ?? '', this.bucket, 'ms', {
        batchSize: lines.length + 1,
        maxBatchBytes: Number.MAX_SAFE_INTEGER,
        flushInterval: 0,
        maxRetries: 0,
        maxBufferLines: lines.length + 1,
        writeSuccess: () => {
          this.open.delete(api);
          resolve();
        },
        writeFailed: (error) => {
          this.open.delete(api);
          reject(error);
          return Promise.resolve(); // handled here: no retry, no log line of the library
        },
      });
      this.open.add(api);
      api.writeRecords(lines);
      api.flush().catch(() => {}); // the outcome comes through the callbacks above
    });
  }

  async close(): Promise<void> {
    for (const api of this.open) api.dispose();
    this.open.clear();
  }
}

/**
 * InfluxDB 1.x `/write?db=&rp=&precision=ms`, sent with the same client's HTTP transport (its TLS,
 * timeout and error handling). Credentials go in a Basic authorization header.
 */
export class InfluxV1Sink implements Sink {
  readonly target: string;
  readonly secrets: readonly string[];
  private readonly influx: InfluxDB;
  private readonly path: string;
  private readonly headers: Record<string, string>;

  constructor(cfg: InfluxConfig) {
    this.influx = new InfluxDB({ url: cfg.url!, timeout: cfg.timeout });
    const params = new URLSearchParams({ db: cfg.database! });
    if (cfg.retentionPolicy) params.set('rp', cfg.retentionPolicy);
    params.set('precision', 'ms');
    this.path = `/write?${params}`;
    this.headers = { 'content-type': 'text/plain; charset=utf-8' };
    if (cfg.username) this.headers.authorization = `Basic ${Buffer.from(`${cfg.username}:${cfg.password ?? ''}`).toString('base64')}`;
    else if (cfg.token) this.headers.authorization = `Token ${cfg.token}`;
    this.target = `${redactUrl(cfg.url)} (1.x API, database ${quoted(cfg.database)}${cfg.retentionPolicy ? `, retention policy ${quoted(cfg.retentionPolicy)}` : ''})`;
    this.secrets = sentSecrets(cfg);
  }

  async write(lines: string[]): Promise<void> {
    let status: number | undefined;
    const body: unknown = await this.influx.transport.request(
      this.path,
      lines.join('\n'),
      { method: 'POST', headers: this.headers },
      (_h, code) => (status = code),
    );
    if (status === undefined || status === 204) return;
    // InfluxDB answers a stored write with 204 and no body. A 200 (or 201) with nothing in it is taken
    // as stored too; one with a body is not a write endpoint's answer (a proxy's sign-in page, a
    // captive portal): taken as stored, every point was lost and every message acknowledged.
    if ((status === 200 || status === 201) && isEmptyBody(body)) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body ?? '');
    throw new HttpError(
      status,
      `with a body, where InfluxDB sends none (204 expected): not the write endpoint of InfluxDB (a proxy or another server at influx.url?); its answer: ${text.slice(0, 300)}`,
    );
  }

  probe(): Promise<void> {
    return this.write([]);
  }

  async close(): Promise<void> {}
}

/** No body: nothing, an empty text, Buffer or JSON object (as the client's transport returns them). */
function isEmptyBody(body: unknown): boolean {
  if (body === undefined || body === null || body === '') return true;
  if (Buffer.isBuffer(body)) return body.length === 0;
  return typeof body === 'object' && Object.keys(body).length === 0;
}

/** Appends line protocol to a file and syncs it to disk before confirming. Load it with
 *  `curl -XPOST 'http://host:8086/write?db=presence&precision=ms' --data-binary @presence.lp`.
 *  A file moved away or deleted (loaded, then cleared, or rotated) is noticed at the next write: the
 *  path is opened again, a new file, so what comes after lands at the path, not in the moved file or
 *  in a deleted one (acknowledged and gone). Writes are one at a time. */
export class FileSink implements Sink {
  readonly target: string;
  private handle: Promise<FileHandle> | null = null;
  private last: Promise<unknown> = Promise.resolve();

  constructor(private readonly path: string) {
    this.target = `file ${withoutCredentials(resolve(path))}`;
  }

  /**
   * At start: the file opened (made, with its folders, when missing) and closed once, so a path no
   * write can ever take (a folder, a read-only file system, no permission) is found before
   * subscribing, not in write retries without end. A fifo or a device (/dev/stdout) is not opened
   * here (a fifo's open waits for a reader).
   */
  async check(): Promise<void> {
    const st = await stat(this.path).catch(() => null);
    if (st?.isDirectory()) throw Object.assign(new Error(`${this.path} is a folder`), { code: 'EISDIR' });
    if (st && !st.isFile()) return;
    makeFolders(dirname(resolve(this.path)));
    await (await open(this.path, 'a')).close();
  }

  write(lines: string[]): Promise<void> {
    const next = this.last.then(() => this.append(lines));
    this.last = next.catch(() => {});
    return next;
  }

  private async append(lines: string[]): Promise<void> {
    if (this.handle) {
      // the open file still the one at the path? (same device and inode)
      const fh = await this.handle;
      const [open, atPath] = await Promise.all([fh.stat(), stat(this.path).catch(() => null)]);
      if (!atPath || atPath.ino !== open.ino || atPath.dev !== open.dev) {
        this.handle = null;
        await fh.close().catch(() => {});
      }
    }
    if (!this.handle) {
      makeFolders(dirname(resolve(this.path)));
      this.handle = open(this.path, 'a');
      this.handle.catch(() => (this.handle = null));
    }
    const fh = await this.handle;
    const { size } = await fh.stat();
    try {
      await fh.appendFile(lines.join('\n') + '\n');
      await fh.datasync();
    } catch (e) {
      // A disk that fills up takes part of the batch (whole pages): a torn line would stay in the
      // file, and the retry would append the whole batch after it, so the file no longer loads
      // (InfluxDB refuses the torn line and the one it runs into) and holds those lines twice. Cut
      // the file back to where this write began; cutting needs no space.
      await fh.truncate(size).catch(() => {});
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.last;
    const h = this.handle;
    this.handle = null;
    if (h) await (await h).close().catch(() => {});
  }
}

export function createSink(influx: InfluxConfig, out: string, maxLines: number): Sink {
  if (!influx.url) return new FileSink(out);
  return influx.api === 'v1' ? new InfluxV1Sink(influx) : new InfluxV2Sink(influx, maxLines);
}
