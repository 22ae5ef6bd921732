// SIGHUP to a `presence aggregator` process with nothing to reload (no --calibration, no --config):
// it goes on, says so, and still writes and stops cleanly. Node's default for SIGHUP is to end the
// process at once, unlogged: a `systemctl reload` or a log rotation stopped such an aggregator.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsItem, publishAll, publisher, until, window } from './aggregator-helpers.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-sighup');
const repo = join(import.meta.dirname, '..');

describe.skipIf(!ok)('presence aggregator and SIGHUP with nothing to reload (real Mosquitto)', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-sighup-'));

  beforeAll(() => broker.start());
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs that there is nothing to reload, goes on writing, and stops with exit code 0', async () => {
    const out = join(dir, 'presence.lp');
    const args = ['aggregator', '--mqtt-url', broker.url, '--mqtt-client-id', 'agg-sighup', '--out', out, '--http-port', 'off', '--flush-interval', '20ms'];
    const p = spawn(process.execPath, [join(repo, 'scripts/presence.js'), ...args], {
      cwd: repo,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, INFLUX_URL: '', PRESENCE_AGGREGATOR_CONFIG: '' },
    });
    let log = '';
    p.stderr!.on('data', (d) => (log += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.once('exit', (code, signal) => r({ code, signal })));
    const pub = await publisher(broker.url);
    try {
      await until(
        'subscribed',
        () => log,
        (l) => l.includes('"subscribed"'),
      );
      p.kill('SIGHUP');
      await until(
        'said',
        () => log,
        (l) => l.includes('SIGHUP: nothing to reload'),
      );
      const t0 = Date.now() - 3_600_000;
      await publishAll(
        pub,
        [0, 1, 2].map((i) => countsItem(window('site-hup', 'gw-a', i, t0 + i * 60_000, 60_000, 'zone-a'))),
      );
      await until(
        'written',
        () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean).length : 0),
        (n) => n >= 6,
      );
      expect(p.exitCode).toBeNull();
    } finally {
      await pub.endAsync();
      p.kill('SIGTERM');
    }
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(log).toContain('"aggregator stopped"');
  });
});
