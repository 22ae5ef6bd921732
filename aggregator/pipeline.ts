// The write pipeline: points of accepted messages are collected into batches, each batch is written
// to the sink as a whole, and a batch's `written` promise resolves once the sink confirmed it. The
// PUBACKs of the batch's messages wait on that promise (./mqtt-ack.ts).
//
// - A batch is written when it holds batch.size messages, or batch.flushInterval after its first
//   point; up to batch.concurrency batches are written at once while the next one fills.
// - Every answer of the server is handled on purpose (classifyWriteError in ./writer.ts):
//   5xx, 408 and network errors are retried with backoff (250 ms doubling up to batch.maxRetryDelay);
//   429 (and 503 with Retry-After) wait as long as Retry-After says; 401/403 (credentials), 404 (no
//   such database/bucket) and any other status are retried every batch.maxRetryDelay and reported on
//   /healthz and in the log until fixed. Meanwhile the batch's messages stay unacknowledged. With
//   `recreate` (influx.create), a 404 first runs it: a database it creates again is written to at once.
// - Points the server refuses can never be written: they are dropped, counted by reason
//   (presence_aggregator_points_dropped_total{reason}, never as written), logged (rate-limited) and
//   make /healthz "degraded"; their messages are acknowledged so the stream goes on. A partial write
//   ("... dropped=N", InfluxDB 1.x 400, 2.x 422) stored the rest, and is split in halves (written
//   again: idempotent) until the refused points are found, so the messages whose points were stored
//   still reach the page (at most PARTIAL_SPLIT_WRITES such writes a batch); a 400/422 without a
//   count and a 413 split the batch in halves until the refused (or too large) points are found.
// - A 400/422 that refuses every line of a batch, each with the same words that name no fault of a
//   point (a proxy's "plain HTTP request was sent to HTTPS port", 1.x "database is required"), and a
//   write of no points refused in the same words, refuses the request, not the points (when the empty
//   write goes through, the points are dropped as above): nothing is dropped or acknowledged; it is retried every
//   batch.maxRetryDelay (without splitting again) and reported, as a 401, until a write goes through.
// - After abandon() (stop with writes left) no write is retried and the batches left never resolve:
//   their messages stay with the broker.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { AggregatorConfig } from './config.ts';
import type { AggregatorMetrics } from './health.ts';
import { GATEWAY_STATUS, PRESENCE } from './messages.ts';
import { classifyWriteError, dropReason, type DropReason, type Sink, type WriteFailure } from './writer.ts';

/** Told once the points of one message (or of one addPoints call) are confirmed stored, all of them. */
export type OnStored = () => void;

interface Batch {
  lines: string[];
  /** Messages whose points are in `lines`. */
  messages: number;
  /** Callbacks waiting for their lines to be stored (the recent-writes store, ./recent.ts). */
  notes: Array<{ lines: readonly string[]; stored: OnStored }>;
  /** Resolves once the batch is written. */
  written: Promise<void>;
  resolve: () => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  const written = new Promise<void>((res) => (resolve = res));
  return { lines: [], messages: 0, notes: [], written, resolve };
}

export interface PipelineEvents {
  /** A batch was written; the number of its points stored (refused ones not counted). */
  written: [points: number];
  /** Points of a batch were refused by the server and dropped. */
  dropped: [points: number, reason: DropReason];
}

/** Points refused by the server, by reason, for /healthz. */
export interface DropSummary {
  reason: DropReason;
  points: number;
  /** When the latest were dropped (ms). */
  last: number;
  /** The server's words, e.g. "partial write: points beyond retention policy dropped=628". */
  message: string;
  /** What to do about it, when known. */
  hint?: string;
}

/** What one write of a set of lines ended in. */
interface Stored {
  /** Points stored, by measurement. */
  written: Map<string, number>;
  dropped: Array<{ reason: DropReason; points: number; message: string }>;
  /** Lines that are not surely stored: refused ones, and all lines of a partial write that refused
   *  some without saying which. */
  unsure: string[];
}

/** The measurement of a line of protocol (up to the first unescaped comma or space). */
export function measurementOf(line: string): string {
  // Scanned up to the first comma or space while the name has no backslash or other white space
  // (this runs for every line written; the pattern below costs it about a third more)
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 92 || c === 11 || c === 12 || c > 127) break;
    if (c === 44 || c === 32 || c === 9 || c === 10 || c === 13) return line.slice(0, i);
    if (i === line.length - 1) return line;
  }
  const m = /^(?:[^,\s\\]|\\.)*/.exec(line);
  return m ? m[0].replace(/\\(.)/g, '$1') : '';
}

function merge(a: Stored, b: Stored): Stored {
  for (const [k, v] of b.written) a.written.set(k, (a.written.get(k) ?? 0) + v);
  a.dropped.push(...b.dropped);
  a.unsure.push(...b.unsure);
  return a;
}

const PRESENCE_HEAD = `${PRESENCE},`;
const GATEWAY_STATUS_HEAD = `${GATEWAY_STATUS},`;

function allWritten(lines: readonly string[]): Stored {
  // The two measurements the aggregator writes are counted without a new string per line (this runs
  // for every line written); any other line by measurementOf.
  let presence = 0;
  let status = 0;
  const written = new Map<string, number>();
  for (const l of lines) {
    if (l.startsWith(PRESENCE_HEAD)) presence++;
    else if (l.startsWith(GATEWAY_STATUS_HEAD)) status++;
    else {
      const m = measurementOf(l);
      written.set(m, (written.get(m) ?? 0) + 1);
    }
  }
  if (presence) written.set(PRESENCE, (written.get(PRESENCE) ?? 0) + presence);
  if (status) written.set(GATEWAY_STATUS, (written.get(GATEWAY_STATUS) ?? 0) + status);
  return { written, dropped: [], unsure: [] };
}

/** One log line per reason per interval: the first drop at once, the rest summed up in the next line. */
class DropLog {
  private readonly state = new Map<DropReason, { lastLogged: number; pending: number; message: string }>();
  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 60_000,
  ) {}

  record(reason: DropReason, points: number, message: string, status: number | undefined, sink: string, now: number): void {
    let s = this.state.get(reason);
    if (!s) this.state.set(reason, (s = { lastLogged: -Infinity, pending: 0, message }));
    s.pending += points;
    s.message = message;
    if (now - s.lastLogged < this.intervalMs) return;
    this.log.error(
      { reason, points: s.pending, status, server: message.slice(0, 500), sink, interval_s: this.intervalMs / 1000 },
      `InfluxDB refused ${s.pending} point(s) (${reason}); they are dropped and counted in presence_aggregator_points_dropped_total${HINTS[reason] ? `: ${HINTS[reason]}` : ''}`,
    );
    s.lastLogged = now;
    s.pending = 0;
  }
}

const HINTS: Partial<Record<DropReason, string>> = {
  retention:
    'their time lies before what the retention policy keeps (30d for the "detail" policy of presence influx setup, unless its --detail says otherwise); to load an old capture, write it where it is kept: 1.x --influx-rp autogen (presence influx setup leaves it infinite; presence calibrate --influx-rp autogen reads it), 2.x a bucket of its own',
  type_conflict: 'a field was written before with another type (e.g. float vs integer); write to a new database or drop the measurement',
  too_large: 'a single point is larger than the server accepts (max-body-size)',
  limit: 'a series or tag-value limit of the server is reached (max-series-per-database, max-values-per-tag)',
};

/**
 * The server's words when it refused every one of `lines` lines of a batch alike and stored none,
 * for no reason of a point (`refused`, not bad_line, type_conflict, ...): the request was refused,
 * not the points. Null otherwise.
 */
function requestRefusal(stored: Stored, lines: number): string | null {
  if (stored.written.size && [...stored.written.values()].some((n) => n > 0)) return null;
  const d = stored.dropped;
  if (!d.length || d.some((x) => x.reason !== 'refused' || x.message !== d[0].message)) return null;
  return d.reduce((n, x) => n + x.points, 0) === lines ? d[0].message : null;
}

/** The same refusal: equal but for their numbers (a client port in VictoriaMetrics' remoteAddr). */
function sameWords(a: string, b: string): boolean {
  return a.replace(/\d+/g, '#') === b.replace(/\d+/g, '#');
}

/** Writes a batch may spend finding which of its lines a partial write refused (the server says how
 *  many, not which): beyond, the lines of the part left are not reported as stored to the page. */
export const PARTIAL_SPLIT_WRITES = 64;

/** How long a drop keeps /healthz "degraded". */
export const DEGRADED_FOR_MS = 15 * 60_000;

export class WritePipeline extends EventEmitter<PipelineEvents> {
  /** Points confirmed written, and failed write attempts, since start. */
  pointsWritten = 0;
  writeFailures = 0;
  /** Points the server refused (dropped, their messages acknowledged), since start. */
  pointsDropped = 0;
  /** When the latest write failed (ms); null while writes go through. */
  writeFailingSince: number | null = null;
  /** What holds writes back while they fail (for /healthz); null while writes go through. */
  writeProblem: string | null = null;

  private readonly drops = new Map<DropReason, DropSummary>();
  private readonly dropLog: DropLog;

  /** The server's words while it refuses whole requests (every line of a batch, for no reason of a
   *  point); null once a write goes through. */
  private requestRefused: string | null = null;

  private pending: Batch = newBatch();
  private inFlight = 0;
  private readonly writes = new Set<Promise<void>>();
  private flushTimer: NodeJS.Timeout | null = null;
  private abandoned = false;
  private stopping = false;

  constructor(
    private readonly sink: Sink,
    private readonly batch: AggregatorConfig['batch'],
    private readonly log: Logger,
    private readonly metrics: AggregatorMetrics,
    /** Called when a write is answered 404: true when it created the missing database (write again at
     *  once), false when there was nothing to create, or why it could not (a string). */
    private readonly recreate?: () => Promise<boolean | string>,
  ) {
    super();
    this.dropLog = new DropLog(log);
  }

  /** Refusals of the last `withinMs` by reason (what makes /healthz "degraded"). */
  recentDrops(now = Date.now(), withinMs = DEGRADED_FOR_MS): DropSummary[] {
    return [...this.drops.values()].filter((d) => now - d.last < withinMs);
  }

  /** Adds the points of one message; the promise resolves once the batch holding them is written. */
  addMessage(lines: readonly string[], stored?: OnStored): Promise<void> {
    const batch = this.pending;
    for (const l of lines) batch.lines.push(l);
    batch.messages++;
    if (stored) batch.notes.push({ lines, stored });
    this.flushSoon(batch.messages >= this.batch.size);
    return batch.written;
  }

  /** Adds points that belong to no message (gateway_status written by the aggregator itself); they
   *  go with the next batch, at the latest after flushInterval. */
  addPoints(lines: readonly string[], stored?: OnStored): void {
    for (const l of lines) this.pending.lines.push(l);
    if (stored) this.pending.notes.push({ lines, stored });
    this.flushSoon(false);
  }

  /** True when nothing waits to be written and no write runs. */
  get idle(): boolean {
    return !this.inFlight && !this.pending.lines.length && !this.pending.messages;
  }

  /** Starts writing what is pending now (within the concurrency limit) and returns the writes running. */
  flushNow(): Promise<void>[] {
    this.flush();
    return [...this.writes];
  }

  /** From now on a partial batch is written as soon as a write slot frees (shutdown). */
  finishing(): void {
    this.stopping = true;
  }

  /** Gives up: no more retries or writes; what is left is never confirmed. */
  abandon(): void {
    this.abandoned = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }

  private flushSoon(now: boolean): void {
    if (now) {
      this.flush();
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, this.batch.flushInterval);
    }
  }

  /** Writes the pending batch; up to batch.concurrency writes run at once while the next batch fills. */
  private flush(): void {
    if (this.abandoned || this.inFlight >= this.batch.concurrency || (this.pending.lines.length === 0 && this.pending.messages === 0)) return;
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    const batch = this.pending;
    this.pending = newBatch();
    this.inFlight++;
    const p: Promise<void> = this.write(batch).finally(() => {
      this.inFlight--;
      this.writes.delete(p);
      const due = this.pending.messages >= this.batch.size || (this.pending.lines.length > 0 && (!this.flushTimer || this.stopping));
      if (due) this.flush();
    });
    this.writes.add(p);
  }

  private async write(batch: Batch): Promise<void> {
    // Abandoned before the write landed: `written` never resolves, so its messages are never
    // acknowledged and stay with the broker.
    let stored: Stored | null = batch.lines.length ? await this.store(batch.lines) : { written: new Map(), dropped: [], unsure: [] };
    if (!stored) return;
    for (let refused = requestRefusal(stored, batch.lines.length); refused !== null; refused = requestRefusal(stored, batch.lines.length)) {
      // Every line refused alike, for no reason of a point: the request is refused, unless a write of
      // no points goes through (or is refused in other words): then the points are at fault (the only
      // message of a batch, its lines too long for the server, ...) and are dropped as any refused point.
      if (!(await this.refusesRequest(refused))) break;
      if (this.abandoned) return;
      // The request is refused. Nothing dropped; written again (store() now retries it as a whole)
      // until the server takes it.
      this.requestRefused = refused;
      stored = await this.store(batch.lines);
      if (!stored) return;
    }
    let written = 0;
    for (const [measurement, n] of stored.written) {
      written += n;
      if (n) this.metrics.points.inc({ measurement: measurement === PRESENCE || measurement === GATEWAY_STATUS ? measurement : 'other' }, n);
    }
    this.pointsWritten += written;
    const now = Date.now();
    for (const d of stored.dropped) {
      this.pointsDropped += d.points;
      this.metrics.pointsDropped.inc({ reason: d.reason }, d.points);
      const prev = this.drops.get(d.reason);
      this.drops.set(d.reason, {
        reason: d.reason,
        points: (prev?.points ?? 0) + d.points,
        last: now,
        message: d.message.slice(0, 500),
        hint: HINTS[d.reason],
      });
      this.dropLog.record(d.reason, d.points, d.message, undefined, this.sink.target, now);
      this.emit('dropped', d.points, d.reason);
    }
    if (batch.messages) this.metrics.batchSize.observe(batch.messages);
    if (batch.notes.length) {
      // Only what the server surely stored is reported as written.
      const unsure = stored.unsure.length ? new Set(stored.unsure) : null;
      for (const n of batch.notes) {
        if (unsure && n.lines.some((l) => unsure.has(l))) continue;
        try {
          n.stored();
        } catch (e) {
          this.log.error({ err: String(e) }, 'recording a written message failed'); // never stops the writes
        }
      }
    }
    batch.resolve(); // the PUBACKs of its messages follow, in arrival order
    this.emit('written', written);
  }

  /**
   * After every line of a batch was refused alike: true when a write of no points is refused in the
   * same words (the request is refused: a proxy, an HTTPS port, no database given), or fails on its own
   * (the batch is kept); false when it goes through, or is refused otherwise (the points are at fault).
   */
  private async refusesRequest(refusal: string): Promise<boolean> {
    if (!this.sink.probe) return true;
    try {
      await this.sink.probe();
      return false;
    } catch (err) {
      const f = classifyWriteError(err, this.sink.secrets);
      if (f.kind !== 'refused') return true;
      return sameWords(`${f.status ?? ''} ${f.message}`.trim(), refusal);
    }
  }

  /**
   * Writes lines until the server has answered for each of them: stored or refused. Null once abandoned.
   * `split`: writes left to find which lines of a partial write were refused (shared by a batch's
   * halves: a batch where refused and stored points alternate costs at most that many writes more).
   */
  /** Stores each half of `lines` in turn (null once abandoned), their results merged. */
  private async storeHalves(lines: string[], split: { left: number }): Promise<Stored | null> {
    const mid = lines.length >>> 1;
    const a = await this.store(lines.slice(0, mid), split);
    if (!a) return null;
    const b = await this.store(lines.slice(mid), split);
    return b && merge(a, b);
  }

  private async store(lines: string[], split = { left: PARTIAL_SPLIT_WRITES }): Promise<Stored | null> {
    let attempt = 0;
    for (;;) {
      if (this.abandoned) return null;
      const t0 = process.hrtime.bigint();
      let f: WriteFailure;
      try {
        await this.sink.write(lines);
        this.metrics.writeSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
        this.writesGoThrough();
        this.requestRefused = null;
        return allWritten(lines);
      } catch (err) {
        this.writeFailures++;
        this.metrics.writeFailures.inc();
        f = classifyWriteError(err, this.sink.secrets);
      }
      if (f.kind === 'partial') {
        // The server stored all but f.dropped points. Which measurement lost them is known only when
        // the lines are of one; otherwise each measurement is written again on its own (writes are
        // idempotent: a stored point written twice is one point).
        this.writesGoThrough();
        const groups = new Map<string, string[]>();
        for (const l of lines) {
          const m = measurementOf(l);
          let g = groups.get(m);
          if (!g) groups.set(m, (g = []));
          g.push(l);
        }
        if (groups.size > 1) {
          let out: Stored = { written: new Map(), dropped: [], unsure: [] };
          for (const g of groups.values()) {
            const r = await this.store(g, split);
            if (!r) return null;
            out = merge(out, r);
          }
          return out;
        }
        const dropped = Math.min(f.dropped, lines.length);
        // Some were stored and some refused, and the server does not say which: halves again (while
        // the batch's budget of such writes lasts), so the page (notes of stored lines) still gets
        // the messages whose points were stored, and not only the refused ones are left out.
        if (dropped > 0 && dropped < lines.length && split.left > 0) {
          split.left -= 2;
          return this.storeHalves(lines, split);
        }
        return {
          written: new Map([[measurementOf(lines[0]), lines.length - dropped]]),
          dropped: dropped ? [{ reason: f.reason, points: dropped, message: f.message }] : [],
          unsure: dropped ? lines : [],
        };
      }
      // Retried as a whole only while the server answers in the words that refused the request: other
      // words (the proxy fixed, the server itself now refusing a point) are split and dropped as usual.
      const wholeRequest = f.kind === 'refused' && this.requestRefused !== null && sameWords(`${f.status ?? ''} ${f.message}`.trim(), this.requestRefused);
      if ((f.kind === 'refused' && !wholeRequest) || f.kind === 'too_large') {
        // Some point is refused (or the body is too large) and the server does not say which: halves.
        this.writesGoThrough();
        if (lines.length === 1) {
          const reason: DropReason = f.kind === 'too_large' ? 'too_large' : dropReason(f.message);
          return { written: new Map(), dropped: [{ reason, points: 1, message: `${f.status ?? ''} ${f.message}`.trim() }], unsure: lines };
        }
        return this.storeHalves(lines, split);
      }
      attempt++;
      this.writeFailingSince ??= Date.now();
      const backoff = Math.min(this.batch.maxRetryDelay, 250 * 2 ** Math.min(attempt - 1, 10));
      let delay = backoff;
      let problem: string;
      let level: 'warn' | 'error' = 'warn';
      switch (f.kind) {
        case 'throttled':
          delay = f.retryAfterMs ?? backoff;
          delay = Math.min(Math.max(delay, 0), 15 * 60_000);
          problem = `InfluxDB asks to slow down (${f.status}${f.retryAfterMs !== null ? `, Retry-After ${Math.round(f.retryAfterMs / 1000)} s` : ''}): ${f.message}`;
          break;
        case 'auth':
          delay = this.batch.maxRetryDelay;
          level = 'error';
          problem = `InfluxDB refuses the credentials (${f.status}): ${f.message}; check influx.token (INFLUX_TOKEN) or influx.username/password and their write permission on the database or bucket`;
          break;
        case 'missing': {
          const recreated = this.recreate ? await this.recreate() : null;
          if (recreated === true) {
            this.log.warn(
              { err: f.message, status: f.status, lines: lines.length, sink: this.sink.target },
              `write answered ${f.status}: the database or retention policy was missing (InfluxDB came back without it, or it was dropped) and is created again (influx.create); writing again`,
            );
            continue;
          }
          delay = this.batch.maxRetryDelay;
          level = 'error';
          problem =
            recreated === null
              ? `InfluxDB answers ${f.status}: ${f.message}; the database, retention policy or bucket does not exist (start with --influx-create, or create it), or --influx-api does not match the server`
              : `InfluxDB answers ${f.status}: ${f.message}; influx.create is on, ${recreated === false ? 'yet the start-up checks find nothing missing to create' : `but creating what is missing failed: ${recreated}`}; check the database or bucket, or that --influx-api matches the server`;
          break;
        }
        case 'refused':
          delay = this.batch.maxRetryDelay;
          level = 'error';
          problem = `InfluxDB refuses every write (${f.status}): ${f.message}; this names no fault of a point, so the request is refused: check influx.url (its scheme and port: an HTTPS port, a proxy in front of InfluxDB), influx.database or bucket, and --influx-api; nothing is dropped meanwhile`;
          break;
        case 'unexpected':
          delay = this.batch.maxRetryDelay;
          level = 'error';
          problem = `InfluxDB answered ${f.status} to a write: ${f.message}`;
          break;
        default:
          // (the line-protocol file: which setting gave it, as its default ./presence.lp was named only by its full path)
          problem = /^(ENOSPC|EDQUOT)\b/.test(f.message)
            ? `writes to ${this.sink.target} (out, --out) fail: ${f.message}: its filesystem (or the quota) is full; free space there: the messages wait unacknowledged (the broker keeps them) and are written then`
            : f.status !== undefined && /no space left on device|disk quota exceeded/i.test(f.message)
              ? `writes to ${this.sink.target} fail: InfluxDB answers ${f.status}: ${f.message}: the disk of InfluxDB's data or WAL folder (or its quota) is full; free space there: the messages wait unacknowledged (the broker keeps them) and are written then; influxd 1.x goes on refusing writes in these words after space is freed until it is restarted`
              : `writes to ${this.sink.target} fail: ${f.message}`;
      }
      this.writeProblem = problem;
      this.log[level](
        { err: f.message, status: f.status, kind: f.kind, attempt, retry_in_ms: delay, lines: lines.length, sink: this.sink.target },
        `write failed; retrying: ${problem}`,
      );
      await new Promise((r) => setTimeout(r, delay).unref()); // does not keep a stopped process alive
    }
  }

  private writesGoThrough(): void {
    this.writeFailingSince = null;
    this.writeProblem = null;
  }
}
