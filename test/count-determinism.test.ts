// The same capture under the same window keys gives the same counts however it reaches the
// firmware: as Frame objects all at once (ingestMany), as the gateway feeds it (the capture
// reader's packed records through the module's capture splitting, ingestBatch) in chunks of any
// size, and through `presence replay`'s window clock in chunks of any size. Every count is
// compared, the estimate to the thousandth included; the estimate's sub-window maps are keyed, so
// the keys are recorded on the first run and handed out again on the others. Real captures of
// ../shared/captures, read by path (skipped when absent).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { CaptureParser, readCaptureFile } from '../gateway/capture/pcap.ts';
import { captureBatches, replayFrames } from '../gateway/replay.ts';
import { capturesDir } from './support/need.ts';
import { rng } from './support/rng.ts';

/** While 'record', every draw of the CSPRNG is kept; while 'replay', the kept draws are handed out again in order. */
const keys = vi.hoisted(() => ({ mode: 'off' as 'off' | 'record' | 'replay', kept: [] as Uint8Array[], next: 0 }));
vi.mock('node:crypto', async (importOriginal) =>
  (await import('./support/key-replay.ts')).replayingCrypto(await importOriginal<typeof import('node:crypto')>(), keys),
);

const dir = capturesDir('count determinism');
const FILES = [
  'occupancy/sc6-61_2022-10-18.pcap',
  'wifi/iPhone11-B_anonymized.pcap',
  'wifi/sc6-61_2023-04-17_anonymized.pcap',
  'wifi/n-02.cap',
  'ble/anechoic__Ubertooth__ubertooth_capture_0.pcapng',
  'ble/anechoic__nRF52__nrf52_capture_0.pcapng',
  'ble/horizon74_btsnoop_hci.lt201.pcap',
  'ble/pairing_and_ltk_exchange.pcap',
  'ble/take_3__adv37.pcap',
];

/** Runs `f` with the keys of the first run handed out again (the first run records them). */
function sameKeys<T>(first: () => T): { record: () => T; replay: <U>(run: () => U) => U } {
  return {
    record: () => {
      keys.mode = 'record';
      keys.kept = [];
      try {
        return first();
      } finally {
        keys.mode = 'off';
      }
    },
    replay: (run) => {
      keys.mode = 'replay';
      keys.next = 0;
      try {
        return run();
      } finally {
        keys.mode = 'off';
      }
    },
  };
}

function chunks(bytes: Uint8Array, seed: number): Uint8Array[] {
  const r = rng(seed);
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = 1 + r.below(r.below(2) === 0 ? 300 : 200_000);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

describe.skipIf(!dir)('counts under the same keys, however the capture reaches the firmware', () => {
  it.each(FILES)('%s: Frame objects at once, packed records through the module splitting in random chunks, replay windows in random chunks', async (name) => {
    const file = join(dir!, name);
    const bytes = readFileSync(file);
    const fw = await Firmware.load();
    const frames: Frame[] = [];
    for await (const b of readCaptureFile(file)) frames.push(...b);
    const opts = { rssiMinDbm: -85, ignoreFcs: name.includes('anonymized') };
    const run = sameKeys(() => {
      fw.beginWindow(opts);
      fw.ingestMany(frames);
      return fw.endWindow();
    });
    const want = run.record();
    expect(want.wifi.frames + want.ble.frames).toBe(frames.length);
    expect(want.wifi.devices + want.ble.devices).toBeGreaterThan(0);
    for (const seed of [1, 2, 3]) {
      const got = run.replay(() => {
        fw.beginWindow(opts);
        const parser = new CaptureParser(file, fw.splitter);
        for (const c of chunks(bytes, seed)) {
          const b = parser.pushRecords(c, true);
          if (b) fw.ingestBatch(b);
        }
        const last = parser.flushRecords();
        if (last) fw.ingestBatch(last);
        parser.end();
        return fw.endWindow();
      });
      expect(got, `packed records, chunking ${seed}`).toEqual(want);
    }
    // presence replay's path: the window clock cuts the capture into 60-s windows, each under its own key
    const replay = async (seed: number) => {
      const out: string[] = [];
      const parts = seed === 0 ? [bytes] : chunks(bytes, seed);
      async function* input(): AsyncGenerator<Uint8Array> {
        yield* parts;
      }
      for await (const w of replayFrames(captureBatches(input(), file), fw, { window: 60_000, ...opts })) out.push(JSON.stringify(w));
      return out;
    };
    keys.mode = 'record';
    keys.kept = [];
    const windows = await replay(0).finally(() => {
      keys.mode = 'off';
    });
    for (const seed of [4, 5]) {
      keys.mode = 'replay';
      keys.next = 0;
      const again = await replay(seed).finally(() => {
        keys.mode = 'off';
      });
      expect(again, `replay windows, chunking ${seed}`).toEqual(windows);
    }
  });
});
