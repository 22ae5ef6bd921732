// Gateway configuration: a YAML or JSON file validated against a JSON schema (ajv), with the
// environment and command-line flags layered on top, so
// `presence gateway --site s --zone z --id g --mqtt-url URL --source pcap:F` works with no file at all.
// Every setting is one entry of GATEWAY_OPTIONS (key, schema, default, flag, env, old names); the
// shared loader in scripts/lib/config-loader.ts does the rest, as for every other command.
import { decimal } from '../scripts/lib/decimal.ts';
import { accessSync, constants, existsSync, fstatSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  applyEnv,
  bareDurations,
  applyFlags,
  buildSchema,
  ConfigError,
  createAjv,
  describeErrors,
  ensureSections,
  readConfigFile,
  renameOldKeys,
  resolvePaths,
  SettingSources,
  type OptionSpec,
  type Origins,
  onOff,
} from '../scripts/lib/config-loader.ts';
import { durationLimitProblems, durationMs, formatDuration, parseDuration as parseLibDuration } from '../scripts/lib/duration.ts';
import { canonicalMqttUrl, MQTT_URL_PATTERN, mqttOptionEntries, passwordWithoutUsername, tlsFileProblemsIn } from '../scripts/lib/mqtt-options.ts';
import { fileProblemsHint } from '../scripts/lib/usage.ts';
import { currentUser, holdsUrlCredentials, MAX_SECRET_BYTES, missingSecretFile, redactUrlsIn } from '../scripts/lib/secrets.ts';
import { readAtMost, smallFileProblem } from '../scripts/lib/small-file.ts';
import { webAuthOptionEntries } from '../scripts/lib/web.ts';
import {
  flipThreshold,
  ID_PATTERN,
  MAX_WINDOW_MS,
  RR_SCALE,
  sketchEpsilon,
  SKETCH_BITS_ALLOWED,
  SKETCH_EPOCH_MAX_S,
  SKETCH_EPOCH_MIN_S,
  SKETCH_WINDOW_MIN_MS,
  SOURCE_NAME_PATTERN,
} from '../contract/index.ts';
import { BURST_ADDRESSES_DEFAULT, BURST_ADDRESSES_MAX, BURST_ADDRESSES_MIN } from '../firmware/host/types.ts';

export { ConfigError };

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
  /** The firmware's in-window estimate (firmware/README.md, "The estimate"). */
  estimator: {
    /** Addresses of one scan burst this gateway's Wi-Fi radio hears: the floor's divisor. */
    burst_addresses: number;
  };
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
    /** MQTT protocol: 5 (default; falls back to 4 = 3.1.1 when the broker refuses 5) or 4. */
    version: 4 | 5;
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
  /** Small counts (gateway/privacy.ts): suppression below min_count, optional noise. */
  privacy: {
    min_count: number;
    epsilon?: number;
  };
  /** Corridor group (gateway/corridor.ts): a sketch per window for flows between gateways; off without a group. */
  corridor: {
    group?: string;
    /** File whose first line is the group secret (64 hex digits), mode 0600. */
    secret_file?: string;
    /** Epoch length: the epoch key changes at multiples of it since the Unix epoch. */
    epoch: string;
    /** Bits in a sketch. */
    sketch_bits: number;
    /** Probability that a sketch bit is replaced by a random bit (randomised response); required with a group, no default. */
    sketch_p?: number;
  };
  /** Home Assistant MQTT discovery configs (gateway/homeassistant.ts); off by default. */
  homeassistant: {
    enabled: boolean;
    prefix: string;
  };
  /** /metrics, /healthz and the page at / (gateway/http.ts, gateway/web.ts); off without a port. */
  http: {
    port?: number | null;
    host: string;
    /** Serve the live page at / (default true). */
    page: boolean;
    /** How often the page gets a new picture. */
    update_interval: string;
    /** Unsent bytes a page viewer may have before it is dropped (or bytes unsent at every write for 10 pictures). */
    viewer_buffer: number;
    /** Page viewers at a time. */
    max_viewers: number;
    user?: string;
    password?: string;
    password_file?: string;
    token?: string;
    token_file?: string;
  };
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
    /** pretty (readable lines), json, or auto (pretty on a terminal). */
    format: 'auto' | 'pretty' | 'json';
  };
}

/** Milliseconds of a duration ("60s", "500ms", "1h30m"); a bare number is seconds. Throws on anything else. */
export function parseDuration(text: string | number): number {
  return parseLibDuration(text, { bare: 's' });
}

/** The flip probability the docs and `presence corridor init` / `join` advise: flows within about 15 % per 5-min interval on the simulator, once calibrated. */
export const SKETCH_P_ADVISED = 0.03;

/**
 * What SKETCH_P_ADVISED gives, as measured (README, "Flows between gateways"): within about 15 % only
 * with the aggregator's corridors[].expansion calibrated against a reference count; the matched
 * devices without it (expansion 1, the default) were 10-19 % off.
 */
/**
 * What p = 0.5 gives with the current (weighted) estimator: presence simulate traffic-corridor
 * --evaluate --duration 1h --sketch-p 0.5, seeds 1 and 2: flow error 1586 % and 54 % (expansion
 * calibrated on another seed), 160 % and 71 % matched; travel median 803 % and 666 %.
 */
export const FLOWS_AT_HALF = 'flows off by 50 % to over 1000 %';
export const FLOWS_AT_ADVISED = "flows within about 15 % on the simulator once the aggregator's expansion is calibrated (10-19 % off without)";

/** Shortest gateway.window (ms). */
export const MIN_WINDOW_MS = 1000;

/** Epsilon per sketch and device the firmware really gives for p (quantised to T / 65536), two decimals. */
export function epsilonText(p: number): string {
  return sketchEpsilon(p).toFixed(2);
}

/** What is wrong with a flip probability in (0, 1] once the firmware rounds it to T = round(p * 65536), or undefined. */
export function sketchPRounding(p: number): string | undefined {
  // T = 0: no randomised response at all
  if (flipThreshold(p) === 0) return `must be at least 1 / 131072 (0.0000077): ${p} rounds to T = 0 of 65536, and no bit would be randomised`;
  // T = 65536: every bit a coin flip; no device can be read back, and the aggregator refuses such a sketch (contract: p below 1)
  if (flipThreshold(p) === RR_SCALE)
    return `must be below 1 - 1 / 131072 (0.99999237): ${p} rounds to T = 65536 of 65536, every bit would be a coin flip and no flow could be estimated from the sketches (the aggregator refuses them); 0.5 is already epsilon ${epsilonText(0.5)}`;
  return undefined;
}

/** The problem line of a corridor group without corridor.sketch_p: the choice and its cost in numbers. */
export function sketchPMissing(): string {
  return `corridor.sketch_p: is not set: choose the flip probability (corridor.sketch_p in the config file, or --corridor-sketch-p); ${SKETCH_P_ADVISED} gives ${FLOWS_AT_ADVISED} at epsilon ${epsilonText(SKETCH_P_ADVISED)} per sketch and device (see PRIVACY.md); larger is more private and less accurate (0.5: epsilon ${epsilonText(0.5)}, ${FLOWS_AT_HALF})`;
}

/**
 * The fix for Wi-Fi frames that arrive and are all rejected, for the gateway's warn line and doctor
 * alike: a stale FCS (some drivers flag an FCS they do not update) is the usual cause.
 */
export function rejectedFramesFix(ignoreFcs: boolean): string {
  return ignoreFcs
    ? 'check the adapter and its driver: its frames fail the firmware checks even with gateway.ignore_fcs'
    : 'if the capture carries a stale FCS (some drivers flag an FCS they do not update), set gateway.ignore_fcs: true (--ignore-fcs); else check the adapter and its driver';
}

/** Digits only on the command line: seconds, as the gateway's flags always read them. */

const radio = { enum: ['wifi', 'ble', 'mixed'] } as const;
/** Source names appear in the published status: the contract's pattern. */
const name = { type: 'string', pattern: SOURCE_NAME_PATTERN } as const;
const durationFile = {} as const;
/** A duration whose flag and environment variable always read a bare number as seconds (kept, with a deprecation line). */
const durationFlagSeconds = { bareText: 's' } as const;
const idHint = 'must be lower case letters, digits, "-" or "_" (at most 63, starting with a letter or digit)';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const LOG_FORMATS = ['auto', 'pretty', 'json'];

const sourcesSchema = {
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
          restart_min: { 'x-duration': durationFile, default: '1s' },
          restart_max: { 'x-duration': durationFile, default: '60s' },
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
};

/** Every gateway setting: YAML key, schema, default, flag, environment variable, old names. */
export const GATEWAY_OPTIONS: OptionSpec[] = [
  {
    key: 'gateway.site',
    schema: { type: 'string', pattern: ID_PATTERN },
    hint: idHint,
    required: true,
    flag: '--site <id>',
    example: 'amsterdam-centraal',
    description: 'site id (lower case, digits, - and _)',
  },
  {
    key: 'gateway.zone',
    schema: { type: 'string', pattern: ID_PATTERN },
    hint: idHint,
    required: true,
    flag: '--zone <id>',
    example: 'hall-east',
    description: 'zone id',
  },
  {
    key: 'gateway.id',
    schema: { type: 'string', pattern: ID_PATTERN },
    hint: idHint,
    required: true,
    flag: '--id <id>',
    example: 'gw-01',
    description: 'gateway id',
  },
  {
    key: 'gateway.window',
    duration: durationFlagSeconds,
    default: '60s',
    flag: '--window <duration>',
    flagHelp: 'window length, e.g. 60s or 5m (a bare number, deprecated, is read as seconds)',
    description: 'window length, from 1s to 24h; windows align to multiples of it',
  },
  {
    key: 'gateway.rssi_min_dbm',
    schema: { type: 'integer', minimum: -127, maximum: 20 },
    flag: '--rssi-min <dBm>',
    example: -90,
    description: 'drop frames whose signal is known and below this',
  },
  { key: 'gateway.ignore_fcs', schema: { type: 'boolean' }, default: false, flag: '--ignore-fcs', description: 'count Wi-Fi frames whose FCS check fails' },
  {
    key: 'gateway.clock',
    schema: { enum: ['auto', 'wall', 'capture'] },
    default: 'auto',
    flag: '--clock <clock>',
    description:
      'clock that closes windows: wall, capture, or auto (capture when every source is a file, a named pipe too: give wall for a FIFO that a live capture tool feeds, or its windows close only as frames come)',
  },
  {
    key: 'estimator.burst_addresses',
    schema: { type: 'number', minimum: BURST_ADDRESSES_MIN, maximum: BURST_ADDRESSES_MAX },
    default: BURST_ADDRESSES_DEFAULT,
    flag: '--burst-addresses <n>',
    description:
      "addresses of one phone's scan burst this Wi-Fi radio hears (1 to 64): a 10-s sub-window of the estimate counts at least its new randomised addresses / this. It depends on how the radio listens, which the gateway cannot see, so set it: 7 for three radios fixed on channels 1, 6 and 11 (the real iPhone 11 capture of the lab figures: 7.3 addresses per sub-window); about 2.8 for one radio fixed on channel 6 (2.0 on 1, 3.5 on 11: that capture's sniffers one at a time); about 2.4 for one radio hopping over 1, 6 and 11 at 200 ms (the simulator's model of that phone, no real capture). Too high and a dense crowd is under-counted; too low and a lone phone counts more than once (firmware/README.md, \"The estimate\")",
  },
  {
    key: 'sources',
    schema: sourcesSchema,
    required: true,
    flag: '--source <spec>',
    manualFlag: true,
    example: [
      {
        name: 'wifi',
        type: 'command',
        radio: 'wifi',
        command: 'tcpdump -i wlan0mon -U -w - type mgt subtype probe-req',
        restart_min: '1s',
        restart_max: '60s',
      },
      { name: 'ble', type: 'command', radio: 'ble', command: ['dumpcap', '-q', '-i', 'bluetooth0', '-w', '-'] },
    ],
    flagHelp:
      'capture source, repeatable: pcap:FILE, pcap:- or stdin, cmd:"tcpdump -i wlan0mon -U -w -"; optional NAME= prefix, @wifi/@ble suffix (for cmd: after a space)',
    description:
      'capture sources, see "Sources" below; on the command line (repeatable) pcap:FILE, pcap:- or stdin, cmd:"COMMAND", with an optional NAME= prefix and @wifi/@ble suffix (for cmd: after a space: cmd:"COMMAND @ble")',
  },
  ...mqttOptionEntries({
    'mqtt.url': {
      schema: { type: 'string', pattern: MQTT_URL_PATTERN, format: 'url' },
      required: true,
      old: { flags: ['--mqtt'] },
      description: 'broker URL, mqtt://host:1883 or mqtts://host:8883 (TLS), or ws://, wss://; tcp:// is taken as mqtt://, ssl:// and tls:// as mqtts://',
    },
    'mqtt.username': {
      example: 'amsterdam-centraal/gw-01',
      description: 'broker user name: {site}/{gateway} with the Mosquitto ACL of docs/mosquitto/ (presence provision gateway)',
    },
    'mqtt.password': { old: { env: ['PRESENCE_MQTT_PASSWORD'] } },
    'mqtt.cert': { description: 'client certificate (PEM), with mqtt.key' },
    'mqtt.reject_unauthorized': {
      flagHelp: 'do not check the broker certificate',
      description: 'check the broker certificate (--mqtt-insecure turns it off)',
    },
  }),
  {
    key: 'mqtt.keepalive',
    duration: durationFlagSeconds,
    default: '30s',
    flag: '--mqtt-keepalive <duration>',
    old: { flags: ['--keepalive'] },
    flagHelp:
      'MQTT keepalive, e.g. 30s (a bare number, deprecated, is read as seconds); the broker publishes the last will about 1.5 x this after a silent death',
    description: 'MQTT keepalive; the broker publishes the last will about 1.5 x this after a silent death',
  },
  {
    key: 'mqtt.client_id',
    // Blank or only white space: two instances so configured would take each other's session.
    schema: { type: 'string', pattern: '\\S', maxLength: 128 },
    hint: 'must not be blank: leave it unset for the default (presence-gw-SITE-ID, unique per gateway)',
    defaultText: 'presence-gw-SITE-ID',
    flag: '--mqtt-client-id <id>',
    old: { flags: ['--client-id'] },
    description: 'MQTT client id',
  },
  {
    key: 'mqtt.version',
    schema: { type: 'integer', enum: [4, 5] },
    default: 5,
    flag: '--mqtt-version <4|5>',
    flagHelp:
      'MQTT protocol: 5 (default; a broker refusing it gets 3.1.1) or 4 (3.1.1, where a publish the broker ACL denies is acknowledged as if it went through)',
    description:
      'MQTT protocol: 5 (default), falling back to 3.1.1 when the broker refuses 5; or 4 (MQTT 3.1.1 only). Over 3.1.1 a publish the broker ACL denies is still acknowledged (Mosquitto 2), so denials are invisible to the gateway; MQTT 5 gets reason code 0x87 and keeps the window queued',
  },
  {
    key: 'queue.dir',
    schema: { type: 'string', minLength: 1 },
    path: true,
    defaultText: '$STATE_DIRECTORY or ~/.local/state/presence/gateway-SITE-ID',
    flag: '--queue-dir <dir>',
    description: 'folder of the durable window queue',
  },
  {
    key: 'queue.max_windows',
    schema: { type: 'integer', minimum: 1, maximum: 100_000_000 },
    default: 100_000,
    flag: '--queue-max <n>',
    description: 'most windows kept unacknowledged (1 to 100,000,000); past it the oldest is dropped (logged and counted)',
  },
  {
    key: 'status.interval',
    duration: durationFile,
    default: '60s',
    flag: '--status-interval <duration>',
    description: 'status is republished with every window and at least this often (1s or more)',
  },
  {
    key: 'privacy.min_count',
    schema: { type: 'integer', minimum: 0, maximum: 1_000_000 },
    default: 0,
    flag: '--privacy-min-count <k>',
    description:
      'k: a radio whose devices or estimate is below k is published as zeros (frames too) with suppressed: true; 0 turns it off (gateway/README.md, "Privacy: small counts")',
  },
  {
    key: 'privacy.epsilon',
    // Below 1e-6 the noise dwarfs any count (every published count is 0 or 2^53 - 1), and at the
    // smallest doubles the sampler's rate underflows to 0.
    schema: { type: 'number', minimum: 0.000001, maximum: 100 },
    flag: '--privacy-epsilon <epsilon>',
    description:
      "differential-privacy mode: two-sided geometric noise with this epsilon (0.000001 to 100) on each radio's devices and estimate per window, before min_count; unset: no noise",
  },
  {
    key: 'corridor.group',
    schema: { type: 'string', pattern: ID_PATTERN },
    hint: idHint,
    flag: '--corridor-group <id>',
    example: 'main-street',
    description:
      'corridor group this gateway belongs to: it then publishes a noisy sketch per window for flows and travel times between the gateways of the group (gateway/README.md, "Corridor sketches"); unset: no sketch',
  },
  {
    key: 'corridor.secret_file',
    schema: { type: 'string', minLength: 1 },
    path: true,
    flag: '--corridor-secret-file <file>',
    env: 'CORRIDOR_SECRET_FILE',
    example: '/etc/presence/corridor-main-street.secret',
    description:
      'file (mode 0600) whose first line is the group secret, 64 hex digits, made by presence corridor init and installed by presence corridor join; required with corridor.group',
  },
  {
    key: 'corridor.epoch',
    duration: durationFile,
    default: '1h',
    flag: '--corridor-epoch <duration>',
    description: `epoch of the corridor key: whole seconds from ${SKETCH_EPOCH_MIN_S}s to 7d and a multiple of gateway.window; the same in every gateway of the group`,
  },
  {
    key: 'corridor.sketch_bits',
    schema: { type: 'integer', enum: [...SKETCH_BITS_ALLOWED] },
    default: 8192,
    flag: '--corridor-sketch-bits <m>',
    description: `bits in a sketch (${SKETCH_BITS_ALLOWED.join(', ')}); the same in every gateway of the group`,
  },
  {
    key: 'corridor.sketch_p',
    schema: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    flag: '--corridor-sketch-p <p>',
    example: SKETCH_P_ADVISED,
    description: `probability that each sketch bit is replaced by a random bit (randomised response, quantised to T / 65536); required with corridor.group, no default: the privacy/accuracy trade-off is the operator's choice (PRIVACY.md, "Corridor sketches"). Epsilon per sketch and device = ln((1 - p/2) / (p/2)): ${epsilonText(SKETCH_P_ADVISED)} at ${SKETCH_P_ADVISED} (${FLOWS_AT_ADVISED}), ${epsilonText(0.5)} at 0.5 (more private, ${FLOWS_AT_HALF})`,
  },
  {
    key: 'homeassistant.enabled',
    schema: { type: 'boolean' },
    default: false,
    flag: '--homeassistant',
    description:
      'publish Home Assistant MQTT discovery configs (retained): a sensor per radio for this zone\'s estimate, available while the gateway is online; turned off, the gateway removes the configs it published (listed in queue.dir) at its next connection (gateway/README.md, "Home Assistant")',
  },
  {
    key: 'homeassistant.prefix',
    schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
    hint: "must be one topic level: letters, digits, _ or - (Home Assistant's discovery prefix, default homeassistant)",
    default: 'homeassistant',
    flag: '--homeassistant-prefix <prefix>',
    description: "discovery prefix set in Home Assistant's MQTT integration",
  },
  {
    key: 'http.port',
    schema: { anyOf: [{ type: 'integer', minimum: 0, maximum: 65535 }, { type: 'null' }] },
    hint: 'must be a port number 0..65535, or null (off)',
    flag: '--http-port <port>',
    fromText: (t) => (/^(off|none|false|null)$/i.test(t.trim()) ? null : /^\d+$/.test(t.trim()) ? Number(t) : t),
    description: 'port of /metrics (Prometheus), /healthz and the live page at /; unset or null: no HTTP server',
  },
  {
    key: 'http.host',
    schema: { type: 'string', minLength: 1 },
    default: '127.0.0.1',
    flag: '--http-host <host>',
    description:
      'address of /metrics, /healthz and the page: loopback by default; 0.0.0.0 or :: for every interface. /metrics and /healthz have no authentication; beyond loopback the page needs http.user and http.password, or http.token',
  },
  {
    key: 'http.page',
    schema: { type: 'boolean' },
    default: true,
    flag: '--http-page <on|off>',
    hint: 'must be on or off (true or false in a file)',
    fromText: onOff,
    old: { flags: ['--http-no-page'], flagValues: { '--http-no-page': 'off' } },
    flagHelp: 'serve the live page at /; off serves /metrics and /healthz only',
    description:
      'serve the live page at / (gateway/README.md, "Web page"): frames per second per channel, signal histogram, running counts, last windows, queue, broker, sources, doctor checks',
  },
  {
    key: 'http.update_interval',
    duration: durationFlagSeconds,
    default: '1s',
    flag: '--http-update <duration>',
    flagHelp:
      'how often the page gets a new picture over its event stream, e.g. 1s (a bare number, deprecated, is read as seconds; at least 10ms; a viewer gets at most one write every 50ms, pictures made sooner go together); a source changing state sends one at once',
    description:
      'how often the page gets a new picture over its event stream (at least 10ms; a viewer gets at most one write every 50ms, pictures made sooner go together); a source changing state sends one at once',
  },
  {
    key: 'http.viewer_buffer',
    schema: { type: 'integer', minimum: 16384, maximum: 67108864 },
    default: 262144,
    description:
      "bytes not yet sent that a page viewer may have before it is dropped, in the gateway and in its socket's kernel send queue (a stalled or slow browser; it reconnects by itself); one with bytes unsent in the gateway at every write for 10 pictures is dropped too: the gateway never waits for a viewer",
  },
  {
    key: 'http.max_viewers',
    schema: { type: 'integer', minimum: 1, maximum: 1000 },
    default: 100,
    description: 'page viewers (event streams) at a time; more are answered 503',
  },
  ...webAuthOptionEntries('the page'),
  {
    key: 'log.level',
    schema: { enum: LOG_LEVELS },
    default: 'info',
    flag: '--log-level <level>',
    env: 'LOG_LEVEL',
    description: 'log level of the lines on stderr',
  },
  {
    key: 'log.format',
    schema: { enum: LOG_FORMATS },
    default: 'auto',
    flag: '--log-format <format>',
    env: 'LOG_FORMAT',
    description: 'log lines on stderr: pretty (readable), json (one object a line), auto (pretty on a terminal, else json)',
  },
];

export const configSchema = buildSchema(GATEWAY_OPTIONS, 'presence/gateway-config');

/** The sources of --source texts without NAME=, whose name (file1, cmd1, stdin) the gateway gave. */
const GIVEN_NAME = new WeakSet<object>();

/** The source a --source text names (pcap:FILE, stdin, cmd:...), or null when it names none. */
function sourceSpecOf(text: string, index: number): SourceConfig | null {
  try {
    return parseSourceSpec(text, index);
  } catch {
    return null;
  }
}

/**
 * The same file (or FIFO, or device) or the same command given as two sources: a file's frames would
 * be counted twice in every window (two readers of one FIFO split its frames between them at random),
 * a command's run twice captures the same radio twice. A command is not printed (it may hold a secret).
 */
function sameCaptureTwice(sources: SourceConfig[]): string[] {
  const out: string[] = [];
  const first = new Map<string, number>();
  sources.forEach((s, i) => {
    const keys =
      s.type === 'file'
        ? [`file ${s.path}`, fileIdentity(s.path)]
        : s.type === 'stdin'
          ? [fileIdentity(0)]
          : s.type === 'command'
            ? [`command ${JSON.stringify(typeof s.command === 'string' ? s.command.trim().split(/\s+/) : s.command)}`]
            : [];
    const j = keys.map((k) => (k === null ? undefined : first.get(k))).find((v) => v !== undefined);
    for (const k of keys) if (k !== null && !first.has(k)) first.set(k, i);
    if (j === undefined) return;
    const other = sources[j];
    const named = (c: SourceConfig) => (c.type === 'file' ? c.path : 'stdin');
    out.push(
      `sources[${i}]: the same ${s.type === 'command' ? `command as sources[${j}]` : `file as sources[${j}] (${named(s) === named(other) ? named(s) : `${named(s)} is ${named(other)}`})`}, in the order the sources are given (--source flags or the file's sources): every frame it captures would be counted twice; give it once`,
    );
  });
  return out;
}

/**
 * The file a path (or file descriptor: stdin's 0) names, as device and inode: a symlink (a serial
 * sniffer's /dev/serial/by-id/... for its /dev/ttyACM0), a hard link or /dev/stdin beside stdin is
 * the same file as its target. Null when it cannot be found (it may come later).
 */
function fileIdentity(path: string | number): string | null {
  try {
    const st = typeof path === 'number' ? fstatSync(path) : statSync(path);
    return st.ino ? `inode ${st.dev}:${st.ino}` : null;
  } catch {
    return null;
  }
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
  // A name given twice (a source copied and not renamed) was made unique by adding "-INDEX" to the
  // second, so the status, metrics and log lines named a source nobody configured.
  const named = new Map<string, number>();
  cfg.sources.forEach((s, i) => {
    const name = s && typeof s === 'object' ? (s as { name?: unknown }).name : undefined;
    if (typeof name !== 'string') return;
    // a name the gateway gave (--source without NAME=: file1, cmd1) yields to the user's, below
    if (GIVEN_NAME.has(s as object)) return;
    const first = named.get(name);
    if (first === undefined) named.set(name, i);
    else
      out.push(
        `sources[${i}].name: "${name}" is the name of sources[${first}] too: a source's name keys its state in the status, /metrics and the log, so each needs its own; rename one`,
      );
  });
  cfg.sources.forEach((s, i) => {
    const spec = typeof s === 'string' ? sourceSpecOf(s, i) : null;
    if (spec) {
      // the --source form written into the file: say how the file writes it
      const { name: _n, speed: _s, restart_min: _a, restart_max: _b, ...keys } = spec as SourceConfig & Record<string, unknown>;
      const flow = Object.entries(keys)
        .map(([k, v]) => `${k}: ${/^[\w./-]+$/.test(String(v)) ? v : JSON.stringify(v)}`)
        .join(', ');
      out.push(`sources[${i}]: must be a mapping, not the --source form (got ${JSON.stringify(s)}): in a file write - { ${flow} }`);
    }
    if (!s || typeof s !== 'object') return;
    const t = (s as { type?: unknown }).type;
    if (typeof t !== 'string' || !allowed[t]) return;
    for (const k of Object.keys(s))
      if (!allowed[t].includes(k)) out.push(`sources[${i}]: key "${k}" is not allowed for a ${t} source (allowed: ${allowed[t].join(', ')})`);
    if (t === 'command' && !('command' in s)) out.push(`sources[${i}].command: is required for a command source`);
    if (t === 'command' && 'command' in s) {
      // A blank command ran as nothing, or as a program named "": restarted every second to every
      // minute, with a fix for a program without a name ("give  capture rights").
      const c = (s as { command?: unknown }).command;
      const blank = (v: unknown) => typeof v === 'string' && v.trim() === '';
      if (blank(c) || (Array.isArray(c) && (c.length === 0 || blank(c[0]))))
        out.push(
          `sources[${i}].command: ${Array.isArray(c) ? (c.length === 0 ? 'is an empty list' : 'has no program as its first item') : 'is empty'}: give the capture command that writes pcap or pcapng to stdout, as a line (tcpdump -i wlan0mon -U -w -) or a list whose first item is the program ([dumpcap, -q, -i, bluetooth0, -w, "-"])`,
        );
    }
    if (t === 'file' && !('path' in s)) out.push(`sources[${i}].path: is required for a file source`);
    if (t === 'command') {
      // The backoff doubles from restart_min up to restart_max: a minimum above the maximum was
      // silently raised to be the maximum too.
      const { restart_min: lo = '1s', restart_max: hi = '60s' } = s as { restart_min?: unknown; restart_max?: unknown };
      // (a value the schema refuses, a bare number among them, is said there only: NaN compares false)
      if (durationMs(lo) > durationMs(hi))
        out.push(
          `sources[${i}]: restart_min (${lo}) is longer than restart_max (${hi}): a failed command is restarted after restart_min, then twice as long each time up to restart_max; make restart_max at least restart_min`,
        );
    }
    const speed = (s as { speed?: unknown }).speed;
    if (t === 'file' && speed !== undefined && speed !== 'max' && !(typeof speed === 'number' && speed > 0))
      out.push(`sources[${i}].speed (--speed): must be a number above 0 or "max" (got ${typeof speed === 'number' ? speed : JSON.stringify(speed)})`); // (.nan: JSON says null)
  });
  return out;
}

/** Command-line flags as commander hands them over (all optional). */
export interface GatewayFlags {
  config?: string;
  site?: string;
  zone?: string;
  id?: string;
  window?: string;
  rssiMin?: string;
  burstAddresses?: string;
  ignoreFcs?: boolean;
  clock?: string;
  source?: string[];
  speed?: string;
  mqttUrl?: string;
  /** @deprecated the old name of mqttUrl (--mqtt) */
  mqtt?: string;
  mqttUsername?: string;
  mqttPassword?: string;
  mqttPasswordFile?: string;
  mqttCa?: string;
  mqttCert?: string;
  mqttKey?: string;
  mqttInsecure?: boolean;
  mqttKeepalive?: string;
  /** @deprecated the old name of mqttKeepalive (--keepalive) */
  keepalive?: string;
  mqttClientId?: string;
  mqttVersion?: string;
  /** @deprecated the old name of mqttClientId (--client-id) */
  clientId?: string;
  queueDir?: string;
  queueMax?: string;
  statusInterval?: string;
  privacyMinCount?: string;
  privacyEpsilon?: string;
  corridorGroup?: string;
  corridorSecretFile?: string;
  corridorEpoch?: string;
  corridorSketchBits?: string;
  corridorSketchP?: string;
  homeassistant?: boolean;
  homeassistantPrefix?: string;
  httpPort?: string;
  httpHost?: string;
  httpPage?: string;
  /** @deprecated the old form of httpPage 'off' (--http-no-page) */
  httpNoPage?: boolean;
  httpUpdate?: string;
  httpUser?: string;
  httpPasswordFile?: string;
  httpTokenFile?: string;
  logLevel?: string;
  logFormat?: string;
}

/** `pcap:FILE`, `file:FILE`, `pcap:-`, `stdin`, `cmd:COMMAND LINE`; optional `NAME=` prefix and `@wifi|@ble` suffix (after white space for a command). */
export function parseSourceSpec(spec: string, index: number, speed?: Speed): SourceConfig {
  let rest = spec.trim();
  let name: string | undefined;
  let radio: Radio | undefined;
  const named = /^([A-Za-z][\w-]{0,63})=(.+)$/.exec(rest);
  if (named && !/^(pcap|file|cmd|command):/.test(rest)) {
    name = named[1];
    rest = named[2];
  }
  // A command's radio tag comes after white space (`cmd:tcpdump -i hci0 -w - @ble`): a command line
  // may end in `...@host`-like text of its own, which is passed on as it is.
  const command = /^(?:cmd|command):/.test(rest);
  const tagged = (command ? /^(.*\S)\s+@(wifi|ble|mixed)$/ : /^(.*)@(wifi|ble|mixed)$/).exec(rest);
  if (tagged) {
    rest = tagged[1];
    radio = tagged[2] as Radio;
  }
  const base = (n: string) => ({ name: name ?? n, ...(radio ? { radio } : {}) });
  const made = <T extends SourceConfig>(source: T): T => {
    if (name === undefined) GIVEN_NAME.add(source);
    return source;
  };
  if (rest === 'stdin' || rest === '-' || rest === 'pcap:-' || rest === 'file:-') return made({ type: 'stdin', ...base('stdin') });
  const file = /^(?:pcap|file):(.+)$/.exec(rest);
  // (no speed given: loadConfig sets it, 1 for a file, max for a FIFO or a device)
  // A URL with credentials given as a file (a broker URL pasted into --source): named without them, as
  // everywhere; as a path it was printed whole, password and all ('... does not exist').
  if (file && holdsUrlCredentials(file[1]))
    throw new ConfigError(
      [
        `--source "${redactUrlsIn(spec)}": a URL, not a capture file; a source is pcap:FILE, pcap:- (stdin), stdin or cmd:COMMAND (the broker's URL goes in --mqtt-url)`,
      ],
      'flags',
    );
  if (file) return made({ type: 'file', ...base(`file${index}`), path: file[1], ...(speed !== undefined ? { speed } : {}) } as SourceConfig);
  const cmd = /^(?:cmd|command):(.+)$/.exec(rest);
  if (cmd) return made({ type: 'command', ...base(`cmd${index}`), command: cmd[1], restart_min: '1s', restart_max: '60s' } as SourceConfig);
  throw new ConfigError([`--source "${redactUrlsIn(spec)}": must be pcap:FILE, pcap:- (stdin), stdin or cmd:COMMAND`], 'flags');
}

export function parseSpeed(text: string): Speed {
  if (text === 'max') return 'max';
  const n = decimal(text.replace(/x$/, ''));
  if (!Number.isFinite(n) || n <= 0)
    throw new ConfigError([`--speed "${text}": must be a number above 0 (1 = real time, 10 = ten times faster) or max`], 'flags');
  return n;
}

/**
 * Builds a validated config: defaults < file (--config) < environment < flags. Throws ConfigError
 * with one line per problem, naming the key and the flag or variable that set it.
 */
export function loadConfig(flags: GatewayFlags, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return loadConfigWithSources(flags, env).config;
}

/** loadConfig, and where each setting came from (the flag, variable, config file or default), to name it in a line about its value at run time. */
export function loadConfigWithSources(flags: GatewayFlags, env: NodeJS.ProcessEnv = process.env): { config: GatewayConfig; sources: SettingSources } {
  // As the aggregator has PRESENCE_AGGREGATOR_CONFIG: a service sets the file in its environment.
  // --config "" (a variable that was not set, in a script or unit) was taken for no file: the
  // settings of the file meant were left out without a word, and the defaults used instead.
  if (flags.config === '') throw new ConfigError(['--config is empty: give the path of the YAML or JSON config file, or leave --config out'], 'flags');
  const file = flags.config || env.PRESENCE_GATEWAY_CONFIG || undefined;
  const where = file ?? 'configuration (from flags)';
  const raw: Record<string, unknown> = file ? readConfigFile(file) : {};
  if (file) {
    // One file may hold every component's section (aggregator/README.md, "Configuration"): the
    // aggregator's is not the gateway's to check.
    delete raw.aggregator;
    renameOldKeys(raw, GATEWAY_OPTIONS, file);
    // Paths in a config file are relative to the file.
    resolvePaths(raw, GATEWAY_OPTIONS, file);
    if (Array.isArray(raw.sources))
      for (const s of raw.sources as Array<Record<string, unknown>>)
        if (s && s.type === 'file' && typeof s.path === 'string') s.path = resolve(file, '..', s.path);
  }
  const origins: Origins = new Map();
  applyEnv(raw, GATEWAY_OPTIONS, env, origins);
  applyFlags(raw, GATEWAY_OPTIONS, flags as Record<string, unknown>, origins);
  bareDurations(raw, GATEWAY_OPTIONS, origins, file);
  const speed = flags.speed !== undefined ? parseSpeed(flags.speed) : undefined;
  if (flags.source?.length) {
    raw.sources = flags.source.map((s, i) => parseSourceSpec(s, i, speed));
    origins.set('sources', '--source');
  } else if (speed !== undefined && Array.isArray(raw.sources))
    for (const s of raw.sources as Array<Record<string, unknown>>) if (s && s.type === 'file') s.speed = speed;

  const sources = new SettingSources(GATEWAY_OPTIONS, raw, origins, file);
  ensureSections(raw, GATEWAY_OPTIONS);
  const fail = (problems: string[]) => new ConfigError(problems, where);
  // Compiled per call, not kept: the gateway loads its config once, and the validator and ajv itself
  // are then garbage (createAjv), which keeps the idle gateway's heap small.
  const validate = createAjv().compile(configSchema);
  const rawSources = Array.isArray(raw.sources) ? (raw.sources as unknown[]) : [];
  const specText = (i: number) => typeof rawSources[i] === 'string' && sourceSpecOf(rawSources[i] as string, i) !== null;
  if (!validate(raw)) {
    // oneOf over source kinds reports every branch; sourceErrors() says it per source instead.
    const fromSources = sourceErrors(raw);
    const errors = (validate.errors ?? []).filter(
      (e) =>
        !(
          // a blank command: said by sourceErrors, not also as "must be text"
          fromSources.some((p) => p.startsWith(`sources[${e.instancePath.split('/')[2]}].command: `)) ||
          (/^\/sources\/\d+(\/type)?$/.test(e.instancePath) && ['additionalProperties', 'const', 'required', 'oneOf'].includes(e.keyword)) ||
          // a --source text as an entry: said by sourceErrors with the mapping to write
          (/^\/sources\/\d+$/.test(e.instancePath) && specText(Number(e.instancePath.split('/')[2]))) ||
          /^\/sources\/\d+\/speed$/.test(e.instancePath)
        ),
    );
    // The limits of the durations that did parse are said too: fixing the lines above must not
    // reveal another problem that was there all along (a keepalive past MQTT's limit).
    const problems = [
      ...fromSources,
      ...describeErrors(errors, { specs: GATEWAY_OPTIONS, schema: configSchema, data: raw, origins }),
      ...durationLimits(raw as unknown as GatewayConfig, origins),
    ];
    throw fail(problems.length ? problems : ['sources: each entry needs a type (command, file or stdin) and its keys']);
  }
  const cfg = raw as unknown as GatewayConfig;
  const extra = sourceErrors(cfg);
  if (extra.length) throw fail(extra);
  // (ajv ignores defaults inside oneOf, so the per-kind defaults are set here.)
  for (const s of cfg.sources) {
    if (s.type === 'file') {
      s.path = resolve(s.path);
      // A FIFO or a device is read as it comes: its writer sets the pace. Paced at 1 as a file, a
      // writer faster than real time (presence simulate --live --speed 60 --fifo) stalled on the full
      // FIFO while the gateway waited out the frames' capture times. A speed given is kept.
      s.speed ??= writtenAsItComes(s.path) ? 'max' : 1;
    }
    if (s.type === 'command') {
      s.restart_min ??= '1s';
      s.restart_max ??= '60s';
    }
  }
  // Paths from flags or the environment are relative to the working folder.
  for (const spec of GATEWAY_OPTIONS) {
    if (!spec.path) continue;
    const [sec, k] = spec.key.split('.') as [keyof GatewayConfig, string];
    const section = cfg[sec] as unknown as Record<string, unknown>;
    if (typeof section[k] === 'string') section[k] = resolve(section[k] as string);
  }
  // Names must be unique: they key the status per source. A name the user gave is kept (sourceErrors
  // refused two alike); one the gateway gives (TYPE+INDEX, or --source's file1, cmd1, stdin) yields
  // to it, wherever the two stand.
  const userNamed = (s: SourceConfig) => typeof s.name === 'string' && s.name !== '' && !GIVEN_NAME.has(s);
  const seen = new Set(cfg.sources.filter(userNamed).map((s) => s.name as string));
  cfg.sources.forEach((s, i) => {
    if (userNamed(s)) return;
    const base = s.name || `${s.type}${i}`;
    let name = base;
    for (let n = 1; seen.has(name); n++) name = n === 1 ? `${base}-${i}` : `${base}-${i}-${n}`;
    s.name = name;
    seen.add(name);
  });
  cfg.mqtt.url = canonicalMqttUrl(cfg.mqtt.url);
  const mismatch = usernameMismatch(cfg);
  if (mismatch) throw fail([mismatch]);
  const noUser = passwordWithoutUsername(cfg.mqtt);
  if (noUser) throw fail([noUser]);
  if ((cfg.mqtt.cert && !cfg.mqtt.key) || (!cfg.mqtt.cert && cfg.mqtt.key))
    throw fail(['mqtt.cert and mqtt.key: give both (client certificate and its key) or neither']);
  if (cfg.sources.filter((s) => s.type === 'stdin').length > 1) throw fail(['sources: at most one stdin source']);
  const twice = sameCaptureTwice(cfg.sources);
  if (twice.length) throw fail(twice);
  const page = pageCredentialProblem(cfg.http, origins);
  if (page) throw Object.assign(fail([page]), { hint: PAGE_CREDENTIALS_HINT });
  const corridor = corridorProblems(cfg, origins);
  if (corridor.length) throw Object.assign(fail(corridor), corridor.some((c) => c.includes('secret_file')) ? { hint: CORRIDOR_HINT } : {});
  const limits = durationLimits(cfg, origins);
  if (limits.length) throw fail(limits);
  return { config: cfg, sources };
}

/**
 * Durations past what a timer (24d) or MQTT's keepalive (18h12m15s) can hold. Also run on a
 * configuration the schema refused: a value that is no duration (said by the schema) counts as 0.
 */
function durationLimits(cfg: GatewayConfig, origins: Origins): string[] {
  // Named as the schema's messages name a key: "--flag (key)" when a flag or variable set it.
  const at = (key: string) => (origins.has(key) ? `${origins.get(key)} (${key})` : key);
  // Read as the schema reads them, with their unit: a bare number left after the flags' deprecated
  // seconds were given theirs is refused there ("write it with its unit"), so it is 0 here, not also
  // "must be at least 1s" in a second line for the same value.
  const ms = (v: unknown) => {
    const n = durationMs(v);
    return Number.isNaN(n) ? 0 : n;
  };
  const sources = Array.isArray(cfg.sources) ? cfg.sources : [];
  // the counts message holds a window of at most MAX_WINDOW_MS: a longer one would be counted, under
  // one key, for all of its length and then dropped as outside the contract
  const windowMs = ms(cfg.gateway?.window);
  const windowText = typeof cfg.gateway?.window === 'string' ? cfg.gateway.window : formatDuration(windowMs);
  // and of at least a second: a window of milliseconds says, at a quiet place, when each device was
  // heard to within it (a window of 1 or 2 devices is then one frame's time), and closes (a queue
  // file, a message, a database point) up to 1,000 times a second
  const window =
    windowMs > MAX_WINDOW_MS
      ? [`${at('gateway.window')}: must be at most 24h, the longest window a counts message holds (got ${windowText}); use 24h or less`]
      : windowMs > 0 && windowMs < MIN_WINDOW_MS
        ? [
            `${at('gateway.window')}: must be at least 1s (got ${windowText}): a shorter window's counts say when a device was heard to within it, and it closes (a queue file, a message, a stored point) up to 1,000 times a second; use 1s or more`,
          ]
        : [];
  // A status carries each source's frame total: republished every few ms it says when single frames
  // were heard, as a short window's counts would (1ms: some 830 retained statuses and stored points a second)
  const statusText = cfg.status?.interval;
  const statusMs = ms(statusText);
  const statusFloor =
    statusMs > 0 && statusMs < MIN_WINDOW_MS
      ? [
          `${at('status.interval')}: must be at least 1s (got ${typeof statusText === 'string' ? statusText : formatDuration(statusMs)}): a status carries each source's frame total, so a shorter interval says when single frames were heard, and it is published (retained) and stored that often; use 1s or more`,
        ]
      : [];
  // the page's pictures come at most every 10 ms: a shorter interval is refused, not raised unsaid
  const update = cfg.http?.update_interval;
  const updateMs = ms(update);
  const pageUpdate =
    updateMs > 0 && updateMs < 10
      ? [
          `${at('http.update_interval')}: must be at least 10ms, the shortest interval of the page's pictures (got ${typeof update === 'string' ? update : formatDuration(updateMs)}); use 10ms or more`,
        ]
      : [];
  return [
    ...pageUpdate,
    ...statusFloor,
    ...durationLimitProblems(
      [
        // (not gateway.window: past 24h it is said below, so past 24d too, in one line)
        [at('status.interval'), ms(cfg.status?.interval)],
        [at('http.update_interval'), ms(cfg.http?.update_interval ?? '1s')],
        ...sources.flatMap(
          (s, i): Array<[string, number]> =>
            s && typeof s === 'object' && s.type === 'command'
              ? [
                  [`sources[${i}].restart_min`, ms(s.restart_min)],
                  [`sources[${i}].restart_max`, ms(s.restart_max)],
                ]
              : [],
        ),
      ],
      [at('mqtt.keepalive'), ms(cfg.mqtt?.keepalive) / 1000],
    ),
    ...window,
  ];
}

/** The hint printed after a half-given basic auth of the page. */
export const PAGE_CREDENTIALS_HINT =
  'the page takes http.user with http.password (or PRESENCE_HTTP_PASSWORD[_FILE]), or http.token (PRESENCE_HTTP_TOKEN[_FILE]); gateway/README.md, "Web page"';

/**
 * The page's basic auth needs both halves, whether or not http.port serves it now: said when the
 * configuration is loaded (the gateway and doctor, naming the file), as the aggregator does, not
 * only once --http-port starts the page (scripts/lib/web.ts webAccess checks it again there).
 */
function pageCredentialProblem(http: GatewayConfig['http'] | undefined, origins: Origins): string | null {
  const password = http?.password !== undefined ? 'http.password' : http?.password_file !== undefined ? 'http.password_file' : null;
  if (http?.user !== undefined && !password)
    return `${named('http.user', origins)}: is set without http.password (or http.password_file, PRESENCE_HTTP_PASSWORD); give both, or http.token`;
  if (password && http?.user === undefined) return `${named(password, origins)}: is set without http.user (--http-user); give both, or http.token`;
  return null;
}

/** The hint printed after a corridor problem. */
export const CORRIDOR_HINT =
  'presence corridor init --group GROUP --out FILE makes a group secret; presence corridor join --config FILE --group GROUP --secret-file COPY installs it (gateway/README.md, "Corridor sketches")';

/** Where a corridor key was set, for messages: the flag or variable, else the key. */
function named(key: string, origins: Origins): string {
  const o = origins.get(key);
  return o ? `${key} (${o})` : key;
}

/** The corridor section's rules beyond the schema: a group needs a secret file; the epoch fits the windows. */
function corridorProblems(cfg: GatewayConfig, origins: Origins): string[] {
  const c = cfg.corridor;
  const out: string[] = [];
  if (!c) return out;
  if (c.group === undefined) {
    if (c.secret_file !== undefined)
      out.push(`${named('corridor.secret_file', origins)}: is set but corridor.group is not: name the group (--corridor-group) or remove it`);
    return out;
  }
  if (c.secret_file === undefined) {
    out.push(
      `corridor.secret_file: is required with corridor.group "${c.group}": the file holding the group secret (--corridor-secret-file, CORRIDOR_SECRET_FILE)`,
    );
  }
  const windowMs = parseDuration(cfg.gateway.window);
  const epochMs = parseDuration(c.epoch);
  if (epochMs % 1000 !== 0 || epochMs < SKETCH_EPOCH_MIN_S * 1000 || epochMs > SKETCH_EPOCH_MAX_S * 1000 || epochMs % windowMs !== 0) {
    out.push(
      `${named('corridor.epoch', origins)}: must be whole seconds from ${SKETCH_EPOCH_MIN_S}s to 7d and a multiple of gateway.window (${cfg.gateway.window}), got ${c.epoch}`,
    );
  }
  if (windowMs < SKETCH_WINDOW_MIN_MS)
    out.push(
      `${named('corridor.group', origins)}: needs gateway.window of at least ${SKETCH_WINDOW_MIN_MS / 1000}s (got ${cfg.gateway.window}): an aggregator takes no shorter window for a corridor group`,
    );
  if (c.sketch_p === undefined) out.push(sketchPMissing());
  if (typeof c.sketch_p === 'number' && c.sketch_p > 0 && c.sketch_p <= 1) {
    const problem = sketchPRounding(c.sketch_p);
    if (problem) out.push(`${named('corridor.sketch_p', origins)}: ${problem}`);
  }
  return out;
}

/**
 * The shipped broker ACL (docs/mosquitto/presence.acl) lets the user name "{site}/{gateway}" publish
 * to that site's and gateway's topics only. A user name of that form that is not this gateway's own
 * means every publish is denied (and, over MQTT 3.1.1, silently): refused at start.
 */
export function usernameMismatch(cfg: GatewayConfig): string | null {
  const user = cfg.mqtt.username;
  if (user === undefined || !/^[^/]+\/[^/]+$/.test(user)) return null;
  const own = `${cfg.gateway.site}/${cfg.gateway.id}`;
  if (user === own) return null;
  return `mqtt.username: "${user}" is a {site}/{gateway} user name but this gateway is ${own} (gateway.site/gateway.id, --site/--id): the broker ACL of docs/mosquitto/ would deny all its publishes. Fix --site/--id to match the credential (presence provision gateway), or use the credential provisioned for ${own}`;
}

/** True when `path` is a FIFO or a character device (a capture written into it as it happens). */
function writtenAsItComes(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFIFO() || st.isCharacterDevice();
  } catch {
    return false; // a missing file is named by sourceFileProblems
  }
}

/** File sources whose file is missing or unreadable: one problem each, naming the file. */
export function sourceFileProblems(cfg: GatewayConfig, flags?: string[]): string[] {
  const out: string[] = [];
  cfg.sources.forEach((s, i) => {
    if (s.type !== 'file') return;
    const where = flags?.[i] !== undefined ? `--source ${flags[i]}` : `sources[${i}] (${s.name})`;
    try {
      // A FIFO (or a character device) is read as it comes (gateway/README.md, "Host cost"): a capture
      // tool writing into a FIFO is a file source too. A folder, a socket or a block device is not.
      const st = statSync(s.path);
      if (st.isDirectory()) out.push(`${where}: ${s.path} is a folder, not a capture file`);
      else if (!st.isFile() && !st.isFIFO() && !st.isCharacterDevice())
        out.push(`${where}: ${s.path} is not a capture file (nor a FIFO a capture is written into)`);
      else accessSync(s.path, constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      out.push(
        `${where}: ${s.path} ${code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read: ${(e as Error).message}`}`,
      );
    }
  });
  return out;
}

/**
 * The files the gateway checks before anything starts (capture files, TLS files), each problem naming
 * where its path came from: its flag, else the config file (where relative paths start from the
 * file's folder). A ConfigError with the hint saying so, or null. `presence gateway` stops on it
 * (exit 2) and `presence doctor` fails its configuration line with it.
 */
export function startFileError(cfg: GatewayConfig, flags: GatewayFlags, env: NodeJS.ProcessEnv = process.env): ConfigError | null {
  const file = flags.config || env.PRESENCE_GATEWAY_CONFIG || undefined;
  const password = passwordFileProblem(cfg, flags, env, file);
  const missing = [
    ...sourceFileProblems(cfg, flags.source).map((p) => (flags.source?.length || !file ? p : `${file}: ${p}`)),
    ...tlsFileProblemsIn(cfg.mqtt, flags, file),
    ...(password ? [password] : []),
  ];
  return missing.length ? new ConfigError(missing, 'flags', fileProblemsHint(missing)) : null;
}

/**
 * mqtt.password_file (when no mqtt.password is given), checked with the other files before anything
 * starts: read at the first connect, a file missing or not readable by the user the gateway runs as
 * (a root-owned 0600 copy on a gateway whose service runs as presence) stopped it after its start
 * line with exit code 1 and no fix. One line naming where the path came from, what is wrong and,
 * for a file this user may not read, the chown that lets it.
 */
function passwordFileProblem(cfg: GatewayConfig, flags: GatewayFlags, env: NodeJS.ProcessEnv, file: string | undefined): string | null {
  const path = cfg.mqtt.password_file;
  if (path === undefined || cfg.mqtt.password !== undefined) return null;
  const label =
    flags.mqttPasswordFile !== undefined
      ? '--mqtt-password-file (mqtt.password_file)'
      : env.MQTT_PASSWORD_FILE !== undefined
        ? 'MQTT_PASSWORD_FILE (mqtt.password_file)'
        : `${file ? `${file}: ` : ''}mqtt.password_file`;
  const where = `${label}: ${path}`;
  // The name as given on the command line or in the variable: without a / it may be the password.
  // (A config file's is resolved against the file's folder by now, and shown.)
  const given = flags.mqttPasswordFile ?? env.MQTT_PASSWORD_FILE ?? path;
  try {
    const problem = smallFileProblem(path, MAX_SECRET_BYTES);
    if (problem) return `${where} ${problem}`;
    accessSync(path, constants.R_OK);
    const bytes = readAtMost(path, MAX_SECRET_BYTES);
    if (!bytes) return `${where} holds more than ${MAX_SECRET_BYTES / 1024} KiB; a secret file is at most ${MAX_SECRET_BYTES / 1024} KiB`;
    const text = bytes.toString('utf8');
    if (text.split(/\r?\n/)[0] === '') return `${where} ${text.trim() === '' ? 'is empty' : 'has an empty first line'}: the password is the file's first line`;
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return missingSecretFile(label, given, path);
    if (code === 'EACCES') {
      const user = currentUser();
      return `${where} cannot be read by ${user}, who runs the gateway (permission denied): chown ${user} ${path} && chmod 600 ${path}`;
    }
    return `${where} cannot be read (${code ?? (e as Error).message})`;
  }
}

/** Where the durable queue lives when the config names no folder. */
export function defaultQueueDir(cfg: GatewayConfig, env: NodeJS.ProcessEnv = process.env): string {
  if (cfg.queue.dir) return cfg.queue.dir;
  // The systemd unit's StateDirectory is this gateway's own folder (/var/lib/presence-gateway, as
  // the unit, the field guide and doctor name it): used as it is. Started from a shell, one folder
  // per gateway under the user's state home.
  const unit = env.STATE_DIRECTORY?.split(':')[0];
  if (unit) {
    // Earlier versions kept the queue one level down (gateway-SITE-ID): an upgraded gateway goes on
    // with that folder, so the windows it left unacknowledged are sent and seq goes on.
    const earlier = join(unit, `gateway-${cfg.gateway.site}-${cfg.gateway.id}`);
    return existsSync(earlier) ? earlier : unit;
  }
  return join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'presence', `gateway-${cfg.gateway.site}-${cfg.gateway.id}`);
}

/** Window length, keepalive etc. in milliseconds. */
export function durations(cfg: GatewayConfig): { windowMs: number; keepaliveS: number; statusMs: number } {
  return {
    windowMs: parseDuration(cfg.gateway.window),
    keepaliveS: Math.max(1, Math.round(parseDuration(cfg.mqtt.keepalive) / 1000)),
    statusMs: parseDuration(cfg.status.interval),
  };
}

/** The page's update interval in milliseconds (at least 10). */
export function pageIntervalMs(cfg: GatewayConfig): number {
  return Math.max(10, parseDuration(cfg.http.update_interval ?? '1s'));
}

/** The clock that closes windows: capture time when every source is a file, else wall time. */
export function clockOf(cfg: GatewayConfig): 'wall' | 'capture' {
  if (cfg.gateway.clock !== 'auto') return cfg.gateway.clock;
  return cfg.sources.every((s) => s.type === 'file') ? 'capture' : 'wall';
}
