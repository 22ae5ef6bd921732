// Truth accounting: what really happened, per gateway and window. Every truth step it samples who
// is in reach of each gateway (people within the gateway's reach; devices whose link's mean signal
// meets the receiver's sensitivity); emission.ts tallies the frames and addresses each capture
// holds; flow agents' paths give the travel times between gateways. At each window end the tallies
// become TruthWindow records (../truth.ts) and start over.
import { pathLossDb, type Environment } from '../radio.ts';
import type { Scenario } from '../scenario.ts';
import { WindowTally, median, type TravelStat, type TruthWindow } from '../truth.ts';
import type { Agent, FlowPath } from './population.ts';
import { position } from './population.ts';
import type { EngineTap, GatewayState } from './types.ts';

/**
 * The truth windows of a run. Windows fall on multiples of the window length in UTC, as the gateways
 * and `presence replay` count them; when the scenario starts between two boundaries the first window
 * is shorter. Times are seconds since the start of the run.
 */
export class TruthWindows {
  private readonly firstEndS: number;

  constructor(
    startMs: number,
    private readonly windowS: number,
  ) {
    const windowMs = windowS * 1000;
    this.firstEndS = ((Math.floor(startMs / windowMs) + 1) * windowMs - startMs) / 1000;
  }

  /** Start of window i. */
  startS(i: number): number {
    return i === 0 ? 0 : this.firstEndS + (i - 1) * this.windowS;
  }

  /** The window holding time t. */
  indexOf(t: number): number {
    return t < this.firstEndS ? 0 : 1 + Math.floor((t - this.firstEndS) / this.windowS);
  }
}

export class TruthAccounting {
  readonly windows: TruthWindows;
  private tallies: WindowTally[];
  private windowIndex = 0;
  /** Window index -> "from|to|mode" -> travel times (s) of agents reaching `to` in that window. */
  private readonly travel = new Map<number, Map<string, number[]>>();

  constructor(
    private readonly s: Scenario,
    private readonly env: Environment,
    private readonly gateways: GatewayState[],
    private readonly tap?: EngineTap,
  ) {
    this.windows = new TruthWindows(s.startMs, s.windowS);
    this.tallies = gateways.map(() => new WindowTally());
  }

  /** The open window's tally of gateway g (emission.ts adds the captured frames to it). */
  tally(g: number): WindowTally {
    return this.tallies[g];
  }

  /** When the first window closes (s). */
  firstWindowEndS(): number {
    return Math.min(this.windows.startS(1), this.s.durationS);
  }

  /** Travel times between consecutive gateways a flow agent's path passes within their reach. */
  flowPath(p: FlowPath): void {
    const { ax, ay, bx, by, len, t0, speed } = p;
    const passes: Array<{ g: string; t: number; index: number }> = [];
    for (const g of this.gateways) {
      const proj = ((g.x - ax) * (bx - ax) + (g.y - ay) * (by - ay)) / len;
      if (proj < 0 || proj > len) continue;
      const px = ax + ((bx - ax) * proj) / len;
      const py = ay + ((by - ay) * proj) / len;
      if (Math.hypot(g.x - px, g.y - py) > g.reach) continue;
      passes.push({ g: g.spec.id, t: t0 + proj / speed, index: g.index });
    }
    passes.sort((p, q) => p.t - q.t);
    this.tap?.passes?.(
      p.agent,
      passes.map((x) => ({ gateway: x.index, t: x.t })),
    );
    for (let k = 1; k < passes.length; k++) {
      if (passes[k - 1].t < 0) continue; // passed the first gateway before the simulation started
      const w = this.windows.indexOf(passes[k].t);
      const key = `${passes[k - 1].g}|${passes[k].g}|${p.mode}`;
      let mw = this.travel.get(w);
      if (!mw) this.travel.set(w, (mw = new Map()));
      const arr = mw.get(key) ?? [];
      arr.push(passes[k].t - passes[k - 1].t);
      mw.set(key, arr);
    }
  }

  /** One truth step at t: people and devices in reach of each gateway (agents that have arrived and not yet left). */
  sample(agents: Iterable<Agent>, t: number): void {
    const env = this.env;
    for (const tl of this.tallies) tl.samples++;
    for (const a of agents) {
      if (a.arriveS > t || a.departS <= t) continue;
      const [x, y] = position(a, t);
      for (const g of this.gateways) {
        const dd = Math.hypot(x - g.x, y - g.y);
        const tl = this.tallies[g.index];
        if (a.people > 0 && dd <= g.reach) {
          tl.people.set(a.id, a.people);
          tl.peopleSampled += a.people;
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
  }

  /**
   * Closes the open window at t: one TruthWindow per gateway, in scenario order, and fresh tallies.
   * Returns them with the time the next window closes (null after the last).
   */
  closeWindow(t: number): { windows: TruthWindow[]; nextEndS: number | null } {
    const startMs = this.s.startMs;
    const ws = this.windows.startS(this.windowIndex);
    const tv = this.travel.get(this.windowIndex);
    this.travel.delete(this.windowIndex);
    const windows = this.gateways.map((g) => {
      const stats: TravelStat[] = [];
      if (tv)
        for (const [key, xs] of [...tv].sort((p, q) => (p[0] < q[0] ? -1 : 1))) {
          const [from, to, mode] = key.split('|');
          if (to !== g.spec.id) continue;
          stats.push({
            from,
            to,
            mode,
            count: xs.length,
            meanS: Math.round((xs.reduce((p, q) => p + q, 0) / xs.length) * 10) / 10,
            medianS: Math.round(median(xs) * 10) / 10,
          });
        }
      return this.tallies[g.index].close(g.spec.id, g.spec.zone, startMs + ws * 1000, startMs + t * 1000, stats);
    });
    this.tallies = this.gateways.map(() => new WindowTally());
    this.windowIndex++;
    const endS = this.s.durationS;
    const more = this.windows.startS(this.windowIndex) < endS - 1e-9;
    return { windows, nextEndS: more ? Math.min(this.windows.startS(this.windowIndex + 1), endS) : null };
  }
}
