// Gateway status: the retained message on the status topic (state, version, uptime, frames/s and
// errors per source, queue depth). Every field is one of the contract's; a source's last error is
// one of the contract's fixed sentences (lastErrorText), never a capture tool's text: anything else
// is replaced by the fixed sentence of its error_code before it is published.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../scripts/package-root.ts';
import {
  CONTRACT_VERSION,
  isLastError,
  lastErrorText,
  redactAddresses,
  redactFreeText,
  type QueueState,
  type SourceStatus,
  type StatusMessage,
} from '../contract/index.ts';

export const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version as string;
  } catch {
    return '0.0.0';
  }
})();

/** Replaces anything shaped like a device address with "<addr>"; redactFreeText: every token that could hold one with "<redacted>". */
export { redactAddresses, redactFreeText };

/** Frames per second per source, measured between two status snapshots. */
export class RateTracker {
  private last = new Map<string, { frames: number; at: number }>();
  rate(name: string, frames: number, now: number): number {
    const prev = this.last.get(name);
    this.last.set(name, { frames, at: now });
    if (!prev || now <= prev.at) return 0;
    return ((frames - prev.frames) * 1000) / (now - prev.at);
  }
}

export interface StatusInput {
  site: string;
  zone: string;
  gateway: string;
  startedAt: number;
  now: number;
  queueDepth: number;
  queueDropped: number;
  /** Whether the queue folder can be written (default ok). */
  queueState?: QueueState;
  /** Window publishes the broker refused since start (MQTT 5 reason code >= 0x80). */
  publishRefused?: number;
  windows: number;
  lastSeq: number;
  sources: SourceStatus[];
}

export function onlineStatus(s: StatusInput): StatusMessage {
  return {
    v: CONTRACT_VERSION,
    site: s.site,
    gateway: s.gateway,
    zone: s.zone,
    state: 'online',
    version: VERSION,
    uptime_s: Math.max(0, Math.round((s.now - s.startedAt) / 100) / 10),
    queue_depth: s.queueDepth,
    queue_dropped: s.queueDropped,
    queue_state: s.queueState ?? 'ok',
    publish_refused: s.publishRefused ?? 0,
    windows: s.windows,
    last_seq: s.lastSeq,
    sources: s.sources.map((src) =>
      src.last_error === undefined || isLastError(src.last_error) ? src : { ...src, last_error: lastErrorText(src.error_code ?? 'failed') },
    ),
    ts: new Date(s.now).toISOString(),
  };
}
