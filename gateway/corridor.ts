// A gateway's corridor group (issue 13): its secret file, the sketch message per window and the
// bounded in-memory queue the sketches wait in for the broker. The firmware makes the sketch
// (firmware/assembly/sketch.ts) under an epoch key the wrapper derives from the group secret
// (Firmware.setCorridor); this file only reads the secret, wraps what the firmware returns into the
// contract's sketch message and holds it until the broker acknowledges it.
//
// The secret: 32 bytes from a CSPRNG, written by `presence corridor init` as one line of 64 hex
// digits in a file of mode 0600, read here once at start. It never goes into a log line, the status,
// /metrics or an MQTT message. Sketches are never written to disk (not to the durable window queue
// either): they wait in memory, at most SKETCH_QUEUE_MAX of them, each at most one epoch long.
import { closeSync, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { CONTRACT_VERSION, ID_PATTERN, type SketchMessage } from '../contract/index.ts';
import type { FirmwareSketch } from '../firmware/host/types.ts';
import { ConfigError, CORRIDOR_HINT, parseDuration, sketchPMissing, type GatewayConfig } from './config.ts';
import type { Identity } from './window.ts';
import { currentUser, MAX_SECRET_BYTES, missingSecretFile } from '../scripts/lib/secrets.ts';

/** Bytes of a group secret. */
export const SECRET_BYTES = 32;
/** Sketches held at most while the broker is away (1 h of 60-s windows, twice). */
export const SKETCH_QUEUE_MAX = 120;

/** A corridor group as the gateway runs it (the secret read from its file). */
export interface Corridor {
  group: string;
  secret: Uint8Array;
  epochMs: number;
  bits: number;
  p: number;
}

/** The text of a secret file: 64 lower-case hex digits and a newline. */
export function secretText(secret: Uint8Array): string {
  return `${Buffer.from(secret).toString('hex')}\n`;
}

const isHex = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
const hexValue = (c: number) => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10);
const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0b || c === 0x0c;

/**
 * The group secret in the bytes of a secret file (first line, 64 hex digits; a UTF-8 byte order
 * mark and white space around it are skipped), decoded into an array of its own. No string and no
 * Buffer from Node's shared pool holds it on the way (nothing would ever zero-fill those): the
 * caller zero-fills `bytes` and, once done with it, the result. Throws an Error whose message says
 * what is wrong without quoting the content.
 */
export function parseSecretBytes(bytes: Uint8Array): Uint8Array {
  let from = 0;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) from = 3;
  let to = bytes.indexOf(0x0a, from);
  if (to < 0) to = bytes.length;
  while (from < to && isSpace(bytes[from]!)) from++;
  while (to > from && isSpace(bytes[to - 1]!)) to--;
  for (let i = from; i < to; i++)
    if (!isHex(bytes[i]!)) throw new Error(`the first line must be ${SECRET_BYTES * 2} hex digits (0-9, a-f) and has other characters`);
  if (to - from !== SECRET_BYTES * 2) throw new Error(`the first line must be ${SECRET_BYTES * 2} hex digits (${SECRET_BYTES} bytes), it has ${to - from}`);
  const secret = new Uint8Array(SECRET_BYTES);
  for (let i = 0; i < SECRET_BYTES; i++) secret[i] = (hexValue(bytes[from + 2 * i]!) << 4) | hexValue(bytes[from + 2 * i + 1]!);
  return secret;
}

/**
 * The group secret in a file's text (first line, 64 hex digits), for a text already read (`presence
 * corridor join`'s copy). Decoded into an array of its own, not Node's shared Buffer pool. Throws an
 * Error whose message says what is wrong without quoting the file's content.
 */
export function parseSecret(text: string): Uint8Array {
  const bytes = new Uint8Array(Buffer.byteLength(text));
  Buffer.from(bytes.buffer).write(text, 'utf8');
  try {
    return parseSecretBytes(bytes);
  } finally {
    bytes.fill(0);
  }
}

/**
 * Reads and checks a secret file: a regular file, not readable by group or others, one line of 64
 * hex digits. Throws ConfigError (one line, naming `key` and the file; never the content) with the
 * hint. The file is read into a buffer of its own (not Node's shared pool), zero-filled once the
 * secret is decoded, so the only copy left is the one returned, which the caller zero-fills.
 */
export function readSecret(path: string, key = 'corridor.secret_file'): Uint8Array {
  const fail = (what: string) => Object.assign(new ConfigError([`${key}: ${path} ${what}`], 'configuration'), { hint: CORRIDOR_HINT });
  /** A regular file that only its owner can read (or the error saying what it is instead). */
  const check = (st: Stats): Stats => {
    if (!st.isFile()) throw fail('is not a file');
    if ((st.mode & 0o077) !== 0) throw fail(`can be read by others than its owner (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 ${path}`);
    return st;
  };
  let fd: number | null = null;
  let buf: Buffer | null = null;
  let n = 0;
  try {
    try {
      // checked before it is opened: opening a fifo would wait for a writer
      check(statSync(path));
      fd = openSync(path, 'r');
      const fst = check(fstatSync(fd));
      buf = Buffer.allocUnsafeSlow(Math.min(fst.size, MAX_SECRET_BYTES));
      while (n < buf.length) {
        const got = readSync(fd, buf, n, buf.length - n, n);
        if (got === 0) break;
        n += got;
      }
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      // a root-owned copy (a join run as root before it gave the file to the service's user): the chown, as for mqtt.password_file
      const user = currentUser();
      // The secret written where the path of its file goes (no / as given) is not echoed.
      if (code === 'ENOENT') throw Object.assign(new ConfigError([missingSecretFile(key, path)], 'configuration'), { hint: CORRIDOR_HINT });
      throw fail(
        code === 'ENOENT'
          ? 'does not exist'
          : code === 'EACCES'
            ? `cannot be read by ${user}, who runs the gateway (permission denied): chown ${user} ${path} && chmod 600 ${path}`
            : `cannot be read (${code ?? 'error'})`,
      );
    }
    try {
      return parseSecretBytes(buf.subarray(0, n));
    } catch (e) {
      throw fail(`does not hold a group secret: ${(e as Error).message}`);
    }
  } finally {
    buf?.fill(0);
    if (fd !== null) closeSync(fd);
  }
}

/** The gateway's corridor group with its secret, or null without corridor.group. Throws ConfigError. */
export function corridorOf(cfg: GatewayConfig): Corridor | null {
  const c = cfg.corridor;
  if (!c?.group || !c.secret_file) return null;
  if (!new RegExp(ID_PATTERN).test(c.group)) throw new ConfigError([`corridor.group: "${c.group}" is not an id`], 'configuration');
  if (c.sketch_p === undefined) throw new ConfigError([sketchPMissing()], 'configuration');
  return { group: c.group, secret: readSecret(c.secret_file), epochMs: parseDuration(c.epoch), bits: c.sketch_bits, p: c.sketch_p };
}

/** The contract's sketch message of one closed window (the same start and end as its counts message). */
export function sketchMessage(id: Identity, span: { start: number; end: number }, s: FirmwareSketch): SketchMessage {
  return {
    v: CONTRACT_VERSION,
    site: id.site,
    gateway: id.gateway,
    group: s.group,
    epoch: s.epoch,
    epoch_s: s.epochMs / 1000,
    window_start: new Date(span.start).toISOString(),
    window_end: new Date(span.end).toISOString(),
    m: s.m,
    p: s.p,
    bits: Buffer.from(s.bits).toString('base64'),
    key_check: s.keyCheck,
  };
}

export type SketchDrop = 'full' | 'expired' | 'refused' | 'invalid';

interface Entry {
  message: SketchMessage;
  queuedAt: number;
  inflight: boolean;
}

/**
 * Sketches waiting for the broker, in memory only: at most `max`; when full the oldest is dropped,
 * and one held longer than an epoch (by the wall clock) is dropped as expired.
 */
export class SketchQueue {
  private entries: Entry[] = [];
  constructor(
    readonly max: number,
    readonly maxAgeMs: number,
    private readonly onDrop: (reason: SketchDrop) => void,
  ) {}

  get depth(): number {
    return this.entries.length;
  }

  push(message: SketchMessage, now = Date.now()): void {
    this.expire(now);
    while (this.entries.length >= this.max) {
      const i = this.entries.findIndex((e) => !e.inflight);
      if (i < 0) break;
      this.entries.splice(i, 1);
      this.onDrop('full');
    }
    this.entries.push({ message, queuedAt: now, inflight: false });
  }

  /** Drops sketches held longer than maxAgeMs (not those in flight). */
  expire(now = Date.now()): void {
    const keep: Entry[] = [];
    for (const e of this.entries) {
      if (!e.inflight && now - e.queuedAt > this.maxAgeMs) this.onDrop('expired');
      else keep.push(e);
    }
    this.entries = keep;
  }

  /** Sketches not in flight, oldest first; each is marked in flight. */
  take(now = Date.now()): Array<{ message: SketchMessage; settle: (sent: boolean | SketchDrop) => void }> {
    this.expire(now);
    const out: Array<{ message: SketchMessage; settle: (sent: boolean | SketchDrop) => void }> = [];
    for (const e of this.entries) {
      if (e.inflight) continue;
      e.inflight = true;
      out.push({
        message: e.message,
        // true: acknowledged (removed); false: not sent (stays, sent again later); a reason: dropped
        settle: (sent) => {
          e.inflight = false;
          if (sent === false) return;
          const i = this.entries.indexOf(e);
          if (i >= 0) this.entries.splice(i, 1);
          if (sent !== true) this.onDrop(sent);
        },
      });
    }
    return out;
  }

  /** Forgets every sketch (the gateway stops: sketches are never kept). */
  clear(): void {
    this.entries = [];
  }
}
