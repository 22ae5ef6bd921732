// The host side of the module's capture splitting (firmware/assembly/capture.ts): the capture
// reader (gateway/capture/pcap.ts) copies a run of a pcap/pcapng stream into the module, which
// writes the plain records it finds as batch records; the reader appends them to its batch in
// three copies (bytes, times, offsets) instead of parsing frame by frame in JavaScript. What the
// module leaves (headers, interface descriptions, other blocks, damage, an incomplete record) the
// reader handles itself. The in and out areas, the records' times and offsets, the result and the
// interface descriptions are zero-filled after every call: nothing of the frames stays in the
// module between calls.
import * as layout from '../assembly/layout.ts';

/** The exports the splitter uses (a subset of FirmwareExports). */
export interface CaptureSplitExports {
  memory: { buffer: ArrayBuffer };
  capture_in_ptr(): number;
  capture_out_ptr(): number;
  capture_times_ptr(): number;
  capture_offsets_ptr(): number;
  capture_ifaces_ptr(): number;
  capture_result_ptr(): number;
  capture_split(format: number, len: number, base: number, little: number, linkType: number, pcapHeader: number, nanos: number, interfaces: number): number;
}

/** How the records of a stream look: its format and, per format, what the module needs to read them. */
export type SplitFormat =
  | { format: 'pcap'; little: boolean; linkType: number; recordHeader: number; nanos: boolean }
  | { format: 'pcapng'; little: boolean; interfaces: ReadonlyArray<{ linkType: number; unitsPerSecond: number; offsetSeconds: number }> };

/** Where the records go: appended as a whole run (RecordBatchBuilder.appendRecords). */
export interface SplitSink {
  /** Bytes of records the sink holds so far: the first new record's offset. */
  readonly usedBytes: number;
  appendRecords(bytes: Uint8Array, times: Float64Array, offsets: Uint32Array, sorted: boolean): void;
}

/** The result block capture_split writes (consumed, records, bytes, sorted, last time). */
const RESULT_BLOCK_BYTES = layout.CAPTURE_RESULT_LAST_TIME + 8;

export class CaptureSplitter {
  /** Most bytes of the stream one call takes. */
  static readonly IN_BYTES = layout.CAPTURE_IN_BYTES;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly inPtr: number;
  private readonly outPtr: number;
  private readonly times: Float64Array;
  private readonly offsets: Uint32Array;
  private readonly ifaces: number;
  private readonly result: number;

  constructor(private readonly x: CaptureSplitExports) {
    const buf = x.memory.buffer;
    this.u8 = new Uint8Array(buf);
    this.dv = new DataView(buf);
    this.inPtr = x.capture_in_ptr();
    this.outPtr = x.capture_out_ptr();
    this.times = new Float64Array(buf, x.capture_times_ptr(), layout.CAPTURE_MAX_RECORDS);
    this.offsets = new Uint32Array(buf, x.capture_offsets_ptr(), layout.CAPTURE_MAX_RECORDS + 1);
    this.ifaces = x.capture_ifaces_ptr();
    this.result = x.capture_result_ptr();
  }

  /**
   * Splits records from `src[start, end)` (starting at a record or block boundary) into `sink`,
   * as many as it can; returns the bytes consumed (0: the record at `start` is one for the
   * reader) and the last record's capture time (NaN when none).
   */
  split(fmt: SplitFormat, src: Uint8Array, start: number, end: number, sink: SplitSink): { consumed: number; lastTime: number } {
    let consumed = 0;
    let lastTime = Number.NaN;
    const x = this.x;
    const dv = this.dv;
    let ifaceCount = 0;
    if (fmt.format === 'pcapng') {
      ifaceCount = Math.min(fmt.interfaces.length, layout.CAPTURE_MAX_INTERFACES);
      for (let i = 0; i < ifaceCount; i++) {
        const f = fmt.interfaces[i]!;
        const at = this.ifaces + i * layout.CAPTURE_IFACE_BYTES;
        dv.setUint32(at + layout.CAPTURE_IFACE_LINKTYPE, f.linkType >>> 0, true);
        dv.setFloat64(at + layout.CAPTURE_IFACE_UNITS, f.unitsPerSecond, true);
        dv.setFloat64(at + layout.CAPTURE_IFACE_OFFSET, f.offsetSeconds, true);
      }
    }
    const pcap = fmt.format === 'pcap';
    while (start < end) {
      const len = Math.min(end - start, layout.CAPTURE_IN_BYTES);
      this.u8.set(src.subarray(start, start + len), this.inPtr);
      const n = x.capture_split(
        pcap ? layout.CAPTURE_PCAP : layout.CAPTURE_PCAPNG,
        len,
        sink.usedBytes,
        fmt.little ? 1 : 0,
        pcap ? fmt.linkType >>> 0 : 0,
        pcap ? fmt.recordHeader : 0,
        pcap && fmt.nanos ? 1 : 0,
        ifaceCount,
      );
      const used = dv.getUint32(this.result + layout.CAPTURE_RESULT_CONSUMED, true);
      const bytes = dv.getUint32(this.result + layout.CAPTURE_RESULT_BYTES, true);
      if (n > 0) {
        sink.appendRecords(
          this.u8.subarray(this.outPtr, this.outPtr + bytes),
          this.times.subarray(0, n),
          this.offsets.subarray(0, n + 1),
          dv.getUint32(this.result + layout.CAPTURE_RESULT_SORTED, true) === 1,
        );
        lastTime = dv.getFloat64(this.result + layout.CAPTURE_RESULT_LAST_TIME, true);
      }
      // nothing of the frames stays in the module: their bytes, times, lengths (offsets), the result
      this.u8.fill(0, this.inPtr, this.inPtr + len);
      if (bytes > 0) this.u8.fill(0, this.outPtr, this.outPtr + bytes);
      if (n > 0) {
        this.times.fill(0, 0, n);
        this.offsets.fill(0, 0, n + 1);
      }
      this.u8.fill(0, this.result, this.result + RESULT_BLOCK_BYTES);
      consumed += used;
      start += used;
      if (used === 0) break;
    }
    // the interface descriptions (link types, clock units) of this call
    if (ifaceCount > 0) this.u8.fill(0, this.ifaces, this.ifaces + ifaceCount * layout.CAPTURE_IFACE_BYTES);
    return { consumed, lastTime };
  }
}
