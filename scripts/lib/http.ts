// Listening and closing for the small HTTP servers (/metrics, /healthz) of the gateway and the
// aggregator: a port that cannot be opened becomes an HttpPortError naming the flag to change.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The hint line under an HttpPortError, the same for the gateway and the aggregator. */
export const HTTP_PORT_HINT = 'choose a free port with --http-port, or --http-port off (ss -ltnp shows what listens)';

/** Thrown when the port cannot be opened; names the flag to change. */
export class HttpPortError extends Error {
  readonly hint = HTTP_PORT_HINT;
  constructor(
    readonly host: string,
    readonly port: number,
    cause: NodeJS.ErrnoException,
  ) {
    super(
      cause.code === 'EADDRINUSE'
        ? `--http-port ${port} (http.port): ${host}:${port} is already in use`
        : cause.code === 'EACCES'
          ? `--http-port ${port} (http.port): not allowed to listen on ${host}:${port}; ports below 1024 need privileges, choose one above with --http-port`
          : `--http-port ${port} / --http-host ${host} (http.port, http.host): cannot listen: ${cause.message}`,
    );
    this.name = 'HttpPortError';
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
 * Listens with `server` on host:port, holding at most `maxConnections` connections at a time;
 * rejects with HttpPortError when the port cannot be opened.
 */
export async function listenServer(server: Server, host: string, port: number, maxConnections = MAX_CONNECTIONS): Promise<ListeningServer> {
  server.maxConnections = maxConnections;
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
