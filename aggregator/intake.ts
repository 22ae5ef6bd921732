// MQTT intake: the aggregator's connection to the broker. A persistent session (fixed client id,
// clean=false, MQTT 5 session expiry) subscribed at QoS 1 to the counts of every gateway (through the
// shared subscription of `group` when set) and to their status. Messages go to the handler; the
// PUBACK of each one waits for the promise the handler returns (DeferredAckClient, ./mqtt-ack.ts).
import { readFileSync } from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { COUNTS_FILTER, MAX_PACKET_BYTES, STATUS_FILTER, QOS, sharedFilter, topicForLog } from '../contract/index.ts';
import { isRandomClientId, type AggregatorConfig } from './config.ts';
import type { AggregatorMetrics } from './health.ts';
import { DeferredAckClient, type MessageHandler } from './mqtt-ack.ts';
import { redactUrl, redactUrlsIn } from '../scripts/lib/secrets.ts';
import { brokerErrorFix, CREDENTIALS_FIX } from '../scripts/lib/mqtt-options.ts';

/** The mqtt.js options for the aggregator's session. */
/** start() ended by stop() before the broker answered: not a failure to start. */
export class StoppedError extends Error {}

export function mqttOptions(m: AggregatorConfig['mqtt'], protocolVersion: 4 | 5): IClientOptions {
  const file = (p?: string) => (p ? readFileSync(p) : undefined);
  const o: IClientOptions = {
    clientId: m.clientId,
    clean: false,
    protocolVersion,
    keepalive: m.keepalive,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    resubscribe: false,
    username: m.username,
    password: m.password,
    ca: file(m.ca),
    cert: file(m.cert),
    key: file(m.key),
    rejectUnauthorized: m.rejectUnauthorized,
    // mqtt.js calls its debug logger several times per packet; skip that unless DEBUG asks for it.
    ...(process.env.DEBUG ? {} : { log: () => {} }),
  };
  // MQTT 5 Maximum Packet Size: the broker does not send this client a packet larger than the
  // contract allows (it drops it), so an oversized publish never reaches the aggregator's memory.
  // MQTT 3.1.1 has no such field: there the broker's own limit (Mosquitto max_packet_size) applies.
  if (protocolVersion === 5) o.properties = { sessionExpiryInterval: m.sessionExpiry, receiveMaximum: m.receiveMaximum, maximumPacketSize: MAX_PACKET_BYTES };
  return o;
}

/** A connection closed this soon after coming up counts towards the 3.1.1 take-over guess. */
const QUICK_CLOSE_MS = 5000;
const QUICK_CLOSES = 3;
const TAKEOVER_LOG_INTERVAL_MS = 60_000;

export class Intake {
  /** PUBACKs sent since start. */
  acked = 0;
  /** The broker kept this client's session for the current connection (CONNACK session present):
   *  every status published since the session began was delivered to it, or is queued for it. */
  sessionPresent = false;
  private client: DeferredAckClient | null = null;
  private connections = 0;
  private closing = false;
  private abortStart?: () => void;
  /** Session take-over detection: when the current connection came up, and how many in a row
   *  closed within QUICK_CLOSE_MS of coming up. */
  private connectedAt = 0;
  private quickCloses = 0;
  private lastTakeoverLog = -Infinity;
  private watched = new WeakSet<MqttClient>();

  constructor(
    private readonly config: AggregatorConfig['mqtt'],
    private readonly maxUnacked: number,
    private readonly log: Logger,
    private readonly metrics: AggregatorMetrics,
    private readonly handler: MessageHandler,
  ) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** While not connected: the last connection error (credentials in URLs redacted) and its fix; else null. */
  get connectProblem(): { error: string; fix: string } | null {
    if (this.connected || !this.lastConnectError) return null;
    return { error: redactUrlsIn(this.lastConnectError.message), fix: this.lastConnectError.fix };
  }
  private lastConnectError: { message: string; fix: string } | null = null;

  /** True while not reading from the broker because maxUnacked messages wait for their write. */
  get paused(): boolean {
    return this.client?.paused ?? false;
  }

  /** Messages received and not yet acknowledged. */
  get unacked(): number {
    return this.client?.unacked ?? 0;
  }

  /** Connects; resolves once subscribed, rejects if the broker refuses the connection or the
   *  subscription. Reconnects by itself after a lost connection. */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      // stop() before the broker answered: start() ends with StoppedError instead of never.
      this.abortStart = () => {
        if (settled) return;
        settled = true;
        reject(new StoppedError('stopped before the MQTT broker answered'));
      };
      // A broker that cannot be reached or refuses the login is tried every second: its error is
      // logged once, and again when it changes or after a connection came up, not every second.
      let lastError = '';
      const m = this.config;
      const ack = new DeferredAckClient(m.url, mqttOptions(m, m.protocolVersion), { maxUnacked: this.maxUnacked });
      this.client = ack;
      ack.onMessage(this.handler);
      ack.on('acked', (n) => {
        this.acked += n;
        this.metrics.acked.inc(n);
      });
      ack.on('handlerError', (err, topic) =>
        this.log.error({ err: (err as Error)?.message ?? String(err), topic: topicForLog(topic) }, 'message not acknowledged'),
      );
      ack.on('connect', (connack, { protocolVersion: version }) => {
        const client = ack.client!;
        this.connections++;
        this.connectedAt = Date.now();
        this.sessionPresent = connack.sessionPresent === true;
        this.watchTakeover(client);
        this.metrics.connected.set(1);
        lastError = '';
        this.lastConnectError = null;
        this.log.info({ session_present: connack.sessionPresent, protocol_version: version }, 'connected to the broker');
        if (this.connections > 1 && !connack.sessionPresent)
          this.log.warn('the broker kept no session for this client id: messages published while disconnected were not queued for it');
        this.subscribe(client, version).then(
          () => {
            if (!settled) {
              settled = true;
              resolve();
            }
          },
          (err) => {
            if (!client.connected && !this.closing) {
              // The connection closed before the broker's SUBACK was read: not a refusal. The next
              // connection subscribes again (and start() resolves then), instead of the process
              // stopping with "cannot start: Connection closed".
              this.log.warn({ err: err.message }, 'the connection closed before the subscription was confirmed; subscribing again on the next one');
              return;
            }
            this.log.error({ err: err.message }, 'subscribe failed');
            if (!settled) {
              settled = true;
              client.end(true);
              reject(err);
            }
          },
        );
      });
      ack.on('close', () => {
        this.metrics.connected.set(0);
        if (this.closing) return;
        // A failed attempt (nothing connected) is said by its error line, once.
        if (this.connectedAt) this.log.warn({ broker: redactUrl(m.url) }, 'connection to the broker closed; reconnecting');
        // MQTT 3.1.1 has no reason for a take-over: the broker just closes the older connection.
        // Connections closed right after coming up, again and again, are the sign.
        if (this.connectedAt && Date.now() - this.connectedAt < QUICK_CLOSE_MS) this.quickCloses++;
        else this.quickCloses = 0;
        this.connectedAt = 0;
        if (this.quickCloses >= QUICK_CLOSES)
          this.takeover(`the broker closed the connection right after it came up, ${this.quickCloses} times in a row: another client with the same client id?`);
      });
      ack.on('fallback', () => this.log.warn('broker refuses MQTT 5; using MQTT 3.1.1 (persistent session with clean=false)'));
      ack.on('error', (err) => {
        const refused = typeof err.code === 'number';
        if (refused && !settled) {
          this.log.error({ err: redactUrlsIn(err.message), code: err.code }, 'broker refused the connection');
          settled = true;
          ack.client?.end(true);
          reject(new Error(`MQTT broker ${redactUrl(m.url)} refused the connection: ${redactUrlsIn(err.message)}`));
          return;
        }
        // Refused on a reconnect (the broker restarted with a changed password file or ACL): mqtt.js
        // would stop reconnecting for good and the aggregator sit idle with its process alive; it is
        // tried again every second instead, as a broker that cannot be reached is.
        if (refused && ack.client) ack.client.options.reconnectOnConnackError = true;
        const accepted = ack.client?.connected === true;
        this.lastConnectError = { message: err.message, fix: refused ? CREDENTIALS_FIX : brokerErrorFix(err.message, m.url, accepted) };
        if (err.message === lastError) return;
        lastError = err.message;
        if (refused)
          this.log.error(
            {
              err: redactUrlsIn(err.message),
              code: err.code,
              broker: redactUrl(m.url),
              fix: CREDENTIALS_FIX,
            },
            'broker refused the connection; messages stay with the broker and it is tried again every second',
          );
        else
          this.log.error(
            { err: redactUrlsIn(err.message), code: err.code, broker: redactUrl(m.url), fix: this.lastConnectError.fix },
            `no connection to the MQTT broker ${redactUrl(m.url)}: ${redactUrlsIn(err.message)}; tried again every second, this line again only when the error changes: ${this.lastConnectError.fix}`,
          );
      });
      if (isRandomClientId(m.clientId))
        this.log.warn(
          { client_id: m.clientId },
          'no mqtt.client_id and no fixed http.port: this run uses a random client id, so the broker keeps no messages for it across a restart; set mqtt.client_id (unique per aggregator) to keep them',
        );
      ack.connect();
    });
  }

  /** MQTT 5: the broker says why it disconnects; 0x8E: another client connected with our client id. */
  private watchTakeover(client: MqttClient): void {
    if (this.watched.has(client)) return;
    this.watched.add(client);
    client.on('disconnect', (packet) => {
      const code = packet.reasonCode ?? 0;
      if (code === 0x8e)
        this.takeover('the broker handed this session to another client with the same client id (MQTT 5 DISCONNECT 0x8E "session taken over")');
      else this.log.warn({ reason_code: code, reason: packet.properties?.reasonString }, 'the broker disconnected this client');
    });
  }

  private takeover(what: string): void {
    const now = Date.now();
    if (now - this.lastTakeoverLog < TAKEOVER_LOG_INTERVAL_MS) return;
    this.lastTakeoverLog = now;
    this.log.error(
      { client_id: this.config.clientId },
      `session taken over: ${what}; every aggregator needs its own mqtt.client_id (--mqtt-client-id), or leave it unset for one unique per instance`,
    );
  }

  /** From now on a closed connection is expected (no warning). */
  closingSoon(): void {
    this.closing = true;
  }

  /** Disconnects; what is unacknowledged stays with the broker's session. */
  async end(force: boolean): Promise<void> {
    this.closing = true;
    this.abortStart?.();
    await this.client?.end(force).catch(() => {});
  }

  private async subscribe(client: MqttClient, version: 4 | 5): Promise<void> {
    const group = this.config.group;
    if (group && version === 4) this.log.warn({ group }, 'shared subscription over MQTT 3.1.1: works with Mosquitto, not with Aedes');
    // Status is retained, and brokers send no retained messages to shared subscriptions: every
    // member subscribes to status directly (a stored copy is written only without a kept session:
    // Aggregator.onMessage).
    const filters = { [group ? sharedFilter(group, COUNTS_FILTER) : COUNTS_FILTER]: { qos: QOS }, [STATUS_FILTER]: { qos: QOS } };
    const granted = await client.subscribeAsync(filters);
    for (const g of granted) {
      if (g.qos > 2) throw new Error(`broker refused the subscription to ${g.topic} (code ${g.qos})`);
    }
    this.log.info({ filters: Object.keys(filters) }, 'subscribed');
  }
}
