// The headers of every answer of the HTTP servers of a running `presence gateway` (real Mosquitto)
// and a running `presence aggregator` (real Mosquitto and influxd), not only of their pages:
// /healthz, /metrics, a path they do not serve and a method they refuse carry
// X-Content-Type-Options: nosniff too. /healthz quotes texts from outside (a broker's or a database's
// error message) and the error answers are plain text: a browser must read each as its type only.
// The pages themselves (Content-Security-Policy and the rest) are checked in test/web-lib.test.ts.
// And the methods: each path either serves answers GET and HEAD only, 405 (Allow: GET, HEAD) to any
// other, /favicon.ico (an empty answer beside a page) too. And the request target's form: a whole
// URL in the request line (absolute-form, sent over a raw socket) is answered as its path, passing
// every check a path passes (the Host rule, the token, the method), and the other forms are refused.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayArgs, ROOT, spawnGateway, wifiCapture } from './gateway-support.ts';
import { Influxd } from './support/influxd.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { freePort, waitForPort } from './support/ports.ts';
import { stopGracefully } from './support/process.ts';

const SUITE = 'headers of every HTTP answer';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('influxd', 'influxdb', SUITE);

/** Requests that are not the page: the answers that had no nosniff. */
const REQUESTS: Array<[method: string, path: string, status: number]> = [
  ['GET', '/healthz', 200],
  ['HEAD', '/healthz', 200],
  ['GET', '/metrics', 200],
  ['GET', '/metrics?name[]=x', 200],
  ['GET', '/nope', 404],
  ['GET', '/%E0%A4%A', 404],
  ['POST', '/healthz', 405],
  ['OPTIONS', '/metrics', 405],
  ['GET', '/', 200],
];

/** Waits until /healthz answers 200 (connected, and for the aggregator its database found). */
async function healthy(port: number): Promise<void> {
  await waitForPort(port);
  const deadline = Date.now() + 30_000;
  while ((await fetch(`http://127.0.0.1:${port}/healthz`)).status !== 200) {
    if (Date.now() > deadline) throw new Error(`/healthz on port ${port} not 200 within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function headersOf(port: number): Promise<Array<{ request: string; status: number; nosniff: string | null }>> {
  const out = [];
  for (const [method, path] of REQUESTS) {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
    await r.arrayBuffer();
    out.push({ request: `${method} ${path}`, status: r.status, nosniff: r.headers.get('x-content-type-options') });
  }
  return out;
}

const TOKEN = 'absolute-form-token-0123';

/**
 * Sends `requestLine` and `headers` as they are over a raw socket (fetch sends origin-form only)
 * and reads the answer until the server closes: its status and body.
 */
function raw(port: number, requestLine: string, headers: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`${requestLine}\r\n${[...headers, 'Connection: close'].join('\r\n')}\r\n\r\n`));
    let data = '';
    socket.setEncoding('utf8');
    socket.setTimeout(10_000, () => socket.destroy(new Error(`${requestLine}: no answer within 10 s`)));
    socket.on('data', (d) => (data += d));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
  });
}

const expected = () => REQUESTS.map(([method, path, status]) => ({ request: `${method} ${path}`, status, nosniff: 'nosniff' }));

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-http-headers-'));
  const broker = new Mosquitto();
  const influxd = new Influxd('presence');
  const procs: ChildProcess[] = [];
  const ports = { gateway: 0, aggregator: 0, tokenAggregator: 0 };
  const spawnAggregator = (port: number, env: Record<string, string> = {}) =>
    spawn(
      process.execPath,
      [
        join(ROOT, 'scripts/presence.js'),
        'aggregator',
        '--mqtt-url',
        broker.url,
        '--influx-url',
        influxd.url,
        '--influx-api',
        'v1',
        '--influx-db',
        'presence',
        '--http-port',
        String(port),
        '--log-format',
        'json',
      ],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, INFLUX_URL: '', PRESENCE_AGGREGATOR_CONFIG: '', ...env } },
    );
  beforeAll(async () => {
    await broker.start();
    await influxd.start();
    const start = Date.now();
    const cap = wifiCapture(join(dir, 'wifi.pcap'), { devices: 5, startMs: start, durationMs: 600_000, framesPerS: 2 });
    ports.gateway = await freePort();
    const gw = spawnGateway(
      gatewayArgs(
        { site: 'headers', mqttUrl: broker.url, source: `pcap:${cap.path}`, queueDir: join(dir, 'queue') },
        '--speed',
        '1',
        '--http-port',
        String(ports.gateway),
        '--log-format',
        'json',
      ),
    );
    procs.push(gw.proc);
    ports.aggregator = await freePort();
    procs.push(spawnAggregator(ports.aggregator));
    // One more with a bearer token: its page needs the token on loopback too.
    ports.tokenAggregator = await freePort();
    procs.push(spawnAggregator(ports.tokenAggregator, { PRESENCE_HTTP_TOKEN: TOKEN }));
    await healthy(ports.gateway);
    await healthy(ports.aggregator);
    await healthy(ports.tokenAggregator);
  }, 90_000);
  afterAll(async () => {
    for (const p of procs) await stopGracefully(p);
    await broker.dispose();
    await influxd.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the gateway: /healthz, /metrics, 404 and 405 carry X-Content-Type-Options: nosniff, as the page does', async () => {
    expect(await headersOf(ports.gateway)).toEqual(expected());
  });

  it('the aggregator: /healthz, /metrics, 404 and 405 carry X-Content-Type-Options: nosniff, as the page does', async () => {
    expect(await headersOf(ports.aggregator)).toEqual(expected());
  });

  it('a method other than GET or HEAD gets 405 naming the ones allowed on every path served, /favicon.ico too', async () => {
    const paths = {
      gateway: ['/', '/events', '/assets/uPlot.min.css', '/favicon.ico', '/healthz', '/metrics'],
      aggregator: ['/', '/api/recent', '/api/events', '/assets/uPlot.min.css', '/favicon.ico', '/healthz', '/metrics'],
    };
    const got: string[] = [];
    const want: string[] = [];
    for (const [name, list] of Object.entries(paths)) {
      const port = ports[name as keyof typeof ports];
      for (const path of list) {
        for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
          const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
          await r.arrayBuffer();
          got.push(`${name} ${method} ${path}: ${r.status} ${r.headers.get('allow')}`);
          want.push(`${name} ${method} ${path}: 405 GET, HEAD`);
        }
        const r = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'HEAD' });
        got.push(`${name} HEAD ${path}: ${r.status < 300}`);
        want.push(`${name} HEAD ${path}: true`);
      }
    }
    expect(got).toEqual(want);
  });
  it('a request line in absolute-form (GET http://127.0.0.1:PORT/healthz HTTP/1.1) is routed by its path on both servers', async () => {
    const got: string[] = [];
    const want: string[] = [];
    const paths = { gateway: ['/healthz', '/metrics', '/metrics?name[]=x', '/', '/events'], aggregator: ['/healthz', '/metrics', '/', '/api/recent'] };
    for (const [name, list] of Object.entries(paths)) {
      const port = ports[name as keyof typeof ports];
      for (const path of list) {
        // /events is a stream that stays open: HEAD answers it and ends
        const method = path === '/events' ? 'HEAD' : 'GET';
        const host = `127.0.0.1:${port}`;
        const r = await raw(port, `${method} http://${host}${path} HTTP/1.1`, [`Host: ${host}`]);
        got.push(`${name} ${method} ${path}: ${r.status}`);
        want.push(`${name} ${method} ${path}: 200`);
      }
      // an upper-case scheme and host name: the same URL
      const r = await raw(port, `GET HTTP://LOCALHOST:${port}/healthz HTTP/1.1`, [`Host: localhost:${port}`]);
      got.push(`${name} upper case: ${r.status}`);
      want.push(`${name} upper case: 200`);
      // HTTP/1.0 without a Host header: /healthz as in origin-form; the page refused as a path without Host is
      const h10 = await raw(port, `GET http://127.0.0.1:${port}/healthz HTTP/1.0`, []);
      const page10 = await raw(port, `GET http://127.0.0.1:${port}/ HTTP/1.0`, []);
      const origin10 = await raw(port, 'GET / HTTP/1.0', []);
      got.push(`${name} HTTP/1.0: ${h10.status} ${page10.status} ${origin10.status}`);
      want.push(`${name} HTTP/1.0: 200 421 421`);
    }
    expect(got).toEqual(want);
    const metrics = await raw(ports.aggregator, `GET http://127.0.0.1:${ports.aggregator}/metrics HTTP/1.1`, [`Host: 127.0.0.1:${ports.aggregator}`]);
    expect(metrics.body).toMatch(/^# HELP presence_aggregator_/m);
  });

  it('an absolute-form target gets past no check: Host rule, token, method; another host, user info, * and CONNECT are refused', async () => {
    const got: string[] = [];
    const want: string[] = [];
    const check = async (name: string, port: number, line: string, headers: string[], status: number, body?: RegExp) => {
      const r = await raw(port, line, headers);
      got.push(`${name} ${line} [${headers.join(', ')}]: ${r.status}${body && !body.test(r.body) ? ` ${JSON.stringify(r.body)}` : ''}`);
      want.push(`${name} ${line} [${headers.join(', ')}]: ${status}`);
    };
    for (const name of ['gateway', 'aggregator'] as const) {
      const port = ports[name];
      const here = `127.0.0.1:${port}`;
      // a name that is not loopback (DNS rebinding) is refused in the URL as in the Host header
      await check(name, port, 'GET / HTTP/1.1', [`Host: evil.example:${port}`], 421);
      await check(name, port, `GET http://evil.example:${port}/ HTTP/1.1`, [`Host: evil.example:${port}`], 421);
      // a URL naming another host than the Host header, either way round: 400, the page not served
      await check(name, port, `GET http://${here}/ HTTP/1.1`, [`Host: evil.example:${port}`], 400, /names another host than the Host header/);
      await check(name, port, `GET http://evil.example:${port}/ HTTP/1.1`, [`Host: ${here}`], 400, /names another host/);
      await check(name, port, `GET http://${here}/healthz HTTP/1.1`, ['Host: 127.0.0.1:1'], 400);
      await check(name, port, `GET http://u:p@${here}/ HTTP/1.1`, [`Host: ${here}`], 400, /user info/);
      await check(name, port, `GET ftp://${here}/healthz HTTP/1.1`, [`Host: ${here}`], 400, /not an http URL/);
      await check(name, port, `GET http:///healthz HTTP/1.1`, [`Host: ${here}`], 400);
      // methods: as in origin-form
      await check(name, port, `POST http://${here}/healthz HTTP/1.1`, [`Host: ${here}`, 'Content-Length: 0'], 405);
      await check(name, port, `DELETE http://${here}/ HTTP/1.1`, [`Host: ${here}`], 405);
      await check(name, port, `GET http://${here}/nope HTTP/1.1`, [`Host: ${here}`], 404);
      // asterisk-form and authority-form: no path to answer
      await check(name, port, 'OPTIONS * HTTP/1.1', [`Host: ${here}`], 405);
      await check(name, port, 'GET * HTTP/1.1', [`Host: ${here}`], 400);
      await check(name, port, `CONNECT ${here} HTTP/1.1`, [`Host: ${here}`], 405);
    }
    // the token: needed in absolute-form as in origin-form, and not taken from the URL's user info
    const port = ports.tokenAggregator;
    const here = `127.0.0.1:${port}`;
    for (const path of ['/', '/api/recent']) {
      await check('token', port, `GET ${path} HTTP/1.1`, [`Host: ${here}`], 401);
      await check('token', port, `GET http://${here}${path} HTTP/1.1`, [`Host: ${here}`], 401);
      await check('token', port, `GET http://${here}${path} HTTP/1.1`, [`Host: ${here}`, `Authorization: Bearer ${TOKEN}`], 200);
      await check('token', port, `GET http://x:${TOKEN}@${here}${path} HTTP/1.1`, [`Host: ${here}`], 400);
    }
    await check('token', port, `GET http://${here}/healthz HTTP/1.1`, [`Host: ${here}`], 200);
    expect(got).toEqual(want);
  });
});
