// The in-window estimate (firmware/assembly/estimator.ts): devices present per 30-s sub-window,
// averaged over the window; a Wi-Fi address new to its sub-window that comes within 1 s of another
// frame at a signal within 8 dB is the same scan burst; a sub-window counts at least its new
// addresses / 9; BLE addresses are never linked.
import { describe, expect, it } from 'vitest';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { BLE_PDU, bleAdvertHci, bleAdvertLL, probeRequest, type BlePduType } from '../simulator/frames.ts';

const fw = Firmware.loadSync();
const SUB = 30_000;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0); // a minute boundary
const IES = Uint8Array.from([0x00, 0x00, 0x01, 0x04, 0x02, 0x04, 0x0b, 0x16]);
const mac = (i: number, first = 0x02) => Uint8Array.from([first, 0x10, 0x20, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]);
const probe = (addr: number, t: number, signalDbm = -50): Frame => ({
  linkType: 127,
  timestampMs: t,
  data: probeRequest({ sa: mac(addr), seq: addr & 0xfff, ies: IES, channel: 6, signalDbm, tsfUs: 0 }),
});
const advert = (addr: number, t: number): Frame => ({
  linkType: 256,
  timestampMs: t,
  data: bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva: mac(addr, 0x40), random: true, advData: Uint8Array.from([2, 1, 6]), channel: 37, signalDbm: -60 }),
});
/** A randomising phone's scan: `n` fresh addresses 20 ms apart, starting at t. */
const burst = (firstAddr: number, n: number, t: number, signalDbm = -50): Frame[] =>
  Array.from({ length: n }, (_, i) => probe(firstAddr + i, t + 20 * i, signalDbm));

function run(frames: Frame[], opts: { startMs?: number; endMs?: number; rssiMinDbm?: number } = {}) {
  fw.beginWindow(opts);
  fw.ingestMany(frames);
  return fw.endWindow();
}

describe('firmware estimate', () => {
  it('has 30-s sub-windows', () => {
    expect(fw.exports.subwindow_ms()).toBe(SUB);
  });

  it('a device that keeps its address and probes all window long is one, whatever the window length', () => {
    const every5s = (ms: number) => Array.from({ length: ms / 5000 }, (_, i) => probe(7, T0 + i * 5000 + 100));
    for (const ms of [60_000, 300_000, 900_000]) {
      const c = run(every5s(ms), { startMs: T0, endMs: T0 + ms });
      expect(c.wifi.devices).toBe(1);
      expect(c.wifi.estimateMean, `${ms} ms`).toBe(1);
    }
  });

  it('a phone that draws 9 addresses per scan, one scan per sub-window, is one; distinct addresses grow with the window', () => {
    const scans = (ms: number) => Array.from({ length: ms / SUB }, (_, k) => burst(1000 * k, 9, T0 + k * SUB + 3000)).flat();
    const one = run(scans(60_000), { startMs: T0, endMs: T0 + 60_000 });
    const fifteen = run(scans(900_000), { startMs: T0, endMs: T0 + 900_000 });
    expect(one.wifi.estimateMean).toBe(1);
    expect(fifteen.wifi.estimateMean).toBe(1);
    expect(one.wifi.devices).toBe(18);
    expect(fifteen.wifi.devices).toBe(270);
  });

  it('averages presence: heard in one sub-window of two is half a device', () => {
    const c = run([probe(1, T0 + 1000), probe(1, T0 + 2000)], { startMs: T0, endMs: T0 + 60_000 });
    expect(c.wifi.estimateMean).toBe(0.5);
    expect(c.wifi.estimate).toBe(1); // rounded for the published counts
  });

  it('two scans at the same moment more than 8 dB apart are two devices; within 8 dB, one', () => {
    const apart = run([...burst(100, 4, T0 + 1000, -40), ...burst(200, 4, T0 + 1010, -60)], { startMs: T0, endMs: T0 + SUB });
    expect(apart.wifi.estimateMean).toBe(2);
    const close = run([...burst(100, 4, T0 + 1000, -40), ...burst(200, 4, T0 + 1010, -47)], { startMs: T0, endMs: T0 + SUB });
    expect(close.wifi.estimateMean).toBe(1);
  });

  it('never counts fewer than a sub-window\'s new addresses / 9: a dense crowd does not collapse into one burst', () => {
    // 90 addresses within 1 s at one signal: the link would make them one device
    const c = run(burst(1, 90, T0 + 1000).map((f, i) => ({ ...f, timestampMs: T0 + 1000 + i * 10 })), { startMs: T0, endMs: T0 + SUB });
    expect(c.wifi.devices).toBe(90);
    expect(c.wifi.estimateMean).toBe(10);
    // 1,000 phones, 2 addresses each, scanning at random moments and signals over 30 s: the count
    // keeps rising with the crowd (linking alone would give a few dozen)
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const crowd = (n: number) =>
      Array.from({ length: n }, (_, k) => {
        const t = T0 + rnd() * (SUB - 100);
        const dbm = -70 + Math.floor(rnd() * 40);
        return [probe(2 * k, t, dbm), probe(2 * k + 1, t + 20, dbm)];
      })
        .flat()
        .sort((a, b) => a.timestampMs - b.timestampMs);
    const counts = [100, 1000, 3000].map((n) => run(crowd(n), { startMs: T0, endMs: T0 + SUB }).wifi.estimateMean);
    expect(counts[1]).toBeGreaterThan(counts[0] * 2);
    expect(counts[2]).toBeGreaterThan(counts[1] * 2);
  });

  it('a new address more than 1 s after the last frame at a similar signal is a new device', () => {
    const c = run([probe(1, T0 + 1000), probe(2, T0 + 2001), probe(3, T0 + 2900)], { startMs: T0, endMs: T0 + SUB });
    expect(c.wifi.estimateMean).toBe(2);
  });

  it('does not link across a sub-window boundary: a scan that spans it counts in both', () => {
    const c = run(burst(1, 10, T0 + SUB - 100), { startMs: T0, endMs: T0 + 2 * SUB });
    expect(c.wifi.estimateMean).toBe(1); // one entity in each of the two sub-windows, mean 1
  });

  it('frames below the RSSI threshold take no part', () => {
    const c = run([...burst(1, 5, T0 + 1000, -80), probe(50, T0 + 1500, -60)], { startMs: T0, endMs: T0 + SUB, rssiMinDbm: -70 });
    expect(c.wifi.weak).toBe(5);
    expect(c.wifi.estimateMean).toBe(1);
  });

  it('with no signal known, nothing is linked: addresses per sub-window', () => {
    const noSignal = (addr: number, t: number): Frame => {
      const f = probe(addr, t).data;
      // strip the 24-byte radiotap header and the FCS: plain 802.11 (link type 105, no FCS)
      return { linkType: 105, timestampMs: t, data: f.subarray(24, f.length - 4) };
    };
    const c = run([noSignal(1, T0 + 100), noSignal(2, T0 + 120), noSignal(3, T0 + 140)], { startMs: T0, endMs: T0 + SUB });
    expect(c.wifi.estimateMean).toBe(3);
  });

  it('BLE: distinct addresses per sub-window, never linked by time', () => {
    const frames = [advert(1, T0 + 100), advert(2, T0 + 110), advert(1, T0 + 200), advert(1, T0 + SUB + 100)];
    const c = run(frames, { startMs: T0, endMs: T0 + 2 * SUB });
    expect(c.ble.devices).toBe(2);
    expect(c.ble.estimateMean).toBe(1.5);
  });

  it('BLE beacons (iBeacon, AltBeacon, Eddystone) are devices but not in the estimate; phones and others are', () => {
    const ibeacon = [0x1a, 0xff, 0x4c, 0x00, 0x02, 0x15, ...new Array(16).fill(0x11), 0, 1, 0, 2, 0xc5];
    const altbeacon = [0x1b, 0xff, 0x18, 0x01, 0xbe, 0xac, ...new Array(20).fill(0x22), 0xc5, 0x00];
    const eddystone = [0x03, 0x03, 0xaa, 0xfe, 0x0c, 0x16, 0xaa, 0xfe, 0x10, 0xeb, 0x00, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66];
    const continuity = [0x02, 0x01, 0x1a, 0x0a, 0xff, 0x4c, 0x00, 0x10, 0x05, 0x01, 0x18, 0x00, 0x00, 0x00];
    const fastPair = [0x06, 0x16, 0x2c, 0xfe, 0x00, 0x01, 0x02];
    const ll = (addr: number, data: number[], pduType: BlePduType = BLE_PDU.ADV_NONCONN_IND): Frame => ({
      linkType: 256,
      timestampMs: T0 + 100 + addr,
      data: bleAdvertLL({ pduType, adva: mac(addr, 0x40), random: true, advData: Uint8Array.from(data), channel: 37, signalDbm: -60 }),
    });
    const hci = (addr: number, data: number[]): Frame => ({
      linkType: 201,
      timestampMs: T0 + 200 + addr,
      data: bleAdvertHci({ pduType: BLE_PDU.ADV_NONCONN_IND, adva: mac(addr, 0x00), random: false, advData: Uint8Array.from(data), signalDbm: -60 }),
    });
    const c = run([ll(1, ibeacon), ll(2, altbeacon), ll(3, eddystone), hci(4, ibeacon), ll(5, continuity, BLE_PDU.ADV_IND), ll(6, fastPair), hci(7, continuity), ll(8, [2, 1, 6])], {
      startMs: T0,
      endMs: T0 + SUB,
    });
    expect(c.ble.devices).toBe(8);
    expect(c.ble.estimateMean).toBe(4);
    // a beacon's data cut short is no beacon (the AD structure overruns), nor is a bare 0x4c00 header
    const cut = run([ll(1, ibeacon.slice(0, 10)), ll(2, [0x03, 0xff, 0x4c, 0x00])], { startMs: T0, endMs: T0 + SUB });
    expect(cut.ble.estimateMean).toBe(2);
  });

  it('without the window bounds the grid runs from the first frame to the last', () => {
    const c = run([probe(1, T0 + 1000), probe(1, T0 + 61_000)]);
    expect(c.wifi.estimateMean).toBe(0.667); // thousandths // sub-windows at +0, +30 s and +60 s from the first frame
    expect(run([]).wifi.estimateMean).toBe(0);
  });

  it('refuses bounds that are not a finite interval, before opening the window', () => {
    expect(() => fw.beginWindow({ startMs: T0 })).toThrow(/startMs and endMs/);
    expect(() => fw.beginWindow({ startMs: T0, endMs: T0 })).toThrow(/endMs > startMs/);
    expect(() => fw.beginWindow({ startMs: NaN, endMs: T0 })).toThrow(/finite/);
    expect(fw.windowOpen).toBe(false);
  });

  it('frames with absurd or missing times neither trap nor inflate the count', () => {
    const odd = [probe(1, T0 + 100), probe(2, 1e300), probe(3, NaN), probe(4, -1e300), probe(5, T0 + 200, -20)];
    const c = run(odd, { startMs: T0, endMs: T0 + SUB });
    expect(c.wifi.devices).toBe(5);
    expect(c.wifi.estimateMean).toBeGreaterThanOrEqual(1);
    expect(c.wifi.estimateMean).toBeLessThanOrEqual(5);
  });

  it('a window shorter than a sub-window is one sub-window', () => {
    const c = run([probe(1, T0 + 100), probe(2, T0 + 5000)], { startMs: T0, endMs: T0 + 10_000 });
    expect(c.wifi.estimateMean).toBe(2);
  });
});
