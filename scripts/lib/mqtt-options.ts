/**
 * The broker connection settings (mqtt.url ... mqtt.reject_unauthorized) shared by the gateway and
 * the aggregator option tables. What differs per component (URL pattern, defaults, old names,
 * examples, descriptions) is passed in as explicit overrides.
 */
import { accessSync, constants } from 'node:fs';
import type { OptionSpec } from './config-loader.ts';
import { smallFileProblem } from './small-file.ts';

/** The keys mqttOptionEntries returns, in table order. */
export type MqttOptionKey =
  | 'mqtt.url'
  | 'mqtt.username'
  | 'mqtt.password'
  | 'mqtt.password_file'
  | 'mqtt.ca'
  | 'mqtt.cert'
  | 'mqtt.key'
  | 'mqtt.reject_unauthorized';

/**
 * The broker URL schemes every command takes (the gateway, doctor, the aggregator, simulate --load):
 * MQTT.js's own. tcp:// is mqtt:// under another name (Paho's and many brokers' examples write it),
 * ssl:// and tls:// are mqtts://; ws:// and wss:// are MQTT over WebSocket.
 */
export const MQTT_URL_PATTERN = '^(mqtts?|tcp|ssl|tls|wss?)://[^/\\s]';
/**
 * A broker URL as MQTT.js takes it also with TLS options: tcp:// becomes mqtt://, ssl:// and
 * tls:// mqtts:// (with a client certificate MQTT.js knows only mqtt(s) and ws(s) and threw
 * "Unknown protocol for secure connection" at the aggregator's start). The config loaders apply it.
 */
export function canonicalMqttUrl(url: string): string {
  return url.replace(/^tcp:/i, 'mqtt:').replace(/^(?:ssl|tls):/i, 'mqtts:');
}

/** What a broker URL must be, for the line that refuses one. */
export const MQTT_URL_HINT =
  'must be a URL like mqtt://host:1883 or mqtts://host:8883 (TLS), or ws://, wss:// (WebSocket); tcp:// is taken as mqtt://, ssl:// and tls:// as mqtts://';

/** What to do when the broker refuses the user name or password (gateway, aggregator, doctor). */
export const CREDENTIALS_FIX =
  'check mqtt.username and mqtt.password (or mqtt.password_file, MQTT_PASSWORD, MQTT_PASSWORD_FILE) against the broker password file';

/**
 * What to do about an error of the connection to the broker (mqtt.js's message, and the broker URL
 * where its scheme tells more): the same fix in `presence doctor`'s broker line, the gateway's log
 * line and the aggregator's. `accepted`: the error came on a connection the broker had accepted.
 */
export function brokerErrorFix(message: string, url?: string, accepted = false): string {
  const tls = url !== undefined && /^(mqtts|ssl|tls|wss):/i.test(url);
  // A reset of a connection the broker had accepted (CONNACK) is no port mistake, whatever the scheme.
  if (accepted && /ECONNRESET|EPIPE|ETIMEDOUT/.test(message))
    return 'the broker had accepted this connection when it was cut (a broker restart, a firewall or NAT dropping it, the network): it reconnects by itself; if it keeps happening, check the network path to the broker and its log';
  // mqtts:// to a port without TLS: the broker reads the TLS handshake as a broken MQTT packet and
  // drops the connection (read ECONNRESET, the same words as a reset of an accepted connection).
  if (tls && /ECONNRESET|wrong version number|packet length too long|socket disconnected before secure/i.test(message))
    return "the port does not answer TLS: mqtts:// needs the broker's TLS listener (8883 in docs/mosquitto/presence.conf); use mqtt:// for a plain one (1883)";
  // mqtt.js could not read the answer as MQTT: an HTTP server, or another service, on that port.
  if (/Invalid header flag bits|Invalid protocolId|Invalid retain flag|Packet too short|Invalid length|cmd is not|Unknown (packet )?type/i.test(message))
    return `what answers there does not speak MQTT (an HTTP server, another service, or a TLS listener${tls ? '' : ', which needs mqtts://'}): fix the host and port in mqtt.url`;
  // The broker's TLS alert about this client's certificate (require_certificate): none sent, or one
  // it does not trust; not the broker's own certificate.
  if (/alert (certificate required|bad certificate|unknown ca|certificate unknown|certificate expired|certificate revoked)/i.test(message))
    return "the broker refuses this client's certificate (it requires one: require_certificate): set mqtt.cert and mqtt.key (--mqtt-cert, --mqtt-key) to a client certificate and key signed by the CA of the broker's cafile, and not expired";
  return /not authori[sz]ed|bad user ?name or password/i.test(message)
    ? CREDENTIALS_FIX
    : /certificate|self.signed|CERT|SSL|TLS/i.test(message)
      ? 'check mqtt.ca is the CA that signed the broker certificate and the URL host matches the certificate name'
      : /ECONNREFUSED/.test(message)
        ? 'nothing listens there: start the broker, or fix the port in mqtt.url'
        : /ENOTFOUND|EAI_AGAIN/.test(message)
          ? `the broker's host name does not resolve${/EAI_AGAIN/.test(message) ? ' (no DNS answer: is the uplink up?)' : ''}: check the name in mqtt.url and this machine's DNS (getent hosts ${/(?:ENOTFOUND|EAI_AGAIN) (\S+)/.exec(message)?.[1] ?? 'HOST'})`
          : 'check mqtt.url, that the broker is running, and the TLS settings (mqtt.ca)';
}

type Base = Omit<OptionSpec, 'description'> & { description?: string };
type Override = Partial<Omit<OptionSpec, 'key'>>;

const BASE: Record<MqttOptionKey, Base> = {
  'mqtt.url': {
    key: 'mqtt.url',
    hint: MQTT_URL_HINT,
    flag: '--mqtt-url <url>',
    env: 'MQTT_URL',
    example: 'mqtts://broker.example.net:8883',
  },
  'mqtt.username': {
    key: 'mqtt.username',
    schema: { type: 'string' },
    flag: '--mqtt-username <name>',
    env: 'MQTT_USERNAME',
  },
  'mqtt.password': {
    key: 'mqtt.password',
    schema: { type: 'string' },
    secret: true,
    flag: '--mqtt-password <password>',
    env: 'MQTT_PASSWORD',
    description: 'broker password (with mqtt.username); prefer MQTT_PASSWORD or a password file to a flag',
  },
  'mqtt.password_file': {
    key: 'mqtt.password_file',
    schema: { type: 'string' },
    path: true,
    flag: '--mqtt-password-file <file>',
    env: 'MQTT_PASSWORD_FILE',
    example: '/etc/presence/mqtt-password',
    description: 'file whose first line is the broker password (with mqtt.username)',
  },
  'mqtt.ca': {
    key: 'mqtt.ca',
    schema: { type: 'string' },
    path: true,
    flag: '--mqtt-ca <file>',
    example: '/etc/presence/ca.pem',
    description: 'CA certificate (PEM) that signed the broker certificate',
  },
  'mqtt.cert': {
    key: 'mqtt.cert',
    schema: { type: 'string' },
    path: true,
    flag: '--mqtt-cert <file>',
  },
  'mqtt.key': {
    key: 'mqtt.key',
    schema: { type: 'string' },
    path: true,
    flag: '--mqtt-key <file>',
    description: 'key (PEM) of the client certificate',
  },
  'mqtt.reject_unauthorized': {
    key: 'mqtt.reject_unauthorized',
    schema: { type: 'boolean' },
    default: true,
    flag: '--mqtt-insecure',
    flagValue: false,
  },
};

/**
 * The shared MQTT option entries, each merged with its override. Entries without a shared
 * description (mqtt.url, mqtt.username, mqtt.cert, mqtt.reject_unauthorized) need one in the overrides.
 */
export function mqttOptionEntries(overrides: Partial<Record<MqttOptionKey, Override>>): OptionSpec[] {
  return (Object.keys(BASE) as MqttOptionKey[]).map((key) => {
    const entry = { ...BASE[key], ...overrides[key] };
    if (entry.description === undefined) throw new Error(`mqttOptionEntries: ${key} needs a description`);
    return entry as OptionSpec;
  });
}

/**
 * A broker password needs a user name: mqtt.js (mqtt-packet) destroys the connection of a CONNECT
 * with a password and no user name before anything is sent, without an 'error' event, so such a
 * client retries for ever and never says why. A user name in the URL (mqtt://user:pw@host) counts.
 * Returns the problem line, or null when the settings are fine.
 */
export function passwordWithoutUsername(mqtt: { url?: unknown; username?: unknown; password?: unknown; password_file?: unknown }): string | null {
  if (mqtt.password === undefined && mqtt.password_file === undefined) return null;
  if (typeof mqtt.username === 'string' && mqtt.username !== '') return null;
  let urlUser = '';
  try {
    urlUser = typeof mqtt.url === 'string' ? new URL(mqtt.url).username : '';
  } catch {
    // an unparsable URL is reported by the URL's own check
  }
  if (urlUser !== '') return null;
  const which = mqtt.password !== undefined ? 'mqtt.password' : 'mqtt.password_file';
  return `${which}: is set without mqtt.username (--mqtt-username, MQTT_USERNAME): an MQTT client sends no password without a user name, so it would never connect; give the user name too, or no password`;
}

/** A TLS file (a CA bundle, a certificate, a key) is read whole when connecting: at most this big. */
const TLS_FILE_MAX_BYTES = 4 * 2 ** 20;

/**
 * mqtt.ca, mqtt.cert and mqtt.key, checked with the configuration (not at the first connect, where
 * a missing file stopped the command with a bare ENOENT or EISDIR, and /dev/zero filled memory):
 * each must be a readable regular file of at most 4 MiB. One problem line per bad file, naming where
 * its path came from: a path given by a flag as "mqtt.ca: PATH ...", one from the config file `file`
 * after the file's name ("FILE: mqtt.ca: PATH ...").
 */
export function tlsFileProblemsIn(
  mqtt: { ca?: unknown; cert?: unknown; key?: unknown },
  flags: { mqttCa?: string; mqttCert?: string; mqttKey?: string },
  file: string | undefined,
): string[] {
  const flagged = { ca: flags.mqttCa, cert: flags.mqttCert, key: flags.mqttKey };
  const out: string[] = [];
  for (const k of ['ca', 'cert', 'key'] as const) {
    const path = mqtt[k];
    if (typeof path !== 'string') continue;
    const where = `${file && flagged[k] === undefined ? `${file}: ` : ''}mqtt.${k}: ${path}`;
    try {
      const problem = smallFileProblem(path, TLS_FILE_MAX_BYTES);
      if (problem) out.push(`${where} ${problem}`);
      else accessSync(path, constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      out.push(
        `${where} ${code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${code ?? (e as Error).message})`}`,
      );
    }
  }
  return out;
}
