// Population: who is there, where, and with which devices. People already present at the start,
// arrivals to gatherings (Poisson with rate N'(t) + N(t)/dwell, so occupancy follows the scenario's
// curve), agents passing along flows (pedestrians, cyclists, cars with occupants), and fixed
// installations. Each person or vehicle is an Agent that walks linearly between waypoints; the
// devices it carries come from DeviceBehaviour.
import type { FlowModeSpec, FlowSpec, GatheringSpec, Scenario } from '../scenario.ts';
import type { Rng } from '../rng.ts';
import type { Device, DeviceBehaviour } from './devices.ts';
import { TASK, type TaskQueue } from './queue.ts';

export interface Agent {
  id: number;
  /** People it stands for: 1 for a person, the occupants of a vehicle, 0 for a fixed installation. */
  people: number;
  /** Waypoints: t (s), x, y triplets; position is linear between them. */
  wp: number[];
  cursor: number;
  arriveS: number;
  departS: number;
  /** Extra loss of every device it carries (a car's body), dB. */
  extraLossDb: number;
  devices: Device[];
}

/** Where agent `a` is at time t (s). */
export function position(a: Agent, t: number): [number, number] {
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

/** One source of arrivals: a gathering, or one mode and direction of a flow. */
export interface Crowd {
  spec: GatheringSpec | FlowSpec;
  index: number;
  rng: Rng;
  mode?: string;
  reverse?: boolean;
}
/** The queue's ARRIVAL task: the crowd, and whether an agent arrives (false: only re-draw the next arrival). */
type ArrivalTask = Crowd & { arrive?: boolean };

/** A flow agent's straight path, for the travel times between gateways it passes. */
export interface FlowPath {
  ax: number;
  ay: number;
  bx: number;
  by: number;
  len: number;
  t0: number;
  speed: number;
  mode: string;
  /** The agent on this path (its devices are added right after). */
  agent: Agent;
}

type Region = GatheringSpec['region'];

function borderPoint(r: Region, rng: Rng): [number, number] {
  const side = rng.int(0, 3);
  const u = rng.float();
  if (side === 0) return [r.x + u * r.width, r.y];
  if (side === 1) return [r.x + u * r.width, r.y + r.height];
  if (side === 2) return [r.x, r.y + u * r.height];
  return [r.x + r.width, r.y + u * r.height];
}

function inside(r: Region, rng: Rng): [number, number] {
  return [r.x + rng.float() * r.width, r.y + rng.float() * r.height];
}

/** The gathering's target occupancy at t (people, scaled), linear between its points. */
function occupancy(c: GatheringSpec, t: number, scale: number): number {
  const o = c.occupancy;
  if (t <= o[0][0]) return o[0][1] * scale;
  for (let k = 1; k < o.length; k++) if (t < o[k][0]) return (o[k - 1][1] + ((t - o[k - 1][0]) / (o[k][0] - o[k - 1][0])) * (o[k][1] - o[k - 1][1])) * scale;
  return o[o.length - 1][1] * scale;
}

function occupancySlope(c: GatheringSpec, t: number, scale: number): number {
  const o = c.occupancy;
  for (let k = 1; k < o.length; k++) if (t >= o[k - 1][0] && t < o[k][0]) return ((o[k][1] - o[k - 1][1]) / (o[k][0] - o[k - 1][0])) * scale;
  return 0;
}

function nextBreak(c: GatheringSpec, t: number): number {
  for (const [bt] of c.occupancy) if (bt > t) return bt;
  return Infinity;
}

export class Population {
  /** Agents present (departed ones are removed by prune()). */
  readonly agents = new Set<Agent>();
  /** People who have been present so far. */
  people = 0;
  private nextAgentId = 0;
  private readonly crowds: Crowd[] = [];

  /** @param onFlowPath told of every flow agent's path as it enters (travel times for the truth). */
  constructor(
    private readonly s: Scenario,
    root: Rng,
    private readonly queue: TaskQueue,
    private readonly devices: DeviceBehaviour,
    private readonly onFlowPath: (p: FlowPath) => void,
  ) {
    s.crowds.forEach((c, i) => {
      if (c.type === 'gathering') this.crowds.push({ spec: c, index: i, rng: root.fork(`crowd-${i}`) });
      else
        for (const mode of Object.keys(c.modes))
          for (const reverse of c.bidirectional ? [false, true] : [false])
            this.crowds.push({ spec: c, index: i, rng: root.fork(`crowd-${i}-${mode}-${reverse}`), mode, reverse });
    });
  }

  /** The crowd at t = 0 (gatherings at their initial occupancy, flows with agents on the way), the first arrivals, the fixed devices. */
  start(): void {
    const s = this.s;
    for (const cs of this.crowds) {
      if (cs.spec.type === 'gathering') {
        const n0 = Math.round(occupancy(cs.spec, 0, s.scale));
        for (let i = 0; i < n0; i++) this.gatheringAgent(cs, 0, true);
      } else {
        // The street is not empty at the start: as many agents on the way as the flow keeps there.
        const m = cs.spec.modes[cs.mode!];
        const len = Math.hypot(cs.spec.to[0] - cs.spec.from[0], cs.spec.to[1] - cs.spec.from[1]);
        const n0 = cs.rng.poisson(((m.perHour * s.scale) / 3600) * (len / m.speedMps));
        for (let i = 0; i < n0; i++) this.flowAgent(cs, 0, cs.rng.float());
      }
      this.queue.push(0, TASK.ARRIVAL, cs);
    }
    s.fixed.forEach((f) => {
      for (let k = 0; k < f.count; k++) {
        const agent: Agent = {
          id: this.nextAgentId++,
          people: 0,
          wp: [0, f.position[0], f.position[1]],
          cursor: 0,
          arriveS: 0,
          departS: Infinity,
          extraLossDb: 0,
          devices: [],
        };
        agent.devices.push(this.devices.create(agent, f.model, true));
        this.agents.add(agent);
      }
    });
  }

  /** The ARRIVAL task at t: the agent arrives (if it is a real arrival), and the crowd's next arrival is drawn. */
  arrival(task: unknown, t: number): void {
    const cs = task as ArrivalTask;
    if (cs.arrive) {
      if (cs.spec.type === 'gathering') this.gatheringAgent(cs, t, false);
      else this.flowAgent(cs, t);
    }
    this.scheduleArrival(cs, t);
  }

  /** Forgets the agents that have left by t. */
  prune(t: number): void {
    for (const a of this.agents) if (a.departS <= t) this.agents.delete(a);
  }

  private scheduleArrival(cs: Crowd, t: number): void {
    const endS = this.s.durationS;
    if (cs.spec.type === 'gathering') {
      const c = cs.spec;
      const n = occupancy(c, t, this.s.scale);
      const rate = Math.max(0, occupancySlope(c, t, this.s.scale) + n / c.dwellS);
      const brk = nextBreak(c, t);
      if (rate <= 0) {
        if (brk < endS) this.queue.push(brk, TASK.ARRIVAL, { ...cs, arrive: false });
        return;
      }
      const dt = cs.rng.exp(1 / rate);
      // Rates change at breakpoints: re-draw there (memoryless) if the draw overshoots.
      if (t + dt > brk) {
        if (brk < endS) this.queue.push(brk, TASK.ARRIVAL, { ...cs, arrive: false });
        return;
      }
      if (t + dt < endS) this.queue.push(t + dt, TASK.ARRIVAL, { ...cs, arrive: true });
    } else {
      const rate = (cs.spec.modes[cs.mode!].perHour * this.s.scale) / 3600;
      if (rate <= 0) return;
      const dt = cs.rng.exp(1 / rate);
      if (t + dt < endS) this.queue.push(t + dt, TASK.ARRIVAL, { ...cs, arrive: true });
    }
  }

  /** A person arriving at a gathering at t0 (or already there at t0 = 0 when `residual`): walks in, lingers at spots, walks out. */
  private gatheringAgent(cs: Crowd, t0: number, residual: boolean): void {
    const c = cs.spec as GatheringSpec;
    const rng = cs.rng.fork(`agent-${this.nextAgentId}`);
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
    this.addAgent({ id: this.nextAgentId++, people: 1, wp, cursor: 0, arriveS: t0, departS: end, extraLossDb: 0, devices: [] }, rng);
  }

  /** An agent entering the flow at t0, or (enRoute in 0..1) one that entered before the start and has covered that share of the way. */
  private flowAgent(cs: Crowd, t0: number, enRoute?: number): void {
    const c = cs.spec as FlowSpec;
    const m: FlowModeSpec = c.modes[cs.mode!];
    const rng = cs.rng.fork(`agent-${this.nextAgentId}`);
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
    const agent: Agent = {
      id: this.nextAgentId++,
      people,
      wp: [t0, ax, ay, t0 + dur, bx, by],
      cursor: 0,
      arriveS: t0,
      departS: t0 + dur,
      extraLossDb: m.attenuationDb,
      devices: [],
    };
    this.onFlowPath({ ax, ay, bx, by, len, t0, speed, mode: cs.mode!, agent });
    for (const [model, p] of Object.entries(m.vehicleDevices)) if (rng.chance(p)) agent.devices.push(this.devices.create(agent, model, false));
    this.addAgent(agent, rng, people);
  }

  /** Gives each of the agent's `carriers` people their devices (0 to 3: a primary, then secondaries). */
  private addAgent(agent: Agent, rng: Rng, carriers = agent.people): void {
    const mix = this.s.people;
    for (let p = 0; p < carriers; p++) {
      const n = rng.pickIndex(mix.carry);
      for (let i = 0; i < n; i++) agent.devices.push(this.devices.create(agent, i === 0 ? rng.pick(mix.primary) : rng.pick(mix.secondary), false));
    }
    this.agents.add(agent);
    this.people += agent.people;
  }
}
