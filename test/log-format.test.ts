// Logs: the gateway and the aggregator (real CLI processes, real Mosquitto) write JSON lines with the
// same base fields (level, time, component, msg; no pid, hostname or name), snake_case keys only and
// never a key twice; the demo's way of hosting several components on one log file repeats no key either; on request
// (--log-format pretty) the lines are readable text.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../gateway/gateway.ts';
import { createRootLogger } from '../scripts/lib/log.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { duplicateKeys } from './support/json-keys.ts';
import { config, ROOT, spawnGateway, waitFor, wifiCapture } from './gateway-support.ts';

const SUITE = 'log format';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

/** Keys, at any depth, that are not snake_case (the one key style of every log line, as of the config). */
function notSnakeCase(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => notSnakeCase(v, `${path}${i}.`));
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [...(/^[a-z0-9_]+$/.test(k) ? [] : [`${path}${k}`]), ...notSnakeCase(v, `${path}${k}.`)]);
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      expect(duplicateKeys(l), l).toEqual([]);
      expect(notSnakeCase(JSON.parse(l)), l).toEqual([]);
      return JSON.parse(l) as Record<string, unknown>;
    });
}

describe('duplicate-key check', () => {
  it('finds a repeated key at any depth and passes clean lines', () => {
    expect(duplicateKeys('{"a":1,"b":{"c":2,"c":3},"a":4}')).toEqual(['b.c', 'a']);
    expect(duplicateKeys('{"a":[{"x":"}\\""},{"x":2}],"b":null}')).toEqual([]);
  });
});

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-logs-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('gateway and aggregator JSON lines share their base fields and repeat no key', async () => {
    const agg = spawn(
      process.execPath,
      [
        join(ROOT, 'scripts/presence.js'),
        'aggregator',
        '--mqtt-url',
        broker.url,
        '--mqtt-client-id',
        'logs-agg',
        '--out',
        join(tmp, 'out.lp'),
        '--http-port',
        'off',
        '--log-format',
        'json',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let aggErr = '';
    agg.stderr!.on('data', (d) => (aggErr += d));
    const aggExit = new Promise((r) => agg.once('exit', r));
    try {
      await waitFor(() => aggErr.includes('"msg":"subscribed"'), 20_000, 'the aggregator to subscribe');
      const cap = wifiCapture(join(tmp, 'logs.pcap'), { devices: 4, startMs: Date.UTC(2025, 3, 27, 12, 0, 0), durationMs: 5000, framesPerS: 10 });
      const gw = spawnGateway([
        '--site',
        'logs',
        '--zone',
        'z',
        '--id',
        'gw-logs',
        '--mqtt-url',
        broker.url,
        '--source',
        `pcap:${cap.path}`,
        '--speed',
        'max',
        '--window',
        '1s',
        '--queue-dir',
        join(tmp, 'q'),
        '--log-format',
        'json',
      ]);
      expect(await gw.exited).toBe(0);
      await waitFor(() => aggErr.includes('gw-logs'), 20_000, 'the aggregator to hear the gateway');
      const g = jsonLines(gw.stderr());
      agg.kill('SIGTERM');
      await aggExit;
      const a = jsonLines(aggErr);
      expect(g.length).toBeGreaterThan(3);
      expect(a.length).toBeGreaterThan(2);
      for (const line of [...g, ...a]) {
        expect(Object.keys(line).slice(0, 3)).toEqual(['level', 'time', 'component']);
        expect(typeof line.msg).toBe('string');
        for (const noise of ['pid', 'hostname', 'name']) expect(line).not.toHaveProperty(noise);
      }
      for (const line of g) expect(line).toMatchObject({ component: 'gateway', site: 'logs', zone: 'z', gateway: 'gw-logs' });
      for (const line of a) expect(line.component).toBe('aggregator');
    } finally {
      agg.kill('SIGKILL');
    }
  });

  it('several components on one log file (the demo) repeat no key', async () => {
    const file = join(tmp, 'demo.log');
    const root = createRootLogger({ dest: file, format: 'json' });
    const cap = wifiCapture(join(tmp, 'demo.pcap'), { devices: 3, startMs: Date.UTC(2025, 3, 27, 12, 0, 0), durationMs: 3000, framesPerS: 10 });
    const cfg = config({
      site: 'demo',
      zone: 'z',
      id: 'gw-1',
      mqttUrl: broker.url,
      source: [`pcap:${cap.path}`],
      speed: 'max',
      window: '1s',
      queueDir: join(tmp, 'q-demo'),
    });
    const gw = new Gateway({ config: cfg, log: root.child({ component: 'gateway', site: 'demo', zone: 'z', gateway: 'gw-1' }) });
    await gw.run();
    root.flush();
    const lines = jsonLines(readFileSync(file, 'utf8'));
    expect(lines.some((l) => l.msg === 'gateway starting')).toBe(true);
    for (const l of lines) expect(l).toMatchObject({ component: 'gateway', gateway: 'gw-1' });
  });

  it('--log-format pretty writes readable lines', async () => {
    const cap = wifiCapture(join(tmp, 'pretty.pcap'), { devices: 2, startMs: Date.UTC(2025, 3, 27, 12, 0, 0), durationMs: 2000, framesPerS: 5 });
    const gw = spawnGateway([
      '--site',
      'logs',
      '--zone',
      'z',
      '--id',
      'gw-pretty',
      '--mqtt-url',
      broker.url,
      '--source',
      `pcap:${cap.path}`,
      '--speed',
      'max',
      '--window',
      '1s',
      '--queue-dir',
      join(tmp, 'q-pretty'),
      '--log-format',
      'pretty',
    ]);
    expect(await gw.exited).toBe(0);
    const out = gw.stderr();
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: gateway: gateway starting /m);
    expect(out.split('\n').filter((l) => l.startsWith('{'))).toEqual([]);
  });
});
