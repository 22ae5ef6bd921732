// /healthz and Prometheus /metrics for the aggregator (and, through `extra`, its page: ./web.ts). Each Aggregator has its own registry, so
// several can run in one process (tests, demo).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { addStandardMetrics } from '../scripts/lib/metrics.ts';
import { answerFailure, listenServer, refuseMethod, servedPath, SERVER_OPTIONS, type ListeningServer } from '../scripts/lib/http.ts';
import { REJECT_REASONS } from './messages.ts';
import { DROP_REASONS } from './writer.ts';
import { redactLogLine } from '../scripts/lib/secrets.ts';

export class AggregatorMetrics {
  readonly registry = new Registry();
  readonly messages = new Counter({
    name: 'presence_aggregator_messages_total',
    help: 'MQTT messages received, by topic kind',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'presence_aggregator_rejected_total',
    help: 'Messages rejected (acknowledged, not written), by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly points = new Counter({
    name: 'presence_aggregator_points_written_total',
    help: 'Points stored by the server, by measurement (points it refused are not counted here)',
    labelNames: ['measurement'],
    registers: [this.registry],
  });
  readonly pointsDropped = new Counter({
    name: 'presence_aggregator_points_dropped_total',
    help: 'Points the server refused and that can never be written (their messages are acknowledged), by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly acked = new Counter({
    name: 'presence_aggregator_acked_total',
    help: 'Messages acknowledged to the broker (after their points were written)',
    registers: [this.registry],
  });
  readonly writeFailures = new Counter({
    name: 'presence_aggregator_write_failures_total',
    help: 'Write requests that did not store the whole batch (retried, split or partly dropped)',
    registers: [this.registry],
  });
  readonly writeSeconds = new Histogram({
    name: 'presence_aggregator_write_seconds',
    help: 'Latency of successful batch writes',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'presence_aggregator_batch_messages',
    help: 'Messages per written batch',
    buckets: [1, 10, 100, 500, 1000, 5000, 10000, 50000],
    registers: [this.registry],
  });
  readonly sketchesHeld = new Gauge({
    name: 'presence_aggregator_sketches_held',
    help: 'Corridor sketches held in memory now (kept for the lag horizon, dropped once used; never written)',
    registers: [this.registry],
  });
  readonly sketchesIgnored = new Counter({
    name: 'presence_aggregator_sketches_ignored_total',
    help: 'Valid corridor sketches not kept: of windows before the first whole interval this aggregator sees (dropped at once)',
    registers: [this.registry],
  });
  readonly corridorKeyMismatch = new Gauge({
    name: 'presence_aggregator_corridor_key_mismatch',
    help: "Gateways of a corridor group whose sketches' key_check disagrees with the other members' (a secret file not the group's; 0: they agree), by group",
    labelNames: ['group'],
    registers: [this.registry],
  });
  readonly corridorClockMismatch = new Gauge({
    name: 'presence_aggregator_corridor_clock_mismatch',
    help: "Gateways of a corridor group owned here whose clocks disagree with the other members' by more than 15 s, estimated from their statuses (0: they agree, or not judged), by group",
    labelNames: ['group'],
    registers: [this.registry],
  });
  readonly corridorClockSpread = new Gauge({
    name: 'presence_aggregator_corridor_clock_spread_seconds',
    help: "The largest difference between the clocks of a corridor group's members, estimated from their statuses over the last 10 minutes (present while at least two members are judged and the group is owned here), by group",
    labelNames: ['group'],
    registers: [this.registry],
  });
  readonly corridorGroupsOwned = new Gauge({
    name: 'presence_aggregator_corridor_groups_owned',
    help: 'Corridor groups whose flows this aggregator computes',
    registers: [this.registry],
  });
  readonly flowIntervals = new Counter({
    name: 'presence_aggregator_flow_intervals_total',
    help: 'Corridor group intervals whose flows were computed',
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'presence_aggregator_queue_depth', help: 'Messages received and not yet acknowledged', registers: [this.registry] });
  readonly connected = new Gauge({ name: 'presence_aggregator_mqtt_connected', help: '1 while connected to the broker', registers: [this.registry] });
  readonly gatewaysMissing = new Gauge({
    name: 'presence_aggregator_gateways_missing',
    help: 'Gateways currently silent for too long',
    registers: [this.registry],
  });
  readonly webViewers = new Gauge({
    name: 'presence_aggregator_web_viewers',
    help: "Viewers connected to the page's event stream",
    registers: [this.registry],
  });
  readonly webDropped = new Counter({
    name: 'presence_aggregator_web_viewers_dropped_total',
    help: 'Viewers of the page dropped because they fell behind (their unsent bytes passed the per-viewer bound)',
    registers: [this.registry],
  });
  readonly gatewaysKnown = new Gauge({
    name: 'presence_aggregator_gateways_known',
    help: 'Gateways (site/gateway) with at least one counts message accepted since this aggregator started; a gateway heard only through status messages, or whose windows were all rejected, is not counted',
    registers: [this.registry],
  });

  /** `beforeScrape` brings counters kept outside prom-client (per-message hot path) up to date. */
  sync(): void {
    this.beforeScrape();
  }

  constructor(
    processMetrics = false,
    private readonly beforeScrape: () => void = () => {},
  ) {
    for (const reason of REJECT_REASONS) this.rejected.inc({ reason }, 0);
    for (const reason of DROP_REASONS) this.pointsDropped.inc({ reason }, 0);
    // Process metrics under their standard names (process_*, nodejs_*), presence_build_info always.
    addStandardMetrics(this.registry, 'aggregator', processMetrics);
  }
}

export interface HealthState {
  mqttConnected: boolean;
  /** While not connected: why the last attempt failed and the fix. */
  mqttProblem?: { error: string; fix: string } | null;
  /** Time (ms) since the last failed write when the latest write failed; null when writes go through. */
  writeFailingSince: number | null;
  /** What holds writes back while they fail (credentials, missing database, ...). */
  writeProblem?: string | null;
  /** Points refused by the server recently (they make the status "degraded"). */
  drops?: Array<{ reason: string; points: number; last: number; message: string; hint?: string }>;
  queueDepth: number;
  sink: string;
  /** A calibration reload that failed (the one loaded before is in use): "degraded" until one succeeds. */
  calibrationProblem?: string | null;
  /** Messages rejected recently for gateways.max_known ("degraded": their windows are lost). */
  gatewayLimitProblem?: string | null;
  /** Corridor groups whose members' key_check disagrees ("degraded": their flows are not written). */
  corridorKeyProblems?: string[];
  /** Corridor groups whose members' clocks disagree ("degraded": their flows and travel times are shifted). */
  corridorClockProblems?: string[];
}

/** What /healthz answers (and the page shows): status, the problems with their fixes, queue depth, sink. */
export interface HealthReport {
  status: 'ok' | 'degraded' | 'unhealthy';
  problems: string[];
  queue_depth: number;
  sink: string;
  dropped?: Record<string, number>;
}

/**
 * The health report of `s`: its HTTP status (503 when unhealthy), and its body as JSON, through the
 * logs' redaction (a problem's text may quote a setting a URL was pasted into), the same for
 * /healthz and the page (./web.ts), which answer without credentials on loopback.
 */
export function healthReport(s: HealthState, now = Date.now()): { code: number; body: string } {
  const problems: string[] = [];
  if (!s.mqttConnected) problems.push(`not connected to the MQTT broker${s.mqttProblem ? ` (${s.mqttProblem.error}; fix: ${s.mqttProblem.fix})` : ''}`);
  if (s.writeFailingSince !== null)
    problems.push(`writes to ${s.sink} failing for ${Math.round((now - s.writeFailingSince) / 1000)} s${s.writeProblem ? `: ${s.writeProblem}` : ''}`);
  const unhealthy = problems.length > 0;
  const drops = s.drops ?? [];
  for (const d of drops)
    problems.push(
      `${d.points} point(s) refused by InfluxDB and dropped (${d.reason}), the latest ${Math.round((now - d.last) / 1000)} s ago: ${d.message}${d.hint ? ` (${d.hint})` : ''}`,
    );
  if (s.calibrationProblem) problems.push(s.calibrationProblem);
  if (s.gatewayLimitProblem) problems.push(s.gatewayLimitProblem);
  const keyProblems = s.corridorKeyProblems ?? [];
  problems.push(...keyProblems);
  const clockProblems = s.corridorClockProblems ?? [];
  problems.push(...clockProblems);
  const status = unhealthy
    ? 'unhealthy'
    : drops.length || s.calibrationProblem || s.gatewayLimitProblem || keyProblems.length || clockProblems.length
      ? 'degraded'
      : 'ok';
  const report: HealthReport = {
    status,
    problems,
    queue_depth: s.queueDepth,
    sink: s.sink,
    ...(drops.length ? { dropped: Object.fromEntries(drops.map((d) => [d.reason, d.points])) } : {}),
  };
  return { code: unhealthy ? 503 : 200, body: redactLogLine(JSON.stringify(report)) };
}

export type HealthServer = ListeningServer;

/** A handler of further paths (the page, ./web.ts): true when it answered the request. */
export type ExtraRoutes = (req: IncomingMessage, res: ServerResponse) => boolean;

/** 200 {"status":"ok"} when connected and writes go through; 200 {"status":"degraded"} when the
 *  server refused points recently (they are dropped), gateways.max_known rejected messages recently,
 *  a calibration reload failed, or a corridor group's members disagree on key_check or on the time; 503 {"status":"unhealthy"} with the reasons
 *  when not connected to the broker or while writes fail. */
export async function startHealthServer(
  metrics: AggregatorMetrics,
  state: () => HealthState,
  port: number,
  host: string,
  extra?: ExtraRoutes,
): Promise<HealthServer> {
  const server = createServer(SERVER_OPTIONS, async (req, res) => {
    try {
      const url = servedPath(req, res);
      if (url === undefined) return;
      if (extra?.(req, res)) return;
      if ((url === '/metrics' || url === '/healthz') && refuseMethod(req, res, url)) return;
      if (url === '/metrics') {
        metrics.sync();
        const body = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(body);
      } else if (url === '/healthz') {
        const report = healthReport(state());
        res.writeHead(report.code, { 'content-type': 'application/json' });
        res.end(report.body);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end(`not found: try ${extra ? '/ (the page), ' : ''}/healthz or /metrics\n`);
      }
    } catch (e) {
      answerFailure(res, String(e));
    }
  });
  return listenServer(server, host, port);
}
