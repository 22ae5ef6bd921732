// The write pipeline: points of accepted messages are collected into batches, each batch is written
// to the sink as a whole, and a batch's `written` promise resolves once the sink confirmed it. The
// PUBACKs of the batch's messages wait on that promise (./mqtt-ack.ts).
//
// - A batch is written when it holds batch.size messages, or batch.flushInterval after its first
//   point; up to batch.concurrency batches are written at once while the next one fills.
// - A failed write is retried with backoff (250 ms doubling up to batch.maxRetryDelay) until it lands;
//   meanwhile its messages stay unacknowledged. InfluxDB answering 400 wrote the other lines of the
//   batch and a retry cannot help: logged, and the batch counts as written.
// - After abandon() (stop with writes left) no write is retried and the batches left never resolve:
//   their messages stay with the broker.
import { redactUrlsIn } from '../scripts/lib/secrets.ts';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { AggregatorConfig } from './config.ts';
import type { AggregatorMetrics } from './health.ts';
import { GATEWAY_STATUS, PRESENCE } from './messages.ts';
import { isPermanent, type Sink } from './writer.ts';

interface Batch {
  lines: string[];
  /** Messages whose points are in `lines`. */
  messages: number;
  /** Lines of measurement presence among `lines` (the others are gateway_status). */
  presence: number;
  /** Resolves once the batch is written. */
  written: Promise<void>;
  resolve: () => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  const written = new Promise<void>((res) => (resolve = res));
  return { lines: [], messages: 0, presence: 0, written, resolve };
}

export interface PipelineEvents {
  /** A batch was written; the number of its lines (points). */
  written: [lines: number];
}

export class WritePipeline extends EventEmitter<PipelineEvents> {
  /** Points confirmed written, and failed write attempts, since start. */
  pointsWritten = 0;
  writeFailures = 0;
  /** When the latest write failed (ms); null while writes go through. */
  writeFailingSince: number | null = null;

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
  ) {
    super();
  }

  /** Adds the points of one message; the promise resolves once the batch holding them is written. */
  addMessage(lines: readonly string[], presence: number): Promise<void> {
    const batch = this.pending;
    for (const l of lines) batch.lines.push(l);
    batch.presence += presence;
    batch.messages++;
    this.flushSoon(batch.messages >= this.batch.size);
    return batch.written;
  }

  /** Adds points that belong to no message (gateway_status written by the aggregator itself); they
   *  go with the next batch, at the latest after flushInterval. */
  addPoints(lines: readonly string[]): void {
    for (const l of lines) this.pending.lines.push(l);
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
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
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
    let attempt = 0;
    for (;;) {
      // Abandoned before the write landed: `written` never resolves, so its messages are never
      // acknowledged and stay with the broker.
      if (this.abandoned) return;
      const t0 = process.hrtime.bigint();
      try {
        if (batch.lines.length) await this.sink.write(batch.lines);
        this.metrics.writeSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
        break;
      } catch (err) {
        attempt++;
        this.writeFailures++;
        this.metrics.writeFailures.inc();
        const e = err as Error & { statusCode?: number; body?: string };
        if (isPermanent(err) && e.statusCode === 400) {
          // InfluxDB refused some lines (e.g. a field type conflict) and wrote the others: a retry
          // cannot help and would block everything behind it.
          this.log.error({ err: redactUrlsIn(e.message), body: e.body, lines: batch.lines.length }, 'InfluxDB refused part of a batch; the rest is written');
          break;
        }
        this.writeFailingSince ??= Date.now();
        const delay = Math.min(this.batch.maxRetryDelay, 250 * 2 ** Math.min(attempt - 1, 10));
        this.log.warn({ err: redactUrlsIn(String(e.message)), status: e.statusCode, attempt, retry_in_ms: delay, lines: batch.lines.length, sink: this.sink.target }, 'write failed; retrying');
        await new Promise((r) => setTimeout(r, delay).unref()); // does not keep a stopped process alive
      }
    }
    this.writeFailingSince = null;
    const presence = batch.presence;
    this.pointsWritten += batch.lines.length;
    if (presence) this.metrics.points.inc({ measurement: PRESENCE }, presence);
    if (batch.lines.length - presence) this.metrics.points.inc({ measurement: GATEWAY_STATUS }, batch.lines.length - presence);
    if (batch.messages) this.metrics.batchSize.observe(batch.messages);
    batch.resolve(); // the PUBACKs of its messages follow, in arrival order
    this.emit('written', batch.lines.length);
  }
}
