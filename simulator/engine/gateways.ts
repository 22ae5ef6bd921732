// The gateways of a scenario: their capture interfaces, how far "in reach" goes, and the state the
// engine keeps for each (random hopping phase and TSF offset from the gateway's own stream).
import { LINKTYPE } from '../../firmware/host/types.ts';
import { reachM, type WifiReceiver } from '../radio.ts';
import type { Rng } from '../rng.ts';
import type { Scenario } from '../scenario.ts';
import type { BleLink, GatewayState, Radio } from './types.ts';

export function bleLinkType(link: BleLink): number {
  return link === 'hci' ? LINKTYPE.BLUETOOTH_HCI_H4_WITH_PHDR : LINKTYPE.BLUETOOTH_LE_LL_WITH_PHDR;
}

/** Capture interfaces of a gateway: Wi-Fi monitor (radiotap) and/or BLE (LL with pseudo-header or HCI). */
export function captureInterfaces(
  g: Scenario['gateways'][number],
  bleLink: BleLink,
): Array<{ radio: Radio; linkType: number; name: string; description: string }> {
  const out: Array<{ radio: Radio; linkType: number; name: string; description: string }> = [];
  if (g.wifi)
    out.push({
      radio: 'wifi',
      linkType: LINKTYPE.IEEE802_11_RADIOTAP,
      name: 'wlan0mon',
      description: `${g.id} Wi-Fi monitor, channels ${g.wifi.channels.join(',')}`,
    });
  if (g.ble)
    out.push({
      radio: 'ble',
      linkType: bleLinkType(bleLink),
      name: bleLink === 'hci' ? 'hci0' : 'ble0',
      description: `${g.id} BLE ${bleLink === 'hci' ? 'host controller' : `sniffer, channel ${g.ble.channel}`}`,
    });
  return out;
}

/** Reference transmitter for "people in reach": a phone's Wi-Fi (15 dBm) carried on the body. */
export const REFERENCE_PHONE_DBM = 15;

/** The distance within which people count as in reach of a gateway. */
export function gatewayReachM(s: Scenario, g: Scenario['gateways'][number]): number {
  if (g.reachM) return g.reachM;
  const sens = g.wifi?.sensitivityDbm ?? g.ble?.sensitivityDbm ?? -92;
  const tx = g.wifi ? REFERENCE_PHONE_DBM : 0;
  return reachM(s.environment, tx, sens, s.environment.bodyLossDb);
}

/** The engine's view of every gateway, each with its own random stream forked from `root`. */
export function gatewayStates(s: Scenario, root: Rng): GatewayState[] {
  return s.gateways.map((g, i) => {
    const r = root.fork(`gateway-${g.id}`);
    const wifi: WifiReceiver | undefined = g.wifi ? { ...g.wifi, phaseMs: r.uniform(0, g.wifi.channels.length * g.wifi.dwellMs) } : undefined;
    return { spec: g, index: i, wifi, ble: g.ble, x: g.position[0], y: g.position[1], reach: gatewayReachM(s, g), tsfOffsetUs: r.int(0, 2 ** 40), rng: r };
  });
}
