// End to end, with real parts only: the simulator makes a scaled-down King's Day hour on the square
// (three gateways, 1-minute windows) and the same quarter hour one week earlier; real gateways (WASM
// firmware, on-disk queues) replay the captures at full speed into a real Mosquitto; the aggregator
// writes to a real influxd. Then every dashboard's variable and panel queries, expanded the way
// Grafana expands them, must return data, and one zone's counts must match the simulator's ground
// truth within the counting error the simulator itself reports.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { Calibration, parseCalibration } from '../aggregator/calibration/index.ts';
import { runPeriod, type PeriodResult } from '../scripts/demo/index.ts';
import { evaluate, type Evaluation } from '../simulator/evaluate.ts';
import { BURST_ADDRESSES_DEFAULT } from '../firmware/host/types.ts';
import { InfluxQL, describeResult, loadDashboard, runDashboard, type QueryResult, type VariableResult } from '../dashboards/queries.ts';
import { publishAll, publisher } from './aggregator-helpers.ts';
import { corridorRun, sketchItem } from './support/corridor.ts';
import { eventually } from './support/wait.ts';

const SUITE = 'end to end (simulator -> gateways -> Mosquitto -> aggregator -> influxd -> dashboards)';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('influxd', 'influxdb', SUITE);
const root = join(import.meta.dirname, '..');

const SCENARIO = 'kingsday-square';
const SEED = 11;
const SCALE = 0.05; // about 25 people at the start of the hour, 300 at its end
const WINDOW_S = 60;
const DURATION_S = 3600;
const LAST_WEEK_S = 900;
const ZONE = 'square-west';
const GATEWAY = 'gw-west';

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-e2e-'));
  const log = pino({ level: 'warn' }, pino.destination({ dest: join(dir, 'e2e.log'), sync: false }));
  // The hour ends at the last full minute, so dashboards see it as "the last hour".
  const endMs = Math.floor(Date.now() / 60_000) * 60_000;
  const startMs = endMs - DURATION_S * 1000;
  let mosquitto: Mosquitto;
  let influxd: Influxd;
  let aggregator: Aggregator;
  let today: PeriodResult;
  let lastWeek: PeriodResult;
  let evaluation: Evaluation;
  const dashboards: Record<string, { variables: VariableResult[]; queries: QueryResult[] }> = {};

  beforeAll(async () => {
    mosquitto = await new Mosquitto().start();
    influxd = await new Influxd('presence').start();
    // One zone calibrated on Wi-Fi (the others stay uncalibrated), so the crowd dashboard's people
    // panels and its "devices (uncalibrated)" panels both have data.
    const calibration = new Calibration(
      parseCalibration(
        `format: presence-calibration/1\nestimator: { field: estimate, radio: wifi, window_s: ${WINDOW_S} }\nlevel: 0.9\nzones:\n  ${ZONE}:\n` +
          '    k: { value: 0.5, low: 0.4, high: 0.6, sd: 0.05 }\n    b: { value: 2, low: 1, high: 3, sd: 0.5 }\n    corr_kb: 0.3\n    residual_sd: 1\n',
      ),
    );
    aggregator = new Aggregator(
      {
        mqtt: { url: mosquitto.url, clientId: 'presence-e2e-aggregator' },
        influx: { url: influxd.url, api: 'v1', database: 'presence' },
        http: { port: null },
        // The traffic dashboard's corridor flow panels: corridor sketches of two gateways of the site
        // (made by the reference sketch of test/support: the scenario's gateways are not a corridor).
        corridors: [{ group: 'e2e-corridor', site: 'kingsday', members: ['gw-a', 'gw-b'], horizon: '3m' }],
      },
      { logger: log.child({ component: 'aggregator' }), calibration },
    );
    await aggregator.start();
    const common = { scenario: SCENARIO, windowS: WINDOW_S, scale: SCALE, mqttUrl: mosquitto.url, speed: 'max' as const, queueDir: join(dir, 'queues'), log };
    lastWeek = await runPeriod({
      ...common,
      seed: SEED + 1,
      startMs: startMs - 7 * 86400_000 + (DURATION_S - LAST_WEEK_S) * 1000,
      durationS: LAST_WEEK_S,
      dir: join(dir, 'last-week'),
    });
    today = await runPeriod({ ...common, seed: SEED, startMs, durationS: DURATION_S, dir: join(dir, 'today') });
    const pub = await publisher(mosquitto.url);
    await publishAll(pub, corridorRun({ site: 'kingsday', group: 'e2e-corridor', startMs, windows: 30, label: 'e2e' }).messages.map(sketchItem), 10);
    await pub.endAsync();
    // 30 windows: intervals 0-4 are due once window 29 arrived (horizon 3 windows + 1). The sketches
    // come behind both periods' counts on the aggregator's subscription: on a CI machine at a load
    // average of 4-8 that took more than the 30 s a silent wait gave them, and the flow panels read nothing.
    await eventually('the corridor flows of 4 intervals computed', () => (aggregator.flows?.intervalsComputed ?? 0) >= 4, 120_000);
    // A gateway is done once the broker has acknowledged its windows, not once the aggregator has read
    // them: wait for them in influxd, then drain what else it holds.
    const published = [...today.gateways, ...lastWeek.gateways].reduce((n, g) => n + g.windows, 0);
    await eventually('every window the gateways published is in influxd', async () => (await influxd.count('presence', 'estimate')) >= 2 * published, 90_000);
    if (!(await aggregator.drain(30_000))) throw new Error('the aggregator did not write everything within 30 s');
    await eventually('the corridor flows in influxd', async () => (await influxd.count('flow', 'count')) > 0, 60_000);
    // The pipeline's gateways run with their simulated receivers' burst addresses, as evaluate gives them.
    evaluation = await evaluate({ scenario: SCENARIO, seed: SEED, scale: SCALE, durationS: DURATION_S, windowS: WINDOW_S, start: startMs });

    const db = new InfluxQL({ url: influxd.url, database: 'presence' });
    const now = Date.now();
    for (const name of ['crowd', 'traffic', 'gateways']) {
      dashboards[name] = await runDashboard(loadDashboard(join(root, 'dashboards', `${name}.json`)), db, {
        now,
        // Absolute range: the simulated hour up to now (the gateways' status is on the wall clock).
        range: { from: startMs - 60_000, to: now + 60_000 },
        select: { zone: '$__all', gateway: '$__all' },
        dataSourceInterval: '1m',
      });
    }
  }, 420_000);

  afterAll(async () => {
    await aggregator?.stop(5000).catch(() => {});
    await mosquitto?.dispose();
    await influxd?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers every window of every gateway to influxd, none rejected', async () => {
    const windows = [...today.gateways, ...lastWeek.gateways].reduce((n, g) => n + g.windows, 0);
    expect(today.gateways.map((g) => g.failedSources)).toEqual([0, 0, 0]);
    expect(today.gateways.every((g) => g.windows >= DURATION_S / WINDOW_S)).toBe(true);
    expect(aggregator.stats().rejected).toBe(0);
    // Two points (Wi-Fi and BLE) per window and gateway.
    expect(await influxd.count('presence', 'estimate')).toBe(2 * windows);
    expect(await influxd.count('gateway_status', 'up')).toBeGreaterThan(0);
  });

  it.each(['crowd', 'traffic', 'gateways'])('%s: every variable query returns values', (name) => {
    const { variables } = dashboards[name];
    expect(variables.length).toBeGreaterThan(0);
    // calibrated_wifi / calibrated_ble: the zones with calibrated people (one here, on Wi-Fi only).
    for (const v of variables.filter((x) => !x.name.startsWith('calibrated_'))) expect(v.values.length, `${v.name}: ${v.expanded}`).toBeGreaterThan(0);
    if (name === 'crowd') {
      expect(variables.find((v) => v.name === 'calibrated_wifi')!.values).toEqual([ZONE]);
      expect(variables.find((v) => v.name === 'calibrated_ble')!.values).toEqual([]);
    }
    const zones = variables.find((v) => v.name === 'zone');
    if (zones) expect(zones.values.sort()).toEqual(today.zones);
  });

  it.each(['crowd', 'traffic', 'gateways'])('%s: every panel query returns data', (name) => {
    const { queries } = dashboards[name];
    // The gateways here protect no small counts: the queries of suppressed windows have no rows
    // (they have in test/calibration-dashboard.test.ts).
    // The query of a zone's gateways offline now has rows only where one is (tested in test/calibration-dashboard.test.ts),
    // that of a gateway's clock behind only where the aggregator judged one behind (test/aggregator-clock-skew.test.ts).
    const failing = queries
      .filter((q) => q.error || (q.rows === 0 && !/count\("suppressed"\) AS "suppressed"|count\("missing"\) AS "offline"|"clock_behind_s"/.test(q.expanded)))
      .map(describeResult);
    expect(failing).toEqual([]);
  });

  it("the pipeline's gateways run with the burst addresses of their simulated receiver, as presence simulate --evaluate gives them, not the default of 7", () => {
    for (const period of [today, lastWeek]) {
      expect(period.gateways.map((g) => g.burstAddresses)).toEqual(
        period.gateways.map((g) => evaluation.gateways.find((e) => e.id === g.gateway)!.burstAddresses),
      );
      for (const g of period.gateways) expect(g.burstAddresses, g.gateway).not.toBe(BURST_ADDRESSES_DEFAULT);
    }
  });

  it("the 7-day shifted panels read last week's run, the others today's", () => {
    const shifted = dashboards.traffic.queries.filter((q) => q.timeShift === '7d');
    expect(shifted.length).toBeGreaterThan(0);
    for (const q of shifted) {
      expect(q.range.to).toBeLessThan(startMs - 6 * 86400_000);
      // The gateways here protect no small counts: the week-earlier panel's query of suppressed windows has no rows.
      if (!/count\("suppressed"\) AS "suppressed"/.test(q.expanded)) expect(q.rows, describeResult(q)).toBeGreaterThan(0);
    }
  });

  it(`zone ${ZONE}: the dashboard's per-window counts match the ground truth within the simulator's reported error`, () => {
    const truth = today.simulation.truth.windows.filter((w) => w.gateway === GATEWAY);
    expect(truth.length).toBe(DURATION_S / WINDOW_S);
    const score = evaluation.gateways.find((g) => g.id === GATEWAY)!;
    for (const radio of ['wifi', 'ble'] as const) {
      const name = radio === 'wifi' ? 'Wi-Fi' : 'BLE';
      // "Wi-Fi: distinct addresses and devices present (estimate), not people" / "BLE: ...": max over the zone's gateways per window.
      const q = dashboards.crowd.queries.find((r) => r.panelTitle.startsWith(`${name}: distinct addresses and devices present`))!;
      expect(q.interval, 'one row per window').toBe('1m');
      const series = q.series.find((s) => s.tags?.zone === ZONE)!;
      expect(series, `no series for zone ${ZONE}`).toBeTruthy();
      const col = (c: string) => series.columns.indexOf(c);
      const byTime = new Map(series.values.map((row) => [row[col('time')] as number, row]));
      let compared = 0;
      let errSum = 0;
      for (const w of truth) {
        const row = byTime.get(Date.parse(w.start));
        expect(row, `${radio} window ${w.start} missing from the dashboard`).toBeTruthy();
        // Where the simulator found the firmware exact on these frames (no parity mismatch), the
        // pipeline must deliver exactly the distinct addresses the capture holds ...
        if (score[radio].parityMismatches === 0) expect(row![col('distinct addresses')], `${radio} addresses in ${w.start}`).toBe(w.addresses[radio]);
        // ... and the estimate is scored against the devices really in reach that it estimates, as
        // the simulator does (BLE: without beacons, which the firmware leaves out of the estimate).
        const estimate = row![col('devices present')] as number;
        const real = radio === 'ble' ? w.devices.ble - w.devices.byKind.beacon : w.devices.wifi;
        if (real > 0) {
          compared++;
          errSum += Math.abs(estimate - real) / real;
        }
      }
      const mape = (errSum / compared) * 100;
      expect(compared).toBe(score[radio].windows);
      // Within the error the simulator reports for this gateway (same frames, same firmware, other
      // random keys; its figure is rounded to 0.1 %).
      expect(mape, `${radio}: dashboard ${mape.toFixed(1)} % vs simulator ${score[radio].estimateMape} %`).toBeLessThanOrEqual(score[radio].estimateMape + 0.5);
    }
  });
});
