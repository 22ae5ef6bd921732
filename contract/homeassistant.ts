// Home Assistant MQTT discovery (opt-in on the gateway, `homeassistant.enabled`): the config topic of
// each sensor, its payload and the validator of the payload against schemas/ha-discovery.schema.json.
// Kept out of contract/index.ts: it compiles its schema with ajv, which a gateway without Home
// Assistant never loads.
import { Ajv2020 } from 'ajv/dist/2020.js';
import { packageJson } from '../scripts/package-root.ts';
import { countsTopic, statusTopic } from './topics.ts';

export const HA_DEFAULT_PREFIX = 'homeassistant';
/** Discovery prefix: Home Assistant's setting (default "homeassistant"); one topic level. */
export const HA_PREFIX_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const haDiscoverySchema: Record<string, unknown> = packageJson('contract/schemas/ha-discovery.schema.json');

export type HaRadio = 'wifi' | 'ble';

export interface HaSensorConfig {
  name: string;
  unique_id: string;
  default_entity_id?: string;
  state_topic: string;
  value_template: string;
  unit_of_measurement: 'devices';
  state_class: 'measurement';
  icon?: string;
  availability_topic: string;
  availability_template: string;
  payload_available: 'online';
  payload_not_available: 'offline';
  qos: 1;
  device: { identifiers: string[]; name: string; manufacturer: 'presence-counter'; model: 'gateway'; sw_version?: string; suggested_area?: string };
  origin: { name: 'presence-counter'; sw_version?: string };
}

/**
 * Node id of a gateway in discovery topics, device identifier and start of its unique ids:
 * presence_{site}_{gateway}, with each `_` of the site doubled. Ids may hold `_`, so the plain
 * join gave site a_b, gateway c and site a, gateway b_c one node id: one device in Home Assistant,
 * the same unique ids (the second gateway's sensors ignored) and one ACL grant for both. With the
 * site's `_` doubled the first single `_` after the site is the separator (a gateway id does not
 * start with `_`), so no two gateways share a node id; a site without `_` keeps the plain form.
 */
export function haNodeId(site: string, gateway: string): string {
  return `presence_${site.replaceAll('_', '__')}_${gateway}`;
}

/** {prefix}/sensor/{node id}/{zone}_{radio}/config (haNodeId: presence_{site}_{gateway}) */
export function haConfigTopic(prefix: string, site: string, gateway: string, zone: string, radio: HaRadio): string {
  return `${prefix}/sensor/${haNodeId(site, gateway)}/${zone}_${radio}/config`;
}

/** The filter of every discovery config topic of one gateway: {prefix}/sensor/{node id}/+/config
 *  (what its broker user must be allowed to write; `presence provision gateway --homeassistant` grants it). */
export function haConfigFilter(prefix: string, site: string, gateway: string): string {
  return `${prefix}/sensor/${haNodeId(site, gateway)}/+/config`;
}

/**
 * Entity id Home Assistant gives the sensor on first discovery (replaces the deprecated object_id):
 * sensor.presence_{site}_{gateway}_{zone}_{radio}. It names the gateway, so two gateways of one zone
 * get distinct entity ids. Home Assistant turns the id into a slug ("-" becomes "_").
 */
export function haDefaultEntityId(site: string, gateway: string, zone: string, radio: HaRadio): string {
  return `sensor.presence_${site}_${gateway}_${zone}_${radio}`;
}

/** The discovery config of one radio's estimate of a gateway's zone. */
export function haSensorConfig(o: { site: string; zone: string; gateway: string; radio: HaRadio; version?: string }): HaSensorConfig {
  const node = haNodeId(o.site, o.gateway);
  return {
    name: o.radio === 'wifi' ? 'Wi-Fi devices' : 'BLE devices',
    unique_id: `${node}_${o.radio}_estimate`,
    default_entity_id: haDefaultEntityId(o.site, o.gateway, o.zone, o.radio),
    state_topic: countsTopic(o.site, o.gateway),
    value_template: `{{ value_json.${o.radio}.estimate }}`,
    unit_of_measurement: 'devices',
    state_class: 'measurement',
    // A phone with radio waves, not a group of people: the value is a count of devices.
    icon: 'mdi:cellphone-wireless',
    availability_topic: statusTopic(o.site, o.gateway),
    availability_template: '{{ value_json.state }}',
    payload_available: 'online',
    payload_not_available: 'offline',
    qos: 1,
    device: {
      identifiers: [node],
      name: `presence ${o.site}/${o.gateway}`,
      manufacturer: 'presence-counter',
      model: 'gateway',
      ...(o.version ? { sw_version: o.version } : {}),
      suggested_area: o.zone,
    },
    origin: { name: 'presence-counter', ...(o.version ? { sw_version: o.version } : {}) },
  };
}

let validator: ReturnType<Ajv2020['compile']> | null = null;
/** Checks a discovery payload against the closed schema; the reason names the first bad fields. */
export function validateHaConfig(value: unknown): { ok: true } | { ok: false; reason: string } {
  validator ??= new Ajv2020({ allErrors: true, strict: true }).compile(haDiscoverySchema);
  if (validator(value)) return { ok: true };
  return { ok: false, reason: (validator.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ') };
}
