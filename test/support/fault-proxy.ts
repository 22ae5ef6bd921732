// A small fault-injecting HTTP proxy in front of a real InfluxDB or VictoriaMetrics, for the answers
// neither real server gives (InfluxDB 2.x 422 partial writes, 413, 429 with Retry-After, 401). Every
// request is forwarded unchanged unless the current rule answers it; a rule may also forward only
// some of the lines (a partial write: the others are refused) and then answer. Bodies sent gzipped
// (the v2 client gzips above 1 kB) are read unzipped.
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface ProxiedRequest {
  method: string;
  /** Path with query. */
  path: string;
  headers: IncomingMessage['headers'];
  /** Lines of line protocol in the body (empty lines left out). */
  lines: string[];
  /** When it arrived (ms). */
  at: number;
}

export interface FaultAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Lines to write to the real server before answering (a partial write). */
  forward?: string[];
}

/** Decides per request: undefined forwards it unchanged. */
export type FaultRule = (req: ProxiedRequest) => FaultAnswer | undefined;

export class FaultProxy {
  port = 0;
  /** Every request seen, with the status it got. */
  readonly requests: Array<ProxiedRequest & { status: number }> = [];
  rule: FaultRule = () => undefined;
  private server: Server | null = null;

  constructor(private readonly upstream: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        const raw = Buffer.concat(chunks);
        const gz = /gzip/.test(String(req.headers['content-encoding'] ?? ''));
        const text = (gz ? gunzipSync(raw) : raw).toString('utf8');
        const r: ProxiedRequest = {
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          headers: req.headers,
          lines: text.split('\n').filter((l) => l.trim()),
          at: Date.now(),
        };
        try {
          const answer = this.rule(r);
          if (!answer) {
            const up = await this.forward(r.method, r.path, req.headers, raw);
            this.requests.push({ ...r, status: up.status });
            res.writeHead(up.status, up.headers);
            res.end(up.body);
            return;
          }
          if (answer.forward?.length) {
            const headers = { ...req.headers };
            delete headers['content-encoding'];
            delete headers['content-length'];
            const up = await this.forward(r.method, r.path, headers, Buffer.from(answer.forward.join('\n')));
            if (up.status >= 300) throw new Error(`upstream refused the forwarded part: ${up.status} ${up.body}`);
          }
          this.requests.push({ ...r, status: answer.status });
          res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
          res.end(answer.body ?? '');
        } catch (e) {
          this.requests.push({ ...r, status: 599 });
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(`fault proxy: ${(e as Error).message}`);
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Requests to a write endpoint (/write or /api/v2/write). */
  writes(): Array<ProxiedRequest & { status: number }> {
    return this.requests.filter((r) => /\/(api\/v2\/)?write\?/.test(r.path));
  }

  private forward(
    method: string,
    path: string,
    headers: IncomingMessage['headers'],
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    const u = new URL(this.upstream);
    return new Promise((resolve, reject) => {
      const h = { ...headers, host: u.host, 'content-length': String(body.length) };
      const req = request({ host: u.hostname, port: u.port, method, path, headers: h }, (res) => {
        const out: Buffer[] = [];
        res.on('data', (c) => out.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(out) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s)
      await new Promise<void>((resolve) => {
        s.closeAllConnections?.();
        s.close(() => resolve());
      });
  }
}
