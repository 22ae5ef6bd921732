// Gateway configuration: a YAML or JSON file validated against a JSON schema (ajv), with command-line
// flags layered on top, so `presence gateway --site s --zone z --id g --mqtt URL --source pcap:F`
// works with no file at all. Errors name the key (and the flag that sets it) and the problem.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import { ID_PATTERN } from '../contract/index.ts';

export type Radio = 'wifi' | 'ble' | 'mixed';
export type Speed = number | 'max';

export interface CommandSourceConfig {
  type: 'command';
  name: string;
  radio?: Radio;
  /** Shell command line (run with /bin/sh -c) or argv array that writes pcap/pcapng to stdout. */
  command: string | string[];
  /** Backoff between restarts: doubles from min to max. */
  restart_min: string;
  restart_max: string;
}
export interface FileSourceConfig {
  type: 'file';
  name: string;
  radio?: Radio;
  path: string;
  /** Replay speed: 1 = real time, 10 = ten times faster, 'max' = as fast as possible. */
  speed: Speed;
}
export interface StdinSourceConfig {
  type: 'stdin';
  name: string;
  radio?: Radio;
}
export type SourceConfig = CommandSourceConfig | FileSourceConfig | StdinSourceConfig;

export interface GatewayConfig {
  gateway: {
    site: string;
    zone: string;
    id: string;
    /** Window length, e.g. "60s". */
    window: string;
    /** Drop frames whose signal is known and below this (dBm). */
    rssi_min_dbm?: number;
    /** Count Wi-Fi frames whose FCS check fails. */
    ignore_fcs: boolean;
    /** Which clock closes windows: wall (live), capture (file replay) or auto. */
    clock: 'auto' | 'wall' | 'capture';
  };
  sources: SourceConfig[];
  mqtt: {
    url: string;
    username?: string;
    password?: string;
    /** File holding the password (first line). */
    password_file?: string;
    ca?: string;
    cert?: string;
    key?: string;
    /** Check the broker's certificate (default true). */
    reject_unauthorized: boolean;
    keepalive: string;
    client_id?: string;
  };
  queue: {
    dir?: string;
    /** Most windows kept unacknowledged; past this the oldest is dropped (logged and counted). */
    max_windows: number;
  };
  status: {
    /** Status is republished at every window close and at least this often. */
    interval: string;
  };
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  };
}

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/** "60s" -> 60000; "500ms", "5m", "1h"; a bare number is seconds. Throws on anything else. */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') return text * 1000;
  const m = DURATION_RE.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a duration like 60s`);
  const n = Number(m[1]);
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']);
}

const duration = { type: 'string', format: 'duration' } as const;
const radio = { enum: ['wifi', 'ble', 'mixed'] } as const;
const name = { type: 'string', minLength: 1, maxLength: 64 } as const;

export const configSchema = {
  $id: 'presence/gateway-config',
  type: 'object',
  additionalProperties: false,
  required: ['gateway', 'sources', 'mqtt'],
  properties: {
    gateway: {
      type: 'object',
      additionalProperties: false,
      required: ['site', 'zone', 'id'],
      properties: {
        site: { type: 'string', pattern: ID_PATTERN },
        zone: { type: 'string', pattern: ID_PATTERN },
        id: { type: 'string', pattern: ID_PATTERN },
        window: { ...duration, default: '60s' },
        rssi_min_dbm: { type: 'integer', minimum: -127, maximum: 20 },
        ignore_fcs: { type: 'boolean', default: false },
        clock: { enum: ['auto', 'wall', 'capture'], default: 'auto' },
      },
    },
    sources: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['type'],
        properties: { type: { enum: ['command', 'file', 'stdin'] } },
        oneOf: [
          {
            additionalProperties: false,
            required: ['type', 'command'],
            properties: {
              type: { const: 'command' },
              name,
              radio,
              command: {
                oneOf: [
                  { type: 'string', minLength: 1 },
                  { type: 'array', minItems: 1, items: { type: 'string' } },
                ],
              },
              restart_min: { ...duration, default: '1s' },
              restart_max: { ...duration, default: '60s' },
            },
          },
          {
            additionalProperties: false,
            required: ['type', 'path'],
            properties: {
              type: { const: 'file' },
              name,
              radio,
              path: { type: 'string', minLength: 1 },
              speed: { oneOf: [{ const: 'max' }, { type: 'number', exclusiveMinimum: 0 }], default: 1 },
            },
          },
          {
            additionalProperties: false,
            required: ['type'],
            properties: { type: { const: 'stdin' }, name, radio },
          },
        ],
      },
    },
    mqtt: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^(mqtts?|tcp|ssl|tls|wss?)://' },
        username: { type: 'string' },
        password: { type: 'string' },
        password_file: { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        reject_unauthorized: { type: 'boolean', default: true },
        keepalive: { ...duration, default: '30s' },
        client_id: { type: 'string', minLength: 1, maxLength: 128 },
      },
    },
    queue: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        dir: { type: 'string', minLength: 1 },
        max_windows: { type: 'integer', minimum: 1, default: 100_000 },
      },
    },
    status: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { interval: { ...duration, default: '60s' } },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' } },
    },
  },
} as const;

const addFormats = addFormatsModule as unknown as (a: Ajv) => Ajv;
const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
addFormats(ajv);
ajv.addFormat('duration', { type: 'string', validate: (s: string) => DURATION_RE.test(s) && parseDuration(s) > 0 });
const validate = ajv.compile(configSchema);

/** The flag that sets a config key, for error messages. */
const FLAG_OF: Record<string, string> = {
  'gateway.site': '--site',
  'gateway.zone': '--zone',
  'gateway.id': '--id',
  'gateway.window': '--window',
  'gateway.rssi_min_dbm': '--rssi-min',
  'gateway.clock': '--clock',
  sources: '--source',
  'mqtt.url': '--mqtt',
  'mqtt.username': '--mqtt-username',
  'mqtt.ca': '--mqtt-ca',
  'mqtt.cert': '--mqtt-cert',
  'mqtt.key': '--mqtt-key',
  'mqtt.keepalive': '--keepalive',
  'queue.dir': '--queue-dir',
  'queue.max_windows': '--queue-max',
  'status.interval': '--status-interval',
  'log.level': '--log-level',
};

function keyOf(path: string): string {
  return path.replace(/^\//, '').replace(/\//g, '.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
}

function problem(e: ErrorObject): string {
  switch (e.keyword) {
    case 'format':
      return (e.params as { format: string }).format === 'duration' ? 'must be a duration like 60s' : `must be a ${(e.params as { format: string }).format}`;
    case 'pattern':
      if (e.instancePath.endsWith('/url')) return 'must be a URL like mqtt://host:1883 or mqtts://host:8883';
      return 'must be lower case letters, digits, "-" or "_" (at most 63, starting with a letter or digit)';
    case 'additionalProperties':
      return `has an unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
    case 'enum':
      return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    case 'const':
      return `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    default:
      return e.message ?? 'is invalid';
  }
}

/** Readable lines, one per problem: "gateway.window (--window): must be a duration like 60s". */
export function describeConfigErrors(errors: ErrorObject[]): string[] {
  const out: string[] = [];
  // oneOf over source kinds reports every branch; keep the branch matching the source's type.
  for (const e of errors) {
    if (e.keyword === 'oneOf' || e.keyword === 'if') continue;
    if (/\/sources\/\d+$/.test(e.instancePath) && e.keyword === 'additionalProperties') continue;
    if (e.keyword === 'const' && e.instancePath.endsWith('/type')) continue;
    let key = keyOf(e.instancePath);
    if (e.keyword === 'required') {
      const p = (e.params as { missingProperty: string }).missingProperty;
      key = key ? `${key}.${p}` : p;
      const flag = FLAG_OF[key];
      out.push(`${key}${flag ? ` (${flag})` : ''}: is required`);
      continue;
    }
    const flag = FLAG_OF[key];
    out.push(`${key || '(top level)'}${flag ? ` (${flag})` : ''}: ${problem(e)}`);
  }
  return [...new Set(out)];
}

/** Validation of one source entry's kind-specific keys, for clearer messages than oneOf gives. */
function sourceErrors(cfg: { sources?: unknown }): string[] {
  const out: string[] = [];
  if (!Array.isArray(cfg.sources)) return out;
  const allowed: Record<string, string[]> = {
    command: ['type', 'name', 'radio', 'command', 'restart_min', 'restart_max'],
    file: ['type', 'name', 'radio', 'path', 'speed'],
    stdin: ['type', 'name', 'radio'],
  };
  cfg.sources.forEach((s, i) => {
    if (!s || typeof s !== 'object') return;
    const t = (s as { type?: unknown }).type;
    if (typeof t !== 'string' || !allowed[t]) return;
    for (const k of Object.keys(s)) if (!allowed[t].includes(k)) out.push(`sources[${i}]: key "${k}" is not allowed for a ${t} source`);
    if (t === 'command' && !('command' in s)) out.push(`sources[${i}].command: is required for a command source`);
    if (t === 'file' && !('path' in s)) out.push(`sources[${i}].path: is required for a file source`);
    const speed = (s as { speed?: unknown }).speed;
    if (t === 'file' && speed !== undefined && speed !== 'max' && !(typeof speed === 'number' && speed > 0))
      out.push(`sources[${i}].speed (--speed): must be a number above 0 or "max"`);
  });
  return out;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[], where = 'configuration') {
    super(`${where} is invalid:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Command-line flags as commander hands them over (all optional). */
export interface GatewayFlags {
  config?: string;
  site?: string;
  zone?: string;
  id?: string;
  window?: string;
  rssiMin?: string;
  ignoreFcs?: boolean;
  clock?: string;
  source?: string[];
  speed?: string;
  mqtt?: string;
  mqttUsername?: string;
  mqttPassword?: string;
  mqttPasswordFile?: string;
  mqttCa?: string;
  mqttCert?: string;
  mqttKey?: string;
  mqttInsecure?: boolean;
  keepalive?: string;
  clientId?: string;
  queueDir?: string;
  queueMax?: string;
  statusInterval?: string;
  logLevel?: string;
}

/** `pcap:FILE`, `file:FILE`, `pcap:-`, `stdin`, `cmd:COMMAND LINE`; optional `NAME=` prefix and `@wifi|@ble` suffix. */
export function parseSourceSpec(spec: string, index: number, speed?: Speed): SourceConfig {
  let rest = spec.trim();
  let name: string | undefined;
  let radio: Radio | undefined;
  const named = /^([A-Za-z][\w-]{0,63})=(.+)$/.exec(rest);
  if (named && !/^(pcap|file|cmd|command):/.test(rest)) {
    name = named[1];
    rest = named[2];
  }
  const tagged = /^(.*)@(wifi|ble|mixed)$/.exec(rest);
  if (tagged && !rest.startsWith('cmd:')) {
    rest = tagged[1];
    radio = tagged[2] as Radio;
  }
  const base = (n: string) => ({ name: name ?? n, ...(radio ? { radio } : {}) });
  if (rest === 'stdin' || rest === '-' || rest === 'pcap:-' || rest === 'file:-') return { type: 'stdin', ...base('stdin') };
  const file = /^(?:pcap|file):(.+)$/.exec(rest);
  if (file) return { type: 'file', ...base(`file${index}`), path: file[1], speed: speed ?? 1 };
  const cmd = /^(?:cmd|command):(.+)$/.exec(rest);
  if (cmd) return { type: 'command', ...base(`cmd${index}`), command: cmd[1], restart_min: '1s', restart_max: '60s' };
  throw new ConfigError([`--source "${spec}": must be pcap:FILE, pcap:- (stdin), stdin or cmd:COMMAND`], 'flags');
}

export function parseSpeed(text: string): Speed {
  if (text === 'max') return 'max';
  const n = Number(text.replace(/x$/, ''));
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError([`--speed "${text}": must be a number above 0 (1 = real time, 10 = ten times faster) or max`], 'flags');
  return n;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`cannot read ${path}: ${(e as Error).message}`], path);
  }
  try {
    const value = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('the top level must be a mapping (key: value)');
    return value as Record<string, unknown>;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError([`not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`], path);
  }
}

function section(cfg: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = cfg[key];
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  const o: Record<string, unknown> = {};
  cfg[key] = o;
  return o;
}

function numberFlag(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n)) throw new ConfigError([`${flag} "${text}": must be a number`], 'flags');
  return n;
}

/** Builds a validated config from an optional file plus flags (flags win). Throws ConfigError. */
export function loadConfig(flags: GatewayFlags, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const raw: Record<string, unknown> = flags.config ? readConfigFile(flags.config) : {};
  const baseDir = flags.config ? dirname(resolve(flags.config)) : process.cwd();
  const gw = section(raw, 'gateway');
  if (flags.site !== undefined) gw.site = flags.site;
  if (flags.zone !== undefined) gw.zone = flags.zone;
  if (flags.id !== undefined) gw.id = flags.id;
  if (flags.window !== undefined) gw.window = /^\d+(\.\d+)?$/.test(flags.window) ? `${flags.window}s` : flags.window;
  if (flags.rssiMin !== undefined) gw.rssi_min_dbm = numberFlag(flags.rssiMin, '--rssi-min');
  if (flags.ignoreFcs) gw.ignore_fcs = true;
  if (flags.clock !== undefined) gw.clock = flags.clock;
  const speed = flags.speed !== undefined ? parseSpeed(flags.speed) : undefined;
  if (flags.source?.length) raw.sources = flags.source.map((s, i) => parseSourceSpec(s, i, speed));
  else if (speed !== undefined && Array.isArray(raw.sources))
    for (const s of raw.sources as Array<Record<string, unknown>>) if (s && s.type === 'file') s.speed = speed;
  const mqtt = section(raw, 'mqtt');
  if (flags.mqtt !== undefined) mqtt.url = flags.mqtt;
  if (flags.mqttUsername !== undefined) mqtt.username = flags.mqttUsername;
  if (flags.mqttPassword !== undefined) mqtt.password = flags.mqttPassword;
  if (flags.mqttPasswordFile !== undefined) mqtt.password_file = flags.mqttPasswordFile;
  if (flags.mqttCa !== undefined) mqtt.ca = flags.mqttCa;
  if (flags.mqttCert !== undefined) mqtt.cert = flags.mqttCert;
  if (flags.mqttKey !== undefined) mqtt.key = flags.mqttKey;
  if (flags.mqttInsecure) mqtt.reject_unauthorized = false;
  if (flags.keepalive !== undefined) mqtt.keepalive = /^\d+$/.test(flags.keepalive) ? `${flags.keepalive}s` : flags.keepalive;
  if (flags.clientId !== undefined) mqtt.client_id = flags.clientId;
  if (mqtt.password === undefined && env.PRESENCE_MQTT_PASSWORD) mqtt.password = env.PRESENCE_MQTT_PASSWORD;
  const queue = section(raw, 'queue');
  if (flags.queueDir !== undefined) queue.dir = flags.queueDir;
  if (flags.queueMax !== undefined) queue.max_windows = numberFlag(flags.queueMax, '--queue-max');
  if (flags.statusInterval !== undefined) section(raw, 'status').interval = flags.statusInterval;
  if (flags.logLevel !== undefined) section(raw, 'log').level = flags.logLevel;

  if (!validate(raw)) {
    const problems = [...sourceErrors(raw), ...describeConfigErrors(validate.errors ?? [])];
    throw new ConfigError(problems, flags.config ?? 'configuration (from flags)');
  }
  const cfg = raw as unknown as GatewayConfig;
  const extra = sourceErrors(cfg);
  if (extra.length) throw new ConfigError(extra, flags.config ?? 'configuration (from flags)');
  // Paths in a config file are relative to the file.
  const rel = (p: string | undefined) => (p === undefined ? undefined : resolve(baseDir, p));
  // (ajv ignores defaults inside oneOf, so the per-kind defaults are set here.)
  for (const s of cfg.sources) {
    if (s.type === 'file') {
      s.path = rel(s.path)!;
      s.speed ??= 1;
    }
    if (s.type === 'command') {
      s.restart_min ??= '1s';
      s.restart_max ??= '60s';
    }
  }
  for (const k of ['ca', 'cert', 'key', 'password_file'] as const) if (cfg.mqtt[k]) cfg.mqtt[k] = rel(cfg.mqtt[k]);
  if (cfg.queue.dir) cfg.queue.dir = rel(cfg.queue.dir);
  // Names must be unique: they key the status per source.
  const seen = new Set<string>();
  cfg.sources.forEach((s, i) => {
    if (!s.name) s.name = `${s.type}${i}`;
    if (seen.has(s.name)) s.name = `${s.name}-${i}`;
    seen.add(s.name);
  });
  if ((cfg.mqtt.cert && !cfg.mqtt.key) || (!cfg.mqtt.cert && cfg.mqtt.key))
    throw new ConfigError(['mqtt.cert and mqtt.key: give both (client certificate and its key) or neither'], flags.config ?? 'configuration');
  if (cfg.sources.filter((s) => s.type === 'stdin').length > 1) throw new ConfigError(['sources: at most one stdin source'], flags.config ?? 'configuration');
  return cfg;
}

/** Where the durable queue lives when the config names no folder. */
export function defaultQueueDir(cfg: GatewayConfig, env: NodeJS.ProcessEnv = process.env): string {
  if (cfg.queue.dir) return cfg.queue.dir;
  const state = env.STATE_DIRECTORY?.split(':')[0] ?? join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'presence');
  return join(state, `gateway-${cfg.gateway.site}-${cfg.gateway.id}`);
}

/** Window length, keepalive etc. in milliseconds. */
export function durations(cfg: GatewayConfig): { windowMs: number; keepaliveS: number; statusMs: number } {
  return {
    windowMs: parseDuration(cfg.gateway.window),
    keepaliveS: Math.max(1, Math.round(parseDuration(cfg.mqtt.keepalive) / 1000)),
    statusMs: parseDuration(cfg.status.interval),
  };
}

/** The clock that closes windows: capture time when every source is a file, else wall time. */
export function clockOf(cfg: GatewayConfig): 'wall' | 'capture' {
  if (cfg.gateway.clock !== 'auto') return cfg.gateway.clock;
  return cfg.sources.every((s) => s.type === 'file') ? 'capture' : 'wall';
}
