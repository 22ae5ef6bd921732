// Firmware throughput: parse + hash + count + estimate in WASM on a realistic frame mix, as a ratio
// to the hashing ceiling (keyed BLAKE2s of one block per address in WASM, nothing else) and to
// @noble/hashes in JS, all measured in this run. The mix is one 60-s window of a busy site (60,000
// frames, 1,000 a second), timed as a gateway runs it: window_begin, the batches, window_end (with
// the host's CSPRNG draws) all inside the timing, only the copies into the batch buffer outside.
// Measured three ways in the same rounds: without a corridor (the goal: the estimator on), and with
// a corridor sketch of 8192 bits at p = 0.5 and p = 0.05 (every matchable device also costs one
// BLAKE2s under the epoch key, once per window; randomised response at window end). Also the
// module's fixed memory and a 100,000-device window.
import { blake2s } from '@noble/hashes/blake2.js';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Firmware, RECORD_HEADER_BYTES } from '../firmware/host/firmware.ts';
import type { FirmwareWindowCounts, Frame } from '../firmware/host/types.ts';
import { crc32 } from '../simulator/crc.ts';
import { BLE_PDU, bleAdvertHci, bleAdvertLL, probeRequest } from '../simulator/frames.ts';
import { Rng } from '../simulator/rng.ts';

const GOAL_FPS = 3_000_000;
const GOAL_CEILING_RATIO = 0.6;
const GOAL_MEMORY = 2 * 1024 * 1024;

/** Seeded: the same frame mix every run. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.u32();
}

const PROBE_IES = Uint8Array.from([
  0x00,
  0x00, // wildcard SSID
  0x01,
  0x08,
  0x02,
  0x04,
  0x0b,
  0x16,
  0x0c,
  0x12,
  0x18,
  0x24, // supported rates
  0x32,
  0x04,
  0x30,
  0x48,
  0x60,
  0x6c, // extended rates
  0x2d,
  0x1a,
  0x2d,
  0x11,
  0x17,
  0xff,
  ...new Array(22).fill(0), // HT capabilities
  0x7f,
  0x08,
  0x04,
  0x00,
  0x0a,
  0x02,
  0x01,
  0x00,
  0x40,
  0x80, // extended capabilities
  0xdd,
  0x07,
  0x00,
  0x50,
  0xf2,
  0x08,
  0x00,
  0x12,
  0x00, // vendor
]);
// beacon body: timestamp, interval, capability, SSID "city-wifi", rates, DS parameter set
const BEACON_BODY = Uint8Array.from([
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0x64,
  0x00,
  0x31,
  0x04,
  0x00,
  0x09,
  ...new TextEncoder().encode('city-wifi'),
  0x01,
  0x08,
  0x82,
  0x84,
  0x8b,
  0x96,
  0x0c,
  0x12,
  0x18,
  0x24,
  0x03,
  0x01,
  0x06,
]);

/** A radiotap 802.11 frame of another type/subtype (beacon 0x80, data 0x08), FCS recomputed. */
function otherWifi(fc: number, sa: Uint8Array, body: Uint8Array, seq: number): Uint8Array {
  const b = probeRequest({ sa, seq, ies: body, channel: 6, signalDbm: -45, tsfUs: seq * 1000 });
  const m = new DataView(b.buffer).getUint16(2, true); // radiotap length
  b[m] = fc;
  if (fc === 0x08) b[m + 1] = 0x02; // from DS
  new DataView(b.buffer).setUint32(b.length - 4, crc32(b, m, b.length - 4), true);
  return b;
}

function address(next: () => number, local: boolean): Uint8Array {
  const a = Uint8Array.from({ length: 6 }, () => next() & 0xff);
  a[0] = local ? (a[0]! & 0xfc) | 0x02 : a[0]! & 0xfc;
  return a;
}

/** The bench's window: 60 s from a whole hour (so one corridor epoch holds it); the mix's frames lie in it. */
export const WINDOW_MS = 60_000;
export const WINDOW_START = Date.UTC(2026, 0, 5, 12);

/**
 * The mix: 35 % probe requests, 25 % beacons, 10 % data, 20 % BLE LL adverts, 10 % HCI reports,
 * spread evenly over the window [WINDOW_START, WINDOW_START + WINDOW_MS).
 */
export function frameMix(n: number): { frames: Frame[]; addresses: Uint8Array[] } {
  const next = rng(2026);
  const phones = Array.from({ length: 5000 }, (_, i) => address(next, i % 5 !== 0));
  const aps = Array.from({ length: 40 }, () => address(next, false));
  const tags = Array.from({ length: 3000 }, () => address(next, false));
  const frames: Frame[] = [];
  const addresses: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const r = next() % 100;
    const t = WINDOW_START + (i * WINDOW_MS) / n;
    if (r < 35) {
      const sa = phones[next() % phones.length]!;
      addresses.push(sa);
      frames.push({
        linkType: 127,
        timestampMs: t,
        data: probeRequest({ sa, seq: i & 0xfff, ies: PROBE_IES, channel: 1 + (i % 11), signalDbm: -40 - (next() % 50), tsfUs: i }),
      });
    } else if (r < 60) {
      frames.push({ linkType: 127, timestampMs: t, data: otherWifi(0x80, aps[next() % aps.length]!, BEACON_BODY, i & 0xfff) });
    } else if (r < 70) {
      frames.push({ linkType: 127, timestampMs: t, data: otherWifi(0x08, phones[next() % phones.length]!, new Uint8Array(60 + (next() % 400)), i & 0xfff) });
    } else if (r < 90) {
      const adva = tags[next() % tags.length]!;
      addresses.push(adva);
      frames.push({
        linkType: 256,
        timestampMs: t,
        data: bleAdvertLL({
          pduType: BLE_PDU.ADV_IND,
          adva,
          random: true,
          advData: Uint8Array.from([2, 1, 6, 5, 0xff, 0x4c, 0, 0x10, 0x05]),
          channel: 37,
          signalDbm: -70,
        }),
      });
    } else {
      const adva = tags[next() % tags.length]!;
      addresses.push(adva);
      frames.push({
        linkType: 201,
        timestampMs: t,
        data: bleAdvertHci({ pduType: BLE_PDU.ADV_NONCONN_IND, adva, random: false, advData: Uint8Array.from([2, 1, 6]), signalDbm: -75 }),
      });
    }
  }
  return { frames, addresses };
}

/** Lays frames out as batch-buffer images (records of header + caplen padded to 8). */
export function batches(frames: Frame[], capacity: number): Array<{ image: Uint8Array; count: number }> {
  const out: Array<{ image: Uint8Array; count: number }> = [];
  let image = new Uint8Array(capacity);
  let dv = new DataView(image.buffer);
  let off = 0;
  let count = 0;
  for (const f of frames) {
    const need = RECORD_HEADER_BYTES + ((f.data.length + 7) & ~7);
    if (off + need > capacity) {
      out.push({ image: image.subarray(0, off), count });
      image = new Uint8Array(capacity);
      dv = new DataView(image.buffer);
      off = 0;
      count = 0;
    }
    dv.setUint32(off, f.linkType, true);
    dv.setUint32(off + 4, f.data.length, true);
    dv.setFloat64(off + 8, f.timestampMs, true);
    image.set(f.data, off + RECORD_HEADER_BYTES);
    off += need;
    count++;
  }
  if (count > 0) out.push({ image: image.subarray(0, off), count });
  return out;
}

const SMOKE = process.env.BENCH_SMOKE === '1';
const ROUNDS = SMOKE ? 3 : 21;
function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}
const fmt = (n: number) => Math.round(n).toLocaleString('en');
const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');

interface Variant {
  label: string;
  fw: Firmware;
  mem: Uint8Array;
  batch: number;
  /** Per round: the time (ms) of window_begin, of each batch's ingest, and of window_end. */
  pieces: number[][];
  counts?: FirmwareWindowCounts;
}

/**
 * The time of a run made of pieces, robust to preemption: the sum over the pieces of each piece's
 * median over the rounds. A piece is a fraction of a millisecond, so a time slice lost to another
 * process (the machine's 2 cores are shared) spoils a piece in a few rounds, not a whole round.
 */
function robustMs(pieces: number[][]): number {
  let sum = 0;
  for (let i = 0; i < pieces[0]!.length; i++) sum += median(pieces.map((r) => r[i]!));
  return sum;
}
const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);

export async function run(): Promise<void> {
  const fw = await Firmware.load();
  const x = fw.exports;
  const mem = new Uint8Array(x.memory.buffer);
  const B = x.batch_ptr();
  const { frames, addresses } = frameMix(SMOKE ? 6_000 : 60_000);
  const images = batches(frames, x.batch_capacity());
  const window = { startMs: WINDOW_START, endMs: WINDOW_START + WINDOW_MS };

  // Interleaved in every round, so that load from other processes hits all of them alike:
  //   the window in WASM, three ways (no corridor; corridor sketch at p = 0.5; at p = 0.05), each
  //   timed from window_begin to window_end inclusive (batch copies excluded), batch by batch;
  //   the ceiling: keyed BLAKE2s of one block per address in WASM, nothing else (no window work),
  //   three passes over the addresses in chunks of CHUNK;
  //   then, after the rounds, @noble/hashes blake2s in JS on the same messages (radio, group, address), 8-byte digest,
  //   in chunks of 100.
  const CHUNK = 1024;
  const n = Math.floor(Math.min(addresses.length, x.batch_capacity() / 8) / CHUNK) * CHUNK;
  const hashImage = new Uint8Array(n * 8);
  for (let i = 0; i < n; i++) hashImage.set(addresses[i]!, i * 8);
  const key = new Uint8Array(randomBytes(32));
  const msgs = addresses.slice(0, 2000).map((a) => Uint8Array.from([1, 0, ...a]));
  const variant = async (label: string, p: number | null): Promise<Variant> => {
    const v = await Firmware.load();
    if (p !== null) v.setCorridor({ secret: new Uint8Array(randomBytes(32)), group: 'bench', epochMs: 3_600_000, bits: 8192, p });
    const vm = new Uint8Array(v.exports.memory.buffer);
    return { label, fw: v, mem: vm, batch: v.exports.batch_ptr(), pieces: [] };
  };
  const plain: Variant = { label: 'no corridor', fw, mem, batch: B, pieces: [] };
  const variants = [plain, await variant('corridor sketch, p = 0.5', 0.5), await variant('corridor sketch, p = 0.05', 0.05)];
  const ceilingPieces: number[][] = [];
  const jsPieces: number[][] = [];
  let sink = 0;
  /** One window of the mix: the times of its pieces (ms). */
  const timedWindow = (v: Variant): number[] => {
    const times: number[] = [];
    let t0 = performance.now();
    v.fw.beginWindow(window);
    times.push(performance.now() - t0);
    for (const b of images) {
      v.mem.set(b.image, v.batch);
      t0 = performance.now();
      v.fw.exports.ingest(b.count);
      times.push(performance.now() - t0);
    }
    t0 = performance.now();
    v.counts = v.fw.endWindow();
    times.push(performance.now() - t0);
    return times;
  };
  const timedCeiling = (): number[] => {
    const times: number[] = [];
    fw.beginWindow(window);
    mem.set(hashImage, B);
    for (let k = 0; k < 3; k++) {
      for (let i = 0; i < n; i += CHUNK) {
        const t0 = performance.now();
        sink ^= x.hash_addresses(B + i * 8, CHUNK);
        times.push(performance.now() - t0);
      }
    }
    fw.endWindow();
    return times;
  };
  // warm-up (tier-up of the WASM code), not timed
  for (const v of variants) timedWindow(v);
  timedCeiling();
  for (let round = 0; round < ROUNDS; round++) {
    ceilingPieces.push(timedCeiling());
    // each round in another order, so that no variant always follows the same one
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(round + k) % variants.length]!;
      v.pieces.push(timedWindow(v));
    }
  }
  // @noble/hashes after the rounds (warmed up first): its garbage would otherwise be collected
  // inside the timed windows (a scavenge there cost one variant 0.5-0.9 ms a window)
  for (let k = 0; k < 3; k++) for (const m of msgs) sink ^= blake2s(m, { key, dkLen: 8 })[0]!;
  for (let round = 0; round < ROUNDS; round++) {
    const times: number[] = [];
    for (let i = 0; i < msgs.length; i += 100) {
      const t0 = performance.now();
      for (let j = i; j < Math.min(i + 100, msgs.length); j++) sink ^= blake2s(msgs[j]!, { key, dkLen: 8 })[0]!;
      times.push(performance.now() - t0);
    }
    jsPieces.push(times);
  }
  const ceiling = (3 * n) / (robustMs(ceilingPieces) / 1000);
  const ceilingRounds = ceilingPieces.map((r) => (3 * n) / (sum(r) / 1000));
  const rate = (v: Variant) => frames.length / (robustMs(v.pieces) / 1000);
  /** Whole rounds, each against its own round's ceiling: the spread the load made. */
  const roundRatios = (v: Variant) => v.pieces.map((r, i) => frames.length / (sum(r) / 1000) / ceilingRounds[i]!);
  const edgesUs = (v: Variant) => (median(v.pieces.map((r) => r[0]!)) + median(v.pieces.map((r) => r[r.length - 1]!))) * 1000;
  const jsRate = msgs.length / (robustMs(jsPieces) / 1000);
  const fps = rate(plain);

  // the same frames through the Node wrapper (copies into the batch buffer included)
  fw.beginWindow(window);
  const tw = performance.now();
  fw.ingestMany(frames);
  fw.endWindow();
  const wrapperFps = frames.length / ((performance.now() - tw) / 1000);

  // fixed memory, and a 100,000-device window
  const before = x.memory.buffer.byteLength;
  fw.beginWindow();
  const chunk = Math.floor(x.batch_capacity() / 6);
  for (let done = 0; done < 100_000; done += chunk) {
    const k = Math.min(chunk, 100_000 - done);
    for (let j = 0; j < k; j++) {
      const i = done + j;
      mem.set([0x02, 0x11, (i >>> 24) & 0xff, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff], B + j * 6);
    }
    x.count_addresses(1, 1, B, k);
  }
  const big = fw.endWindow();
  const after = x.memory.buffer.byteLength;
  const sigma = 1.04 / Math.sqrt(x.sketch_registers());
  const bigErr = Math.abs(big.wifi.devices - 100_000) / 100_000;

  const counts = plain.counts!;
  const accepted = counts.wifi.accepted + counts.ble.accepted;
  console.log(
    `${ROUNDS} interleaved rounds; a time is the sum over its pieces (window_begin, each batch, window_end; chunks of ${fmt(CHUNK)} hashes) of each piece's median over the rounds${SMOKE ? ' (smoke run: a tenth of the frames in the same 60 s, so the window costs weigh 10x; the figures mean nothing)' : ''}`,
  );
  console.log(
    `frame mix: one ${WINDOW_MS / 1000}-s window of ${fmt(frames.length)} frames (${fmt(frames.length / (WINDOW_MS / 1000))} a second; 35 % probe requests, 25 % beacons, 10 % data, 20 % BLE LL adverts, 10 % HCI reports): ${fmt(accepted)} addresses accepted, ${fmt(counts.wifi.devices)} Wi-Fi + ${fmt(counts.ble.devices)} BLE devices`,
  );
  console.log(`keyed BLAKE2s ceiling (WASM): ${fmt(ceiling)} addresses/s (one block per address, nothing else)`);
  console.log('parse+hash+count+estimate (WASM), window_begin to window_end:');
  for (const v of variants) {
    const f = rate(v);
    const r = f / ceiling;
    const rounds = roundRatios(v);
    const cost = v === plain ? '' : `; the sketch costs ${((1 - f / fps) * 100).toFixed(1)} %`;
    console.log(
      `  ${`${v.label}:`.padEnd(27)} ${fmt(f)} frames/s (goal >= ${fmt(GOAL_FPS)}: ${verdict(f >= GOAL_FPS)}), ${r.toFixed(3)} of the ceiling (whole rounds ${Math.min(...rounds).toFixed(2)}-${Math.max(...rounds).toFixed(2)}; goal >= ${GOAL_CEILING_RATIO}: ${verdict(r >= GOAL_CEILING_RATIO)}), window_begin + window_end ${fmt(edgesUs(v))} us${cost}`,
    );
  }
  console.log(
    `  (the goal is held by the line without a corridor, issue 9's "estimator on"; the window's own work is ${((edgesUs(plain) / 1000 / robustMs(plain.pieces)) * 100).toFixed(1)} % of its time there)`,
  );
  console.log(
    `@noble/hashes blake2s (JS):   ${fmt(jsRate)} addresses/s; WASM frames/s is ${(fps / jsRate).toFixed(1)}x, WASM hashing ${(ceiling / jsRate).toFixed(1)}x`,
  );
  console.log(`through the Node wrapper:     ${fmt(wrapperFps)} frames/s (copying into the batch buffer included)`);
  console.log(
    `linear memory: ${fmt(after)} bytes fixed (${after / 65536} pages, static data ${fmt(x.static_end())} bytes), unchanged by a window: ${before === after}   goal <= ${fmt(GOAL_MEMORY)}: ${verdict(after <= GOAL_MEMORY && before === after)}`,
  );
  console.log(
    `100,000 distinct devices in one window: counted ${fmt(big.wifi.devices)} (sketch, error ${(bigErr * 100).toFixed(2)} %, 3 sigma = ${(3 * sigma * 100).toFixed(2)} %): ${verdict(bigErr <= 3 * sigma && before === after)}`,
  );
  if (sink === 0.5) console.log(''); // keeps the hashing loops observable
}
