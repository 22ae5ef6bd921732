// Fuzzing the WASM parsers: over a million random and mutated real frames of every link type go
// through the real firmware module (no trap, every frame accounted for), a share of them through
// the test build twice with different surrounding bytes (no read outside the frame), and the
// malformed frames of ../shared/captures/fuzz count nothing.
import { beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { LINKTYPE } from '../firmware/host/types.ts';
import { readCaptureFile } from '../gateway/capture/pcap.ts';
import { replayCapture } from '../gateway/replay.ts';
import { capturesDir } from './support/need.ts';
import { loadParserWasm, type ParserWasm } from './support/parser-wasm.ts';
import { rng } from './support/rng.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed1234) >>> 0;
const TOTAL = 1_000_000;
const DIFFERENTIAL = 200_000;
const LINKTYPES = Object.values(LINKTYPE);
const dir = capturesDir('firmware-fuzz');

/** Seed frames: every frame of the real captures plus hand-built ones for link types without a capture. */
async function seedFrames(): Promise<Frame[]> {
  const seeds: Frame[] = [];
  if (dir) {
    for (const sub of ['wifi', 'ble', 'fuzz']) {
      for (const f of readdirSync(join(dir, sub)).filter((n) => /\.(pcap|pcapng|cap)$/.test(n))) {
        for await (const b of readCaptureFile(join(dir, sub, f))) seeds.push(...b);
      }
    }
  }
  const derived: Frame[] = [];
  for (const f of seeds) {
    // plain LL (251) from the pseudo-header frames
    if (f.linkType === 256 && f.data.length > 10) derived.push({ linkType: 251, timestampMs: 0, data: f.data.subarray(10) });
  }
  // minimal valid frames of each kind, so the fuzzer also starts from small, deep-reaching inputs
  const probe = Uint8Array.from([0x40, 0, 0, 0, ...Array(6).fill(0xff), 2, 1, 2, 3, 4, 5, ...Array(6).fill(0xff), 0x10, 0, 0, 0, 1, 2, 2, 4]);
  const fcs = new Uint8Array(4);
  new DataView(fcs.buffer).setUint32(0, crc32(probe), true);
  const rt = Uint8Array.from([0, 0, 10, 0, 0x22, 0, 0, 0, 0x10, 0xc0]);
  derived.push({ linkType: 127, timestampMs: 0, data: Uint8Array.from([...rt, ...probe, ...fcs]) });
  derived.push({ linkType: 105, timestampMs: 0, data: probe });
  const hci = [0, 0, 0, 1, 0x04, 0x3e, 15, 0x02, 1, 0, 1, 1, 2, 3, 4, 5, 0xc6, 3, 2, 1, 6, 0xc4];
  derived.push({ linkType: 201, timestampMs: 0, data: Uint8Array.from(hci) });
  const ext = [0, 0, 0, 1, 0x04, 0x3e, 26, 0x0d, 1, 0x13, 0, 1, 1, 2, 3, 4, 5, 0xc6, 1, 0, 0xff, 0x7f, 0xc4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  derived.push({ linkType: 201, timestampMs: 0, data: Uint8Array.from(ext) });
  const nordic = [11, 26, 0, 3, 1, 0, 2, 10, 1, 37, 60, 0, 0, 1, 2, 3, 4, 0xd6, 0xbe, 0x89, 0x8e, 0x40, 6, 1, 2, 3, 4, 5, 0xc6, 0, 0, 0];
  derived.push({ linkType: 272, timestampMs: 0, data: Uint8Array.from(nordic) });
  const ppi = [0, 0, 8, 0, 105, 0, 0, 0, ...probe];
  derived.push({ linkType: 192, timestampMs: 0, data: Uint8Array.from(ppi) });
  return [...seeds, ...derived];
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x3e, 0x04, 0xd6, 0x8e, 0x10, 0x20];

/** Random bytes, an intact seed, a seed under another link type, or a mutated copy of a seed. */
function makeFrame(r: ReturnType<typeof rng>, seeds: Frame[]): Frame {
  const pick = r.below(100);
  if (pick < 8 || seeds.length === 0) {
    const len = r.below(r.below(4) === 0 ? 1200 : 80);
    const data = new Uint8Array(len);
    for (let i = 0; i < len; i++) data[i] = r.byte();
    return { linkType: LINKTYPES[r.below(LINKTYPES.length)], timestampMs: 0, data };
  }
  const seed = seeds[r.below(seeds.length)];
  let linkType = seed.linkType & 0x03ffffff;
  if (pick < 12) return { linkType, timestampMs: 0, data: seed.data.slice() }; // intact: the accepting paths
  if (pick < 16) linkType = LINKTYPES[r.below(LINKTYPES.length)];
  let data = seed.data.slice();
  const n = 1 + r.below(6);
  for (let k = 0; k < n; k++) {
    const op = r.below(8);
    if (data.length === 0 && op < 5) continue;
    const at = r.below(Math.max(1, data.length));
    switch (op) {
      case 0:
        data[at] ^= 1 << r.below(8);
        break;
      case 1:
        data[at] = r.byte();
        break;
      case 2:
        data[at] = INTERESTING[r.below(INTERESTING.length)];
        break;
      case 3: // a length-like 16-bit value
        data[at] = r.byte();
        if (at + 1 < data.length) data[at + 1] = r.below(3) === 0 ? r.byte() : 0;
        break;
      case 4: // header area: the first 32 bytes hold most length and flag fields
        data[r.below(Math.min(32, data.length))] = r.byte();
        break;
      case 5:
        data = data.subarray(0, r.below(data.length + 1));
        break;
      case 6: {
        const more = new Uint8Array(data.length + 1 + r.below(64));
        more.set(data);
        for (let i = data.length; i < more.length; i++) more[i] = r.byte();
        data = more;
        break;
      }
      default: {
        // cut a chunk out of the middle
        const from = r.below(data.length + 1);
        const to = Math.min(data.length, from + r.below(16));
        data = Uint8Array.from([...data.subarray(0, from), ...data.subarray(to)]);
      }
    }
  }
  // now and then the FCS-length bits of a pcap header (the firmware gets the link type unmasked)
  if (r.below(16) === 0) linkType = (linkType | (r.next() & 0xfc000000)) >>> 0;
  return { linkType, timestampMs: 0, data };
}

let seeds: Frame[] = [];
let parser: ParserWasm;
beforeAll(async () => {
  seeds = await seedFrames();
  parser = loadParserWasm();
});

describe('fuzz', () => {
  it(`${TOTAL.toLocaleString('en')} random and mutated frames through the firmware: no trap, every frame accounted for (seed ${SEED})`, () => {
    const fw = Firmware.loadSync();
    const r = rng(SEED);
    const perWindow = 100_000;
    let seen = { wifi: 0, ble: 0, unsupported: 0, accepted: 0 };
    for (let done = 0; done < TOTAL; done += perWindow) {
      fw.beginWindow({ ignoreFcs: r.below(2) === 0 });
      const batch: Frame[] = [];
      for (let i = 0; i < perWindow; i++) batch.push(makeFrame(r, seeds));
      fw.ingestMany(batch);
      const c = fw.endWindow();
      expect(c.wifi.frames + c.ble.frames + c.unsupported).toBe(perWindow);
      for (const radio of [c.wifi, c.ble]) {
        expect(radio.accepted + radio.rejected).toBeLessThanOrEqual(radio.frames * 32);
        expect(radio.devices).toBeLessThanOrEqual(radio.accepted);
      }
      seen = {
        wifi: seen.wifi + c.wifi.frames,
        ble: seen.ble + c.ble.frames,
        unsupported: seen.unsupported + c.unsupported,
        accepted: seen.accepted + c.wifi.accepted + c.ble.accepted,
      };
    }
    // the mix reaches both radios and the parsers' accepting paths
    expect(seen.wifi).toBeGreaterThan(TOTAL / 10);
    expect(seen.ble).toBeGreaterThan(TOTAL / 10);
    expect(seen.accepted).toBeGreaterThan(TOTAL / 100);
  }, 300_000); // CPU-bound (about 20 s here): the timeout is only a safety net for a loaded machine

  it(`${DIFFERENTIAL.toLocaleString('en')} frames parsed twice with different surrounding bytes give identical results`, () => {
    const r = rng(SEED ^ 0x9e3779b9);
    const statuses = new Set<number>();
    for (let i = 0; i < DIFFERENTIAL; i++) {
      const f = makeFrame(r, seeds);
      const a = parser.parse(f.linkType, f.data, i % 2 === 0, 0x00);
      const b = parser.parse(f.linkType, f.data, i % 2 === 0, 0xff);
      if (JSON.stringify(a) !== JSON.stringify(b)) {
        expect.fail(`frame read outside its bounds: link type ${f.linkType}, bytes ${Buffer.from(f.data).toString('hex')}`);
      }
      expect(a.slots.length).toBeLessThanOrEqual(parser.resultMax);
      expect(a.status === 1).toBe(a.slots.length > 0);
      statuses.add(a.status);
    }
    expect([...statuses].sort()).toEqual([0, 1, 2]);
  }, 300_000);
});

describe.skipIf(!dir)('malformed frames of the tcpdump regression tests', () => {
  const files = dir ? readdirSync(join(dir, 'fuzz')).filter((n) => n.endsWith('.pcap')) : [];
  it.each(files)('fuzz/%s survives and counts nothing', async (name) => {
    const file = join(dir!, 'fuzz', name);
    for (const ignoreFcs of [false, true]) {
      const out = [];
      for await (const w of replayCapture(file, { window: 'all', ignoreFcs })) out.push(w);
      expect(out).toHaveLength(1);
      const [w] = out;
      expect(w.wifi.frames + w.ble.frames).toBe(1);
      expect(w.wifi).toMatchObject({ probes: 0, devices: 0 });
      expect(w.ble).toMatchObject({ adverts: 0, devices: 0 });
    }
  });
});
