// The shared configuration pieces in scripts/lib: one duration syntax, one deprecation line per old
// name, secrets from files, and error lines that name the key, where it came from and the fix.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDuration as aggregatorDuration, loadConfigWithSources as loadAggregatorConfig } from '../aggregator/config.ts';
import { parseWindow } from '../gateway/replay.ts';
import { parseDuration as gatewayDuration, loadConfigWithSources as loadGatewayConfig } from '../gateway/config.ts';
import { parseDuration as scenarioDuration } from '../simulator/scenario.ts';
import { buildSchema, ConfigError, createAjv, describeErrors, readConfigFile, type OptionSpec } from '../scripts/lib/config-loader.ts';
import { captureDeprecations, deprecated } from '../scripts/lib/deprecate.ts';
import { DurationError, durationMs, formatDuration, isDurationString, parseDuration } from '../scripts/lib/duration.ts';
import { readSecretFile } from '../scripts/lib/secrets.ts';
import { HTTP_PORT_HINT, HttpPortError } from '../scripts/lib/http.ts';
import { loadScenario } from '../simulator/scenario.ts';
import { readCalibration } from '../aggregator/calibration/index.ts';
import { provisionGateway } from '../aggregator/provision.ts';
import { corridorJoin } from '../gateway/corridor-cli.ts';

const tmp = mkdtempSync(join(tmpdir(), 'presence-config-lib-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('durations', () => {
  it('reads ms, s, m, h, d, decimals and compounds; rejects anything else with one message', () => {
    for (const [text, ms] of [
      ['250ms', 250],
      ['60s', 60_000],
      ['1.5s', 1500],
      ['15m', 900_000],
      ['2h', 7_200_000],
      ['1h30m', 5_400_000],
      ['7d', 604_800_000],
      ['1h 30m', 5_400_000],
      ['500 ms', 500],
    ] as const)
      expect(parseDuration(text), text).toBe(ms);
    for (const bad of ['soon', '', '60 seconds', '5x', 'm5', '-1s', '1s-', null, {}, '0s'])
      expect(() => parseDuration(bad), String(bad)).toThrow(DurationError);
    expect(() => parseDuration('fast')).toThrow('must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "fast")');
    expect(durationMs('0s', { zero: true })).toBe(0);
    // hundreds of digits are Infinity ms: no duration, said so (the aggregator's --max-ahead named
    // its old key and "got null", simulate --window stopped with "Invalid time value")
    const huge = `${'9'.repeat(400)}d`;
    expect(durationMs(huge)).toBeNaN();
    expect(durationMs('9'.repeat(400), { bare: 'ms' })).toBeNaN();
    expect(() => parseDuration(huge)).toThrow(`(got "${huge}"): it is too long to be counted in milliseconds`);
  });

  it('reads a bare number only in the unit the caller names', () => {
    expect(() => parseDuration(60)).toThrow(DurationError);
    expect(() => parseDuration('60')).toThrow(DurationError);
    expect(parseDuration(60, { bare: 's' })).toBe(60_000);
    expect(parseDuration('60', { bare: 's' })).toBe(60_000);
    expect(parseDuration(200, { bare: 'ms' })).toBe(200);
    expect(isDurationString('60s')).toBe(true);
    expect(isDurationString('60')).toBe(false);
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(604_800_000)).toBe('7d');
  });

  it('every component reads durations with it (its units, its words)', () => {
    expect(gatewayDuration('1h30m')).toBe(5_400_000);
    expect(gatewayDuration(30)).toBe(30_000); // gateway: bare number = seconds, as before
    expect(aggregatorDuration('7d', 's')).toBe(604_800_000);
    expect(aggregatorDuration(250)).toBe(250); // aggregator: bare number = ms, as before
    expect(scenarioDuration('1h30m')).toBe(5400); // scenario files: seconds
    expect(scenarioDuration('2d')).toBe(172_800);
    expect(parseWindow('1h30m')).toBe(5_400_000);
    expect(() => parseWindow('5x')).toThrow('must be a duration like 250ms, 60s, 15m, 1h30m or 7d, or "all" (got "5x")');
  });
});

describe('deprecation lines', () => {
  it('one line per old name per process, naming the new one', () => {
    const { lines } = captureDeprecations(() => {
      deprecated('flag', '--old', '--new');
      deprecated('flag', '--old', '--new');
      deprecated('environment variable', 'OLD_ENV', 'NEW_ENV');
    });
    expect(lines).toEqual([
      'presence: warning: flag --old is deprecated, use --new; the old name still works for now',
      'presence: warning: environment variable OLD_ENV is deprecated, use NEW_ENV; the old name still works for now',
    ]);
  });
});

describe('secrets', () => {
  it('reads the first line of a secret file and names a missing one', () => {
    const f = join(tmp, 'pw');
    writeFileSync(f, 's3cret\r\nignored\n');
    expect(readSecretFile(f, 'mqtt.password_file')).toBe('s3cret');
    expect(() => readSecretFile(join(tmp, 'absent'), 'mqtt.password_file')).toThrow(/^mqtt\.password_file: cannot read .*absent \(ENOENT\)$/);
  });
});

describe('files that are not what they claim', () => {
  /** The problems of the ConfigError that fn throws. */
  const problems = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).problems.join('\n');
    }
    throw new Error('no error');
  };

  it('a config path that is a fifo, a device or a huge file is refused at once, naming the file', () => {
    const fifo = join(tmp, 'config.fifo');
    execFileSync('mkfifo', [fifo]);
    // (reading a fifo blocks until a writer opens it: the check must not read it)
    expect(problems(() => readConfigFile(fifo))).toBe(`config file ${fifo} is not a regular file (a fifo): give the path of a YAML or JSON file`);
    expect(problems(() => readConfigFile('/dev/zero'))).toMatch(/^config file \/dev\/zero is not a regular file \(a device\)/);
    const huge = join(tmp, 'huge.yaml');
    writeFileSync(huge, '');
    truncateSync(huge, 64 * 1024 * 1024); // sparse: nothing is written, the size is what is checked
    expect(problems(() => readConfigFile(huge))).toBe(`config file ${huge} is 64 MiB; a config file is at most 1 MiB`);
  });

  it('a config file with a YAML tag (binary data, a set, a date, a function) is refused as not plain YAML, naming the tag', () => {
    for (const [text, tag] of [
      ['gateway: !!binary AAAA\n', 'binary'],
      ['mqtt: !!set { url }\n', 'set'],
      ['gateway:\n  site: !!timestamp 2001-01-01\n', 'timestamp'],
      ['!!js/function "function () {}"\n', 'js/function'],
    ]) {
      const f = join(tmp, `tagged-${tag.replace('/', '-')}.yaml`);
      writeFileSync(f, text);
      expect(problems(() => readConfigFile(f))).toMatch(new RegExp(`^not valid YAML: Unresolved tag: tag:yaml\\.org,2002:${tag} at line`));
    }
  });

  it('a syntax error quotes no value of the file: a password written with ! or * in front, a backslash, or unquoted in JSON', () => {
    // (the yaml package and V8 quoted them: "Unresolved tag: !Pw...", "Unresolved alias ...: Pw...",
    // "Invalid escape sequence \\xPw", "Unexpected token 'P', ...\"word\": Pw...}\" is not valid JSON")
    const cases: Array<[string, string, RegExp]> = [
      [
        'tag.yaml',
        'mqtt:\n  url: mqtt://h\n  password: !PwSecret-1\n',
        /^not valid YAML: Unresolved tag \(a value that starts with ! is a tag: put it in quotes\) at line 3, column 13$/,
      ],
      ['alias.yaml', 'mqtt:\n  password: *PwSecret-2\n', /^not valid YAML: Unresolved alias \(a value that starts with \* is an alias: put it in quotes\)/],
      [
        'escape.yaml',
        'mqtt:\n  password: "\\xPwSecret-3"\n',
        /^not valid YAML: Invalid escape sequence \(in double quotes a backslash starts an escape: use single quotes\) at line 2/,
      ],
      ['block.yaml', 'mqtt:\n  password: |PwSecret-4\n', /^not valid YAML: Block scalar header includes extra characters at line 2/],
      [
        'unquoted.json',
        '{\n  "mqtt": {\n    "url": "mqtt://h",\n    "password": PwSecret-5\n  }\n}\n',
        /^not valid JSON: unexpected character at line 4, column 17 \(a text value needs double quotes\)$/,
      ],
      ['short.json', '{"p": PwSecret-6}', /^not valid JSON: unexpected character near the start \(a text value needs double quotes\)$/],
    ];
    for (const [name, text, want] of cases) {
      const f = join(tmp, `secret-${name}`);
      writeFileSync(f, text, { mode: 0o600 });
      const got = problems(() => readConfigFile(f));
      expect(got, name).toMatch(want);
      expect(got, name).not.toMatch(/PwSecret|Pw/);
    }
    // so do presence provision gateway (the aggregator's file) and presence corridor join (the gateway's)
    const agg = join(tmp, 'secret-aggregator.json');
    writeFileSync(agg, '{"aggregator": {"influx": {"password": PwSecret-7}}}\n', { mode: 0o600 });
    expect(() =>
      provisionGateway({ site: 's', zone: 'z', id: 'g', passwordFile: join(tmp, 'secret-passwd'), aggregatorConfig: agg, secretOut: join(tmp, 'secret.pw') }),
    ).toThrow(/: not valid JSON: unexpected character at line 1, column 40 \(a text value needs double quotes\)$/);
    const gw = join(tmp, 'secret-gateway.json');
    writeFileSync(gw, '{"mqtt": {"password": PwSecret-8}}\n', { mode: 0o600 });
    const secret = join(tmp, 'secret-group.secret');
    writeFileSync(secret, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    let err: unknown;
    try {
      corridorJoin({ config: gw, group: 'g', secretFile: secret, sketchP: '0.03' });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toMatch(/not valid JSON: unexpected character at line 1, column 23/);
    expect((err as Error).message).not.toContain('PwSecret');
  });

  it('a config file of 30,000 registry entries (under 1 MiB) is read in seconds: its keys are checked for duplicates in one pass', () => {
    // The yaml package compares each key of a mapping with every one before it: 10,000 entries took
    // 5.7 s at each start and SIGHUP of the aggregator (nothing read from the broker meanwhile),
    // 30,000 over a minute.
    const n = 30_000;
    const f = join(tmp, 'big-registry.yaml');
    writeFileSync(f, `gateways:\n  registry:\n${Array.from({ length: n }, (_, i) => `    g${i}: {site: a, zone: b}\n`).join('')}`);
    const started = performance.now();
    const read = readConfigFile(f) as { gateways: { registry: Record<string, unknown> } };
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(Object.keys(read.gateways.registry)).toHaveLength(n);
  }, 120_000);

  it('a key twice in a mapping of a config, calibration or scenario file is refused with its line, as before', () => {
    const config = join(tmp, 'twice.yaml');
    writeFileSync(config, 'gateways:\n  registry:\n    gw-1: {site: a, zone: b}\n    gw-2: {site: a, zone: b, site: c}\n    gw-1: {site: a, zone: c}\n');
    expect(problems(() => readConfigFile(config))).toBe('not valid YAML: Map keys must be unique at line 4, column 30');
    const calibration = join(tmp, 'twice-calibration.yaml');
    writeFileSync(calibration, 'format: presence-calibration/1\nlevel: 0.9\nlevel: 0.8\n');
    expect(() => readCalibration(calibration)).toThrow(`${calibration}:3:1: not valid YAML: Map keys must be unique`);
    const scenario = join(tmp, 'twice-scenario.yaml');
    writeFileSync(scenario, 'name: a\nname: b\n');
    expect(() => loadScenario(scenario)).toThrow('not valid YAML: Map keys must be unique at line 2, column 1');
    // Equal values only, as the package compares: 1 and "1" are two keys.
    const distinct = join(tmp, 'distinct.yaml');
    writeFileSync(distinct, 'gateways:\n  registry:\n    1: {site: a, zone: b}\n    "1": {site: a, zone: b}\n');
    expect(readConfigFile(distinct)).toEqual({ gateways: { registry: { 1: { site: 'a', zone: 'b' } } } });
  });

  it('a key twice in an object of a JSON config is refused with its line too, and provision rewrites no such file (JSON.parse kept the last silently)', () => {
    const config = join(tmp, 'twice.json');
    writeFileSync(
      config,
      '{\n  "gateway": {"site": "a", "zone": "b", "id": "c"},\n  "mqtt": {"url": "mqtt://h"},\n  "gateway": {"site": "x", "zone": "y", "id": "z"}\n}\n',
    );
    expect(problems(() => readConfigFile(config))).toBe('not valid JSON: Map keys must be unique at line 4, column 3');
    // valid JSON the YAML parser reads differently (tabs, escapes) is still read as JSON
    const tabs = join(tmp, 'tabs.json');
    writeFileSync(tabs, '{\t"gateway":\t{"site": "a\\/b\\u0041"}}\n');
    expect(readConfigFile(tabs)).toEqual({ gateway: { site: 'a/bA' } });
    // provision would have written the file back without the first "out", and corridor join the first "gateway"
    const agg = join(tmp, 'twice-aggregator.json');
    const text = '{"aggregator": {"out": "a.lp", "out": "b.lp"}}\n';
    writeFileSync(agg, text);
    expect(() =>
      provisionGateway({ site: 's', zone: 'z', id: 'g', passwordFile: join(tmp, 'twice-passwd'), aggregatorConfig: agg, secretOut: join(tmp, 'twice.pw') }),
    ).toThrow(`${agg}: not valid JSON: Map keys must be unique at line 1, column 32`);
    expect(readFileSync(agg, 'utf8')).toBe(text);
    const joined = join(tmp, 'twice-gateway.json');
    writeFileSync(joined, '{"gateway": {"site": "a"}, "gateway": {"site": "b"}}\n');
    const secret = join(tmp, 'twice-group.secret');
    writeFileSync(secret, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    expect(() => corridorJoin({ config: joined, group: 'g', secretFile: secret, sketchP: '0.03' })).toThrow(
      /not valid JSON: Map keys must be unique at line 1, column 28/,
    );
    // and a JSON scenario, as a YAML one
    const scenario = join(tmp, 'twice-scenario.json');
    writeFileSync(scenario, '{"name": "a",\n "name": "b"}\n');
    expect(() => loadScenario(scenario)).toThrow(`${scenario}: not valid JSON: Map keys must be unique at line 2, column 2`);
  });

  it('a JSON config, scenario or registry nested thousands deep (a few kB of brackets) is one line, not a stack trace or the process out of memory', () => {
    const deep = (n: number) => `{"gateway": {"site": ${'['.repeat(n)}${']'.repeat(n)}}}\n`;
    const config = join(tmp, 'deep.json');
    writeFileSync(config, deep(5000));
    expect(problems(() => readConfigFile(config))).toBe('not valid JSON: objects and lists nested more than 64 deep (settings are a few levels deep)');
    const scenario = join(tmp, 'deep-scenario.json');
    writeFileSync(scenario, deep(1000));
    expect(() => loadScenario(scenario)).toThrow(`${scenario}: not valid JSON: objects and lists nested more than 64 deep`);
    const agg = join(tmp, 'deep-aggregator.json');
    writeFileSync(agg, deep(5000));
    expect(() =>
      provisionGateway({ site: 's', zone: 'z', id: 'g', passwordFile: join(tmp, 'deep-passwd'), aggregatorConfig: agg, secretOut: join(tmp, 'deep.pw') }),
    ).toThrow(`${agg}: not valid JSON: objects and lists nested more than 64 deep`);
    expect(readFileSync(agg, 'utf8')).toBe(deep(5000));
    // 64 levels are read as before
    writeFileSync(config, `{"a": ${'['.repeat(63)}${']'.repeat(63)}}`);
    expect(readConfigFile(config)).toHaveProperty('a');
  });

  it('a secret file that is a fifo, a device or a huge file is refused, naming the setting and the file', () => {
    const fifo = join(tmp, 'secret.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => readSecretFile(fifo, 'mqtt.password_file')).toThrow(`mqtt.password_file: ${fifo} is not a regular file (a fifo)`);
    expect(() => readSecretFile('/dev/zero', 'mqtt.password_file')).toThrow('mqtt.password_file: /dev/zero is not a regular file (a device)');
    const huge = join(tmp, 'huge.secret');
    writeFileSync(huge, '');
    truncateSync(huge, 1024 * 1024);
    expect(() => readSecretFile(huge, 'mqtt.password_file')).toThrow(`mqtt.password_file: ${huge} is 1024 KiB; a secret file is at most 64 KiB`);
  });

  it('a scenario or calibration file that is a fifo, a huge file or a YAML alias bomb is refused, naming the file', () => {
    const fifo = join(tmp, 'named.fifo');
    execFileSync('mkfifo', [fifo]);
    const huge = join(tmp, 'huge-scenario.yaml');
    writeFileSync(huge, '');
    truncateSync(huge, 8 * 1024 * 1024);
    // Each level refers 9 times to the one before: 9^12 strings once expanded.
    const bomb = join(tmp, 'bomb.yaml');
    writeFileSync(
      bomb,
      [
        'a: &a [x, x, x, x, x, x, x, x, x]',
        ...Array.from(
          { length: 12 },
          (_, i) =>
            `l${i + 1}: &l${i + 1} [${Array(9)
              .fill(`*${i ? `l${i}` : 'a'}`)
              .join(', ')}]`,
        ),
      ].join('\n'),
    );
    expect(() => loadScenario(fifo)).toThrow(`${fifo}: the scenario file is not a regular file (a fifo)`);
    expect(() => loadScenario(huge)).toThrow(`${huge}: the scenario file is 8 MiB; at most 1 MiB is read`);
    expect(() => loadScenario(bomb)).toThrow(new RegExp(`^${bomb.replace(/[.]/g, '\\.')}: not valid YAML: .*alias`));
    expect(() => readCalibration(fifo)).toThrow(`${fifo}: is not a regular file (a fifo); give the calibration file presence calibrate wrote`);
    expect(() => readCalibration(huge)).toThrow(`${huge}: is 8 MiB; at most 4 MiB is read`);
    expect(() => readCalibration(bomb)).toThrow(new RegExp(`^${bomb.replace(/[.]/g, '\\.')}: not valid YAML: .*alias`));
  });

  it('a secret file that others can read is read, with one warning line naming the setting, the file and the fix', () => {
    const f = join(tmp, 'open.secret');
    writeFileSync(f, 'hunter2\n');
    chmodSync(f, 0o644);
    const open = captureDeprecations(() => readSecretFile(f, 'mqtt.password_file'));
    expect(open.result).toBe('hunter2');
    expect(open.lines).toEqual([`presence: warning: mqtt.password_file: ${f} can be read by others than its owner (mode 0644): chmod 600 ${f}`]);
    chmodSync(f, 0o600);
    expect(captureDeprecations(() => readSecretFile(f, 'mqtt.password_file')).lines).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'root reading a secret file of mode 0640 in a service group (sudo presence doctor on the documented install): no chmod 600, which would lock the service out; every user reading it is told chmod o-rwx',
    () => {
      const f = join(tmp, 'service.secret');
      writeFileSync(f, 'hunter2\n');
      chownSync(f, 0, 65534); // root's file in another group (as root:presence)
      chmodSync(f, 0o640);
      const grouped = captureDeprecations(() => readSecretFile(f, 'mqtt.password_file'));
      expect(grouped.result).toBe('hunter2');
      expect(grouped.lines).toEqual([]);
      chmodSync(f, 0o644);
      expect(captureDeprecations(() => readSecretFile(f, 'mqtt.password_file')).lines).toEqual([
        `presence: warning: mqtt.password_file: ${f} can be read by every user of the machine (mode 0644): chmod o-rwx ${f} (its group reads it: the service user's)`,
      ]);
      // in root's own group, chmod 600 locks nobody out: said as before
      chownSync(f, 0, 0);
      chmodSync(f, 0o640);
      expect(captureDeprecations(() => readSecretFile(f, 'mqtt.password_file')).lines).toEqual([
        `presence: warning: mqtt.password_file: ${f} can be read by others than its owner (mode 0640): chmod 600 ${f}`,
      ]);
    },
  );

  it('a config file holding a password, token or URL credentials that others can read gets one warning line', () => {
    const f = join(tmp, 'secrets.yaml');
    // (a URL's query can hold them too: InfluxDB 1.x takes u and p there)
    writeFileSync(
      f,
      'mqtt:\n  url: mqtt://broker:1883\n  password: hunter2\ninflux:\n  url: http://user:pw@influx:8086\nold:\n  url: http://influx:8086/?u=writer&p=hunter3\n',
    );
    chmodSync(f, 0o644);
    const open = captureDeprecations(() => readConfigFile(f));
    expect(open.lines).toEqual([
      `presence: warning: config file ${f} holds mqtt.password, influx.url (credentials), old.url (credentials) and can be read by others than its owner (mode 0644): chmod 600 ${f}`,
    ]);
    expect(open.lines.join('')).not.toMatch(/hunter2|hunter3|:pw@/);
    chmodSync(f, 0o600);
    expect(captureDeprecations(() => readConfigFile(f)).lines).toEqual([]);
    const plain = join(tmp, 'plain.yaml');
    writeFileSync(plain, 'mqtt:\n  url: mqtt://broker:1883\n  password_file: /etc/presence/mqtt-password\n');
    chmodSync(plain, 0o644);
    expect(captureDeprecations(() => readConfigFile(plain)).lines).toEqual([]);
  });
});

describe('config schemas', () => {
  // createAjv compiles without checking a schema against the meta-schema (a start-up cost): here it is.
  it("the gateway's and the aggregator's are valid JSON Schema, and an invalid one is caught", async () => {
    const { Ajv } = await import('ajv');
    const ajv = new Ajv({ strict: false });
    const { configSchema: gateway } = await import('../gateway/config.ts');
    const { configSchema: aggregator } = await import('../aggregator/config.ts');
    for (const schema of [gateway, aggregator]) expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).toBe(true);
    expect(ajv.validateSchema({ type: 'object', properties: { a: { type: 'integer', minimum: 'one' } } })).toBe(false);
  });
});

describe('error lines', () => {
  const specs: OptionSpec[] = [
    { key: 'a.size', schema: { type: 'integer', minimum: 1 }, flag: '--size <n>', env: 'SIZE', description: 'size', required: true },
    { key: 'a.every', duration: {}, default: '1s', flag: '--every <duration>', description: 'how often' },
  ];
  const schema = buildSchema(specs, 'test');
  const validate = createAjv().compile(schema);
  const lines = (data: Record<string, unknown>, origins = new Map<string, string>()) => {
    expect(validate(data)).toBe(false);
    return describeErrors(validate.errors ?? [], { specs, schema, data, origins });
  };

  it('say where the value came from, the key, what it must be and what was given', () => {
    expect(lines({ a: {} })).toEqual(['a.size: is required: set it in the --config file or with --size or SIZE']);
    expect(lines({ a: { size: 'big' } }, new Map([['a.size', 'SIZE']]))).toEqual(['SIZE (a.size): must be a whole number (got "big")']);
    expect(lines({ a: { size: 2, every: 'often' } }, new Map([['a.every', '--every']]))).toEqual([
      '--every (a.every): must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "often")',
    ]);
    expect(lines({ a: { size: 2, evry: '1s' } })).toEqual(['a: has an unknown key "evry" (did you mean "every"?)']);
  });

  it('name a YAML merge key as one, not as a typo of a known key', () => {
    expect(lines({ a: { size: 2, '<<': { every: '1s' } } })).toEqual([
      'a: has a YAML merge key "<<", which settings files do not take: write the keys out in full (an alias of a whole value, *name, works)',
    ]);
  });

  it('name an unknown key that is a URL with credentials without them (a broker URL pasted as a key: `mqtt://u:pw@broker:1883:`)', () => {
    const [line] = lines({ a: { size: 2, 'mqtt://u:Secr3t@broker:1883': null } });
    expect(line).toMatch(/^a: has an unknown key "mqtt:\/\/broker:1883"/);
    expect(lines({ a: { size: 2, 'mqtt://u:Sec ret@broker': 1 } }).join('\n')).not.toMatch(/Sec|ret@/);
  });
});

describe('where a setting came from', () => {
  it('a loaded configuration names each setting by the flag, the config file and its key, or its default; a taken port says which', () => {
    const addrInUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
    const file = join(tmp, 'sources.yaml');
    writeFileSync(file, 'aggregator:\n  http: { port: 9470 }\n  batch: { maxBuffer: 9000 }\n');
    const { sources } = loadAggregatorConfig({ config: file, httpHost: '127.0.0.2' }, {});
    expect(sources.of('http.port')).toEqual({ name: 'aggregator.http.port', note: `in config file ${file}`, from: 'file', file });
    expect(sources.of('http.host')).toEqual({ name: '--http-host', note: 'http.host', from: 'flag' });
    expect(sources.of('batch.max_buffer').name).toBe('aggregator.batch.maxBuffer (now aggregator.batch.max_buffer)');
    expect(sources.of('batch.size')).toEqual({ name: 'batch.size', note: 'the default', from: 'default' });

    const fromFile = new HttpPortError('127.0.0.2', 9470, addrInUse).from(sources);
    expect(fromFile.message).toBe(`aggregator.http.port 9470 (in config file ${file}): 127.0.0.2:9470 is already in use`);
    expect(fromFile.hint).toContain(`aggregator.http.port in ${file}, or --http-port, which wins`);
    const byDefault = new HttpPortError('127.0.0.1', 9464, addrInUse).from(loadAggregatorConfig({}, {}).sources);
    expect(byDefault.message).toBe('http.port 9464 (the default): 127.0.0.1:9464 is already in use');
    expect(byDefault.hint).toBe(HTTP_PORT_HINT);
    // An address that is not this machine's: the hint is about the address, not about choosing a free port.
    for (const code of ['EADDRNOTAVAIL', 'ENOTFOUND']) {
      const notHere = new HttpPortError('192.0.2.1', 9464, Object.assign(new Error(`listen ${code}`), { code })).from(sources);
      expect(notHere.hint).toBe(
        'give --http-host an address of this machine: 127.0.0.1 (this machine only), 0.0.0.0 (every address) or one that ip -brief address lists',
      );
    }
    // Without a loaded configuration (a server started in the process): the flag, as before.
    expect(new HttpPortError('127.0.0.1', 9464, addrInUse).message).toBe('--http-port 9464 (http.port): 127.0.0.1:9464 is already in use');

    const gw = join(tmp, 'sources-gw.yaml');
    writeFileSync(gw, 'gateway: {site: s, zone: z, id: g}\nmqtt: {url: "mqtt://127.0.0.1:9"}\nhttp: {port: 9471}\nsources: [{type: stdin}]\n');
    const g = loadGatewayConfig({ config: gw }, {}).sources;
    expect(g.of('http.port')).toEqual({ name: 'http.port', note: `in config file ${gw}`, from: 'file', file: gw });
    expect(loadGatewayConfig({ config: gw, httpPort: '9472' }, {}).sources.of('http.port')).toEqual({ name: '--http-port', note: 'http.port', from: 'flag' });
  });
});
