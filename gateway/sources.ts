// Capture sources: where frames come from. Each source reads a pcap/pcapng byte stream with the
// capture reader and hands frame batches to a sink (the gateway), packed as firmware records (one
// RecordBatch per chunk read, not one object per frame):
//   - CommandSource: a capture command's stdout (tcpdump / dumpcap writing pcap to `-`), restarted
//     with exponential backoff whenever it exits or writes something that is not a capture;
//   - FileSource: a capture file, replayed in real time, N times faster, or as fast as possible;
//   - StdinSource: pcap on standard input (`--source stdin`, `pcap:-`).
// A source never logs frame contents. What it publishes of a failure is a fixed code and a fixed
// sentence (contract lastErrorText: no text of the capture tool at all). The log gets what went
// wrong and where as fields that hold no byte of a frame (failureFields: the reader's kind of damage
// and byte offset, the frames read before it, the configured path or program, an errno code); only
// text from outside (a capture tool's stderr, an unexpected error's message) goes through the
// contract's redactFreeText (every token that could hold an address replaced by `<redacted>`). A
// capture command runs without the gateway's secrets in its environment (captureEnv).
//
// A capture command never outlives the gateway (spawnCapture): it leads a process group of its
// own, with a watcher in that group that kills the whole group once the gateway is gone (also
// after kill -9), and stopping ends the whole group (SIGTERM, SIGKILL 3 s later).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  fstatSync,
  mkdtempSync,
  open as openCb,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { RecordBatch } from '../firmware/host/batch.ts';
import type { CaptureSplitter } from '../firmware/host/capture-split.ts';
import { CaptureFormatError, CaptureParser, captureDamageFix, commandDamageFix, fileChunks, readCaptureRecords } from './capture/pcap.ts';
import { captureFix, configuredNames, headline, parseCaptureCommand, shownName } from './capture-fix.ts';
import { lastErrorText, redactFreeText, type SourceErrorCode, type SourceStatus } from '../contract/index.ts';
import type { CommandSourceConfig, FileSourceConfig, Radio, SourceConfig, Speed, StdinSourceConfig } from './config.ts';
import { parseDuration } from './config.ts';
import { CLOCK_MAX_MS, CLOCK_MIN_MS } from './window.ts';
import { holdsUrlCredentials } from '../scripts/lib/secrets.ts';

export type SourceState = SourceStatus['state'];

export interface FrameSink {
  /** A batch of frames in capture order. The returned promise (if any) is back-pressure: the source waits for it. */
  deliver(source: CaptureSource, batch: RecordBatch): void | Promise<void>;
  /** The source's state changed (running, restarting, failed, finished). */
  stateChanged(source: CaptureSource): void;
}

export abstract class CaptureSource {
  state: SourceState = 'running';
  /** Frames delivered since start. */
  frames = 0;
  errors = 0;
  /** The last failure: a fixed code and its fixed sentence (contract lastErrorText). */
  lastError: string | undefined;
  lastErrorCode: SourceErrorCode | undefined;
  /** What to do about the last failure of a capture command (captureFix: a fixed sentence naming only the configured program and interface), for /healthz. */
  lastFix: string | undefined;
  /** Largest capture timestamp delivered so far (ms) within the clock's range (window.ts isClockTime), -Infinity before the first. */
  lastTimestampMs = -Infinity;
  /** Frames delivered whose capture time is outside the clock's range (they do not move the clock). */
  offClockFrames = 0;
  /** Records cut because the capture tool was killed in the middle of them and began again inside them (CaptureParser.onCut). */
  cutRecords = 0;

  /** A record cut by a restarted capture tool: counted, and logged the first time only. */
  protected noteCut = (offset: number, read: boolean): void => {
    this.cutRecords++;
    if (this.cutRecords === 1)
      this.log.warn(
        { source: this.name, offset },
        read
          ? 'capture began again in the last bytes of a record (its writer was killed in the middle of it and restarted): the cut record had been read as one frame, the frames after it are read; later ones are counted, not logged'
          : 'capture began again inside a record (its writer was killed in the middle of it and restarted): the cut record was dropped, the frames after it are read; later ones are counted, not logged',
      );
  };
  protected stopped = false;
  protected sink: FrameSink | null = null;
  /** The firmware's capture splitting, when the gateway's firmware has it (set before start()): the reader hands it whole runs of records. */
  splitter: CaptureSplitter | null = null;
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(
    readonly name: string,
    readonly radio: Radio | undefined,
    protected readonly log: Logger,
  ) {
    this.finished = new Promise((r) => (this.resolveFinished = r));
  }

  /** True for sources that end on their own (files, stdin); false for capture commands. */
  abstract readonly ends: boolean;

  private started = false;

  start(sink: FrameSink): void {
    this.started = true;
    this.sink = sink;
    this.run()
      .catch((err) => {
        if (!this.stopped) this.fail(err as Error); // a stream torn down by stop() is no failure
      })
      .finally(() => {
        if (this.state === 'running' || this.state === 'restarting') this.setState('finished');
        this.resolveFinished();
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (!this.started) return;
    await this.halt();
    await this.finished;
  }

  /** Where the source reads from, for the log: operator-given configuration only. */
  protected where(): Record<string, string> {
    return {};
  }

  protected abstract run(): Promise<void>;
  protected async halt(): Promise<void> {}

  protected setState(state: SourceState): void {
    if (this.state === state) return;
    this.state = state;
    this.sink?.stateChanged(this);
  }

  private pipeNoted = false;
  /**
   * Logs once per source when the pipe it reads (a capture command's FIFO, a piped stdin) holds
   * less than PIPE_BYTES: the gateway then reads it more often (64 KiB: a short tick; less, over
   * the user's pipe quota, or not known: on every write), which costs CPU; `presence doctor` says
   * what to fix. `bytes` null: not known (a piped stdin without perl, `pipe_bytes: null`).
   */
  protected notePipe(bytes: number | null): void {
    if ((bytes !== null && bytes >= PIPE_BYTES) || this.pipeNoted) return;
    this.pipeNoted = true;
    this.log.warn(
      { source: this.name, pipe_bytes: bytes, read: bytes === null || bytes < PIPE_DEFAULT_BYTES ? 'every_write' : 'short_tick' },
      'capture pipe not enlarged to 1 MiB (no perl, or over the pipe quota): read more often, at a higher CPU cost (presence doctor)',
    );
  }

  protected fail(err: Error): void {
    this.errors++;
    this.lastErrorCode = failureCode(err);
    this.lastError = lastErrorText(this.lastErrorCode);
    this.log.error(
      {
        source: this.name,
        ...this.where(),
        code: this.lastErrorCode,
        ...failureFields(err),
        frames_before: this.frames,
        ...(err instanceof CaptureFormatError ? { fix: captureDamageFix(err.damage, this.frames) } : {}),
      },
      'source failed',
    );
    this.setState('failed');
  }

  protected async deliver(batch: RecordBatch): Promise<void> {
    await this.deliverNow(batch);
  }

  /** deliver() without an async layer of its own: the sink's back-pressure promise, if it returned one. */
  protected deliverNow(batch: RecordBatch): void | Promise<void> {
    if (batch.count === 0 || this.stopped) return;
    this.frames += batch.count;
    const { max: latest, outside: off } = batch.span(CLOCK_MIN_MS, CLOCK_MAX_MS);
    if (latest > this.lastTimestampMs) this.lastTimestampMs = latest;
    if (off > 0) {
      if (this.offClockFrames === 0)
        this.log.warn(
          { source: this.name, frames: off },
          'frames stamped outside 2000-2099: counted in the window open when they come, the clock ignores their time',
        );
      this.offClockFrames += off;
    }
    return this.sink!.deliver(this, batch);
  }

  /**
   * How long the running capture command has been silent, for /healthz and the page (gateway/http.ts
   * sourceSilence): `bytes` it wrote since it started (0: not even a capture file header), `silentMs`
   * since its last frame (since it started when none came). Null for sources other than capture
   * commands and while no command runs (waiting to restart, stopped).
   */
  silence(_nowMs = performance.now()): { bytes: number; silentMs: number } | null {
    return null;
  }

  /**
   * True while the running capture command has written no byte, not even a capture file header,
   * for NO_OUTPUT_MS since it started: it counts nothing, so the gateway cuts its windows short and
   * its status gives the source silent_s.
   */
  get mute(): boolean {
    return false;
  }

  status(framesPerS: number, nowMs = performance.now()): SourceStatus {
    // Only while mute (a capture command that has written no byte at all for NO_OUTPUT_MS): a header,
    // then no frame, is what a quiet site looks like, and is not said here.
    const silent = this.mute ? this.silence(nowMs) : null;
    return {
      name: this.name,
      ...(this.radio ? { radio: this.radio } : {}),
      state: this.state,
      frames_per_s: Math.round(framesPerS * 10) / 10,
      frames: this.frames,
      errors: this.errors,
      ...(this.lastErrorCode ? { error_code: this.lastErrorCode } : {}),
      ...(this.lastError ? { last_error: this.lastError } : {}),
      ...(silent ? { silent_s: Math.floor(silent.silentMs / 1000) } : {}),
    };
  }
}

/** Replays a capture file; windows then follow the capture's clock. */
export class FileSource extends CaptureSource {
  readonly ends = true;
  constructor(
    private readonly cfg: Pick<FileSourceConfig, 'name' | 'radio' | 'path' | 'speed'>,
    log: Logger,
  ) {
    super(cfg.name, cfg.radio, log);
  }

  protected where(): Record<string, string> {
    return { path: this.cfg.path };
  }

  /** Paced replays: the capture time the replay has reached now (-Infinity before the first frame or at max speed). */
  captureNow(): number {
    return this.clock ? this.clock.ts0 + (performance.now() - this.clock.wall0) * (this.cfg.speed as number) : -Infinity;
  }
  private clock: { wall0: number; ts0: number } | null = null;
  /** A forward jump of the capture clock larger than this is not waited out (set by the gateway: the gap its window clock skips). */
  jumpMs = Infinity;
  /** Paced replays: wall-clock ms until the replay's clock reaches capture time t (null before the first frame or at max speed). */
  wallMsUntil(t: number): number | null {
    if (!this.clock || !this.paced) return null;
    return this.clock.wall0 + (t - this.clock.ts0) / (this.cfg.speed as number) - performance.now();
  }
  get paced(): boolean {
    return this.cfg.speed !== 'max';
  }
  get speed(): Speed {
    return this.cfg.speed;
  }

  /** Called when the replay's pace (re)starts: its clock moved (set by the gateway, to re-arm its window timer). */
  onPace: (() => void) | null = null;

  protected async run(): Promise<void> {
    const pace = pacer(
      this.cfg.speed,
      (wall0, ts0) => {
        this.clock = { wall0, ts0 };
        this.onPace?.();
      },
      this.abort.signal,
      this.jumpMs,
    );
    let chunks: AsyncIterable<Uint8Array>;
    const kind = fileKind(this.cfg.path);
    if (kind === 'fifo') {
      const fd = await openFifoForReading(this.cfg.path, this.abort.signal);
      if (fd === null) return; // stopped before a writer came
      this.pipe = tickedPipe(fd, undefined, null);
      chunks = this.pipe.chunks;
    } else if (kind === 'device') chunks = deviceChunks(this.cfg.path, this.abort.signal);
    else chunks = fileChunks(this.cfg.path);
    for await (const batch of readCaptureRecords(chunks, this.cfg.path, this.splitter, this.noteCut)) {
      if (this.stopped) break;
      await pace(batch, (b) => this.deliver(b));
      if (this.stopped) break;
    }
  }

  private readonly abort = new AbortController();
  /** A FIFO's read end, read without the thread pool (tickedPipe), so a stop ends a read that waits for its writer. */
  private pipe: TickedPipe | null = null;

  protected async halt(): Promise<void> {
    this.abort.abort(); // ends a paced wait, and the wait for a FIFO's first writer; the read loop stops at its next batch
    this.pipe?.destroy(); // a FIFO whose writer is quiet: no next batch would come
  }
}

/** A FIFO (named pipe), a character device, or anything else (a file; opening it says what is wrong). */
function fileKind(path: string): 'fifo' | 'device' | 'other' {
  try {
    const st = statSync(path);
    return st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'device' : 'other';
  } catch {
    return 'other';
  }
}

/** How long a device source waits before it reads again after a read found nothing. */
export const DEVICE_POLL_MS = 50;

/**
 * A character device's bytes (a serial sniffer's tty, say), read without libuv's thread pool:
 * opened non-blocking and read on the event loop, again after DEVICE_POLL_MS when a read finds
 * nothing (EAGAIN), until its end (a read of 0) or `signal` aborts. Read in the pool (fileChunks),
 * a thread waited in read(2) while the device was quiet and held the process's exit: a gateway
 * given a quiet tty logged 'stopping' on SIGTERM and never stopped, not even on a second signal.
 * Each chunk is valid until the next one is asked for.
 */
export async function* deviceChunks(path: string, signal: AbortSignal, pollMs = DEVICE_POLL_MS): AsyncGenerator<Uint8Array> {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  const buf = Buffer.allocUnsafe(256 * 1024);
  let wake: (() => void) | null = null;
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    while (!signal.aborted) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, pollMs);
          wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wake = null;
        continue;
      }
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    closeSync(fd);
  }
}

/**
 * Opens a FIFO's read end once a writer has opened it (open(2) waits for one, in a thread of libuv's
 * pool) and returns its descriptor, or null when `signal` aborted the wait. A read of the FIFO in
 * the pool (fileChunks) waited there too, for as long as its writer was quiet, and a thread of the
 * pool waiting in open(2) or read(2) holds the process's exit: a gateway reading a FIFO with no
 * writer, or a quiet one, logged 'stopping' on SIGTERM and never stopped, not even on a second
 * signal (process.exit), so its open window was never queued. The read end is read with tickedPipe
 * (the event loop watches it); the wait for a writer is ended by opening the FIFO for writing here
 * (non-blocking: it works once the open is waiting, so it is tried until the open returns) and
 * closing it at once, which ends no one's capture (nothing is written).
 */
export async function openFifoForReading(path: string, signal: AbortSignal): Promise<number | null> {
  const opening = new Promise<number>((resolve, reject) => openCb(path, fsConstants.O_RDONLY, (err, fd) => (err ? reject(err) : resolve(fd))));
  let timer: NodeJS.Timeout | null = null;
  const wake = () => {
    try {
      closeSync(openSync(path, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
    } catch {
      timer = setTimeout(wake, 20); // ENXIO: the open is not waiting yet
    }
  };
  signal.addEventListener('abort', wake, { once: true });
  if (signal.aborted) wake();
  try {
    const fd = await opening;
    if (!signal.aborted) return fd;
    closeSync(fd);
    return null;
  } finally {
    signal.removeEventListener('abort', wake);
    if (timer) clearTimeout(timer);
  }
}

/**
 * Wall time between deliveries of a paced replay: it hands on what is due every PACE_TICK_MS (as a
 * capture tool writing in blocks does), not frame by frame, so the event loop wakes ~4 times a
 * second whatever the frame rate. Each wake-up costs the process about 0.1 ms of CPU on a small
 * machine (timers, the event loop, promises, the kernel) whatever it carries: at 10,000 frames/s,
 * 250 ms instead of 100 ms took the paced gateway from about 5 to 3.5 ms of CPU a second (bench
 * `gateway`). The gateway's margin behind a paced clock (PACED_MARGIN_MS) is larger than a tick,
 * so no frame arrives after its window closed.
 */
export const PACE_TICK_MS = 250;

/**
 * Paces batches of frames to a replay speed: frame i is delivered (t_i - t_0) / speed after the first
 * one. 'max' delivers at once (yielding to the event loop between batches). A frame stamped off the
 * clock (window.ts isClockTime) is delivered at once; a jump forward by more than `jumpMs` (the gap
 * the gateway's window clock skips) restarts the pace at the new time instead of waiting it out.
 */
export function pacer(
  speed: Speed,
  onStart?: (wall0: number, ts0: number) => void,
  signal?: AbortSignal,
  jumpMs = Infinity,
): (batch: RecordBatch, deliver: (batch: RecordBatch) => Promise<void>) => Promise<void> {
  if (speed === 'max') {
    return async (batch, deliver) => {
      await deliver(batch);
      await new Promise((r) => setImmediate(r));
    };
  }
  let wall0 = -1;
  let ts0 = 0;
  let prev = -Infinity; // the latest capture time paced so far
  // One abort listener for the whole replay rather than one per wait (timers/promises' sleep with
  // a signal adds and removes one every time: four times a second). false: stopped.
  let wake: (() => void) | null = null;
  signal?.addEventListener('abort', () => wake?.(), { once: true });
  const wait = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (signal?.aborted) return resolve(false);
      const timer = setTimeout(() => {
        wake = null;
        resolve(true);
      }, ms);
      wake = () => {
        clearTimeout(timer);
        wake = null;
        resolve(false);
      };
    });
  return async (batch, deliver) => {
    const times = batch.times;
    let from = batch.start;
    let limit = -Infinity; // frames up to this capture time are due
    for (let i = batch.start; i < batch.end; i++) {
      // skip what is due already (a time off the clock is no reading: due now); a sorted batch by binary search
      i = batch.firstAfter(limit, i, CLOCK_MIN_MS, CLOCK_MAX_MS);
      if (i === batch.end) break;
      const ts = times[i]!;
      const now = performance.now();
      // The first frame, or a jump of the capture clock that the gateway skips: (re)start the pace here.
      if (wall0 < 0 || ts - prev > jumpMs) {
        wall0 = now;
        ts0 = ts;
        onStart?.(wall0, ts0);
      }
      if (ts > prev) prev = ts;
      limit = ts0 + (now - wall0) * speed;
      if (ts <= limit) continue;
      if (i > from) await deliver(batch.slice(from, i));
      from = i;
      if (!(await wait(Math.max(PACE_TICK_MS, (ts - ts0) / speed - (now - wall0))))) return; // stopped during a quiet stretch of the capture
      limit = ts0 + (performance.now() - wall0) * speed;
    }
    if (from < batch.end) await deliver(from === batch.start ? batch : batch.slice(from, batch.end));
  };
}

/**
 * How often a live stream (standard input, or a capture command's stdout where no FIFO can be
 * made) is read: what arrived is taken every READ_TICK_MS, not on every readable event. `tcpdump
 * -U` writes each packet with its own write(2): woken on each, the gateway paid its whole read,
 * parse and count path per frame (20-25 us of CPU per frame at 10,000 frames/s written evenly,
 * bench `gateway`, 26 Nov). A stream still wakes the process on each write to buffer it; a
 * capture command's FIFO is not watched at all between reads (tickedPipe, readTick).
 */
export const READ_TICK_MS = 10;

/**
 * When a capture command's FIFO is read (tickedPipe): the tick follows the data rate. Each
 * wake-up costs the process 0.2-0.5 ms of CPU on the bench's machine whatever it carries (a bare
 * node process woken by a timer every 50 ms: ~0.2 ms a wake-up; the gateway reading and counting
 * ~600 frames: ~0.5 ms), as much as counting a few thousand frames, so the reader waits as long as
 * the pipe allows: until it should be three quarters full, between READ_TICK_MIN_MS and
 * READ_TICK_MAX_MS (the delivery tick of a paced replay, PACE_TICK_MS).
 *
 * The bound: between two reads the bytes wait in the kernel. A pipe takes 64 KiB unless enlarged
 * (measured with non-blocking writes until EAGAIN: 768 writes of 84 B or 208 of 300 B, small
 * writes share its pages); capturePipe asks Linux for PIPE_BYTES (1 MiB, the default
 * /proc/sys/fs/pipe-max-size) through perl's fcntl (F_SETPIPE_SZ: Node has no fcntl, Debian always
 * has perl). A 1 MiB pipe holds 250 ms of 300-B records up to ~10,000 frames/s (3 MB/s) with a
 * quarter to spare for the event loop being late (a window close, a GC); a 64 KiB one 16 ms (the
 * tick then stays near 10-20 ms at that rate). A writer that waits loses nothing: tcpdump blocks in
 * write(2) while the kernel's capture ring (2 MiB by default, ~0.7 s at 3 MB/s) keeps the packets.
 * A read that fills the read buffer (a backlog, or a burst larger than the pipe) is followed by the
 * next at once, and the next tick is at most half the last, down to READ_TICK_MIN_MS. A frame
 * waits at most READ_TICK_MAX_MS (plus the event loop's lateness) before it is counted; windows
 * still close on their timer, so a frame at a window's edge may count in the next one (as
 * tcpdump's own buffering, up to its 1 s block timeout, already makes it). A pipe found empty on
 * two reads in a row is watched instead (a quiet pipe costs no wake-ups), and the first bytes
 * after a quiet spell are read when they come.
 */
export const READ_TICK_MIN_MS = 10;
export const READ_TICK_MAX_MS = PACE_TICK_MS;
/** What a pipe holds when it was not enlarged (Linux's default). */
export const PIPE_DEFAULT_BYTES = 64 * 1024;
/** What capturePipe asks Linux to enlarge a capture command's FIFO to. */
export const PIPE_BYTES = 1024 * 1024;

/** The read tick's state: the tick last chosen and the data rate seen (bytes per ms, smoothed). */
export interface ReadTick {
  tickMs: number;
  rate: number;
}

/**
 * The next tick (pure): after `bytes` were read over `elapsedMs` since the previous timed read
 * (`full`: one of those reads filled the read buffer, more was waiting). The rate is averaged with
 * the last one (half each; taken as it is after a quiet spell, `prev` null); the tick is what
 * brings `targetBytes` (three quarters of the pipe) at that rate, at most half the last one after
 * a full read, within [minMs, maxMs].
 */
export function readTick(
  prev: ReadTick | null,
  bytes: number,
  elapsedMs: number,
  full: boolean,
  minMs = READ_TICK_MIN_MS,
  maxMs = READ_TICK_MAX_MS,
  targetBytes = (PIPE_DEFAULT_BYTES * 3) / 4,
): ReadTick {
  const seen = bytes / Math.max(elapsedMs, 0.001);
  const rate = prev ? (prev.rate + seen) / 2 : seen;
  let tickMs = rate > 0 ? targetBytes / rate : maxMs;
  if (full && prev) tickMs = Math.min(tickMs, prev.tickMs / 2);
  return { tickMs: Math.min(maxMs, Math.max(minMs, tickMs)), rate };
}

/**
 * A live stream's bytes, at most one chunk every `tickMs` (READ_TICK_MS): everything buffered, as
 * one chunk. Ends with the stream; throws its error, or a premature-close error if it was
 * destroyed before its end (as a for-await over the stream does). Nothing read is dropped.
 */
export async function* tickedChunks(stream: NodeJS.ReadableStream, tickMs = READ_TICK_MS): AsyncGenerator<Uint8Array> {
  const r = stream as Readable;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  r.on('readable', notify);
  r.on('end', notify);
  r.on('error', notify);
  r.on('close', notify);
  const hwm = r.readableHighWaterMark ?? 16 * 1024;
  try {
    for (;;) {
      const chunk = r.read() as Uint8Array | string | null;
      if (chunk !== null) {
        yield typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        if (chunk.length >= hwm) continue; // the buffer was full: a backlog, read on at once
        await new Promise((resolve) => setTimeout(resolve, tickMs)); // an end, error or stop is seen after it too
        continue;
      }
      if (r.errored) throw r.errored;
      if (r.readableEnded) return;
      if (r.destroyed) throw Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    r.off('readable', notify);
    r.off('end', notify);
    r.off('error', notify);
    r.off('close', notify);
  }
}

/**
 * A pipe for a capture command's stdout that the gateway reads without being woken by each write:
 * a FIFO (mkfifo: Node has no pipe(2)), opened at both ends and its name removed at once, and
 * enlarged to PIPE_BYTES where Linux allows it (enlargePipe); the write end goes to the command,
 * the read end to tickedPipe. `bytes`: what the pipe holds. null when no FIFO can be made (no
 * mkfifo): the command's stdout is then Node's own pipe, read through tickedChunks.
 */
export function capturePipe(): { read: number; write: number; bytes: number } | null {
  let dir: string | null = null;
  let read: number | null = null;
  try {
    dir = mkdtempSync(join(tmpdir(), 'presence-capture-'));
    const path = join(dir, 'out');
    // no environment: mkfifo needs none, and the gateway's holds its secrets (captureEnv)
    execFileSync(findExecutable('mkfifo') ?? 'mkfifo', ['-m', '600', path], { stdio: 'ignore', env: {} });
    read = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const write = openSync(path, fsConstants.O_WRONLY);
    // without perl nothing enlarges it, but what it holds can still be measured (over the user's
    // pipe quota: 8 KiB, read on every write by tickedPipe)
    return { read, write, bytes: enlargePipe(write) ?? measurePipe(read, write) };
  } catch {
    if (read !== null) closeSync(read); // the write end could not be opened: no descriptor is left open
    return null;
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Asks Linux to let the pipe behind `fd` hold `bytes` (at most /proc/sys/fs/pipe-max-size):
 * fcntl(F_SETPIPE_SZ), made by perl (Node has no fcntl; perl-base is part of every Debian and
 * Raspberry Pi OS). Returns what the pipe holds then (F_GETPIPE_SZ), PIPE_DEFAULT_BYTES where
 * that cannot be done or read (not Linux, over the user's pipe quota): nothing else changes, the
 * tick just stays shorter; null when there is no perl to ask.
 */
export function enlargePipe(fd: number, bytes = PIPE_BYTES): number | null {
  const perl = findExecutable('perl');
  if (!perl) return null;
  let max = bytes;
  try {
    max = Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim()) || bytes;
  } catch {
    /* not Linux: perl's fcntl fails below */
  }
  // 1031, 1032: F_SETPIPE_SZ, F_GETPIPE_SZ (linux/fcntl.h: F_LINUX_SPECIFIC_BASE 1024 + 7, + 8);
  // + 0: a number (perl passes a string argument to fcntl as a pointer). Only ever enlarged: a
  // pipe-max-size below what the pipe holds already must not shrink it.
  const script =
    'my $was = fcntl(STDOUT, 1032, 0); fcntl(STDOUT, 1031, $ARGV[0] + 0) if !defined $was || $was < $ARGV[0]; my $n = fcntl(STDOUT, 1032, 0); print STDERR (defined $n ? $n + 0 : 0)';
  const r = spawnSync(perl, ['-e', script, String(Math.min(bytes, max))], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8', timeout: 5000, env: {} });
  const got = Number(r.stderr?.trim());
  return r.status === 0 && Number.isInteger(got) && got >= 4096 ? got : PIPE_DEFAULT_BYTES;
}

/**
 * What an empty FIFO (both ends held here, no other writer yet) holds, measured: page-sized
 * non-blocking writes (through a second, non-blocking opening of it, /proc/self/fd) until one
 * would wait, then everything read back out, so it is empty again. For when no perl can ask
 * Linux (F_GETPIPE_SZ); PIPE_DEFAULT_BYTES where it cannot be measured (not Linux).
 */
export function measurePipe(read: number, write: number): number {
  let probe: number | null = null;
  try {
    probe = openSync(`/proc/self/fd/${write}`, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    const page = Buffer.alloc(4096);
    let held = 0;
    try {
      for (;;) held += writeSync(probe, page);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
    for (let left = held; left > 0; ) {
      const n = readSync(read, page, 0, Math.min(page.length, left), null);
      if (n <= 0) throw new Error('pipe drained short');
      left -= n;
    }
    return held >= 4096 ? held : PIPE_DEFAULT_BYTES;
  } catch {
    return PIPE_DEFAULT_BYTES;
  } finally {
    if (probe !== null) closeSync(probe);
  }
}

/** A pipe's read end read a tick at a time (tickedPipe): its chunks, what was read and not yet handed on, and a way to close it. */
export interface TickedPipe {
  chunks: AsyncGenerator<Uint8Array>;
  /** Bytes read from the pipe and not yet handed on. */
  pending(): number;
  destroy(): void;
  readonly destroyed: boolean;
}

/**
 * Reads a pipe's read end (`fd`) as tickedChunks does a stream, but while bytes keep coming the
 * pipe is not watched at all, so a writer's writes wake the gateway not once each but once a
 * tick: one read(2) on the non-blocking fd, straight into one reused buffer, takes what the pipe
 * holds, and the tick follows the data rate (readTick: READ_TICK_MIN_MS to READ_TICK_MAX_MS; at
 * once again after a read that filled the read buffer, as large as the pipe). A number for `ticks`
 * fixes the tick. Only when two reads in a row find it empty (EAGAIN) is the pipe watched (the
 * socket resumed: libuv polls the fd; paused again by the first read that wakes it), so the first
 * bytes after a quiet spell are read when they come and a quiet pipe costs no wake-ups. A chunk
 * handed on is valid until the next one is asked for (the capture reader copies what it keeps): no
 * allocation per read.
 *
 * A pipe that holds less than Linux's default 64 KiB (`pipeBytes`: a user over its pipe quota,
 * fs.pipe-user-pages-soft, gets pipes of 8 KiB that cannot be enlarged) is not read on a tick: it
 * fills in a few ms at high frame rates (8 KiB at 3 MB/s: under 3 ms, shorter than the shortest
 * tick), and a capture tool held back that long loses packets once the kernel's capture ring is
 * full. It is watched all the time and read whenever it holds something, as a stream would be
 * (a wake-up per read: more CPU, nothing held back). So is a pipe whose size is not known
 * (`pipeBytes` null: a piped stdin without perl), which may be such a pipe.
 */
export function tickedPipe(
  fd: number,
  ticks: number | { minMs: number; maxMs: number } = { minMs: READ_TICK_MIN_MS, maxMs: READ_TICK_MAX_MS },
  pipeBytes: number | null = PIPE_DEFAULT_BYTES,
): TickedPipe {
  const { minMs, maxMs } = typeof ticks === 'number' ? { minMs: ticks, maxMs: ticks } : ticks;
  /** Too small to wait for, or maybe so (see above): read whenever it holds something. */
  const small = pipeBytes === null || pipeBytes < PIPE_DEFAULT_BYTES;
  // A read takes what the pipe holds (its pages are touched only as far as a read fills them).
  const readBuf = Buffer.allocUnsafe(Math.max(pipeBytes ?? 0, PIPE_DEFAULT_BYTES));
  // A read this large found the pipe full: the writer may be waiting. A write goes into the last
  // page only if it fits there, so small writes leave part of every page unused: 84-B writes fill
  // 4,032 bytes of a page, 300-B ones 3,900 (64,512 and 62,400 bytes of 64 KiB; 1,032,192 and
  // 998,400 of 1 MiB, where one page less than the buffer would never be reached).
  const fullBytes = Math.floor((readBuf.length * 7) / 8);
  let acc = Buffer.allocUnsafe(64 * 1024);
  let len = 0;
  let lastFull = false;
  let ended = false;
  let error: Error | null = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  // onread (one reused buffer; pause() then stops polling the fd) is a documented option of the
  // constructor that @types/node 20 leaves out of SocketConstructorOpts
  const socket = new Socket({
    fd,
    readable: true,
    writable: false,
    onread: {
      buffer: readBuf,
      callback: (n: number, buf: Uint8Array) => {
        if (len + n > acc.length) {
          const grown = Buffer.allocUnsafe(Math.max(acc.length * 2, len + n));
          acc.copy(grown, 0, 0, len);
          acc = grown;
        }
        acc.set(buf.subarray(0, n), len);
        len += n;
        lastFull = n >= fullBytes;
        notify();
        return false; // pause: the pipe is not watched until the next tick
      },
    },
  } as ConstructorParameters<typeof Socket>[0]);
  socket.pause();
  socket.on('end', () => {
    ended = true;
    notify();
  });
  socket.on('error', (err) => {
    error = err;
    notify();
  });
  socket.on('close', notify);
  /** Reads what the pipe holds now into readBuf without waiting: bytes read, 0 at its end (no writer left), -1 if it is empty. */
  const readNow = (): number => {
    try {
      return readSync(fd, readBuf, 0, readBuf.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return -1;
      throw err;
    }
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let tick: ReadTick | null = null; // null: no rate seen since the pipe was last watched
    let prevAt = performance.now(); // when the previous timed read (the first after a wait) was made
    let at = prevAt; // when this one was
    let bytes = 0; // read by this timed read and the reads on after it
    let full = false; // one of those reads filled the read buffer
    let empty = 0; // timed reads in a row that found the pipe empty
    /** Waits for the next timed read: a tick chosen from what came between the last two. */
    const next = async () => {
      tick = readTick(tick, bytes, at - prevAt, full, minMs, maxMs, (readBuf.length * 3) / 4);
      prevAt = at;
      bytes = 0;
      full = false;
      await sleep(tick.tickMs);
      at = performance.now();
    };
    try {
      for (;;) {
        if (len > 0) {
          // read by the socket, woken by the first bytes after a quiet spell: the rate is not known yet
          const wasFull = lastFull;
          yield acc.subarray(0, len);
          len = 0;
          tick = null;
          bytes = 0;
          empty = 0;
          prevAt = performance.now();
          if (!small && !wasFull && !ended && !socket.destroyed) await sleep(minMs);
          at = performance.now();
          continue;
        }
        if (error) throw error;
        if (ended) return;
        if (socket.destroyed) throw Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
        const n = readNow();
        if (n > 0) {
          bytes += n;
          empty = 0;
          yield n === readBuf.length ? readBuf : readBuf.subarray(0, n);
          if (small) {
            // read on once the event loop has had its turn (timers, the broker), until it is empty
            await new Promise((r) => setImmediate(r));
            continue;
          }
          if (n >= fullBytes)
            full = true; // more is waiting: read on at once
          else if (!socket.destroyed) await next();
          continue;
        }
        if (n === 0) return; // every writer closed it
        if (!small && (bytes > 0 || ++empty < 2)) {
          // drained after a full read, or empty once: data may still be flowing (a writer handing on bursts)
          await next();
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          socket.resume(); // empty twice: watched until something comes
        });
      }
    } finally {
      socket.destroy();
    }
  }
  return {
    chunks: chunks(),
    pending: () => len,
    destroy: () => socket.destroy(),
    get destroyed() {
      return socket.destroyed;
    },
  };
}

/**
 * pcap or pcapng on standard input (a pipe from tcpdump, or a file). When standard input is a pipe
 * (`tcpdump -U -w - | presence gateway --source stdin`) and no other input was given, it is read as
 * a capture command's FIFO is: enlarged (enlargePipe) and read on a tick that follows the data rate
 * (tickedPipe), without touching process.stdin. Without perl what it holds is not known: Linux
 * tells a pipe's size only through fcntl (F_GETPIPE_SZ; not in fstat nor /proc/self/fdinfo), and
 * it cannot be measured as capturePipe measures its own FIFO (filled and emptied before anyone
 * writes into it): its writer is running already, so bytes written to measure it would mix into
 * the capture. It may then be a pipe of 8 KiB or less (made while its user was over the pipe
 * quota), so it is read whenever it holds something (tickedPipe), as such a pipe is. Anything else
 * (a file, a terminal, a stream given for tests) is a stream read a tick at a time (tickedChunks).
 */
export class StdinSource extends CaptureSource {
  readonly ends = true;
  /** True once standard input is read as a pipe (tickedPipe), false while read as a stream. */
  readsPipe = false;
  /** What that pipe holds (null: not known, no perl to ask Linux; or read as a stream). */
  pipeBytes: number | null = null;
  private pipe: TickedPipe | null = null;
  constructor(
    cfg: Pick<StdinSourceConfig, 'name' | 'radio'>,
    log: Logger,
    private readonly input?: NodeJS.ReadableStream,
  ) {
    super(cfg.name, cfg.radio, log);
  }
  protected async run(): Promise<void> {
    if (!this.input && isPipe(0)) {
      this.readsPipe = true;
      this.pipeBytes = enlargePipe(0);
      this.notePipe(this.pipeBytes);
      this.pipe = tickedPipe(0, undefined, this.pipeBytes);
    }
    const chunks = this.pipe ? this.pipe.chunks : tickedChunks(this.input ?? process.stdin);
    for await (const batch of readCaptureRecords(chunks, 'stdin', this.splitter, this.noteCut)) {
      if (this.stopped) break;
      await this.deliver(batch);
    }
  }
  protected async halt(): Promise<void> {
    if (this.pipe) this.pipe.destroy();
    else ((this.input ?? process.stdin) as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  }
}

/** True when `fd` is a pipe or FIFO. */
function isPipe(fd: number): boolean {
  try {
    return fstatSync(fd).isFIFO();
  } catch {
    return false;
  }
}

/** A capture command writing pcap to stdout, restarted with backoff when it dies. */
export class CommandSource extends CaptureSource {
  readonly ends = false;
  private child: ChildProcess | null = null;
  /** The running command's output as read (the FIFO's reader or Node's pipe). */
  private output: { pending(): number; destroy(): void } | null = null;
  /** Resolves once the running command has exited and its output is closed. */
  private childClosed: Promise<unknown> | null = null;
  private wake: (() => void) | null = null;
  /** Times the command was (re)started. */
  starts = 0;
  /** The running command: when it started and when its last frame came (performance.now()), the bytes it wrote; null while none runs. */
  private run_: { startedMs: number; lastFrameMs: number | null; bytes: number; silentTimer: NodeJS.Timeout | null } | null = null;

  constructor(
    private readonly cfg: Pick<CommandSourceConfig, 'name' | 'radio' | 'command' | 'restart_min' | 'restart_max'>,
    log: Logger,
  ) {
    super(cfg.name, cfg.radio, log);
  }

  protected async run(): Promise<void> {
    const minMs = parseDuration(this.cfg.restart_min);
    const maxMs = Math.max(minMs, parseDuration(this.cfg.restart_max));
    let backoff = minMs;
    while (!this.stopped) {
      const began = Date.now();
      const framesBefore = this.frames;
      const problem = await this.once();
      if (this.stopped) break;
      // Output that is no capture, or turns damaged: what to change is the command (a file's fix does not apply).
      if (problem.error instanceof CaptureFormatError && !problem.fix) problem.fix = commandDamageFix(problem.error.damage, this.frames - framesBefore);
      this.errors++;
      this.lastErrorCode = problem.code;
      this.lastError = lastErrorText(problem.code, problem.exit);
      this.lastFix = problem.fix;
      if (Date.now() - began > maxMs) backoff = minMs; // it ran well for a while: start over
      this.log.warn(
        {
          source: this.name,
          program: this.program,
          code: this.lastErrorCode,
          ...(problem.exit ? { exit_code: problem.exit.code, signal: problem.exit.signal } : {}),
          ...(problem.error ? failureFields(problem.error) : {}),
          ...(problem.error instanceof CaptureFormatError ? { frames_before: this.frames - framesBefore } : {}),
          ...(problem.stderr ? { stderr: redactFreeText(problem.stderr, configuredNames(this.cfg.command)) } : {}),
          ...(problem.fix ? { fix: problem.fix } : {}),
          restart_in_ms: backoff,
        },
        'capture command stopped; restarting',
      );
      this.setState('restarting');
      await new Promise<void>((r) => {
        const t = setTimeout(r, backoff);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = null;
      backoff = Math.min(maxMs, backoff * 2);
    }
  }

  get mute(): boolean {
    const r = this.run_;
    return r !== null && r.bytes === 0 && r.silentTimer === null; // the timer of NO_OUTPUT_MS ran out
  }

  silence(nowMs = performance.now()): { bytes: number; silentMs: number } | null {
    const r = this.run_;
    return r ? { bytes: r.bytes, silentMs: nowMs - (r.lastFrameMs ?? r.startedMs) } : null;
  }

  /**
   * The capture program's basename, for the log: the program after any wrapper such as sudo, env,
   * stdbuf, timeout or nice (parseCaptureCommand), as the fix names it (operator-given configuration;
   * shownName: `<redacted>` if it holds an address).
   */
  private get program(): string {
    return shownName(parseCaptureCommand(this.cfg.command).program);
  }

  /**
   * Runs the command once; resolves with why it stopped (stderr raw: the caller redacts it for the
   * log) and, when it exited or could not start, what to do (captureFix: chosen from its whole
   * stderr, a fixed sentence naming only the configured program and interface).
   */
  private async once(): Promise<{
    code: SourceErrorCode;
    error?: Error;
    stderr?: string;
    exit?: { code: number | null; signal: string | null };
    fix?: string;
  }> {
    const cmd = this.cfg.command;
    if (Array.isArray(cmd) && !findExecutable(cmd[0])) {
      // The program not found, or there but not executable for this user: the first word, a wrapper or not.
      const errno = findExecutable(cmd[0], process.env.PATH, fsConstants.F_OK) ? 'EACCES' : 'ENOENT';
      return {
        code: 'cannot_start',
        error: Object.assign(new Error(errno === 'EACCES' ? 'not executable' : 'no such executable'), { code: errno, syscall: 'spawn' }),
        fix: captureFix([errno], [cmd[0]!]),
      };
    }
    // stdout through a FIFO read a tick at a time (tickedPipe); Node's own pipe when none can be made
    const fifo = capturePipe();
    let child: ChildProcess;
    try {
      child = spawnCapture(cmd, fifo?.write);
    } catch (err) {
      if (fifo) closeSync(fifo.read); // nothing will read it: the source fails (start())
      throw err;
    } finally {
      if (fifo) closeSync(fifo.write); // the command holds it now
    }
    if (fifo) this.notePipe(fifo.bytes);
    const pipe = fifo ? tickedPipe(fifo.read, undefined, fifo.bytes) : null;
    const output = {
      pending: () => pipe?.pending() ?? child.stdout?.readableLength ?? 0,
      destroy: () => (pipe ? pipe.destroy() : child.stdout?.destroy()),
    };
    this.output = output;
    this.child = child;
    this.starts++;
    // A command that writes nothing at all, not even a capture file header, hangs (or holds its
    // output back: tcpdump without -U): one warn line once NO_OUTPUT_MS has passed, and /healthz
    // and the page say so from then on (http.ts sourceSilence), until its first byte.
    const run = { startedMs: performance.now(), lastFrameMs: null as number | null, bytes: 0, silentTimer: null as NodeJS.Timeout | null };
    run.silentTimer = setTimeout(() => {
      run.silentTimer = null;
      if (run.bytes > 0 || this.run_ !== run) return;
      this.log.warn(
        { source: this.name, program: this.program, silent_ms: NO_OUTPUT_MS, fix: NO_OUTPUT_FIX },
        'capture command has written nothing, not even a capture file header: it hangs or holds its output back',
      );
      this.sink?.stateChanged(this);
    }, NO_OUTPUT_MS);
    run.silentTimer.unref();
    this.run_ = run;
    let stderrTail = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderrTail = (stderrTail + d.toString('utf8')).slice(-2000);
    });
    let spawnError: Error | null = null;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('error', (err) => {
        spawnError = err;
        resolve({ code: null, signal: null });
      });
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    // The command exited but something outside its group (setsid) still holds its output: from 1 s
    // after the exit, as soon as nothing read is left unconsumed (checked every second; output
    // still buffered is never dropped), that no longer keeps the source from restarting.
    let abandoned = false;
    child.once('exit', () => {
      let t: NodeJS.Timeout;
      const check = () => {
        if (output.pending() > 0) {
          t = setTimeout(check, 1000);
          return;
        }
        abandoned = true;
        output.destroy();
        child.stderr?.destroy();
      };
      t = setTimeout(check, 1000);
      void exited.then(() => clearTimeout(t));
    });
    this.childClosed = exited;
    let readError: Error | null = null;
    try {
      let first = true;
      // Chunks (a tick's worth) straight to the parser and the sink: no async layer between them
      // but the reader's own.
      const parser = new CaptureParser(`command ${this.name}`, this.splitter);
      parser.onCut = this.noteCut;
      for await (const chunk of pipe ? pipe.chunks : tickedChunks(child.stdout!)) {
        if (run.bytes === 0 && chunk.length > 0) {
          const wasMute = run.silentTimer === null;
          if (run.silentTimer) clearTimeout(run.silentTimer);
          run.silentTimer = null;
          run.bytes += chunk.length;
          // no longer mute (bytes counted first): the gateway publishes a status without silent_s
          if (wasMute && !this.stopped) {
            this.log.info({ source: this.name, program: this.program, silent_ms: Math.round(performance.now() - run.startedMs) }, 'capture command writes now');
            this.sink?.stateChanged(this);
          }
        } else run.bytes += chunk.length;
        const batch = parser.pushRecords(chunk, true);
        // Running again (after a restart) once it wrote a capture file header: it captures, and a
        // quiet site's windows are whole zeros, not cut short until the first frame comes.
        if (first && parser.format !== null) {
          first = false;
          this.setState('running');
        }
        if (batch) {
          if (batch.count > 0) run.lastFrameMs = performance.now();
          const wait = this.deliverNow(batch);
          if (wait) await wait;
        }
        if (this.stopped) break;
      }
      if (!this.stopped) {
        const last = parser.flushRecords();
        if (last) {
          const wait = this.deliverNow(last);
          if (wait) await wait;
        }
        parser.end();
      }
    } catch (err) {
      // Output closed by the gateway after the command exited (above) is no read failure.
      if (!abandoned) readError = err as Error;
    }
    // A command that wrote nothing at all and ended by itself (a tool not installed, exit 127; an
    // interface that is missing or not permitted, exit 1) exited: it did not write a damaged capture.
    // Its exit code is what says why, not the reader's "empty input".
    if (readError instanceof CaptureFormatError && readError.damage === 'empty' && (await endsWithin(exited, EMPTY_EXIT_WAIT_MS))) readError = null;
    if (readError) await endCapture(child, exited, output.destroy);
    const { code, signal } = await exited;
    output.destroy(); // (read to its end, or given up)
    if (run.silentTimer) clearTimeout(run.silentTimer);
    this.run_ = null;
    this.child = null;
    this.output = null;
    const lastLine = headline(stderrTail.trim().split('\n').filter(Boolean), parseCaptureCommand(cmd).program);
    const fix = captureFix(stderrTail.split(/\r?\n/), cmd, spawnError ? undefined : code);
    if (spawnError) return { code: 'cannot_start', error: spawnError, stderr: lastLine, fix };
    if (readError) return { code: failureCode(readError), error: readError, stderr: lastLine };
    // Stopped by the gateway (a stop, a restart it asked for): nothing to fix.
    return { code: 'exited', exit: { code, signal }, stderr: lastLine, ...(this.stopped ? {} : { fix }) };
  }

  protected async halt(): Promise<void> {
    this.wake?.();
    const child = this.child;
    if (child && this.childClosed) await endCapture(child, this.childClosed, this.output?.destroy);
  }
}

/**
 * A capture command that has written no byte this long after it started, not even a capture file
 * header, is a fault (gateway/README.md, "Sources"): tcpdump -U and dumpcap write their header as
 * soon as they capture; ssh to a remote sniffer connects within seconds.
 */
export const NO_OUTPUT_MS = 15_000;
/** What to do about a capture command that writes nothing (fixed: names no configured value). */
export const NO_OUTPUT_FIX =
  'run the command by hand and see that it writes a capture to stdout at once: tcpdump needs -U (without it, it holds even the capture file header back until 4 KiB have come), dumpcap -q -w -; check that the interface is up and in monitor mode';

/** How long a command whose output ended before any byte is given to exit by itself. */
const EMPTY_EXIT_WAIT_MS = 1000;

/** True when `p` settles within `ms`. */
async function endsWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    t = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(t);
  }
}

/**
 * The shell prologue every capture command runs under (`sh -c GUARD presence-capture CMD...`):
 * fd 3 keeps the read end of a pipe whose write end only the gateway holds (the child's stdin);
 * a watcher in the background, in the same process group and deaf to SIGTERM, waits on it and
 * kills the whole group with SIGKILL when it reads end-of-file, which happens as soon as the
 * gateway is gone (exit, crash, kill -9: the kernel closes its end) or once Node reaps the command
 * (it closes the child's stdin then, so leftovers of a command that exited go too). The command
 * then replaces the shell (exec: same pid, its own exit code and signal), with /dev/null as stdin.
 * Chosen over `setpriv --pdeathsig`: a parent-death signal is cleared when a binary with file
 * capabilities is executed (dumpcap and tcpdump are often installed that way) and never reaches a
 * command's own children; this needs nothing but /bin/sh and needs no polling.
 */
export const CAPTURE_GUARD = 'exec 3<&0 </dev/null; { trap "" TERM INT HUP; read -r _ <&3; kill -s KILL 0; } >/dev/null 2>&1 & exec "$@" 3<&-';

/** SIGKILL for a capture command's group this long after SIGTERM. */
export const KILL_AFTER_MS = 3000;

/**
 * Starts a capture command (a string runs via /bin/sh -c, a list directly) in a new process group
 * (and session) it leads, under CAPTURE_GUARD: stdin is the guard's pipe (never written), stdout
 * and stderr are pipes to the gateway.
 */
export function spawnCapture(command: string | string[], stdoutFd?: number): ChildProcess {
  const argv = Array.isArray(command) ? command : ['/bin/sh', '-c', command];
  const child = spawn('/bin/sh', ['-c', CAPTURE_GUARD, 'presence-capture', ...argv], {
    stdio: ['pipe', stdoutFd ?? 'pipe', 'pipe'],
    detached: true,
    env: captureEnv(),
  });
  child.stdin!.on('error', () => {}); // never written; EPIPE once the group is gone is no error
  return child;
}

/** Names of environment variables that hold secrets: …PASSWORD…, …TOKEN…, …SECRET…, …_KEY, each also with `_FILE` after it. */
export const SECRET_ENV_NAME = /PASSWORD|TOKEN|SECRET|_KEY(?:_FILE)?$/i;

/**
 * The gateway's environment without its secrets: what a capture command gets. Dropped: variables
 * named like a secret (SECRET_ENV_NAME) and any that hold a URL with credentials, a user name or
 * password (MQTT_URL=mqtt://user:password@broker) or a secret query value (INFLUX_URL=http://influx:8086/?u=writer&p=...).
 */
export function captureEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k, v]) => !SECRET_ENV_NAME.test(k) && !holdsUrlCredentials(v ?? '')));
}

/** Sends `signal` to the capture command's whole process group (it leads one). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* the group is gone */
  }
}

/**
 * Ends a capture command's group: SIGTERM, SIGKILL after KILL_AFTER_MS; resolves once it has
 * closed. A process that left the group (setsid) and still holds the output cannot keep it open:
 * 1 s after the SIGKILL the gateway closes its ends of the pipes itself.
 */
async function endCapture(child: ChildProcess, closed: Promise<unknown>, closeOutput?: () => void): Promise<void> {
  signalGroup(child, 'SIGTERM');
  const kill = setTimeout(() => signalGroup(child, 'SIGKILL'), KILL_AFTER_MS);
  const abandon = setTimeout(() => {
    closeOutput?.();
    child.stdout?.destroy();
    child.stderr?.destroy();
  }, KILL_AFTER_MS + 1000);
  await closed;
  clearTimeout(kill);
  clearTimeout(abandon);
}

/** The path of an executable `name` (a path, or looked up in PATH), or null; `mode` F_OK: of a file of that name, executable or not. */
export function findExecutable(name: string, path = process.env.PATH ?? '', mode: number = fsConstants.X_OK): string | null {
  const candidates = name.includes('/')
    ? [name]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, mode);
      return c;
    } catch {
      /* next */
    }
  }
  return null;
}

/** The fixed code of a failure: a capture that is not pcap/pcapng, an I/O error, or anything else. */
/**
 * A source's failure as log fields holding no byte of a frame: a damaged capture's kind of damage
 * and byte offset (fields to filter on; the reader's sentence quotes no value read from the stream either), a system error's
 * errno code and call; only an unexpected error's message, whose text is unknown, goes through
 * redactFreeText.
 */
export function failureFields(err: Error): Record<string, string | number> {
  if (err instanceof CaptureFormatError) return { damage: err.damage, byte_offset: err.offset };
  const { code, syscall } = err as NodeJS.ErrnoException;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code))
    return { errno: code, ...(typeof syscall === 'string' && /^\w+$/.test(syscall) ? { syscall } : {}) };
  return { err: redactFreeText(err.message) };
}

export function failureCode(err: Error): SourceErrorCode {
  if (err instanceof CaptureFormatError) return 'bad_capture';
  if (typeof (err as NodeJS.ErrnoException).code === 'string') return 'read_failed';
  return 'failed';
}

export function createSource(cfg: SourceConfig, log: Logger, stdin?: NodeJS.ReadableStream): CaptureSource {
  switch (cfg.type) {
    case 'file':
      return new FileSource(cfg, log);
    case 'stdin':
      return new StdinSource(cfg, log, stdin);
    case 'command':
      return new CommandSource(cfg, log);
  }
}
