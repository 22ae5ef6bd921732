// MQTT publishing (mqtt.js): counts from the durable queue, oldest first, QoS 1, not retained; a
// window leaves the queue only when its PUBACK arrives (mqtt.js calls the publish callback then).
// Status is retained, with the offline status as last will. mqtt.js reconnects by itself and resends
// its in-flight QoS 1 messages in order; what was never handed to it stays on disk until then.
// Nothing outside the contract leaves: every message is validated against its (closed) schema
// right before it is handed to mqtt.js, and one that fails is logged and not published.
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { countsTopic, encode, offlineStatus, QOS, statusTopic, validateCounts, validateStatus, type StatusMessage } from '../contract/index.ts';
import type { GatewayConfig } from './config.ts';
import type { WindowQueue } from './queue.ts';
import { readSecretFile, redactUrl } from '../scripts/lib/secrets.ts';

/** A connection closed this soon after coming up, QUICK_CLOSES times in a row: another client with our id. */
const QUICK_CLOSE_MS = 5000;
const QUICK_CLOSES = 3;

/** Windows handed to mqtt.js at once; the rest waits on disk. */
const MAX_INFLIGHT = 32;

export function mqttOptions(cfg: GatewayConfig, keepaliveS: number): IClientOptions {
  const m = cfg.mqtt;
  const { site, zone, id } = cfg.gateway;
  let password = m.password;
  if (password === undefined && m.password_file) password = readSecretFile(m.password_file, 'mqtt.password_file');
  return {
    clientId: m.client_id ?? `presence-gw-${site}-${id}`,
    clean: true,
    keepalive: keepaliveS,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    ...(m.username !== undefined ? { username: m.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(m.ca ? { ca: readFileSync(m.ca) } : {}),
    ...(m.cert ? { cert: readFileSync(m.cert) } : {}),
    ...(m.key ? { key: readFileSync(m.key) } : {}),
    rejectUnauthorized: m.reject_unauthorized,
    will: { topic: statusTopic(site, id), payload: encode(offlineStatus(site, id, zone)), qos: QOS, retain: true },
  };
}

/** Broker URL without credentials, for logs (the shared redaction of scripts/lib/secrets.ts). */
export const safeUrl = (url: string): string => redactUrl(url);

export interface PublisherEvents {
  acked: [seq: number];
  connect: [];
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
  private lastError = '';

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

  start(): void {
    const { site, id } = this.cfg.gateway;
    const url = this.cfg.mqtt.url.replace(/^tls:|^ssl:/, 'mqtts:').replace(/^tcp:/, 'mqtt:');
    this.client = mqtt.connect(url, mqttOptions(this.cfg, this.keepaliveS));
    const topic = countsTopic(site, id);
    this.topic = topic;
    this.client.on('connect', () => {
      this.connectedAt = Date.now();
      this.lastError = '';
      this.log.info({ broker: safeUrl(url) }, 'connected to broker');
      this.emit('connect');
      this.pump();
    });
    this.client.on('reconnect', () => this.log.debug('reconnecting to broker'));
    // Another client with this client id takes the connection over: MQTT 5 brokers may say so
    // (DISCONNECT 0x8E); otherwise the connection just closes right after it came up, again and again.
    this.client.on('disconnect', (packet) => {
      if (packet.reasonCode === 0x8e) this.takenOver('the broker handed this session to another client with the same client id (DISCONNECT 0x8E "session taken over")');
    });
    this.client.on('close', () => {
      if (this.closing) return;
      if (this.connectedAt && Date.now() - this.connectedAt < QUICK_CLOSE_MS) this.quickCloses++;
      else this.quickCloses = 0;
      this.connectedAt = 0;
      if (this.quickCloses >= QUICK_CLOSES) this.takenOver(`the broker closed the connection right after it came up, ${this.quickCloses} times in a row: another client with the same client id?`);
    });
    this.client.on('offline', () => this.log.warn({ queue_depth: this.queue.depth }, 'broker unreachable; windows stay queued'));
    this.client.on('error', (err) => {
      if (err.message !== this.lastError) this.log.warn({ err: err.message }, 'mqtt error');
      this.lastError = err.message;
    });
  }
  private topic = '';
  private connectedAt = 0;
  private quickCloses = 0;
  private lastTakeover = -Infinity;

  private takenOver(what: string): void {
    const now = Date.now();
    if (now - this.lastTakeover < 60_000) return;
    this.lastTakeover = now;
    const { site, id } = this.cfg.gateway;
    this.log.error({ clientId: this.cfg.mqtt.client_id ?? `presence-gw-${site}-${id}` }, `session taken over: ${what}; is gateway ${site}/${id} running twice? Each gateway needs its own --id (or mqtt.client_id)`);
  }

  /** Hands queued windows to mqtt.js, oldest first, keeping at most MAX_INFLIGHT unacknowledged. */
  pump(): void {
    if (!this.client || this.closing || this.pumping) return;
    this.pumping = true;
    try {
      const room = MAX_INFLIGHT - this.inflight.size;
      if (room <= 0) return;
      for (const seq of this.queue.pending(this.sentUpTo, room)) {
        const message = this.queue.read(seq);
        this.sentUpTo = seq;
        if (!message) continue;
        const valid = validateCounts(message);
        if (!valid.ok) {
          // Not the contract (a queue file from another version, or a bug): never published.
          this.log.error({ seq, reason: valid.reason }, 'queued window does not match the contract; dropped');
          this.queue.remove(seq);
          continue;
        }
        this.inflight.add(seq);
        this.client.publish(this.topic, encode(message), { qos: QOS, retain: false }, (err) => this.done(seq, err));
      }
    } finally {
      this.pumping = false;
    }
  }

  private done(seq: number, err?: Error): void {
    this.inflight.delete(seq);
    if (err) {
      // The client was ended with this window in flight: it stays queued and is sent again later.
      this.log.debug({ seq, err: err.message }, 'window not acknowledged');
      this.sentUpTo = Math.min(this.sentUpTo, seq - 1);
      return;
    }
    this.queue.remove(seq);
    this.acked++;
    this.emit('acked', seq);
    this.pump();
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

  /** Resolves true once the queue is empty (every window acknowledged), false on timeout. */
  async flush(timeoutMs = Infinity): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    this.pump();
    while (this.queue.depth > 0) {
      if (Date.now() >= deadline || this.closing || !this.client) return false;
      await new Promise<void>((resolve) => {
        const onAck = () => {
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(() => {
          this.off('acked', onAck);
          resolve();
        }, Math.min(200, Math.max(1, deadline - Date.now())));
        this.once('acked', onAck);
      });
      this.pump();
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
