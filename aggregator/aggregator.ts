// The aggregator: subscribes to counts and status (QoS 1, persistent session), validates each
// message against the contract, writes points in batches and acknowledges (PUBACK) each message only
// after its points are confirmed written. Rejected messages are acknowledged (not redelivered) and
// counted by reason.
//
// The deferred PUBACK is DeferredAckClient's job (./mqtt-ack.ts, the one place that relies on mqtt.js
// internals): the message handler returns the promise of the batch write holding the message, and the
// client acknowledges in arrival order once it resolves. The broker limits unacknowledged messages
// (MQTT 5 receive maximum; Mosquitto max_inflight_messages), and past batch.maxBuffer unacknowledged
// messages the client stops reading the socket: memory stays bounded while InfluxDB is down.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';
import { pino, type Logger } from 'pino';
import { COUNTS_FILTER, STATUS_FILTER, QOS, sharedFilter } from '../contract/index.ts';
import { resolveConfig, type AggregatorConfig } from './config.ts';
import { classify, missingLines, GATEWAY_STATUS, PRESENCE, type Classified } from './messages.ts';
import { createSink, isPermanent, routeClientLog, type Sink } from './writer.ts';
import { AggregatorMetrics, startHealthServer, type HealthServer } from './health.ts';
import { DeferredAckClient } from './mqtt-ack.ts';

interface Batch {
  lines: string[];
  /** Messages whose points are in `lines`. */
  messages: number;
  /** Lines of measurement presence among `lines` (the others are gateway_status). */
  presence: number;
  /** Resolves once the batch is written (the PUBACKs of its messages wait on it). */
  written: Promise<void>;
  resolve: () => void;
}

interface GatewayState {
  site: string;
  gateway: string;
  lastSeen: number;
  windowMs: number;
  missing: boolean;
}

export interface AggregatorOptions {
  /** A pino logger to use (default: JSON to stderr at config.logLevel). */
  logger?: Logger;
  /** Add Node process metrics (CPU, memory, event loop) to /metrics. */
  processMetrics?: boolean;
  /** Replace the sink (in-process use); default: from config.influx / config.out. */
  sink?: Sink;
}

export interface AggregatorStats {
  received: number;
  rejected: number;
  pointsWritten: number;
  acked: number;
  queueDepth: number;
  writeFailures: number;
}

function newBatch(): Batch {
  let resolve!: () => void;
  const written = new Promise<void>((res) => (resolve = res));
  return { lines: [], messages: 0, presence: 0, written, resolve };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Aggregator extends EventEmitter {
  readonly config: AggregatorConfig;
  readonly metrics: AggregatorMetrics;
  readonly log: Logger;
  readonly sink: Sink;

  private intake: DeferredAckClient | null = null;
  private http: HealthServer | null = null;
  private connections = 0;
  private pending: Batch = newBatch();
  private inFlight = 0;
  private readonly writes = new Set<Promise<void>>();
  private flushTimer: NodeJS.Timeout | null = null;
  private missingTimer: NodeJS.Timeout | null = null;
  private readonly gateways = new Map<string, GatewayState>();
  private writeFailingSince: number | null = null;
  private stopping = false;
  private blindUntil = 0;
  private abandoned = false;
  /** Received messages not yet added to the Prometheus counter (added per batch, not per message). */
  private readonly uncounted = { counts: 0, status: 0 };
  private readonly counters = { received: 0, rejected: 0, pointsWritten: 0, acked: 0, writeFailures: 0 };

  constructor(config: unknown = {}, private readonly opts: AggregatorOptions = {}) {
    super();
    this.config = resolveConfig(config);
    this.log = opts.logger ?? pino({ name: 'presence-aggregator', level: this.config.logLevel }, pino.destination(2));
    this.metrics = new AggregatorMetrics(opts.processMetrics ?? false, () => this.syncMetrics());
    routeClientLog(this.log);
    this.sink = opts.sink ?? createSink(this.config.influx, this.config.out, this.config.batch.maxBuffer * 2 + 1000);
  }

  /** Port of the /healthz and /metrics server (null when off). */
  get httpPort(): number | null {
    return this.http?.port ?? null;
  }

  get connected(): boolean {
    return this.intake?.connected ?? false;
  }

  stats(): AggregatorStats {
    return { ...this.counters, queueDepth: this.queueDepth };
  }

  private syncMetrics(): void {
    const u = this.uncounted;
    if (u.counts) this.metrics.messages.inc({ kind: 'counts' }, u.counts);
    if (u.status) this.metrics.messages.inc({ kind: 'status' }, u.status);
    u.counts = u.status = 0;
    this.metrics.queueDepth.set(this.queueDepth);
  }

  private get queueDepth(): number {
    return this.intake?.unacked ?? 0;
  }

  /** Starts the HTTP server and connects; resolves once subscribed (rejects if the broker refuses us). */
  async start(): Promise<void> {
    const { http } = this.config;
    if (http.port !== null) {
      this.http = await startHealthServer(
        this.metrics,
        () => ({ mqttConnected: this.connected, writeFailingSince: this.writeFailingSince, queueDepth: this.queueDepth, sink: this.sink.target }),
        http.port,
        http.host,
      );
    }
    this.missingTimer = setInterval(() => this.checkMissing(Date.now()), this.config.missingCheckInterval);
    this.missingTimer.unref();
    this.log.info({ sink: this.sink.target, broker: this.config.mqtt.url, clientId: this.config.mqtt.clientId, group: this.config.mqtt.group || null, http: this.httpPort }, 'aggregator starting');
    await this.connect();
  }

  private mqttOptions(protocolVersion: 4 | 5): IClientOptions {
    const m = this.config.mqtt;
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
    if (protocolVersion === 5) o.properties = { sessionExpiryInterval: m.sessionExpiry, receiveMaximum: m.receiveMaximum };
    return o;
  }

  private connect(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const intake = new DeferredAckClient(this.config.mqtt.url, this.mqttOptions(this.config.mqtt.protocolVersion), { maxUnacked: this.config.batch.maxBuffer });
      this.intake = intake;
      intake.onMessage((topic, payload) => this.onPublish(topic, payload));
      intake.on('acked', (n) => {
        this.counters.acked += n;
        this.metrics.acked.inc(n);
      });
      intake.on('handlerError', (err, topic) => this.log.error({ err: (err as Error)?.message ?? String(err), topic: topic.slice(0, 200) }, 'message not acknowledged'));
      intake.on('connect', (connack, { protocolVersion: version }) => {
        const client = intake.client!;
        this.connections++;
        this.metrics.connected.set(1);
        this.log.info({ sessionPresent: connack.sessionPresent, protocolVersion: version }, 'connected to the broker');
        if (this.connections > 1 && !connack.sessionPresent)
          this.log.warn('the broker kept no session for this client id: messages published while disconnected were not queued for it');
        this.subscribe(client, version).then(
          () => {
            if (!settled) { settled = true; resolve(); }
          },
          (err) => {
            this.log.error({ err: err.message }, 'subscribe failed');
            if (!settled) { settled = true; client.end(true); reject(err); }
          },
        );
      });
      intake.on('close', () => {
        this.metrics.connected.set(0);
        if (!this.stopping) this.log.warn('connection to the broker closed; reconnecting');
      });
      intake.on('fallback', () => this.log.warn('broker refuses MQTT 5; using MQTT 3.1.1 (persistent session with clean=false)'));
      intake.on('error', (err) => {
        const refused = typeof err.code === 'number';
        this.log.error({ err: err.message, code: err.code }, refused ? 'broker refused the connection' : 'MQTT error');
        if (refused && !settled) {
          settled = true;
          intake.client?.end(true);
          reject(new Error(`MQTT broker ${this.config.mqtt.url} refused the connection: ${err.message}`));
        }
      });
      intake.connect();
    });
  }

  private async subscribe(client: MqttClient, version: 4 | 5): Promise<void> {
    const group = this.config.mqtt.group;
    if (group && version === 4) this.log.warn({ group }, 'shared subscription over MQTT 3.1.1: works with Mosquitto, not with Aedes');
    // Status is retained, and brokers send no retained messages to shared subscriptions: every
    // member subscribes to status directly (its points are idempotent when the gateway sets ts).
    const filters = { [group ? sharedFilter(group, COUNTS_FILTER) : COUNTS_FILTER]: { qos: QOS }, [STATUS_FILTER]: { qos: QOS } };
    const granted = await client.subscribeAsync(filters);
    for (const g of granted) {
      if (g.qos > 2) throw new Error(`broker refused the subscription to ${g.topic} (code ${g.qos})`);
    }
    this.log.info({ filters: Object.keys(filters) }, 'subscribed');
  }

  /** One message in. Returns the promise its PUBACK waits for: none (rejected: acknowledge now) or
   *  the write of the batch that holds its points. */
  private onPublish(topic: string, payload: Buffer): Promise<void> | undefined {
    const now = Date.now();
    this.counters.received++;
    let r: Classified;
    try {
      r = classify(topic, payload, now, this.config.maxAhead);
    } catch (e) {
      r = { ok: false, reason: 'invalid', detail: `cannot be turned into points: ${(e as Error).message}` };
    }
    if (r.ok ? r.kind === 'status' : topic.endsWith('/status')) this.uncounted.status++;
    else this.uncounted.counts++;
    if (!r.ok) {
      this.counters.rejected++;
      this.metrics.rejected.inc({ reason: r.reason });
      this.log.warn({ reason: r.reason, topic: topic.slice(0, 200), detail: r.detail }, 'message rejected');
      this.emit('rejected', r.reason, topic);
      return undefined;
    }
    if (r.kind === 'counts') {
      this.seen(r.message.site, r.message.gateway, r.windowMs, r.message.complete, now);
      this.pending.presence += r.lines.length;
    }
    const batch = this.pending;
    for (const l of r.lines) batch.lines.push(l);
    batch.messages++;
    this.flushSoon(batch.messages >= this.config.batch.size);
    return batch.written;
  }

  private seen(site: string, gateway: string, windowMs: number, complete: boolean, now: number): void {
    const key = `${site}/${gateway}`;
    let g = this.gateways.get(key);
    if (!g) {
      g = { site, gateway, lastSeen: now, windowMs, missing: false };
      this.gateways.set(key, g);
      this.metrics.gatewaysKnown.set(this.gateways.size);
    }
    g.lastSeen = now;
    if (complete || windowMs > g.windowMs) g.windowMs = windowMs;
    if (g.missing) {
      g.missing = false;
      this.metrics.gatewaysMissing.dec();
      this.log.info({ site, gateway }, 'gateway is back');
      for (const l of missingLines(site, gateway, 0, now)) this.pending.lines.push(l);
    }
  }

  /** Records gateways silent for missingAfterWindows window lengths. */
  checkMissing(now: number): void {
    // While the aggregator itself cannot hear (disconnected, or not reading because writes fail) a
    // silent gateway proves nothing; count silence from when it hears again.
    if (!this.connected || this.intake?.paused || this.writeFailingSince !== null) {
      this.blindUntil = now;
      return;
    }
    for (const g of this.gateways.values()) {
      if (g.missing || g.windowMs <= 0) continue;
      const windows = Math.floor((now - Math.max(g.lastSeen, this.blindUntil)) / g.windowMs);
      if (windows >= this.config.missingAfterWindows) {
        g.missing = true;
        this.metrics.gatewaysMissing.inc();
        this.log.warn({ site: g.site, gateway: g.gateway, silent_s: Math.round((now - g.lastSeen) / 1000) }, 'gateway missing');
        for (const l of missingLines(g.site, g.gateway, windows, now)) this.pending.lines.push(l);
        this.emit('missing', g.site, g.gateway);
        this.flushSoon(false);
      }
    }
  }

  /** Gateways currently recorded as missing, as site/gateway. */
  missingGateways(): string[] {
    return [...this.gateways.values()].filter((g) => g.missing).map((g) => `${g.site}/${g.gateway}`);
  }

  private flushSoon(now: boolean): void {
    if (now) {
      this.flush();
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, this.config.batch.flushInterval);
    }
  }

  /** Writes the pending batch; up to batch.concurrency writes run at once while the next batch fills. */
  private flush(): void {
    if (this.inFlight >= this.config.batch.concurrency || (this.pending.lines.length === 0 && this.pending.messages === 0)) return;
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    const batch = this.pending;
    this.pending = newBatch();
    this.inFlight++;
    const p: Promise<void> = this.writeBatch(batch).finally(() => {
      this.inFlight--;
      this.writes.delete(p);
      const due = this.pending.messages >= this.config.batch.size || (this.pending.lines.length > 0 && (!this.flushTimer || this.stopping));
      if (due) this.flush();
    });
    this.writes.add(p);
  }

  private async writeBatch(batch: Batch): Promise<void> {
    let attempt = 0;
    for (;;) {
      // Stopped before the write landed: `written` never settles, so its messages are never
      // acknowledged and stay with the broker.
      if (this.abandoned) return;
      const t0 = process.hrtime.bigint();
      try {
        if (batch.lines.length) await this.sink.write(batch.lines);
        this.metrics.writeSeconds.observe(Number(process.hrtime.bigint() - t0) / 1e9);
        break;
      } catch (err) {
        attempt++;
        this.counters.writeFailures++;
        this.metrics.writeFailures.inc();
        const e = err as Error & { statusCode?: number; body?: string };
        if (isPermanent(err) && e.statusCode === 400) {
          // InfluxDB refused some lines (e.g. a field type conflict) and wrote the others: a retry
          // cannot help and would block everything behind it.
          this.log.error({ err: e.message, body: e.body, lines: batch.lines.length }, 'InfluxDB refused part of a batch; the rest is written');
          break;
        }
        this.writeFailingSince ??= Date.now();
        const delay = Math.min(this.config.batch.maxRetryDelay, 250 * 2 ** Math.min(attempt - 1, 10));
        this.log.warn({ err: e.message, status: e.statusCode, attempt, retry_in_ms: delay, lines: batch.lines.length, sink: this.sink.target }, 'write failed; retrying');
        await new Promise((r) => setTimeout(r, delay).unref()); // does not keep a stopped process alive
      }
    }
    this.writeFailingSince = null;
    const presence = batch.presence;
    this.counters.pointsWritten += batch.lines.length;
    if (presence) this.metrics.points.inc({ measurement: PRESENCE }, presence);
    if (batch.lines.length - presence) this.metrics.points.inc({ measurement: GATEWAY_STATUS }, batch.lines.length - presence);
    if (batch.messages) this.metrics.batchSize.observe(batch.messages);
    batch.resolve(); // the PUBACKs of its messages follow, in arrival order
    this.emit('written', batch.lines.length);
  }

  /** Resolves once everything received so far is written and acknowledged (or `timeoutMs` passes). */
  async drain(timeoutMs = 30_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      this.flush();
      if (this.writes.size) await Promise.race([...this.writes, sleep(Math.max(0, deadline - Date.now()))]);
      if (!this.inFlight && !this.pending.lines.length && !this.pending.messages && this.queueDepth === 0) return true;
      await sleep(10);
    }
    return false;
  }

  /** Writes and acknowledges what it holds (up to `timeoutMs`), then disconnects. What is left
   *  unacknowledged stays with the broker's session and is delivered again at the next start. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.missingTimer) clearInterval(this.missingTimer);
    const drained = await this.drain(timeoutMs);
    if (!drained) this.log.warn({ unacknowledged: this.queueDepth }, 'stopping with unwritten messages; the broker delivers them again');
    this.abandoned = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.intake?.end(!drained).catch(() => {});
    await this.sink.close();
    await this.http?.close();
    this.log.info(this.stats(), 'aggregator stopped');
  }
}
