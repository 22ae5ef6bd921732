// Old names keep working: every flag, environment variable and config key that was renamed is still
// read, and using it prints exactly one deprecation line naming the new name. The old names are
// written out here one by one (not taken from the option tables), so removing an alias fails a test.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig as loadAggregator, resolveConfig as resolveAggregator } from '../aggregator/config.ts';
import { loadConfig as loadGateway } from '../gateway/config.ts';
import { captureDeprecations } from '../scripts/lib/deprecate.ts';
import { buildProgram } from '../scripts/cli.ts';
import { gatewayFlags } from '../gateway/cli.ts';
import { renameOldFlags } from '../scripts/lib/config-loader.ts';
import { AGGREGATOR_OPTIONS } from '../aggregator/config.ts';
import { loadScenario } from '../simulator/scenario.ts';

const ROOT = join(import.meta.dirname, '..');
const PRESENCE = join(ROOT, 'scripts', 'presence.js');
const tmp = mkdtempSync(join(tmpdir(), 'presence-aliases-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The options commander hands to a subcommand's action for these arguments (the action itself is not run). */
async function parsedOptions(command: string, args: string[]): Promise<Record<string, unknown>> {
  const program = await buildProgram();
  program.exitOverride();
  const sub = program.commands.find((c) => c.name() === command) as Command;
  let opts: Record<string, unknown> = {};
  sub.action((...a: unknown[]) => {
    opts = (a.find((x) => x && typeof x === 'object' && !Array.isArray(x) && !('commands' in (x as object))) ?? {}) as Record<string, unknown>;
  });
  await program.parseAsync(['node', 'presence', command, ...args]);
  return opts;
}

const only = (lines: string[], old: string) => lines.filter((l) => l.includes(` ${old} `));

describe('gateway: old flags and environment variables', () => {
  const base = ['--site', 's', '--zone', 'z', '--id', 'g', '--source', 'stdin'];

  for (const [old, value, replacement, check] of [
    ['--mqtt', 'mqtt://old:1883', '--mqtt-url', (c: ReturnType<typeof loadGateway>) => c.mqtt.url === 'mqtt://old:1883'],
    ['--keepalive', '7s', '--mqtt-keepalive', (c: ReturnType<typeof loadGateway>) => c.mqtt.keepalive === '7s'],
    ['--client-id', 'old-id', '--mqtt-client-id', (c: ReturnType<typeof loadGateway>) => c.mqtt.client_id === 'old-id'],
  ] as const) {
    it(`${old} still sets what ${replacement} sets, with one deprecation line`, async () => {
      const extra = old === '--mqtt' ? [] : ['--mqtt-url', 'mqtt://new:1883'];
      const opts = await parsedOptions('gateway', [...base, ...extra, old, value]);
      const { result, lines } = captureDeprecations(() => loadGateway(gatewayFlags(opts), {}));
      expect(check(result)).toBe(true);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`flag ${old} is deprecated, use ${replacement}\\b`));
    });
  }

  it('--http-no-page still turns the page off as --http-page off does, with one deprecation line', async () => {
    const opts = await parsedOptions('gateway', [...base, '--mqtt-url', 'mqtt://h', '--http-no-page']);
    const { result, lines } = captureDeprecations(() => loadGateway(gatewayFlags(opts), {}));
    expect(result.http.page).toBe(false);
    expect(lines).toEqual([expect.stringMatching(/flag --http-no-page is deprecated, use --http-page off\b/)]);
    for (const [text, page] of [
      ['off', false],
      ['on', true],
    ] as const) {
      const now = await parsedOptions('gateway', [...base, '--mqtt-url', 'mqtt://h', '--http-page', text]);
      const r = captureDeprecations(() => loadGateway(gatewayFlags(now), {}));
      expect(r.result.http.page).toBe(page);
      expect(r.lines).toEqual([]);
    }
    // the same flag as the aggregator's, for the same setting
    const agg = await parsedOptions('aggregator', ['--http-page', 'off']);
    expect(loadAggregator(renameOldFlags(agg, AGGREGATOR_OPTIONS, true), {}).http.page).toBe(false);
  });

  it('PRESENCE_MQTT_PASSWORD still sets the broker password, with one deprecation line; MQTT_PASSWORD wins, with one warning that the old one is ignored', () => {
    const flags = { site: 's', zone: 'z', id: 'g', source: ['stdin'], mqttUrl: 'mqtt://h', mqttUsername: 'u' };
    const { result, lines } = captureDeprecations(() => loadGateway(flags, { PRESENCE_MQTT_PASSWORD: 'old-pw' }));
    expect(result.mqtt.password).toBe('old-pw');
    expect(lines).toEqual([expect.stringMatching(/environment variable PRESENCE_MQTT_PASSWORD is deprecated, use MQTT_PASSWORD\b/)]);
    const both = captureDeprecations(() => loadGateway(flags, { PRESENCE_MQTT_PASSWORD: 'old-pw', MQTT_PASSWORD: 'new-pw' }));
    expect(both.result.mqtt.password).toBe('new-pw');
    expect(both.lines).toEqual([expect.stringMatching(/environment variable PRESENCE_MQTT_PASSWORD is ignored: MQTT_PASSWORD is set too and wins/)]);
  });

  it('PRESENCE_GATEWAY_CONFIG names the file as PRESENCE_AGGREGATOR_CONFIG does for the aggregator; --config wins', () => {
    const a = join(tmp, 'gw-env.yaml');
    const b = join(tmp, 'gw-flag.yaml');
    writeFileSync(a, 'gateway: { site: from-env, zone: z, id: g }\nmqtt: { url: mqtt://h }\nsources: [{ type: stdin, name: in }]\n');
    writeFileSync(b, 'gateway: { site: from-flag, zone: z, id: g }\nmqtt: { url: mqtt://h }\nsources: [{ type: stdin, name: in }]\n');
    expect(loadGateway({}, { PRESENCE_GATEWAY_CONFIG: a }).gateway.site).toBe('from-env');
    expect(loadGateway({ config: b }, { PRESENCE_GATEWAY_CONFIG: a }).gateway.site).toBe('from-flag');
  });

  it('the new names print nothing', async () => {
    const opts = await parsedOptions('gateway', [...base, '--mqtt-url', 'mqtt://h', '--mqtt-keepalive', '5s', '--mqtt-client-id', 'x']);
    const { lines } = captureDeprecations(() => loadGateway(gatewayFlags(opts), { MQTT_USERNAME: 'u', MQTT_PASSWORD: 'pw' }));
    expect(lines).toEqual([]);
  });

  it('the real CLI prints each deprecation once on stderr and names the new flags (doctor, which shares the options)', async () => {
    // No --site: the configuration is refused right after the flags are read (exit 2), nothing is started.
    const r = await promisify(execFile)(
      process.execPath,
      [PRESENCE, 'gateway', '--zone', 'z', '--id', 'g', '--source', 'stdin', '--mqtt', 'mqtt://h', '--keepalive', '5', '--client-id', 'c'],
      {
        env: { ...process.env, PRESENCE_MQTT_PASSWORD: 'pw' },
      },
    ).catch((e: { code: number; stderr: string }) => e);
    expect((r as { code: number }).code).toBe(2);
    const lines = (r as { stderr: string }).stderr.split('\n');
    for (const [old, replacement] of [
      ['--mqtt', '--mqtt-url'],
      ['--keepalive', '--mqtt-keepalive'],
      ['--client-id', '--mqtt-client-id'],
      ['PRESENCE_MQTT_PASSWORD', 'MQTT_PASSWORD'],
    ]) {
      expect(only(lines, old)).toHaveLength(1);
      expect(only(lines, old)[0]).toContain(`use ${replacement}`);
    }
    expect(lines.join('\n')).toContain('gateway.site: is required: set it in the --config file or with --site');
  });
});

describe('aggregator: old flags and camelCase config keys', () => {
  for (const [old, value, replacement, check] of [
    ['--client-id', 'old-agg', '--mqtt-client-id', (c: ReturnType<typeof loadAggregator>) => c.mqtt.clientId === 'old-agg'],
    ['--group', 'city', '--mqtt-group', (c: ReturnType<typeof loadAggregator>) => c.mqtt.group === 'city'],
  ] as const) {
    it(`${old} still sets what ${replacement} sets, with one deprecation line`, async () => {
      const opts = await parsedOptions('aggregator', [old, value]);
      const { result, lines } = captureDeprecations(() => loadAggregator(renameOldFlags(opts, AGGREGATOR_OPTIONS, true), {}));
      expect(check(result)).toBe(true);
      expect(lines).toEqual([expect.stringMatching(new RegExp(`flag ${old} is deprecated, use ${replacement}\\b`))]);
    });
  }

  const OLD_KEYS: Array<[string, string, string, (c: ReturnType<typeof loadAggregator>) => unknown, unknown]> = [
    ['mqtt.rejectUnauthorized', 'false', 'mqtt.reject_unauthorized', (c) => c.mqtt.rejectUnauthorized, false],
    ['mqtt.clientId', 'agg-7', 'mqtt.client_id', (c) => c.mqtt.clientId, 'agg-7'],
    ['mqtt.protocolVersion', '4', 'mqtt.version', (c) => c.mqtt.protocolVersion, 4],
    ['mqtt.protocol_version', '4', 'mqtt.version', (c) => c.mqtt.protocolVersion, 4],
    ['mqtt.sessionExpiry', '2h', 'mqtt.session_expiry', (c) => c.mqtt.sessionExpiry, 7200],
    ['mqtt.receiveMaximum', '100', 'mqtt.receive_maximum', (c) => c.mqtt.receiveMaximum, 100],
    ['influx.retentionPolicy', 'week', 'influx.retention_policy', (c) => c.influx.retentionPolicy, 'week'],
    ['batch.flushInterval', '2s', 'batch.flush_interval', (c) => c.batch.flushInterval, 2000],
    ['batch.maxBuffer', '40000', 'batch.max_buffer', (c) => c.batch.maxBuffer, 40000],
    ['batch.maxRetryDelay', '5s', 'batch.max_retry_delay', (c) => c.batch.maxRetryDelay, 5000],
    ['maxAhead', '10m', 'max_ahead', (c) => c.maxAhead, 600_000],
    ['missingAfterWindows', '3', 'missing_after_windows', (c) => c.missingAfterWindows, 3],
    ['missingCheckInterval', '250ms', 'missing_check_interval', (c) => c.missingCheckInterval, 250],
    ['logLevel', 'warn', 'log.level', (c) => c.logLevel, 'warn'],
    ['logFormat', 'json', 'log.format', (c) => c.logFormat, 'json'],
  ];

  /** YAML of one dotted key under `aggregator:`. */
  const yamlOf = (key: string, value: string) => {
    const parts = key.split('.');
    return ['aggregator:', ...parts.map((p, i) => `${'  '.repeat(i + 1)}${p}:${i === parts.length - 1 ? ` ${value}` : ''}`)].join('\n') + '\n';
  };

  for (const [old, value, replacement, get, want] of OLD_KEYS) {
    it(`config key ${old} still works as ${replacement}, with one deprecation line naming the file`, () => {
      const f = join(tmp, `${old}.yaml`);
      writeFileSync(f, yamlOf(old, value));
      const { result, lines } = captureDeprecations(() => loadAggregator({ config: f }, {}));
      expect(get(result)).toEqual(want);
      expect(lines).toEqual([
        `presence: warning: config key aggregator.${old} (in ${f}) is deprecated, use aggregator.${replacement}; the old name still works for now`,
      ]);
    });
  }

  it('an error about a key written under its old name names the old key and the new one', () => {
    const f = join(tmp, 'bad-old-key.yaml');
    writeFileSync(f, yamlOf('batch.maxBuffer', '0'));
    const e = (() => {
      try {
        captureDeprecations(() => loadAggregator({ config: f }, {}));
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    expect(e).toContain('aggregator.batch.maxBuffer (now aggregator.batch.max_buffer): must be');
    expect(() => resolveAggregator({ batch: { maxBuffer: 10, size: 300 } })).toThrow(
      'batch.maxBuffer (now batch.max_buffer): must be at least batch.size (300) (got 10); raise batch.max_buffer (--max-buffer) or lower batch.size (--batch-size)',
    );
    expect(() => resolveAggregator({ batch: { max_buffer: 10, size: 300 } })).toThrow(/^[\s\S]*batch\.max_buffer: must be at least batch\.size/);
  });

  it('the snake_case file gives the same config as the camelCase one, without warnings', () => {
    const nest = (pairs: Array<[string, string]>) => {
      const obj: Record<string, any> = {};
      for (const [k, v] of pairs) {
        const parts = k.split('.');
        let cur = obj;
        for (const p of parts.slice(0, -1)) cur = cur[p] ??= {};
        cur[parts[parts.length - 1]] = /^\d+$/.test(v) ? Number(v) : v === 'false' ? false : v;
      }
      return JSON.stringify({ aggregator: obj });
    };
    const cf = join(tmp, 'camel.json');
    const sf = join(tmp, 'snake.json');
    writeFileSync(cf, nest(OLD_KEYS.map(([k, v]) => [k, v])));
    writeFileSync(sf, nest(OLD_KEYS.map(([, v, k]) => [k, v])));
    const a = captureDeprecations(() => loadAggregator({ config: cf }, {}));
    const b = captureDeprecations(() => loadAggregator({ config: sf }, {}));
    expect(a.result).toEqual(b.result);
    expect(a.lines).toHaveLength(OLD_KEYS.length);
    expect(b.lines).toEqual([]);
  });

  it('the real CLI prints one deprecation line per old flag and key on stderr', async () => {
    const f = join(tmp, 'cli.yaml');
    // influx.api v1 without a database: refused after reading everything (exit 2), nothing is started.
    writeFileSync(f, 'mqtt:\n  clientId: x\nbatch:\n  flushInterval: 1s\ninflux:\n  url: http://127.0.0.1:1\n  api: v1\n');
    const r = await promisify(execFile)(process.execPath, [PRESENCE, 'aggregator', '--config', f, '--group', 'g', '--client-id', 'y']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((r as { code: number }).code).toBe(2);
    const lines = (r as { stderr: string }).stderr.split('\n');
    expect(only(lines, '--group')).toEqual([expect.stringContaining('use --mqtt-group')]);
    expect(only(lines, '--client-id')).toEqual([expect.stringContaining('use --mqtt-client-id')]);
    expect(only(lines, 'mqtt.clientId')).toEqual([expect.stringContaining('use mqtt.client_id')]);
    expect(only(lines, 'batch.flushInterval')).toEqual([expect.stringContaining('use batch.flush_interval')]);
    expect(lines.join('\n')).toContain('influx.database: is required for the 1.x API');
  });
});

describe('the renamed settings table of docs/deployment.md', () => {
  it('names every old flag, environment variable and config key the option tables still accept', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(join(ROOT, 'docs', 'deployment.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Renamed settings'));
    const { GATEWAY_OPTIONS } = await import('../gateway/config.ts');
    const olds = [...GATEWAY_OPTIONS, ...AGGREGATOR_OPTIONS].flatMap((s) => [...(s.old?.flags ?? []), ...(s.old?.env ?? []), ...(s.old?.keys ?? [])]);
    expect(olds.length).toBeGreaterThan(15);
    for (const old of olds) expect(section, old).toContain(`\`${old}`);
  });
});

describe('simulate: old flag', () => {
  it('--mqtt still names the load broker, with one deprecation line', async () => {
    const r = await promisify(execFile)(process.execPath, [PRESENCE, 'simulate', '--load', '--count', '1', '--mqtt', 'mqtt://127.0.0.1:1']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    const stderr = (r as { stderr: string }).stderr;
    expect(only(stderr.split('\n'), '--mqtt')).toEqual([expect.stringContaining('use --mqtt-url')]);
    expect(stderr).toContain('127.0.0.1:1');
  });
});

describe('durations: written with a unit; a bare number where one was always accepted keeps its meaning, with one line', () => {
  it('aggregator file: a bare number is read in the unit it always was (keepalive seconds, flush interval ms), one line per key saying how to write it', () => {
    const file = join(tmp, 'bare.yaml');
    writeFileSync(file, 'mqtt:\n  url: mqtt://h\n  keepalive: 30\nbatch:\n  flush_interval: 200\n');
    const { result, lines } = captureDeprecations(() => loadAggregator({ config: file }, {}));
    expect(result.mqtt.keepalive).toBe(30);
    expect(result.batch.flushInterval).toBe(200);
    expect(lines).toEqual([
      `presence: warning: mqtt.keepalive (in ${file}): 30 without a unit is deprecated; read as seconds, as before; use 30s`,
      `presence: warning: batch.flush_interval (in ${file}): 200 without a unit is deprecated; read as milliseconds, as before; use 200ms`,
    ]);
    writeFileSync(file, 'mqtt:\n  url: mqtt://h\n  keepalive: 30s\nbatch:\n  flush_interval: 200ms\n');
    const withUnits = captureDeprecations(() => loadAggregator({ config: file }, {}));
    expect([withUnits.result.mqtt.keepalive, withUnits.result.batch.flushInterval]).toEqual([30, 200]);
    expect(withUnits.lines).toEqual([]);
  });

  it('aggregator flag and variable: the same rule', () => {
    const { result, lines } = captureDeprecations(() => loadAggregator({ mqttUrl: 'mqtt://h', flushInterval: '300' }, { MQTT_KEEPALIVE: '' }));
    expect(result.batch.flushInterval).toBe(300);
    expect(lines).toEqual([
      expect.stringMatching(/^presence: warning: batch\.flush_interval \(--flush-interval\): 300 without a unit .* milliseconds, as before; use 300ms$/),
    ]);
  });

  it('gateway flags that always read a bare number as seconds still do, with one line; its file never took one and says to write the unit', async () => {
    const opts = await parsedOptions('gateway', [
      '--site',
      's',
      '--zone',
      'z',
      '--id',
      'g',
      '--source',
      'stdin',
      '--mqtt-url',
      'mqtt://h',
      '--window',
      '60',
      '--mqtt-keepalive',
      '30',
    ]);
    const { result, lines } = captureDeprecations(() => loadGateway(gatewayFlags(opts), {}));
    expect([result.gateway.window, result.mqtt.keepalive]).toEqual(['60s', '30s']);
    expect(lines).toEqual([
      'presence: warning: gateway.window (--window): 60 without a unit is deprecated; read as seconds, as before; use 60s',
      'presence: warning: mqtt.keepalive (--mqtt-keepalive): 30 without a unit is deprecated; read as seconds, as before; use 30s',
    ]);
    const file = join(tmp, 'gw-bare.yaml');
    writeFileSync(file, 'mqtt:\n  keepalive: 30\n');
    expect(() => loadGateway({ ...gatewayFlags(opts), window: undefined, mqttKeepalive: undefined, config: file }, {})).toThrow(
      /mqtt\.keepalive: must be a duration like 250ms, 60s, 15m, 1h30m or 7d \(got 30\): write it with its unit/,
    );
  });

  it('aggregator corridors: a horizon written with its unit prints nothing, loaded and then resolved in memory as the aggregator does; a bare one prints one line naming the file', () => {
    const file = join(tmp, 'agg-corridors.yaml');
    // aggregator/README.md, "Corridor flows"
    writeFileSync(file, 'aggregator:\n  corridors:\n    - { group: main-street, site: corridor, members: [gw-a, gw-b, gw-c], horizon: 10m }\n');
    const loaded = captureDeprecations(() => resolveAggregator(loadAggregator({ config: file }, {})));
    expect(loaded.result.corridors[0]!.horizon).toBe(600_000);
    expect(loaded.lines).toEqual([]);
    writeFileSync(file, 'aggregator:\n  corridors:\n    - { group: main-street, site: corridor, members: [gw-a, gw-b], horizon: 300000 }\n');
    const bare = captureDeprecations(() => resolveAggregator(loadAggregator({ config: file }, {})));
    expect(bare.result.corridors[0]!.horizon).toBe(300_000);
    expect(bare.lines).toEqual([
      `presence: warning: corridors[0].horizon (in ${file}): 300000 without a unit is deprecated; read as milliseconds, as before; use 300000ms`,
    ]);
  });

  it('scenario file: a YAML number is still seconds, with one line per key; a unit prints nothing', () => {
    const file = join(tmp, 'bare-scenario.yaml');
    const doc = (dur: string) =>
      `name: bare\nsite: bare\nstart: "2026-03-10T16:00:00Z"\nduration: ${dur}\nwindow: 60s\ngateways:\n  - { id: g1, zone: z, position: [10, 10] }\ncrowds:\n  - { type: gathering, region: { x: 0, y: 0, width: 20, height: 20 }, occupancy: [[0s, 5]] }\n`;
    writeFileSync(file, doc('600'));
    const { result, lines } = captureDeprecations(() => loadScenario(file));
    expect(result.durationS).toBe(600);
    expect(lines).toEqual([`presence: warning: duration (in ${file}): 600 without a unit is deprecated; read as seconds, as before; use 600s`]);
    writeFileSync(file, doc('10m'));
    const withUnit = captureDeprecations(() => loadScenario(file));
    expect(withUnit.result.durationS).toBe(600);
    expect(withUnit.lines).toEqual([]);
  });
});
