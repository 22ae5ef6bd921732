// Gateway identities: which gateways the aggregator takes messages from, for which site and zone,
// and a memory of recently accepted windows so a stored window cannot be silently rewritten.
//
// The broker binds a credential to a topic (docs/mosquitto/: user name `site/gateway`, ACL pattern
// presence/v1/%u/counts); the topic names site and gateway, and the aggregator already refuses a
// payload naming others (topic_mismatch). What the broker cannot know is the zone, and whether the
// gateway is one the operator set up: that is this registry (`gateways.registry` in the config,
// written by `presence provision gateway`).
//
//   - unknown_gateway    a registry is configured, allow_unknown is false, and the gateway is not in it
//   - identity_mismatch  the gateway is registered for another site or zone
//   - gateway_limit      not registered, allowed, but max_known other gateways are already known:
//                        made-up gateway ids cannot grow the aggregator's memory without bound
//   - conflict           a counts message for a window (or seq) this aggregator accepted with other
//                        counts; the identical message again (a redelivery) is accepted as before
//   - overlap            a counts message whose window overlaps, with another start, one this aggregator
//                        accepted of the gateway (its wall clock went back, or it was restarted with
//                        another window length): stored beside it (InfluxDB keys a point by its start),
//                        the overlap would be counted twice in every sum over time (frames, windows)
//
// Bound of the conflict memory: the last `conflict_memory` accepted counts messages (default 50,000,
// about 600 bytes each, see aggregator/README.md), across all gateways, oldest forgotten first.
// It lives in this process only: a window accepted before a restart, or forgotten since, or received
// by another member of a shared-subscription group, is not compared, and a different message for it
// is written over the stored point (InfluxDB keeps the last write of a point).
import { hash } from 'node:crypto';
import type { Logger } from 'pino';
import { countsSchemaJson as countsSchema } from '../contract/schemas.ts';
import { idForLog, type CountsMessage } from '../contract/index.ts';

export interface RegisteredGateway {
  site: string;
  zone: string;
  /** Name of the broker credential (MQTT user name or certificate CN), for the operator's records. */
  credential?: string;
}

/** The `gateways` section of the configuration (snake_case in memory too). */
export interface GatewaysConfig {
  /** Gateway id -> where it is installed. Empty: no registry. */
  registry: Record<string, RegisteredGateway>;
  /** Accept gateways that are not in the registry (checked against max_known). */
  allow_unknown: boolean;
  /** Gateways not in the registry that are accepted at most; beyond it their messages are rejected. */
  max_known: number;
  /** Accepted counts messages remembered for conflict detection. 0 turns it off. */
  conflict_memory: number;
}

export type IdentityRejectReason = 'unknown_gateway' | 'identity_mismatch' | 'gateway_limit' | 'conflict' | 'overlap';
export const IDENTITY_REJECT_REASONS: IdentityRejectReason[] = ['unknown_gateway', 'identity_mismatch', 'gateway_limit', 'conflict', 'overlap'];
export type IdentityVerdict = { reason: IdentityRejectReason; detail: string } | null;

interface Remembered {
  digest: string;
  start: number;
  end: number;
  seq: number;
  complete: boolean;
}

/**
 * The spans of one gateway's remembered windows, sorted by start. They do not overlap (an overlapping
 * window is rejected), so their ends are sorted too, and the one window that can overlap [start, end)
 * is the last one starting before `end`.
 */
class Spans {
  readonly starts: number[] = [];
  readonly ends: number[] = [];

  /** The index of the last span starting before `t`, -1 when none does. */
  private before(t: number): number {
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** The index of a span that overlaps [start, end), or -1. */
  overlapping(start: number, end: number): number {
    const i = this.before(end);
    return i >= 0 && this.ends[i] > start ? i : -1;
  }

  add(start: number, end: number): void {
    const n = this.starts.length;
    // Windows come oldest first: nearly always at the end.
    const i = n === 0 || this.starts[n - 1] < start ? n : this.before(start) + 1;
    if (i === n) {
      this.starts.push(start);
      this.ends.push(end);
    } else {
      this.starts.splice(i, 0, start);
      this.ends.splice(i, 0, end);
    }
  }

  remove(start: number): void {
    const i = this.before(start) + 1;
    if (this.starts[i] !== start) return;
    if (i === 0) {
      this.starts.shift();
      this.ends.shift();
    } else {
      this.starts.splice(i, 1);
      this.ends.splice(i, 1);
    }
  }

  get size(): number {
    return this.starts.length;
  }
}

// Fields of a counts message in schema order (objects with their keys sorted): the digest covers
// every field the contract defines, in a fixed order, whatever order the JSON had.
const TOP = Object.keys(countsSchema.properties) as Array<keyof CountsMessage>;
/** What the digest reads of a counts message, in schema order: a top-level field, or a field of
 *  one of its objects (radios, privacy; the schemas are closed, so these are all the keys they can
 *  have). start and end are read as times (ms), not as text. */
const FIELDS: Array<[string, string | null]> = [];
for (const k of TOP) {
  let s = (countsSchema.properties as Record<string, { $ref?: string; properties?: object }>)[k];
  if (s.$ref) s = (countsSchema.$defs as Record<string, { properties?: object }>)[s.$ref.replace('#/$defs/', '')];
  if (s?.properties) for (const f of Object.keys(s.properties)) FIELDS.push([k, f]);
  else FIELDS.push([k, null]);
}
const START = FIELDS.findIndex(([k]) => k === 'start');
const END = FIELDS.findIndex(([k]) => k === 'end');

/** What the digest reads of a counts message (FIELDS, in their order): a field of an object, or
 *  what stands for it when the object is absent (undefined) or not an object ([value]). */
function sub(o: unknown, f: string): unknown {
  return o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[f] : o === undefined ? undefined : [o];
}

/** The digest's values read through FIELDS, the schema's own list: the reference digestValues is
 *  tested against (test/aggregator-identity.test.ts), so a field the schema gains fails the test. */
export function schemaDigestValues(m: CountsMessage, start: number, end: number): unknown[] {
  const o = m as unknown as Record<string, unknown>;
  const values = FIELDS.map(([k, f]) => (f === null ? o[k] : sub(o[k], f)));
  values[START] = start;
  values[END] = end;
  return values;
}

/** The digest's values, each field read by its name: read by a key from FIELDS, some 28 reads of
 *  keys that change from one read to the next, they made the digest take 3.6-6.4 µs of CPU a message
 *  against 2.4-4.9 now (medians 5.6 and 3.0, 15 alternating rounds of 100,000, 28 Nov, load 9-12;
 *  the digests are the same). Equal to schemaDigestValues (tested). */
export function digestValues(m: CountsMessage, start: number, end: number): unknown[] {
  const w: unknown = m.wifi;
  const b: unknown = m.ble;
  const p: unknown = m.privacy;
  // biome-ignore format: one radio a line
  return [
    m.v, m.site, m.zone, m.gateway, m.seq, start, end, m.complete,
    sub(w, 'frames'), sub(w, 'devices'), sub(w, 'estimate'), sub(w, 'probes'), sub(w, 'adverts'), sub(w, 'rejected'), sub(w, 'weak'), sub(w, 'exact'), sub(w, 'suppressed'),
    sub(b, 'frames'), sub(b, 'devices'), sub(b, 'estimate'), sub(b, 'probes'), sub(b, 'adverts'), sub(b, 'rejected'), sub(b, 'weak'), sub(b, 'exact'), sub(b, 'suppressed'),
    sub(p, 'min_count'), sub(p, 'epsilon'),
  ];
}

/** Digest of a counts message's content: equal for the same counts however the JSON was written
 *  (key order, whitespace, `...00Z` or `...00.000Z`). 96 bits of SHA-256 of the JSON array of its
 *  fields in schema order (digestValues; an absent field is null: no field of the contract can be
 *  null, and a present object has its required fields). */
export function countsDigest(m: CountsMessage, start = Date.parse(m.start), end = Date.parse(m.end)): string {
  return hash('sha256', JSON.stringify(digestValues(m, start, end)), 'base64url').slice(0, 16);
}

/**
 * A map that keeps its `limit` most recently set keys. The order is a queue of its own beside the
 * map: forgetting the oldest through the map's iteration order costs time that grows with the
 * entries deleted before it (about 20 µs a message at 50,000 entries, half of the aggregator's work
 * per message). A key set again moves to the end; its old place in the queue is skipped.
 */
export class RecentMap<V> {
  /** Called for each key forgotten beyond the limit (not for all of them at a trim to 0). */
  constructor(private readonly onForget?: (key: string, value: V) => void) {}

  /** Key -> its live place in the queue (an index of the arrays below). */
  private readonly map = new Map<string, number>();
  // The queue: keys and values in the order set, in two arrays (no object per entry); places before
  // `head` are forgotten and cleared. A place is live when the map points at it: a place is told from
  // a later one of the same key by its number, not by its value (a key set again to an equal value,
  // a number or the same object, would otherwise leave its old place live and be forgotten there).
  private keys: Array<string | undefined> = [];
  private values: Array<V | undefined> = [];
  private head = 0;

  get size(): number {
    return this.map.size;
  }

  /** Places the queue holds, live, skipped and forgotten ones (bounded: see set). */
  get queued(): number {
    return this.keys.length;
  }

  get(key: string): V | undefined {
    const at = this.map.get(key);
    return at === undefined ? undefined : this.values[at];
  }

  set(key: string, value: V, limit: number): void {
    this.map.set(key, this.keys.length);
    this.keys.push(key);
    this.values.push(value);
    this.trim(limit);
  }

  /** Forgets the oldest keys beyond `limit` (all of them for 0). */
  trim(limit: number): void {
    if (limit <= 0) {
      this.map.clear();
      this.keys = [];
      this.values = [];
      this.head = 0;
      return;
    }
    while (this.map.size > limit) {
      const k = this.keys[this.head]!;
      if (this.map.get(k) === this.head) {
        this.map.delete(k);
        this.onForget?.(k, this.values[this.head]!);
      }
      this.keys[this.head] = this.values[this.head] = undefined;
      this.head++;
    }
    // Forgotten places are dropped once they are more than the rest, and places skipped (a key set
    // again) once the rest is more than twice the entries and 16: the arrays stay within about four
    // times the entries and 32 places.
    const rest = this.keys.length - this.head;
    if (this.head > rest || rest > 2 * this.map.size + 16) this.compact();
  }

  private compact(): void {
    const keys: string[] = [];
    const values: V[] = [];
    // Numbered again from 0: a key's live place is its last, so no place of a key comes after the
    // one renumbered and no old index is compared with a new one.
    for (let i = this.head; i < this.keys.length; i++) {
      const k = this.keys[i]!;
      if (this.map.get(k) === i) {
        this.map.set(k, keys.length);
        keys.push(k);
        values.push(this.values[i]!);
      }
    }
    this.keys = keys;
    this.values = values;
    this.head = 0;
  }
}

export class GatewayIdentity {
  /** Gateways not in the registry that were accepted, as site/gateway. */
  private readonly admitted = new Set<string>();
  private limitWarned = false;
  /** Messages rejected for gateway_limit since start, and when the latest was (ms; 0: none). */
  private limitRejected = 0;
  private limitLastAt = 0;
  /** Site/gateway -> the spans of its windows in byWindow (overlap), forgotten with them. */
  private readonly spans = new Map<string, Spans>();
  private readonly byWindow = new RecentMap<Remembered>((key, w) => {
    const gw = key.slice(0, key.lastIndexOf('@'));
    const sp = this.spans.get(gw);
    sp?.remove(w.start);
    if (sp?.size === 0) this.spans.delete(gw);
  });
  private readonly bySeq = new RecentMap<Remembered>();
  registered: number;

  constructor(
    private cfg: GatewaysConfig,
    private readonly log: Logger,
  ) {
    this.registered = Object.keys(cfg.registry).length;
  }

  /** Applies a new registry and policy (SIGHUP): from the next message on. Gateways admitted so
   *  far stay admitted while allowed; the conflict memory is kept up to the new conflict_memory, its
   *  oldest beyond it forgotten now (all of it for 0: turned off, it holds nothing, and turned on
   *  again later it starts empty rather than from windows accepted before). */
  reload(cfg: GatewaysConfig): void {
    this.cfg = cfg;
    this.byWindow.trim(cfg.conflict_memory);
    this.bySeq.trim(cfg.conflict_memory);
    if (cfg.conflict_memory <= 0) this.spans.clear();
    this.registered = Object.keys(cfg.registry).length;
    this.limitWarned = false;
  }

  /** Where the registered gateways are installed (empty: no registry). */
  get entries(): RegisteredGateway[] {
    return Object.values(this.cfg.registry);
  }

  /** Whether gateways that are not in the registry are accepted. */
  get allowUnknown(): boolean {
    return this.cfg.allow_unknown;
  }

  /** For /healthz: the messages gateway_limit rejected, while the latest is less than `withinMs`
   *  old; null otherwise. Their windows are lost, so the status is "degraded", not "ok". */
  limitProblem(now = Date.now(), withinMs = 15 * 60_000): string | null {
    if (!this.limitRejected || now - this.limitLastAt >= withinMs) return null;
    return `${this.limitRejected} message(s) of unregistered gateways rejected (gateway_limit), the latest ${Math.round((now - this.limitLastAt) / 1000)} s ago: ${this.cfg.max_known} unregistered gateways are known already (gateways.max_known); register the real ones (gateways.registry) or raise gateways.max_known (--max-gateways)`;
  }

  /** Gateways known: registered plus accepted unregistered ones. */
  get known(): number {
    return this.registered + this.admitted.size;
  }

  /** Counts messages remembered for conflict detection. */
  get remembered(): number {
    return this.byWindow.size;
  }

  /**
   * May this gateway publish for this site (and zone, when the message names one)? Null: yes.
   * A gateway not in the registry is admitted (and remembered) while fewer than max_known are.
   * `take: false` (the broker's retained copy of a status): an unregistered gateway not admitted yet
   * is let through without taking one of the max_known places. The copies of every gateway that
   * ever published a status (stopped ones, a load test's) come at each start, before any window:
   * taking places, 10,000 of them filled max_known and the windows of a real gateway new to this
   * process were rejected (gateway_limit) and lost.
   */
  admit(site: string, gateway: string, zone: string | undefined, take = true): IdentityVerdict {
    const reg = Object.hasOwn(this.cfg.registry, gateway) ? this.cfg.registry[gateway] : undefined;
    if (reg) {
      if (reg.site !== site)
        return {
          reason: 'identity_mismatch',
          detail: `gateway ${idForLog(gateway)} is registered for site ${reg.site}, not ${idForLog(site)}; fix: gateway.site ${reg.site} on the gateway, or move the entry (presence provision gateway --site ${idForLog(site)} --zone ${reg.zone} --id ${idForLog(gateway)} --aggregator-config FILE --rotate, then SIGHUP)`,
        };
      if (zone !== undefined && reg.zone !== zone)
        return {
          reason: 'identity_mismatch',
          detail: `gateway ${idForLog(gateway)} is registered for zone ${reg.zone} of site ${idForLog(site)}, not zone ${idForLog(zone)}; fix: gateway.zone ${reg.zone} on the gateway, or move the entry (presence provision gateway --site ${idForLog(site)} --zone ${idForLog(zone)} --id ${idForLog(gateway)} --aggregator-config FILE --rotate, then SIGHUP)`,
        };
      return null;
    }
    if (!this.cfg.allow_unknown)
      return {
        reason: 'unknown_gateway',
        detail: `gateway ${idForLog(gateway)} (site ${idForLog(site)}) is not in the registry (gateways.registry); add it with presence provision gateway`,
      };
    const key = `${site}/${gateway}`;
    if (this.admitted.has(key) || !take) return null;
    if (this.admitted.size >= this.cfg.max_known) {
      if (!this.limitWarned) {
        this.limitWarned = true;
        this.log.warn(
          { max_known: this.cfg.max_known, site: idForLog(site), gateway: idForLog(gateway) },
          'gateway limit reached: messages of further unregistered gateways are rejected (gateway_limit); register the real ones (gateways.registry) or raise gateways.max_known',
        );
      }
      this.limitRejected++;
      this.limitLastAt = Date.now();
      return {
        reason: 'gateway_limit',
        detail: `${this.cfg.max_known} unregistered gateways are known already (gateways.max_known); ${idForLog(site)}/${idForLog(gateway)} is not accepted`,
      };
    }
    this.admitted.add(key);
    return null;
  }

  /**
   * A counts message that passed everything else: a conflict when this aggregator accepted other
   * counts for the same window of the gateway, or for the same seq with a window not after the
   * remembered one (a gateway whose queue folder was lost starts its seq again: later windows under
   * an old seq are accepted). Otherwise remembers it (oldest forgotten beyond conflict_memory).
   * `start`, `end`: its times in ms, when the caller has them already (classify does).
   */
  checkCounts(m: CountsMessage, start = Date.parse(m.start), end = Date.parse(m.end)): IdentityVerdict {
    const limit = this.cfg.conflict_memory;
    if (limit <= 0) return null;
    const gw = `${m.site}/${m.gateway}`;
    const wk = `${gw}@${start}`;
    const sk = `${gw}#${m.seq}`;
    const digest = countsDigest(m, start, end);
    const w = this.byWindow.get(wk);
    if (w) {
      if (w.digest === digest) return null; // a redelivery: the same point is written again
      // Two parts of one window, each cut short, under two seqs: two runs of the gateway on the capture
      // clock, which publishes a window cut short with its grid boundaries (one capture split into
      // files, replayed a run per file). Each run counted its own part; only one can be stored.
      const parts = !w.complete && !m.complete && w.seq !== m.seq;
      // The same window under another seq, not two parts: two gateways publishing under one site and id
      // (each counts the window with its own seq), which the conflict alone did not say.
      const twice = !parts && w.seq !== m.seq;
      const gwForLog = `${idForLog(m.site)}/${idForLog(m.gateway)}`;
      return {
        reason: 'conflict',
        detail: `window ${m.start} of ${gwForLog} was accepted before with other counts (seq ${w.seq}); only an identical redelivery is accepted${parts ? `; both are cut short: two runs of the gateway each counted a part of it, as when a capture split into files is replayed a run per file (the capture clock publishes a window cut short with its grid boundaries); fix: give the files to one run (--source pcap:FIRST --source pcap:NEXT), which counts the window once` : ''}${twice ? `; this one is seq ${m.seq}: the same window under two seqs comes from two gateways configured as ${gwForLog} (the same --site and --id on two machines; each logs "session taken over") or a capture counted twice; fix: give each gateway its own id` : ''}`,
      };
    }
    const s = this.bySeq.get(sk);
    if (s && s.digest !== digest && start <= s.start)
      return {
        reason: 'conflict',
        detail: `seq ${m.seq} of ${idForLog(m.site)}/${idForLog(m.gateway)} was accepted before for window ${new Date(s.start).toISOString()}; this message has other counts`,
      };
    let sp = this.spans.get(gw);
    const o = sp ? sp.overlapping(start, end) : -1;
    if (o >= 0) {
      const other = this.byWindow.get(`${gw}@${sp!.starts[o]}`);
      const iso = (t: number) => new Date(t).toISOString();
      return {
        reason: 'overlap',
        detail: `window ${m.start} - ${m.end} (seq ${m.seq}) of ${idForLog(m.site)}/${idForLog(m.gateway)} overlaps window ${iso(sp!.starts[o])} - ${iso(sp!.ends[o])} accepted before${other ? ` (seq ${other.seq})` : ''}; both stored, the time they share would be counted twice in every sum over time (frames, windows, the hourly aggregates), so the first is kept: the gateway's wall clock went back (its log says "the wall clock went back") or it was restarted with another window length; fix: keep the gateway's clock synchronised (NTP) and one window length per gateway`,
      };
    }
    const entry: Remembered = { digest, start, end, seq: m.seq, complete: m.complete };
    if (!sp) this.spans.set(gw, (sp = new Spans()));
    sp.add(start, end);
    this.byWindow.set(wk, entry, limit);
    this.bySeq.set(sk, entry, limit); // a seq set again moves to the newest end
    return null;
  }
}
