// The durable window queue: every closed window is written here (fsync'd file, then an fsync'd
// rename) before it is published, and removed only once the broker has acknowledged it (PUBACK).
// The folder also keeps the last sequence number, so `seq` goes on across restarts.
//
// Layout of the queue folder:
//   seq                    last sequence number given to a window (right-aligned in 16 columns,
//                          padded with spaces, and a newline; overwritten in place, so updating
//                          it needs no free space), written before the newest window file is
//                          removed and for every window kept in memory only (while windows are
//                          on disk the newest one's name carries it)
//   windows/<seq>.json     one counts message per unacknowledged window (counts only: the
//                          contract's payload, nothing per device)
//   lock                   pid of the gateway using the folder, with (on Linux) the boot id and
//                          its start time in clock ticks after boot: a lock a power cut left is
//                          not the holder's any more when, after the reboot, its pid is another
//                          process's (lockHolder)
//
// Bound: at most `maxWindows` windows are kept. When a new window would exceed it, the OLDEST
// queued window is deleted, a warning is logged and the `dropped` counter (published in status as
// queue_dropped) goes up. Newest data wins because it is what operators look at first.
//
// Degraded state: a write that fails (ENOSPC or EDQUOT: `disk_full`; anything else, e.g. EIO or
// EROFS: `write_failed`) never throws out of the queue. The temp file is removed, the windows
// already on disk stay as they are, and the window (and every later one) is kept in memory, at
// most `memoryWindows` of them (oldest dropped first, counted in `dropped`), where the publisher
// reads it like a file. Writing is retried with a backoff (1 s doubling to 30 s; with nothing held
// in memory a small check file is written and removed, so a full disk is never taken for a
// writable one just because every held window was acknowledged); once it works the
// windows in memory are written out oldest first and the state is `ok` again. `state` is what the
// status publishes as queue_state.
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
  existsSync,
  writeFileSync,
  statSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { makeFolders } from '../scripts/lib/folders.ts';
import { currentUser } from '../scripts/lib/secrets.ts';
import type { CountsMessage, QueueState } from '../contract/index.ts';
import { processAlive } from '../scripts/lib/process-alive.ts';

const NAME_RE = /^(\d{1,16})\.json$/;

/** Windows kept in memory at most while the folder cannot be written (~0.4 KB each). */
export const MEMORY_WINDOWS = 10_000;

/** File in the queue folder: the Home Assistant discovery config topics the gateway published and has not removed (gateway/homeassistant.ts). */
export const DISCOVERY_FILE = 'homeassistant.json';
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;
/** While windows keep being dropped, at most one log line per reason in this time (1-s windows wrote one a second). */
export const DROP_LOG_MS = 60_000;
/** Queued window files that could not be read are tried again at most this often (ms). */
export const UNREADABLE_RECHECK_MS = 5_000;
/**
 * Files that could not be read that one recheck reads (oldest first), their text kept until sent, so
 * that each is read once: the rest wait for the next recheck.
 */
export const UNREADABLE_RECHECK_BATCH = 1_000;
/**
 * Queued window files whose readability one recheck tests with access() (no read) ahead of their turn,
 * going round the queue: 10,000 access() calls took 29 ms on the 2-core test machine at a load average of
 * 3.6, so the 100,000 of the default queue.max_windows some 0.3 s, too much every 5 s; a queue of N files
 * is gone round in N / 1,000 rechecks.
 */
export const UNREADABLE_SCAN_BATCH = 1_000;
/** Width of the seq file: 16 columns (2^53 has 16 digits) and a newline; spaces, not zeros, pad it. */
const SEQ_WIDTH = 17;

/** True when this process may read the file (root may read any). */
function readable(path: string): boolean {
  try {
    accessSync(path, fsConstants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The files of a queue folder that the gateway reads at its start, those there: its seq file and its
 * windows' files. Each must be readable by the gateway's user (WindowQueue.open refuses the folder
 * otherwise; presence doctor checks them as the service's user).
 */
export function queueFiles(dir: string): string[] {
  const windowsDir = join(dir, 'windows');
  const windows = existsSync(windowsDir)
    ? readdirSync(windowsDir)
        .filter((f) => NAME_RE.test(f))
        .map((f) => join(windowsDir, f))
    : [];
  return [join(dir, 'seq'), ...windows].filter((f) => existsSync(f));
}

/**
 * The first of the queue folder's seq and lock that is a folder (the gateway refuses to start,
 * naming it: startFileText), as that sentence; null when neither is. For presence doctor, which
 * said the folder was fine.
 */
export function queueStartFileFolder(dir: string): string | null {
  for (const name of ['seq', 'lock']) {
    const path = join(dir, name);
    try {
      if (statSync(path).isDirectory()) return folderInsteadOfFile(dir, path);
    } catch {
      // missing: the gateway writes it
    }
  }
  return null;
}

const folderInsteadOfFile = (dir: string, path: string) => `queue.dir ${dir}: ${path} is a folder, not the file the gateway keeps there; remove it`;

/** The files of queueFiles that this process may not read. */
export function unreadableQueueFiles(dir: string): string[] {
  return queueFiles(dir).filter((f) => !readable(f));
}

/** True for the errors of a full filesystem (no space, or the user's quota used up). */
export function isDiskFull(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the file itself is already synced.
  }
}

function writeAll(fd: number, buf: Buffer, position: number | null = null): void {
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off, position === null ? null : position + off);
}

/**
 * Writes `data` to `path` atomically and durably: temp file, fsync, rename, fsync folder. On any
 * failure (a full disk) the temp file is removed and `path` is as it was; the error is thrown.
 */
export function writeDurably(path: string, data: string | Buffer, dir: string): void {
  const tmp = `${path}.tmp`;
  try {
    const fd = openSync(tmp, 'w', 0o640);
    try {
      writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created */
    }
    throw e;
  }
  fsyncDir(dir);
}

export class QueueLockedError extends Error {}

/** The queue folder cannot be made or written (a file on its path, no permission, a read-only file system): a setting to fix. */
export class QueueFolderError extends Error {
  readonly hint = "queue.dir (--queue-dir) must name a folder the gateway's user can create and write; presence doctor checks it";
}

/**
 * The text of a file of the queue folder read at start (seq, lock), or a QueueFolderError naming
 * it: one that was a folder stopped the gateway with 'cannot start' and only
 * 'EISDIR: illegal operation on a directory, read', naming no file.
 */
function startFileText(dir: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new QueueFolderError(
      code === 'EISDIR'
        ? folderInsteadOfFile(dir, path)
        : `queue.dir ${dir}: ${path} cannot be read (${typeof code === 'string' ? code : (e as Error).message})`,
    );
  }
}

/** Linux's id of this boot and a process's start time (clock ticks after boot), or null where /proc does not say. */
function processIdentity(pid: number): { boot: string; start: string } | null {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (in parentheses, which may hold spaces): state is field 3, starttime field 22.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return boot && start && /^\d+$/.test(start) ? { boot, start } : null;
  } catch {
    return null;
  }
}

/** The lock file's line for this process: its pid, then the boot id and its start time where known. */
function lockLine(): string {
  const id = processIdentity(process.pid);
  return id ? `${process.pid} ${id.boot} ${id.start}\n` : `${process.pid}\n`;
}

/** The pid a lock file names (its first word), or 0. */
function lockPid(text: string): number {
  return Number(text.trim().split(/\s+/)[0]) || 0;
}

/**
 * The live process holding a lock file's folder, or 0 when the lock is stale. A pid alone is not
 * enough: a power cut leaves the lock file, and after the reboot its pid may be any other process
 * (a kernel thread, another service), which kept the gateway from ever starting again. A lock that
 * names its boot and start time is held only by that very process; one that names a pid only (an
 * older gateway's) by any live process of that pid.
 */
function lockHolder(text: string): number {
  const pid = lockPid(text);
  const [, boot, start] = text.trim().split(/\s+/);
  if (!pid || pid === process.pid || !processAlive(pid)) return 0;
  if (boot && start) {
    const now = processIdentity(pid);
    if (now && (now.boot !== boot || now.start !== start)) return 0;
  }
  return pid;
}

export interface QueueOptions {
  maxWindows: number;
  /** Windows kept in memory at most while the folder cannot be written (default MEMORY_WINDOWS). */
  memoryWindows?: number;
  log?: Logger;
  /** Called when `state` changes (into or out of the degraded state). */
  onStateChange?: (state: QueueState) => void;
  /** A monotonic clock in ms (default performance.now), for spacing the drop lines. */
  now?: () => number;
}

export class WindowQueue {
  private readonly windowsDir: string;
  /** Queued sequence numbers, oldest first (on disk or in memory). */
  private seqs: number[] = [];
  /** seqs[0 .. head) are removed (compacted now and then). */
  private head = 0;
  private lastSeq = 0;
  /** Windows dropped by the size bound since this process started. */
  dropped = 0;
  /** `ok`, or why the folder cannot be written (windows are then kept in memory). */
  state: QueueState = 'ok';
  /** Windows not (yet) on disk: seq -> the message as JSON, oldest first. */
  private readonly memory = new Map<number, string>();
  /** The seq file could not be written: rewrite it when the folder is writable again. */
  private seqDirty = false;
  /** The lock file could not be written (full disk at start): write it when possible. */
  private lockPending = false;
  /** An acknowledged newest window kept on disk because the seq file could not be written. */
  private seqMarker: number | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_MIN_MS;
  private closed = false;
  /** Queued windows whose file could not be read when their turn to be sent came: seq -> errno. Kept, counted in depth. */
  private readonly unreadable = new Map<number, string>();
  /** When (this.now()) the unreadable files were last tried again. */
  private unreadableCheckedAt = -Infinity;
  /** Files that could not be read and were read by a recheck: seq -> their text, taken by read(). */
  private readonly readBack = new Map<number, string>();
  /** The last seq the going-round scan for unreadable files tested (0: start again from the oldest). */
  private scannedUpTo = 0;
  /** Per drop reason: when its last line was written, and the drops held back since (first and last seq). */
  private readonly dropLog = new Map<string, { at: number; n: number; first: number; last: number }>();
  /** Logs the held drops at the end of their minute when no further drop comes to log them. */
  private dropTimer: NodeJS.Timeout | null = null;

  private constructor(
    readonly dir: string,
    private readonly opts: QueueOptions,
  ) {
    this.windowsDir = join(dir, 'windows');
  }

  /** Opens (creating if needed) the queue folder; takes its lock. A full disk is no error: the queue starts degraded. */
  static open(dir: string, opts: QueueOptions): WindowQueue {
    const q = new WindowQueue(dir, opts);
    try {
      makeFolders(q.windowsDir, 0o750);
    } catch (e) {
      if (!isDiskFull(e)) throw new QueueFolderError(`queue.dir ${dir}: ${(e as Error).message}`);
      q.failed(e, 'creating the queue folder');
    }
    q.lock();
    const seqFile = join(dir, 'seq');
    let seqOk = false;
    // Files of the folder this user may not read (a run as another user, root, left them): refused
    // at start with the fix. A window file was taken for a damaged one when its turn came, and deleted.
    const unreadable = unreadableQueueFiles(dir);
    if (unreadable.length) {
      q.close();
      const st = statSync(unreadable[0]!);
      const windows = unreadable.filter((f) => f !== seqFile).length;
      throw new QueueFolderError(
        `queue.dir ${dir}: ${unreadable.length} of its files cannot be read by user ${currentUser()} (${unreadable[0]}: owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})` +
          `${windows ? `, ${windows} of them windows not yet sent` : ''}; make the folder the gateway user's, e.g. sudo chown -R ${currentUser()} ${dir}, then start again`,
      );
    }
    if (existsSync(seqFile)) {
      const n = Number(startFileText(dir, seqFile).trim());
      if (Number.isSafeInteger(n) && n >= 0) {
        q.lastSeq = n;
        seqOk = statSync(seqFile).size === SEQ_WIDTH;
      } else opts.log?.warn({ file: seqFile }, 'queue: seq file unreadable; continuing from the queued windows');
    }
    for (const f of existsSync(dir) ? readdirSync(dir) : []) if (f.endsWith('.tmp')) q.unlinkPath(join(dir, f)); // a write cut short
    for (const entry of existsSync(q.windowsDir) ? readdirSync(q.windowsDir, { withFileTypes: true }) : []) {
      const f = entry.name;
      const m = NAME_RE.exec(f);
      if (m && entry.isDirectory()) {
        // Queued, it was never read (EISDIR, logged with a chown that cannot help) nor removed, and a
        // gateway replaying files waited for it for ever.
        opts.log?.error(
          { file: join(q.windowsDir, f), fix: 'remove it: the gateway writes its windows as files' },
          `queue: ${f} is a folder, not a window file: left out`,
        );
      } else if (m) {
        const seq = Number(m[1]);
        if (f === basename(q.file(seq)) || q.rename(f, seq)) q.seqs.push(seq);
      } else if (f.endsWith('.tmp')) q.unlinkPath(join(q.windowsDir, f)); // a write cut short by a crash or a full disk
    }
    q.seqs.sort((a, b) => a - b);
    if (q.seqs.length) q.lastSeq = Math.max(q.lastSeq, q.seqs[q.seqs.length - 1]);
    // The seq file in its fixed-width form, so that later updates overwrite it in place.
    if (!seqOk) {
      if (existsSync(dir)) q.saveSeq(true);
      else q.seqDirty = true; // written once the folder can be created
    }
    return q;
  }

  private lock(): void {
    const lockFile = join(this.dir, 'lock');
    if (existsSync(lockFile)) {
      const pid = lockHolder(startFileText(this.dir, lockFile));
      if (pid) throw new QueueLockedError(`queue folder ${this.dir} is in use by process ${pid} (another gateway with the same queue.dir?)`);
    }
    try {
      writeFileSync(lockFile, lockLine());
      this.lockPending = false;
    } catch (e) {
      // A full disk, or a folder a full disk did not let us create: taken when it can be.
      if (!isDiskFull(e) && this.state === 'ok') throw new QueueFolderError(`queue.dir ${this.dir}: ${(e as Error).message}`);
      this.lockPending = true;
      this.failed(e, 'writing the lock file');
    }
  }

  /** Writes what is in memory to disk if it can (a last try), stops retrying, releases the folder's lock. */
  close(): void {
    if (this.closed) return;
    if (this.state !== 'ok') this.recover();
    this.closed = true;
    if (this.dropTimer) clearTimeout(this.dropTimer);
    this.dropTimer = null;
    this.logHeldDrops();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.memory.size)
      this.opts.log?.error(
        { code: this.state, windows: this.memory.size, first_seq: this.memory.keys().next().value },
        'queue: windows kept in memory could not be written to disk and are lost',
      );
    const lockFile = join(this.dir, 'lock');
    try {
      if (lockPid(readFileSync(lockFile, 'utf8')) === process.pid) unlinkSync(lockFile);
    } catch {
      /* already gone */
    }
  }

  get depth(): number {
    return this.seqs.length - this.head;
  }

  /** Queued windows whose file this process could not read when their turn to be sent came (kept on disk, counted in depth). */
  get unreadableCount(): number {
    return this.unreadable.size;
  }

  /**
   * The queued windows that cannot be read, and the fix, as a sentence for /healthz; null when none.
   * Names the first one's file, owner and mode, and this process's user.
   */
  unreadableProblem(): string | null {
    const first = this.unreadable.keys().next();
    if (first.done) return null;
    const seq = first.value;
    const file = this.file(seq);
    let how = this.unreadable.get(seq)!;
    try {
      const st = statSync(file);
      how = `owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, ${how}`;
    } catch {
      /* gone meanwhile: the errno says why it could not be read */
    }
    const user = currentUser();
    const n = this.unreadable.size;
    return `${n} queued window${n === 1 ? '' : 's'} cannot be read by user ${user} (${file}: ${how}): kept on disk and counted in queue_depth, sent once they can be read; fix: make the queue folder the gateway user's and readable, e.g. ${this.unreadableFix()}`;
  }

  /** The commands that give the queue folder back to this process's user. */
  private unreadableFix(): string {
    return `sudo chown -R ${currentUser()} ${this.dir} && sudo chmod -R u+rwX ${this.dir}`;
  }

  /**
   * The queued windows that could not be read and can be now, taken off the unreadable list (so the
   * publisher sends them); tried at most every UNREADABLE_RECHECK_MS, in the order they were found, at most
   * UNREADABLE_RECHECK_BATCH at a time. Each is read once: its text is kept for read(). The same
   * recheck tests the next UNREADABLE_SCAN_BATCH queued files with access() (scanUnreadable), so a file
   * behind others that cannot be read is noticed before its turn comes. Empty when none.
   */
  readableAgain(): number[] {
    const now = this.now();
    if (now - this.unreadableCheckedAt < UNREADABLE_RECHECK_MS) return [];
    this.unreadableCheckedAt = now;
    const out: number[] = [];
    let tried = 0;
    for (const seq of [...this.unreadable.keys()]) {
      if (tried++ >= UNREADABLE_RECHECK_BATCH) break;
      try {
        // not access(): root may access any file, and EIO or EISDIR are no permission
        this.readBack.set(seq, readFileSync(this.file(seq), 'utf8'));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') continue;
      }
      this.unreadable.delete(seq);
      out.push(seq);
    }
    if (out.length)
      this.opts.log?.info(
        { seqs: out.length === 1 ? String(out[0]) : `${out[0]}-${out.at(-1)}`, windows: out.length, unreadable: this.unreadable.size },
        'queue: window files that could not be read can be read now; sending them',
      );
    this.scanUnreadable();
    return out;
  }

  /**
   * Tests the next UNREADABLE_SCAN_BATCH queued files on disk (after the last one tested, going round
   * the queue) with access(), and puts those this process may not read on the unreadable list, logged
   * once: queue_unreadable and /healthz say so before their turn to be sent comes. access() does not
   * see what only a read would (root may access any file; EIO): those are found when their turn comes.
   */
  scanUnreadable(): void {
    let batch = this.pending(this.scannedUpTo, UNREADABLE_SCAN_BATCH);
    if (batch.length === 0 && this.scannedUpTo > 0) batch = this.pending(0, UNREADABLE_SCAN_BATCH);
    this.scannedUpTo = batch.length < UNREADABLE_SCAN_BATCH ? 0 : batch.at(-1)!;
    const found: number[] = [];
    for (const seq of batch) {
      if (this.memory.has(seq) || this.unreadable.has(seq) || this.readBack.has(seq) || readable(this.file(seq))) continue;
      if (!existsSync(this.file(seq))) continue;
      this.unreadable.set(seq, 'EACCES');
      found.push(seq);
    }
    if (found.length) this.logUnreadable(found[0]!, 'EACCES', found.length);
  }

  /** The one line saying that queued window files (`n`, the first `seq`) cannot be read now. */
  private logUnreadable(seq: number, errno: string, n = 1): void {
    this.opts.log?.error(
      {
        seq,
        ...(n > 1 ? { windows: n } : {}),
        errno,
        file: this.file(seq),
        unreadable: this.unreadable.size,
        queue_depth: this.depth,
        fix: `if its owner or mode was changed, make the queue folder the gateway user's (${currentUser()}) and readable: ${this.unreadableFix()}`,
      },
      'queue: window file cannot be read now; kept on disk and queued (counted in queue_depth and queue_unreadable), sent once it can be read',
    );
  }

  /** Windows held in memory only (the folder could not be written). */
  get inMemory(): number {
    return this.memory.size;
  }

  /** The sequence number the next window gets. */
  get nextSeq(): number {
    return this.lastSeq + 1;
  }

  /**
   * Stores a closed window (message.seq must be nextSeq): durably on disk, or in memory while the
   * folder cannot be written. Drops the oldest past the bound. Never throws for a disk problem.
   */
  append(message: CountsMessage): void {
    if (message.seq !== this.lastSeq + 1) throw new Error(`queue: seq ${message.seq} out of order (expected ${this.lastSeq + 1})`);
    this.dropWhile(
      () => this.depth >= this.opts.maxWindows,
      () => this.seqs[this.head],
      'queue full: dropped the oldest unpublished window',
    );
    const json = JSON.stringify(message);
    if (this.state === 'ok') {
      try {
        writeDurably(this.file(message.seq), json, this.windowsDir);
        this.lastSeq = message.seq;
        this.seqs.push(message.seq);
        return;
      } catch (e) {
        this.failed(e, `writing window ${message.seq}`);
      }
    }
    this.lastSeq = message.seq;
    this.seqs.push(message.seq);
    this.memory.set(message.seq, json);
    const max = this.opts.memoryWindows ?? MEMORY_WINDOWS;
    this.dropWhile(
      () => this.memory.size > max,
      () => this.memory.keys().next().value!,
      'queue folder not writable and too many windows in memory: dropped the oldest',
    );
    // Nothing on disk carries this seq: the seq file does (updated in place, no space needed).
    this.saveSeq();
  }

  /** Drops the oldest window while `over()`, and logs it once: one line however many went (a
   *  max_windows lowered below the backlog drops thousands at the first window). */
  private dropWhile(over: () => boolean, oldest: () => number, why: string): void {
    let first: number | null = null;
    let last = 0;
    let n = 0;
    while (over()) {
      const seq = oldest();
      if (seq === this.lastSeq) this.saveSeq();
      this.forget(seq);
      this.dropped++;
      first ??= seq;
      last = seq;
      n++;
    }
    if (n === 0) return;
    // One line when dropping starts, then at most one per DROP_LOG_MS naming all the windows dropped
    // since the last line: the drops are counted (`dropped`, the metrics) whether logged or not.
    const now = this.now();
    const held = this.dropLog.get(why);
    if (held && now - held.at < DROP_LOG_MS) {
      if (held.n === 0) held.first = first!;
      held.n += n;
      held.last = last;
      // ... and when the drops stop (the broker is back), the held ones still get their line at the
      // end of the minute, not only at stop (weeks later, or never after a power cut)
      this.flushHeldDropsIn(DROP_LOG_MS - (now - held.at));
      return;
    }
    if (held && held.n > 0) {
      n += held.n;
      first = held.first;
    }
    this.dropLog.set(why, { at: now, n: 0, first: 0, last: 0 });
    this.logDrops(why, first!, last, n);
  }

  private logDrops(why: string, first: number, last: number, n: number): void {
    const which = n === 1 ? { seq: first } : { seqs: `${first}-${last}`, windows: n };
    this.opts.log?.warn({ ...which, max_windows: this.opts.maxWindows, in_memory: this.memory.size, dropped: this.dropped }, why);
  }

  /** The monotonic clock of the drop lines. */
  private now(): number {
    return (this.opts.now ?? performance.now.bind(performance))();
  }

  /**
   * Logs the drops held back since each reason's last line; each such reason starts its next minute
   * at `at` (the timer), or keeps its own (at close: none goes unlogged).
   */
  private logHeldDrops(at?: number): void {
    for (const [why, held] of this.dropLog) {
      if (held.n === 0) continue;
      this.logDrops(why, held.first, held.last, held.n);
      this.dropLog.set(why, { at: at ?? held.at, n: 0, first: 0, last: 0 });
    }
  }

  /** Logs the drops still held back `ms` from now (one timer for every reason). */
  private flushHeldDropsIn(ms: number): void {
    if (this.dropTimer || this.closed) return;
    this.dropTimer = setTimeout(
      () => {
        this.dropTimer = null;
        this.logHeldDrops(this.now());
      },
      Math.max(0, ms),
    );
    this.dropTimer.unref();
  }

  /** Up to `n` queued sequence numbers after `after` (exclusive), oldest first. */
  pending(after: number, n: number): number[] {
    const out: number[] = [];
    // seqs is sorted: binary search for the first one after `after`.
    let lo = this.head;
    let hi = this.seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqs[mid] <= after) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.seqs.length && out.length < n; i++) out.push(this.seqs[i]);
    return out;
  }

  /**
   * The stored window, or null if it is gone (dropped) or cannot be read: a file that is not JSON (a
   * torn write) is removed and logged; one the system will not read now (EACCES, EIO, EMFILE, ...)
   * is logged (once) and kept, queued and counted in depth, on the unreadable list (unreadableCount,
   * the status's queue_unreadable) until readableAgain() finds it readable (open() refuses a folder
   * with files this user may not read at start, naming the fix).
   */
  read(seq: number): CountsMessage | null {
    const kept = this.memory.get(seq);
    if (kept !== undefined) return JSON.parse(kept) as CountsMessage;
    // One on the unreadable list waits for the recheck (readableAgain), which reads it once for good.
    if (this.unreadable.has(seq)) return null;
    let text = this.readBack.get(seq);
    this.readBack.delete(seq);
    if (text === undefined)
      try {
        text = readFileSync(this.file(seq), 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && this.has(seq)) {
          // Gone while queued (removed by hand, or a symlink to no file): there is nothing to send.
          // Left queued, it held queue_depth above 0 for good (a dangling symlink across restarts too)
          // and a gateway replaying files waited in 'publishing queued windows' for ever.
          this.opts.log?.error(
            { seq, file: this.file(seq), queue_depth: this.depth - 1 },
            'queue: window file is gone (removed while queued, or a symlink to no file): taken out of the queue, not sent',
          );
          this.remove(seq);
        } else if (code !== 'ENOENT' && this.has(seq)) {
          const errno = typeof code === 'string' ? code : 'unknown';
          this.unreadable.set(seq, errno);
          this.logUnreadable(seq, errno);
        }
        return null;
      }
    try {
      return JSON.parse(text) as CountsMessage;
    } catch {
      // "not JSON" without JSON.parse's message: that quotes a piece of the file, which after a torn
      // write can be any bytes that were on the disk there
      this.opts.log?.error({ seq, problem: 'not JSON' }, 'queue: unreadable window file removed');
      this.remove(seq);
      return null;
    }
  }

  has(seq: number): boolean {
    return this.seqs.indexOf(seq, this.head) >= 0;
  }

  /** Removes an acknowledged window. */
  remove(seq: number): void {
    if (this.seqs.indexOf(seq, this.head) < 0) return;
    // While windows are queued the newest file carries the last seq; before the newest goes, the
    // seq file takes over, so seq never goes back after a restart.
    if (seq === this.lastSeq && !this.saveSeq() && !this.memory.has(seq)) {
      // The seq file cannot be written: the acknowledged file stays as the record of the last seq
      // (sent once more after a restart, same seq and payload) until the seq file can be written.
      this.forget(seq, false);
      if (this.seqMarker !== null) this.unlink(this.seqMarker);
      this.seqMarker = seq;
      return;
    }
    this.forget(seq);
  }

  /** Takes `seq` out of the queue (and its file or memory copy unless keepFile). */
  private forget(seq: number, deleteData = true): void {
    const i = this.seqs.indexOf(seq, this.head);
    if (i < 0) return;
    this.unreadable.delete(seq);
    this.readBack.delete(seq);
    if (i === this.head)
      this.head++; // the usual case: acknowledgements come oldest first
    else this.seqs.splice(i, 1);
    if (this.head > 1024 && this.head * 2 > this.seqs.length) {
      this.seqs = this.seqs.slice(this.head);
      this.head = 0;
    }
    if (this.memory.delete(seq) || !deleteData) return;
    this.unlink(seq);
  }

  /**
   * Writes the last seq into the seq file, in place (no free space needed once the file exists),
   * or creates (`replace`: replaces) it durably. False (and retried later) when that fails.
   */
  private saveSeq(replace = false): boolean {
    const path = join(this.dir, 'seq');
    const text = `${String(this.lastSeq).padStart(SEQ_WIDTH - 1, ' ')}\n`;
    try {
      if (replace || !existsSync(path)) writeDurably(path, text, this.dir);
      else {
        const fd = openSync(path, 'r+');
        try {
          writeAll(fd, Buffer.from(text), 0);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
    } catch (e) {
      this.seqDirty = true;
      this.failed(e, 'writing the seq file');
      return false;
    }
    this.seqDirty = false;
    if (this.seqMarker !== null) {
      this.unlink(this.seqMarker);
      this.seqMarker = null;
    }
    return true;
  }

  /** A write failed: into (or stay in) the degraded state, and retry later. */
  private failed(e: unknown, what: string): void {
    // A file missing in a folder the full disk did not let us create is still the full disk.
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT' && this.state !== 'ok';
    const state: QueueState = isDiskFull(e) ? 'disk_full' : missing ? this.state : 'write_failed';
    const fields = {
      code: state,
      errno: (e as NodeJS.ErrnoException).code,
      err: (e as Error).message,
      queue_dir: this.dir,
      in_memory: this.memory.size,
      retry_in_ms: this.retryMs,
    };
    if (this.state !== state) {
      this.state = state;
      this.opts.log?.error(
        fields,
        state === 'disk_full'
          ? `queue folder full (${what}): windows are kept in memory and published from there; retrying`
          : `cannot write the queue folder (${what}): windows are kept in memory and published from there; retrying`,
      );
      this.opts.onStateChange?.(state);
    } else this.opts.log?.debug(fields, `queue folder still not writable (${what})`);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.recover();
    }, wait);
    this.retryTimer.unref();
  }

  /**
   * Tries to leave the degraded state: the folder, the lock, the seq file, then every window in
   * memory, oldest first. True when all of it is on disk again.
   */
  recover(): boolean {
    if (this.state === 'ok' || this.closed) return this.state === 'ok';
    let written = 0;
    try {
      makeFolders(this.windowsDir, 0o750);
      if (this.lockPending) {
        writeFileSync(join(this.dir, 'lock'), lockLine());
        this.lockPending = false;
      }
      if (this.memory.size === 0) {
        // Nothing to write (every window held was acknowledged from memory): prove that a file
        // can be written before saying so (a *.tmp name: removed at start if a crash leaves it).
        const check = join(this.dir, 'write-check.tmp');
        writeDurably(check, 'ok\n', this.dir);
        unlinkSync(check);
      }
      for (const [seq, json] of this.memory) {
        writeDurably(this.file(seq), json, this.windowsDir);
        this.memory.delete(seq);
        written++;
      }
      if (this.seqDirty && !this.saveSeq(true)) return false;
    } catch (e) {
      this.failed(e, written ? `writing windows kept in memory (${written} written)` : 'retrying');
      return false;
    }
    const was = this.state;
    this.state = 'ok';
    this.retryMs = RETRY_MIN_MS;
    this.opts.log?.info({ was, written, queue_depth: this.depth }, 'queue folder writable again; windows kept in memory are on disk');
    this.opts.onStateChange?.('ok');
    return true;
  }

  /**
   * A window file named without the queue's zero padding (7.json, put there by hand): renamed to
   * its padded name, by which it is read and removed. Counted under its own name, it was never read
   * (the padded name does not exist: taken for a window already gone), never sent nor removed, and
   * held queue_depth above 0 for good (a gateway replaying files waited for it forever). False when
   * it cannot be (another file holds its seq, or the rename fails): it is logged and left out.
   */
  private rename(name: string, seq: number): boolean {
    const from = join(this.windowsDir, name);
    const to = this.file(seq);
    try {
      if (existsSync(to)) throw Object.assign(new Error('another file holds its seq'), { code: 'EEXIST' });
      renameSync(from, to);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      this.opts.log?.error(
        {
          file: from,
          seq,
          errno: typeof code === 'string' ? code : 'unknown',
          fix: `rename it to ${basename(to)}${code === 'EEXIST' ? ' once that one is sent, or delete it' : ''}`,
        },
        code === 'EEXIST'
          ? `queue: window file ${name} has the seq of ${basename(to)}, also queued: left out, not sent`
          : `queue: window file ${name} is not named as the queue names its files and cannot be renamed to ${basename(to)}: left out, not sent`,
      );
      return false;
    }
  }

  private file(seq: number): string {
    return join(this.windowsDir, `${String(seq).padStart(12, '0')}.json`);
  }

  private unlink(seq: number): void {
    this.unlinkPath(this.file(seq));
  }

  private unlinkPath(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}
