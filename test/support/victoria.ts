// A real VictoriaMetrics (Debian package `victoria-metrics`) on a free loopback port with its storage
// in a temp dir. It accepts InfluxDB line protocol on /api/v2/write and /write. Deduplication is on
// (-dedup.minScrapeInterval=1ms), so the same point written twice is kept once, as in InfluxDB.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { stopGracefully } from './process.ts';

export interface VmSeries {
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

export class Victoria {
  readonly dir = mkdtempSync(join(tmpdir(), 'presence-victoria-'));
  port = 0;
  private proc: ChildProcess | null = null;
  private output = '';

  /** `flags`: more victoria-metrics flags (-influx.maxLineSize=200, ...). */
  constructor(readonly flags: readonly string[] = []) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    if (!this.port) this.port = await freePort();
    const proc = spawn(
      'victoria-metrics',
      [
        `-storageDataPath=${join(this.dir, 'data')}`,
        `-httpListenAddr=127.0.0.1:${this.port}`,
        '-dedup.minScrapeInterval=1ms',
        '-search.latencyOffset=0s',
        '-retentionPeriod=100y',
        '-loggerLevel=ERROR',
        ...this.flags,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    proc.stdout!.on('data', (d) => (this.output += d));
    proc.stderr!.on('data', (d) => (this.output += d));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`victoria-metrics exited (${proc.exitCode}): ${this.output}`);
      try {
        const res = await fetch(`${this.url}/health`);
        if (res.ok) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`victoria-metrics did not answer /health: ${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return this;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await stopGracefully(p);
  }

  /** Raw samples of every series matching a selector, via /api/v1/export (after a forced flush). */
  async export(match: string): Promise<VmSeries[]> {
    await fetch(`${this.url}/internal/force_flush`);
    const params = new URLSearchParams({ 'match[]': match, start: '0' });
    const res = await fetch(`${this.url}/api/v1/export?${params}`);
    if (!res.ok) throw new Error(`victoria-metrics export failed (${res.status}): ${await res.text()}`);
    const text = await res.text();
    return text
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as VmSeries);
  }

  /** Number of distinct samples (series x timestamp) matching a selector. A series can come back
   *  in several lines (one per storage part) until VictoriaMetrics merges them, so merge here. */
  async count(match: string): Promise<number> {
    const bySeries = new Map<string, Set<number>>();
    for (const s of await this.export(match)) {
      const key = JSON.stringify(Object.entries(s.metric).sort());
      let set = bySeries.get(key);
      if (!set) bySeries.set(key, (set = new Set()));
      for (const t of s.timestamps) set.add(t);
    }
    let n = 0;
    for (const set of bySeries.values()) n += set.size;
    return n;
  }

  log(): string {
    return this.output;
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
