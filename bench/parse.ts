// Parser and capture-reader throughput, as ratios against baselines measured in the same run:
//  - firmware: frames/s through Firmware.ingest for Wi-Fi probe requests (radiotap, FCS verified),
//    BLE adverts (CRC-24 computed) and HCI reports, against the same frames under a link type the
//    firmware does not parse (batching and dispatch only);
//  - capture reader: MB/s of CaptureParser on a pcap and a pcapng in memory, against copying the
//    same records out of the buffer; and as the gateway reads (batch records), frame by frame in
//    JavaScript against split by the firmware (capture_split).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import type { CaptureSplitter } from '../firmware/host/capture-split.ts';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { CaptureParser } from '../gateway/capture/pcap.ts';

const captures = join(import.meta.dirname, '..', '..', 'shared', 'captures');

function readAll(file: string): Frame[] {
  const p = new CaptureParser(file);
  const frames = p.push(readFileSync(file));
  p.end();
  return frames;
}

/** Synthetic probe requests with radiotap and a good FCS, when the real captures are absent. */
function syntheticProbes(n: number): Frame[] {
  const out: Frame[] = [];
  for (let i = 0; i < n; i++) {
    const body = Uint8Array.from([
      0x40,
      0,
      0,
      0,
      ...Array(6).fill(0xff),
      2,
      0,
      0,
      i & 0xff,
      (i >> 8) & 0xff,
      1,
      ...Array(6).fill(0xff),
      0,
      0,
      0,
      0,
      1,
      8,
      2,
      4,
      11,
      22,
      12,
      18,
      24,
      36,
      45,
      26,
      ...Array(26).fill(1),
    ]);
    const fcs = crc32(body);
    out.push({
      linkType: 127,
      timestampMs: i,
      data: Uint8Array.from([0, 0, 10, 0, 0x22, 0, 0, 0, 0x10, 0xc4, ...body, fcs & 0xff, (fcs >>> 8) & 0xff, (fcs >>> 16) & 0xff, fcs >>> 24]),
    });
  }
  return out;
}

function repeat(frames: Frame[], n: number): Frame[] {
  const out: Frame[] = [];
  for (let i = 0; out.length < n; i++) out.push(frames[i % frames.length]);
  return out;
}

function framesPerSecond(fw: Firmware, frames: Frame[], rounds = 3): number {
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    fw.beginWindow();
    const t0 = performance.now();
    fw.ingestMany(frames);
    fw.endWindow();
    best = Math.max(best, frames.length / ((performance.now() - t0) / 1000));
  }
  return best;
}

function mbPerSecond(work: () => void, bytes: number, rounds = 5): number {
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    work();
    best = Math.max(best, bytes / 1e6 / ((performance.now() - t0) / 1000));
  }
  return best;
}

export async function run(): Promise<void> {
  const fw = Firmware.loadSync();
  const real = existsSync(join(captures, 'README.md'));
  const sets: Array<[string, Frame[]]> = real
    ? [
        [
          'wifi radiotap+FCS (exthdr, test1, wpa3)',
          ['ieee802.11_exthdr.pcap', 'test1.pcap', 'wpa3-psk.pcap'].flatMap((f) => readAll(join(captures, 'wifi', f))),
        ],
        ['wifi probes without FCS (sc6-61)', readAll(join(captures, 'wifi', 'sc6-61_2023-04-17_anonymized.pcap'))],
        ['ble LL + phdr, CRC-24 computed (Ubertooth)', readAll(join(captures, 'ble', 'anechoic__Ubertooth__ubertooth_capture_0.pcapng'))],
        ['ble nRF sniffer (nRF52)', readAll(join(captures, 'ble', 'anechoic__nRF52__nrf52_capture_0.pcapng'))],
        ['ble HCI H4 (horizon74)', readAll(join(captures, 'ble', 'horizon74_btsnoop_hci.lt201.pcap'))],
      ]
    : [['wifi radiotap+FCS (synthetic)', syntheticProbes(1000)]];
  if (!real) console.log('(../shared/captures absent: synthetic frames only)');
  const N = process.env.BENCH_SMOKE === '1' ? 10_000 : 300_000;
  for (const [name, frames] of sets) {
    const work = repeat(frames, N);
    const baseline = work.map((f) => ({ ...f, linkType: 1 })); // Ethernet: not parsed
    const base = framesPerSecond(fw, baseline);
    const parsed = framesPerSecond(fw, work);
    const bytes = work.reduce((n, f) => n + f.data.length, 0) / work.length;
    console.log(
      `firmware ${name}: ${(parsed / 1e6).toFixed(2)} M frames/s (avg ${bytes.toFixed(0)} B), ` +
        `${(parsed / base).toFixed(2)}x the batching-only baseline (${(base / 1e6).toFixed(2)} M frames/s)`,
    );
  }
  if (!real) return;
  for (const file of [join(captures, 'wifi', 'OppoFindX3Neo-A_anonymized.pcap'), join(captures, 'ble', 'anechoic__Ubertooth__ubertooth_capture_0.pcapng')]) {
    const buf = new Uint8Array(readFileSync(file));
    const frames = readAll(file);
    const chunks: Uint8Array[] = [];
    for (let o = 0; o < buf.length; o += 65536) chunks.push(buf.subarray(o, o + 65536));
    const copy = mbPerSecond(() => {
      let o = 0;
      for (const f of frames) {
        buf.slice(o, o + f.data.length);
        o += f.data.length;
      }
    }, buf.length);
    const parse = mbPerSecond(() => {
      const p = new CaptureParser(file);
      for (const c of chunks) p.push(c);
      p.end();
    }, buf.length);
    // the gateway's path: packed batch records, read here frame by frame or split by the WASM module
    const records = (splitter: CaptureSplitter | null) =>
      mbPerSecond(() => {
        const p = new CaptureParser(file, splitter);
        for (const c of chunks) p.pushRecords(c, true);
        p.end();
      }, buf.length);
    const packed = records(null);
    const split = records(fw.splitter);
    console.log(
      `capture reader ${file.split('/').pop()}: ${parse.toFixed(0)} MB/s in 64 KiB chunks, ${(parse / copy).toFixed(2)}x copying the records alone (${copy.toFixed(0)} MB/s); ` +
        `as batch records ${packed.toFixed(0)} MB/s, split by the firmware (capture_split) ${split.toFixed(0)} MB/s = ${(split / packed).toFixed(2)}x`,
    );
  }
}
