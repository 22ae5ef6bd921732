// Clocks that disagree between the members of a corridor group. A lag between two members' sketches
// is read from their windows' starts, each by its own gateway's clock: an offset of d between two
// members shifts their flows and travel times by d, and below max_ahead nothing else tells (a clock
// ahead by more is refused, `future`; one behind by more is logged, ../clock-skew.ts).
//
// A gateway publishes its status live, with every window and at least every status.interval, stamped
// `ts` by its own clock; a status reaches the aggregator later than it was sent, never earlier (a
// backlog, a slow link, a queue only ever delay it). So, per member, the smallest (receipt time - ts)
// over recent statuses is its clock's offset from this aggregator's (negated) plus the smallest
// latency, and near that as soon as one status came straight through. The aggregator's own clock and
// the smallest latency (about the same for every member on one broker) cancel out of the difference
// between two members: that difference is the offset between their clocks, over-read only if every
// status of one member in the span came late.
//
// Per member, the smallest lag and the number of statuses are kept per minute of receipt for the
// last OFFSET_SPAN_MS (at most OFFSET_SPAN_MS / BUCKET_MS + 1 entries per configured member: memory
// is bounded by the config). A member is judged once OFFSET_MIN_STATUSES of its statuses came over at
// least OFFSET_MIN_SPAN_MS within the span (a burst of late statuses from a backlog is none of that:
// the live ones after it set the minimum). The group's clocks disagree when two judged members'
// offsets differ by more than OFFSET_WARN_MS, and agree again when no two differ by more than
// OFFSET_CLEAR_MS (or fewer than two members are judged: a member silent for the span is not).
import { idForLog } from '../../contract/index.ts';
import type { CorridorConfig } from '../config.ts';

/** Statuses received within this span (ms) make a member's estimate. */
export const OFFSET_SPAN_MS = 10 * 60_000;
const BUCKET_MS = 60_000;
/** A member is judged with at least this many statuses in the span ... */
export const OFFSET_MIN_STATUSES = 3;
/** ... received over at least this long (ms). */
export const OFFSET_MIN_SPAN_MS = 3 * 60_000;
/**
 * Two members' clocks disagree beyond this (ms). A travel time is read as the difference of two
 * members' window starts: an offset is an error of that much in it, and moves a share offset/window
 * of the devices into the next or previous window (a quarter of them in a 60-s window at 15 s). It is
 * well above what the estimate itself can be off by between members heard through one broker (their
 * smallest latencies differ by well under a second on working links; a status's ts has milliseconds).
 */
export const OFFSET_WARN_MS = 15_000;
/** A disagreement is over once no two members differ by more than this (ms): no flapping near OFFSET_WARN_MS. */
export const OFFSET_CLEAR_MS = 10_000;
/** The wall clock this much behind where the monotonic clock says it should be: set back (ms). */
const CLOCK_STEP_MS = 1000;

/** The members of a group whose clocks disagree, as told to a person. */
export interface ClockMismatch {
  group: string;
  /**
   * `majority`: the members whose clocks agree, more than half of those judged; `gateways` are the
   * others, each with its offset (s, + ahead) from the majority's median. Null: no such majority
   * (two members that disagree): `gateways` are every member judged, each with its offset from the
   * one most behind.
   */
  majority: string[] | null;
  gateways: Array<{ gateway: string; offsetS: number }>;
  /** The largest difference (s) between two members' estimates. */
  spreadS: number;
}

interface Bucket {
  /** floor(receipt / BUCKET_MS) */
  b: number;
  minLag: number;
  n: number;
  first: number;
  last: number;
}

interface Group {
  cfg: CorridorConfig;
  mismatch: ClockMismatch | null;
  /** The largest difference (ms) between judged members now (null: fewer than two judged). */
  spread: number | null;
}

export class CorridorClocks {
  /** site/gateway -> its minute buckets (only members of a configured group are kept). */
  private readonly members = new Map<string, Bucket[]>();
  private readonly groups = new Map<string, Group>();
  /** site/gateway -> the groups it is a member of */
  private readonly groupsOf = new Map<string, Group[]>();

  constructor(
    corridors: CorridorConfig[],
    /** Whether this instance owns the group now: only then is a disagreement told. */
    private readonly owns: (group: string) => boolean,
    /** A group's disagreement changed: found (or other gateways named), or null when its clocks agree again. */
    private readonly onChange: (group: string, m: ClockMismatch | null) => void,
    /** A clock that is never set (ms), against which a step of the wall clock is seen. */
    private readonly monotonic: () => number = () => performance.now(),
  ) {
    for (const cfg of corridors) {
      const g: Group = { cfg, mismatch: null, spread: null };
      this.groups.set(cfg.group, g);
      for (const member of cfg.members) {
        const key = `${cfg.site}/${member}`;
        this.groupsOf.set(key, [...(this.groupsOf.get(key) ?? []), g]);
      }
    }
  }

  /** The wall clock's lead on the monotonic one at the last status (ms): less now means this aggregator's clock was set back. */
  private lead: number | null = null;

  /** A live status (not a retained copy) of this gateway, stamped `ts`, received at `now`. */
  status(site: string, gateway: string, ts: number, now: number): void {
    const key = `${site}/${gateway}`;
    const groups = this.groupsOf.get(key);
    if (!groups || !Number.isFinite(ts)) return;
    // This aggregator's clock set back (the wall clock lost ground on the monotonic one): the members
    // that send after the step would look that much ahead of those that have not yet; every estimate
    // starts again. (One set forward makes later statuses look later, which the smallest lag ignores.)
    const lead = now - this.monotonic();
    if (this.lead !== null && lead < this.lead - CLOCK_STEP_MS) for (const buckets of this.members.values()) buckets.length = 0;
    this.lead = lead;
    let buckets = this.members.get(key);
    if (!buckets) this.members.set(key, (buckets = []));
    const lag = now - ts;
    const b = Math.floor(now / BUCKET_MS);
    const last = buckets.at(-1);
    if (last && last.b === b) {
      last.minLag = Math.min(last.minLag, lag);
      last.n++;
      last.first = Math.min(last.first, now);
      last.last = Math.max(last.last, now);
    } else buckets.push({ b, minLag: lag, n: 1, first: now, last: now });
    // pruned here too: judge() reads the buckets only where this instance owns the group, and a
    // standby received every status too
    this.prune(buckets, now);
    for (const g of groups) this.judge(g, now);
  }

  /** Judges every group again (a member gone silent leaves its estimate once the span has passed). */
  check(now: number): void {
    for (const g of this.groups.values()) this.judge(g, now);
  }

  /** Disagreements told now (groups owned here), for /healthz. */
  get mismatches(): ClockMismatch[] {
    const out: ClockMismatch[] = [];
    for (const g of this.groups.values()) if (g.mismatch) out.push(g.mismatch);
    return out;
  }

  /** The largest difference (s) between the clocks of a group's members judged now; null: fewer than two judged, or not owned here. */
  spread(group: string): number | null {
    const g = this.groups.get(group);
    return g && g.spread !== null ? Math.round(g.spread / 1000) : null;
  }

  /** Keeps the buckets within the span (by receipt minute; a clock set back keeps none newer than now). */
  private prune(buckets: Bucket[], now: number): void {
    const b = Math.floor(now / BUCKET_MS);
    const from = b - Math.ceil(OFFSET_SPAN_MS / BUCKET_MS);
    let i = 0;
    while (i < buckets.length && (buckets[i].b < from || buckets[i].b > b)) i++;
    if (i) buckets.splice(0, i);
    // a wall clock set back: entries "in the future" are dropped too
    while (buckets.length && buckets.at(-1)!.b > b) buckets.pop();
  }

  /** A member's offset (ms, + ahead of this aggregator, less the smallest latency), or null: not judged. */
  private offset(site: string, gateway: string, now: number): number | null {
    const buckets = this.members.get(`${site}/${gateway}`);
    if (!buckets?.length) return null;
    this.prune(buckets, now);
    let n = 0;
    let minLag = Number.POSITIVE_INFINITY;
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    for (const k of buckets) {
      n += k.n;
      minLag = Math.min(minLag, k.minLag);
      first = Math.min(first, k.first);
      last = Math.max(last, k.last);
    }
    return n >= OFFSET_MIN_STATUSES && last - first >= OFFSET_MIN_SPAN_MS ? -minLag : null;
  }

  private judge(g: Group, now: number): void {
    const owned = this.owns(g.cfg.group);
    const judged: Array<{ gateway: string; offset: number }> = [];
    if (owned)
      for (const member of g.cfg.members) {
        const o = this.offset(g.cfg.site, member, now);
        if (o !== null) judged.push({ gateway: member, offset: o });
      }
    judged.sort((a, b) => a.offset - b.offset);
    g.spread = judged.length >= 2 ? judged.at(-1)!.offset - judged[0].offset : null;
    let next: ClockMismatch | null = null;
    const raised = g.mismatch !== null;
    // The thresholds differ for raising and clearing (no flapping near OFFSET_WARN_MS), but who is
    // named is worked out with one tolerance: with the clearing one, the next status of the same
    // clocks named others (a member 12 s off joined or left the majority).
    if (g.spread !== null && g.spread > (raised ? OFFSET_CLEAR_MS : OFFSET_WARN_MS)) next = name(g.cfg.group, judged, OFFSET_WARN_MS, g.spread);
    const same = (a: ClockMismatch | null, b: ClockMismatch | null) =>
      a === b ||
      (a !== null &&
        b !== null &&
        a.gateways.map((x) => x.gateway).join() === b.gateways.map((x) => x.gateway).join() &&
        (a.majority ?? []).join() === (b.majority ?? []).join());
    const changed = !same(g.mismatch, next);
    g.mismatch = next;
    if (changed) this.onChange(g.cfg.group, next);
  }
}

/** Which members disagree: those outside the largest set within `tolerance` of each other, when that set is more than half. */
function name(group: string, judged: Array<{ gateway: string; offset: number }>, tolerance: number, spread: number): ClockMismatch {
  // judged is sorted by offset: the largest run within tolerance
  let best = { from: 0, to: 0 };
  for (let i = 0, j = 0; i < judged.length; i++) {
    while (judged[i].offset - judged[j].offset > tolerance) j++;
    if (i - j > best.to - best.from) best = { from: j, to: i };
  }
  const size = best.to - best.from + 1;
  const s = (ms: number) => Math.round(ms / 1000);
  if (size * 2 > judged.length) {
    const cluster = judged.slice(best.from, best.to + 1);
    const mid = (cluster[Math.floor((cluster.length - 1) / 2)].offset + cluster[Math.ceil((cluster.length - 1) / 2)].offset) / 2;
    return {
      group,
      majority: cluster.map((x) => x.gateway).sort(),
      gateways: judged.filter((_, i) => i < best.from || i > best.to).map((x) => ({ gateway: x.gateway, offsetS: s(x.offset - mid) })),
      spreadS: s(spread),
    };
  }
  return { group, majority: null, gateways: judged.map((x) => ({ gateway: x.gateway, offsetS: s(x.offset - judged[0].offset) })), spreadS: s(spread) };
}

/** What to do about clocks that disagree (the log line's `fix`, and the end of its text). */
export const CLOCK_MISMATCH_FIX =
  'synchronise the clock of the gateway(s) named: presence doctor on each ("clock synchronised"), then timedatectl show -p NTPSynchronized --value (yes) or chronyc tracking; with an NTP server they can reach (timedatectl set-ntp true, or chrony)';

const ahead = (s: number) => (s >= 0 ? `${s} s ahead` : `${-s} s behind`);

/** One line of a disagreement: the group, the gateways, the estimated difference, what it means and the fix (log and /healthz). */
export function clockMismatchText(m: ClockMismatch): string {
  const g = `corridor group "${idForLog(m.group)}"`;
  const how = `estimated from their statuses' ts against their receipt over the last ${OFFSET_SPAN_MS / 60_000} minutes`;
  const effect =
    'so the flows between them are estimated from windows that do not line up: their travel times are off by about that much, and devices are moved from one direction to the other';
  if (m.majority) {
    const list = m.gateways.map((x) => `${idForLog(x.gateway)} (about ${ahead(x.offsetS)})`).join(', ');
    return `${g}: the clock${m.gateways.length > 1 ? 's' : ''} of ${list} ${m.gateways.length > 1 ? 'differ' : 'differs'} from that of ${m.majority.map(idForLog).join(', ')} (${how}), ${effect}; ${CLOCK_MISMATCH_FIX}`;
  }
  const base = m.gateways[0].gateway;
  const list = m.gateways
    .slice(1)
    .map((x) => `${idForLog(x.gateway)} about ${x.offsetS} s ahead of ${idForLog(base)}`)
    .join(', ');
  return `${g}: the clocks of ${m.gateways.map((x) => idForLog(x.gateway)).join(', ')} differ by up to about ${m.spreadS} s (${list}; ${how}), ${effect}; no clock is shared by most of them, so which one is off cannot be told: ${CLOCK_MISMATCH_FIX}`;
}
