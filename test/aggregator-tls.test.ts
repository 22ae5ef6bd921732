// The aggregator over TLS with a client certificate and username/password against a real Mosquitto
// (certificates made here with the openssl CLI); a wrong password makes start() fail with the reason.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsItem, publishAll, until, windows } from './aggregator-helpers.ts';

const SUITE = 'aggregator TLS';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('openssl', 'openssl', SUITE) && need('mosquitto_passwd', 'mosquitto', SUITE);

function certificates(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=presence test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.pem');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=aggregator', '-keyout', 'client.key', '-out', 'client.csr');
  ssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'client.ext', '-out', 'client.pem');
  execFileSync('mosquitto_passwd', ['-b', '-c', join(dir, 'passwd'), 'agg', 'pa55 word'], { stdio: 'pipe' });
}

describe.skipIf(!ok)(SUITE, () => {
  const broker = new Mosquitto({
    listenerConfig: (port, dir) =>
      [
        `listener ${port} 127.0.0.1`,
        `cafile ${join(dir, 'ca.pem')}`,
        `certfile ${join(dir, 'server.pem')}`,
        `keyfile ${join(dir, 'server.key')}`,
        'require_certificate true',
        'allow_anonymous false',
        `password_file ${join(dir, 'passwd')}`,
      ].join('\n'),
  });
  const d = broker.dir;
  const url = () => `mqtts://127.0.0.1:${broker.port}`;
  const tls = { ca: join(d, 'ca.pem'), cert: join(d, 'client.pem'), key: join(d, 'client.key') };

  beforeAll(async () => {
    certificates(d);
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
  });

  it('subscribes and writes every window over TLS with a client certificate and a password', async () => {
    const out = join(d, 'tls.lp');
    const agg = new Aggregator({ mqtt: { url: url(), clientId: 'agg-tls', username: 'agg', password: 'pa55 word', ...tls }, out, http: { port: null }, batch: { flushInterval: '20ms' }, logLevel: 'error' });
    try {
      await agg.start();
      const pub = await mqtt.connectAsync(url(), {
        clientId: 'pub-tls',
        username: 'agg',
        password: 'pa55 word',
        ca: readFileSync(tls.ca),
        cert: readFileSync(tls.cert),
        key: readFileSync(tls.key),
      });
      await publishAll(pub, windows('site-tls', 2, 50).map(countsItem));
      await pub.endAsync();
      await until('written', () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean).length : 0), (n) => n === 200);
    } finally {
      await agg.stop(2000);
    }
  });

  it('fails to start with the broker\'s reason when the password is wrong', async () => {
    const agg = new Aggregator({ mqtt: { url: url(), clientId: 'agg-tls-bad', username: 'agg', password: 'wrong', ...tls }, out: join(d, 'bad.lp'), http: { port: null }, logLevel: 'silent' });
    await expect(agg.start()).rejects.toThrow(/refused the connection: Connection refused: (Bad User Name or Password|Not authorized)/);
    await agg.stop(100);
  });
});
