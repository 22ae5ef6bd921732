// A gateway whose publishes the broker's ACL denies, against a real Mosquitto with the shipped
// recipe (docs/mosquitto/presence.acl verbatim, a password file from `presence provision gateway`).
// Over MQTT 5 (the gateway's default) the broker answers a denied publish with PUBACK 0x87: the
// window stays queued, the refusal is logged and counted (status publish_refused, metric), and the
// windows are published once the gateway runs with a credential the ACL allows (none lost). A user
// name of the form {site}/{gateway} that is not the gateway's own is refused at start (exit 2), and
// `presence doctor` fails on a test publish the broker refuses.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoPasswordEntry, provisionGateway } from '../aggregator/provision.ts';
import { countsTopic, statusTopic, TOPIC_ROOT, validateCounts } from '../contract/index.ts';
import { Gateway } from '../gateway/gateway.ts';
import { GatewayMetrics } from '../gateway/http.ts';
import { config, gatewayArgs, ROOT, spawnGateway, subscriber, waitFor, wifiCapture, windowsSpanned } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const SUITE = 'gateway against the shipped ACL';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('mosquitto_passwd', 'mosquitto', SUITE);
const ACL = join(ROOT, 'docs/mosquitto/presence.acl');

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-gw-acl-'));
  const passwd = join(dir, 'passwd');
  const broker = new Mosquitto({
    listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${ACL}\n`,
  });
  beforeAll(async () => {
    execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'aggregator', 'agg-pw']);
    writeFileSync(passwd, `# broker users, kept by presence provision\n${readFileSync(passwd, 'utf8')}`);
    provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plein-1', passwordFile: passwd, secretOut: join(dir, 'dam.pw') });
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const presence = (args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'scripts', 'presence.js'), ...args], { encoding: 'utf8', env: { ...process.env, LOG_FORMAT: 'json' } });

  it("provision keeps the password file's comments (the broker still reads it: every test here logs in with it) and refuses a file that is not one, naming its line, changing nothing", () => {
    expect(readFileSync(passwd, 'utf8')).toMatch(/^# broker users, kept by presence provision\naggregator:\$7\$.*\ndam\/gw-plein-1:\$7\$/);
    const conf = join(dir, 'mosquitto.conf');
    const text = `# the broker\npid_file /run/mosquitto/mosquitto.pid\npassword_file ${passwd}\n`;
    writeFileSync(conf, text, { mode: 0o644 });
    expect(() => provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plein-9', passwordFile: conf, secretOut: join(dir, 'gw9.pw') })).toThrow(
      `${conf} line 2: not a Mosquitto password entry (user:hash); --password-file must name the broker's password_file`,
    );
    expect(readFileSync(conf, 'utf8')).toBe(text);
    expect(statSync(conf).mode & 0o777).toBe(0o644);
    expect(existsSync(join(dir, 'gw9.pw'))).toBe(false);
  });

  it('provision adds to the shipped ACL (the broker here reads it) and refuses an --acl-file that is not one, binary or text, naming its line, changing nothing', () => {
    // The ACL was appended to whatever file it named: mosquitto.conf got pattern lines the broker
    // does not read there, and a binary file (the broker's mosquitto.db) was rewritten as text.
    const acl = join(dir, 'presence.acl');
    writeFileSync(acl, `  # indented comment\r\n${readFileSync(ACL, 'utf8')}`);
    provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plein-8', passwordFile: join(dir, 'passwd-8'), aclFile: acl, secretOut: join(dir, 'gw8.pw') });
    expect(existsSync(join(dir, 'gw8.pw'))).toBe(true);
    const conf = join(dir, 'broker.conf');
    const text = `# the broker\nlistener 1883\nacl_file ${acl}\n`;
    writeFileSync(conf, text);
    const db = join(dir, 'mosquitto.db');
    const bytes = Buffer.from([0x00, 0xb5, 0x00, 0x6d, 0x6f, 0x73, 0x71, 0x75, 0x69, 0x74, 0x74, 0x6f, 0x20, 0x64, 0x62, 0xff, 0xfe, 0x0a, 0x80]);
    writeFileSync(db, bytes);
    for (const [file, line] of [
      [conf, 2],
      [db, 1],
    ] as const) {
      const pw = join(dir, `refused-${line}.pw`);
      expect(() =>
        provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plein-7', passwordFile: join(dir, 'passwd-7'), aclFile: file, secretOut: pw }),
      ).toThrow(`${file} line ${line}: not a Mosquitto ACL line (user, topic or pattern); --acl-file must name the broker's acl_file`);
      expect(existsSync(pw)).toBe(false);
      expect(existsSync(join(dir, 'passwd-7'))).toBe(false);
    }
    expect(readFileSync(conf, 'utf8')).toBe(text);
    expect(readFileSync(db).equals(bytes)).toBe(true);
  });

  it('refuses to start with a {site}/{gateway} user name that is not its own (exit 2, says the fix)', () => {
    const r = presence([
      'gateway',
      '--site',
      'damrak',
      '--zone',
      'plein',
      '--id',
      'gw-plein-1',
      '--mqtt-url',
      broker.url,
      '--mqtt-username',
      'dam/gw-plein-1',
      '--mqtt-password-file',
      join(dir, 'dam.pw'),
      '--source',
      'stdin',
      '--queue-dir',
      join(dir, 'q-refused'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('"dam/gw-plein-1"');
    expect(r.stderr).toContain('damrak/gw-plein-1');
    expect(r.stderr).toMatch(/Fix --site\/--id/);
  });

  it('a denied publish keeps its window queued, is logged and counted; with an allowed credential every window is published', async () => {
    // The typo'd site with the credential of dam/gw-plein-1. The start check cannot see this when the
    // identity is not given as a user name (a client certificate's CN with use_identity_as_username),
    // so the configuration is changed after loading, as such a setup would have it.
    const cap = wifiCapture(join(dir, 'acl.pcap'), { devices: 3, startMs: Date.parse('2026-05-01T00:00:00.200Z'), durationMs: 8_000, framesPerS: 10 });
    const expected = windowsSpanned(cap.firstMs, cap.lastMs, 2000);
    const flags = {
      site: 'dam',
      zone: 'plein',
      id: 'gw-plein-1',
      mqttUrl: broker.url,
      mqttUsername: 'dam/gw-plein-1',
      mqttPasswordFile: join(dir, 'dam.pw'),
      source: [`pcap:${cap.path}`],
      speed: 'max',
      window: '2s',
      queueDir: join(dir, 'q'),
    };
    const typo = config(flags);
    typo.gateway.site = 'damrak';
    typo.mqtt.username = 'dam/gw-plein-1';
    const sub = await subscriber(broker.url, { username: 'aggregator', password: 'agg-pw', filter: `${TOPIC_ROOT}/#` });
    const logs: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => logs.push(s) });
    const gw = new Gateway({ config: typo, log, processMetrics: false });
    const metrics = new GatewayMetrics(gw, false);
    let windows = 0;
    const refused: string[] = [];
    gw.on('window', () => windows++);
    gw.on('refused', (_seq, _code, reason) => refused.push(reason));
    await gw.start();
    await waitFor(() => windows === expected && refused.length >= expected, 30_000, 'every window closed and refused');
    expect(refused[0]).toBe('0x87 not authorized');
    expect(gw.queueDepth).toBe(expected);
    expect(gw.status().publish_refused).toBeGreaterThanOrEqual(expected);
    expect(await metrics.registry.metrics()).toMatch(/presence_gateway_publish_refused_total\{reason="0x87 not authorized"\} [1-9]/);
    const errors = logs.map((l) => JSON.parse(l)).filter((l) => l.level === 50 && /refused/.test(l.msg));
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors.length).toBeLessThan(refused.length); // rate-limited: not one line per refusal
    expect(errors[0]).toMatchObject({ topic: countsTopic('damrak', 'gw-plein-1'), reason: '0x87 not authorized' });
    expect(errors[0].msg).toContain('"damrak/gw-plein-1"');
    expect(sub.messages.filter((m) => m.topic.endsWith('/counts'))).toEqual([]);
    const lastSeq = gw.status().last_seq!;
    expect(lastSeq).toBe(expected);
    await gw.stop(200);

    // The credential the ACL allows for damrak/gw-plein-1: the queued windows go out, none lost.
    provisionGateway({ site: 'damrak', zone: 'plein', id: 'gw-plein-1', passwordFile: passwd, secretOut: join(dir, 'damrak.pw') });
    await broker.stop();
    await broker.start();
    const fixed = config({ ...flags, site: 'damrak', mqttUsername: 'damrak/gw-plein-1', mqttPasswordFile: join(dir, 'damrak.pw'), source: ['stdin'] });
    const gw2 = new Gateway({ config: fixed, log: pino({ level: 'silent' }), processMetrics: false, stdin: (await import('node:stream')).Readable.from([]) });
    await gw2.start();
    const counts = () => sub.messages.filter((m) => m.topic === countsTopic('damrak', 'gw-plein-1')).map((m) => JSON.parse(m.payload.toString()));
    await waitFor(() => counts().length >= expected, 30_000, 'the queued windows published');
    expect(counts().every((m) => validateCounts(m).ok)).toBe(true);
    // Every window of the refused run (seq 1..lastSeq) arrived; the second run may add its own short one.
    const seqs = new Set(counts().map((m) => m.seq as number));
    for (let seq = 1; seq <= lastSeq; seq++) expect(seqs.has(seq), `seq ${seq}`).toBe(true);
    await gw2.stop(2000);
    expect(gw2.status().publish_refused).toBe(0);
    await sub.client.endAsync();
  });

  it('a login the broker refuses (credential not provisioned yet) is logged with the fix and tried again: once the broker knows it, every queued window is published', async () => {
    // A gateway installed before the backend team added its credential: the broker refuses the
    // CONNECT. mqtt.js gives up after a refused CONNACK unless told to retry, which left such a
    // gateway disconnected for good, counting into its queue, until someone restarted it.
    const cap = wifiCapture(join(dir, 'late.pcap'), { devices: 4, startMs: Date.parse('2026-05-02T00:00:00.200Z'), durationMs: 5_000, framesPerS: 10 });
    const sub = await subscriber(broker.url, { username: 'aggregator', password: 'agg-pw', filter: `${TOPIC_ROOT}/dam/gw-late/#` });
    const gw = spawnGateway(
      [
        ...gatewayArgs({ site: 'dam', id: 'gw-late', mqttUrl: broker.url, source: `pcap:${cap.path}`, queueDir: join(dir, 'q-late') }),
        '--mqtt-username',
        'dam/gw-late',
        '--speed',
        'max',
        '--window',
        '1s',
      ],
      { MQTT_PASSWORD: 'late-pw', LOG_FORMAT: 'json' },
    );
    try {
      await waitFor(() => /Not authori[sz]ed/.test(gw.stderr()), 20_000, 'the refused login');
      const refusedLine = gw
        .stderr()
        .split('\n')
        .find((l) => /Not authori[sz]ed/.test(l))!;
      expect(JSON.parse(refusedLine)).toMatchObject({
        msg: expect.stringMatching(/^cannot connect to the broker/),
        broker: broker.url,
        fix: expect.stringContaining('mqtt.username'),
      });
      // The credential arrives (the broker re-reads its password file at a restart).
      appendFileSync(passwd, `${mosquittoPasswordEntry('dam/gw-late', 'late-pw')}\n`);
      await broker.stop();
      await broker.start();
      // The file source has ended: the gateway exits 0 once every queued window is acknowledged.
      const code = await Promise.race([gw.exited, new Promise((r) => setTimeout(() => r('still running'), 30_000))]);
      expect(code, gw.stderr().slice(-1500)).toBe(0);
      await waitFor(() => sub.messages.some((m) => m.topic === statusTopic('dam', 'gw-late') && m.payload.includes('"offline"')), 20_000, 'the offline status');
      const counts = sub.messages.filter((m) => m.topic === countsTopic('dam', 'gw-late')).map((m) => JSON.parse(m.payload.toString()));
      expect(counts.reduce((n, c) => n + c.wifi.frames, 0)).toBe(cap.frames);
      expect(counts.map((c) => c.seq)).toEqual(counts.map((_, i) => i + 1));
    } finally {
      gw.proc.kill('SIGKILL');
      await sub.client.endAsync();
    }
  });

  it('doctor fails on a test publish the broker refuses, naming the reason; passes with the right credential', async () => {
    const doctor = (extra: string[]) => {
      const r = presence([
        'doctor',
        '--json',
        '--site',
        'dam',
        '--zone',
        'plein',
        '--id',
        'gw-plein-1',
        '--mqtt-url',
        broker.url,
        '--source',
        `pcap:${join(dir, 'acl.pcap')}`,
        '--queue-dir',
        join(dir, 'q-doctor'),
        ...extra,
      ]);
      const results = JSON.parse(r.stdout) as Array<{ step: string; level: string; detail: string; fix?: string }>;
      return results.find((x) => x.step === 'broker reachable')!;
    };
    // The aggregator's user connects but may only read.
    const denied = doctor(['--mqtt-username', 'aggregator', '--mqtt-password', 'agg-pw']);
    expect(denied.level).toBe('fail');
    expect(denied.detail).toContain('0x87 not authorized');
    expect(denied.fix).toContain('"dam/gw-plein-1"');
    expect(doctor(['--mqtt-username', 'dam/gw-plein-1', '--mqtt-password-file', join(dir, 'dam.pw')])).toMatchObject({ level: 'ok' });
    // A retained online status (the gateway running): doctor reads it and publishes nothing. This needs
    // the ACL's `pattern read` of the own status: without it Mosquitto grants the subscription but
    // delivers nothing, and doctor test-publishes.
    const gwClient = mqtt.connect(broker.url, { username: 'dam/gw-plein-1', password: readFileSync(join(dir, 'dam.pw'), 'utf8').trim(), protocolVersion: 5 });
    await gwClient.publishAsync(
      statusTopic('dam', 'gw-plein-1'),
      JSON.stringify({ v: 1, site: 'dam', gateway: 'gw-plein-1', zone: 'plein', state: 'online' }),
      { qos: 1, retain: true },
    );
    expect(doctor(['--mqtt-username', 'dam/gw-plein-1', '--mqtt-password-file', join(dir, 'dam.pw')])).toMatchObject({
      level: 'ok',
      detail: expect.stringContaining('not tested: the gateway is online'),
    });
    await gwClient.publishAsync(statusTopic('dam', 'gw-plein-1'), '', { qos: 1, retain: true });
    await gwClient.endAsync();
    // A configuration with errors: the broker check says it was skipped, not "no broker configured".
    const skipped = doctor(['--mqtt-username', 'dam/gw-plein-1', '--mqtt-password-file', join(dir, 'dam.pw'), '--window', 'soon']);
    expect(skipped.level).toBe('warn');
    expect(skipped.detail).toMatch(/skipped: the configuration has errors/);
  });
});

describe.skipIf(!ok)('gateway against an ACL that presence provision gateway wrote from nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-gw-acl-provisioned-'));
  const passwd = join(dir, 'passwd');
  const acl = join(dir, 'presence.acl');
  const broker = new Mosquitto({
    listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${acl}\n`,
  });
  beforeAll(async () => {
    execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'aggregator', 'agg-pw']);
    provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plein-2', passwordFile: passwd, aclFile: acl, secretOut: join(dir, 'dam.pw') });
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('has every gateway pattern of the shipped ACL, so doctor reads a running gateway retained status and publishes nothing', async () => {
    const patterns = (text: string) => text.split('\n').filter((l) => l.startsWith('pattern '));
    expect(patterns(readFileSync(acl, 'utf8')).sort()).toEqual(patterns(readFileSync(ACL, 'utf8')).sort());
    const password = readFileSync(join(dir, 'dam.pw'), 'utf8').trim();
    const gwClient = mqtt.connect(broker.url, { username: 'dam/gw-plein-2', password, protocolVersion: 5 });
    const online = JSON.stringify({ v: 1, site: 'dam', gateway: 'gw-plein-2', zone: 'plein', state: 'online' });
    await gwClient.publishAsync(statusTopic('dam', 'gw-plein-2'), online, { qos: 1, retain: true });
    const sub = await subscriber(broker.url, { username: 'aggregator', password: 'agg-pw', filter: statusTopic('dam', 'gw-plein-2') });
    await waitFor(() => sub.messages.length >= 1, 10_000, 'the retained online status');
    const r = spawnSync(
      process.execPath,
      [
        join(ROOT, 'scripts', 'presence.js'),
        'doctor',
        '--json',
        ...['--site', 'dam', '--zone', 'plein', '--id', 'gw-plein-2', '--mqtt-url', broker.url, '--source', 'stdin'],
        ...['--mqtt-username', 'dam/gw-plein-2', '--mqtt-password-file', join(dir, 'dam.pw'), '--queue-dir', join(dir, 'q')],
      ],
      { encoding: 'utf8' },
    );
    const check = (JSON.parse(r.stdout) as Array<{ step: string; level: string; detail: string }>).find((x) => x.step === 'broker reachable')!;
    expect(check).toMatchObject({ level: 'ok', detail: expect.stringContaining('not tested: the gateway is online') });
    expect(sub.messages.map((m) => m.payload.toString())).toEqual([online]); // no offline test publish reached a subscriber
    await gwClient.publishAsync(statusTopic('dam', 'gw-plein-2'), '', { qos: 1, retain: true });
    await gwClient.endAsync();
    await sub.client.endAsync();
  });
});
