// The gateway's live page (`presence gateway --http-port`, at /): what the antenna hears, for the
// person next to the gateway. One static file (gateway/web/index.html, uPlot from the installed
// package) and an event stream (/events) that sends a picture (`snapshot`) every http.update_interval
// and at once when a source changes state. Built with scripts/lib/web.ts (access rule, assets, the
// stream hub that drops a viewer who falls behind, so a stalled browser never slows the gateway).
//
// What a snapshot holds is counts only, never anything per device: frames per second per radio and
// channel (the firmware's live block, as differences between two pictures), the open window's
// address slots per 5-dB signal bucket and its running frame counts, the last windows as queued
// (the published counts message), queue, broker, sources with their fixed error sentences, and the
// doctor's machine checks (gateway/doctor.ts machineChecks, run in the background every few
// minutes). The page's tests run the leak scan over the page, its assets and this stream.
import { LIVE_RSSI_SLOTS } from '../firmware/assembly/layout.ts';
import { channelName, type LiveStats } from '../firmware/host/firmware.ts';
import type { CountsMessage } from '../contract/index.ts';
import { packageFile, SseHub, staticPage, webAccess, type StaticFile, type WebAccess } from '../scripts/lib/web.ts';
import type { GatewayConfig } from './config.ts';
import { pageIntervalMs } from './config.ts';
import type { Gateway } from './gateway.ts';
import { sourceSilence } from './http.ts';
import { safeUrl } from './publisher.ts';
import { RateTracker } from './status.ts';

/** The page file, relative to the package root (listed in package.json "files"). */
export const PAGE_FILE = 'gateway/web/index.html';
/** Windows the page lists. */
export const PAGE_WINDOWS = 30;
/** The signal histogram's buckets: 5 dB wide from -100 dBm to -20 dBm (weaker in the first, stronger in the last). */
export const RSSI_FROM = -100;
export const RSSI_STEP = 5;
export const RSSI_BUCKETS = 16;
/** How often the machine checks run again. */
const CHECKS_EVERY_MS = 5 * 60_000;

export interface ChannelRate {
  channel: string;
  fps: number;
}

export interface WindowRow {
  seq: number;
  start: string;
  end: string;
  complete: boolean;
  /** suppressed: the radio's counts were below privacy.min_count and are published as zeros (not a counted 0). */
  wifi: { frames: number; devices: number; estimate: number; suppressed?: boolean };
  ble: { frames: number; devices: number; estimate: number; suppressed?: boolean };
  /** privacy.min_count of the window (k), when small counts are suppressed. */
  min_count?: number;
  /** Acknowledged by the broker. */
  published: boolean;
}

export interface Snapshot {
  /** When the picture was taken (ms since the epoch; the page shows it in the viewer's time zone). */
  at: number;
  gateway: { site: string; zone: string; id: string; window_ms: number; clock: 'wall' | 'capture'; started: number };
  /** The open window (ms, on the clock that drives windows), or null between windows. */
  window: { start: number; end: number } | null;
  /** Running counts of the open window per radio. */
  live: Record<'wifi' | 'ble', { frames: number; accepted: number; rejected: number; weak: number }> | null;
  /** Frames per second since the previous picture, per radio and per channel heard (others left out). */
  rates: Record<'wifi' | 'ble', { fps: number; channels: ChannelRate[] }>;
  /** Address slots of the open window per signal bucket (RSSI_FROM + i * RSSI_STEP dBm), and those without a signal. */
  rssi: { from: number; step: number; wifi: number[]; ble: number[]; unknown: { wifi: number; ble: number } };
  /** The last windows; left out of a picture when unchanged since the previous one (the page keeps what it has). */
  windows?: WindowRow[];
  queue: { depth: number; state: string; dropped: number; refused: number };
  /** error and fix: while not connected, why the last attempt failed and what to do. */
  broker: { connected: boolean; url: string; error?: string; fix?: string };
  /** Frames of the last closed window of a link type the firmware does not parse (not counted). */
  unparsed: number;
  sources: Array<{
    name: string;
    radio: string;
    state: string;
    frames: number;
    frames_per_s: number;
    errors: number;
    error_code?: string;
    last_error?: string;
    /** What to do about the last failure of a capture command: the same fixed sentence as /healthz gives (sources.ts lastFix). */
    fix?: string;
    /** Seconds a running capture command has written nothing at all, not even a file header (the status's silent_s: from 15 s on). */
    silent_s?: number;
    /** A capture command silent too long (http.ts sourceSilence): its sentence, a fault (problem) or a warning. */
    silence?: { level: 'problem' | 'warning'; text: string };
  }>;
  /** The machine checks (null until the first run has finished); left out when unchanged since the previous picture. */
  checks?: { at: number; results: Array<{ step: string; level: string; detail: string; fix?: string }> } | null;
  viewers: { connected: number; dropped: number };
}

/** The histogram's buckets from the firmware's per-dBm slots. */
export function rssiBuckets(slots: ArrayLike<number>): { buckets: number[]; unknown: number } {
  const buckets = new Array<number>(RSSI_BUCKETS).fill(0);
  for (let s = 1; s < LIVE_RSSI_SLOTS; s++) {
    const n = slots[s] ?? 0;
    if (!n) continue;
    const dbm = s - 128;
    const i = Math.min(RSSI_BUCKETS - 1, Math.max(0, Math.floor((dbm - RSSI_FROM) / RSSI_STEP)));
    buckets[i] += n;
  }
  return { buckets, unknown: slots[0] ?? 0 };
}

export interface PageOptions {
  intervalMs: number;
  viewerBuffer: number;
  maxViewers: number;
  /** Run the machine checks (default true; off in tests that do not want tools run). */
  checks?: boolean;
}

export class GatewayPage {
  readonly hub: SseHub;
  readonly page: StaticFile;
  readonly access: WebAccess;
  private timer: NodeJS.Timeout | null = null;
  private checksTimer: NodeJS.Timeout | null = null;
  private soon: NodeJS.Immediate | null = null;
  private readonly rows: WindowRow[] = [];
  private readonly rates = new RateTracker();
  private readonly sourceFps = new Map<string, number>();
  private prev: { at: number; wifi: Float64Array; ble: Float64Array } | null = null;
  private lastRates: Snapshot['rates'] = { wifi: { fps: 0, channels: [] }, ble: { fps: 0, channels: [] } };
  private checks: Snapshot['checks'] = null;
  /** The windows or checks changed since the last picture broadcast. */
  private windowsChanged = true;
  private checksChanged = true;
  private readonly startedAt = Date.now();

  constructor(
    private readonly gw: Gateway,
    private readonly opts: PageOptions,
  ) {
    const http = gw.config.http;
    this.access = webAccess(http.host ?? '127.0.0.1', http);
    this.page = staticPage(packageFile(PAGE_FILE));
    this.hub = new SseHub({ maxBufferBytes: opts.viewerBuffer, maxClients: opts.maxViewers });
  }

  static fromConfig(gw: Gateway, cfg: GatewayConfig): GatewayPage {
    return new GatewayPage(gw, { intervalMs: pageIntervalMs(cfg), viewerBuffer: cfg.http.viewer_buffer ?? 262144, maxViewers: cfg.http.max_viewers ?? 100 });
  }

  /** Listens to the gateway and starts the pictures; the machine checks run in the background. */
  start(): void {
    this.gw.on('window', (m) => this.addWindow(m));
    this.gw.on('published', (seq) => {
      const row = this.rows.find((r) => r.seq === seq);
      if (row) {
        row.published = true;
        this.windowsChanged = true;
      }
    });
    // a source failing shows at once, not at the next tick
    this.gw.on('source', () => this.pushSoon());
    this.timer = setInterval(() => this.push(), this.opts.intervalMs);
    this.timer.unref();
    if (this.opts.checks !== false) {
      void this.runChecks();
      this.checksTimer = setInterval(() => void this.runChecks(), CHECKS_EVERY_MS);
      this.checksTimer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.checksTimer) clearInterval(this.checksTimer);
    if (this.soon) clearImmediate(this.soon);
    this.timer = this.checksTimer = this.soon = null;
    this.hub.close();
  }

  /** The events a new viewer gets first: the picture as it is now (rates as of the last tick). */
  initial(): Array<[string, unknown]> {
    return [['snapshot', this.snapshot(false)]];
  }

  private pushSoon(): void {
    this.soon ??= setImmediate(() => {
      this.soon = null;
      this.push();
    });
  }

  private push(): void {
    if (this.hub.size === 0) return; // nobody watching: no picture is taken
    this.hub.broadcast('snapshot', this.snapshot(true));
  }

  private addWindow(m: CountsMessage): void {
    const r = (x: CountsMessage['wifi']) => ({ frames: x.frames, devices: x.devices, estimate: x.estimate, ...(x.suppressed ? { suppressed: true } : {}) });
    const k = m.privacy?.min_count;
    this.rows.push({
      seq: m.seq,
      start: m.start,
      end: m.end,
      complete: m.complete,
      wifi: r(m.wifi),
      ble: r(m.ble),
      ...(k ? { min_count: k } : {}),
      published: false,
    });
    if (this.rows.length > PAGE_WINDOWS) this.rows.splice(0, this.rows.length - PAGE_WINDOWS);
    this.windowsChanged = true;
  }

  private async runChecks(): Promise<void> {
    try {
      const { machineChecks } = await import('./doctor.ts');
      const results = await machineChecks(this.gw.config);
      // the step, level, detail and fix only (the doctor's `output` of a capture tool is never shown here)
      this.checks = { at: Date.now(), results: results.map(({ step, level, detail, fix }) => ({ step, level, detail, ...(fix ? { fix } : {}) })) };
      this.checksChanged = true;
      this.pushSoon();
    } catch (e) {
      this.gw.log.warn({ err: (e as Error).message }, 'page: the machine checks failed');
    }
  }

  /** Frames per second per channel since the previous picture (the firmware counts frames per channel). */
  private channelRates(stats: LiveStats | null, now: number): Snapshot['rates'] {
    if (!stats) return this.lastRates;
    const prev = this.prev;
    this.prev = { at: now, wifi: stats.wifiChannels, ble: stats.bleChannels };
    if (!prev || now - prev.at < 1) return this.lastRates;
    const dt = (now - prev.at) / 1000;
    const radio = (cur: Float64Array, old: Float64Array, name: 'wifi' | 'ble') => {
      const channels: ChannelRate[] = [];
      let total = 0;
      for (let i = 0; i < cur.length; i++) {
        const d = cur[i]! - old[i]!;
        if (d <= 0) continue;
        total += d;
        channels.push({ channel: channelName(name, i), fps: Math.round((d / dt) * 10) / 10 });
      }
      return { fps: Math.round((total / dt) * 10) / 10, channels };
    };
    this.lastRates = { wifi: radio(stats.wifiChannels, prev.wifi, 'wifi'), ble: radio(stats.bleChannels, prev.ble, 'ble') };
    return this.lastRates;
  }

  /**
   * The picture now: counts only. `tick`: rates are measured since the previous tick (a new
   * viewer's first picture repeats the last rates, so viewers arriving do not shorten the interval),
   * and the windows and checks go out only when they changed since the previous tick (a new
   * viewer's first picture always has them).
   */
  snapshot(tick = true): Snapshot {
    const now = Date.now();
    const gw = this.gw;
    const live = gw.live();
    const wifi = live.stats ? rssiBuckets(live.stats.rssiWifi) : { buckets: new Array<number>(RSSI_BUCKETS).fill(0), unknown: 0 };
    const ble = live.stats ? rssiBuckets(live.stats.rssiBle) : { buckets: new Array<number>(RSSI_BUCKETS).fill(0), unknown: 0 };
    const g = gw.config.gateway;
    const counts = live.counts;
    const withWindows = !tick || this.windowsChanged;
    const withChecks = !tick || this.checksChanged;
    if (tick) this.windowsChanged = this.checksChanged = false;
    return {
      at: now,
      gateway: { site: g.site, zone: g.zone, id: g.id, window_ms: gw.windowMs, clock: gw.clock, started: this.startedAt },
      window: live.window,
      live: counts ? { wifi: { ...counts.wifi }, ble: { ...counts.ble } } : null,
      rates: tick ? this.channelRates(live.stats, now) : this.lastRates,
      rssi: { from: RSSI_FROM, step: RSSI_STEP, wifi: wifi.buckets, ble: ble.buckets, unknown: { wifi: wifi.unknown, ble: ble.unknown } },
      ...(withWindows ? { windows: this.rows.slice() } : {}),
      queue: live.queue,
      broker: { connected: gw.mqttConnected, url: safeUrl(gw.config.mqtt.url), ...(gw.brokerProblem ?? {}) },
      unparsed: gw.unparsedFrames,
      sources: gw.sources.map((s) => {
        if (tick) this.sourceFps.set(s.name, this.rates.rate(s.name, s.frames, now));
        const st = s.status(this.sourceFps.get(s.name) ?? 0);
        const silence = sourceSilence(s, gw.windowMs);
        return {
          name: st.name,
          radio: st.radio ?? 'auto',
          state: st.state,
          frames: s.frames,
          frames_per_s: st.frames_per_s,
          errors: st.errors,
          ...(st.error_code ? { error_code: st.error_code } : {}),
          ...(st.last_error ? { last_error: st.last_error } : {}),
          ...(st.last_error && s.lastFix ? { fix: s.lastFix } : {}),
          ...(st.silent_s !== undefined ? { silent_s: st.silent_s } : {}),
          ...(silence ? { silence } : {}),
        };
      }),
      ...(withChecks ? { checks: this.checks } : {}),
      viewers: { connected: this.hub.size, dropped: this.hub.dropped },
    };
  }
}
