// Listening and closing for the small HTTP servers (/metrics, /healthz) of the gateway and the
// aggregator: a port that cannot be opened becomes an HttpPortError naming where the port was set.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SettingSource, SettingSources } from './config-loader.ts';

/** The hint line under an HttpPortError of a port given on the command line or by default, the same for the gateway and the aggregator. */
export const HTTP_PORT_HINT = 'choose a free port with --http-port, or --http-port off (ss -ltnp shows what listens)';

/** A flag's source, for an HttpPortError of a server started without a loaded configuration. */
const FLAG = (name: string, key: string): SettingSource => ({ name, note: key, from: 'flag' });

/**
 * Thrown when the port cannot be opened; names where the port was set (the flag, the config file
 * and its key, or the default: `from`), and in its hint where to change it.
 */
export class HttpPortError extends Error {
  readonly hint: string;
  constructor(
    readonly host: string,
    readonly port: number,
    private readonly error: NodeJS.ErrnoException,
    sources: { port: SettingSource; host: SettingSource } = { port: FLAG('--http-port', 'http.port'), host: FLAG('--http-host', 'http.host') },
  ) {
    const p = sources.port;
    const h = sources.host;
    // Where to choose another port: the flag, or where the port was set (the flag wins over it).
    const change =
      p.from === 'file' ? `${p.name} in ${p.file}, or --http-port, which wins` : p.from === 'env' ? `${p.name}, or --http-port, which wins` : '--http-port';
    super(
      error.code === 'EADDRINUSE'
        ? `${p.name} ${port} (${p.note}): ${host}:${port} is already in use`
        : error.code === 'EACCES'
          ? `${p.name} ${port} (${p.note}): not allowed to listen on ${host}:${port}; ports below 1024 need privileges, choose one above with ${change}`
          : `${p.name} ${port} / ${h.name} ${host} (${p.note === h.note ? p.note : `${p.note}, ${h.note}`}): cannot listen: ${error.message}`,
    );
    this.name = 'HttpPortError';
    // An address that is not this machine's (a typo, a name that does not resolve): no other port helps.
    const badHost = ['EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME'].includes(String(error.code));
    const hostWhere = h.from === 'file' ? `${h.name} in ${h.file}` : h.from === 'env' ? h.name : '--http-host';
    this.hint = badHost
      ? `give ${hostWhere} an address of this machine: 127.0.0.1 (this machine only), 0.0.0.0 (every address) or one that ip -brief address lists`
      : p.from === 'file'
        ? `choose a free port with ${change}; null there, or --http-port off, turns the server off (ss -ltnp shows what listens)`
        : p.from === 'env'
          ? `choose a free port with ${change}, or --http-port off (ss -ltnp shows what listens)`
          : HTTP_PORT_HINT;
  }

  /** This error naming where a loaded configuration got http.port and http.host. */
  from(sources: SettingSources): HttpPortError {
    return new HttpPortError(this.host, this.port, this.error, { port: sources.of('http.port'), host: sources.of('http.host') });
  }
}

/**
 * Options for createServer of these servers: a client gets 10 s to send its request's headers and
 * 20 s for the whole request (checked every second), then 408 and the connection closed, so clients
 * that trickle a request (slowloris) hold no connection for long. An event stream, once its request
 * is in, is not limited by them.
 */
export const SERVER_OPTIONS = { headersTimeout: 10_000, requestTimeout: 20_000, connectionsCheckingInterval: 1_000 } as const;

/**
 * A 500 for a request whose handler threw; when the answer had already begun (its headers sent) the
 * connection is closed instead, as a second head would throw again, outside any catch.
 */
export function answerFailure(res: ServerResponse, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}

/** A request target in absolute-form: scheme, authority (host and port, perhaps user info) and the rest. */
const ABSOLUTE_FORM = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/is;

/** host:port in lower case without the scheme's default port, to compare an authority with a Host header. */
function hostPort(authority: string, scheme: string): string {
  const a = authority.trim().toLowerCase();
  const port = scheme === 'https' ? ':443' : ':80';
  return a.endsWith(port) ? a.slice(0, -port.length) : a;
}

/**
 * The path of a request's target, without its query, whatever its form: the target itself in
 * origin-form (`/healthz?x`), the URL's path in absolute-form (`http://127.0.0.1:9464/healthz`,
 * which proxies and some probes send, and which RFC 9112 section 3.2.2 says a server must accept;
 * `/` when the URL has none). Undefined for any other target, which servedPath answers: `*`
 * (asterisk-form), a URL of a scheme other than http(s), one with user info, and one whose host
 * and port differ from the Host header's, so the checks that read the Host header (the pages'
 * loopback rule) see the host the request was addressed to. A URL without a Host header (HTTP/1.0)
 * keeps no Host header, and those checks refuse it as they refuse a path without one.
 */
export function requestPath(req: IncomingMessage): string | undefined {
  const target = req.url ?? '/';
  if (target.startsWith('/')) return target.split('?')[0]!;
  const m = ABSOLUTE_FORM.exec(target);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return undefined;
  const authority = m[2]!;
  if (authority === '' || authority.includes('@')) return undefined;
  const host = req.headers.host;
  if (host !== undefined && hostPort(host, scheme) !== hostPort(authority, scheme)) return undefined;
  const rest = m[3]!.split('?')[0]!;
  return rest === '' ? '/' : rest;
}

/**
 * The target's path (requestPath), or undefined once a request whose target has no path these
 * servers serve is answered: 405 (Allow: GET, HEAD) to `OPTIONS *`, 400 naming the target to any
 * other. First in every handler, before any route or check.
 */
export function servedPath(req: IncomingMessage, res: ServerResponse): string | undefined {
  const path = requestPath(req);
  if (path !== undefined) return path;
  const target = req.url ?? '';
  if (target === '*' && req.method === 'OPTIONS') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    res.end('OPTIONS * not allowed: this server answers GET and HEAD on its paths\n');
    return undefined;
  }
  const shown = JSON.stringify(target.length > 200 ? `${target.slice(0, 200)}...` : target);
  const m = ABSOLUTE_FORM.exec(target);
  const why = !m
    ? 'is neither a path (/healthz) nor an http URL (http://host:port/healthz)'
    : !/^https?$/i.test(m[1]!)
      ? 'is not an http URL'
      : m[2]!.includes('@')
        ? 'holds user info (credentials go in the Authorization header)'
        : m[2] === ''
          ? 'names no host'
          : `names another host than the Host header (${JSON.stringify(req.headers.host ?? '')})`;
  res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`request target ${shown} ${why}\n`);
  return undefined;
}

/**
 * Answers 405 (Allow: GET, HEAD) to any other method and returns true; /metrics and /healthz are
 * read-only. Returns false for GET and HEAD.
 */
export function refuseMethod(req: IncomingMessage, res: ServerResponse, path: string): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return false;
  res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${req.method} not allowed on ${path}\n`);
  return true;
}

/**
 * Connections at a time at most; further ones are closed at once. A connection that sends nothing
 * is closed after headersTimeout (10 s), but a client opening them faster than that held one file
 * descriptor each (3,000 at once took 3,000), and the process's broker, database and files need
 * theirs: at most this many go to the HTTP server, whatever a client does. Above the most page
 * viewers a gateway may be given (http.max_viewers, at most 1000) and a few scrapers.
 */
export const MAX_CONNECTIONS = 1200;

/** A listening server, the port it got (for port 0) and a close that also ends kept-alive connections. */
export interface ListeningServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/**
 * Listens with `server` on host:port, holding at most `maxConnections` connections at a time, every
 * answer with X-Content-Type-Options: nosniff; rejects with HttpPortError when the port cannot be opened.
 */
export async function listenServer(server: Server, host: string, port: number, maxConnections = MAX_CONNECTIONS): Promise<ListeningServer> {
  server.maxConnections = maxConnections;
  // Every answer, not only the pages': /healthz and the error answers carry texts from outside (a
  // broker's or a database's error message), which a browser must never read as anything but their type.
  server.prependListener('request', (_req, res) => res.setHeader('x-content-type-options', 'nosniff'));
  // CONNECT (authority-form, host:port): no tunnels here. Without a listener Node closed the
  // connection with no answer at all; now 405 naming the methods allowed, then closed.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const body = `${req.method} not allowed: this server answers GET and HEAD on its paths\n`;
    socket.on('error', () => {});
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD\r\ncontent-type: text/plain; charset=utf-8\r\nx-content-type-options: nosniff\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new HttpPortError(host, port, e)));
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
