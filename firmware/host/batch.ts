// Frames packed the way the firmware's batch buffer holds them (firmware/README.md, "A batch record"):
// a 16-byte header (link type u32, caplen u32, capture time f64 in ms) and the frame's bytes padded
// to a multiple of 8, back to back. The capture reader writes each chunk's frames into one such
// block, so a chunk costs a few typed arrays instead of one JavaScript object per frame, and the
// firmware wrapper copies whole runs of records into the module at once (Firmware.ingestBatch).
// Capture times are also kept apart, so the window clock can split a batch at a window's end.
import { RECORD_CAPLEN, RECORD_HEADER_BYTES, RECORD_LINKTYPE, RECORD_TIME } from '../assembly/layout.ts';
import type { Frame } from './types.ts';

export { RECORD_HEADER_BYTES };

/** Bytes a frame of `caplen` bytes takes as a batch record. */
export function recordBytes(caplen: number): number {
  return RECORD_HEADER_BYTES + ((caplen + 7) & ~7);
}

/**
 * Records [start, end) of a packed block. Record i (start <= i < end) occupies
 * bytes[offsets[i], offsets[i + 1]) and was captured at times[i]. Slices share the block.
 * `sorted`: the whole block's times are known to be non-decreasing (the builder sets it, as it is
 * for a capture written in time order); the lookups below then take a binary search or the end
 * points instead of a pass over every frame.
 */
export class RecordBatch {
  constructor(
    readonly bytes: Uint8Array,
    readonly times: Float64Array,
    readonly offsets: Uint32Array,
    readonly start: number,
    readonly end: number,
    readonly sorted = false,
  ) {}

  get count(): number {
    return this.end - this.start;
  }

  /** Records [from, to) (indexes as for `times`), sharing this block. */
  slice(from: number, to: number): RecordBatch {
    return new RecordBatch(this.bytes, this.times, this.offsets, from, to, this.sorted);
  }

  /** Sorted, and every time from `from` to the end lies in [lo, hi). */
  private within(from: number, lo: number, hi: number): boolean {
    return this.sorted && from < this.end && this.times[from]! >= lo && this.times[this.end - 1]! < hi;
  }

  /** Sorted only: the first index in [from, end) whose time is >= t (orEqual) or > t. */
  private search(t: number, from: number, orEqual: boolean): number {
    const times = this.times;
    let lo = from;
    let hi = this.end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (orEqual ? times[mid]! >= t : times[mid]! > t) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /**
   * The first index >= from whose time is >= t and below `ceiling`, or `end` (times within a batch
   * need not be sorted: unless the batch is known sorted, this scans). Times at or past the ceiling
   * count as before t.
   */
  firstAtOrAfter(t: number, from: number = this.start, ceiling = Infinity): number {
    if (this.within(from, -Infinity, ceiling)) return this.search(t, from, true);
    const times = this.times;
    let i = from;
    while (i < this.end && !(times[i]! >= t && times[i]! < ceiling)) i++;
    return i;
  }

  /**
   * The first index >= from whose time lies in [lo, hi) and is above `limit`, or `end`: for a paced
   * replay, the first frame not yet due (a time outside [lo, hi) is due at once).
   */
  firstAfter(limit: number, from: number, lo: number, hi: number): number {
    if (this.within(from, lo, hi)) return this.search(limit, from, false);
    const times = this.times;
    let i = from;
    for (; i < this.end; i++) {
      const t = times[i]!;
      if (t > limit && t >= lo && t < hi) break;
    }
    return i;
  }

  /** Largest capture time in [lo, hi) in the batch (-Infinity when there is none). */
  maxTime(lo = -Infinity, hi = Infinity): number {
    return this.span(lo, hi).max;
  }

  /** In one pass: the largest capture time in [lo, hi) (-Infinity when none) and how many frames lie outside it. */
  span(lo: number, hi: number): { max: number; outside: number } {
    if (this.within(this.start, lo, hi)) return { max: this.times[this.end - 1]!, outside: 0 };
    let max = -Infinity;
    let outside = 0;
    const times = this.times;
    for (let i = this.start; i < this.end; i++) {
      const t = times[i]!;
      if (t >= lo && t < hi) {
        if (t > max) max = t;
      } else outside++;
    }
    return { max, outside };
  }

  /** The records as Frame objects (copies of their bytes): for tests and tools, not the hot path. */
  frames(): Frame[] {
    const out: Frame[] = [];
    const dv = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    for (let i = this.start; i < this.end; i++) {
      const o = this.offsets[i]!;
      const len = dv.getUint32(o + RECORD_CAPLEN, true);
      out.push({
        linkType: dv.getUint32(o + RECORD_LINKTYPE, true),
        timestampMs: this.times[i]!,
        data: this.bytes.slice(o + RECORD_HEADER_BYTES, o + RECORD_HEADER_BYTES + len),
      });
    }
    return out;
  }
}

/** Builds a RecordBatch record by record (grows as needed). */
export class RecordBatchBuilder {
  private bytes: Uint8Array;
  private dv: DataView;
  private times: Float64Array;
  private offsets: Uint32Array;
  private n = 0;
  private used = 0;
  /** The times added since the last take() are non-decreasing so far; the latest of them. */
  private sorted = true;
  private last = -Infinity;

  /** `bytesHint`: expected bytes of records (e.g. the chunk's length); `framesHint`: expected frames. */
  constructor(bytesHint = 64 * 1024, framesHint = 512) {
    this.bytes = new Uint8Array(Math.max(64, bytesHint));
    this.dv = new DataView(this.bytes.buffer);
    this.times = new Float64Array(Math.max(8, framesHint));
    this.offsets = new Uint32Array(Math.max(8, framesHint) + 1);
  }

  get count(): number {
    return this.n;
  }

  /** Bytes of records added since the last take(): where the next record goes. */
  get usedBytes(): number {
    return this.used;
  }

  /**
   * Appends records laid out elsewhere (the firmware's capture splitting, capture-split.ts):
   * `bytes` holds them back to back, `times` their capture times, `offsets` their offsets in this
   * builder (starting at usedBytes; one more than records, the last one the end); `sorted`: the
   * times are non-decreasing among themselves.
   */
  appendRecords(bytes: Uint8Array, times: Float64Array, offsets: Uint32Array, sorted: boolean): void {
    const k = times.length;
    if (k === 0) return;
    if (!sorted || !(times[0]! >= this.last)) this.sorted = false;
    this.last = times[k - 1]!;
    if (this.used + bytes.length > this.bytes.length) this.growBytes(this.used + bytes.length);
    while (this.n + k + 1 > this.offsets.length) this.growFrames();
    this.bytes.set(bytes, this.used);
    this.times.set(times, this.n);
    this.offsets.set(offsets, this.n);
    this.n += k;
    this.used += bytes.length;
  }

  /** Appends a record: `len` bytes of `src` from `start`. */
  add(linkType: number, timestampMs: number, src: Uint8Array, start: number, len: number): void {
    const size = recordBytes(len);
    if (this.used + size > this.bytes.length) this.growBytes(this.used + size);
    if (this.n + 1 >= this.offsets.length) this.growFrames();
    if (!(timestampMs >= this.last)) this.sorted = false;
    this.last = timestampMs;
    const o = this.used;
    const dv = this.dv;
    dv.setUint32(o + RECORD_LINKTYPE, linkType >>> 0, true);
    dv.setUint32(o + RECORD_CAPLEN, len, true);
    dv.setFloat64(o + RECORD_TIME, timestampMs, true);
    const b = this.bytes;
    const d = o + RECORD_HEADER_BYTES;
    if (len <= 64) for (let k = 0; k < len; k++) b[d + k] = src[start + k]!;
    else b.set(src.subarray(start, start + len), d);
    // zero the padding: the block carries nothing but the frames
    for (let k = d + len; k < o + size; k++) b[k] = 0;
    this.times[this.n] = timestampMs;
    this.offsets[this.n] = o;
    this.n++;
    this.used = o + size;
    this.offsets[this.n] = this.used;
  }

  /**
   * The records added since the last take() (null when none). The batch is a view of the
   * builder's arrays: with `reuse` the next records overwrite them (the caller must be done with
   * this batch before adding more); without, the builder starts on fresh arrays.
   */
  take(reuse = false): RecordBatch | null {
    if (this.n === 0) return null;
    const batch = new RecordBatch(
      this.bytes.subarray(0, this.used),
      this.times.subarray(0, this.n),
      this.offsets.subarray(0, this.n + 1),
      0,
      this.n,
      this.sorted,
    );
    this.sorted = true;
    this.last = -Infinity;
    if (!reuse) {
      this.bytes = new Uint8Array(0);
      this.dv = new DataView(this.bytes.buffer);
      this.times = new Float64Array(0);
      this.offsets = new Uint32Array(1);
    }
    this.n = 0;
    this.used = 0;
    return batch;
  }

  private growBytes(need: number): void {
    const next = new Uint8Array(Math.max(need, this.bytes.length * 2, 1024));
    next.set(this.bytes.subarray(0, this.used));
    this.bytes = next;
    this.dv = new DataView(next.buffer);
  }

  private growFrames(): void {
    const times = new Float64Array(Math.max(8, this.times.length * 2));
    times.set(this.times.subarray(0, this.n));
    const offsets = new Uint32Array(times.length + 1);
    offsets.set(this.offsets.subarray(0, this.n + 1));
    this.times = times;
    this.offsets = offsets;
  }
}

/** Packs Frame objects into a RecordBatch (tests, tools). */
export function packFrames(frames: Frame[]): RecordBatch | null {
  const b = new RecordBatchBuilder(
    frames.reduce((s, f) => s + recordBytes(f.data.length), 0),
    frames.length,
  );
  for (const f of frames) b.add(f.linkType, f.timestampMs, f.data, 0, f.data.length);
  return b.take();
}
