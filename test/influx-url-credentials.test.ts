// An InfluxDB URL with credentials (http://user:password@host:8086) against a real influxd 1.6.7 with
// auth enabled: the aggregator (influx.create) creates its database and stores windows, `presence influx
// setup` sets up a database, and a wrong password in the URL is refused with an error that does not
// show the password. The credentials are taken out of the URL in one place (influxCredentials).
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { resolveConfig } from '../aggregator/config.ts';
import { buildProgram } from '../scripts/cli.ts';
import { influxCredentials } from '../scripts/lib/secrets.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';

const SECRET = 'S3cr%t-pw';
const ok = need('mosquitto', 'mosquitto', 'influx-url-credentials') && need('influxd', 'influxdb', 'influx-url-credentials');

describe('influxCredentials', () => {
  it('takes user and password out of the URL; separate settings win; v2 makes them the token', () => {
    expect(influxCredentials({ url: `http://writer:${encodeURIComponent(SECRET)}@db:8086` })).toEqual({
      url: 'http://db:8086',
      username: 'writer',
      password: SECRET,
    });
    expect(influxCredentials({ url: 'http://a:b@db:8086/', username: 'u', password: 'p' })).toEqual({ url: 'http://db:8086/', username: 'u', password: 'p' });
    expect(influxCredentials({ url: 'http://a:b@db:8086' }, 'v2')).toEqual({ url: 'http://db:8086', token: 'a:b' });
    expect(influxCredentials({ url: 'https://:tok@db:8086' }, 'v2')).toEqual({ url: 'https://db:8086', token: 'tok' });
    expect(influxCredentials({ url: 'http://db:8086' })).toEqual({ url: 'http://db:8086' });
  });

  it('is applied by the aggregator configuration', () => {
    const cfg = resolveConfig({ influx: { url: 'http://writer:pw@db:8086', api: 'v1', database: 'presence' } });
    expect(cfg.influx).toMatchObject({ url: 'http://db:8086', username: 'writer', password: 'pw' });
  });
});

describe.skipIf(!ok)('InfluxDB URL with credentials, influxd with auth enabled', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence', { username: 'writer', password: SECRET });
  const withCreds = (pw = SECRET) => influx.url.replace('//', `//writer:${encodeURIComponent(pw)}@`);
  let agg: Aggregator | undefined;
  let pub: MqttClient | undefined;

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
  });
  afterAll(async () => {
    await pub?.endAsync().catch(() => {});
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it('the aggregator with influx.create creates the missing database and stores the windows', async () => {
    agg = new Aggregator({
      mqtt: { url: broker.url, clientId: 'agg-influx-creds' },
      influx: { url: withCreds(), api: 'v1', database: 'fresh', create: true },
      batch: { size: 50, flushInterval: '50ms', maxBuffer: 1000, maxRetryDelay: '500ms' },
      http: { port: 0, host: '127.0.0.1' },
      logLevel: 'error',
    });
    await agg.start();
    pub = await publisher(broker.url);
    await publishAll(pub, windows('site-c', 2, 10).map(countsItem));
    const count = async () => {
      const rows = await influx.query('SHOW DATABASES');
      if (!JSON.stringify(rows).includes('"fresh"')) return 0;
      const body = await fetch(`${influx.url}/query?${new URLSearchParams({ q: 'SELECT count("devices") FROM "presence"', db: 'fresh' })}`, {
        headers: { authorization: `Basic ${Buffer.from(`writer:${SECRET}`).toString('base64')}` },
      }).then((r) => r.json() as Promise<any>);
      return Number(body.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? 0);
    };
    await until('20 windows x 2 radios in database fresh', count, (n) => n === 40);
  });

  it('presence influx setup takes the credentials from the URL; a wrong password is refused without showing it', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
    const exit = vi.spyOn(process, 'exit').mockImplementation(((code: number) => {
      throw new Error(`exit ${code}`);
    }) as never);
    try {
      let argv = ['node', 'presence', 'influx', 'setup', '--influx-url', withCreds(), '--influx-db', 'from_url'];
      await (await buildProgram(argv)).parseAsync(argv);
      expect(out.join('')).toContain(`database from_url at ${influx.url}`);
      argv = ['node', 'presence', 'influx', 'setup', '--influx-url', withCreds('wrong-Pa55'), '--influx-db', 'other'];
      await expect((await buildProgram(argv)).parseAsync(argv)).rejects.toThrow('exit 2');
    } finally {
      o.mockRestore();
      e.mockRestore();
      exit.mockRestore();
    }
    expect(err.join('')).toMatch(/authoriz|auth|401/i);
    for (const text of [out.join(''), err.join('')]) {
      expect(text).not.toContain('wrong-Pa55');
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(encodeURIComponent(SECRET));
    }
    expect(JSON.stringify(await influx.query('SHOW RETENTION POLICIES ON "from_url"'))).toContain('"detail"');
  });
});
