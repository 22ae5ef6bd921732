// `presence doctor` tells the truth on this machine (no Wi-Fi interface, no Bluetooth adapter): it
// fails when nothing can deliver frames, checks each radio on its own (a BLE-only or Wi-Fi-only
// gateway is not failed for the other radio, a file source needs no monitor mode), and shows every
// line a failing capture tool wrote, with addresses redacted, and the fix.
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkClock, checkMonitorMode, parseCaptureCommand, toolOutput } from '../gateway/doctor.ts';
import { captureFix, configuredNames } from '../gateway/capture-fix.ts';
import { statusTopic } from '../contract/index.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { scan, tsharkAddresses } from './support/leak.ts';
import { capturesDir, need } from './support/need.ts';
import { noPerlPath } from './support/no-perl.ts';
import { mountSmallFs } from './support/small-fs.ts';
import { config as gatewayConfig, ROOT, spawnGateway, subscriber, waitFor, wifiCapture } from './gateway-support.ts';

interface Check {
  step: string;
  level: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
  output?: string[];
}

const tmp = mkdtempSync(join(tmpdir(), 'presence-doctor-'));
const captures = capturesDir('doctor');
const hasRadio = (() => {
  const wifi =
    existsSync('/sys/class/net') &&
    readdirSync('/sys/class/net').some((i) => existsSync(join('/sys/class/net', i, 'wireless')) || existsSync(join('/sys/class/net', i, 'phy80211')));
  const bt = existsSync('/sys/class/bluetooth') && readdirSync('/sys/class/bluetooth').some((a) => /^hci\d+$/.test(a));
  return wifi || bt;
})();

function doctor(args: string[], path = process.env.PATH): { code: number | null; results: Check[]; text: string } {
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^MQTT_/.test(k))), PATH: path };
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'presence.js'), 'doctor', ...args], { cwd: tmp, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, results: args.includes('--json') ? (JSON.parse(r.stdout) as Check[]) : [], text: r.stdout + r.stderr };
}
const by = (r: { results: Check[] }, step: string) => r.results.find((c) => c.step === step);

function config(name: string, sources: string[], brokerUrl: string): string {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(
    file,
    [
      'gateway: { site: doc, zone: z, id: g }',
      'sources:',
      ...sources.map((s) => `  - ${s}`),
      `mqtt: { url: "${brokerUrl}" }`,
      `queue: { dir: ${join(tmp, `q-${name}`)} }`,
    ].join('\n'),
  );
  return file;
}

describe.skipIf(!need('mosquitto', 'mosquitto', 'doctor'))('presence doctor on this machine', () => {
  const broker = new Mosquitto();
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a broker host name that does not resolve: the fix names the name and DNS, not "check that the broker is running"', () => {
    const cap = wifiCapture(join(tmp, 'dns.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 10 });
    const r = doctor(['--config', config('dns', [`{ type: file, name: f, radio: wifi, path: ${cap.path} }`], 'mqtt://broker.example.invalid:1883'), '--json']);
    const b = by(r, 'broker reachable')!;
    expect(b.level).toBe('fail');
    expect(b.detail).toMatch(/^mqtt:\/\/broker\.example\.invalid:1883: getaddrinfo (ENOTFOUND|EAI_AGAIN) broker\.example\.invalid$/);
    expect(b.fix).toMatch(
      /^the broker's host name does not resolve( \(no DNS answer: is the uplink up\?\))?: check the name in mqtt\.url and this machine's DNS \(getent hosts broker\.example\.invalid\)$/,
    );
  });

  it('a broker URL that reaches the wrong thing: mqtts:// on the plain port, an HTTP server on the port: the fix says which, not "check mqtt.url"', async () => {
    const cap = wifiCapture(join(tmp, 'wrongport.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 10 });
    const source = `{ type: file, name: f, radio: wifi, path: ${cap.path} }`;
    const plain = new URL(broker.url).port;
    const tls = by(doctor(['--config', config('tls-on-plain', [source], `mqtts://127.0.0.1:${plain}`), '--json']), 'broker reachable')!;
    expect(tls).toMatchObject({ level: 'fail', fix: expect.stringMatching(/^the port does not answer TLS: mqtts:\/\/ needs the broker's TLS listener/) });
    // an InfluxDB's or any web server's port given as the broker's
    const http = createServer((_req, res) => res.end('not mqtt')).listen(0, '127.0.0.1');
    await once(http, 'listening');
    try {
      const port = (http.address() as AddressInfo).port;
      const r = await new Promise<{ results: Check[] }>((resolve) =>
        execFile(
          process.execPath,
          [join(ROOT, 'scripts', 'presence.js'), 'doctor', '--config', config('http-port', [source], `mqtt://127.0.0.1:${port}`), '--json'],
          { cwd: tmp, encoding: 'utf8', timeout: 60_000 },
          (_e, stdout) => resolve({ results: JSON.parse(stdout) as Check[] }),
        ),
      );
      expect(by(r, 'broker reachable')).toMatchObject({
        level: 'fail',
        fix: expect.stringMatching(/^what answers there does not speak MQTT .*: fix the host and port in mqtt\.url$/),
      });
    } finally {
      http.close();
    }
  });

  it("a % in the broker URL's password that starts no escape: the configuration step fails naming it and how to write it, every step is printed, not an uncaught URIError", () => {
    const cap = wifiCapture(join(tmp, 'pct.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 10 });
    const port = new URL(broker.url).port;
    const file = config('pct', [`{ type: file, name: f, radio: wifi, path: ${cap.path} }`], `mqtt://doc:Pc7%Zzsecret@127.0.0.1:${port}`);
    const r = doctor(['--config', file, '--json']);
    expect(r.code).toBe(1);
    expect(by(r, 'configuration')).toMatchObject({
      level: 'fail',
      detail: `${file}: mqtt.url: holds a % in its user name or password that starts no %XX escape (or escapes that are no UTF-8), so they cannot be read; fix: write a % there as %25, or give the user name and password apart from the URL (got "mqtt://127.0.0.1:${port}")`,
    });
    expect(by(r, 'broker reachable')).toMatchObject({ level: 'warn', detail: 'skipped: the configuration has errors (listed above)' });
    expect(by(r, 'queue folder')).toBeDefined();
    const text = doctor(['--config', file]);
    expect(text.code).toBe(1);
    expect(text.text).toMatch(/^1 to fix/m);
    expect(text.text).not.toMatch(/Zzsecret|URIError|\n {4}at /);
  });

  it('a broker that closes the connection without a CONNACK (Mosquitto past max_connections): said at once, not "no answer in 8 s" with a fix about routes and firewalls', async () => {
    const full = new Mosquitto({ extraConfig: () => 'max_connections 1' });
    await full.start();
    // Clients until the broker refuses one: Mosquitto 2.0.11 miscounts the connection its start was
    // probed with (a TCP connect, closed before any CONNECT), so one client need not fill it.
    const holders: MqttClient[] = [];
    for (let i = 0; i < 4; i++) {
      const c = mqtt.connect(full.url, { reconnectPeriod: 0, connectTimeout: 5000 });
      c.on('error', () => {});
      const up = await new Promise<boolean>((resolve) => {
        c.once('connect', () => resolve(true));
        c.once('close', () => resolve(false));
      });
      if (!up) break;
      holders.push(c);
    }
    try {
      const cap = wifiCapture(join(tmp, 'full.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 10 });
      const started = Date.now();
      const r = await new Promise<{ code: number | null; results: Check[] }>((resolve) =>
        execFile(
          process.execPath,
          [
            join(ROOT, 'scripts', 'presence.js'),
            'doctor',
            '--config',
            config('full', [`{ type: file, name: f, radio: wifi, path: ${cap.path} }`], full.url),
            '--json',
          ],
          { cwd: tmp, encoding: 'utf8', timeout: 60_000 },
          (e, stdout) => resolve({ code: e ? ((e as { code?: number }).code ?? null) : 0, results: JSON.parse(stdout) as Check[] }),
        ),
      );
      expect(r.code).toBe(1);
      expect(by(r, 'broker reachable')).toMatchObject({
        level: 'fail',
        detail: `${full.url}: the connection was closed before the broker accepted it (no CONNACK): something listens there but gave no MQTT answer`,
        fix: expect.stringContaining('Mosquitto: "max_connections exceeded"'),
      });
      expect(Date.now() - started).toBeLessThan(7000);
      expect(readFileSync(join(full.dir, 'mosquitto.log'), 'utf8')).toMatch(/max_connections exceeded/);
    } finally {
      for (const c of holders) await c.endAsync();
      await full.dispose();
    }
  });

  it.skipIf(hasRadio)('without a configuration: no Wi-Fi interface and no Bluetooth adapter is a failure, not "ready"', () => {
    const r = doctor(['--json']);
    expect(by(r, 'a source that delivers frames')).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('no Wi-Fi interface and no Bluetooth adapter'),
      fix: expect.stringMatching(/Wi-Fi adapter|Bluetooth adapter/),
    });
    expect(r.code).toBe(1);
    const text = doctor([]);
    expect(text.text).not.toMatch(/^ready/m);
    expect(text.text).toMatch(/\d+ to fix/);
  });

  it('a --frames-timeout that is no duration, 0 or over 1h is a usage error before any check, never an uncaught error with its stack', () => {
    for (const [value, why] of [
      ['abc', 'must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "abc")'],
      ['0s', 'must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "0s"): it must be longer than 0'],
      ['5', 'must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "5"): write it with its unit (ms, s, m, h or d)'],
      ['99999999d', 'must be at most 1h, how long doctor waits for frames from each source (got "99999999d")'],
    ]) {
      const r = doctor(['--source', 'pcap:x.pcap', '--frames-timeout', value]);
      expect(r.code, value).toBe(2);
      expect(r.text).toBe(`presence doctor: --frames-timeout: ${why}\nhint: presence doctor --help lists the options\n`);
    }
  });

  it('a configuration with errors: its file named as the gateway names it, the checks that need it skipped (never "no sources configured, give --config")', () => {
    const file = join(tmp, 'typo.yaml');
    writeFileSync(file, 'gateway: { site: s, zone: z, id: g, windw: 60s }\nsources:\n  - { type: file, path: x.pcap }\nmqtt: { url: "mqtt://127.0.0.1:1" }\n');
    const r = doctor(['--config', file, '--json']);
    expect(by(r, 'configuration')).toMatchObject({
      level: 'fail',
      detail: `${file}: gateway: has an unknown key "windw" (did you mean "window"?)`,
    });
    for (const step of ['frames arriving', 'a source that delivers frames', 'broker reachable', 'queue folder'])
      expect(by(r, step), step).toMatchObject({ level: 'warn', detail: 'skipped: the configuration has errors (listed above)' });
    expect(JSON.stringify(r.results)).not.toMatch(/no sources configured|give --config|no configuration/);
    expect(r.code).toBe(1);
    // a file that is not there: the fix is the path, not "correct the configuration"
    const missing = doctor(['--config', join(tmp, 'nope.yaml'), '--json']);
    expect(by(missing, 'configuration')).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('nope.yaml does not exist'),
      fix: expect.stringContaining('give --config the path of an existing YAML or JSON file'),
    });
    // a capture file the gateway would not start without (exit 2): the configuration fails, as the gateway says it
    const noCapture = join(tmp, 'no-capture.yaml');
    writeFileSync(noCapture, 'gateway: { site: s, zone: z, id: g }\nsources:\n  - { type: file, path: x.pcap }\nmqtt: { url: "mqtt://127.0.0.1:1" }\n');
    const capture = doctor(['--config', noCapture, '--json']);
    expect(by(capture, 'configuration')).toMatchObject({
      level: 'fail',
      detail: `${noCapture}: sources[0] (file0): ${join(tmp, 'x.pcap')} does not exist`,
      fix: expect.stringContaining("a relative path in a config file starts from the file's folder"),
    });
    expect(by(capture, 'frames arriving'), 'frames arriving').toMatchObject({ level: 'warn', detail: 'skipped: the configuration has errors (listed above)' });
    expect(capture.code).toBe(1);
  });

  it.skipIf(hasRadio)('a BLE-only gateway is checked for Bluetooth, not for monitor mode', () => {
    const r = doctor([
      '--config',
      config('ble', ['{ type: command, name: ble, radio: ble, command: [dumpcap, -q, -i, bluetooth0, -w, "-"] }'], broker.url),
      '--json',
      '--frames-timeout',
      '2s',
    ]);
    expect(by(r, 'monitor mode')).toMatchObject({ level: 'ok', detail: expect.stringMatching(/^not needed/) });
    expect(by(r, 'bluetooth adapter')).toMatchObject({ level: 'fail', detail: expect.stringContaining('no Bluetooth adapter') });
    expect(by(r, 'a source that delivers frames')!.level).toBe('fail');
    expect(r.code).toBe(1);
  });

  it.skipIf(hasRadio)('a Wi-Fi-only gateway is checked for monitor mode, not for a Bluetooth adapter', () => {
    const r = doctor([
      '--config',
      config('wifi', ['{ type: command, name: wifi, command: "tcpdump -i wlan0mon -U -w -" }'], broker.url),
      '--json',
      '--frames-timeout',
      '2s',
    ]);
    expect(by(r, 'bluetooth adapter')).toMatchObject({ level: 'ok', detail: expect.stringMatching(/^not needed/) });
    expect(by(r, 'monitor mode (wlan0mon)')).toMatchObject({ level: 'fail', detail: expect.stringContaining('does not exist') });
    expect(by(r, 'a source that delivers frames')!.level).toBe('fail');
    expect(r.code).toBe(1);
  });

  it('with a running gateway (retained status online) doctor publishes nothing on its status topic; after it dies it test-publishes', async () => {
    const topic = statusTopic('doc', 'g-live');
    const cap = wifiCapture(join(tmp, 'live.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 10 });
    const file = join(tmp, 'live.yaml');
    writeFileSync(
      file,
      [
        'gateway: { site: doc, zone: z, id: g-live }',
        'sources:',
        `  - { type: file, name: replay, radio: wifi, path: ${cap.path} }`,
        `mqtt: { url: "${broker.url}" }`,
        `queue: { dir: ${join(tmp, 'q-live')} }`,
      ].join('\n'),
    );
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^MQTT_/.test(k)));
    const runDoctor = () =>
      new Promise<Check[]>((resolve, reject) =>
        execFile(
          process.execPath,
          [join(ROOT, 'scripts', 'presence.js'), 'doctor', '--config', file, '--json'],
          { cwd: tmp, env, timeout: 60_000 },
          (err, stdout) => (stdout ? resolve(JSON.parse(stdout) as Check[]) : reject(err)),
        ),
      );
    const stateOf = (m: { payload: Buffer }) => {
      try {
        return (JSON.parse(m.payload.toString()) as { state?: string }).state;
      } catch {
        return undefined;
      }
    };
    // The status messages that arrived from `from` on, up to a marker published after doctor exited:
    // the broker delivers in order, so any message doctor sent reaches the subscriber before it.
    const since = async (sub: Awaited<ReturnType<typeof subscriber>>, from: number, marker: string) => {
      await sub.client.publishAsync(topic, marker, { qos: 1, retain: false });
      await waitFor(() => sub.messages.some((m) => m.payload.toString() === marker), 10_000, 'the marker');
      return sub.messages.slice(from).filter((m) => m.payload.toString() !== marker);
    };
    const gw = spawnGateway(
      [
        '--site',
        'doc',
        '--zone',
        'z',
        '--id',
        'g-live',
        '--mqtt-url',
        broker.url,
        '--source',
        'pcap:-@wifi',
        '--mqtt-keepalive',
        '1',
        '--queue-dir',
        join(tmp, 'q-gw-live'),
        '--log-format',
        'json',
      ],
      {},
      'pipe',
    );
    try {
      const sub = await subscriber(broker.url, { filter: topic, clean: true });
      await waitFor(() => sub.messages.some((m) => stateOf(m) === 'online'), 20_000, 'the gateway online');
      const before = sub.messages.length;
      const results = await runDoctor();
      expect(by({ results }, 'broker reachable')).toMatchObject({
        level: 'ok',
        detail: expect.stringContaining('not tested: the gateway is online and publishing on'),
      });
      expect((await since(sub, before, 'marker-1')).map(stateOf)).toEqual([]);

      // The gateway dies: its last will (retained offline); now doctor proves the permission by publishing.
      gw.proc.kill('SIGKILL');
      await waitFor(() => sub.messages.some((m) => stateOf(m) === 'offline'), 20_000, 'the last will');
      const beforeDead = sub.messages.length;
      const after = await runDoctor();
      expect(by({ results: after }, 'broker reachable')).toMatchObject({ level: 'ok', detail: expect.stringContaining('test publish on') });
      const sent = await since(sub, beforeDead, 'marker-2');
      expect(sent.map((m) => [stateOf(m), m.retain])).toEqual([['offline', false]]);
      await sub.client.endAsync();
    } finally {
      gw.proc.kill('SIGKILL');
    }
  });

  it('checks the corridor secret: a good one passes (never shown), a readable-by-others, malformed or missing one fails with the fix, a noisy p warns', () => {
    const cap = wifiCapture(join(tmp, 'corr.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 10 });
    const secret = 'ab'.repeat(32);
    const withCorridor = (name: string, corridor: string) => {
      const file = config(name, [`{ type: file, name: replay, radio: wifi, path: ${cap.path} }`], broker.url);
      writeFileSync(file, `${readFileSync(file, 'utf8')}\ncorridor: ${corridor}\n`);
      return file;
    };
    const good = join(tmp, 'good.secret');
    writeFileSync(good, `${secret}\n`, { mode: 0o600 });
    const ok = doctor(['--config', withCorridor('corr-ok', `{ group: main-street, secret_file: ${good}, sketch_p: 0.05 }`), '--json']);
    expect(by(ok, 'corridor secret'), JSON.stringify(ok.results)).toMatchObject({
      level: 'ok',
      detail: expect.stringMatching(/group main-street: .*good\.secret holds a 32-byte secret, mode 0600; epoch 1h, m 8192, p 0\.05 \(epsilon 3\.66/),
    });
    expect(ok.code).toBe(0);
    // p 0.5, set by the operator: legal and more private, but its flows are far off
    const noisy = doctor(['--config', withCorridor('corr-noisy', `{ group: main-street, secret_file: ${good}, sketch_p: 0.5 }`), '--json']);
    expect(by(noisy, 'corridor secret')).toMatchObject({
      level: 'warn',
      detail: expect.stringMatching(
        /p 0\.5 \(epsilon 1\.10 per sketch and device\): flows will be inaccurate: .*\(at p 0\.5 flows off by 50 % to over 1000 % per 5-min interval on the simulator, travel times by several hundred %\)/,
      ),
      fix: expect.stringContaining('corridor.sketch_p: 0.03 in every gateway of the group (epsilon 4.18 per sketch)'),
    });
    const open = join(tmp, 'open.secret');
    writeFileSync(open, `${secret}\n`, { mode: 0o644 });
    chmodSync(open, 0o644); // whatever the umask
    const loose = doctor(['--config', withCorridor('corr-loose', `{ group: main-street, secret_file: ${open}, sketch_p: 0.05 }`), '--json']);
    expect(by(loose, 'corridor secret')).toMatchObject({
      level: 'fail',
      detail: expect.stringMatching(/can be read by others than its owner \(mode 0644\): chmod 600 /),
      fix: expect.stringContaining('presence corridor init'),
    });
    expect(loose.code).not.toBe(0);
    const short = join(tmp, 'short.secret');
    writeFileSync(short, 'abcd\n', { mode: 0o600 });
    const bad = doctor(['--config', withCorridor('corr-short', `{ group: main-street, secret_file: ${short}, sketch_p: 0.05 }`), '--json']);
    expect(by(bad, 'corridor secret')).toMatchObject({ level: 'fail', detail: expect.stringMatching(/64 hex digits \(32 bytes\), it has 4/) });
    const missing = doctor([
      '--config',
      withCorridor('corr-missing', `{ group: main-street, secret_file: ${join(tmp, 'nope.secret')}, sketch_p: 0.05 }`),
      '--json',
    ]);
    expect(by(missing, 'corridor secret')).toMatchObject({ level: 'fail', detail: expect.stringMatching(/nope\.secret does not exist/) });
    // the secret itself is never printed
    for (const r of [ok, noisy, loose, bad, missing]) expect(JSON.stringify(r.results)).not.toContain(secret);
    // a group without a secret file is the configuration's error (named there)
    const none = doctor(['--config', withCorridor('corr-none', '{ group: main-street, sketch_p: 0.03 }'), '--json']);
    expect(by(none, 'configuration')).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining('corridor.secret_file: is required with corridor.group "main-street"'),
    });
  });

  it('a FIFO as a file source is sampled for --frames-timeout: no writer is a failure that says so (doctor returns), a writer that stays open is read', () => {
    const fifo = join(tmp, 'capture.fifo');
    execFileSync('mkfifo', [fifo]);
    const file = config('fifo', [`{ type: file, name: fifo, radio: wifi, path: ${fifo} }`], broker.url);
    // nobody writes: open(2) of the FIFO waits for ever; doctor must end anyway (before, it hung)
    const none = doctor(['--config', file, '--json', '--frames-timeout', '1s']);
    expect(by(none, 'frames arriving (fifo)')).toMatchObject({
      level: 'fail',
      detail: `${fifo} (a FIFO or device): 0 frames in 1s: nothing was written into it`,
      fix: expect.stringContaining(`tcpdump -U -w ${fifo}`),
    });
    expect(none.code).toBe(1);
    // a writer that writes a capture and keeps the FIFO open (a live tcpdump -w FIFO): its frames count
    const cap = wifiCapture(join(tmp, 'fifo.pcap'), { devices: 3, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 2000, framesPerS: 10 });
    const writer = spawn('sh', ['-c', 'exec 3>"$0"; cat "$1" >&3; exec sleep 60', fifo, cap.path], { stdio: 'ignore' });
    try {
      const live = doctor(['--config', file, '--json', '--frames-timeout', '2s']);
      expect(by(live, 'frames arriving (fifo)')).toMatchObject({
        level: 'ok',
        detail: `${fifo} (a FIFO or device): ${cap.frames} frames in 2s; ${cap.frames} countable`,
      });
      expect(by(live, 'a source that delivers frames')).toMatchObject({ level: 'ok', detail: 'fifo delivered frames' });
    } finally {
      writer.kill('SIGKILL');
    }
  });

  it('a Wi-Fi file source needs no monitor mode, no capture tool and no adapter: it passes', () => {
    const cap = wifiCapture(join(tmp, 'file.pcap'), { devices: 3, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 2000, framesPerS: 10 });
    const r = doctor(['--config', config('file', [`{ type: file, name: replay, radio: wifi, path: ${cap.path} }`], broker.url), '--json']);
    for (const step of ['monitor mode', 'bluetooth adapter', 'capture tool'])
      expect(by(r, step), step).toMatchObject({ level: 'ok', detail: expect.stringMatching(/^not needed/) });
    expect(by(r, 'capture pipe')).toBeUndefined(); // no capture command, no stdin
    expect(by(r, 'frames arriving (replay)')!.level).toBe('ok');
    expect(by(r, 'a source that delivers frames')).toMatchObject({ level: 'ok', detail: 'replay delivered frames' });
    expect(
      r.results.filter((c) => c.level === 'fail'),
      JSON.stringify(r.results),
    ).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('frames that arrive but count nothing (every FCS stale, or all below the RSSI gate) fail with the fix; with gateway.ignore_fcs they count', () => {
    // probe requests whose radiotap flags say an FCS is there, with the FCS's last byte changed
    const cap = wifiCapture(join(tmp, 'stale.pcap'), { devices: 3, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 2000, framesPerS: 10 });
    const bytes = readFileSync(cap.path);
    for (let off = 24; off < bytes.length; ) {
      const len = bytes.readUInt32LE(off + 8);
      bytes[off + 16 + len - 1] ^= 0xff;
      off += 16 + len;
    }
    writeFileSync(cap.path, bytes);
    const withGateway = (name: string, gateway: string) => {
      const file = join(tmp, `${name}.yaml`);
      writeFileSync(
        file,
        [
          `gateway: { site: doc, zone: z, id: g${gateway} }`,
          'sources:',
          `  - { type: file, name: stale, radio: wifi, path: ${cap.path} }`,
          `mqtt: { url: "${broker.url}" }`,
          `queue: { dir: ${join(tmp, `q-${name}`)} }`,
        ].join('\n'),
      );
      return doctor(['--config', file, '--json']);
    };
    const stale = withGateway('stale', '');
    expect(by(stale, 'frames arriving (stale)')).toMatchObject({
      level: 'fail',
      detail: `${cap.path}: ${cap.frames} frames, none countable: the firmware rejected ${cap.frames} (bad FCS or CRC, truncated or malformed), so the gateway would publish only zeros`,
      fix: expect.stringContaining('set gateway.ignore_fcs: true (--ignore-fcs)'),
    });
    expect(by(stale, 'a source that delivers frames')!.level).toBe('fail');
    expect(stale.code).toBe(1);
    const ignored = withGateway('ignored', ', ignore_fcs: true');
    expect(by(ignored, 'frames arriving (stale)')).toMatchObject({ level: 'ok', detail: `${cap.path}: ${cap.frames} frames; ${cap.frames} countable` });
    expect(by(ignored, 'a source that delivers frames')!.level).toBe('ok');
    const gated = withGateway('gated', ', ignore_fcs: true, rssi_min_dbm: -40'); // the frames are at -50 dBm
    expect(by(gated, 'frames arriving (stale)')).toMatchObject({
      level: 'fail',
      detail: expect.stringContaining(`none countable: all ${cap.frames} probe requests and advertisements are below gateway.rssi_min_dbm (-40 dBm)`),
    });
    expect(by(gated, 'a source that delivers frames')!.level).toBe('fail');
  });

  it('says how large the FIFO a capture command writes into can be made here, and the fix when it stays at 64 KiB', () => {
    const cfg = config('pipe', ['{ type: command, name: sniff, radio: wifi, command: "true" }'], broker.url);
    const r = doctor(['--config', cfg, '--json']);
    expect(by(r, 'capture pipe')).toMatchObject({ level: 'ok', detail: 'the capture FIFO holds 1024 KiB: read a few times a second' });
    // no perl on the PATH (only mkfifo): the FIFO keeps Linux's 64 KiB, and doctor says what to install
    const bin = noPerlPath(mkdtempSync(join(tmpdir(), 'doctor-no-perl-')));
    const without = doctor(['--config', cfg, '--json'], bin);
    expect(by(without, 'capture pipe')).toMatchObject({
      level: 'warn',
      detail: expect.stringMatching(/^the capture FIFO holds 64 KiB, not 1024: no perl found to enlarge it.*costs CPU$/),
      fix: 'apt-get install perl-base',
    });
    // a piped stdin's size cannot be told without perl: the gateway reads it on every write
    const stdin = doctor(['--config', config('pipe-stdin', ['{ type: stdin, name: in, radio: wifi }'], broker.url), '--json'], bin);
    expect(by(stdin, 'capture pipe')).toMatchObject({
      level: 'warn',
      detail: expect.stringMatching(/no perl found to enlarge it; .* \(a piped stdin, whose size it cannot tell without perl, on every write\)$/),
      fix: 'apt-get install perl-base',
    });
    rmSync(bin, { recursive: true, force: true });
  });

  it('a failing capture tool: every line it wrote, addresses redacted, and the fix', () => {
    // A stand-in for dumpcap: three lines on stderr, one holding an address, then exit 1.
    const tool = join(tmp, 'fake-dumpcap');
    writeFileSync(
      tool,
      '#!/bin/sh\necho "Capturing on \'bluetooth0\'" >&2\necho "dumpcap: The capture session could not be initiated on interface \'bluetooth0\' (You don\'t have permission to capture on that device)." >&2\necho "last device seen 12:34:56:78:9a:bc" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const r = doctor([
      '--config',
      config('tool', [`{ type: command, name: ble, radio: ble, command: [${tool}, -i, bluetooth0] }`], broker.url),
      '--json',
      '--frames-timeout',
      '5s',
    ]);
    const f = by(r, 'frames arriving (ble)')!;
    expect(f.level).toBe('fail');
    // Aggressive: words with 4 hex digits in a row (interface) go too; the configured interface
    // (bluetooth0, base64-like to the rules) stays, so the line says which one failed.
    expect(f.output).toEqual([
      "Capturing on 'bluetooth0'",
      "dumpcap: The capture session could not be initiated on <redacted> 'bluetooth0' (You don't have permission to capture on that device).",
      'last device seen <redacted>',
    ]);
    expect(f.fix).toMatch(/setcap cap_net_raw,cap_net_admin=eip/);
    expect(r.text).not.toMatch(/12:34:56:78:9a:bc/i);
    // The plain report prints every line too.
    const plain = doctor(['--config', join(tmp, 'tool.yaml'), '--frames-timeout', '5s']);
    expect(plain.text).toContain("| Capturing on 'bluetooth0'");
    expect(plain.text).toContain('| last device seen <redacted>');
    expect(plain.text).not.toMatch(/12:34:56:78:9a:bc/i);
    expect(plain.code).toBe(1);
  });

  it("a failing dumpcap: the line doctor sums it up with is dumpcap's own error, not the last line of its advice", () => {
    // What dumpcap without capture rights writes (Debian's build), word for word.
    const bin = join(tmp, 'bin-dumpcap');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'dumpcap'),
      [
        '#!/bin/sh',
        'cat >&2 <<EOF',
        "Capturing on 'eth0'",
        'dumpcap: You do not have permission to capture on device "eth0".',
        '(socket: Operation not permitted)',
        'Please check to make sure you have sufficient permissions.',
        'If you did not install Wireshark from a package, ensure that Dumpcap has the needed CAP_NET_RAW and CAP_NET_ADMIN capabilities by running',
        'sudo setcap cap_net_raw,cap_net_admin=ep /usr/bin/dumpcap',
        'and then restarting Wireshark.',
        'EOF',
        'exit 1',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const r = doctor(
      [
        '--config',
        config('dumpcap-rights', ['{ type: command, name: wifi, radio: wifi, command: "dumpcap -q -i eth0 -w -" }'], broker.url),
        '--json',
        '--frames-timeout',
        '5s',
      ],
      `${bin}:${process.env.PATH}`,
    );
    expect(by(r, 'frames arriving (wifi)')).toMatchObject({
      level: 'fail',
      detail: 'exited with code 1: dumpcap: You do not have permission to capture on device "eth0".',
      fix: expect.stringContaining('setcap'),
    });
  });

  it('a capture command that ran and could not open a file it names: the fix says to check the paths, not to install the program it ran', () => {
    const missing = join(tmp, 'no-such-capture.pcap');
    const r = doctor([
      '--config',
      config('missing-file', [`{ type: command, name: wifi, radio: wifi, command: "cat ${missing}" }`], broker.url),
      '--json',
      '--frames-timeout',
      '2s',
    ]);
    const f = by(r, 'frames arriving (wifi)')!;
    expect(f.level, r.text).toBe('fail');
    expect(f.detail).toMatch(/^exited with code 1: cat: /);
    expect(f.fix).not.toMatch(/install/);
    expect(f.fix).toMatch(/^cat ran but could not open a file its command names/);
  });

  it('a queue folder whose seq is a folder fails, naming it as the gateway does when it refuses to start (doctor said ready)', () => {
    const q = join(tmp, 'q-seq-folder');
    mkdirSync(join(q, 'seq'), { recursive: true });
    const r = by(
      doctor([
        '--source',
        `pcap:${wifiCapture(join(tmp, 'seqdir.pcap'), { devices: 1, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 5 }).path}`,
        '--queue-dir',
        q,
        '--json',
      ]),
      'queue folder',
    );
    expect(r).toEqual({
      step: 'queue folder',
      level: 'fail',
      detail: `queue.dir ${q}: ${join(q, 'seq')} is a folder, not the file the gateway keeps there; remove it`,
      fix: 'remove that folder: the gateway writes the file itself',
    });
  });

  it('a queue folder on a full or read-only file system: the fix says to free space, or to look at the file system, not to create the folder', () => {
    const at = join(tmp, 'small-fs');
    mkdirSync(at, { recursive: true });
    if (!mountSmallFs('doctor', at, 'size=64k')) return;
    try {
      const file = config(
        'full',
        [
          `{ type: file, name: wifi, radio: wifi, path: ${wifiCapture(join(tmp, 'full.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 5 }).path} }`,
        ],
        broker.url,
      );
      writeFileSync(file, readFileSync(file, 'utf8').replace(/queue: .*/, `queue: { dir: ${at} }`));
      writeFileSync(join(at, 'filler'), Buffer.alloc(64 * 1024)); // fills it (tmpfs: ENOSPC at the limit)
      const full = by(doctor(['--config', file, '--json', '--frames-timeout', '1s']), 'queue folder')!;
      expect(full).toMatchObject({ level: 'fail', detail: expect.stringContaining('ENOSPC') });
      expect(full.fix).toMatch(new RegExp(`^free space on its file system: df -h ${at}`));
      rmSync(join(at, 'filler'));
      execFileSync('mount', ['-o', 'remount,ro', at]);
      const ro = by(doctor(['--config', file, '--json', '--frames-timeout', '1s']), 'queue folder')!;
      expect(ro).toMatchObject({ level: 'fail', detail: expect.stringContaining('EROFS') });
      expect(ro.fix).toMatch(/^its file system is read-only or failing .*check dmesg and mount/);
    } finally {
      execFileSync('umount', [at]);
    }
  });

  it('a service user that does not exist on this machine fails (systemd could not start the unit), not "ready" without a line', () => {
    const user = 'presence-no-such-user';
    expect(spawnSync('id', ['-u', user]).status).not.toBe(0);
    const cap = wifiCapture(join(tmp, 'nouser.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 5 });
    const file = config('nouser', [`{ type: file, name: wifi, radio: wifi, path: ${cap.path} }`], broker.url);
    const r = doctor(['--config', file, '--service-user', user, '--json', '--frames-timeout', '1s']);
    expect(by(r, `service user (${user})`), r.text).toEqual({
      step: `service user (${user})`,
      level: 'fail',
      detail: `${user}, given with --service-user, is no user of this machine: systemd cannot start the service (status=217/USER)`,
      fix: `sudo useradd --system --no-create-home --shell /usr/sbin/nologin ${user}   (add --groups bluetooth for a Bluetooth capture; docs/field-guide.md, docs/deployment.md), or give --service-user the user the unit runs as`,
    });
    expect(r.code).toBe(1);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'run as root (sudo presence doctor), a password file the service user cannot read fails with the chown that fixes it, not "ready"',
    () => {
      // a folder the service user can enter (the suite's temporary folder is root's alone)
      const etc = mkdtempSync('/tmp/presence-doctor-etc-');
      chmodSync(etc, 0o755);
      try {
        const pw = join(etc, 'mqtt-password');
        writeFileSync(pw, 'secret\n', { mode: 0o600 }); // what scp as root leaves
        chmodSync(pw, 0o600);
        const cap = wifiCapture(join(etc, 'svc.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 5 });
        chmodSync(cap.path, 0o644);
        const file = join(etc, 'gateway.yaml');
        writeFileSync(
          file,
          [
            'gateway: { site: doc, zone: z, id: svc }',
            `sources: [{ type: file, name: wifi, radio: wifi, path: ${cap.path} }]`,
            `mqtt: { url: "${broker.url}", username: doc/svc, password_file: ${pw} }`,
            `queue: { dir: ${join(tmp, 'q-svc')} }`,
          ].join('\n'),
        );
        chmodSync(file, 0o644);
        const group = execFileSync('id', ['-gn', 'nobody'], { encoding: 'utf8' }).trim();
        const run = () => doctor(['--config', file, '--service-user', 'nobody', '--json', '--frames-timeout', '1s']);
        const r = run();
        expect(by(r, 'service user (nobody)'), r.text).toEqual({
          step: 'service user (nobody)',
          level: 'fail',
          detail: `nobody, who runs the service, cannot read mqtt.password_file ${pw}: the service would stop at its start (doctor runs as root, which reads every file)`,
          fix: `sudo chown root:${group} ${pw} && sudo chmod 0640 ${pw}`,
        });
        expect(r.code).toBe(1);
        // a folder the service user cannot enter: the chown alone would not do, and the fix says so
        chmodSync(etc, 0o711);
        const inner = join(etc, 'private');
        mkdirSync(inner, { mode: 0o700 });
        const pw2 = join(inner, 'mqtt-password');
        writeFileSync(pw2, 'secret\n', { mode: 0o600 });
        writeFileSync(file, readFileSync(file, 'utf8').replace(pw, pw2));
        expect(by(run(), 'service user (nobody)')?.fix).toBe(`sudo chown root:${group} ${pw2} && sudo chmod 0640 ${pw2} (and let nobody into ${inner})`);
        writeFileSync(file, readFileSync(file, 'utf8').replace(pw2, pw));
        chmodSync(etc, 0o755);
        // installed as the field guide says: read through the group
        execFileSync('chown', [`root:${group}`, pw]);
        chmodSync(pw, 0o640);
        expect(by(run(), 'service user (nobody)')?.level).toBe('ok');
        // a config file that is not the one the unit names is not checked so without --service-user
        expect(by(doctor(['--config', file, '--json', '--frames-timeout', '1s']), 'service user (nobody)')).toBeUndefined();
      } finally {
        rmSync(etc, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    "run as root, a queue folder the service user may write but holding root's window files (a run by hand as root) fails with the chown, as the gateway refuses to start on it",
    () => {
      const etc = mkdtempSync('/tmp/presence-doctor-queue-files-');
      chmodSync(etc, 0o755);
      try {
        const queue = join(etc, 'queue');
        const windows = join(queue, 'windows');
        mkdirSync(windows, { recursive: true });
        const group = execFileSync('id', ['-gn', 'nobody'], { encoding: 'utf8' }).trim();
        execFileSync('chown', ['-R', `nobody:${group}`, queue]);
        chmodSync(queue, 0o750);
        chmodSync(windows, 0o750);
        // root's window file, as a gateway run by hand as root leaves it
        const left = join(windows, '7.json');
        writeFileSync(left, '{}', { mode: 0o640 });
        const file = join(etc, 'gateway.yaml');
        writeFileSync(
          file,
          [
            'gateway: { site: doc, zone: z, id: qf }',
            'sources: [{ type: stdin, name: wifi, radio: wifi }]',
            `mqtt: { url: "${broker.url}" }`,
            `queue: { dir: ${queue} }`,
          ].join('\n'),
        );
        chmodSync(file, 0o644);
        const run = () => doctor(['--config', file, '--service-user', 'nobody', '--json', '--frames-timeout', '1s']);
        const r = run();
        expect(by(r, 'queue folder'), r.text).toEqual({
          step: 'queue folder',
          level: 'fail',
          detail: `${queue}: ${left} cannot be read by nobody, who runs the service (owner uid 0, mode 0640): the gateway would refuse to start, naming it`,
          fix: `sudo chown -R nobody:${group} ${queue}`,
        });
        // what the service would meet
        const gw = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, join(ROOT, 'scripts', 'presence.js'), 'gateway', '--config', file], {
          cwd: etc,
          encoding: 'utf8',
          timeout: 30_000,
          input: '',
        });
        expect(gw.status, gw.stderr).toBe(2);
        expect(gw.stderr).toContain(`${left}: owner uid 0, mode 0640`);
        execFileSync('chown', ['-R', `nobody:${group}`, queue]);
        expect(by(run(), 'queue folder')?.level).toBe('ok');
      } finally {
        rmSync(etc, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    'run as root, a queue folder the service user cannot write (root made it) fails with the chown that fixes it, not "ready"',
    () => {
      const etc = mkdtempSync('/tmp/presence-doctor-queue-');
      chmodSync(etc, 0o755);
      try {
        const cap = wifiCapture(join(etc, 'q.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 5 });
        chmodSync(cap.path, 0o644);
        const queue = join(etc, 'queue'); // not there yet: doctor, as root, makes it root's
        const file = join(etc, 'gateway.yaml');
        writeFileSync(
          file,
          [
            'gateway: { site: doc, zone: z, id: q }',
            `sources: [{ type: file, name: wifi, radio: wifi, path: ${cap.path} }]`,
            `mqtt: { url: "${broker.url}" }`,
            `queue: { dir: ${queue} }`,
          ].join('\n'),
        );
        chmodSync(file, 0o644);
        const group = execFileSync('id', ['-gn', 'nobody'], { encoding: 'utf8' }).trim();
        const run = () => doctor(['--config', file, '--service-user', 'nobody', '--json', '--frames-timeout', '1s']);
        const r = run();
        expect(by(r, 'queue folder'), r.text).toEqual({
          step: 'queue folder',
          level: 'fail',
          detail: `${queue} is writable by root, who runs doctor, but not by nobody, who runs the service: the gateway would stop at its start (EACCES)`,
          fix: `sudo chown -R nobody:${group} ${queue} && sudo chmod 0750 ${queue} (or set queue.dir: /var/lib/presence-gateway, the unit's StateDirectory, which systemd gives to nobody)`,
        });
        expect(r.code).toBe(1);
        // what the service would meet: the gateway, run as that user, stops at its start
        const gw = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, join(ROOT, 'scripts', 'presence.js'), 'gateway', '--config', file], {
          cwd: etc,
          encoding: 'utf8',
          timeout: 30_000,
        });
        expect(gw.status, gw.stderr).toBe(2);
        expect(gw.stderr).toMatch(/EACCES/);
        // the fix doctor gave fixes it
        execFileSync('chown', ['-R', `nobody:${group}`, queue]);
        chmodSync(queue, 0o750);
        const after = run();
        expect(by(after, 'queue folder')?.level, after.text).toBe('ok');
        // without a service user (not the unit's file, no --service-user) root's own check stands
        expect(by(doctor(['--config', file, '--json', '--frames-timeout', '1s']), 'queue folder')?.level).toBe('ok');
      } finally {
        rmSync(etc, { recursive: true, force: true });
      }
    },
  );

  it('a Wi-Fi capture command on an interface with no radio (lo): doctor says it is not a Wi-Fi interface, never to set it to monitor mode', () => {
    const r = doctor([
      '--config',
      config('lo', ['{ type: command, name: wifi, radio: wifi, command: "dumpcap -q -i lo -w -" }'], broker.url),
      '--json',
      '--frames-timeout',
      '2s',
    ]);
    const m = by(r, 'monitor mode (lo)')!;
    expect(m).toMatchObject({ level: 'fail', detail: 'lo is not a Wi-Fi interface (link type 772, loopback): it cannot hear probe requests' });
    expect(m.fix).not.toMatch(/iw dev lo/);
    expect(m.fix).toMatch(/monitor-mode interface/);
  });

  it.skipIf(!captures || !need('tshark', 'tshark', 'doctor'))(
    "real captures, and a capture tool printing TShark's dissection of them on stderr: no address of them in its report, plain or --json",
    () => {
      const wifi = join(captures!, 'wifi/iPhone11-B_anonymized.pcap');
      const ble = join(captures!, 'ble/take_2__ble_all_adv.pcap');
      const addresses = [...tsharkAddresses(wifi), ...tsharkAddresses(ble)];
      expect(addresses.length).toBeGreaterThan(10);
      // the wifi capture read as it is; the BLE one by a tool that, instead of the capture, prints
      // TShark's full dissection of it (addresses in TShark's own notations) on stderr and fails
      const file = config(
        'real',
        [
          `{ type: command, name: wifi, radio: wifi, command: "cat ${wifi}" }`,
          `{ type: command, name: ble, radio: ble, command: "tshark -n -r ${ble} -V >&2; exit 3" }`,
        ],
        broker.url,
      );
      const json = doctor(['--config', file, '--json', '--frames-timeout', '5s', '--ignore-fcs', '--log-level', 'trace']);
      const plain = doctor(['--config', file, '--frames-timeout', '5s', '--ignore-fcs', '--log-level', 'trace']);
      expect(by(json, 'frames arriving (wifi)')!.detail).toMatch(/^\d+ frames/);
      expect(by(json, 'frames arriving (ble)')).toMatchObject({ level: 'fail', output: expect.any(Array) });
      expect(by(json, 'frames arriving (ble)')!.output!.join('\n')).toMatch(/Address: <redacted>/);
      expect(plain.text).toContain('<redacted>');
      expect(scan('doctor --json', json.text, addresses, { hashLike: false })).toEqual([]);
      expect(scan('doctor', plain.text, addresses, { hashLike: false })).toEqual([]);
    },
    60_000,
  );
  it('a file source that is not a capture, or is damaged: what is wrong and where in fixed words, no byte of it', () => {
    // 0x3c 0x22 0xfb 0x01 0xa0 0x9e: an address's bytes where a capture header should be, then as a
    // pcapng block's type and length after a good header and frame
    const notCap = join(tmp, 'address-first.pcap');
    writeFileSync(notCap, Buffer.from([0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e, 0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e, 0, 0, 0, 0]));
    const r = doctor(['--config', config('notcapfile', [`{ type: file, name: f, radio: wifi, path: ${notCap} }`], broker.url), '--json']);
    expect(by(r, 'frames arriving (f)')).toMatchObject({
      level: 'fail',
      detail: `${notCap}: not a valid capture: not_a_capture at byte offset 0, after 0 frames`,
    });
    const good = readFileSync(
      wifiCapture(join(tmp, 'good-then-bad.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 2 }).path,
    );
    const damaged = join(tmp, 'good-then-bad.pcap');
    // a pcap record header whose captured length is address bytes (more than 16 MiB)
    writeFileSync(damaged, Buffer.concat([good, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e, 0xfb, 0x01])]));
    const d = doctor(['--config', config('damagedfile', [`{ type: file, name: f, radio: wifi, path: ${damaged} }`], broker.url), '--json']);
    expect(by(d, 'frames arriving (f)')).toMatchObject({
      level: 'fail',
      detail: expect.stringMatching(
        /^\S+good-then-bad\.pcap: not a valid capture: \w+ at byte offset \d+, after 2 frames \(2 countable: the gateway counts them, then the source fails\)$/,
      ),
    });
    // the frames before the damage are counted: the gateway would not publish only zeros
    expect(by(d, 'a source that delivers frames')).toMatchObject({ level: 'ok', detail: 'f delivered frames' });
    expect(d.code).toBe(1); // the damaged file still fails doctor
    for (const text of [r.text, d.text]) expect(text.toLowerCase().replace(/0x|[^0-9a-f]/g, '')).not.toMatch(/3c22fb01|01fb223c|1fb223c/);
    expect(d.text).not.toMatch(/33235516|claims/); // 0x01fb223c as a number: no value read from the file
  });

  it.skipIf(!existsSync('/proc/self/coredump_filter'))(
    'doctor keeps its memory out of core dumps as the gateway does: its capture commands (live frames) inherit coredump_filter 0 and a core file size limit of 0',
    () => {
      const good = wifiCapture(join(tmp, 'filter.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 2 }).path;
      const seen = join(tmp, 'filter-seen.txt');
      const tool = join(tmp, 'filter-tool.sh');
      writeFileSync(tool, `#!/bin/sh\ncat /proc/self/coredump_filter > ${seen}\ngrep 'Max core file size' /proc/self/limits >> ${seen}\nexec cat ${good}\n`, {
        mode: 0o755,
      });
      const r = doctor([
        '--config',
        config('filter', [`{ type: command, name: w, radio: wifi, command: [${tool}] }`], broker.url),
        '--json',
        '--frames-timeout',
        '5s',
      ]);
      expect(by(r, 'frames arriving (w)')?.level, r.text).toBe('ok');
      const [filter, limit] = readFileSync(seen, 'utf8').trim().split('\n');
      expect(Number.parseInt(filter!, 16)).toBe(0);
      // and no core at all: the core file size limit, soft and hard, is 0
      expect(limit).toMatch(/^Max core file size\s+0\s+0\s+bytes$/);
    },
  );

  it('a command whose output turns damaged after countable frames: a warning naming the damage, and the frames count as delivered', () => {
    const good = wifiCapture(join(tmp, 'cmd-good.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 2 }).path;
    const tool = join(tmp, 'good-then-bad.sh');
    // a pcap record header whose captured length is more than 16 MiB after the good frames
    writeFileSync(tool, `#!/bin/sh\ncat ${good}\nprintf '\\000\\000\\000\\000\\000\\000\\000\\000\\377\\377\\377\\177\\000\\000\\000\\000'\n`, { mode: 0o755 });
    const r = doctor([
      '--config',
      config('cmddamaged', [`{ type: command, name: w, radio: wifi, command: [${tool}] }`], broker.url),
      '--json',
      '--frames-timeout',
      '5s',
    ]);
    expect(by(r, 'frames arriving (w)'), r.text).toMatchObject({
      level: 'warn',
      detail: expect.stringMatching(/; 2 countable; then the command's output is not a valid capture: \w+ at byte offset \d+, after 2 frames$/),
    });
    expect(by(r, 'a source that delivers frames')).toMatchObject({ level: 'ok', detail: 'w delivered frames' });
    // the frames and the damage in one write (one read for doctor): the same verdict
    const combined = join(tmp, 'cmd-good-then-bad.pcap');
    writeFileSync(combined, Buffer.concat([readFileSync(good), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0])]));
    const once = doctor([
      '--config',
      config('cmddamaged1', [`{ type: command, name: w, radio: wifi, command: [cat, ${combined}] }`], broker.url),
      '--json',
      '--frames-timeout',
      '5s',
    ]);
    expect(by(once, 'frames arriving (w)'), once.text).toMatchObject({
      level: 'warn',
      detail: expect.stringMatching(/; 2 countable; then the command's output is not a valid capture: oversized_record at byte offset \d+, after 2 frames$/),
    });
    // how long it was read: the command ended by itself well within the 5 s, and says so
    expect(by(once, 'frames arriving (w)')?.detail).toMatch(/^2 frames in \d+\.\ds \(the command ended\) \(link types 127 /);
    const stays = doctor([
      '--config',
      config('cmdstays', [`{ type: command, name: w, radio: wifi, command: "cat ${good}; sleep 30" }`], broker.url),
      '--json',
      '--frames-timeout',
      '1s',
    ]);
    expect(by(stays, 'frames arriving (w)'), stays.text).toMatchObject({ level: 'ok', detail: expect.stringMatching(/^2 frames in 1s \(link types 127 /) });
  });

  it('a command that writes no byte, not even a capture file header, is told apart from one that wrote its header and no frame', () => {
    const good = wifiCapture(join(tmp, 'hdr-only.pcap'), { devices: 1, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 1 }).path;
    const hdr = join(tmp, 'hdr-only-header.pcap');
    writeFileSync(hdr, readFileSync(good).subarray(0, 24)); // the pcap file header alone
    const r = doctor([
      '--config',
      config(
        'silent',
        [
          `{ type: command, name: hung, radio: wifi, command: "sleep 30" }`,
          `{ type: command, name: quiet, radio: wifi, command: "cat ${hdr}; sleep 30" }`,
          // ends at once, exit 0, nothing written (its capture went to a file): it did not hang, and -U is no fix
          `{ type: command, name: gone, radio: wifi, command: "cat ${hdr} > /dev/null" }`,
          // its header, then it ends by itself: no channel or adapter to check, the command stopped
          `{ type: command, name: brief, radio: wifi, command: "cat ${hdr}" }`,
        ],
        broker.url,
      ),
      '--json',
      '--frames-timeout',
      '1s',
    ]);
    expect(by(r, 'frames arriving (hung)'), r.text).toMatchObject({
      level: 'fail',
      detail: 'no byte in 1s, not even a capture file header: the command hangs or holds its output back',
      fix: expect.stringMatching(/^run the command by hand .*tcpdump needs -U/),
    });
    const gone = by(r, 'frames arriving (gone)')!;
    expect(gone, r.text).toMatchObject({
      level: 'fail',
      detail: expect.stringMatching(
        /^no byte in \d+\.\ds \(the command ended\), not even a capture file header: the command ended by itself with exit code 0 without writing a capture to its standard output$/,
      ),
      fix: expect.stringMatching(/^run the command by hand: a capture command writes the capture to its standard output and goes on until it is stopped /),
    });
    expect(gone.fix).not.toMatch(/needs -U/);
    expect(by(r, 'frames arriving (brief)'), r.text).toMatchObject({
      level: 'fail',
      detail: expect.stringMatching(/^a capture file header but no frames in \d+\.\ds \(the command ended\)$/),
      fix: expect.stringMatching(/^the command stopped by itself \(exit code 0\) after its capture file header: run it by hand to see why; /),
    });
    expect(by(r, 'frames arriving (quiet)'), r.text).toMatchObject({
      level: 'fail',
      detail: 'a capture file header but no frames in 1s',
      fix: expect.stringMatching(/monitor mode and up, on a busy channel/),
    });
  });

  it("a capture tool's error names the configured interface readably (wlan0mon, taken for base64 before); an address beside it is still redacted", () => {
    const dir = join(tmp, 'iface-tool');
    mkdirSync(dir, { recursive: true });
    const tool = join(dir, 'tcpdump');
    writeFileSync(tool, '#!/bin/sh\necho "tcpdump: wlan0mon: No such device exists (3c:22:fb:01:a0:9e)" >&2\nexit 1\n', { mode: 0o755 });
    const r = doctor([
      '--config',
      config('ifacename', [`{ type: command, name: w, radio: wifi, command: [${tool}, -i, wlan0mon, -U, -w, "-"] }`], broker.url),
      '--json',
      '--frames-timeout',
      '2s',
    ]);
    const f = by(r, 'frames arriving (w)')!;
    expect(f, r.text).toMatchObject({ level: 'fail', detail: 'exited with code 1: tcpdump: wlan0mon: No such device exists <redacted>' });
    expect(f.output).toEqual(['tcpdump: wlan0mon: No such device exists <redacted>']);
    expect(r.text.toLowerCase()).not.toMatch(/3c:22|a0:9e|3c22fb/);
  });

  it('a capture tool run through sudo: its rights are what sudo grants, not judged from the file or from who runs doctor', () => {
    const dir = join(tmp, 'sudo-tool');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'sudo'), '#!/bin/sh\nwhile [ "$(printf %.1s "$1")" = - ]; do shift; done\nexec "$@"\n', { mode: 0o755 });
    writeFileSync(join(dir, 'tcpdump'), '#!/bin/sh\necho "tcpdump: wlan0mon: No such device exists" >&2\nexit 1\n', { mode: 0o755 });
    const r = doctor(
      [
        '--config',
        config('viasudo', ['{ type: command, name: w, radio: wifi, command: "sudo -n tcpdump -i wlan0mon -U -w -" }'], broker.url),
        '--json',
        '--frames-timeout',
        '2s',
      ],
      `${dir}:${process.env.PATH}`,
    );
    expect(by(r, 'capture tool sudo'), r.text).toBeUndefined();
    expect(by(r, 'capture permission (tcpdump)'), r.text).toMatchObject({
      level: 'ok',
      detail: `${join(dir, 'tcpdump')}; run through sudo, whose rules grant the capture rights: not checked here (the gateway's user needs a rule that asks no password, e.g. sudo -n -l ${join(dir, 'tcpdump')} as that user)`,
    });
  });

  it("a capture tool run through sudo -u as another user has that user's rights: judged by the file's capabilities, not as run through sudo", () => {
    expect(parseCaptureCommand('sudo -n -u presence tcpdump -i wlan0mon')).toMatchObject({ program: 'tcpdump', runAs: 'presence', iface: 'wlan0mon' });
    expect(parseCaptureCommand('sudo --user=presence tcpdump')).toMatchObject({ runAs: 'presence' });
    expect(parseCaptureCommand('sudo -n tcpdump').runAs).toBeUndefined();
    // short options in one word, the last taking the next word or the rest of its own
    expect(parseCaptureCommand('sudo -nu presence tcpdump -i wlan0mon')).toMatchObject({ program: 'tcpdump', runAs: 'presence', iface: 'wlan0mon' });
    expect(parseCaptureCommand('sudo -nupresence tcpdump')).toMatchObject({ program: 'tcpdump', runAs: 'presence' });
    expect(parseCaptureCommand('stdbuf -oL -eL nice -n5 tcpdump -i wlan0mon')).toMatchObject({
      program: 'tcpdump',
      iface: 'wlan0mon',
      wrappers: ['stdbuf', 'nice'],
    });
    expect(parseCaptureCommand('doas -u _capture dumpcap -i wlan1')).toMatchObject({ program: 'dumpcap', runAs: '_capture', iface: 'wlan1' });
    const dir = join(tmp, 'sudo-as-user');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'sudo'), '#!/bin/sh\nwhile [ "$(printf %.1s "$1")" = - ]; do shift; done\nexec "$@"\n', { mode: 0o755 });
    writeFileSync(join(dir, 'tcpdump'), '#!/bin/sh\necho "tcpdump: wlan0mon: No such device exists" >&2\nexit 1\n', { mode: 0o755 });
    const r = doctor(
      [
        '--config',
        config('viasudou', ['{ type: command, name: w, radio: wifi, command: "sudo -n -u presence tcpdump -i wlan0mon -U -w -" }'], broker.url),
        '--json',
        '--frames-timeout',
        '2s',
      ],
      `${dir}:${process.env.PATH}`,
    );
    const perm = by(r, 'capture permission (tcpdump)');
    expect(perm?.detail, r.text).not.toMatch(/run through sudo|running as root/);
    expect(perm, r.text).toMatchObject({
      level: 'fail',
      detail: `run as presence (sudo -u), not root, and ${join(dir, 'tcpdump')} lacks cap_net_raw,cap_net_admin`,
    });
  });

  it('a capture program named after an address is <redacted> in every line of doctor, as in the log', () => {
    const r = doctor([
      '--config',
      config('macname', ['{ type: command, name: w, radio: wifi, command: [3c22fb01a09e-cap, -i, wlan0mon] }'], broker.url),
      '--json',
      '--frames-timeout',
      '2s',
    ]);
    expect(by(r, 'capture tool <redacted>'), r.text).toMatchObject({ level: 'fail', detail: '<redacted> is not installed' });
    expect(r.text.toLowerCase()).not.toMatch(/3c22fb|01a09e/);
  });

  /** doctor on a config whose one source is the simulator as a live capture command (no local capture tool). */
  const simulatorAsCommand = (name: string, source: string, radio: 'wifi' | 'ble') => {
    const cli = join(import.meta.dirname, '..', 'scripts', 'presence.js');
    const command = `[${process.execPath}, ${cli}, simulate, quiet-night, --live, --format, pcap, --radio, ${radio}, --speed, '60', --duration, 10m]`;
    return doctor([
      '--config',
      config(name, [`{ type: command, name: ${source}, radio: ${radio}, command: ${command} }`], broker.url),
      '--json',
      '--frames-timeout',
      '20s',
    ]);
  };

  it('a Wi-Fi command that is not a local capture tool (here the simulator; ssh to a remote sniffer alike): monitor mode and capture rights are not judged, the frames sampled are', () => {
    const r = simulatorAsCommand('simlive', 'w', 'wifi');
    const m = by(r, 'monitor mode')!;
    expect(m.level, r.text).toBe('ok');
    expect(m.detail).toMatch(/^not checked: the Wi-Fi capture command runs node, not a local capture tool \(tcpdump, dumpcap, tshark\)/);
    expect(by(r, 'capture tool node')).toMatchObject({ level: 'ok' });
    expect(by(r, 'capture permission (node)')).toBeUndefined();
    expect(by(r, 'frames arriving (w)')?.level, r.text).toBe('ok');
  });

  it.skipIf(hasRadio)(
    'a BLE command that is not a local capture tool (the simulator here): no Bluetooth adapter of this machine is asked for, the frames sampled judge it',
    () => {
      const r = simulatorAsCommand('simble', 'b', 'ble');
      const b = by(r, 'bluetooth adapter')!;
      expect(b.level, r.text).toBe('ok');
      expect(b.detail).toMatch(/^not checked: the Bluetooth capture command runs node, not a local capture tool/);
      expect(by(r, 'frames arriving (b)')?.level, r.text).toBe('ok');
      // a local tool on a Bluetooth interface this machine does not have is still failed
      const local = doctor([
        '--config',
        config('dumpcap-ble', ['{ type: command, name: b, radio: ble, command: "dumpcap -q -i bluetooth0 -w -" }'], broker.url),
        '--json',
        '--frames-timeout',
        '1s',
      ]);
      expect(by(local, 'bluetooth adapter')?.level).toBe('fail');
    },
  );

  it('a command whose output is not a capture: what is wrong and where in fixed words, no byte of it', () => {
    const tool = join(tmp, 'not-a-capture.sh');
    // 0x3c 0x22 0xfb 0x01 0xa0 0x9e: an address's bytes where a capture header should be
    writeFileSync(
      tool,
      "#!/bin/sh\nprintf '\\074\\042\\373\\001\\240\\236\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000'\n",
      { mode: 0o755 },
    );
    const r = doctor([
      '--config',
      config('notcap', [`{ type: command, name: w, radio: wifi, command: [${tool}] }`], broker.url),
      '--json',
      '--frames-timeout',
      '5s',
    ]);
    const f = by(r, 'frames arriving (w)')!;
    expect(f.level).toBe('fail');
    expect(f.detail).toBe("the command's output is not a valid capture: not_a_capture at byte offset 0, after 0 frames");
    // the command ran: what to change is what it writes, not its interface or rights
    expect(f.fix).toMatch(
      /^the command writes something other than pcap or pcapng to its standard output .*\(tcpdump -U -w -, dumpcap -q -w -, tshark -w -\)$/,
    );
    expect(r.text.toLowerCase().replace(/0x|[^0-9a-f]/g, '')).not.toMatch(/3c22fb01|01fb223c/);
  });
});

describe('presence doctor: a clock that is not set', () => {
  afterAll(() => vi.restoreAllMocks());
  it('fails "clock synchronised" when the clock reads 1970 (a Raspberry Pi before NTP), whatever the time tools say', async () => {
    vi.spyOn(Date, 'now').mockImplementation(() => Date.UTC(1970, 0, 8, 0, 0, 5));
    const r = await checkClock();
    expect(r).toMatchObject({ step: 'clock synchronised', level: 'fail' });
    expect(r.detail).toMatch(/^the clock reads 1970-01-08T\S+, outside 2000-2099: it is not set, and the gateway counts no window until it is$/);
    expect(r.fix).toMatch(/timedatectl set-ntp true/);
    vi.restoreAllMocks();
    expect((await checkClock()).detail).not.toMatch(/1970/);
  });

  // systemd-timesyncd's flag file answers before chrony is asked: on such a machine this cannot be shown.
  it.skipIf(existsSync('/run/systemd/timesync/synchronized'))(
    'chrony installed but chronyd not running (no systemd): says so and how to start it, not "no chrony on this machine" and to install it',
    async () => {
      // timedatectl without systemd as PID 1 (a container, an init other than systemd), and chronyc
      // without its daemon: each writes what the real one writes there and exits 1.
      const bin = mkdtempSync(join(tmpdir(), 'presence-doctor-clock-'));
      writeFileSync(
        join(bin, 'timedatectl'),
        '#!/bin/sh\necho "System has not been booted with systemd as init system (PID 1). Can\'t operate." >&2\nexit 1\n',
        {
          mode: 0o755,
        },
      );
      writeFileSync(join(bin, 'chronyc'), '#!/bin/sh\necho "506 Cannot talk to daemon"\nexit 1\n', { mode: 0o755 });
      const path = process.env.PATH;
      process.env.PATH = `${bin}:${path}`;
      try {
        const r = await checkClock();
        expect(r).toEqual({
          step: 'clock synchronised',
          level: 'warn',
          detail:
            'cannot tell: no systemd (timedatectl), and chrony is installed but chronyc tracking got no answer from chronyd (506 Cannot talk to daemon): nothing here says the clock is synchronised',
          fix: 'start chronyd: sudo systemctl enable --now chrony (chronyd on some systems; without systemd: sudo chronyd), then `chronyc tracking` must show "Leap status : Normal"; the gateway needs network access to an NTP server (UDP port 123)',
        });
      } finally {
        process.env.PATH = path;
        rmSync(bin, { recursive: true, force: true });
      }
    },
  );
});

describe('presence doctor: a Wi-Fi adapter named after its address', () => {
  // systemd names a USB Wi-Fi adapter wlx + its MAC on Debian (wlx00c0ca9a1b2c); the log has shown
  // such a name as <redacted>, the monitor-mode check, also on the gateway page, showed it whole.
  const net = mkdtempSync(join(tmpdir(), 'presence-doctor-net-'));
  afterAll(() => rmSync(net, { recursive: true, force: true }));
  const iface = (name: string, type: number, wireless: boolean) => {
    mkdirSync(join(net, name, ...(wireless ? ['phy80211'] : [])), { recursive: true });
    writeFileSync(join(net, name, 'type'), `${type}\n`);
  };
  iface('lo', 772, false);
  iface('eth0', 1, false);
  iface('wlx00c0ca9a1b2c', 1, true);
  const wifi = (command: string) => gatewayConfig({ site: 's', zone: 'z', id: 'g', source: [`cmd:${command}`], mqttUrl: 'mqtt://127.0.0.1:1883' });

  it('is <redacted> in every monitor-mode line, and the fix names it IFACE and says how to find it', () => {
    const shown = [
      ...checkMonitorMode(wifi('tcpdump -i wlan0mon -w -'), net),
      ...checkMonitorMode(wifi('tcpdump -i wlx00c0ca9a1b2c -w -'), net),
      ...checkMonitorMode(null, net),
    ];
    expect(shown.map((r) => r.detail)).toEqual([
      'interface wlan0mon does not exist (present: <redacted>, eth0, lo)',
      '<redacted> exists but is not in monitor mode (link type 1)',
      'Wi-Fi interfaces <redacted> but none in monitor mode',
    ]);
    for (const r of shown) {
      expect(r.step).not.toMatch(/00c0ca|wlx/);
      expect(r.fix).toMatch(
        /^sudo ip link set IFACE down && sudo iw dev IFACE set type monitor .*; IFACE: the Wi-Fi adapter, named after its address \(iw dev lists it\)$/,
      );
      expect(scan('doctor', JSON.stringify(r), [Uint8Array.from([0x00, 0xc0, 0xca, 0x9a, 0x1b, 0x2c])], { hashLike: false })).toEqual([]);
    }
    // a name that holds no address is shown as it is
    iface('wlan1', 1, true);
    expect(checkMonitorMode(null, net)[0]).toMatchObject({ detail: 'Wi-Fi interfaces <redacted>, wlan1 but none in monitor mode' });
  });

  // A fix is a command to type: `-i <redacted>` there was of no use (a shell even reads it as a
  // redirection). An interface named after its address is IFACE, with how to find it, as above;
  // any other interface name is no secret and is printed as it is.
  it('a fix naming an interface says IFACE for one named after its address, never -i <redacted>, and the name of any other', () => {
    const net2 = mkdtempSync(join(tmpdir(), 'presence-doctor-net-'));
    try {
      const add = (name: string, type: number) => {
        mkdirSync(join(net2, name, 'phy80211'), { recursive: true });
        writeFileSync(join(net2, name, 'type'), `${type}\n`);
      };
      mkdirSync(join(net2, 'eth0'));
      writeFileSync(join(net2, 'eth0', 'type'), '1\n');
      add('wlx00c0ca9a1b2c', 803); // a USB adapter put in monitor mode keeps its name
      const [named] = checkMonitorMode(wifi('tcpdump -i eth0 -w -'), net2);
      expect(named).toMatchObject({ step: 'monitor mode (eth0)', level: 'fail' });
      expect(named.fix).toBe(
        'capture from the monitor-mode interface instead: -i IFACE in the Wi-Fi capture command; IFACE: the monitor-mode interface, named after its address (iw dev lists it)',
      );
      expect(scan('doctor', JSON.stringify(named), [Uint8Array.from([0x00, 0xc0, 0xca, 0x9a, 0x1b, 0x2c])], { hashLike: false })).toEqual([]);
      rmSync(join(net2, 'wlx00c0ca9a1b2c'), { recursive: true });
      add('wlan0mon', 803);
      expect(checkMonitorMode(wifi('tcpdump -i eth0 -w -'), net2)[0]!.fix).toBe(
        'capture from the monitor-mode interface instead: -i wlan0mon in the Wi-Fi capture command',
      );
    } finally {
      rmSync(net2, { recursive: true, force: true });
    }
  });

  it("the fix for a capture tool's error names the -i interface, or IFACE for one named after its address, in every form of -i", () => {
    const commands = ['tcpdump -i wlx00c0ca9a1b2c -w -', 'tcpdump -iwlx00c0ca9a1b2c -w -', 'tcpdump --interface=wlx00c0ca9a1b2c -w -'];
    for (const command of commands) {
      for (const line of ['tcpdump: wlx00c0ca9a1b2c: No such device exists', 'tcpdump: wlx00c0ca9a1b2c: That device is not up']) {
        const fix = captureFix([line], command, 1);
        expect(fix, command).toMatch(/ IFACE .*; IFACE: the capture command's -i interface, named after its address \(ip link lists it\)$/);
        expect(fix).not.toMatch(/redacted|00c0ca|wlx/);
      }
    }
    expect(captureFix(['tcpdump: wlan0mon: That device is not up'], 'tcpdump --interface=wlan0mon -w -', 1)).toBe(
      'bring the interface up: sudo ip link set wlan0mon up',
    );
    expect(captureFix(['tcpdump: no such device'], 'tcpdump -w -', 1)).toMatch(/^the interface is not there: /);
  });

  it("keeps the configured interface in the tool's own lines whichever way -i is written (it was <redacted> after --interface=)", () => {
    for (const command of ['dumpcap -i wlan0mon -w -', 'dumpcap -iwlan0mon -w -', 'dumpcap --interface wlan0mon -w -', 'dumpcap --interface=wlan0mon -w -']) {
      expect(parseCaptureCommand(command).iface, command).toBe('wlan0mon');
      expect(toolOutput('dumpcap: There is no device named "wlan0mon".\n', configuredNames(command)), command).toEqual([
        'dumpcap: There is no device named "wlan0mon".',
      ]);
    }
  });
});
