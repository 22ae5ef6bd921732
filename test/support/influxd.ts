// A real InfluxDB 1.x (Debian package `influxdb`, influxd 1.6.7) on free loopback ports with its meta,
// data and WAL folders in a temp dir. stop()/start() keep the ports and the data, so a test can take
// the database away for a while and bring it back.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { stopGracefully } from './process.ts';

export interface InfluxRow {
  time: number;
  [column: string]: unknown;
}

export class Influxd {
  readonly dir = mkdtempSync(join(tmpdir(), 'presence-influxd-'));
  port = 0;
  rpcPort = 0;
  private proc: ChildProcess | null = null;
  private output = '';

  /** With `auth`, influxd runs with auth-enabled and this admin user; the fixture's own queries use it. */
  constructor(
    readonly database = 'presence',
    readonly auth?: { username: string; password: string },
  ) {}

  private get headers(): Record<string, string> {
    return this.auth ? { authorization: `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')}` } : {};
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    if (!this.port) this.port = await freePort();
    if (!this.rpcPort) this.rpcPort = await freePort();
    const conf = `
reporting-disabled = true
bind-address = "127.0.0.1:${this.rpcPort}"
[meta]
  dir = "${this.dir}/meta"
[data]
  dir = "${this.dir}/data"
  wal-dir = "${this.dir}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:${this.port}"
  log-enabled = false
  auth-enabled = ${this.auth ? 'true' : 'false'}
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
[logging]
  level = "warn"
`;
    writeFileSync(join(this.dir, 'influxdb.conf'), conf);
    this.output = '';
    const proc = spawn('influxd', ['-config', join(this.dir, 'influxdb.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, INFLUXDB_DATA_QUERY_LOG_ENABLED: 'false' },
    });
    this.proc = proc;
    proc.stdout!.on('data', (d) => (this.output += d));
    proc.stderr!.on('data', (d) => (this.output += d));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`influxd exited (${proc.exitCode}): ${this.output}`);
      try {
        const res = await fetch(`${this.url}/ping`);
        if (res.status === 204) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`influxd did not answer /ping on ${this.url}: ${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // With auth on and no user yet, influxd takes exactly one statement without credentials: the first admin.
    if (this.auth) {
      const q = `CREATE USER "${this.auth.username}" WITH PASSWORD '${this.auth.password}' WITH ALL PRIVILEGES`;
      const res = await fetch(`${this.url}/query?${new URLSearchParams({ q })}`, { method: 'POST', headers: this.headers });
      const text = await res.text();
      if (!res.ok && !/already exists/.test(text)) throw new Error(`influxd: creating the admin user failed (${res.status}): ${text}`);
    }
    await this.query(`CREATE DATABASE "${this.database}"`, 'POST');
    return this;
  }

  /** Graceful stop; start() brings it back on the same port with the same data. */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await stopGracefully(p);
  }

  /** Runs InfluxQL; returns the raw JSON answer. Throws on an error in the answer. */
  async query(q: string, method: 'GET' | 'POST' = 'GET'): Promise<any> {
    const params = new URLSearchParams({ q, db: this.database, epoch: 'ms' });
    const res = await fetch(`${this.url}/query?${params}`, { method, headers: this.headers });
    const body = (await res.json()) as any;
    if (!res.ok || body.error) throw new Error(`influxd query failed (${res.status}): ${JSON.stringify(body)}`);
    for (const r of body.results ?? []) if (r.error) throw new Error(`influxd query "${q}": ${r.error}`);
    return body;
  }

  /** Rows of the first series of a SELECT, as objects keyed by column. Tags of GROUP BY are merged in. */
  async rows(q: string): Promise<InfluxRow[]> {
    const body = await this.query(q);
    const out: InfluxRow[] = [];
    for (const series of body.results?.[0]?.series ?? []) {
      for (const values of series.values) {
        const row: Record<string, unknown> = { ...(series.tags ?? {}) };
        series.columns.forEach((c: string, i: number) => {
          row[c] = values[i];
        });
        out.push(row as InfluxRow);
      }
    }
    return out;
  }

  /** Number of points of a measurement (counts one field), optionally filtered by an InfluxQL WHERE. */
  async count(measurement: string, field: string, where = ''): Promise<number> {
    const rows = await this.rows(`SELECT count("${field}") FROM "${measurement}"${where ? ` WHERE ${where}` : ''}`);
    return rows.length ? Number(rows[0].count) : 0;
  }

  log(): string {
    return this.output;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
