// Topics, version and identifiers of the wire contract. Pure: no I/O but reading the schema files
// once when loaded (schemas.ts).
import { countsSchemaJson, sketchSchemaJson, statusSchemaJson } from './schemas.ts';
import { ADDRESS_PATTERN } from './redact.ts';

export const CONTRACT_VERSION = 1 as const;
export const TOPIC_ROOT = `presence/v${CONTRACT_VERSION}`;
/** Largest payload (bytes) a gateway sends and an aggregator accepts. */
export const MAX_PAYLOAD_BYTES = 4096;
/** Largest sketch payload (bytes): a sketch of the largest m (SKETCH_BITS_ALLOWED) in base64 plus its fields. */
export const MAX_SKETCH_PAYLOAD_BYTES = 8192;
/** Largest MQTT packet an aggregator accepts from the broker (MQTT 5 Maximum Packet Size): the
 *  largest payload of any kind (a sketch) plus room for the fixed header, the topic and properties. */
export const MAX_PACKET_BYTES = Math.max(MAX_PAYLOAD_BYTES, MAX_SKETCH_PAYLOAD_BYTES) + 1024;
/** Largest count or amount in a payload: 2^53 - 1, exact as a double in every JSON implementation. */
export const MAX_COUNT = Number.MAX_SAFE_INTEGER;
/** Longest window a counts message may cover (end - start). */
export const MAX_WINDOW_MS = 24 * 3600_000;
/** MQTT QoS for counts, status and sketches. */
export const QOS = 1 as const;

/** Site, zone and gateway ids: lower case, digits, `-` and `_`; safe in a topic and an Influx tag. */
export const ID_PATTERN: string = countsSchemaJson.$defs.id.pattern;
const ID_RE = new RegExp(ID_PATTERN);
/** Fixed reasons a capture source fails, as the status reports them (`sources[].error_code`). */
export const SOURCE_ERROR_CODES: readonly string[] = statusSchemaJson.$defs.source.properties.error_code.enum;
/** Names of capture sources as the status reports them. */
export const SOURCE_NAME_PATTERN: string = statusSchemaJson.$defs.source.properties.name.pattern;
export function isValidId(id: string): boolean {
  return ID_RE.test(id);
}

export type TopicKind = 'counts' | 'status' | 'sketch';
export const TOPIC_KINDS: readonly TopicKind[] = ['counts', 'status', 'sketch'];

/** Sizes a corridor sketch may have, in bits (powers of two; contract/schemas/sketch.schema.json `m`). */
export const SKETCH_BITS_ALLOWED: readonly number[] = sketchSchemaJson.properties.m.enum;
/** Shortest and longest corridor epoch in seconds (`epoch_s`). */
export const SKETCH_EPOCH_MIN_S: number = sketchSchemaJson.properties.epoch_s.minimum;
export const SKETCH_EPOCH_MAX_S: number = sketchSchemaJson.properties.epoch_s.maximum;
/**
 * Shortest window of a corridor group (ms): a gateway with a corridor needs gateway.window at least
 * this, and an aggregator does not take a shorter length for a group (its interval of 5 minutes and
 * its horizon would be hundreds of thousands of windows to compare).
 */
export const SKETCH_WINDOW_MIN_MS = 1000;

export function countsTopic(site: string, gateway: string): string {
  return `${TOPIC_ROOT}/${site}/${gateway}/counts`;
}
export function statusTopic(site: string, gateway: string): string {
  return `${TOPIC_ROOT}/${site}/${gateway}/status`;
}
/** Corridor sketches of a gateway (QoS 1, never retained). */
export function sketchTopic(site: string, gateway: string): string {
  return `${TOPIC_ROOT}/${site}/${gateway}/sketch`;
}
/** Every topic of one site (all its gateways, counts, status and sketches). */
export function siteFilter(site: string): string {
  return `${TOPIC_ROOT}/${site}/#`;
}
/** Wildcard subscriptions for every site and gateway. */
export const COUNTS_FILTER = `${TOPIC_ROOT}/+/+/counts`;
export const STATUS_FILTER = `${TOPIC_ROOT}/+/+/status`;
export const SKETCH_FILTER = `${TOPIC_ROOT}/+/+/sketch`;
/** Aggregators with corridors: each one's retained alive message on {root}/_aggregators/{instance}/alive
 *  ({instance}: 16 hex digits; empty payload: gone), which decides who computes a group's flows
 *  (aggregator/flows/ownership.ts). Not a site: ids cannot start with "_". */
export const ALIVE_FILTER = `${TOPIC_ROOT}/_aggregators/+/alive`;
export function aliveTopic(instance: string): string {
  return `${TOPIC_ROOT}/_aggregators/${instance}/alive`;
}
/** The instance of an alive topic, or null when the topic is not one. */
export function aliveInstance(topic: string): string | null {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT || parts[2] !== '_aggregators' || parts[4] !== 'alive') return null;
  return /^[0-9a-f]{16}$/.test(parts[3]!) ? parts[3]! : null;
}
/** The payload of an alive message: the corridor groups the instance is configured for. */
export interface AliveMessage {
  v: typeof CONTRACT_VERSION;
  instance: string;
  groups: readonly string[];
}

/** MQTT 5 shared subscription: brokers deliver each message to one member of the group. */
export function sharedFilter(group: string, filter: string): string {
  return `$share/${group}/${filter}`;
}

/** The kind a topic's last level names (counts, status, sketch), also for a topic parseTopic refuses; else null. */
export function topicKind(topic: string): TopicKind | null {
  const last = topic.slice(topic.lastIndexOf('/') + 1);
  return (TOPIC_KINDS as readonly string[]).includes(last) ? (last as TopicKind) : null;
}

/** Splits a topic of this contract; null when it is not one. */
export function parseTopic(topic: string): { site: string; gateway: string; kind: TopicKind } | null {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT) return null;
  const [, , site, gateway, kind] = parts;
  if (kind !== 'counts' && kind !== 'status' && kind !== 'sketch') return null;
  if (!isValidId(site) || !isValidId(gateway)) return null;
  return { site, gateway, kind };
}

const ADDRESS_RE = new RegExp(ADDRESS_PATTERN);

/** A topic level that is a valid id with the form of an address in it (any form contract/redact.ts knows). */
const addressLike = (level: string) => isValidId(level) && ADDRESS_RE.test(level);

/**
 * A topic as it may be logged: the root, the kind and every level that is a valid id kept, any other
 * level (it is whatever the publisher wrote: an address, say) as `(not an id)`, at most 8 levels.
 * So is a valid id with the form of an address in it (`3c22fb01a09e`, `3c-22-fb-01-a0-9e`). Nothing
 * of a level that is no id, or may be an address, reaches a log.
 */
export function topicForLog(topic: string): string {
  const parts = topic.split('/');
  const root = TOPIC_ROOT.split('/');
  const shown = parts
    .slice(0, 8)
    .map((p, i) => (p === root[i] || (TOPIC_KINDS as readonly string[]).includes(p) || (isValidId(p) && !ADDRESS_RE.test(p)) ? p : '(not an id)'));
  return parts.length > 8 ? `${shown.join('/')}/... (${parts.length} levels)` : shown.join('/');
}

/**
 * The levels of a topic that are valid ids shaped like an address (topicForLog shows them as
 * `(not an id)`): a rejection's detail that names the topic's site or gateway hides them the same way.
 */
export function addressLikeLevels(topic: string): string[] {
  return topic.split('/').filter(addressLike);
}

/**
 * An id as it may be logged: `(not an id)` when it has the form of an address (as topicForLog shows
 * such a topic level), else the id. For the ids a payload or a topic names in a rejection's detail
 * or a log line (site, gateway, zone, group: whatever the publisher chose).
 */
export function idForLog(id: string): string {
  return addressLike(id) || !isValidId(id) ? '(not an id)' : id;
}
