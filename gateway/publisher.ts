// MQTT publishing (mqtt.js): counts from the durable queue, oldest first, QoS 1, not retained; a
// window leaves the queue only when its PUBACK arrives (mqtt.js calls the publish callback then).
// Status is retained, with the offline status as last will. mqtt.js reconnects by itself and resends
// its in-flight QoS 1 messages in order; what was never handed to it stays on disk until then.
// MQTT 5 by default: a publish the broker refuses (PUBACK reason code >= 0x80, e.g. 0x87 "not
// authorized" from Mosquitto's ACL) is NOT removed from the queue; it is logged (rate-limited),
// counted (`refused`: status publish_refused, metric presence_gateway_publish_refused_total) and
// retried with backoff. A broker that refuses MQTT 5 (e.g. Aedes) gets MQTT 3.1.1 on the next attempt
// (the pattern of aggregator/mqtt-ack.ts); over 3.1.1 Mosquitto 2 acknowledges a denied publish like
// any other, so denials are invisible there (which is why the gateway also refuses to start with a
// {site}/{gateway} user name that is not its own: gateway.ts).
// Nothing outside the contract leaves: every message is validated against its (closed) schema
// right before it is handed to mqtt.js, and one that fails is logged and not published.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import { createConnection } from 'node:net';
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import type { Logger } from 'pino';
import {
  countsTopic,
  encode,
  offlineStatus,
  QOS,
  sketchTopic,
  statusTopic,
  validateCounts,
  validateSketch,
  validateStatus,
  type CountsMessage,
  type StatusMessage,
} from '../contract/index.ts';
import type { GatewayConfig } from './config.ts';
import type { SketchQueue } from './corridor.ts';
import { writeDurably, type WindowQueue } from './queue.ts';
import { makeFolders } from '../scripts/lib/folders.ts';
import { readSecretFile, redactUrl, redactUrlsIn } from '../scripts/lib/secrets.ts';
import { brokerErrorFix, canonicalMqttUrl } from '../scripts/lib/mqtt-options.ts';

/** Folder in the queue folder for queued windows of another gateway (site/id), never published as this one's. */
export const OTHER_GATEWAYS_DIR = 'other-gateways';

/** A connection closed this soon after coming up, QUICK_CLOSES times in a row: another client with our id. */
const QUICK_CLOSE_MS = 5000;
const QUICK_CLOSES = 3;

/** Windows handed to mqtt.js at once; the rest waits on disk. */
const MAX_INFLIGHT = 32;

export function mqttOptions(cfg: GatewayConfig, keepaliveS: number, protocolVersion: 4 | 5 = cfg.mqtt.version ?? 5): IClientOptions {
  const m = cfg.mqtt;
  const { site, zone, id } = cfg.gateway;
  let password = m.password;
  if (password === undefined && m.password_file) password = readSecretFile(m.password_file, 'mqtt.password_file');
  return {
    clientId: m.client_id ?? `presence-gw-${site}-${id}`,
    clean: true,
    protocolVersion,
    keepalive: keepaliveS,
    reconnectPeriod: 1000,
    // A CONNACK refusal (a credential the broker does not know yet, a broker that is still loading
    // its password file) is retried like any other failure: mqtt.js otherwise never connects again,
    // and the gateway counted into its queue until someone restarted it.
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
    // mqtt-packet otherwise builds 65,536 two-byte Buffers (6 MB of heap) on the first packet, to
    // save an allocation per packet id; the gateway sends a few packets a minute.
    writeCache: false,
    ...(m.username !== undefined ? { username: m.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(m.ca ? { ca: readFileSync(m.ca) } : {}),
    ...(m.cert ? { cert: readFileSync(m.cert) } : {}),
    ...(m.key ? { key: readFileSync(m.key) } : {}),
    rejectUnauthorized: m.reject_unauthorized,
    will: { topic: statusTopic(site, id), payload: encode(offlineStatus(site, id, zone)), qos: QOS, retain: true },
  };
}

/**
 * mqtt.connect(), except for a plain mqtt:// URL with nothing but host and port (no credentials or
 * query in it, no client certificate, no SOCKS proxy in MQTTJS_SOCKS_PROXY): that needs only a TCP
 * socket, handed to mqtt.js's documented MqttClient(streamBuilder, options). mqtt.connect() loads
 * every transport it knows on its first call (WebSocket, TLS, SOCKS: node:tls, node:https,
 * node:zlib, ws, socks), 2-3 MB of an idle gateway's RSS that a plain connection never uses.
 */
export function connectMqtt(url: string, opts: IClientOptions): MqttClient {
  const u = new URL(url);
  const plain = u.protocol === 'mqtt:' && !u.username && !u.password && !u.search && !(opts.cert && opts.key) && !process.env.MQTTJS_SOCKS_PROXY;
  if (!plain) return mqtt.connect(url, opts);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = u.port ? Number(u.port) : 1883;
  return new MqttClient(() => createConnection({ host, port }), { ...opts, protocol: 'mqtt', host, hostname: host, port });
}

/** Broker URL without credentials, for logs (the shared redaction of scripts/lib/secrets.ts). */
export const safeUrl = (url: string): string => redactUrl(url);

export interface PublisherEvents {
  acked: [seq: number];
  connect: [];
  /** The broker refused a window (MQTT 5 PUBACK reason code >= 0x80); it stays queued. */
  refused: [seq: number, reasonCode: number, reason: string];
  /** The broker refused MQTT 5; the next attempt uses MQTT 3.1.1. */
  fallback: [];
  /** A corridor sketch was acknowledged by the broker. */
  sketchPublished: [];
}

/** Retry of refused publishes: first after this, doubling up to REFUSED_RETRY_MAX_MS. */
const REFUSED_RETRY_MIN_MS = 1000;
const REFUSED_RETRY_MAX_MS = 60_000;
/** The same refusal is logged at most once per this. */
const REFUSED_LOG_INTERVAL_MS = 60_000;

/** MQTT 5 reason codes a broker puts in a failed PUBACK (MQTT 5 3.4.2.1). */
const PUBACK_REASONS: Record<number, string> = {
  128: 'unspecified error',
  131: 'implementation specific error',
  135: 'not authorized',
  144: 'topic name invalid',
  145: 'packet identifier in use',
  151: 'quota exceeded',
  153: 'payload format invalid',
};

/** "0x87 not authorized" for a PUBACK reason code. */
export function pubackReason(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')} ${PUBACK_REASONS[code] ?? 'error'}`;
}

export class Publisher extends EventEmitter<PublisherEvents> {
  private client: MqttClient | null = null;
  private inflight = new Set<number>();
  /** Highest seq handed to mqtt.js in this connection epoch. */
  private sentUpTo = 0;
  private pumping = false;
  private closing = false;
  /** Windows acknowledged since start. */
  acked = 0;
  /** Window publishes the broker refused (MQTT 5 reason code >= 0x80) since start. */
  refused = 0;
  /** The last refusal, e.g. "0x87 not authorized" (empty: none since the last acknowledged window). */
  lastRefusal = '';
  private lastError = '';
  /** The last error came on a connection the broker had accepted (a reset then is no port mistake). */
  private lastErrorAccepted = false;
  /** While not connected: why the last attempt failed (the broker's or the socket's words) and what to do; else null. */
  get connectProblem(): { error: string; fix: string } | null {
    // Another client with this client id keeps taking the connection: each turn connects, so there
    // is no connection error to show, and /healthz said only "not connected" half of the time.
    if (this.takeoverNow) {
      const { site, id } = this.cfg.gateway;
      return {
        error: `session taken over: another client with this client id (${this.cfg.mqtt.client_id ?? `presence-gw-${site}-${id}`}) keeps taking the connection`,
        fix: `is gateway ${site}/${id} running twice? Stop the other one, or give each gateway its own --id (or mqtt.client_id)`,
      };
    }
    if (this.connected || !this.lastError) return null;
    return { error: this.lastError, fix: brokerErrorFix(this.lastError, this.cfg.mqtt.url, this.lastErrorAccepted) };
  }
  private version: 4 | 5 = 5;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = REFUSED_RETRY_MIN_MS;
  private lastRefusalLog = { text: '', at: -Infinity };

  constructor(
    private readonly cfg: GatewayConfig,
    private readonly queue: WindowQueue,
    private readonly log: Logger,
    private readonly keepaliveS: number,
  ) {
    super();
  }

  get connected(): boolean {
    return !!this.client?.connected;
  }

  /** Corridor sketches to publish (gateway/corridor.ts), or null: this gateway is in no corridor group. */
  sketches: SketchQueue | null = null;
  private lastSketchRefusalLog = -Infinity;

  /**
   * Hands the waiting corridor sketches to mqtt.js (QoS 1, never retained), while connected. Each
   * is checked against the contract first; acknowledged ones leave the queue, refused ones (MQTT 5
   * reason code >= 0x80) are dropped and counted, unsent ones wait for the next connection.
   */
  pumpSketches(): void {
    const c = this.client;
    if (!c?.connected || this.closing || !this.sketches) return;
    const topic = sketchTopic(this.cfg.gateway.site, this.cfg.gateway.id);
    for (const item of this.sketches.take()) {
      const valid = validateSketch(item.message);
      if (!valid.ok) {
        this.log.error({ reason: valid.reason }, 'sketch does not match the contract; dropped');
        item.settle('invalid');
        continue;
      }
      c.publish(topic, encode(item.message), { qos: QOS, retain: false }, (err?: Error & { code?: number | string }) => {
        if (err && typeof err.code === 'number' && err.code >= 0x80) {
          item.settle('refused');
          if (Date.now() - this.lastSketchRefusalLog >= REFUSED_LOG_INTERVAL_MS) {
            this.lastSketchRefusalLog = Date.now();
            this.log.error(
              { topic, reason: pubackReason(err.code) },
              `broker refused publishing a sketch on ${topic} (${pubackReason(err.code)}); sketches are dropped, not retried. Check the broker ACL (pattern write presence/v1/%u/sketch, docs/mosquitto/presence.acl)`,
            );
          }
          return;
        }
        if (err) {
          item.settle(false);
          return;
        }
        item.settle(true);
        this.emit('sketchPublished');
      });
    }
  }

  /** The MQTT protocol in use: 5, or 4 (3.1.1) when configured or after the broker refused 5. */
  get protocolVersion(): 4 | 5 {
    return this.version;
  }

  start(): void {
    const { site, id } = this.cfg.gateway;
    const url = canonicalMqttUrl(this.cfg.mqtt.url); // (loadConfig has done so; a config made otherwise too)
    this.version = this.cfg.mqtt.version ?? 5;
    this.client = connectMqtt(url, mqttOptions(this.cfg, this.keepaliveS, this.version));
    const client = this.client;
    const topic = countsTopic(site, id);
    this.topic = topic;
    this.client.on('connect', () => {
      this.connectedAt = Date.now();
      this.lastError = '';
      this.fallingBack = false;
      // While another client with this id takes the connection every second (the same gateway run
      // twice), the 'session taken over' line says so once a minute; a connected and a lost line
      // for every turn would be two lines a second for as long as both run.
      this.log[this.fighting ? 'debug' : 'info']({ broker: safeUrl(url), mqtt_version: this.version === 5 ? '5' : '3.1.1' }, 'connected to broker');
      if (this.version === 4)
        this.log.debug('MQTT 3.1.1: a publish the broker ACL denies is acknowledged like any other (Mosquitto 2), so a denial cannot be seen here');
      this.emit('connect');
      this.pump();
      this.pumpSketches();
    });
    this.client.on('reconnect', () => {
      this.log.debug('reconnecting to broker');
      this.rereadPassword(client);
    });
    // Another client with this client id takes the connection over: MQTT 5 brokers may say so
    // (DISCONNECT 0x8E); otherwise the connection just closes right after it came up, again and again.
    this.client.on('disconnect', (packet) => {
      if (packet.reasonCode === 0x8e)
        this.takenOver('the broker handed this session to another client with the same client id (DISCONNECT 0x8E "session taken over")');
    });
    this.client.on('close', () => {
      if (this.closing) return;
      if (this.connectedAt && Date.now() - this.connectedAt < QUICK_CLOSE_MS) this.quickCloses++;
      else {
        this.quickCloses = 0;
        if (this.connectedAt) this.takenOverNow = false;
      }
      this.connectedAt = 0;
      if (this.quickCloses >= QUICK_CLOSES)
        this.takenOver(`the broker closed the connection right after it came up, ${this.quickCloses} times in a row: another client with the same client id?`);
    });
    // mqtt.js emits 'offline' before the 'close' handler above counts a quick close: the line waits
    // for that count, so the close that shows a take-over is not logged as the broker being unreachable.
    this.client.on('offline', () =>
      setImmediate(() => {
        if (this.closing) return;
        // the connection the broker closed for MQTT 5 (the fallback line said so) is not an outage
        this.log[this.fighting || this.fallingBack ? 'debug' : 'warn']({ queue_depth: this.queue.depth }, 'broker unreachable; windows stay queued');
      }),
    );
    this.client.on('error', (err: Error & { code?: number | string }) => {
      // MQTT 3.1.1-only brokers refuse MQTT 5: CONNACK 1 = "unacceptable protocol version" (3.1.1),
      // 132 = "unsupported protocol version" (5). As in aggregator/mqtt-ack.ts: mqtt.js reads
      // client.options again at the next connect, and reconnectOnConnackError right after this event.
      if (this.version === 5 && (err.code === 1 || err.code === 132)) {
        this.version = 4;
        client.options.protocolVersion = 4;
        client.options.reconnectOnConnackError = true;
        this.fallingBack = true;
        this.log.info({ broker: safeUrl(url) }, 'broker refused MQTT 5; using MQTT 3.1.1 (a publish the broker ACL denies cannot be seen over 3.1.1)');
        this.emit('fallback');
        return;
      }
      // Once per kind of failure (mqtt.js retries every second): what failed, where, and what to do.
      const accepted = client.connected;
      if (err.message !== this.lastError || accepted !== this.lastErrorAccepted)
        this.log.warn(
          { err: redactUrlsIn(err.message), broker: safeUrl(url), fix: brokerErrorFix(err.message, url, accepted), queue_depth: this.queue.depth },
          accepted ? 'mqtt error' : 'cannot connect to the broker; windows stay queued and it is tried again every second',
        );
      this.lastError = err.message;
      this.lastErrorAccepted = accepted;
    });
  }
  /**
   * mqtt.password_file is read again before each new attempt: a gateway refused with the wrong
   * password (a mistyped file, a credential rotated with `presence provision gateway --rotate`) kept
   * the password it had read at start and was refused every second for ever, though the log's fix
   * said to correct the file, until someone restarted it. A file that cannot be read now (being
   * replaced, a bad mode) leaves the password as it was; the gateway checked it at start.
   */
  private rereadPassword(client: MqttClient): void {
    const m = this.cfg.mqtt;
    if (m.password !== undefined || !m.password_file) return;
    let password: string;
    try {
      password = readSecretFile(m.password_file, 'mqtt.password_file');
    } catch {
      return;
    }
    if (password === client.options.password) return;
    client.options.password = password;
    this.log.info({ file: m.password_file }, 'mqtt.password_file has changed: the next attempt uses the password it holds now');
  }
  private topic = '';
  private connectedAt = 0;
  private quickCloses = 0;
  private lastTakeover = -Infinity;

  /** Another client with this client id keeps taking the connection (QUICK_CLOSES quick closes in a row, until one lasts). */
  private get fighting(): boolean {
    return this.takenOverNow || this.quickCloses >= QUICK_CLOSES;
  }
  /** A take-over goes on now: fighting, and no connection has lasted QUICK_CLOSE_MS since (one up that long ends it without waiting for its close). */
  private get takeoverNow(): boolean {
    if (!this.fighting) return false;
    return !(this.connected && this.connectedAt && Date.now() - this.connectedAt >= QUICK_CLOSE_MS);
  }
  /** The broker refused MQTT 5 and the next attempt uses 3.1.1 (until it connects). */
  private fallingBack = false;
  /** A take-over was seen, and no connection has lasted QUICK_CLOSE_MS since. */
  private takenOverNow = false;

  private takenOver(what: string): void {
    this.takenOverNow = true;
    const now = Date.now();
    if (now - this.lastTakeover < 60_000) return;
    this.lastTakeover = now;
    const { site, id } = this.cfg.gateway;
    this.log.error(
      { client_id: this.cfg.mqtt.client_id ?? `presence-gw-${site}-${id}` },
      `session taken over: ${what}; is gateway ${site}/${id} running twice? Each gateway needs its own --id (or mqtt.client_id)`,
    );
  }

  /** Gateways (site/id) whose queued windows were set aside, and how many. */
  private readonly setAsideCount = new Map<string, number>();

  /**
   * A queued window of another gateway (the queue folder was that gateway's before this one was
   * given another --site or --id, with windows still queued): published on this gateway's topic,
   * the aggregator refuses it (topic_mismatch), so it left the queue as if delivered. It goes to
   * OTHER_GATEWAYS_DIR in the queue folder instead, with one error line per other gateway.
   */
  private setAside(seq: number, m: CountsMessage): void {
    const dir = join(this.queue.dir, OTHER_GATEWAYS_DIR);
    const other = `${m.site}/${m.gateway}`;
    try {
      makeFolders(dir);
      writeDurably(join(dir, `${m.site}-${m.gateway}-${seq}.json`), `${JSON.stringify(m)}\n`, dir);
    } catch (e) {
      // kept in the queue (not published); tried again at the next connection
      this.log.error(
        { seq, other, err: (e as Error).message, dir },
        'a queued window of another gateway could not be set aside; kept in the queue, not published',
      );
      return;
    }
    this.queue.remove(seq);
    const n = (this.setAsideCount.get(other) ?? 0) + 1;
    this.setAsideCount.set(other, n);
    if (n === 1)
      this.log.error(
        { seq, other, zone: m.zone, this_gateway: `${this.cfg.gateway.site}/${this.cfg.gateway.id}`, dir },
        `queued window of gateway ${other}, not this one: the queue folder was that gateway's; not published (the aggregator would refuse it on this gateway's topic), moved to ${dir} with any more of its windows. Publish them as that gateway (its --site, --id and credential, that folder's files in a queue folder's windows/) or delete them`,
      );
  }

  /** Hands queued windows to mqtt.js, oldest first, keeping at most MAX_INFLIGHT unacknowledged. */
  pump(): void {
    if (!this.client || this.closing || this.pumping || this.retryTimer) return;
    this.pumping = true;
    try {
      // Queued windows whose file could not be read (their mode or owner changed while this ran)
      // and can be now: sent from here, without a restart.
      for (const seq of this.queue.readableAgain()) this.sentUpTo = Math.min(this.sentUpTo, seq - 1);
      const room = MAX_INFLIGHT - this.inflight.size;
      if (room <= 0) return;
      for (const seq of this.queue.pending(this.sentUpTo, room)) {
        this.sentUpTo = seq;
        if (this.inflight.has(seq)) continue; // handed to mqtt.js already, its answer awaited
        const message = this.queue.read(seq);
        if (!message) continue;
        const valid = validateCounts(message);
        if (!valid.ok) {
          // Not the contract (a queue file from another version, or a bug): never published.
          this.log.error({ seq, reason: valid.reason }, 'queued window does not match the contract; dropped');
          this.queue.remove(seq);
          continue;
        }
        if (message.site !== this.cfg.gateway.site || message.gateway !== this.cfg.gateway.id) {
          this.setAside(seq, message);
          continue;
        }
        this.inflight.add(seq);
        this.client.publish(this.topic, encode(message), { qos: QOS, retain: false }, (err) => this.done(seq, err));
      }
    } finally {
      this.pumping = false;
    }
  }

  private done(seq: number, err?: Error & { code?: number | string }): void {
    this.inflight.delete(seq);
    if (err && typeof err.code === 'number' && err.code >= 0x80) {
      this.onRefused(seq, err.code);
      return;
    }
    if (err) {
      // The client was ended with this window in flight: it stays queued and is sent again later.
      this.log.debug({ seq, err: err.message }, 'window not acknowledged');
      this.sentUpTo = Math.min(this.sentUpTo, seq - 1);
      return;
    }
    this.queue.remove(seq);
    this.acked++;
    this.retryMs = REFUSED_RETRY_MIN_MS;
    this.lastRefusal = '';
    this.emit('acked', seq);
    this.pump();
  }

  /** The broker refused this window: it stays queued, is logged (rate-limited) and sent again after a backoff. */
  private onRefused(seq: number, code: number): void {
    this.refused++;
    const reason = pubackReason(code);
    this.lastRefusal = reason;
    this.sentUpTo = Math.min(this.sentUpTo, seq - 1);
    const now = Date.now();
    const text = `${this.topic} ${reason}`;
    if (text !== this.lastRefusalLog.text || now - this.lastRefusalLog.at >= REFUSED_LOG_INTERVAL_MS) {
      this.lastRefusalLog = { text, at: now };
      const { site, id } = this.cfg.gateway;
      const user = this.cfg.mqtt.username;
      this.log.error(
        {
          topic: this.topic,
          reason,
          reason_code: code,
          seq,
          refused: this.refused,
          queue_depth: this.queue.depth,
          ...(user !== undefined ? { username: user } : {}),
        },
        `broker refused publishing the window on ${this.topic} (${reason}); it stays queued and is retried with backoff. ` +
          (code === 0x87
            ? `Check the broker ACL: with the shipped ACL the user name must be "${site}/${id}" (--site/--id must match the credential of presence provision gateway)`
            : 'Check the broker log'),
      );
    }
    this.emit('refused', seq, code, reason);
    if (!this.retryTimer && !this.closing) {
      const wait = this.retryMs;
      this.retryMs = Math.min(REFUSED_RETRY_MAX_MS, this.retryMs * 2);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.pump();
      }, wait);
      this.retryTimer.unref();
    }
  }

  /** Publishes a retained status (only while connected: stale statuses are not worth queueing). */
  publishStatus(status: StatusMessage): Promise<void> {
    const c = this.client;
    if (!c?.connected) return Promise.resolve();
    const valid = validateStatus(status);
    if (!valid.ok) {
      this.log.error({ reason: valid.reason }, 'status does not match the contract; not published');
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      c.publish(statusTopic(this.cfg.gateway.site, this.cfg.gateway.id), encode(status), { qos: QOS, retain: true }, (err) => {
        if (err) this.log.debug({ err: err.message }, 'status not acknowledged');
        resolve();
      });
    });
  }

  /** Publishes a retained QoS 1 message (e.g. a discovery config); resolves once acknowledged or not connected. */
  publishRetained(topic: string, payload: string): Promise<boolean> {
    const c = this.client;
    if (!c?.connected) return Promise.resolve(false);
    return new Promise((resolve) => c.publish(topic, payload, { qos: QOS, retain: true }, (err) => resolve(!err)));
  }

  /** Resolves true once the queue is empty (every window acknowledged, every sketch acknowledged or dropped), false on timeout. */
  async flush(timeoutMs = Infinity): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    this.pump();
    this.pumpSketches();
    while (this.queue.depth > 0 || (this.sketches?.depth ?? 0) > 0) {
      if (Date.now() >= deadline || this.closing || !this.client) return false;
      await new Promise<void>((resolve) => {
        const onAck = () => {
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(
          () => {
            this.off('acked', onAck);
            resolve();
          },
          Math.min(200, Math.max(1, deadline - Date.now())),
        );
        this.once('acked', onAck);
      });
      this.pump();
      this.pumpSketches();
    }
    return true;
  }

  /** Publishes the offline status (a clean disconnect sends no last will) and disconnects. */
  async stop(finalStatus?: StatusMessage): Promise<void> {
    const c = this.client;
    if (!c) return;
    const { site, zone, id } = this.cfg.gateway;
    if (c.connected) await Promise.race([this.publishStatus(finalStatus ?? offlineStatus(site, id, zone)), new Promise((r) => setTimeout(r, 2000))]);
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    // A clean DISCONNECT (no last will); forced if the broker does not answer.
    if (!c.connected) {
      await new Promise<void>((resolve) => c.end(true, {}, () => resolve()));
      this.client = null;
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => c.end(true, {}, () => resolve()), 2000);
      c.end(false, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
    this.client = null;
  }
}
