// Aggregator configuration: defaults < config file (YAML or JSON) < environment < command-line flags.
// The file is validated against a JSON schema (ajv); errors name the key and what it must be.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Ajv, type ErrorObject } from 'ajv';
import YAML from 'yaml';

export interface MqttConfig {
  /** mqtt://host:1883, mqtts://host:8883 (TLS), ws://, wss:// */
  url: string;
  username?: string;
  password?: string;
  /** PEM files for TLS: CA to trust, client certificate and key. */
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
  /** Fixed client id: the broker keeps the session (and queues QoS 1 messages) under it. */
  clientId: string;
  /** Shared-subscription group (MQTT 5 `$share/{group}/...`); empty: plain subscription. */
  group?: string;
  /** 5 (default) or 4 (MQTT 3.1.1, e.g. the embedded Aedes broker). */
  protocolVersion: 4 | 5;
  /** MQTT 5 session expiry (s): how long the broker keeps the session while the aggregator is away. */
  sessionExpiry: number;
  /** MQTT 5 receive maximum: unacknowledged messages the broker may send at once (1..65535). */
  receiveMaximum: number;
  keepalive: number;
}

export interface InfluxConfig {
  url?: string;
  api: 'v2' | 'v1';
  token?: string;
  org?: string;
  bucket?: string;
  database?: string;
  retentionPolicy?: string;
  username?: string;
  password?: string;
  /** Request timeout (ms). */
  timeout: number;
}

export interface AggregatorConfig {
  mqtt: MqttConfig;
  influx: InfluxConfig;
  /** Line-protocol file written when no InfluxDB URL is set. */
  out: string;
  batch: {
    /** Messages per write (each counts message is two points). */
    size: number;
    /** Longest wait (ms) before a partial batch is written. */
    flushInterval: number;
    /** Batches written at once (acknowledgements still go out in arrival order). */
    concurrency: number;
    /** Messages held unacknowledged at most; beyond it the aggregator stops reading from the broker. */
    maxBuffer: number;
    /** Largest pause (ms) between write retries. */
    maxRetryDelay: number;
  };
  http: { port: number | null; host: string };
  /** Windows starting more than this (ms) ahead of the clock are rejected. */
  maxAhead: number;
  /** A gateway silent for this many window lengths is recorded as missing. */
  missingAfterWindows: number;
  /** How often (ms) the missing-gateway timer runs. */
  missingCheckInterval: number;
  logLevel: string;
}

export function defaultConfig(): AggregatorConfig {
  return {
    mqtt: {
      url: 'mqtt://localhost:1883',
      rejectUnauthorized: true,
      clientId: `presence-aggregator-${hostname().toLowerCase().replace(/[^a-z0-9_-]/g, '-')}`,
      protocolVersion: 5,
      sessionExpiry: 7 * 24 * 3600,
      receiveMaximum: 20_000,
      keepalive: 30,
    },
    influx: { api: 'v2', timeout: 10_000 },
    out: './presence.lp',
    batch: { size: 5000, flushInterval: 200, concurrency: 2, maxBuffer: 30_000, maxRetryDelay: 30_000 },
    http: { port: 9464, host: '0.0.0.0' },
    maxAhead: 5 * 60_000,
    missingAfterWindows: 2,
    missingCheckInterval: 1000,
    logLevel: 'info',
  };
}

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "1s", "5m", "2h", or a number of ms; null when it is none of these. */
export function parseDuration(value: unknown, defaultUnit: 'ms' | 's' = 'ms'): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * UNIT_MS[defaultUnit] : null;
  if (typeof value !== 'string') return null;
  const m = DURATION_RE.exec(value.trim());
  if (!m) return null;
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? defaultUnit]);
}

const duration = { anyOf: [{ type: 'number', minimum: 0 }, { type: 'string', pattern: DURATION_RE.source }] };
const positiveInt = { type: 'integer', minimum: 1 };

/** Schema of the config file. Durations are strings like "500ms" or numbers of ms (sessionExpiry: s). */
export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    mqtt: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: 'string', pattern: '^(mqtts?|wss?|tcp|ssl)://.+' },
        username: { type: 'string' },
        password: { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        rejectUnauthorized: { type: 'boolean' },
        clientId: { type: 'string', minLength: 1, maxLength: 128 },
        group: { type: 'string', pattern: '^[^/+#$]*$' },
        protocolVersion: { enum: [4, 5] },
        sessionExpiry: duration,
        receiveMaximum: { type: 'integer', minimum: 1, maximum: 65535 },
        keepalive: { type: 'integer', minimum: 0, maximum: 65535 },
      },
    },
    influx: {
      type: 'object',
      additionalProperties: false,
      properties: {
        url: { type: 'string', pattern: '^https?://.+' },
        api: { enum: ['v2', 'v1'] },
        token: { type: 'string' },
        org: { type: 'string' },
        bucket: { type: 'string' },
        database: { type: 'string', minLength: 1 },
        retentionPolicy: { type: 'string' },
        username: { type: 'string' },
        password: { type: 'string' },
        timeout: duration,
      },
    },
    out: { type: 'string', minLength: 1 },
    batch: {
      type: 'object',
      additionalProperties: false,
      properties: {
        size: positiveInt,
        flushInterval: duration,
        concurrency: { type: 'integer', minimum: 1, maximum: 16 },
        maxBuffer: positiveInt,
        maxRetryDelay: duration,
      },
    },
    http: {
      type: 'object',
      additionalProperties: false,
      properties: {
        port: { anyOf: [{ type: 'integer', minimum: 0, maximum: 65535 }, { type: 'null' }, { const: false }] },
        host: { type: 'string' },
      },
    },
    maxAhead: duration,
    missingAfterWindows: { type: 'number', minimum: 1 },
    missingCheckInterval: duration,
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validateFile = ajv.compile(configSchema);

function human(e: ErrorObject, prefix: string): string {
  const rel = e.instancePath.slice(1).replace(/\//g, '.');
  const key = rel ? prefix + rel : prefix.replace(/\.$/, '') || 'config';
  switch (e.keyword) {
    case 'additionalProperties':
      return `${key}: unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
    case 'enum':
      return `${key}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'anyOf':
      if (/(flushInterval|maxRetryDelay|timeout|maxAhead|missingCheckInterval|sessionExpiry)$/.test(key))
        return `${key}: must be a duration like 500ms, 1s or 5m`;
      if (key.endsWith('http.port')) return `${key}: must be a port number 0..65535, or null to turn the HTTP server off`;
      return `${key}: ${e.message}`;
    case 'pattern':
      if (key.endsWith('mqtt.url')) return `${key}: must be a URL like mqtt://host:1883 or mqtts://host:8883`;
      if (key.endsWith('influx.url')) return `${key}: must be a URL like http://host:8086`;
      if (key.endsWith('mqtt.group')) return `${key}: must not contain / + # or $`;
      return `${key}: must match ${(e.params as { pattern: string }).pattern}`;
    default:
      return `${key}: ${e.message}`;
  }
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Validates a parsed config object (from a file); returns readable messages, empty when fine. */
export function checkConfigObject(value: unknown, where = 'aggregator.'): string[] {
  if (validateFile(value)) return [];
  // anyOf failures also report each branch; keep the anyOf line only.
  const errors = validateFile.errors ?? [];
  const anyOfPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const kept = errors.filter((e) => e.keyword === 'anyOf' || !anyOfPaths.has(e.instancePath));
  return [...new Set(kept.map((e) => human(e, where)))];
}

function readFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`config file ${path}: cannot read it (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  parsed ??= {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path}: must hold a mapping of keys`);
  // Accept either the aggregator keys at the top or under an `aggregator:` key (one file for all components).
  const obj = parsed as Record<string, unknown>;
  // A shared file with other components' sections (gateway:, simulator:, ...) and none for us: defaults.
  const others = ['gateway', 'simulator', 'demo', 'dashboards'].some((k) => k in obj);
  const section =
    obj.aggregator && typeof obj.aggregator === 'object' ? (obj.aggregator as Record<string, unknown>) : others ? {} : obj;
  const problems = checkConfigObject(section);
  if (problems.length) throw new ConfigError(`config file ${path}:\n  ${problems.join('\n  ')}`);
  return section;
}

/** Command-line flags (commander option names). All optional. */
export interface AggregatorFlags {
  config?: string;
  mqttUrl?: string;
  mqttUsername?: string;
  mqttPassword?: string;
  mqttCa?: string;
  mqttCert?: string;
  mqttKey?: string;
  mqttInsecure?: boolean;
  mqttVersion?: string;
  clientId?: string;
  group?: string;
  influxUrl?: string;
  influxApi?: string;
  influxToken?: string;
  influxOrg?: string;
  influxBucket?: string;
  influxDb?: string;
  influxRp?: string;
  influxUsername?: string;
  influxPassword?: string;
  out?: string;
  batchSize?: string;
  flushInterval?: string;
  maxBuffer?: string;
  httpPort?: string;
  httpHost?: string;
  maxAhead?: string;
  logLevel?: string;
}

function deepMerge(target: any, source: any): any {
  for (const [k, v] of Object.entries(source ?? {})) {
    if (v === undefined) continue;
    if (v && typeof v === 'object' && !Array.isArray(v) && target[k] && typeof target[k] === 'object') deepMerge(target[k], v);
    else target[k] = v;
  }
  return target;
}

const FLAG_OF: Record<string, string> = {
  'mqtt.url': '--mqtt-url',
  'mqtt.protocolVersion': '--mqtt-version',
  'mqtt.clientId': '--client-id',
  'mqtt.group': '--group',
  'influx.url': '--influx-url',
  'influx.api': '--influx-api',
  'influx.database': '--influx-db',
  out: '--out',
  'batch.size': '--batch-size',
  'batch.flushInterval': '--flush-interval',
  'batch.maxBuffer': '--max-buffer',
  'http.port': '--http-port',
  maxAhead: '--max-ahead',
  logLevel: '--log-level',
};
const ENV_OF: Record<string, string> = {
  'mqtt.url': 'MQTT_URL',
  'mqtt.group': 'MQTT_GROUP',
  'influx.url': 'INFLUX_URL',
  'influx.api': 'INFLUX_API',
  'influx.database': 'INFLUX_DB',
  logLevel: 'LOG_LEVEL',
};

const int = (v: string | undefined) => (v === undefined ? undefined : /^\d+$/.test(v.trim()) ? Number(v) : v);

/** Builds the configuration from defaults, an optional file, the environment and flags; throws ConfigError. */
export function loadConfig(flags: AggregatorFlags = {}, processEnv: NodeJS.ProcessEnv = process.env): AggregatorConfig {
  // An empty variable (INFLUX_URL=) counts as unset.
  const env = Object.fromEntries(Object.entries(processEnv).filter(([, v]) => v !== '')) as NodeJS.ProcessEnv;
  const layers: Array<[string, Record<string, unknown>]> = [];
  const file = flags.config ?? env.PRESENCE_AGGREGATOR_CONFIG;
  if (file) layers.push([`config file ${file}`, readFile(file)]);
  layers.push([
    'environment',
    {
      mqtt: { url: env.MQTT_URL, username: env.MQTT_USERNAME, password: env.MQTT_PASSWORD, group: env.MQTT_GROUP },
      influx: {
        url: env.INFLUX_URL,
        api: env.INFLUX_API,
        token: env.INFLUX_TOKEN,
        org: env.INFLUX_ORG,
        bucket: env.INFLUX_BUCKET,
        database: env.INFLUX_DB,
        retentionPolicy: env.INFLUX_RP,
        username: env.INFLUX_USERNAME,
        password: env.INFLUX_PASSWORD,
      },
      logLevel: env.LOG_LEVEL,
    },
  ]);
  layers.push([
    'flags',
    {
      mqtt: {
        url: flags.mqttUrl,
        username: flags.mqttUsername,
        password: flags.mqttPassword,
        ca: flags.mqttCa,
        cert: flags.mqttCert,
        key: flags.mqttKey,
        rejectUnauthorized: flags.mqttInsecure ? false : undefined,
        protocolVersion: int(flags.mqttVersion),
        clientId: flags.clientId,
        group: flags.group,
      },
      influx: {
        url: flags.influxUrl,
        api: flags.influxApi,
        token: flags.influxToken,
        org: flags.influxOrg,
        bucket: flags.influxBucket,
        database: flags.influxDb,
        retentionPolicy: flags.influxRp,
        username: flags.influxUsername,
        password: flags.influxPassword,
      },
      out: flags.out,
      batch: { size: int(flags.batchSize), flushInterval: flags.flushInterval, maxBuffer: int(flags.maxBuffer) },
      http: {
        port: flags.httpPort === undefined ? undefined : /^(off|none|false)$/i.test(flags.httpPort) ? null : int(flags.httpPort),
        host: flags.httpHost,
      },
      maxAhead: flags.maxAhead,
      logLevel: flags.logLevel,
    },
  ]);
  const merged: any = {};
  for (const [name, layer] of layers) {
    const clean = JSON.parse(JSON.stringify(layer)); // drops undefined
    let problems = checkConfigObject(clean, name === 'flags' || name === 'environment' ? '' : 'aggregator.');
    if (name === 'flags') problems = problems.map((p) => p.replace(/^([\w.]+):/, (all, key: string) => (FLAG_OF[key] ? `${FLAG_OF[key]}:` : all)));
    if (name === 'environment') problems = problems.map((p) => p.replace(/^([\w.]+):/, (all, key: string) => (ENV_OF[key] ? `${ENV_OF[key]}:` : all)));
    if (problems.length) throw new ConfigError(`${name}:\n  ${problems.join('\n  ')}`);
    deepMerge(merged, clean);
  }
  return resolveConfig(merged);
}

/** Defaults + a partial config (as in a file, durations as strings or ms) -> a complete config. */
export function resolveConfig(partial: unknown = {}): AggregatorConfig {
  const problems = checkConfigObject(partial);
  if (problems.length) throw new ConfigError(problems.join('\n'));
  const cfg: any = deepMerge(defaultConfig(), JSON.parse(JSON.stringify(partial ?? {})));
  const dur = (v: unknown, unit: 'ms' | 's' = 'ms') => parseDuration(v, unit) as number;
  cfg.batch.flushInterval = dur(cfg.batch.flushInterval);
  cfg.batch.maxRetryDelay = dur(cfg.batch.maxRetryDelay);
  cfg.influx.timeout = dur(cfg.influx.timeout);
  cfg.maxAhead = dur(cfg.maxAhead);
  cfg.missingCheckInterval = dur(cfg.missingCheckInterval);
  cfg.mqtt.sessionExpiry = Math.round(dur(cfg.mqtt.sessionExpiry, 's') / 1000);
  if (cfg.http.port === false) cfg.http.port = null;
  if (cfg.influx.url) {
    const i = cfg.influx as InfluxConfig;
    if (i.api === 'v2' && !i.bucket && !i.database)
      throw new ConfigError('influx.bucket: is required for the v2 API (or set influx.database, used as bucket "db/rp")');
    if (i.api === 'v1' && !i.database) throw new ConfigError('influx.database: is required for the 1.x API (--influx-api v1)');
  }
  if (cfg.batch.maxBuffer < cfg.batch.size)
    throw new ConfigError(`batch.maxBuffer: must be at least batch.size (${cfg.batch.size})`);
  return cfg as AggregatorConfig;
}
