// Windows and the clock, for every part that counts: the gateway (wall clock when live, the
// capture's own clock when replaying a file), `presence replay` and the simulator's evaluation.
// Windows are aligned to multiples of the window length since the Unix epoch. `WindowClock` opens
// and closes them on the firmware as the clock advances (the firmware draws each window's key),
// fills short gaps of the clock with empty windows and skips long ones (a capture clock that jumps),
// and reports windows cut short. It never reads a clock itself: callers tell it the time.
import { CONTRACT_VERSION, type CountsMessage } from '../contract/index.ts';
import type { FirmwareWindowCounts, WindowOptions } from '../firmware/host/types.ts';

/** Empty windows closed at most for one jump of the clock; a larger jump skips them (presence replay; the gateway: also gatewayMaxEmptyWindows). */
export const MAX_EMPTY_WINDOWS = 10_000;

/**
 * The gateway on the capture clock: a forward jump of the clock by more than this (ms, past the open
 * window's end) is a clock jump, not a quiet stretch: the open window closes, the next one starts at
 * the new time (cut short), and no empty windows are queued or published for the gap. Each empty
 * window is a file written with fsync and a publish: a capture of a few hundred bytes whose frames
 * lie 9,999 windows apart queued and published some 190,000 of them.
 */
export const MAX_CAPTURE_GAP_MS = 3_600_000;

/** Empty windows the gateway closes at most for one jump of its capture clock: as many as MAX_CAPTURE_GAP_MS holds, at most MAX_EMPTY_WINDOWS. */
export function gatewayMaxEmptyWindows(windowMs: number): number {
  return Math.min(MAX_EMPTY_WINDOWS, Math.floor(MAX_CAPTURE_GAP_MS / windowMs));
}

/**
 * What a capture clock can read: the contract's years 2000-2099. A frame stamped outside (a 1970
 * timestamp, a pcapng simple packet block before any timestamped packet, which gets time 0) does not
 * move the gateway's capture clock: it is counted in the window open when it comes.
 */
export const CLOCK_MIN_MS = Date.UTC(2000, 0, 1);
/**
 * Frames stamped outside the clock that come before any frame on it wait for the first window, at
 * most this many (the gateway's memory); more before it are not counted (a warn line says so).
 */
export const MAX_HELD_OFF_CLOCK = 16_384;
export const CLOCK_MAX_MS = Date.UTC(2100, 0, 1);
export function isClockTime(t: number): boolean {
  return t >= CLOCK_MIN_MS && t < CLOCK_MAX_MS;
}

/** Start of the aligned window containing t. */
export function alignDown(t: number, windowMs: number): number {
  return Math.floor(t / windowMs) * windowMs;
}

/** One window being counted. Times in ms since the epoch (on whichever clock drives it). */
export class OpenWindow {
  /** Aligned boundaries (for a window length of Infinity: from `start` on, without end). */
  readonly nominalStart: number;
  readonly nominalEnd: number;
  /** False once anything cut the window short (start-up, source outage, shutdown). */
  complete: boolean;

  /** `start` is when counting began; a window opened after its boundary is incomplete. */
  constructor(
    readonly start: number,
    windowMs: number,
    complete = true,
  ) {
    this.nominalStart = windowMs === Infinity ? start : alignDown(start, windowMs);
    this.nominalEnd = this.nominalStart + windowMs;
    this.complete = complete && start === this.nominalStart;
  }

  /** The interval counted when closed at `at` (clipped to the boundary); null when it is empty. */
  span(at: number = this.nominalEnd): { start: number; end: number; complete: boolean } | null {
    const start = Math.floor(this.start);
    const end = Math.min(this.nominalEnd, Math.floor(at));
    if (end <= start) return null;
    return { start, end, complete: this.complete && end === this.nominalEnd };
  }
}

/**
 * What the clock needs from the firmware (`Firmware` in firmware/host/firmware.ts). There is no
 * key in it: `beginWindow` draws each window's key itself, so no caller can forget or reuse one.
 */
export interface WindowCounter {
  beginWindow(opts?: WindowOptions): void;
  endWindow(): FirmwareWindowCounts;
}

/** A window the clock closed, with its counts. */
export interface ClosedWindow {
  /** Aligned boundaries. */
  nominalStart: number;
  nominalEnd: number;
  /** The interval counted (whole ms): when counting began to when it ended, within the boundaries. Empty when end <= start. */
  start: number;
  end: number;
  /** True when the whole aligned window was counted without interruption. */
  complete: boolean;
  counts: FirmwareWindowCounts;
}

/** The clock jumped past more empty windows than `maxEmptyWindows`: they were skipped. */
export interface ClockJump {
  /** End of the last window counted before the jump. */
  from: number;
  /** Start of the window containing the new time. */
  to: number;
  /** Empty windows skipped. */
  skipped: number;
}

export interface WindowClockOptions {
  /** Window length in ms; 'all' is one window from open() to close(). */
  windowMs: number | 'all';
  /** Passed to the firmware's beginWindow for every window. */
  windowOptions?: WindowOptions;
  /**
   * Where the input is known to end (ms), when it is: a window reaching past it tells the firmware
   * this end as its span's, so the estimate of a window the input cuts short is the mean over the
   * part counted, not over the whole window (the simulator's evaluation knows its run's end).
   */
  inputEndMs?: number;
  /**
   * When the clock moves on by more than a window, the empty windows in between are closed (each
   * a count of zero) up to this many; a larger jump skips them and the next window starts at the
   * new time, cut short. Default MAX_EMPTY_WINDOWS (capture clocks). 0 suits the wall clock: a
   * process that stalled counted nothing, so no zeros are claimed for the time it missed.
   */
  maxEmptyWindows?: number;
  /** Told about every skipped jump (log it). */
  onJump?: (jump: ClockJump) => void;
}

/**
 * The one window clock. Open a window, feed frames to the firmware, and tell the clock the time
 * with step(t): it closes the open window once t reaches its end and opens the next one, one
 * window per call (callers loop, and can stop between windows). close() ends a window early.
 */
export class WindowClock {
  readonly windowMs: number;
  private readonly maxEmpty: number;
  private win: OpenWindow | null = null;

  constructor(
    private readonly counter: WindowCounter,
    private readonly opts: WindowClockOptions,
  ) {
    const ms = opts.windowMs;
    if (ms !== 'all' && !(Number.isFinite(ms) && ms > 0)) throw new RangeError(`window clock: window length must be a positive number of ms, got ${ms}`);
    this.windowMs = ms === 'all' ? Infinity : ms;
    this.maxEmpty = opts.maxEmptyWindows ?? MAX_EMPTY_WINDOWS;
  }

  /** The open window, or null. */
  get window(): OpenWindow | null {
    return this.win;
  }

  /** Where the open window ends: frames from here on belong to a later window (-Infinity when none is open). */
  get end(): number {
    return this.win ? this.win.nominalEnd : -Infinity;
  }

  /**
   * Opens the window containing `at`, counting from `at`: complete only when `at` is its boundary
   * and `complete` is not false. The firmware draws the window's key.
   */
  open(at: number, complete = true): OpenWindow {
    if (this.win) throw new Error('window clock: a window is already open');
    if (!Number.isFinite(at)) throw new RangeError(`window clock: cannot open a window at ${at}`);
    const win = new OpenWindow(at, this.windowMs, complete);
    // A finite window tells the firmware its span, so the estimator's sub-window grid and divisor
    // follow the window, not the first and last frame heard in it.
    const inputEnd = this.opts.inputEndMs ?? Infinity;
    const span = Number.isFinite(win.nominalEnd) ? { startMs: at, endMs: inputEnd > at ? Math.min(win.nominalEnd, inputEnd) : win.nominalEnd } : {};
    this.counter.beginWindow({ ...this.opts.windowOptions, ...span });
    this.win = win;
    return win;
  }

  /** Marks the open window as cut short (a source restarting or failing during it). */
  cutShort(): void {
    if (this.win) this.win.complete = false;
  }

  /**
   * The clock has reached `t`. When t is at or past the open window's end, that window is closed
   * (on time) and returned, and the next one is opened: the one right after it, or, when more
   * than `maxEmptyWindows` empty windows lie between, the one containing t (cut short; the jump is
   * reported). Returns null while t is inside the open window. One window per call.
   */
  step(t: number): ClosedWindow | null {
    const w = this.win;
    if (!w || !(t >= w.nominalEnd)) return null;
    const closed = this.end_(w, w.nominalEnd);
    const to = alignDown(t, this.windowMs);
    const skipped = Math.round((to - w.nominalEnd) / this.windowMs);
    if (skipped > this.maxEmpty) {
      this.opts.onJump?.({ from: w.nominalEnd, to, skipped });
      this.open(t, false);
    } else this.open(w.nominalEnd, true);
    return closed;
  }

  /**
   * Ends the open window at `at` (clipped to its end; default: its end), cut short when `at` is
   * before the end or `complete` is false. Returns null when no window was open. The interval
   * may be empty (end <= start): the firmware window is ended and wiped all the same.
   */
  close(at: number = Infinity, complete = true): ClosedWindow | null {
    const w = this.win;
    if (!w) return null;
    const closed = this.end_(w, Math.min(at, w.nominalEnd));
    if (!complete) closed.complete = false;
    return closed;
  }

  private end_(w: OpenWindow, at: number): ClosedWindow {
    this.win = null;
    const counts = this.counter.endWindow();
    const start = Math.floor(w.start);
    const end = Math.floor(at);
    return { nominalStart: w.nominalStart, nominalEnd: w.nominalEnd, start, end, complete: w.complete && end === w.nominalEnd, counts };
  }
}

export interface Identity {
  site: string;
  zone: string;
  gateway: string;
}

/** The contract's counts message for one closed window. Only counts: nothing per device. */
export function countsMessage(id: Identity, seq: number, span: { start: number; end: number; complete: boolean }, c: FirmwareWindowCounts): CountsMessage {
  return {
    v: CONTRACT_VERSION,
    site: id.site,
    zone: id.zone,
    gateway: id.gateway,
    seq,
    start: new Date(span.start).toISOString(),
    end: new Date(span.end).toISOString(),
    complete: span.complete,
    wifi: {
      frames: c.wifi.frames,
      devices: c.wifi.devices,
      estimate: c.wifi.estimate,
      probes: c.wifi.accepted,
      rejected: c.wifi.rejected,
      weak: c.wifi.weak,
      exact: c.wifi.exact,
    },
    ble: {
      frames: c.ble.frames,
      devices: c.ble.devices,
      estimate: c.ble.estimate,
      adverts: c.ble.accepted,
      rejected: c.ble.rejected,
      weak: c.ble.weak,
      exact: c.ble.exact,
    },
  };
}
