// A URL or a broker address with credentials pasted into a flag of another kind (a client id, an
// InfluxDB org or bucket, a host, a file) is named without them in every log line and usage error:
// scripts/lib/log.ts passes every line through redactLogLine, scripts/lib/usage.ts every error line
// through redactUrlsIn (scripts/lib/secrets.ts).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { holdsUrlCredentials, redactLogLine } from '../scripts/lib/secrets.ts';
import { freePort } from './support/ports.ts';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-log-redaction-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function presence(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], {
    cwd: tmp,
    encoding: 'utf8',
    env: { ...process.env, MQTT_URL: '', INFLUX_URL: '', ...env },
    timeout: 60_000, // a command that is not refused runs on: stopped
  });
}

/** Runs presence until its stderr matches `until` (or it exits), then stops it; its stderr. */
async function presenceUntil(args: string[], until: RegExp): Promise<string> {
  const p = spawn(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], {
    cwd: tmp,
    env: { ...process.env, MQTT_URL: '', INFLUX_URL: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((resolve) => {
    p.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (until.test(stderr)) p.kill('SIGTERM');
    });
    p.once('close', () => resolve());
  });
  return stderr;
}

describe('redactLogLine', () => {
  it('leaves a line without credentials byte for byte', () => {
    for (const line of [
      '{"level":30,"component":"gateway","broker":"mqtt://broker:1883","msg":"gateway starting"}\n',
      '{"level":30,"mail":"ops@example.org","path":"/usr/bin:/opt/homebrew/opt/python@3.11/bin","n":1.5,"msg":"x \\"q\\""}\n',
    ])
      expect(redactLogLine(line)).toBe(line);
  });

  it('takes the credentials out of keys and values and leaves valid JSON', () => {
    const line = `${JSON.stringify({ level: 30, client_id: 'u:Log-Pw1@broker:1883', 'mqtt://u:Log-Pw2@b': 1, sink: 'org "u:Log-Pw3@h"', msg: 'at mqtt://u:Log-Pw4@b:1883' })}\n`;
    const out = redactLogLine(line);
    expect(out).not.toMatch(/Log-Pw/);
    expect(JSON.parse(out)).toEqual({ level: 30, client_id: '***@broker:1883', 'mqtt://b': 1, sink: 'org "***@h"', msg: 'at mqtt://b:1883' });
  });
});

describe('credentials pasted into a flag of another kind', () => {
  it('the log lines of a running aggregator name them without the password, in JSON and pretty form', async () => {
    for (const format of ['json', 'pretty']) {
      const stderr = await presenceUntil(
        [
          'aggregator',
          '--http-port',
          '0',
          '--mqtt-url',
          'mqtt://127.0.0.1:9',
          '--mqtt-client-id',
          'u:Log-Pw5@broker:1883',
          '--influx-url',
          'http://127.0.0.1:8',
          '--influx-api',
          'v2',
          '--influx-token',
          't',
          '--influx-org',
          'u:Log-Pw6@h',
          '--influx-bucket',
          'b',
          '--log-format',
          format,
        ],
        /aggregator starting/,
      );
      expect(stderr, format).toContain('aggregator starting'); // it ran and logged
      expect(stderr, format).toContain('***@broker:1883');
      expect(stderr, format).not.toMatch(/Log-Pw/);
    }
  });

  it('an --http-host holding them is named without the password, in its warning and its error', () => {
    const r = presence(['aggregator', '--http-port', '0', '--http-host', 'u:Log-Pw7@host', '--mqtt-url', 'mqtt://127.0.0.1:9']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('not served on ***@host');
    expect(r.stderr).toMatch(/--http-host \*\*\*@host .*cannot listen/);
    expect(r.stderr).not.toMatch(/Log-Pw/);
  });

  it('a usage error naming a file, a scenario or a config file names it without the password', () => {
    for (const [args, shown] of [
      [['aggregator', '--config', 'u:Log-Pw8@host'], 'config file ***@host does not exist'],
      // the path twice in one line: the first, a URL, was cut up to the second's @ ('config file mqtt://host)')
      [['gateway', '--config', 'mqtt://u:Log-Pw8@host'], `config file mqtt://host does not exist (looked for ${tmp}/mqtt:/***@host)`],
      [['replay', 'u:Log-Pw8@host'], '***@host: the file does not exist'],
      [['simulate', 'u:Log-Pw8@host'], 'scenario "***@host": not a built-in scenario'],
    ] as const) {
      const r = presence([...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain(shown);
      expect(r.stderr, args.join(' ')).not.toMatch(/Log-Pw/);
    }
  });

  it('a path setting holding them (--queue-dir, --out, a file key) is refused before a file or folder is made under that name', () => {
    const pcap = join(tmp, 'empty.pcap');
    writeFileSync(pcap, '');
    const gw = ['gateway', '--site', 's', '--zone', 'z', '--id', 'g', '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', `pcap:${pcap}`];
    writeFileSync(join(tmp, 'gw.yaml'), 'queue:\n  dir: u:Log-Pw9@broker:1883\n', { mode: 0o600 });
    for (const [args, shown] of [
      [[...gw, '--queue-dir', 'mqtt://u:Log-Pw9@broker:1883'], "--queue-dir (queue.dir): holds a URL's user name and password, not a path"],
      [[...gw, '--config', join(tmp, 'gw.yaml')], `queue.dir: holds a URL's user name and password, not a path`],
      [['aggregator', '--http-port', 'off', '--out', 'mqtt:/u:Log-Pw9@broker'], "--out (out): holds a URL's user name and password, not a path"],
      [
        ['aggregator', '--http-port', 'off', '--calibration', 'http://u:Log-Pw9@influx:8086'],
        "--calibration (calibration): holds a URL's user name and password",
      ],
    ] as const) {
      const r = presence([...args]);
      const what = args.join(' ');
      expect(r.status, what).toBe(2);
      expect(r.stderr, what).toContain(shown);
      expect(r.stderr, what).toMatch(/\(got "[^"]*(broker|influx)/);
      expect(r.stderr, what).not.toMatch(/Log-Pw/);
      expect(existsSync(join(tmp, 'mqtt:')), what).toBe(false);
      expect(readdirSync(tmp).join(' '), what).not.toMatch(/Log-Pw/);
    }
  });
});

describe("the InfluxDB sink's description (log lines, /healthz)", () => {
  it('names an org and a bucket holding credentials without them, and the rest of it readable', async () => {
    const port = await freePort();
    const args = ['aggregator', '--http-port', String(port), '--mqtt-url', 'mqtt://127.0.0.1:9', '--influx-url', 'http://127.0.0.1:8', '--influx-api', 'v2'];
    const p = spawn(
      process.execPath,
      [join(ROOT, 'scripts/presence.js'), ...args, '--influx-token', 't', '--influx-org', 'u:Sink-Pw1@h', '--influx-bucket', 'mqtt://u:Sink-Pw2@h'],
      {
        cwd: tmp,
        env: { ...process.env, MQTT_URL: '', INFLUX_URL: '' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    try {
      await new Promise<void>((resolve, reject) => {
        p.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('aggregator starting')) resolve();
        });
        p.once('exit', (code) => reject(new Error(`presence aggregator exited (${code}): ${stderr}`)));
      });
      const body = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { sink: string };
      const sink = 'http://127.0.0.1:8/ (v2 API, org "***@h", bucket "mqtt://h")';
      expect(body.sink).toBe(sink);
      expect(stderr).toContain(JSON.stringify(sink).slice(1, -1));
      expect(JSON.stringify(body) + stderr).not.toMatch(/Sink-Pw/);
    } finally {
      p.kill('SIGTERM');
    }
    // redacted once, a text is not taken for one with credentials again (and cut from its URL up to its ***@)
    expect(holdsUrlCredentials('http://127.0.0.1:8/ (v2 API, org "***@h", bucket "mqtt://h")')).toBe(false);
    expect(holdsUrlCredentials('http://127.0.0.1:8/ (v2 API, org "mqtt://u:pa ss***@h")')).toBe(true);
  });
});

describe('a URL with credentials given where a command writes', () => {
  it('simulate --out and --pipe and demo --out refuse it without the password, and make nothing under its name', () => {
    for (const [args, shown] of [
      [
        ['simulate', 'quiet-night', '--scale', '0.01', '--out', 'mqtt://u:Out-Pw1@broker'],
        '--out "mqtt://broker": holds a URL\'s user name and password, not a path',
      ],
      [['simulate', 'quiet-night', '--live', '--pipe', 'u:Out-Pw1@broker:1883'], '--pipe "***@broker:1883": holds a URL\'s user name and password'],
      [['demo', '--no-hold', '--out', 'mqtt:/u:Out-Pw1@broker'], '--out "mqtt:/***@broker": holds a URL\'s user name and password'],
    ] as const) {
      const r = presence([...args]);
      const what = args.join(' ');
      expect(r.status, what).toBe(2);
      expect(r.stderr, what).toContain(shown);
      expect(r.stderr + r.stdout, what).not.toMatch(/Out-Pw/);
      expect(readdirSync(tmp).join(' '), what).not.toMatch(/Out-Pw|mqtt:/);
    }
  });
});

describe('a URL with credentials given as a path to calibrate, corridor and provision', () => {
  it('each refuses it without the password and makes nothing under its name', () => {
    const truth = join(tmp, 'truth.csv');
    writeFileSync(truth, 'time;people\n2025-06-01T12:00:00Z;140\n');
    const cal = ['calibrate', '--zone', 'z', '--site', 's', '--influx-url', 'http://127.0.0.1:8', '--influx-db', 'd', '--truth', truth];
    const config = join(tmp, 'corridor-gw.yaml');
    writeFileSync(config, 'gateway: {site: s, zone: z, id: g}\n', { mode: 0o600 });
    const secret = join(tmp, 'corridor.secret');
    writeFileSync(secret, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const join_ = ['corridor', 'join', '--config', config, '--group', 'g1', '--secret-file', secret];
    const prov = ['provision', 'gateway', '--site', 's', '--zone', 'z', '--id', 'g', '--password-file', join(tmp, 'passwd')];
    for (const [args, shown] of [
      [[...cal, '--out', 'u:Path-Pw1@host'], '--out "***@host": holds a URL\'s user name and password'],
      [['corridor', 'init', '--group', 'g1', '--out', 'u:Path-Pw1@host'], '--out "***@host": holds a URL\'s user name and password'],
      [[...join_, '--install', 'u:Path-Pw1@host'], '--install "***@host": holds a URL\'s user name and password'],
      [['corridor', 'join', '--config', 'u:Path-Pw1@host', '--group', 'g1', '--secret-file', secret], '--config "***@host"'],
      [['corridor', 'join', '--config', config, '--group', 'g1', '--secret-file', 'u:Path-Pw1@host'], '--secret-file "***@host"'],
      [[...prov, '--secret-out', 'u:Path-Pw1@host'], '--secret-out "***@host": holds a URL\'s user name and password'],
      [['provision', 'gateway', '--site', 's', '--zone', 'z', '--id', 'g', '--password-file', 'u:Path-Pw1@host'], '--password-file "***@host"'],
      [[...prov, '--acl-file', 'mqtt:/u:Path-Pw1@host'], '--acl-file "mqtt:/***@host"'],
      [[...prov, '--aggregator-config', 'u:Path-Pw1@host'], '--aggregator-config "***@host"'],
    ] as const) {
      const r = presence([...args]);
      const what = args.join(' ');
      expect(r.status, what).toBe(2);
      expect(r.stderr, what).toContain(shown);
      expect(r.stderr + r.stdout, what).not.toMatch(/Path-Pw/);
      expect(readdirSync(tmp).join(' '), what).not.toMatch(/Path-Pw|mqtt:/);
    }
  });

  it('calibrate names a --truth or --prior file holding them without the password when it cannot be read', () => {
    const base = ['calibrate', '--zone', 'z', '--site', 's', '--influx-url', 'http://127.0.0.1:8', '--influx-db', 'd', '--out', join(tmp, 'c.yaml')];
    for (const [args, shown] of [
      [[...base, '--truth', 'mqtt://u:Path-Pw2@h'], 'mqtt://h: no such file'],
      [[...base, '--truth', join(tmp, 'truth.csv'), '--prior', 'u:Path-Pw2@h'], '--prior ***@h: no such file'],
    ] as const) {
      const r = presence([...args]);
      const what = args.join(' ');
      expect(r.stderr, what).toContain(shown);
      expect(r.stderr + r.stdout, what).not.toMatch(/Path-Pw/);
    }
  });
});

describe('a secret written in a config file where the path of its file goes', () => {
  it("is not echoed, resolved against the file's folder or not: the error names the file and the key and says what to fix", () => {
    const gwBase = 'gateway: {site: s, zone: z, id: g}\nsources:\n  - {type: command, name: w, radio: wifi, command: "sleep 5"}\n';
    const cases: [command: string, name: string, text: string, key: string][] = [
      ['gateway', 'cf-gw.yaml', `${gwBase}mqtt: {url: "mqtt://127.0.0.1:9", username: u, password_file: Cfg-Pw1}\n`, 'mqtt.password_file'],
      ['gateway', 'cf-gw-web.yaml', `${gwBase}mqtt: {url: "mqtt://127.0.0.1:9"}\nhttp: {port: 0, user: u, password_file: Cfg-Pw1}\n`, 'http.password_file'],
      [
        'gateway',
        'cf-gw-corr.yaml',
        `${gwBase}mqtt: {url: "mqtt://127.0.0.1:9"}\ncorridor: {group: main, secret_file: Cfg-Pw1abab, sketch_p: 0.03}\n`,
        'corridor.secret_file',
      ],
      [
        'aggregator',
        'cf-agg.yaml',
        'mqtt: {url: "mqtt://127.0.0.1:9", username: u, password_file: Cfg-Pw1}\nhttp: {port: null}\nout: o.lp\n',
        'mqtt.password_file',
      ],
      [
        'aggregator',
        'cf-agg-tok.yaml',
        'mqtt: {url: "mqtt://127.0.0.1:9"}\nhttp: {port: null}\ninflux: {url: "http://127.0.0.1:8", api: v2, org: o, bucket: b, token_file: Cfg-Pw1}\n',
        'influx.token_file',
      ],
    ];
    for (const [command, name, text, key] of cases) {
      const config = join(tmp, name);
      writeFileSync(config, text, { mode: 0o600 });
      const r = presence([command, '--config', config]);
      expect(r.status, name).toBe(2);
      expect(r.stderr, name).toContain(`${key}: no such file, and the value written in ${config} is not shown`);
      expect(r.stderr, name).toContain('fix: write there the path of a file whose first line is the secret');
      expect(r.stderr + r.stdout, name).not.toMatch(/Cfg-Pw/);
    }
    // a path with a folder in it is no such slip: shown, so that a typo in it can be seen
    const config = join(tmp, 'cf-gw-path.yaml');
    writeFileSync(config, `${gwBase}mqtt: {url: "mqtt://127.0.0.1:9", username: u, password_file: secrets/mqtt-pasword}\n`, { mode: 0o600 });
    expect(presence(['gateway', '--config', config]).stderr).toContain(`${join(tmp, 'secrets/mqtt-pasword')} does not exist`);
  });

  it('corridor join does not echo a --secret-file without a / that is no file', () => {
    const config = join(tmp, 'cj-gw.yaml');
    writeFileSync(config, 'gateway: {site: s, zone: z, id: g}\n', { mode: 0o600 });
    const r = presence(['corridor', 'join', '--config', config, '--group', 'g1', '--secret-file', `${'ab'.repeat(31)}Cj`]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--secret-file: does not exist; the name given is not shown');
    expect(r.stderr).not.toContain('ababab');
  });
});

describe('a password given where the path of its file goes', () => {
  it('is not echoed in the error for the missing file; a path with a folder in it is, so that its typo shows', () => {
    const gw = ['gateway', '--site', 's', '--zone', 'z', '--id', 'g', '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', 'pcap:/dev/null', '--mqtt-username', 'u'];
    for (const args of [
      ['aggregator', '--http-port', 'off', '--mqtt-username', 'u', '--mqtt-password-file', 'File-Pw1'],
      ['aggregator', '--http-port', 'off', '--influx-url', 'http://127.0.0.1:8', '--influx-api', 'v2', '--influx-token-file', 'File-Pw1'],
      [...gw, '--mqtt-password-file', 'File-Pw1'],
      ['influx', 'setup', '--influx-url', 'http://127.0.0.1:8', '--influx-username', 'u', '--influx-password-file', 'File-Pw1'],
    ]) {
      const r = presence(args);
      const what = args.join(' ');
      expect(r.status, what).toBe(2);
      expect(r.stderr, what).toMatch(/file\b.*: does not exist; the name given is not shown/);
      expect(r.stderr, what).not.toMatch(/File-Pw/);
    }
    for (const args of [gw, ['aggregator', '--http-port', 'off', '--mqtt-username', 'u']]) {
      const r = presence(args, { MQTT_PASSWORD_FILE: 'File-Pw1' });
      const what = `MQTT_PASSWORD_FILE=... ${args.join(' ')}`;
      expect(r.status, what).toBe(2);
      expect(r.stderr, what).toMatch(/file\b.*: does not exist; the name given is not shown/);
      expect(r.stderr, what).not.toMatch(/File-Pw/);
    }
    for (const [args, shown] of [
      [['aggregator', '--http-port', 'off', '--mqtt-username', 'u', '--mqtt-password-file', '/no/such/pw-file'], 'cannot read /no/such/pw-file (ENOENT)'],
      [[...gw, '--mqtt-password-file', './pw-file'], `${join(tmp, 'pw-file')} does not exist`],
    ] as const) {
      const r = presence([...args]);
      expect(r.stderr, args.join(' ')).toContain(shown);
    }
  });
});
