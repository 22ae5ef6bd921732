/**
 * A page handler that throws: the gateway's server called its page handler outside the catch, so a
 * throw there was a rejected promise nobody awaited, which ends a Node 20 process (the gateway, with
 * its counting) over one request. Both servers now answer 500, or close the connection when the
 * answer had begun, and go on serving. (Vitest fails a run on an unhandled rejection, so the old
 * gateway server fails this file.)
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { AggregatorMetrics, startHealthServer } from '../aggregator/health.ts';
import { listenHttp } from '../gateway/http.ts';
import type { ListeningServer } from '../scripts/lib/http.ts';

function get(port: number, path: string): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e) => resolve({ error: e.message }));
    });
    req.on('error', (e) => resolve({ error: e.message }));
    req.end();
  });
}

/** Throws on /boom before answering, and on /late after its head was sent. */
function throwingPage(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): boolean {
  if (req.url === '/boom') throw new Error('page broke');
  if (req.url === '/late') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('half');
    throw new Error('page broke late');
  }
  return false;
}

const servers: ListeningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('a page handler that throws', () => {
  it('the gateway server answers 500 (or closes a begun answer) and keeps serving', async () => {
    const s = await listenHttp(0, '127.0.0.1', { '/healthz': async () => ({ code: 200, type: 'application/json', body: '{"status":"ok"}' }) }, 'gateway', {
      handle: throwingPage,
      paths: ['/'],
    });
    servers.push(s);
    expect(await get(s.port, '/boom')).toEqual({ status: 500, body: 'page broke\n' });
    // begun: the connection is closed mid-answer, which the client sees as a hang-up or an aborted answer
    expect(await get(s.port, '/late')).toEqual({ error: expect.stringMatching(/^(socket hang up|aborted)$/) });
    expect(await get(s.port, '/healthz')).toEqual({ status: 200, body: '{"status":"ok"}' });
  });

  it('the aggregator server does the same', async () => {
    const s = await startHealthServer(
      new AggregatorMetrics(),
      () => ({ mqttConnected: true, writeFailingSince: null, queueDepth: 0, sink: 'influxdb' }),
      0,
      '127.0.0.1',
      throwingPage,
    );
    servers.push(s);
    expect(await get(s.port, '/boom')).toEqual({ status: 500, body: 'Error: page broke' });
    expect(await get(s.port, '/late')).toEqual({ error: expect.stringMatching(/^(socket hang up|aborted)$/) });
    const health = await get(s.port, '/healthz');
    expect(health).toMatchObject({ status: 200 });
  });
});
