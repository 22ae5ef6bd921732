// Secrets never leave the aggregator: `presence aggregator` as a real process against a real
// Mosquitto that requires a password, given passwords and tokens in URLs, in environment variables
// and in *_FILE files, logging at trace level while its writes to InfluxDB fail (the path that logs
// the sink). Its whole stdout and stderr, /healthz and /metrics must hold none of the secrets, and
// /healthz and /metrics listen on loopback unless told otherwise.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { freePort } from './support/ports.ts';
import { countsItem, until, window } from './aggregator-helpers.ts';
import { resolveConfig, loadConfig, ConfigError } from '../aggregator/config.ts';
import { badUserinfoEscape, holdsUrlCredentials, influxUrlProblem, isParsableUrl, redactTypedUrl, redactUrl, redactUrlsIn } from '../scripts/lib/secrets.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-secrets') && need('mosquitto_passwd', 'mosquitto', 'aggregator-secrets');
const repo = join(import.meta.dirname, '..');

describe('redaction helper', () => {
  it('strips userinfo and secret query values from URLs, also inside free text', () => {
    expect(redactUrl('mqtt://agg:S3cret@broker:1883')).toBe('mqtt://broker:1883');
    expect(redactUrl('http://writer:S3cret@influx:8086/?db=presence&u=writer&p=S3cret')).toBe('http://influx:8086/?db=presence&u=writer&p=REDACTED');
    expect(redactUrl('http://influx:8086?token=S3cret')).not.toContain('S3cret');
    expect(redactUrl('not a url')).toBe('(unparsable url)');
    expect(redactUrlsIn('connect to http://writer:S3cret@influx:8086/write failed')).toBe('connect to http://influx:8086/write failed');
    expect(redactUrlsIn('at http://influx:8086/write and mqtts://b:8883, both down')).toBe('at http://influx:8086/write and mqtts://b:8883, both down');
    // Two URLs with credentials in one text: each loses its own, the words between stay.
    const text = 'connect to http://writer:S3cret@influx:8086/write failed; also mqtts://u:Pw@b:8883';
    expect(redactUrlsIn(text)).toBe('connect to http://influx:8086/write failed; also mqtts://b:8883');
    // A URL no parser reads (a bracket left open), its password with an @ not percent-encoded: all up to
    // its last @ goes, as the @ in /x@y could be the password's as well.
    expect(redactUrlsIn('cannot connect to mqtt://agg:S3c@ret@[::1:1883/x@y')).toBe('cannot connect to mqtt://y');
  });

  // A password with a / (no parser reads the URL, or one reads host `user` and port 12), an @, a ? or a #,
  // not percent-encoded: the text between // and the last @ goes, in free text and in a URL alone.
  const typos: [url: string, password: string, redacted: string][] = [
    ['mqtt://user:pa/ss@host:1883', 'pa/ss', 'mqtt://host:1883'],
    ['mqtts://u:p@ss@host', 'p@ss', 'mqtts://host'],
    ['mqtt://user:12/ss@host:1883', '12/ss', 'mqtt://host:1883'],
    ['mqtt://user:/ss@host', ':/ss', 'mqtt://host'],
    ['mqtt://user:p@ss/x@host', 'ss/x', 'mqtt://host'],
    ['http://writer:pa/ss@influx:8086', 'pa/ss', 'http://influx:8086'],
    ['mqtt://user:pa?ss@host', 'pa?ss', 'mqtt://host'],
    ['mqtt://user:pa#ss@host', 'pa#ss', 'mqtt://host'],
  ];
  it.each(typos)('takes the password out of %s wherever it is echoed', (url, password, redacted) => {
    for (const text of [`cannot connect to ${url}: refused`, `got "${url}"`, `(${url})`, `broker=${url}`]) {
      const out = redactUrlsIn(text);
      expect(out, text).not.toContain(password);
      expect(out, text).toContain(redacted);
    }
    expect(redactTypedUrl(url)).toBe(redacted);
    expect(redactUrl(url)).not.toContain(password);
    expect(holdsUrlCredentials(url)).toBe(true);
    expect(holdsUrlCredentials(`MQTT_URL=${url}`)).toBe(true);
  });

  // A password holding a space or a quote, as parsers read it and mqtt.js takes it, echoed inside a free
  // text: the URL runs on past the cut to the @ that ends its user information.
  it.each([
    ['mqtt://u:Sp1pwX Q2pwX@broker:1883', 'mqtt://broker:1883'],
    ['mqtt://u:Sp1pwX"Q2pwX@broker:1883', 'mqtt://broker:1883'],
    ["mqtts://u:Sp1pwX'Q2pwX@broker", 'mqtts://broker'],
    ['ws://u:Sp1pwX<Q2pwX>Q3pwX@broker:9001/mqtt', 'ws://broker:9001/mqtt'],
    ['http://u:Sp1pwX Q2pwX@Q3pwX Q4pwX@influx:8086/write', 'http://influx:8086/write'],
    ['mqtt://u S1pwX:Q2pwX@broker', 'mqtt://broker'],
  ])('takes all of the user information of %s out of a free text', (url, redacted) => {
    for (const text of [`cannot connect to ${url}: refused`, `got "${url}"`, JSON.stringify({ url }), `broker=${url}\nnext line`]) {
      const out = redactUrlsIn(text);
      for (const part of ['Sp1pwX', 'Q2pwX', 'Q3pwX', 'Q4pwX', 'S1pwX']) expect(out, text).not.toContain(part);
      expect(out, text).toContain(redacted);
      expect(holdsUrlCredentials(text)).toBe(true);
    }
    expect(redactUrl(url)).toBe(redacted);
  });

  it('a config value that is not text echoes no part of a password with a space and a quote in a URL in it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-url-spaced-'));
    let err: unknown;
    try {
      writeFileSync(join(dir, 'agg.yaml'), 'mqtt:\n  url: ["mqtts://agg:Sp1pwX Q2pwX\\"Q3pwX@broker:8883"]\n', { mode: 0o600 });
      loadConfig({ config: join(dir, 'agg.yaml') }, {});
    } catch (e) {
      err = e;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect((err as Error).message).toContain('mqtt.url: must be text (got ["mqtts://broker:8883"])');
    for (const part of ['Sp1pwX', 'Q2pwX', 'Q3pwX']) expect((err as Error).message).not.toContain(part);
  });

  // The product refuses a URL with an @ after its host (http://host:8086/a@b cannot be told from the
  // password 8086/a of user host): in every URL it takes, the user information is all before the last @,
  // and a credential-free URL is left whole, by itself or in a text.
  it('refuses a URL with an @ after its host, and leaves the %40 form of one whole', () => {
    for (const url of ['http://host:8086/a@b', 'mqtt://user:12/ss@host', 'http://influx:8086/?u=a@b', 'https://example.org/@presence/feed'])
      expect(isParsableUrl(url), url).toBe(false);
    for (const url of ['http://host:8086/a%40b', 'http://influx:8086/?u=a%40b&p=x', 'mqtt://u:p%40ss%2Fx@host:1883', 'mqtt://u:p@ss@host'])
      expect(isParsableUrl(url), url).toBe(true);
    expect(redactUrl('http://host:8086/a%40b')).toBe('http://host:8086/a%40b');
    expect(redactUrlsIn('write to http://host:8086/a%40b failed')).toBe('write to http://host:8086/a%40b failed');
    expect(redactUrl('mqtt://u:p%40ss%2Fx@host:1883')).toBe('mqtt://host:1883');
    expect(influxUrlProblem('http://w:pw@host:8086/a@b')).toMatch(/^--influx-url "http:\/\/b" holds an @ after its host .* %40/);
  });

  // Node reads mqtt://u:p%Zz@host, but its password cannot be decoded: mqtt.js and the InfluxDB clients
  // threw "URI malformed" at the start (the aggregator with an influx.url so written: a stack trace).
  it('refuses a URL whose user name or password holds a % that starts no escape, and takes %25 and UTF-8 escapes', () => {
    for (const url of ['mqtt://u:p%Zz@host:1883', 'http://u%@host:8086', 'http://u:%FF@host:8086', 'mqtt://u:100%@host'])
      expect([isParsableUrl(url), badUserinfoEscape(url)], url).toEqual([false, true]);
    for (const url of ['mqtt://u:p%25Zz@host:1883', 'http://u:%C3%A9t%C3%A9@host:8086', 'http://host:8086/a%Zz', 'mqtt://host'])
      expect([isParsableUrl(url), badUserinfoEscape(url)], url).toEqual([true, false]);
    expect(influxUrlProblem('http://w:Esc%Zzpw@host:8086')).toBe(
      '--influx-url "http://host:8086" holds a % in its user name or password that starts no %XX escape (or escapes that are no UTF-8), so they cannot be read; fix: write a % there as %25, or give the user name and password apart from the URL',
    );
  });

  it('leaves a URL without user information as it is', () => {
    for (const url of [
      'mqtt://broker:1883',
      'https://example.org/@presence/feed',
      'http://influx/x@y',
      'mqtt://[::1]:1883',
      'http://influx:8086/write?db=presence',
    ]) {
      expect(redactUrlsIn(`at ${url} now`)).toBe(`at ${redactUrl(url)} now`);
      expect(redactTypedUrl(url)).toBe(url);
      expect(holdsUrlCredentials(url)).toBe(false);
    }
  });

  // As real processes: a URL no parser reads is refused naming the setting, and so is one a parser reads
  // wrongly (host `agg`, port 12, an @ in its path), which cannot be told from http://host:8086/a@b.
  // A password holding a space and quotes is taken, and neither the start log line (which names the broker
  // and InfluxDB) nor the connection errors after it hold any part of it.
  const spaced = `Sp1pwX Q2pwX"Q3pwX'Q4pwX`;
  it.each([
    ['aggregator', ['--mqtt-url', 'mqtt://agg:pa/Pw-in-url@127.0.0.1:1'], /--mqtt-url \(mqtt\.url\): must be a URL/],
    ['aggregator', ['--mqtt-url', 'mqtt://agg:12/Pw-in-url@127.0.0.1:1'], /--mqtt-url \(mqtt\.url\): holds an @ after its host/],
    ['gateway', ['--mqtt-url', 'mqtt://gw:pa/Pw-in-url@127.0.0.1:1'], /--mqtt-url \(mqtt\.url\): must be a URL/],
    ['gateway', ['--mqtt-url', 'mqtt://gw:12/Pw-in-url@127.0.0.1:1'], /--mqtt-url \(mqtt\.url\): holds an @ after its host/],
    [
      'gateway',
      ['--mqtt-url', 'mqtt://gw:Pw-in-url%Zz@127.0.0.1:1'],
      /--mqtt-url \(mqtt\.url\): holds a % in its user name or password that starts no %XX escape/,
    ],
    [
      'aggregator',
      ['--mqtt-url', 'mqtt://agg:Pw-in-url%Zz@127.0.0.1:1'],
      /--mqtt-url \(mqtt\.url\): holds a % in its user name or password that starts no %XX escape/,
    ],
    [
      'aggregator',
      ['--mqtt-url', 'mqtt://127.0.0.1:1', '--influx-url', 'http://writer:Pw-in-url%Zz@127.0.0.1:3', '--influx-api', 'v1', '--influx-db', 'presence'],
      /--influx-url \(influx\.url\): holds a % in its user name or password that starts no %XX escape/,
    ],
    ['aggregator', ['--mqtt-url', `mqtt://agg:${spaced}@127.0.0.1:1`], /"broker":"mqtt:\/\/127\.0\.0\.1:1".*starting/],
    [
      'aggregator',
      [
        '--mqtt-url',
        `mqtts://agg:${spaced}@127.0.0.1:1`,
        '--influx-url',
        `http://writer:${spaced}@127.0.0.1:3`,
        '--influx-api',
        'v1',
        '--influx-db',
        'presence',
      ],
      /"influx":"http:\/\/127\.0\.0\.1:3".*does not answer \/ping/,
    ],
    ['gateway', ['--mqtt-url', `mqtt://gw:${spaced}@127.0.0.1:1`], /"broker":"mqtt:\/\/127\.0\.0\.1:1"/],
    ['gateway', ['--mqtt-url', `ws://gw:${spaced}@127.0.0.1:1/mqtt`], /"broker":"ws:\/\/127\.0\.0\.1:1\/mqtt"/],
  ])('presence %s %j: no output line holds the password', (command, flags, expected) => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-url-typo-'));
    try {
      writeFileSync(
        join(dir, 'gw.yaml'),
        `gateway: {site: s, zone: z, id: gw-1, window: 1s}\nqueue: {dir: ${JSON.stringify(join(dir, 'q'))}}\nhttp: {port: 0}\n` +
          'sources:\n  - {type: command, name: wifi, radio: wifi, command: "sleep 10"}\n',
      );
      const args =
        command === 'gateway'
          ? ['--config', join(dir, 'gw.yaml')]
          : ['--http-port', '0', ...(flags.includes('--influx-url') ? [] : ['--out', join(dir, 'out.lp')])];
      const r = spawnSync(process.execPath, [join(repo, 'scripts/presence.js'), command, ...args, ...flags], {
        cwd: dir,
        env: { ...process.env, PRESENCE_AGGREGATOR_CONFIG: '', PRESENCE_GATEWAY_CONFIG: '' },
        timeout: 5000,
        killSignal: 'SIGTERM',
        encoding: 'utf8',
      });
      const out = r.stdout + r.stderr;
      expect(out).toMatch(expected);
      for (const part of ['Pw-in-url', 'Sp1pwX', 'Q2pwX', 'Q3pwX', 'Q4pwX']) expect(out).not.toContain(part);
      expect(out).not.toMatch(/:\/\/[^/\s"]*@/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a config error never echoes the credentials of a URL', () => {
    let err: unknown;
    try {
      loadConfig({}, { INFLUX_URL: 'ftp://writer:S3cretInError@influx:8086' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/INFLUX_URL \(influx\.url\): must be a URL/);
    expect((err as Error).message).not.toContain('S3cretInError');
  });

  it('presence calibrate reads InfluxDB secrets from files too (INFLUX_PASSWORD_FILE, INFLUX_TOKEN_FILE)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-secret-files-'));
    writeFileSync(join(dir, 'truth.csv'), 'time;people\n2025-06-01T12:00:00Z;140\n');
    for (const name of ['INFLUX_PASSWORD_FILE', 'INFLUX_TOKEN_FILE']) {
      const r = spawnSync(
        process.execPath,
        [
          join(repo, 'scripts/presence.js'),
          'calibrate',
          '--influx-url',
          'http://127.0.0.1:9',
          '--influx-db',
          'presence',
          '--site',
          's',
          '--zone',
          'z',
          '--truth',
          join(dir, 'truth.csv'),
          '--out',
          join(dir, 'c.yaml'),
        ],
        { encoding: 'utf8', env: { ...process.env, INFLUX_PASSWORD: '', INFLUX_TOKEN: '', [name]: join(dir, 'no-such-secret') } },
      );
      expect(r.status).toBe(2);
      // named as given: the variable, not a flag that was not used
      expect(r.stderr).toMatch(new RegExp(`^presence calibrate: ${name}: cannot read .*no-such-secret \\(ENOENT\\)$`, 'm'));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('/healthz and /metrics listen on 127.0.0.1 by default', () => {
    expect(resolveConfig({}).http.host).toBe('127.0.0.1');
  });
});

describe.skipIf(!ok)('presence aggregator with secrets (real process, real Mosquitto with passwords)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-secrets-'));
  const S = {
    mqttUrl: 'mqttUrlS3cret-4f1e',
    mqttEnv: 'mqttEnvS3cret-77aa',
    influxUrl: 'influxUrlS3cret-0b2c',
    influxFile: 'influxFileS3cret-9d3e',
    influxTokenEnv: 'influxTokenS3cret-51f0',
    influxTokenFile: 'influxTokenFileS3cret-c2d4',
    gateway: 'gwPassS3cret-88e1',
  };
  const passwd = join(dir, 'passwd');
  const broker = new Mosquitto({
    listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\n`,
  });
  const procs: ChildProcess[] = [];
  let closedPort = 0;

  beforeAll(async () => {
    writeFileSync(passwd, '');
    for (const [user, pw] of [
      ['agg-url', S.mqttUrl],
      ['agg-env', S.mqttEnv],
      ['site-s/gw-s', S.gateway],
    ])
      execFileSync('mosquitto_passwd', ['-b', passwd, user, pw]);
    writeFileSync(join(dir, 'influx-password'), `${S.influxFile}\n`);
    writeFileSync(join(dir, 'influx-token'), `${S.influxTokenFile}\n`);
    await broker.start();
    closedPort = await freePort(); // nothing listens there: every write fails and is logged
  });
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const setups: Array<[string, string[], NodeJS.ProcessEnv]> = [
    [
      'MQTT password in the URL; InfluxDB 1.x user:password in the URL and a password file; a token in the environment',
      [],
      {
        MQTT_URL: '', // set below (needs the broker port)
        INFLUX_URL: `http://writer:${S.influxUrl}@127.0.0.1:PORT`,
        INFLUX_API: 'v1',
        INFLUX_DB: 'presence',
        INFLUX_USERNAME: 'writer',
        INFLUX_PASSWORD_FILE: join(dir, 'influx-password'),
        INFLUX_TOKEN: S.influxTokenEnv,
      },
    ],
    [
      'MQTT password in the environment; InfluxDB v2 token from a file, user:password in the URL',
      ['--mqtt-username', 'agg-env'],
      {
        MQTT_PASSWORD: S.mqttEnv,
        INFLUX_URL: `http://writer:${S.influxUrl}@127.0.0.1:PORT`,
        INFLUX_TOKEN_FILE: join(dir, 'influx-token'),
        INFLUX_ORG: 'city',
        INFLUX_BUCKET: 'presence',
      },
    ],
  ];

  it.each(setups)(
    'no secret in any log line, /healthz or /metrics: %s',
    async (_name, args, env) => {
      const mqttUrl = env.MQTT_PASSWORD ? broker.url : `mqtt://agg-url:${S.mqttUrl}@127.0.0.1:${broker.port}`;
      const p = spawn(
        process.execPath,
        [
          join(repo, 'scripts/presence.js'),
          'aggregator',
          '--mqtt-client-id',
          `secrets-${procs.length}`,
          '--http-port',
          '0',
          '--log-level',
          'trace',
          '--flush-interval',
          '20ms',
          ...args,
        ],
        {
          cwd: repo,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, ...env, MQTT_URL: mqttUrl, INFLUX_URL: env.INFLUX_URL!.replace('PORT', String(closedPort)), PRESENCE_AGGREGATOR_CONFIG: '' },
        },
      );
      procs.push(p);
      let out = '';
      p.stdout!.on('data', (d) => (out += d));
      p.stderr!.on('data', (d) => (out += d));
      const exited = new Promise((r) => p.once('exit', r));

      await until(
        'subscribed (the credentials work)',
        () => out,
        (o) => o.includes('"msg":"subscribed"') || p.exitCode !== null,
        30_000,
      );
      expect(out).toContain('"msg":"subscribed"');
      const starting = JSON.parse(out.split('\n').find((l) => l.includes('aggregator starting'))!);
      const [host, port] = String(starting.http).split(/:(?=\d+$)/);
      expect(host).toBe('127.0.0.1');

      // One valid window from a gateway with its own credential; its write fails and is retried (logged).
      const gw = await mqtt.connectAsync(broker.url, { username: 'site-s/gw-s', password: S.gateway, protocolVersion: 5 });
      const m = window('site-s', 'gw-s', 1, Date.now() - 120_000, 60_000);
      await gw.publishAsync(countsItem(m).topic, countsItem(m).payload, { qos: 1 });
      await gw.endAsync();
      await until(
        'a failed write logged',
        () => out,
        (o) => o.includes('write failed; retrying'),
      );

      const health = await until(
        'healthz 503 while writes fail',
        async () => {
          const r = await fetch(`http://127.0.0.1:${port}/healthz`);
          return { status: r.status, body: await r.text() };
        },
        (h) => h.status === 503 && h.body.includes('writes to'),
      );
      const sink = JSON.parse(health.body).sink as string;
      expect(sink).toContain(`127.0.0.1:${closedPort}`);
      expect(sink).not.toContain('@');
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toContain('presence_aggregator_write_failures_total');

      // Not reachable on another interface of this machine (when it has one).
      const other = Object.values(networkInterfaces())
        .flat()
        .find((a) => a && a.family === 'IPv4' && !a.internal);
      if (other) {
        const refused = await new Promise<boolean>((resolve) => {
          const s = connect(Number(port), other.address);
          s.once('connect', () => {
            s.destroy();
            resolve(false);
          });
          s.once('error', () => resolve(true));
        });
        expect(refused).toBe(true);
      }

      p.kill('SIGTERM');
      await exited;
      const everything = [out, health.body, metrics].join('\n');
      expect(out).toContain('aggregator stopped');
      for (const [name, secret] of Object.entries(S)) expect(everything.includes(secret), `secret ${name} found`).toBe(false);
      expect(everything).not.toMatch(/:\/\/[^/\s"]*@/); // no URL with userinfo at all
    },
    60_000,
  );
});
