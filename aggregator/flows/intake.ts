// The aggregator's corridor flows: sketches of the groups this instance owns are validated, kept in
// memory for the lag horizon only, turned into flow points per pair and 5-min interval
// (./estimate.ts), and dropped once used. No I/O here: the aggregator gives it the messages and
// writes the lines it returns. A sketch is never written anywhere, never logged (rejections carry a
// reason and the topic, never the bits), and never leaves this object except as flow aggregates.
//
// When an interval is computed: the group's clock (the "watermark") is the oldest of its members'
// newest window ends, leaving out a member that is more than horizon + interval + one window behind
// the newest (silent or gone: the others do not wait for it; its late sketches are then too old);
// a member not heard yet counts as being at the group's first window until then. Interval
// [s, s + 5 min) is computed once the watermark passes s + 5 min + horizon + one window. Its sketches older than the last window
// before the next interval are then dropped (that one window stays: run starts need the window
// before). Pairs of windows in different epochs are not compared (their keys differ). The
// watermark moves only with sketches: a group that has had none held for horizon + one interval of
// the aggregator's clock (expireIdle, run by the aggregator's timer) gets the intervals its held
// sketches allow computed as if the watermark had passed them, then all its sketches dropped.
//
// Standby: an instance configured for a group that another instance owns holds the group's
// sketches all the same (the same checks, the same clock, the same drop rule, plus one interval
// more: STANDBY_GRACE) and keeps the pairs' lag histories up to date (lag sums only, no flow
// computed, nothing written). When it takes the group over (own()), it computes from the interval
// in progress on, and the last interval the old owner had computed too (the old owner may have
// died before writing it): that one is written again with the same values (same sketches, same
// history, same seed), the same series and time, so the database keeps one point. An owner that
// loses the group to a newcomer (which starts without the sketches of the interval in progress)
// goes on writing for HANDOVER_INTERVALS intervals + horizon of the group's clock (disown).
import { Point } from '@influxdata/influxdb-client';
import {
  FLOW_MEASUREMENT,
  idForLog,
  parseTopic,
  repeatedKey,
  SKETCH_WINDOW_MIN_MS,
  sketchTopic,
  validateSketch,
  type SketchMessage,
} from '../../contract/index.ts';
import type { CorridorConfig } from '../config.ts';
import { aheadOfClock, msSettings, notJson, repeatedKeyDetail } from '../messages.ts';
import { estimatePairFlows, LagHistory, lagSums, pairLags, type FlowEstimate, type NoisySketch, type PairLags } from './estimate.ts';

/** The flow measurement (its tags and fields: contract/influx.ts). */
export const FLOW = FLOW_MEASUREMENT;
/** Intervals a standby instance keeps beyond the owner's drop rule, recomputed when it takes over. */
export const STANDBY_GRACE = 1;
/** Intervals (beyond the horizon) an instance that lost a group to a newcomer still writes. */
export const HANDOVER_INTERVALS = 2;
export const FLOW_INTERVAL_MS = 300_000;
/** Largest sketch message read (bytes): the contract's largest m in base64 plus the fields. */
export const MAX_SKETCH_BYTES = 8192;

export type SketchRejectReason =
  | 'sketch_too_large'
  | 'sketch_invalid'
  | 'sketch_size'
  | 'sketch_unknown_group'
  | 'sketch_not_member'
  | 'sketch_duplicate'
  | 'sketch_too_old'
  | 'sketch_future'
  | 'sketch_partial'
  | 'sketch_key_mismatch';
export const SKETCH_REJECT_REASONS: SketchRejectReason[] = [
  'sketch_too_large',
  'sketch_invalid',
  'sketch_size',
  'sketch_unknown_group',
  'sketch_not_member',
  'sketch_duplicate',
  'sketch_too_old',
  'sketch_future',
  'sketch_partial',
  'sketch_key_mismatch',
];

/**
 * Members of a group whose key_check disagrees with the others' in one epoch (a secret file that is
 * not the group's). `majority`: the other members that gave one: these are the odd ones out, whose
 * sketches are refused; null: no value is held by more than half (two members that disagree), so
 * `gateways` names every member that gave one, and sketches under different keys are not compared.
 */
export interface KeyMismatch {
  group: string;
  epoch: number;
  gateways: string[];
  majority: string[] | null;
}

/** A sketch refused: why, in fixed words and the sketch's ids and times (never its bits). */
export interface SketchRefusal {
  reason: SketchRejectReason;
  detail: string;
}

/**
 * One sketch in: refused, or taken (held, or ignored) with the flow lines that became due. `waited`:
 * the sketches that waited for the group's window length and were refused once it was known
 * (with their topics), to be counted and logged as refusals of their own.
 */
export type SketchResult =
  | { ok: true; held: boolean; lines: string[]; waited?: Array<SketchRefusal & { topic: string }> }
  | ({ ok: false; waited?: Array<SketchRefusal & { topic: string }> } & SketchRefusal);

interface Held extends NoisySketch {
  epoch: number;
  keyCheck?: string;
}

/** A sketch waiting for its group's window length (below). */
interface Pending {
  m: SketchMessage;
  bits: Uint8Array;
  start: number;
  end: number;
}

/** Sketches of one gateway kept while the group's window length is not known; older ones are dropped. */
export const PENDING_PER_GATEWAY = 4;

interface GroupState {
  cfg: CorridorConfig;
  windowMs: number | null;
  /**
   * The sketches received before the window length was known, in arrival order. The
   * length is that of two windows of one gateway that follow each other (one ends where the next
   * starts) and are equally long: a single window that starts on a multiple of its length may be
   * one cut short by the gateway's stop (its last window: from a boundary to the stop), and taking
   * its length refused every later sketch of the group.
   */
  pending: Pending[];
  /** Epoch length (s) of the group's sketches: that of the first one held. */
  epochS: number | null;
  /** gateway -> window index -> sketch */
  sketches: Map<string, Map<number, Held>>;
  watermark: number;
  /** Newest window end per member, and the first window start of the group seen. */
  latest: Map<string, number>;
  firstSeen: number;
  /** First window of the next interval to compute (null: not yet known). */
  next: number | null;
  /** Owned since (ms). */
  ownedSince: number;
  /** Whether an interval was computed (then an older window is a replay). */
  computed: boolean;
  /** Per pair ("a|b", members in config order): the lag counts of the intervals computed here (aggregates, no sketch). */
  history: Map<string, LagHistory>;
  /** Another instance owns the group: sketches held, histories kept, nothing computed or written. */
  standby: boolean;
  /** First interval whose sketches this state holds from its start (the window before it included). */
  floor: number | null;
  /**
   * Handed over to another instance (disown while owning): intervals due up to this group clock
   * (ms) are still computed and written here, as the new owner may have started without the
   * sketches of the interval in progress. Null: none.
   */
  handoverUntil: number | null;
  /** When the group's last sketch was held, on the idle clock (idleNow): the idle limit counts from it. */
  lastHeldAt: number;
  /** Per epoch (the last two), each member's latest key_check (sketches without one: not there). */
  keyChecks: Map<number, Map<string, string>>;
  /** Epoch length (s) of the sketches whose key_check is noted: the group's (epochS) once known, before that the first one's; others are not noted. */
  keyEpochS: number | null;
  /** Per member, the start (ms) of the newest window whose key_check was noted: an older one (a replay, a late sketch) is compared, not noted. */
  keyNotedAt: Map<string, number>;
  /** The group's members whose key_check disagrees now (null: none), as last reported. */
  keyMismatch: KeyMismatch | null;
}

export interface FlowPointFields {
  site: string;
  group: string;
  from: string;
  to: string;
  startMs: number;
  estimate: FlowEstimate;
}

export class CorridorFlows {
  private readonly groups = new Map<string, GroupState>();
  private readonly configs = new Map<string, CorridorConfig>();
  /** Intervals computed and their points, for tests and metrics. */
  intervalsComputed = 0;
  sketchesDropped = 0;

  constructor(
    corridors: CorridorConfig[],
    private readonly opts: {
      maxAheadMs: number;
      seed?: number;
      onPoint?: (f: FlowPointFields) => void;
      /** The members whose key_check disagrees changed: a mismatch found (or another one), or null when they agree again. */
      onKeyMismatch?: (group: string, m: KeyMismatch | null) => void;
    } = { maxAheadMs: 300_000 },
  ) {
    for (const c of corridors) this.configs.set(c.group, c);
  }

  private idleClock: number | null = null;
  private idleLastNow = 0;
  /**
   * The idle limit's clock: it moves with the `now` given (the aggregator's clock) but never back, so
   * a wall clock set back does not keep a silent group's sketches in memory for the time it went
   * back. With a `now` that only moves on, it is that `now`.
   */
  private idleNow(now: number): number {
    if (this.idleClock === null) this.idleClock = now;
    else this.idleClock += Math.max(0, now - this.idleLastNow);
    this.idleLastNow = now;
    return this.idleClock;
  }

  get groupIds(): string[] {
    return [...this.configs.keys()];
  }

  /** Sketches held in memory now (all groups). */
  get held(): number {
    let n = 0;
    for (const g of this.groups.values()) {
      for (const w of g.sketches.values()) n += w.size;
      n += g.pending.length;
    }
    return n;
  }

  /** Zero-fills and drops the sketches a group keeps while its window length is not known. */
  private dropPending(g: GroupState): void {
    for (const p of g.pending) p.bits.fill(0);
    this.sketchesDropped += g.pending.length;
    g.pending = [];
  }

  owns(group: string): boolean {
    const g = this.groups.get(group);
    return !!g && !g.standby;
  }

  private state(cfg: CorridorConfig, now: number, standby: boolean): GroupState {
    const g: GroupState = {
      cfg,
      windowMs: null,
      pending: [],
      epochS: null,
      sketches: new Map(),
      watermark: Number.NEGATIVE_INFINITY,
      latest: new Map(),
      firstSeen: Number.POSITIVE_INFINITY,
      next: null,
      ownedSince: now,
      computed: false,
      history: new Map(),
      standby,
      floor: null,
      handoverUntil: null,
      lastHeldAt: this.idleNow(now),
      keyChecks: new Map(),
      keyNotedAt: new Map(),
      keyEpochS: null,
      keyMismatch: null,
    };
    this.groups.set(cfg.group, g);
    return g;
  }

  /**
   * This instance owns the group from `now` on. From standby: the intervals not yet due, and the
   * last STANDBY_GRACE due ones whose sketches it holds, are computed here. Fresh: from the first
   * whole interval it receives.
   */
  own(group: string, now: number): void {
    const cfg = this.configs.get(group);
    if (!cfg) return;
    const g = this.groups.get(group);
    if (!g) {
      this.state(cfg, now, false);
      return;
    }
    if (!g.standby) return;
    g.standby = false;
    g.handoverUntil = null;
    g.ownedSince = now;
    if (g.next !== null && g.windowMs !== null) {
      const perInterval = Math.max(1, Math.round(FLOW_INTERVAL_MS / g.windowMs));
      g.next = Math.max(g.floor ?? g.next, g.next - STANDBY_GRACE * perInterval);
      // the histories as they were before the intervals to be computed again
      for (const h of g.history.values()) h.undoFrom(g.next);
    }
  }

  /**
   * Another instance owns the group: this one goes to standby (keeps holding its sketches, computes
   * nothing). If it owned the group (a new instance ranks first and takes it over from an empty
   * start), it goes on writing the intervals due within HANDOVER_INTERVALS intervals + horizon + one
   * window of the group's clock: the interval in progress and those before the new owner's first
   * whole one. The new owner writes some of them too, the same series and time: the database keeps
   * one point (the last written).
   */
  disown(group: string): void {
    const g = this.groups.get(group);
    if (!g || g.standby) return;
    g.standby = true;
    if (g.windowMs !== null && Number.isFinite(g.watermark)) g.handoverUntil = g.watermark + HANDOVER_INTERVALS * FLOW_INTERVAL_MS + g.cfg.horizon + g.windowMs;
  }

  /** Drops every sketch of every group (a stop). */
  dropAll(): void {
    for (const g of this.groups.values()) {
      this.dropPending(g);
      for (const w of g.sketches.values()) {
        for (const s of w.values()) s.bits.fill(0);
        this.sketchesDropped += w.size;
        w.clear();
      }
    }
    this.groups.clear();
  }

  /** How long (ms of the aggregator's clock) a group may go without a sketch held before expireIdle() empties it: its horizon + one interval. */
  static idleLimit(cfg: CorridorConfig): number {
    return cfg.horizon + FLOW_INTERVAL_MS;
  }

  /**
   * Groups that have had no sketch held for idleLimit() of the aggregator's clock (every gateway
   * stopped, or its sketches no longer reach this instance): their clock can no longer pass the
   * intervals held, so the intervals that can be computed from the sketches held are computed now,
   * as if the group's clock had passed them (an owner writes them, a standby only advances its
   * lag histories), then every sketch of the group is zero-filled and dropped. Returns the flow
   * lines of those intervals. The group's state (its next interval, the pairs' lag histories: no
   * sketch) is kept, so a late sketch of an interval computed here is refused as too old.
   */
  expireIdle(now: number): string[] {
    const lines: string[] = [];
    for (const g of this.groups.values()) {
      if (this.idleNow(now) - g.lastHeldAt < CorridorFlows.idleLimit(g.cfg)) continue;
      // sketches still waiting for the window length: no interval can be computed from them
      this.dropPending(g);
      if (g.windowMs === null) continue;
      let newest: number | null = null;
      for (const byWindow of g.sketches.values()) for (const w of byWindow.keys()) if (newest === null || w > newest) newest = w;
      if (newest === null) continue;
      const windowMs = g.windowMs;
      const perInterval = Math.max(1, Math.round(FLOW_INTERVAL_MS / windowMs));
      const maxLag = Math.ceil(g.cfg.horizon / windowMs);
      if (g.next !== null) {
        // the clock at which the interval of the newest window held is due
        const last = Math.floor(newest / perInterval) * perInterval;
        g.watermark = Math.max(g.watermark, (last + perInterval + maxLag + 1) * windowMs);
        lines.push(...this.due(g));
        g.floor = Math.max(g.floor ?? g.next, g.next);
      }
      for (const byWindow of g.sketches.values()) {
        for (const s of byWindow.values()) s.bits.fill(0);
        this.sketchesDropped += byWindow.size;
        byWindow.clear();
      }
    }
    return lines;
  }

  /** One sketch message in: rejected with a reason, ignored (a group another instance owns), or held; returns flow lines that became due. */
  accept(topic: string, payload: Buffer, now: number): SketchResult {
    if (payload.length > MAX_SKETCH_BYTES)
      return { ok: false, reason: 'sketch_too_large', detail: `payload is ${payload.length} bytes, more than ${MAX_SKETCH_BYTES}` };
    const t = parseTopic(topic);
    if (t?.kind !== 'sketch') return { ok: false, reason: 'sketch_invalid', detail: 'topic is not presence/v1/{site}/{gateway}/sketch' };
    let value: unknown;
    const text = payload.toString('utf8');
    try {
      value = JSON.parse(text);
    } catch (e) {
      return { ok: false, reason: 'sketch_invalid', detail: notJson(text, e) };
    }
    const twice = repeatedKey(text, value);
    if (twice) return { ok: false, reason: 'sketch_invalid', detail: repeatedKeyDetail(twice) };
    const v = validateSketch(value);
    // a bitmap of the wrong length or an m the contract does not allow: the wrong size
    if (!v.ok) return { ok: false, reason: /(^|\s)\/(bits holds|m\b)/.test(v.reason) ? 'sketch_size' : 'sketch_invalid', detail: v.reason };
    const m = v.value;
    if (m.site !== t.site || m.gateway !== t.gateway)
      return {
        ok: false,
        reason: 'sketch_invalid',
        detail: `topic names ${idForLog(t.site)}/${idForLog(t.gateway)}, payload ${idForLog(m.site)}/${idForLog(m.gateway)}`,
      };
    const cfg = this.configs.get(m.group);
    if (!cfg) return { ok: false, reason: 'sketch_unknown_group', detail: `group "${idForLog(m.group)}" is not in corridors` };
    if (cfg.site !== m.site || !cfg.members.includes(m.gateway))
      return {
        ok: false,
        reason: 'sketch_not_member',
        detail: `gateway ${idForLog(m.site)}/${idForLog(m.gateway)} is not a member of group "${idForLog(m.group)}" (${cfg.site}: ${cfg.members.join(', ')})`,
      };
    const bits = Buffer.from(m.bits, 'base64');
    const r = this.place(cfg, m, bits, now);
    // a decoded sketch that is not held (refused, or before the first interval) is zero-filled at once
    if (!(r.ok && r.held)) bits.fill(0);
    return r;
  }

  /** Checks a decoded sketch against the clock and the group, and holds it. */
  private place(cfg: CorridorConfig, m: SketchMessage, bits: Uint8Array, now: number): SketchResult {
    if (bits.length * 8 !== m.m) return { ok: false, reason: 'sketch_size', detail: `bits hold ${bits.length * 8} bits, m is ${m.m}` };
    const start = Date.parse(m.window_start);
    const end = Date.parse(m.window_end);
    if (start > now + this.opts.maxAheadMs)
      return { ok: false, reason: 'sketch_future', detail: aheadOfClock('window starts', start - now, this.opts.maxAheadMs) };
    // as for counts: the end too (else a group's first sketch could set a window length of hours)
    if (end > now + this.opts.maxAheadMs) return { ok: false, reason: 'sketch_future', detail: aheadOfClock('window ends', end - now, this.opts.maxAheadMs) };
    if (Math.floor(start / (m.epoch_s * 1000)) !== m.epoch)
      return {
        ok: false,
        reason: 'sketch_invalid',
        detail: `epoch ${m.epoch} is not floor(window_start / epoch_s) = ${Math.floor(start / (m.epoch_s * 1000))}`,
      };
    const g = this.groups.get(m.group) ?? this.state(cfg, now, true);
    // Another epoch length is refused before its key_check is noted (hold() refuses it too): its
    // epochs are numbered on another scale, a shorter one's always the newest, and the epoch the
    // members share would have been pushed out of the comparison.
    if (g.epochS !== null && m.epoch_s !== g.epochS) return { ok: false, reason: 'sketch_invalid', detail: epochLengthDetail(m.epoch_s, g.epochS) };
    // (before the group's epoch length is known, the first key_check's decides which are compared)
    if (m.key_check !== undefined && m.epoch_s === (g.keyEpochS ??= m.epoch_s)) {
      const majority = this.checkKey(g, m.epoch, m.gateway, m.key_check, start);
      // sketches of the epoch held before most members had given theirs, under another key: refused now
      const earlier = this.dropMismatched(g, m.epoch);
      if (majority)
        return {
          ok: false,
          reason: 'sketch_key_mismatch',
          detail: keyMismatchDetail(m.gateway, m.epoch, majority, m.group),
          ...(earlier.length ? { waited: earlier } : {}),
        };
      const r = this.hold(g, m, bits, start, end, now);
      return earlier.length ? { ...r, waited: [...earlier, ...(r.waited ?? [])] } : r;
    }
    return this.hold(g, m, bits, start, end, now);
  }

  /**
   * Zero-fills and drops the group's sketches of an epoch (held, or waiting for the window length)
   * whose key_check differs from the one most members gave in it; returns them as refusals.
   */
  private dropMismatched(g: GroupState, epoch: number): Array<SketchRefusal & { topic: string }> {
    const byMember = g.keyChecks.get(epoch);
    const v = byMember ? keyVerdict(byMember) : null;
    if (!v?.majority) return [];
    const good = byMember!.get(v.majority[0]!)!;
    const out: Array<SketchRefusal & { topic: string }> = [];
    const refuse = (gateway: string, windowStart: string) =>
      out.push({
        topic: sketchTopic(g.cfg.site, gateway),
        reason: 'sketch_key_mismatch',
        detail: `${keyMismatchDetail(gateway, epoch, v.majority!, g.cfg.group)} (window ${windowStart}, held until most members had given theirs)`,
      });
    for (const [gateway, byWindow] of g.sketches)
      for (const [w, s] of [...byWindow])
        if (s.epoch === epoch && s.keyCheck !== undefined && s.keyCheck !== good) {
          s.bits.fill(0);
          byWindow.delete(w);
          this.sketchesDropped++;
          refuse(gateway, new Date(w * g.windowMs!).toISOString());
        }
    g.pending = g.pending.filter((p) => {
      if (p.m.epoch !== epoch || p.m.key_check === undefined || p.m.key_check === good) return true;
      p.bits.fill(0);
      this.sketchesDropped++;
      refuse(p.m.gateway, p.m.window_start);
      return false;
    });
    return out;
  }

  /** Members whose key_check disagrees now (all groups), for /healthz and the metrics. */
  get keyMismatches(): KeyMismatch[] {
    const out: KeyMismatch[] = [];
    for (const g of this.groups.values()) if (g.keyMismatch) out.push(g.keyMismatch);
    return out;
  }

  /**
   * Notes a member's key_check for an epoch and compares it with the other members' of that epoch.
   * Returns the members that make up a majority against it (its sketch is refused), or null (it
   * agrees, or no value has a majority). Updates the group's mismatch (KeyMismatch) from the newest
   * epoch in which at least as many members gave a key_check as in the one before it (while the
   * members move into a new epoch one by one, the last epoch decides), and reports a change.
   */
  private checkKey(g: GroupState, epoch: number, gateway: string, keyCheck: string, start: number): string[] | null {
    // A window not newer than the member's newest noted one (a duplicate, a replay, a late sketch) is
    // noted nowhere, so that replaying an old window cannot change what the member is taken to hold
    // (nor log a change per message): under the key_check the member holds in its epoch it is judged
    // as the member is; under another, refused against the members that hold another value.
    const notedAt = g.keyNotedAt.get(gateway);
    if (notedAt !== undefined && start <= notedAt) {
      const known = g.keyChecks.get(epoch);
      const own = known?.get(gateway);
      if (!known || own === undefined) return null;
      if (own !== keyCheck)
        return [...known]
          .filter(([, v]) => v !== keyCheck)
          .map(([gw]) => gw)
          .sort();
      const v = keyVerdict(known);
      return v.majority && v.odd.includes(gateway) ? v.majority : null;
    }
    g.keyNotedAt.set(gateway, start);
    let byMember = g.keyChecks.get(epoch);
    if (!byMember) {
      g.keyChecks.set(epoch, (byMember = new Map()));
      // the last two epochs are kept (a late sketch of an older one is still compared with what is known)
      const epochs = [...g.keyChecks.keys()].sort((a, b) => b - a);
      for (const e of epochs.slice(2)) g.keyChecks.delete(e);
    }
    byMember.set(gateway, keyCheck);
    const verdict = keyVerdict(byMember);
    const epochs = [...g.keyChecks.keys()].sort((a, b) => b - a);
    const newest = epochs[0]!;
    const shown = epochs.length > 1 && g.keyChecks.get(newest)!.size < g.keyChecks.get(epochs[1]!)!.size ? epochs[1]! : newest;
    const v = shown === epoch ? verdict : keyVerdict(g.keyChecks.get(shown)!);
    const next: KeyMismatch | null = v.odd.length ? { group: g.cfg.group, epoch: shown, gateways: v.odd, majority: v.majority } : null;
    const same = (a: KeyMismatch | null, b: KeyMismatch | null) =>
      a === b || (a !== null && b !== null && a.gateways.join() === b.gateways.join() && (a.majority ?? []).join() === (b.majority ?? []).join());
    const changed = !same(g.keyMismatch, next);
    g.keyMismatch = next;
    if (changed) this.opts.onKeyMismatch?.(g.cfg.group, next);
    return verdict.majority && verdict.odd.includes(gateway) ? verdict.majority : null;
  }

  private hold(g: GroupState, m: SketchMessage, bits: Uint8Array, start: number, end: number, now: number): SketchResult {
    // The group's window length comes from two windows of one gateway that follow each other and
    // are equally long, each starting on a multiple of that length (GroupState.pending); until then
    // its sketches wait. A window cut short (a gateway starting or stopping) is placed in the whole
    // window it lies in; one that visibly is (its start no multiple of its length) cannot wait for it.
    if (g.windowMs === null) {
      const len = end - start;
      if (start % len !== 0)
        return {
          ok: false,
          reason: 'sketch_partial',
          detail: `window ${m.window_start}..${m.window_end} was cut short and the group's window length is not known yet`,
        };
      const mine = g.pending.filter((p) => p.m.gateway === m.gateway);
      if (!mine.some((p) => p.end - p.start === len && (p.end === start || p.start === end))) {
        // its oldest one goes when the gateway has PENDING_PER_GATEWAY waiting already
        if (mine.length >= PENDING_PER_GATEWAY) {
          mine[0].bits.fill(0);
          g.pending.splice(g.pending.indexOf(mine[0]), 1);
          this.sketchesDropped++;
        }
        g.pending.push({ m, bits, start, end });
        g.lastHeldAt = Math.max(g.lastHeldAt, this.idleNow(now));
        return { ok: true, held: true, lines: [] };
      }
      if (len < SKETCH_WINDOW_MIN_MS)
        return {
          ok: false,
          reason: 'sketch_invalid',
          detail: `windows of ${len} ms: a corridor group's windows are at least ${SKETCH_WINDOW_MIN_MS / 1000} s (gateway.window of its gateways)`,
        };
      g.windowMs = len;
      // the sketches that waited, in the order they came, then this one
      const waited = g.pending;
      g.pending = [];
      const lines: string[] = [];
      const refused: Array<SketchRefusal & { topic: string }> = [];
      for (const p of waited) {
        const r = this.hold(g, p.m, p.bits, p.start, p.end, now);
        if (r.ok) lines.push(...r.lines);
        else refused.push({ topic: sketchTopic(p.m.site, p.m.gateway), reason: r.reason, detail: r.detail });
        if (!(r.ok && r.held)) {
          p.bits.fill(0);
          this.sketchesDropped++;
        }
      }
      const r = this.hold(g, m, bits, start, end, now);
      return r.ok ? { ...r, lines: [...lines, ...r.lines], ...(refused.length ? { waited: refused } : {}) } : r;
    }
    const windowMs = g.windowMs;
    const w = Math.floor(start / windowMs);
    if (end > (w + 1) * windowMs)
      return {
        ok: false,
        reason: 'sketch_invalid',
        detail: `window ${m.window_start}..${m.window_end} does not lie in one ${windowMs / 1000}-s window of the group`,
      };
    const perInterval = Math.max(1, Math.round(FLOW_INTERVAL_MS / windowMs));
    // the first whole interval of what this instance receives (after a take-over: the next one)
    if (g.next === null) g.floor = g.next = Math.ceil(start / windowMs / perInterval) * perInterval;
    // the window before the next interval is still needed (run starts); anything older is done:
    // a replay once an interval was computed, and before that a window before the first whole
    // interval this instance sees (ignored, not an error: a start or a take-over mid-interval)
    if (w < g.next - 1 - (g.standby ? STANDBY_GRACE * perInterval : 0)) {
      if (!g.computed) return { ok: true, held: false, lines: [] };
      return { ok: false, reason: 'sketch_too_old', detail: `window ${m.window_start} is older than the interval being computed` };
    }
    let byWindow = g.sketches.get(m.gateway);
    if (!byWindow) g.sketches.set(m.gateway, (byWindow = new Map()));
    const have = byWindow.get(w);
    if (have) return { ok: false, reason: 'sketch_duplicate', detail: `a sketch of ${idForLog(m.gateway)} for window ${m.window_start} is already held` };
    // every sketch of a group has one m (the estimator compares bit by bit)
    for (const other of g.sketches.values())
      for (const s of other.values()) {
        if (s.m !== m.m) return { ok: false, reason: 'sketch_size', detail: `m is ${m.m}, the group's sketches have ${s.m}` };
        break;
      }
    // and one epoch length: epochs of another length are under keys no other member uses (no match
    // at all, no flow written); the first sketch held decides, as for m
    g.epochS ??= m.epoch_s;
    if (g.keyEpochS !== g.epochS) {
      // the key_checks noted were of another epoch length than the group's: not comparable
      g.keyChecks.clear();
      g.keyNotedAt.clear();
      g.keyEpochS = g.epochS;
    }
    if (m.epoch_s !== g.epochS) return { ok: false, reason: 'sketch_invalid', detail: epochLengthDetail(m.epoch_s, g.epochS) };
    byWindow.set(w, { bits, m: m.m, p: m.p, epoch: m.epoch, ...(m.key_check !== undefined ? { keyCheck: m.key_check } : {}) });
    g.lastHeldAt = Math.max(g.lastHeldAt, this.idleNow(now));
    g.latest.set(m.gateway, Math.max(g.latest.get(m.gateway) ?? Number.NEGATIVE_INFINITY, end));
    g.firstSeen = Math.min(g.firstSeen, start);
    g.watermark = this.watermark(g);
    return { ok: true, held: true, lines: this.due(g) };
  }

  private watermark(g: GroupState): number {
    const windowMs = g.windowMs!;
    const allowance = g.cfg.horizon + FLOW_INTERVAL_MS + windowMs;
    const newest = Math.max(...g.latest.values());
    let wm = Number.POSITIVE_INFINITY;
    for (const member of g.cfg.members) {
      const at = g.latest.get(member) ?? g.firstSeen;
      if (at >= newest - allowance) wm = Math.min(wm, at);
    }
    return wm;
  }

  /** Flow lines of every interval whose horizon the group's watermark has passed. */
  private due(g: GroupState): string[] {
    const lines: string[] = [];
    const windowMs = g.windowMs!;
    const perInterval = Math.max(1, Math.round(FLOW_INTERVAL_MS / windowMs));
    const maxLag = Math.ceil(g.cfg.horizon / windowMs);
    while (g.next !== null && g.watermark >= (g.next + perInterval + maxLag + 1) * windowMs) {
      // No member has a sketch in this interval (a gap, or an old sketch replayed as the group's
      // first): it has nothing to compare, and neither have the due ones up to the first window
      // held; they are passed in one step instead of one by one (26 years are 2.8 million intervals).
      const earliest = this.earliestHeld(g, g.next - 1);
      if (earliest === null || earliest >= g.next + perInterval) {
        const lastDue = Math.floor(g.watermark / windowMs) - perInterval - maxLag - 1;
        const dueSteps = Math.floor((lastDue - g.next) / perInterval) + 1;
        const steps = earliest === null ? dueSteps : Math.min(dueSteps, Math.floor((earliest - g.next) / perInterval));
        g.computed = true;
        g.next += Math.max(1, steps) * perInterval;
        this.dropBefore(g, perInterval);
        continue;
      }
      const handingOver = g.handoverUntil !== null && (g.next + perInterval + maxLag + 1) * windowMs <= g.handoverUntil;
      if (g.standby && !handingOver) this.follow(g, g.next, perInterval, maxLag);
      else lines.push(...this.compute(g, g.next, perInterval, maxLag));
      g.computed = true;
      g.next += perInterval;
      this.dropBefore(g, perInterval);
    }
    return lines;
  }

  /** Drops what no interval from g.next on needs (a standby: one interval more, for a take-over). */
  private dropBefore(g: GroupState, perInterval: number): void {
    const keep = g.next! - 1 - (g.standby ? STANDBY_GRACE * perInterval : 0);
    g.floor = Math.max(g.floor ?? keep + 1, keep + 1);
    for (const byWindow of g.sketches.values())
      for (const w of [...byWindow.keys()])
        if (w < keep) {
          byWindow.get(w)!.bits.fill(0);
          byWindow.delete(w);
          this.sketchesDropped++;
        }
  }

  /** The first window at or after `from` that any member has a sketch of (null: none). */
  private earliestHeld(g: GroupState, from: number): number | null {
    let first: number | null = null;
    for (const byWindow of g.sketches.values()) for (const w of byWindow.keys()) if (w >= from && (first === null || w < first)) first = w;
    return first;
  }

  /** A standby's interval: the pairs' lag histories advanced as the owner advances them, nothing computed or written. */
  private follow(g: GroupState, first: number, perInterval: number, maxLag: number): void {
    for (const { lags, history } of observedPairs(g, first, perInterval, maxLag)) history.add(lagSums(lags, maxLag), first);
  }

  private compute(g: GroupState, first: number, perInterval: number, maxLag: number): string[] {
    this.intervalsComputed++;
    const windowMs = g.windowMs!;
    const lines: string[] = [];
    for (const { a, b, lags, history } of observedPairs(g, first, perInterval, maxLag)) {
      const f = estimatePairFlows(lags, {
        windowS: windowMs / 1000,
        maxLag,
        intervalWindows: perInterval,
        seed: this.opts.seed ?? first,
        history: history.sums,
        expansion: expansionOf(g.cfg, a, b),
      });
      history.add(f.sums, first);
      for (const [from, to, list] of [
        [a, b, f.ab],
        [b, a, f.ba],
      ] as const) {
        const e = list.find((x) => x.firstWindow === first);
        if (!e) continue;
        const startMs = first * windowMs;
        this.opts.onPoint?.({ site: g.cfg.site, group: g.cfg.group, from, to, startMs, estimate: e });
        lines.push(flowLine(g.cfg.site, from, to, startMs, e, (perInterval * windowMs) / 1000));
      }
    }
    return lines;
  }
}

/** A sketch whose epoch length is not the group's: the refusal's detail. */
function epochLengthDetail(epochS: number, groupEpochS: number): string {
  return `epoch_s is ${epochS}, the group's sketches have ${groupEpochS} (corridor.epoch must be the same in every gateway of the group)`;
}

/** A sketch's key_check disagrees with most members': the refusal's detail. */
function keyMismatchDetail(gateway: string, epoch: number, majority: string[], group: string): string {
  return `key_check of ${idForLog(gateway)} in epoch ${epoch} differs from that of ${majority.map(idForLog).join(', ')}: its secret file is not the one most members of group "${idForLog(group)}" hold`;
}

/**
 * The members' key_checks of one epoch compared: `majority`, the members holding the value more than
 * half of them gave (null: none has), and `odd`, those that disagree with it (with no majority and
 * more than one value: every member that gave one), each in sorted order.
 */
export function keyVerdict(byMember: Map<string, string>): { majority: string[] | null; odd: string[] } {
  const byValue = new Map<string, string[]>();
  for (const [gw, kc] of byMember) byValue.set(kc, [...(byValue.get(kc) ?? []), gw]);
  if (byValue.size <= 1) return { majority: null, odd: [] };
  for (const [kc, gws] of byValue)
    if (gws.length * 2 > byMember.size)
      return {
        majority: [...gws].sort(),
        odd: [...byMember]
          .filter(([, v]) => v !== kc)
          .map(([gw]) => gw)
          .sort(),
      };
  return { majority: null, odd: [...byMember.keys()].sort() };
}

/**
 * The group's pairs (a before b in members) whose sketches of the interval's windows can be compared
 * (observable), with their lag counts and their lag history (made on first use): what the owner
 * computes from and what a standby follows.
 */
function* observedPairs(g: GroupState, first: number, perInterval: number, maxLag: number) {
  const members = g.cfg.members;
  const windows = Array.from({ length: perInterval }, (_, i) => first + i);
  for (let i = 0; i < members.length; i++)
    for (let j = i + 1; j < members.length; j++) {
      const sa = g.sketches.get(members[i]);
      const sb = g.sketches.get(members[j]);
      if (!sa || !sb) continue;
      const lags = pairLags(sa, sb, maxLag, windows);
      if (!observable(lags)) continue;
      const key = `${members[i]}|${members[j]}`;
      let history = g.history.get(key);
      if (!history) g.history.set(key, (history = new LagHistory(maxLag)));
      yield { a: members[i], b: members[j], lags, history };
    }
}

/**
 * Whether any window of the interval could be compared with the other gateway in one direction at
 * least (both sketches there, one epoch). A pair with none has nothing to estimate: no point is
 * written (a count of 0 would claim a flow of none where nothing was seen), no history kept.
 */
function observable(lags: PairLags): boolean {
  for (const d of [lags.ab, lags.ba]) for (const row of d.rows.values()) if (row.some((c) => c !== null)) return true;
  return false;
}

/** The expansion factors of the pair (a, b) in both directions (CorridorConfig.expansion; default 1). */
export function expansionOf(cfg: CorridorConfig, a: string, b: string): { ab: number; ba: number } {
  const e = cfg.expansion;
  if (e === undefined) return { ab: 1, ba: 1 };
  if (typeof e === 'number') return { ab: e, ba: e };
  return { ab: e[`${a}>${b}`] ?? 1, ba: e[`${b}>${a}`] ?? 1 };
}

const r = (x: number) => Math.round(x * 100) / 100;

/** One `flow` point: tags site, from, to; time = interval start (ms); `intervalS`: the interval's
 *  length (whole windows nearest 5 minutes), so a reader can turn the counts into a rate. */
export function flowLine(site: string, from: string, to: string, startMs: number, e: FlowEstimate, intervalS: number): string {
  const p = new Point(FLOW)
    .tag('site', site)
    .tag('from', from)
    .tag('to', to)
    .floatField('count', r(e.count))
    .floatField('count_low', r(e.countLow))
    .floatField('count_high', r(e.countHigh))
    .intField('windows', e.windows)
    .floatField('interval_s', intervalS)
    .timestamp(startMs);
  for (const [k, v] of [
    ['travel_median_s', e.travelMedianS],
    ['travel_median_low_s', e.travelMedianLowS],
    ['travel_median_high_s', e.travelMedianHighS],
    ['travel_p85_s', e.travelP85S],
    ['travel_p85_low_s', e.travelP85LowS],
    ['travel_p85_high_s', e.travelP85HighS],
  ] as const)
    if (v !== null) p.floatField(k, r(v));
  return p.toLineProtocol(msSettings)!;
}
