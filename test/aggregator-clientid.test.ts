// MQTT identity of the aggregator with a real Mosquitto: two aggregators on one host with the default
// client id do not take each other's session (both stay connected and each gets every message), and
// two given the same id say so: through the broker's MQTT 5 DISCONNECT 0x8E "session taken over"
// where it sends one, and through connections closed right after they come up, again and again
// (MQTT 3.1.1, and Mosquitto 2.0.11 over MQTT 5, which sends no DISCONNECT).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { freePort } from './support/ports.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { resolveConfig } from '../aggregator/config.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-clientid');

function capture() {
  const lines: string[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, cb) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        cb();
      },
    }),
  );
  return { logger, text: () => lines.join('\n') };
}

describe.skipIf(!ok)('aggregator MQTT client id', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-clientid-'));
  let pub: MqttClient;
  const running: Aggregator[] = [];

  beforeAll(async () => {
    await broker.start();
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    await Promise.all(running.map((a) => a.stop(1000).catch(() => {})));
    await pub?.endAsync().catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the default id is unique per instance: from the HTTP port (the same across restarts), else random per run', () => {
    const a = resolveConfig({ http: { port: 9464 } }).mqtt.clientId;
    expect(a).toMatch(/^presence-aggregator-.+-p9464$/);
    expect(resolveConfig({ http: { port: 9464 } }).mqtt.clientId).toBe(a);
    expect(resolveConfig({ http: { port: 9465 } }).mqtt.clientId).not.toBe(a);
    const r1 = resolveConfig({ http: { port: null } }).mqtt.clientId;
    const r2 = resolveConfig({ http: { port: null } }).mqtt.clientId;
    expect(r1).toMatch(/^presence-aggregator-.+-[0-9a-f]{8}$/);
    expect(r1).not.toBe(r2);
    expect(resolveConfig({ mqtt: { clientId: 'mine' } }).mqtt.clientId).toBe('mine');
  });

  it('two aggregators on one host with the default id both stay connected and each gets every message', async () => {
    const logs = [capture(), capture()];
    const ports = [await freePort(), await freePort()];
    const aggs = logs.map(
      (l, i) =>
        new Aggregator(
          { mqtt: { url: broker.url }, http: { port: ports[i], host: '127.0.0.1' }, out: join(dir, `default-${i}.lp`), batch: { flushInterval: '50ms' } },
          { logger: l.logger },
        ),
    );
    running.push(...aggs);
    expect(aggs[0].config.mqtt.clientId).not.toBe(aggs[1].config.mqtt.clientId);
    await Promise.all(aggs.map((a) => a.start()));
    await publishAll(pub, windows('site-ids', 2, 50).map(countsItem)); // 100 windows, 200 lines
    for (const a of aggs)
      await until(
        'every window acknowledged by both',
        () => a.stats().acked,
        (n) => n === 100,
      );
    for (let i = 0; i < 2; i++) {
      const lines = existsSync(join(dir, `default-${i}.lp`))
        ? readFileSync(join(dir, `default-${i}.lp`), 'utf8')
            .split('\n')
            .filter((l) => l.startsWith('presence,'))
        : [];
      expect(lines).toHaveLength(200);
      expect(aggs[i].connected).toBe(true);
      expect(logs[i].text()).not.toMatch(/connection to the broker closed|session taken over/);
    }
    await Promise.all(aggs.map((a) => a.stop(2000)));
  });

  it('MQTT 5: a second aggregator with the same id -> "session taken over"', async () => {
    const logs = [capture(), capture()];
    const aggs = logs.map(
      (l, i) => new Aggregator({ mqtt: { url: broker.url, clientId: 'same-id-v5' }, http: { port: null }, out: join(dir, `v5-${i}.lp`) }, { logger: l.logger }),
    );
    running.push(...aggs);
    await aggs[0].start();
    await aggs[1].start();
    // Mosquitto 2.0.11 closes the older connection without a DISCONNECT 0x8E (brokers that send one,
    // e.g. EMQX, get the first line at once): here the repeated quick closes give it away.
    const t = await until(
      'the take-over logged',
      () => logs[0].text() + logs[1].text(),
      (x) => /"client_id":"same-id-v5","msg":"session taken over: .*another client with the same client id/.test(x),
    );
    expect(t).toContain('every aggregator needs its own mqtt.client_id');
    await Promise.all(aggs.map((a) => a.stop(500)));
  });

  it('MQTT 3.1.1: two aggregators with the same id -> "another client with the same client id?"', async () => {
    const logs = [capture(), capture()];
    const aggs = logs.map(
      (l, i) =>
        new Aggregator(
          { mqtt: { url: broker.url, clientId: 'same-id-v4', protocolVersion: 4 }, http: { port: null }, out: join(dir, `v4-${i}.lp`) },
          { logger: l.logger },
        ),
    );
    running.push(...aggs);
    await aggs[0].start();
    await aggs[1].start();
    await until(
      'the guess logged',
      () => logs[0].text() + logs[1].text(),
      (t) => /session taken over: the broker closed the connection right after it came up, 3 times in a row: another client with the same client id\?/.test(t),
    );
    await Promise.all(aggs.map((a) => a.stop(500)));
  });
});
