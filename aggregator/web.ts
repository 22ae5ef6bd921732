// The aggregator's page, on the server of /healthz and /metrics (./health.ts): what it wrote
// recently (./recent.ts) as charts per zone and a table of the gateways.
//   /             aggregator/web/index.html (one static file, its script inline; uPlot from /assets/)
//   /api/recent   JSON snapshot of everything kept (format presence-recent/1)
//   /api/events   Server-Sent Events: `window` (a zone's window written: {site, zone, calibrated,
//                 window}) and `gateway` (a gateway's state written); the page loads the snapshot
//                 once the stream is open, then applies the events
// Each event is serialised once for all viewers; a viewer whose unsent bytes would pass
// maxBufferBytes is dropped (scripts/lib/web.ts SseHub): a slow or stuck browser never holds up the
// writes, and memory per viewer stays bounded. Access: open on a loopback host; elsewhere it needs
// http.user + http.password or http.token (scripts/lib/web.ts webAccess). Nothing per device: the
// store holds the numbers of written points only.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { packageFile, SseHub, staticPage, webAccess, webHandler, type WebAccess, type WebAuthConfig } from '../scripts/lib/web.ts';
import type { RecentWrites } from './recent.ts';

export interface AggregatorWebOptions {
  /** Unsent bytes a viewer may have before it is dropped (default 256 KiB). */
  maxBufferBytes?: number;
  /** Viewers at a time (default 100). */
  maxClients?: number;
  /** Keep-alive comment interval of the stream (default 15 s). */
  heartbeatMs?: number;
}

export const PAGE_FILE = 'aggregator/web/index.html';

export class AggregatorWeb {
  readonly hub: SseHub;
  readonly access: WebAccess;
  private readonly handler: (req: IncomingMessage, res: ServerResponse) => boolean;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly recent: RecentWrites,
    host: string,
    auth: WebAuthConfig = {},
    opts: AggregatorWebOptions = {},
  ) {
    this.access = webAccess(host, auth);
    this.hub = new SseHub({ maxBufferBytes: opts.maxBufferBytes, maxClients: opts.maxClients, heartbeatMs: opts.heartbeatMs });
    this.handler = webHandler({
      access: this.access,
      pages: { '/': staticPage(packageFile(PAGE_FILE)) },
      streams: { '/api/events': { hub: this.hub } },
    });
    const onWindow = (site: string, zone: string, window: unknown, calibrated: boolean) => this.hub.broadcast('window', { site, zone, calibrated, window });
    const onGateway = (g: unknown) => this.hub.broadcast('gateway', g);
    recent.on('window', onWindow);
    recent.on('gateway', onGateway);
    this.unsubscribe = () => {
      recent.off('window', onWindow);
      recent.off('gateway', onGateway);
    };
  }

  /** Answers the page's paths; false for any other (the caller's own routes). */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/api/recent') return this.handler(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${req.method} not allowed on ${path}\n`);
    } else if (!this.access.open) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${this.access.refusal}\n`);
    } else if (!this.access.allows(req)) {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Basic realm="presence", charset="UTF-8"' });
      res.end('authentication required\n');
    } else {
      const body = JSON.stringify(this.recent.snapshot());
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      res.end(req.method === 'HEAD' ? undefined : body);
    }
    return true;
  }

  /** Ends every stream (so a stopping server is not held open by viewers). */
  close(): void {
    this.unsubscribe();
    this.hub.close();
  }
}
