// Without an InfluxDB URL the aggregator writes line protocol to a file. A real `presence aggregator`
// process against Mosquitto fills it, and the file loads into a real influxd with one HTTP request
// (what `curl --data-binary @presence.lp` does). The embedded Aedes broker (MQTT 3.1.1 only) works too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-file') && need('influxd', 'influxdb', 'aggregator-file');
const repo = join(import.meta.dirname, '..');
const lineCount = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0);

describe.skipIf(!ok)('aggregator -> line-protocol file', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('loaded');
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-file-'));

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
  });
  afterAll(async () => {
    await Promise.all([broker.dispose(), influx.dispose()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a `presence aggregator` process writes every window to --out, and the file loads into influxd', async () => {
    const out = join(dir, 'presence.lp');
    const p = spawn(
      process.execPath,
      [
        join(repo, 'scripts/presence.js'),
        'aggregator',
        '--mqtt-url',
        broker.url,
        '--mqtt-client-id',
        'agg-file-test',
        '--out',
        out,
        '--http-port',
        'off',
        '--flush-interval',
        '50ms',
      ],
      { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, INFLUX_URL: '' } },
    );
    let log = '';
    p.stderr!.on('data', (d) => (log += d));
    try {
      await until(
        'subscribed',
        () => log,
        (l) => l.includes('"subscribed"'),
        30_000,
      );
      const pub = await publisher(broker.url);
      const msgs = windows('site-file', 3, 100);
      await publishAll(pub, [...msgs, ...msgs.slice(0, 10)].map(countsItem));
      await pub.endAsync();
      await until(
        'lines in the file',
        () => lineCount(out),
        (n) => n >= 930,
      );
    } finally {
      if (p.exitCode === null) {
        p.kill('SIGTERM');
        await new Promise((r) => p.once('exit', r));
      }
    }
    expect(log).not.toMatch(/"level":50/);
    expect(p.exitCode).toBe(0);
    expect(log).toContain('aggregator stopped');
    const text = readFileSync(out, 'utf8');
    expect(text.split('\n').filter(Boolean)).toHaveLength(930); // 300 windows + 10 repeats, two radios and the window's marker
    const res = await fetch(`${influx.url}/write?db=loaded&precision=ms`, { method: 'POST', body: text });
    expect(res.status).toBe(204);
    expect(await influx.count('presence', 'devices', `"radio"='wifi'`)).toBe(300);
    expect(await influx.count('presence', 'devices', `"radio"='ble'`)).toBe(300);
    expect(await influx.count('gateway_status', 'window_complete')).toBe(300);
  });

  it('a file moved away (loaded, say) or deleted while running: later windows land in a new file at the path', async () => {
    const out = join(dir, 'moved.lp');
    const loaded = join(dir, 'loaded.lp');
    const agg = new Aggregator({
      mqtt: { url: broker.url, clientId: 'agg-file-moved' },
      out,
      http: { port: null },
      batch: { flushInterval: '20ms' },
      logLevel: 'error',
    });
    const pub = await publisher(broker.url);
    const send = async (site: string, acked: number) => {
      await publishAll(pub, windows(site, 1, 5).map(countsItem));
      await until(
        `${acked} acknowledged`,
        () => agg.stats().acked,
        (n) => n === acked,
      );
    };
    try {
      await agg.start();
      await send('site-first', 5);
      renameSync(out, loaded); // as after: curl --data-binary @presence.lp, then mv it away
      await send('site-second', 10);
      expect(lineCount(loaded)).toBe(15); // 5 windows: wifi, ble, marker
      expect(readFileSync(out, 'utf8')).toMatch(/site=site-second/);
      expect(lineCount(out)).toBe(15);
      rmSync(out);
      await send('site-third', 15);
      expect(lineCount(out)).toBe(15);
      expect(readFileSync(out, 'utf8')).toMatch(/site=site-third/);
    } finally {
      await pub.endAsync();
      await agg.stop(2000);
    }
  });

  it('an --out no write can take (a folder, a path through a file) stops the aggregator at start, exit 2, naming it: it started and retried its writes without end, the messages unacknowledged', () => {
    const folder = join(dir, 'a-folder');
    mkdirSync(folder);
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    for (const [out, why] of [
      [folder, 'is a folder; give the path of a file'],
      [join(file, 'presence.lp'), `a part of ${file} is a file, not a folder; check the path`],
    ]) {
      const r = spawnSync(
        process.execPath,
        [join(repo, 'scripts/presence.js'), 'aggregator', '--mqtt-url', broker.url, '--mqtt-client-id', 'agg-file-bad-out', '--out', out, '--http-port', 'off'],
        { cwd: repo, encoding: 'utf8', timeout: 30_000, env: { ...process.env, INFLUX_URL: '', PRESENCE_AGGREGATOR_CONFIG: '', LOG_FORMAT: 'json' } },
      );
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain(`presence aggregator: out ${out}: ${why}\n`);
    }
  });

  it('works with the embedded Aedes broker (MQTT 3.1.1, no shared subscriptions)', async () => {
    const aedes = await Aedes.createBroker();
    const server: Server = createServer(aedes.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
    const out = join(dir, 'aedes.lp');
    const agg = new Aggregator({ mqtt: { url, clientId: 'agg-aedes' }, out, http: { port: null }, batch: { flushInterval: '20ms' }, logLevel: 'error' });
    try {
      await agg.start();
      const pub = await mqtt.connectAsync(url, { clientId: 'pub-aedes', protocolVersion: 4 });
      await publishAll(pub, windows('site-aedes', 2, 100).map(countsItem));
      await pub.endAsync();
      await until(
        'file lines',
        () => lineCount(out),
        (n) => n === 600,
      );
      await until(
        'acked',
        () => agg.stats().acked,
        (n) => n === 200,
      );
    } finally {
      await agg.stop(2000);
      await new Promise<void>((r) => aedes.close(() => r()));
      server.close();
    }
  });
});
