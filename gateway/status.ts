// Gateway status: the retained message on the status topic (state, version, uptime, frames/s and
// errors per source, queue depth). Every field is one of the contract's; a source's last error is
// one of the contract's fixed sentences (lastErrorText), never a capture tool's text: anything else
// is replaced by the fixed sentence of its error_code before it is published.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../scripts/package-root.ts';
import {
  CONTRACT_VERSION,
  encode,
  isLastError,
  MAX_PAYLOAD_BYTES,
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
  /** Queued windows whose file could not be read when their turn came (published only when > 0). */
  queueUnreadable?: number;
  /** Window publishes the broker refused since start (MQTT 5 reason code >= 0x80). */
  publishRefused?: number;
  windows: number;
  lastSeq: number;
  sources: SourceStatus[];
}

/**
 * The status as published: within MAX_PAYLOAD_BYTES, which the aggregator checks before anything
 * else (too_large; past the broker's max_packet_size, 8192 in docs/mosquitto/, the broker even
 * closes the gateway's connection, its counts with it). The schema allows 64 sources, about 180
 * bytes each when they fail: a gateway with some 20 or more would be over. Then, in turn: the sources
 * without their last_error sentence (error_code tells it), with their required fields only, and
 * none (the status without sources: the aggregator writes no source totals for it).
 */
export function fitStatus(m: StatusMessage): StatusMessage {
  const fits = (x: StatusMessage) => encode(x).length <= MAX_PAYLOAD_BYTES;
  if (fits(m) || !m.sources) return m;
  const withoutSentences: StatusMessage = { ...m, sources: m.sources.map(({ last_error: _, ...src }) => src) };
  if (fits(withoutSentences)) return withoutSentences;
  const required: StatusMessage = {
    ...m,
    sources: m.sources.map((src) => ({ name: src.name, state: src.state, frames_per_s: src.frames_per_s, errors: src.errors })),
  };
  if (fits(required)) return required;
  const { sources: _, ...rest } = m;
  return rest;
}

export function onlineStatus(s: StatusInput): StatusMessage {
  return fitStatus({
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
    // only when there are some: a status without it is one every aggregator of contract v1 takes
    ...(s.queueUnreadable ? { queue_unreadable: s.queueUnreadable } : {}),
    publish_refused: s.publishRefused ?? 0,
    windows: s.windows,
    last_seq: s.lastSeq,
    sources: s.sources.map((src) =>
      src.last_error === undefined || isLastError(src.last_error) ? src : { ...src, last_error: lastErrorText(src.error_code ?? 'failed') },
    ),
    // A wall clock that is not set yet (before 2000: a board without a real-time clock before NTP)
    // cannot stamp the status within the contract; without ts the aggregator takes the receipt time.
    ...(s.now >= Date.UTC(2000, 0, 1) && s.now < Date.UTC(2100, 0, 1) ? { ts: new Date(s.now).toISOString() } : {}),
  });
}
