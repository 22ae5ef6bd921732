// Whole capture files damaged as a disk, a copy or an attacker damages them (bytes flipped, block
// and record lengths set to 0, 0xffffffff and other edge values, cut short, chunks cut out or
// inserted) go through `presence replay`'s path (reader, window clock, firmware): it ends with the
// windows of the frames before the damage and a CaptureFormatError or an unsupported link type,
// never another exception, and every window holds only frames the file had. Seeded and
// deterministic (FUZZ_SEED to try another seed); the real captures of ../shared/captures are read,
// never copied. The per-frame parsers have their own fuzzing (test/firmware-fuzz.test.ts).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaptureFormatError, UnsupportedLinkTypeError } from '../gateway/capture/pcap.ts';
import { replayCapture } from '../gateway/replay.ts';
import { capturesDir } from './support/need.ts';
import { rng } from './support/rng.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0xfe9f22) >>> 0;
const FILES = 150;
const dir = capturesDir('replay fuzz');
const tmp = mkdtempSync(join(tmpdir(), 'presence-replay-fuzz-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Values that length and type fields go wrong with. */
const EDGE32 = [0, 1, 4, 8, 12, 28, 32, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff, 0x0a0d0d0a, 0x1a2b3c4d];

function mutate(r: ReturnType<typeof rng>, file: Buffer): Buffer {
  let d = Buffer.from(file);
  for (let k = 1 + r.below(6); k > 0; k--) {
    const at = r.below(Math.max(1, d.length));
    switch (r.below(8)) {
      case 0:
        if (d.length) d[at] ^= 1 << r.below(8);
        break;
      case 1: // a 32-bit field anywhere (a record's length, a block's type or length)
        if (at + 4 <= d.length) d.writeUInt32LE(EDGE32[r.below(EDGE32.length)]!, at);
        break;
      case 2: // the header: magic, version, snap length, link type; a pcapng section's first block
        if (d.length >= 64) d.writeUInt32LE(EDGE32[r.below(EDGE32.length)]!, 4 * r.below(16));
        break;
      case 3: // cut short
        d = d.subarray(0, r.below(d.length + 1));
        break;
      case 4: {
        const to = Math.min(d.length, at + r.below(64));
        d = Buffer.concat([d.subarray(0, at), d.subarray(to)]);
        break;
      }
      case 5: {
        const junk = Buffer.alloc(r.below(200));
        for (let i = 0; i < junk.length; i++) junk[i] = r.next() & 0xff;
        d = Buffer.concat([d.subarray(0, at), junk, d.subarray(at)]);
        break;
      }
      case 6:
        if (at + 2 <= d.length) d.writeUInt16LE(r.next() & 0xffff, at);
        break;
      default:
        for (let i = 0; i < 16 && at + i < d.length; i++) d[at + i] ^= r.next() & 0xff;
    }
  }
  return d;
}

describe.skipIf(!dir)('replay of damaged real captures', () => {
  const sources = dir
    ? ['wifi', 'ble', 'fuzz'].flatMap((sub) =>
        readdirSync(join(dir, sub))
          .filter((n) => /\.(pcap|pcapng|cap)$/.test(n))
          .map((n) => join(dir, sub, n))
          .filter((p) => statSync(p).size < 400_000),
      )
    : [];

  it(`${FILES} damaged files: windows of the frames before the damage, then a capture error, never another exception (seed ${SEED})`, async () => {
    const r = rng(SEED);
    const ended = { clean: 0, damaged: 0, unsupported: 0 };
    for (let i = 0; i < FILES; i++) {
      const from = sources[r.below(sources.length)]!;
      const bytes = mutate(r, readFileSync(from));
      const file = join(tmp, `case-${i}${from.endsWith('ng') ? '.pcapng' : '.pcap'}`);
      writeFileSync(file, bytes);
      const window = ([60_000, 1_000, 'all'] as const)[r.below(3)];
      let frames = 0;
      let last = -Infinity;
      try {
        for await (const w of replayCapture(file, { window, ignoreFcs: r.below(2) === 0 })) {
          frames += w.wifi.frames + w.ble.frames + w.unsupported;
          if (w.start !== null) {
            expect(Date.parse(w.start)).toBeGreaterThanOrEqual(last);
            last = Date.parse(w.start);
          }
        }
        ended.clean++;
      } catch (e) {
        if (e instanceof CaptureFormatError) ended.damaged++;
        else if (e instanceof UnsupportedLinkTypeError) ended.unsupported++;
        else expect.fail(`case ${i} (from ${from}, seed ${SEED}): ${(e as Error)?.stack ?? e}`);
      }
      // a record holds at least its 16-byte header (pcap) or a 12-byte block (pcapng)
      expect(frames, `case ${i}`).toBeLessThanOrEqual(Math.floor(bytes.length / 12));
      rmSync(file);
    }
    // the mutations reach both ends: files that still read to the end and damaged ones
    expect(ended.clean).toBeGreaterThan(0);
    expect(ended.damaged).toBeGreaterThan(FILES / 4);
  }, 120_000); // CPU-bound, a few seconds here: the timeout is only a safety net for a loaded machine
});
