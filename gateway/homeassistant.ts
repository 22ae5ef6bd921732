// Home Assistant MQTT discovery, opt-in (`--homeassistant`, homeassistant.enabled): on every
// connection to the broker the gateway publishes, retained (QoS 1), one discovery config per radio
// on {prefix}/sensor/presence_{site}_{gateway}/{zone}_{wifi|ble}/config (haNodeId: each _ of the
// site doubled, so no two gateways share the node id). Home Assistant then shows
// this zone's Wi-Fi and BLE estimates as sensors of one device, read from the counts topic, and
// marks them unavailable when the gateway's retained status says offline (its last will).
// The payloads are the contract's (contract/homeassistant.ts, closed schema); one that does not
// validate is not published.
//
// The topics published are kept in the queue folder (DISCOVERY_FILE). A config the gateway no longer
// publishes (another zone or prefix, or homeassistant.enabled turned off) is removed at the next
// connection with an empty retained message, as Home Assistant's discovery removes a sensor;
// retained, it would otherwise stay on the broker and in Home Assistant for ever.
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { HA_PREFIX_PATTERN, haConfigTopic, haNodeId, haSensorConfig, validateHaConfig, type HaRadio } from '../contract/homeassistant.ts';
import type { GatewayConfig } from './config.ts';
import { DISCOVERY_FILE, writeDurably } from './queue.ts';
import { VERSION } from './status.ts';

export interface RetainedPublisher {
  publishRetained(topic: string, payload: string): Promise<boolean>;
}

/** The discovery messages of a gateway: topic and JSON payload per radio. */
export function discoveryMessages(cfg: GatewayConfig): Array<{ topic: string; payload: string }> {
  const g = cfg.gateway;
  const prefix = cfg.homeassistant?.prefix ?? 'homeassistant';
  return (['wifi', 'ble'] as HaRadio[]).map((radio) => ({
    topic: haConfigTopic(prefix, g.site, g.id, g.zone, radio),
    payload: JSON.stringify(haSensorConfig({ site: g.site, zone: g.zone, gateway: g.id, radio, version: VERSION })),
  }));
}

/** Topics in the file that are this gateway's own discovery config topics; anything else is ignored. */
function readPublished(cfg: GatewayConfig, queueDir: string, log: Logger): string[] {
  const path = join(queueDir, DISCOVERY_FILE);
  if (!existsSync(path)) return [];
  let list: unknown;
  try {
    list = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    log.warn({ file: path, err: (err as Error).message }, 'Home Assistant discovery: the list of published configs cannot be read; none removed');
    return [];
  }
  const node = haNodeId(cfg.gateway.site, cfg.gateway.id);
  const own = new RegExp(`${HA_PREFIX_PATTERN.slice(0, -1)}/sensor/${node}/[A-Za-z0-9_-]{1,200}/config$`);
  return Array.isArray(list) ? list.filter((t): t is string => typeof t === 'string' && own.test(t)) : [];
}

function writePublished(queueDir: string, topics: string[], log: Logger): void {
  const path = join(queueDir, DISCOVERY_FILE);
  try {
    if (topics.length) writeDurably(path, `${JSON.stringify([...new Set(topics)].sort())}\n`, queueDir);
    else if (existsSync(path)) unlinkSync(path);
  } catch (err) {
    log.warn({ file: path, err: (err as Error).message }, 'Home Assistant discovery: the list of published configs cannot be written');
  }
}

/**
 * Publishes this gateway's discovery configs (when homeassistant.enabled) and removes, with an empty
 * retained message, those it published before and no longer does. Returns the configs published.
 */
export async function publishDiscovery(cfg: GatewayConfig, publisher: RetainedPublisher, log: Logger, queueDir?: string): Promise<number> {
  const enabled = cfg.homeassistant?.enabled ?? false;
  const before = queueDir ? readPublished(cfg, queueDir, log) : [];
  const messages = enabled
    ? discoveryMessages(cfg).filter((m) => {
        const v = validateHaConfig(JSON.parse(m.payload));
        if (!v.ok) log.error({ topic: m.topic, reason: v.reason }, 'Home Assistant discovery config does not match the contract; not published');
        return v.ok;
      })
    : [];
  // The stale ones go first: a config of the same unique id on another topic (the old zone's) would
  // make Home Assistant ignore the new one, and the device keeps its area unless it is removed.
  const stale = before.filter((t) => !messages.some((m) => m.topic === t));
  const kept: string[] = [];
  for (const topic of stale) if (!(await publisher.publishRetained(topic, ''))) kept.push(topic);
  if (stale.length) {
    const removed = stale.filter((t) => !kept.includes(t));
    const why = enabled ? "no longer this gateway's (zone or prefix changed)" : 'homeassistant.enabled is off';
    if (removed.length) log.info({ removed, reason: why }, 'Home Assistant discovery configs removed');
    if (kept.length)
      log.warn(
        { topics: kept, reason: why },
        'Home Assistant discovery configs not removed (the broker refused the empty message, or the connection dropped); tried again at the next connection',
      );
  }
  /** Topics that hold (or may hold) one of its configs on the broker after this. */
  const retained: string[] = [...kept];
  let n = 0;
  for (const m of messages) {
    // Recorded before it is sent, so that one that reached the broker is removed later even after
    // a crash; dropped again below when the broker refused it (then it is not retained there).
    if (queueDir) writePublished(queueDir, [...retained, ...before.filter((t) => !stale.includes(t)), m.topic], log);
    const ok = await publisher.publishRetained(m.topic, m.payload);
    if (ok || before.includes(m.topic)) retained.push(m.topic);
    if (ok) n++;
    else
      log.warn(
        { topic: m.topic },
        'Home Assistant discovery config not published (the broker refused it, e.g. its ACL, or the connection dropped); presence provision gateway --homeassistant grants these topics',
      );
  }
  if (enabled) log.info({ configs: n, prefix: cfg.homeassistant?.prefix }, 'Home Assistant discovery configs published');
  if (queueDir) writePublished(queueDir, retained, log);
  return n;
}
