// SIGHUP to a `presence aggregator` process with nothing to reload (no --calibration, no --config):
// it goes on, says so, and still writes and stops cleanly. Node's default for SIGHUP is to end the
// process at once, unlogged: a `systemctl reload` or a log rotation stopped such an aggregator.
// And a calibration path or a corridor group changed in the config file: SIGHUP says it needs a restart.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsItem, publishAll, publisher, until, window } from './aggregator-helpers.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-sighup');
const repo = join(import.meta.dirname, '..');

/** `presence aggregator ARGS` with JSON logs, once subscribed: its log so far, its JSON lines and its exit code and signal. */
async function aggregatorWith(args: string[]) {
  const p = spawn(process.execPath, [join(repo, 'scripts/presence.js'), 'aggregator', ...args, '--log-format', 'json'], {
    cwd: repo,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, INFLUX_URL: '', PRESENCE_AGGREGATOR_CONFIG: '' },
  });
  let text = '';
  p.stderr!.on('data', (d) => (text += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.once('exit', (code, signal) => r({ code, signal })));
  const log = () => text;
  const json = () =>
    text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  try {
    await until('subscribed', log, (l) => l.includes('"subscribed"'));
  } catch (e) {
    p.kill('SIGTERM');
    throw e;
  }
  return { p, log, json, exited };
}

/** `presence aggregator --config cfg` (aggregatorWith). */
const aggregatorOn = (cfg: string) => aggregatorWith(['--config', cfg]);

/** SIGHUP with the config file as it was: waits for the reload, and checks nothing was said of a change (a line starting `said`). */
async function reloadUnchanged(agg: Awaited<ReturnType<typeof aggregatorWith>>, said: string) {
  agg.p.kill('SIGHUP');
  await until(
    'reloaded',
    () => agg.json().filter((l) => l.msg === 'gateway registry reloaded').length,
    (n) => n >= 1,
  );
  expect(agg.json().find((l) => String(l.msg).startsWith(said))).toBeUndefined();
}

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
    const { p, log, exited } = await aggregatorWith([
      '--mqtt-url',
      broker.url,
      '--mqtt-client-id',
      'agg-sighup',
      '--out',
      out,
      '--http-port',
      'off',
      '--flush-interval',
      '20ms',
    ]);
    const pub = await publisher(broker.url);
    try {
      p.kill('SIGHUP');
      await until(
        'said',
        () => log(),
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
        (n) => n >= 9,
      );
      expect(p.exitCode).toBeNull();
    } finally {
      await pub.endAsync();
      p.kill('SIGTERM');
    }
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(log()).toContain('"aggregator stopped"');
  });

  it('a calibration path changed in the config file is not taken up silently: SIGHUP re-reads the file in use and says a restart takes the new one', async () => {
    const calibration = (k: number) =>
      `format: presence-calibration/1\nestimator: { field: estimate, radio: wifi, window_s: 60 }\nlevel: 0.9\nzones:\n  hall:\n    k: { value: ${k}, low: ${k - 0.05}, high: ${k + 0.05}, sd: 0.03 }\n    b: { value: 4, low: 3, high: 5, sd: 0.6 }\n    corr_kb: 0.4\n    residual_sd: 1.5\n`;
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    writeFileSync(a, calibration(0.5));
    writeFileSync(b, calibration(0.7));
    const cfg = join(dir, 'aggregator.yaml');
    const configWith = (cal: string) =>
      `mqtt:\n  url: ${broker.url}\n  client_id: agg-sighup-cal\nout: ${join(dir, 'cal.lp')}\nhttp:\n  port: 0\ncalibration: ${cal}\n`;
    writeFileSync(cfg, configWith(a));
    const { p, log, json, exited } = await aggregatorOn(cfg);
    try {
      writeFileSync(cfg, configWith(b));
      p.kill('SIGHUP');
      await until(
        'said',
        () => log(),
        (l) => l.includes('calibration: the config file now names'),
      );
      const lines = json();
      expect(lines.find((l) => l.msg === 'calibration reloaded')).toMatchObject({ file: a });
      const warned = lines.find((l) => String(l.msg).startsWith('calibration: the config file now names'))!;
      expect(warned).toMatchObject({ level: 40, calibration: b, in_use: a });
      expect(String(warned.msg)).toContain('takes a restart');
    } finally {
      p.kill('SIGTERM');
    }
    expect(await exited).toEqual({ code: 0, signal: null });
  });

  it('a corridor member taken out in the config file is not taken up silently: SIGHUP says corridors take a restart', async () => {
    const cfg = join(dir, 'corridors.yaml');
    const configWith = (members: string) =>
      `mqtt:\n  url: ${broker.url}\n  client_id: agg-sighup-corr\nout: ${join(dir, 'corr.lp')}\nhttp:\n  port: 0\ncorridors:\n  - { group: main-street, site: dam, members: [${members}] }\n`;
    writeFileSync(cfg, configWith('gw-a, gw-b, gw-c'));
    const agg = await aggregatorOn(cfg);
    const { p, log, json, exited } = agg;
    try {
      // the same file again: nothing to say
      await reloadUnchanged(agg, 'corridors:');
      writeFileSync(cfg, configWith('gw-a, gw-b'));
      p.kill('SIGHUP');
      await until(
        'said',
        () => log(),
        (l) => l.includes('corridors: the config file now lists'),
      );
      const warned = json().find((l) => String(l.msg).startsWith('corridors:'))!;
      expect(warned).toMatchObject({ level: 40, file: cfg, corridors: ['main-street'], in_use: ['main-street'] });
      expect(String(warned.msg)).toContain('take a restart');
    } finally {
      p.kill('SIGTERM');
    }
    expect(await exited).toEqual({ code: 0, signal: null });
  });

  it('any other setting changed in the config file is not taken up silently: SIGHUP names its key (never its value) and says it takes a restart', async () => {
    const cfg = join(dir, 'others.yaml');
    const configWith = (out: string, password: string) =>
      `mqtt:\n  url: ${broker.url}\n  client_id: agg-sighup-others\n  keepalive: 30s\nout: ${join(dir, out)}\nhttp:\n  port: 0\n  password: ${password}\n  user: ops\n`;
    writeFileSync(cfg, configWith('others.lp', 'Old-Secret-1'), { mode: 0o600 });
    const agg = await aggregatorOn(cfg);
    const { p, log, json, exited } = agg;
    try {
      // the same file again: nothing to say
      await reloadUnchanged(agg, 'the config file now gives');
      // it said 'gateway registry reloaded' and went on writing to the old file and with the old password, without a word
      writeFileSync(cfg, configWith('elsewhere.lp', 'New-Secret-2').replace('keepalive: 30s', 'keepalive: 45s'), { mode: 0o600 });
      p.kill('SIGHUP');
      await until(
        'said',
        () => log(),
        (l) => l.includes('the config file now gives'),
      );
      const warned = json().find((l) => String(l.msg).startsWith('the config file now gives'))!;
      expect(warned).toMatchObject({ level: 40, file: cfg, settings: ['mqtt.keepalive', 'out', 'http.password'] });
      expect(String(warned.msg)).toContain('take a restart');
      expect(log()).not.toContain('Secret');
    } finally {
      p.kill('SIGTERM');
    }
    expect(await exited).toEqual({ code: 0, signal: null });
  });
});
