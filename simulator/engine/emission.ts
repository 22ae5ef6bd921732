// Frame emission: one probe request or advertisement, sent by a device at time t, as each gateway
// hears it. Per gateway: mean signal from path loss, body and vehicle loss and the link's shadowing;
// then the receiver (Wi-Fi: the channel it is tuned to and the adjacent-channel penalty; BLE: its
// duty cycle), per-frame fading and the sensitivity decide whether it is captured. Every frame that is
// captured is tallied for the truth and yielded as that gateway's frame.
import { LINKTYPE } from '../../firmware/host/types.ts';
import { bleAdvertHci, bleAdvertLL, probeRequest } from '../frames.ts';
import { adjacentPenaltyDb, pathLossDb, tunedChannel, type Environment } from '../radio.ts';
import type { Rng } from '../rng.ts';
import type { TruthAccounting } from './accounting.ts';
import { probeElements, type Device } from './devices.ts';
import { bleLinkType } from './gateways.ts';
import { position } from './population.ts';
import type { BleLink, EngineTap, GatewayState, SimEvent } from './types.ts';

export function distance(d: Device, t: number, g: GatewayState): number {
  const [x, y] = position(d.agent, t);
  return Math.hypot(x - g.x, y - g.y);
}

export class FrameEmitter {
  private readonly bleLinkType: number;

  /** @param air the random stream of per-frame fading and BLE duty cycles (shared by all links, drawn in frame order). */
  constructor(
    private readonly env: Environment,
    private readonly gateways: GatewayState[],
    private readonly air: Rng,
    private readonly bleLink: BleLink,
    private readonly startMs: number,
    private readonly truth: TruthAccounting,
    private readonly tap?: EngineTap,
  ) {
    this.bleLinkType = bleLinkType(bleLink);
  }

  /** A probe request of device d at t on channel ch (its sequence number already advanced). */
  *probe(d: Device, t: number, ch: number): Generator<SimEvent> {
    const w = d.model.wifi!;
    const env = this.env;
    const tMs = t * 1000;
    for (const g of this.gateways) {
      if (!g.wifi) continue;
      const tally = this.truth.tally(g.index);
      const mean = w.txPowerDbm - pathLossDb(env, distance(d, t, g)) - d.bodyLossDb - d.agent.extraLossDb + d.wifiShadow[g.index];
      if (mean >= g.wifi.sensitivityDbm) tally.emittedWifi.add(d.macKey);
      if (mean + 4 * env.fadingDb < g.wifi.sensitivityDbm) continue;
      const tuned = tunedChannel(g.wifi, tMs);
      if (!tuned) continue;
      const pen = adjacentPenaltyDb(ch, tuned);
      if (pen === null) continue;
      const rssi = mean - pen + this.air.normal(0, env.fadingDb);
      if (rssi < g.wifi.sensitivityDbm) continue;
      const data = probeRequest({ sa: d.mac, seq: d.seq, ies: probeElements(d, ch), channel: tuned, signalDbm: rssi, tsfUs: g.tsfOffsetUs + t * 1e6 });
      tally.capturedWifi(d.macKey, d.macLocal);
      this.tap?.captured?.(g.index, 'wifi', d, t);
      yield { type: 'frame', gateway: g.index, radio: 'wifi', frame: { linkType: LINKTYPE.IEEE802_11_RADIOTAP, timestampMs: this.startMs + tMs, data } };
    }
  }

  /** An advertisement of device d at t (on the channel each gateway's sniffer follows). */
  *advert(d: Device, t: number): Generator<SimEvent> {
    const b = d.model.ble!;
    const env = this.env;
    for (const g of this.gateways) {
      if (!g.ble) continue;
      const tally = this.truth.tally(g.index);
      const mean = b.txPowerDbm - pathLossDb(env, distance(d, t, g)) - d.bodyLossDb - d.agent.extraLossDb + d.bleShadow[g.index];
      if (mean >= g.ble.sensitivityDbm) tally.emittedBle.add(d.bleKey);
      if (mean + 4 * env.fadingDb < g.ble.sensitivityDbm) continue;
      if (g.ble.duty < 1 && !this.air.chance(g.ble.duty)) continue;
      const rssi = mean + this.air.normal(0, env.fadingDb);
      if (rssi < g.ble.sensitivityDbm) continue;
      const fields = { pduType: b.pduType, adva: d.ble, random: d.bleRandom, advData: d.advData, channel: g.ble.channel, signalDbm: rssi };
      const data = this.bleLink === 'hci' ? bleAdvertHci(fields) : bleAdvertLL(fields);
      tally.capturedBle(d.bleKey, d.bleRandom);
      this.tap?.captured?.(g.index, 'ble', d, t);
      yield { type: 'frame', gateway: g.index, radio: 'ble', frame: { linkType: this.bleLinkType, timestampMs: this.startMs + t * 1000, data } };
    }
  }
}
