// Usage errors of the real CLI: one line naming what is wrong, one hint line, exit code 2, the same
// way in every command; never the whole help. Files named on the command line are checked before
// anything starts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-cli-errors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function presence(...args: string[]): { code: number | null; out: string; err: string } {
  // SIGKILL at the timeout: a command stuck in a synchronous loop never runs its SIGTERM handler.
  // MQTT_URL etc. from the environment must not change what is checked.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MQTT_|INFLUX_|LOG_)/.test(k)));
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], {
    cwd: tmp,
    env,
    encoding: 'utf8',
    timeout: 30_000,
    killSignal: 'SIGKILL',
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Exactly two lines: "presence CMD: ..." and "hint: ..."; exit 2; nothing on stdout. */
function usage(r: ReturnType<typeof presence>, command: string, what: RegExp): void {
  const lines = r.err.trimEnd().split('\n');
  expect(lines, r.err).toHaveLength(2);
  expect(lines[0]).toMatch(new RegExp(`^presence ${command}: `));
  expect(lines[0]).toMatch(what);
  expect(lines[1]).toMatch(/^hint: \S/);
  expect(r.err).not.toMatch(/Usage:|Options:/);
  expect(r.out).toBe('');
  expect(r.code).toBe(2);
}

const GW = ['--site', 's', '--zone', 'z', '--id', 'g'];
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('usage errors', () => {
  it('an unknown option, in every command, is one line and a hint, not the help', () => {
    for (const cmd of [
      ['gateway'],
      ['doctor'],
      ['aggregator'],
      ['replay', 'x.pcap'],
      ['simulate'],
      ['demo'],
      ['calibrate'],
      ['influx', 'setup'],
      ['provision', 'gateway'],
    ]) {
      const r = presence(...cmd, '--no-such-option');
      // (a command with a required option may name that one first: still one line and a hint)
      usage(r, cmd[0] === 'replay' ? 'replay' : cmd.join(' '), /unknown option '--no-such-option'|required option '--[a-z-]+ <[a-z]+>' not specified/);
      expect(r.err).toContain(`hint: presence ${cmd[0] === 'replay' ? 'replay' : cmd.join(' ')} --help lists the options`);
    }
  });

  it('a near miss says what was meant; an unknown command and a bad choice are usage errors too', () => {
    usage(presence('gateway', '--windw', '5s'), 'gateway', /unknown option '--windw' \(did you mean --window\?\)/);
    const r = presence('no-such-command');
    expect(r.err.trimEnd().split('\n')).toEqual(["presence: unknown command 'no-such-command'", 'hint: presence --help lists the commands']);
    expect(r.code).toBe(2);
    usage(presence('gateway', '--log-level', 'loud'), 'gateway', /'loud' is invalid\. Allowed choices are fatal, error/);
    usage(presence('calibrate', '--capture'), 'calibrate', /argument missing/);
  });

  it('a broker password without a user name is a usage error, not a silent endless reconnect (simulate --load; gateway and aggregator: their config tests)', () => {
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MQTT_|INFLUX_|LOG_)/.test(k))), MQTT_PASSWORD: 'pw' };
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), 'simulate', '--load', '--count', '1', '--mqtt-url', 'mqtt://127.0.0.1:1'], {
      cwd: tmp,
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    usage({ code: r.status, out: r.stdout, err: r.stderr }, 'simulate', /^presence simulate: MQTT_PASSWORD: is set without MQTT_USERNAME: /);
  });

  it('a zero duration is written right but has no length: the line says it must be longer than 0', () => {
    usage(
      presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:1', '--source', 'stdin', '--window', '0s'),
      'gateway',
      /--window \(gateway\.window\): must be a duration like .* \(got "0s"\): it must be longer than 0$/,
    );
    usage(presence('replay', '--window', '0m', 'x.pcap'), 'replay', /--window: must be a duration like .*, or "all" \(got "0m"\): it must be longer than 0$/);
  });

  it('a bare number where a duration needs its unit says so ("got "60"" was all the line said), and a bare 0 that it has no length', () => {
    usage(
      presence('replay', '--window', '60', 'x.pcap'),
      'replay',
      /--window: must be a duration like .*, or "all" \(got "60"\): write it with its unit \(ms, s, m, h or d\)$/,
    );
    usage(presence('replay', '--window', '0', 'x.pcap'), 'replay', /--window: must be a duration like .*, or "all" \(got "0"\): it must be longer than 0$/);
    usage(
      presence('demo', '--window', '0', '--http-port', 'off', '--out', join(tmp, 'demo-bare-0')),
      'demo',
      /^presence demo: --window: must be a duration like .* \(got "0"\): it must be longer than 0$/m,
    );
  });

  // Dozens of CLI runs in a row took 80 s on a loaded CI machine (28 Nov); each run has its own timeout for a hang.
  it('a number must be written in decimal: hex, binary, Infinity and an empty value are refused in every command, naming the flag (Number() read "0x10" as 16 and "" as 0)', () => {
    for (const bad of ['0x10', '0b11', 'Infinity', '']) {
      const got = escapeRegExp(`"${bad}"`);
      usage(
        presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:1', '--source', 'stdin', '--rssi-min', bad),
        'gateway',
        new RegExp(`--rssi-min \\(gateway\\.rssi_min_dbm\\): .*${got}`),
      );
      usage(
        presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:1', '--source', 'pcap:x.pcap', '--speed', bad),
        'gateway',
        new RegExp(`--speed ${got}: must be a number above 0`),
      );
      usage(presence('replay', '--rssi-min', bad, 'x.pcap'), 'replay', new RegExp(`--rssi-min: must be a signal level .*${got}`));
      usage(presence('replay', '--burst-addresses', bad, 'x.pcap'), 'replay', new RegExp(`--burst-addresses: must be a number .*${got}`));
      usage(presence('simulate', '--seed', bad), 'simulate', new RegExp(`--seed: must be a whole number .*${got}`));
      usage(presence('simulate', '--scale', bad), 'simulate', new RegExp(`--scale: must be a number .*${got}`));
      usage(
        presence('calibrate', '--zone', 'lab', '--capture', 'x.pcap', '--truth', 'x.csv', '--json', '--level', bad),
        'calibrate',
        new RegExp(`--level: must be between 0 and 1.*${got}`),
      );
      usage(presence('demo', '--speed', bad), 'demo', new RegExp(`--speed ${got}: must be a number above 0 or max`));
      usage(presence('demo', '--minutes', bad), 'demo', new RegExp(`--minutes: must be a number above 0 \\(got ${got}\\)$`));
    }
    // Decimal notation in all its forms is still read.
    const ok = presence('replay', '--rssi-min', ' -7e1 ', '--burst-addresses', '.5e1', 'x.pcap');
    expect(ok.err).not.toMatch(/--rssi-min|--burst-addresses/);
  }, 240_000);
  it('influx setup against a port nothing listens on names the reason (not just "fetch failed") and what to check', async () => {
    // a port that was free a moment ago (port 1 is one fetch refuses to use at all: "bad port")
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const r = presence('influx', 'setup', '--influx-url', `http://127.0.0.1:${port}`);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(`InfluxDB at http://127.0.0.1:${port}/ cannot be reached: ECONNREFUSED; check the host and port in --influx-url`);
  });
  it('influx setup against a port fetch will not use (6000, X11) says so and what to do (it said only "bad port")', () => {
    const r = presence('influx', 'setup', '--influx-url', 'http://127.0.0.1:6000');
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('cannot be reached: bad port: one of the ports the Fetch standard blocks');
    expect(r.err).toContain('run InfluxDB on another port');
  });

  it('aggregator --calibration naming a missing file: one line naming it, a hint, exit 2, before anything starts', () => {
    usage(
      presence('aggregator', '--mqtt-url', 'mqtt://127.0.0.1:1', '--calibration', 'missing-calibration.yaml'),
      'aggregator',
      /--calibration missing-calibration\.yaml: no such file/,
    );
  });

  it('aggregator calibration naming a missing file in the config file: the line names the config file and its key, not --calibration', () => {
    writeFileSync(join(tmp, 'agg-cal.yaml'), 'aggregator:\n  mqtt: { url: "mqtt://127.0.0.1:1" }\n  calibration: missing-calibration.yaml\n');
    const r = presence('aggregator', '--config', 'agg-cal.yaml');
    // the key as the file has it, under its aggregator: section (as every other line about the file names it)
    usage(r, 'aggregator', /^presence aggregator: aggregator\.calibration \(in config file agg-cal\.yaml\) \S*missing-calibration\.yaml: no such file/);
    expect(r.err).not.toContain('--calibration');
    // the flag over the file's key: the flag
    usage(
      presence('aggregator', '--config', 'agg-cal.yaml', '--calibration', 'other.yaml'),
      'aggregator',
      /^presence aggregator: --calibration other\.yaml: no such file/,
    );
  });

  it('aggregator calibration at the top of a config file without a section: named by its bare key', () => {
    writeFileSync(join(tmp, 'agg-cal-top.yaml'), 'mqtt: { url: "mqtt://127.0.0.1:1" }\ncalibration: missing-calibration.yaml\n');
    usage(
      presence('aggregator', '--config', 'agg-cal-top.yaml'),
      'aggregator',
      /^presence aggregator: calibration \(in config file agg-cal-top\.yaml\) \S*missing-calibration\.yaml: no such file/,
    );
  });

  it('--config naming a missing file says the file does not exist', () => {
    for (const cmd of ['gateway', 'aggregator']) {
      const r = presence(cmd, '--config', 'missing.yaml');
      usage(r, cmd, /config file missing\.yaml does not exist \(looked for .*missing\.yaml\)/);
      expect(r.err).not.toMatch(/invalid|cannot read/);
    }
  });

  it('--mqtt-url that is not a URL says what a valid one looks like', () => {
    usage(
      presence('gateway', ...GW, '--source', 'stdin', '--mqtt-url', 'notaurl'),
      'gateway',
      /--mqtt-url \(mqtt\.url\): must be a URL like mqtt:\/\/host:1883 or mqtts:\/\/host:8883 \(TLS\), or ws:\/\/, wss:\/\/ \(WebSocket\); tcp:\/\/ is taken as mqtt:\/\/, ssl:\/\/ and tls:\/\/ as mqtts:\/\/ \(got "notaurl"\)/,
    );
    usage(presence('aggregator', '--mqtt-url', 'notaurl'), 'aggregator', /--mqtt-url \(mqtt\.url\): must be a URL like mqtt:\/\/host:1883/);
    // a URL of another scheme: the same line, which names the schemes taken
    usage(
      presence('aggregator', '--mqtt-url', 'http://broker:1883'),
      'aggregator',
      /--mqtt-url \(mqtt\.url\): must be a URL like .*tcp:\/\/ is taken as mqtt:\/\/, ssl:\/\/ and tls:\/\/ as mqtts:\/\/ \(got "http:\/\/broker:1883"\)/,
    );
    usage(presence('simulate', '--load', '--count', '1', '--mqtt-url', 'notaurl'), 'simulate', /--mqtt-url: must be a URL like mqtt:\/\/host:1883/);
    // the old name still works and gets the same check (plus its deprecation line)
    const old = presence('gateway', ...GW, '--source', 'stdin', '--mqtt', 'notaurl');
    expect(old.err).toContain('must be a URL like mqtt://host:1883');
    expect(old.code).toBe(2);
  });

  it('a blank or white-space-only MQTT client id is refused, naming the flag or key and the fix, in the gateway and the aggregator (" " was taken: two gateways so set took each other\'s session)', () => {
    for (const id of ['', ' ', ' \t ']) {
      const shown = escapeRegExp(JSON.stringify(id));
      usage(
        presence('gateway', ...GW, '--source', 'stdin', '--mqtt-url', 'mqtt://127.0.0.1:9', '--mqtt-client-id', id),
        'gateway',
        new RegExp(
          `--mqtt-client-id \\(mqtt\\.client_id\\): must not be blank: leave it unset for the default \\(presence-gw-SITE-ID, unique per gateway\\) \\(got ${shown}\\)$`,
        ),
      );
      usage(
        presence('aggregator', '--mqtt-url', 'mqtt://127.0.0.1:9', '--mqtt-client-id', id),
        'aggregator',
        new RegExp(
          `--mqtt-client-id \\(mqtt\\.client_id\\): must not be blank: leave it unset for the default \\(from the host name and http\\.port, unique per instance\\) \\(got ${shown}\\)$`,
        ),
      );
    }
    // the same in a config file, named by its key
    const gw = join(tmp, 'blank-id-gw.yaml');
    writeFileSync(gw, 'gateway: {site: s, zone: z, id: g}\nmqtt: {url: "mqtt://127.0.0.1:9", client_id: "  "}\nsources: [{type: stdin}]\n');
    usage(presence('gateway', '--config', gw), 'gateway', /blank-id-gw\.yaml: mqtt\.client_id: must not be blank: leave it unset for the default/);
    const agg = join(tmp, 'blank-id-agg.yaml');
    writeFileSync(agg, 'mqtt: {url: "mqtt://127.0.0.1:9", client_id: " "}\n');
    usage(presence('aggregator', '--config', agg), 'aggregator', /blank-id-agg\.yaml: mqtt\.client_id: must not be blank: leave it unset for the default/);
  });

  it('a URL whose port is out of range (past 65535, or 0) says so, naming the flag, not "must be a URL like", in every command that takes a broker or InfluxDB URL', () => {
    const cases: Array<[string, string[], RegExp]> = [
      [
        'gateway',
        ['gateway', ...GW, '--source', 'stdin', '--mqtt-url', 'mqtt://host:99999'],
        /--mqtt-url \(mqtt\.url\): port 99999 is out of range \(1-65535\) \(got "mqtt:\/\/host:99999"\)$/,
      ],
      [
        'aggregator',
        ['aggregator', '--mqtt-url', 'mqtt://u:S3cr3tPW@[::1]:70000/'],
        /--mqtt-url \(mqtt\.url\): port 70000 is out of range \(1-65535\) \(got "mqtt:\/\/\[::1\]:70000\/"\)$/,
      ],
      ['aggregator', ['aggregator', '--mqtt-url', 'mqtt://host:0'], /--mqtt-url \(mqtt\.url\): port 0 is out of range \(1-65535\)/],
      [
        'aggregator',
        ['aggregator', '--mqtt-url', 'mqtt://127.0.0.1:9', '--influx-url', 'http://influx:99999', '--influx-api', 'v1', '--influx-db', 'p'],
        /--influx-url \(influx\.url\): port 99999 is out of range \(1-65535\) \(got "http:\/\/influx:99999"\)$/,
      ],
      [
        'influx setup',
        ['influx', 'setup', '--influx-url', 'http://influx:65536'],
        /--influx-url "http:\/\/influx:65536": port 65536 is out of range \(1-65535\); fix: /,
      ],
      [
        'simulate',
        ['simulate', '--load', '--count', '1', '--mqtt-url', 'mqtt://host:99999'],
        /--mqtt-url: port 99999 is out of range \(1-65535\) \(got "mqtt:\/\/host:99999"\)$/,
      ],
    ];
    for (const [cmd, args, what] of cases) {
      const r = presence(...args);
      usage(r, cmd, what);
      expect(r.err).not.toMatch(/must be a URL like|S3cr3tPW/);
    }
  });

  it("a number demo refuses (--minutes 0, --scale, --seed) is one line naming the flag, what it must be and the value, not commander's \"argument '0' is invalid.\"", () => {
    for (const [args, what] of [
      [['--minutes', '0'], /^presence demo: --minutes: must be a number above 0 \(got "0"\)$/m],
      [['--minutes', '-5'], /^presence demo: --minutes: must be a number above 0 \(got "-5"\)$/m],
      [['--scale', '0'], /^presence demo: --scale: must be a number above 0 \(got "0"\)$/m],
      [['--seed', '1.5'], /^presence demo: --seed: must be a whole number \(got "1.5"\)$/m],
    ] as const) {
      const r = presence('demo', ...args);
      usage(r, 'demo', what);
      expect(r.err).not.toMatch(/is invalid/);
    }
  });

  it('a URL that has the right scheme but does not parse is a usage error, without its password', () => {
    // (an unclosed IPv6 bracket: the scheme patterns accept it, URL parsers throw on it)
    const cases: Array<[string, string[], RegExp]> = [
      ['gateway', ['gateway', ...GW, '--source', 'stdin', '--mqtt-url', 'mqtt://u:S3cr3tPW@[::1'], /--mqtt-url \(mqtt\.url\): must be a URL like mqtt:/],
      ['aggregator', ['aggregator', '--mqtt-url', 'mqtt://u:S3cr3tPW@[::1'], /--mqtt-url \(mqtt\.url\): must be a URL like mqtt:/],
      [
        'aggregator',
        ['aggregator', '--influx-url', 'http://u:S3cr3tPW@[::1', '--influx-api', 'v1', '--influx-db', 'p'],
        /--influx-url \(influx\.url\): must be a URL like http:/,
      ],
      ['simulate', ['simulate', '--load', '--count', '1', '--mqtt-url', 'mqtt://u:S3cr3tPW@[::1'], /--mqtt-url: must be a URL like mqtt:/],
      ['simulate', ['simulate', '--load', '--count', '1', '--mqtt-url', 'http://u:S3cr3tPW@host'], /--mqtt-url: must be a URL like mqtt:/],
    ];
    for (const [cmd, args, what] of cases) {
      const r = presence(...args);
      usage(r, cmd, what);
      expect(r.err).not.toContain('S3cr3tPW');
    }
  });

  it('an --influx-url that is no URL says so, naming the flag, the value as typed (less its password) and an example, in calibrate, influx setup and the aggregator', () => {
    const truth = join(tmp, 'counts.csv');
    writeFileSync(truth, 'time;people\n2026-05-09T08:00:00Z;3\n');
    const calibrate = ['calibrate', '--influx-db', 'p', '--site', 's', '--zone', 'z', '--truth', truth, '--out', join(tmp, 'never.yaml')];
    for (const url of ['http://u:S3cr3tPW@in flux:8086', 'http://influx:99999', 'http://']) {
      const shown = JSON.stringify(url.replace('u:S3cr3tPW@', '')).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const notUrl = url.endsWith(':99999')
        ? new RegExp(`: --influx-url ${shown}: port 99999 is out of range \\(1-65535\\); fix: give InfluxDB's port, like http://influxdb:8086$`)
        : new RegExp(`: --influx-url ${shown} is not a valid URL; fix: give InfluxDB's address as an http\\(s\\) URL, like http://influxdb:8086$`);
      for (const [cmd, args] of [
        ['calibrate', [...calibrate, '--influx-url', url]],
        ['influx setup', ['influx', 'setup', '--influx-url', url]],
      ] as const) {
        const r = presence(...args);
        usage(r, cmd, notUrl);
        expect(r.err).not.toMatch(/cannot be reached|Invalid URL|S3cr3tPW/);
      }
      const agg = presence('aggregator', '--influx-url', url, '--influx-api', 'v1', '--influx-db', 'p', '--mqtt-url', 'mqtt://127.0.0.1:9');
      usage(
        agg,
        'aggregator',
        new RegExp(
          `--influx-url \\(influx\\.url\\): ${url.endsWith(':99999') ? 'port 99999 is out of range \\(1-65535\\)' : 'must be a URL like http://host:8086'} \\(got ${shown}\\)$`,
        ),
      );
      expect(agg.err).not.toContain('S3cr3tPW');
    }
    // from the environment: named as such
    const env = { ...process.env, INFLUX_URL: 'not a url' };
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), 'influx', 'setup'], { cwd: tmp, env, encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toMatch(/^presence influx setup: INFLUX_URL "not a url" does not start with http:\/\/ or https:\/\/ \(InfluxDB answers HTTP\); fix: /);
    expect(r.status).toBe(2);
    usage(
      presence(...calibrate, '--influx-url', 'ftp://influx'),
      'calibrate',
      /--influx-url "ftp:\/\/influx" does not start with http:\/\/ or https:\/\/ \(InfluxDB answers HTTP\); fix: give an http\(s\) URL, like http:\/\/influxdb:8086$/,
    );
  });

  it('--source pcap:FILE with a missing file stops before anything starts, naming the file', () => {
    const r = presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', 'pcap:missing.pcap', '--queue-dir', join(tmp, 'q'));
    usage(r, 'gateway', /--source pcap:missing\.pcap: .*missing\.pcap does not exist/);
    usage(
      presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', `pcap:${tmp}`, '--queue-dir', join(tmp, 'q')),
      'gateway',
      /--source pcap:.*: .* is a folder, not a capture file$/,
    );
    expect(r.err).not.toContain('gateway starting'); // nothing was started, no JSON log line
    usage(presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', 'bogus'), 'gateway', /--source "bogus": must be pcap:FILE/);
    usage(presence('replay', 'missing.pcap'), 'replay', /missing\.pcap: the file does not exist/);
    usage(presence('replay', tmp), 'replay', /: is a folder, not a capture file$/);
  });

  it("a mistake in a config file points at the README's key reference, not at --help (which lists flags); a flag's mistake still at --help", () => {
    const gw = join(tmp, 'gw-typo.yaml');
    writeFileSync(gw, 'gateway: {site: s, zone: z, id: g, windw: 60s}\nsources: [{type: stdin}]\nmqtt: {url: "mqtt://127.0.0.1:9"}\n');
    const g = presence('gateway', '--config', gw);
    usage(g, 'gateway', new RegExp(`^presence gateway: ${escapeRegExp(gw)}: gateway: has an unknown key "windw" \\(did you mean "window"\\?\\)$`));
    expect(g.err).toContain(
      'hint: gateway/README.md, "Configuration", lists every key of the file with its type and default (presence gateway --help lists the flags)',
    );
    const agg = join(tmp, 'agg-typo.yaml');
    writeFileSync(agg, 'batch: {flush_interval: soon}\n');
    const a = presence('aggregator', '--config', agg, '--http-port', 'off');
    usage(a, 'aggregator', /batch\.flush_interval: must be a duration/);
    expect(a.err).toContain('hint: aggregator/README.md, "Configuration", lists every key of the file with its type and default');
    const flag = presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', 'stdin', '--window', '1q');
    usage(flag, 'gateway', /^presence gateway: --window \(gateway\.window\): must be a duration/);
    expect(flag.err).toContain('hint: presence gateway --help lists the options');
  });

  it('a YAML file with an alias inside its own anchor (a cycle) is one line naming the file, line and column in every command that reads one, not a stack trace', () => {
    // `&x` names the mapping that holds `*x`: the parsed value holds itself, and the walks over it
    // (the search for secret keys, the error text, JSON.stringify) ran out of stack.
    const cyclic = 'gateway:\n  site: s\n  extra: &x\n    b: *x\n';
    const cycle = (file: string) =>
      new RegExp(`${escapeRegExp(file)}: not valid YAML: An alias cannot refer to a node that holds it \\(a cycle\\) at line 4, column 8$`);
    const file = (name: string) => {
      const f = join(tmp, name);
      writeFileSync(f, cyclic);
      return f;
    };
    const secret = join(tmp, 'cycle-group.secret');
    expect(presence('corridor', 'init', '--group', 'g', '--out', secret).code).toBe(0);
    for (const [command, args] of [
      ['gateway', ['--config', file('cycle-gw.yaml')]],
      ['aggregator', ['--config', file('cycle-agg.yaml'), '--http-port', 'off']],
      ['corridor join', ['--config', file('cycle-join.yaml'), '--group', 'g', '--secret-file', secret, '--sketch-p', '0.03']],
      [
        'provision gateway',
        [
          '--site',
          's',
          '--zone',
          'z',
          '--id',
          'g',
          '--password-file',
          join(tmp, 'cycle-pw'),
          '--acl-file',
          join(tmp, 'cycle-acl'),
          '--aggregator-config',
          file('cycle-prov.yaml'),
        ],
      ],
    ] as const) {
      const r = presence(...command.split(' '), ...args);
      expect(r.err).not.toMatch(/RangeError|Maximum call stack|\n\s+at /);
      usage(r, command, cycle(args.find((a) => a.endsWith('.yaml'))!));
    }
    // doctor fails its configuration check with the same words, naming the file
    const d = presence('doctor', '--config', file('cycle-doctor.yaml'));
    expect(d.out + d.err).toContain(
      `${join(tmp, 'cycle-doctor.yaml')}: not valid YAML: An alias cannot refer to a node that holds it (a cycle) at line 4, column 8`,
    );
    expect(d.out + d.err).not.toMatch(/Maximum call stack/);
    // an alias to a node outside it is no cycle: read as before
    writeFileSync(join(tmp, 'alias-ok.yaml'), 'gateway: &g {site: s, zone: z, id: g}\nsources: [{type: stdin}]\nmqtt: {url: "x"}\nextra: [*g, *g]\n');
    expect(presence('gateway', '--config', join(tmp, 'alias-ok.yaml')).err).toMatch(/unknown key "extra"/);
  });

  it('a YAML file of two documents (a --- line) is one line naming the file and the line, in every command that reads one: the settings after it are not left out', () => {
    // The config loader parsed with the package's errors silenced, so its MULTIPLE_DOCS error was
    // dropped and the gateway started on the first document alone, without the privacy.min_count
    // written after the ---; elsewhere the line told the user to call YAML.parseAllDocuments().
    const twoDocs = (name: string, first: string, second: string) => {
      const f = join(tmp, name);
      writeFileSync(f, `${first}---\n${second}`);
      return f;
    };
    const gw = 'gateway: {site: s, zone: z, id: g}\nmqtt: {url: "mqtt://127.0.0.1:9"}\nsources: [{type: stdin}]\n';
    const second = (file: string, line: number) =>
      new RegExp(
        `${escapeRegExp(file)}: not valid YAML: a second YAML document, whose settings would be left out \\(a file is one document\\): remove the --- line at line ${line}, column 1$`,
      );
    const g = twoDocs('two-gw.yaml', gw, 'privacy: {min_count: 5}\n');
    usage(presence('gateway', '--config', g), 'gateway', second(g, 4));
    const a = twoDocs('two-agg.yaml', 'mqtt: {url: "mqtt://127.0.0.1:9"}\n', 'gateways: {allow_unknown: false}\n');
    usage(presence('aggregator', '--config', a, '--http-port', 'off'), 'aggregator', second(a, 2));
    const d = presence('doctor', '--config', g);
    expect(d.out + d.err).toContain(`${g}: not valid YAML: a second YAML document, whose settings would be left out`);
    const p = twoDocs('two-prov.yaml', 'aggregator: {}\n', 'gateways: {}\n');
    const prov = presence(
      ...['provision', 'gateway', '--site', 's', '--zone', 'z', '--id', 'g'],
      ...['--password-file', join(tmp, 'two-pw'), '--acl-file', join(tmp, 'two-acl'), '--aggregator-config', p],
    );
    usage(prov, 'provision gateway', second(p, 2));
    const sc = twoDocs('two-scenario.yaml', 'name: x\n', 'duration: 1m\n');
    usage(presence('simulate', sc, '--out', join(tmp, 'two-sim')), 'simulate', second(sc, 2));
  });

  it('an empty --config or --out (a variable that was not set) is one line naming the flag, not the defaults or the working folder', () => {
    // --config "" was taken for no file: the gateway and the aggregator started on their defaults
    // (the aggregator writing ./presence.lp instead of the InfluxDB of the file meant).
    const empty = /--config is empty: give the path of the YAML or JSON config file, or leave --config out$/;
    usage(presence('gateway', '--config', '', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', 'stdin'), 'gateway', empty);
    usage(presence('aggregator', '--config', '', '--http-port', 'off'), 'aggregator', empty);
    const d = presence('doctor', '--config', '');
    expect(d.out + d.err).toMatch(/\[FAIL\] configuration\s+--config is empty/);
    // simulate --out "" named "/" and failed with a bare ENOENT; demo --out "" marked the working folder as its own
    usage(presence('simulate', 'quiet-night', '--out', ''), 'simulate', /--out is empty: give the folder to write to$/);
    usage(presence('simulate', 'quiet-night', '--live', '--pipe', ''), 'simulate', /--pipe is empty: give the file to write to$/);
    usage(presence('demo', '--out', '', '--no-hold'), 'demo', /--out is empty: give the folder for the results/);
    expect(existsSync(join(tmp, '.presence-demo'))).toBe(false);
  });

  it("YAML's .nan in a number setting is one line saying it is no number, not a line per bound it fails", () => {
    // privacy.epsilon: .nan said "must be <= 100 (got NaN)" and "must be >= 0.000001 (got NaN)";
    // a source's speed: .nan said "(got null)", JSON's word for it.
    const f = join(tmp, 'nan.yaml');
    writeFileSync(f, 'gateway: {site: s, zone: z, id: g}\nmqtt: {url: "mqtt://127.0.0.1:9"}\nsources: [{type: stdin}]\nprivacy: {epsilon: .nan}\n');
    usage(presence('gateway', '--config', f), 'gateway', /privacy\.epsilon: must be a finite number \(got NaN\)$/);
    writeFileSync(f, 'gateway: {site: s, zone: z, id: g}\nmqtt: {url: "mqtt://127.0.0.1:9"}\nsources: [{type: file, path: x.pcap, speed: .nan}]\n');
    usage(presence('gateway', '--config', f), 'gateway', /sources\[0\]\.speed \(--speed\): must be a number above 0 or "max" \(got NaN\)$/);
    writeFileSync(f, 'batch: {size: .nan}\n');
    usage(presence('aggregator', '--config', f, '--http-port', 'off'), 'aggregator', /batch\.size: must be a finite number \(got NaN\)$/);
  });

  it('a duration of hundreds of digits is one line naming the flag and why, in every command (it was Infinity ms)', () => {
    const huge = `${'9'.repeat(400)}d`;
    const tooLong = (flag: string) =>
      new RegExp(`^presence \\S+: ${escapeRegExp(flag)}.*: must be a duration .*: it is too long to be counted in milliseconds$`);
    // the aggregator named the old key and "got null"; simulate stopped with "Invalid time value"
    usage(presence('aggregator', '--max-ahead', huge, '--http-port', 'off'), 'aggregator', tooLong('--max-ahead (max_ahead)'));
    usage(presence('aggregator', '--http-history', huge, '--http-port', 'off'), 'aggregator', tooLong('--http-history (http.history)'));
    usage(presence('simulate', 'quiet-night', '--window', huge, '--out', join(tmp, 'sim-huge')), 'simulate', tooLong('--window'));
    usage(
      presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', 'stdin', '--window', huge),
      'gateway',
      tooLong('--window (gateway.window)'),
    );
    usage(presence('replay', 'x.pcap', '--window', huge), 'replay', tooLong('--window'));
  });

  it('a capture or TLS file missing from a config file names the config file and says where a relative path starts', () => {
    const file = join(tmp, 'files-missing.yaml');
    writeFileSync(
      file,
      'gateway: {site: s, zone: z, id: g}\nsources: [{type: file, path: captures/day1.pcap}]\nmqtt: {url: "mqtts://127.0.0.1:9", ca: ca.pem}\n',
    );
    const r = presence('gateway', '--config', file, '--queue-dir', join(tmp, 'q'));
    const lines = r.err.trimEnd().split('\n');
    expect(lines, r.err).toEqual([
      `presence gateway: ${file}: sources[0] (file0): ${join(tmp, 'captures/day1.pcap')} does not exist`,
      `presence gateway: ${file}: mqtt.ca: ${join(tmp, 'ca.pem')} does not exist`,
      "hint: check the path: a relative path in a config file starts from the file's folder, one on the command line from the current folder",
    ]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    // The aggregator's TLS files the same way; one given by a flag is named by its key, as before.
    const agg = join(tmp, 'agg-files-missing.yaml');
    writeFileSync(agg, 'mqtt: {url: "mqtts://127.0.0.1:9", ca: ca.pem, key: client.key}\nhttp: {port: null}\n');
    const a = presence('aggregator', '--config', agg, '--mqtt-key', 'nope.key');
    expect(a.err.trimEnd().split('\n'), a.err).toEqual([
      `presence aggregator: ${agg}: mqtt.ca: ${join(tmp, 'ca.pem')} does not exist`,
      'presence aggregator: mqtt.key: nope.key does not exist',
      "hint: check the path: a relative path in a config file starts from the file's folder, one on the command line from the current folder",
    ]);
    expect(a.code).toBe(2);
  });

  it('a queue folder that cannot be made (under /proc) or that is a file stops the gateway as a usage error (exit 2, no log line) and fails doctor with the reason; under /proc both hung', () => {
    const file = join(tmp, 'queue-is-a-file');
    writeFileSync(file, '');
    for (const [dir, why] of [
      ['/proc/presence-no-such/q', "ENOENT: no such file or directory, mkdir '/proc/presence-no-such'"],
      [join(file, 'q'), `${file} is a file, not a folder`],
    ] as const) {
      const gw = presence('gateway', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', 'stdin', '--queue-dir', dir, '--log-format', 'json');
      usage(gw, 'gateway', new RegExp(`^presence gateway: queue\\.dir ${escapeRegExp(dir)}: ${escapeRegExp(why)}$`));
      expect(gw.err).toMatch(/^hint: queue\.dir \(--queue-dir\) must name a folder/m);
      const doc = presence('doctor', ...GW, '--mqtt-url', 'mqtt://127.0.0.1:9', '--source', 'stdin', '--queue-dir', dir, '--json');
      expect((JSON.parse(doc.out) as Array<{ step: string }>).find((c) => c.step === 'queue folder')).toMatchObject({
        level: 'fail',
        detail: `${dir}: ${why}`,
      });
    }
    // presence provision's --secret-out there: refused with the reason before any file is changed (it hung)
    const prov = presence(
      'provision',
      'gateway',
      '--site',
      's',
      '--zone',
      'z',
      '--id',
      'g-proc',
      '--password-file',
      join(tmp, 'prov-passwd'),
      '--acl-file',
      join(tmp, 'prov.acl'),
      '--aggregator-config',
      join(tmp, 'prov-agg.yaml'),
      '--secret-out',
      '/proc/presence-no-such/pw',
    );
    expect(prov.code, prov.err).not.toBe(null);
    expect(prov.code).not.toBe(0);
    expect(prov.err).toBe(
      'presence provision gateway: --secret-out /proc/presence-no-such/pw: the folder /proc/presence-no-such does not exist; check the path (a new file is created, its folder is not)\nhint: presence provision gateway --help lists the options\n',
    );
  });

  it('TLS files (mqtt.ca, mqtt.cert, mqtt.key) that are missing, a folder or a device stop the gateway and the aggregator before anything starts', () => {
    const missing = join(tmp, 'no-such-ca.pem');
    const gw = presence('gateway', ...GW, '--mqtt-url', 'mqtts://127.0.0.1:9', '--source', 'stdin', '--queue-dir', join(tmp, 'q-tls'), '--mqtt-ca', missing);
    usage(gw, 'gateway', new RegExp(`^presence gateway: mqtt\\.ca: ${missing.replace(/[.]/g, '\\.')} does not exist$`));
    expect(gw.err).not.toContain('gateway starting');
    const agg = presence('aggregator', '--mqtt-url', 'mqtts://127.0.0.1:9', '--http-port', 'off', '--mqtt-cert', '/dev/zero', '--mqtt-key', tmp);
    expect(agg.code).toBe(2);
    expect(agg.err).toContain('mqtt.cert: /dev/zero is not a regular file (a device)');
    expect(agg.err).toContain(`mqtt.key: ${tmp} is a folder, not a file`);
    expect(agg.err).not.toMatch(/"level"/); // nothing was started: no log line
  });

  it('a scenario that is neither built in nor a file, and a --pipe in a missing folder, stop before anything starts', () => {
    const r = presence('simulate', 'nosuchscenario', '--out', join(tmp, 'sim'));
    usage(r, 'simulate', /scenario "nosuchscenario": not a built-in scenario and no such file/);
    expect(r.err).toMatch(/hint: the built-in scenarios are .*kingsday-square/);
    const p = presence('simulate', 'kingsday-square', '--live', '--pipe', '/nonexistent/dir/p');
    usage(p, 'simulate', /--pipe \/nonexistent\/dir\/p: the folder \/nonexistent\/dir does not exist/);
    expect(p.err).not.toContain('live stream started');
  });

  it('--http-port that is not a port is one line, not one per alternative of the schema', () => {
    for (const cmd of [
      ['gateway', ...GW, '--source', 'stdin', '--mqtt-url', 'mqtt://127.0.0.1:9'],
      ['aggregator', '--mqtt-url', 'mqtt://127.0.0.1:9'],
    ]) {
      const r = presence(...cmd, '--http-port', 'abc');
      usage(r, cmd[0], /--http-port \(http\.port\): must be a port number 0\.\.65535, or null \(off\).* \(got "abc"\)/);
    }
  });

  it('a taken --http-port is the usage line and the same hint in the gateway and the aggregator, no log line before', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const runs = [
        presence('gateway', ...GW, '--source', 'stdin', '--mqtt-url', 'mqtt://127.0.0.1:9', '--queue-dir', join(tmp, 'q-port'), '--http-port', String(port)),
        presence('aggregator', '--mqtt-url', 'mqtt://127.0.0.1:9', '--http-port', String(port)),
      ];
      for (const [i, cmd] of ['gateway', 'aggregator'].entries()) {
        usage(runs[i], cmd, new RegExp(`--http-port ${port} \\(http\\.port\\): 127\\.0\\.0\\.1:${port} is already in use`));
      }
      expect(runs[0].err.split('\n')[1]).toBe(runs[1].err.split('\n')[1]);
    } finally {
      blocker.close();
    }
  });

  it('a taken port from a config file is named by its key and the file, not --http-port, in the gateway and the aggregator', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      writeFileSync(
        join(tmp, 'gw-port.yaml'),
        `gateway: {site: s, zone: z, id: g}\nmqtt: {url: "mqtt://127.0.0.1:9"}\nqueue: {dir: q-port-file}\nhttp: {port: ${port}}\n`,
      );
      writeFileSync(join(tmp, 'agg-port.yaml'), `aggregator:\n  mqtt: {url: "mqtt://127.0.0.1:9"}\n  http: {port: ${port}}\n`);
      const gw = presence('gateway', '--config', 'gw-port.yaml', '--source', 'stdin');
      usage(
        gw,
        'gateway',
        new RegExp(`^presence gateway: http\\.port ${port} \\(in config file gw-port\\.yaml\\): 127\\.0\\.0\\.1:${port} is already in use$`, 'm'),
      );
      const agg = presence('aggregator', '--config', 'agg-port.yaml');
      usage(
        agg,
        'aggregator',
        new RegExp(
          `^presence aggregator: aggregator\\.http\\.port ${port} \\(in config file agg-port\\.yaml\\): 127\\.0\\.0\\.1:${port} is already in use$`,
          'm',
        ),
      );
      for (const r of [gw, agg]) {
        expect(r.err).not.toMatch(/^presence \w+: --http-port/m);
        expect(r.err).toMatch(/^hint: choose a free port with (aggregator\.)?http\.port in \S+-port\.yaml, or --http-port, which wins; null there/m);
      }
      // The flag over the file's key: the flag.
      usage(
        presence('aggregator', '--config', 'agg-port.yaml', '--http-port', String(port)),
        'aggregator',
        new RegExp(`^presence aggregator: --http-port ${port} \\(http\\.port\\): 127\\.0\\.0\\.1:${port} is already in use$`, 'm'),
      );
    } finally {
      blocker.close();
    }
  });

  it('a reader that closes the output early (presence ... | head) is no crash: the command does its work and ends quietly', async () => {
    const { spawn } = await import('node:child_process');
    const { existsSync, statSync } = await import('node:fs');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MQTT_|INFLUX_|LOG_)/.test(k)));
    const out = join(tmp, 'sim-closed-stdout');
    for (const args of [
      ['simulate', '--list'],
      ['simulate', 'quiet-night', '--duration', '2m', '--out', out],
    ]) {
      const child = spawn(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy(); // the reader is gone before the command writes anything
      let err = '';
      child.stderr.on('data', (d) => {
        err += d;
      });
      const code = await new Promise((r) => child.on('close', (c, signal) => r(c ?? signal)));
      expect(err, args.join(' ')).not.toMatch(/EPIPE|Unhandled|at .*\.js:\d+/);
      expect(code, `${args.join(' ')}: ${err}`).toBe(0);
    }
    // the captures were written whole all the same
    expect(existsSync(join(out, 'truth.json'))).toBe(true);
    expect(statSync(join(out, 'gw-lobby.pcapng')).size).toBeGreaterThan(0);
  });

  it.skipIf(!existsSync('/dev/full'))(
    'output that cannot be written (a full disk behind > out.txt: /dev/full) is one line naming it, exit 1, no stack trace; the command still does its work',
    async () => {
      const { spawnSync: run } = await import('node:child_process');
      const { openSync, closeSync, statSync } = await import('node:fs');
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MQTT_|INFLUX_|LOG_)/.test(k)));
      const out = join(tmp, 'sim-full-stdout');
      const full = (...args: string[]) => {
        const fd = openSync('/dev/full', 'w');
        try {
          const r = run(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], {
            cwd: tmp,
            env,
            encoding: 'utf8',
            stdio: ['ignore', fd, 'pipe'],
            timeout: 60_000,
          });
          return { code: r.status, err: r.stderr };
        } finally {
          closeSync(fd);
        }
      };
      const line = (command: string) =>
        `presence ${command}: cannot write to standard output (ENOSPC): the output is incomplete; no space left on the device it goes to (or the quota is full); fix: free some, or send the output elsewhere, then run it again\n`;
      const list = full('simulate', '--list');
      expect(list.err).toBe(line('simulate'));
      expect(list.code).toBe(1);
      // the captures are written whole all the same (the summary printed to stdout was what failed)
      const sim = full('simulate', 'quiet-night', '--duration', '2m', '--out', out);
      expect(sim.err.endsWith(line('simulate')), sim.err).toBe(true); // after its size line
      expect(sim.err).not.toMatch(/\n\s+at |Error:/);
      expect(sim.code).toBe(1);
      expect(statSync(join(out, 'gw-lobby.pcapng')).size).toBeGreaterThan(0);
      // commands that exit right after printing (--help, doctor's report) waited for no write: exit 0, output lost
      for (const [command, args] of [
        ['', ['--help']],
        ['replay', ['replay', '--help']],
        ['doctor', ['doctor', '--site', 's', '--zone', 'z', '--id', 'g', '--source', `pcap:${join(out, 'gw-lobby.pcapng')}`, '--json']],
      ] as const) {
        const r = full(...args);
        expect(r.err.endsWith(line(command).replace('presence : ', 'presence: ')), `${args.join(' ')}: ${r.err}`).toBe(true);
        expect(r.code, args.join(' ')).toBe(1);
      }
      for (const flags of [[], ['--json']]) {
        const replay = full('replay', join(out, 'gw-lobby.pcapng'), ...flags);
        expect(replay.err, flags.join(' ')).toBe(line('replay'));
        expect(replay.code).toBe(1);
      }
    },
  );

  it('a terminal escape, a bidirectional override or a zero-width character in what a line echoes (a file name, a config key or value, a zone) is shown as \\uXXXX, in usage errors, replay and calibrate failures and the doctor', () => {
    // ESC ] 0 ; ... BEL retitles a terminal, ESC [ 2 J clears it, U+202E shows the rest reversed,
    // U+200B hides in a value the line says is wrong: each was written raw.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
    const raw = /[\u001b\u0007\u202e\u200b]/;
    const evil = join(tmp, 'e\u001b]0;pwned\u0007vil.pcap');
    writeFileSync(evil, 'not a capture at all');
    const config = join(tmp, 'evil-keys.yaml');
    writeFileSync(config, 'gateway:\n  site: s\n  zone: z\n  id: g\n  "k\\e[2Jx": 1\n  window: "6\\u202e0s"\nsources: [{ pcap: missing.pcap }]\n');
    const runs = [
      presence('replay', join(tmp, 'missing\u001b[31m.pcap')),
      presence('replay', evil),
      presence('calibrate', '--zone', 'a\u200bb\u001b[31m', '--capture', evil, '--truth', evil, '--out', join(tmp, 'o.yaml')),
      presence('calibrate', '--zone', 'lab', '--capture', evil, '--truth', evil, '--out', join(tmp, 'o.yaml')),
      presence('gateway', '--config', config),
      presence('doctor', '--config', config),
      presence('replay', 'x.pcap', '--a\u001b[31m'),
      presence('fo\u001b[31mo'),
    ];
    for (const r of runs) {
      expect(r.err + r.out, r.err).not.toMatch(raw);
      expect(r.err + r.out, r.err).toMatch(/\\u(001b|202e|200b)/);
    }
    usage(runs[0], 'replay', /missing\\u001b\[31m\.pcap: the file does not exist/);
    expect(runs[1].err).toMatch(/^presence replay: .*e\\u001b\]0;pwned\\u0007vil\.pcap: not a pcap or pcapng capture/);
    usage(runs[2], 'calibrate', /--zone "a\\u200bb\\u001b\[31m": not a zone id/);
    expect(runs[4].err).toContain('unknown key "k\\u001b[2Jx"');
    expect(runs[4].err).toContain('(got "6\\u202e0s")');
    expect(runs[5].out).toContain('unknown key "k\\u001b[2Jx"');
    usage(runs[6], 'replay', /^presence replay: unknown option '--a\\u001b\[31m'$/);
    expect(runs[7].err).toContain("presence: unknown command 'fo\\u001b[31mo'");
  });

  it('--help and --version still exit 0 and print to stdout', () => {
    const h = presence('gateway', '--help');
    expect(h.code).toBe(0);
    expect(h.out).toContain('--http-port <port>');
    const v = presence('--version');
    expect(v.code).toBe(0);
    expect(v.out.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
