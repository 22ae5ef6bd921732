// Pure core of the aggregator: one MQTT message in, either points (line protocol) or a rejection
// with a reason out. No I/O here.
import { Point, escape as lp, type PointSettings } from '@influxdata/influxdb-client';
import {
  GATEWAY_STATUS_MEASUREMENT,
  idForLog,
  MAX_PAYLOAD_BYTES,
  PRESENCE_MEASUREMENT,
  parseTopic,
  repeatedKey,
  repeatedKeyInCounts,
  TOPIC_ROOT,
  validateCounts,
  validateStatus,
  type CountsMessage,
  type StatusMessage,
} from '../contract/index.ts';
import { calibratedField, calibrationFor, peopleFields, windowPeople, type Calibration } from './calibration/apply.ts';
import { IDENTITY_REJECT_REASONS, type IdentityRejectReason } from './registry.ts';
import { formatDuration } from '../scripts/lib/duration.ts';

/** The measurements written here: their names, tags and fields are the contract's (contract/influx.ts). */
export const PRESENCE = PRESENCE_MEASUREMENT;
export const GATEWAY_STATUS = GATEWAY_STATUS_MEASUREMENT;

/** Reasons a message is rejected; the label of the rejected-messages counter. */
export type RejectReason =
  | 'too_large'
  | 'bad_topic'
  | 'bad_json'
  | 'unknown_field'
  | 'invalid'
  | 'topic_mismatch'
  | 'future'
  | 'retained'
  | IdentityRejectReason;
export const REJECT_REASONS: RejectReason[] = [
  'too_large',
  'bad_topic',
  'bad_json',
  'unknown_field',
  'invalid',
  'topic_mismatch',
  'future',
  'retained',
  ...IDENTITY_REJECT_REASONS,
];

/** A counts message's start and end are its times in ms, as parsed once here. */
export type Classified =
  | { ok: true; kind: 'counts'; message: CountsMessage; lines: string[]; windowMs: number; start: number; end: number }
  | { ok: true; kind: 'status'; message: StatusMessage; lines: string[] }
  | { ok: false; reason: RejectReason; detail: string };

/** Timestamps are ms since the epoch (precision=ms). */
export const msSettings: PointSettings = {
  convertTime: (t) => (t === undefined ? String(Date.now()) : t instanceof Date ? String(t.getTime()) : String(t)),
};

/** Escaped `presence,gateway=..,radio=..,site=..,zone=..` prefixes of a gateway's two series, and
 *  `gateway_status,gateway=..,site=..,zone=..` of its window marker, cached per gateway id (a gateway
 *  moved to another site or zone gets new prefixes). */
interface Prefixes {
  site: string;
  zone: string;
  wifi: string;
  ble: string;
  status: string;
}
const prefixCache = new Map<string, Prefixes>();
const PREFIX_CACHE_MAX = 100_000;

function seriesPrefixes(site: string, zone: string, gateway: string): Prefixes {
  let p = prefixCache.get(gateway);
  if (p === undefined || p.site !== site || p.zone !== zone) {
    // The client's own rules: tags sorted by key, names and values escaped with its escape helpers.
    const head = `${lp.measurement(PRESENCE)},gateway=${lp.tag(gateway)},radio=`;
    const tail = `,site=${lp.tag(site)},zone=${lp.tag(zone)}`;
    const status = `${lp.measurement(GATEWAY_STATUS)},gateway=${lp.tag(gateway)}${tail}`;
    p = { site, zone, wifi: `${head}wifi${tail}`, ble: `${head}ble${tail}`, status };
    if (prefixCache.size >= PREFIX_CACHE_MAX) prefixCache.clear();
    prefixCache.set(gateway, p);
  }
  return p;
}

/**
 * The points of a counts message, time = window start in ms: two in `presence` (wifi, ble), and the
 * window's marker in `gateway_status` (`window_complete`: true for a whole window, false for one cut
 * short), so the gateways dashboard counts a gateway's windows in the measurement its status is in
 * (a query of two measurements gives a series per measurement, so a tile per gateway and
 * measurement). The same window received again is the same three points. A line is what the
 * client's Point would serialise (fields sorted, integers with `i`, booleans T/F); it is built
 * directly because this runs for every message (the equivalence is tested). With a calibration,
 * the calibrated radio's point of a calibrated zone gets `calibrated=T` (when the window has the
 * length the calibration was fitted on), and also `people`, `people_low`, `people_high` unless the
 * gateway suppressed the radio (its 0 means fewer than min_count) or the interval is not finite.
 */
export function countsLines(m: CountsMessage, time = Date.parse(m.start), cal: Calibration | null = null): string[] {
  const p = seriesPrefixes(m.site, m.zone, m.gateway);
  const complete = m.complete ? 'T' : 'F';
  return [
    flat(radioLine(p.wifi, m, 'wifi', complete, time, cal)),
    flat(radioLine(p.ble, m, 'ble', complete, time, cal)),
    flat(`${p.status} window_complete=${complete} ${time}`),
  ];
}

/**
 * `s` as one piece of memory. A string built from a template is a tree of its pieces in V8 (a radio's
 * line some 20 objects: each piece, each number's text, each join); the lines wait for their batch's
 * write, long enough to outlive the young generation, so the garbage collector copied every piece
 * of them, twice, then marked them, and the write's join walked the trees. Flat, a line is one object
 * from the start. Reading a string as a number flattens it (V8's ToNumber: the trick of pino's
 * flatstr); the count it feeds is there so that no compiler drops the read as unused. About 4 µs of
 * the aggregator's CPU a message (5,000 messages a batch, as in bench/aggregator.ts; measured with
 * Node 20: aggregator/README.md#performance).
 */
function flat(s: string): string {
  if (Number.isNaN(Number(s))) linesFlattened.count++;
  return s;
}
/** Lines made flat (flat() above; a test reads it). */
export const linesFlattened = { count: 0 };

/** The line of one radio of a counts message (countsLines). A function of its own, not a closure made
 *  per message: under tsx (the benches, the tests) each closure made also had its name set. */
function radioLine(prefix: string, m: CountsMessage, radio: 'wifi' | 'ble', complete: 'T' | 'F', time: number, cal: Calibration | null): string {
  const r = m[radio];
  return (
    `${prefix} ${calibratedField(cal, m, radio)}complete=${complete},devices=${r.devices}i,estimate=${r.estimate}i,frames=${r.frames}i` +
    `${peopleFields(cal, m, radio, r)}${typeof r.rejected === 'number' ? `,rejected=${r.rejected}i` : ''}` +
    `${typeof r.suppressed === 'boolean' ? `,suppressed=${r.suppressed ? 'T' : 'F'}` : ''} ${time}`
  );
}

/** The same three points through the client's Point class (reference for countsLines). */
export function countsPoints(m: CountsMessage, cal: Calibration | null = null): Point[] {
  const time = Date.parse(m.start);
  const marker = new Point(GATEWAY_STATUS)
    .tag('site', m.site)
    .tag('zone', m.zone)
    .tag('gateway', m.gateway)
    .booleanField('window_complete', m.complete)
    .timestamp(time);
  return [...radioPoints(m, cal, time), marker];
}

function radioPoints(m: CountsMessage, cal: Calibration | null, time: number): Point[] {
  return (['wifi', 'ble'] as const).map((radio) => {
    const p = new Point(PRESENCE)
      .tag('site', m.site)
      .tag('zone', m.zone)
      .tag('gateway', m.gateway)
      .tag('radio', radio)
      .intField('devices', m[radio].devices)
      .intField('estimate', m[radio].estimate)
      .intField('frames', m[radio].frames)
      .booleanField('complete', m.complete)
      .timestamp(time);
    // Every point of a calibrated zone and radio says so, a suppressed one too (it has no people).
    if (calibrationFor(cal, m, radio)) p.booleanField('calibrated', true);
    const people = windowPeople(cal, m, radio, m[radio]);
    if (people) p.floatField('people', people.value).floatField('people_low', people.low).floatField('people_high', people.high);
    const rejected = m[radio].rejected;
    if (typeof rejected === 'number') p.intField('rejected', rejected);
    // Small-count protection (gateway/privacy.ts): a 0 that was suppressed is told apart from a counted 0.
    const suppressed = m[radio].suppressed;
    return typeof suppressed === 'boolean' ? p.booleanField('suppressed', suppressed) : p;
  });
}

/**
 * The point of a status message, at its `ts` (a status without one, the broker's offline last will,
 * at `receivedAt`). `missing`: the aggregator has the gateway recorded as silent (its counts stopped)
 * when the status arrives; a status says nothing of the windows, so it must not mark a silent gateway
 * back. `behindMs`: how far the aggregator has judged this gateway's clock to run behind
 * (./clock-skew.ts), or null: the point is then stamped `ts + behindMs`, about when the gateway sent
 * it by this aggregator's clock (its receipt for a live status, earlier for one delivered late out of
 * a backlog), and keeps the gateway's own time in `gateway_ts_ms` and the correction in
 * `clock_behind_s`. At its own `ts` it would sort days before the offline will stamped on receipt,
 * and "last value by time" would read that gateway offline while it publishes online statuses.
 */
export function statusLines(m: StatusMessage, receivedAt: number, missing = false, behindMs: number | null = null): string[] {
  const ts = m.ts ? Date.parse(m.ts) : null;
  const corrected = ts !== null && behindMs !== null && behindMs > 0;
  const p = new Point(GATEWAY_STATUS)
    .tag('site', m.site)
    .tag('gateway', m.gateway)
    .booleanField('online', m.state === 'online')
    .intField('up', m.state === 'online' ? 1 : 0)
    .booleanField('missing', missing)
    .timestamp(ts === null ? receivedAt : corrected ? ts + Math.round(behindMs) : ts);
  if (corrected) p.intField('gateway_ts_ms', ts).floatField('clock_behind_s', Math.round(behindMs) / 1000);
  if (m.zone) p.tag('zone', m.zone);
  if (m.uptime_s !== undefined) p.floatField('uptime_s', m.uptime_s);
  if (m.queue_depth !== undefined) p.intField('queue_depth', m.queue_depth);
  // What the gateway says of windows it lost or cannot hand over (the gateways dashboard shows them):
  // the queue's state as two booleans, not a string, which a VictoriaMetrics target stores as 0.
  if (m.queue_dropped !== undefined) p.intField('queue_dropped', m.queue_dropped);
  if (m.queue_state !== undefined) p.booleanField('queue_ok', m.queue_state === 'ok').booleanField('queue_disk_full', m.queue_state === 'disk_full');
  if (m.publish_refused !== undefined) p.intField('publish_refused', m.publish_refused);
  if (m.sources) {
    const t = sourceTotals(m.sources);
    p.floatField('frames_per_s', t.frames_per_s).intField('errors', t.errors).intField('sources', t.sources).intField('sources_failed', t.sources_failed);
    // Capture commands that run but have written nothing at all (silent_s): written with every status
    // that has sources, 0 when none is silent, so a panel's last value is the current one.
    p.intField('sources_silent', t.sources_silent).intField('capture_silent_s', t.capture_silent_s);
  } else if (m.state !== 'online') {
    // A stopped gateway (its offline status, or the broker's last will, has no sources) runs no
    // capture command: 0, so that the panel's last value is not a silence from before it stopped.
    p.intField('sources_silent', 0).intField('capture_silent_s', 0);
  }
  return [p.toLineProtocol(msSettings)!];
}

/**
 * A status message's sources summed: what the gateway_status point and the page show of them.
 * `sources_silent`: sources with silent_s (a capture command that runs but has written nothing at
 * all, not even a capture file header, for 15 s or more); `capture_silent_s`: the longest silent_s, 0
 * when none has it.
 */
export function sourceTotals(sources: NonNullable<StatusMessage['sources']>): {
  frames_per_s: number;
  errors: number;
  sources: number;
  sources_failed: number;
  sources_silent: number;
  capture_silent_s: number;
} {
  let fps = 0;
  let errors = 0;
  let failed = 0;
  let silent = 0;
  let silentS = 0;
  for (const s of sources) {
    fps += s.frames_per_s;
    errors += s.errors;
    if (s.state === 'failed') failed++;
    if (s.silent_s !== undefined) {
      silent++;
      silentS = Math.max(silentS, s.silent_s);
    }
  }
  return { frames_per_s: fps, errors, sources: sources.length, sources_failed: failed, sources_silent: silent, capture_silent_s: silentS };
}

/** The point recording that a gateway has been silent for `windows` window lengths (or is back: 0). */
export function missingLines(site: string, gateway: string, windows: number, at: number, zone = ''): string[] {
  const p = new Point(GATEWAY_STATUS).tag('site', site).tag('gateway', gateway);
  if (zone) p.tag('zone', zone);
  p.booleanField('missing', windows > 0)
    .intField('missing_windows', windows)
    .timestamp(at);
  return [p.toLineProtocol(msSettings)!];
}

/**
 * Why a payload is not JSON, for the log: JSON.parse quotes a piece of the text in some of its
 * messages (`Unexpected token 'a', "aa:bb:cc:dd:ee:ff" is not valid JSON`), so only the byte
 * offset it names, if any, is kept: nothing of the payload reaches the log.
 */
export function notJson(text: string, err: unknown): string {
  const at = /at position (\d+)/.exec((err as Error).message);
  return `payload is not JSON${at ? ` (at byte ${Buffer.byteLength(text.slice(0, Number(at[1])))})` : ''}`;
}

/** Why a payload with a key given twice in one object is refused (`path`: repeatedKey's). */
export function repeatedKeyDetail(path: string): string {
  return `${path} is given twice: a payload holds each field once (a JSON parser keeps one of the two values, which one depends on the parser)`;
}

/**
 * Why a time ahead of the clock is refused, and what to do: a gateway publishes a window after it
 * ends, so it means a wrong clock, the gateway's or this host's (every window of that gateway is
 * refused until it is fixed, so the line must say where to look).
 */
export function aheadOfClock(what: string, byMs: number, maxAheadMs: number): string {
  return `${what} ${Math.round(byMs / 1000)} s ahead of this aggregator's clock (max_ahead ${formatDuration(maxAheadMs)}): the gateway's clock or this host's is wrong; check both are synchronised (on the gateway: presence doctor, "clock synchronised"; timedatectl)`;
}

/**
 * Validates a message against the contract and turns it into points. In this order: the payload's
 * size (before any parsing), the topic, JSON, a key given twice in one object (`invalid`: JSON.parse
 * kept one of them, and the schema sees only that one), the closed schema (a field the contract does not have
 * is `unknown_field`; a bad value, a time outside 2000-2099 or on a leap second, a number that is not
 * an integer up to 2^53 - 1, e.g. `1e400`, is `invalid`), the topic against the payload, and times
 * ahead of the aggregator's clock by more than `maxAheadMs` (`future`: window start or end, status ts).
 */
export function classify(topic: string, payload: Buffer, now: number, maxAheadMs: number, cal: Calibration | null = null): Classified {
  if (payload.length > MAX_PAYLOAD_BYTES)
    return { ok: false, reason: 'too_large', detail: `payload is ${payload.length} bytes, more than ${MAX_PAYLOAD_BYTES}` };
  const t = parseTopic(topic);
  if (!t) return { ok: false, reason: 'bad_topic', detail: `topic is not ${TOPIC_ROOT}/{site}/{gateway}/counts|status` };
  if (t.kind === 'sketch') return { ok: false, reason: 'bad_topic', detail: 'a sketch topic: not counts or status' };
  let value: unknown;
  const text = payload.toString('utf8');
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: 'bad_json', detail: notJson(text, e) };
  }
  // A key given twice in one object is refused whatever the schema says of the value JSON.parse
  // kept (the last): for a valid counts message checked the cheap way, from its known shape.
  if (t.kind === 'counts') {
    const v = validateCounts(value);
    const twice = v.ok ? repeatedKeyInCounts(text, v.value) : repeatedKey(text, value);
    if (twice) return { ok: false, reason: 'invalid', detail: repeatedKeyDetail(twice) };
    if (!v.ok) return { ok: false, reason: v.code, detail: v.reason };
    const m = v.value;
    if (m.site !== t.site || m.gateway !== t.gateway)
      return {
        ok: false,
        reason: 'topic_mismatch',
        detail: `topic names ${idForLog(t.site)}/${idForLog(t.gateway)}, payload ${idForLog(m.site)}/${idForLog(m.gateway)}`,
      };
    const start = Date.parse(m.start);
    const end = Date.parse(m.end);
    if (start > now + maxAheadMs) return { ok: false, reason: 'future', detail: aheadOfClock('window starts', start - now, maxAheadMs) };
    if (end > now + maxAheadMs) return { ok: false, reason: 'future', detail: aheadOfClock('window ends', end - now, maxAheadMs) };
    return { ok: true, kind: 'counts', message: m, lines: countsLines(m, start, cal), windowMs: end - start, start, end };
  }
  const twice = repeatedKey(text, value);
  if (twice) return { ok: false, reason: 'invalid', detail: repeatedKeyDetail(twice) };
  const v = validateStatus(value);
  if (!v.ok) return { ok: false, reason: v.code, detail: v.reason };
  const m = v.value;
  if (m.site !== t.site || m.gateway !== t.gateway)
    return {
      ok: false,
      reason: 'topic_mismatch',
      detail: `topic names ${idForLog(t.site)}/${idForLog(t.gateway)}, payload ${idForLog(m.site)}/${idForLog(m.gateway)}`,
    };
  if (m.ts && Date.parse(m.ts) > now + maxAheadMs)
    return { ok: false, reason: 'future', detail: aheadOfClock('status time is', Date.parse(m.ts) - now, maxAheadMs) };
  return { ok: true, kind: 'status', message: m, lines: statusLines(m, now) };
}
