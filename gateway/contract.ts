// The wire contract between gateways and aggregators: topics, payload schemas, version.
// Every side (gateway, aggregator, simulator load mode, tests) imports this module and nothing
// else defines a topic or a payload field.
//
// Privacy: a payload carries counts and aggregates only. No schema here has a field that could hold
// a device address, a hash of one, or a per-device record.

import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';

export const CONTRACT_VERSION = 1 as const;
export const TOPIC_ROOT = `presence/v${CONTRACT_VERSION}`;
/** Largest payload (bytes) a gateway sends and an aggregator accepts. */
export const MAX_PAYLOAD_BYTES = 4096;
/** MQTT QoS for counts and status. */
export const QOS = 1 as const;

/** Site, zone and gateway ids: lower case, digits, `-` and `_`; safe in a topic and an Influx tag. */
export const ID_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';
const ID_RE = new RegExp(ID_PATTERN);
export function isValidId(id: string): boolean {
  return ID_RE.test(id);
}

export type TopicKind = 'counts' | 'status';

export function countsTopic(site: string, gateway: string): string {
  return `${TOPIC_ROOT}/${site}/${gateway}/counts`;
}
export function statusTopic(site: string, gateway: string): string {
  return `${TOPIC_ROOT}/${site}/${gateway}/status`;
}
/** Wildcard subscriptions for every site and gateway. */
export const COUNTS_FILTER = `${TOPIC_ROOT}/+/+/counts`;
export const STATUS_FILTER = `${TOPIC_ROOT}/+/+/status`;
/** MQTT 5 shared subscription: brokers deliver each message to one member of the group. */
export function sharedFilter(group: string, filter: string): string {
  return `$share/${group}/${filter}`;
}

/** Splits a topic of this contract; null when it is not one. */
export function parseTopic(topic: string): { site: string; gateway: string; kind: TopicKind } | null {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT) return null;
  const [, , site, gateway, kind] = parts;
  if (kind !== 'counts' && kind !== 'status') return null;
  if (!isValidId(site) || !isValidId(gateway)) return null;
  return { site, gateway, kind };
}

/** Counts of one radio in one window. Extra keys (probes, adverts, rejected, exact) are allowed. */
export interface RadioCounts {
  /** Frames the radio's sources delivered in the window (all kinds, good and bad). */
  frames: number;
  /** Distinct device addresses seen in the window (exact up to the firmware's table size). */
  devices: number;
  /** Best estimate of the number of physical devices (corrects for address randomisation). */
  estimate: number;
  probes?: number;
  adverts?: number;
  rejected?: number;
  exact?: boolean;
  [extra: string]: unknown;
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
  [extra: string]: unknown;
}

export interface SourceStatus {
  name: string;
  radio?: 'wifi' | 'ble' | 'mixed';
  state: 'running' | 'restarting' | 'failed' | 'finished';
  frames_per_s: number;
  frames?: number;
  errors: number;
  last_error?: string;
  [extra: string]: unknown;
}

export interface StatusMessage {
  v: typeof CONTRACT_VERSION;
  site: string;
  gateway: string;
  state: 'online' | 'offline';
  zone?: string;
  version?: string;
  uptime_s?: number;
  queue_depth?: number;
  sources?: SourceStatus[];
  ts?: string;
  [extra: string]: unknown;
}

const count = { type: 'integer', minimum: 0 } as const;
const id = { type: 'string', pattern: ID_PATTERN } as const;
const isoTime = { type: 'string', format: 'date-time' } as const;

const radioCountsSchema = {
  type: 'object',
  required: ['frames', 'devices', 'estimate'],
  properties: {
    frames: count,
    devices: count,
    estimate: count,
    probes: count,
    adverts: count,
    rejected: count,
    exact: { type: 'boolean' },
  },
} as const;

export const countsSchema = {
  $id: 'presence/v1/counts',
  type: 'object',
  required: ['v', 'site', 'zone', 'gateway', 'seq', 'start', 'end', 'complete', 'wifi', 'ble'],
  properties: {
    v: { const: CONTRACT_VERSION },
    site: id,
    zone: id,
    gateway: id,
    seq: count,
    start: isoTime,
    end: isoTime,
    complete: { type: 'boolean' },
    wifi: radioCountsSchema,
    ble: radioCountsSchema,
  },
} as const;

export const statusSchema = {
  $id: 'presence/v1/status',
  type: 'object',
  required: ['v', 'site', 'gateway', 'state'],
  properties: {
    v: { const: CONTRACT_VERSION },
    site: id,
    gateway: id,
    zone: id,
    state: { enum: ['online', 'offline'] },
    version: { type: 'string' },
    uptime_s: { type: 'number', minimum: 0 },
    queue_depth: count,
    ts: isoTime,
    sources: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'state', 'frames_per_s', 'errors'],
        properties: {
          name: { type: 'string' },
          radio: { enum: ['wifi', 'ble', 'mixed'] },
          state: { enum: ['running', 'restarting', 'failed', 'finished'] },
          frames_per_s: { type: 'number', minimum: 0 },
          frames: count,
          errors: count,
          last_error: { type: 'string' },
        },
      },
    },
  },
} as const;

const addFormats = addFormatsModule as unknown as (a: Ajv) => Ajv;
const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const countsValidator = ajv.compile(countsSchema);
const statusValidator = ajv.compile(statusSchema);

/** One line a person can read, naming each bad field: "/wifi/devices must be >= 0; /seq is required". */
export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  if (!errors?.length) return '';
  return errors
    .map((e) => {
      const where = e.instancePath || '/';
      if (e.keyword === 'required') return `${where === '/' ? '' : where}/${(e.params as { missingProperty: string }).missingProperty} is required`;
      if (e.keyword === 'const') return `${where} must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
      if (e.keyword === 'enum') return `${where} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
      return `${where} ${e.message}`;
    })
    .join('; ');
}

export type Validation<T> = { ok: true; value: T } | { ok: false; reason: string };

export function validateCounts(value: unknown): Validation<CountsMessage> {
  if (countsValidator(value)) {
    const m = value as unknown as CountsMessage;
    if (Date.parse(m.end) <= Date.parse(m.start)) return { ok: false, reason: '/end must be after /start' };
    return { ok: true, value: m };
  }
  return { ok: false, reason: describeErrors(countsValidator.errors) };
}

export function validateStatus(value: unknown): Validation<StatusMessage> {
  if (statusValidator(value)) return { ok: true, value: value as unknown as StatusMessage };
  return { ok: false, reason: describeErrors(statusValidator.errors) };
}

/** Payload bytes of a message, as published. */
export function encode(message: CountsMessage | StatusMessage): Buffer {
  return Buffer.from(JSON.stringify(message));
}

/** The last-will payload a gateway registers at connect. */
export function offlineStatus(site: string, gateway: string, zone?: string): StatusMessage {
  return { v: CONTRACT_VERSION, site, gateway, ...(zone ? { zone } : {}), state: 'offline' };
}
