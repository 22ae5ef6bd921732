// Device behaviour: a carried or installed device's radios, addresses and timing. Wi-Fi: a scan every
// burst interval, visiting its channels in order (or shuffled), a few probes per channel, a new random
// address per scan or per channel visit for randomising models. BLE: an advertisement every
// advertising interval plus advDelay, the resolvable private address rotated every 10-15 min. The
// models' parameters are in ../devices.ts; this file only plays them out in time, scheduling each
// device's next task on the queue. What reaches which gateway is emission.ts's business.
import { MODELS, bleRpa, bleStaticRandom, globalMac, randomLocalMac, type DeviceIdentity, type DeviceKind, type DeviceModel } from '../devices.ts';
import { audible, type Environment } from '../radio.ts';
import type { Rng } from '../rng.ts';
import type { Agent } from './population.ts';
import { TASK, type TaskQueue } from './queue.ts';
import type { GatewayState } from './types.ts';

interface ScanStep {
  ch: number;
  /** When the scan reaches this channel, ms after its start. */
  offsetMs: number;
}

export interface Device {
  id: number;
  model: DeviceModel;
  kind: DeviceKind;
  agent: Agent;
  rng: Rng;
  identity: DeviceIdentity;
  wifiOn: boolean;
  bleOn: boolean;
  bodyLossDb: number;
  // Wi-Fi
  mac: Uint8Array;
  macKey: string;
  macLocal: boolean;
  seq: number;
  scanT: number;
  scanStep: number;
  probeNo: number;
  probesThis: number;
  scanChannels: ScanStep[];
  ieCache: Map<number, Uint8Array>;
  /** Shadowing of the link to each gateway, dB. */
  wifiShadow: Float32Array;
  // BLE
  ble: Uint8Array;
  bleKey: string;
  bleRandom: boolean;
  bleRotateT: number;
  advData: Uint8Array;
  bleShadow: Float32Array;
}

export function hex(a: Uint8Array): string {
  let s = '';
  for (let i = 0; i < a.length; i++) s += (a[i] < 16 ? '0' : '') + a[i].toString(16);
  return s;
}

function setMac(d: Device, mac: Uint8Array): void {
  d.mac = mac;
  d.macKey = hex(mac);
  d.macLocal = (mac[0] & 0x02) !== 0;
}

/** A fresh random address (and, if the model does so, a fresh sequence number). */
function newRandomAddress(d: Device): void {
  setMac(d, randomLocalMac(d.rng));
  if (d.model.wifi!.seqOnNewAddress === 'random') d.seq = d.rng.int(0, 4095);
}

/** The information elements of the device's probes on channel `ch` (built once per channel). */
export function probeElements(d: Device, ch: number): Uint8Array {
  let ies = d.ieCache.get(ch);
  if (!ies) d.ieCache.set(ch, (ies = d.model.wifi!.ies(ch, d.identity)));
  return ies;
}

export class DeviceBehaviour {
  /** Devices made so far. */
  created = 0;
  private readonly wifiChannelsAll: number[];
  private readonly anyWifi: boolean;
  private readonly anyBle: boolean;
  private readonly scanPlans = new Map<string, ScanStep[]>();

  constructor(
    private readonly env: Environment,
    private readonly root: Rng,
    private readonly queue: TaskQueue,
    private readonly gateways: GatewayState[],
  ) {
    this.wifiChannelsAll = [...new Set(gateways.flatMap((g) => g.wifi?.channels ?? []))];
    this.anyWifi = gateways.some((g) => g.wifi);
    this.anyBle = gateways.some((g) => g.ble);
  }

  /** A device of `modelId` carried by (or, `fixed`, installed as) `agent`; schedules its first scan and advertisement. */
  create(agent: Agent, modelId: string, fixed: boolean): Device {
    const model = MODELS[modelId];
    const id = this.created++;
    const rng = this.root.fork(`device-${id}`);
    const identity: DeviceIdentity = { uuid: rng.bytes(16), tag: rng.bytes(4) };
    const w = model.wifi;
    const b = model.ble;
    const wifiOn = !!w && this.anyWifi && (fixed || rng.chance(w.activeShare));
    const bleOn = !!b && this.anyBle && (fixed || rng.chance(b.activeShare));
    const G = this.gateways.length;
    const d: Device = {
      id,
      model,
      kind: model.kind,
      agent,
      rng,
      identity,
      wifiOn,
      bleOn,
      bodyLossDb: fixed || model.kind === 'beacon' ? 0 : this.env.bodyLossDb,
      mac: new Uint8Array(6),
      macKey: '',
      macLocal: false,
      seq: rng.int(0, 4095),
      scanT: 0,
      scanStep: 0,
      probeNo: 0,
      probesThis: 0,
      scanChannels: [],
      ieCache: new Map(),
      wifiShadow: new Float32Array(G),
      ble: new Uint8Array(6),
      bleKey: '',
      bleRandom: true,
      bleRotateT: Infinity,
      advData: new Uint8Array(0),
      bleShadow: new Float32Array(G),
    };
    for (let g = 0; g < G; g++) {
      d.wifiShadow[g] = rng.normal(0, this.env.shadowingDb);
      d.bleShadow[g] = rng.normal(0, this.env.shadowingDb);
    }
    const t0 = Math.max(0, agent.arriveS);
    if (wifiOn && w) {
      let plan = this.scanPlans.get(model.id);
      if (!plan) this.scanPlans.set(model.id, (plan = this.plan(w.channels, w.channelDwellMs)));
      d.scanChannels = plan;
      if (w.macPolicy === 'fixed') setMac(d, globalMac(rng, w.oui));
      // A device whose channels no gateway hears never scans (for the simulation: it sends nothing heard).
      if (plan.length) this.queue.push(t0 + rng.uniform(0, w.burstIntervalS.mean), TASK.SCAN, d);
    }
    if (bleOn && b) {
      if (b.address === 'public') {
        d.ble = globalMac(rng, b.oui ?? [0, 0, 0]);
        d.bleRandom = false;
      } else if (b.address === 'static-random') d.ble = bleStaticRandom(rng);
      else {
        d.ble = bleRpa(rng);
        d.bleRotateT = t0 + rng.uniform(0, b.rotationS[1]);
      }
      d.bleKey = hex(d.ble);
      d.advData = b.advData(rng, identity);
      this.queue.push(t0 + rng.uniform(0, b.intervalMs[1] / 1000), TASK.ADVERT, d);
    }
    return d;
  }

  /** A scan begins at t: new address if the model randomises, the kind of scan and its channel order, first probe and next scan scheduled. */
  startScan(d: Device, t: number): void {
    const w = d.model.wifi!;
    if (w.macPolicy === 'per-burst' || w.macPolicy === 'per-channel') newRandomAddress(d);
    const kind = w.scanKinds ? w.scanKinds[d.rng.pickIndex(w.scanKinds.map((k) => k.share))] : null;
    const channels = kind ? kind.channels : w.channels;
    if (w.channelOrder === 'shuffled') {
      // A fresh visiting order for this scan; only the channels a gateway can hear get events.
      const order = [...channels];
      for (let i = order.length - 1; i > 0; i--) {
        const k = d.rng.int(0, i);
        [order[i], order[k]] = [order[k], order[i]];
      }
      d.scanChannels = this.plan(order, w.channelDwellMs);
    } else if (kind) d.scanChannels = this.plan(channels, w.channelDwellMs);
    d.scanT = t;
    d.scanStep = 0;
    d.probeNo = 0;
    d.probesThis = d.rng.int(w.probesPerChannel[0], w.probesPerChannel[1]);
    if (d.scanChannels.length) this.queue.push(t + d.scanChannels[0].offsetMs / 1000 + d.rng.uniform(0, 0.003), TASK.PROBE, d);
    const scanLen = (channels.length * w.channelDwellMs) / 1000;
    this.queue.push(t + scanLen + Math.max(w.burstIntervalS.min, d.rng.lognormal(w.burstIntervalS.mean, w.burstIntervalS.cv)), TASK.SCAN, d);
  }

  /** The audible channels of a scan visiting `channels` in this order, with when it reaches each. */
  private plan(channels: readonly number[], dwellMs: number): ScanStep[] {
    const out: ScanStep[] = [];
    channels.forEach((ch, i) => {
      if (audible(ch, this.wifiChannelsAll)) out.push({ ch, offsetMs: i * dwellMs });
    });
    return out;
  }

  /** The probe about to be sent: advances the sequence number and returns its channel. */
  probe(d: Device): number {
    d.seq = (d.seq + 1) & 0x0fff;
    return d.scanChannels[d.scanStep].ch;
  }

  /** After a probe at t: the next probe on this channel, or the next channel of the scan (new address if per-channel). */
  afterProbe(d: Device, t: number): void {
    const w = d.model.wifi!;
    d.probeNo++;
    if (d.probeNo < d.probesThis) {
      this.queue.push(t + w.probeGapMs / 1000, TASK.PROBE, d);
    } else if (d.scanStep + 1 < d.scanChannels.length) {
      d.scanStep++;
      d.probeNo = 0;
      if (w.macPolicy === 'per-channel') newRandomAddress(d);
      d.probesThis = d.rng.int(w.probesPerChannel[0], w.probesPerChannel[1]);
      this.queue.push(Math.max(t + 0.0005, d.scanT + d.scanChannels[d.scanStep].offsetMs / 1000 + d.rng.uniform(0, 0.003)), TASK.PROBE, d);
    }
  }

  /** Before an advertisement at t: rotate the private address (and the payload drawn with it) when due. */
  advertise(d: Device, t: number): void {
    if (t < d.bleRotateT) return;
    const b = d.model.ble!;
    d.ble = bleRpa(d.rng);
    d.bleKey = hex(d.ble);
    d.advData = b.advData(d.rng, d.identity);
    d.bleRotateT = t + d.rng.uniform(b.rotationS[0], b.rotationS[1]);
  }

  /** After an advertisement at t: the next one, advInterval + advDelay (Core Spec Vol 6 Part B 4.4.2.2.1) later. */
  afterAdvert(d: Device, t: number): void {
    const b = d.model.ble!;
    this.queue.push(t + d.rng.uniform(b.intervalMs[0], b.intervalMs[1]) / 1000 + d.rng.uniform(0, 0.01), TASK.ADVERT, d);
  }
}
