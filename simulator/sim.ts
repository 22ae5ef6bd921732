// The simulation engine: people arrive, move and leave; their devices scan and advertise; each
// gateway's radios hear what reaches them on the channel they are tuned to. A discrete-event loop
// (one binary heap ordered by time) yields frames in time order across all gateways, and the ground
// truth of every window as it closes. Memory holds the people present, never the frames.
import { LINKTYPE, type Frame } from '../firmware/host/types.ts';
import { MODELS, bleRpa, bleStaticRandom, globalMac, randomLocalMac, type DeviceIdentity, type DeviceKind, type DeviceModel } from './devices.ts';
import { bleAdvertHci, bleAdvertLL, probeRequest } from './frames.ts';
import { adjacentPenaltyDb, audible, pathLossDb, reachM, tunedChannel, type WifiReceiver } from './radio.ts';
import { Rng } from './rng.ts';
import type { FlowModeSpec, GatheringSpec, FlowSpec, Scenario } from './scenario.ts';
import { WindowTally, median, type TravelStat, type TruthWindow } from './truth.ts';

export type BleLink = 'll' | 'hci';
export type Radio = 'wifi' | 'ble';

export interface FrameEvent {
  type: 'frame';
  /** Index into scenario.gateways. */
  gateway: number;
  radio: Radio;
  frame: Frame;
}
export interface WindowEvent {
  type: 'window';
  /** One entry per gateway, in scenario order. */
  windows: TruthWindow[];
}
export type SimEvent = FrameEvent | WindowEvent;

export interface EngineOptions {
  seed: number;
  /** BLE encapsulation: link layer with pseudo-header (256) or HCI event (201). */
  bleLink?: BleLink;
}

export function bleLinkType(link: BleLink): number {
  return link === 'hci' ? LINKTYPE.BLUETOOTH_HCI_H4_WITH_PHDR : LINKTYPE.BLUETOOTH_LE_LL_WITH_PHDR;
}

/** Capture interfaces of a gateway: Wi-Fi monitor (radiotap) and/or BLE (LL with pseudo-header or HCI). */
export function captureInterfaces(g: Scenario['gateways'][number], bleLink: BleLink): Array<{ radio: Radio; linkType: number; name: string; description: string }> {
  const out: Array<{ radio: Radio; linkType: number; name: string; description: string }> = [];
  if (g.wifi) out.push({ radio: 'wifi', linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon', description: `${g.id} Wi-Fi monitor, channels ${g.wifi.channels.join(',')}` });
  if (g.ble) out.push({ radio: 'ble', linkType: bleLinkType(bleLink), name: bleLink === 'hci' ? 'hci0' : 'ble0', description: `${g.id} BLE ${bleLink === 'hci' ? 'host controller' : `sniffer, channel ${g.ble.channel}`}` });
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

interface Agent {
  id: number;
  people: number;
  /** Waypoints: t (s), x, y triplets; position is linear between them. */
  wp: number[];
  cursor: number;
  arriveS: number;
  departS: number;
  extraLossDb: number;
  devices: Device[];
}

interface Device {
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
  scanChannels: Array<{ ch: number; offsetMs: number }>;
  ieCache: Map<number, Uint8Array>;
  wifiShadow: Float32Array;
  // BLE
  ble: Uint8Array;
  bleKey: string;
  bleRandom: boolean;
  bleRotateT: number;
  advData: Uint8Array;
  bleShadow: Float32Array;
}

const EV_WINDOW = 0;
const EV_ARRIVAL = 1;
const EV_SCAN = 2;
const EV_PROBE = 3;
const EV_ADV = 4;
const EV_TICK = 5;

interface HeapItem {
  t: number;
  pri: number;
  n: number;
  kind: number;
  ref: unknown;
}

class Heap {
  private a: HeapItem[] = [];
  private n = 0;
  get size(): number {
    return this.a.length;
  }
  push(t: number, kind: number, ref: unknown): void {
    const item = { t, pri: kind === EV_WINDOW ? 0 : 1, n: this.n++, kind, ref };
    const a = this.a;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): HeapItem | undefined {
    const a = this.a;
    if (!a.length) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l], a[m])) m = l;
        if (r < a.length && less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
function less(x: HeapItem, y: HeapItem): boolean {
  return x.t < y.t || (x.t === y.t && (x.pri < y.pri || (x.pri === y.pri && x.n < y.n)));
}

function hex(a: Uint8Array): string {
  let s = '';
  for (let i = 0; i < a.length; i++) s += (a[i] < 16 ? '0' : '') + a[i].toString(16);
  return s;
}

function position(a: Agent, t: number): [number, number] {
  const wp = a.wp;
  const n = wp.length / 3;
  if (n === 1 || t <= wp[0]) return [wp[1], wp[2]];
  if (t < wp[a.cursor * 3]) a.cursor = 0;
  while (a.cursor < n - 1 && wp[(a.cursor + 1) * 3] <= t) a.cursor++;
  const i = a.cursor * 3;
  if (a.cursor >= n - 1) return [wp[i + 1], wp[i + 2]];
  const t0 = wp[i];
  const t1 = wp[i + 3];
  const f = t1 > t0 ? (t - t0) / (t1 - t0) : 0;
  return [wp[i + 1] + f * (wp[i + 4] - wp[i + 1]), wp[i + 2] + f * (wp[i + 5] - wp[i + 2])];
}

interface CrowdState {
  spec: GatheringSpec | FlowSpec;
  index: number;
  rng: Rng;
  mode?: string;
  reverse?: boolean;
}

/**
 * Runs a scenario, yielding every captured frame (all gateways, in time order) and, at each window
 * end, the ground truth of every gateway. Deterministic for a seed.
 */
export function* runScenario(s: Scenario, opts: EngineOptions): Generator<SimEvent> {
  const root = new Rng(opts.seed);
  const air = root.fork('air');
  const bleLink = opts.bleLink ?? 'll';
  const env = s.environment;
  const G = s.gateways.length;
  const endS = s.durationS;
  const startMs = s.startMs;
  const gw = s.gateways.map((g, i) => {
    const r = root.fork(`gateway-${g.id}`);
    const wifi: WifiReceiver | undefined = g.wifi ? { ...g.wifi, phaseMs: r.uniform(0, g.wifi.channels.length * g.wifi.dwellMs) } : undefined;
    return { spec: g, index: i, wifi, ble: g.ble, x: g.position[0], y: g.position[1], reach: gatewayReachM(s, g), tsfOffsetUs: r.int(0, 2 ** 40), rng: r };
  });
  const wifiChannelsAll = [...new Set(gw.flatMap((g) => g.wifi?.channels ?? []))];
  const anyWifi = gw.some((g) => g.wifi);
  const anyBle = gw.some((g) => g.ble);
  const heap = new Heap();
  const agents = new Set<Agent>();
  let nextAgentId = 0;
  let nextDeviceId = 0;
  let totalPeople = 0;
  let totalDevices = 0;
  const scanPlanCache = new Map<string, Array<{ ch: number; offsetMs: number }>>();
  // Travel: window index -> "from|to|mode" -> travel times
  const travel = new Map<number, Map<string, number[]>>();
  let tallies = gw.map(() => new WindowTally());
  let windowIndex = 0;
  // Windows fall on multiples of the window length in UTC, as the gateways and `presence replay`
  // count them; when the scenario starts between two boundaries the first window is shorter.
  const windowMs = s.windowS * 1000;
  const firstEndS = ((Math.floor(startMs / windowMs) + 1) * windowMs - startMs) / 1000;
  const windowStartS = (i: number) => (i === 0 ? 0 : firstEndS + (i - 1) * s.windowS);
  const windowOf = (t: number) => (t < firstEndS ? 0 : 1 + Math.floor((t - firstEndS) / s.windowS));

  // ---- devices ----
  const makeDevice = (agent: Agent, modelId: string, fixed: boolean): Device => {
    const model = MODELS[modelId];
    const id = nextDeviceId++;
    const rng = root.fork(`device-${id}`);
    const identity: DeviceIdentity = { uuid: rng.bytes(16), tag: rng.bytes(4) };
    const w = model.wifi;
    const b = model.ble;
    const wifiOn = !!w && anyWifi && (fixed || rng.chance(w.activeShare));
    const bleOn = !!b && anyBle && (fixed || rng.chance(b.activeShare));
    const d: Device = {
      id,
      model,
      kind: model.kind,
      agent,
      rng,
      identity,
      wifiOn,
      bleOn,
      bodyLossDb: fixed || model.kind === 'beacon' ? 0 : env.bodyLossDb,
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
      d.wifiShadow[g] = rng.normal(0, env.shadowingDb);
      d.bleShadow[g] = rng.normal(0, env.shadowingDb);
    }
    const t0 = Math.max(0, agent.arriveS);
    if (wifiOn && w) {
      const key = `${model.id}`;
      let plan = scanPlanCache.get(key);
      if (!plan) {
        plan = [];
        w.channels.forEach((ch, i) => {
          if (audible(ch, wifiChannelsAll)) plan!.push({ ch, offsetMs: i * w.channelDwellMs });
        });
        scanPlanCache.set(key, plan);
      }
      d.scanChannels = plan;
      if (w.macPolicy === 'fixed') setMac(d, globalMac(rng, w.oui));
      if (plan.length) heap.push(t0 + rng.uniform(0, w.burstIntervalS.mean), EV_SCAN, d);
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
      heap.push(t0 + rng.uniform(0, b.intervalMs[1] / 1000), EV_ADV, d);
    }
    totalDevices++;
    return d;
  };
  const setMac = (d: Device, mac: Uint8Array) => {
    d.mac = mac;
    d.macKey = hex(mac);
    d.macLocal = (mac[0] & 0x02) !== 0;
  };
  const carryDevices = (agent: Agent, rng: Rng) => {
    const n = rng.pickIndex(s.people.carry);
    for (let i = 0; i < n; i++) agent.devices.push(makeDevice(agent, i === 0 ? rng.pick(s.people.primary) : rng.pick(s.people.secondary), false));
  };

  // ---- crowds ----
  const crowdStates: CrowdState[] = [];
  s.crowds.forEach((c, i) => {
    if (c.type === 'gathering') crowdStates.push({ spec: c, index: i, rng: root.fork(`crowd-${i}`) });
    else
      for (const mode of Object.keys(c.modes))
        for (const reverse of c.bidirectional ? [false, true] : [false]) crowdStates.push({ spec: c, index: i, rng: root.fork(`crowd-${i}-${mode}-${reverse}`), mode, reverse });
  });

  const occupancy = (c: GatheringSpec, t: number): number => {
    const o = c.occupancy;
    if (t <= o[0][0]) return o[0][1] * s.scale;
    for (let k = 1; k < o.length; k++) if (t < o[k][0]) return (o[k - 1][1] + ((t - o[k - 1][0]) / (o[k][0] - o[k - 1][0])) * (o[k][1] - o[k - 1][1])) * s.scale;
    return o[o.length - 1][1] * s.scale;
  };
  const occupancySlope = (c: GatheringSpec, t: number): number => {
    const o = c.occupancy;
    for (let k = 1; k < o.length; k++) if (t >= o[k - 1][0] && t < o[k][0]) return ((o[k][1] - o[k - 1][1]) / (o[k][0] - o[k - 1][0])) * s.scale;
    return 0;
  };
  const nextBreak = (c: GatheringSpec, t: number): number => {
    for (const [bt] of c.occupancy) if (bt > t) return bt;
    return Infinity;
  };
  const borderPoint = (r: GatheringSpec['region'], rng: Rng): [number, number] => {
    const side = rng.int(0, 3);
    const u = rng.float();
    if (side === 0) return [r.x + u * r.width, r.y];
    if (side === 1) return [r.x + u * r.width, r.y + r.height];
    if (side === 2) return [r.x, r.y + u * r.height];
    return [r.x + r.width, r.y + u * r.height];
  };
  const inside = (r: GatheringSpec['region'], rng: Rng): [number, number] => [r.x + rng.float() * r.width, r.y + rng.float() * r.height];

  /** A person arriving at a gathering at t0 (or already there at t0 = 0 when `residual`). */
  const gatheringAgent = (cs: CrowdState, t0: number, residual: boolean) => {
    const c = cs.spec as GatheringSpec;
    const rng = cs.rng.fork(`agent-${nextAgentId}`);
    const speed = c.speedMps * rng.lognormal(1, 0.2);
    let dwell = rng.lognormal(c.dwellS, c.dwellCv);
    const wp: number[] = [];
    let t = t0;
    let here: [number, number];
    if (residual) {
      dwell = dwell * rng.float();
      here = inside(c.region, rng);
      wp.push(t, here[0], here[1]);
    } else {
      const entry = borderPoint(c.region, rng);
      here = inside(c.region, rng);
      wp.push(t, entry[0], entry[1]);
      t += Math.hypot(here[0] - entry[0], here[1] - entry[1]) / speed;
      wp.push(t, here[0], here[1]);
    }
    const exit = borderPoint(c.region, rng);
    const end = Math.max(t0 + dwell, t + Math.hypot(exit[0] - here[0], exit[1] - here[1]) / speed);
    for (;;) {
      const stay = rng.exp(c.moveEveryS);
      const next = inside(c.region, rng);
      const walk = Math.hypot(next[0] - here[0], next[1] - here[1]) / speed;
      const out = Math.hypot(exit[0] - next[0], exit[1] - next[1]) / speed;
      if (t + stay + walk + out >= end) break;
      t += stay;
      wp.push(t, here[0], here[1]);
      t += walk;
      here = next;
      wp.push(t, here[0], here[1]);
    }
    const leaveAt = end - Math.hypot(exit[0] - here[0], exit[1] - here[1]) / speed;
    if (leaveAt > t) wp.push(leaveAt, here[0], here[1]);
    wp.push(end, exit[0], exit[1]);
    addAgent({ id: nextAgentId++, people: 1, wp, cursor: 0, arriveS: t0, departS: end, extraLossDb: 0, devices: [] }, rng);
  };

  /** An agent entering the flow at t0, or (enRoute in 0..1) one that entered before the start and has covered that share of the way. */
  const flowAgent = (cs: CrowdState, t0: number, enRoute?: number) => {
    const c = cs.spec as FlowSpec;
    const m: FlowModeSpec = c.modes[cs.mode!];
    const rng = cs.rng.fork(`agent-${nextAgentId}`);
    const [a, b] = cs.reverse ? [c.to, c.from] : [c.from, c.to];
    const len = Math.hypot(b[0] - a[0], b[1] - a[1]);
    const speed = m.speedMps * rng.lognormal(1, m.speedCv);
    if (enRoute !== undefined) t0 = -enRoute * (len / speed);
    const lat = rng.uniform(-2, 2);
    const nx = -(b[1] - a[1]) / len;
    const ny = (b[0] - a[0]) / len;
    const ax = a[0] + nx * lat;
    const ay = a[1] + ny * lat;
    const bx = b[0] + nx * lat;
    const by = b[1] + ny * lat;
    const dur = len / speed;
    const people = rng.int(m.people[0], m.people[1]);
    const agent: Agent = { id: nextAgentId++, people, wp: [t0, ax, ay, t0 + dur, bx, by], cursor: 0, arriveS: t0, departS: t0 + dur, extraLossDb: m.attenuationDb, devices: [] };
    // Travel times between consecutive gateways the path passes within their reach.
    const passes: Array<{ g: string; t: number }> = [];
    for (const g of gw) {
      const proj = ((g.x - ax) * (bx - ax) + (g.y - ay) * (by - ay)) / len;
      if (proj < 0 || proj > len) continue;
      const px = ax + ((bx - ax) * proj) / len;
      const py = ay + ((by - ay) * proj) / len;
      if (Math.hypot(g.x - px, g.y - py) > g.reach) continue;
      passes.push({ g: g.spec.id, t: t0 + proj / speed });
    }
    passes.sort((p, q) => p.t - q.t);
    for (let k = 1; k < passes.length; k++) {
      if (passes[k - 1].t < 0) continue; // passed the first gateway before the simulation started
      const w = windowOf(passes[k].t);
      const key = `${passes[k - 1].g}|${passes[k].g}|${cs.mode}`;
      let mw = travel.get(w);
      if (!mw) travel.set(w, (mw = new Map()));
      const arr = mw.get(key) ?? [];
      arr.push(passes[k].t - passes[k - 1].t);
      mw.set(key, arr);
    }
    for (const [model, p] of Object.entries(m.vehicleDevices)) if (rng.chance(p)) agent.devices.push(makeDevice(agent, model, false));
    addAgent(agent, rng, people);
  };

  const addAgent = (agent: Agent, rng: Rng, carriers = agent.people) => {
    for (let p = 0; p < carriers; p++) carryDevices(agent, rng);
    agents.add(agent);
    totalPeople += agent.people;
  };

  // Initial population and first arrivals.
  for (const cs of crowdStates) {
    if (cs.spec.type === 'gathering') {
      const n0 = Math.round(occupancy(cs.spec, 0));
      for (let i = 0; i < n0; i++) gatheringAgent(cs, 0, true);
    } else {
      // The street is not empty at the start: as many agents on the way as the flow keeps there.
      const m = cs.spec.modes[cs.mode!];
      const len = Math.hypot(cs.spec.to[0] - cs.spec.from[0], cs.spec.to[1] - cs.spec.from[1]);
      const n0 = cs.rng.poisson(((m.perHour * s.scale) / 3600) * (len / m.speedMps));
      for (let i = 0; i < n0; i++) flowAgent(cs, 0, cs.rng.float());
    }
    heap.push(0, EV_ARRIVAL, cs);
  }
  s.fixed.forEach((f) => {
    for (let k = 0; k < f.count; k++) {
      const agent: Agent = { id: nextAgentId++, people: 0, wp: [0, f.position[0], f.position[1]], cursor: 0, arriveS: 0, departS: Infinity, extraLossDb: 0, devices: [] };
      agent.devices.push(makeDevice(agent, f.model, true));
      agents.add(agent);
    }
  });
  heap.push(0, EV_TICK, null);
  heap.push(Math.min(firstEndS, endS), EV_WINDOW, null);

  const scheduleArrival = (cs: CrowdState, t: number) => {
    if (cs.spec.type === 'gathering') {
      const c = cs.spec;
      const n = occupancy(c, t);
      const rate = Math.max(0, occupancySlope(c, t) + n / c.dwellS);
      const brk = nextBreak(c, t);
      if (rate <= 0) {
        if (brk < endS) heap.push(brk, EV_ARRIVAL, { ...cs, arrive: false });
        return;
      }
      const dt = cs.rng.exp(1 / rate);
      // Rates change at breakpoints: re-draw there (memoryless) if the draw overshoots.
      if (t + dt > brk) {
        if (brk < endS) heap.push(brk, EV_ARRIVAL, { ...cs, arrive: false });
        return;
      }
      if (t + dt < endS) heap.push(t + dt, EV_ARRIVAL, { ...cs, arrive: true });
    } else {
      const rate = (cs.spec.modes[cs.mode!].perHour * s.scale) / 3600;
      if (rate <= 0) return;
      const dt = cs.rng.exp(1 / rate);
      if (t + dt < endS) heap.push(t + dt, EV_ARRIVAL, { ...cs, arrive: true });
    }
  };

  // ---- reception ----
  const dist = (a: Agent, t: number, g: (typeof gw)[number]) => {
    const [x, y] = position(a, t);
    return Math.hypot(x - g.x, y - g.y);
  };

  const emitProbe = function* (d: Device, t: number, ch: number): Generator<SimEvent> {
    const w = d.model.wifi!;
    d.seq = (d.seq + 1) & 0x0fff;
    const tMs = t * 1000;
    for (const g of gw) {
      if (!g.wifi) continue;
      const mean = w.txPowerDbm - pathLossDb(env, dist(d.agent, t, g)) - d.bodyLossDb - d.agent.extraLossDb + d.wifiShadow[g.index];
      if (mean >= g.wifi.sensitivityDbm) tallies[g.index].emittedWifi.add(d.macKey);
      if (mean + 4 * env.fadingDb < g.wifi.sensitivityDbm) continue;
      const tuned = tunedChannel(g.wifi, tMs);
      if (!tuned) continue;
      const pen = adjacentPenaltyDb(ch, tuned);
      if (pen === null) continue;
      const rssi = mean - pen + air.normal(0, env.fadingDb);
      if (rssi < g.wifi.sensitivityDbm) continue;
      let ies = d.ieCache.get(ch);
      if (!ies) d.ieCache.set(ch, (ies = w.ies(ch, d.identity)));
      const data = probeRequest({ sa: d.mac, seq: d.seq, ies, channel: tuned, signalDbm: rssi, tsfUs: g.tsfOffsetUs + t * 1e6 });
      tallies[g.index].capturedWifi(d.macKey, d.macLocal);
      yield { type: 'frame', gateway: g.index, radio: 'wifi', frame: { linkType: LINKTYPE.IEEE802_11_RADIOTAP, timestampMs: startMs + tMs, data } };
    }
  };

  const emitAdvert = function* (d: Device, t: number): Generator<SimEvent> {
    const b = d.model.ble!;
    for (const g of gw) {
      if (!g.ble) continue;
      const mean = b.txPowerDbm - pathLossDb(env, dist(d.agent, t, g)) - d.bodyLossDb - d.agent.extraLossDb + d.bleShadow[g.index];
      if (mean >= g.ble.sensitivityDbm) tallies[g.index].emittedBle.add(d.bleKey);
      if (mean + 4 * env.fadingDb < g.ble.sensitivityDbm) continue;
      if (g.ble.duty < 1 && !air.chance(g.ble.duty)) continue;
      const rssi = mean + air.normal(0, env.fadingDb);
      if (rssi < g.ble.sensitivityDbm) continue;
      const fields = { pduType: b.pduType, adva: d.ble, random: d.bleRandom, advData: d.advData, channel: g.ble.channel, signalDbm: rssi };
      const data = bleLink === 'hci' ? bleAdvertHci(fields) : bleAdvertLL(fields);
      tallies[g.index].capturedBle(d.bleKey, d.bleRandom);
      yield { type: 'frame', gateway: g.index, radio: 'ble', frame: { linkType: bleLinkType(bleLink), timestampMs: startMs + t * 1000, data } };
    }
  };

  // ---- the loop ----
  for (;;) {
    const ev = heap.pop();
    if (!ev) break;
    const t = ev.t;
    if (t > endS || (t === endS && ev.kind !== EV_WINDOW)) continue;
    switch (ev.kind) {
      case EV_ARRIVAL: {
        const cs = ev.ref as CrowdState & { arrive?: boolean };
        if (cs.arrive) {
          if (cs.spec.type === 'gathering') gatheringAgent(cs, t, false);
          else flowAgent(cs, t);
        }
        scheduleArrival(cs, t);
        break;
      }
      case EV_SCAN: {
        const d = ev.ref as Device;
        if (t >= d.agent.departS) break;
        const w = d.model.wifi!;
        if (w.macPolicy === 'per-burst' || w.macPolicy === 'per-channel') {
          setMac(d, randomLocalMac(d.rng));
          if (w.seqOnNewAddress === 'random') d.seq = d.rng.int(0, 4095);
        }
        if (w.channelOrder === 'shuffled') {
          // A fresh visiting order for this scan; only the channels a gateway can hear get events.
          const order = [...w.channels];
          for (let i = order.length - 1; i > 0; i--) {
            const k = d.rng.int(0, i);
            [order[i], order[k]] = [order[k], order[i]];
          }
          d.scanChannels = [];
          order.forEach((ch, i) => {
            if (audible(ch, wifiChannelsAll)) d.scanChannels.push({ ch, offsetMs: i * w.channelDwellMs });
          });
        }
        d.scanT = t;
        d.scanStep = 0;
        d.probeNo = 0;
        d.probesThis = d.rng.int(w.probesPerChannel[0], w.probesPerChannel[1]);
        heap.push(t + d.scanChannels[0].offsetMs / 1000 + d.rng.uniform(0, 0.003), EV_PROBE, d);
        const scanLen = (w.channels.length * w.channelDwellMs) / 1000;
        heap.push(t + scanLen + Math.max(w.burstIntervalS.min, d.rng.lognormal(w.burstIntervalS.mean, w.burstIntervalS.cv)), EV_SCAN, d);
        break;
      }
      case EV_PROBE: {
        const d = ev.ref as Device;
        if (t >= d.agent.departS) break;
        const w = d.model.wifi!;
        const step = d.scanChannels[d.scanStep];
        yield* emitProbe(d, t, step.ch);
        d.probeNo++;
        if (d.probeNo < d.probesThis) {
          heap.push(t + w.probeGapMs / 1000, EV_PROBE, d);
        } else if (d.scanStep + 1 < d.scanChannels.length) {
          d.scanStep++;
          d.probeNo = 0;
          if (w.macPolicy === 'per-channel') {
            setMac(d, randomLocalMac(d.rng));
            if (w.seqOnNewAddress === 'random') d.seq = d.rng.int(0, 4095);
          }
          d.probesThis = d.rng.int(w.probesPerChannel[0], w.probesPerChannel[1]);
          heap.push(Math.max(t + 0.0005, d.scanT + d.scanChannels[d.scanStep].offsetMs / 1000 + d.rng.uniform(0, 0.003)), EV_PROBE, d);
        }
        break;
      }
      case EV_ADV: {
        const d = ev.ref as Device;
        if (t >= d.agent.departS) break;
        const b = d.model.ble!;
        if (t >= d.bleRotateT) {
          d.ble = bleRpa(d.rng);
          d.bleKey = hex(d.ble);
          d.advData = b.advData(d.rng, d.identity);
          d.bleRotateT = t + d.rng.uniform(b.rotationS[0], b.rotationS[1]);
        }
        yield* emitAdvert(d, t);
        // Core Spec Vol 6 Part B 4.4.2.2.1: advInterval + advDelay (0-10 ms pseudo-random).
        heap.push(t + d.rng.uniform(b.intervalMs[0], b.intervalMs[1]) / 1000 + d.rng.uniform(0, 0.01), EV_ADV, d);
        break;
      }
      case EV_TICK: {
        const step = s.truthStepS;
        for (const a of agents) {
          if (a.departS <= t) {
            agents.delete(a);
            continue;
          }
          if (a.arriveS > t) continue;
          for (const g of gw) {
            const dd = dist(a, t, g);
            const tl = tallies[g.index];
            if (a.people > 0 && dd <= g.reach) {
              tl.people.set(a.id, a.people);
              tl.peopleSeconds += a.people * step;
            }
            const pl = pathLossDb(env, dd) + a.extraLossDb;
            for (const d of a.devices) {
              // In reach: the link's mean signal (path loss and this link's shadowing, without the
              // per-frame fading) is above the receiver's sensitivity.
              const inWifi = d.wifiOn && !!g.wifi && d.model.wifi!.txPowerDbm - pl - d.bodyLossDb + d.wifiShadow[g.index] >= g.wifi.sensitivityDbm;
              const inBle = d.bleOn && !!g.ble && d.model.ble!.txPowerDbm - pl - d.bodyLossDb + d.bleShadow[g.index] >= g.ble.sensitivityDbm;
              if (inWifi) tl.wifiDevices.add(d.id);
              if (inBle) tl.bleDevices.add(d.id);
              if (inWifi || inBle) {
                tl.devices.add(d.id);
                tl.kinds.set(d.id, d.kind);
              }
            }
          }
        }
        if (t + step < endS) heap.push(t + step, EV_TICK, null);
        break;
      }
      case EV_WINDOW: {
        const ws = windowStartS(windowIndex);
        const we = t;
        const tv = travel.get(windowIndex);
        travel.delete(windowIndex);
        const windows = gw.map((g) => {
          const stats: TravelStat[] = [];
          if (tv)
            for (const [key, xs] of [...tv].sort((p, q) => (p[0] < q[0] ? -1 : 1))) {
              const [from, to, mode] = key.split('|');
              if (to !== g.spec.id) continue;
              stats.push({ from, to, mode, count: xs.length, meanS: Math.round((xs.reduce((p, q) => p + q, 0) / xs.length) * 10) / 10, medianS: Math.round(median(xs) * 10) / 10 });
            }
          return tallies[g.index].close(g.spec.id, g.spec.zone, startMs + ws * 1000, startMs + we * 1000, stats);
        });
        yield { type: 'window', windows };
        tallies = gw.map(() => new WindowTally());
        windowIndex++;
        const next = windowStartS(windowIndex + 1);
        if (windowStartS(windowIndex) < endS - 1e-9) heap.push(Math.min(next, endS), EV_WINDOW, null);
        break;
      }
    }
  }
  stats.people = totalPeople;
  stats.devices = totalDevices;
}

/** Totals of the last runScenario() (set when its generator finishes). */
export const stats = { people: 0, devices: 0 };
