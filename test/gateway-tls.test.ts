// TLS with a client certificate and username/password against a real Mosquitto configured with a
// CA and certificates made here with the openssl CLI; `presence doctor` names what is wrong when the
// password or the CA is.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteFilter, validateCounts } from '../contract/index.ts';
import { Gateway } from '../gateway/gateway.ts';
import { loadConfig } from '../gateway/config.ts';
import { Publisher } from '../gateway/publisher.ts';
import { WindowQueue } from '../gateway/queue.ts';
import { makeCertificates, tlsMosquitto } from './support/tls.ts';
import { need } from './support/need.ts';
import { TcpRelay } from './support/tcp-relay.ts';
import { config, ROOT, subscriber, waitFor, wifiCapture, windowsSpanned } from './gateway-support.ts';

const SUITE = 'gateway TLS';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('openssl', 'openssl', SUITE) && need('mosquitto_passwd', 'mosquitto', SUITE);

describe.skipIf(!ok)(SUITE, () => {
  const broker = tlsMosquitto();
  const d = broker.dir;
  beforeAll(async () => {
    makeCertificates(d, { cn: 'gateway-tls', user: 'gw', password: 's3cret pass' });
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
  });
  const url = () => `mqtts://127.0.0.1:${broker.port}`;
  const tls = () => ({ ca: readFileSync(join(d, 'ca.pem')), cert: readFileSync(join(d, 'client.pem')), key: readFileSync(join(d, 'client.key')) });

  it('publishes every window over TLS with a client certificate and username/password', async () => {
    const cap = wifiCapture(join(d, 'tls.pcap'), { devices: 2, startMs: Date.parse('2026-05-01T00:00:00.200Z'), durationMs: 8_000, framesPerS: 10 });
    const sub = await subscriber(url(), { ...tls(), username: 'gw', password: 's3cret pass', filter: siteFilter('tls') });
    const gw = new Gateway({
      config: config({
        site: 'tls',
        zone: 'z',
        id: 'g',
        mqtt: url(),
        mqttCa: join(d, 'ca.pem'),
        mqttCert: join(d, 'client.pem'),
        mqttKey: join(d, 'client.key'),
        mqttUsername: 'gw',
        mqttPassword: 's3cret pass',
        source: [`pcap:${cap.path}`],
        speed: 'max',
        window: '2s',
        queueDir: join(d, 'q'),
      }),
    });
    await gw.run();
    const expected = windowsSpanned(cap.firstMs, cap.lastMs, 2000);
    const counts = () => sub.messages.filter((m) => m.topic.endsWith('/counts')).map((m) => validateCounts(JSON.parse(m.payload.toString())));
    await waitFor(() => counts().length >= expected, 30_000, 'windows over TLS');
    expect(counts().every((v) => v.ok)).toBe(true);
    expect(counts().length).toBe(expected);
    await sub.client.endAsync();
  });

  it('doctor: broker reachable with the right settings; names the password or CA problem otherwise', () => {
    const doctor = (extra: string[]) => {
      const r = spawnSync(
        process.execPath,
        [
          join(ROOT, 'scripts', 'presence.js'),
          'doctor',
          '--json',
          '--site',
          'tls',
          '--zone',
          'z',
          '--id',
          'g',
          '--mqtt-url',
          url(),
          '--mqtt-cert',
          join(d, 'client.pem'),
          '--mqtt-key',
          join(d, 'client.key'),
          '--mqtt-username',
          'gw',
          '--source',
          `pcap:${join(d, 'tls.pcap')}`,
          '--queue-dir',
          join(d, 'q-doctor'),
          ...extra,
        ],
        { cwd: ROOT, encoding: 'utf8', timeout: 30_000 },
      );
      const results = JSON.parse(r.stdout) as Array<{ step: string; level: string; detail: string; fix?: string }>;
      return results.find((x) => x.step === 'broker reachable')!;
    };
    expect(doctor(['--mqtt-ca', join(d, 'ca.pem'), '--mqtt-password', 's3cret pass'])).toMatchObject({ level: 'ok' });
    const badPw = doctor(['--mqtt-ca', join(d, 'ca.pem'), '--mqtt-password', 'wrong']);
    expect(badPw.level).toBe('fail');
    expect(badPw.detail).toMatch(/Not authorized|Bad User Name or Password/i);
    expect(badPw.fix).toMatch(
      /^check mqtt\.username and mqtt\.password \(or mqtt\.password_file, MQTT_PASSWORD, MQTT_PASSWORD_FILE\) against the broker password file$/,
    );
    const badCa = doctor(['--mqtt-ca', join(d, 'other.pem'), '--mqtt-password', 's3cret pass']);
    expect(badCa.level).toBe('fail');
    expect(badCa.fix).toMatch(/mqtt\.ca/);
    // connected without checking the broker's certificate: it works, and is a warning, not OK
    const insecure = doctor(['--mqtt-insecure', '--mqtt-password', 's3cret pass']);
    expect(insecure).toMatchObject({
      level: 'warn',
      detail: expect.stringMatching(
        /: connected; test publish on \S+ accepted \(MQTT 5 PUBACK\); but the broker's certificate is not checked \(mqtt\.reject_unauthorized: false, --mqtt-insecure\)/,
      ),
      fix: expect.stringMatching(/^set mqtt\.ca \(--mqtt-ca\) to the CA certificate that signed the broker certificate and drop --mqtt-insecure/),
    });
  });

  it("doctor: a client key that is not the certificate's, or a file that is no PEM, is the broker step's FAIL naming the file, not an uncaught error before any step", () => {
    writeFileSync(join(d, 'not-a-key.pem'), 'not a key\n');
    const cap = wifiCapture(join(d, 'tls-doctor.pcap'), { devices: 2, startMs: Date.parse('2026-05-01T00:00:00Z'), durationMs: 1000, framesPerS: 10 });
    const doctor = (cert: string, key: string) => {
      const r = spawnSync(
        process.execPath,
        [
          join(ROOT, 'scripts', 'presence.js'),
          'doctor',
          '--json',
          ...['--site', 'tls', '--zone', 'z', '--id', 'g', '--mqtt-url', url(), '--mqtt-ca', join(d, 'ca.pem')],
          ...['--mqtt-cert', join(d, cert), '--mqtt-key', join(d, key), '--mqtt-username', 'gw', '--mqtt-password', 's3cret pass'],
          ...['--source', `pcap:${cap.path}`, '--queue-dir', join(d, 'q-doctor')],
        ],
        { cwd: ROOT, encoding: 'utf8', timeout: 30_000 },
      );
      expect(r.status).toBe(1);
      expect(r.stderr).not.toMatch(/\n {4}at /);
      const results = JSON.parse(r.stdout) as Array<{ step: string; level: string; detail: string; fix?: string }>;
      expect(results.at(-1)!.step).toBe('queue folder');
      return results.find((x) => x.step === 'broker reachable')!;
    };
    const mismatch = doctor('client.pem', 'other.key');
    expect(mismatch.level).toBe('fail');
    expect(mismatch.detail).toMatch(
      new RegExp(
        `^${url()}: mqtt\\.key ${join(d, 'other.key')} is not the key of the certificate mqtt\\.cert ${join(d, 'client.pem')} \\(error:.*key values mismatch\\): the gateway stops at its start with the same error$`,
      ),
    );
    expect(mismatch.fix).toMatch(/^set mqtt\.key \(--mqtt-key\) to the key the client certificate was made with/);
    const noPem = doctor('client.pem', 'not-a-key.pem');
    expect(noPem.level).toBe('fail');
    expect(noPem.detail).toMatch(new RegExp(`^${url()}: mqtt\\.key ${join(d, 'not-a-key.pem')} cannot be used \\(error:[0-9A-F]+:`));
    expect(noPem.fix).toMatch(/mqtt\.key the client certificate's private key in PEM, not encrypted/);
  });

  it('a connection the broker had accepted, then reset on the way: the fix says so, not "the port does not answer TLS" (both are read ECONNRESET)', async () => {
    // A TCP relay in front of the TLS broker that resets the gateway's side once the session is up.
    const relay = await new TcpRelay(broker.port).start();
    const port = relay.port;
    const cfg = loadConfig(
      {
        site: 'tls',
        zone: 'z',
        id: 'g-reset',
        mqttUrl: `mqtts://127.0.0.1:${port}`,
        mqttCa: join(d, 'ca.pem'),
        mqttCert: join(d, 'client.pem'),
        mqttKey: join(d, 'client.key'),
        mqttUsername: 'gw',
        mqttPassword: 's3cret pass',
        source: ['pcap:unused.pcap'],
      } as never,
      {},
    );
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
    const p = new Publisher(cfg, WindowQueue.open(join(d, 'q-reset'), { maxWindows: 10 }), log, 30);
    try {
      p.start();
      await waitFor(() => p.connected, 30_000, 'connected over TLS through the relay');
      relay.reset();
      await waitFor(() => lines.some((l) => l.err === 'read ECONNRESET'), 30_000, 'the reset logged');
      const line = lines.find((l) => l.err === 'read ECONNRESET')!;
      expect(line.msg).toBe('mqtt error');
      expect(line.fix).toMatch(/^the broker had accepted this connection when it was cut .*it reconnects by itself/);
      expect(line.fix).not.toMatch(/does not answer TLS/);
      await waitFor(() => p.connected, 30_000, 'reconnected');
    } finally {
      await p.stop();
      relay.close();
    }
  });
});
