// Distinct counting in the firmware: exact in the table up to its limit, HyperLogLog beyond it,
// per radio and address-kind group; and the batch ABI never trapping on bad records.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Firmware, readWindowCounts, WASM_PATH } from '../firmware/host/firmware.ts';
import type { FirmwareWindowCounts, Frame } from '../firmware/host/types.ts';
import { BLE_PDU, bleAdvertLL, probeRequest } from '../simulator/frames.ts';
import { STAT_BATCH_ERRORS, STAT_UNSUPPORTED } from '../firmware/assembly/layout.ts';
import { packFrames } from '../firmware/host/batch.ts';

const RADIO_WIFI = 1;
const RADIO_BLE = 2;
const ADDR_WIFI_GLOBAL = 0;
const ADDR_WIFI_LOCAL = 1;
const ADDR_BLE_PUBLIC = 2;
const ADDR_BLE_RANDOM_STATIC = 3;
const ADDR_BLE_RESOLVABLE = 4;

const fw = Firmware.loadSync();
const x = fw.exports;
const mem = new Uint8Array(x.memory.buffer);
const BATCH = x.batch_ptr();
const CHUNK = Math.floor(x.batch_capacity() / 6);

function key(seed: number): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => (seed * 131 + i * 17 + 7) & 0xff);
}

/**
 * A window under a fixed key, opened through the module's own ABI (key_ptr + window_begin): the
 * wrapper's beginWindow() always draws a random key, and the sketch cases below must come out the
 * same every run.
 */
function fixedKeyWindow(seed: number, body: () => void): FirmwareWindowCounts {
  mem.set(key(seed), x.key_ptr());
  x.window_begin(0, -128);
  body();
  x.window_end();
  return readWindowCounts(x);
}

/** Writes address number i (6 bytes, big-endian counter behind a fixed prefix byte) at p. */
function putAddress(p: number, i: number, prefix = 0x3c): void {
  mem[p] = prefix;
  mem[p + 1] = Math.floor(i / 2 ** 32) & 0xff;
  mem[p + 2] = (i >>> 24) & 0xff;
  mem[p + 3] = (i >>> 16) & 0xff;
  mem[p + 4] = (i >>> 8) & 0xff;
  mem[p + 5] = i & 0xff;
}

/** Counts addresses first..first+n-1 of one radio and kind, in batch-sized chunks. */
function count(radio: number, kind: number, first: number, n: number, prefix = 0x3c): void {
  for (let done = 0; done < n; ) {
    const k = Math.min(CHUNK, n - done);
    for (let j = 0; j < k; j++) putAddress(BATCH + j * 6, first + done + j, prefix);
    x.count_addresses(radio, kind, BATCH, k);
    done += k;
  }
}

const M = x.sketch_registers();
const SIGMA = 1.04 / Math.sqrt(M); // relative standard error of the sketch

describe('firmware counting', () => {
  it('states its sizes: 2^16-slot tables holding 49,152 devices exactly, 2^14-register sketches', () => {
    expect(x.table_slots()).toBe(65536);
    expect(fw.tableLimit).toBe(49152);
    expect(M).toBe(16384);
    expect(SIGMA).toBeCloseTo(0.008125, 6);
  });

  it('has 2 MiB of memory that cannot grow, and imports nothing', () => {
    expect(x.memory.buffer.byteLength).toBe(2 * 1024 * 1024);
    expect(() => x.memory.grow(1)).toThrow();
    expect(x.memory.buffer.byteLength).toBe(2 * 1024 * 1024);
    expect(x.static_end()).toBeLessThanOrEqual(2 * 1024 * 1024);
    // firmware/README.md's memory table: its rows add up to its total, and the total is static_end()
    // (it had left out the standard library's 4,096 bytes of log tables since linear counting came in).
    const readme = readFileSync(join(import.meta.dirname, '..', 'firmware', 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('| region | bytes |'));
    const bytes = (row: string) => Number(/\| \**([\d,]+)\** \|$/.exec(row)![1].replaceAll(',', ''));
    const rows = table.split('\n').slice(2);
    const end = rows.findIndex((r) => r.includes('static data in all'));
    expect(end).toBeGreaterThan(0);
    expect(rows.slice(0, end).reduce((a, r) => a + bytes(r), 0)).toBe(bytes(rows[end]));
    expect(bytes(rows[end])).toBe(x.static_end());
    const W = (globalThis as unknown as { WebAssembly: { Module: { new (b: Uint8Array): object; imports(m: object): unknown[] } } }).WebAssembly;
    expect(W.Module.imports(new W.Module(readFileSync(WASM_PATH)))).toEqual([]);
  });

  it('counts distinct addresses exactly, repeats once', () => {
    fw.beginWindow();
    count(RADIO_WIFI, ADDR_WIFI_LOCAL, 0, 1000);
    count(RADIO_WIFI, ADDR_WIFI_LOCAL, 500, 1000); // 500 repeats, 500 new
    count(RADIO_WIFI, ADDR_WIFI_LOCAL, 0, 1500); // all repeats
    count(RADIO_BLE, ADDR_BLE_RESOLVABLE, 0, 321);
    const c = fw.endWindow();
    expect(c.wifi.devices).toBe(1500);
    expect(c.wifi.exact).toBe(true);
    expect(c.ble.devices).toBe(321);
    expect(c.ble.exact).toBe(true);
  });

  it('keeps radios apart and BLE public apart from random; Wi-Fi kinds share one group', () => {
    fw.beginWindow();
    count(RADIO_WIFI, ADDR_WIFI_GLOBAL, 0, 100);
    count(RADIO_WIFI, ADDR_WIFI_LOCAL, 0, 100); // same bytes: same Wi-Fi device
    count(RADIO_BLE, ADDR_BLE_PUBLIC, 0, 100);
    count(RADIO_BLE, ADDR_BLE_RANDOM_STATIC, 0, 100); // same bytes, other TxAdd: other device
    count(RADIO_BLE, ADDR_BLE_RESOLVABLE, 0, 100); // random group again: same as static
    const c = fw.endWindow();
    expect(c.wifi.devices).toBe(100);
    expect(c.ble.devices).toBe(200);
  });

  it('a new window starts from zero', () => {
    fw.beginWindow();
    count(RADIO_WIFI, ADDR_WIFI_LOCAL, 0, 10);
    fw.endWindow();
    fw.beginWindow();
    count(RADIO_WIFI, ADDR_WIFI_LOCAL, 5, 10);
    expect(fw.endWindow().wifi.devices).toBe(10);
  });

  it('is exact up to the table limit inclusive', () => {
    const limit = fw.tableLimit;
    fw.beginWindow();
    count(RADIO_BLE, ADDR_BLE_RESOLVABLE, 0, limit);
    count(RADIO_BLE, ADDR_BLE_RESOLVABLE, 0, limit); // repeats do not overflow it
    const c = fw.endWindow();
    expect(c.ble.devices).toBe(limit);
    expect(c.ble.exact).toBe(true);
  });

  it('one more than the table holds switches to the sketch (exact = false), still close, never below', () => {
    const n = fw.tableLimit + 1;
    for (let seed = 5; seed < 13; seed++) {
      const c = fixedKeyWindow(seed, () => count(RADIO_BLE, ADDR_BLE_RESOLVABLE, 0, n));
      expect(c.ble.exact).toBe(false);
      expect(Math.abs(c.ble.devices - n)).toBeLessThanOrEqual(3 * SIGMA * n);
      // the full table's devices plus the refused one are known distinct: a floor for the count
      expect(c.ble.devices, `key ${seed}`).toBeGreaterThanOrEqual(n);
    }
  });

  // The sketch's relative standard error is 1.04/sqrt(16384) = 0.81 %; we require 3 sigma (2.44 %).
  // Keys are fixed so the outcome is reproducible; each case is a different key and size.
  for (const [n, seed] of [
    [100_000, 11],
    [200_000, 12],
    [200_000, 13],
    [200_000, 14],
    [1_000_000, 15],
  ] as const) {
    it(`${n.toLocaleString('en')} distinct devices (key ${seed}) come out within 3 sigma`, () => {
      const c = fixedKeyWindow(seed, () => {
        count(RADIO_WIFI, ADDR_WIFI_LOCAL, 0, n, 0x02);
        count(RADIO_WIFI, ADDR_WIFI_LOCAL, 0, Math.min(n, 50_000), 0x02); // repeats change nothing
        count(RADIO_BLE, ADDR_BLE_RESOLVABLE, 0, 2000);
      });
      expect(c.wifi.exact).toBe(false);
      const err = Math.abs(c.wifi.devices - n) / n;
      expect(err, `relative error ${(err * 100).toFixed(2)} %`).toBeLessThanOrEqual(3 * SIGMA);
      // the other radio is untouched by the overflow
      expect(c.ble).toMatchObject({ devices: 2000, exact: true });
    });
  }

  it('the sketch error over many keys is what the README states (mean |error| near 0.8 sigma)', () => {
    // 40 windows of 60,000 distinct devices: mean absolute relative error of an unbiased estimator
    // with standard error sigma is sigma * sqrt(2/pi) = 0.65 %; bias must stay small.
    const n = 60_000;
    const errs: number[] = [];
    for (let s = 0; s < 40; s++) {
      const c = fixedKeyWindow(100 + s, () => count(RADIO_WIFI, ADDR_WIFI_LOCAL, s * n, n));
      errs.push((c.wifi.devices - n) / n);
    }
    const mean = errs.reduce((a, b) => a + b, 0) / errs.length;
    const rms = Math.sqrt(errs.reduce((a, b) => a + b * b, 0) / errs.length);
    expect(Math.abs(mean), `bias ${(mean * 100).toFixed(3)} %`).toBeLessThan(SIGMA);
    expect(rms, `rms ${(rms * 100).toFixed(3)} %`).toBeLessThan(1.6 * SIGMA);
  });
});

describe('firmware batch ABI', () => {
  const dv = new DataView(x.memory.buffer);
  const CAP = x.batch_capacity();
  const stat = (off: number) => dv.getUint32(x.stats_ptr() + off, true);

  it('ingests nothing without an open window', () => {
    dv.setUint32(BATCH, 9999, true);
    dv.setUint32(BATCH + 4, 0, true);
    expect(x.ingest(1)).toBe(0);
  });

  it('counts unknown link types as unsupported', () => {
    fw.beginWindow();
    fw.ingestMany([
      { linkType: 1, timestampMs: 0, data: new Uint8Array(60) },
      { linkType: 9999, timestampMs: 1, data: new Uint8Array(0) },
    ]);
    const c = fw.endWindow();
    expect(c.unsupported).toBe(2);
    expect(c.wifi.frames + c.ble.frames).toBe(0);
  });

  it('stops cleanly at a record whose caplen runs past the batch end', () => {
    fw.beginWindow();
    dv.setUint32(BATCH, 1, true);
    dv.setUint32(BATCH + 4, 8, true);
    dv.setUint32(BATCH + 24, 1, true);
    dv.setUint32(BATCH + 28, CAP, true); // too long
    expect(x.ingest(5)).toBe(1);
    expect(stat(STAT_BATCH_ERRORS)).toBe(1);
    dv.setUint32(BATCH + 28, 0xffffffff, true);
    expect(x.ingest(2)).toBe(1);
    // a count larger than the buffer can hold stops at the end
    mem.fill(0, BATCH, BATCH + CAP);
    expect(x.ingest(0xffffffff)).toBe(CAP / 16);
    expect(stat(STAT_UNSUPPORTED)).toBe(2 + CAP / 16); // link type 0 is unsupported
    fw.endWindow();
  });

  it('never traps on random record headers and bytes', () => {
    let s = 12345;
    const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0), s);
    fw.beginWindow({ rssiMinDbm: -70 });
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < CAP; i += 4) dv.setUint32(BATCH + i, next(), true);
      // some plausible headers at the front: real link types with random lengths
      const types = [105, 127, 192, 201, 251, 256, 272];
      let off = 0;
      for (let k = 0; k < 200 && off < CAP - 4096; k++) {
        const len = next() % 300;
        dv.setUint32(BATCH + off, types[next() % types.length]! | (next() & 0xfc000000), true);
        dv.setUint32(BATCH + off + 4, len, true);
        off += 16 + ((len + 7) & ~7);
      }
      expect(() => x.ingest(next() % 400)).not.toThrow();
    }
    expect(() => fw.endWindow()).not.toThrow();
  });

  it('counts a frame larger than the batch buffer as rejected, not as a crash', () => {
    fw.beginWindow();
    fw.ingest({ linkType: 127, timestampMs: 0, data: new Uint8Array(CAP) });
    fw.ingest({ linkType: 256, timestampMs: 0, data: new Uint8Array(CAP + 1) });
    fw.ingest({ linkType: 4242, timestampMs: 0, data: new Uint8Array(CAP * 2) });
    expect(fw.liveCounts()).toMatchObject({ wifi: { frames: 1, rejected: 1 }, ble: { frames: 1, rejected: 1 }, unsupported: 1 });
    const c = fw.endWindow();
    expect(c.wifi).toMatchObject({ frames: 1, rejected: 1, accepted: 0, devices: 0 });
    expect(c.ble).toMatchObject({ frames: 1, rejected: 1 });
    expect(c.unsupported).toBe(1);
  });

  it('counts a PPI frame larger than the batch buffer under the radio of the link type it wraps, as the module counts a smaller one', () => {
    // PPI: version 0, flags, header length 8, the wrapped link type; then the wrapped frame
    const ppi = (dlt: number, size: number) => {
      const data = new Uint8Array(size);
      new DataView(data.buffer).setUint16(2, 8, true);
      new DataView(data.buffer).setUint32(4, dlt, true);
      return data;
    };
    const wrapped = [147, 251, 256, 105, 127, 1];
    const counts = (size: number, packed: boolean) => {
      fw.beginWindow();
      const frames = wrapped.map((dlt) => ({ linkType: 192, timestampMs: 0, data: ppi(dlt, size) }));
      if (packed) fw.ingestBatch(packFrames(frames)!);
      else fw.ingestMany(frames);
      const c = fw.endWindow();
      return { wifi: c.wifi.frames, ble: c.ble.frames, unsupported: c.unsupported };
    };
    // small: BLE (147, 251, 256), Wi-Fi (105, 127), not parsed (Ethernet)
    expect(counts(64, false)).toEqual({ wifi: 2, ble: 3, unsupported: 1 });
    // too large for the batch buffer (each frame alone, or packed as the capture reader packs them): the same radios
    expect(counts(CAP + 1, false)).toEqual({ wifi: 2, ble: 3, unsupported: 1 });
    expect(counts(CAP + 1, true)).toEqual({ wifi: 2, ble: 3, unsupported: 1 });
  });

  it('no export traps on pointers and lengths outside memory', () => {
    const end = x.memory.buffer.byteLength;
    fw.beginWindow();
    expect(x.blake2s(end - 4, 32, 0, 0, 0, 32)).toBe(0);
    expect(x.blake2s(0, 0, 0xffffffff, 0xffffffff, 0, 32)).toBe(0);
    expect(x.blake2s(0, 0, 0, 0, end - 31, 32)).toBe(0);
    expect(x.hash_address(1, 0, end - 5)).toBe(0n);
    expect(x.hash_addresses(end - 8, 2)).toBe(0);
    expect(() => x.count_addresses(1, 0, end - 6, 2)).not.toThrow();
    expect(() => x.count_addresses(1, 0, 0, 0xffffffff)).not.toThrow();
    expect(() => x.ingest(0xffffffff)).not.toThrow();
    expect(fw.endWindow().wifi.devices).toBe(0);
    // and the last byte of memory is still reachable
    expect(x.blake2s(0, 0, end - 1, 1, 0, 32)).toBe(1);
  });

  it('a missing module is a clear error naming the build command', async () => {
    expect(() => Firmware.loadSync('/nonexistent/presence.wasm')).toThrow(/\/nonexistent\/presence.wasm not found.*npm run build:wasm/);
    await expect(Firmware.load('/nonexistent/presence.wasm')).rejects.toThrow(/npm run build:wasm/);
  });

  it('refuses a key from the caller, and a second open window', () => {
    const call = fw.beginWindow as unknown as (...args: unknown[]) => void;
    expect(() => call.call(fw, new Uint8Array(32))).toThrow(/draws the window key itself/);
    expect(() => call.call(fw, new Uint8Array(32), {})).toThrow(/draws the window key itself/);
    expect(fw.windowOpen).toBe(false);
    fw.beginWindow();
    expect(() => fw.beginWindow()).toThrow(/already open/);
    fw.endWindow();
    expect(() => fw.endWindow()).toThrow(/no window is open/);
  });
});

describe('firmware ingest accounting on real frames', () => {
  const IES = Uint8Array.from([0x00, 0x00, 0x01, 0x04, 0x02, 0x04, 0x0b, 0x16]);
  const mac = (i: number, first = 0x02) => Uint8Array.from([first, 0x10, 0x20, 0x30, (i >> 8) & 0xff, i & 0xff]);
  const probe = (i: number, signalDbm: number) =>
    ({ linkType: 127, timestampMs: 0, data: probeRequest({ sa: mac(i), seq: i, ies: IES, channel: 6, signalDbm, tsfUs: 0 }) }) as Frame;
  const advert = (i: number, signalDbm: number) =>
    bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva: mac(i, 0x40), random: true, advData: Uint8Array.from([2, 1, 6]), channel: 37, signalDbm });

  it('counts frames, accepted, rejected and devices per radio; repeats are one device', () => {
    fw.beginWindow();
    for (let rep = 0; rep < 3; rep++) for (let i = 0; i < 50; i++) fw.ingest(probe(i, -50));
    const bad = probe(99, -50);
    bad.data[bad.data.length - 1]! ^= 0xff; // FCS no longer matches
    fw.ingest(bad);
    for (let i = 0; i < 20; i++) fw.ingest({ linkType: 256, timestampMs: 0, data: advert(i, -60) });
    const c = fw.endWindow();
    // the 50 Wi-Fi addresses come at one moment and one signal: one scan burst, but never fewer
    // than the addresses / 7 (test/firmware-estimate.test.ts); BLE addresses are never linked.
    // The estimator marks addresses by 17 bits of their keyed hash, and the key is random: two of
    // the 50 share a bit under about 0.8 % of keys (20000 windows: 154 had 49 new addresses, 31 had
    // a BLE pair sharing one), so the new-address count is 50 (rarely 49, 48 ...) and the BLE count
    // 20 (rarely 19). Only what no key can change is exact; the rest is held to what a few collisions allow.
    // Set bits are read through linear counting (firmware/README.md): 50 bits read 50.0095 addresses.
    const distinct = (bits: number) => -(2 ** 17) * Math.log1p(-bits / 2 ** 17);
    const milli = (x: number) => Math.round(x * 1000) / 1000;
    const { estimate: we, estimateMean: wm, ...wifi } = c.wifi;
    const { estimate: be, estimateMean: bm, ...ble } = c.ble;
    expect(wifi).toEqual({ frames: 151, accepted: 150, rejected: 1, weak: 0, devices: 50, exact: true });
    expect(we).toBe(7);
    expect([47, 48, 49, 50].map((n) => milli(distinct(n) / 7))).toContain(wm);
    expect(ble).toEqual({ frames: 20, accepted: 20, rejected: 0, weak: 0, devices: 20, exact: true });
    expect(be).toBe(Math.round(bm));
    expect([18, 19, 20].map((n) => milli(distinct(n)))).toContain(bm);
    expect([18, 19, 20]).toContain(be);
    expect(c.unsupported).toBe(0);
  });

  it('ignoreFcs counts the frame whose FCS fails', () => {
    fw.beginWindow({ ignoreFcs: true });
    const bad = probe(7, -50);
    bad.data[bad.data.length - 1]! ^= 0xff;
    fw.ingest(bad);
    expect(fw.endWindow().wifi).toMatchObject({ accepted: 1, rejected: 0, devices: 1 });
  });

  it('a slot below the RSSI threshold is weak and no device; an unknown RSSI is never weak', () => {
    fw.beginWindow({ rssiMinDbm: -65 });
    fw.ingest(probe(1, -50));
    fw.ingest(probe(2, -80)); // weak
    fw.ingest({ linkType: 256, timestampMs: 0, data: advert(1, -90) }); // weak
    fw.ingest({ linkType: 251, timestampMs: 0, data: advert(2, -90).subarray(10) }); // no pseudo-header: RSSI unknown
    const c = fw.endWindow();
    expect(c.wifi).toMatchObject({ frames: 2, accepted: 2, weak: 1, devices: 1 });
    expect(c.ble).toMatchObject({ frames: 2, accepted: 2, weak: 1, devices: 1 });
  });

  it('passes the link type unmasked, so 802.11 (105) with FCS-length bits has its FCS checked', () => {
    const withFcs = (i: number, corrupt: boolean) => {
      const radiotap = probe(i, -50).data;
      const mac = radiotap.slice(new DataView(radiotap.buffer).getUint16(2, true)); // 802.11 + FCS
      if (corrupt) mac[mac.length - 1]! ^= 0xff;
      return mac;
    };
    const FCS4 = (0x2 << 28) | 0x04000000 | 105; // FCS length 2 x 16 bits, P bit
    fw.beginWindow();
    fw.ingest({ linkType: FCS4, timestampMs: 0, data: withFcs(1, false) });
    fw.ingest({ linkType: FCS4, timestampMs: 0, data: withFcs(2, true) });
    fw.ingest({ linkType: 0xfc000000 | 127, timestampMs: 0, data: probe(3, -50).data }); // other high bits: masked
    const c = fw.endWindow();
    expect(c.wifi).toMatchObject({ frames: 3, accepted: 2, rejected: 1, devices: 2 });
    expect(c.unsupported).toBe(0);
  });

  it('ingestBatch (packed records, split across batch-buffer fills) counts exactly as ingest frame by frame', () => {
    const frames: Frame[] = [];
    for (let i = 0; i < 9000; i++) frames.push(i % 3 === 2 ? { linkType: 256, timestampMs: i, data: advert(i % 700, -60) } : probe(i % 1500, -50 - (i % 40)));
    const CAP = x.batch_capacity();
    frames.push({ linkType: 127, timestampMs: 1, data: new Uint8Array(CAP) }); // too large for the buffer
    frames.push({ linkType: 4242, timestampMs: 2, data: new Uint8Array(10) });
    const batch = packFrames(frames)!;
    expect(batch.bytes.length).toBeGreaterThan(2 * CAP); // several buffer fills
    fw.beginWindow({ rssiMinDbm: -80 });
    fw.ingestMany(frames);
    const one = fw.endWindow();
    fw.beginWindow({ rssiMinDbm: -80 });
    fw.ingestBatch(batch.slice(0, 4000));
    fw.ingestBatch(batch.slice(4000, batch.end));
    const packed = fw.endWindow();
    // everything that does not depend on the window's (random) key
    const fixed = (c: FirmwareWindowCounts) => ({
      unsupported: c.unsupported,
      ...Object.fromEntries(
        (['wifi', 'ble'] as const).map((r) => [
          r,
          { frames: c[r].frames, accepted: c[r].accepted, rejected: c[r].rejected, weak: c[r].weak, devices: c[r].devices, exact: c[r].exact },
        ]),
      ),
    });
    expect(fixed(packed)).toEqual(fixed(one));
    expect(one.wifi).toMatchObject({ frames: 6001, rejected: 1 });
    expect(one.wifi.weak).toBeGreaterThan(0);
    expect(one.wifi.devices).toBeGreaterThan(500);
    expect(one.ble.devices).toBe(700);
    expect(one.unsupported).toBe(1);
  });

  it('liveCounts reports the window so far, including frames still in the batch buffer', () => {
    fw.beginWindow();
    for (let i = 0; i < 10; i++) fw.ingest(probe(i, -50));
    expect(fw.liveCounts()).toEqual({
      wifi: { frames: 10, accepted: 10, rejected: 0, weak: 0 },
      ble: { frames: 0, accepted: 0, rejected: 0, weak: 0 },
      unsupported: 0,
    });
    fw.ingest(probe(10, -50));
    expect(fw.liveCounts().wifi.frames).toBe(11);
    expect(fw.endWindow().wifi.devices).toBe(11);
  });
});
