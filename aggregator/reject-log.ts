// Rate limit on the "message rejected" log lines. A flood of bad messages (a broken or hostile
// publisher) must not become a flood of log: per interval the first `perInterval` rejections are
// logged one by one (reason, topic, detail); the rest are only counted, and when the interval ends
// one summary line gives their number by reason. Every rejection is still counted in
// presence_aggregator_rejected_total{reason}; this only bounds the log.
import type { Logger } from 'pino';
import { addressLikeLevels, topicForLog } from '../contract/index.ts';

export interface RejectLogOptions {
  /** Rejections logged one by one per interval. Default 10. */
  perInterval?: number;
  /** Interval length (ms). Default 60 s. */
  intervalMs?: number;
}

export class RejectLog {
  readonly perInterval: number;
  readonly intervalMs: number;
  private windowStart = -Infinity;
  private logged = 0;
  private suppressed = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: Logger,
    opts: RejectLogOptions = {},
  ) {
    this.perInterval = opts.perInterval ?? 10;
    this.intervalMs = opts.intervalMs ?? 60_000;
  }

  /** One rejected message: logged, or counted for the interval's summary. */
  record(reason: string, topic: string, detail: string, now: number): void {
    if (now - this.windowStart >= this.intervalMs) {
      this.flush();
      this.windowStart = now;
      this.logged = 0;
    }
    if (this.logged < this.perInterval) {
      this.logged++;
      // a detail names the topic's site or gateway (topic_mismatch, unknown_gateway): hidden as in the topic
      const shown = addressLikeLevels(topic).reduce((d, level) => d.split(level).join('(not an id)'), detail);
      this.log.warn({ reason, topic: topicForLog(topic), detail: shown.slice(0, 1000) }, 'message rejected');
      if (this.logged === this.perInterval)
        this.log.warn({ interval_s: this.intervalMs / 1000 }, `more rejections in this interval are summed up in one line at its end`);
      return;
    }
    this.suppressed.set(reason, (this.suppressed.get(reason) ?? 0) + 1);
    // The summary comes when the interval ends, also if no further message arrives.
    this.timer ??= setTimeout(
      () => {
        this.timer = null;
        this.flush();
      },
      Math.max(0, this.windowStart + this.intervalMs - now),
    ).unref();
  }

  /** Writes the summary of rejections not logged one by one (if any). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.suppressed.size === 0) return;
    const byReason = Object.fromEntries([...this.suppressed].sort(([a], [b]) => a.localeCompare(b)));
    const total = [...this.suppressed.values()].reduce((a, b) => a + b, 0);
    this.suppressed.clear();
    this.log.warn({ not_logged: total, by_reason: byReason, interval_s: this.intervalMs / 1000 }, 'messages rejected (summary)');
  }
}
