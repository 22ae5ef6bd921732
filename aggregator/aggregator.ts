// The aggregator: subscribes to counts and status (QoS 1, persistent session), validates each
// message against the contract, writes points in batches and acknowledges (PUBACK) each message only
// after its points are confirmed written. Rejected messages are acknowledged (not redelivered) and
// counted by reason.
//
// This file is the lifecycle (start, drain, stop, stats) and the handling of one message; the parts:
//   ./intake.ts    MQTT connection, subscriptions (over ./mqtt-ack.ts: PUBACK after a promise)
//   ./messages.ts  pure: topic + payload -> points (line protocol) or a rejection with a reason
//   ./pipeline.ts  batches, writes to the sink (./writer.ts) with retries; a promise per batch
//   ./liveness.ts  gateways whose counts messages were accepted, and those gone silent
//   ./health.ts    /healthz, /metrics, and the page of recent writes (./web.ts, ./recent.ts)
//   ./reject-log.ts  rate limit of the "message rejected" log lines
// A message's handler returns the promise of the batch holding its points; the intake acknowledges
// in arrival order once it resolves. The broker limits unacknowledged messages (MQTT 5 receive
// maximum; Mosquitto max_inflight_messages), and past batch.maxBuffer unacknowledged messages the
// intake stops reading the socket: memory stays bounded while InfluxDB is down.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { createLogger } from '../scripts/lib/log.ts';
import { resolveConfig, type AggregatorConfig } from './config.ts';
import { calibrationFor, windowPeople, type Calibration } from './calibration/apply.ts';
import { WindowMismatchNotes } from './calibration/hooks.ts';
import { RecentWrites, type RecentOptions } from './recent.ts';
import { AggregatorWeb, type AggregatorWebOptions } from './web.ts';
import { classify, statusLines, type Classified } from './messages.ts';
import { createSink, FileSink, routeClientLog, type Sink } from './writer.ts';
import { fileWriteProblem } from '../scripts/lib/atomic-file.ts';
import { AggregatorMetrics, healthReport, startHealthServer, type HealthServer, type HealthState } from './health.ts';
import { Intake, StoppedError } from './intake.ts';
import { WritePipeline } from './pipeline.ts';
import { GatewayLiveness } from './liveness.ts';
import { ClockSkew } from './clock-skew.ts';
import { PreflightError, preflight, recreateMissing } from './preflight.ts';
import { RejectLog, type RejectLogOptions } from './reject-log.ts';
import { redactUrl, redactUrlsIn } from '../scripts/lib/secrets.ts';
import { topicKind } from '../contract/index.ts';
import { GatewayIdentity } from './registry.ts';
import { CorridorFlows, type KeyMismatch } from './flows/intake.ts';
import { aliveInstance, instanceId, Ownership } from './flows/ownership.ts';
import { CorridorLink } from './flows/link.ts';
import { CLOCK_MISMATCH_FIX, clockMismatchText, CorridorClocks, OFFSET_CLEAR_MS, OFFSET_SPAN_MS, type ClockMismatch } from './flows/clock-offset.ts';

export interface AggregatorOptions {
  /** A pino logger to use (default: JSON to stderr at config.logLevel). */
  logger?: Logger;
  /** Add Node process metrics (CPU, memory, event loop) to /metrics. */
  processMetrics?: boolean;
  /** Replace the sink (in-process use); default: from config.influx / config.out. */
  sink?: Sink;
  /** People per calibrated zone (aggregator/calibration); replaceable at run time (SIGHUP). */
  calibration?: Calibration | null;
  /** Rate limit of the "message rejected" log lines (default: 10 per minute, then a summary). */
  rejectLog?: RejectLogOptions;
  /** The interval in which a corridor group's key_check mismatch is logged at most 3 times, then once at its end (ms; default 60 s). */
  keyLogIntervalMs?: number;
  /** Per-viewer bounds of the page's event stream (./web.ts). */
  web?: AggregatorWebOptions;
  /** Bounds of what the page keeps (./recent.ts); maxAgeMs defaults to http.history. */
  recent?: RecentOptions;
  /** The InfluxDB was checked by the caller with preflight() just before (the demo checks it before
   *  its calibration fit): start() does not check it again. */
  preflighted?: boolean;
}

/** A corridor group's key_check mismatch is logged at most KEY_LOG_BURST times in this (ms), then once at its end; /healthz and the metric follow every change. */
const KEY_LOG_INTERVAL_MS = 60_000;
const KEY_LOG_BURST = 3;

/** What to do about a key_check mismatch (the log line's `fix`, and the end of its text). */
export const KEY_MISMATCH_FIX =
  'copy the group\'s secret file to the gateway(s) named with `presence corridor join --force` (gateway/README.md, "Corridor sketches") and restart them';

/** One line of a key_check mismatch: the group, the gateway(s), what it means and the fix (log and /healthz). */
export function keyMismatchText(m: KeyMismatch): string {
  const g = `corridor group "${m.group}"`;
  if (m.majority)
    return `${g}: the key_check of ${m.gateways.join(', ')} differs from that of most of its members, ${m.majority.join(', ')} (epoch ${m.epoch}): ${m.gateways.length > 1 ? 'their' : 'its'} secret file is not the one most members hold (another group's, or an old one), so ${m.gateways.length > 1 ? 'their' : 'its'} sketches are refused (sketch_key_mismatch) and no flow with ${m.gateways.length > 1 ? 'them' : 'it'} is written; while the group's secret is being replaced, the gateways that already have the new one are the ones named until more than half have it; ${KEY_MISMATCH_FIX}`;
  return `${g}: ${m.gateways.join(', ')} give different key_check values (epoch ${m.epoch}) and none is held by most of them, so which secret file is the group's cannot be told: one of them (or each) holds another group's or a replaced one, and no flow between gateways that disagree is written; ${KEY_MISMATCH_FIX}`;
}

export interface AggregatorStats {
  received: number;
  rejected: number;
  /** Gateways of corridor groups whose key_check disagrees now (KeyMismatch: a secret file not the group's). */
  keyMismatches: number;
  pointsWritten: number;
  /** Points the server refused (dropped; their messages acknowledged). */
  pointsDropped: number;
  acked: number;
  queueDepth: number;
  writeFailures: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Aggregator extends EventEmitter {
  readonly config: AggregatorConfig;
  readonly metrics: AggregatorMetrics;
  readonly log: Logger;
  readonly sink: Sink;
  /** Adds calibrated and people, people_low, people_high to the points of calibrated zones; null: none. */
  calibration: Calibration | null;
  /** Why the last SIGHUP reload of the calibration failed (null: none failed since the last good one). */
  calibrationProblem: string | null = null;

  private readonly intake: Intake;
  private readonly pipeline: WritePipeline;
  private readonly liveness: GatewayLiveness;
  private readonly rejectLog: RejectLog;
  /** Registry, limit on unregistered gateways, conflict memory (./registry.ts). */
  readonly identity: GatewayIdentity;
  /** What was written recently, for the page at / (./recent.ts); null when the page is off. */
  readonly recent: RecentWrites | null;
  private http: HealthServer | null = null;
  /** The page at / (null when off). */
  web: AggregatorWeb | null = null;
  private missingTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** Received messages not yet added to the Prometheus counter (added per scrape, not per message). */
  private readonly uncounted = { counts: 0, status: 0, sketch: 0 };
  private readonly counters = { received: 0, rejected: 0 };
  /** Corridor flows (./flows/): null without corridors in the config. */
  readonly flows: CorridorFlows | null;
  readonly ownership: Ownership | null;
  private readonly link: CorridorLink | null;
  private readonly windowMismatch = new WindowMismatchNotes();
  /** Gateway clocks that run behind, told by their statuses (./clock-skew.ts). */
  private readonly clockSkew: ClockSkew;
  /** Members of a corridor group owned here whose clocks disagree, told by their statuses (./flows/clock-offset.ts); null without corridors. */
  readonly corridorClocks: CorridorClocks | null;

  constructor(
    config: unknown = {},
    private readonly opts: AggregatorOptions = {},
  ) {
    super();
    this.config = resolveConfig(config);
    this.log = opts.logger ?? createLogger({ component: 'aggregator', level: this.config.logLevel, format: this.config.logFormat });
    this.metrics = new AggregatorMetrics(opts.processMetrics ?? false, () => this.syncMetrics());
    routeClientLog(this.log);
    this.calibration = opts.calibration ?? null;
    this.rejectLog = new RejectLog(this.log, opts.rejectLog);
    this.identity = new GatewayIdentity(this.config.gateways, this.log);
    this.sink = opts.sink ?? createSink(this.config.influx, this.config.out, this.config.batch.maxBuffer * 2 + 1000);
    this.recent = this.config.http.port !== null && this.config.http.page ? new RecentWrites({ maxAgeMs: this.config.http.history, ...opts.recent }) : null;
    // influx.create: a database missing at a write (InfluxDB was down at start and came back without
    // it, or it was dropped) is created then, once for the writes that met it at the same time.
    let recreating: Promise<boolean | string> | null = null;
    const recreate =
      !opts.sink && this.config.influx.url && this.config.influx.create
        ? () =>
            (recreating ??= recreateMissing(this.config.influx, this.log)
              .catch((e: unknown) => redactUrlsIn(e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' '))
              .finally(() => (recreating = null)))
        : undefined;
    this.pipeline = new WritePipeline(this.sink, this.config.batch, this.log, this.metrics, recreate);
    this.pipeline.on('written', (lines) => this.emit('written', lines));
    this.pipeline.on('dropped', (points, reason) => this.emit('dropped', points, reason));
    this.liveness = new GatewayLiveness(
      this.config.missingAfterWindows,
      this.log,
      this.metrics,
      (lines, site, gateway, windows, at) => this.pipeline.addPoints(lines, this.recent ? () => this.recent!.missing(site, gateway, windows, at) : undefined),
      (site, gateway) => this.emit('missing', site, gateway),
      () => performance.now(),
    );
    const corridors = this.config.corridors;
    this.flows = corridors.length
      ? new CorridorFlows(corridors, { maxAheadMs: this.config.maxAhead, onKeyMismatch: (group, m) => this.onKeyMismatch(group, m) })
      : null;
    for (const c of corridors) this.metrics.corridorKeyMismatch.set({ group: c.group }, 0);
    this.corridorClocks = corridors.length
      ? new CorridorClocks(
          corridors,
          (group) => this.flows!.owns(group),
          (group, m) => this.onClockMismatch(group, m),
        )
      : null;
    for (const c of corridors) this.metrics.corridorClockMismatch.set({ group: c.group }, 0);
    this.clockSkew = new ClockSkew(this.config.maxAhead, this.log);
    this.ownership = corridors.length ? new Ownership(instanceId(this.config.mqtt.clientId), this.flows!.groupIds) : null;
    this.intake = new Intake(this.config.mqtt, this.config.batch.maxBuffer, this.log, this.metrics, (topic, payload, packet) =>
      this.onMessage(topic, payload, packet.retain),
    );
    this.link = this.ownership
      ? new CorridorLink(
          this.config.mqtt,
          this.ownership,
          this.log,
          (topic, payload, retained) => this.onCorridorMessage(topic, payload, retained),
          () => this.reassign(Date.now()),
        )
      : null;
  }

  /** Port of the /healthz and /metrics server (null when off). */
  get httpPort(): number | null {
    return this.http?.port ?? null;
  }

  get connected(): boolean {
    return this.intake.connected;
  }

  stats(): AggregatorStats {
    const p = this.pipeline;
    return {
      ...this.counters,
      keyMismatches: (this.flows?.keyMismatches ?? []).reduce((n, m) => n + m.gateways.length, 0),
      pointsWritten: p.pointsWritten,
      pointsDropped: p.pointsDropped,
      acked: this.intake.acked,
      queueDepth: this.queueDepth,
      writeFailures: p.writeFailures,
    };
  }

  private syncMetrics(): void {
    const u = this.uncounted;
    if (u.counts) this.metrics.messages.inc({ kind: 'counts' }, u.counts);
    if (u.status) this.metrics.messages.inc({ kind: 'status' }, u.status);
    if (u.sketch) this.metrics.messages.inc({ kind: 'sketch' }, u.sketch);
    u.counts = u.status = u.sketch = 0;
    for (const group of this.flows?.groupIds ?? []) {
      const spread = this.corridorClocks!.spread(group);
      if (spread === null) this.metrics.corridorClockSpread.remove({ group });
      else this.metrics.corridorClockSpread.set({ group }, spread);
    }
    this.metrics.queueDepth.set(this.queueDepth);
  }

  private get queueDepth(): number {
    return this.intake.unacked;
  }

  /** Starts the HTTP server and connects; resolves once subscribed (rejects if the broker refuses us). */
  async start(): Promise<void> {
    const { http } = this.config;
    if (http.port !== null) {
      const healthState = (): HealthState => ({
        mqttConnected: this.connected,
        mqttProblem: this.intake.connectProblem,
        writeFailingSince: this.pipeline.writeFailingSince,
        writeProblem: this.pipeline.writeProblem,
        drops: this.pipeline.recentDrops(),
        queueDepth: this.queueDepth,
        sink: this.sink.target,
        calibrationProblem: this.calibrationProblem,
        gatewayLimitProblem: this.identity.limitProblem(),
        corridorKeyProblems: this.flows?.keyMismatches.map(keyMismatchText) ?? [],
        corridorClockProblems: this.corridorClocks?.mismatches.map(clockMismatchText) ?? [],
      });
      if (this.recent) {
        const web = new AggregatorWeb(
          this.recent,
          http.host,
          { user: http.user, password: http.password, token: http.token },
          this.opts.web,
          () => healthReport(healthState()).body,
        );
        this.web = web;
        web.hub.on('connect', () => this.metrics.webViewers.set(web.hub.size));
        web.hub.on('disconnect', () => this.metrics.webViewers.set(web.hub.size));
        web.hub.on('drop', (_c, buffered) => {
          this.metrics.webDropped.inc();
          this.metrics.webViewers.set(web.hub.size);
          this.log.debug({ buffered, limit: web.hub.maxBufferBytes }, 'page viewer fell behind; dropped');
        });
        if (!web.access.open) this.log.warn({ host: http.host }, `page not served: ${web.access.refusal}`);
      }
      this.http = await startHealthServer(this.metrics, healthState, http.port, http.host, this.web ? (req, res) => this.web!.handle(req, res) : undefined);
    }
    // InfluxDB identified and its database or bucket checked (or created) before subscribing: a
    // mistake stops here (PreflightError) instead of ending in endless write retries.
    if (!this.opts.sink && !this.opts.preflighted) await preflight(this.config.influx, this.log);
    // The line-protocol file likewise: a path no write can take stops here (a full disk does not: it
    // is retried until there is space, as later).
    if (!this.opts.sink && this.sink instanceof FileSink)
      await this.sink.check().catch((e: NodeJS.ErrnoException) => {
        if (!['EISDIR', 'ENOTDIR', 'EROFS', 'EACCES', 'EPERM'].includes(e.code ?? '')) return;
        throw new PreflightError(`out ${fileWriteProblem(this.config.out, e).message}`);
      });
    this.missingTimer = setInterval(() => {
      const now = Date.now();
      this.checkMissing(now);
      this.checkCorridorIdle(now);
    }, this.config.missingCheckInterval);
    this.missingTimer.unref();
    this.log.info(
      {
        sink: this.sink.target,
        broker: redactUrl(this.config.mqtt.url),
        client_id: this.config.mqtt.clientId,
        group: this.config.mqtt.group || null,
        gateways_registered: this.identity.registered,
        allow_unknown: this.config.gateways.allow_unknown,
        http: this.http ? `${http.host}:${this.httpPort}` : null,
        page: this.web ? (this.web.access.open ? `http://${http.host.includes(':') ? `[${http.host}]` : http.host}:${this.httpPort}/` : 'refused') : null,
      },
      'aggregator starting',
    );
    await this.intake.start();
    if (this.stopping) throw new StoppedError('stopped before the corridor link was started');
    await this.link?.start();
  }

  /** Takes the groups this instance owns now, and lets go of the others (./flows/ownership.ts). */
  private reassign(now: number): void {
    const flows = this.flows;
    const own = this.ownership;
    if (!flows || !own) return;
    const owned = new Set(own.owned());
    for (const g of flows.groupIds) {
      if (owned.has(g) && !flows.owns(g)) {
        flows.own(g, now);
        this.log.info({ group: g, instances: own.instances }, 'corridor group owned here: its flows are computed by this aggregator');
      } else if (!owned.has(g) && flows.owns(g)) {
        flows.disown(g);
        this.log.info({ group: g, instances: own.instances }, 'corridor group owned by another aggregator: standing by (its sketches held, nothing computed)');
      }
    }
    this.metrics.corridorGroupsOwned.set(owned.size);
    this.metrics.sketchesHeld.set(flows.held);
    this.corridorClocks?.check(now);
  }

  /** A message refused: counted, logged (its reason, topic and detail, never its payload), reported. */
  private reject(reason: string, topic: string, detail: string, now: number): void {
    this.counters.rejected++;
    this.metrics.rejected.inc({ reason });
    this.rejectLog.record(reason, topic, detail, now);
    this.emit('rejected', reason, topic);
  }

  /** Per corridor group: when its current log interval began, the lines logged in it, the changes since not logged, and the timer that logs the state at its end. */
  private readonly keyLogged = new Map<string, { since: number; lines: number; unlogged: number; timer: NodeJS.Timeout | null }>();

  /**
   * A change of a group's key_check mismatch: the metric at once; a log line for the first
   * KEY_LOG_BURST changes of an interval of KEY_LOG_INTERVAL_MS (so a first line naming both
   * members of a pair is followed at once by the one naming the odd one out, when a third gives its
   * key_check), the changes after those (a member that alternates between two secret files, or two
   * gateways under one id with different ones, change it with every window) as one line at the
   * interval's end with the state then and how many changes it stands for.
   */
  private onKeyMismatch(group: string, m: KeyMismatch | null): void {
    this.metrics.corridorKeyMismatch.set({ group }, m?.gateways.length ?? 0);
    let s = this.keyLogged.get(group);
    if (!s) this.keyLogged.set(group, (s = { since: Number.NEGATIVE_INFINITY, lines: 0, unlogged: 0, timer: null }));
    const now = performance.now();
    const every = this.opts.keyLogIntervalMs ?? KEY_LOG_INTERVAL_MS;
    if (now - s.since >= every && !s.timer) {
      s.since = now;
      s.lines = 0;
    }
    if (s.lines < KEY_LOG_BURST) {
      s.lines++;
      this.logKeyState(group, m, 1, every);
      return;
    }
    s.unlogged++;
    const state = s;
    state.timer ??= setTimeout(
      () => {
        state.since = performance.now();
        state.lines = 1;
        if (!this.stopping) this.flushKeyLog(group, state);
      },
      Math.max(0, state.since + every - now),
    );
    state.timer.unref();
  }

  /** The changes of a group's key_check not logged yet, if any, as one line with the state now. */
  private flushKeyLog(group: string, s: { unlogged: number; timer: NodeJS.Timeout | null }): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    if (s.unlogged > 0)
      this.logKeyState(group, this.flows?.keyMismatches.find((k) => k.group === group) ?? null, s.unlogged, this.opts.keyLogIntervalMs ?? KEY_LOG_INTERVAL_MS);
    s.unlogged = 0;
  }

  /** The group's key_check state as a log line, standing for `changes` changes. */
  private logKeyState(group: string, m: KeyMismatch | null, changes: number, every: number): void {
    const more =
      changes > 1
        ? ` (${changes} changes since the last line: after ${KEY_LOG_BURST} lines in ${every / 1000} s, one line at the end of it; /healthz and presence_aggregator_corridor_key_mismatch follow each)`
        : '';
    if (m) this.log.warn({ group, epoch: m.epoch, gateways: m.gateways, changes, fix: KEY_MISMATCH_FIX }, keyMismatchText(m) + more);
    else this.log.info({ group, changes }, `corridor group "${group}": the key_check of its gateways agree again${more}`);
  }

  /** The members of a corridor group whose clocks disagree changed: one line in the log, the gauge. */
  private onClockMismatch(group: string, m: ClockMismatch | null): void {
    this.metrics.corridorClockMismatch.set({ group }, m?.gateways.length ?? 0);
    if (m)
      this.log.warn(
        {
          group,
          gateways: m.gateways.map((x) => x.gateway),
          offsets_s: Object.fromEntries(m.gateways.map((x) => [x.gateway, x.offsetS])),
          ...(m.majority ? { majority: m.majority } : {}),
          spread_s: m.spreadS,
          fix: CLOCK_MISMATCH_FIX,
        },
        clockMismatchText(m),
      );
    else if (!this.flows?.owns(group))
      this.log.info({ group }, `corridor group "${group}": owned by another aggregator now, which judges whether its gateways' clocks agree`);
    else
      this.log.info(
        { group },
        `corridor group "${group}": the clocks of its gateways agree again (within ${OFFSET_CLEAR_MS / 1000} s, or fewer than two of them heard over the last ${OFFSET_SPAN_MS / 60_000} minutes)`,
      );
  }

  /** A corridor sketch: held (by the owner, or by a standby for a take-over) or ignored, acknowledged at once; flow points due are written. */
  private onSketch(topic: string, payload: Buffer, now: number): void {
    const flows = this.flows!;
    let r: ReturnType<CorridorFlows['accept']>;
    try {
      r = flows.accept(topic, payload, now);
    } catch (e) {
      r = { ok: false, reason: 'sketch_invalid', detail: `cannot be read: ${(e as Error).message}` };
    }
    this.metrics.sketchesHeld.set(flows.held);
    // sketches held or waiting before, refused now: once the group's window length was known, or
    // once most members had given their key_check and theirs differs
    for (const w of r.waited ?? []) this.reject(w.reason, w.topic, w.detail, now);
    if (!r.ok) {
      // the reason and the topic only: a sketch's bits never go to a log
      this.reject(r.reason, topic, r.detail, now);
      return;
    }
    if (!r.held) this.metrics.sketchesIgnored.inc();
    if (r.lines.length) {
      this.metrics.flowIntervals.inc();
      this.emit('flows', r.lines);
      // the sketch itself needs no write: its acknowledgement does not wait for the flow points
      void this.pipeline.addMessage(r.lines).catch(() => {});
    }
  }

  /** One message in. Returns what its PUBACK waits for: nothing (rejected: acknowledge now) or the
   *  write of the batch that holds its points. */
  private onCorridorMessage(topic: string, payload: Buffer, retained: boolean): void {
    const now = Date.now();
    const inst = aliveInstance(topic);
    if (inst !== null) {
      if (this.ownership!.update(inst, payload)) this.reassign(now);
      return;
    }
    this.counters.received++;
    this.uncounted.sketch++;
    if (retained) {
      // As a retained counts message (onMessage): a sketch is never retained, and the broker's stored
      // copy, sent again at every subscribe, is not a window as it was sent; a stale one would be held
      // and become the first window a group's flows start from.
      this.reject(
        'retained',
        topic,
        'a retained copy the broker keeps for this sketch topic (sketches are never retained); clear it with an empty retained publish: mosquitto_pub -r -n -t <topic>',
        now,
      );
      return;
    }
    this.onSketch(topic, payload, now);
  }

  private onMessage(topic: string, payload: Buffer, retained = false): Promise<void> | undefined {
    const now = Date.now();
    this.counters.received++;
    let r: Classified;
    if (retained && topicKind(topic) === 'counts') {
      // A counts message is never retained (contract/README.md): the broker's stored copy, sent again
      // at every subscribe (each reconnect), is not a window as it was sent, and would make a silent
      // gateway look back. The live delivery of the same publish comes without the flag.
      r = {
        ok: false,
        reason: 'retained',
        detail:
          'a retained copy the broker keeps for this counts topic (counts are never retained); clear it with an empty retained publish: mosquitto_pub -r -n -t <topic>',
      };
    } else
      try {
        r = classify(topic, payload, now, this.config.maxAhead, this.calibration);
      } catch (e) {
        r = { ok: false, reason: 'invalid', detail: `cannot be turned into points: ${(e as Error).message}` };
      }
    if (r.ok) {
      // Who may publish what (registry, limit on unknown gateways), then conflicts with accepted windows.
      const m = r.message;
      // The broker's retained copy of a status takes no place among gateways.max_known (registry.ts).
      const denied =
        this.identity.admit(m.site, m.gateway, m.zone, !(retained && r.kind === 'status')) ??
        (r.kind === 'counts' ? this.identity.checkCounts(r.message, r.start, r.end) : null);
      if (denied) r = { ok: false, ...denied };
    }
    if ((r.ok ? r.kind : topicKind(topic)) === 'status') this.uncounted.status++;
    else this.uncounted.counts++;
    if (!r.ok) {
      this.reject(r.reason, topic, r.detail, now);
      return undefined;
    }
    const recent = this.recent;
    if (r.kind === 'counts') {
      const m = r.message;
      this.liveness.seen(m.site, m.gateway, r.windowMs, m.complete, now, m.zone);
      this.windowMismatch.check(this.calibration, m, this.log);
      if (!recent) return this.pipeline.addMessage(r.lines);
      // The people that went into the points (classify used the same calibration just now).
      const cal = this.calibration;
      const people = cal ? windowPeople(cal, m, cal.radio, m[cal.radio]) : null;
      const calibrated = cal ? calibrationFor(cal, m, cal.radio) !== null : false;
      return this.pipeline.addMessage(r.lines, () => recent.counts(m, people, Date.now(), calibrated));
    }
    const m = r.message;
    // A live status (not the broker's retained copy) tells how far the gateway's clock runs behind.
    if (!retained && m.ts) {
      const ts = Date.parse(m.ts);
      this.clockSkew.status(m.site, m.gateway, ts, now);
      // and, among the members of a corridor group, whether their clocks agree
      this.corridorClocks?.status(m.site, m.gateway, ts, now);
    }
    // A gateway recorded as missing stays so in its status points until a window of it arrives. One
    // whose clock was judged behind gets its points stamped by this clock (ts + how far behind): at
    // its own ts they sorted before the offline last will the broker sent (stamped on receipt), and
    // the dashboards read it offline. A retained copy too: ts + behind puts it about where its live
    // delivery went, not days back. Before the judgement (3 minutes of late statuses; at a start, so
    // the retained statuses the broker replays) they keep their ts.
    const behind = this.clockSkew.behind(m.site, m.gateway);
    if (retained && this.intake.sessionPresent) {
      // The broker's stored copy of a status, sent again at each subscribe. With the session kept,
      // the status itself was delivered to this session when it was published, or is queued for it:
      // written then. Not written again; the page takes it (its state, as before). Written again,
      // a copy without ts (an offline last will or clean stop) was a new offline point at every
      // reconnect and restart, stamped on receipt, and the dashboards' "Last seen" said a gateway
      // stopped weeks ago was seen just now (and kept it in their 30 days); a copy with ts of a
      // gateway whose clock runs behind was a second point at every restart, at its ts (days back,
      // the new process not having judged the clock yet) beside the live one at ts + behind. Without
      // the session (a first start, or one past mqtt.session_expiry) the copy is all there is, and is
      // written (at receipt without ts).
      recent?.status(m, Date.now(), now, behind, performance.now());
      return undefined;
    }
    const missing = this.liveness.isMissing(m.site, m.gateway);
    const lines = missing || (behind !== null && m.ts) ? statusLines(m, now, missing, behind) : r.lines;
    const arrival = performance.now(); // the order of receipt, whatever the wall clock does
    return this.pipeline.addMessage(lines, recent ? () => recent.status(m, Date.now(), now, behind, arrival) : undefined);
  }

  /** Records gateways silent for missingAfterWindows window lengths (runs every missingCheckInterval). */
  checkMissing(now: number): void {
    // While the aggregator itself cannot hear (disconnected, or not reading because writes fail) a
    // silent gateway proves nothing.
    this.liveness.check(now, this.connected && !this.intake.paused && this.pipeline.writeFailingSince === null);
  }

  /**
   * Corridor groups that have had no sketch for their horizon + one interval of this clock: the
   * intervals their held sketches allow are computed and written, then the sketches are dropped
   * (./flows/intake.ts expireIdle; runs every missingCheckInterval).
   */
  checkCorridorIdle(now: number): void {
    const flows = this.flows;
    if (!flows) return;
    const lines = flows.expireIdle(now);
    // members gone silent leave the clock comparison; ownership may have changed
    this.corridorClocks?.check(now);
    this.metrics.sketchesHeld.set(flows.held);
    if (lines.length) {
      this.metrics.flowIntervals.inc();
      this.emit('flows', lines);
      void this.pipeline.addMessage(lines).catch(() => {});
    }
  }

  /**
   * Stops looking for silent gateways (and idle corridor groups). For a run that has ended, as the
   * demo's: its gateways stopped because the replay was over, and recording them as missing would
   * write missing points (and show them so on the page) for gateways that did all they had to.
   */
  stopSilenceChecks(): void {
    if (this.missingTimer) clearInterval(this.missingTimer);
    this.missingTimer = null;
  }

  /** Gateways currently recorded as missing, as site/gateway. */
  missingGateways(): string[] {
    return this.liveness.missing();
  }

  /** Resolves once everything received so far is written and acknowledged (or `timeoutMs` passes). */
  async drain(timeoutMs = 30_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const writes = this.pipeline.flushNow();
      if (writes.length) await Promise.race([...writes, sleep(Math.max(0, deadline - Date.now()))]);
      if (this.pipeline.idle && this.queueDepth === 0) return true;
      await sleep(10);
    }
    return false;
  }

  /** Writes and acknowledges what it holds (up to `timeoutMs`), then disconnects. What is left
   *  unacknowledged stays with the broker's session and is delivered again at the next start. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.pipeline.finishing();
    this.intake.closingSoon();
    // a clean stop clears this instance's alive message (a lost connection: the broker's last will does)
    await this.link?.stop();
    // a group's key_check changes not logged yet (more than three in its minute): logged now, as the state at the stop
    for (const [group, s] of this.keyLogged) this.flushKeyLog(group, s);
    this.flows?.dropAll();
    if (this.missingTimer) clearInterval(this.missingTimer);
    const drained = await this.drain(timeoutMs);
    if (!drained) this.log.warn({ unacknowledged: this.queueDepth }, 'stopping with unwritten messages; the broker delivers them again');
    this.pipeline.abandon();
    await this.intake.end(!drained);
    await this.sink.close();
    this.web?.close();
    await this.http?.close();
    this.rejectLog.flush();
    const s = this.stats();
    this.log.info(
      {
        received: s.received,
        rejected: s.rejected,
        points_written: s.pointsWritten,
        points_dropped: s.pointsDropped,
        acked: s.acked,
        queue_depth: s.queueDepth,
        write_failures: s.writeFailures,
      },
      'aggregator stopped',
    );
  }
}
