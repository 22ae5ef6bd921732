// Process-level faults with real servers: the aggregator killed with SIGKILL mid-stream and started
// again (a real `presence aggregator` process), and two aggregators splitting one stream with an MQTT 5
// shared subscription. In both, the windows stored equal the windows published.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { freePort } from './support/ports.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-faults') && need('influxd', 'influxdb', 'aggregator-faults');
const repo = join(import.meta.dirname, '..');

describe.skipIf(!ok)('aggregator faults', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-faults-'));
  const procs: ChildProcess[] = [];
  let pub: MqttClient;
  const wifi = (site: string) => influx.count('presence', 'devices', `"radio"='wifi' AND "site"='${site}'`);

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function startCli(config: string, port: number): Promise<ChildProcess> {
    const p = spawn(process.execPath, [join(repo, 'scripts/presence.js'), 'aggregator', '--config', config], {
      cwd: repo,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    procs.push(p);
    let log = '';
    p.stderr!.on('data', (d) => (log += d));
    await until(
      'the aggregator process to subscribe',
      async () => {
        if (p.exitCode !== null) throw new Error(`aggregator exited ${p.exitCode}: ${log}`);
        return log.includes('"subscribed"') && (await fetch(`http://127.0.0.1:${port}/healthz`)).status;
      },
      (s) => s === 200,
      30_000,
    );
    return p;
  }

  it('stores every window exactly once when the aggregator is killed with SIGKILL mid-stream and restarted', async () => {
    const port = await freePort();
    const config = join(dir, 'aggregator.yaml');
    writeFileSync(
      config,
      [
        'aggregator:',
        '  mqtt:',
        `    url: ${broker.url}`,
        '    client_id: agg-kill-test',
        '  influx:',
        `    url: ${influx.url}`,
        '    api: v1',
        '    database: presence',
        '  batch:',
        '    size: 200',
        '    flush_interval: 100ms',
        '  http:',
        `    port: ${port}`,
        '    host: 127.0.0.1',
        '  log:',
        '    level: info',
        '',
      ].join('\n'),
    );
    const first = await startCli(config, port);
    const msgs = windows('site-kill', 10, 300); // 3000 windows
    // Half of them stream in while it runs; the other half is published only after the kill, so the
    // kill falls mid-stream by construction (before, a fast aggregator could store all 3000 before a
    // loaded test process got to kill it).
    const publishing = publishAll(pub, msgs.slice(0, 1500).map(countsItem), 20);
    await until(
      'some windows stored',
      () => wifi('site-kill'),
      (n) => n > 200,
      30_000,
    );
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const atKill = await wifi('site-kill');
    expect(atKill).toBeLessThanOrEqual(1500);
    const rest = publishAll(pub, msgs.slice(1500).map(countsItem), 20);
    await new Promise((r) => setTimeout(r, 500));
    const second = await startCli(config, port);
    await publishing;
    await rest;
    await until(
      'all 3000 windows after the restart',
      () => wifi('site-kill'),
      (n) => n >= 3000,
      50_000,
    );
    // A pause that only gives a wrong extra point (stored under another time) the chance to show; a
    // copy delivered again is the same point and cannot raise the count, so no correct aggregator
    // fails for a slow machine. Nothing marks "the last redelivery is written" to wait on instead.
    await new Promise((r) => setTimeout(r, 500));
    expect(await wifi('site-kill')).toBe(3000);
    expect(await influx.count('presence', 'devices', `"radio"='ble' AND "site"='site-kill'`)).toBe(3000);
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  });

  it('splits one stream between two aggregators of a shared-subscription group, no window lost or doubled', async () => {
    const make = (id: string) =>
      new Aggregator({
        mqtt: { url: broker.url, clientId: id, group: 'city' },
        influx: { url: influx.url, api: 'v1', database: 'presence' },
        batch: { size: 200, flushInterval: '50ms' },
        http: { port: null },
        logLevel: 'error',
      });
    const a = make('agg-share-a');
    const b = make('agg-share-b');
    try {
      await Promise.all([a.start(), b.start()]);
      const msgs = windows('site-share', 8, 250); // 2000 windows
      await publishAll(pub, msgs.map(countsItem), 50);
      await until(
        'all 2000 windows',
        () => wifi('site-share'),
        (n) => n === 2000,
        30_000,
      );
      await until(
        'both drained',
        () => a.stats().queueDepth + b.stats().queueDepth,
        (n) => n === 0,
      );
      const ra = a.stats().received;
      const rb = b.stats().received;
      expect(ra).toBeGreaterThan(0);
      expect(rb).toBeGreaterThan(0);
      expect(ra + rb).toBe(2000); // each window went to exactly one member
    } finally {
      await Promise.all([a.stop(2000), b.stop(2000)]);
    }
  });
});
