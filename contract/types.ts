// TypeScript types of the payloads, kept by hand beside the JSON Schema files in schemas/ (the
// schemas are the contract; these follow them). The schemas are closed, so the types are too:
// test/contract.test.ts fails when a type and its schema name different fields.
import type { CONTRACT_VERSION } from './topics.ts';

/** Counts of one radio in one window. */
export interface RadioCounts {
  /** Frames the radio's sources delivered in the window (all kinds, good and bad). */
  frames: number;
  /** Distinct device addresses seen in the window (exact up to the firmware's table size). */
  devices: number;
  /** Estimate of the devices present, averaged over the window (corrects for address randomisation): not people, and on Wi-Fi it under-counts a dense crowd (README.md, "People: what the numbers mean"). */
  estimate: number;
  /** Wi-Fi: accepted probe requests. */
  probes?: number;
  /** BLE: accepted advertising PDUs or reports with an address. */
  adverts?: number;
  /** Frames dropped for a bad FCS/CRC, truncation or malformation. */
  rejected?: number;
  /** Accepted frames dropped for a signal below the RSSI threshold. */
  weak?: number;
  /** True while `devices` is exact (the table did not overflow into the sketch). */
  exact?: boolean;
  /** Present when privacy.min_count > 0: true when this radio's counts were below it and are published as 0 (gateway/privacy.ts). */
  suppressed?: boolean;
}

/** Small-count protection applied by the gateway (gateway/privacy.ts). */
export interface PrivacyInfo {
  /** k: radios whose devices or estimate fell below it are published as zeros with `suppressed: true`. */
  min_count: number;
  /** Epsilon of the two-sided geometric noise on each radio's devices and estimate (absent: no noise). */
  epsilon?: number;
}

export interface CountsMessage {
  v: typeof CONTRACT_VERSION;
  site: string;
  zone: string;
  gateway: string;
  /** Increases by one per window per gateway; survives restarts. */
  seq: number;
  /** Window start and end, ISO 8601 UTC with milliseconds. */
  start: string;
  end: string;
  /** False when the window was cut short (start-up, source outage, shutdown). */
  complete: boolean;
  wifi: RadioCounts;
  ble: RadioCounts;
  /** Present when the gateway suppresses small counts or adds noise. */
  privacy?: PrivacyInfo;
}

export interface SourceStatus {
  name: string;
  radio?: 'wifi' | 'ble' | 'mixed';
  state: 'running' | 'restarting' | 'failed' | 'finished';
  frames_per_s: number;
  frames?: number;
  errors: number;
  /** Why the source last failed: a fixed code. */
  error_code?: SourceErrorCode;
  /** The last failure: the fixed sentence of error_code (contract/last-error.ts lastErrorText), never a capture tool's text. */
  last_error?: string;
  /**
   * Whole seconds the running capture command has written no byte at all, not even a capture file
   * header, since it started; present only from 15 s of it (gateway NO_OUTPUT_MS) until its first byte.
   */
  silent_s?: number;
}

/** Fixed reasons a capture source fails (status `sources[].error_code`). */
export type SourceErrorCode = 'cannot_start' | 'exited' | 'bad_capture' | 'read_failed' | 'failed';

/** Whether the gateway's queue folder can be written (status `queue_state`). */
export type QueueState = 'ok' | 'disk_full' | 'write_failed';

export interface StatusMessage {
  v: typeof CONTRACT_VERSION;
  site: string;
  gateway: string;
  state: 'online' | 'offline';
  zone?: string;
  version?: string;
  uptime_s?: number;
  queue_depth?: number;
  queue_dropped?: number;
  /** Whether the queue folder can be written (`disk_full`: windows are kept in memory until it can). */
  queue_state?: QueueState;
  /** Queued windows whose file the gateway could not read when their turn came (kept, counted in queue_depth, sent once readable); present only when > 0. */
  queue_unreadable?: number;
  /** Window publishes the broker refused (MQTT 5 PUBACK reason code >= 0x80, e.g. 0x87 not authorized) since start; those windows stay queued. */
  publish_refused?: number;
  windows?: number;
  last_seq?: number;
  sources?: SourceStatus[];
  ts?: string;
}

/** A corridor sketch of one gateway for one window (contract/schemas/sketch.schema.json; contract/sketch.ts). */
export interface SketchMessage {
  v: typeof CONTRACT_VERSION;
  site: string;
  gateway: string;
  /** The corridor group whose epoch key placed the bits. */
  group: string;
  /** floor(window_start ms / (epoch_s * 1000)). */
  epoch: number;
  /** Epoch length in seconds. */
  epoch_s: number;
  /** Window start and end, as `start`/`end` of the counts message of the same window. */
  window_start: string;
  window_end: string;
  /** Bits in the sketch (a power of two, SKETCH_BITS_ALLOWED). */
  m: number;
  /** The quantised randomised-response probability T / 65536 (> 0). */
  p: number;
  /** The noisy bitmap: m / 8 bytes, base64; bit i is (byte[i >> 3] >> (i & 7)) & 1. */
  bits: string;
  /** Optional: keyCheckOf(epoch key), 16 lower-case hex digits, the same at every gateway holding the group's secret (contract/sketch.ts). */
  key_check?: string;
}

/** Every field of each payload type, as a value (the contract test compares them with the schemas;
 *  the compiler fails here when a type gains or loses a field). */
type AllKeys<T> = { [K in keyof Required<T>]: true };
export const FIELDS = {
  counts: {
    v: true,
    site: true,
    zone: true,
    gateway: true,
    seq: true,
    start: true,
    end: true,
    complete: true,
    wifi: true,
    ble: true,
    privacy: true,
  } satisfies AllKeys<CountsMessage>,
  privacy: { min_count: true, epsilon: true } satisfies AllKeys<PrivacyInfo>,
  radio: {
    frames: true,
    devices: true,
    estimate: true,
    probes: true,
    adverts: true,
    rejected: true,
    weak: true,
    exact: true,
    suppressed: true,
  } satisfies AllKeys<RadioCounts>,
  status: {
    v: true,
    site: true,
    gateway: true,
    state: true,
    zone: true,
    version: true,
    uptime_s: true,
    queue_depth: true,
    queue_dropped: true,
    queue_state: true,
    queue_unreadable: true,
    publish_refused: true,
    windows: true,
    last_seq: true,
    sources: true,
    ts: true,
  } satisfies AllKeys<StatusMessage>,
  sketch: {
    v: true,
    site: true,
    gateway: true,
    group: true,
    epoch: true,
    epoch_s: true,
    window_start: true,
    window_end: true,
    m: true,
    p: true,
    bits: true,
    key_check: true,
  } satisfies AllKeys<SketchMessage>,
  source: {
    name: true,
    radio: true,
    state: true,
    frames_per_s: true,
    frames: true,
    errors: true,
    error_code: true,
    last_error: true,
    silent_s: true,
  } satisfies AllKeys<SourceStatus>,
} as const;
