// Gateway status: the retained message on the status topic (state, version, uptime, frames/s and
// errors per source, queue depth). Every field is one of the contract's; a source's last error is
// sanitised (printable ASCII, bounded, addresses redacted) before it is published.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../scripts/package-root.ts';
import { CONTRACT_VERSION, redactAddresses, sanitiseMessage, type QueueState, type SourceStatus, type StatusMessage } from '../contract/index.ts';

export const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version as string;
  } catch {
    return '0.0.0';
  }
})();

/** Replaces anything shaped like a device address with "<addr>" (the contract's redaction). */
export { redactAddresses };

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
    windows: s.windows,
    last_seq: s.lastSeq,
    sources: s.sources.map((src) => (src.last_error === undefined ? src : { ...src, last_error: sanitiseMessage(src.last_error) })),
    ts: new Date(s.now).toISOString(),
  };
}
