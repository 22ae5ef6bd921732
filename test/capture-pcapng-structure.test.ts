// Seeded pcapng files of the shapes real recorders write and the other tests do not build: several
// sections whose byte order changes from one to the next, some of 60 to 80 interfaces (more
// than the 64 the module's capture splitting is told about) of different link types, each with
// its own if_tsresol (decimal or binary), if_tsoffset and other options, interfaces described
// after packets, packet blocks with options after the data and an original length above or below
// the captured one, simple and obsolete packet blocks, unknown blocks. Every frame must come out
// once, in order, with its interface's link type, its bytes and its time (computed here with
// exact integer arithmetic), both from the reader alone and with the module's capture splitting,
// chunked at random. FUZZ_SEED=n runs seed n alone.
import { describe, expect, it } from 'vitest';
import { Firmware } from '../firmware/host/firmware.ts';
import { CaptureParser } from '../gateway/capture/pcap.ts';
import { type Rng, rng } from './support/rng.ts';

const u32 = (le: boolean, v: number) => {
  const b = Buffer.alloc(4);
  if (le) b.writeUInt32LE(v >>> 0);
  else b.writeUInt32BE(v >>> 0);
  return b;
};
const u16 = (le: boolean, v: number) => {
  const b = Buffer.alloc(2);
  if (le) b.writeUInt16LE(v);
  else b.writeUInt16BE(v);
  return b;
};
const pad4 = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
function block(le: boolean, type: number, body: Buffer): Buffer {
  const padded = pad4(body);
  return Buffer.concat([u32(le, type), u32(le, padded.length + 12), padded, u32(le, padded.length + 12)]);
}
const option = (le: boolean, code: number, data: Buffer) => Buffer.concat([u16(le, code), u16(le, data.length), pad4(data)]);

interface Iface {
  linkType: number;
  snapLen: number;
  /** Timestamp units per second, exactly. */
  units: bigint;
  offsetSeconds: bigint;
}
interface Want {
  linkType: number;
  /** Capture time in ms: exact numerator / denominator (null: the time of the frame before). */
  time: { num: bigint; den: bigint } | null;
  data: string;
}

const LINKTYPES = [127, 105, 256, 251, 272, 201, 192, 1];

function generate(seed: number): { file: Buffer; want: Want[]; mostInterfaces: number } {
  const r: Rng = rng(seed);
  const parts: Buffer[] = [];
  const want: Want[] = [];
  let mostInterfaces = 0;
  const data = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = r.byte();
    return b;
  };
  for (let s = 1 + r.below(3); s > 0; s--) {
    const le = r.below(2) === 0; // each section in its own byte order
    const shbOptions = r.below(2) ? Buffer.concat([option(le, 4, Buffer.from('recorder')), Buffer.alloc(4)]) : Buffer.alloc(0);
    parts.push(block(le, 0x0a0d0d0a, Buffer.concat([u32(le, 0x1a2b3c4d), u16(le, 1), u16(le, 0), u32(le, 0xffffffff), u32(le, 0xffffffff), shbOptions])));
    const ifaces: Iface[] = [];
    const describe = () => {
      const linkType = LINKTYPES[r.below(LINKTYPES.length)]!;
      const snapLen = r.below(3) ? 65535 : r.below(2) ? 0 : 40;
      const opts: Buffer[] = [];
      let units = 1_000_000n;
      let offsetSeconds = 0n;
      if (r.below(3) === 0) opts.push(option(le, 2, Buffer.from('wlan0mon')));
      if (r.below(2)) {
        const v = r.below(2) ? r.below(10) : 0x80 | r.below(41);
        units = v & 0x80 ? 2n ** BigInt(v & 0x7f) : 10n ** BigInt(v);
        opts.push(option(le, 9, Buffer.from([v])));
      }
      if (r.below(3) === 0) {
        offsetSeconds = BigInt(r.below(2_000_000_000) - 1_000_000_000);
        const b = Buffer.alloc(8);
        if (le) b.writeBigInt64LE(offsetSeconds);
        else b.writeBigInt64BE(offsetSeconds);
        opts.push(option(le, 14, b));
      }
      if (opts.length > 0 && r.below(2)) opts.push(Buffer.alloc(4)); // opt_endofopt
      parts.push(block(le, 1, Buffer.concat([u16(le, linkType), u16(le, 0), u32(le, snapLen), ...opts])));
      ifaces.push({ linkType, snapLen, units, offsetSeconds });
      mostInterfaces = Math.max(mostInterfaces, ifaces.length);
    };
    for (let n = r.below(5) === 0 ? 60 + r.below(11) : 1 + r.below(4); n > 0; n--) describe();
    for (let n = 5 + r.below(60); n > 0; n--) {
      const k = r.below(20);
      const d = data(r.below(90));
      if (k === 0) {
        // simple packet block: interface 0, the time of the frame before, cut to the snap length
        const iface = ifaces[0]!;
        parts.push(block(le, 3, Buffer.concat([u32(le, d.length), d])));
        const cap = iface.snapLen > 0 ? Math.min(d.length, iface.snapLen) : d.length;
        want.push({ linkType: iface.linkType, time: null, data: d.subarray(0, cap).toString('hex') });
      } else if (k === 1) {
        parts.push(block(le, 0x80000001 + r.below(5), data(r.below(24)))); // custom and unknown blocks: skipped
      } else if (k === 2) {
        describe(); // an interface described after packets
      } else {
        const id = r.below(ifaces.length);
        const iface = ifaces[id]!;
        const hi = r.below(4) === 0 ? r.next() : 0x5000 + r.below(0x800);
        const lo = r.next();
        const orig = r.below(5) === 0 ? d.length + r.below(1000) : r.below(10) === 0 ? Math.max(0, d.length - 3) : d.length;
        const head = k === 3 ? Buffer.concat([u16(le, id), u16(le, 0)]) : u32(le, id); // obsolete packet block: u16 id, drops count
        const opts = r.below(3) === 0 ? Buffer.concat([option(le, 2, u32(le, r.next())), option(le, 1, Buffer.from('c')), Buffer.alloc(4)]) : Buffer.alloc(0);
        parts.push(block(le, k === 3 ? 2 : 6, Buffer.concat([head, u32(le, hi), u32(le, lo), u32(le, d.length), u32(le, orig), pad4(d), opts])));
        const ts = (BigInt(hi) << 32n) | BigInt(lo);
        want.push({
          linkType: iface.linkType,
          time: { num: ts * 1000n + iface.offsetSeconds * 1000n * iface.units, den: iface.units },
          data: d.toString('hex'),
        });
      }
    }
  }
  return { file: Buffer.concat(parts), want, mostInterfaces };
}

interface Got {
  linkType: number;
  time: number;
  data: string;
}

function read(file: Buffer, parser: CaptureParser, split: boolean, chunks: Rng): Got[] {
  const got: Got[] = [];
  const take = (b: ReturnType<CaptureParser['pushRecords']>) => {
    if (!b) return;
    const dv = new DataView(b.bytes.buffer, b.bytes.byteOffset, b.bytes.byteLength);
    for (let i = b.start; i < b.end; i++) {
      const o = b.offsets[i]!;
      const cap = dv.getUint32(o + 4, true);
      got.push({ linkType: dv.getUint32(o, true), time: b.times[i]!, data: Buffer.from(b.bytes.subarray(o + 16, o + 16 + cap)).toString('hex') });
    }
  };
  const whole = chunks.below(3) === 0;
  for (let i = 0; i < file.length; ) {
    const n = whole ? file.length : 1 + chunks.below(chunks.below(2) ? 64 : 6000);
    const chunk = file.subarray(i, i + n);
    if (split) take(parser.pushRecords(chunk));
    else for (const f of parser.push(chunk)) got.push({ linkType: f.linkType, time: f.timestampMs, data: Buffer.from(f.data).toString('hex') });
    i += n;
  }
  if (split) take(parser.flushRecords());
  else for (const f of parser.flush()) got.push({ linkType: f.linkType, time: f.timestampMs, data: Buffer.from(f.data).toString('hex') });
  parser.end();
  return got;
}

/** The exact time in ms as a double, and how far a double computation of it may be off. */
function exactMs(t: { num: bigint; den: bigint }): { ms: number; slack: number } {
  const whole = t.num / t.den;
  const ms = Number(whole) + Number(t.num - whole * t.den) / Number(t.den);
  return { ms, slack: Math.max(1e-6, Math.abs(ms) * 4 * Number.EPSILON) };
}

describe('pcapng sections, interfaces and options, seeded', () => {
  const fw = Firmware.loadSync();
  it('every frame once, in order, with its interface link type, bytes and time; the same with the module splitting, chunked at random', () => {
    const only = Number(process.env.FUZZ_SEED ?? 0);
    let manyInterfaces = 0;
    let frames = 0;
    for (let seed = only || 1; seed <= (only || 200); seed++) {
      const { file, want, mostInterfaces } = generate(seed);
      const alone = read(file, new CaptureParser('gen'), false, rng(seed * 5 + 1));
      const split = read(file, new CaptureParser('gen', fw.splitter), true, rng(seed * 5 + 2));
      expect(alone.length, `seed ${seed}: frames`).toBe(want.length);
      let last = 0;
      alone.forEach((g, i) => {
        const w = want[i]!;
        expect(g.linkType, `seed ${seed} frame ${i}: link type`).toBe(w.linkType);
        expect(g.data, `seed ${seed} frame ${i}: bytes`).toBe(w.data);
        if (w.time === null) expect(g.time, `seed ${seed} frame ${i}: a simple packet block takes the time before it`).toBe(last);
        else {
          const { ms, slack } = exactMs(w.time);
          expect(Math.abs(g.time - ms), `seed ${seed} frame ${i}: time ${g.time}, want ${ms}`).toBeLessThanOrEqual(slack);
        }
        last = g.time;
      });
      // the module's splitting computes times with the reader's own arithmetic: equal, not near
      expect(split, `seed ${seed}: module splitting`).toEqual(alone);
      frames += want.length;
      if (mostInterfaces > 64) manyInterfaces++;
    }
    if (!only) {
      expect(frames).toBeGreaterThan(5000);
      expect(manyInterfaces).toBeGreaterThan(10); // sections with more interfaces than the module is told about
    }
  });
});
