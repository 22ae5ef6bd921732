// The gateway: capture sources -> firmware (WASM) -> one window at a time -> durable queue -> MQTT.
//
// Per window (the window clock of window.ts): the firmware draws a fresh 32-byte key from the CSPRNG
// into its own memory; at the window's end it reports counts and wipes its hashes, the counts become
// a contract message with the next `seq`, which is written to the queue (fsync) and then published.
// Windows close on time with or without frames.
//
// Clocks: live sources (capture commands, stdin) use the wall clock and a timer at each boundary;
// file replays use the capture's clock: a window closes when every source's capture time has
// passed its end, so windows follow the file however fast it is replayed. A capture clock that
// jumps forward by more than MAX_CAPTURE_GAP_MS (at most MAX_EMPTY_WINDOWS windows) skips the empty
// windows in between (logged, with the time skipped); windows are closed a few at a time between
// turns of the event loop, so a signal is always handled promptly.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createLogger as createBaseLogger } from '../scripts/lib/log.ts';
import { Firmware, type LiveCounts, type LiveStats } from '../firmware/host/firmware.ts';
import type { RecordBatch } from '../firmware/host/batch.ts';
import type { CaptureSplitter } from '../firmware/host/capture-split.ts';
import type { CorridorSettings, FirmwareWindowCounts, WindowOptions } from '../firmware/host/types.ts';
import type { CountsMessage, StatusMessage } from '../contract/index.ts';
import { formatDuration } from '../scripts/lib/duration.ts';
import { clockOf, defaultQueueDir, durations, rejectedFramesFix, type GatewayConfig } from './config.ts';
import { Publisher, safeUrl } from './publisher.ts';
import { DISCOVERY_FILE, WindowQueue } from './queue.ts';
import { createSource, FileSource, PACE_TICK_MS, type CaptureSource, type FrameSink } from './sources.ts';
import type { HttpServer } from './http.ts';
import type { GatewayPage } from './web.ts';
import { corridorOf, SKETCH_QUEUE_MAX, sketchMessage, SketchQueue, type SketchDrop } from './corridor.ts';
import { quantisedP, sketchEpsilon } from '../contract/index.ts';
import { onlineStatus, RateTracker } from './status.ts';
import { dailyBudget, privacyActive, protect, type PrivacySettings } from './privacy.ts';
import {
  CLOCK_MAX_MS,
  CLOCK_MIN_MS,
  isClockTime,
  MAX_HELD_OFF_CLOCK,
  countsMessage,
  gatewayMaxEmptyWindows,
  MAX_CAPTURE_GAP_MS,
  WindowClock,
  type ClosedWindow,
  type Identity,
  type WindowCounter as ClockCounter,
} from './window.ts';

/**
 * Wall clock: a window whose span has passed on the monotonic clock while the wall clock still puts
 * its end more than this far ahead is ended (the clock was set back); a smaller step back only
 * lengthens the window by the step.
 */
export const WALL_CLOCK_BACK_MS = 1_000;
/** A window's status waits at most this long (ms) for the broker's answer for the window. */
export const STATUS_AFTER_WINDOW_MS = 2_000;

/** Wall-clock margin behind a paced replay's clock before its windows close: a delivery tick and 250 ms to spare. */
const PACED_MARGIN_MS = PACE_TICK_MS + 250;

/** A host as it goes into a URL (an IPv6 address in brackets). */
function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

const RESOLVED: Promise<void> = Promise.resolve();

/** Windows closed at most per turn of the event loop (each is written to the queue with fsync). */
const WINDOWS_PER_TURN = 16;

/** What the gateway needs from the firmware (firmware/host/firmware.ts `Firmware`): no key, it draws its own. */
export interface WindowCounter extends ClockCounter {
  ingestBatch(batch: RecordBatch): unknown;
  /** Running counts of the open window (the page; absent in test doubles). */
  liveCounts?(): LiveCounts;
  /** Counts per channel and per dBm (the page; absent in test doubles). */
  liveStats?(): LiveStats;
  /** The module's capture splitting (absent in test doubles: the reader then parses every frame itself). */
  readonly splitter?: CaptureSplitter;
  /** Corridor groups only (Firmware.setCorridor / clearCorridor). */
  setCorridor?(c: CorridorSettings): void;
  clearCorridor?(): void;
}

/** What happened to a corridor sketch (metrics): queued in memory, acknowledged, or dropped and why. */
export type SketchEvent = 'queued' | 'published' | `dropped_${SketchDrop}`;

export interface GatewayOptions {
  config: GatewayConfig;
  /** pino logger; default: JSON to stderr at config.log.level. */
  log?: Logger;
  /** A loaded firmware instance; default: Firmware.load(). */
  firmware?: WindowCounter;
  /** Input of a stdin source (default process.stdin). */
  stdin?: NodeJS.ReadableStream;
  /** Called for every closed window once it is durably queued. */
  onWindow?: (message: CountsMessage) => void;
  /** Node process metrics on /metrics (default true; off for several gateways in one process). */
  processMetrics?: boolean;
}

export interface GatewayEvents {
  /** A window closed and is durably queued (published later, when the broker acknowledges). */
  window: [message: CountsMessage];
  /** A window was acknowledged by the broker and removed from the queue. */
  published: [seq: number];
  /** The broker refused publishing a window (MQTT 5 reason code >= 0x80); it stays queued. */
  refused: [seq: number, reasonCode: number, reason: string];
  status: [status: StatusMessage];
  /** A source changed state (running, restarting, failed, finished). */
  source: [name: string, state: string];
  /** Every source ended (files, stdin) and every window was acknowledged. */
  finished: [];
  /** A corridor sketch was queued, published or dropped. */
  sketch: [event: SketchEvent];
}

/** The gateway's own logger: base fields component, site, zone, gateway (scripts/lib/log.ts). */
export function createLogger(config: GatewayConfig): Logger {
  const g = config.gateway;
  return createBaseLogger({ component: 'gateway', base: { site: g.site, zone: g.zone, gateway: g.id }, level: config.log.level, format: config.log.format });
}

async function loadFirmware(): Promise<WindowCounter> {
  return Firmware.load();
}

export class Gateway extends EventEmitter<GatewayEvents> {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly clock: 'wall' | 'capture';
  readonly windowMs: number;
  private readonly statusMs: number;
  private readonly keepaliveS: number;
  private readonly id: Identity;
  private readonly windowOpts: WindowOptions;
  /** Small counts: applied to every window before it is queued, logged or published. */
  readonly privacy: PrivacySettings;
  private fw: WindowCounter | null;
  private queue!: WindowQueue;
  private publisher!: Publisher;
  readonly sources: CaptureSource[];
  private windows!: WindowClock;
  /** Capture clock: jumps skipped so far (logged with each one). */
  clockJumps = 0;
  /** Capture clock: time (ms) the skipped jumps passed over, in all. */
  clockSkippedMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private clockTimer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private rates = new RateTracker();
  /** Capture mode: frames waiting for their window, per source, in arrival order. */
  private pending = new Map<CaptureSource, RecordBatch[]>();
  private waiters = new Map<CaptureSource, () => void>();
  private stopping = false;
  private finishing: Promise<void> | null = null;
  /** The Home Assistant discovery configs of the latest connection, while they are being published. */
  private discovery: Promise<unknown> | null = null;
  private doneResolve!: () => void;
  /** Resolves once the gateway has stopped (sources ended and windows flushed, or stop()). */
  readonly done: Promise<void>;
  windowsClosed = 0;
  private lastSeq = 0;
  /** The corridor group this gateway publishes sketches for (null: none). */
  corridorGroup: string | null = null;
  private sketches: SketchQueue | null = null;

  constructor(private readonly opts: GatewayOptions) {
    super();
    this.config = opts.config;
    this.log = opts.log ?? createLogger(opts.config);
    this.clock = clockOf(opts.config);
    const d = durations(opts.config);
    this.windowMs = d.windowMs;
    this.statusMs = d.statusMs;
    this.keepaliveS = d.keepaliveS;
    const g = opts.config.gateway;
    this.id = { site: g.site, zone: g.zone, gateway: g.id };
    this.windowOpts = {
      ignoreFcs: g.ignore_fcs,
      ...(g.rssi_min_dbm !== undefined ? { rssiMinDbm: g.rssi_min_dbm } : {}),
      ...(opts.config.estimator?.burst_addresses !== undefined ? { burstAddresses: opts.config.estimator.burst_addresses } : {}),
    };
    const p = opts.config.privacy ?? { min_count: 0 };
    this.privacy = { minCount: p.min_count ?? 0, ...(p.epsilon !== undefined ? { epsilon: p.epsilon } : {}), windowMs: this.windowMs };
    this.fw = opts.firmware ?? null;
    this.sources = opts.config.sources.map((s) => createSource(s, this.log, opts.stdin));
    // a paced replay does not wait out a jump of the capture clock that the window clock skips
    for (const s of this.sources) if (s instanceof FileSource) s.jumpMs = (gatewayMaxEmptyWindows(this.windowMs) + 1) * this.windowMs;
    this.done = new Promise((r) => (this.doneResolve = r));
    if (opts.onWindow) this.on('window', opts.onWindow);
  }

  get queueDir(): string {
    return defaultQueueDir(this.config);
  }

  /** Queued windows that cannot be read, and the fix (a sentence for /healthz); null when none. */
  get queueUnreadable(): string | null {
    return this.queue?.unreadableProblem() ?? null;
  }

  /** How many queued windows cannot be read (the status's queue_unreadable). */
  get queueUnreadableCount(): number {
    return this.queue?.unreadableCount ?? 0;
  }

  get queueDepth(): number {
    return this.queue?.depth ?? 0;
  }

  /** Windows dropped because the queue was full (the status's queue_dropped). */
  get queueDropped(): number {
    return this.queue?.dropped ?? 0;
  }

  /** The queue folder's state (the status's queue_state). */
  get queueState(): string {
    return this.queue?.state ?? 'ok';
  }

  get mqttConnected(): boolean {
    return !!this.publisher?.connected;
  }

  /** Why the broker cannot be reached and the fix (as the log's first line of that kind says); null while connected or not tried yet. */
  get brokerProblem(): { error: string; fix: string } | null {
    return this.publisher?.connectProblem ?? null;
  }

  /**
   * Frames of the last closed window of a link type the firmware does not parse (Ethernet from
   * `tcpdump -i eth0`): /healthz and the page name them while they last, not only the log once an hour.
   */
  get unparsedFrames(): number {
    return this.lastUnparsed;
  }
  private lastUnparsed = 0;

  /** Corridor sketches waiting in memory for the broker. */
  get sketchQueueDepth(): number {
    return this.sketches?.depth ?? 0;
  }

  /** /metrics and /healthz (http.port set); null when off. */
  http: HttpServer | null = null;
  /** The live page at / (http.port set and http.page not false); null when off. */
  page: GatewayPage | null = null;

  /** Opens the queue, loads the firmware, connects (in the background) and starts the sources. */
  async start(): Promise<void> {
    this.startedAt = Date.now();
    // The corridor's secret file is read (and checked) before anything runs.
    const corridor = corridorOf(this.config);
    this.fw ??= await loadFirmware();
    if (corridor) {
      if (!this.fw.setCorridor) throw new Error('the firmware given to the gateway cannot make corridor sketches');
      // The firmware wrapper keeps its own copy of the secret; this one is zero-filled at once.
      this.fw.setCorridor({ secret: corridor.secret, group: corridor.group, epochMs: corridor.epochMs, bits: corridor.bits, p: corridor.p });
      corridor.secret.fill(0);
      this.corridorGroup = corridor.group;
      this.sketches = new SketchQueue(SKETCH_QUEUE_MAX, corridor.epochMs, (reason) => this.emit('sketch', `dropped_${reason}`));
    }
    // A taken port stops the start here (HttpPortError; the CLI names where the port was set), before anything runs.
    const http = this.config.http;
    if (http && http.port !== undefined && http.port !== null) {
      // Loaded only with a port: prom-client and the page stay out of a gateway that serves none.
      const [{ startGatewayHttp }, { GatewayPage }] = await Promise.all([import('./http.ts'), import('./web.ts')]);
      // The page (gateway/web.ts): a bad credential setting stops the start here, naming the key.
      if (http.page !== false) this.page = GatewayPage.fromConfig(this, this.config);
      this.http = await startGatewayHttp(this, http.port, http.host ?? '127.0.0.1', this.opts.processMetrics ?? true, this.page ?? undefined);
    }
    // A full disk does not stop the gateway: the queue keeps windows in memory, the status says so.
    this.queue = WindowQueue.open(this.queueDir, {
      maxWindows: this.config.queue.max_windows,
      log: this.log,
      onStateChange: () => void this.publishStatus(),
    });
    this.lastSeq = this.queue.nextSeq - 1;
    this.log.info(
      {
        // site, zone and gateway are base fields of the logger (a second copy would repeat the key)
        window_ms: this.windowMs,
        clock: this.clock,
        sources: this.sources.map((s) => s.name),
        // estimator.burst_addresses: set for how the radio listens, which the gateway cannot see
        burst_addresses: this.config.estimator.burst_addresses,
        broker: safeUrl(this.config.mqtt.url),
        queue_dir: this.queueDir,
        queued: this.queue.depth,
        queue_state: this.queue.state,
        next_seq: this.queue.nextSeq,
        ...(this.http ? { http: `${this.config.http.host}:${this.http.port}` } : {}),
        ...(this.page ? { page: this.page.access.open ? `http://${urlHost(this.config.http.host)}:${this.http!.port}/` : 'refused (see the next line)' } : {}),
        ...(privacyActive(this.privacy)
          ? {
              privacy_min_count: this.privacy.minCount,
              ...(this.privacy.epsilon !== undefined
                ? { privacy_epsilon: this.privacy.epsilon, privacy_epsilon_per_day: dailyBudget(this.windowMs, this.privacy.epsilon).perDay }
                : {}),
            }
          : {}),
        ...(corridor
          ? {
              corridor_group: corridor.group,
              corridor_epoch_s: corridor.epochMs / 1000,
              sketch_bits: corridor.bits,
              sketch_p: quantisedP(corridor.p),
              sketch_epsilon: Number(sketchEpsilon(corridor.p).toFixed(3)),
            }
          : {}),
      },
      'gateway starting',
    );
    if (this.page && !this.page.access.open) this.log.warn({ host: this.config.http.host }, this.page.access.refusal!);
    this.page?.start();
    this.publisher = new Publisher(this.config, this.queue, this.log, this.keepaliveS);
    this.publisher.sketches = this.sketches;
    this.publisher.on('sketchPublished', () => this.emit('sketch', 'published'));
    // the broker's answer for a window, either way, lets the status that waits for it go out
    const answered = (seq: number) => {
      if (this.statusAfterSeq !== null && seq >= this.statusAfterSeq) this.windowStatus();
    };
    this.publisher.on('acked', (seq) => {
      this.emit('published', seq);
      answered(seq);
    });
    this.publisher.on('refused', (seq, code, reason) => {
      this.emit('refused', seq, code, reason);
      answered(seq);
    });
    this.publisher.on('connect', () => {
      void this.publishStatus();
      // Opt-in Home Assistant discovery, again on every connection (retained: HA reads it whenever it starts).
      // Kept so that a stop right after the connection (a short replay) waits for it: shutdown().
      // Turned off, the configs it published before (listed in the queue folder) are removed.
      if (this.config.homeassistant?.enabled || existsSync(join(this.queueDir, DISCOVERY_FILE)))
        this.discovery = import('./homeassistant.ts')
          .then((ha) => ha.publishDiscovery(this.config, this.publisher, this.log, this.queueDir))
          .catch((err: unknown) => this.log.error({ err }, 'Home Assistant discovery configs not published'));
    });
    this.publisher.start();
    this.windows = new WindowClock(this.fw, {
      windowMs: this.windowMs,
      windowOptions: this.windowOpts,
      // The wall clock closes no empty windows for time the process missed (it counted nothing).
      // The capture clock closes empty windows for a quiet stretch, not for a jump of the clock.
      maxEmptyWindows: this.clock === 'wall' ? 0 : gatewayMaxEmptyWindows(this.windowMs),
      onJump: (j) => {
        this.clockJumps++;
        if (this.clock === 'wall') {
          this.log.warn({ late_ms: Date.now() - j.from }, 'clock jumped or the process stalled; the next window starts now');
          return;
        }
        this.clockSkippedMs += j.to - j.from;
        this.log.warn(
          {
            from: new Date(j.from).toISOString(),
            to: new Date(j.to).toISOString(),
            skipped: formatDuration(j.to - j.from),
            skipped_s: (j.to - j.from) / 1000,
            skipped_windows: j.skipped,
            max_gap: formatDuration(MAX_CAPTURE_GAP_MS),
            jumps: this.clockJumps,
            clock_skipped_s: this.clockSkippedMs / 1000,
          },
          'the capture clock jumps; the empty windows in between are skipped',
        );
      },
    });
    if (this.clock === 'wall') this.openWindow(Date.now(), false);
    const sink: FrameSink = {
      deliver: (src, frames) => this.deliver(src, frames),
      stateChanged: (src) => this.sourceStateChanged(src),
    };
    for (const s of this.sources) {
      if (this.clock === 'capture' && s instanceof FileSource && s.paced)
        s.onPace = () => {
          if (this.clockTimer) this.schedulePacedClock();
        };
      this.pending.set(s, []);
      s.splitter = this.fw.splitter ?? null;
      s.start(sink);
      s.finished.then(() => this.sourceFinished(s));
    }
    this.statusTimer = setInterval(() => void this.publishStatus(), this.statusMs);
    this.statusTimer.unref();
    if (this.pacedClock) this.schedulePacedClock();
  }

  /** Capture clock with a paced replay among the sources: a timer closes windows through quiet stretches (schedulePacedClock). */
  private get pacedClock(): boolean {
    return this.clock === 'capture' && this.sources.some((s) => s instanceof FileSource && s.paced);
  }

  /**
   * Paced replays: the replay's clock runs on between frames, so a window must close when that
   * clock (less the margin) passes its end even if no frame comes. One timer, set for that moment
   * (at least 10 ms, at most a minute ahead; a second while no window is open or no replay has
   * its first frame yet), instead of polling: while frames come, their deliveries close the
   * windows and the process wakes for this timer about once a window, not every second. What
   * moves that moment, a replay (re)starting its pace or a source changing state, sets it again.
   */
  private schedulePacedClock(): void {
    if (this.clockTimer) clearTimeout(this.clockTimer);
    this.clockTimer = null;
    if (this.stopping || !this.windows) return;
    let wait = 1000;
    const end = this.windows.window?.nominalEnd;
    if (end !== undefined) {
      let due = -Infinity;
      for (const s of this.sources) {
        if (!(s instanceof FileSource) || !s.paced || s.state !== 'running') continue;
        const ms = s.wallMsUntil(end + PACED_MARGIN_MS * (s.speed as number));
        if (ms !== null) due = Math.max(due, ms);
      }
      if (due > -Infinity) wait = Math.min(60_000, Math.max(10, Math.ceil(due)));
    }
    this.clockTimer = setTimeout(() => {
      this.clockTimer = null;
      if (this.stopping) return;
      void this.pump().then(() => this.schedulePacedClock());
    }, wait);
  }

  /** start() and wait until done (file and stdin sources: all frames counted and published). */
  async run(): Promise<void> {
    await this.start();
    await this.done;
  }

  // ---- windows -------------------------------------------------------------------------------

  /**
   * Sources all counting (a capture-clock source that finished is fine): else windows are cut short.
   * A capture command that has written nothing at all for 15 s (CaptureSource.mute: hung, or tcpdump
   * without -U) counts nothing, though it runs.
   */
  private sourcesOk(): boolean {
    return this.sources.every((s) => (s.state === 'running' && !s.mute) || (this.clock === 'capture' && s.state === 'finished'));
  }

  private openWindow(at: number, complete: boolean): void {
    this.windows.open(at, complete && this.sourcesOk());
    if (this.clock === 'wall') {
      this.wallOpened();
      this.scheduleClose();
    }
  }

  /**
   * Wall clock: a window's key may live as long as the window's span on the wall clock when it
   * opened (nominalEnd - start), measured on the monotonic clock from here: a wall clock set back
   * (NTP stepping a board without a real-time clock, an operator) must not keep one key, and its
   * hashes, for the time it went back.
   */
  private wallOpened(): void {
    this.openedMono = performance.now();
  }
  /**
   * Wall clock: where to end the open window now (stop, end of the sources): the wall clock's time,
   * or, when the clock was set back since the window opened, its start plus the time it counted on
   * the monotonic clock (else its interval would be empty and its counts never published).
   */
  private wallCloseAt(): number {
    const w = this.windows.window;
    return w ? Math.max(Date.now(), w.start + (performance.now() - this.openedMono)) : Date.now();
  }
  /** Wall clock: when (performance.now()) the open window was opened. */
  private openedMono = 0;

  /** Closes the open window once the clock reached `t` (see WindowClock.step); true if one closed. */
  private step(t: number): boolean {
    const closed = this.windows.step(t);
    if (!closed) return false;
    if (this.clock === 'wall') this.wallOpened();
    if (!this.sourcesOk()) this.windows.cutShort();
    this.queueWindow(closed);
    return true;
  }

  private scheduleClose(): void {
    if (this.timer) clearTimeout(this.timer);
    // Timers run on the monotonic clock: the boundary on the wall clock, or the window's span since
    // it opened, whichever comes first.
    const w = this.windows.window!;
    const delay = Math.max(0, Math.min(w.nominalEnd - Date.now(), this.openedMono + (w.nominalEnd - w.start) - performance.now()));
    this.timer = setTimeout(() => this.onBoundary(), delay);
  }

  private onBoundary(): void {
    this.timer = null;
    const w = this.windows.window;
    if (!w || this.stopping) return;
    if (this.step(Date.now())) {
      this.scheduleClose();
      return;
    }
    const counted = performance.now() - this.openedMono;
    const spanDone = counted >= w.nominalEnd - w.start;
    const behind = w.nominalEnd - Date.now();
    if (spanDone && behind > WALL_CLOCK_BACK_MS) {
      // The window has counted its whole span, yet the wall clock says it has `behind` ms to go:
      // the clock was set back. The window ends now (cut short, stamped with the span it counted)
      // and the next one, under a new key, starts at the clock's new time.
      this.clockJumps++;
      this.log.warn(
        { back_ms: Math.round(behind), counted_ms: Math.round(counted) },
        'the wall clock went back; the window ends now and the next one starts at the new time',
      );
      this.queueWindow(this.windows.close(w.start + counted, false));
      this.openWindow(Date.now(), false);
      return;
    }
    if (spanDone) {
      // set back by at most WALL_CLOCK_BACK_MS: the window ends at its boundary on the new time
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => this.onBoundary(), Math.max(0, behind));
      return;
    }
    this.scheduleClose(); // woke early: nothing closes
  }

  /**
   * The times a window is published with. On the capture clock they are its boundaries on the window
   * grid, also for a window cut short (`complete: false` says so): the first window starts at the
   * run's first frame, the first after a skipped jump at the frame after it, and the last ends just
   * after the last frame, so their own times would say, to the millisecond, when a device was heard
   * (also when k suppresses the counts). The estimate is still the mean over the part counted. On
   * the wall clock the times are the gateway's own (its start, its boundaries, its stop).
   * A window cut short whose grid end is still ahead of this host's clock (a capture replayed as
   * soon as it was written, a live command under --clock capture) ends at the gateway's own time,
   * rounded up to the second, as on the wall clock: with its grid end it claimed a time to come,
   * up to a window length ahead, and an aggregator refused it as `future` (max_ahead, 5 min) with
   * a hint to fix the clocks.
   */
  private publishedSpan(w: ClosedWindow): { start: number; end: number } {
    if (this.clock !== 'capture') return { start: w.start, end: w.end };
    const now = Math.ceil(Date.now() / 1000) * 1000;
    const ahead = w.end < w.nominalEnd && now > w.nominalStart && now < w.nominalEnd;
    return { start: w.nominalStart, end: ahead ? now : w.nominalEnd };
  }

  /** Queues a closed window's counts durably and announces it (an empty interval is not a window). */
  private queueWindow(w: ClosedWindow | null, cutShort = false): void {
    if (w) this.lastUnparsed = w.counts.unsupported;
    if (w && w.counts.unsupported > 0) this.unparsed(w.counts.unsupported);
    if (w) this.allRejected(w.counts);
    if (!w || w.end <= w.start) return; // nothing was counted in an empty interval
    if (this.clock === 'wall' && (!isClockTime(w.start) || !isClockTime(w.end))) {
      this.unstamped(w.start, w.end);
      return;
    }
    const span = this.publishedSpan(w);
    const counted = countsMessage(this.id, this.queue.nextSeq, { ...span, complete: w.complete && !cutShort }, w.counts);
    // Noise and suppression before the window is queued, logged or published (gateway/privacy.ts).
    const message = protect(counted, this.privacy);
    this.queue.append(message);
    this.lastSeq = message.seq;
    this.windowsClosed++;
    this.log.info(
      {
        seq: message.seq,
        start: message.start,
        complete: message.complete,
        wifi: message.wifi.estimate,
        ble: message.ble.estimate,
        queue_depth: this.queue.depth,
        ...(this.queue.state === 'ok' ? {} : { queue_state: this.queue.state, in_memory: this.queue.inMemory }),
      },
      'window closed',
    );
    this.emit('window', message);
    this.publisher.pump();
    // The window's corridor sketch (only the noisy bitmap left the firmware): in memory, never on disk.
    if (w.counts.sketch && this.sketches) {
      this.sketches.push(sketchMessage(this.id, span, w.counts.sketch));
      this.emit('sketch', 'queued');
      this.publisher.pumpSketches();
    }
    // Status goes out with every window, at most once a second (fast replays close many per second),
    // once the broker has answered for the window (or after STATUS_AFTER_WINDOW_MS without an answer):
    // taken at once it counted the window just handed to the broker in queue_depth, so every status
    // of a healthy gateway said 1 window waiting.
    this.statusAfterSeq = message.seq;
    if (!this.statusAfterTimer) {
      this.statusAfterTimer = setTimeout(() => this.windowStatus(), STATUS_AFTER_WINDOW_MS);
      this.statusAfterTimer.unref();
    }
  }
  private lastStatusAt = 0;
  /** The status of the last window waits for the broker's answer for this seq (null: none waits). */
  private statusAfterSeq: number | null = null;
  private statusAfterTimer: NodeJS.Timeout | null = null;

  private windowStatus(): void {
    if (this.statusAfterTimer) clearTimeout(this.statusAfterTimer);
    this.statusAfterTimer = null;
    this.statusAfterSeq = null;
    if (Date.now() - this.lastStatusAt >= 1000) void this.publishStatus();
  }
  private unstampedWindows = 0;
  private unstampedLoggedAt = -Infinity;

  /**
   * A window the wall clock puts outside the contract's years 2000-2099: the clock is not set (a
   * board without a real-time clock or fake-hwclock reads 1970 until NTP sets it). Such a window cannot be
   * stamped, so it is neither queued nor published (it was queued, then dropped at every publish as
   * not matching the contract, two error lines a window that did not say why). One warn line at the
   * first and at most once an hour after, with the fix.
   */
  private unstamped(start: number, end: number): void {
    this.unstampedWindows++;
    if (Date.now() - this.unstampedLoggedAt < 3_600_000 && this.unstampedWindows > 1) return;
    this.unstampedLoggedAt = Date.now();
    const at = Number.isFinite(end) ? new Date(end).toISOString() : String(end);
    this.log.warn(
      { clock: at, start: Number.isFinite(start) ? new Date(start).toISOString() : String(start), unstamped_windows: this.unstampedWindows },
      `the wall clock reads ${at}, outside 2000-2099: it is not set (a board without a real-time clock before NTP has set it); windows counted until it is cannot be stamped and are not queued or published. Fix the time synchronisation: timedatectl show -p NTPSynchronized --value (yes), presence doctor ("clock synchronised")`,
    );
  }

  /**
   * Frames of a link type the firmware does not parse (tcpdump on a normal network interface gives
   * Ethernet frames) are counted nowhere: one warn line says so, at the first window that had them
   * and again at most once an hour, instead of zeros published in silence. The frames are counted,
   * the link type is not named (doctor names it: `frames arriving`).
   */
  private unparsed(frames: number): void {
    const now = Date.now();
    if (now - this.unparsedWarnedAt < 3_600_000) return;
    this.unparsedWarnedAt = now;
    this.log.warn(
      {
        frames,
        fix: 'capture from the monitor-mode interface (radiotap, link type 127) or the Bluetooth adapter, not a normal network interface; presence doctor names the link type',
      },
      'frames of a link type the firmware does not parse: not counted',
    );
  }
  private unparsedWarnedAt = -Infinity;

  /**
   * A window in which a radio heard frames and rejected every one of them (a driver that flags an
   * FCS it does not update, a sniffer passing frames with a bad CRC) publishes zeros: one warn line
   * per radio says so, with the fix, at most once an hour. With privacy.min_count the line does not
   * say how many frames: the window's counts are logged only as published (gateway/privacy.ts), and
   * a radio below k publishes its frames as 0.
   */
  private allRejected(c: FirmwareWindowCounts): void {
    const now = Date.now();
    for (const radio of ['wifi', 'ble'] as const) {
      const r = c[radio];
      if (r.frames === 0 || r.rejected < r.frames || now - this.rejectedWarnedAt[radio] < 3_600_000) continue;
      this.rejectedWarnedAt[radio] = now;
      this.log.warn(
        {
          radio,
          ...(this.privacy.minCount > 0 ? {} : { frames: r.frames }),
          fix:
            radio === 'wifi'
              ? rejectedFramesFix(!!this.windowOpts.ignoreFcs)
              : 'check the sniffer and its firmware: every advertisement failed its CRC or was malformed',
        },
        'every frame of the window was rejected (bad FCS or CRC, truncated or malformed): nothing counted',
      );
    }
  }
  private rejectedWarnedAt = { wifi: -Infinity, ble: -Infinity };

  // ---- frames --------------------------------------------------------------------------------

  private deliver(src: CaptureSource, batch: RecordBatch): void | Promise<void> {
    if (this.stopping) return;
    if (this.clock === 'wall') {
      this.fw!.ingestBatch(batch);
      return;
    }
    const q = this.pending.get(src)!;
    if (!this.windows.window && !this.pumping) this.holdOffClock(q, batch);
    else q.push(batch);
    void this.pump();
    if (q.length === 0) return;
    // No window open after the pump: every frame waiting is stamped off the clock (one on it would
    // have opened a window). They wait for the first window without holding up their source, which
    // would otherwise never deliver the frame that opens it.
    if (!this.windows.window && !this.pumping) return;
    return new Promise((resolve) => this.waiters.set(src, resolve));
  }

  /** Frames stamped off the clock before any frame on it, not counted: past MAX_HELD_OFF_CLOCK held for the first window. */
  private offClockDropped = 0;

  /**
   * Queues a batch while no window is open: the frames stamped off the clock before its first frame
   * on the clock wait for the first window, at most MAX_HELD_OFF_CLOCK of them in all; the rest are
   * not counted (one warn line, and `off_clock_dropped` when the sources end).
   */
  private holdOffClock(q: RecordBatch[], batch: RecordBatch): void {
    const on = batch.firstAtOrAfter(CLOCK_MIN_MS, batch.start, CLOCK_MAX_MS);
    let held = 0;
    for (const p of this.pending.values()) for (const b of p) held += b.count;
    const room = Math.max(0, MAX_HELD_OFF_CLOCK - held);
    const drop = on - batch.start - room;
    if (drop <= 0) {
      q.push(batch);
      return;
    }
    if (room > 0) q.push(batch.slice(batch.start, batch.start + room));
    if (on < batch.end) q.push(batch.slice(on, batch.end));
    if (this.offClockDropped === 0)
      this.log.warn(
        { held: MAX_HELD_OFF_CLOCK },
        'frames stamped outside 2000-2099 before any frame on the clock: past the ones held for the first window, not counted',
      );
    this.offClockDropped += drop;
  }

  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  private pumpFinal = false;

  /**
   * Capture clock: advances until every frame that can be placed is counted and every window the
   * clock has passed is closed, yielding to the event loop every WINDOWS_PER_TURN windows (so a
   * signal or stop() is handled promptly, however far the clock moves). Stops when stopping.
   */
  private pump(final = false): Promise<void> {
    if (final) this.pumpFinal = true;
    if (this.stopping) return RESOLVED;
    if (this.pumping) {
      this.pumpAgain = true;
      return this.pumping;
    }
    // The usual case, a delivery or a tick of the clock: caught up in one turn, no promise made.
    // (A failure is a rejected promise, as from the loop below, not an exception thrown at the caller.)
    try {
      if (this.advance(this.pumpFinal)) return RESOLVED;
    } catch (err) {
      return Promise.reject(err);
    }
    const run = (async () => {
      try {
        do {
          this.pumpAgain = false;
          do await new Promise((r) => setImmediate(r));
          while (!this.stopping && !this.advance(this.pumpFinal));
        } while (this.pumpAgain && !this.stopping);
      } finally {
        this.pumping = null;
      }
    })();
    this.pumping = run;
    return run;
  }

  /**
   * One turn of the capture clock: ingests what belongs to the open window and closes windows the
   * clock has passed, at most WINDOWS_PER_TURN of them. True once caught up (sources waiting on a
   * full queue are then released), false when there is more to do.
   */
  private advance(final: boolean): boolean {
    for (let closed = 0; ; ) {
      let w = this.windows.window;
      if (!w) {
        const first = this.earliestPending();
        if (first === Infinity) {
          if (final) this.dropOffClock();
          break;
        }
        this.openWindow(first, true);
        w = this.windows.window!;
      }
      // every source's frames before the window's end, in arrival order, up to the first later
      // one (a frame stamped off the clock counts as before it: it goes into the open window)
      for (const q of this.pending.values()) {
        while (q.length) {
          const b = q[0]!;
          const n = b.firstAtOrAfter(w.nominalEnd, b.start, CLOCK_MAX_MS);
          if (n > b.start) this.fw!.ingestBatch(n === b.end ? b : b.slice(b.start, n));
          if (n < b.end) {
            q[0] = b.slice(n, b.end);
            break;
          }
          q.shift();
        }
      }
      const watermark = this.watermark(final);
      if (watermark < w.nominalEnd) break;
      if (closed++ === WINDOWS_PER_TURN) return false;
      // The clock is at the watermark, or at the next frame waiting if that is earlier.
      this.step(Math.min(watermark, this.earliestPending()));
    }
    for (const [src, resolve] of this.waiters) {
      if (this.pending.get(src)!.length === 0) {
        this.waiters.delete(src);
        resolve();
      }
    }
    return true;
  }

  /** Capture time of the earliest frame waiting for its window, on the clock (Infinity when none waits). */
  private earliestPending(): number {
    let t = Infinity;
    for (const q of this.pending.values()) {
      // usually the head; frames off the clock before the first window opened are passed over
      for (const b of q) {
        const i = b.firstAtOrAfter(CLOCK_MIN_MS, b.start, CLOCK_MAX_MS);
        if (i < b.end) {
          if (b.times[i]! < t) t = b.times[i]!;
          break;
        }
      }
    }
    return t;
  }

  /** Every source ended and no frame carried a time on the clock: no window can hold what is left. */
  private dropOffClock(): void {
    let n = 0;
    for (const q of this.pending.values()) {
      for (const b of q) n += b.count;
      q.length = 0;
    }
    if (n > 0) this.log.warn({ frames: n }, 'no frame of the capture is stamped in 2000-2099: these frames were not counted');
  }

  /** Capture time every source has reached: the least latest-timestamp among sources still going. */
  private watermark(final: boolean): number {
    let wm = Infinity;
    let anyPending = false;
    for (const s of this.sources) {
      const q = this.pending.get(s)!;
      if (q.length) anyPending = true;
      if (s.state === 'finished' || s.state === 'failed') continue;
      // A paced replay's clock runs on between frames (less a margin for frames still in flight),
      // so windows close on time through quiet stretches of the capture too.
      const clock = s instanceof FileSource && s.paced ? s.captureNow() - PACED_MARGIN_MS * (s.speed as number) : -Infinity;
      wm = Math.min(wm, Math.max(s.lastTimestampMs, clock));
    }
    if (final || wm === Infinity) return anyPending ? Infinity : -Infinity;
    return wm;
  }

  /** Capture commands that were mute (CaptureSource.mute) when their state last changed. */
  private readonly muted = new Set<CaptureSource>();

  private sourceStateChanged(src: CaptureSource): void {
    this.log.info({ source: src.name, state: src.state, errors: src.errors }, 'source state');
    this.emit('source', src.name, src.state);
    const wasMute = this.muted.delete(src);
    if (src.mute) this.muted.add(src);
    if (src.state === 'restarting' || src.state === 'failed' || src.mute) {
      this.windows?.cutShort();
      void this.publishStatus();
    } else if (wasMute) void this.publishStatus(); // it writes now: the retained status no longer says silent_s
    if (this.clock === 'capture') void this.pump();
    if (this.pacedClock && this.clockTimer) this.schedulePacedClock();
  }

  private sourceFinished(src: CaptureSource): void {
    if (this.stopping) return;
    if (this.clock === 'capture') void this.pump();
    if (this.sources.every((s) => s.state === 'finished' || s.state === 'failed')) void this.finish();
  }

  /** Every source ended: close the last window (cut short), flush the queue, stop. */
  private finish(): Promise<void> {
    this.finishing ??= (async () => {
      if (this.clock === 'capture') {
        await this.pump(true);
        if (this.stopping) return; // stop() closes the window
        const last = Math.max(...this.sources.map((s) => s.lastTimestampMs));
        this.queueWindow(this.windows.close(Number.isFinite(last) ? Math.floor(last) + 1 : -Infinity), true);
      } else this.queueWindow(this.windows.close(this.wallCloseAt()), true);
      if (this.timer) clearTimeout(this.timer);
      if (this.clockTimer) clearTimeout(this.clockTimer);
      this.log.info(
        {
          windows: this.windowsClosed,
          queue_depth: this.queue.depth,
          clock_jumps: this.clockJumps,
          clock_skipped_s: this.clockSkippedMs / 1000,
          off_clock_frames: this.sources.reduce((n, s) => n + s.offClockFrames, 0),
          off_clock_dropped: this.offClockDropped,
        },
        'sources ended; publishing queued windows',
      );
      await this.publishStatus();
      await this.publisher.flush();
      await this.shutdown();
      this.emit('finished');
    })();
    return this.finishing;
  }

  /**
   * Stops: sources end, the open window is closed as incomplete and queued, queued windows get up
   * to `flushMs` to be acknowledged (the rest stays on disk for the next start), offline status.
   */
  async stop(flushMs = 3000): Promise<void> {
    if (this.stopping) return this.done;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    for (const [, resolve] of this.waiters) resolve();
    this.waiters.clear();
    await Promise.all(this.sources.map((s) => s.stop()));
    if (this.windows?.window && this.queue) {
      if (this.clock === 'capture') {
        // Where the replay's clock stands: the last frame, or further on during a quiet stretch.
        const last = Math.max(...this.sources.map((s) => Math.max(s.lastTimestampMs, s instanceof FileSource ? s.captureNow() : -Infinity)));
        this.queueWindow(this.windows.close(Number.isFinite(last) ? Math.floor(last) + 1 : -Infinity), true);
      } else this.queueWindow(this.windows.close(this.wallCloseAt()), true);
    }
    if (this.publisher) {
      // Waiting for acknowledgements only makes sense with a broker connection.
      const flushed = await this.publisher.flush(this.publisher.connected ? flushMs : 0);
      if (!flushed) {
        // Windows held in memory (a full or failing queue folder) are not "sent after the next start":
        // the queue tries the folder once more at close and says which are lost.
        const held = this.queue.inMemory;
        this.log.warn(
          { queue_depth: this.queue.depth, ...(held ? { in_memory: held, queue_state: this.queue.state } : {}) },
          held
            ? `stopping with windows not yet acknowledged; those on disk are sent after the next start, the ${held} held in memory only (queue folder ${this.queue.state}) are lost unless the folder takes them now`
            : 'stopping with windows not yet acknowledged; they are sent after the next start',
        );
      }
    }
    await this.shutdown();
  }

  private shuttingDown = false;
  private async shutdown(): Promise<void> {
    if (this.shuttingDown) return this.done;
    this.shuttingDown = true;
    this.stopping = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.statusAfterTimer) clearTimeout(this.statusAfterTimer);
    if (this.clockTimer) clearTimeout(this.clockTimer);
    if (this.timer) clearTimeout(this.timer);
    // Discovery configs still on their way (the connection came just before the end) go out first.
    if (this.discovery) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.discovery, new Promise((r) => (t = setTimeout(r, 2000)))]);
      clearTimeout(t);
    }
    await this.publisher?.stop();
    this.page?.stop();
    await this.http?.close();
    this.queue?.close();
    // The epoch key leaves the firmware's memory and the wrapper's copy of the secret is zero-filled.
    this.sketches?.clear();
    if (this.corridorGroup && this.fw?.clearCorridor && !this.windows?.window) this.fw.clearCorridor();
    this.log.info({ windows: this.windowsClosed, last_seq: this.lastSeq, queue_depth: this.queue?.depth ?? 0 }, 'gateway stopped');
    this.doneResolve();
  }

  // ---- status --------------------------------------------------------------------------------

  /**
   * What the page shows of the open window and the queue, read now: counts only (gateway/web.ts).
   * Unlike status(), reading it changes nothing (no rate is reset).
   */
  live(): {
    window: { start: number; end: number } | null;
    counts: LiveCounts | null;
    stats: LiveStats | null;
    queue: { depth: number; state: string; dropped: number; refused: number };
    lastSeq: number;
  } {
    const w = this.windows?.window;
    const open = !!w && !this.shuttingDown;
    return {
      window: open ? { start: w.start, end: w.nominalEnd } : null,
      counts: open ? (this.fw?.liveCounts?.() ?? null) : null,
      stats: open || this.fw?.liveStats ? (this.fw?.liveStats?.() ?? null) : null,
      queue: { depth: this.queue?.depth ?? 0, state: this.queue?.state ?? 'ok', dropped: this.queue?.dropped ?? 0, refused: this.publisher?.refused ?? 0 },
      lastSeq: this.lastSeq,
    };
  }

  status(): StatusMessage {
    const now = Date.now();
    return onlineStatus({
      ...this.id,
      startedAt: this.startedAt,
      now,
      queueDepth: this.queue?.depth ?? 0,
      queueDropped: this.queue?.dropped ?? 0,
      queueState: this.queue?.state ?? 'ok',
      queueUnreadable: this.queue?.unreadableCount ?? 0,
      publishRefused: this.publisher?.refused ?? 0,
      windows: this.windowsClosed,
      lastSeq: this.lastSeq,
      sources: this.sources.map((s) => s.status(this.rates.rate(s.name, s.frames, now))),
    });
  }

  private async publishStatus(): Promise<void> {
    if (!this.publisher || this.shuttingDown) return;
    const s = this.status();
    this.lastStatusAt = Date.now();
    this.emit('status', s);
    await this.publisher.publishStatus(s);
  }
}
