// What a demo run writes into its --out folder, estimated before it runs, for the check of the free
// space: the simulated captures (the simulator's estimate, simulator/limits.ts), and beside them the
// truth of each period (truth.json, truth.csv), presence.lp, demo.log, calibration.yaml, the
// gateways' queues/ and the folder's mark. The check counted the captures only.
//
// The files beside the captures grow with the windows, not the crowd: each is sized from the same
// serialisers that write it (the truth's, as presence simulate sizes it in simulator/truth-size.ts,
// the aggregator's line protocol), for every gateway and window, with every count of 7 digits (far above what one gateway's window of any demo holds), so
// that a larger crowd's longer numbers are within it. demo.log's lines and the gateways' statuses
// are sized from the longest ones measured, with room to spare.
import type { CountsMessage } from '../../contract/index.ts';
import { countsLines } from '../../aggregator/messages.ts';
import { STATUS_AFTER_WINDOW_MS } from '../../gateway/gateway.ts';
import type { Scenario } from '../../simulator/scenario.ts';
import { BIG_COUNT as BIG, CAPTURE_HEADER_BYTES, estimateTruthBytes, windowCount } from '../../simulator/truth-size.ts';

/** A gateway's "window closed" line in demo.log (at most 236 bytes measured, JSON or pretty), with room for longer numbers. */
const LOG_WINDOW_BYTES = 300;
/** demo.log's lines that come once per gateway and period (starting, connected, stopped, ...: 7 a gateway, 200-300 bytes each) and once per run (the aggregator's). */
const LOG_GATEWAY_BYTES = 3072;
const LOG_RUN_BYTES = 4096;
/** A gateway's status point in presence.lp (about 300 bytes measured). A gateway publishes its status
 *  at most every STATUS_AFTER_WINDOW_MS (2 s) of wall time after its windows, and at its start and
 *  end; a replay at full speed (--speed max, last week's always) is counted as STATUS_MAX_SPEED of them. */
const STATUS_LINE_BYTES = 400;
const STATUS_MAX_SPEED = 16;
/** calibration.yaml: its zone's fit (1.3-1.5 kB a zone measured) and the file's head. */
const CALIBRATION_ZONE_BYTES = 2048;
const CALIBRATION_HEAD_BYTES = 2048;
/** A gateway's queue folder: its seq file and the windows queued until the broker acknowledges them (a few, with the embedded broker). */
const QUEUE_GATEWAY_BYTES = 16 * 1024;
/** The folder's .presence-demo mark and its lock. */
const MARK_BYTES = 512;

export interface DemoOutputEstimate {
  /** The simulated captures of every period, with their file headers. */
  captures: number;
  /** truth.json and truth.csv of every period. */
  truth: number;
  /** presence.lp, demo.log, calibration.yaml, queues/ and the folder's mark. */
  other: number;
  total: number;
}

/**
 * The bytes a demo run of `s` writes into --out: `captureBytes` the simulator's estimate of one
 * period's captures, `periods` 2 with the week-earlier period, `calibrate` when it fits a
 * calibration, `speed` today's replay's (its wall time gives the gateways' statuses; the week-earlier
 * period is replayed at full speed).
 */
export function estimateDemoOutput(s: Scenario, o: { captureBytes: number; periods: number; calibrate: boolean; speed: number | 'max' }): DemoOutputEstimate {
  const windows = windowCount(s);
  const gateways = s.gateways.length;
  const bytes = (text: string) => Buffer.byteLength(text);
  // truth.json and truth.csv of a period: sized as presence simulate sizes them (simulator/truth-size.ts)
  const truth1 = estimateTruthBytes(s, { files: (id) => [`${id}.pcapng`] });
  const start = new Date(0).toISOString();
  let lpWindows = 0;
  for (const g of s.gateways) {
    const r = { devices: BIG, estimate: BIG, frames: BIG, rejected: BIG, suppressed: false };
    const m = {
      v: 1,
      site: s.site,
      zone: g.zone,
      gateway: g.id,
      seq: BIG,
      start,
      end: start,
      complete: true,
      wifi: r,
      ble: r,
    } as unknown as CountsMessage;
    // the two radios' points and the window's marker, with a calibration's fields on both radios
    lpWindows +=
      countsLines(m, 1e12).reduce((n, l) => n + bytes(l) + 1, 0) + 2 * bytes(`calibrated=T,,people=${BIG}.99,people_low=${BIG}.99,people_high=${BIG}.99`);
  }
  // today's replay at `speed`, the week-earlier one at full speed
  const statusesAt = (speed: number | 'max') => (speed === 'max' ? STATUS_MAX_SPEED : Math.ceil((s.durationS * 1000) / speed / STATUS_AFTER_WINDOW_MS) + 4);
  const statuses = gateways * (statusesAt(o.speed) + (o.periods - 1) * statusesAt('max'));
  const perPeriod = {
    captures: o.captureBytes + gateways * CAPTURE_HEADER_BYTES,
    truth: truth1,
    other: windows * lpWindows + windows * gateways * LOG_WINDOW_BYTES + gateways * LOG_GATEWAY_BYTES,
  };
  const zones = new Set(s.gateways.map((g) => g.zone)).size;
  const captures = o.periods * perPeriod.captures;
  const truth = o.periods * perPeriod.truth;
  const other =
    o.periods * perPeriod.other +
    statuses * STATUS_LINE_BYTES +
    LOG_RUN_BYTES +
    (o.calibrate ? CALIBRATION_HEAD_BYTES + zones * CALIBRATION_ZONE_BYTES : 0) +
    gateways * QUEUE_GATEWAY_BYTES +
    MARK_BYTES;
  return { captures, truth, other, total: captures + truth + other };
}
