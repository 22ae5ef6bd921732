// The gateway's MQTT identity with a real Mosquitto: its default client id is presence-gw-SITE-ID
// (unique per gateway, the same across restarts), and the same gateway run twice (two publishers with
// one client id) logs "session taken over" instead of only reconnecting quietly, and then not a
// connected and a lost line for every turn of the two taking the connection from each other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { loadConfig } from '../gateway/config.ts';
import { connectMqtt, mqttOptions, Publisher } from '../gateway/publisher.ts';
import { WindowQueue } from '../gateway/queue.ts';
import { until } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'gateway-clientid');

describe.skipIf(!ok)('gateway MQTT client id', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-gw-clientid-'));

  beforeAll(async () => {
    await broker.start();
  });

  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connectMqtt: a plain mqtt:// URL over its own TCP socket, one with credentials in it through mqtt.connect; both connect', async () => {
    const port = new URL(broker.url).port;
    for (const [url, username] of [
      [`mqtt://127.0.0.1:${port}`, undefined],
      [`mqtt://someone:secret@127.0.0.1:${port}`, 'someone'],
    ] as const) {
      const client = connectMqtt(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4 });
      try {
        await new Promise<void>((resolve, reject) => {
          client.once('connect', () => resolve());
          client.once('error', reject);
        });
        expect(client.options.port).toBe(Number(port));
        expect(client.options.username).toBe(username);
      } finally {
        await client.endAsync();
      }
    }
  });

  it('the same gateway run twice: "session taken over" in the log', async () => {
    const cfg = loadConfig({ site: 'dam', zone: 'plein', id: 'gw-twice', mqttUrl: broker.url, source: ['pcap:unused.pcap'] } as never, {});
    expect(mqttOptions(cfg, 30).clientId).toBe('presence-gw-dam-gw-twice');
    const lines: string[] = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(c, _e, cb) {
          lines.push(String(c));
          cb();
        },
      }),
    );
    const pubs = [0, 1].map((i) => new Publisher(cfg, WindowQueue.open(join(dir, `q${i}`), { maxWindows: 10 }), log, 30));
    try {
      for (const p of pubs) p.start();
      const text = await until(
        'the take-over logged',
        () => lines.join(''),
        (t) => t.includes('session taken over'),
      );
      expect(text).toMatch(
        /"client_id":"presence-gw-dam-gw-twice","msg":"session taken over: the broker closed the connection right after it came up, 3 times in a row: another client with the same client id\?; is gateway dam\/gw-twice running twice\?/,
      );
      // both go on taking the connection from each other about every second: once that is said,
      // the turns are not logged (they were a connected and an unreachable line each, 2 a second)
      const after = lines.length;
      await new Promise((r) => setTimeout(r, 6000));
      const later = lines.slice(after).map((l) => JSON.parse(l).msg as string);
      expect(later.filter((m) => m === 'connected to broker' || m.startsWith('broker unreachable'))).toEqual([]);
      expect(later.filter((m) => m.startsWith('session taken over')).length).toBeLessThanOrEqual(2);
    } finally {
      await Promise.all(pubs.map((p) => p.stop()));
    }
  });

  it('a broker that speaks only MQTT 3.1.1 (the embedded Aedes): the fallback is one info line, not "broker unreachable"', async () => {
    const aedes = await Aedes.createBroker();
    const server: Server = createServer(aedes.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
    const cfg = loadConfig({ site: 'dam', zone: 'plein', id: 'gw-aedes', mqttUrl: url, source: ['pcap:unused.pcap'] } as never, {});
    const lines: Array<{ level: number; msg: string }> = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(c, _e, cb) {
          lines.push(JSON.parse(String(c)));
          cb();
        },
      }),
    );
    const p = new Publisher(cfg, WindowQueue.open(join(dir, 'q-aedes'), { maxWindows: 10 }), log, 30);
    try {
      p.start();
      await until(
        'connected over 3.1.1',
        () => p.connected && p.protocolVersion === 4,
        (c) => c,
      );
      await new Promise((r) => setTimeout(r, 200));
      expect(lines.map((l) => l.msg)).toEqual([
        'broker refused MQTT 5; using MQTT 3.1.1 (a publish the broker ACL denies cannot be seen over 3.1.1)',
        'connected to broker',
      ]);
    } finally {
      await p.stop();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => aedes.close(() => r()));
    }
  });
});
