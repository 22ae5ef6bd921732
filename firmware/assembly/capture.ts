// Capture splitting: the plain records of a pcap/pcapng byte stream (pcap records, pcapng enhanced
// packet blocks) turned into batch records (layout.ts) with their capture times, so that the host
// hands whole chunks of a capture to the module instead of walking it frame by frame in JavaScript.
//
// Only the common case is done here; the module stops, leaving the rest to the host's reader
// (gateway/capture/pcap.ts), at the first thing that is not a complete, well-formed record it
// knows: a file or section header, an interface description, a simple or obsolete packet block,
// any other block type, a packet of an interface it was not told about, a damaged length or an
// incomplete record. The host reads that one record or block itself (raising its errors with the
// byte offset) and calls again. Times are computed with exactly the host's f64 arithmetic.
// Pure: no state between calls, nothing but the in, out, times and offsets areas is written.

import {
  RECORD_HEADER_BYTES, RECORD_LINKTYPE, RECORD_CAPLEN, RECORD_TIME, CAPTURE_IN_BYTES, CAPTURE_OUT_BYTES,
  CAPTURE_MAX_RECORDS, CAPTURE_MAX_INTERFACES, CAPTURE_IFACE_BYTES, CAPTURE_IFACE_LINKTYPE, CAPTURE_IFACE_UNITS,
  CAPTURE_IFACE_OFFSET, CAPTURE_RESULT_CONSUMED, CAPTURE_RESULT_RECORDS, CAPTURE_RESULT_BYTES,
  CAPTURE_RESULT_LAST_TIME, CAPTURE_RESULT_SORTED, CAPTURE_PCAP, CAPTURE_MAX_RECORD_BYTES,
} from './layout';

const IN: usize = memory.data(<i32>CAPTURE_IN_BYTES, 16);
const OUT: usize = memory.data(<i32>CAPTURE_OUT_BYTES, 16);
const TIMES: usize = memory.data(<i32>CAPTURE_MAX_RECORDS * 8, 16);
const OFFSETS: usize = memory.data((<i32>CAPTURE_MAX_RECORDS + 1) * 4, 16);
const IFACES: usize = memory.data(<i32>(CAPTURE_MAX_INTERFACES * CAPTURE_IFACE_BYTES), 16);
const RESULT: usize = memory.data(24, 16);

const EPB: u32 = 6;
const IN_BYTES: u32 = CAPTURE_IN_BYTES;
const OUT_BYTES: u32 = CAPTURE_OUT_BYTES;
const MAX_RECORDS: u32 = CAPTURE_MAX_RECORDS;
const MAX_INTERFACES: u32 = CAPTURE_MAX_INTERFACES;
const MAX_RECORD_BYTES: u32 = CAPTURE_MAX_RECORD_BYTES;
const IFACE_BYTES: usize = CAPTURE_IFACE_BYTES;
const HEADER: u32 = RECORD_HEADER_BYTES;

export function captureInPtr(): usize {
  return IN;
}
export function captureOutPtr(): usize {
  return OUT;
}
export function captureTimesPtr(): usize {
  return TIMES;
}
export function captureOffsetsPtr(): usize {
  return OFFSETS;
}
export function captureIfacesPtr(): usize {
  return IFACES;
}
export function captureResultPtr(): usize {
  return RESULT;
}

// @ts-ignore: decorator
@inline function rd32(p: usize, little: bool): u32 {
  const v = load<u32>(p);
  return little ? v : bswap<u32>(v);
}

// @ts-ignore: decorator
@inline function isFileMagic(v: u32): bool {
  return v == 0xa1b2c3d4 || v == 0xa1b23c4d || v == 0xa1b2cd34 || v == 0x0a0d0d0a;
}

/**
 * Splits the first `len` bytes of the in area (which start at a record or block boundary).
 * format CAPTURE_PCAP: records with a `pcapHeader`-byte header (16, or 24 for the modified
 * format), link type `linkType`, fractions in ns when `nanos`; CAPTURE_PCAPNG: enhanced packet
 * blocks of the first `interfaces` interfaces described in the interface area. `little`: the
 * byte order of the file or section. Offsets are written from `base` on (the host's block offset).
 * Returns the number of records; the result block holds the bytes consumed, the record bytes, whether the
 * times are non-decreasing and the last record's capture time.
 */
export function captureSplit(format: u32, len: u32, base: u32, little: bool, linkType: u32, pcapHeader: u32, nanos: bool, interfaces: u32): u32 {
  if (len > IN_BYTES) len = IN_BYTES;
  if (interfaces > MAX_INTERFACES) interfaces = MAX_INTERFACES;
  let p: u32 = 0;
  let o: u32 = 0;
  let n: u32 = 0;
  let last: f64 = NaN;
  let prev: f64 = -Infinity;
  let sorted: u32 = 1;
  while (n < MAX_RECORDS) {
    const at = IN + <usize>p;
    const avail = len - p;
    let lt: u32;
    let cap: u32;
    let data: u32;
    let next: u32;
    let ts: f64;
    if (format == CAPTURE_PCAP) {
      if (avail < pcapHeader) break;
      // a pcap magic (either byte order) or a pcapng section header where a record should start:
      // the file header of a capture that begins again (a restarted writer); the host reads it
      if (isFileMagic(load<u32>(at)) || isFileMagic(bswap<u32>(load<u32>(at)))) break;
      const sec = rd32(at, little);
      const frac = rd32(at + 4, little);
      cap = rd32(at + 8, little);
      if (cap > MAX_RECORD_BYTES || avail - pcapHeader < cap) break;
      lt = linkType;
      ts = <f64>sec * 1000 + (nanos ? <f64>frac / 1e6 : <f64>frac / 1e3);
      data = p + pcapHeader;
      next = data + cap;
    } else {
      if (avail < 12) break;
      if (rd32(at, little) != EPB) break;
      const blockLen = rd32(at + 4, little);
      if (blockLen < 32 || (blockLen & 3) != 0 || blockLen > MAX_RECORD_BYTES || avail < blockLen) break;
      if (rd32(at + blockLen - 4, little) != blockLen) break;
      const id = rd32(at + 8, little);
      if (id >= interfaces) break;
      cap = rd32(at + 20, little);
      if (cap > blockLen - 32) break;
      const iface = IFACES + <usize>id * IFACE_BYTES;
      lt = load<u32>(iface, CAPTURE_IFACE_LINKTYPE);
      const units = load<f64>(iface, CAPTURE_IFACE_UNITS);
      const offset = load<f64>(iface, CAPTURE_IFACE_OFFSET);
      const all = <f64>rd32(at + 12, little) * 4294967296 + <f64>rd32(at + 16, little);
      const whole = Math.floor(all / units);
      const rest = all - whole * units;
      ts = (whole + offset) * 1000 + (rest * 1000) / units;
      data = p + 28;
      next = p + blockLen;
    }
    const size: u32 = HEADER + ((cap + 7) & ~7);
    if (size > OUT_BYTES - o) break;
    const rec = OUT + <usize>o;
    store<u32>(rec, lt, RECORD_LINKTYPE);
    store<u32>(rec, cap, RECORD_CAPLEN);
    store<f64>(rec, ts, RECORD_TIME);
    memory.copy(rec + HEADER, IN + <usize>data, cap);
    memory.fill(rec + HEADER + <usize>cap, 0, size - HEADER - cap);
    if (!(ts >= prev)) sorted = 0;
    prev = ts;
    store<f64>(TIMES + (<usize>n << 3), ts);
    store<u32>(OFFSETS + (<usize>n << 2), base + o);
    o += size;
    n++;
    p = next;
    last = ts;
  }
  store<u32>(OFFSETS + (<usize>n << 2), base + o);
  store<u32>(RESULT, p, CAPTURE_RESULT_CONSUMED);
  store<u32>(RESULT, n, CAPTURE_RESULT_RECORDS);
  store<u32>(RESULT, o, CAPTURE_RESULT_BYTES);
  store<u32>(RESULT, sorted, CAPTURE_RESULT_SORTED);
  store<f64>(RESULT, last, CAPTURE_RESULT_LAST_TIME);
  return n;
}
