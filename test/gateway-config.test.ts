// Gateway configuration (file + flags, ajv messages), the durable queue and window alignment.
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { clockOf, ConfigError, loadConfig, parseDuration, parseSourceSpec, startFileError } from '../gateway/config.ts';
import { EMPTY_SECRET_HINT } from '../scripts/lib/usage.ts';
import { loadConfig as loadAggregator } from '../aggregator/config.ts';
import { WindowQueue, QueueFolderError, QueueLockedError } from '../gateway/queue.ts';
import { Publisher } from '../gateway/publisher.ts';
import { freePort } from './support/ports.ts';
import { alignDown, OpenWindow } from '../gateway/window.ts';
import { redactAddresses } from '../gateway/status.ts';
import { MAX_WINDOW_MS, quantisedP, sketchEpsilon, type CountsMessage } from '../contract/index.ts';

const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

const base = { site: 's1', zone: 'z1', id: 'g1', mqttUrl: 'mqtt://127.0.0.1:1883' };

describe('gateway config', () => {
  it('works from flags alone (the issue command line)', () => {
    const cfg = loadConfig({ ...base, source: ['pcap:/tmp/x.pcap'], speed: 'max', window: '60s' }, {});
    expect(cfg.gateway).toMatchObject({ site: 's1', zone: 'z1', id: 'g1', window: '60s', ignore_fcs: false, clock: 'auto' });
    expect(cfg.sources).toEqual([{ type: 'file', name: 'file0', path: '/tmp/x.pcap', speed: 'max' }]);
    expect(cfg.mqtt).toMatchObject({ url: 'mqtt://127.0.0.1:1883', keepalive: '30s', reject_unauthorized: true });
    expect(cfg.queue.max_windows).toBe(100_000);
    expect(clockOf(cfg)).toBe('capture');
  });

  it('reads YAML and JSON, resolves paths against the file, and flags override the file', () => {
    const yaml = join(tmp, 'gw.yaml');
    writeFileSync(
      yaml,
      [
        'gateway: { site: park, zone: gate-a, id: gw-01, window: 30s, rssi_min_dbm: -90 }',
        'sources:',
        '  - { type: command, name: wifi, radio: wifi, command: "tcpdump -i wlan0mon -U -w -" }',
        '  - { type: command, name: ble, radio: ble, command: [dumpcap, "-i", bluetooth0, "-w", "-"] }',
        'mqtt: { url: "mqtts://broker:8883", ca: certs/ca.pem, username: gw }',
        'queue: { dir: queue, max_windows: 10 }',
      ].join('\n'),
    );
    const cfg = loadConfig({ config: yaml, window: '5', ignoreFcs: true }, { MQTT_PASSWORD: 'pw' });
    expect(cfg.gateway.window).toBe('5s');
    expect(cfg.gateway.rssi_min_dbm).toBe(-90);
    expect(cfg.gateway.ignore_fcs).toBe(true);
    expect(cfg.sources.map((s) => s.name)).toEqual(['wifi', 'ble']);
    expect(cfg.sources[0]).toMatchObject({ restart_min: '1s', restart_max: '60s' });
    expect(cfg.mqtt.ca).toBe(join(tmp, 'certs', 'ca.pem'));
    expect(cfg.mqtt.password).toBe('pw');
    expect(cfg.queue.dir).toBe(join(tmp, 'queue'));
    expect(clockOf(cfg)).toBe('wall');

    const json = join(tmp, 'gw.json');
    writeFileSync(json, JSON.stringify({ gateway: { site: 'a', zone: 'b', id: 'c' }, sources: [{ type: 'stdin' }], mqtt: { url: 'mqtt://h' } }));
    const j = loadConfig({ config: json, site: 'override' }, {});
    expect(j.gateway.site).toBe('override');
    expect(j.sources[0]).toMatchObject({ type: 'stdin', name: 'stdin0' });
  });

  it('names a --source holding a URL with credentials without them (a broker URL pasted there: it was printed whole)', () => {
    for (const spec of ['mqtt://u:Secr3t@broker:1883', 'gw=mqtt://u:Secr3t@broker', 'pcap:mqtt://u:Secr3t@broker:1883', 'file:http://u:Secr3t@h/x.pcap']) {
      const lines = problems(() => loadConfig({ ...base, source: [spec] }, {}));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^--source "[^"]*(broker|h\/x\.pcap)/);
      expect(lines[0]).not.toMatch(/Secr3t/);
    }
  });

  it('refuses the same file or the same command given as two sources (every frame would be counted twice: they were named a and a-1 and both read)', () => {
    const f = join(tmp, 'same.pcap');
    expect(problems(() => loadConfig({ ...base, source: [`pcap:${f}`, 'pcap:other.pcap', `pcap:${f}`] }, {}))).toEqual([
      `sources[2]: the same file as sources[0] (${f}), in the order the sources are given (--source flags or the file's sources): every frame it captures would be counted twice; give it once`,
    ]);
    // a relative path is the same file as its absolute form
    expect(problems(() => loadConfig({ ...base, source: [`pcap:${f}`, `pcap:${relative(process.cwd(), f)}`] }, {}))[0]).toMatch(
      /^sources\[1\]: the same file as sources\[0\]/,
    );
    const twice = problems(() => loadConfig({ ...base, source: ['cmd:tcpdump -i wlan0mon -w -', 'cmd:tcpdump  -i wlan0mon -w - '] }, {}));
    expect(twice).toEqual([
      "sources[1]: the same command as sources[0], in the order the sources are given (--source flags or the file's sources): every frame it captures would be counted twice; give it once",
    ]);
    // a symlink (a serial sniffer's /dev/serial/by-id/... beside its /dev/ttyACM0) or a hard link is the same file: two readers split its frames
    writeFileSync(f, '');
    const link = join(tmp, 'same-link.pcap');
    rmSync(link, { force: true });
    symlinkSync(f, link);
    expect(problems(() => loadConfig({ ...base, source: [`pcap:${f}`, `pcap:${link}`] }, {}))).toEqual([
      `sources[1]: the same file as sources[0] (${link} is ${f}), in the order the sources are given (--source flags or the file's sources): every frame it captures would be counted twice; give it once`,
    ]);
    const hard = join(tmp, 'same-hard.pcap');
    rmSync(hard, { force: true });
    linkSync(f, hard);
    expect(problems(() => loadConfig({ ...base, source: [`pcap:${hard}`, `pcap:${f}`] }, {}))[0]).toMatch(
      /^sources\[1\]: the same file as sources\[0\] \(.* is .*same-hard\.pcap\)/,
    );
    // /dev/stdin beside stdin
    if (existsSync('/dev/stdin'))
      expect(problems(() => loadConfig({ ...base, source: ['stdin', 'pcap:/dev/stdin'] }, {}))[0]).toMatch(
        /^sources\[1\]: the same file as sources\[0\] \(\/dev\/stdin is stdin\)/,
      );
    // the same file under two radio labels is still read twice (a label filters nothing); other files and commands are fine
    expect(loadConfig({ ...base, source: [`pcap:${f}`, 'cmd:tcpdump -i wlan0mon -w -', 'cmd:tcpdump -i wlan1mon -w -'] }, {}).sources).toHaveLength(3);
  });

  it("estimator.burst_addresses: 7 unless set, from the file or --burst-addresses, 1 to 64, and the gateway's windows take it", async () => {
    expect(loadConfig({ ...base, source: ['stdin'] }, {}).estimator.burst_addresses).toBe(7);
    const yaml = join(tmp, 'burst.yaml');
    writeFileSync(yaml, 'gateway: { site: s, zone: z, id: g }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://h" }\nestimator: { burst_addresses: 2.8 }\n');
    expect(loadConfig({ config: yaml }, {}).estimator.burst_addresses).toBe(2.8);
    expect(loadConfig({ config: yaml, burstAddresses: '2.4' }, {}).estimator.burst_addresses).toBe(2.4);
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], burstAddresses: '0.5' }, {}))[0]).toMatch(
      /^--burst-addresses \(estimator\.burst_addresses\): must be .*1.*\(got "?0\.5"?\)$/,
    );
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], burstAddresses: 'many' }, {}))[0]).toMatch(
      /^--burst-addresses \(estimator\.burst_addresses\)/,
    );
    const { Gateway } = await import('../gateway/gateway.ts');
    const gw = new Gateway({ config: loadConfig({ config: yaml }, {}) });
    expect((gw as unknown as { windowOpts: { burstAddresses?: number } }).windowOpts.burstAddresses).toBe(2.8);
  });

  it('counts that are no sensible bound are refused naming the flag or key: the queue of windows, the aggregator batch and buffer', () => {
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], queueMax: '99999999999999999999' } as never, {}))).toEqual([
      '--queue-max (queue.max_windows): must be <= 100000000 (got 100000000000000000000)',
    ]);
    expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://h:1883', batchSize: '99999999999999999999' } as never, {}))).toEqual([
      '--batch-size (batch.size): must be <= 1000000 (got 100000000000000000000)',
    ]);
    // YAML's .inf, .nan and 1e400 are named as such, not as the null JSON makes of them
    const inf = join(tmp, 'inf.yaml');
    writeFileSync(
      inf,
      'gateway: { site: s, zone: z, id: g, window: 1e400 }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://h" }\nprivacy: { epsilon: .inf }\n',
    );
    expect(problems(() => loadConfig({ config: inf }, {}))).toEqual([
      `gateway.window: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got Infinity): write it with its unit (ms, s, m, h or d)`,
      `privacy.epsilon: must be <= 100 (got Infinity)`,
    ]);
    // below 0.000001 the noise dwarfs any count, and its sampler drew none at all for an epsilon whose
    // rate underflows (test/gateway-privacy.test.ts)
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], privacyEpsilon: '1e-300' } as never, {}))).toEqual([
      '--privacy-epsilon (privacy.epsilon): must be >= 0.000001 (got 1e-300)',
    ]);
    expect(loadConfig({ ...base, source: ['stdin'], privacyEpsilon: '0.000001' } as never, {}).privacy.epsilon).toBe(0.000001);
    // a retention influx.create could not create is said at start, not at the first database to create
    expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://h:1883', influxCreate: true, influxRetention: '200000d' } as never, {}))).toEqual([
      '--influx-retention (influx.retention): must be at most 106751d (about 292 years: InfluxDB keeps a duration in 64-bit nanoseconds), for what influx.create creates (got 200000d)',
    ]);
    expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://h:1883', influxCreate: true, influxRetention: '90m' } as never, {}))[0]).toMatch(
      /^--influx-retention \(influx\.retention\): must be whole hours or days, at least 2h/,
    );
    expect(loadAggregator({ mqttUrl: 'mqtt://h:1883', influxCreate: true, influxRetention: '36h' } as never, {}).influx.retention).toBe(36 * 3_600_000);
    // a batch larger than the buffer: the message says which two settings to change
    expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://h:1883', batchSize: '50000' } as never, {}))[0]).toMatch(
      /^batch\.max_buffer: must be at least batch\.size \(50000\) \(got 30000\); raise batch\.max_buffer \(--max-buffer\) or lower batch\.size \(--batch-size\)$/,
    );
  });

  it('the aggregator names where a value it refuses after the schema came from: the file and its key, the flag or the variable', () => {
    const where = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        if (e instanceof ConfigError) return { where: e.where, problems: e.problems };
        throw e;
      }
      throw new Error('expected a ConfigError');
    };
    const file = join(tmp, 'agg-retention.yaml');
    writeFileSync(
      file,
      'aggregator:\n  mqtt: { url: "mqtt://h:1883" }\n  influx: { url: "http://h:8086", api: v1, database: p, create: true, retention: 90m }\n  batch: { flush_interval: 30d }\n',
    );
    // from the file: the file and the key as written there (it had said "(--influx-retention)", a flag never given)
    const fromFile = where(() => loadAggregator({ config: file }, {}));
    expect(fromFile.where).toBe(file);
    expect(fromFile.problems).toEqual(['aggregator.batch.flush_interval: must be at most 24d (a longer period fires at once in Node) (got 30d)']);
    writeFileSync(
      file,
      'aggregator:\n  mqtt: { url: "mqtt://h:1883" }\n  influx: { url: "http://h:8086", api: v1, database: p, create: true, retention: 90m }\n',
    );
    expect(where(() => loadAggregator({ config: file }, {})).problems[0]).toMatch(
      /^aggregator\.influx\.retention: must be whole hours or days, at least 2h.*for what influx\.create creates \(got 1h30m\)$/,
    );
    // a flag over the file's key: the flag
    expect(where(() => loadAggregator({ config: file, influxRetention: '3h30m' } as never, {})).problems[0]).toMatch(
      /^--influx-retention \(aggregator\.influx\.retention\): must be whole hours or days/,
    );
    expect(loadAggregator({ config: file, influxRetention: '36h' } as never, {}).influx.retention).toBe(36 * 3_600_000);
    // a timer or keepalive out of range from a flag: the flag (it had named the key only)
    expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://h:1883', flushInterval: '30d' } as never, {}))).toEqual([
      '--flush-interval (batch.flush_interval): must be at most 24d (a longer period fires at once in Node) (got 30d)',
    ]);
    expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://h:1883', mqttKeepalive: '20h' } as never, {}))[0]).toMatch(
      /^--mqtt-keepalive \(mqtt\.keepalive\): must be at most 18h12m15s/,
    );
    // half the page's basic auth: the flag, the variable or the file's key that gave the half
    expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://h:1883', httpUser: 'ops' } as never, {}))).toEqual([
      '--http-user (http.user): is set without http.password (or http.password_file, PRESENCE_HTTP_PASSWORD); give both, or http.token',
    ]);
    expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://h:1883' }, { PRESENCE_HTTP_PASSWORD: 'pw' }))).toEqual([
      'PRESENCE_HTTP_PASSWORD (http.password): is set without http.user (--http-user); give both, or http.token',
    ]);
    writeFileSync(join(tmp, 'pw'), 'secret\n');
    writeFileSync(file, 'aggregator:\n  mqtt: { url: "mqtt://h:1883" }\n  http: { password_file: pw }\n');
    expect(where(() => loadAggregator({ config: file }, {}))).toEqual({
      where: file,
      problems: ['aggregator.http.password_file: is set without http.user (--http-user); give both, or http.token'],
    });
  });

  it('refuses a page update interval under 10ms, naming the flag or the key (it was silently raised to 10ms)', () => {
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], httpUpdate: '1ms' }, {}))).toEqual([
      "--http-update (http.update_interval): must be at least 10ms, the shortest interval of the page's pictures (got 1ms); use 10ms or more",
    ]);
    const yaml = join(tmp, 'update.yaml');
    writeFileSync(yaml, 'gateway: { site: s, zone: z, id: g }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://h" }\nhttp: { update_interval: 5ms }\n');
    expect(problems(() => loadConfig({ config: yaml }, {}))[0]).toMatch(/^http\.update_interval: must be at least 10ms/);
    expect(loadConfig({ ...base, source: ['stdin'], httpUpdate: '10ms' }, {}).http.update_interval).toBe('10ms');
  });

  it('refuses a command source whose restart_min is longer than its restart_max (it was silently raised to be the maximum too)', () => {
    const file = join(tmp, 'restart.yaml');
    const write = (keys: string) =>
      writeFileSync(file, `gateway: { site: s, zone: z, id: g }\nmqtt: { url: "mqtt://h" }\nsources: [{ name: w, type: command, command: "true"${keys} }]\n`);
    write(', restart_min: 10s, restart_max: 1s');
    expect(problems(() => loadConfig({ config: file }, {}))).toEqual([
      'sources[0]: restart_min (10s) is longer than restart_max (1s): a failed command is restarted after restart_min, then twice as long each time up to restart_max; make restart_max at least restart_min',
    ]);
    write(', restart_min: 2m'); // against the default restart_max
    expect(problems(() => loadConfig({ config: file }, {}))[0]).toMatch(/^sources\[0\]: restart_min \(2m\) is longer than restart_max \(60s\)/);
    write(', restart_min: 5s, restart_max: 5s');
    expect(loadConfig({ config: file }, {}).sources[0]).toMatchObject({ restart_min: '5s', restart_max: '5s' });
  });

  it('refuses a blank command source (it ran as nothing and was restarted forever, with a fix for a program without a name)', () => {
    const file = join(tmp, 'blank-command.yaml');
    const write = (command: string) =>
      writeFileSync(file, `gateway: { site: s, zone: z, id: g }\nmqtt: { url: "mqtt://h" }\nsources: [{ name: w, type: command, command: ${command} }]\n`);
    const give =
      ': give the capture command that writes pcap or pcapng to stdout, as a line (tcpdump -i wlan0mon -U -w -) or a list whose first item is the program ([dumpcap, -q, -i, bluetooth0, -w, "-"])';
    for (const [command, what] of [
      ['""', 'is empty'],
      ['"   "', 'is empty'],
      ['[]', 'is an empty list'],
      ['[""]', 'has no program as its first item'],
      ['[" ", "-i", "wlan0mon"]', 'has no program as its first item'],
    ]) {
      write(command);
      expect(
        problems(() => loadConfig({ config: file }, {})),
        command,
      ).toEqual([`sources[0].command: ${what}${give}`]);
    }
    write('5'); // not text at all: the schema's line
    expect(problems(() => loadConfig({ config: file }, {}))).toEqual(['sources[0].command: must be text (got 5)']);
    write('[tcpdump, -i, wlan0mon, -U, -w, "-"]');
    expect(loadConfig({ config: file }, {}).sources[0]).toMatchObject({ command: ['tcpdump', '-i', 'wlan0mon', '-U', '-w', '-'] });
  });

  it('refuses two sources of one name (the second was renamed NAME-1, a source nobody configured); a name the gateway gives is still made unique', () => {
    const file = join(tmp, 'same-name.yaml');
    writeFileSync(
      file,
      'gateway: { site: s, zone: z, id: g }\nmqtt: { url: "mqtt://h" }\nsources: [{ name: wifi, type: stdin }, { name: wifi, type: command, command: "true" }]\n',
    );
    const line = `"wifi" is the name of sources[0] too: a source's name keys its state in the status, /metrics and the log, so each needs its own; rename one`;
    expect(problems(() => loadConfig({ config: file }, {}))).toEqual([`sources[1].name: ${line}`]);
    expect(problems(() => loadConfig({ ...base, source: ['wifi=stdin', 'wifi=cmd:true'] }, {}))).toEqual([`sources[1].name: ${line}`]);
    // --source without NAME=: the gateway's own name (cmd1), made unique beside a source named so
    const cfg = loadConfig({ ...base, source: ['cmd1=stdin', 'cmd:true'] }, {});
    expect(cfg.sources.map((s) => s.name)).toEqual(['cmd1', 'cmd1-1']);
    // ... wherever it stands: the user's name is kept (it was refused as "the name of sources[0] too")
    expect(loadConfig({ ...base, source: ['stdin', 'stdin=cmd:true'] }, {}).sources.map((s) => s.name)).toEqual(['stdin-0', 'stdin']);
    // a user's name that looks like one the gateway gives is checked as any other (two named "file"
    // were taken, the second renamed file-1)
    writeFileSync(
      file,
      'gateway: { site: s, zone: z, id: g }\nmqtt: { url: "mqtt://h" }\nsources: [{ name: file, type: stdin }, { name: file, type: command, command: "true" }]\n',
    );
    expect(problems(() => loadConfig({ config: file }, {}))).toEqual([`sources[1].name: ${line.replaceAll('wifi', 'file')}`]);
    // a source without a name in a file gets TYPE+INDEX, which yields to a user's name too
    writeFileSync(
      file,
      'gateway: { site: s, zone: z, id: g }\nmqtt: { url: "mqtt://h" }\nsources: [{ type: stdin }, { name: stdin0, type: command, command: "true" }]\n',
    );
    expect(loadConfig({ config: file }, {}).sources.map((s) => s.name)).toEqual(['stdin0-0', 'stdin0']);
  });

  it('refuses a broker password without a user name (the MQTT client would drop every connection silently)', () => {
    const msg = /^mqtt\.password: is set without mqtt\.username \(--mqtt-username, MQTT_USERNAME\): an MQTT client sends no password without a user name/;
    expect(problems(() => loadConfig({ ...base, source: ['stdin'] }, { MQTT_PASSWORD: 'pw' }))[0]).toMatch(msg);
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], mqttPasswordFile: '/run/secrets/mqtt' }, {}))[0]).toMatch(
      /^mqtt\.password_file: is set without mqtt\.username/,
    );
    // a user name from the flag, the environment or the URL is enough
    expect(loadConfig({ ...base, source: ['stdin'], mqttUsername: 'u' }, { MQTT_PASSWORD: 'pw' }).mqtt.password).toBe('pw');
    expect(loadConfig({ ...base, source: ['stdin'] }, { MQTT_USERNAME: 'u', MQTT_PASSWORD: 'pw' }).mqtt.username).toBe('u');
    expect(loadConfig({ ...base, source: ['stdin'], mqttUrl: 'mqtt://u:pw@h:1883' }, {}).mqtt.url).toBe('mqtt://u:pw@h:1883');
  });

  it('an empty password file, or one whose first line is empty, is refused before the start with the hint to write it (it had connected with an empty password)', () => {
    for (const [name, text, said] of [
      ['empty', '', 'is empty'],
      ['blank', '\n', 'is empty'],
      ['second', '\nsecret\n', 'has an empty first line'],
    ] as const) {
      const pw = join(tmp, `pw-${name}`);
      writeFileSync(pw, text, { mode: 0o600 });
      const flags = { ...base, source: ['stdin'], mqttUsername: 'u', mqttPasswordFile: pw };
      const e = startFileError(loadConfig(flags, {}), flags, {});
      expect(e?.problems).toEqual([`--mqtt-password-file (mqtt.password_file): ${pw} ${said}: the password is the file's first line`]);
      expect(e?.hint).toBe(EMPTY_SECRET_HINT);
      // the aggregator refuses it too, naming the key and the file
      expect(problems(() => loadAggregator({ mqttUrl: 'mqtt://127.0.0.1:1883', mqttUsername: 'u', mqttPasswordFile: pw } as never, {}))).toEqual([
        `mqtt.password_file: ${pw} ${said}: the secret is the file's first line`,
      ]);
    }
    const good = join(tmp, 'pw-good');
    writeFileSync(good, 'secret\n', { mode: 0o600 });
    const flags = { ...base, source: ['stdin'], mqttUsername: 'u', mqttPasswordFile: good };
    expect(startFileError(loadConfig(flags, {}), flags, {})).toBeNull();
  });

  it('refuses a half-given basic auth of the page when the file is loaded, naming the file, with or without http.port (as the aggregator does)', () => {
    const file = join(tmp, 'page-auth.yaml');
    writeFileSync(file, 'gateway: {site: s1, zone: z1, id: g1}\nsources: [{type: stdin}]\nmqtt: {url: "mqtt://127.0.0.1:1883"}\nhttp: {password_file: pw}\n');
    let err: unknown;
    try {
      loadConfig({ config: file }, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).where).toBe(file);
    expect((err as ConfigError).problems).toEqual(['http.password_file: is set without http.user (--http-user); give both, or http.token']);
    expect((err as ConfigError).hint).toMatch(/^the page takes http\.user with http\.password/);
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], httpUser: 'ops' }, {}))).toEqual([
      'http.user (--http-user): is set without http.password (or http.password_file, PRESENCE_HTTP_PASSWORD); give both, or http.token',
    ]);
    expect(problems(() => loadConfig({ ...base, source: ['stdin'] }, { PRESENCE_HTTP_PASSWORD: 'pw' }))[0]).toMatch(
      /^http\.password \(PRESENCE_HTTP_PASSWORD\): is set without http\.user/,
    );
    // both halves, a token alone, or neither: loads
    expect(loadConfig({ config: file, httpUser: 'ops' }, {}).http.user).toBe('ops');
    expect(loadConfig({ ...base, source: ['stdin'] }, { PRESENCE_HTTP_TOKEN: 't' }).http.token).toBe('t');
    expect(loadConfig({ ...base, source: ['stdin'] }, {}).http.user).toBeUndefined();
  });

  it('takes the same broker URL schemes as the aggregator: mqtt, mqtts, ws, wss, and tcp, ssl, tls (other names of mqtt and mqtts)', () => {
    // tcp, ssl and tls are taken as their MQTT names (MQTT.js refuses them with a client certificate)
    const as: Record<string, string> = { mqtt: 'mqtt', mqtts: 'mqtts', ws: 'ws', wss: 'wss', tcp: 'mqtt', ssl: 'mqtts', tls: 'mqtts' };
    for (const [scheme, taken] of Object.entries(as)) {
      const url = `${scheme}://broker.example:1883`;
      expect(loadConfig({ ...base, source: ['stdin'], mqttUrl: url }, {}).mqtt.url, scheme).toBe(`${taken}://broker.example:1883`);
      expect(loadAggregator({ mqttUrl: url }, {}).mqtt.url, scheme).toBe(`${taken}://broker.example:1883`);
    }
    for (const url of ['http://broker.example:1883', 'tcp:/broker.example', 'amqp://broker.example'])
      for (const load of [() => loadConfig({ ...base, source: ['stdin'], mqttUrl: url }, {}), () => loadAggregator({ mqttUrl: url }, {})])
        expect(load, url).toThrow(/--mqtt-url \(mqtt\.url\): must be a URL like mqtt:\/\/host:1883 .*tcp:\/\/ is taken as mqtt:\/\//);
  });

  it("reads a file that holds the aggregator's section too, as the aggregator does (one file for both on one machine)", () => {
    const shared = join(tmp, 'shared.yaml');
    writeFileSync(
      shared,
      'gateway: { site: s1, zone: z1, id: g1 }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://broker:1883" }\naggregator:\n  mqtt: { url: "mqtt://other:1883" }\n  influx: { url: "http://db:8086", api: v1, database: presence }\n',
    );
    const cfg = loadConfig({ config: shared }, {});
    expect(cfg.mqtt.url).toBe('mqtt://broker:1883');
    expect(cfg.gateway.site).toBe('s1');
    expect(loadAggregator({ config: shared }, {}).mqtt.url).toBe('mqtt://other:1883');
  });

  it('refuses a window longer than 24h, the longest a counts message holds (it was counted under one key for all its length, then dropped)', () => {
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], window: '25h' }, {}))).toEqual([
      '--window (gateway.window): must be at most 24h, the longest window a counts message holds (got 25h); use 24h or less',
    ]);
    const file = join(tmp, 'window-2d.yaml');
    writeFileSync(file, 'gateway: { site: s, zone: z, id: g, window: 2d }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://broker:1883" }\n');
    expect(problems(() => loadConfig({ config: file }, {}))).toEqual([
      'gateway.window: must be at most 24h, the longest window a counts message holds (got 2d); use 24h or less',
    ]);
    expect(parseDuration(loadConfig({ ...base, source: ['stdin'], window: '24h' }, {}).gateway.window)).toBe(MAX_WINDOW_MS);
  });

  it('refuses a window shorter than 1s: its counts say when a device was heard to within it, and it closes up to 1,000 times a second (--window 1ms was taken)', () => {
    const line = (got: string, flag = true) =>
      `${flag ? '--window (gateway.window)' : 'gateway.window'}: must be at least 1s (got ${got}): a shorter window's counts say when a device was heard to within it, and it closes (a queue file, a message, a stored point) up to 1,000 times a second; use 1s or more`;
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], window: '1ms' }, {}))).toEqual([line('1ms')]);
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], window: '999ms' }, {}))).toEqual([line('999ms')]);
    const file = join(tmp, 'window-250ms.yaml');
    writeFileSync(file, 'gateway: { site: s, zone: z, id: g, window: 250ms }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://broker:1883" }\n');
    expect(problems(() => loadConfig({ config: file }, {}))).toEqual([line('250ms', false)]);
    expect(parseDuration(loadConfig({ ...base, source: ['stdin'], window: '1s' }, {}).gateway.window)).toBe(1000);
  });

  it("refuses a status interval shorter than 1s: a status carries each source's frame total, so --status-interval 1ms said when single frames were heard, in some 830 retained statuses and stored points a second", () => {
    const line = (got: string, flag = true) =>
      `${flag ? '--status-interval (status.interval)' : 'status.interval'}: must be at least 1s (got ${got}): a status carries each source's frame total, so a shorter interval says when single frames were heard, and it is published (retained) and stored that often; use 1s or more`;
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], statusInterval: '1ms' }, {}))).toEqual([line('1ms')]);
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], statusInterval: '999ms' }, {}))).toEqual([line('999ms')]);
    const file = join(tmp, 'status-200ms.yaml');
    writeFileSync(file, 'gateway: { site: s, zone: z, id: g }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://broker:1883" }\nstatus: { interval: 200ms }\n');
    expect(problems(() => loadConfig({ config: file }, {}))).toEqual([line('200ms', false)]);
    expect(loadConfig({ ...base, source: ['stdin'], statusInterval: '1s' }, {}).status.interval).toBe('1s');
  });

  it('says a duration without its unit in one line, not also "must be at least 1s" for the same value (--status-interval 0.9 printed both)', () => {
    const unit = (name: string, got: string) =>
      `${name}: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got ${got}): write it with its unit (ms, s, m, h or d)`;
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], statusInterval: '0.9' }, {}))).toEqual([
      unit('--status-interval (status.interval)', '"0.9"'),
    ]);
    // the same keys in a file, where a bare number was read as seconds for the second line
    const file = join(tmp, 'bare-durations.yaml');
    writeFileSync(
      file,
      'gateway: { site: s, zone: z, id: g, window: 0.9 }\nsources: [{ type: command, command: "true", restart_min: "120", restart_max: 1s }]\nmqtt: { url: "mqtt://broker:1883" }\nstatus: { interval: 0.9 }\n',
    );
    const got = problems(() => loadConfig({ config: file }, {}));
    expect(got).toEqual(
      expect.arrayContaining([
        unit('gateway.window', '0.9'),
        unit('status.interval', '0.9'),
        expect.stringMatching(/^sources\[0\]\.restart_min: must be a duration/),
      ]),
    );
    expect(got.filter((l) => /at least 1s|longer than restart_max/.test(l))).toEqual([]);
    // --window keeps its deprecated bare seconds: 0.9 is 0.9s, said once as under 1s
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], window: '0.9' }, {}))).toEqual([
      expect.stringMatching(/^--window \(gateway\.window\): must be at least 1s \(got 0\.9s\)/),
    ]);
  });

  it('refuses a timer period Node cannot keep and a keepalive MQTT cannot carry (a 30d status interval republished the status every millisecond)', () => {
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], statusInterval: '30d' }, {}))).toEqual([
      '--status-interval (status.interval): must be at most 24d (a longer period fires at once in Node) (got 30d)',
    ]);
    // a window past 24d is past the 24h a counts message holds: one problem, one line (it was two)
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], window: '25d' }, {}))).toEqual([
      '--window (gateway.window): must be at most 24h, the longest window a counts message holds (got 25d); use 24h or less',
    ]);
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], window: '99999999999d' }, {}))).toEqual([
      '--window (gateway.window): must be at most 24h, the longest window a counts message holds (got 99999999999d); use 24h or less',
    ]);
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], mqttKeepalive: '19h' }, {}))).toEqual([
      "--mqtt-keepalive (mqtt.keepalive): must be at most 18h12m15s (65535 s, MQTT's limit) (got 19h)",
    ]);
    expect(loadConfig({ ...base, source: ['stdin'], statusInterval: '24d', mqttKeepalive: '18h' }, {}).status.interval).toBe('24d');
    // said with the other problems of the file, not only once they are fixed
    const file = join(tmp, 'limits-and-types.yaml');
    writeFileSync(
      file,
      'gateway: { site: s, zone: z, id: g, window: fast }\nsources: [{ type: stdin }]\nmqtt: { url: 1883, keepalive: 19h }\nstatus: { interval: 30d }\n',
    );
    expect(problems(() => loadConfig({ config: file }, {}))).toEqual([
      'gateway.window: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "fast")',
      'mqtt.url: must be text (got 1883)',
      'status.interval: must be at most 24d (a longer period fires at once in Node) (got 30d)',
      "mqtt.keepalive: must be at most 18h12m15s (65535 s, MQTT's limit) (got 19h)",
    ]);
  });

  it('names the key, the flag and the problem', () => {
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], window: '60 seconds' }, {}))).toContain(
      '--window (gateway.window): must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "60 seconds")',
    );
    expect(problems(() => loadConfig({ source: ['stdin'], mqttUrl: 'mqtt://h' }, {}))).toEqual(
      expect.arrayContaining([
        'gateway.site: is required: set it in the --config file or with --site',
        'gateway.zone: is required: set it in the --config file or with --zone',
        'gateway.id: is required: set it in the --config file or with --id',
      ]),
    );
    expect(problems(() => loadConfig({ ...base, site: 'Bad Site', source: ['stdin'] }, {}))[0]).toMatch(
      /^--site \(gateway\.site\): must be lower case.*\(got "Bad Site"\)$/,
    );
    expect(problems(() => loadConfig({ ...base }, {}))).toContain('sources: is required: set it in the --config file or with --source');
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], mqttUrl: 'http://x' }, {}))[0]).toMatch(
      /^--mqtt-url \(mqtt\.url\): must be a URL like mqtt:/,
    );
    expect(problems(() => loadConfig({ site: 's1', zone: 'z1', id: 'g1', source: ['stdin'] }, { MQTT_URL: 'broker:1883' }))[0]).toMatch(
      /^MQTT_URL \(mqtt\.url\): must be a URL like mqtt:.*\(got "broker:1883"\)$/,
    );
    expect(problems(() => loadConfig({ ...base, source: ['stdin'], rssiMin: 'loud' }, {}))[0]).toBe(
      '--rssi-min (gateway.rssi_min_dbm): must be a whole number (got "loud")',
    );
    expect(problems(() => loadConfig({ ...base, source: ['nonsense'] }, {}))[0]).toMatch(/--source "nonsense": must be pcap:FILE/);
    expect(problems(() => loadConfig({ ...base, source: ['pcap:x'], speed: 'fast' }, {}))[0]).toMatch(/--speed "fast"/);

    const bad = join(tmp, 'bad.yaml');
    writeFileSync(bad, 'gateway: { site: s, zone: z, id: g, windw: 60s }\nsources: [{ type: file, path: x.pcap, speed: -1 }]\nmqtt: { url: mqtt://h }\n');
    const p = problems(() => loadConfig({ config: bad }, {}));
    expect(p).toContain('gateway: has an unknown key "windw" (did you mean "window"?)');
    expect(p).toContain('sources[0].speed (--speed): must be a number above 0 or "max" (got -1)');

    // a p that rounds to T = 0: no bit would be randomised (the sketch the true bitmap)
    const tiny = join(tmp, 'tiny.yaml');
    writeFileSync(
      tiny,
      'gateway: { site: s, zone: z, id: g }\nsources: [{ type: stdin }]\nmqtt: { url: mqtt://h }\ncorridor: { group: main-street, secret_file: x.secret, sketch_p: 0.000001 }\n',
    );
    expect(problems(() => loadConfig({ config: tiny }, {}))).toContain(
      'corridor.sketch_p: must be at least 1 / 131072 (0.0000077): 0.000001 rounds to T = 0 of 65536, and no bit would be randomised',
    );

    // a p that rounds to T = 65536: every bit a coin flip, the aggregator refuses the sketches (p = 1 made it throw on every sketch of the group)
    for (const p of [1, 0.999995]) {
      writeFileSync(
        tiny,
        `gateway: { site: s, zone: z, id: g }\nsources: [{ type: stdin }]\nmqtt: { url: mqtt://h }\ncorridor: { group: main-street, secret_file: x.secret, sketch_p: ${p} }\n`,
      );
      expect(problems(() => loadConfig({ config: tiny }, {}))).toContain(
        `corridor.sketch_p: must be below 1 - 1 / 131072 (0.99999237): ${p} rounds to T = 65536 of 65536, every bit would be a coin flip and no flow could be estimated from the sketches (the aggregator refuses them); 0.5 is already epsilon 1.10`,
      );
    }
    // and the READMEs give that top, not 1 (they said "p may go up to 1, epsilon 0")
    for (const readme of ['README.md', 'gateway/README.md']) {
      const text = readFileSync(join(import.meta.dirname, '..', readme), 'utf8').replace(/\s+/g, ' ');
      expect(text, readme).toMatch(/p may go up to 0\.99999237\b/);
      expect(text, readme).not.toMatch(/p may go up to 1\b/);
    }

    // a group without sketch_p: no default, the operator chooses; the line gives the trade-off in numbers
    const noP = join(tmp, 'no-p.yaml');
    writeFileSync(
      noP,
      'gateway: { site: s, zone: z, id: g }\nsources: [{ type: stdin }]\nmqtt: { url: mqtt://h }\ncorridor: { group: main-street, secret_file: x.secret }\n',
    );
    const missing = problems(() => loadConfig({ config: noP }, {}));
    expect(missing).toHaveLength(1);
    expect(missing[0]).toMatch(/^corridor\.sketch_p: is not set: choose the flip probability/);
    expect(missing[0]).toContain(
      `0.03 gives flows within about 15 % on the simulator once the aggregator's expansion is calibrated (10-19 % off without) at epsilon ${sketchEpsilon(quantisedP(0.03)).toFixed(2)} per sketch and device`,
    );
    expect(missing[0]).toContain('4.18');
    expect(loadConfig({ config: noP, corridorSketchP: '0.03' }, {}).corridor.sketch_p).toBe(0.03);
    // without a group, no p is needed
    const plain = join(tmp, 'plain.yaml');
    writeFileSync(plain, 'gateway: { site: s, zone: z, id: g }\nsources: [{ type: stdin }]\nmqtt: { url: mqtt://h }\n');
    expect(loadConfig({ config: plain }, {}).corridor.sketch_p).toBeUndefined();

    // a --source text written as a list entry: the mapping the file needs instead
    const asFlag = join(tmp, 'as-flag.yaml');
    writeFileSync(
      asFlag,
      'gateway: { site: s, zone: z, id: g }\nsources:\n  - pcap:/tmp/x.pcap\n  - "cmd:tcpdump -i wlan0mon -U -w -"\nmqtt: { url: "mqtt://h" }\n',
    );
    expect(problems(() => loadConfig({ config: asFlag }, {}))).toEqual([
      'sources[0]: must be a mapping, not the --source form (got "pcap:/tmp/x.pcap"): in a file write - { type: file, path: /tmp/x.pcap }',
      'sources[1]: must be a mapping, not the --source form (got "cmd:tcpdump -i wlan0mon -U -w -"): in a file write - { type: command, command: "tcpdump -i wlan0mon -U -w -" }',
    ]);

    const broken = join(tmp, 'broken.yaml');
    writeFileSync(broken, 'gateway: [unclosed\n');
    expect(problems(() => loadConfig({ config: broken }, {}))[0]).toMatch(/^not valid YAML/);
    // where, without a dangling colon (the parser's snippet of the file, which may hold a secret, is not shown)
    const indented = join(tmp, 'indented.yaml');
    writeFileSync(indented, 'gateway:\n  site: s\n   zone: z\n');
    expect(problems(() => loadConfig({ config: indented }, {}))).toEqual([
      'not valid YAML: Nested mappings are not allowed in compact mappings at line 2, column 9',
    ]);
    expect(problems(() => loadConfig({ config: join(tmp, 'missing.yaml') }, {}))[0]).toMatch(/^config file .*missing\.yaml does not exist/);
  });

  it('a FIFO or a device given as a file source is read as it comes (speed max) unless a speed is given; a file is paced at 1', () => {
    // Paced at 1 as a file, a FIFO written faster than real time (presence simulate --live --speed 60
    // --fifo) stalled: the writer blocked on the full FIFO while the gateway waited out capture times.
    const fifo = join(tmp, 'speed.fifo');
    execFileSync('mkfifo', [fifo]);
    const fifo2 = join(tmp, 'speed2.fifo');
    execFileSync('mkfifo', [fifo2]);
    const file = join(tmp, 'speed.pcap');
    writeFileSync(file, '');
    const speeds = (...extra: Array<Record<string, unknown>>) =>
      loadConfig({ ...base, source: [`pcap:${fifo}`, `pcap:${file}`, 'pcap:/dev/null'], ...Object.assign({}, ...extra) }, {}).sources.map(
        (s) => (s as { speed?: unknown }).speed,
      );
    expect(speeds()).toEqual(['max', 1, 'max']);
    expect(speeds({ speed: '1' })).toEqual([1, 1, 1]);
    const yaml = join(tmp, 'speed.yaml');
    writeFileSync(yaml, `sources:\n  - { type: file, path: ${fifo} }\n  - { type: file, path: ${file} }\n  - { type: file, path: ${fifo2}, speed: 10 }\n`);
    expect(loadConfig({ ...base, config: yaml }, {}).sources.map((s) => (s as { speed?: unknown }).speed)).toEqual(['max', 1, 10]);
  });

  it('parses source specs and durations', () => {
    expect(parseSourceSpec('pcap:-', 0)).toEqual({ type: 'stdin', name: 'stdin' });
    expect(parseSourceSpec('stdin@ble', 0)).toEqual({ type: 'stdin', name: 'stdin', radio: 'ble' });
    expect(parseSourceSpec('wifi=cmd:tcpdump -i wlan0mon -U -w -', 1)).toMatchObject({ type: 'command', name: 'wifi', command: 'tcpdump -i wlan0mon -U -w -' });
    expect(parseSourceSpec('pcap:a.pcapng@wifi', 2, 10)).toEqual({ type: 'file', name: 'file2', radio: 'wifi', path: 'a.pcapng', speed: 10 });
    // a command's radio tag after a space; text of the command line itself is passed on
    expect(parseSourceSpec('w=cmd:tcpdump -i wlan0mon -U -w - @wifi', 3)).toMatchObject({ name: 'w', radio: 'wifi', command: 'tcpdump -i wlan0mon -U -w -' });
    expect(parseSourceSpec('command:tshark -i bluetooth0 -w -  @ble', 4)).toMatchObject({ name: 'cmd4', radio: 'ble', command: 'tshark -i bluetooth0 -w -' });
    expect(parseSourceSpec('cmd:ssh root@ble', 5)).toEqual({ type: 'command', name: 'cmd5', command: 'ssh root@ble', restart_min: '1s', restart_max: '60s' });
    expect(parseSourceSpec('command:ssh pi@wifi', 6)).not.toHaveProperty('radio');
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration(90)).toBe(90_000); // a bare number is seconds, as the gateway always read it
    expect(() => parseDuration('soon')).toThrow(/must be a duration like 250ms, 60s, 15m, 1h30m or 7d \(got "soon"\)/);
  });
});

function msg(seq: number): CountsMessage {
  const r = { frames: 0, devices: 0, estimate: 0 };
  return {
    v: 1,
    site: 's',
    zone: 'z',
    gateway: 'g',
    seq,
    start: new Date(seq * 1000).toISOString(),
    end: new Date(seq * 1000 + 1000).toISOString(),
    complete: true,
    wifi: r,
    ble: r,
  };
}

describe('durable queue', () => {
  it('keeps seq across restarts, also once emptied, and resends what was not acknowledged', () => {
    const dir = join(tmp, 'q1');
    let q = WindowQueue.open(dir, { maxWindows: 100 });
    expect(q.nextSeq).toBe(1);
    for (let s = 1; s <= 5; s++) q.append(msg(s));
    q.remove(1);
    q.remove(2);
    q.close();
    q = WindowQueue.open(dir, { maxWindows: 100 });
    expect(q.pending(0, 10)).toEqual([3, 4, 5]);
    expect(q.read(3)?.seq).toBe(3);
    expect(q.nextSeq).toBe(6);
    for (const s of [3, 4, 5]) q.remove(s);
    expect(q.depth).toBe(0);
    q.close();
    q = WindowQueue.open(dir, { maxWindows: 100 });
    expect(q.nextSeq).toBe(6);
    expect(() => q.append(msg(9))).toThrow(/out of order/);
    q.close();
  });

  it('sends a window file named without the zero padding (put there by hand) and leaves out one whose seq another file holds', () => {
    const dir = join(tmp, 'q-names');
    let q = WindowQueue.open(dir, { maxWindows: 100 });
    q.append(msg(1));
    q.close();
    writeFileSync(join(dir, 'windows', '2.json'), JSON.stringify(msg(2)));
    writeFileSync(join(dir, 'windows', '0001.json'), JSON.stringify(msg(1)));
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    q = WindowQueue.open(dir, { maxWindows: 100, log });
    expect(q.pending(0, 10)).toEqual([1, 2]);
    expect(q.read(2)?.seq).toBe(2); // it was counted in depth and never read
    q.remove(1);
    q.remove(2);
    expect(q.depth).toBe(0);
    expect(readdirSync(join(dir, 'windows')).sort()).toEqual(['0001.json']);
    expect(lines.map((l) => l.msg)).toEqual(['queue: window file 0001.json has the seq of 000000000001.json, also queued: left out, not sent']);
    q.close();
  });

  it('a folder in windows/ named as a window is logged and left out, not queued for ever', () => {
    const dir = join(tmp, 'q-window-dir');
    mkdirSync(join(dir, 'windows', '000000000003.json'), { recursive: true });
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const q = WindowQueue.open(dir, { maxWindows: 100, log });
    expect(q.depth).toBe(0);
    expect(lines.map((l) => l.msg)).toEqual(['queue: 000000000003.json is a folder, not a window file: left out']);
    q.close();
  });

  it('a seq or lock that is a folder is refused naming it, not with a bare EISDIR', () => {
    for (const name of ['seq', 'lock']) {
      const dir = join(tmp, `q-${name}-dir`);
      mkdirSync(join(dir, name), { recursive: true });
      expect(() => WindowQueue.open(dir, { maxWindows: 100 })).toThrow(
        new QueueFolderError(`queue.dir ${dir}: ${join(dir, name)} is a folder, not the file the gateway keeps there; remove it`),
      );
    }
  });

  it('takes a window file that is gone out of the queue with a line: one removed by hand while queued, a symlink to no file (across restarts)', () => {
    const dir = join(tmp, 'q-gone');
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    let q = WindowQueue.open(dir, { maxWindows: 100, log });
    q.append(msg(1));
    q.append(msg(2));
    rmSync(join(dir, 'windows', '000000000001.json'));
    expect(q.read(1)).toBeNull();
    // it held queue_depth above 0 for good, and a gateway replaying files waited for it for ever
    expect(q.pending(0, 10)).toEqual([2]);
    expect(q.depth).toBe(1);
    q.close();
    symlinkSync(join(dir, 'no-such-window.json'), join(dir, 'windows', '000000000005.json'));
    q = WindowQueue.open(dir, { maxWindows: 100, log });
    expect(q.pending(0, 10)).toEqual([2, 5]);
    expect(q.read(5)).toBeNull();
    expect(q.read(2)?.seq).toBe(2);
    q.remove(2);
    expect(q.depth).toBe(0);
    expect(readdirSync(join(dir, 'windows'))).toEqual([]);
    expect(lines.filter((l) => /is gone/.test(String(l.msg))).map((l) => l.seq)).toEqual([1, 5]);
    q.close();
    // the seq never goes back: the next window after a restart takes 6
    q = WindowQueue.open(dir, { maxWindows: 100 });
    expect(q.nextSeq).toBe(6);
    q.close();
  });

  it('stays ordered through many acknowledgements (oldest first and out of order)', () => {
    const q = WindowQueue.open(join(tmp, 'q-many'), { maxWindows: 5000 });
    for (let s = 1; s <= 1300; s++) q.append(msg(s));
    for (let s = 1; s <= 1100; s++) q.remove(s); // compaction happens past 1024
    q.remove(1200);
    expect(q.depth).toBe(199);
    expect(q.pending(0, 3)).toEqual([1101, 1102, 1103]);
    expect(q.pending(1198, 3)).toEqual([1199, 1201, 1202]);
    expect(q.pending(1300, 3)).toEqual([]);
    expect(q.has(1200)).toBe(false);
    expect(q.has(1250)).toBe(true);
    q.close();
    const again = WindowQueue.open(join(tmp, 'q-many'), { maxWindows: 5000 });
    expect(again.depth).toBe(199);
    expect(again.nextSeq).toBe(1301);
    again.close();
  }, 300_000); // CPU-bound: the timeout is only a safety net for a loaded machine

  it('drops the oldest window past its bound and counts it', () => {
    const q = WindowQueue.open(join(tmp, 'q2'), { maxWindows: 3 });
    for (let s = 1; s <= 5; s++) q.append(msg(s));
    expect(q.pending(0, 10)).toEqual([3, 4, 5]);
    expect(q.dropped).toBe(2);
    expect(readdirSync(join(tmp, 'q2', 'windows')).sort()).toEqual(['000000000003.json', '000000000004.json', '000000000005.json']);
    expect(JSON.parse(readFileSync(join(tmp, 'q2', 'windows', '000000000005.json'), 'utf8'))).toEqual(msg(5));
    q.close();
  });

  it('a bound lowered below the backlog drops the oldest at the next window with one log line, not one per window', () => {
    const dir = join(tmp, 'q-lowered');
    const q = WindowQueue.open(dir, { maxWindows: 1000 });
    for (let s = 1; s <= 500; s++) q.append(msg(s));
    q.close();
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const again = WindowQueue.open(dir, { maxWindows: 10, log });
    again.append(msg(501));
    expect(again.dropped).toBe(491);
    expect(again.pending(0, 20)).toEqual([492, 493, 494, 495, 496, 497, 498, 499, 500, 501]);
    const dropped = lines.filter((l) => String(l.msg).startsWith('queue full'));
    expect(dropped).toEqual([expect.objectContaining({ seqs: '1-491', windows: 491, max_windows: 10, dropped: 491 })]);
    again.append(msg(502)); // one more, within the minute: counted, its line held back
    expect(again.dropped).toBe(492);
    expect(lines.filter((l) => String(l.msg).startsWith('queue full'))).toHaveLength(1);
    again.close(); // at close the held drops get their line: none goes unlogged
    expect(lines.filter((l) => String(l.msg).startsWith('queue full')).at(-1)).toMatchObject({ seq: 492, dropped: 492 });
  });

  it('while the queue stays full, one line a minute names every window dropped since the last one (1-s windows wrote a line a second)', () => {
    let now = 0;
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const q = WindowQueue.open(join(tmp, 'q-full-lines'), { maxWindows: 3, log, now: () => now });
    const full = () => lines.filter((l) => String(l.msg).startsWith('queue full'));
    for (let s = 1; s <= 3; s++) q.append(msg(s));
    expect(full()).toHaveLength(0);
    q.append(msg(4)); // the first drop: its line at once
    expect(full()).toEqual([expect.objectContaining({ seq: 1, dropped: 1 })]);
    for (let s = 5; s <= 63; s++) {
      now += 1000; // a window a second: 59 drops within the minute
      q.append(msg(s));
    }
    expect(q.dropped).toBe(60);
    expect(full()).toHaveLength(1);
    now += 1000; // a minute after the first line: one line for the 59 held and this one
    q.append(msg(64));
    expect(full()).toHaveLength(2);
    expect(full()[1]).toMatchObject({ seqs: '2-61', windows: 60, dropped: 61 });
    expect(q.pending(0, 10)).toEqual([62, 63, 64]);
    q.close();
    expect(full()).toHaveLength(2); // nothing held back: no line at close
  });

  it('drops that stop within the minute (the broker is back) still get their line at its end, not only when the gateway stops', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let now = 0;
      const lines: Array<Record<string, unknown>> = [];
      const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
      const q = WindowQueue.open(join(tmp, 'q-full-stop'), { maxWindows: 3, log, now: () => now });
      const full = () => lines.filter((l) => String(l.msg).startsWith('queue full'));
      for (let s = 1; s <= 4; s++) q.append(msg(s)); // the first drop (seq 1): its line at once
      for (let s = 5; s <= 9; s++) {
        now += 1000;
        q.append(msg(s)); // seqs 2-6 dropped within the minute: held back
      }
      expect(full()).toHaveLength(1);
      // no drop after these: the held ones had waited for the gateway's stop, which may never come
      now += 50_000;
      vi.advanceTimersByTime(50_000);
      expect(full()).toHaveLength(1);
      now += 10_000;
      vi.advanceTimersByTime(10_000);
      expect(full()).toHaveLength(2);
      expect(full()[1]).toMatchObject({ seqs: '2-6', windows: 5, dropped: 6 });
      now += 1000; // a drop within the minute of that line: held again
      q.append(msg(10));
      expect(full()).toHaveLength(2);
      q.close(); // and logged at stop, once
      expect(full()).toHaveLength(3);
      expect(full()[2]).toMatchObject({ seq: 7, dropped: 7 });
      vi.advanceTimersByTime(120_000);
      expect(full()).toHaveLength(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a window handed to MQTT while the broker is unreachable stays queued when the gateway stops: only a PUBACK removes it', async () => {
    const dir = join(tmp, 'q-unacked');
    const port = await freePort(); // nothing listens there: the broker is down
    const cfg = loadConfig(
      { site: 's', zone: 'z', id: 'g', mqttUrl: `mqtt://127.0.0.1:${port}`, source: ['pcap:/dev/null'], queueDir: dir, logLevel: 'silent' },
      {},
    );
    const window = (seq: number): CountsMessage => ({
      ...msg(seq),
      start: new Date(Date.UTC(2026, 5, 1, 12, seq)).toISOString(),
      end: new Date(Date.UTC(2026, 5, 1, 12, seq + 1)).toISOString(),
    });
    const q = WindowQueue.open(dir, { maxWindows: 100 });
    for (let s = 1; s <= 3; s++) q.append(window(s));
    const pub = new Publisher(cfg, q, pino({ level: 'silent' }), 30);
    pub.start();
    pub.pump(); // as the gateway does after each window: they go to mqtt.js, which holds them
    await new Promise((r) => setTimeout(r, 300));
    await pub.stop(); // mqtt.js ends the client: the windows it held fail
    expect(q.depth).toBe(3);
    q.close();
    const again = WindowQueue.open(dir, { maxWindows: 100 });
    expect(again.pending(0, 10)).toEqual([1, 2, 3]);
    expect(again.read(2)).toEqual(window(2));
    again.close();
  });

  it('refuses a folder another live gateway holds', () => {
    const dir = join(tmp, 'q3');
    const q = WindowQueue.open(dir, { maxWindows: 3 });
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n`); // a live process that is not us
    expect(() => WindowQueue.open(dir, { maxWindows: 3 })).toThrow(QueueLockedError);
    writeFileSync(join(dir, 'lock'), '999999999\n'); // stale lock of a dead process
    expect(() => WindowQueue.open(dir, { maxWindows: 3 }).close()).not.toThrow();
    q.close();
  });

  it('a lock naming its boot and start time is held by that process only: not by its pid after a reboot or in another process', () => {
    const dir = join(tmp, 'q-boot');
    WindowQueue.open(dir, { maxWindows: 3 }).close();
    const stat = readFileSync(`/proc/${process.ppid}/stat`, 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    // The live parent process as it is: its folder.
    writeFileSync(join(dir, 'lock'), `${process.ppid} ${boot} ${start}\n`);
    expect(() => WindowQueue.open(dir, { maxWindows: 3 })).toThrow(QueueLockedError);
    // Its pid, written during another boot (a power cut left the file): stale.
    writeFileSync(join(dir, 'lock'), `${process.ppid} 00000000-0000-4000-8000-000000000000 ${start}\n`);
    const q = WindowQueue.open(dir, { maxWindows: 3 });
    // The new lock is this process's, with this boot and its own start time.
    expect(readFileSync(join(dir, 'lock'), 'utf8')).toMatch(new RegExp(`^${process.pid} ${boot} \\d+\n$`));
    q.close();
    // Its pid, but a process that started at another time (the pid reused): stale.
    writeFileSync(join(dir, 'lock'), `${process.ppid} ${boot} ${Number(start) + 1}\n`);
    expect(() => WindowQueue.open(dir, { maxWindows: 3 }).close()).not.toThrow();
  });
});

describe('gateway start-up failure', () => {
  it('a locked queue folder makes start() fail clearly, and stop() still returns', async () => {
    const { Gateway } = await import('../gateway/gateway.ts');
    const dir = join(tmp, 'q-locked');
    WindowQueue.open(dir, { maxWindows: 3 });
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n`);
    const gw = new Gateway({ config: loadConfig({ ...base, source: ['pcap:/nonexistent.pcap'], queueDir: dir, logLevel: 'silent' }, {}) });
    await expect(gw.start()).rejects.toThrow(/in use by process/);
    await gw.stop();
    await gw.done;
    expect(readFileSync(join(dir, 'lock'), 'utf8').trim()).toBe(String(process.ppid)); // not ours to remove
  });
});

describe('windows', () => {
  it('align to multiples of the window length; a late start is incomplete', () => {
    expect(alignDown(61_500, 60_000)).toBe(60_000);
    const w = new OpenWindow(61_500, 60_000);
    expect(w.complete).toBe(false);
    expect(w.span()).toEqual({ start: 61_500, end: 120_000, complete: false });
    const on = new OpenWindow(120_000, 60_000);
    expect(on.span()).toEqual({ start: 120_000, end: 180_000, complete: true });
    expect(on.span(150_000)).toEqual({ start: 120_000, end: 150_000, complete: false });
    expect(on.span(120_000)).toBeNull();
  });

  it('redacts anything shaped like an address from tool output', () => {
    expect(redactAddresses('dev AA:bb:CC:11:22:33 and aa-bb-cc-11-22-33, aabb.cc11.2233, aabbcc112233 ok')).toBe('dev <addr> and <addr>, <addr>, <addr> ok');
  });
});
