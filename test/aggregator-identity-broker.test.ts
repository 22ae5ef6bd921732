// Identities end to end: `presence provision gateway` creates the credentials, ACL and registry;
// a real Mosquitto runs with the shipped recipe (docs/mosquitto/presence.acl, verbatim) and that
// password file; the aggregator runs with the provisioned config file. A gateway cannot publish as
// another gateway or for another site (the broker refuses), nor for another zone or without a
// registry entry (the aggregator rejects), nor anonymously or with a wrong password (no connection).
// The certificate variant (CN = "{site}/{gateway}", use_identity_as_username) with the same ACL too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import mqtt, { type MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { loadConfig } from '../aggregator/config.ts';
import { mosquittoPasswordEntry, provisionGateway, ProvisionError, verifyPasswordEntry } from '../aggregator/provision.ts';
import { aliveTopic, countsTopic, encode, sketchTopic, statusTopic } from '../contract/index.ts';
import { instanceId } from '../aggregator/flows/ownership.ts';
import { status, until, window } from './aggregator-helpers.ts';
import { makeCertificates } from './support/tls.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator identity (broker)') && need('mosquitto_passwd', 'mosquitto', 'aggregator identity (broker)');
const repo = join(import.meta.dirname, '..');
const ACL = join(repo, 'docs/mosquitto/presence.acl');

describe('password file entries', () => {
  it('are what mosquitto_passwd writes: PBKDF2-SHA512, "$7$101$salt$hash"', () => {
    const salt = Buffer.from('0123456789ab');
    const entry = mosquittoPasswordEntry('dam/gw-1', 'pw', salt);
    expect(entry).toMatch(/^dam\/gw-1:\$7\$101\$MDEyMzQ1Njc4OWFi\$[A-Za-z0-9+/]{86}==$/);
    expect(verifyPasswordEntry(entry, 'pw')).toBe(true);
    expect(verifyPasswordEntry(entry, 'other')).toBe(false);
  });

  it.skipIf(!ok)('an entry written by mosquitto_passwd verifies with the same rule', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-passwd-'));
    execFileSync('mosquitto_passwd', ['-b', '-c', join(dir, 'p'), 'dam/gw-9', 'S3cret!']);
    const line = readFileSync(join(dir, 'p'), 'utf8').trim();
    expect(verifyPasswordEntry(line, 'S3cret!')).toBe(true);
    expect(verifyPasswordEntry(line, 'S3cret')).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe.skipIf(!ok)('provisioned gateways against a real Mosquitto with the shipped ACL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-identity-broker-'));
  const passwd = join(dir, 'passwd');
  const aggConfig = join(dir, 'aggregator.yaml');
  const out = join(dir, 'presence.lp');
  const broker = new Mosquitto({
    listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${ACL}\n`,
  });
  let agg: Aggregator;
  const clients: MqttClient[] = [];
  const rejected: string[] = [];
  const pw = (file: string) => readFileSync(file, 'utf8').trim();
  let cliStdout = '';

  beforeAll(async () => {
    // The aggregator's own user (made with the real tool, beside the provisioned entries).
    execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'aggregator', 'agg-pw']);
    writeFileSync(join(dir, 'agg-password'), 'agg-pw\n');
    writeFileSync(
      aggConfig,
      `# the aggregator of the test\naggregator:\n  mqtt:\n    username: aggregator\n    password_file: agg-password\n    client_id: identity-broker\n  out: ${out}\n  http: { port: null }\n  batch: { flush_interval: 10ms }\n`,
    );
    // One gateway through the command itself (the compiled CLI), the others through the function.
    const cli = spawnSync(
      process.execPath,
      [
        join(repo, 'scripts/presence.js'),
        'provision',
        'gateway',
        '--site',
        'dam',
        '--zone',
        'plein',
        '--id',
        'gw-plein-1',
        '--password-file',
        passwd,
        '--aggregator-config',
        aggConfig,
        '--secret-out',
        join(dir, 'gw-plein-1.pw'),
      ],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(cli.status, cli.stderr).toBe(0);
    cliStdout = cli.stdout + cli.stderr;
    provisionGateway({
      site: 'dam',
      zone: 'noord',
      id: 'gw-noord-1',
      passwordFile: passwd,
      aggregatorConfig: aggConfig,
      secretOut: join(dir, 'gw-noord-1.pw'),
    });
    provisionGateway({ site: 'west', zone: 'kade', id: 'gw-west-1', passwordFile: passwd, aggregatorConfig: aggConfig, secretOut: join(dir, 'gw-west-1.pw') });
    // A credential the broker knows, but no registry entry.
    provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-rogue', passwordFile: passwd, secretOut: join(dir, 'gw-rogue.pw') });
    await broker.start();
    agg = new Aggregator(loadConfig({ config: aggConfig, mqttUrl: broker.url }, {}), { logger: pino({ level: 'silent' }) });
    agg.on('rejected', (reason: string) => rejected.push(reason));
    await agg.start();
  });
  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    await agg?.stop(2000).catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  async function gateway(user: string, password: string | undefined): Promise<MqttClient> {
    const c = await mqtt.connectAsync(broker.url, {
      username: user,
      password,
      protocolVersion: 5,
      reconnectPeriod: 0,
      clientId: `t-${user.replace('/', '-')}-${clients.length}`,
    });
    clients.push(c);
    return c;
  }
  const lines = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []);
  let seq = 100;
  const t0 = Date.now() - 7_200_000;
  const counts = (site: string, gw: string, zone: string) => window(site, gw, ++seq, t0 + seq * 60_000, 60_000, zone);
  /** Publishes one legitimate window of gw-plein-1 and waits until it is stored: everything published before it was handled. */
  async function marker(): Promise<void> {
    const c = await gateway('dam/gw-plein-1', pw(join(dir, 'gw-plein-1.pw')));
    const m = counts('dam', 'gw-plein-1', 'plein');
    await c.publishAsync(countsTopic('dam', 'gw-plein-1'), encode(m), { qos: 1 });
    await until('the marker stored', lines, (l) => l.some((x) => x.includes('gateway=gw-plein-1') && x.endsWith(` ${Date.parse(m.start)}`)));
  }

  it('provisioning writes the files and never prints the password', () => {
    for (const f of ['gw-plein-1.pw', 'gw-noord-1.pw', 'gw-west-1.pw']) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    const secret = pw(join(dir, 'gw-plein-1.pw'));
    expect(secret.length).toBeGreaterThanOrEqual(32);
    expect(cliStdout).not.toContain(secret);
    expect(cliStdout).toContain('username: dam/gw-plein-1');
    const yaml = readFileSync(aggConfig, 'utf8');
    expect(yaml).toContain('# the aggregator of the test'); // comments kept
    expect(yaml).toContain('gw-plein-1: { site: dam, zone: plein, credential: dam/gw-plein-1 }');
    expect(readFileSync(passwd, 'utf8')).not.toContain(secret);
    expect(agg.config.gateways.allow_unknown).toBe(false);
    expect(Object.keys(agg.config.gateways.registry).sort()).toEqual(['gw-noord-1', 'gw-plein-1', 'gw-west-1']);
  });

  it('refuses to register a gateway id again for another site, or a second credential, without --rotate', () => {
    expect(() => provisionGateway({ site: 'west', zone: 'kade', id: 'gw-plein-1', aggregatorConfig: aggConfig })).toThrow(ProvisionError);
    expect(() => provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plein-1', passwordFile: passwd, secretOut: join(dir, 'x.pw') })).toThrow(
      /has a credential already/,
    );
    expect(() => provisionGateway({ site: 'Dam', zone: 'plein', id: 'gw-1', passwordFile: passwd })).toThrow(/--site: must be lower case/);
    expect(existsSync(join(dir, 'x.pw'))).toBe(false);
  });

  it('refuses a file whose folder does not exist (a mistyped path) and changes nothing', () => {
    const typo = join(dir, 'mosquito');
    const before = readFileSync(aggConfig, 'utf8');
    const cases = [
      { passwordFile: join(typo, 'passwd'), flag: '--password-file' },
      { passwordFile: passwd, aclFile: join(typo, 'presence.acl'), flag: '--acl-file' },
      { aggregatorConfig: join(typo, 'aggregator.yaml'), flag: '--aggregator-config' },
      { passwordFile: passwd, aggregatorConfig: aggConfig, secretOut: join(typo, 'gw.pw'), flag: '--secret-out' },
    ];
    for (const { flag, ...files } of cases)
      expect(() => provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-typo', secretOut: join(dir, 'gw-typo.pw'), ...files })).toThrow(
        new RegExp(`^${flag} .*mosquito/[a-z.]+: the folder .*mosquito does not exist; check the path`),
      );
    expect(existsSync(typo)).toBe(false);
    expect(existsSync(join(dir, 'gw-typo.pw'))).toBe(false);
    expect(readFileSync(passwd, 'utf8')).not.toMatch(/gw-typo/);
    expect(readFileSync(aggConfig, 'utf8')).toBe(before);
  });

  it('a gateway publishes its own counts and status', async () => {
    const c = await gateway('dam/gw-noord-1', pw(join(dir, 'gw-noord-1.pw')));
    await c.publishAsync(countsTopic('dam', 'gw-noord-1'), encode(counts('dam', 'gw-noord-1', 'noord')), { qos: 1 });
    await c.publishAsync(statusTopic('dam', 'gw-noord-1'), encode({ ...status('dam', 'gw-noord-1'), zone: 'noord' }), { qos: 1, retain: true });
    await until(
      'stored',
      lines,
      (l) => l.some((x) => x.startsWith('presence,gateway=gw-noord-1')) && l.some((x) => x.startsWith('gateway_status,gateway=gw-noord-1')),
    );
  });

  it('cannot publish as another gateway of its site, nor for another site: the broker refuses (not authorised)', async () => {
    const c = await gateway('dam/gw-plein-1', pw(join(dir, 'gw-plein-1.pw')));
    const before = lines().length;
    // As gw-noord-1 (same site), as gw-west-1 (another site), and as itself under another site.
    for (const [site, gw, zone] of [
      ['dam', 'gw-noord-1', 'noord'],
      ['west', 'gw-west-1', 'kade'],
      ['west', 'gw-plein-1', 'plein'],
    ]) {
      await expect(c.publishAsync(countsTopic(site, gw), encode(counts(site, gw, zone)), { qos: 1 })).rejects.toThrow(/not authori[sz]ed/i);
      await expect(c.publishAsync(statusTopic(site, gw), encode(status(site, gw)), { qos: 1 })).rejects.toThrow(/not authori[sz]ed/i);
    }
    await marker();
    const added = lines().slice(before);
    expect(added.every((l) => l.includes('gateway=gw-plein-1') && l.includes('site=dam'))).toBe(true);
  });

  it('the aggregator may publish its alive message (corridor ownership), a gateway may not', async () => {
    const topic = aliveTopic(instanceId('identity-broker'));
    const a = await gateway('aggregator', 'agg-pw');
    await a.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true });
    const g = await gateway('dam/gw-plein-1', pw(join(dir, 'gw-plein-1.pw')));
    await expect(g.publishAsync(topic, '{"v":1}', { qos: 1, retain: true })).rejects.toThrow(/not authori[sz]ed/i);
  });

  it('its own topic with another zone, or a credential without a registry entry: the aggregator rejects and counts them', async () => {
    const c = await gateway('dam/gw-plein-1', pw(join(dir, 'gw-plein-1.pw')));
    const n = rejected.length;
    await c.publishAsync(countsTopic('dam', 'gw-plein-1'), encode(counts('dam', 'gw-plein-1', 'noord')), { qos: 1 });
    const rogue = await gateway('dam/gw-rogue', pw(join(dir, 'gw-rogue.pw')));
    await rogue.publishAsync(countsTopic('dam', 'gw-rogue'), encode(counts('dam', 'gw-rogue', 'plein')), { qos: 1 });
    await marker();
    await until(
      'both rejected',
      () => rejected.slice(n),
      (r) => r.length >= 2,
    );
    expect(rejected.slice(n).sort()).toEqual(['identity_mismatch', 'unknown_gateway']);
    expect(lines().some((l) => l.includes('zone=noord') && l.includes('gateway=gw-plein-1'))).toBe(false);
    expect(lines().some((l) => l.includes('gateway=gw-rogue'))).toBe(false);
    const metric = await agg.metrics.registry.getSingleMetricAsString('presence_aggregator_rejected_total');
    expect(metric).toMatch(/reason="identity_mismatch"} [1-9]/);
    expect(metric).toMatch(/reason="unknown_gateway"} [1-9]/);
  });

  it('a gateway publishes corridor sketches on its own sketch topic only', async () => {
    const c = await gateway('dam/gw-plein-1', pw(join(dir, 'gw-plein-1.pw')));
    const sketch = (site: string, gw: string) =>
      encode({
        v: 1,
        site,
        gateway: gw,
        group: 'dam-route',
        epoch: Math.floor((t0 - 3_600_000) / 3_600_000),
        epoch_s: 3600,
        window_start: new Date(Math.floor((t0 - 3_600_000) / 3_600_000) * 3_600_000).toISOString(),
        window_end: new Date(Math.floor((t0 - 3_600_000) / 3_600_000) * 3_600_000 + 60_000).toISOString(),
        m: 1024,
        p: 0.5,
        bits: Buffer.alloc(128).toString('base64'),
      });
    await c.publishAsync(sketchTopic('dam', 'gw-plein-1'), sketch('dam', 'gw-plein-1'), { qos: 1 });
    for (const [site, gw] of [
      ['dam', 'gw-noord-1'],
      ['west', 'gw-west-1'],
      ['west', 'gw-plein-1'],
    ])
      await expect(c.publishAsync(sketchTopic(site, gw), sketch(site, gw), { qos: 1 })).rejects.toThrow(/not authori[sz]ed/i);
  });

  it("a gateway's credential reads nothing of the others: no counts, status or sketch of another gateway or site, only its own status", async () => {
    // A stolen gateway's credential must not be a way to collect the other gateways' sketches
    // (with the group secret from the same gateway, their bits could be tested) or counts.
    const reader = await gateway('dam/gw-noord-1', pw(join(dir, 'gw-noord-1.pw')));
    const got: string[] = [];
    let ownLive = 0;
    reader.on('message', (topic, _payload, packet) => {
      got.push(topic);
      if (topic === statusTopic('dam', 'gw-noord-1') && !packet.retain) ownLive++;
    });
    await reader.subscribeAsync(['#', 'presence/v1/#', 'presence/v1/dam/+/sketch', '$SYS/#'], { qos: 1 });
    const plein = await gateway('dam/gw-plein-1', pw(join(dir, 'gw-plein-1.pw')));
    const west = await gateway('west/gw-west-1', pw(join(dir, 'gw-west-1.pw')));
    const sketch = encode({
      v: 1,
      site: 'dam',
      gateway: 'gw-plein-1',
      group: 'dam-route',
      epoch: Math.floor(t0 / 3_600_000),
      epoch_s: 3600,
      window_start: new Date(Math.floor(t0 / 3_600_000) * 3_600_000).toISOString(),
      window_end: new Date(Math.floor(t0 / 3_600_000) * 3_600_000 + 60_000).toISOString(),
      m: 1024,
      p: 0.5,
      bits: Buffer.alloc(128, 0x5a).toString('base64'),
    });
    await plein.publishAsync(sketchTopic('dam', 'gw-plein-1'), sketch, { qos: 1 });
    await plein.publishAsync(countsTopic('dam', 'gw-plein-1'), encode(counts('dam', 'gw-plein-1', 'plein')), { qos: 1 });
    await plein.publishAsync(statusTopic('dam', 'gw-plein-1'), encode(status('dam', 'gw-plein-1')), { qos: 1, retain: true });
    await west.publishAsync(countsTopic('west', 'gw-west-1'), encode(counts('west', 'gw-west-1', 'kade')), { qos: 1 });
    // Its own status, published last, is the one thing it may read: once it has it, everything
    // published before it was delivered to it or withheld.
    const own = await gateway('dam/gw-noord-1', pw(join(dir, 'gw-noord-1.pw')));
    await own.publishAsync(statusTopic('dam', 'gw-noord-1'), encode({ ...status('dam', 'gw-noord-1'), zone: 'noord' }), { qos: 1, retain: true });
    await until(
      'its own status',
      () => ownLive,
      (n) => n >= 1,
    );
    expect([...new Set(got)]).toEqual([statusTopic('dam', 'gw-noord-1')]);
  });

  it("cannot connect anonymously, with a wrong password, or with another gateway's password", async () => {
    const refused = (o: mqtt.IClientOptions) =>
      expect(mqtt.connectAsync(broker.url, { ...o, protocolVersion: 5, reconnectPeriod: 0 })).rejects.toThrow(/not authori[sz]ed|bad user name or password/i);
    await refused({});
    await refused({ username: 'dam/gw-plein-1', password: 'guess' });
    await refused({ username: 'dam/gw-plein-1', password: pw(join(dir, 'gw-noord-1.pw')) });
    await refused({ username: 'dam/gw-made-up', password: pw(join(dir, 'gw-plein-1.pw')) });
  });
});

const okTls = ok && need('openssl', 'openssl', 'aggregator identity (certificates)');

describe.skipIf(!okTls)('client certificates with use_identity_as_username and the shipped ACL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-identity-cert-'));
  const broker = new Mosquitto({
    listenerConfig: (port) =>
      [
        `listener ${port} 127.0.0.1`,
        `cafile ${join(dir, 'ca.pem')}`,
        `certfile ${join(dir, 'server.pem')}`,
        `keyfile ${join(dir, 'server.key')}`,
        'require_certificate true',
        'use_identity_as_username true',
        'allow_anonymous false',
        `acl_file ${ACL}`,
      ].join('\n'),
  });
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    // The CN is the user name: "{site}/{gateway}" (a "/" in a subject is written "\/" to openssl).
    makeCertificates(dir, { cn: 'dam\\/gw-plein-1', user: 'unused', password: 'unused' });
    await broker.start();
  });
  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const tls = (withCert: boolean): mqtt.IClientOptions => ({
    protocolVersion: 5,
    reconnectPeriod: 0,
    ca: readFileSync(join(dir, 'ca.pem')),
    ...(withCert ? { cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) } : {}),
    rejectUnauthorized: true,
  });

  it('the certificate of dam/gw-plein-1 publishes to its own topics only', async () => {
    const c = await mqtt.connectAsync(`mqtts://localhost:${broker.port}`, tls(true));
    clients.push(c);
    const m = window('dam', 'gw-plein-1', 1, Date.now() - 120_000, 60_000, 'plein');
    await c.publishAsync(countsTopic('dam', 'gw-plein-1'), encode(m), { qos: 1 });
    await c.publishAsync(statusTopic('dam', 'gw-plein-1'), encode(status('dam', 'gw-plein-1')), { qos: 1 });
    for (const [site, gw] of [
      ['dam', 'gw-noord-1'],
      ['west', 'gw-plein-1'],
    ])
      await expect(c.publishAsync(countsTopic(site, gw), encode(window(site, gw, 2, Date.now() - 120_000, 60_000, 'plein')), { qos: 1 })).rejects.toThrow(
        /not authori[sz]ed/i,
      );
  });

  it('without a client certificate there is no connection', async () => {
    await expect(mqtt.connectAsync(`mqtts://localhost:${broker.port}`, tls(false))).rejects.toThrow();
  });
});
