// The host-side pcap/pcapng reader: both formats, both byte orders, timestamp resolutions, several
// interfaces, chunking, and clear errors (file + byte offset) on damaged input.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  CaptureFormatError,
  CaptureParser,
  fileChunks,
  MAX_INTERFACES,
  readCapture,
  readCaptureFile,
  readCaptureRecords,
  unsupportedLinkType,
} from '../gateway/capture/pcap.ts';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { Frame } from '../firmware/host/types.ts';
import { Firmware } from '../firmware/host/firmware.ts';
import { CaptureSplitter } from '../firmware/host/capture-split.ts';
import { packFrames, RecordBatch } from '../firmware/host/batch.ts';
import { pacer } from '../gateway/sources.ts';
import * as layout from '../firmware/assembly/layout.ts';
import { pcapngHeader, pcapngPacket } from '../simulator/pcap-writer.ts';
import { capturesDir, need } from './support/need.ts';

// ---- builders -------------------------------------------------------------------------------

class W {
  private parts: number[] = [];
  constructor(private little: boolean) {}
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.little ? this.u8(v).u8(v >>> 8) : this.u8(v >>> 8).u8(v);
  }
  u32(v: number): this {
    return this.little ? this.u16(v & 0xffff).u16(v >>> 16) : this.u16(v >>> 16).u16(v & 0xffff);
  }
  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.u8(b[i]);
    return this;
  }
  pad4(): this {
    while (this.parts.length % 4) this.u8(0);
    return this;
  }
  get length(): number {
    return this.parts.length;
  }
  out(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function pcap(little: boolean, nanos: boolean, linkType: number, recs: Array<[number, number, Uint8Array]>): Uint8Array {
  const w = new W(little)
    .u32(nanos ? 0xa1b23c4d : 0xa1b2c3d4)
    .u16(2)
    .u16(4)
    .u32(0)
    .u32(0)
    .u32(65535)
    .u32(linkType);
  for (const [sec, frac, data] of recs) w.u32(sec).u32(frac).u32(data.length).u32(data.length).bytes(data);
  return w.out();
}

function block(little: boolean, type: number, body: (w: W) => void): Uint8Array {
  const b = new W(little);
  body(b);
  b.pad4();
  const total = b.length + 12;
  return new W(little).u32(type).u32(total).bytes(b.out()).u32(total).out();
}
const shb = (little: boolean) => block(little, 0x0a0d0d0a, (w) => w.u32(0x1a2b3c4d).u16(1).u16(0).u32(0xffffffff).u32(0xffffffff));
const idb = (little: boolean, linkType: number, tsresol?: number) =>
  block(little, 1, (w) => {
    w.u16(linkType).u16(0).u32(0);
    if (tsresol !== undefined) w.u16(9).u16(1).u8(tsresol).pad4().u16(0).u16(0);
  });
const epb = (little: boolean, iface: number, ts: bigint, data: Uint8Array) =>
  block(little, 6, (w) =>
    w
      .u32(iface)
      .u32(Number(ts >> 32n))
      .u32(Number(ts & 0xffffffffn))
      .u32(data.length)
      .u32(data.length)
      .bytes(data),
  );
const spb = (little: boolean, data: Uint8Array) => block(little, 3, (w) => w.u32(data.length).bytes(data));
const opb = (little: boolean, iface: number, ts: bigint, data: Uint8Array) =>
  block(little, 2, (w) =>
    w
      .u16(iface)
      .u16(0)
      .u32(Number(ts >> 32n))
      .u32(Number(ts & 0xffffffffn))
      .u32(data.length)
      .u32(data.length)
      .bytes(data),
  );
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), (o += p.length);
  return out;
};
const bytes = (...v: number[]) => Uint8Array.from(v);

/**
 * Whether the parser reads a record whose last bytes are the start of a file magic at `magicAt`
 * (a restart cut it there) as a frame, the input pushed in chunks of `chunk`: when the record is
 * whole at the end of a chunk that does not hold the magic's 4 bytes, it is read at once, not held
 * back for bytes that may come minutes later (the restart is found at the next record).
 */
const readsTail = (recordEnd: number, magicAt: number, chunk: number, length: number) =>
  magicAt >= recordEnd - 3 && magicAt < recordEnd && Math.min(Math.ceil(recordEnd / chunk) * chunk, length) < magicAt + 4;

function parseAll(input: Uint8Array, chunk = input.length || 1): { frames: Frame[]; parser: CaptureParser } {
  const parser = new CaptureParser('mem');
  const frames: Frame[] = [];
  for (let i = 0; i < input.length; i += chunk) frames.push(...parser.push(input.subarray(i, i + chunk)));
  frames.push(...parser.flush());
  parser.end();
  return { frames, parser };
}

// ---- tests ----------------------------------------------------------------------------------

describe('pcap', () => {
  for (const little of [true, false]) {
    for (const nanos of [false, true]) {
      it(`reads ${little ? 'little' : 'big'}-endian ${nanos ? 'nanosecond' : 'microsecond'} pcap`, () => {
        const file = pcap(little, nanos, 127, [
          [1700000000, nanos ? 123456789 : 123456, bytes(1, 2, 3)],
          [1700000001, 0, bytes()],
          [1700000002, 5, bytes(9)],
        ]);
        for (const chunk of [file.length, 7, 1]) {
          const { frames, parser } = parseAll(file, chunk);
          expect(parser.format).toBe('pcap');
          expect([...parser.linkTypes]).toEqual([127]);
          expect(frames.map((f) => [...f.data])).toEqual([[1, 2, 3], [], [9]]);
          expect(Math.abs(frames[0].timestampMs - (nanos ? 1700000000123 + 0.456789 : 1700000000123 + 0.456))).toBeLessThan(0.001);
          expect(frames[1].timestampMs).toBe(1700000001000);
          expect(frames[0].linkType).toBe(127);
        }
      });
    }
  }

  it('keeps the FCS-length bits of the header link type in frames, masks them in linkTypes', () => {
    const { frames, parser } = parseAll(pcap(true, false, 0x3000007f, [[1, 0, bytes(0)]]));
    expect(frames[0].linkType).toBe(0x3000007f);
    expect([...parser.linkTypes]).toEqual([127]);
  });

  it('returns every complete record, then reports a truncated tail with its offset', () => {
    const file = pcap(true, false, 105, [
      [1, 0, bytes(1, 2, 3, 4)],
      [2, 0, bytes(5, 6, 7, 8)],
    ]);
    const cut = file.subarray(0, file.length - 2);
    const parser = new CaptureParser('cut.pcap');
    const frames = parser.push(cut);
    expect(frames).toHaveLength(1);
    const err = (() => {
      try {
        parser.end();
      } catch (e) {
        return e;
      }
    })() as CaptureFormatError;
    expect(err).toBeInstanceOf(CaptureFormatError);
    expect(err.offset).toBe(24 + 16 + 4);
    expect(err.source).toBe('cut.pcap');
    expect(err.message).toMatch(/cut\.pcap: .*record.*offset 44/);
  });

  it('reads on from a new file header where a record should start (a restarted writer on the same pipe, captures joined with cat)', () => {
    const a = pcap(true, false, 127, [
      [1_780_000_000, 1, bytes(1)],
      [1_780_000_001, 2, bytes(2, 2)],
    ]);
    const b = pcap(false, true, 256, [[1_780_000_002, 3_000_000, bytes(3, 3, 3)]]);
    const ng = cat(shb(false), idb(false, 251), epb(false, 0, 1_780_000_003_000_000n, bytes(4)));
    // pcap, pcap in the other byte order and resolution, pcapng, then pcap again
    const file = cat(a, b, ng, a);
    for (const chunk of [file.length, 13, 1]) {
      const { frames } = parseAll(file, chunk);
      expect(frames.map((f) => [f.linkType, f.timestampMs, [...f.data]])).toEqual([
        [127, 1_780_000_000_000.001, [1]],
        [127, 1_780_000_001_000.002, [2, 2]],
        [256, 1_780_000_002_003, [3, 3, 3]],
        [251, 1_780_000_003_000, [4]],
        [127, 1_780_000_000_000.001, [1]],
        [127, 1_780_000_001_000.002, [2, 2]],
      ]);
    }
  });

  it('reads a record whose time looks like a file header (a pcap magic, version 2) but not version 2.4 as a record', () => {
    // 0xa1b2c3d4 s is 2055-12-19; 2 us reads as major version 2, minor 0
    const file = pcap(true, false, 127, [
      [1_780_000_000, 1, bytes(1)],
      [0xa1b2c3d4, 2, bytes(2, 2)],
      [0xa1b2c3d4, 3, bytes(3)],
    ]);
    for (const chunk of [file.length, 5, 1]) {
      const { frames } = parseAll(file, chunk);
      expect(frames.map((f) => [...f.data])).toEqual([[1], [2, 2], [3]]);
    }
  });

  describe('a capture tool killed in the middle of a record and restarted (its new file header where the rest of the record was due)', () => {
    const payload = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) & 0xff);
    for (const little of [true, false])
      for (const nanos of [false, true])
        it(`drops only the cut record and reads every frame after the restart, wherever the cut (${little ? 'little' : 'big'}-endian, ${nanos ? 'ns' : 'us'})`, () => {
          const before = pcap(little, nanos, 127, [
            [1_780_000_000, 1, payload(40, 1)],
            [1_780_000_001, 2, payload(60, 2)],
          ]);
          const cut = pcap(little, nanos, 127, [[1_780_000_002, 3, payload(50, 3)]]).subarray(24); // the record alone
          const after = pcap(little, nanos, 127, [
            [1_780_000_100, 4, payload(30, 4)],
            [1_780_000_101, 5, payload(70, 5)],
            [1_780_000_102, 6, payload(20, 6)],
            [1_780_000_103, 7, payload(90, 7)],
          ]);
          const want = [1, 2, 4, 5, 6, 7];
          const ms = (sec: number, frac: number) => sec * 1000 + (nanos ? frac / 1e6 : frac / 1e3);
          const wantTimes = [
            ms(1_780_000_000, 1),
            ms(1_780_000_001, 2),
            ms(1_780_000_100, 4),
            ms(1_780_000_101, 5),
            ms(1_780_000_102, 6),
            ms(1_780_000_103, 7),
          ];
          for (let k = 1; k < cut.length; k++) {
            const file = cat(before, cut.subarray(0, k), after);
            for (const chunk of [file.length, 13, 1]) {
              const { frames, parser } = parseAll(file, chunk);
              // cut in its last 3 bytes and read before they were: the cut record is one frame
              const read = readsTail(before.length + cut.length, before.length + k, chunk, file.length);
              expect(frames.map((f) => (f.data[0] === undefined ? -1 : [1, 2, 3, 4, 5, 6, 7].find((i) => f.data[1] === ((i * 31 + 7) & 0xff))))).toEqual(
                read ? [1, 2, 3, 4, 5, 6, 7] : want,
              );
              expect(frames.map((f) => f.timestampMs)).toEqual(read ? [...wantTimes.slice(0, 2), ms(1_780_000_002, 3), ...wantTimes.slice(2)] : wantTimes);
              expect(parser.cutRecords).toBe(1);
            }
          }
        });

    it('does the same with the firmware splitting the records (the gateway path), and in pcapng', () => {
      const fw = Firmware.loadSync();
      const before = pcap(
        true,
        false,
        127,
        Array.from({ length: 50 }, (_, i) => [1_780_000_000 + i, i, payload(30 + i, i)] as [number, number, Uint8Array]),
      );
      const cut = pcap(true, false, 127, [[1_780_000_050, 3, payload(120, 99)]]).subarray(24);
      const after = pcap(
        true,
        false,
        127,
        Array.from({ length: 50 }, (_, i) => [1_780_000_100 + i, i, payload(40 + i, i)] as [number, number, Uint8Array]),
      );
      const ngBlock = epb(true, 0, 1_780_000_050_000_000n, payload(120, 99));
      const ng = (n: number, t0: bigint) =>
        cat(shb(true), idb(true, 127), ...Array.from({ length: n }, (_, i) => epb(true, 0, t0 + BigInt(i) * 1_000_000n, payload(30 + i, i))));
      for (const k of [3, 9, 12, 15, 20, 77, cut.length - 1]) {
        for (const [file, n] of [
          [cat(before, cut.subarray(0, k), after), 100],
          [cat(ng(50, 1_780_000_000_000_000n), ngBlock.subarray(0, k), ng(50, 1_780_000_100_000_000n)), 100],
          [cat(ng(50, 1_780_000_000_000_000n), ngBlock.subarray(0, k), after), 100],
        ] as Array<[Uint8Array, number]>) {
          for (const chunk of [file.length, 4096, 100, 7]) {
            const parser = new CaptureParser('mem', fw.splitter);
            let count = 0;
            const times: number[] = [];
            for (let i = 0; i < file.length; i += chunk) {
              const b = parser.pushRecords(file.subarray(i, i + chunk));
              if (b) {
                count += b.count;
                times.push(...b.times);
              }
            }
            const b = parser.flushRecords();
            if (b) {
              count += b.count;
              times.push(...b.times);
            }
            parser.end();
            expect(count).toBe(n);
            expect(parser.cutRecords).toBe(1);
            expect(times.every((t) => t >= 1_780_000_000_000 && t < 1_780_000_200_000)).toBe(true);
          }
        }
      }
    });

    it("reads the frames of a restarted capture that ends inside the cut record's claimed length", () => {
      const before = pcap(true, false, 127, [[1_780_000_000, 1, payload(40, 1)]]);
      const cut = pcap(true, false, 127, [[1_780_000_002, 3, payload(1000, 3)]]).subarray(24);
      const after = pcap(true, false, 127, [[1_780_000_100, 4, payload(30, 4)]]);
      for (const chunk of [1000, 7]) {
        const { frames, parser } = parseAll(cat(before, cut.subarray(0, 100), after), chunk);
        expect(frames.map((f) => f.timestampMs)).toEqual([1_780_000_000_000.001, 1_780_000_100_000.004]);
        expect(parser.cutRecords).toBe(1);
      }
    });

    it('reads a frame that carries a whole capture file (header and records) as a frame, mid-stream and last', () => {
      const inner = pcap(true, false, 127, [
        [1_780_000_000, 1, payload(20, 1)],
        [1_780_000_001, 1, payload(20, 2)],
      ]);
      const file = pcap(true, false, 127, [
        [1_780_000_000, 1, cat(bytes(9, 9, 9), inner, bytes(8))],
        [1_780_000_001, 2, cat(inner, shb(true))],
        [1_780_000_002, 3, cat(bytes(7), inner, bytes(1))],
      ]);
      for (const chunk of [file.length, 100, 13, 1]) {
        const { frames, parser } = parseAll(file, chunk);
        expect(frames.map((f) => f.data.length)).toEqual([inner.length + 4, inner.length + shb(true).length, inner.length + 2]);
        expect(parser.cutRecords).toBe(0);
      }
    });

    it('never reads the frames of a capture carried at the end of a frame (any data frame can carry one): the frame is read whole', () => {
      const fw = Firmware.loadSync();
      // the carried capture stamped right after the frame, as one sent by a device in range would be
      for (const [little, nanos, link] of [
        [true, false, 127],
        [false, false, 127],
        [true, true, 127],
        [true, false, 251],
      ] as Array<[boolean, boolean, number]>) {
        const carried = pcap(little, nanos, link, [
          [1_780_000_001, nanos ? 100_000 : 100, cat(bytes(0xee), payload(30, 8))],
          [1_780_000_001, nanos ? 200_000 : 200, cat(bytes(0xee), payload(20, 9))],
        ]);
        const frames = [cat(bytes(1), payload(10, 1)), cat(bytes(2), payload(5, 2), carried), cat(bytes(3), payload(40, 3)), cat(bytes(4), carried)];
        const file = pcap(
          true,
          false,
          127,
          frames.map((data, i) => [1_780_000_001 + i, 0, data]),
        );
        for (const chunk of [file.length, 100, 13, 1]) {
          const { frames: got, parser } = parseAll(file, chunk);
          expect(got.map((f) => f.data[0])).toEqual([1, 2, 3, 4]);
          expect(got.map((f) => f.data.length)).toEqual(frames.map((f) => f.length));
          expect(got.every((f) => f.linkType === 127)).toBe(true);
          expect(parser.cutRecords).toBe(0);
          const split = new CaptureParser('mem', fw.splitter);
          const times: number[] = [];
          for (let i = 0; i < file.length; i += chunk) times.push(...(split.pushRecords(file.subarray(i, i + chunk))?.times ?? []));
          times.push(...(split.flushRecords()?.times ?? []));
          split.end();
          expect(times).toEqual(got.map((f) => f.timestampMs));
        }
      }
    });

    it("a file header ending a frame changes nothing after it: another link type, resolution or snap length is read as the frame's bytes; one of the capture's own drops that frame only", () => {
      const header = (little: boolean, nanos: boolean, link: number, snap = 65535) =>
        new W(little)
          .u32(nanos ? 0xa1b23c4d : 0xa1b2c3d4)
          .u16(2)
          .u16(4)
          .u32(0)
          .u32(0)
          .u32(snap)
          .u32(link)
          .out();
      const after: Array<[number, number, Uint8Array]> = Array.from({ length: 40 }, (_, i) => [
        1_780_000_010 + i,
        500_000 + i,
        cat(bytes(10 + i), payload(20, i)),
      ]);
      for (const [h, own] of [
        [header(true, false, 251), false],
        [header(true, false, 105), false],
        [header(true, true, 127), false],
        [header(true, false, 127, 64), false],
        [header(false, false, 127), false],
        [header(true, false, 127), true],
      ] as Array<[Uint8Array, boolean]>) {
        const file = pcap(true, false, 127, [[1_780_000_000, 1, bytes(1)], [1_780_000_001, 2, cat(bytes(2), payload(30, 2), h)], ...after]);
        for (const chunk of [file.length, 64, 7]) {
          const { frames, parser } = parseAll(file, chunk);
          expect(frames.map((f) => f.data[0])).toEqual([1, ...(own ? [] : [2]), ...after.map(([, , d]) => d[0])]);
          expect(frames.every((f) => f.linkType === 127)).toBe(true);
          expect(frames.slice(own ? 1 : 2).map((f) => f.timestampMs)).toEqual(after.map(([s, us]) => s * 1000 + us / 1000));
          expect(parser.cutRecords).toBe(own ? 1 : 0);
        }
      }
    });

    it('returns a frame that carries a capture file once the next record header is in (in step, near in time), not after 32 more records or the bytes a carried pcapng header claims', () => {
      const carried = pcap(true, false, 127, [
        [1_780_000_000, 7, payload(30, 8)],
        [1_780_000_000, 8, payload(20, 9)],
      ]);
      const bigShb = new W(true)
        .u32(0x0a0d0d0a)
        .u32(1 << 20)
        .u32(0x1a2b3c4d)
        .u16(1)
        .u16(0)
        .out(); // claims 1 MiB
      for (const inside of [cat(carried, bytes(5, 5, 5)), cat(bytes(9), bigShb, payload(30, 1)), cat(carried.subarray(0, 30))]) {
        const head = pcap(true, false, 127, [
          [1_780_000_000, 1, bytes(1)],
          [1_780_000_000, 2, cat(bytes(2), inside)],
        ]);
        const next = pcap(true, false, 127, [[1_780_000_001, 3, cat(bytes(3), payload(10, 3))]]).subarray(24);
        const parser = new CaptureParser('live');
        const got = parser.push(head).map((f) => f.data[0]);
        got.push(...parser.push(next.subarray(0, 16)).map((f) => f.data[0])); // the next record's header only
        expect(got).toEqual([1, 2]);
        expect(parser.push(next.subarray(16)).map((f) => f.data[0])).toEqual([3]);
        expect(parser.flush()).toEqual([]);
        parser.end();
        expect(parser.cutRecords).toBe(0);
      }
    });

    it("reads every frame when the restarted capture's first record is cut in its header by yet another restart (a crash loop)", () => {
      const before = pcap(true, false, 127, [[1_780_000_000, 1, payload(40, 1)]]);
      const cut = (t: number) => pcap(true, false, 127, [[t, 3, payload(120, 9)]]).subarray(24);
      const after = pcap(true, false, 127, [
        [1_780_000_100, 4, payload(30, 4)],
        [1_780_000_101, 5, payload(50, 5)],
      ]);
      for (const k1 of [3, 20, 60])
        for (const k2 of [0, 2, 9, 15]) {
          const file = cat(before, cut(1_780_000_010).subarray(0, k1), pcap(true, false, 127, []), cut(1_780_000_020).subarray(0, k2), after);
          for (const chunk of [file.length, 13]) {
            const { frames, parser } = parseAll(file, chunk);
            expect(
              frames.map((f) => f.timestampMs),
              `cut at ${k1} then ${k2}`,
            ).toEqual([1_780_000_000_000.001, 1_780_000_100_000.004, 1_780_000_101_000.005]);
            expect(parser.cutRecords).toBe(k2 === 0 ? 1 : 2);
          }
        }
    });

    it('pcapng: reads a block carrying a capture file (a section, or a pcap file) as one frame, and finds a restart whose section header begins at the end of a chunk', () => {
      const section = (t0: bigint, n: number, seed: number) =>
        cat(
          shb(true),
          idb(true, 127),
          ...Array.from({ length: n }, (_, i) => epb(true, 0, t0 + BigInt(i) * 1000n, cat(bytes(0xee), payload(20 + i, seed + i)))),
        );
      const carriedPcap = pcap(true, false, 127, [[1_780_000_001, 5, cat(bytes(0xee), payload(20, 3))]]);
      const stream = cat(
        shb(true),
        idb(true, 127),
        epb(true, 0, 1_780_000_000_000_000n, cat(bytes(1), section(1_780_000_000_100_000n, 3, 1))),
        epb(true, 0, 1_780_000_001_000_000n, cat(bytes(2), carriedPcap)),
        epb(true, 0, 1_780_000_002_000_000n, cat(bytes(3), section(1_780_000_002_100_000n, 2, 5), bytes(7, 7))),
      );
      for (const chunk of [stream.length, 100, 13, 1]) {
        const { frames, parser } = parseAll(stream, chunk);
        expect(frames.map((f) => f.data[0])).toEqual([1, 2, 3]);
        expect(parser.cutRecords).toBe(0);
      }
      // a block cut just before its trailing length: the new section header is where that length was due
      const cutBlock = epb(true, 0, 1_780_000_003_000_000n, payload(30, 9));
      const file = cat(stream, cutBlock.subarray(0, cutBlock.length - 4), section(1_780_000_004_000_000n, 2, 7));
      for (let chunk = 1; chunk <= 64; chunk++) {
        const { frames, parser } = parseAll(file, chunk);
        expect(
          frames.map((f) => f.data[0]),
          `chunks of ${chunk}`,
        ).toEqual([1, 2, 3, 0xee, 0xee]);
        expect(parser.cutRecords).toBe(1);
      }
    });

    it('returns a whole record whose last bytes could begin a file magic at once, with and without the firmware splitting (a live source may send nothing more for minutes)', () => {
      const fw = Firmware.loadSync();
      const tails = [
        [0xd4, 0xc3, 0xb2],
        [0xd4, 0xc3],
        [0xd4],
        [0x4d, 0x3c, 0xb2],
        [0x34, 0xcd, 0xb2],
        [0xa1, 0xb2, 0xc3],
        [0xa1, 0xb2],
        [0xa1],
        [0x0a, 0x0d, 0x0d],
        [0x0a],
      ];
      for (const tail of tails) {
        const first = pcap(true, false, 127, [[1_780_000_000, 1, cat(payload(40, 1), bytes(...tail))]]);
        const second = pcap(true, false, 127, [[1_780_000_001, 2, cat(payload(30, 2), bytes(...tail))]]).subarray(24);
        const parser = new CaptureParser('live');
        expect(parser.push(first).map((f) => f.timestampMs)).toEqual([1_780_000_000_000.001]);
        expect(parser.push(second).map((f) => f.timestampMs)).toEqual([1_780_000_001_000.002]);
        const split = new CaptureParser('live', fw.splitter);
        expect([...(split.pushRecords(first)?.times ?? [])]).toEqual([1_780_000_000_000.001]);
        expect([...(split.pushRecords(second)?.times ?? [])]).toEqual([1_780_000_001_000.002]);
        for (const p of [parser, split]) {
          expect(p.flush()).toEqual([]);
          p.end();
          expect(p.cutRecords).toBe(0);
        }
      }
    });

    it('finds a restart that began in the last 1-3 bytes of a record already returned, at the next push, the firmware splitting giving the same frames', () => {
      const fw = Firmware.loadSync();
      for (const little of [true, false]) {
        const before = pcap(
          true,
          false,
          127,
          Array.from({ length: 20 }, (_, i) => [1_780_000_000 + i, i, payload(30 + i, i)] as [number, number, Uint8Array]),
        );
        const cut = pcap(true, false, 127, [[1_780_000_050, 3, payload(120, 99)]]).subarray(24);
        const after = pcap(
          little,
          false,
          127,
          Array.from({ length: 20 }, (_, i) => [1_780_000_100 + i, i, payload(40 + i, i)] as [number, number, Uint8Array]),
        );
        for (const k of [cut.length - 3, cut.length - 2, cut.length - 1]) {
          const head = cat(before, cut.subarray(0, k), after.subarray(0, cut.length - k)); // ends with the cut record
          const rest = after.subarray(cut.length - k);
          const js = new CaptureParser('live');
          const split = new CaptureParser('live', fw.splitter);
          const jsTimes = [js.push(head), js.push(rest), js.flush()].flat().map((f) => f.timestampMs);
          const splitTimes = [split.pushRecords(head), split.pushRecords(rest), split.flushRecords()].flatMap((b) => (b ? [...b.times] : []));
          js.end();
          split.end();
          expect(jsTimes.length).toBe(41); // 20, the cut record read at once, 20 after the restart
          expect(jsTimes[20]).toBe(1_780_000_050_000.003);
          expect(jsTimes.slice(21)).toEqual(Array.from({ length: 20 }, (_, i) => (1_780_000_100 + i) * 1000 + i / 1000));
          expect(splitTimes).toEqual(jsTimes);
          expect([js.cutRecords, split.cutRecords]).toEqual([1, 1]);
        }
      }
    });

    it('reads captures joined with one cut short between them (cat a.pcap <(head -c N b.pcap) c.pcap)', () => {
      const a = pcap(true, false, 127, [
        [1_780_000_000, 1, payload(40, 1)],
        [1_780_000_001, 1, payload(40, 2)],
      ]);
      const b = pcap(true, false, 127, [
        [1_780_000_010, 1, payload(40, 3)],
        [1_780_000_011, 1, payload(40, 4)],
      ]);
      const c = pcap(false, true, 127, [
        [1_780_000_020, 1, payload(40, 5)],
        [1_780_000_021, 1, payload(40, 6)],
      ]);
      for (let n = 25; n < b.length; n++) {
        const file = cat(a, b.subarray(0, n), c);
        const { frames, parser } = parseAll(file, 13);
        const read = readsTail(a.length + (n < 24 + 56 ? 24 + 56 : 24 + 112), a.length + n, 13, file.length);
        expect(frames.length).toBe(4 + (n >= 24 + 56 ? 1 : 0) + (read ? 1 : 0));
        expect(parser.cutRecords).toBe(n === 24 + 56 ? 0 : 1);
      }
    });

    it('reads every frame of a capture tool in a crash loop (restarted again before its new capture wrote 32 records), whole or in chunks, with and without the firmware splitting', () => {
      const fw = Firmware.loadSync();
      const run = (t: number, n: number, len: number) =>
        pcap(
          true,
          false,
          127,
          Array.from({ length: n }, (_, i) => [t + i, i, payload(len + i, t + i)] as [number, number, Uint8Array]),
        );
      const cutAt = (t: number, k: number) => run(t, 1, 60).subarray(24, 24 + k);
      for (const between of [1, 3, 10, 30]) {
        for (const k of [3, 20, 50]) {
          const file = cat(
            run(1_780_000_000, 5, 40),
            cutAt(1_780_000_010, k),
            run(1_780_000_100, between, 30),
            cutAt(1_780_000_200, k),
            run(1_780_000_300, 5, 40),
          );
          for (const chunk of [file.length, 64, 7]) {
            const { frames, parser } = parseAll(file, chunk);
            expect(frames.length, `${between} between, cut at ${k}, chunks of ${chunk}`).toBe(10 + between);
            expect(parser.cutRecords).toBe(2);
            const split = new CaptureParser('mem', fw.splitter);
            let count = 0;
            for (let i = 0; i < file.length; i += chunk) count += split.pushRecords(file.subarray(i, i + chunk))?.count ?? 0;
            count += split.flushRecords()?.count ?? 0;
            split.end();
            expect(count, `${between} between, cut at ${k}, chunks of ${chunk}, firmware splitting`).toBe(10 + between);
          }
        }
      }
    });
  });

  it('rejects an absurd record length as damage instead of buffering it', () => {
    const file = cat(pcap(true, false, 127, [[1, 0, bytes(1)]]), new W(true).u32(1).u32(0).u32(0x7fffffff).u32(0x7fffffff).out());
    const parser = new CaptureParser('big.pcap');
    expect(parser.push(file)).toHaveLength(1); // the good frame first
    expect(() => parser.push(bytes(0))).toThrow(/big\.pcap: record claims more than 16777216 captured bytes: damaged capture \(at byte offset 41\)/);
    expect(() => parser.end()).toThrow(CaptureFormatError);
  });
});

describe('pcapng', () => {
  for (const little of [true, false]) {
    it(`reads ${little ? 'little' : 'big'}-endian sections, interfaces, if_tsresol, EPB/SPB/OPB, unknown blocks`, () => {
      const file = cat(
        shb(little),
        idb(little, 127), // default microseconds
        idb(little, 256, 9), // nanoseconds
        idb(little, 272, 0x80 | 10), // 2^-10 s
        epb(little, 0, 1700000000_123456n, bytes(1)),
        block(little, 0x0bad, (w) => w.u32(42)), // unknown: skipped
        epb(little, 1, 1700000000_987654321n, bytes(2, 2)),
        spb(little, bytes(3, 3, 3)),
        opb(little, 2, 1024n * 1700000000n + 512n, bytes(4)),
        block(little, 5, (w) => w.u32(0).u32(0).u32(0)), // ISB: skipped
      );
      for (const chunk of [file.length, 5, 1]) {
        const { frames, parser } = parseAll(file, chunk);
        expect(parser.format).toBe('pcapng');
        expect([...parser.linkTypes].sort()).toEqual([127, 256, 272]);
        expect(frames.map((f) => [f.linkType, [...f.data]])).toEqual([
          [127, [1]],
          [256, [2, 2]],
          [127, [3, 3, 3]],
          [272, [4]],
        ]);
        expect(frames[0].timestampMs).toBeCloseTo(1700000000123.456, 3);
        expect(frames[1].timestampMs).toBeCloseTo(1700000000987.654, 2);
        expect(frames[2].timestampMs).toBe(frames[1].timestampMs); // SPB has no time of its own
        expect(frames[3].timestampMs).toBe(1700000000500);
      }
    });
  }

  it('resets interfaces at a new section, which may change byte order', () => {
    const file = cat(shb(true), idb(true, 127), epb(true, 0, 1n, bytes(1)), shb(false), idb(false, 105), epb(false, 0, 2n, bytes(2)));
    const { frames } = parseAll(file, 3);
    expect(frames.map((f) => f.linkType)).toEqual([127, 105]);
  });

  it('names the block and offset of a packet for an undeclared interface', () => {
    const file = cat(shb(true), idb(true, 127), epb(true, 3, 1n, bytes(1)));
    expect(() => parseAll(file)).toThrow(/mem: pcapng packet refers to an interface the section does not describe \(it describes 1\) \(at byte offset 56\)/);
  });

  it('detects a block whose trailing length disagrees', () => {
    const bad = epb(true, 0, 1n, bytes(1, 2, 3, 4));
    bad[bad.length - 4] ^= 0x40;
    const file = cat(shb(true), idb(true, 127), epb(true, 0, 1n, bytes(9)), bad);
    const parser = new CaptureParser('x.pcapng');
    expect(parser.push(file).map((f) => [...f.data])).toEqual([[9]]);
    expect(() => parser.end()).toThrow(/x\.pcapng: pcapng block length does not match its trailing copy \(at byte offset \d+\)/);
  });
});

describe('garbage input', () => {
  it('gives a clear error, never a crash', () => {
    expect(() => parseAll(new TextEncoder().encode('hello, this is not a capture'))).toThrow(
      /mem: not a pcap or pcapng capture \(its first 4 bytes are no pcap or pcapng magic number\) \(at byte offset 0\)/,
    );
    expect(() => parseAll(new Uint8Array())).toThrow(/empty input/);
    expect(() => parseAll(bytes(0xd4, 0xc3, 0xb2, 0xa1, 2, 0))).toThrow(/ends inside the file header/);
  });

  it('never throws anything but CaptureFormatError on random and mutated bytes', () => {
    let seed = 12345;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) & 0xff;
    const good = cat(shb(true), idb(true, 127, 9), epb(true, 0, 5n, bytes(1, 2, 3)), spb(true, bytes(4)));
    const goodPcap = pcap(false, true, 251, [
      [1, 2, bytes(1, 2)],
      [3, 4, bytes(5)],
    ]);
    for (let i = 0; i < 3000; i++) {
      const base = i % 3 === 0 ? good : i % 3 === 1 ? goodPcap : new Uint8Array(40).map(rnd);
      const input = base.slice();
      for (let k = rnd() % 6; k >= 0; k--) input[rnd() % input.length] = rnd();
      try {
        parseAll(input, 1 + (rnd() % 9));
      } catch (e) {
        expect(e).toBeInstanceOf(CaptureFormatError);
      }
    }
  });
  it('refuses a section of more interfaces than MAX_INTERFACES (each is kept until the section ends) instead of growing without bound', () => {
    const one = idb(true, 127, 9);
    const flood = (n: number) => {
      const out = new Uint8Array(one.length * n);
      for (let i = 0; i < n; i++) out.set(one, i * one.length);
      return out;
    };
    const head = shb(true);
    // at the limit: read, and a frame of its last interface is counted
    const ok = parseAll(cat(head, flood(MAX_INTERFACES), epb(true, MAX_INTERFACES - 1, 5n, bytes(1, 2, 3)))).frames;
    expect(ok).toHaveLength(1);
    // one more: damage at the block that is one too many, the frames before it kept
    const parser = new CaptureParser('flood');
    const packet = epb(true, 0, 5n, bytes(1));
    const frames = parser.push(cat(head, one, packet, flood(MAX_INTERFACES)));
    expect(frames).toHaveLength(1);
    let err: unknown;
    try {
      parser.end();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CaptureFormatError);
    expect((err as CaptureFormatError).damage).toBe('too_many_interfaces');
    expect((err as CaptureFormatError).message).toBe(
      `flood: pcapng section describes more than ${MAX_INTERFACES} interfaces: damaged capture (at byte offset ${head.length + packet.length + one.length * MAX_INTERFACES})`,
    );
    // a new section starts its own list
    expect(parseAll(cat(head, flood(MAX_INTERFACES), head, flood(MAX_INTERFACES), packet)).frames).toHaveLength(1);
  });
});

describe('readCapture / unsupportedLinkType', () => {
  it('reads an async stream of chunks and ends with the truncation error after the frames', async () => {
    const file = pcap(true, false, 127, [
      [1, 0, bytes(1)],
      [2, 0, bytes(2)],
    ]);
    async function* chunks() {
      for (let i = 0; i < file.length - 1; i += 3) yield file.subarray(i, Math.min(i + 3, file.length - 1));
    }
    const got: number[] = [];
    await expect(async () => {
      for await (const batch of readCapture(chunks(), 'stdin')) got.push(...batch.map((f) => f.data[0]));
    }).rejects.toThrow(/stdin: input ends inside a record/);
    expect(got).toEqual([1]);
  });

  it('lists the supported link types', () => {
    const e = unsupportedLinkType(1, 'eth.pcap');
    expect(e.message).toBe(
      'eth.pcap: link type 1 (ETHERNET) is not supported; supported link types: 105 (IEEE802_11), ' +
        '127 (IEEE802_11_RADIOTAP), 192 (PPI), 201 (BLUETOOTH_HCI_H4_WITH_PHDR), 251 (BLUETOOTH_LE_LL), ' +
        '256 (BLUETOOTH_LE_LL_WITH_PHDR), 272 (NORDIC_BLE)',
    );
  });
});

const dir = capturesDir('capture-reader');
describe.skipIf(!dir)('real captures', () => {
  const files = dir
    ? ['wifi', 'ble', 'fuzz'].flatMap((sub) =>
        readdirSync(join(dir, sub))
          .filter((f) => /\.(pcap|pcapng|cap)$/.test(f))
          .map((f) => join(dir, sub, f)),
      )
    : [];
  const tshark = need('tshark', 'tshark', 'capture-reader (frame counts and timestamps against TShark)');
  it.each(files)('%s: frame count and timestamps agree with tshark', async (file) => {
    const frames: Frame[] = [];
    for await (const batch of readCaptureFile(file)) frames.push(...batch);
    expect(frames.length).toBeGreaterThan(0);
    if (!tshark) return;
    const out = execFileSync('tshark', ['-n', '-r', file, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.cap_len'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(frames.length).toBe(out.length);
    frames.forEach((f, i) => {
      // tshark reports the length after the 4-byte direction pseudo-header of link type 201
      const phdr = (f.linkType & 0x03ffffff) === 201 ? 4 : 0;
      expect(f.data.length).toBe(Number(out[i][1]) + phdr);
      expect(Math.abs(f.timestampMs - Number(out[i][0]) * 1000)).toBeLessThan(0.01);
    });
  });
});

describe('frame data', () => {
  it('is a copy, even when the chunks are Node Buffers', () => {
    const file = Buffer.from(pcap(true, false, 127, [[1, 0, bytes(1, 2, 3)]]));
    const parser = new CaptureParser('buf');
    const [frame] = parser.push(file);
    expect(frame.data).not.toBeInstanceOf(Buffer);
    file.fill(0);
    expect([...frame.data]).toEqual([1, 2, 3]);
    const copy = frame.data.slice();
    copy[0] = 9;
    expect(frame.data[0]).toBe(1);
  });
});

describe('packed records (the gateway path)', () => {
  const mixed = () =>
    cat(
      shb(true),
      idb(true, 127),
      idb(true, 256, 9),
      epb(true, 0, 1_700_000_000_123_456n, bytes(1, 2, 3)),
      epb(
        true,
        1,
        1_700_000_000_500_000_000n,
        Uint8Array.from({ length: 100 }, (_, i) => i),
      ),
      spb(true, bytes(7, 7)),
      opb(true, 0, 1_700_000_001_000_000n, bytes()),
      epb(
        true,
        0,
        1_700_000_002_000_000n,
        Uint8Array.from({ length: 65 }, (_, i) => 255 - i),
      ),
    );

  it('pushRecords gives the same frames as push, however the input is chunked, reusing its arrays or not', () => {
    for (const file of [
      mixed(),
      pcap(false, true, 251, [
        [5, 1, bytes(1)],
        [6, 2, bytes()],
        [7, 3, Uint8Array.from({ length: 70 }, (_, i) => i)],
      ]),
    ]) {
      const want = parseAll(file).frames;
      for (const chunk of [file.length, 33, 7, 1]) {
        for (const reuse of [false, true]) {
          const parser = new CaptureParser('mem');
          const got: Frame[] = [];
          for (let i = 0; i < file.length; i += chunk) {
            const b = parser.pushRecords(file.subarray(i, i + chunk), reuse);
            if (b) got.push(...b.frames()); // copied out before the next push
          }
          parser.end();
          expect(got).toEqual(want);
        }
      }
    }
  });

  it('records are laid out as the firmware batch buffer wants them: 16-byte header, data padded to 8 with zeros', () => {
    const parser = new CaptureParser('mem');
    const b = parser.pushRecords(mixed())!;
    expect(b.count).toBe(5);
    const dv = new DataView(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength);
    expect([...b.offsets]).toEqual([0, 24, 24 + 120, 24 + 120 + 24, 24 + 120 + 24 + 16, 24 + 120 + 24 + 16 + 88]);
    expect(dv.getUint32(0, true)).toBe(127);
    expect(dv.getUint32(4, true)).toBe(3);
    expect(dv.getFloat64(8, true)).toBeCloseTo(1_700_000_000_123.456, 3);
    expect([...b.bytes.subarray(16, 24)]).toEqual([1, 2, 3, 0, 0, 0, 0, 0]);
    expect(b.times[1]).toBe(1_700_000_000_500); // the second interface counts in nanoseconds
    expect(b.times[2]).toBe(b.times[1]); // an SPB has the previous frame's time
    expect(
      b
        .slice(1, 3)
        .frames()
        .map((f) => f.data.length),
    ).toEqual([100, 2]);
    expect(b.firstAtOrAfter(1_700_000_001_000)).toBe(3);
    expect(b.maxTime()).toBe(1_700_000_002_000);
    expect(b.span(1_700_000_000_200, 1_700_000_001_500)).toEqual({ max: 1_700_000_001_000, outside: 2 });
  });

  it('the parser keeps no view of a chunk: a reader may overwrite its buffer once push returns', () => {
    const file = mixed();
    const want = parseAll(file).frames;
    const parser = new CaptureParser('mem');
    const buf = new Uint8Array(40);
    const got: Frame[] = [];
    for (let i = 0; i < file.length; i += buf.length) {
      const part = file.subarray(i, i + buf.length);
      buf.set(part);
      got.push(...parser.push(buf.subarray(0, part.length)));
      buf.fill(0xee); // the next read lands here
    }
    parser.end();
    expect(got).toEqual(want);
  });

  it('fileChunks + readCaptureRecords read a file through one reused buffer', async () => {
    const d = mkdtempSync(join(tmpdir(), 'presence-records-'));
    try {
      const file = join(d, 'x.pcapng');
      writeFileSync(file, mixed());
      const got: Frame[] = [];
      for await (const b of readCaptureRecords(fileChunks(file, 16), file)) got.push(...b.frames());
      expect(got).toEqual(parseAll(mixed()).frames);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('fileChunks waits for a FIFO without blocking the event loop (only a regular file is read synchronously)', async () => {
    const d = mkdtempSync(join(tmpdir(), 'presence-fifo-'));
    try {
      const fifo = join(d, 'capture');
      execFileSync('mkfifo', [fifo]);
      const chunks = fileChunks(fifo)[Symbol.asyncIterator]();
      const first = chunks.next();
      // the writer is this process: a read that blocked the event loop would never see its bytes
      const w = await open(fifo, 'w');
      await w.write(Uint8Array.from([1, 2]));
      expect([...((await first).value as Uint8Array)]).toEqual([1, 2]);
      const second = chunks.next(); // nothing written yet
      let timerRan = false;
      await new Promise<void>((r) => setTimeout(() => r(void (timerRan = true)), 20));
      expect(timerRan).toBe(true);
      await w.write(Uint8Array.from([3]));
      expect([...((await second).value as Uint8Array)]).toEqual([3]);
      await w.close();
      expect((await chunks.next()).done).toBe(true);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe("the firmware's capture splitting (the gateway's path)", () => {
  const fw = Firmware.loadSync();

  /** Every batch's bytes, times and offsets, and the error (message and where it came), read with or without the splitter. */
  function records(file: Uint8Array, chunk: number, split: boolean) {
    const parser = new CaptureParser('mem', split ? fw.splitter : null);
    const out: Array<{ bytes: number[]; times: number[]; offsets: number[]; sorted: boolean }> = [];
    let error: string | null = null;
    try {
      for (let i = 0; i < file.length; i += chunk) {
        const b = parser.pushRecords(file.subarray(i, i + chunk), true);
        if (b) out.push({ bytes: [...b.bytes], times: [...b.times], offsets: [...b.offsets], sorted: b.sorted });
      }
      const b = parser.flushRecords();
      if (b) out.push({ bytes: [...b.bytes], times: [...b.times], offsets: [...b.offsets], sorted: b.sorted });
      parser.end();
    } catch (e) {
      if (!(e instanceof CaptureFormatError)) throw e;
      error = `${e.message} after ${out.length} batches`;
    }
    return { out, error };
  }

  /** A pcapng of `n` frames on two interfaces (microsecond and nanosecond times), frames of 0 to 300 bytes. */
  function many(n: number, little = true): Uint8Array {
    const parts = [shb(little), idb(little, 127), idb(little, 251, 9)];
    for (let i = 0; i < n; i++) {
      const data = Uint8Array.from({ length: (i * 37) % 301 }, (_, k) => (i + k) & 0xff);
      parts.push(
        i % 3 === 2
          ? spb(little, data)
          : epb(little, i % 2, i % 2 ? 1_700_000_000_000_000_000n + BigInt(i) * 123_456_789n : 1_700_000_000_000_000n + BigInt(i) * 977n, data),
      );
    }
    return cat(...parts);
  }

  it('gives the same records, times and errors as the reader alone, however the input is chunked', () => {
    const inputs = [
      many(3000),
      many(500, false),
      pcap(true, false, 127, [
        [5, 1, bytes(1)],
        [6, 999_999, bytes()],
        [7, 3, Uint8Array.from({ length: 70 }, (_, i) => i)],
      ]),
      pcap(false, true, 0x04000000 | 127, [
        [1_700_000_000, 999_999_999, bytes(9, 9)],
        [1_700_000_001, 1, Uint8Array.from({ length: 200 }, (_, i) => i)],
      ]),
      // a writer restarted on the same pipe: a new file header where a record should start
      cat(
        pcap(true, false, 127, [[1_780_000_000, 1, bytes(1, 2)]]),
        pcap(false, false, 127, [[1_780_000_001, 1, bytes(3)]]),
        many(10),
        pcap(true, true, 256, [[1_780_000_002, 1, bytes(4, 5, 6)]]),
      ),
      // the simulator's writer, as the gateway bench's capture
      Buffer.concat([
        pcapngHeader([{ linkType: 127, name: 'wlan0mon' }]),
        ...Array.from({ length: 2000 }, (_, i) => pcapngPacket(0, 1_785_000_000_000 + i * 0.1, bytes(i & 0xff, 1, 2, 3, 4, 5))),
      ]),
    ];
    const realDir = capturesDir('capture-reader');
    if (realDir)
      for (const sub of ['wifi', 'ble', 'fuzz'])
        for (const f of readdirSync(join(realDir, sub)).filter((f) => /\.(pcap|pcapng|cap)$/.test(f))) inputs.push(readFileSync(join(realDir, sub, f)));
    for (const file of inputs) {
      for (const chunk of [file.length, 65536 + 13, 4096, 100, 7]) {
        const want = records(file, chunk, false);
        expect(want.error).toBeNull();
        expect(records(file, chunk, true)).toEqual(want);
      }
    }
  });

  it('leaves damage to the reader: the same error at the same place', () => {
    const good = many(200);
    let seed = 99;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) & 0xffff;
    let errors = 0;
    for (let i = 0; i < 300; i++) {
      const input = (
        i % 2
          ? good
          : pcap(i % 4 === 1, i % 3 === 0, 127, [
              [1, 2, bytes(1, 2, 3)],
              [3, 4, bytes(5)],
              [5, 6, bytes()],
            ])
      ).slice();
      for (let k = rnd() % 4; k >= 0; k--) input[rnd() % input.length] = rnd() & 0xff;
      const chunk = 1 + (rnd() % 5000);
      const want = records(input, chunk, false);
      if (want.error) errors++;
      expect(records(input, chunk, true)).toEqual(want);
    }
    expect(errors).toBeGreaterThan(50); // the mutations did hit the error paths
  });

  it('takes the plain records itself and leaves no frame bytes in the module after a push', () => {
    const splitter = new CaptureSplitter(fw.exports);
    let took = 0;
    const split = splitter.split.bind(splitter);
    splitter.split = (...a) => {
      const r = split(...a);
      took += r.consumed;
      return r;
    };
    const parser = new CaptureParser('mem', splitter);
    const file = many(300);
    expect(parser.pushRecords(file)!.count).toBe(300);
    // every EPB went through the module; the headers, interfaces and SPBs (every third frame) did not
    expect(took).toBeGreaterThan(file.length * 0.6);
    const mem = new Uint8Array(fw.exports.memory.buffer);
    const zero = (ptr: number, n: number) => mem.subarray(ptr, ptr + n).every((b) => b === 0);
    expect(zero(fw.exports.capture_in_ptr(), layout.CAPTURE_IN_BYTES)).toBe(true);
    expect(zero(fw.exports.capture_out_ptr(), layout.CAPTURE_OUT_BYTES)).toBe(true);
  });
});

describe('paced replay (pacer)', () => {
  it('delivers what is due, waits for the rest, and a stop ends a wait at once', async () => {
    const t0 = Date.parse('2026-08-01T12:00:00Z');
    const frame = (t: number) => ({ linkType: 127, timestampMs: t, data: bytes(1) });
    // two frames at once, the third an hour of capture time later
    const batch = packFrames([frame(t0), frame(t0), frame(t0 + 3_600_000)])!;
    const stop = new AbortController();
    const delivered: number[][] = [];
    const pace = pacer(1, undefined, stop.signal);
    const done = pace(batch, async (b: RecordBatch) => {
      delivered.push([...b.times.subarray(b.start, b.end)]);
      stop.abort(); // stopped while the replay waits for the third frame
    });
    await done; // would wait an hour without the stop
    expect(delivered).toEqual([[t0, t0]]);
  });
});

describe('RecordBatch lookups', () => {
  it('give the same answers for a batch known sorted (binary search, end points) as by a pass over every frame', () => {
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
    for (let round = 0; round < 300; round++) {
      const n = 1 + Math.floor(rnd() * 40);
      let t = 1000;
      const frames = Array.from({ length: n }, () => ({ linkType: 127, timestampMs: (t += Math.floor(rnd() * 3)), data: bytes(1) }));
      const sorted = packFrames(frames)!;
      expect(sorted.sorted).toBe(true);
      const probe = () => 995 + Math.floor(rnd() * (t - 990));
      for (let k = 0; k < 10; k++) {
        const from = Math.floor(rnd() * n);
        const [a, b] = [probe(), probe()].sort((x, y) => x - y);
        for (const batch of [sorted, sorted.slice(from, n)]) {
          const plain = new RecordBatch(batch.bytes, batch.times, batch.offsets, batch.start, batch.end, false);
          const f = batch.start + Math.floor(rnd() * batch.count);
          expect(batch.firstAtOrAfter(a, f)).toBe(plain.firstAtOrAfter(a, f));
          expect(batch.firstAtOrAfter(a, f, b)).toBe(plain.firstAtOrAfter(a, f, b));
          expect(batch.firstAfter(a, f, 990, b)).toBe(plain.firstAfter(a, f, 990, b));
          expect(batch.firstAfter(a, f, -Infinity, Infinity)).toBe(plain.firstAfter(a, f, -Infinity, Infinity));
          expect(batch.span(a, b)).toEqual(plain.span(a, b));
          expect(batch.span(-Infinity, Infinity)).toEqual(plain.span(-Infinity, Infinity));
        }
      }
    }
    // a time going back makes the batch unsorted
    expect(packFrames([frame(5), frame(4)])!.sorted).toBe(false);
    expect(packFrames([frame(5), frame(Number.NaN)])!.sorted).toBe(false);
  });
  const frame = (t: number) => ({ linkType: 127, timestampMs: t, data: bytes(1) });
});
