// /metrics (Prometheus) and /healthz of a running gateway (`presence gateway --http-port`), as the
// aggregator has them, and the live page at / with its event stream /events (gateway/web.ts). Off
// unless a port is given; loopback by default. /metrics and /healthz have no authentication; the page
// needs http.user and http.password, or http.token, on any other address (scripts/lib/web.ts).
//
// Every value is read from the gateway when scraped (queue depth and state, broker connection,
// frames and state per source) or counted from its events (windows queued and acknowledged):
// counts only, no address or hash ever reaches a metric label (source names come from the config).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { CountsMessage, SourceStatus } from '../contract/index.ts';
import { addStandardMetrics } from '../scripts/lib/metrics.ts';
import { answerFailure, listenServer, refuseMethod, servedPath, SERVER_OPTIONS, type ListeningServer } from '../scripts/lib/http.ts';
import { type SseHub, webHandler } from '../scripts/lib/web.ts';
import type { GatewayPage } from './web.ts';
import { NO_OUTPUT_FIX, NO_OUTPUT_MS } from './sources.ts';

const SOURCE_STATES: SourceStatus['state'][] = ['running', 'restarting', 'failed', 'finished'];
const QUEUE_STATES = ['ok', 'disk_full', 'write_failed'] as const;

/** What the HTTP server reads from a gateway (gateway.ts `Gateway`). */
export interface GatewayView {
  readonly sources: ReadonlyArray<{
    name: string;
    radio?: string;
    state: SourceStatus['state'];
    frames: number;
    errors: number;
    /** The last failure's fixed sentence (contract lastErrorText) and, for a capture command, what to do about it. */
    lastError?: string;
    lastFix?: string;
    /** A capture command's silence (sources.ts CaptureSource.silence): bytes written since it started, ms since its last frame; null when none runs. */
    silence?(nowMs?: number): { bytes: number; silentMs: number } | null;
  }>;
  /** Window length (ms): a capture command quiet for QUIET_WINDOWS of them is a warning. */
  readonly windowMs?: number;
  readonly queueDepth: number;
  /** Queued windows whose file cannot be read (their owner or mode changed while it ran), with the fix; null or absent: none. */
  readonly queueUnreadable?: string | null;
  /** How many queued windows cannot be read (the status's queue_unreadable, without making the status). */
  readonly queueUnreadableCount?: number;
  readonly mqttConnected: boolean;
  /** While not connected: the last connection error and its fix. */
  readonly brokerProblem?: { error: string; fix: string } | null;
  /** Frames of the last closed window of a link type the firmware does not parse (not counted). */
  readonly unparsedFrames?: number;
  /** Windows dropped because the queue was full, and the queue folder's state (the status's queue_dropped and queue_state, without making the status). */
  readonly queueDropped?: number;
  readonly queueState?: string;
  status(): { queue_state?: string; queue_dropped?: number; queue_unreadable?: number; windows?: number; last_seq?: number };
  on(event: 'window', fn: (m: CountsMessage) => void): unknown;
  on(event: 'published', fn: (seq: number) => void): unknown;
  on(event: 'refused', fn: (seq: number, reasonCode: number, reason: string) => void): unknown;
  /** Corridor gateways only: the group (null or absent: none) and the sketches waiting in memory. */
  readonly corridorGroup?: string | null;
  readonly sketchQueueDepth?: number;
  on(event: 'sketch', fn: (event: string) => void): unknown;
}

/** A counter whose total is kept elsewhere (the gateway counts it): read when scraped. */
function setCounter(c: Counter, total: number): void {
  c.reset();
  c.inc(total);
}

export class GatewayMetrics {
  readonly registry = new Registry();

  constructor(gw: GatewayView, processMetrics = true) {
    const r = [this.registry];
    addStandardMetrics(this.registry, 'gateway', processMetrics);
    const closed = new Counter({ name: 'presence_gateway_windows_closed_total', help: 'Windows closed and durably queued', registers: r });
    const published = new Counter({
      name: 'presence_gateway_windows_published_total',
      help: 'Windows acknowledged by the broker (PUBACK) and removed from the queue',
      registers: r,
    });
    const windowFrames = new Counter({
      name: 'presence_gateway_window_frames_total',
      help: 'Frames counted in closed windows, by radio (as published: zeros for a suppressed radio)',
      labelNames: ['radio'],
      registers: r,
    });
    for (const radio of ['wifi', 'ble']) windowFrames.inc({ radio }, 0);
    gw.on('window', (m) => {
      closed.inc();
      windowFrames.inc({ radio: 'wifi' }, m.wifi.frames);
      windowFrames.inc({ radio: 'ble' }, m.ble.frames);
    });
    gw.on('published', () => published.inc());
    const refused = new Counter({
      name: 'presence_gateway_publish_refused_total',
      help: 'Window publishes the broker refused (MQTT 5 PUBACK reason code >= 0x80, e.g. 0x87 not authorized), by reason; the window stays queued. Always 0 over MQTT 3.1.1, where a denied publish is acknowledged',
      labelNames: ['reason'],
      registers: r,
    });
    gw.on('refused', (_seq, _code, reason) => refused.inc({ reason }));
    // Corridor sketches (gateway/corridor.ts): counts of what happened to them, never their bits.
    if (gw.corridorGroup) {
      const sketches = new Counter({
        name: 'presence_gateway_sketches_total',
        help: 'Corridor sketches by outcome: queued (in memory, never on disk), published (acknowledged by the broker), dropped_full (the in-memory queue was full), dropped_expired (held longer than an epoch), dropped_refused (the broker refused it), dropped_invalid (outside the contract)',
        labelNames: ['outcome'],
        registers: r,
      });
      for (const outcome of ['queued', 'published', 'dropped_full', 'dropped_expired', 'dropped_refused', 'dropped_invalid']) sketches.inc({ outcome }, 0);
      gw.on('sketch', (outcome) => sketches.inc({ outcome }));
      new Gauge({
        name: 'presence_gateway_sketch_queue_depth',
        help: 'Corridor sketches waiting in memory for the broker',
        registers: r,
        collect() {
          this.set(gw.sketchQueueDepth ?? 0);
        },
      });
    }
    new Gauge({
      name: 'presence_gateway_queue_depth',
      help: 'Windows queued and not yet acknowledged by the broker',
      registers: r,
      collect() {
        this.set(gw.queueDepth);
      },
    });
    new Gauge({
      name: 'presence_gateway_queue_unreadable',
      help: 'Queued windows whose file the gateway cannot read (kept on disk, counted in the queue depth, sent once they can be read)',
      registers: r,
      collect() {
        this.set(gw.queueUnreadableCount ?? 0);
      },
    });
    new Counter({
      name: 'presence_gateway_queue_dropped_total',
      help: 'Windows dropped since start because the queue was full (queue.max_windows)',
      registers: r,
      collect() {
        // read from the queue: the whole status (its sources, their rates) is not made per scrape
        setCounter(this, gw.queueDropped ?? gw.status().queue_dropped ?? 0);
      },
    });
    new Gauge({
      name: 'presence_gateway_queue_state',
      help: '1 for the state the queue folder is in: ok, disk_full (windows held in memory) or write_failed',
      labelNames: ['state'],
      registers: r,
      collect() {
        const s = gw.queueState ?? gw.status().queue_state ?? 'ok';
        for (const state of QUEUE_STATES) this.set({ state }, state === s ? 1 : 0);
      },
    });
    new Gauge({
      name: 'presence_gateway_mqtt_connected',
      help: '1 while connected to the broker',
      registers: r,
      collect() {
        this.set(gw.mqttConnected ? 1 : 0);
      },
    });
    new Counter({
      name: 'presence_gateway_source_frames_total',
      help: 'Frames read from each capture source since start (label radio: as configured, or "auto" when the link type says)',
      labelNames: ['source', 'radio'],
      registers: r,
      collect() {
        this.reset();
        for (const s of gw.sources) this.inc({ source: s.name, radio: s.radio ?? 'auto' }, s.frames);
      },
    });
    new Counter({
      name: 'presence_gateway_source_errors_total',
      help: 'Failures of each capture source since start (exits, unreadable output)',
      labelNames: ['source'],
      registers: r,
      collect() {
        this.reset();
        for (const s of gw.sources) this.inc({ source: s.name }, s.errors);
      },
    });
    new Gauge({
      name: 'presence_gateway_source_state',
      help: '1 for the state each capture source is in: running, restarting, failed or finished',
      labelNames: ['source', 'state'],
      registers: r,
      collect() {
        for (const s of gw.sources) for (const state of SOURCE_STATES) this.set({ source: s.name, state }, s.state === state ? 1 : 0);
      },
    });
  }
}

export interface Health {
  status: 'ok' | 'degraded' | 'unhealthy';
  problems: string[];
  /** Worth a look, but not a fault (status stays ok): a capture command quiet for many windows. */
  warnings: string[];
  queue_depth: number;
  queue_state: string;
  sources: Record<string, string>;
}

/** A capture command that wrote its header, then no frame for this many windows (and QUIET_MIN_MS), gets a warning. */
export const QUIET_WINDOWS = 10;
export const QUIET_MIN_MS = 10 * 60_000;

/** Seconds or minutes, rounded down, for a sentence. */
function span(ms: number): string {
  return ms < 120_000 ? `${Math.floor(ms / 1000)} s` : `${Math.floor(ms / 60_000)} min`;
}

/**
 * What a running capture command's silence says (null: nothing): no byte at all, not even a
 * capture file header, NO_OUTPUT_MS after it started is a fault (problem); a header, then no frame
 * for QUIET_WINDOWS windows and at least QUIET_MIN_MS, a warning only: a quiet site, or a capture
 * filtered down to probe requests, may be silent that long.
 */
export function sourceSilence(
  s: GatewayView['sources'][number],
  windowMs: number | undefined,
  nowMs?: number,
): { level: 'problem' | 'warning'; text: string } | null {
  const q = s.silence?.(nowMs);
  if (!q) return null;
  if (q.bytes === 0)
    return q.silentMs >= NO_OUTPUT_MS
      ? {
          level: 'problem',
          text: `source ${s.name}: the capture command has written nothing for ${span(q.silentMs)} since it started, not even a capture file header, so nothing is counted: it hangs or holds its output back; fix: ${NO_OUTPUT_FIX}`,
        }
      : null;
  const quietMs = Math.max(QUIET_MIN_MS, QUIET_WINDOWS * (windowMs ?? 60_000));
  return q.silentMs >= quietMs
    ? {
        level: 'warning',
        text: `source ${s.name}: the capture command wrote a capture file header but no frame for ${span(q.silentMs)} (${Math.floor(q.silentMs / (windowMs ?? 60_000))} windows): a quiet site or a capture filtered to probe requests can be this silent; if people are near, check that the interface is up, in monitor mode and on a busy channel (presence doctor)`,
      }
    : null;
}

/**
 * ok: connected, every source running (or a file finished), queue writable. degraded (200): windows
 * are still counted but wait (broker not connected, queue disk full or failing, queued windows that
 * cannot be read, a source restarting),
 * frames arrive that cannot be counted (a link type the firmware does not parse), or a capture
 * command has written nothing, not even a capture file header, for NO_OUTPUT_MS.
 * unhealthy (503): no source can deliver frames any more (all failed). `warnings` do not change the
 * status: a capture command that wrote its header, then no frame for QUIET_WINDOWS windows.
 */
export function health(gw: GatewayView, nowMs?: number): Health {
  const problems: string[] = [];
  const warnings: string[] = [];
  const st = gw.status();
  const queueState = st.queue_state ?? 'ok';
  const failed = gw.sources.filter((s) => s.state === 'failed');
  const restarting = gw.sources.filter((s) => s.state === 'restarting');
  const dead = gw.sources.length > 0 && gw.sources.every((s) => s.state === 'failed');
  // Why, and what to do: the fixed sentence of the status's last_error and the capture command's fix
  // (the log's), so /healthz alone tells a field engineer what is wrong, as it does for the broker.
  const because = (s: GatewayView['sources'][number]) => `${s.lastError ? `: ${s.lastError}` : ''}${s.lastFix ? `; fix: ${s.lastFix}` : ''}`;
  if (dead) problems.push('every capture source failed: nothing is counted');
  for (const s of failed) problems.push(`source ${s.name} failed${because(s)}`);
  for (const s of restarting) problems.push(`source ${s.name} is restarting (${s.errors} errors so far)${because(s)}`);
  for (const s of gw.sources) {
    const q = sourceSilence(s, gw.windowMs, nowMs);
    if (q) (q.level === 'problem' ? problems : warnings).push(q.text);
  }
  if (gw.unparsedFrames)
    problems.push(
      `${gw.unparsedFrames} frame(s) of the last window are of a link type the firmware does not parse (a normal network interface, not the monitor-mode one): not counted; capture from the monitor-mode interface (presence doctor names the link type)`,
    );
  const why = gw.brokerProblem;
  if (!gw.mqttConnected) problems.push(`not connected to the MQTT broker: ${gw.queueDepth} window(s) queued${why ? ` (${why.error}; fix: ${why.fix})` : ''}`);
  // connected for the moment, but another client with this client id takes the connection again and again
  else if (why) problems.push(`the connection to the MQTT broker does not last: ${why.error}; fix: ${why.fix}`);
  if (gw.queueUnreadable) problems.push(gw.queueUnreadable);
  if (queueState === 'disk_full') problems.push('queue folder full (disk_full): windows are held in memory until space is freed');
  else if (queueState !== 'ok') problems.push(`queue folder cannot be written (${queueState}): windows are held in memory`);
  return {
    status: dead ? 'unhealthy' : problems.length ? 'degraded' : 'ok',
    problems,
    warnings,
    queue_depth: gw.queueDepth,
    queue_state: queueState,
    sources: Object.fromEntries(gw.sources.map((s) => [s.name, s.state])),
  };
}

export { HttpPortError } from '../scripts/lib/http.ts';
export type HttpServer = ListeningServer;

/** Listens on host:port and answers /metrics and /healthz; rejects with HttpPortError. */
export async function listenHttp(
  port: number,
  host: string,
  routes: Record<string, () => Promise<{ code: number; type: string; body: string }>>,
  label = 'gateway',
  web?: { handle: (req: IncomingMessage, res: ServerResponse) => boolean; paths: string[] },
): Promise<HttpServer> {
  const server = createServer(SERVER_OPTIONS, async (req, res) => {
    // Everything inside the catch: a throw in this handler is a rejected promise nobody awaits, which
    // ends the process, counting and all, for one request.
    try {
      const path = servedPath(req, res);
      if (path === undefined) return;
      const route = routes[path];
      if (web?.handle(req, res)) return;
      if (!route) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end(`not found: the ${label} answers ${[...(web?.paths ?? []), ...Object.keys(routes)].join(', ')}\n`);
        return;
      }
      if (refuseMethod(req, res, path)) return;
      const out = await route();
      res.writeHead(out.code, { 'content-type': out.type });
      res.end(out.body);
    } catch (e) {
      answerFailure(res, `${(e as Error).message}\n`);
    }
  });
  return listenServer(server, host, port);
}

/** The page's viewers on /metrics: connected now, dropped for falling behind, refused, the largest unsent buffer. */
function addViewerMetrics(registry: Registry, hub: SseHub): void {
  const r = [registry];
  new Gauge({
    name: 'presence_gateway_page_viewers',
    help: 'Viewers of the live page (event streams) connected now',
    registers: r,
    collect() {
      this.set(hub.size);
    },
  });
  new Counter({
    name: 'presence_gateway_page_viewers_dropped_total',
    help: 'Page viewers dropped since start because they fell behind (more unsent bytes than http.viewer_buffer)',
    registers: r,
    collect() {
      setCounter(this, hub.dropped);
    },
  });
  new Counter({
    name: 'presence_gateway_page_viewers_refused_total',
    help: 'Page viewers refused since start because http.max_viewers were connected',
    registers: r,
    collect() {
      setCounter(this, hub.refused);
    },
  });
  new Gauge({
    name: 'presence_gateway_page_buffer_peak_bytes',
    help: 'The most unsent bytes any page viewer had since start (at most http.viewer_buffer)',
    registers: r,
    collect() {
      this.set(hub.peakBuffered);
    },
  });
}

export function startGatewayHttp(gw: GatewayView, port: number, host: string, processMetrics = true, page?: GatewayPage): Promise<HttpServer> {
  const metrics = new GatewayMetrics(gw, processMetrics);
  let web: { handle: (req: IncomingMessage, res: ServerResponse) => boolean; paths: string[] } | undefined;
  if (page) {
    addViewerMetrics(metrics.registry, page.hub);
    web = {
      handle: webHandler({ access: page.access, pages: { '/': page.page }, streams: { '/events': { hub: page.hub, initial: () => page.initial() } } }),
      paths: ['/ (the page)', '/events'],
    };
  }
  return listenHttp(
    port,
    host,
    {
      '/metrics': async () => ({ code: 200, type: metrics.registry.contentType, body: await metrics.registry.metrics() }),
      '/healthz': async () => {
        const h = health(gw);
        return { code: h.status === 'unhealthy' ? 503 : 200, type: 'application/json', body: JSON.stringify(h) };
      },
    },
    'gateway',
    web,
  );
}
