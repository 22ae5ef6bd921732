// Window end wipes everything window-specific: after window_end the module's whole linear memory
// holds neither the key, nor the state derived from it, nor any device hash or address of the
// window. Each check is first run before window_end, where it must find what it looks for, so the
// scan is shown to work and the test would fail without the wipe.
//
// The wrapper draws each window's key itself (Firmware.beginWindow). To know the key, this file
// watches the CSPRNG call from outside: `randomFillSync` is wrapped so that every draw is also
// recorded here. The firmware code runs unchanged. The same for a corridor group's epoch key:
// `hkdfSync` is wrapped to see the key the wrapper derived and that it zero-filled its copy.
import { describe, expect, it, vi } from 'vitest';
import { blake2s } from '@noble/hashes/blake2.js';
import { randomBytes } from 'node:crypto';
import { Firmware, WASM_PATH } from '../firmware/host/firmware.ts';
import { epochKey, randomisedResponse, trueSketch } from './support/sketch-reference.ts';
import { STATS_BYTES } from '../firmware/assembly/layout.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CaptureParser } from '../gateway/capture/pcap.ts';
import { capturesDir } from './support/need.ts';
import { globalValues, moduleWithGlobals } from './support/wasm-globals.ts';

const drawn = vi.hoisted(() => [] as Array<{ target: Uint8Array; offset: number; bytes: Uint8Array }>);
/** Every epoch key the wrapper derived (the ArrayBuffer hkdfSync returned, as it is now, and a copy of it as returned). */
const derived = vi.hoisted(() => [] as Array<{ buffer: ArrayBuffer; key: Uint8Array }>);
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  const randomFillSync = ((buf: Uint8Array, offset = 0, size = buf.length - offset) => {
    const out = real.randomFillSync(buf, offset, size);
    drawn.push({ target: buf, offset, bytes: Uint8Array.from(buf.subarray(offset, offset + size)) });
    return out;
  }) as typeof real.randomFillSync;
  const hkdfSync = ((...args: Parameters<typeof real.hkdfSync>) => {
    const buffer = real.hkdfSync(...args);
    derived.push({ buffer, key: new Uint8Array(buffer.slice(0)) });
    return buffer;
  }) as typeof real.hkdfSync;
  return { ...real, default: { ...real, randomFillSync, hkdfSync }, randomFillSync, hkdfSync };
});

/** The key the wrapper drew for the window it just opened. */
function lastKey(): Uint8Array {
  return drawn.at(-1)!.bytes;
}
import { bleAdvertHci, bleAdvertLL, probeRequest, BLE_PDU } from '../simulator/frames.ts';
import type { Frame } from '../firmware/host/types.ts';

const RADIO_WIFI = 1;
const RADIO_BLE = 2;

/** Offsets in `mem` where any of the byte strings occurs. */
function occurrences(mem: Uint8Array, needles: Uint8Array[]): number[] {
  if (needles.length === 0) return [];
  const len = needles[0]!.length;
  const byPrefix = new Map<number, Uint8Array[]>();
  for (const n of needles) {
    const p = n[0]! | (n[1]! << 8) | (n[2]! << 16) | (n[3]! << 24);
    if (!byPrefix.has(p)) byPrefix.set(p, []);
    byPrefix.get(p)!.push(n);
  }
  const dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  const found: number[] = [];
  for (let i = 0; i + len <= mem.length; i++) {
    const cands = byPrefix.get(dv.getInt32(i, true));
    if (!cands) continue;
    for (const c of cands) {
      let ok = true;
      for (let j = 4; j < len && ok; j++) ok = mem[i + j] === c[j];
      if (ok) found.push(i);
    }
  }
  return found;
}

/**
 * Paths from `root` to a typed array or ArrayBuffer that holds `needle`: every value reachable
 * through own data properties, arrays, Maps and Sets (not through functions or closures).
 */
function heldBy(root: object, needle: Uint8Array): string[] {
  const seen = new Set<object>();
  const found: string[] = [];
  const visit = (v: unknown, path: string): void => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
      const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      if (occurrences(bytes, [needle]).length > 0) found.push(path);
      return;
    }
    if (v instanceof Map)
      for (const [k, x] of v) {
        visit(k, `${path}<key>`);
        visit(x, `${path}<value>`);
      }
    if (v instanceof Set) for (const x of v) visit(x, `${path}<item>`);
    for (const k of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, k);
      if (d && 'value' in d) visit(d.value, `${path}.${String(k)}`);
    }
  };
  visit(root, 'firmware');
  return found;
}

/** The firmware's hash of an address: keyed BLAKE2s, 8-byte digest, of [radio, group, address]. */
function expectedHash(key: Uint8Array, radio: number, group: number, addr: Uint8Array): Uint8Array {
  return blake2s(Uint8Array.from([radio, group, ...addr]), { key, dkLen: 8 });
}

/**
 * Where two modules' state differs: the globals (named) and the bytes of memory, the stats block
 * (the window's counts, published) left out.
 */
function stateDifferences(a: Firmware, b: Firmware, globals: number, names: string[]): { globals: string[]; bytes: number[] } {
  const ga = globalValues(a.exports, globals);
  const gb = globalValues(b.exports, globals);
  const ma = new Uint8Array(a.exports.memory.buffer);
  const mb = new Uint8Array(b.exports.memory.buffer);
  const stats = a.exports.stats_ptr();
  const bytes: number[] = [];
  for (let i = 0; i < ma.length; i++) if (ma[i] !== mb[i] && (i < stats || i >= stats + STATS_BYTES)) bytes.push(i);
  return { globals: ga.flatMap((v, i) => (Object.is(v, gb[i]) ? [] : [`${names[i] ?? i}: ${String(v)} / ${String(gb[i])}`])), bytes };
}

function address(i: number, first: number): Uint8Array {
  return Uint8Array.from([first, 0x5a, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff, 0xc3]);
}

const IES = Uint8Array.from([0x00, 0x00, 0x01, 0x04, 0x02, 0x04, 0x0b, 0x16]); // wildcard SSID, rates

/** A window's traffic: probe requests and BLE adverts (LL and HCI) from distinct devices. */
function traffic(n: number, salt: number) {
  const frames: Frame[] = [];
  const wifi: Uint8Array[] = [];
  const blePublic: Uint8Array[] = [];
  const bleRandom: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const sa = address(i + salt, 0x02 | ((i & 0x3f) << 2)); // locally administered
    wifi.push(sa);
    frames.push({ linkType: 127, timestampMs: 1e12 + i, data: probeRequest({ sa, seq: i & 0xfff, ies: IES, channel: 6, signalDbm: -50, tsfUs: i }) });
    const adva = address(i + salt, 0x40 | (i & 0x3f)); // resolvable private
    bleRandom.push(adva);
    frames.push({
      linkType: 256,
      timestampMs: 1e12 + i,
      data: bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva, random: true, advData: new Uint8Array([2, 1, 6]), channel: 37, signalDbm: -60 }),
    });
    const pub = address(i + salt, 0x00);
    blePublic.push(pub);
    frames.push({
      linkType: 201,
      timestampMs: 1e12 + i,
      data: bleAdvertHci({ pduType: BLE_PDU.ADV_NONCONN_IND, adva: pub, random: false, advData: new Uint8Array([2, 1, 6]), signalDbm: -70 }),
    });
  }
  // devices that keep their address (locally administered bit clear), heard first, 400 ms apart
  // (so none is taken for the next address of a burst): the estimator marks them in its bitmap of
  // fixed addresses
  const wifiFixed: Uint8Array[] = [];
  const early: Frame[] = [];
  for (let k = 0; k < Math.min(n, 40); k++) {
    const sa = address(k + salt, (k & 0x3f) << 2);
    wifiFixed.push(sa);
    const signalDbm = [-20, -35, -50][k % 3]!;
    early.push({ linkType: 127, timestampMs: 1e12 - 400 * (40 - k), data: probeRequest({ sa, seq: k, ies: IES, channel: 6, signalDbm, tsfUs: k }) });
  }
  frames.unshift(...early);
  return { frames, wifi, wifiFixed, blePublic, bleRandom };
}

describe('firmware window wipe', () => {
  it('the raw key is gone from memory as soon as the window opens', () => {
    const fw = Firmware.loadSync();
    const mem = new Uint8Array(fw.exports.memory.buffer);
    const key = new Uint8Array(randomBytes(32));
    mem.set(key, fw.exports.key_ptr());
    expect(occurrences(mem, [key])).toEqual([fw.exports.key_ptr()]); // the scan finds it
    fw.exports.window_begin(0, -128);
    expect(occurrences(mem, [key])).toEqual([]);
    fw.exports.window_end();
  });

  it('beginWindow draws a fresh 32-byte key from the CSPRNG straight into the module, every window', () => {
    const fw = Firmware.loadSync();
    const mem = new Uint8Array(fw.exports.memory.buffer);
    const B = fw.exports.batch_ptr();
    const addr = address(1, 0x02);
    const hashes = new Set<bigint>();
    const keys = new Set<string>();
    for (let w = 0; w < 4; w++) {
      const before = drawn.length;
      fw.beginWindow();
      expect(drawn.length).toBe(before + 1); // one draw per window
      const d = drawn.at(-1)!;
      expect(d.target.buffer).toBe(fw.exports.memory.buffer); // written into the module, no host array
      expect(d.offset).toBe(fw.exports.key_ptr());
      expect(d.bytes).toHaveLength(32);
      keys.add(Buffer.from(d.bytes).toString('hex'));
      // the module took the drawn key: its hash of an address is keyed BLAKE2s under it ...
      mem.set(addr, B);
      const got = BigInt.asUintN(64, fw.exports.hash_address(RADIO_WIFI, 0, B));
      const want = expectedHash(d.bytes, RADIO_WIFI, 0, addr);
      expect(got).toBe(new DataView(want.buffer, want.byteOffset).getBigUint64(0, true));
      hashes.add(got);
      // ... and the key bytes themselves are already gone from memory
      expect(occurrences(mem, [d.bytes])).toEqual([]);
      fw.endWindow();
      // nor did the wrapper keep a copy of this window's key or an earlier one, in any array it holds
      for (const k of drawn.slice(-(w + 1))) expect(heldBy(fw, k.bytes)).toEqual([]);
    }
    // (the walk finds a copy kept in the wrapper)
    Object.assign(fw, { kept: [Uint8Array.from(drawn.at(-1)!.bytes)] });
    expect(heldBy(fw, drawn.at(-1)!.bytes)).toEqual(['firmware.kept.0']);
    expect(keys.size).toBe(4);
    expect(hashes.size).toBe(4); // the same address hashes differently in every window
  });

  it('after window_end memory holds no key, key state, hash or address of the window', () => {
    const fw = Firmware.loadSync();
    const mem = new Uint8Array(fw.exports.memory.buffer);
    const n = 300;
    const t = traffic(n, 0);
    fw.beginWindow();
    const key = lastKey();
    fw.ingestMany(t.frames);
    // more devices straight into the counter, past the parsers
    const direct = Array.from({ length: 2000 }, (_, i) => address(i, 0xe1)); // no frame address starts with 0xe1
    const B = fw.exports.batch_ptr();
    fw.liveCounts(); // flushes the frames
    direct.forEach((a, i) => {
      mem.set(a, B + i * 6);
    });
    fw.exports.count_addresses(RADIO_WIFI, 1, B, direct.length);

    const live = fw.liveCounts();
    expect(live.wifi).toMatchObject({ frames: n + t.wifiFixed.length, accepted: n + t.wifiFixed.length, rejected: 0 });
    expect(live.ble).toMatchObject({ frames: 2 * n, accepted: 2 * n, rejected: 0 });

    const hashes = [
      ...t.wifi.map((a) => expectedHash(key, RADIO_WIFI, 0, a)),
      ...t.wifiFixed.map((a) => expectedHash(key, RADIO_WIFI, 0, a)),
      ...t.bleRandom.map((a) => expectedHash(key, RADIO_BLE, 1, a)),
      ...t.blePublic.map((a) => expectedHash(key, RADIO_BLE, 0, a)),
      ...direct.map((a) => expectedHash(key, RADIO_WIFI, 0, a)),
    ];
    const keyState = mem.slice(fw.exports.keyed_state_ptr(), fw.exports.keyed_state_ptr() + 32);
    expect(keyState.some((b) => b !== 0)).toBe(true);

    // The estimator's three bitmaps (Wi-Fi bursts, BLE, Wi-Fi fixed addresses) mark each address of
    // the sub-window by 17 bits of its hash; its link table holds the time of the last Wi-Fi burst
    // frame per dBm value (all of them came at -50 dBm); its state block holds counts and
    // sub-window ends; its chain table the time and hash of the last Wi-Fi frame per dBm value.
    const seen = fw.exports.estimator_seen_ptr();
    const seenBytes = fw.exports.estimator_seen_bytes();
    expect(seenBytes).toBe(3 * 16384);
    const seenBit = (h: Uint8Array) => new DataView(h.buffer, h.byteOffset).getUint32(0, true) & 0x1ffff;
    const isSet = (m: number, bit: number) => (mem[seen + m * (seenBytes / 3) + (bit >>> 3)]! >> (bit & 7)) & 1;
    expect(t.wifi.every((a) => isSet(0, seenBit(expectedHash(key, RADIO_WIFI, 0, a))) === 1)).toBe(true);
    expect(t.bleRandom.every((a) => isSet(1, seenBit(expectedHash(key, RADIO_BLE, 1, a))) === 1)).toBe(true);
    // (a fixed address whose 17 bits are those of a burst address is taken as seen in the bursts)
    const burstBits = new Set(t.wifi.map((a) => seenBit(expectedHash(key, RADIO_WIFI, 0, a))));
    const fixedBits = t.wifiFixed.map((a) => seenBit(expectedHash(key, RADIO_WIFI, 0, a))).filter((b) => !burstBits.has(b));
    expect(fixedBits.length).toBeGreaterThan(30);
    expect(fixedBits.every((b) => isSet(2, b) === 1)).toBe(true);
    const linkTimes = new DataView(mem.buffer, fw.exports.estimator_link_times_ptr(), 256 * 8);
    expect(linkTimes.getFloat64((-50 + 128) * 8, true)).toBe(1e12 + n - 1);
    const state = fw.exports.estimator_state_ptr();
    const stateBytes = fw.exports.estimator_state_bytes();
    expect(mem.subarray(state, state + stateBytes).some((x) => x !== 0)).toBe(true);
    // the chain table holds the last Wi-Fi hash heard at each signal: the last fixed devices at -20
    // and -35 dBm, the last burst address at -50 dBm
    const chain = fw.exports.estimator_chain_ptr();
    const chainBytes = fw.exports.estimator_chain_bytes();
    const lastAtSignals = [t.wifiFixed[39]!, t.wifiFixed[37]!].map((a) => expectedHash(key, RADIO_WIFI, 0, a));
    lastAtSignals.push(expectedHash(key, RADIO_WIFI, 0, t.wifi.at(-1)!));
    expect(occurrences(mem.subarray(chain, chain + chainBytes), lastAtSignals)).toHaveLength(3);

    // ingest queues the counted address slots of a batch (addresses, then their hashes) and
    // zeroes the queue as soon as they are counted: between ingest calls it holds nothing
    const queue = fw.exports.count_queue_ptr();
    const queueBytes = fw.exports.count_queue_bytes();
    expect(queueBytes).toBe(512 * 32);
    expect(mem.subarray(queue, queue + queueBytes).every((b) => b === 0)).toBe(true);

    // Before window_end: every hash is in the tables, the key state where it lives, addresses in
    // the batch buffer. This is what the wipe must remove.
    expect(occurrences(mem, hashes).length).toBe(hashes.length + 3); // three also in the estimator's chain table
    expect(occurrences(mem, [keyState]).length).toBe(1);
    expect(occurrences(mem, direct).length).toBeGreaterThanOrEqual(direct.length);
    // window_end zeroes the whole queue too, whatever it holds (an ingest call that never returned
    // would leave its entries there): an address and its hash planted in the last entry must go
    const planted = queue + queueBytes - 32;
    mem.set(direct[0]!, planted);
    mem.set(expectedHash(key, RADIO_WIFI, 0, direct[0]!), planted + 16);

    const c = fw.endWindow();
    expect(c.wifi.devices).toBe(n + t.wifiFixed.length + direct.length);
    expect(c.ble.devices).toBe(2 * n);

    expect(occurrences(mem, [key])).toEqual([]);
    expect(occurrences(mem, [keyState])).toEqual([]);
    expect(occurrences(mem, hashes)).toEqual([]);
    expect(occurrences(mem, direct)).toEqual([]);
    expect(occurrences(mem, [...t.wifi, ...t.wifiFixed, ...t.blePublic, ...t.bleRandom])).toEqual([]);
    expect(mem.subarray(seen, seen + seenBytes).every((b) => b === 0)).toBe(true);
    expect(new Uint8Array(mem.buffer, fw.exports.estimator_link_times_ptr(), 256 * 8).every((b) => b === 0)).toBe(true);
    expect(mem.subarray(state, state + stateBytes).every((b) => b === 0)).toBe(true);
    expect(mem.subarray(chain, chain + chainBytes).every((b) => b === 0)).toBe(true);
    expect(mem.subarray(queue, queue + queueBytes).every((b) => b === 0)).toBe(true);
  });

  it('after window_end memory is the same whatever the window saw (only the stats block differs), with or without a corridor epoch before', () => {
    // Two modules run windows with different keys and devices; afterwards every byte outside the
    // stats block must be equal, so nothing of either window survived anywhere in memory.
    const a = Firmware.loadSync();
    const b = Firmware.loadSync();
    const ta = traffic(400, 0);
    const tb = traffic(150, 7777);
    // direct counts make the tables double (through the scratch) up to their largest size in a,
    // and a few times in b
    const direct = (fw: Firmware, n: number, salt: number) => {
      const mem = new Uint8Array(fw.exports.memory.buffer);
      const B = fw.exports.batch_ptr();
      for (let i = 0; i < n; i++) mem.set(address(i + salt, 0xe1), B + i * 6);
      fw.exports.count_addresses(RADIO_WIFI, 0, B, n);
    };
    // a is in a corridor group too: two windows of one epoch, each making a sketch; then it leaves the group
    a.setCorridor({ secret: new Uint8Array(randomBytes(32)), group: 'main-street', epochMs: 3_600_000, bits: 32768, p: 0.5 });
    const at = Date.UTC(2026, 3, 27, 12, 0);
    a.beginWindow({ startMs: at - 60_000, endMs: at });
    a.ingestMany(traffic(50, 3333).frames);
    expect(a.endWindow().sketch?.m).toBe(32768);
    a.beginWindow({ rssiMinDbm: -65, startMs: at, endMs: at + 60_000 });
    a.ingestMany(ta.frames);
    a.liveCounts();
    direct(a, 30_000, 0);
    // BLE past the exact table's 49,152: its hashes go into the HyperLogLog sketch (registers and
    // histogram), which window_end must wipe as well
    {
      const mem = new Uint8Array(a.exports.memory.buffer);
      const B = a.exports.batch_ptr();
      for (let from = 0; from < 50_000; from += 10_000) {
        for (let i = 0; i < 10_000; i++) mem.set(address(from + i + 500_000, 0xc1), B + i * 6);
        a.exports.count_addresses(RADIO_BLE, 1, B, 10_000);
      }
    }
    const ca = a.endWindow();
    expect(ca.ble.exact).toBe(false);
    expect(ca.sketch?.bits.some((x) => x !== 0)).toBe(true);
    a.clearCorridor();
    b.beginWindow();
    b.ingestMany(tb.frames);
    b.liveCounts();
    direct(b, 5_000, 99_999);
    const cb = b.endWindow();
    expect(ca.wifi.devices).toBe(400 + 40 + 30_000);
    expect(cb.wifi.devices).toBe(150 + 40 + 5_000);
    expect(ca.ble.weak).toBe(400); // the HCI adverts at -70 dBm
    const ma = new Uint8Array(a.exports.memory.buffer);
    const mb = new Uint8Array(b.exports.memory.buffer);
    const stats = a.exports.stats_ptr();
    const differing: number[] = [];
    for (let i = 0; i < ma.length; i++) {
      if (ma[i] !== mb[i] && (i < stats || i >= stats + STATS_BYTES)) differing.push(i);
    }
    expect(differing.slice(0, 20)).toEqual([]);
  });
  it('after window_end memory is the same whatever the window saw, fed as the gateway feeds it: real captures through the capture splitting and batch records', (ctx) => {
    // The gateway does not hand the module Frame objects: its capture reader copies each chunk of
    // the stream into the module, which splits it into batch records (times, offsets, bytes) that
    // the wrapper then ingests. Everything that path leaves in the module must be gone too.
    const dir = capturesDir('firmware window wipe');
    if (!dir) return ctx.skip();
    // (a copy of the module that exports its globals: they are compared too, below)
    const { path, globals, names } = moduleWithGlobals(WASM_PATH);
    const a = Firmware.loadSync(path);
    const b = Firmware.loadSync(path);
    const feed = (fw: Firmware, files: string[]) => {
      for (const f of files) {
        const parser = new CaptureParser(f, fw.splitter);
        const data = readFileSync(join(dir, f));
        for (let o = 0; o < data.length; o += 65_536) {
          const batch = parser.pushRecords(data.subarray(o, o + 65_536), true);
          if (batch) fw.ingestBatch(batch);
          fw.liveStats(); // as the gateway's page reads it
        }
        parser.end();
      }
    };
    a.beginWindow({ startMs: Date.UTC(2026, 3, 27, 12, 0), endMs: Date.UTC(2026, 3, 27, 12, 1) });
    feed(a, [
      'wifi/iPhone11-B_anonymized.pcap',
      'wifi/sc6-61_2023-04-17_anonymized.pcap',
      'wifi/n-02.cap',
      'ble/take_2__ble_all_adv.pcap',
      'ble/anechoic__nRF52__nrf52_capture_0.pcapng',
    ]);
    const ca = a.endWindow();
    b.beginWindow({ startMs: Date.UTC(2026, 3, 27, 12, 0), endMs: Date.UTC(2026, 3, 27, 12, 1) });
    feed(b, ['wifi/S21Ultra-M_anonymized.pcap', 'ble/take_3__adv37.pcap', 'ble/anechoic__Ubertooth__ubertooth_capture_0.pcapng']);
    const cb = b.endWindow();
    expect(ca.wifi.devices).toBeGreaterThan(5);
    expect(ca.ble.devices).toBeGreaterThan(10);
    expect([cb.wifi.devices, cb.ble.devices]).not.toEqual([ca.wifi.devices, ca.ble.devices]);
    const { globals: g, bytes } = stateDifferences(a, b, globals, names);
    expect(g).toEqual([]);
    expect(bytes.slice(0, 20)).toEqual([]);
  });
  it('after window_end memory and globals are the same whatever kinds of frame the module ever saw: no table is filled on first use', () => {
    // Two fresh modules, one window each: a's window holds frames whose check needs a CRC table
    // (a probe request with an FCS: CRC-32; a BLE packet whose CRC-24 the capture did not check);
    // b's holds only frames that need none (a BLE packet the sniffer checked, an HCI report). No
    // window before: a table filled on the first frame that needs it would tell them apart.
    const { path, globals, names } = moduleWithGlobals(WASM_PATH);
    const a = Firmware.loadSync(path);
    const b = Firmware.loadSync(path);
    const adva = address(5, 0x40);
    const plainLL = bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva, random: true, advData: new Uint8Array([2, 1, 6]), channel: 37, signalDbm: -60 }).subarray(10);
    a.beginWindow();
    a.ingestMany([
      { linkType: 127, timestampMs: 1e12, data: probeRequest({ sa: address(3, 0x02), seq: 1, ies: IES, channel: 6, signalDbm: -50, tsfUs: 0 }) },
      { linkType: 251, timestampMs: 1e12 + 1, data: plainLL },
    ]);
    const ca = a.endWindow();
    b.beginWindow();
    b.ingestMany([
      {
        linkType: 256,
        timestampMs: 1e12,
        data: bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva, random: true, advData: new Uint8Array([2, 1, 6]), channel: 37, signalDbm: -60 }),
      },
      {
        linkType: 201,
        timestampMs: 1e12 + 1,
        data: bleAdvertHci({ pduType: BLE_PDU.ADV_IND, adva: address(6, 0x00), random: false, advData: new Uint8Array([2, 1, 6]), signalDbm: -60 }),
      },
    ]);
    const cb = b.endWindow();
    // both windows counted what they were given (a's frames passed their CRC checks)
    expect([ca.wifi.devices, ca.ble.devices, ca.wifi.rejected, ca.ble.rejected]).toEqual([1, 1, 0, 0]);
    expect([cb.wifi.devices, cb.ble.devices]).toEqual([0, 2]);
    const { globals: g, bytes } = stateDifferences(a, b, globals, names);
    expect(g).toEqual([]);
    expect(bytes.length, `bytes that differ, from ${bytes[0]}`).toBe(0);
  });

  it('after window_end every global of the module is the same whatever the window saw: nothing of its last frame (signal, channel, radio, radiotap layout) or its settings', () => {
    // The module's top-level variables are WebAssembly globals, outside linear memory: the scans
    // above never see them. A copy of the module that exports every global lets them be compared.
    const { path, globals, names } = moduleWithGlobals(WASM_PATH);
    expect(globals).toBeGreaterThan(10);
    const a = Firmware.loadSync(path);
    const b = Firmware.loadSync(path);
    const name = (i: number) => names[i] ?? `global ${i}`;
    const differing = () => {
      const ga = globalValues(a.exports, globals);
      const gb = globalValues(b.exports, globals);
      return ga.flatMap((v, i) => (Object.is(v, gb[i]) ? [] : [`${name(i)}: ${String(v)} / ${String(gb[i])}`]));
    };
    expect(differing()).toEqual([]); // two fresh modules
    // then different windows, each ending on a different kind of frame: a probe request at -33 dBm
    // on channel 11 with a radiotap header of its own layout (no TSFT), under an RSSI gate and FCS
    // failures ignored; a BLE advert on channel 38
    const ta = traffic(300, 0).frames;
    const last = probeRequest({ sa: address(9, 0x02), seq: 1, ies: IES, channel: 11, signalDbm: -33, tsfUs: 0 });
    ta.push({ linkType: 127, timestampMs: 1e12 + 500, data: last });
    const tb = traffic(120, 5555).frames;
    tb.push({
      linkType: 256,
      timestampMs: 1e12 + 500,
      data: bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva: address(9, 0x40), random: true, advData: new Uint8Array([2, 1, 6]), channel: 38, signalDbm: -81 }),
    });
    a.beginWindow({ rssiMinDbm: -90, ignoreFcs: true });
    a.ingestMany(ta);
    a.liveCounts();
    b.beginWindow();
    b.ingestMany(tb);
    b.liveCounts();
    // while the windows are open the globals tell them apart (the comparison can fail) ...
    expect(differing().length).toBeGreaterThan(3);
    a.endWindow();
    b.endWindow();
    // ... and after window_end nothing of either is left in any global
    expect(differing()).toEqual([]);
  });

  it('corridor: the epoch key is in the module only as key state, the host copy is zero-filled; true bitmap and scratch are wiped at every window end, the key state at the epoch end', () => {
    const fw = Firmware.loadSync();
    const mem = new Uint8Array(fw.exports.memory.buffer);
    const x = fw.exports;
    const secret = new Uint8Array(randomBytes(32));
    const HOUR = 3_600_000;
    const e = 493_210;
    const m = 8192;
    fw.setCorridor({ secret, group: 'main-street', epochMs: HOUR, bits: m, p: 0.5 });
    // the wrapper keeps its own copy of the secret (to derive each epoch's key), zero-filled when the group is left
    const held = (fw as unknown as { corridor: { secret: Uint8Array } }).corridor.secret;
    expect(held).not.toBe(secret);
    expect(held).toEqual(secret);
    const key = epochKey(secret, 'main-street', e);
    const derivedBefore = derived.length;
    // the epoch's last two windows
    const starts = [(e + 1) * HOUR - 120_000, (e + 1) * HOUR - 60_000];
    let keyState: Uint8Array | null = null;
    for (const [w, start] of starts.entries()) {
      const t = traffic(200, w * 1000);
      fw.beginWindow({ startMs: start, endMs: start + 60_000 });
      // one derivation for the epoch, its result the agreed HKDF, and the wrapper's copy of it zero-filled
      expect(derived.length).toBe(derivedBefore + 1);
      expect(derived.at(-1)!.key).toEqual(key);
      expect(new Uint8Array(derived.at(-1)!.buffer).every((b) => b === 0)).toBe(true);
      expect(occurrences(mem, [key])).toEqual([]); // the key bytes are gone from the module's slot too
      keyState ??= mem.slice(x.sketch_state_ptr(), x.sketch_state_ptr() + 32);
      expect(keyState.some((b) => b !== 0)).toBe(true);
      expect(occurrences(mem, [keyState])).toEqual([x.sketch_state_ptr()]);
      fw.ingestMany(t.frames);
      fw.liveCounts(); // flushes
      const devices = [
        ...t.wifiFixed.map((a) => ({ radio: 'wifi' as const, address: a })),
        ...t.blePublic.map((a) => ({ radio: 'ble' as const, address: a })),
        ...t.bleRandom.map((a) => ({ radio: 'ble' as const, address: a })),
      ];
      const truth = trueSketch(key, devices, m);
      const trueBits = () => mem.subarray(x.sketch_true_ptr(), x.sketch_true_ptr() + m / 8);
      expect(trueBits()).toEqual(truth); // the scan below looks for this
      const c = fw.endWindow();
      // the scratch came from the CSPRNG, straight into the module, 4 bytes per bit; the noisy bitmap is randomised response over it
      const d = drawn.at(-1)!;
      expect(d.target.buffer).toBe(x.memory.buffer);
      expect(d.offset).toBe(x.sketch_scratch_ptr());
      expect(d.bytes).toHaveLength(4 * m);
      expect(c.sketch!.bits).toEqual(randomisedResponse(truth, m, 0.5, d.bytes));
      // wiped at window end: the true bitmap and the scratch
      expect(trueBits().every((b) => b === 0)).toBe(true);
      expect(mem.subarray(x.sketch_scratch_ptr(), x.sketch_scratch_ptr() + 4 * m).every((b) => b === 0)).toBe(true);
      expect(occurrences(mem, [d.bytes.subarray(0, 16)])).toEqual([]);
      if (w === 0) {
        expect(occurrences(mem, [keyState])).toEqual([x.sketch_state_ptr()]); // the epoch goes on: key state kept
        expect(fw.currentEpoch).toBe(e);
      }
    }
    // the epoch's last window closed: the key state is gone from the whole memory, and the key
    expect(fw.currentEpoch).toBeNull();
    expect(occurrences(mem, [keyState!])).toEqual([]);
    expect(occurrences(mem, [key])).toEqual([]);
    expect(mem.subarray(x.sketch_state_ptr(), x.sketch_state_ptr() + 32).every((b) => b === 0)).toBe(true);
    // leaving the group mid-epoch wipes it as well
    fw.beginWindow({ startMs: (e + 1) * HOUR, endMs: (e + 1) * HOUR + 60_000 });
    fw.endWindow();
    const next = mem.slice(x.sketch_state_ptr(), x.sketch_state_ptr() + 32);
    expect(next.some((b) => b !== 0)).toBe(true);
    fw.clearCorridor();
    expect(held.every((b) => b === 0)).toBe(true);
    expect(occurrences(mem, [next])).toEqual([]);
    expect(mem.subarray(x.sketch_noisy_ptr(), x.sketch_noisy_ptr() + m / 8).every((b) => b === 0)).toBe(true);
  });
});
