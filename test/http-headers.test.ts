// The headers of every answer of the HTTP servers of a running `presence gateway` (real Mosquitto)
// and a running `presence aggregator` (real Mosquitto and influxd), not only of their pages:
// /healthz, /metrics, a path they do not serve and a method they refuse carry
// X-Content-Type-Options: nosniff too. /healthz quotes texts from outside (a broker's or a database's
// error message) and the error answers are plain text: a browser must read each as its type only.
// The pages themselves (Content-Security-Policy and the rest) are checked in test/web-lib.test.ts.
// And the methods: each path either serves answers GET and HEAD only, 405 (Allow: GET, HEAD) to any
// other, /favicon.ico (an empty answer beside a page) too.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

const expected = () => REQUESTS.map(([method, path, status]) => ({ request: `${method} ${path}`, status, nosniff: 'nosniff' }));

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-http-headers-'));
  const broker = new Mosquitto();
  const influxd = new Influxd('presence');
  const procs: ChildProcess[] = [];
  const ports = { gateway: 0, aggregator: 0 };
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
    const agg = spawn(
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
        String(ports.aggregator),
        '--log-format',
        'json',
      ],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, INFLUX_URL: '', PRESENCE_AGGREGATOR_CONFIG: '' } },
    );
    procs.push(agg);
    await healthy(ports.gateway);
    await healthy(ports.aggregator);
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
});
