// Aggregator configuration: defaults < config file (YAML or JSON) < environment < command-line flags.
// Every setting is one entry of AGGREGATOR_OPTIONS (snake_case key, schema, default, flag, env, old
// names); the shared loader in scripts/lib/config-loader.ts validates it (ajv) and names the file or
// flag, the key and the fix in its errors. In memory (AggregatorConfig, for `new Aggregator()`) the
// settings keep their camelCase TypeScript names and durations are numbers of milliseconds.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  applyEnv,
  bareDurations,
  applyFlags,
  buildSchema,
  ConfigError,
  createAjv,
  describeErrors,
  getPath,
  keyName,
  readConfigFile,
  renameOldKeys,
  resolvePaths,
  setPath,
  SettingSources,
  type OptionSpec,
  type Origins,
  type Renamed,
  onOff,
} from '../scripts/lib/config-loader.ts';
import { durationLimitProblems, durationMs, formatDuration } from '../scripts/lib/duration.ts';
import { retentionRule } from './influx-setup.ts';
import { weakWebSecret, webAuthOptionEntries } from '../scripts/lib/web.ts';
import { canonicalMqttUrl, MQTT_URL_PATTERN, mqttOptionEntries, passwordWithoutUsername } from '../scripts/lib/mqtt-options.ts';
import { influxCredentials, readSecretFile } from '../scripts/lib/secrets.ts';
import { ID_PATTERN } from '../contract/index.ts';
import type { GatewaysConfig } from './registry.ts';

export { ConfigError };

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
  /** Create a missing database (1.x) or retention policy at start. */
  create?: boolean;
  /** Retention (ms) of what `create` creates. */
  retention?: number;
}

export interface AggregatorConfig {
  mqtt: MqttConfig;
  influx: InfluxConfig;
  /** Line-protocol file written when no InfluxDB URL is set. */
  out: string;
  batch: {
    /** Messages per write (each counts message is three points: wifi, ble and its window marker). */
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
  http: {
    port: number | null;
    host: string;
    /** Serve the page of recent writes at / (with /api/recent and /api/events). */
    page: boolean;
    /** How far back (ms) before each zone's newest window the page keeps windows. */
    history: number;
    /** Access to the page when not on loopback (scripts/lib/web.ts webAccess): basic auth and/or a bearer token. */
    user?: string;
    password?: string;
    token?: string;
  };
  /** Windows starting more than this (ms) ahead of the clock are rejected. */
  maxAhead: number;
  /** A gateway silent for this many window lengths is recorded as missing. */
  missingAfterWindows: number;
  /** How often (ms) the missing-gateway timer runs. */
  missingCheckInterval: number;
  logLevel: string;
  /** pretty, json or auto (pretty on a terminal). */
  logFormat?: string;
  /** Calibration file (`presence calibrate`) the CLI loads and reloads on SIGHUP. */
  calibration?: string;
  /** Gateway registry, limit on unregistered gateways, conflict memory (./registry.ts; snake_case keys in memory too). */
  gateways: GatewaysConfig;
  /** Corridor groups whose sketches this aggregator turns into flows (./flows/; empty: sketches are not read). */
  corridors: CorridorConfig[];
}

/** One corridor group: its gateways' sketches meet here (./flows/intake.ts). */
export interface CorridorConfig {
  group: string;
  site: string;
  members: string[];
  /** Longest travel time looked for, ms (sketches are kept this long after their window). */
  horizon: number;
  /**
   * Matched devices times this is the flow written: one factor for every pair, or per ordered pair
   * "from>to" (pairs not named: 1). Calibrated against a reference count of the travellers
   * (README "Corridor flows"); default 1, the flow of matched devices.
   */
  expansion?: number | Record<string, number>;
}

/**
 * The client id when mqtt.client_id is not set: unique per instance on a host. With the HTTP server on
 * a fixed port it is `presence-aggregator-HOST-pPORT`: two instances on one host cannot share a port,
 * and the id stays the same across restarts, so the broker keeps the session (and the messages
 * published while the aggregator is down). Without one (http.port off or 0) it is
 * `presence-aggregator-HOST-RANDOM`, new for each run: the session does not survive a restart.
 */
export function defaultClientId(httpPort: unknown): string {
  const host = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '-');
  if (typeof httpPort === 'number' && httpPort > 0) return `presence-aggregator-${host}-p${httpPort}`;
  const id = `presence-aggregator-${host}-${randomBytes(4).toString('hex')}`;
  randomIds.add(id);
  return id;
}
const randomIds = new Set<string>();

/** True when a client id is one defaultClientId() drew at random (not kept across restarts). */
export function isRandomClientId(id: string): boolean {
  return randomIds.has(id);
}

/** Every setting at its default (the defaults live in AGGREGATOR_OPTIONS). */
export function defaultConfig(): AggregatorConfig {
  return resolveConfig({});
}

/** Milliseconds of "500ms", "1s", "5m", "2h", "7d" or a number of ms (seconds with defaultUnit 's'); null when none. */
export function parseDuration(value: unknown, defaultUnit: 'ms' | 's' = 'ms'): number | null {
  const ms = durationMs(value, { bare: defaultUnit, zero: true });
  return Number.isNaN(ms) ? null : ms;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const ms = { bare: 'ms', zero: true } as const;

/**
 * Every aggregator setting. `old.keys` are the camelCase names of the first file format: still read
 * (one deprecation line each) and still the names of AggregatorConfig in memory.
 */
export const AGGREGATOR_OPTIONS: OptionSpec[] = [
  ...mqttOptionEntries({
    'mqtt.url': {
      schema: { type: 'string', pattern: MQTT_URL_PATTERN, format: 'url' },
      default: 'mqtt://localhost:1883',
      description: 'broker URL: mqtt://host:1883, mqtts://host:8883 (TLS), ws://, wss://; tcp:// is taken as mqtt://, ssl:// and tls:// as mqtts://',
    },
    'mqtt.username': { example: 'aggregator', description: 'broker user name' },
    // not a gateway's /etc/presence/mqtt-password: on a machine running both, one would replace the other (docs/deployment.md)
    'mqtt.password_file': { example: '/etc/presence/aggregator-mqtt-password' },
    'mqtt.cert': { description: 'client certificate (PEM) for mutual TLS, with mqtt.key' },
    'mqtt.reject_unauthorized': {
      flagHelp: 'accept a broker certificate that does not verify',
      old: { keys: ['mqtt.rejectUnauthorized'] },
      description: 'check the broker certificate',
    },
  }),
  {
    key: 'mqtt.client_id',
    // Blank or only white space: two instances so configured would take each other's session.
    schema: { type: 'string', pattern: '\\S', maxLength: 128 },
    hint: 'must not be blank: leave it unset for the default (from the host name and http.port, unique per instance)',
    defaultText: 'presence-aggregator-HOSTNAME-pHTTPPORT',
    flag: '--mqtt-client-id <id>',
    old: { flags: ['--client-id'], keys: ['mqtt.clientId'] },
    description:
      'MQTT client id, unique per aggregator: the broker keeps the session (and queues QoS 1 messages) under it. Default: from the host name and http.port (the same across restarts); with http.port off or 0 a random one per run, whose session does not survive a restart',
  },
  {
    key: 'mqtt.group',
    schema: { type: 'string', pattern: '^[^/+#$]*$' },
    hint: 'must not contain / + # or $',
    flag: '--mqtt-group <name>',
    env: 'MQTT_GROUP',
    old: { flags: ['--group'] },
    description:
      'MQTT 5 shared-subscription group ($share/GROUP/presence/v1/+/+/counts): instances with the same group split the messages; empty: a plain subscription',
  },
  {
    key: 'mqtt.version',
    schema: { enum: [4, 5] },
    default: 5,
    flag: '--mqtt-version <4|5>',
    // mqtt.version, as in the gateway's file: one key for the same thing in every file
    old: { keys: ['mqtt.protocolVersion', 'mqtt.protocol_version'] },
    description: 'MQTT protocol version: 5, falling back to 4 (3.1.1) when the broker refuses it',
  },
  {
    key: 'mqtt.session_expiry',
    duration: { bare: 's', zero: true },
    default: '7d',
    old: { keys: ['mqtt.sessionExpiry'] },
    description: 'MQTT 5 session expiry: how long the broker keeps queueing while the aggregator is away (a bare number, deprecated, is read as seconds)',
  },
  {
    key: 'mqtt.receive_maximum',
    schema: { type: 'integer', minimum: 1, maximum: 65535 },
    default: 20_000,
    old: { keys: ['mqtt.receiveMaximum'] },
    description: 'MQTT 5 receive maximum: unacknowledged messages the broker may send at once',
  },
  {
    key: 'mqtt.keepalive',
    duration: { bare: 's', zero: true },
    default: '30s',
    flag: '--mqtt-keepalive <duration>',
    description: 'MQTT keepalive (0 turns it off; a bare number, deprecated, is read as seconds)',
  },
  {
    key: 'influx.url',
    schema: { type: 'string', pattern: '^https?://.+', format: 'url' },
    hint: 'must be a URL like http://host:8086',
    flag: '--influx-url <url>',
    env: 'INFLUX_URL',
    example: 'http://influxdb:8086',
    description:
      'InfluxDB URL; unset: line protocol goes to `out`. Credentials in it (http://user:password@host:8086) are taken out: the 1.x user and password, or the v2 token (user:password, or the one part given); separate settings win',
  },
  {
    key: 'influx.api',
    schema: { enum: ['v2', 'v1'] },
    default: 'v2',
    flag: '--influx-api <api>',
    env: 'INFLUX_API',
    description: 'v2: /api/v2/write (InfluxDB 2.x, 1.8+, 3.x, VictoriaMetrics); v1: /write (InfluxDB 1.x)',
  },
  {
    key: 'influx.token',
    schema: { type: 'string' },
    secret: true,
    flag: '--influx-token <token>',
    env: 'INFLUX_TOKEN',
    description: 'v2 API token; prefer INFLUX_TOKEN or a token file to a flag',
  },
  {
    key: 'influx.token_file',
    schema: { type: 'string' },
    path: true,
    flag: '--influx-token-file <file>',
    env: 'INFLUX_TOKEN_FILE',
    example: '/etc/presence/influx-token',
    description: 'file whose first line is the v2 API token',
  },
  { key: 'influx.org', schema: { type: 'string' }, flag: '--influx-org <org>', env: 'INFLUX_ORG', example: 'city', description: 'v2 organisation' },
  { key: 'influx.bucket', schema: { type: 'string' }, flag: '--influx-bucket <bucket>', env: 'INFLUX_BUCKET', example: 'presence', description: 'v2 bucket' },
  {
    key: 'influx.database',
    schema: { type: 'string', minLength: 1 },
    flag: '--influx-db <database>',
    env: 'INFLUX_DB',
    description: '1.x database (with the v2 API and no bucket: bucket "database/retention_policy")',
  },
  {
    key: 'influx.retention_policy',
    schema: { type: 'string' },
    flag: '--influx-rp <policy>',
    env: 'INFLUX_RP',
    old: { keys: ['influx.retentionPolicy'] },
    description: '1.x retention policy',
  },
  {
    key: 'influx.username',
    schema: { type: 'string' },
    flag: '--influx-username <name>',
    env: 'INFLUX_USERNAME',
    description: '1.x user, sent as HTTP Basic authorization',
  },
  {
    key: 'influx.password',
    schema: { type: 'string' },
    secret: true,
    flag: '--influx-password <password>',
    env: 'INFLUX_PASSWORD',
    description: '1.x password',
  },
  {
    key: 'influx.password_file',
    schema: { type: 'string' },
    path: true,
    flag: '--influx-password-file <file>',
    env: 'INFLUX_PASSWORD_FILE',
    description: 'file whose first line is the 1.x password',
  },
  {
    key: 'influx.timeout',
    duration: ms,
    default: '10s',
    description: 'write request timeout, and that of each check of InfluxDB at start (a bare number, deprecated, is read as ms)',
  },
  {
    key: 'influx.create',
    schema: { type: 'boolean' },
    default: false,
    flag: '--influx-create',
    flagValue: true,
    env: 'INFLUX_CREATE',
    flagHelp: 'create a missing 1.x database (as presence influx setup does) at start, and when a write finds it missing',
    description:
      'at start, create a missing InfluxDB 1.x database (as `presence influx setup` does: default policy detail of influx.retention, hourly aggregates) or a missing influx.retention_policy, and again when a write is answered 404 (InfluxDB was down at start and came back without it, or it was dropped); off: the aggregator stops and prints the command that creates it',
  },
  {
    key: 'influx.retention',
    duration: { bare: 'ms', zero: false },
    default: '30d',
    flag: '--influx-retention <duration>',
    description:
      'retention of what influx.create creates (whole hours or days, from 2h to 106751d, checked at start when influx.create is on; the hourly aggregates of a new database keep 400d; a bare number, deprecated, is read as ms)',
  },
  {
    key: 'out',
    schema: { type: 'string', minLength: 1, 'x-no-credentials': true },
    default: './presence.lp',
    flag: '-o, --out <file>',
    description: 'line-protocol file written when no InfluxDB URL is set',
  },
  {
    key: 'batch.size',
    schema: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    default: 5000,
    flag: '--batch-size <n>',
    description: 'messages per write (a counts message is three points), 1 to 1,000,000',
  },
  {
    key: 'batch.flush_interval',
    duration: ms,
    default: '200ms',
    flag: '--flush-interval <duration>',
    old: { keys: ['batch.flushInterval'] },
    description: 'longest wait before a partial batch is written (a bare number, deprecated, is read as ms)',
  },
  {
    key: 'batch.concurrency',
    schema: { type: 'integer', minimum: 1, maximum: 16 },
    default: 2,
    description: 'batches written at once (acknowledgements still go out in arrival order)',
  },
  {
    key: 'batch.max_buffer',
    schema: { type: 'integer', minimum: 1, maximum: 10_000_000 },
    default: 30_000,
    flag: '--max-buffer <n>',
    old: { keys: ['batch.maxBuffer'] },
    description: 'unacknowledged messages held at most (at least batch.size, at most 10,000,000); beyond it reading from the broker pauses',
  },
  {
    key: 'batch.max_retry_delay',
    duration: ms,
    default: '30s',
    old: { keys: ['batch.maxRetryDelay'] },
    description: 'write retries back off from 250ms up to this (a bare number, deprecated, is read as ms)',
  },
  {
    key: 'http.port',
    schema: { anyOf: [{ type: 'integer', minimum: 0, maximum: 65535 }, { type: 'null' }, { const: false }] },
    hint: 'must be a port number 0..65535, or null (off) to turn the HTTP server off',
    default: 9464,
    flag: '--http-port <port>',
    fromText: (t) => (/^(off|none|false|null)$/i.test(t.trim()) ? null : /^\d+$/.test(t.trim()) ? Number(t) : t),
    description: 'port of /healthz, /metrics and the page at / (http.page); null (off on the command line) turns the server off',
  },
  {
    key: 'http.host',
    schema: { type: 'string', minLength: 1 },
    default: '127.0.0.1',
    flag: '--http-host <host>',
    description:
      'address of /healthz, /metrics and the page: loopback by default (/healthz and /metrics have no authentication); 0.0.0.0 or :: for every interface, where the page needs http.user and http.password, or http.token',
  },
  ...webAuthOptionEntries('the aggregator page'),
  {
    key: 'http.page',
    schema: { type: 'boolean' },
    default: true,
    flag: '--http-page <on|off>',
    hint: 'must be on or off (true or false in a file)',
    fromText: onOff,
    description:
      "serve, on the same port, a web page at / of what the aggregator wrote recently (people or devices per zone over time, the gateways' states) with its JSON at /api/recent and live updates at /api/events (Server-Sent Events); off serves /healthz and /metrics only",
  },
  {
    key: 'http.history',
    duration: ms,
    default: '24h',
    flag: '--http-history <duration>',
    description:
      "the page keeps, in memory, the windows of this long before each zone's newest one (at most 1440 per zone; a bare number, deprecated, is read as ms)",
  },
  {
    key: 'max_ahead',
    duration: ms,
    default: '5m',
    flag: '--max-ahead <duration>',
    old: { keys: ['maxAhead'] },
    description: 'windows starting or ending (or status times) further ahead of the clock are rejected (a bare number, deprecated, is read as ms)',
  },
  {
    key: 'missing_after_windows',
    schema: { type: 'number', minimum: 1 },
    default: 2,
    old: { keys: ['missingAfterWindows'] },
    description: 'a gateway silent this many window lengths is recorded as missing',
  },
  {
    key: 'missing_check_interval',
    duration: ms,
    default: '1s',
    old: { keys: ['missingCheckInterval'] },
    description: 'how often silent gateways and idle corridor groups are looked for (a bare number, deprecated, is read as ms)',
  },
  {
    key: 'log.level',
    schema: { enum: LOG_LEVELS },
    default: 'info',
    flag: '--log-level <level>',
    env: 'LOG_LEVEL',
    old: { keys: ['logLevel'] },
    description: 'log level of the lines on stderr',
  },
  {
    key: 'log.format',
    schema: { enum: ['auto', 'pretty', 'json'] },
    default: 'auto',
    flag: '--log-format <format>',
    env: 'LOG_FORMAT',
    old: { keys: ['logFormat'] },
    description: 'log lines on stderr: pretty (readable), json (one object a line), auto (pretty on a terminal, else json)',
  },
  {
    key: 'gateways.registry',
    schema: {
      type: 'object',
      propertyNames: { pattern: ID_PATTERN },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['site', 'zone'],
        properties: {
          site: { type: 'string', pattern: ID_PATTERN },
          zone: { type: 'string', pattern: ID_PATTERN },
          credential: { type: 'string', minLength: 1, maxLength: 256 },
        },
      },
    },
    hint: 'gateway ids, sites and zones must be lower case letters, digits, - and _ (up to 63), each entry { site, zone, credential? }',
    example: { 'gw-plein-1': { site: 'dam', zone: 'plein', credential: 'dam/gw-plein-1' } },
    description:
      'gateway id -> { site, zone, credential }: messages of a registered gateway for another site or zone are rejected (identity_mismatch); `presence provision gateway` adds entries',
  },
  {
    key: 'gateways.allow_unknown',
    schema: { type: 'boolean' },
    defaultText: 'false with a registry, true without',
    description: 'accept gateways that are not in gateways.registry (up to gateways.max_known); false: reject them (unknown_gateway)',
  },
  {
    key: 'gateways.max_known',
    schema: { type: 'integer', minimum: 1 },
    default: 10_000,
    flag: '--max-gateways <n>',
    description: 'unregistered gateways accepted at most; messages of further ones are rejected (gateway_limit) with a warning',
  },
  {
    key: 'gateways.conflict_memory',
    schema: { type: 'integer', minimum: 0 },
    default: 50_000,
    description:
      'accepted counts messages remembered (about 600 bytes each): another message for one of their windows or seqs is rejected (conflict), and so is one whose window overlaps one of theirs with another start (overlap); an identical one is a redelivery; 0 turns it off',
  },
  {
    key: 'corridors',
    schema: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['group', 'site', 'members'],
        properties: {
          group: { type: 'string', pattern: ID_PATTERN },
          site: { type: 'string', pattern: ID_PATTERN },
          members: { type: 'array', minItems: 2, maxItems: 64, uniqueItems: true, items: { type: 'string', pattern: ID_PATTERN } },
          horizon: {
            anyOf: [
              { type: 'string', minLength: 1 },
              { type: 'number', minimum: 1 },
            ],
          },
          expansion: {
            anyOf: [
              { type: 'number', exclusiveMinimum: 0, maximum: 1000 },
              {
                type: 'object',
                minProperties: 1,
                propertyNames: { pattern: '^[a-z0-9_-]{1,63}>[a-z0-9_-]{1,63}$' },
                additionalProperties: { type: 'number', exclusiveMinimum: 0, maximum: 1000 },
              },
            ],
          },
        },
      },
    },
    default: [],
    hint: 'a list of { group, site, members: [gateway ids, at least 2, at most 64, no repeats], horizon?, expansion?: a number > 0 or { "from>to": number } }; ids lower case letters, digits, - and _ (up to 63)',
    example: [{ group: 'main-street', site: 'corridor', members: ['gw-a', 'gw-b'], horizon: '10m' }],
    description:
      'corridor groups (presence corridor init): the sketches of their members are read from presence/v1/{site}/{gateway}/sketch and turned into flows between every pair (measurement flow); horizon: the longest travel time looked for (default 10m; a bare number, deprecated, is read as ms); expansion: matched devices times this is the flow written (calibrated against a reference count; default 1: matched devices), one number or per "from>to" pair',
  },
  {
    key: 'calibration',
    schema: { type: 'string', minLength: 1 },
    path: true,
    flag: '--calibration <file>',
    description: 'calibration file (presence calibrate): write calibrated, people, people_low, people_high for its zones; reloaded on SIGHUP',
  },
];

export const configSchema = buildSchema(AGGREGATOR_OPTIONS, 'presence/aggregator-config');
const validate = createAjv().compile(configSchema);

/** Validates a config object with snake_case keys (in place: fills defaults); returns readable problems. */
function check(raw: Record<string, unknown>, origins: Origins, prefix: string, renamed?: Renamed): string[] {
  if (validate(raw)) return [];
  return describeErrors(validate.errors ?? [], { specs: AGGREGATOR_OPTIONS, schema: configSchema, data: raw, origins, prefix, renamed });
}

/** Validates a parsed config object (a file's section); returns readable messages, empty when fine. */
export function checkConfigObject(value: unknown, where = 'aggregator.'): string[] {
  const raw = structuredClone((value ?? {}) as Record<string, unknown>);
  const renamed = renameOldKeys(raw, AGGREGATOR_OPTIONS, '', '', false);
  return check(raw, new Map(), where, renamed);
}

/** Sections of other components in a file that holds every component's. */
const OTHER_SECTIONS = ['gateway', 'simulator', 'demo', 'dashboards'];

/** The aggregator's section of a file: its keys at the top, or under `aggregator:` (one file for all components). */
function readFile(path: string): { section: Record<string, unknown>; prefix: string } {
  const obj = readConfigFile(path);
  if (obj.aggregator && typeof obj.aggregator === 'object' && !Array.isArray(obj.aggregator)) {
    // An aggregator file with some keys under aggregator: and others at the top: the top ones would
    // be ignored (a shared file's other sections may have top-level keys of their own, e.g. a gateway's mqtt).
    if (!OTHER_SECTIONS.some((k) => k in obj)) {
      const roots = new Set(AGGREGATOR_OPTIONS.map((o) => o.key.split('.')[0]));
      const stray = Object.keys(obj).filter((k) => k !== 'aggregator' && roots.has(k));
      if (stray.length)
        throw new ConfigError(
          [`has an aggregator: section and aggregator settings at the top level too (${stray.join(', ')}), which would be ignored: put them under aggregator:`],
          `config file ${path}`,
        );
    }
    return { section: obj.aggregator as Record<string, unknown>, prefix: 'aggregator.' };
  }
  // Other components' sections (gateway:, simulator:, ...) and none for us: most likely a gateway's
  // file given by mistake; running on defaults (localhost broker, ./presence.lp) would hide that.
  const others = OTHER_SECTIONS.filter((k) => k in obj);
  if (others.length)
    throw new ConfigError(
      [
        `has no aggregator settings: no aggregator: section beside ${others.map((k) => `${k}:`).join(', ')} (is it another component's file?); put the aggregator's settings under aggregator:, or give the aggregator's own file`,
      ],
      `config file ${path}`,
    );
  return { section: obj, prefix: '' };
}

/** Command-line flags (commander attribute names). All optional. */
export interface AggregatorFlags {
  config?: string;
  mqttUrl?: string;
  mqttUsername?: string;
  mqttPassword?: string;
  mqttPasswordFile?: string;
  mqttCa?: string;
  mqttCert?: string;
  mqttKey?: string;
  mqttInsecure?: boolean;
  mqttVersion?: string;
  mqttKeepalive?: string;
  mqttClientId?: string;
  /** @deprecated the old name of mqttClientId (--client-id) */
  clientId?: string;
  mqttGroup?: string;
  /** @deprecated the old name of mqttGroup (--group) */
  group?: string;
  influxUrl?: string;
  influxApi?: string;
  influxToken?: string;
  influxTokenFile?: string;
  influxOrg?: string;
  influxBucket?: string;
  influxDb?: string;
  influxRp?: string;
  influxUsername?: string;
  influxPassword?: string;
  influxPasswordFile?: string;
  influxCreate?: boolean;
  influxRetention?: string;
  out?: string;
  batchSize?: string;
  flushInterval?: string;
  maxBuffer?: string;
  httpPort?: string;
  httpHost?: string;
  httpPage?: string;
  httpUser?: string;
  httpPasswordFile?: string;
  httpTokenFile?: string;
  httpHistory?: string;
  maxAhead?: string;
  logLevel?: string;
  logFormat?: string;
  calibration?: string;
  maxGateways?: string;
}

/** Builds the configuration from defaults, an optional file, the environment and flags; throws ConfigError. */
export function loadConfig(flags: AggregatorFlags = {}, env: NodeJS.ProcessEnv = process.env): AggregatorConfig {
  return loadConfigWithSources(flags, env).config;
}

/** loadConfig, and where each setting came from (the flag, variable, config file or default), to name it in a line about its value at run time. */
export function loadConfigWithSources(
  flags: AggregatorFlags = {},
  env: NodeJS.ProcessEnv = process.env,
): { config: AggregatorConfig; sources: SettingSources } {
  // --config "" (a variable that was not set, in a script or unit) was taken for no file: the
  // settings of the file meant were left out without a word, and the defaults used instead.
  if (flags.config === '') throw new ConfigError(['--config is empty: give the path of the YAML or JSON config file, or leave --config out'], 'flags');
  const file = flags.config || env.PRESENCE_AGGREGATOR_CONFIG || undefined;
  let raw: Record<string, unknown> = {};
  let prefix = '';
  let renamed: Renamed | undefined;
  if (file) {
    ({ section: raw, prefix } = readFile(file));
    renamed = renameOldKeys(raw, AGGREGATOR_OPTIONS, file, prefix);
    resolvePaths(raw, AGGREGATOR_OPTIONS, file);
  }
  const origins: Origins = new Map();
  applyEnv(raw, AGGREGATOR_OPTIONS, env, origins);
  applyFlags(raw, AGGREGATOR_OPTIONS, flags as Record<string, unknown>, origins);
  bareDurations(raw, AGGREGATOR_OPTIONS, origins, file, prefix);
  if (typeof getPath(raw, 'mqtt.version') === 'string') setPath(raw, 'mqtt.version', Number(getPath(raw, 'mqtt.version')));
  for (const key of origins.keys()) renamed?.delete(key); // set again by the environment or a flag
  const sources = new SettingSources(AGGREGATOR_OPTIONS, raw, origins, file, prefix, renamed);
  const problems = check(raw, origins, prefix, renamed);
  if (problems.length) throw new ConfigError(problems, file ? `config file ${file}` : 'configuration (from flags and environment)');
  return { config: toInternal(raw, file ?? 'configuration', renamed, false, origins, prefix), sources };
}

/**
 * Validated snake_case settings -> AggregatorConfig (camelCase, durations in ms, secrets read from their files).
 * `inMemory`: a config built in the process (resolveConfig, e.g. `new Aggregator(loadConfig(...))`), whose
 * durations may be numbers of ms already: no deprecation line for them. `origins` (the flag or
 * variable that set a key) and `prefix` (`aggregator.` for a file's section) name a key in a problem
 * where it came from, as the schema's problems do.
 */
function toInternal(c: any, where: string, renamed?: Renamed, inMemory = false, origins: Origins = new Map(), prefix = ''): AggregatorConfig {
  // "--flag (key)" or "VARIABLE (key)" when a flag or variable set it, else the key as the file has it
  const at = (key: string) => {
    const name = keyName(key, renamed, prefix);
    return origins.has(key) ? `${origins.get(key)} (${name})` : name;
  };
  const d = (v: unknown, unit: 'ms' | 's' = 'ms') => parseDuration(v, unit) as number;
  const secret = (value: string | undefined, file: string | undefined, key: string) => {
    if (value !== undefined || !file) return value;
    try {
      return readSecretFile(file, key);
    } catch (e) {
      throw new ConfigError([(e as Error).message], where);
    }
  };
  const noUser = passwordWithoutUsername(c.mqtt);
  if (noUser) throw new ConfigError([noUser], where);
  const cfg: AggregatorConfig = {
    mqtt: {
      url: canonicalMqttUrl(c.mqtt.url),
      username: c.mqtt.username,
      password: secret(c.mqtt.password, c.mqtt.password_file, 'mqtt.password_file'),
      ca: c.mqtt.ca,
      cert: c.mqtt.cert,
      key: c.mqtt.key,
      rejectUnauthorized: c.mqtt.reject_unauthorized,
      clientId: c.mqtt.client_id ?? defaultClientId(c.http.port),
      group: c.mqtt.group,
      protocolVersion: c.mqtt.version,
      sessionExpiry: Math.round(d(c.mqtt.session_expiry, 's') / 1000),
      receiveMaximum: c.mqtt.receive_maximum,
      keepalive: Math.round(d(c.mqtt.keepalive, 's') / 1000),
    },
    influx: {
      url: c.influx.url,
      api: c.influx.api,
      token: secret(c.influx.token, c.influx.token_file, 'influx.token_file'),
      org: c.influx.org,
      bucket: c.influx.bucket,
      database: c.influx.database,
      retentionPolicy: c.influx.retention_policy,
      username: c.influx.username,
      password: secret(c.influx.password, c.influx.password_file, 'influx.password_file'),
      timeout: d(c.influx.timeout),
      create: c.influx.create,
      retention: d(c.influx.retention),
    },
    out: c.out,
    batch: {
      size: c.batch.size,
      flushInterval: d(c.batch.flush_interval),
      concurrency: c.batch.concurrency,
      maxBuffer: c.batch.max_buffer,
      maxRetryDelay: d(c.batch.max_retry_delay),
    },
    http: {
      port: c.http.port === false ? null : c.http.port,
      host: c.http.host,
      page: c.http.page,
      history: d(c.http.history),
      user: c.http.user,
      password: secret(c.http.password, c.http.password_file, 'http.password_file'),
      token: secret(c.http.token, c.http.token_file, 'http.token_file'),
    },
    maxAhead: d(c.max_ahead),
    missingAfterWindows: c.missing_after_windows,
    missingCheckInterval: d(c.missing_check_interval),
    logLevel: c.log.level,
    logFormat: c.log.format,
    ...(c.calibration !== undefined ? { calibration: c.calibration } : {}),
    gateways: {
      registry: c.gateways.registry ?? {},
      // With a registry, an unknown gateway is refused unless the operator says otherwise.
      allow_unknown: c.gateways.allow_unknown ?? Object.keys(c.gateways.registry ?? {}).length === 0,
      max_known: c.gateways.max_known,
      conflict_memory: c.gateways.conflict_memory,
    },
    corridors: [],
  };
  cfg.corridors = corridors(c.corridors ?? [], where, inMemory);
  // Drop unset optional values so the object round-trips through resolveConfig unchanged.
  for (const section of [cfg.mqtt, cfg.influx, cfg.http] as unknown as Array<Record<string, unknown>>)
    for (const k of Object.keys(section)) if (section[k] === undefined) delete section[k];
  // The page's basic auth needs both halves (scripts/lib/web.ts webAccess); no empty secret.
  if (cfg.http.password === '') throw new ConfigError(['http.password (or http.password_file) is empty: give a password or leave both unset'], where);
  if (cfg.http.token === '') throw new ConfigError(['http.token (or http.token_file) is empty: give a token or leave both unset'], where);
  // (a page that is served: with http.port off nothing listens, with http.page off /healthz and
  // /metrics only, which take no secret; the gateway's page off takes any length too)
  const weak =
    cfg.http.port === null || cfg.http.page === false
      ? null
      : weakWebSecret(cfg.http.host, cfg.http.password, cfg.http.token, { password_file: c.http.password_file, token_file: c.http.token_file });
  if (weak) throw new ConfigError([weak], where);
  if (cfg.http.user !== undefined && cfg.http.password === undefined)
    throw new ConfigError(
      [`${at('http.user')}: is set without http.password (or http.password_file, PRESENCE_HTTP_PASSWORD); give both, or http.token`],
      where,
    );
  if (cfg.http.password !== undefined && cfg.http.user === undefined)
    throw new ConfigError(
      [`${at(c.http.password !== undefined ? 'http.password' : 'http.password_file')}: is set without http.user (--http-user); give both, or http.token`],
      where,
    );
  // http://user:password@host: the credentials move out of the URL (fetch refuses such a URL).
  cfg.influx = influxCredentials(cfg.influx, cfg.influx.api);
  if (cfg.influx.url) {
    const i = cfg.influx;
    if (i.api === 'v2' && !i.bucket && !i.database)
      throw new ConfigError(
        ['influx.bucket: is required for the v2 API: set influx.bucket (--influx-bucket, INFLUX_BUCKET), or influx.database, used as bucket "db/rp"'],
        where,
      );
    if (i.api === 'v1' && !i.database)
      throw new ConfigError(['influx.database: is required for the 1.x API (--influx-api v1): set it in the file, with --influx-db or INFLUX_DB'], where);
  }
  const limits = durationLimitProblems(
    [
      [at('batch.flush_interval'), cfg.batch.flushInterval],
      [at('batch.max_retry_delay'), cfg.batch.maxRetryDelay],
      [at('missing_check_interval'), cfg.missingCheckInterval],
      [at('influx.timeout'), cfg.influx.timeout],
    ],
    [at('mqtt.keepalive'), cfg.mqtt.keepalive],
  );
  if (limits.length) throw new ConfigError(limits, where);
  // What influx.create would create must be a retention InfluxDB takes: said at start, not at the
  // first database to create (a 404 of a write, maybe weeks later)
  const retentionProblem = cfg.influx.create && cfg.influx.retention !== undefined ? retentionRule(cfg.influx.retention) : null;
  if (retentionProblem)
    throw new ConfigError(
      [`${at('influx.retention')}: must be ${retentionProblem}, for what influx.create creates (got ${formatDuration(cfg.influx.retention!)})`],
      where,
    );
  if (cfg.batch.maxBuffer < cfg.batch.size)
    throw new ConfigError(
      [
        `${at('batch.max_buffer')}: must be at least ${keyName('batch.size', renamed, prefix)} (${cfg.batch.size}) (got ${cfg.batch.maxBuffer}); raise batch.max_buffer (--max-buffer) or lower batch.size (--batch-size)`,
      ],
      where,
    );
  return cfg;
}

/** Checks across corridor groups the schema cannot express; durations to ms (a bare number: ms, with one deprecation line unless in memory). */
function corridors(list: any[], where: string, inMemory = false): CorridorConfig[] {
  const problems: string[] = [];
  const groups = new Map<string, number>();
  const memberOf = new Map<string, string>();
  const out = list.map((c, i): CorridorConfig => {
    if (groups.has(c.group)) problems.push(`corridors[${i}].group: "${c.group}" is also corridors[${groups.get(c.group)}].group; a group is listed once`);
    groups.set(c.group, i);
    // a gateway is its site and id: gw-1 of one site and gw-1 of another are two gateways
    for (const m of c.members as string[]) {
      const other = memberOf.get(`${c.site}/${m}`);
      if (other !== undefined && other !== c.group)
        problems.push(`corridors[${i}].members: gateway "${m}" of site "${c.site}" is already a member of group "${other}"; a gateway is in one group`);
      memberOf.set(`${c.site}/${m}`, c.group);
    }
    let horizon = 600_000;
    if (c.horizon !== undefined) {
      const ms = durationMs(c.horizon, { bare: 'ms', ...(inMemory ? {} : { name: `corridors[${i}].horizon` }), where });
      if (!(ms >= 60_000 && ms <= 6 * 3_600_000))
        problems.push(`corridors[${i}].horizon: must be a duration from 1m to 6h like 10m (got ${JSON.stringify(c.horizon)})`);
      else horizon = ms;
    }
    if (c.expansion !== undefined && typeof c.expansion === 'object')
      for (const k of Object.keys(c.expansion)) {
        const [from, to] = k.split('>');
        if (from === to || !c.members.includes(from) || !c.members.includes(to))
          problems.push(`corridors[${i}].expansion: "${k}" is not an ordered pair of two of the group's members (${c.members.join(', ')})`);
      }
    const out: CorridorConfig = { group: c.group, site: c.site, members: [...c.members], horizon };
    if (c.expansion !== undefined) out.expansion = typeof c.expansion === 'number' ? c.expansion : { ...c.expansion };
    return out;
  });
  if (problems.length) throw new ConfigError(problems, where);
  return out;
}

/**
 * Defaults + a partial config -> a complete AggregatorConfig, for in-process use (`new Aggregator({...})`).
 * Takes the in-memory camelCase names (durations as "500ms" or numbers of ms) or the file's snake_case keys.
 */
export function resolveConfig(partial: unknown = {}): AggregatorConfig {
  const raw = structuredClone(partial ?? {}) as Record<string, unknown>;
  const renamed = renameOldKeys(raw, AGGREGATOR_OPTIONS, '', '', false);
  const problems = check(raw, new Map(), '', renamed);
  if (problems.length) throw new ConfigError(problems);
  return toInternal(raw, 'configuration', renamed, true);
}
