// A gateway clock that runs behind: nothing refuses its windows (a window in the past is what a
// gateway's queue sends after an outage), so they are stored that far in the past and the dashboards
// show the gateway as silent and its zone as empty now, with no line saying why. A clock ahead is
// refused already (`future`). A gateway publishes its status live, with every window and at least
// every status.interval (60 s), stamped `ts` by its own clock; a status can only reach the aggregator
// later than that, never earlier (a backlog after the aggregator was away delays every message). So
// the smallest (receipt time - ts) over statuses received across a few minutes is an upper bound of
// how far the gateway's clock is behind, near it as soon as one status came straight through.
// Only a run of late statuses is kept per gateway (when it began, how many, the smallest lag), for
// at most maxGateways gateways (kept until the aggregator stops): past that, a gateway not tracked yet
// is not judged, and one warn line says so, once.
import type { Logger } from 'pino';
import { idForLog } from '../contract/index.ts';

/** Late statuses received over at least this span (ms), none on time between, make a clock behind. */
export const SKEW_SPAN_MS = 3 * 60_000;
/** A gateway's clock is said to be behind at most once in this (ms). */
const SKEW_LOG_INTERVAL_MS = 3_600_000;

/** A run of statuses of one gateway that all came more than the threshold after their ts. */
interface Late {
  /** Receipt time of the first of the run, or null: the last status was on time. */
  since: number | null;
  statuses: number;
  /** The smallest lag of the run (ms). */
  behind: number;
  /** Receipt time of the last of the run. */
  lastAt: number;
  loggedAt: number;
}

/** A run of late statuses that says the clock is behind: at least 3 of them over SKEW_SPAN_MS, none on time between. */
function isBehind(g: Late): boolean {
  return g.since !== null && g.statuses >= 3 && g.lastAt - g.since >= SKEW_SPAN_MS;
}

export class ClockSkew {
  private readonly byGateway = new Map<string, Late>();
  private limitWarned = false;

  /** @param thresholdMs a status later than this after its ts is late (max_ahead) */
  constructor(
    private readonly thresholdMs: number,
    private readonly log: Logger,
    private readonly maxGateways = 100_000,
  ) {}

  /** A status of this gateway, not a retained copy, stamped `ts`, arrived at `now`. */
  status(site: string, gateway: string, ts: number, now: number): void {
    const key = `${site}/${gateway}`;
    let g = this.byGateway.get(key);
    const lag = now - ts;
    if (!g) {
      if (lag <= this.thresholdMs) return;
      if (this.byGateway.size >= this.maxGateways) {
        if (!this.limitWarned) {
          this.limitWarned = true;
          this.log.warn(
            { max_gateways: this.maxGateways, site: idForLog(site), gateway: idForLog(gateway) },
            `clock skew is tracked for at most ${this.maxGateways} gateways whose statuses came late, and that many are tracked already: the clock of gateway ${idForLog(site)}/${idForLog(gateway)} and of any further one is not judged until this aggregator restarts (no line says it is behind, its status points keep its ts); this line is given once`,
          );
        }
        return;
      }
      g = { since: null, statuses: 0, behind: Infinity, lastAt: -Infinity, loggedAt: -Infinity };
      this.byGateway.set(key, g);
    }
    if (lag <= this.thresholdMs) {
      g.since = null;
      return;
    }
    if (g.since === null) {
      g.since = now;
      g.statuses = 0;
      g.behind = Infinity;
    }
    g.statuses++;
    g.behind = Math.min(g.behind, lag);
    g.lastAt = now;
    if (!isBehind(g) || now - g.loggedAt < SKEW_LOG_INTERVAL_MS) return;
    g.loggedAt = now;
    const behind = Math.round(g.behind / 1000);
    this.log.warn(
      { site: idForLog(site), gateway: idForLog(gateway), behind_s: behind, statuses: g.statuses },
      `the clock of gateway ${idForLog(site)}/${idForLog(gateway)} is about ${behind} s behind this aggregator's: every status of the last ${Math.round((now - g.since) / 60_000)} minutes came that much after its ts, so its windows are stored that far in the past and the dashboards show it silent now; check the gateway's time synchronisation (presence doctor, "clock synchronised"; timedatectl), or this host's clock (or, just after this aggregator was away, a backlog still being delivered)`,
    );
  }

  /** How far (ms) this gateway's clock is behind, by the rule of the log line (its late statuses so far); null when it is not said to be. */
  behind(site: string, gateway: string): number | null {
    const g = this.byGateway.get(`${site}/${gateway}`);
    return g && isBehind(g) ? g.behind : null;
  }
}
