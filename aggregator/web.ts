// The aggregator's page, on the server of /healthz and /metrics (./health.ts): what it wrote
// recently (./recent.ts) as charts per zone and a table of the gateways.
//   /             aggregator/web/index.html (one static file, its script inline; uPlot from /assets/)
//   /api/recent   JSON snapshot of everything kept (format presence-recent/1), serialised at most
//                 once a second (the same body for every viewer asking within it)
//   /api/events   Server-Sent Events: `update` ({windows: [{site, zone, calibrated, window}],
//                 gateways: [...]}: what was written since the last update) and `reload` (more was
//                 written than the stream carries: load /api/recent again); the page loads the
//                 snapshot once the stream is open, then applies the events; `ended` ({at}): the
//                 replay feeding the aggregator has ended (the demo's, which says so), nothing more
//                 will come (also `replay_ended_at` in the snapshot). A real deployment never sends it;
//                 `health` (what /healthz says: {status, problems, queue_depth, sink}, redacted alike):
//                 first to every viewer, then whenever it changes (looked at every healthMs), so the
//                 page says when the broker is not connected or writes fail, as nothing new is written then.
// Writes are coalesced: at most one `update` per flushMs, holding each changed window and gateway
// once (the latest), at most maxEntries of them (the rest follow in the next ones); past
// maxPending changes waiting, they are let go and one `reload` is sent instead. So a burst of
// writes (a backlog delivered after an outage) never makes an event larger than about maxEntries
// x 300 bytes. Each event is serialised once for all viewers; a viewer whose unsent bytes would
// pass maxBufferBytes is dropped (scripts/lib/web.ts SseHub): a slow or stuck browser never holds
// up the writes, and memory per viewer stays bounded. Access: open on a loopback host; elsewhere it needs
// http.user + http.password or http.token (scripts/lib/web.ts webAccess). Nothing per device: the
// store holds the numbers of written points only.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { packageFile, SseHub, staticPage, webAccess, webHandler, webRefusal, type WebAccess, type WebAuthConfig } from '../scripts/lib/web.ts';
import { refuseMethod, requestPath } from '../scripts/lib/http.ts';
import type { GatewayView, RecentWrites, ZoneWindow } from './recent.ts';

interface WindowUpdate {
  site: string;
  zone: string;
  calibrated: boolean;
  window: ZoneWindow;
}

export interface AggregatorWebOptions {
  /** Unsent bytes a viewer may have before it is dropped (default 256 KiB). */
  maxBufferBytes?: number;
  /** Viewers at a time (default 100). */
  maxClients?: number;
  /** Keep-alive comment interval of the stream (default 15 s). */
  heartbeatMs?: number;
  /** At most one update event this often (default 250 ms). */
  flushMs?: number;
  /** Windows and gateways per update event at most (default 400). */
  maxEntries?: number;
  /** Changes waiting at most; beyond, a reload event replaces them (default 10000). */
  maxPending?: number;
  /** How often the health report is looked at for a change while someone watches (default 1 s). */
  healthMs?: number;
}

export const PAGE_FILE = 'aggregator/web/index.html';

export class AggregatorWeb {
  readonly hub: SseHub;
  readonly access: WebAccess;
  private readonly handler: (req: IncomingMessage, res: ServerResponse) => boolean;
  private readonly unsubscribe: () => void;
  private readonly windows = new Map<string, WindowUpdate>();
  private readonly gateways = new Map<string, GatewayView>();
  private reload = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly flushMs: number;
  private readonly maxEntries: number;
  private readonly maxPending: number;
  private cached: { at: number; body: string } | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private healthSent = '';
  /** Update and reload events sent, since start. */
  updates = 0;
  reloads = 0;

  constructor(
    private readonly recent: RecentWrites,
    host: string,
    auth: WebAuthConfig = {},
    opts: AggregatorWebOptions = {},
    /** The /healthz body (./health.ts healthReport), shown on the page; none: the page shows no health. */
    health?: () => string,
  ) {
    this.access = webAccess(host, auth);
    this.hub = new SseHub({ maxBufferBytes: opts.maxBufferBytes, maxClients: opts.maxClients, heartbeatMs: opts.heartbeatMs });
    this.handler = webHandler({
      access: this.access,
      pages: { '/': staticPage(packageFile(PAGE_FILE)) },
      streams: { '/api/events': { hub: this.hub, initial: () => (health ? [['health', JSON.parse(health())]] : []) } },
    });
    if (health) {
      // Sent again only when it changed (a failing write's age changes it every second).
      this.healthTimer = setInterval(() => {
        if (this.hub.size === 0) return;
        const body = health();
        if (body === this.healthSent) return;
        this.healthSent = body;
        this.hub.broadcast('health', JSON.parse(body));
      }, opts.healthMs ?? 1000);
      this.healthTimer.unref();
    }
    this.flushMs = opts.flushMs ?? 250;
    this.maxEntries = opts.maxEntries ?? 400;
    this.maxPending = opts.maxPending ?? 10_000;
    // Nobody watching: nothing is kept (a viewer starts from /api/recent).
    const onWindow = (site: string, zone: string, window: ZoneWindow, calibrated: boolean) => {
      if (this.hub.size === 0) return;
      this.windows.set(`${site}/${zone}/${window.t}`, { site, zone, calibrated, window });
      this.changed();
    };
    const onGateway = (g: GatewayView) => {
      if (this.hub.size === 0) return;
      this.gateways.set(`${g.site}/${g.gateway}`, g);
      this.changed();
    };
    // What was written before the end goes out first; a snapshot serialised before it is not served again.
    const onReplayEnded = (at: number) => {
      this.cached = null;
      while (this.windows.size || this.gateways.size || this.reload) {
        if (this.timer) clearTimeout(this.timer);
        this.flush();
      }
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.hub.broadcast('ended', { at });
    };
    recent.on('window', onWindow);
    recent.on('gateway', onGateway);
    recent.on('replayEnded', onReplayEnded);
    this.unsubscribe = () => {
      recent.off('window', onWindow);
      recent.off('gateway', onGateway);
      recent.off('replayEnded', onReplayEnded);
    };
  }

  private changed(): void {
    if (this.windows.size + this.gateways.size > this.maxPending) {
      this.windows.clear();
      this.gateways.clear();
      this.reload = true;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  private flush(): void {
    this.timer = null;
    if (this.reload) {
      this.reload = false;
      this.reloads++;
      this.hub.broadcast('reload', { reason: 'more was written than the stream carries: load /api/recent' });
    }
    const gateways: GatewayView[] = [];
    const windows: WindowUpdate[] = [];
    for (const [k, g] of this.gateways) {
      if (gateways.length >= this.maxEntries) break;
      gateways.push(g);
      this.gateways.delete(k);
    }
    for (const [k, w] of this.windows) {
      if (gateways.length + windows.length >= this.maxEntries) break;
      windows.push(w);
      this.windows.delete(k);
    }
    if (gateways.length || windows.length) {
      this.updates++;
      this.hub.broadcast('update', { windows, gateways });
    }
    if (this.windows.size || this.gateways.size) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Answers the page's paths; false for any other (the caller's own routes). */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = requestPath(req);
    if (path !== '/api/recent') return this.handler(req, res);
    if (refuseMethod(req, res, path)) return true;
    const refused = webRefusal(this.access, req);
    if (refused) {
      res.writeHead(refused.status, refused.headers);
      res.end(refused.body);
    } else {
      // Serialised at most once per second: after a `reload` every viewer asks at once.
      const now = Date.now();
      if (!this.cached || now - this.cached.at >= 1000) this.cached = { at: now, body: JSON.stringify(this.recent.snapshot(now)) };
      const body = this.cached.body;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      res.end(req.method === 'HEAD' ? undefined : body);
    }
    return true;
  }

  /** Ends every stream (so a stopping server is not held open by viewers). */
  close(): void {
    this.unsubscribe();
    if (this.timer) clearTimeout(this.timer);
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.timer = this.healthTimer = null;
    this.hub.close();
  }
}
