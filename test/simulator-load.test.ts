// Load mode: contract-valid messages from a seed, and QoS 1 publishing to a real Mosquitto.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { COUNTS_FILTER, STATUS_FILTER, parseTopic, validateCounts, validateStatus } from '../contract/index.ts';
import { loadMessages, loadStatuses, runLoad } from '../simulator/load.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { eventually } from './support/wait.ts';

describe('loadMessages', () => {
  it('yields contract-valid messages, window by window, every gateway once per window', () => {
    const msgs = [...loadMessages({ gateways: 25, windows: 4, seed: 3, site: 'city', windowMs: 30_000, start: '2026-05-01T12:00:00Z' })];
    expect(msgs).toHaveLength(100);
    for (const m of msgs) {
      const v = validateCounts(JSON.parse(m.payload.toString()));
      expect(v.ok, v.ok ? '' : v.reason).toBe(true);
      expect(parseTopic(m.topic)).toEqual({ site: 'city', gateway: m.message.gateway, kind: 'counts' });
      expect(m.fault).toBeUndefined();
    }
    expect(new Set(msgs.map((m) => m.message.gateway)).size).toBe(25);
    expect(new Set(msgs.map((m) => m.message.zone)).size).toBe(3);
    const g1 = msgs.filter((m) => m.message.gateway === 'gw-0001');
    expect(g1.map((m) => m.message.seq)).toEqual([0, 1, 2, 3]);
    expect(g1.map((m) => m.message.start)).toEqual([
      '2026-05-01T12:00:00.000Z',
      '2026-05-01T12:00:30.000Z',
      '2026-05-01T12:01:00.000Z',
      '2026-05-01T12:01:30.000Z',
    ]);
    expect(msgs.some((m) => m.message.wifi.devices > 0)).toBe(true);
  });

  it('is deterministic for a seed', () => {
    const a = [...loadMessages({ gateways: 5, windows: 3, seed: 9 })].map((m) => m.payload.toString());
    const b = [...loadMessages({ gateways: 5, windows: 3, seed: 9 })].map((m) => m.payload.toString());
    const c = [...loadMessages({ gateways: 5, windows: 3, seed: 10 })].map((m) => m.payload.toString());
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('injects flagged faults that a validator rejects', () => {
    const msgs = [...loadMessages({ gateways: 10, windows: 50, seed: 1, faults: { invalid: 0.1, malformed: 0.1 } })];
    const invalid = msgs.filter((m) => m.fault === 'invalid');
    const malformed = msgs.filter((m) => m.fault === 'malformed');
    expect(invalid.length).toBeGreaterThan(20);
    expect(malformed.length).toBeGreaterThan(20);
    for (const m of invalid) expect(validateCounts(JSON.parse(m.payload.toString())).ok).toBe(false);
    for (const m of malformed) expect(() => JSON.parse(m.payload.toString())).toThrow();
  });

  it('repeats a share of valid messages unchanged (QoS 1 redelivery)', () => {
    const msgs = [...loadMessages({ gateways: 10, windows: 50, seed: 1, faults: { duplicate: 0.1 } })];
    const dups = msgs.filter((m) => m.fault === 'duplicate');
    expect(dups.length).toBeGreaterThan(20);
    expect(msgs.length).toBe(500 + dups.length);
    for (const d of dups) {
      const i = msgs.indexOf(d);
      expect(msgs[i - 1].payload.equals(d.payload)).toBe(true);
      expect(validateCounts(JSON.parse(d.payload.toString())).ok).toBe(true);
    }
  });

  it('rejects bad options with a clear message', () => {
    expect(() => [...loadMessages({ gateways: 0, windows: 1 })]).toThrow('load: gateways must be a whole number >= 1 (got 0)');
    expect(() => [...loadMessages({ gateways: 1, windows: 1, site: 'Bad Site' })]).toThrow(/site "Bad Site"/);
  });

  it('has valid online statuses', () => {
    for (const s of loadStatuses({ gateways: 3, site: 'x' })) expect(validateStatus(s.message).ok).toBe(true);
  });
});

const hasMosquitto = need('mosquitto', 'mosquitto', 'simulator-load');
describe.skipIf(!hasMosquitto)('runLoad against Mosquitto', () => {
  const broker = new Mosquitto();
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
  });

  it('publishes the requested number of messages with QoS 1 at about the requested rate', async () => {
    const sub = await mqtt.connectAsync(broker.url, { clientId: 'load-test-sub' });
    const received: Array<{ topic: string; payload: string; qos: number }> = [];
    const statuses: string[] = [];
    sub.on('message', (topic, payload, packet) => {
      if (topic.endsWith('/status')) statuses.push(topic);
      else received.push({ topic, payload: payload.toString(), qos: packet.qos });
    });
    await sub.subscribeAsync([COUNTS_FILTER, STATUS_FILTER], { qos: 1 });
    const t0 = performance.now();
    const r = await runLoad({ url: broker.url, gateways: 20, rate: 400, count: 400, seed: 2, site: 'bench' });
    const elapsed = performance.now() - t0;
    expect(r).toMatchObject({ published: 400, acked: 400, failed: 0, faults: 0 });
    // 400 messages at 400/s take about a second: not instantly, not much longer.
    expect(elapsed).toBeGreaterThan(800);
    // All 400 were acknowledged by the broker; wait for the subscriber to have them all (and no more).
    await eventually('400 messages at the subscriber', () => received.length >= 400);
    expect(received).toHaveLength(400);
    expect(received.every((m) => m.qos === 1)).toBe(true);
    expect(received.every((m) => validateCounts(JSON.parse(m.payload)).ok)).toBe(true);
    expect(new Set(statuses).size).toBe(20);
    // Windows end near now, so a time-series store accepts them.
    const last = JSON.parse(received[received.length - 1].payload);
    expect(Math.abs(Date.parse(last.end) - Date.now())).toBeLessThan(5 * 60_000);
    await sub.endAsync();
  });

  it('its virtual gateways stop as gateways do: each retained status left on the broker is "offline", valid, one per gateway', async () => {
    // The retained "online" statuses stayed after the run: every aggregator that subscribed later took
    // the virtual gateways for gateways online, then silent ("missing"), for ever.
    const r = await runLoad({ url: broker.url, gateways: 4, rate: 200, count: 8, site: 'stops' });
    expect(r).toMatchObject({ published: 8, acked: 8, failed: 0, unacked: 0 });
    const sub = await mqtt.connectAsync(broker.url, { clientId: 'load-stops-sub' });
    const retained = new Map<string, { state: string; ok: boolean }>();
    sub.on('message', (topic, payload, packet) => {
      if (!packet.retain) return;
      const m = JSON.parse(payload.toString());
      retained.set(topic, { state: m.state, ok: validateStatus(m).ok });
    });
    await sub.subscribeAsync('presence/v1/stops/+/status', { qos: 1 });
    await eventually('the 4 retained statuses', () => retained.size >= 4);
    expect([...retained.keys()].sort()).toEqual(
      loadStatuses({ gateways: 4, site: 'stops' })
        .map((s) => s.topic)
        .sort(),
    );
    expect([...retained.values()]).toEqual(Array(4).fill({ state: 'offline', ok: true }));
    await sub.endAsync();
  });

  it('stops after a duration', async () => {
    // No count: without the duration it would publish for ever. It stops at the duration, not before
    // (elapsed), and never publishes more than rate x duration. How many it got out in that half second
    // depends on how much CPU the machine gave it, so that is no assertion (the rate is a bench's).
    const r = await runLoad({ url: broker.url, gateways: 5, rate: 200, duration: 0.5, status: false });
    expect(r.elapsedMs).toBeGreaterThanOrEqual(495); // the 100th is due at 0.495 s
    expect(r.published).toBeGreaterThan(0);
    expect(r.published).toBeLessThanOrEqual(100);
    expect(r.acked).toBe(r.published);
  });

  it('publishes every count due before the duration ends: rate x duration (the last was left out)', async () => {
    // The 1000th is due at 0.4995 s; the loop sleeps at least 1 ms, woke at 0.5 s or later and stopped
    // without it. The counts due before the end are now sent however late the loop wakes (within the
    // 1000 unacknowledged), so this holds on a loaded machine too.
    const r = await runLoad({ url: broker.url, gateways: 5, rate: 2000, duration: 0.5, status: false });
    expect(r.published).toBe(1000);
    expect(r.acked).toBe(1000);
  });

  it('publishes the statuses of more gateways than MQTT has packet ids within the in-flight bound, then counts for the whole --duration', async () => {
    // All at once, 66,000 statuses outran the 65,535 packet ids: the run never ended (100,000 gateways
    // sat at 'published 0' for ten minutes), and the statuses took the whole of a short duration, which
    // then published no counts, reported as a success.
    const r = await runLoad({ url: broker.url, gateways: 66_000, rate: 20, duration: 1, site: 'many', ackWaitMs: 10_000 });
    expect(r).toMatchObject({ failed: 0, unacked: 0, faults: 0 });
    expect(r.published).toBeGreaterThan(0);
    expect(r.published).toBeLessThanOrEqual(20);
    expect(r.acked).toBe(r.published);
    // the duration is the counts': timed from the first count, after the statuses
    expect(r.elapsedMs).toBeGreaterThanOrEqual(950);
    expect(r.elapsedMs).toBeLessThan(10_000);
  }, 120_000);

  it('`presence simulate --load` publishes and prints its result', async () => {
    const sub = await mqtt.connectAsync(broker.url, { clientId: 'load-cli-sub' });
    let n = 0;
    sub.on('message', (topic) => {
      if (parseTopic(topic)?.site === 'cli' && parseTopic(topic)?.kind === 'counts') n++;
    });
    await sub.subscribeAsync(COUNTS_FILTER, { qos: 1 });
    const { stdout } = await promisify(execFile)('node', [
      join(import.meta.dirname, '..', 'scripts', 'presence.js'),
      'simulate',
      '--load',
      '--gateways',
      '3',
      '--rate',
      '100',
      '--count',
      '30',
      '--site',
      'cli',
      '--mqtt-url',
      broker.url,
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ published: 30, acked: 30, failed: 0 });
    await eventually('30 messages at the subscriber', () => n >= 30);
    expect(n).toBe(30);
    await sub.endAsync();
  });

  it('fails clearly when there is no broker', async () => {
    await expect(
      runLoad({ url: 'mqtt://127.0.0.1:1', gateways: 1, rate: 10, count: 1, mqttOptions: { reconnectPeriod: 0, connectTimeout: 2000 } }),
    ).rejects.toThrow(/^broker mqtt:\/\/127\.0\.0\.1:1\/?: .*ECONNREFUSED.*; check that it is running and reachable/);
  });
});

describe.skipIf(!hasMosquitto)('runLoad when the broker goes away during the run', () => {
  const broker = new Mosquitto();
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
  });

  it('returns what was not acknowledged, says when the connection was lost, and ends (a graceful end waited for ever)', async () => {
    const events: string[] = [];
    const run = runLoad({
      url: broker.url,
      gateways: 2,
      rate: 100,
      duration: 3,
      status: false,
      ackWaitMs: 1000,
      mqttOptions: { reconnectPeriod: 200 },
      onConnection: (state) => events.push(state),
    });
    await new Promise((r) => setTimeout(r, 1000));
    await broker.stop();
    const r = await run;
    await broker.start();
    expect(events[0]).toBe('lost');
    expect(r.acked).toBeGreaterThan(0);
    expect(r.unacked).toBeGreaterThan(0);
    expect(r.acked + r.failed + r.unacked).toBe(r.published);
  }, 30_000);

  it('`presence simulate --load` prints its result, one line naming the broker and what was not acknowledged, exit 1 (was exit 13 and nothing)', async () => {
    const child = execFile(process.execPath, [
      join(import.meta.dirname, '..', 'scripts', 'presence.js'),
      'simulate',
      '--load',
      '--gateways',
      '2',
      '--rate',
      '100',
      '--duration',
      '3s',
      '--mqtt-url',
      broker.url,
    ]);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await eventually('the first acknowledged messages', () => /"acked":[1-9]/.test(stderr), 10_000);
    await broker.stop();
    // The run waits up to 30 s for the outstanding acknowledgements, then ends.
    const code = await exited;
    await broker.start();
    const result = JSON.parse(stdout.trim());
    expect(result.unacked).toBeGreaterThan(0);
    expect(stderr).toMatch(/lost the connection to the broker/);
    const last = stderr.trimEnd().split('\n').pop()!;
    expect(last).toMatch(
      new RegExp(
        `^presence simulate: \\d+ of the messages published \\(counts and statuses\\) were not acknowledged by the broker at mqtt://127\\.0\\.0\\.1:${broker.port}\\b`,
      ),
    );
    expect(code).toBe(1);
  }, 90_000);
});

describe.skipIf(!hasMosquitto || !need('mosquitto_passwd', 'mosquitto-clients', 'simulator-load'))(
  'presence simulate --load against a broker that needs a password',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-load-auth-'));
    const passwd = join(dir, 'passwd');
    const acl = join(dir, 'acl');
    const broker = new Mosquitto({
      listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${acl}\n`,
    });
    beforeAll(async () => {
      execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'loader', 'load-pw']);
      execFileSync('mosquitto_passwd', ['-b', passwd, 'reader', 'read-pw']);
      // the aggregator's lines of docs/mosquitto/presence.acl for reader: it may read, not publish counts
      writeFileSync(acl, 'user loader\ntopic write presence/v1/#\n\nuser reader\ntopic read presence/v1/#\ntopic write presence/v1/_aggregators/+/alive\n');
      await broker.start();
    });
    afterAll(async () => {
      await broker.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    it('takes MQTT_USERNAME and MQTT_PASSWORD_FILE, as every command does', async () => {
      const pwFile = join(dir, 'load.pw');
      writeFileSync(pwFile, 'load-pw\n', { mode: 0o600 });
      const env = {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^MQTT_/.test(k))),
        MQTT_USERNAME: 'loader',
        MQTT_PASSWORD_FILE: pwFile,
      };
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          join(import.meta.dirname, '..', 'scripts', 'presence.js'),
          'simulate',
          '--load',
          '--count',
          '5',
          '--gateways',
          '1',
          '--rate',
          '100',
          '--mqtt-url',
          broker.url,
        ],
        { env },
      );
      expect(JSON.parse(stdout.trim().split('\n').pop()!)).toMatchObject({ published: 5, acked: 5, failed: 0 });
    });

    it('publishes the broker ACL refuses are not counted as acknowledged: one line naming the refusal, the user and the fix, exit 1', async () => {
      const pwFile = join(dir, 'reader.pw');
      writeFileSync(pwFile, 'read-pw\n', { mode: 0o600 });
      const env = {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^MQTT_/.test(k))),
        MQTT_USERNAME: 'reader',
        MQTT_PASSWORD_FILE: pwFile,
      };
      const r = await promisify(execFile)(
        process.execPath,
        [
          join(import.meta.dirname, '..', 'scripts', 'presence.js'),
          'simulate',
          '--load',
          '--count',
          '4',
          '--gateways',
          '2',
          '--rate',
          '100',
          '--mqtt-url',
          broker.url,
        ],
        { env },
      ).catch((e: { code: number; stdout: string; stderr: string }) => e);
      const { code, stdout, stderr } = r as { code: number; stdout: string; stderr: string };
      expect(JSON.parse(stdout.trim().split('\n').pop()!)).toMatchObject({ published: 4, acked: 0, refused: 8, refusedReason: '0x87 not authorized' });
      expect(stderr.trimEnd().split('\n').pop()).toBe(
        `presence simulate: 8 of the messages published (counts and statuses) were refused by the broker at ${broker.url.replace(/\/$/, '')} (PUBACK 0x87 not authorized): its ACL does not let user reader publish on presence/v1/load/#; give the load a user that may (with docs/mosquitto/presence.acl: a user block with topic write presence/v1/load/#)`,
      );
      expect(code).toBe(1);
    });

    it('a wrong password is one line naming the broker and the credentials to check', async () => {
      const pwFile = join(dir, 'wrong.pw');
      writeFileSync(pwFile, 'not-the-password\n', { mode: 0o600 });
      const env = {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^MQTT_/.test(k))),
        MQTT_USERNAME: 'loader',
        MQTT_PASSWORD_FILE: pwFile,
      };
      const r = await promisify(execFile)(
        process.execPath,
        [join(import.meta.dirname, '..', 'scripts', 'presence.js'), 'simulate', '--load', '--count', '1', '--mqtt-url', broker.url],
        { env },
      ).catch((e: { code: number; stderr: string }) => e);
      expect((r as { code: number }).code).toBe(1);
      expect((r as { stderr: string }).stderr.trimEnd()).toMatch(
        new RegExp(
          `^presence simulate: broker mqtt://127\\.0\\.0\\.1:${broker.port}/?: .*; check the user name and password \\(MQTT_USERNAME, and MQTT_PASSWORD or MQTT_PASSWORD_FILE\\)$`,
        ),
      );
    });
  },
);
