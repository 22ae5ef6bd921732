// A broker that cannot be reached, with a real Mosquitto started late and stopped again: the
// aggregator tries every second, and says so once per outage and kind of error, naming the broker,
// instead of two lines a second for as long as it lasts.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { freePort } from './support/ports.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { until } from './aggregator-helpers.ts';
import { spawn } from 'node:child_process';
import { StoppedError } from '../aggregator/intake.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-broker-outage');

describe.skipIf(!ok)('aggregator: broker outage', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-outage-'));
  let agg: Aggregator | null = null;

  afterAll(async () => {
    await agg?.stop(1000).catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs one line per outage, naming the broker, while it tries every second', async () => {
    broker.port = await freePort();
    const lines: Array<{ level: number; msg: string; broker?: string }> = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const httpPort = await freePort();
    agg = new Aggregator({ mqtt: { url: broker.url, clientId: 'agg-outage' }, out: join(dir, 'x.lp'), http: { port: httpPort } }, { logger });
    const started = agg.start();
    const warnings = () => lines.filter((l) => l.level >= 40);
    // nothing listens: the first attempt's line, then 3 or 4 more attempts that log nothing
    await until(
      'the line of the first failed attempt',
      () => warnings().length,
      (n) => n > 0,
    );
    await new Promise((r) => setTimeout(r, 3500));
    expect(warnings().map((l) => l.msg)).toEqual([
      expect.stringMatching(
        `^no connection to the MQTT broker ${broker.url}: .*ECONNREFUSED.*nothing listens there: start the broker, or fix the port in mqtt.url$`,
      ),
    ]);

    await broker.start();
    await started;
    const before = warnings().length;
    await broker.stop();
    await until(
      'the lost connection and the failed attempt after it, logged',
      () => warnings().length - before,
      (n) => n >= 2,
    );
    await new Promise((r) => setTimeout(r, 2500)); // more attempts, no more lines
    expect(
      warnings()
        .slice(before)
        .map((l) => l.msg),
    ).toEqual(['connection to the broker closed; reconnecting', expect.stringMatching(/^no connection to the MQTT broker .*ECONNREFUSED/)]);
    // /healthz says why and what to do, not only "not connected"
    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(503);
    expect(((await health.json()) as { problems: string[] }).problems).toContain(
      `not connected to the MQTT broker (connect ECONNREFUSED 127.0.0.1:${broker.port}; fix: nothing listens there: start the broker, or fix the port in mqtt.url)`,
    );
    await broker.start();
    await until(
      'connected again',
      () => agg!.connected,
      (c) => c,
    );
  });

  it('a broker host name that does not resolve: the line and its fix name the host name and DNS, as the gateway and doctor do', async () => {
    const lines: Array<{ level: number; msg: string; fix?: string }> = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const lost = new Aggregator(
      { mqtt: { url: 'mqtt://broker.example.invalid:1883', clientId: 'agg-dns' }, out: join(dir, 'dns.lp'), http: { port: null } },
      { logger },
    );
    // start() waits for the broker, which never answers: not awaited
    void lost.start().catch(() => {});
    try {
      await until(
        'the broker error logged',
        () => lines.filter((l) => l.level >= 40),
        (w) => w.length > 0,
        10_000,
      );
      const [w] = lines.filter((l) => l.level >= 40);
      expect(w.msg).toMatch(/ENOTFOUND|EAI_AGAIN/);
      expect(w.msg).toMatch(
        /the broker's host name does not resolve.*check the name in mqtt\.url and this machine's DNS \(getent hosts broker\.example\.invalid\)$/,
      );
      expect(w.fix).toMatch(/^the broker's host name does not resolve/);
    } finally {
      await lost.stop(1000).catch(() => {});
    }
  });

  it('stop() before the broker ever answered ends start() with StoppedError, and the CLI stops on SIGTERM with exit code 0', async () => {
    const port = await freePort(); // nothing listens there
    const waiting = new Aggregator(
      { mqtt: { url: `mqtt://127.0.0.1:${port}`, clientId: 'agg-never' }, out: join(dir, 'never.lp'), http: { port: null } },
      { logger: pino({ level: 'silent' }) },
    );
    const started = waiting.start().then(
      () => 'resolved',
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 1500));
    await waiting.stop(1000);
    const outcome = await Promise.race([started, new Promise((r) => setTimeout(() => r('still pending'), 3000))]);
    expect(outcome).toBeInstanceOf(StoppedError);

    const repo = join(import.meta.dirname, '..');
    const p = spawn(
      process.execPath,
      [
        join(repo, 'scripts/presence.js'),
        'aggregator',
        '--mqtt-url',
        `mqtt://127.0.0.1:${port}`,
        '--mqtt-client-id',
        'agg-never-cli',
        '--out',
        join(dir, 'cli.lp'),
        '--http-port',
        'off',
      ],
      { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, INFLUX_URL: '', PRESENCE_AGGREGATOR_CONFIG: '' } },
    );
    let log = '';
    p.stderr!.on('data', (d) => (log += d));
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    await until(
      'the broker error logged',
      () => log,
      (l) => l.includes('no connection to the MQTT broker'),
      15_000,
    );
    p.kill('SIGTERM');
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('no exit'), 8000))])).toBe(0);
    expect(log).toContain('aggregator stopped');
    expect(log).not.toContain('cannot start');
  });
});
