// What the aggregator wrote recently, in memory and bounded, for its web page (./web.ts): per site
// and zone the windows written (per radio the devices and the estimate, or that the gateway
// suppressed it under privacy.min_count and below which k, people with its interval
// where the zone is calibrated, the simulator's truth when the demo supplies it), and per gateway
// the state from the status the aggregator received last among those written (and whether it is
// missing; how far its clock runs behind, from ./clock-skew.ts). Received last, not newest by its
// own `ts`: a gateway whose clock is days behind stamps its online statuses days before the
// offline one the broker sent for it without a `ts` (its last will, stamped on receipt), and by
// `ts` the page showed it offline for as long as its clock stayed behind (the database's last(),
// by time, still reads that offline point: the aggregator logs the clock behind). It is filled when the database has confirmed a message's
// points (./pipeline.ts calls back once they are surely stored), never from what merely arrived:
// the page shows what the aggregator wrote. The aggregator holds nothing per device, and neither
// does this: only the numbers of the written points.
//
// Bounds: per zone the windows of the last `maxAgeMs` before its newest one, at most `maxWindows`;
// at most `maxZones` zones and `maxGateways` gateways (the least recently written go first); and at
// most `maxEntries` gateway windows in all (a window holds one entry per gateway of its zone, about
// 250 bytes each: without this bound 2,000 gateways over a day of 1-minute windows held 2.9 million
// of them, about 700 MB), the oldest windows of all zones going first.
import { EventEmitter } from 'node:events';
import type { CountsMessage, StatusMessage } from '../contract/index.ts';
import type { People } from './calibration/apply.ts';
import { sourceTotals } from './messages.ts';

export interface RadioValues {
  devices: number;
  estimate: number;
  /** True when the gateway suppressed the radio for privacy.min_count: its counts were below k and
   *  were published (and written) as zeros, which are not a counted 0. In a zone's window: the
   *  largest is not known, as a suppressed gateway's below k may be above the others' values. */
  suppressed?: boolean;
}

/** One window of a zone: over the zone's gateways, the largest value of each (as the dashboards' max()). */
export interface ZoneWindow {
  /** Window start (ms since the epoch). */
  t: number;
  /** Window length (ms), the longest among the zone's gateways. */
  len: number;
  /** False when a gateway's window was cut short. */
  complete: boolean;
  wifi: RadioValues;
  ble: RadioValues;
  /** privacy.min_count (k) of a radio suppressed in this window: the largest among its suppressed gateways. */
  min_count?: number;
  /** Calibrated people with its interval (the gateway with the most); null: not calibrated. */
  people: People | null;
  /** Gateways whose points of this window were written. */
  gateways: number;
  /** The simulator's people present (time-averaged), when known (demo); null otherwise. */
  truth: number | null;
  /** Revision: higher is newer (a viewer keeps the newest of what it got from the stream and a snapshot). */
  v: number;
}

export interface ZoneView {
  site: string;
  zone: string;
  /** True when a window of the zone has people or was marked calibrated (a calibration covers it). */
  calibrated: boolean;
  windows: ZoneWindow[];
}

/** A gateway's state as written: its latest status point and its missing point. */
export interface GatewayView {
  site: string;
  gateway: string;
  zone: string | null;
  /** online / offline from the latest status written; null before any. */
  state: 'online' | 'offline' | null;
  /** Time of that status (ms): its `ts` (the gateway's clock), or when it was received when it has none. */
  status_at: number | null;
  /** How far the gateway's clock runs behind the aggregator's (s), from its live statuses
   *  (./clock-skew.ts ClockSkew.behind, the rule of its log line); null: not behind, or not known. */
  clock_behind_s: number | null;
  uptime_s: number | null;
  queue_depth: number | null;
  /** Sum over the gateway's sources. */
  frames_per_s: number | null;
  errors: number | null;
  sources: number | null;
  sources_failed: number | null;
  /** Sources whose capture command runs but has written nothing at all for 15 s or more (silent_s), and the longest silent_s. */
  sources_silent: number | null;
  capture_silent_s: number | null;
  /** Recorded by the aggregator as silent for missing_windows window lengths. */
  missing: boolean;
  missing_windows: number;
  /** Start (ms) of the newest counts window written. */
  last_window: number | null;
  /** Wall-clock time (ms) this gateway's latest write was confirmed. */
  written_at: number;
  /** Revision: higher is newer. */
  v: number;
}

export interface Snapshot {
  /** Format of this JSON (the page checks it). */
  format: 'presence-recent/1';
  /** Wall-clock time of the snapshot (ms). */
  now: number;
  /** Windows older than this before a zone's newest are let go (the page does the same). */
  history_ms: number;
  zones: ZoneView[];
  gateways: GatewayView[];
  /** When the replay feeding this aggregator ended (ms; the demo's, which says so): nothing more
   *  will be written. Null otherwise, and always in a real deployment, where gateways go on. */
  replay_ended_at: number | null;
}

export interface RecentOptions {
  /** Windows older than this before a zone's newest window are dropped (default 24 h). */
  maxAgeMs?: number;
  /** Windows kept per zone (default 1440: a day of 1-minute windows). */
  maxWindows?: number;
  maxZones?: number;
  maxGateways?: number;
  /** Gateway windows held in all zones together (default 500,000, about 125 MB): past it the oldest windows go. */
  maxEntries?: number;
  /** Windows starting before this (ms) are not kept (the demo: its week-earlier period). */
  since?: number;
}

export interface RecentEvents {
  /** A window of a zone was written (or its truth became known). */
  window: [site: string, zone: string, window: ZoneWindow, calibrated: boolean];
  gateway: [gateway: GatewayView];
  /** The replay feeding this aggregator has ended (the demo): nothing more will be written. */
  replayEnded: [at: number];
}

interface GatewayWindow {
  len: number;
  complete: boolean;
  wifi: RadioValues;
  ble: RadioValues;
  /** privacy.min_count of the message (0: none). */
  k: number;
  people: People | null;
}

interface Zone {
  site: string;
  zone: string;
  calibrated: boolean;
  /** Window start -> gateway -> what was written. */
  windows: Map<number, Map<string, GatewayWindow>>;
  /** Window starts, ascending. */
  order: number[];
  /** Window start -> revision of its latest change. */
  revs: Map<number, number>;
  /** Window start -> the simulator's people and the window's end. */
  truth: Map<number, { people: number; end: number }>;
  touched: number;
}

/** Index of the first element >= x in ascending `a`. */
function lowerBound(a: number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const key = (site: string, name: string) => `${site}/${name}`;

export class RecentWrites extends EventEmitter<RecentEvents> {
  private readonly zones = new Map<string, Zone>();
  private readonly gateways = new Map<string, GatewayView>();
  /** The time of the missing / back point each gateway's view shows. */
  private readonly missingAt = new WeakMap<GatewayView, number>();
  /** When the aggregator received the status each gateway's view shows (`arrival`: its order of arrival). */
  private readonly statusReceived = new WeakMap<GatewayView, number>();
  /** Revision counter: every change takes the next one. */
  private rev = 0;
  readonly maxAgeMs: number;
  readonly maxWindows: number;
  readonly maxZones: number;
  readonly maxGateways: number;
  readonly maxEntries: number;
  readonly since: number;
  /** Gateway windows held in all zones together. */
  private entries = 0;
  /** When the replay feeding the aggregator ended (the demo), or null. */
  private endedAt: number | null = null;

  constructor(o: RecentOptions = {}) {
    super();
    this.maxAgeMs = o.maxAgeMs ?? 24 * 3600_000;
    this.maxWindows = o.maxWindows ?? 1440;
    this.maxZones = o.maxZones ?? 500;
    this.maxGateways = o.maxGateways ?? 2000;
    this.maxEntries = o.maxEntries ?? 500_000;
    this.since = o.since ?? -Infinity;
  }

  private zoneOf(site: string, name: string, now: number): Zone {
    const k = key(site, name);
    let z = this.zones.get(k);
    if (!z) {
      if (this.zones.size >= this.maxZones) {
        const gone = this.evictOldest(this.zones);
        if (gone) for (const w of gone.windows.values()) this.entries -= w.size;
      }
      z = { site, zone: name, calibrated: false, windows: new Map(), order: [], revs: new Map(), truth: new Map(), touched: now };
      this.zones.set(k, z);
    }
    z.touched = now;
    return z;
  }

  private evictOldest<T extends { touched?: number; written_at?: number }>(m: Map<string, T>): T | undefined {
    let oldest: string | null = null;
    let at = Infinity;
    for (const [k, v] of m) {
      const t = v.touched ?? v.written_at ?? 0;
      if (t < at) {
        at = t;
        oldest = k;
      }
    }
    if (oldest === null) return undefined;
    const gone = m.get(oldest);
    m.delete(oldest);
    return gone;
  }

  private gatewayOf(site: string, gateway: string, now: number): GatewayView {
    const k = key(site, gateway);
    let g = this.gateways.get(k);
    if (!g) {
      if (this.gateways.size >= this.maxGateways) this.evictOldest(this.gateways);
      g = {
        site,
        gateway,
        zone: null,
        state: null,
        status_at: null,
        clock_behind_s: null,
        uptime_s: null,
        queue_depth: null,
        frames_per_s: null,
        errors: null,
        sources: null,
        sources_failed: null,
        sources_silent: null,
        capture_silent_s: null,
        missing: false,
        missing_windows: 0,
        last_window: null,
        written_at: now,
        v: 0,
      };
      this.gateways.set(k, g);
    }
    g.written_at = now;
    g.v = ++this.rev;
    return g;
  }

  /** The points of a counts message were written; `people` is what went into the calibrated radio's
   *  point (null: none); `calibrated`: that point was marked calibrated (a window the gateway
   *  suppressed has no people but is still a calibrated zone's). */
  counts(m: CountsMessage, people: People | null, now = Date.now(), calibrated = people !== null): void {
    const t = Date.parse(m.start);
    const len = Date.parse(m.end) - t;
    if (t < this.since) return;
    const z = this.zoneOf(m.site, m.zone, now);
    const newest = z.order.length ? z.order[z.order.length - 1] : -Infinity;
    if (t < newest - this.maxAgeMs) return; // older than what is kept
    let w = z.windows.get(t);
    if (!w) {
      w = new Map();
      z.windows.set(t, w);
      z.order.splice(lowerBound(z.order, t), 0, t);
    }
    if (!w.has(m.gateway)) this.entries++;
    w.set(m.gateway, {
      len,
      complete: m.complete,
      wifi: { devices: m.wifi.devices, estimate: m.wifi.estimate, ...(m.wifi.suppressed ? { suppressed: true } : {}) },
      ble: { devices: m.ble.devices, estimate: m.ble.estimate, ...(m.ble.suppressed ? { suppressed: true } : {}) },
      k: m.privacy?.min_count ?? 0,
      people,
    });
    if (calibrated) z.calibrated = true;
    z.revs.set(t, ++this.rev);
    this.prune(z);
    this.trim();
    const g = this.gatewayOf(m.site, m.gateway, now);
    g.zone = m.zone;
    g.last_window = Math.max(g.last_window ?? -Infinity, t);
    if (z.windows.has(t)) this.emit('window', z.site, z.zone, this.window(z, t)!, z.calibrated);
    this.emit('gateway', { ...g });
  }

  /** A status message's point was written. Batches are written concurrently and retried, so
   *  points can be confirmed out of order: a status received before the one already shown is left
   *  out. `receivedAt`: when the aggregator received it (its clock, ms); `clockBehindMs`: how far
   *  the gateway's clock is judged behind then (ClockSkew.behind), null when it is not; `arrival`:
   *  the order it was received in, from a clock that never goes back (performance.now() at receipt;
   *  the wall clock can be set back, and every status received after that was left out until it had
   *  caught up again). */
  status(m: StatusMessage, now = Date.now(), receivedAt = now, clockBehindMs: number | null = null, arrival = receivedAt): void {
    const at = m.ts ? Date.parse(m.ts) : receivedAt;
    const g = this.gatewayOf(m.site, m.gateway, now);
    const shown = this.statusReceived.get(g);
    if (shown !== undefined && arrival < shown) return;
    this.statusReceived.set(g, arrival);
    if (m.zone) g.zone = m.zone;
    g.state = m.state;
    g.status_at = at;
    g.clock_behind_s = clockBehindMs === null ? null : Math.round(clockBehindMs / 1000);
    g.uptime_s = m.uptime_s ?? null;
    g.queue_depth = m.queue_depth ?? null;
    if (m.sources) {
      Object.assign(g, sourceTotals(m.sources));
    } else {
      g.frames_per_s = g.errors = g.sources = g.sources_failed = g.sources_silent = g.capture_silent_s = null;
    }
    this.emit('gateway', { ...g });
  }

  /** The aggregator's own missing (windows > 0) or back (0) point of a gateway, made at `at`, was
   *  written. As with a status, one older than the one already shown is left out. */
  missing(site: string, gateway: string, windows: number, at: number, now = Date.now()): void {
    const g = this.gatewayOf(site, gateway, now);
    const shown = this.missingAt.get(g);
    if (shown !== undefined && at < shown) return;
    this.missingAt.set(g, at);
    g.missing = windows > 0;
    g.missing_windows = windows;
    this.emit('gateway', { ...g });
  }

  /** When the replay feeding the aggregator ended (ms), or null: see Snapshot.replay_ended_at. */
  get replayEndedAt(): number | null {
    return this.endedAt;
  }

  /** The replay feeding the aggregator has ended and everything it sent is written (the demo, after
   *  its replay): the page says so instead of "live", which only says its stream is connected. */
  replayEnded(at = Date.now()): void {
    this.endedAt = at;
    this.emit('replayEnded', at);
  }

  /** The simulator's people present in a zone's window [t, end) (the demo); shown beside the
   *  written window that starts in it (a window cut short starts after its truth window). */
  truth(site: string, zone: string, t: number, end: number, people: number, now = Date.now()): void {
    const z = this.zoneOf(site, zone, now);
    z.truth.set(t, { people, end });
    if (z.truth.size > this.maxWindows * 4) z.truth.delete(z.truth.keys().next().value!);
    for (const w of z.windows.keys())
      if (w >= t && w < end) {
        z.revs.set(w, ++this.rev);
        this.emit('window', z.site, z.zone, this.window(z, w)!, z.calibrated);
      }
  }

  private truthAt(z: Zone, t: number): number | null {
    const exact = z.truth.get(t);
    if (exact) return exact.people;
    for (const [start, v] of z.truth) if (start <= t && t < v.end) return v.people;
    return null;
  }

  private prune(z: Zone): void {
    const newest = z.order[z.order.length - 1];
    let drop = 0;
    while (drop < z.order.length && (z.order[drop] < newest - this.maxAgeMs || z.order.length - drop > this.maxWindows)) drop++;
    if (!drop) return;
    for (const t of z.order.slice(0, drop)) this.forget(z, t);
    z.order.splice(0, drop);
  }

  /** Past maxEntries gateway windows: drops the oldest windows of all zones, down to 1 % below the
   *  bound (so that the search over the zones runs once per many messages, not for each). */
  private trim(): void {
    if (this.entries <= this.maxEntries) return;
    const target = this.maxEntries - Math.ceil(this.maxEntries / 100);
    while (this.entries > target) {
      let oldest: Zone | null = null;
      for (const z of this.zones.values()) if (z.order.length && (!oldest || z.order[0] < oldest.order[0])) oldest = z;
      if (!oldest) return;
      this.forget(oldest, oldest.order.shift()!);
    }
  }

  /** Forgets zone z's window at t (its place in z.order is the caller's). */
  private forget(z: Zone, t: number): void {
    this.entries -= z.windows.get(t)?.size ?? 0;
    z.windows.delete(t);
    z.revs.delete(t);
    z.truth.delete(t);
  }

  /** Gateway windows held in all zones together (at most maxEntries). */
  get held(): number {
    return this.entries;
  }

  private window(z: Zone, t: number): ZoneWindow | null {
    const w = z.windows.get(t);
    if (!w) return null;
    const out: ZoneWindow = {
      t,
      len: 0,
      complete: true,
      wifi: { devices: 0, estimate: 0 },
      ble: { devices: 0, estimate: 0 },
      people: null,
      gateways: w.size,
      truth: this.truthAt(z, t),
      v: z.revs.get(t) ?? 0,
    };
    // k of the suppressed gateways per radio: their zeros are "below k", not counted values.
    const below = { wifi: -1, ble: -1 };
    for (const g of w.values()) {
      out.len = Math.max(out.len, g.len);
      out.complete &&= g.complete;
      for (const r of ['wifi', 'ble'] as const) {
        if (g[r].suppressed) {
          below[r] = Math.max(below[r], g.k);
          continue;
        }
        out[r].devices = Math.max(out[r].devices, g[r].devices);
        out[r].estimate = Math.max(out[r].estimate, g[r].estimate);
      }
      if (g.people && (!out.people || g.people.value > out.people.value)) out.people = { ...g.people };
    }
    // The largest is known where a counted gateway reached the k of every suppressed one (the
    // gateway's own rule: suppressed when devices or estimate is below k); otherwise the radio is
    // suppressed in the zone's window, shown as such (a gap), and its zeros as published.
    let k = 0;
    for (const r of ['wifi', 'ble'] as const) {
      if (below[r] < 0 || (below[r] > 0 && out[r].devices >= below[r] && out[r].estimate >= below[r])) continue;
      out[r] = { devices: 0, estimate: 0, suppressed: true };
      k = Math.max(k, below[r]);
    }
    if (k > 0) out.min_count = k;
    return out;
  }

  snapshot(now = Date.now()): Snapshot {
    const zones = [...this.zones.values()]
      .filter((z) => z.order.length > 0)
      .sort((a, b) => a.site.localeCompare(b.site) || a.zone.localeCompare(b.zone))
      .map((z) => ({ site: z.site, zone: z.zone, calibrated: z.calibrated, windows: z.order.map((t) => this.window(z, t)!) }));
    const gateways = [...this.gateways.values()].sort((a, b) => a.site.localeCompare(b.site) || a.gateway.localeCompare(b.gateway)).map((g) => ({ ...g }));
    return { format: 'presence-recent/1', now, history_ms: this.maxAgeMs, zones, gateways, replay_ended_at: this.endedAt };
  }
}
