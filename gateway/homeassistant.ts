// Home Assistant MQTT discovery, opt-in (`--homeassistant`, homeassistant.enabled): on every
// connection to the broker the gateway publishes, retained (QoS 1), one discovery config per radio
// on {prefix}/sensor/presence_{site}_{gateway}/{zone}_{wifi|ble}/config (haNodeId: each _ of the
// site doubled, so no two gateways share the node id). Home Assistant then shows
// this zone's Wi-Fi and BLE estimates as sensors of one device, read from the counts topic, and
// marks them unavailable when the gateway's retained status says offline (its last will).
// The payloads are the contract's (contract/homeassistant.ts, closed schema); one that does not
// validate is not published.
import type { Logger } from 'pino';
import { haConfigTopic, haSensorConfig, validateHaConfig, type HaRadio } from '../contract/homeassistant.ts';
import type { GatewayConfig } from './config.ts';
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

export async function publishDiscovery(cfg: GatewayConfig, publisher: RetainedPublisher, log: Logger): Promise<number> {
  let n = 0;
  for (const m of discoveryMessages(cfg)) {
    const v = validateHaConfig(JSON.parse(m.payload));
    if (!v.ok) {
      log.error({ topic: m.topic, reason: v.reason }, 'Home Assistant discovery config does not match the contract; not published');
      continue;
    }
    if (await publisher.publishRetained(m.topic, m.payload)) n++;
    else
      log.warn(
        { topic: m.topic },
        'Home Assistant discovery config not published (the broker refused it, e.g. its ACL, or the connection dropped); presence provision gateway --homeassistant grants these topics',
      );
  }
  log.info({ configs: n, prefix: cfg.homeassistant?.prefix }, 'Home Assistant discovery configs published');
  return n;
}
