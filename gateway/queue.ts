// The durable window queue: every closed window is written here (fsync'd file, then an fsync'd
// rename) before it is published, and removed only once the broker has acknowledged it (PUBACK).
// The folder also keeps the last sequence number, so `seq` goes on across restarts.
//
// Layout of the queue folder:
//   seq                    last sequence number given to a window, written before the newest
//                          window file is removed (while windows are queued the newest one's
//                          name carries it)
//   windows/<seq>.json     one counts message per unacknowledged window (counts only: the
//                          contract's payload, nothing per device)
//   lock                   pid of the gateway using the folder
//
// Bound: at most `maxWindows` windows are kept. When a new window would exceed it, the OLDEST
// queued window is deleted, a warning is logged and the `dropped` counter (published in status as
// queue_dropped) goes up. Newest data wins because it is what operators look at first.
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CountsMessage } from '../contract/index.ts';

const NAME_RE = /^(\d{1,16})\.json$/;

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

/** Writes `data` to `path` atomically and durably: temp file, fsync, rename, fsync folder. */
export function writeDurably(path: string, data: string | Buffer, dir: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o640);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(dir);
}

export class QueueLockedError extends Error {}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface QueueOptions {
  maxWindows: number;
  log?: Logger;
}

export class WindowQueue {
  private readonly windowsDir: string;
  /** Queued sequence numbers, oldest first. */
  private seqs: number[] = [];
  /** seqs[0 .. head) are removed (compacted now and then). */
  private head = 0;
  private lastSeq = 0;
  /** Windows dropped by the size bound since this process started. */
  dropped = 0;

  private constructor(readonly dir: string, private readonly opts: QueueOptions) {
    this.windowsDir = join(dir, 'windows');
  }

  /** Opens (creating if needed) the queue folder; takes its lock. */
  static open(dir: string, opts: QueueOptions): WindowQueue {
    const q = new WindowQueue(dir, opts);
    mkdirSync(q.windowsDir, { recursive: true, mode: 0o750 });
    q.lock();
    const seqFile = join(dir, 'seq');
    if (existsSync(seqFile)) {
      const n = Number(readFileSync(seqFile, 'utf8').trim());
      if (Number.isSafeInteger(n) && n >= 0) q.lastSeq = n;
      else opts.log?.warn({ file: seqFile }, 'queue: seq file unreadable; continuing from the queued windows');
    }
    for (const f of readdirSync(q.windowsDir)) {
      const m = NAME_RE.exec(f);
      if (m) q.seqs.push(Number(m[1]));
      else if (f.endsWith('.tmp')) unlinkSync(join(q.windowsDir, f)); // a write cut short by a crash
    }
    q.seqs.sort((a, b) => a - b);
    if (q.seqs.length) q.lastSeq = Math.max(q.lastSeq, q.seqs[q.seqs.length - 1]);
    return q;
  }

  private lock(): void {
    const lockFile = join(this.dir, 'lock');
    if (existsSync(lockFile)) {
      const pid = Number(readFileSync(lockFile, 'utf8').trim());
      if (pid && pid !== process.pid && pidAlive(pid))
        throw new QueueLockedError(`queue folder ${this.dir} is in use by process ${pid} (another gateway with the same queue.dir?)`);
    }
    writeFileSync(lockFile, `${process.pid}\n`);
  }

  /** Releases the folder's lock. */
  close(): void {
    const lockFile = join(this.dir, 'lock');
    try {
      if (Number(readFileSync(lockFile, 'utf8').trim()) === process.pid) unlinkSync(lockFile);
    } catch {
      /* already gone */
    }
  }

  get depth(): number {
    return this.seqs.length - this.head;
  }

  /** The sequence number the next window gets. */
  get nextSeq(): number {
    return this.lastSeq + 1;
  }

  /** Stores a closed window durably (message.seq must be nextSeq). Drops the oldest past the bound. */
  append(message: CountsMessage): void {
    if (message.seq !== this.lastSeq + 1) throw new Error(`queue: seq ${message.seq} out of order (expected ${this.lastSeq + 1})`);
    while (this.depth >= this.opts.maxWindows) {
      const old = this.seqs[this.head++];
      if (old === this.lastSeq) this.saveSeq();
      this.unlink(old);
      this.dropped++;
      this.opts.log?.warn({ seq: old, max_windows: this.opts.maxWindows, dropped: this.dropped }, 'queue full: dropped the oldest unpublished window');
    }
    writeDurably(this.file(message.seq), JSON.stringify(message), this.windowsDir);
    this.lastSeq = message.seq;
    this.seqs.push(message.seq);
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

  /** The stored window, or null if it is gone (dropped) or unreadable (then removed and logged). */
  read(seq: number): CountsMessage | null {
    try {
      return JSON.parse(readFileSync(this.file(seq), 'utf8')) as CountsMessage;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.opts.log?.error({ seq, err: (e as Error).message }, 'queue: unreadable window file removed');
        this.remove(seq);
      }
      return null;
    }
  }

  has(seq: number): boolean {
    return this.seqs.indexOf(seq, this.head) >= 0;
  }

  /** Removes an acknowledged window. */
  remove(seq: number): void {
    const i = this.seqs.indexOf(seq, this.head);
    if (i < 0) return;
    // While windows are queued the newest file carries the last seq; before the newest goes, the
    // seq file takes over, so seq never goes back after a restart.
    if (seq === this.lastSeq) this.saveSeq();
    if (i === this.head) this.head++; // the usual case: acknowledgements come oldest first
    else this.seqs.splice(i, 1);
    if (this.head > 1024 && this.head * 2 > this.seqs.length) {
      this.seqs = this.seqs.slice(this.head);
      this.head = 0;
    }
    this.unlink(seq);
  }

  private saveSeq(): void {
    writeDurably(join(this.dir, 'seq'), `${this.lastSeq}\n`, this.dir);
  }

  private file(seq: number): string {
    return join(this.windowsDir, `${String(seq).padStart(12, '0')}.json`);
  }

  private unlink(seq: number): void {
    try {
      unlinkSync(this.file(seq));
    } catch {
      /* already gone */
    }
  }
}
