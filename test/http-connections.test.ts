// Connections to the servers of /metrics, /healthz and the pages (the gateway's and the aggregator's,
// scripts/lib/http.ts listenServer): one that sends nothing is closed after headersTimeout (10 s),
// but a client that opened them faster than that held a file descriptor for each (3,000 at once
// took 3,000), which the process's broker, database and files need. At most MAX_CONNECTIONS are
// held at a time; further ones are closed at once.
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { GATEWAY_OPTIONS } from '../gateway/config.ts';
import { AggregatorMetrics, startHealthServer } from '../aggregator/health.ts';
import { listenServer, MAX_CONNECTIONS, SERVER_OPTIONS } from '../scripts/lib/http.ts';

/** A connection that sends nothing (and reads, so that it sees the server close it). */
function idle(port: number): Promise<{ socket: Socket; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    const socket = connect(port, '127.0.0.1', () => resolve({ socket, closed: () => closed }));
    socket.resume();
    socket.on('close', () => (closed = true));
    socket.on('error', () => {});
    socket.once('error', reject);
  });
}

describe('connections at a time', () => {
  it('at most maxConnections are held: further ones are closed at once; a request gets through once those are gone', async () => {
    const srv = await listenServer(
      createServer(SERVER_OPTIONS, (_req, res) => res.end('ok')),
      '127.0.0.1',
      0,
      10,
    );
    try {
      const held = await Promise.all(Array.from({ length: 15 }, () => idle(srv.port)));
      await expect.poll(() => held.filter((c) => c.closed()).length, { timeout: 2000 }).toBe(5);
      // (the rest send nothing: headersTimeout closes them)
      await expect.poll(() => held.filter((c) => c.closed()).length, { timeout: 15_000 }).toBe(15);
      expect(await (await fetch(`http://127.0.0.1:${srv.port}/`)).text()).toBe('ok');
    } finally {
      await srv.close();
    }
  }, 30_000);

  it("the aggregator's server holds at most MAX_CONNECTIONS (the gateway's is made by the same listenServer), more than the most page viewers a gateway may have", async () => {
    const viewers = GATEWAY_OPTIONS.find((o) => o.key === 'http.max_viewers')!.schema!.maximum as number;
    expect(MAX_CONNECTIONS).toBeGreaterThan(viewers);
    const agg = await startHealthServer(
      new AggregatorMetrics(),
      () => ({ mqttConnected: true, writeFailingSince: null, queueDepth: 0, sink: 'test' }),
      0,
      '127.0.0.1',
    );
    expect(agg.server.maxConnections).toBe(MAX_CONNECTIONS);
    await agg.close();
  });
});
