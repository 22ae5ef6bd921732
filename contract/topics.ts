// Topics, version and identifiers of the wire contract. Pure: no I/O.
import countsSchemaJson from './schemas/counts.schema.json' with { type: 'json' };

export const CONTRACT_VERSION = 1 as const;
export const TOPIC_ROOT = `presence/v${CONTRACT_VERSION}`;
/** Largest payload (bytes) a gateway sends and an aggregator accepts. */
export const MAX_PAYLOAD_BYTES = 4096;
/** MQTT QoS for counts and status. */
export const QOS = 1 as const;

/** Site, zone and gateway ids: lower case, digits, `-` and `_`; safe in a topic and an Influx tag. */
export const ID_PATTERN: string = countsSchemaJson.$defs.id.pattern;
const ID_RE = new RegExp(ID_PATTERN);
export function isValidId(id: string): boolean {
  return ID_RE.test(id);
}

export type TopicKind = 'counts' | 'status';
export const TOPIC_KINDS: readonly TopicKind[] = ['counts', 'status'];

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
