// The small web pages of the gateway and the aggregator: one static HTML file, local assets, a
// Server-Sent Events stream and the access rule, on the same server as /metrics and /healthz.
//
// How to use (a component's HTTP request handler):
//
//   const access = webAccess(host, { user, password, token });    // from the http.* keys (webAuthOptionEntries)
//   const page = staticPage(packageFile('gateway/web/index.html')); // read once; CSP with the inline scripts' hashes
//   const hub = new SseHub({ maxBufferBytes: 256 * 1024 });
//   const web = webHandler({ access, pages: { '/': page }, streams: { '/events': { hub, initial: () => [['snapshot', snap()]] } } });
//   createServer((req, res) => { if (web(req, res)) return; ...the component's own routes (/metrics, /healthz) });
//   setInterval(() => hub.broadcast('snapshot', snap()), 1000);   // never blocks: a client behind is dropped
//
// - Assets: `/assets/uPlot.iife.min.js` and `/assets/uPlot.min.css` come from the installed `uplot`
//   package (resolved like an import, so from a checkout and from the packed package alike); the
//   page links them by those paths. No CDN, no build step at run time.
// - Page files ship beside the build: list their folder in package.json "files" and read them
//   with packageFile() (relative to the package root, the same from sources and from dist/).
// - Access: on a loopback host (127.0.0.1, ::1, localhost) the page is open, as /metrics is. On
//   any other host the page, its assets and its stream need http.user + http.password (basic auth)
//   or http.token (`Authorization: Bearer <token>`, or basic auth with any user and the token as
//   password); without either they answer 403 naming the keys to set, and /metrics and /healthz
//   (counts only) stay as they were. Open on loopback, they answer only requests addressed to a
//   loopback name (Host 127.x, [::1], localhost; else 421), so a web site cannot read them through
//   a name of its own that resolves to 127.0.0.1 (DNS rebinding). webRefusal() applies all of this. Secrets also come from PRESENCE_HTTP_PASSWORD(_FILE),
//   PRESENCE_HTTP_TOKEN(_FILE) or http.password_file / http.token_file (scripts/lib/secrets.ts).
// - SseHub: each event is serialised once and written to every client as it is (no chunked
//   framing: the stream ends when its connection closes), at once after a quiet spell, else with
//   the events that follow within writeIntervalMs (50 ms) of the last write, in one write per
//   client: at most 20 writes a second per client, however often events come (a socket write is
//   most of what a viewer costs). A client whose unsent bytes in Node's buffer would pass
//   maxBufferBytes, or pass it with its socket's kernel send queue (Linux, /proc/net/tcp, read once
//   a second) at 3 reads in a row, or that still has bytes in Node's buffer stallEvents (10) events
//   after it was first found with some, is dropped (its socket destroyed, `dropped` counted, 'drop' emitted):
//   the producer never waits and memory per client stays bounded. Without the kernel's queue a
//   client that never reads would take the kernel's whole buffer first (up to 4 MB on loopback);
//   what the peer's own receive buffer took (acknowledged) is not seen. At most maxClients at a time (503 beyond). A comment line every heartbeatMs keeps
//   proxies from closing an idle stream.
// Everything served must be counts only: test/support/leak.ts scans pages, streams and assets.
import { createHash, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.ts';
import { refuseMethod, requestPath } from './http.ts';
import type { OptionSpec } from './config-loader.ts';
import { readSecretFile } from './secrets.ts';

// ------------------------------------------------------------------------------------------ files

/** A file that ships with the package, by its path relative to the package root. */
export function packageFile(relative: string): string {
  return join(PACKAGE_ROOT, relative);
}

/** A response body read once, with its headers. */
export interface StaticFile {
  body: Buffer;
  headers: Record<string, string>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

function typeOf(path: string): string {
  const ext = path.slice(path.lastIndexOf('.'));
  return TYPES[ext] ?? 'application/octet-stream';
}

/** The sha256 CSP source of every inline <script> (one without src) of a page. */
export function inlineScriptHashes(html: string): string[] {
  const out: string[] = [];
  for (const m of html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/gi))
    out.push(`'sha256-${createHash('sha256').update(m[1], 'utf8').digest('base64')}'`);
  return out;
}

/**
 * A page read once from `file`, served with a Content-Security-Policy that allows only the page's
 * own inline scripts (by hash), scripts and styles from this server, and connections back to it.
 * Throws an Error naming the file when it cannot be read.
 */
export function staticPage(file: string): StaticFile {
  let html: string;
  try {
    html = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`web page ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); is the package complete?`);
  }
  const csp = [
    "default-src 'none'",
    `script-src 'self' ${inlineScriptHashes(html).join(' ')}`.trim(),
    // uPlot positions its legend and cursor with style attributes
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { body: Buffer.from(html), headers: { 'content-type': TYPES['.html'], 'cache-control': 'no-store', 'content-security-policy': csp, ...COMMON } };
}

const COMMON = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

/** Paths under /assets/ and the installed module file each one serves. */
export const ASSETS: Readonly<Record<string, string>> = {
  '/assets/uPlot.iife.min.js': 'uplot/dist/uPlot.iife.min.js',
  '/assets/uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

const requireHere = createRequire(import.meta.url);

/** An asset read once from the installed package (resolved as an import from here would be). */
export function assetFile(modulePath: string): StaticFile {
  let file: string;
  try {
    file = requireHere.resolve(modulePath);
  } catch {
    throw new Error(`web asset ${modulePath} is not installed (npm ci installs the dependency ${modulePath.split('/')[0]})`);
  }
  return { body: readFileSync(file), headers: { 'content-type': typeOf(file), 'cache-control': 'max-age=3600', ...COMMON } };
}

let assetCache: Map<string, StaticFile> | null = null;

/** Every asset of ASSETS, read once per process. */
export function assets(): Map<string, StaticFile> {
  assetCache ??= new Map(Object.entries(ASSETS).map(([path, mod]) => [path, assetFile(mod)]));
  return assetCache;
}

// ------------------------------------------------------------------------------------------ access

/** 127.0.0.0/8, ::1, ::ffff:127.x and localhost: reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h) || /^0*:0*:0*:0*:0*:0*:0*:0*1$/.test(h);
  return false;
}

/** The http.* values that give access to a page (after the config loader merged flags, env, file). */
export interface WebAuthConfig {
  user?: string;
  password?: string;
  password_file?: string;
  token?: string;
  token_file?: string;
}

/** Who may see a page. */
export interface WebAccess {
  /** Whether the page may be served at all (false: bound beyond loopback without credentials). */
  readonly open: boolean;
  /** 'none' on loopback without credentials; else what is checked. */
  readonly scheme: 'none' | 'basic' | 'token' | 'basic+token';
  /** Why the page is refused (open false), naming the keys to set. */
  readonly refusal?: string;
  /** True when the request may see the page. */
  allows(req: IncomingMessage): boolean;
}

/**
 * The host name of a request's Host header (no port, no brackets), lower case; '' when absent.
 */
export function requestHostName(req: IncomingMessage): string {
  const h = (req.headers.host ?? '').trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon >= 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
}

/** Why a request may not see a page (status, body), or null when it may. */
export function webRefusal(access: WebAccess, req: IncomingMessage): { status: number; headers: Record<string, string>; body: string } | null {
  const text = { 'content-type': 'text/plain; charset=utf-8', ...COMMON };
  if (!access.open) return { status: 403, headers: text, body: `${access.refusal}\n` };
  // Open on loopback without credentials: only for requests addressed to a loopback name, so a web
  // site cannot read the page through a name of its own that resolves to 127.0.0.1 (DNS rebinding).
  if (access.scheme === 'none' && !isLoopback(requestHostName(req)))
    return {
      status: 421,
      headers: text,
      body: `the page without credentials answers only requests addressed to 127.0.0.1, [::1] or localhost (this one was addressed to ${JSON.stringify(req.headers.host ?? '')}); through a proxy, keep the Host header at the upstream's (nginx's default), or set http.user and http.password, or http.token\n`,
    };
  if (!access.allows(req))
    return {
      status: 401,
      // Basic also for a token (as the password): a browser then asks for it
      headers: { ...text, 'www-authenticate': 'Basic realm="presence", charset="UTF-8"' },
      body: 'authentication required\n',
    };
  return null;
}

/** The fewest characters of the page's password or token where it is served beyond loopback. */
export const WEB_SECRET_MIN = 12;

/**
 * A password or token too short for a page anyone on the network can reach (beyond loopback, where
 * it is the only thing that keeps the page shut and guesses cost nothing): the line to print, naming
 * the key and never the value; null when it is long enough or the page is on loopback.
 */
export function weakWebSecret(
  host: string,
  password: string | undefined,
  token: string | undefined,
  from: { password_file?: string; token_file?: string } = {},
): string | null {
  if (isLoopback(host)) return null;
  for (const [key, value] of [
    [from.password_file !== undefined && password !== undefined ? 'http.password_file' : 'http.password', password],
    [from.token_file !== undefined && token !== undefined ? 'http.token_file' : 'http.token', token],
  ] as const) {
    const n = value === undefined ? Number.POSITIVE_INFINITY : [...value].length;
    if (n < WEB_SECRET_MIN)
      return `${key} holds ${n} character${n === 1 ? '' : 's'}: a page served on ${host} can be reached from the network, where a short secret is guessed; fix: use at least ${WEB_SECRET_MIN} (openssl rand -base64 18 makes one), or serve the page on 127.0.0.1 (http.host)`;
  }
  return null;
}

export class WebAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebAuthError';
  }
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const same = (a: string, b: string) => timingSafeEqual(digest(a), digest(b));

/**
 * The access rule of a page on `host`: credentials from `cfg` (a *_file read here; the first line).
 * Throws WebAuthError for a half-given basic auth (user without password or the reverse) or an
 * empty secret, naming the key. Credentials on a loopback host are checked too.
 */
export function webAccess(host: string, cfg: WebAuthConfig = {}): WebAccess {
  const secret = (file: string | undefined, key: string) => {
    if (file === undefined) return undefined;
    try {
      return readSecretFile(file, key);
    } catch (e) {
      throw new WebAuthError((e as Error).message);
    }
  };
  const password = cfg.password ?? secret(cfg.password_file, 'http.password_file');
  const token = cfg.token ?? secret(cfg.token_file, 'http.token_file');
  if (password === '') throw new WebAuthError('http.password (or http.password_file) is empty: give a password or leave both unset');
  if (token === '') throw new WebAuthError('http.token (or http.token_file) is empty: give a token or leave both unset');
  if (cfg.user !== undefined && password === undefined)
    throw new WebAuthError('http.user is set but no http.password (or http.password_file, PRESENCE_HTTP_PASSWORD)');
  if (password !== undefined && cfg.user === undefined) throw new WebAuthError('http.password is set but no http.user');
  const weak = weakWebSecret(host, password, token, cfg);
  if (weak) throw new WebAuthError(weak);
  const basic = cfg.user !== undefined && password !== undefined ? { user: cfg.user, password } : null;
  const scheme = basic && token ? 'basic+token' : basic ? 'basic' : token ? 'token' : 'none';
  if (scheme === 'none') {
    const loop = isLoopback(host);
    return {
      open: loop,
      scheme,
      ...(loop
        ? {}
        : {
            refusal: `the page is not served on ${host} without credentials: set http.user and http.password (basic auth) or http.token (bearer), or listen on 127.0.0.1 (http.host)`,
          }),
      allows: () => loop,
    };
  }
  return {
    open: true,
    scheme,
    allows(req) {
      const h = req.headers.authorization ?? '';
      const bearer = /^Bearer\s+(.+)$/i.exec(h);
      if (bearer && token !== undefined) return same(bearer[1].trim(), token);
      const b = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(h);
      if (!b) return false;
      const text = Buffer.from(b[1], 'base64').toString('utf8');
      const colon = text.indexOf(':');
      if (colon < 0) return false;
      const [u, p] = [text.slice(0, colon), text.slice(colon + 1)];
      // every comparison made (no && short cut), so the time taken does not say which one failed
      const userOk = basic ? same(u, basic.user) : false;
      const passwordOk = basic ? same(p, basic.password) : false;
      const asToken = token !== undefined ? same(p, token) : false;
      return (userOk && passwordOk) || asToken;
    },
  };
}

/**
 * The config entries http.user, http.password, http.password_file, http.token, http.token_file for a
 * component's option table (`what`: "the gateway page"), as the MQTT credentials are shared.
 */
export function webAuthOptionEntries(what: string): OptionSpec[] {
  return [
    {
      key: 'http.user',
      schema: { type: 'string', minLength: 1 },
      flag: '--http-user <name>',
      example: 'ops',
      description: `user name for basic authentication of ${what} (with http.password); needed, or http.token, when http.host is not loopback`,
    },
    {
      key: 'http.password',
      schema: { type: 'string' },
      secret: true,
      env: 'PRESENCE_HTTP_PASSWORD',
      description: `password for basic authentication of ${what}; at least ${WEB_SECRET_MIN} characters when http.host is not loopback; prefer PRESENCE_HTTP_PASSWORD or a password file`,
    },
    {
      key: 'http.password_file',
      schema: { type: 'string' },
      path: true,
      flag: '--http-password-file <file>',
      env: 'PRESENCE_HTTP_PASSWORD_FILE',
      example: '/etc/presence/http-password',
      description: `file whose first line is the password of ${what}`,
    },
    {
      key: 'http.token',
      schema: { type: 'string' },
      secret: true,
      env: 'PRESENCE_HTTP_TOKEN',
      description: `bearer token for ${what} (Authorization: Bearer <token>, or basic auth with the token as password); at least ${WEB_SECRET_MIN} characters when http.host is not loopback; prefer PRESENCE_HTTP_TOKEN or a token file`,
    },
    {
      key: 'http.token_file',
      schema: { type: 'string' },
      path: true,
      flag: '--http-token-file <file>',
      env: 'PRESENCE_HTTP_TOKEN_FILE',
      example: '/etc/presence/http-token',
      description: `file whose first line is the bearer token of ${what}`,
    },
  ];
}

// ------------------------------------------------------------------------------------------ SSE

export interface SseOptions {
  /** Unsent bytes a client may have before it is dropped (default 256 KiB). */
  maxBufferBytes?: number;
  /** Clients at a time; more are answered 503 (default 100). */
  maxClients?: number;
  /** A comment line this often keeps idle streams open through proxies (default 15 s; 0: none). */
  heartbeatMs?: number;
  /** Milliseconds the browser waits before it reconnects (the stream's `retry:` field; default 2000). */
  retryMs?: number;
  /**
   * Events a client may stay behind: one that still has unsent bytes (Node's buffer for its socket,
   * which fills only once the kernel's is full) at every write for this many events is dropped,
   * however few bytes that is (default 10; 0: only maxBufferBytes drops).
   */
  stallEvents?: number;
  /**
   * Least milliseconds between two writes to a client: events broadcast sooner after the last write
   * wait and go together in one write (default 50: at most 20 writes a second per client, whatever
   * the rate of events; 0: each event at once). An event after a quiet spell goes at once.
   */
  writeIntervalMs?: number;
  /**
   * How often the kernel's send queue of each client is read (Linux: /proc/net/tcp, tx_queue), at a
   * write. A client whose send queue and Node's buffer together hold more than maxBufferBytes at 3
   * reads in a row (not a passing backlog) is dropped: one that stops reading goes after about
   * maxBufferBytes, not after the kernel's buffer (up to 4 MB) has filled too. Default 1000 ms;
   * 0: at every write; null: never (Node's buffer only). Nothing on other systems.
   */
  kernelProbeMs?: number | null;
}

export interface SseClient {
  readonly id: number;
  readonly res: ServerResponse;
  /** Bytes written to this client (accepted by Node; the kernel may still hold some). */
  sent: number;
  /** The broadcast (events count) since which this client has had unsent bytes at every write; null: none unsent at the last one. */
  behindSince: number | null;
  /** Events waiting for the next write that were broadcast before this client came (not for it). */
  skip: number;
  /** The socket's ports, "local:remote" (its line in /proc/net/tcp). */
  readonly ports: string;
  /** Bytes in the kernel's send queue of its socket at the last probe (0 when unknown). */
  kernelQueued: number;
  /** Probes in a row that found more than maxBufferBytes in its send queue and Node's buffer. */
  overProbes: number;
}

export interface SseEvents {
  /** A client fell behind (its buffer, with its kernel send queue, would pass maxBufferBytes, or it had unsent bytes at every write for stallEvents events) and was dropped; `buffered`: Node's buffer for it. */
  drop: [client: SseClient, buffered: number, reason: 'buffer' | 'stalled'];
  connect: [client: SseClient];
  disconnect: [client: SseClient];
}

/** Probes in a row with more than maxBufferBytes unsent, kernel's queue included, that drop a client. */
const KERNEL_OVER_PROBES = 3;

/** Server-Sent Events to many clients; never waits for one. */
export class SseHub extends EventEmitter<SseEvents> {
  readonly maxBufferBytes: number;
  readonly maxClients: number;
  readonly stallEvents: number;
  readonly writeIntervalMs: number;
  private readonly retryMs: number;
  /** Events serialised and waiting for the next write (at most writeIntervalMs after the last). */
  private pending: Buffer[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private lastWrite = Number.NEGATIVE_INFINITY;
  private readonly kernelProbeMs: number | null;
  private lastProbe = Number.NEGATIVE_INFINITY;
  private readonly clients = new Set<SseClient>();
  private heartbeat: NodeJS.Timeout | null = null;
  private nextId = 1;
  /** Clients dropped because they fell behind, since start. */
  dropped = 0;
  /** Clients refused because maxClients were connected, since start. */
  refused = 0;
  /** Events broadcast since start. */
  events = 0;
  /** Writes of events to clients since start (one per client per flush of the waiting events). */
  writes = 0;
  /** The most unsent bytes any client had after a write, since start (never above maxBufferBytes). */
  peakBuffered = 0;

  constructor(opts: SseOptions = {}) {
    super();
    this.maxBufferBytes = opts.maxBufferBytes ?? 256 * 1024;
    this.maxClients = opts.maxClients ?? 100;
    this.retryMs = opts.retryMs ?? 2000;
    this.stallEvents = opts.stallEvents ?? 10;
    this.writeIntervalMs = opts.writeIntervalMs ?? 50;
    this.kernelProbeMs = opts.kernelProbeMs === undefined ? 1000 : opts.kernelProbeMs;
    const hb = opts.heartbeatMs ?? 15_000;
    if (hb > 0) {
      this.heartbeat = setInterval(() => this.write(': keep-alive\n\n'), hb);
      this.heartbeat.unref();
    }
  }

  /** Clients connected now. */
  get size(): number {
    return this.clients.size;
  }

  /** The largest number of unsent bytes a connected client has now. */
  buffered(): number {
    let max = 0;
    for (const c of this.clients) max = Math.max(max, c.res.writableLength);
    return max;
  }

  /** Takes over a GET request as an event stream; `initial` events go to this client first. */
  attach(req: IncomingMessage, res: ServerResponse, initial: Array<[event: string, data: unknown]> = []): SseClient | null {
    if (this.clients.size >= this.maxClients) {
      this.refused++;
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' });
      res.end(`too many viewers (${this.maxClients}); try again later\n`);
      return null;
    }
    // The stream's body ends when the connection closes (it is never reused): no chunked framing,
    // so each event is one write of its bytes to the socket (a quarter less CPU per viewer and event
    // than a chunk's four pieces).
    res.useChunkedEncodingByDefault = false;
    res.shouldKeepAlive = false;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'close', ...COMMON });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    const client: SseClient = {
      id: this.nextId++,
      res,
      sent: 0,
      behindSince: null,
      skip: this.pending.length,
      ports: `${req.socket.localPort}:${req.socket.remotePort}`,
      kernelQueued: 0,
      overProbes: 0,
    };
    this.clients.add(client);
    const gone = () => {
      if (this.clients.delete(client)) this.emit('disconnect', client);
    };
    res.on('close', gone);
    res.on('error', gone);
    this.send(client, `retry: ${this.retryMs}\n\n`);
    for (const [event, data] of initial) this.send(client, sseEvent(event, data));
    if (this.clients.has(client)) this.emit('connect', client);
    return client;
  }

  /**
   * Sends one event to every client, serialised once: at once, or with the events that follow
   * within writeIntervalMs of the last write, in one write per client. Drops those that are behind.
   */
  broadcast(event: string, data: unknown): void {
    this.events++;
    if (this.clients.size === 0) return;
    this.pending.push(Buffer.from(sseEvent(event, data), 'utf8'));
    const wait = this.lastWrite + this.writeIntervalMs - performance.now();
    if (wait <= 0) this.flush();
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), Math.ceil(wait));
      this.flushTimer.unref();
    }
  }

  /** Writes the waiting events to every client now (one write each). */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.pending.length === 0) return;
    const pending = this.pending;
    const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
    this.pending = [];
    this.lastWrite = performance.now();
    if (this.kernelProbeMs !== null && this.lastWrite - this.lastProbe >= this.kernelProbeMs) {
      this.lastProbe = this.lastWrite;
      const queues = kernelSendQueues();
      for (const c of [...this.clients]) {
        c.kernelQueued = queues.get(c.ports) ?? 0;
        c.overProbes = c.kernelQueued + c.res.writableLength > this.maxBufferBytes ? c.overProbes + 1 : 0;
        if (c.overProbes >= KERNEL_OVER_PROBES) this.drop(c, c.res.writableLength, 'buffer');
      }
    }
    for (const c of [...this.clients]) {
      const skip = c.skip;
      c.skip = 0;
      // Still bytes unsent from earlier writes: the kernel's buffer for it is full. At stallEvents
      // events in a row the client is dropped (a stalled browser is let go after a number of
      // pictures, not only once Node has buffered maxBufferBytes for it).
      if (c.res.writableLength === 0) c.behindSince = null;
      else {
        c.behindSince ??= this.events;
        if (this.stallEvents > 0 && this.events - c.behindSince >= this.stallEvents) {
          this.drop(c, c.res.writableLength, 'stalled');
          continue;
        }
      }
      if (skip >= pending.length) continue;
      this.send(c, skip === 0 ? all : Buffer.concat(pending.slice(skip)));
      this.writes++;
    }
  }

  private write(chunk: string): void {
    const buf = Buffer.from(chunk, 'utf8');
    for (const c of [...this.clients]) this.send(c, buf);
  }

  private send(c: SseClient, chunk: string | Buffer): void {
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    const before = c.res.writableLength;
    if (before + n > this.maxBufferBytes) {
      this.drop(c, c.res.writableLength, 'buffer');
      return;
    }
    c.res.write(chunk);
    c.sent += n;
    if (c.res.writableLength > this.peakBuffered) this.peakBuffered = c.res.writableLength;
  }

  private drop(c: SseClient, buffered: number, reason: 'buffer' | 'stalled'): void {
    if (!this.clients.delete(c)) return;
    this.dropped++;
    c.res.destroy(); // frees what is buffered for it; the browser reconnects and gets a fresh snapshot
    this.emit('drop', c, buffered, reason);
  }

  /** Ends every stream and the heartbeat. */
  close(): void {
    this.flush();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    for (const c of [...this.clients]) {
      this.clients.delete(c);
      c.res.end();
    }
  }
}

/**
 * Bytes in the kernel's send queue (sent or not, not yet acknowledged by the peer) of each
 * established TCP socket, by "localPort:remotePort", from /proc/net/tcp and /proc/net/tcp6 (Linux);
 * an empty map where they cannot be read.
 */
export function kernelSendQueues(): Map<string, number> {
  const out = new Map<string, number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue ...; 01 = ESTABLISHED
      const f = line.trim().split(/\s+/);
      if (f.length < 5 || f[3] !== '01') continue;
      const port = (a: string) => Number.parseInt(a.slice(a.lastIndexOf(':') + 1), 16);
      const key = `${port(f[1]!)}:${port(f[2]!)}`;
      const tx = Number.parseInt(f[4]!.slice(0, f[4]!.indexOf(':')), 16);
      out.set(key, Math.max(out.get(key) ?? 0, tx));
    }
  }
  return out;
}

/** One SSE event: `event:` line and the JSON data on one `data:` line (JSON has no raw newline). */
export function sseEvent(event: string, data: unknown): string {
  if (/[\r\n]/.test(event)) throw new Error(`SSE event name with a line break: ${JSON.stringify(event)}`);
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

// ------------------------------------------------------------------------------------------ handler

export interface WebHandlerOptions {
  access: WebAccess;
  /** Page paths ('/') and their files (staticPage). */
  pages: Record<string, StaticFile>;
  /** Stream paths ('/events'), their hub and the events a new client gets first (a snapshot). */
  streams?: Record<string, { hub: SseHub; initial?: () => Array<[event: string, data: unknown]> }>;
  /** Serve ASSETS under /assets/ (default true). */
  assets?: boolean;
}

/**
 * A request handler for the pages, their assets and streams: returns false for any other path
 * (the caller's own routes answer it), and /favicon.ico beside a page at / (204, no icon). Only GET
 * and HEAD (405 for any other method); the access rule applies to all of them but the empty favicon.
 */
export function webHandler(opts: WebHandlerOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const files = new Map<string, StaticFile>(Object.entries(opts.pages));
  if (opts.assets !== false) for (const [p, f] of assets()) files.set(p, f);
  const streams = new Map(Object.entries(opts.streams ?? {}));
  const { access } = opts;
  return (req, res) => {
    const path = requestPath(req);
    if (path === undefined) return false;
    const favicon = path === '/favicon.ico' && files.has('/');
    const file = files.get(path);
    const stream = streams.get(path);
    if (!file && !stream && !favicon) return false;
    if (refuseMethod(req, res, path)) return true;
    if (favicon) {
      // browsers ask for it on every page; no icon, and no 404 in the console
      res.writeHead(204, { 'cache-control': 'max-age=86400' });
      res.end();
      return true;
    }
    const refused = webRefusal(access, req);
    if (refused) {
      res.writeHead(refused.status, refused.headers);
      res.end(refused.body);
      return true;
    }
    if (stream) {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
        res.end();
      } else stream.hub.attach(req, res, stream.initial?.() ?? []);
      return true;
    }
    res.writeHead(200, { ...file!.headers, 'content-length': String(file!.body.length) });
    res.end(req.method === 'HEAD' ? undefined : file!.body);
    return true;
  };
}
