// Streaming pcap / pcapng reader. Push-based: feed it chunks as they arrive from a file, stdin or a
// command's stdout, get back the complete frames. Never crashes on garbage: every problem becomes a
// CaptureFormatError naming the source and the byte offset, raised only after every frame before
// the bad spot was handed out.
//
// Formats: pcap (both byte orders, microsecond and nanosecond magic, and the "modified" pcap of old
// Linux tcpdump builds); pcapng (SHB in both byte orders, several sections, IDB with if_tsresol and
// if_tsoffset, EPB, SPB, OPB; unknown blocks are skipped; several interfaces with different link
// types). A new file header where a record should start (a writer restarted on the same pipe,
// captures joined with cat) starts a new section, in either format.

import { readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { RecordBatchBuilder, type RecordBatch } from '../../firmware/host/batch.ts';
import type { CaptureSplitter } from '../../firmware/host/capture-split.ts';
import type { Frame } from '../../firmware/host/types.ts';
import { LINKTYPE, LINKTYPE_MASK, SUPPORTED_LINKTYPES } from '../../firmware/host/types.ts';

/**
 * What is wrong with a capture, as a fixed word (for logs: unlike the error's sentence, it holds
 * no value read from the stream, so no byte of a frame).
 */
export type CaptureDamage =
  | 'empty'
  | 'not_a_capture'
  | 'unsupported_version'
  | 'ends_inside_file_header'
  | 'ends_inside_record'
  | 'oversized_record'
  | 'bad_byte_order_magic'
  | 'bad_block_length'
  | 'block_length_mismatch'
  | 'block_too_short'
  | 'packet_overruns_block'
  | 'unknown_interface'
  | 'bad_interface_option'
  | 'too_many_interfaces';

/**
 * What to do about a capture that is no capture, empty, damaged or cut short: a fixed sentence (it
 * quotes nothing read from the stream), for the gateway's "source failed" line and replay's error.
 */
export function captureDamageFix(damage: CaptureDamage, framesBefore: number): string {
  if (damage === 'empty') return 'give a capture that holds frames (on a pipe: start the capture tool first, e.g. tcpdump -U -w -)';
  if (damage === 'not_a_capture') return 'give a pcap or pcapng capture, as tcpdump -w or dumpcap -w write them';
  const what =
    damage === 'ends_inside_record' || damage === 'ends_inside_file_header'
      ? 'the capture was cut short (its recorder stopped in the middle of a block)'
      : 'the capture is damaged there';
  return framesBefore > 0
    ? `${what}: the frames before it were counted, none after it; check the recorder (a full disk, a crash, a copy cut short) for the rest`
    : `${what}, before its first frame: give a complete copy of the capture`;
}

/**
 * What to do about a capture command whose standard output is no capture, or turns damaged: a fixed
 * sentence (it quotes nothing read from the stream), for the gateway's "capture command stopped;
 * restarting" line and doctor's frames check. A file's fix (give a complete copy) does not apply:
 * the bytes come from the command, which is what to change (tcpdump without -w prints text there).
 */
export function commandDamageFix(damage: CaptureDamage, framesBefore: number): string {
  const tool = '(tcpdump -U -w -, dumpcap -q -w -, tshark -w -)';
  if (damage === 'empty') return 'the command ended without writing a byte to its standard output: run it by hand to see its error';
  if (framesBefore === 0 && damage === 'not_a_capture')
    return `the command writes something other than pcap or pcapng to its standard output (tcpdump without -w - prints text lines there): have the capture tool write the capture to stdout ${tool}`;
  const counted = framesBefore > 0 ? 'the frames before it were counted; ' : '';
  if (damage === 'ends_inside_record' || damage === 'ends_inside_file_header')
    return `${counted}the command's output ended inside a record (the tool stopped or was stopped while writing): run the command by hand to see why it stops; the gateway restarts it`;
  return `${counted}the command's output is damaged there: have the capture tool write the capture alone to stdout ${tool}, with nothing else writing there (a script's echo, a wrapper's messages: send them to stderr)`;
}

/**
 * A capture that is not pcap/pcapng, or is damaged or cut short. The message names what is wrong
 * and the byte offset, and quotes no value read from the stream (a block's type or length, a
 * record's length, an interface id, a file's first bytes: on a damaged stream they can be bytes of
 * a device address), so it can be printed as it is (test/capture-error-text.test.ts).
 */
export class CaptureFormatError extends Error {
  readonly source: string;
  /** Stream offset of the damage (a count of bytes, no value read from the stream). */
  readonly offset: number;
  readonly damage: CaptureDamage;
  constructor(source: string, offset: number, problem: string, damage: CaptureDamage) {
    super(`${source}: ${problem} (at byte offset ${offset})`);
    this.name = 'CaptureFormatError';
    this.source = source;
    this.offset = offset;
    this.damage = damage;
  }
}

/** A capture whose link type the firmware cannot parse. */
export class UnsupportedLinkTypeError extends Error {
  readonly source: string;
  readonly linkType: number;
  constructor(source: string, linkType: number) {
    super(
      `${source}: link type ${linkTypeName(linkType)} is not supported; supported link types: ` +
        [...SUPPORTED_LINKTYPES]
          .sort((a, b) => a - b)
          .map(linkTypeName)
          .join(', '),
    );
    this.name = 'UnsupportedLinkTypeError';
    this.source = source;
    this.linkType = linkType;
  }
}

const LINKTYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(LINKTYPE).map(([name, value]) => [value, name]));
const OTHER_NAMES: Record<number, string> = {
  0: 'NULL',
  1: 'ETHERNET',
  101: 'RAW',
  113: 'LINUX_SLL',
  119: 'PRISM_HEADER',
  147: 'USER0',
  163: 'IEEE802_11_AVS',
  187: 'BLUETOOTH_HCI_H4',
  276: 'LINUX_SLL2',
};

/**
 * The tcpdump link-type registry assigns numbers below this; a larger one is not shown: read from a
 * damaged stream (a pcap header's 4 bytes, a pcapng interface's 2), it may be bytes of an address.
 */
const LINKTYPE_SHOWN_MAX = 511;

/** "127 (IEEE802_11_RADIOTAP)"; a number past the registry's range is not shown. */
export function linkTypeName(linkType: number): string {
  const lt = linkType & LINKTYPE_MASK;
  if (lt > LINKTYPE_SHOWN_MAX) return `above ${LINKTYPE_SHOWN_MAX} (not in the registry; the number is not shown)`;
  const name = LINKTYPE_NAMES[lt] ?? OTHER_NAMES[lt];
  return name ? `${lt} (${name})` : String(lt);
}

/** The error to raise for a frame or interface of a link type the firmware does not parse. */
export function unsupportedLinkType(linkType: number, source: string): UnsupportedLinkTypeError {
  return new UnsupportedLinkTypeError(source, linkType);
}

/** True when the firmware parses this link type (FCS-length bits ignored). */
export function isSupportedLinkType(linkType: number): boolean {
  return SUPPORTED_LINKTYPES.has(linkType & LINKTYPE_MASK);
}

export type CaptureFormat = 'pcap' | 'pcapng';

/** Largest record/block accepted; anything larger is treated as damage rather than buffered. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/**
 * Most interface description blocks kept per pcapng section; one more counts as damage. Each is
 * kept until the section ends, so without a limit a stream of 20-byte blocks grew the reader's
 * memory without bound (100 MB of them took 500 MB). A capture of real radios has a few.
 */
export const MAX_INTERFACES = 1024;

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAP_MAGIC_MODIFIED = 0xa1b2cd34; // Kuznetzov's patched libpcap: 8 more bytes per record
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;

function isFileMagic(v: number): boolean {
  return v === PCAP_MAGIC_US || v === PCAP_MAGIC_NS || v === PCAP_MAGIC_MODIFIED || v === PCAPNG_SHB;
}

/** findRestart: a candidate needs bytes not here yet. */
const MORE = -2;

/** The bytes of every file magic, in either byte order. */
const MAGIC_BYTES = [0xa1b2c3d4, 0xa1b23c4d, 0xa1b2cd34, 0xd4c3b2a1, 0x4d3cb2a1, 0x34cdb2a1, 0x0a0d0d0a].map((v) => [
  v >>> 24,
  (v >>> 16) & 0xff,
  (v >>> 8) & 0xff,
  v & 0xff,
]);
const NEEDLE_LE = Buffer.from([0xb2, 0xa1]); // bytes 2-3 of every pcap magic, little-endian
const NEEDLE_BE = Buffer.from([0xa1, 0xb2]); // bytes 0-1, big-endian
const NEEDLE_NG = Buffer.from([0x0a, 0x0d, 0x0d, 0x0a]); // a pcapng section header (either byte order)

/** Records read ahead from a place (CaptureParser.walkPcap). */
interface Walk {
  bad: boolean;
  exact: boolean;
  full: boolean;
  hits: number[];
}

const BT_IDB = 1;
const BT_OPB = 2;
const BT_SPB = 3;
const BT_EPB = 6;

interface Interface {
  linkType: number;
  snapLen: number;
  /** Timestamp units per second. */
  unitsPerSecond: number;
  /** Seconds added to every timestamp (if_tsoffset). */
  offsetSeconds: number;
}

const EMPTY = new Uint8Array(0);

/** Where the parser puts the frames it finds: Frame objects, or packed firmware records. */
interface FrameOut {
  readonly count: number;
  add(linkType: number, timestampMs: number, buf: Uint8Array, start: number, len: number): void;
}

class FrameList implements FrameOut {
  readonly frames: Frame[] = [];
  get count(): number {
    return this.frames.length;
  }
  add(linkType: number, timestampMs: number, buf: Uint8Array, start: number, len: number): void {
    this.frames.push({ linkType, timestampMs, data: buf.slice(start, start + len) });
  }
}

export class CaptureParser {
  readonly source: string;
  private buf: Uint8Array = EMPTY;
  private pos = 0; // read position in buf
  /**
   * Bytes before `pos` kept in the buffer (0-3): the last bytes of the pcap record just read,
   * which may be the start of a file magic whose rest was not in yet (readPcapRecord).
   */
  private tail = 0;
  /** Stream offset of that record, and whether its header is one a writer writes (for cutBy). */
  private tailRecordAbs = 0;
  private tailRecordPlausible = true;
  /** Its time, in whole seconds (for cutBy). */
  private tailRecordSec = 0;
  private base = 0; // stream offset of buf[0]
  private fmt: CaptureFormat | null = null;
  private little = true;
  private view: DataView = new DataView(EMPTY.buffer);
  // pcap
  private pcapLinkType = 0;
  private pcapNanos = false;
  private pcapRecordHeader = 16;
  private pcapSnapLen = 0;
  // pcapng
  private interfaces: Interface[] = [];
  private lastTimestampMs = 0;
  private readonly seenLinkTypes = new Set<number>();
  private failed: CaptureFormatError | null = null;
  private ended = false;

  /**
   * `splitter`: the firmware's capture splitting (Firmware.splitter). With it, pushRecords() hands
   * runs of plain records (pcap records, pcapng enhanced packet blocks) to the module instead of
   * reading them one by one here; the frames, times and errors are the same either way.
   */
  constructor(
    source: string,
    private readonly splitter: CaptureSplitter | null = null,
  ) {
    this.source = source;
  }

  /** 'pcap' or 'pcapng' once the file header was read, else null. */
  get format(): CaptureFormat | null {
    return this.fmt;
  }

  /** Link types (FCS-length bits masked off) of the pcap header / every pcapng interface seen so far. */
  get linkTypes(): ReadonlySet<number> {
    return this.seenLinkTypes;
  }

  /** Stream offset up to which the input was consumed (complete records only). */
  get offset(): number {
    return this.base + this.pos;
  }

  /**
   * Adds the next chunk and returns every frame it completes. A format problem is raised (as
   * CaptureFormatError) only after the frames before it were returned: by this call when the
   * problem is at the start of what it had to parse, otherwise by the next push() or end().
   */
  push(chunk: Uint8Array): Frame[] {
    const out = new FrameList();
    this.run(chunk, out);
    return out.frames;
  }

  private records: RecordBatchBuilder | null = null;

  /**
   * As push(), but the frames come packed as firmware batch records (firmware/host/batch.ts): one
   * block per chunk instead of one object per frame. Null when the chunk completes no frame.
   * With `reuse`, the block's arrays are reused by the next call: the batch returned is valid
   * only until then (no allocation per chunk once the arrays are large enough).
   */
  pushRecords(chunk: Uint8Array, reuse = false): RecordBatch | null {
    const left = this.buf.length - this.pos + chunk.length;
    if (!reuse || !this.records) this.records = new RecordBatchBuilder(Math.ceil(left * 1.25) + 64, Math.ceil(left / 64));
    this.run(chunk, this.records);
    return this.records.take(reuse);
  }

  private run(chunk: Uint8Array, out: FrameOut): void {
    if (this.failed) throw this.failed;
    if (this.ended) throw new Error(`${this.source}: push() after flush() or end()`);
    this.append(chunk);
    try {
      this.parse(out);
    } catch (err) {
      if (!(err instanceof CaptureFormatError)) throw err;
      this.failed = err;
      if (out.count === 0) throw err;
    } finally {
      this.keep();
    }
  }

  private flushed = false;

  /**
   * Signals the end of input and returns the frames it completes: a record held back because a
   * capture's file header begins inside it (see readPcapRecord), or the frames of a capture that
   * began again inside a record cut at the end. Call end() after it: a problem after those frames
   * is raised there.
   */
  flush(): Frame[] {
    const out = new FrameList();
    this.finish(out);
    return out.frames;
  }

  /** As flush(), the frames packed as firmware batch records (see pushRecords); null when none. */
  flushRecords(): RecordBatch | null {
    if (!this.records) this.records = new RecordBatchBuilder(1024, 16);
    this.finish(this.records);
    return this.records.take(false);
  }

  private finish(out: FrameOut): void {
    if (this.flushed || this.failed) return;
    this.flushed = true;
    this.ended = true;
    if (this.fmt === null || this.buf.length === this.pos) return;
    try {
      this.parse(out);
    } catch (err) {
      if (!(err instanceof CaptureFormatError)) throw err;
      this.failed = err;
    } finally {
      this.keep();
    }
  }

  /**
   * Signals the end of input (after flush(), whose frames come first). Throws CaptureFormatError
   * when the input ends inside a header or record.
   */
  end(): void {
    if (!this.flushed && !this.failed) {
      const left = this.flush();
      if (left.length > 0) throw new Error(`${this.source}: end() without flush(): ${left.length} frames were not taken`);
    }
    if (this.failed) throw this.failed;
    this.ended = true;
    const left = this.buf.length - this.pos;
    if (this.fmt === null) {
      if (this.base + this.buf.length === 0) throw this.fail(0, 'empty input: no pcap or pcapng header', 'empty');
      throw this.fail(this.offset, `input ends inside the file header (${left} bytes)`, 'ends_inside_file_header');
    }
    if (left > 0) {
      throw this.fail(this.offset, `input ends inside a ${this.fmt === 'pcap' ? 'record' : 'block'} (${left} of its bytes present)`, 'ends_inside_record');
    }
  }

  private fail(offset: number, problem: string, damage: CaptureDamage): CaptureFormatError {
    this.failed = new CaptureFormatError(this.source, offset, problem, damage);
    return this.failed;
  }

  /** The parser's own buffer: the unparsed rest of the input between pushes, then that rest plus the next chunk. */
  private own: Uint8Array = EMPTY;

  private append(input: Uint8Array): void {
    if (input.length === 0) return;
    // A plain Uint8Array view (a Node Buffer's slice() would share memory): frames are copies.
    const chunk = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    const from = this.pos - this.tail;
    const left = this.buf.length - from;
    if (left === 0) {
      this.base += this.buf.length;
      this.buf = chunk;
    } else {
      // the rest sits at the start of `own` (keep()); the chunk goes behind it
      const need = left + chunk.length;
      if (this.own.length < need) {
        const grown = new Uint8Array(Math.max(need, this.own.length * 2));
        grown.set(this.buf.subarray(from, from + left));
        this.own = grown;
      }
      this.own.set(chunk, left);
      this.base += from;
      this.buf = this.own.subarray(0, need);
    }
    this.pos = this.tail;
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  /**
   * After a push: copies the unparsed rest (part of a record) into the parser's own buffer, so no
   * view of the caller's chunk is kept and a reader may reuse its buffer for the next chunk.
   */
  private keep(): void {
    const from = this.pos - this.tail;
    const left = this.buf.length - from;
    if (left === 0) {
      this.base += this.buf.length;
      this.buf = EMPTY;
      this.pos = 0;
    } else if (this.buf.buffer !== this.own.buffer) {
      if (this.own.length < left) this.own = new Uint8Array(Math.max(left, 64 * 1024));
      this.own.set(this.buf.subarray(from));
      this.base += from;
      this.buf = this.own.subarray(0, left);
      this.pos = this.tail;
    } else if (from > 0) {
      this.own.copyWithin(0, from, from + left);
      this.base += from;
      this.buf = this.own.subarray(0, left);
      this.pos = this.tail;
    }
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  private u16(at: number): number {
    return this.view.getUint16(at, this.little);
  }
  private u32(at: number): number {
    return this.view.getUint32(at, this.little);
  }

  private parse(out: FrameOut): void {
    for (;;) {
      if (this.fmt === null) {
        if (!this.readFileHeader()) return;
        continue;
      }
      // the record after an open tail is read here (readPcapRecord), the rest by the module
      if (this.splitter && out instanceof RecordBatchBuilder && this.tail === 0) this.split(this.splitter, out);
      if (this.atFileHeader()) {
        this.tail = 0;
        // A capture tool restarted on the same pipe (a FIFO or stdin it writes again) or captures
        // joined end to end (cat a.pcap b.pcap) begin again with a file header: read on from it, as
        // from a new pcapng section. Taken as a record it was a frame stamped in 2055 (or 2083)
        // that moved the capture clock 29 years on, then the next record's header read as damage,
        // so the source failed and every frame after the restart was lost.
        this.fmt = null;
        continue;
      }
      const progressed = this.fmt === 'pcap' ? this.readPcapRecord(out) : this.readPcapngBlockOrRestart(out);
      if (!progressed) return;
    }
  }

  /** As many plain records as the module takes from here on (the rest is read record by record). */
  private split(splitter: CaptureSplitter, out: RecordBatchBuilder): void {
    const pcap = this.fmt === 'pcap';
    const { consumed, lastTime } = splitter.split(
      pcap
        ? { format: 'pcap', little: this.little, linkType: this.pcapLinkType, recordHeader: this.pcapRecordHeader, nanos: this.pcapNanos }
        : { format: 'pcapng', little: this.little, interfaces: this.interfaces },
      this.buf,
      this.pos,
      // in pcap, up to the next file magic, and short of the input's last 3 bytes (a magic's start
      // may end a record there, its rest not in yet): the record around it is read here
      // (readPcapRecord), so the module never reads a record a restart may have cut
      pcap ? Math.min(this.ended ? this.buf.length : this.buf.length - 3, this.nextMagic(this.pos)) : this.buf.length,
      out,
    );
    this.pos += consumed;
    if (!pcap && consumed > 0) this.lastTimestampMs = lastTime;
  }

  /**
   * True when the next record or block starts with the file header of a new capture: a pcap magic
   * (either byte order) followed by version 2.4 (what every pcap writer writes; a record whose time
   * reads as a magic and version 2 but not 2.4 is a record), or, inside a pcap stream, a pcapng section header
   * with its byte-order magic (in pcapng a section header is read as a block). False when too few
   * bytes are there to tell: the record or block needs more bytes than that anyway.
   */
  private atFileHeader(): boolean {
    const p = this.pos;
    const avail = this.buf.length - p;
    if (avail < 8) return false;
    for (const little of [true, false]) {
      const magic = this.view.getUint32(p, little);
      if (
        (magic === PCAP_MAGIC_US || magic === PCAP_MAGIC_NS || magic === PCAP_MAGIC_MODIFIED) &&
        this.view.getUint16(p + 4, little) === 2 &&
        this.view.getUint16(p + 6, little) === 4
      )
        return true;
    }
    if (this.fmt !== 'pcap' || avail < 12 || this.view.getUint32(p, false) !== PCAPNG_SHB) return false;
    return this.view.getUint32(p + 8, true) === PCAPNG_BOM || this.view.getUint32(p + 8, false) === PCAPNG_BOM;
  }

  private readFileHeader(): boolean {
    const avail = this.buf.length - this.pos;
    if (avail < 4) return false;
    const p = this.pos;
    const be = this.view.getUint32(p, false);
    const le = this.view.getUint32(p, true);
    if (be === PCAPNG_SHB) {
      this.fmt = 'pcapng';
      return true; // the SHB is parsed as a block
    }
    const magics = [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED];
    let little: boolean;
    let magic: number;
    if (magics.includes(le)) {
      little = true;
      magic = le;
    } else if (magics.includes(be)) {
      little = false;
      magic = be;
    } else {
      throw this.fail(this.offset, 'not a pcap or pcapng capture (its first 4 bytes are no pcap or pcapng magic number)', 'not_a_capture');
    }
    if (avail < 24) return false;
    this.little = little;
    const major = this.u16(p + 4);
    if (major !== 2) throw this.fail(this.offset + 4, 'unsupported pcap version (the reader reads version 2)', 'unsupported_version');
    this.pcapNanos = magic === PCAP_MAGIC_NS;
    this.pcapRecordHeader = magic === PCAP_MAGIC_MODIFIED ? 24 : 16;
    this.pcapLinkType = this.u32(p + 20);
    this.pcapSnapLen = this.u32(p + 16);
    this.seenLinkTypes.add(this.pcapLinkType & LINKTYPE_MASK);
    this.fmt = 'pcap';
    this.pos += 24;
    return true;
  }

  private readPcapRecord(out: FrameOut): boolean {
    const h = this.pcapRecordHeader;
    if (this.buf.length - this.pos < h) return false;
    const p = this.pos;
    if (this.tail > 0) {
      // The record before this one ended in bytes that may begin a file magic, its rest not in
      // then: that record was read at once (not held back until more bytes came). A capture that
      // begins there began inside it: it was cut, and read as one (damaged) frame; read on from
      // the new capture's header.
      const restart = this.findRestart(p - this.tail, p);
      if (restart === MORE) return false;
      if (restart >= 0) {
        const cut = this.cutBy(this.tailRecordPlausible, this.tailRecordSec, p, restart);
        if (cut === MORE) return false;
        if (cut) {
          this.tail = 0;
          return this.restartCut(this.tailRecordAbs, restart);
        }
      }
      this.tail = 0;
    }
    const sec = this.u32(p);
    const frac = this.u32(p + 4);
    const capLen = this.u32(p + 8);
    const next = p + h + capLen;
    // A file magic inside the bytes this record claims: a capture tool killed in the middle of the
    // record and restarted on the same pipe wrote its file header where the rest was due.
    for (let m = this.nextMagic(p + 1); m < Math.min(next, this.buf.length); m = this.nextMagic(m + 1)) {
      const restart = this.restartAt(m);
      if (restart === -1) continue;
      // a magic's start in the last bytes of a whole record, its rest not in: see below
      if (restart === MORE && this.buf.length >= next && m + 4 > this.buf.length) continue;
      const own = this.plausibleRecord(p, this.little, this.pcapNanos, this.pcapSnapLen);
      // a candidate that needs bytes past a next record in step (a pcapng section header's
      // length can claim megabytes): the record is whole, not held until they come
      if (restart === MORE && own && this.inStepAt(next, sec) === true) continue;
      if (restart === MORE) return false;
      const cut = this.cutBy(own, sec, next, restart);
      if (cut === MORE) return false;
      if (cut) return this.dropCut(p, restart);
    }
    if (capLen > MAX_RECORD_BYTES) {
      throw this.fail(this.offset, `record claims more than ${MAX_RECORD_BYTES} captured bytes: damaged capture`, 'oversized_record');
    }
    // Like libpcap, an out-of-range timestamp fraction or an original length below the captured
    // one is taken as it is: only a captured length no frame can have counts as damage.
    if (this.buf.length < next) return false;
    out.add(this.pcapLinkType, sec * 1000 + (this.pcapNanos ? frac / 1e6 : frac / 1e3), this.buf, p + h, capLen);
    this.pos = next;
    // A magic may begin in its last bytes, the rest of it not here yet. The record is read now
    // all the same (on a live source the next bytes may come minutes later): the next record's
    // read looks there first (above), so its last bytes are kept until then.
    if (!this.ended && this.buf.length < next + 3) {
      const from = Math.max(p + 1, next - 3);
      const at = this.magicPrefixAt(from, next);
      if (at >= 0) {
        this.tail = next - at;
        this.tailRecordAbs = this.base + p;
        this.tailRecordPlausible = this.plausibleRecord(p, this.little, this.pcapNanos, this.pcapSnapLen);
        this.tailRecordSec = sec;
      }
    }
    return true;
  }

  /**
   * Whether the record at `p` (claiming the bytes up to `next`, its time `ownSec`) was cut by the
   * capture that begins at `restart` (a whole file header inside it), or is a whole record that
   * carries such bytes (a frame may carry a capture file: any data frame can, sent by anyone in
   * range). Only what a payload cannot forge decides for a cut: the bytes from `next` on (the
   * writer's, not the frame's) and the record's own header. Believed, in this order:
   * - the new capture's records are not ones a writer writes: whole;
   * - its own header is not one a writer writes (the cut fell inside it): cut;
   * - the new capture's file header ends where the record does and reads on exactly as this one
   *   (byte order, resolution, snap length, link type): cut. Both readings then give the same
   *   frames after it; only this record is dropped, so a payload ending with such a header drops
   *   its own frame and changes nothing else (with another link type or resolution it would have
   *   switched every later frame: it is read as a whole record);
   * - the new capture's records end where the record does (a capture carried at the end of a
   *   payload): whole;
   * - a record of this capture starts at `next`, stamped near this one's time (an hour before to
   *   30 days after), or a new file header begins in its first bytes (inStepAt): whole. A payload
   *   cannot move or forge that record;
   * - no such record there, and the new capture's first record is stamped near this one's time
   *   (a restarted writer's clock goes on from the cut record's): cut;
   * - otherwise the records after each reading are read ahead (WALK): the record's own reading
   *   out of step is a cut, else it is whole (at the end of input: cut when the new capture ends
   *   exactly there and the record's reading does not).
   * MORE: not told yet, wait for more input (at most until the header of the record after it is
   * in, or, when that one is out of step or far in time, WALK records).
   */
  private cutBy(ownPlausible: boolean, ownSec: number, next: number, restart: number): boolean | typeof MORE {
    const b = this.walkFrom(restart);
    if (b.bad) return false;
    const h = this.pcapRecordHeader;
    if (!ownPlausible) return true; // its own header is cut
    const after = this.buf.length - next;
    if (after < h && !this.ended) return MORE;
    // input ends inside the record (it is cut, whatever else), or with it (it is whole)
    if (after < 0) return true;
    if (after === 0) return false;
    if (b.hits[0] === next && this.sameFormatAt(restart)) return true;
    if (b.hits.indexOf(next, 1) > 0 && this.framesBefore(restart, next)) return false; // a capture carried in the payload, ending with it
    if (after < h) {
      // input ends inside the header of the record after it: whole when what is there begins a
      // record stamped near this one, cut when the new capture ends where the input does or goes
      // on from this record's time
      if (after >= 4 && this.headStepAt(next, after, ownSec, this.little, this.pcapNanos, this.pcapSnapLen)) return false;
      return b.exact || this.firstNear(restart, ownSec);
    }
    const step = this.inStepAt(next, ownSec, b.hits, restart);
    if (step === MORE) return this.ended ? false : MORE;
    if (step) return false;
    if (this.firstNear(restart, ownSec)) return true;
    const a = this.walkPcap(next, this.little, this.pcapNanos, h, this.pcapSnapLen);
    if (a.bad) return true;
    if (!a.full && !b.full && !this.ended) return MORE;
    return this.ended && b.exact && !a.exact && !a.full;
  }

  /**
   * True when the capture whose file header is at `restart` has a frame before `next` (a record
   * or packet block, not just its pcapng section header and interface descriptions).
   */
  private framesBefore(restart: number, next: number): boolean {
    const v = this.view;
    if (v.getUint32(restart, false) !== PCAPNG_SHB) return next > restart + 24;
    const little = v.getUint32(restart + 8, true) === PCAPNG_BOM;
    for (let s = restart; s + 8 <= next; ) {
      const type = v.getUint32(s, little);
      if (type === BT_EPB || type === BT_SPB || type === BT_OPB) return true;
      const len = v.getUint32(s + 4, little);
      if (len < 12) return true;
      s += len;
    }
    return false;
  }

  /** Seconds before / after a record's time within which the next record counts as in step (cutBy). */
  private static readonly STEP_BACK_S = 3600;
  private static readonly STEP_AHEAD_S = 30 * 86400;

  /** True when `sec` is near `ownSec`: an hour before it to 30 days after. */
  private static near(ownSec: number, sec: number): boolean {
    return sec >= ownSec - CaptureParser.STEP_BACK_S && sec <= ownSec + CaptureParser.STEP_AHEAD_S;
  }

  /**
   * True when a record of this capture, one a writer writes, starts at `at` (its header whole in
   * the buffer), stamped near `ownSec` (the time of the record before it); or a new capture's
   * file header begins within that header's bytes (the record there cut by a restart), unless a
   * record of the new capture (`newHits`, cutBy) begins there or is cut in its header by it. False when
   * its header is not in yet; MORE when a file header there needs bytes not in yet.
   */
  private inStepAt(at: number, ownSec: number, newHits: readonly number[] = [], newAt = -1): boolean | typeof MORE {
    const h = this.pcapRecordHeader;
    if (this.buf.length - at < h) return false;
    if (this.plausibleRecord(at, this.little, this.pcapNanos, this.pcapSnapLen) && CaptureParser.near(ownSec, this.view.getUint32(at, this.little)))
      return true;
    for (let r = at; r < at + h; r++) {
      if (r + 4 > this.buf.length) {
        if (this.magicPrefixAt(r, this.buf.length) === r) return this.ended ? false : MORE;
        continue;
      }
      if (!this.fileMagicAt(r)) continue;
      const restart = this.restartAt(r);
      if (restart === MORE) return MORE;
      if (restart < 0) continue;
      // what of that header is there must be a record's (its time near); with under 4 bytes of it,
      // unless the new capture's reading has a record cut there (the last one it read before it)
      // whose first 4 bytes or more are
      const n = r - at;
      if (n >= 4) return this.headStepAt(at, n, ownSec, this.little, this.pcapNanos, this.pcapSnapLen);
      let cut: number | undefined;
      for (const hit of newHits) if (hit < r) cut = hit;
      if (newAt < 0 || cut === undefined || r - cut < 4) return true;
      const f = this.pcapFormatAt(newAt);
      if (f) return !this.headStepAt(cut, Math.min(r - cut, 16), ownSec, f.little, f.nanos, f.snapLen);
      // a pcapng packet block: its time (microseconds, the default, or nanoseconds)
      const little = this.view.getUint32(newAt + 8, true) === PCAPNG_BOM;
      if (r - cut < 20 || this.view.getUint32(cut, little) !== BT_EPB) return true;
      const units = this.view.getUint32(cut + 12, little) * 4294967296 + this.view.getUint32(cut + 16, little);
      return !(CaptureParser.near(ownSec, Math.floor(units / 1e6)) || CaptureParser.near(ownSec, Math.floor(units / 1e9)));
    }
    return false;
  }

  /**
   * True when the first `n` bytes (under a record header) at `at` can begin a record of this
   * capture stamped near `ownSec`: its time, fraction and captured length as far as they go.
   */
  private headStepAt(at: number, n: number, ownSec: number, little: boolean, nanos: boolean, snapLen: number): boolean {
    const v = this.view;
    if (n >= 4 && !CaptureParser.near(ownSec, v.getUint32(at, little))) return false;
    if (n >= 8 && v.getUint32(at + 4, little) >= (nanos ? 1e9 : 1e6)) return false;
    if (n >= 12) {
      const cap = v.getUint32(at + 8, little);
      if (cap > MAX_RECORD_BYTES || (snapLen > 0 && cap > snapLen)) return false;
    }
    return true;
  }

  /** The byte order, resolution and snap length of the pcap file header at `q` (checked by restartAt); null for pcapng. */
  private pcapFormatAt(q: number): { little: boolean; nanos: boolean; snapLen: number } | null {
    const v = this.view;
    if (v.getUint32(q, false) === PCAPNG_SHB) return null;
    const little = [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED].includes(v.getUint32(q, true));
    return { little, nanos: v.getUint32(q, little) === PCAP_MAGIC_NS, snapLen: v.getUint32(q + 16, little) };
  }

  /** True when the pcap file header at `q` (checked by restartAt) reads on exactly as this capture does. */
  private sameFormatAt(q: number): boolean {
    const v = this.view;
    if (v.getUint32(q, false) === PCAPNG_SHB) return false;
    const little = this.little;
    const magic = v.getUint32(q, little);
    return (
      (magic === PCAP_MAGIC_NS) === this.pcapNanos &&
      (magic === PCAP_MAGIC_MODIFIED ? 24 : 16) === this.pcapRecordHeader &&
      (magic === PCAP_MAGIC_US || magic === PCAP_MAGIC_NS || magic === PCAP_MAGIC_MODIFIED) &&
      v.getUint32(q + 16, little) === this.pcapSnapLen &&
      v.getUint32(q + 20, little) === this.pcapLinkType
    );
  }

  /** True when the capture whose file header is at `q` (checked by restartAt) has a first record in, stamped near `ownSec`. */
  private firstNear(q: number, ownSec: number): boolean {
    const v = this.view;
    if (v.getUint32(q, false) === PCAPNG_SHB) {
      // its first enhanced packet block, after its interface descriptions (in microseconds, the
      // default, or nanoseconds)
      const little = v.getUint32(q + 8, true) === PCAPNG_BOM;
      let s = q + v.getUint32(q + 4, little);
      for (let i = 0; i < 8 && this.buf.length - s >= 8; i++) {
        const type = v.getUint32(s, little);
        const len = v.getUint32(s + 4, little);
        if (type === BT_EPB && len >= 32 && this.buf.length - s >= 20) {
          const units = v.getUint32(s + 12, little) * 4294967296 + v.getUint32(s + 16, little);
          return CaptureParser.near(ownSec, Math.floor(units / 1e6)) || CaptureParser.near(ownSec, Math.floor(units / 1e9));
        }
        if (type !== BT_IDB || len < 12 || len % 4 !== 0) return false;
        s += len;
      }
      return false;
    }
    const little = [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED].includes(v.getUint32(q, true));
    const h = v.getUint32(q, little) === PCAP_MAGIC_MODIFIED ? 24 : 16;
    if (this.buf.length - q < 24 + h) return false;
    return CaptureParser.near(ownSec, v.getUint32(q + 24, little));
  }

  /** Most records walkPcap / walkPcapng read ahead (once per file magic found inside a record). */
  private static readonly WALK = 32;

  /** The records of the capture whose file header (checked by restartAt) is at `q`, read ahead. */
  private walkFrom(q: number): Walk {
    const v = this.view;
    if (v.getUint32(q, false) === PCAPNG_SHB) return this.walkPcapng(q, v.getUint32(q + 8, true) === PCAPNG_BOM);
    const little = [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_MODIFIED].includes(v.getUint32(q, true));
    const magic = v.getUint32(q, little);
    if (this.buf.length - q < 24) return { bad: false, exact: false, full: false, hits: [] };
    return this.walkPcap(q + 24, little, magic === PCAP_MAGIC_NS, magic === PCAP_MAGIC_MODIFIED ? 24 : 16, v.getUint32(q + 16, little), true);
  }

  /**
   * Reads pcap record headers from `s` on, as far as the input goes (at most WALK): bad when one
   * is not a record a writer writes; exact when the last one ends where the input does; full when
   * WALK records were read. The positions read are `hits`. With `restarts` (a new capture's own
   * records), a record cut by yet another restart (a capture tool in a crash loop) ends the walk
   * as full, not bad: the capture read is as much a restart as one that ran longer.
   */
  private walkPcap(s: number, little: boolean, nanos: boolean, h: number, snapLen: number, restarts = false): Walk {
    const hits: number[] = [];
    for (let i = 0; i < CaptureParser.WALK; i++) {
      hits.push(s);
      if (this.buf.length - s < h) return { bad: false, exact: this.buf.length === s, full: false, hits };
      if (this.fileMagicAt(s) && this.restartAt(s) !== -1) return { bad: false, exact: false, full: true, hits };
      const plausible = this.plausibleRecord(s, little, nanos, snapLen);
      if (restarts) {
        const r = this.findRestart(s + 1, Math.min(plausible ? s + h + this.view.getUint32(s + 8, little) : s + h, this.buf.length));
        if (r === MORE) return { bad: false, exact: false, full: false, hits };
        if (r >= 0) return { bad: false, exact: false, full: true, hits };
      }
      if (!plausible) return { bad: true, exact: false, full: false, hits };
      s += h + this.view.getUint32(s + 8, little);
    }
    return { bad: false, exact: false, full: true, hits };
  }

  /** As walkPcap, for the pcapng blocks from `s` on: their lengths and trailing copies. */
  private walkPcapng(s: number, little: boolean): Walk {
    const hits: number[] = [];
    const v = this.view;
    for (let i = 0; i < CaptureParser.WALK; i++) {
      hits.push(s);
      const avail = this.buf.length - s;
      if (avail < 8) return { bad: false, exact: avail === 0, full: false, hits };
      // a pcap capture begun where a block should (as walkPcap)
      if (i > 0 && v.getUint32(s, false) !== PCAPNG_SHB && this.fileMagicAt(s) && this.restartAt(s) !== -1)
        return { bad: false, exact: false, full: true, hits };
      const len = v.getUint32(s + 4, little);
      const damaged = len < 12 || len % 4 !== 0 || len > MAX_RECORD_BYTES;
      if (!damaged && avail < len) return { bad: false, exact: false, full: false, hits };
      if (damaged || v.getUint32(s + len - 4, little) !== len) {
        // a block cut by yet another restart (a capture tool in a crash loop), as walkPcap
        const r = this.findRestart(s + 1, Math.min(damaged ? s + 12 : s + len, this.buf.length));
        if (r === MORE) return { bad: false, exact: false, full: false, hits };
        return r >= 0 ? { bad: false, exact: false, full: true, hits } : { bad: true, exact: false, full: false, hits };
      }
      s += len;
    }
    return { bad: false, exact: false, full: true, hits };
  }

  /** The first place in [from, to) whose bytes up to `to` are the first bytes of a file magic, or -1. */
  private magicPrefixAt(from: number, to: number): number {
    for (let j = from; j < to; j++) if (MAGIC_BYTES.some((m) => m.every((byte, i) => j + i >= to || this.buf[j + i] === byte))) return j;
    return -1;
  }

  private magicFromAbs = Number.POSITIVE_INFINITY;
  private magicAbs = Number.POSITIVE_INFINITY;
  private magicToAbs = 0;

  /**
   * The buffer index of the first place at or after `from` where a file magic may start (a pcap
   * magic in either byte order: its bytes a1 b2 in a row; a pcapng section header type), or
   * Infinity. Searched natively (Buffer.indexOf) and remembered, so a stream is searched about once.
   */
  private nextMagic(from: number): number {
    const abs = this.base + from;
    const endAbs = this.base + this.buf.length;
    let start = from;
    if (this.magicFromAbs <= abs) {
      if (this.magicAbs !== Number.POSITIVE_INFINITY && this.magicAbs >= abs) return this.magicAbs - this.base;
      if (this.magicAbs === Number.POSITIVE_INFINITY) {
        if (this.magicToAbs === endAbs) return Number.POSITIVE_INFINITY;
        start = Math.max(from, this.magicToAbs - 3 - this.base);
      }
    }
    const b = Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    let best = Number.POSITIVE_INFINITY;
    const le = b.indexOf(NEEDLE_LE, start + 2); // a magic's third byte: its start two before
    if (le >= 0) best = le - 2;
    const be = b.indexOf(NEEDLE_BE, start);
    if (be >= 0 && be < best) best = be;
    const ng = b.indexOf(NEEDLE_NG, start);
    if (ng >= 0 && ng < best) best = ng;
    this.magicFromAbs = this.base + from;
    this.magicAbs = best === Number.POSITIVE_INFINITY ? best : this.base + best;
    this.magicToAbs = endAbs;
    return best;
  }

  /**
   * Pcap records cut by a restarted capture tool: dropped (see dropCut), or, when the cut fell in
   * their last 3 bytes and nothing after them was in yet, already read as one frame (restartCut).
   */
  cutRecords = 0;

  /**
   * Drops the record at `p`, cut by a capture that began again at `restart` (its file header),
   * and reads on from there. The record's bytes are its first part and the start of the new
   * capture: no frame.
   */
  private dropCut(p: number, restart: number): boolean {
    this.cutRecords++;
    this.onCut?.(this.base + p, false);
    this.pos = restart;
    this.fmt = null;
    return true;
  }

  /**
   * Reads on from `restart` (a file header that began in the last bytes of the record at stream
   * offset `recordAbs`, already read as a frame: see readPcapRecord).
   */
  private restartCut(recordAbs: number, restart: number): boolean {
    this.cutRecords++;
    this.onCut?.(recordAbs, true);
    this.pos = restart;
    this.fmt = null;
    return true;
  }

  /**
   * Told the stream offset of each record cut by a restart (for a log line), and whether it was
   * read as a frame (its cut in its last 3 bytes, nothing after it in when it was read) or dropped.
   */
  onCut: ((offset: number, read: boolean) => void) | null = null;

  /**
   * True when the pcap record header at `at` (whole in the buffer) is one a writer writes: an
   * original length of at least 1, a captured length of at most that and the snap length, a
   * fraction under one second.
   */
  private plausibleRecord(at: number, little: boolean, nanos: boolean, snapLen: number): boolean {
    const frac = this.view.getUint32(at + 4, little);
    const cap = this.view.getUint32(at + 8, little);
    const orig = this.view.getUint32(at + 12, little);
    return orig > 0 && cap <= orig && cap <= MAX_RECORD_BYTES && (snapLen === 0 || cap <= snapLen) && frac < (nanos ? 1e9 : 1e6);
  }

  /** True when a pcap magic (either byte order) or a pcapng section header type starts at `at`. */
  private fileMagicAt(at: number): boolean {
    const v = this.view.getUint32(at, true);
    const w = this.view.getUint32(at, false);
    return isFileMagic(v) || isFileMagic(w);
  }

  /**
   * The first position in [from, to) where a new capture begins: a whole pcap file header
   * (either byte order, version 2.4, a snap length, a link type this capture had or the firmware
   * parses) followed by a plausible first record header, or a whole pcapng section header (its
   * byte-order magic, version 1, its length repeated at its end). MORE when a candidate needs
   * bytes not here yet (at the end of input it is taken as far as it goes); -1 when none.
   */
  private findRestart(from: number, to: number): number {
    const end = Math.min(to, this.buf.length - 3);
    for (let q = from; q < end; q++) {
      const b = this.buf[q];
      // the first byte of every magic in either byte order: a1 (pcap BE), d4/4d/34 (pcap LE), 0a (pcapng)
      if (b !== 0xa1 && b !== 0xd4 && b !== 0x4d && b !== 0x34 && b !== 0x0a) continue;
      const r = this.restartAt(q);
      if (r !== -1) return r;
    }
    // a magic may begin in the input's last 3 bytes, its rest not in yet
    if (!this.ended && to > end)
      for (let q = Math.max(from, end); q < Math.min(to, this.buf.length); q++) if (this.magicPrefixAt(q, this.buf.length) === q) return MORE;
    return -1;
  }

  /**
   * q, MORE or -1: whether a new capture's file header begins at q (see findRestart). Its first
   * record may be cut in its header by yet another restart (a capture tool in a crash loop,
   * killed before or while it wrote its first record): a file header within its first record's
   * header bytes (`nested`: that one's first record must be one a writer writes).
   */
  private restartAt(q: number, nested = false): number {
    const v = this.view;
    const avail = this.buf.length - q;
    if (avail < 4) return this.ended ? -1 : MORE;
    if (v.getUint32(q, false) === PCAPNG_SHB) {
      if (avail < 16) return this.ended ? -1 : MORE;
      const little = v.getUint32(q + 8, true) === PCAPNG_BOM ? true : v.getUint32(q + 8, false) === PCAPNG_BOM ? false : null;
      if (little === null) return -1;
      const len = v.getUint32(q + 4, little);
      if (len < 28 || len % 4 !== 0 || len > MAX_RECORD_BYTES || v.getUint16(q + 12, little) !== 1) return -1;
      if (avail < len) return this.ended ? -1 : MORE;
      return v.getUint32(q + len - 4, little) === len ? q : -1;
    }
    for (const little of [true, false]) {
      const magic = v.getUint32(q, little);
      if (magic !== PCAP_MAGIC_US && magic !== PCAP_MAGIC_NS && magic !== PCAP_MAGIC_MODIFIED) continue;
      if (avail < 24) return this.ended ? -1 : MORE;
      if (v.getUint16(q + 4, little) !== 2 || v.getUint16(q + 6, little) !== 4) return -1;
      const snapLen = v.getUint32(q + 16, little);
      const linkType = v.getUint32(q + 20, little) & LINKTYPE_MASK;
      if (snapLen === 0 || snapLen > MAX_RECORD_BYTES) return -1;
      if (linkType !== (this.pcapLinkType & LINKTYPE_MASK) && !isSupportedLinkType(linkType)) return -1;
      // its first record, when it has one, must be one a writer writes
      const h = magic === PCAP_MAGIC_MODIFIED ? 24 : 16;
      if (avail < 24 + h) return this.ended ? q : MORE;
      const first = q + 24;
      if (this.plausibleRecord(first, little, magic === PCAP_MAGIC_NS, snapLen)) return q;
      if (nested) return -1;
      for (let r = first; r < first + h; r++) {
        const again = this.restartAt(r, true);
        if (again === MORE) return this.ended ? -1 : MORE;
        if (again >= 0) return q;
      }
      return -1;
    }
    return -1;
  }

  /**
   * readPcapngBlock, but a block whose length is damaged (or its trailing copy, or the input ends
   * inside it) because a capture tool was killed in the middle of it and restarted is dropped and
   * the new capture read from its file header, found in the block's bytes as in readPcapRecord.
   */
  private readPcapngBlockOrRestart(out: FrameOut): boolean {
    const p = this.pos;
    let progressed: boolean;
    try {
      progressed = this.readPcapngBlock(out);
    } catch (err) {
      const damage = err instanceof CaptureFormatError ? err.damage : null;
      if (damage !== 'bad_block_length' && damage !== 'oversized_record' && damage !== 'block_length_mismatch') throw err;
      const len = this.u32(p + 4);
      const restart = this.findRestart(p + 1, damage === 'block_length_mismatch' ? p + len : p + 12);
      if (restart === -1 || (restart === MORE && this.ended)) throw err;
      this.failed = null;
      if (restart === MORE) return false;
      return this.dropCut(p, restart);
    }
    if (!progressed && this.ended && this.buf.length - p >= 12) {
      const restart = this.findRestart(p + 1, this.buf.length);
      if (restart >= 0) return this.dropCut(p, restart);
    }
    return progressed;
  }

  private readPcapngBlock(out: FrameOut): boolean {
    const avail = this.buf.length - this.pos;
    if (avail < 12) return false;
    const p = this.pos;
    const at = this.offset;
    const typeBE = this.view.getUint32(p, false);
    if (typeBE === PCAPNG_SHB) {
      const bomLE = this.view.getUint32(p + 8, true);
      if (bomLE === PCAPNG_BOM) this.little = true;
      else if (this.view.getUint32(p + 8, false) === PCAPNG_BOM) this.little = false;
      else throw this.fail(at + 8, 'pcapng section header with an unknown byte-order magic', 'bad_byte_order_magic');
    }
    const type = this.u32(p);
    const len = this.u32(p + 4);
    if (len < 12 || len % 4 !== 0) throw this.fail(at + 4, 'pcapng block with an invalid length (under 12 or not a multiple of 4)', 'bad_block_length');
    if (len > MAX_RECORD_BYTES) throw this.fail(at + 4, `pcapng block claims more than ${MAX_RECORD_BYTES} bytes: damaged capture`, 'oversized_record');
    if (avail < len) return false;
    const trailer = this.u32(p + len - 4);
    if (trailer !== len) throw this.fail(at + len - 4, 'pcapng block length does not match its trailing copy', 'block_length_mismatch');
    const body = p + 8;
    const bodyLen = len - 12;
    switch (type) {
      case PCAPNG_SHB: {
        if (bodyLen < 16) throw this.fail(at, 'pcapng section header block too short', 'block_too_short');
        const major = this.u16(body + 4);
        if (major !== 1) throw this.fail(at + 12, 'unsupported pcapng version (the reader reads version 1)', 'unsupported_version');
        this.interfaces = [];
        break;
      }
      case BT_IDB: {
        if (bodyLen < 8) throw this.fail(at, 'pcapng interface description block too short', 'block_too_short');
        if (this.interfaces.length >= MAX_INTERFACES)
          throw this.fail(at, `pcapng section describes more than ${MAX_INTERFACES} interfaces: damaged capture`, 'too_many_interfaces');
        const iface: Interface = { linkType: this.u16(body), snapLen: this.u32(body + 4), unitsPerSecond: 1e6, offsetSeconds: 0 };
        this.readIdbOptions(iface, body + 8, bodyLen - 8, at + 16);
        this.interfaces.push(iface);
        this.seenLinkTypes.add(iface.linkType & LINKTYPE_MASK);
        break;
      }
      case BT_EPB: {
        if (bodyLen < 20) throw this.fail(at, 'pcapng enhanced packet block too short', 'block_too_short');
        const iface = this.iface(this.u32(body), at + 8);
        const capLen = this.u32(body + 12);
        if (capLen > bodyLen - 20) throw this.fail(at + 20, 'pcapng packet does not fit its block', 'packet_overruns_block');
        this.frame(out, iface, this.u32(body + 4), this.u32(body + 8), body + 20, capLen);
        break;
      }
      case BT_OPB: {
        if (bodyLen < 20) throw this.fail(at, 'pcapng packet block too short', 'block_too_short');
        const iface = this.iface(this.u16(body), at + 8);
        const capLen = this.u32(body + 12);
        if (capLen > bodyLen - 20) throw this.fail(at + 20, 'pcapng packet does not fit its block', 'packet_overruns_block');
        this.frame(out, iface, this.u32(body + 4), this.u32(body + 8), body + 20, capLen);
        break;
      }
      case BT_SPB: {
        if (bodyLen < 4) throw this.fail(at, 'pcapng simple packet block too short', 'block_too_short');
        const iface = this.iface(0, at);
        // The packet's captured length is not written: it is the original length cut to the snap
        // length, and the block must hold that many octets (pcapng 4.4).
        const origLen = this.u32(body);
        const capLen = iface.snapLen > 0 ? Math.min(origLen, iface.snapLen) : origLen;
        if (capLen > bodyLen - 4) throw this.fail(at + 8, 'pcapng simple packet does not fit its block', 'packet_overruns_block');
        // No timestamp in an SPB: it inherits the previous frame's time.
        out.add(iface.linkType, this.lastTimestampMs, this.buf, body + 4, capLen);
        break;
      }
      default:
        break; // NRB, ISB, DSB, custom and unknown blocks carry no frames
    }
    this.pos = p + len;
    return true;
  }

  private iface(id: number, at: number): Interface {
    const iface = this.interfaces[id];
    if (!iface)
      throw this.fail(at, `pcapng packet refers to an interface the section does not describe (it describes ${this.interfaces.length})`, 'unknown_interface');
    return iface;
  }

  private frame(out: FrameOut, iface: Interface, hi: number, lo: number, start: number, capLen: number): void {
    const units = hi * 4294967296 + lo;
    const whole = Math.floor(units / iface.unitsPerSecond);
    const rest = units - whole * iface.unitsPerSecond;
    const timestampMs = (whole + iface.offsetSeconds) * 1000 + (rest * 1000) / iface.unitsPerSecond;
    this.lastTimestampMs = timestampMs;
    out.add(iface.linkType, timestampMs, this.buf, start, capLen);
  }

  private readIdbOptions(iface: Interface, start: number, length: number, at: number): void {
    let o = start;
    const end = start + length;
    while (o + 4 <= end) {
      const code = this.u16(o);
      const olen = this.u16(o + 2);
      if (code === 0) break; // opt_endofopt
      if (o + 4 + olen > end) throw this.fail(at + (o - start), 'pcapng interface option overruns its block', 'bad_interface_option');
      if (code === 9 && olen >= 1) {
        // if_tsresol: bit 7 clear -> 10^-n seconds, set -> 2^-n seconds
        const v = this.buf[o + 4];
        const n = v & 0x7f;
        const units = v & 0x80 ? 2 ** n : 10 ** n;
        if (!Number.isFinite(units) || units < 1 || n > 63) throw this.fail(at + (o - start), 'pcapng if_tsresol out of range', 'bad_interface_option');
        iface.unitsPerSecond = units;
      } else if (code === 14 && olen >= 8) {
        // if_tsoffset: signed 64-bit seconds
        iface.offsetSeconds = Number(this.view.getBigInt64(o + 4, this.little));
      }
      o += 4 + ((olen + 3) & ~3);
    }
  }
}

/** Reads frames from a byte stream (file, stdin, a command's stdout). Yields one batch per chunk. */
export async function* readCapture(input: AsyncIterable<Uint8Array>, source: string): AsyncGenerator<Frame[]> {
  const parser = new CaptureParser(source);
  for await (const chunk of input) {
    const frames = parser.push(chunk);
    if (frames.length > 0) yield frames;
  }
  const last = parser.flush();
  if (last.length > 0) yield last;
  parser.end();
}

/**
 * Reads packed frames from a byte stream: one RecordBatch per chunk that completes frames (the
 * gateway's path). Each batch is valid until the next one is asked for: its arrays are reused
 * then, so a consumer must have counted (or copied) a batch before it pulls the next.
 */
export async function* readCaptureRecords(
  input: AsyncIterable<Uint8Array>,
  source: string,
  splitter: CaptureSplitter | null = null,
  onCut: ((offset: number, read: boolean) => void) | null = null,
): AsyncGenerator<RecordBatch> {
  const parser = new CaptureParser(source, splitter);
  parser.onCut = onCut;
  for await (const chunk of input) {
    const batch = parser.pushRecords(chunk, true);
    if (batch) yield batch;
  }
  const last = parser.flushRecords();
  if (last) yield last;
  parser.end();
}

/** Reads frames from a capture file. */
export function readCaptureFile(path: string): AsyncGenerator<Frame[]> {
  return readCapture(fileChunks(path), path);
}

/**
 * A file's bytes in chunks, read into one reused buffer: each chunk is valid until the next one is
 * asked for (the parser copies what it keeps), so reading allocates nothing per chunk. A regular
 * file is read synchronously (a 256 KB read from the page cache takes tens of microseconds, while
 * a read through libuv's thread pool wakes a pool thread and then the event loop once more, about
 * 0.1 ms of CPU each on a small machine: three times a second in a replay at 10,000 frames/s);
 * anything else (a FIFO, a device) could block, so it is read asynchronously.
 */
export async function* fileChunks(path: string, chunkBytes = 256 * 1024): AsyncGenerator<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const regular = (await fh.stat()).isFile();
    const buf = Buffer.allocUnsafe(chunkBytes);
    for (;;) {
      const bytesRead = regular ? readSync(fh.fd, buf, 0, chunkBytes, null) : (await fh.read(buf, 0, chunkBytes, null)).bytesRead;
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}
