// The aggregator over TLS with a client certificate and username/password against a real Mosquitto
// (certificates made here with the openssl CLI); a wrong password makes start() fail with the reason.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { makeCertificates, tlsMosquitto } from './support/tls.ts';
import { need } from './support/need.ts';
import { TcpRelay } from './support/tcp-relay.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsItem, publishAll, until, windows } from './aggregator-helpers.ts';

const SUITE = 'aggregator TLS';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('openssl', 'openssl', SUITE) && need('mosquitto_passwd', 'mosquitto', SUITE);

describe.skipIf(!ok)(SUITE, () => {
  const broker = tlsMosquitto();
  const d = broker.dir;
  const url = () => `mqtts://127.0.0.1:${broker.port}`;
  const tls = { ca: join(d, 'ca.pem'), cert: join(d, 'client.pem'), key: join(d, 'client.key') };

  beforeAll(async () => {
    makeCertificates(d, { cn: 'aggregator', user: 'agg', password: 'pa55 word' });
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
  });

  it('subscribes and writes every window over TLS with a client certificate and a password', async () => {
    const out = join(d, 'tls.lp');
    const agg = new Aggregator({
      mqtt: { url: url(), clientId: 'agg-tls', username: 'agg', password: 'pa55 word', ...tls },
      out,
      http: { port: null },
      batch: { flushInterval: '20ms' },
      logLevel: 'error',
    });
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
      await until(
        'written',
        () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean).length : 0),
        (n) => n === 300,
      );
    } finally {
      await agg.stop(2000);
    }
  });

  it('tls:// and ssl:// are taken as mqtts:// with a client certificate (the aggregator refused tls://, and MQTT.js threw on ssl:// with a certificate)', async () => {
    for (const scheme of ['ssl', 'tls']) {
      const agg = new Aggregator({
        mqtt: { url: `${scheme}://127.0.0.1:${broker.port}`, clientId: `agg-${scheme}`, username: 'agg', password: 'pa55 word', ...tls },
        out: join(d, `${scheme}.lp`),
        http: { port: null },
        logLevel: 'error',
      });
      try {
        await agg.start(); // rejects when it cannot connect
      } finally {
        await agg.stop(2000);
      }
    }
  });

  it('without a client certificate: /healthz says the broker wants one and names mqtt.cert, not the CA of the broker certificate', async () => {
    const agg = new Aggregator({
      mqtt: { url: url(), clientId: 'agg-tls-nocert', username: 'agg', password: 'pa55 word', ca: tls.ca },
      out: join(d, 'nocert.lp'),
      http: { port: 0, host: '127.0.0.1' },
      logLevel: 'silent',
    });
    const started = agg.start().catch((e: Error) => e);
    try {
      const problems = await until(
        'the reason on /healthz',
        async () => {
          const r = await fetch(`http://127.0.0.1:${agg.httpPort}/healthz`).catch(() => null);
          return r ? ((await r.json()) as { problems: string[] }).problems.join('\n') : '';
        },
        (p) => p.includes('certificate required'),
      );
      expect(problems).toMatch(/fix: the broker refuses this client's certificate .*mqtt\.cert and mqtt\.key/);
      expect(problems).not.toMatch(/check mqtt\.ca is the CA that signed the broker certificate/);
    } finally {
      await agg.stop(100);
      await started;
    }
  });

  it("fails to start with the broker's reason when the password is wrong", async () => {
    const agg = new Aggregator({
      mqtt: { url: url(), clientId: 'agg-tls-bad', username: 'agg', password: 'wrong', ...tls },
      out: join(d, 'bad.lp'),
      http: { port: null },
      logLevel: 'silent',
    });
    await expect(agg.start()).rejects.toThrow(/refused the connection: Connection refused: (Bad User Name or Password|Not authorized)/);
    await agg.stop(100);
  });

  it('a connection the broker had accepted, then reset on the way: the line says so, not "the port does not answer TLS" (both are read ECONNRESET)', async () => {
    // A TCP relay in front of the TLS broker that resets the aggregator's side once it is subscribed.
    const relay = await new TcpRelay(broker.port).start();
    const port = relay.port;
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const agg = new Aggregator(
      {
        mqtt: { url: `mqtts://127.0.0.1:${port}`, clientId: 'agg-tls-reset', username: 'agg', password: 'pa55 word', ...tls },
        out: join(d, 'reset.lp'),
        http: { port: null },
      },
      { logger },
    );
    try {
      await agg.start();
      relay.reset();
      const line = await until(
        'the reset logged',
        () => lines.find((l) => l.err === 'read ECONNRESET'),
        (l) => l !== undefined,
      );
      expect(line!.fix).toMatch(/^the broker had accepted this connection when it was cut .*it reconnects by itself/);
      expect(String(line!.msg)).not.toMatch(/does not answer TLS/);
    } finally {
      await agg.stop();
      relay.close();
    }
  });
});
