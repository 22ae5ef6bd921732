// Sinks for line protocol: InfluxDB v2 API (also VictoriaMetrics, InfluxDB 1.8+ compatibility API),
// InfluxDB 1.x /write (1.6 and 1.7 have no /api/v2/write), and a line-protocol file.
// Each write() resolves only once the server (or the disk) has confirmed the whole batch, and
// rejects otherwise; the caller retries. Nothing here retries or drops on its own.
import { open, type FileHandle } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InfluxDB, HttpError, setLogger, type WriteApi } from '@influxdata/influxdb-client';
import type { InfluxConfig } from './config.ts';
import { redactUrl, redactUrlsIn } from '../scripts/lib/secrets.ts';

export interface Sink {
  /** Writes lines of line protocol (ms timestamps). Resolves once confirmed. */
  write(lines: string[]): Promise<void>;
  close(): Promise<void>;
  /** Where it writes, for logs (no secrets). */
  readonly target: string;
}

/** True when retrying the same batch cannot help (e.g. 400 bad line, 401/403 auth, 404 no such database). */
export function isPermanent(error: unknown): boolean {
  return error instanceof HttpError && error.statusCode >= 400 && error.statusCode < 500 && error.statusCode !== 429 && error.statusCode !== 408;
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
 * InfluxDB v2 write API through the client's ordinary WriteApi. Its own batching, timer and retry
 * buffer are turned off (maxRetries 0, flushInterval 0, batchSize above ours), so each flush() is
 * exactly one HTTP request for exactly our batch, and its promise tells whether it landed.
 */
export class InfluxV2Sink implements Sink {
  readonly target: string;
  private readonly writeApi: WriteApi;

  constructor(cfg: InfluxConfig, private readonly maxLines: number) {
    const influx = new InfluxDB({ url: cfg.url!, token: cfg.token ?? (cfg.username ? `${cfg.username}:${cfg.password ?? ''}` : undefined), timeout: cfg.timeout });
    // InfluxDB 1.8+ takes "db/rp" as the bucket of its v2 compatibility API.
    const bucket = cfg.bucket ?? `${cfg.database}${cfg.retentionPolicy ? `/${cfg.retentionPolicy}` : ''}`;
    this.writeApi = influx.getWriteApi(cfg.org ?? '', bucket, 'ms', {
      batchSize: maxLines + 1,
      maxBatchBytes: Number.MAX_SAFE_INTEGER,
      flushInterval: 0,
      maxRetries: 0,
      maxBufferLines: maxLines + 1,
    });
    this.target = `${redactUrl(cfg.url)} (v2 API, org ${JSON.stringify(cfg.org ?? '')}, bucket ${JSON.stringify(bucket)})`;
  }

  async write(lines: string[]): Promise<void> {
    // Never hand the WriteApi more than its batchSize: beyond it, it would send a part on its own
    // and that request's outcome would not reach us.
    for (let i = 0; i < lines.length; i += this.maxLines) {
      this.writeApi.writeRecords(i === 0 && lines.length <= this.maxLines ? lines : lines.slice(i, i + this.maxLines));
      await this.writeApi.flush();
    }
  }

  async close(): Promise<void> {
    this.writeApi.dispose();
  }
}

/**
 * InfluxDB 1.x `/write?db=&rp=&precision=ms`, sent with the same client's HTTP transport (its TLS,
 * timeout and error handling). Credentials go in a Basic authorization header.
 */
export class InfluxV1Sink implements Sink {
  readonly target: string;
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
    this.target = `${redactUrl(cfg.url)} (1.x API, database ${JSON.stringify(cfg.database)}${cfg.retentionPolicy ? `, retention policy ${JSON.stringify(cfg.retentionPolicy)}` : ''})`;
  }

  async write(lines: string[]): Promise<void> {
    let status: number | undefined;
    await this.influx.transport.request(this.path, lines.join('\n'), { method: 'POST', headers: this.headers }, (_h, code) => (status = code));
    if (status !== undefined && status !== 204 && status !== 200)
      throw new HttpError(status, `InfluxDB answered ${status} to a write, 204 expected`);
  }

  async close(): Promise<void> {}
}

/** Appends line protocol to a file and syncs it to disk before confirming. Load it with
 *  `curl -XPOST 'http://host:8086/write?db=presence&precision=ms' --data-binary @presence.lp`. */
export class FileSink implements Sink {
  readonly target: string;
  private handle: Promise<FileHandle> | null = null;

  constructor(private readonly path: string) {
    this.target = `file ${resolve(path)}`;
  }

  async write(lines: string[]): Promise<void> {
    if (!this.handle) {
      mkdirSync(dirname(resolve(this.path)), { recursive: true });
      this.handle = open(this.path, 'a');
      this.handle.catch(() => (this.handle = null));
    }
    const fh = await this.handle;
    await fh.appendFile(lines.join('\n') + '\n');
    await fh.datasync();
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await (await h).close().catch(() => {});
  }
}

export function createSink(influx: InfluxConfig, out: string, maxLines: number): Sink {
  if (!influx.url) return new FileSink(out);
  return influx.api === 'v1' ? new InfluxV1Sink(influx) : new InfluxV2Sink(influx, maxLines);
}
