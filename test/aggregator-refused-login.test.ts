// An aggregator that was connected and is then refused by the broker (restarted with a password
// file that no longer holds its credential) keeps trying: once the broker knows the credential
// again it reconnects on its own and writes what the gateways published meanwhile. mqtt.js stops
// reconnecting after a refused CONNACK unless told otherwise, which left a running aggregator
// idle for good with its process alive (so systemd never restarted it).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Aggregator } from '../aggregator/aggregator.ts';
import { loadConfig } from '../aggregator/config.ts';
import { countsTopic, encode } from '../contract/index.ts';
import { until, window } from './aggregator-helpers.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const SUITE = 'aggregator refused on a reconnect (Mosquitto with a password file)';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('mosquitto_passwd', 'mosquitto', SUITE);

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-refused-login-'));
  const passwd = join(dir, 'passwd');
  const out = join(dir, 'presence.lp');
  const broker = new Mosquitto({
    listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\n`,
  });
  const logged: Array<Record<string, unknown>> = [];
  let agg: Aggregator;

  const users = (aggregatorPassword: string) => {
    execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'aggregator', aggregatorPassword]);
    execFileSync('mosquitto_passwd', ['-b', passwd, 'gw', 'gw-pw']);
  };

  beforeAll(async () => {
    users('agg-pw');
    writeFileSync(join(dir, 'agg-password'), 'agg-pw\n');
    writeFileSync(
      join(dir, 'aggregator.yaml'),
      `aggregator:\n  mqtt:\n    username: aggregator\n    password_file: agg-password\n    client_id: refused-login\n  out: ${out}\n  http: { port: null }\n  batch: { flush_interval: 10ms }\n`,
    );
    await broker.start();
    const stream = { write: (line: string) => void logged.push(JSON.parse(line)) };
    agg = new Aggregator(loadConfig({ config: join(dir, 'aggregator.yaml'), mqttUrl: broker.url }, {}), { logger: pino({ level: 'info' }, stream) });
    await agg.start();
  });
  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []);

  it('is logged once with the broker and the fix, tried again, and reconnects once the broker knows the credential', async () => {
    // The broker restarts with the aggregator's credential changed: the reconnect is refused.
    users('another-password');
    await broker.stop();
    await broker.start();
    const refusal = await until(
      'the refusal logged',
      () => logged.find((l) => String(l.msg).startsWith('broker refused the connection; messages stay with the broker')),
      (l) => l !== undefined,
    );
    expect(refusal).toMatchObject({ broker: broker.url, fix: expect.stringContaining('mqtt.password_file') });
    // A gateway publishes while the aggregator is locked out (its persistent session queues it).
    const gw = await mqtt.connectAsync(broker.url, { username: 'gw', password: 'gw-pw', reconnectPeriod: 0 });
    const m = window('s', 'gw-1', 1, Date.now() - 3_600_000, 60_000, 'z');
    await gw.publishAsync(countsTopic('s', 'gw-1'), encode(m), { qos: 1 });
    await gw.endAsync();
    // Still tried after a few seconds (not given up), and each kind of refusal is logged once.
    await new Promise((r) => setTimeout(r, 3000));
    expect(logged.filter((l) => String(l.msg).startsWith('broker refused the connection')).length).toBe(1);
    // The credential is back: the aggregator reconnects by itself and writes the queued window.
    users('agg-pw');
    await broker.stop();
    await broker.start();
    await until('the window written after the reconnect', lines, (l) => l.some((x) => x.includes('gateway=gw-1') && x.endsWith(` ${Date.parse(m.start)}`)));
  }, 60_000);

  it('the corridor link (a second connection, for the sketches) is tried again too, and logs each kind of error once', async () => {
    const linkLogged: Array<Record<string, unknown>> = [];
    const withCorridor = new Aggregator(
      {
        mqtt: { url: broker.url, username: 'aggregator', password: 'agg-pw', clientId: 'refused-corridor' },
        out: join(dir, 'corridor.lp'),
        http: { port: null },
        corridors: [{ group: 'main', site: 'corridor', members: ['gw-a', 'gw-b'] }],
      },
      { logger: pino({ level: 'info' }, { write: (line: string) => void linkLogged.push(JSON.parse(line)) }) },
    );
    const link = () => (withCorridor as unknown as { link: { connected: boolean } }).link;
    try {
      await withCorridor.start();
      expect(link().connected).toBe(true);
      users('another-password');
      await broker.stop();
      await broker.start();
      const linkErrors = () => linkLogged.filter((l) => String(l.msg).startsWith('corridor link: no connection'));
      await until(
        'the corridor link refused, logged',
        () => linkErrors().at(-1),
        (l) => l !== undefined && !link().connected,
      );
      await new Promise((r) => setTimeout(r, 3000)); // tried again a few times, each kind of error logged once
      expect(link().connected).toBe(false);
      expect(linkErrors().length).toBeLessThanOrEqual(2); // the lost connection's error, then the refusal: once each
      expect(linkErrors().at(-1)).toMatchObject({ broker: broker.url });
      users('agg-pw');
      await broker.stop();
      await broker.start();
      await until(
        'the corridor link connected again',
        () => link().connected,
        (c) => c,
        10_000,
      );
    } finally {
      await withCorridor.stop(2000);
    }
  }, 60_000);
});
