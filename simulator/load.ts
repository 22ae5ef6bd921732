// Load mode: contract-conformant count messages for N virtual gateways, generated from a seed and
// published to MQTT at a fixed rate with QoS 1. Drives the aggregator's benchmark and fault tests.
//
// Every message is built with the contract's types and checked with validateCounts() before it is
// yielded, so a change to the contract that this code does not follow fails loudly here.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import {
  CONTRACT_VERSION,
  QOS,
  countsTopic,
  encode,
  isValidId,
  offlineStatus,
  statusTopic,
  validateCounts,
  type CountsMessage,
  type StatusMessage,
} from '../contract/index.ts';
import { redactUrl } from '../scripts/lib/secrets.ts';
import { pubackReason } from '../gateway/publisher.ts';
import { Rng } from './rng.ts';

export type LoadFault = 'invalid' | 'malformed' | 'duplicate';

export interface LoadMessage {
  topic: string;
  payload: Buffer;
  /** The valid message (for a faulty one: the message the fault was made from). */
  message: CountsMessage;
  /** Set when `payload` was deliberately broken (see LoadOptions.faults). */
  fault?: LoadFault;
}

export interface LoadOptions {
  /** Number of virtual gateways (ids gw-0001 ...). */
  gateways: number;
  /** Windows per gateway; messages come window by window, every gateway once per window. Default: unbounded. */
  windows?: number;
  site?: string;
  /** Zones the gateways are spread over (zone-01 ...). Default: one zone per 10 gateways. */
  zones?: number;
  seed?: number;
  windowMs?: number;
  /** Start of the first window. Default 2026-01-01T00:00:00Z. */
  start?: Date | string | number;
  /** First seq of every gateway. Default 0. */
  seqStart?: number;
  /**
   * Share of messages (0..1) replaced by a broken payload (schema-invalid JSON, or not JSON at all),
   * and share of valid messages sent twice (a QoS 1 redelivery: same payload, same seq).
   */
  faults?: { invalid?: number; malformed?: number; duplicate?: number };
}

export const DEFAULT_LOAD_START = '2026-01-01T00:00:00.000Z';

export function gatewayId(i: number): string {
  return `gw-${String(i + 1).padStart(4, '0')}`;
}

export function zoneId(i: number, zones: number): string {
  return `zone-${String((i % zones) + 1).padStart(2, '0')}`;
}

function toMs(start: Date | string | number | undefined): number {
  if (start === undefined) return Date.parse(DEFAULT_LOAD_START);
  const ms = start instanceof Date ? start.getTime() : typeof start === 'number' ? start : Date.parse(start);
  if (!Number.isFinite(ms)) throw new Error(`load: start ${String(start)} is not a date`);
  return ms;
}

function checkOptions(o: LoadOptions): void {
  if (!Number.isInteger(o.gateways) || o.gateways < 1) throw new Error(`load: gateways must be a whole number >= 1 (got ${o.gateways})`);
  if (o.windows !== undefined && (!Number.isInteger(o.windows) || o.windows < 0))
    throw new Error(`load: windows must be a whole number >= 0 (got ${o.windows})`);
  if (o.windowMs !== undefined && !(o.windowMs > 0)) throw new Error(`load: windowMs must be > 0 (got ${o.windowMs})`);
  if (o.site !== undefined && !isValidId(o.site)) throw new Error(`load: site "${o.site}" must match lower-case letters, digits, - and _`);
}

/** Daily profile (0.05 at night, 1 mid-afternoon) of a time of day, in hours. */
function dayProfile(hours: number): number {
  const x = Math.cos(((hours - 15) / 24) * 2 * Math.PI);
  return 0.05 + 0.95 * Math.max(0, x) ** 2;
}

/**
 * Count messages, window by window, every gateway once per window. Deterministic for a seed.
 * Each gateway has its own base crowd; counts follow a daily profile with noise.
 */
export function* loadMessages(opts: LoadOptions): Generator<LoadMessage> {
  checkOptions(opts);
  const site = opts.site ?? 'load';
  const windowMs = opts.windowMs ?? 60_000;
  const zones = opts.zones ?? Math.max(1, Math.ceil(opts.gateways / 10));
  const start = toMs(opts.start);
  const rng = new Rng(opts.seed ?? 1);
  const faultRng = rng.fork('faults');
  const pInvalid = opts.faults?.invalid ?? 0;
  const pMalformed = opts.faults?.malformed ?? 0;
  const pDuplicate = opts.faults?.duplicate ?? 0;
  const gws = Array.from({ length: opts.gateways }, (_, i) => {
    const r = rng.fork(`gateway-${i}`);
    return { id: gatewayId(i), zone: zoneId(i, zones), base: r.lognormal(300, 1), rng: r };
  });
  const windows = opts.windows ?? Number.POSITIVE_INFINITY;
  for (let w = 0; w < windows; w++) {
    const ws = start + w * windowMs;
    const profile = dayProfile((((ws / 3_600_000) % 24) + 24) % 24);
    const startIso = new Date(ws).toISOString();
    const endIso = new Date(ws + windowMs).toISOString();
    for (const g of gws) {
      const people = Math.max(0, g.base * profile * g.rng.lognormal(1, 0.1));
      const wifiDevices = Math.round(people * 0.9 * 1.8); // randomised addresses inflate distinct counts
      const bleDevices = Math.round(people * 1.3 * 1.2);
      const wifiProbes = Math.round(wifiDevices * g.rng.uniform(3, 8));
      const bleAdverts = Math.round(bleDevices * g.rng.uniform(20, 60) * (windowMs / 60_000));
      const wifiRejected = Math.round(wifiProbes * g.rng.uniform(0, 0.03));
      const bleRejected = Math.round(bleAdverts * g.rng.uniform(0, 0.05));
      const message: CountsMessage = {
        v: CONTRACT_VERSION,
        site,
        zone: g.zone,
        gateway: g.id,
        seq: (opts.seqStart ?? 0) + w,
        start: startIso,
        end: endIso,
        complete: true,
        wifi: {
          frames: wifiProbes + wifiRejected,
          devices: wifiDevices,
          estimate: Math.round(people * 0.9),
          probes: wifiProbes,
          rejected: wifiRejected,
          exact: true,
        },
        ble: {
          frames: bleAdverts + bleRejected,
          devices: bleDevices,
          estimate: Math.round(people * 1.3),
          adverts: bleAdverts,
          rejected: bleRejected,
          exact: true,
        },
      };
      const check = validateCounts(message);
      if (!check.ok) throw new Error(`load: built an invalid counts message for ${g.id}: ${check.reason}`);
      const topic = countsTopic(site, g.id);
      const x = pInvalid || pMalformed ? faultRng.float() : 1;
      if (x < pInvalid) {
        const bad = { ...message, wifi: { ...message.wifi, devices: -1 } };
        yield { topic, payload: Buffer.from(JSON.stringify(bad)), message, fault: 'invalid' };
      } else if (x < pInvalid + pMalformed) {
        yield { topic, payload: Buffer.from(`{"v":1,"site":"${site}","gateway":`), message, fault: 'malformed' };
      } else {
        const payload = encode(message);
        yield { topic, payload, message };
        if (pDuplicate && faultRng.float() < pDuplicate) yield { topic, payload, message, fault: 'duplicate' };
      }
    }
  }
}

/**
 * Retained status messages for the virtual gateways: "online" (what a gateway sends at connect) or
 * "offline" (what it sends when it stops; the first `count` gateways only, default all).
 */
export function loadStatuses(
  opts: Pick<LoadOptions, 'gateways' | 'site' | 'zones'>,
  state: 'online' | 'offline' = 'online',
  count = opts.gateways,
): Array<{ topic: string; payload: Buffer; message: StatusMessage }> {
  const site = opts.site ?? 'load';
  const zones = opts.zones ?? Math.max(1, Math.ceil(opts.gateways / 10));
  return Array.from({ length: Math.min(count, opts.gateways) }, (_, i) => {
    const offline = offlineStatus(site, gatewayId(i), zoneId(i, zones));
    const message: StatusMessage = state === 'online' ? { ...offline, state: 'online', version: '0.0.0-simulator' } : offline;
    return { topic: statusTopic(site, gatewayId(i)), payload: encode(message), message };
  });
}

export interface RunLoadOptions extends Omit<LoadOptions, 'windows'> {
  /** Broker URL, e.g. mqtt://127.0.0.1:1883. */
  url: string;
  /** Messages per second (all gateways together). */
  rate: number;
  /** Stop after this many messages ... */
  count?: number;
  /** ... or after this many seconds (whichever comes first; one of them is required). */
  duration?: number;
  /**
   * Publish retained online statuses first (within maxInFlight; rate, duration and elapsedMs count from
   * the first count after them), and retained offline ones at the end, as gateways that stop (unless
   * the run was aborted). Default true.
   */
  status?: boolean;
  /** Most QoS 1 publishes awaiting their PUBACK at once. Default 1000. */
  maxInFlight?: number;
  clientId?: string;
  mqttOptions?: IClientOptions;
  signal?: AbortSignal;
  /** Called about once a second. */
  onProgress?: (p: { published: number; acked: number; elapsedS: number }) => void;
  /** Called when the connection to the broker is lost during the run, and when it is back. */
  onConnection?: (state: 'lost' | 'back', unacked: number) => void;
  /** How long to wait at the end for acknowledgements still outstanding (ms). Default 30,000. */
  ackWaitMs?: number;
}

export interface RunLoadResult {
  /** Messages handed to the client. */
  published: number;
  /** Messages the broker acknowledged (PUBACK). */
  acked: number;
  /** Publishes that failed (refused ones included). */
  failed: number;
  /** Publishes the broker refused (MQTT 5 PUBACK reason code 0x80 or more, e.g. 0x87 not authorized by its ACL). */
  refused: number;
  /** The reason of the last refusal ("0x87 not authorized"), or null. */
  refusedReason: string | null;
  /** Publishes neither acknowledged nor failed when the run ended (the broker went away, or did not answer within the wait). */
  unacked: number;
  /** Deliberately broken payloads among the published. */
  faults: number;
  elapsedMs: number;
  /** Acknowledged messages per second achieved. */
  ratePerS: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Publishes count messages at `rate` per second with QoS 1 until `count` messages or `duration`
 * seconds. Window times default to end near now, so a time-series store accepts them.
 */
export async function runLoad(opts: RunLoadOptions): Promise<RunLoadResult> {
  if (!(opts.rate > 0)) throw new Error(`load: rate must be > 0 messages per second (got ${opts.rate})`);
  if (opts.count === undefined && opts.duration === undefined) throw new Error('load: give count or duration');
  const windowMs = opts.windowMs ?? 60_000;
  const limit = Math.min(opts.count ?? Infinity, opts.duration !== undefined ? Math.ceil(opts.rate * opts.duration) : Infinity);
  const windows = Math.ceil(limit / opts.gateways);
  const start = opts.start ?? Math.floor(Date.now() / windowMs) * windowMs - windows * windowMs;
  const gen = loadMessages({ ...opts, windows, windowMs, start });
  let client: MqttClient;
  // MQTT 5 unless the caller says otherwise: over 3.1.1 a broker acknowledges a publish its ACL
  // denies like any other (Mosquitto 2), so a run the broker threw away reported every message acked.
  // A broker that speaks only 3.1.1 (CONNACK 1 or 132) gets 3.1.1.
  const connect = (protocolVersion: 4 | 5) =>
    mqtt.connectAsync(opts.url, {
      clientId: opts.clientId ?? `presence-load-${process.pid}`,
      reconnectPeriod: 500,
      protocolVersion,
      ...opts.mqttOptions,
    });
  try {
    try {
      client = await connect(5);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (opts.mqttOptions?.protocolVersion !== undefined || (code !== 1 && code !== 132)) throw e;
      client = await connect(4);
    }
  } catch (e) {
    // The broker named, so the line says which one did not answer (mqtt.js says "connack timeout").
    const m = (e as Error).message;
    const fix = /not authori[sz]ed|bad user ?name or password/i.test(m)
      ? 'check the user name and password (MQTT_USERNAME, and MQTT_PASSWORD or MQTT_PASSWORD_FILE)'
      : 'check that it is running and reachable at that address';
    throw new Error(`broker ${redactUrl(opts.url)}: ${m}; ${fix}`);
  }
  let t0 = performance.now();
  let published = 0;
  let acked = 0;
  let failed = 0;
  let refused = 0;
  let refusedReason: string | null = null;
  let faults = 0;
  let inFlight = 0;
  let unacked = 0;
  let failedAtEnd = 0;
  /** Retained online statuses published, and when the counts' acknowledgements were in. */
  let online = 0;
  let countsEnd: number | undefined;
  const maxInFlight = opts.maxInFlight ?? 1000;
  let lastProgress = t0;
  // A broker that goes away mid-run: said when it happens, not only as a stalled acked count.
  let lost = false;
  client.on('offline', () => {
    if (lost) return;
    lost = true;
    opts.onConnection?.('lost', inFlight);
  });
  client.on('connect', () => {
    if (!lost) return;
    lost = false;
    opts.onConnection?.('back', inFlight);
  });
  const publish = (topic: string, payload: Buffer, retain = false) => {
    inFlight++;
    client.publishAsync(topic, payload, { qos: QOS, retain }).then(
      () => {
        if (!retain) acked++;
        inFlight--;
      },
      (err: Error & { code?: unknown }) => {
        failed++;
        if (typeof err?.code === 'number' && err.code >= 0x80) {
          refused++;
          refusedReason = pubackReason(err.code);
        }
        inFlight--;
      },
    );
  };
  try {
    // The statuses go within the same bound on unacknowledged publishes as the counts: all at once,
    // 100,000 gateways' statuses outran MQTT's 65,535 packet ids and the run never ended, and tens of
    // thousands took the whole of a short --duration, which then published no counts and said so as
    // a success. The counts' rate and --duration are timed from the first count, after the statuses.
    if (opts.status ?? true) {
      for (const s of loadStatuses(opts)) {
        while (inFlight >= maxInFlight && !opts.signal?.aborted) await sleep(1);
        if (opts.signal?.aborted) break;
        publish(s.topic, s.payload, true);
        online++;
      }
      t0 = lastProgress = performance.now();
    }
    const deadline = opts.duration !== undefined ? t0 + opts.duration * 1000 : Infinity;
    while (published < limit && !opts.signal?.aborted) {
      const now = performance.now();
      // What is due by now, or by the deadline once it has passed: the loop sleeps at least 1 ms and
      // woke past the deadline with the last counts due before it unsent (--rate 2000 --duration 5s
      // published 9,999 of 10,000; --rate 200 --duration 0.5s 99 of 100).
      const due = Math.min(limit, Math.floor(((Math.min(now, deadline) - t0) / 1000) * opts.rate) + 1);
      while (published < due && inFlight < maxInFlight) {
        const m = gen.next();
        if (m.done) break;
        if (m.value.fault) faults++;
        publish(m.value.topic, m.value.payload);
        published++;
      }
      if (opts.onProgress && now - lastProgress >= 1000) {
        lastProgress = now;
        opts.onProgress({ published, acked, elapsedS: (now - t0) / 1000 });
      }
      if (now >= deadline) break;
      await sleep(published >= due ? Math.max(1, Math.min(20, ((published + 1) / opts.rate) * 1000 - (now - t0))) : 1);
    }
    // Wait for outstanding acknowledgements (bounded).
    const waitUntil = performance.now() + (opts.ackWaitMs ?? 30_000);
    while (inFlight > 0 && performance.now() < waitUntil && !opts.signal?.aborted) await sleep(5);
    countsEnd = performance.now();
    // The virtual gateways stop as a gateway does, with a retained "offline" status: their retained
    // "online" ones stayed on the broker after the run, and every aggregator that subscribed later
    // took them for gateways online, then silent. (Not after an abort, nor with the broker gone or
    // messages unacknowledged: the run ends now and says so.)
    if (online > 0 && !opts.signal?.aborted && !lost && inFlight === 0) {
      for (const s of loadStatuses(opts, 'offline', online)) {
        while (inFlight >= maxInFlight && !opts.signal?.aborted) await sleep(1);
        if (opts.signal?.aborted) break;
        publish(s.topic, s.payload, true);
      }
      const statusesUntil = performance.now() + (opts.ackWaitMs ?? 30_000);
      while (inFlight > 0 && performance.now() < statusesUntil && !opts.signal?.aborted) await sleep(5);
    }
  } finally {
    // Counted before the end: a forced end fails what is still outstanding, which is unacked, not failed.
    unacked = inFlight;
    failedAtEnd = failed;
    // With publishes still unacknowledged a graceful end waits for them for ever (and once nothing else
    // keeps Node's event loop alive, the process exits 13 in the middle of this await): force it.
    await client.endAsync(inFlight > 0);
  }
  const elapsedMs = (countsEnd ?? performance.now()) - t0;
  return { published, acked, failed: failedAtEnd, refused, refusedReason, unacked, faults, elapsedMs, ratePerS: (published / elapsedMs) * 1000 };
}
