// Node wrapper around the WASM firmware (firmware/build/presence.wasm): loads the module, opens and
// closes windows (drawing each window's key itself), and batches frames into the module's batch
// buffer so that one ingest() call handles many frames. See firmware/README.md for the ABI underneath.
import { hkdfSync, randomFillSync } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../scripts/package-root.ts';
import type { RecordBatch } from './batch.ts';
import {
  BURST_ADDRESSES_MAX,
  BURST_ADDRESSES_MIN,
  LINKTYPE,
  LINKTYPE_MASK,
  type CorridorSettings,
  type FirmwareRadioCounts,
  type FirmwareSketch,
  type FirmwareWindowCounts,
  type Frame,
  type WindowOptions,
} from './types.ts';
import * as layout from '../assembly/layout.ts';
import { type CaptureSplitExports, CaptureSplitter } from './capture-split.ts';

/** Where `npm run build:wasm` writes the module (PRESENCE_WASM overrides it, for firmware work). */
export const WASM_PATH = process.env.PRESENCE_WASM || join(PACKAGE_ROOT, 'firmware', 'build', 'presence.wasm');

/** Length of the per-window key in bytes. */
export const KEY_BYTES = layout.KEY_BYTES;
/** Size of a batch record header: link type u32, caplen u32, timestamp f64 (ms), little-endian. */
export const RECORD_HEADER_BYTES = layout.RECORD_HEADER_BYTES;
/** window_begin flag bit: count Wi-Fi frames whose FCS check fails. */
export const FLAG_IGNORE_FCS = layout.FLAG_IGNORE_FCS;
/** Length of a corridor epoch key in bytes. */
export const EPOCH_KEY_BYTES = layout.EPOCH_KEY_BYTES;
/** HKDF salt of the corridor epoch key (the info is "<group>/<epoch>"). */
export const EPOCH_KEY_SALT = 'presence-corridor/v1';
/** Shortest group secret the wrapper takes, in bytes. */
export const CORRIDOR_SECRET_MIN_BYTES = 32;

/** The epoch key of a corridor group: HKDF-SHA256(ikm = secret, salt = "presence-corridor/v1", info = "<group>/<epoch>", 32 bytes). */
export function deriveEpochKey(secret: Uint8Array, group: string, epoch: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, EPOCH_KEY_SALT, `${group}/${epoch}`, EPOCH_KEY_BYTES));
}

/**
 * The message of the key check: 30 bytes. A device's sketch position hashes 7 bytes under the same
 * key (a radio tag and 6 address bytes, firmware/assembly/sketch.ts), and BLAKE2s counts the bytes
 * hashed into its final compression, so no device's input can ever be this label.
 */
export const KEY_CHECK_LABEL = 'presence-corridor/v1 key-check';

/**
 * The key check of an epoch key: the first 8 bytes of BLAKE2s-256(key = epoch key, msg =
 * KEY_CHECK_LABEL), 16 lower-case hex digits (the sketch message's `key_check`). Every gateway
 * holding the group's secret gets the same value in an epoch, and another one each epoch; no device
 * enters it. @noble/hashes zero-fills its own copies of the key (its padded key block, its state) as
 * it finishes; the caller keeps and wipes `key`.
 */
export function keyCheckOf(key: Uint8Array): string {
  const h = blake2s(new TextEncoder().encode(KEY_CHECK_LABEL), { key });
  const out = Buffer.from(h.subarray(0, 8)).toString('hex');
  h.fill(0);
  return out;
}

// The project compiles without the DOM lib, which is where TypeScript keeps the WebAssembly types.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
};

/** The module's exports (the ABI; the capture splitter's as capture-split.ts lists them). */
export interface FirmwareExports extends CaptureSplitExports {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  batch_ptr(): number;
  batch_capacity(): number;
  key_ptr(): number;
  stats_ptr(): number;
  live_ptr(): number;
  window_begin(flags: number, rssiMinDbm: number): void;
  window_span(startMs: number, endMs: number): void;
  window_burst_addresses(n: number): number;
  subwindow_ms(): number;
  ingest(count: number): number;
  window_end(): void;
  table_limit(): number;
  table_slots(): number;
  sketch_registers(): number;
  static_end(): number;
  blake2s(keyPtr: number, keyLen: number, msgPtr: number, msgLen: number, outPtr: number, outLen: number): number;
  hash_address(radio: number, group: number, ptr: number): bigint;
  count_addresses(radio: number, kind: number, ptr: number, n: number): void;
  hash_addresses(ptr: number, n: number): number;
  keyed_state_ptr(): number;
  estimator_seen_ptr(): number;
  estimator_seen_bytes(): number;
  estimator_link_times_ptr(): number;
  estimator_state_ptr(): number;
  estimator_state_bytes(): number;
  estimator_chain_ptr(): number;
  estimator_chain_bytes(): number;
  count_queue_ptr(): number;
  count_queue_bytes(): number;
  epoch_key_ptr(): number;
  epoch_begin(m: number, t: number): number;
  epoch_end(): void;
  sketch_bits(): number;
  sketch_bits_max(): number;
  sketch_noisy_ptr(): number;
  sketch_scratch_ptr(): number;
  sketch_scratch_bytes(): number;
  sketch_true_ptr(): number;
  sketch_state_ptr(): number;
}

/** Stats block layout (u32 words at stats_ptr()): the module's own numbers, firmware/assembly/layout.ts. */
const STAT = {
  RADIO_STRIDE: layout.STATS_RADIO_STRIDE,
  FRAMES: layout.STAT_FRAMES,
  ACCEPTED: layout.STAT_ACCEPTED,
  REJECTED: layout.STAT_REJECTED,
  WEAK: layout.STAT_WEAK,
  DEVICES: layout.STAT_DEVICES,
  ESTIMATE: layout.STAT_ESTIMATE,
  EXACT: layout.STAT_EXACT,
  ESTIMATE_MILLI: layout.STAT_ESTIMATE_MILLI,
  UNSUPPORTED: layout.STAT_UNSUPPORTED,
  BATCH_ERRORS: layout.STAT_BATCH_ERRORS,
  OPEN: layout.STAT_OPEN,
} as const;

/** Counts available while a window is open (no device counts: those exist only at its end). */
export interface LiveRadioCounts {
  frames: number;
  accepted: number;
  rejected: number;
  weak: number;
}
export interface LiveCounts {
  wifi: LiveRadioCounts;
  ble: LiveRadioCounts;
  unsupported: number;
}

/**
 * Counts per bucket for a gateway's own page (never per device): frames per channel since the
 * firmware was loaded, and the open window's address slots per dBm (layout.ts, the live block).
 */
export interface LiveStats {
  /** Frames per Wi-Fi channel slot (channelName('wifi', i) names slot i). */
  wifiChannels: Float64Array;
  /** Frames per BLE channel index 0..39, then unknown. */
  bleChannels: Float64Array;
  /** Open window: address slots per signal, slot 0 unknown, slot d + 128 for d dBm, slot 128 for 0 dBm and above. */
  rssiWifi: Uint32Array;
  rssiBle: Uint32Array;
}

/** The name of a live-block channel slot: "2.4 GHz 6", "5 GHz 36", "6 GHz 5", "BLE 37", or "unknown". */
export function channelName(radio: 'wifi' | 'ble', slot: number): string {
  if (radio === 'ble') return slot < 40 ? `BLE ${slot}` : 'unknown';
  if (slot < 16) return `2.4 GHz ${slot}`;
  if (slot < 216) return `5 GHz ${slot - 16}`;
  if (slot < layout.LIVE_WIFI_CHANNELS - 1) return `6 GHz ${slot - 216}`;
  return 'unknown';
}

/** The dBm value of a histogram slot (null: unknown; 0 stands for 0 dBm and above). */
export function rssiOfSlot(slot: number): number | null {
  return slot === 0 ? null : slot - 128;
}

const WIFI_LINKTYPES = new Set<number>([LINKTYPE.IEEE802_11, LINKTYPE.IEEE802_11_RADIOTAP]);
const BLE_LINKTYPES = new Set<number>([LINKTYPE.BLUETOOTH_HCI_H4_WITH_PHDR, LINKTYPE.BLUETOOTH_LE_LL, LINKTYPE.BLUETOOTH_LE_LL_WITH_PHDR, LINKTYPE.NORDIC_BLE]);
/** BLE link types a PPI header wraps (firmware/assembly/ppi.ts; its Wi-Fi ones are WIFI_LINKTYPES); the module counts any other as unsupported. */
const PPI_BLE = new Set<number>([147, LINKTYPE.BLUETOOTH_LE_LL, LINKTYPE.BLUETOOTH_LE_LL_WITH_PHDR]);

/**
 * The radio the module counts a frame under, from its link type: for PPI, from the link type its
 * header wraps (a header that is no PPI version 0 header is unsupported, as the module has it).
 */
function radioOf(linkType: number, data: Uint8Array): 'wifi' | 'ble' | 'unsupported' {
  const lt = (linkType & LINKTYPE_MASK) >>> 0;
  if (WIFI_LINKTYPES.has(lt)) return 'wifi';
  if (BLE_LINKTYPES.has(lt)) return 'ble';
  if (lt !== LINKTYPE.PPI || data.length < 8 || data[0] !== 0) return 'unsupported';
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const hdrLen = dv.getUint16(2, true);
  if (hdrLen < 8 || hdrLen > data.length) return 'unsupported';
  const dlt = dv.getUint32(4, true);
  return WIFI_LINKTYPES.has(dlt) ? 'wifi' : PPI_BLE.has(dlt) ? 'ble' : 'unsupported';
}

function missing(path: string): Error {
  return new Error(`firmware: ${path} not found; build it with \`npm run build:wasm\``);
}

function instantiate(bytes: Uint8Array): FirmwareExports {
  const module = new WebAssembly.Module(bytes);
  const instance = new WebAssembly.Instance(module, {});
  return instance.exports as unknown as FirmwareExports;
}

export class Firmware {
  readonly exports: FirmwareExports;
  /** Bytes of the batch buffer: a frame needs 16 + caplen rounded up to 8 of them. */
  readonly batchCapacity: number;
  /** The module's whole linear memory in bytes (fixed: it never grows). */
  readonly memoryBytes: number;
  /** Distinct devices per radio counted exactly before the count switches to the sketch. */
  readonly tableLimit: number;
  /** The module's capture splitting, for the capture reader (gateway/capture/pcap.ts): whole chunks in, batch records out. */
  readonly splitter: CaptureSplitter;

  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly batch: number;
  private readonly stats: number;
  private readonly live: number;
  /** Frames per channel of the windows already closed (the live block is zeroed when a window ends). */
  private readonly channelsClosed = { wifi: new Float64Array(layout.LIVE_WIFI_CHANNELS), ble: new Float64Array(layout.LIVE_BLE_CHANNELS) };
  private offset = 0;
  private pending = 0;
  private open = false;
  /** Frames too large for the batch buffer: counted here, not in the module. */
  private oversize = { wifi: 0, ble: 0, unsupported: 0 };
  /** The corridor group (with this wrapper's copy of the secret), or null. */
  private corridor: CorridorSettings | null = null;
  /** The epoch whose key the module holds, or null. */
  private epoch: number | null = null;
  /** keyCheckOf(the epoch key the module holds), or null. */
  private keyCheck: string | null = null;
  /** The open window's end (ms), when it was given: the epoch key is wiped after the epoch's last window. */
  private windowEndMs: number | undefined;

  private constructor(exports: FirmwareExports) {
    this.exports = exports;
    this.u8 = new Uint8Array(exports.memory.buffer);
    this.dv = new DataView(exports.memory.buffer);
    this.batch = exports.batch_ptr();
    this.stats = exports.stats_ptr();
    this.live = exports.live_ptr();
    this.batchCapacity = exports.batch_capacity();
    this.memoryBytes = exports.memory.buffer.byteLength;
    this.tableLimit = exports.table_limit();
    this.splitter = new CaptureSplitter(exports);
  }

  static async load(path: string = WASM_PATH): Promise<Firmware> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing(path);
      throw err;
    }
    return new Firmware(instantiate(bytes));
  }

  static loadSync(path: string = WASM_PATH): Firmware {
    if (!existsSync(path)) throw missing(path);
    return new Firmware(instantiate(readFileSync(path)));
  }

  get windowOpen(): boolean {
    return this.open;
  }

  /**
   * Makes every window from the next one on produce a corridor sketch for this group. The wrapper
   * keeps a copy of the secret (zeroed by clearCorridor()); per epoch it derives the epoch key with
   * HKDF-SHA256 (node:crypto), copies it into the module and zero-fills its own copy; the module
   * keeps only the BLAKE2s state after the key block and wipes it when the epoch's last window
   * ends (or at clearCorridor()). Windows must then be opened with startMs and endMs.
   */
  setCorridor(c: CorridorSettings): void {
    if (this.open) throw new Error('firmware: set the corridor between windows');
    const max = this.exports.sketch_bits_max();
    if (!(c.secret instanceof Uint8Array) || c.secret.length < CORRIDOR_SECRET_MIN_BYTES) {
      throw new TypeError(`firmware: the corridor secret must be at least ${CORRIDOR_SECRET_MIN_BYTES} bytes`);
    }
    if (!Number.isInteger(c.bits) || c.bits < layout.SKETCH_BITS_MIN || c.bits > max || (c.bits & (c.bits - 1)) !== 0) {
      throw new RangeError(`firmware: sketch bits must be a power of two from ${layout.SKETCH_BITS_MIN} to ${max}, got ${c.bits}`);
    }
    if (!(c.p >= 0 && c.p <= 1)) throw new RangeError(`firmware: sketch p must be from 0 to 1, got ${c.p}`);
    if (!(Number.isInteger(c.epochMs) && c.epochMs > 0)) throw new RangeError(`firmware: epochMs must be a positive whole number of ms, got ${c.epochMs}`);
    this.clearCorridor();
    this.corridor = { ...c, secret: Uint8Array.from(c.secret) };
  }

  /** Forgets the corridor group: the module wipes the epoch key, bitmaps and scratch; the secret copy is zero-filled. */
  clearCorridor(): void {
    if (this.open) throw new Error('firmware: clear the corridor between windows');
    this.exports.epoch_end();
    this.epoch = null;
    this.keyCheck = null;
    this.corridor?.secret.fill(0);
    this.corridor = null;
  }

  /** The epoch whose key the module holds now (null: none). */
  get currentEpoch(): number | null {
    return this.epoch;
  }

  /** Gives the module the epoch key of the epoch a window starting at startMs belongs to, when it has another one. */
  private enterEpoch(c: CorridorSettings, startMs: number): void {
    const epoch = Math.floor(startMs / c.epochMs);
    if (epoch === this.epoch) return;
    this.exports.epoch_end();
    this.epoch = null;
    const key = deriveEpochKey(c.secret, c.group, epoch);
    this.keyCheck = keyCheckOf(key);
    this.u8.set(key, this.exports.epoch_key_ptr());
    key.fill(0);
    const t = Math.round(c.p * layout.RR_SCALE);
    if (this.exports.epoch_begin(c.bits, t) !== 1) throw new Error(`firmware: the module refused sketch bits ${c.bits} / threshold ${t}`);
    this.epoch = epoch;
  }

  /**
   * Opens a window under a fresh key: 32 bytes from Node's CSPRNG (`crypto.randomFillSync`) are
   * written straight into the module's key buffer, so no copy of the key exists on the host side;
   * `window_begin` keeps only the BLAKE2s state after the key block and zeroes the key bytes.
   * Callers cannot pass, reuse or see a key.
   */
  beginWindow(opts: WindowOptions = {}): void {
    if (this.open) throw new Error('firmware: a window is already open; call endWindow() first');
    if (opts instanceof Uint8Array || arguments.length > 1) {
      throw new TypeError('firmware: beginWindow() draws the window key itself; pass only the window options');
    }
    const rssi = opts.rssiMinDbm;
    if (rssi !== undefined && !Number.isFinite(rssi)) {
      throw new TypeError(`firmware: rssiMinDbm must be a finite number of dBm, got ${rssi}`);
    }
    const { startMs, endMs } = opts;
    if ((startMs !== undefined || endMs !== undefined) && !(Number.isFinite(startMs) && Number.isFinite(endMs) && endMs! > startMs!)) {
      throw new TypeError(`firmware: startMs and endMs must both be finite with endMs > startMs, got ${startMs} and ${endMs}`);
    }
    const burst = opts.burstAddresses;
    if (burst !== undefined && !(Number.isFinite(burst) && burst >= BURST_ADDRESSES_MIN && burst <= BURST_ADDRESSES_MAX)) {
      throw new TypeError(`firmware: burstAddresses must be a number from ${BURST_ADDRESSES_MIN} to ${BURST_ADDRESSES_MAX}, got ${burst}`);
    }
    if (this.corridor && startMs === undefined) {
      throw new TypeError('firmware: with a corridor group, windows need startMs and endMs (the epoch follows the window start)');
    }
    // slots carry whole dBm: "below -80.5" is "below -80"
    const rssiMin = rssi === undefined ? -128 : Math.max(-128, Math.min(127, Math.ceil(rssi)));
    if (this.corridor) this.enterEpoch(this.corridor, startMs!);
    this.windowEndMs = endMs;
    randomFillSync(this.u8, this.exports.key_ptr(), KEY_BYTES);
    this.exports.window_begin(opts.ignoreFcs ? FLAG_IGNORE_FCS : 0, rssiMin);
    if (opts.startMs !== undefined) this.exports.window_span(opts.startMs, opts.endMs!);
    if (burst !== undefined) this.exports.window_burst_addresses(burst);
    this.open = true;
    this.offset = 0;
    this.pending = 0;
    this.oversize = { wifi: 0, ble: 0, unsupported: 0 };
  }

  /** Copies a frame into the batch buffer; ingests the batch when it is full. */
  ingest(frame: Frame): void {
    if (!this.open) throw new Error('firmware: no window is open; call beginWindow() first');
    const data = frame.data;
    const len = data.length;
    const need = RECORD_HEADER_BYTES + ((len + 7) & ~7);
    if (need > this.batchCapacity) {
      this.oversize[radioOf(frame.linkType, data)]++;
      return;
    }
    if (this.offset + need > this.batchCapacity) this.flush();
    const rec = this.batch + this.offset;
    this.dv.setUint32(rec, frame.linkType >>> 0, true);
    this.dv.setUint32(rec + 4, len, true);
    this.dv.setFloat64(rec + 8, frame.timestampMs, true);
    this.u8.set(data, rec + RECORD_HEADER_BYTES);
    this.offset += need;
    this.pending++;
  }

  ingestMany(frames: Frame[]): void {
    for (const f of frames) this.ingest(f);
  }

  /**
   * Ingests packed records (what the capture reader makes of a chunk): whole runs of them are
   * copied into the batch buffer at once, no JavaScript object per frame.
   */
  ingestBatch(batch: RecordBatch): void {
    if (!this.open) throw new Error('firmware: no window is open; call beginWindow() first');
    const offsets = batch.offsets;
    const cap = this.batchCapacity;
    let i = batch.start;
    const end = batch.end;
    while (i < end) {
      const base = offsets[i]!;
      const room = cap - this.offset;
      // the most records from i on that fit in the room left (binary search: offsets ascend)
      let lo = i;
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (offsets[mid]! - base <= room) lo = mid;
        else hi = mid - 1;
      }
      if (lo === i) {
        if (offsets[i + 1]! - base > cap) {
          const rec = new DataView(batch.bytes.buffer, batch.bytes.byteOffset + base);
          const data = base + RECORD_HEADER_BYTES;
          this.oversize[radioOf(rec.getUint32(0, true), batch.bytes.subarray(data, data + rec.getUint32(4, true)))]++;
          i++;
        } else this.flush();
        continue;
      }
      this.u8.set(batch.bytes.subarray(base, offsets[lo]!), this.batch + this.offset);
      this.offset += offsets[lo]! - base;
      this.pending += lo - i;
      i = lo;
      if (this.offset === cap) this.flush();
    }
  }

  /** Ingests whatever the batch buffer holds. */
  flush(): void {
    if (this.pending === 0) return;
    // The records were laid out here, so the module takes all of them.
    this.exports.ingest(this.pending);
    this.offset = 0;
    this.pending = 0;
  }

  /** Frames, accepted, rejected and weak so far in the open window (flushes the batch first). */
  liveCounts(): LiveCounts {
    if (this.open) this.flush();
    return {
      wifi: liveRadio(this.dv, this.stats, 0, this.oversize.wifi),
      ble: liveRadio(this.dv, this.stats, 1, this.oversize.ble),
      unsupported: this.dv.getUint32(this.stats + STAT.UNSUPPORTED, true) + this.oversize.unsupported,
    };
  }

  /** Frames per channel since load and the open window's signal histogram (flushes the batch first). */
  liveStats(): LiveStats {
    if (this.open) this.flush();
    const u32 = (off: number, n: number) => new Uint32Array(this.u8.buffer.slice(this.live + off, this.live + off + 4 * n));
    const wifi = u32(layout.LIVE_WIFI_CHANNEL, layout.LIVE_WIFI_CHANNELS);
    const ble = u32(layout.LIVE_BLE_CHANNEL, layout.LIVE_BLE_CHANNELS);
    return {
      wifiChannels: this.channelsClosed.wifi.map((v, i) => v + wifi[i]!),
      bleChannels: this.channelsClosed.ble.map((v, i) => v + ble[i]!),
      rssiWifi: u32(layout.LIVE_RSSI_WIFI, layout.LIVE_RSSI_SLOTS),
      rssiBle: u32(layout.LIVE_RSSI_BLE, layout.LIVE_RSSI_SLOTS),
    };
  }

  /**
   * Ingests what is left, closes the window and returns its counts. The module wipes the key
   * state, every hash, the sketches, the parser's result slots and the batch buffer.
   */
  endWindow(): FirmwareWindowCounts {
    if (!this.open) throw new Error('firmware: no window is open; call beginWindow() first');
    this.flush();
    // the channel counts carry on across windows (window_end zeroes the live block)
    for (const [key, off] of [
      ['wifi', layout.LIVE_WIFI_CHANNEL],
      ['ble', layout.LIVE_BLE_CHANNEL],
    ] as const) {
      const acc = this.channelsClosed[key];
      for (let i = 0; i < acc.length; i++) acc[i] += this.dv.getUint32(this.live + off + 4 * i, true);
    }
    const c = this.corridor;
    const sketched = c !== null && this.epoch !== null;
    // randomised response: CSPRNG bytes straight into the module's scratch, which window_end wipes
    if (sketched) randomFillSync(this.u8, this.exports.sketch_scratch_ptr(), this.exports.sketch_scratch_bytes());
    this.exports.window_end();
    this.open = false;
    const counts = statsOf(this.dv, this.stats, this.oversize);
    if (sketched) {
      const epoch = this.epoch!;
      const m = this.exports.sketch_bits();
      const ptr = this.exports.sketch_noisy_ptr();
      const sketch: FirmwareSketch = {
        group: c.group,
        epoch,
        epochMs: c.epochMs,
        m,
        p: Math.round(c.p * layout.RR_SCALE) / layout.RR_SCALE,
        bits: this.u8.slice(ptr, ptr + m / 8),
        keyCheck: this.keyCheck!,
      };
      counts.sketch = sketch;
      // the epoch's last window: its key is not needed any more
      if (this.windowEndMs !== undefined && this.windowEndMs >= (epoch + 1) * c.epochMs) {
        this.exports.epoch_end();
        this.epoch = null;
        this.keyCheck = null;
      }
    }
    return counts;
  }
}

/** Running counters of radio i (0 Wi-Fi, 1 BLE); frames too large for the batch buffer count as frames and rejected. */
function liveRadio(dv: DataView, stats: number, i: number, oversize: number): LiveRadioCounts {
  const base = stats + i * STAT.RADIO_STRIDE;
  return {
    frames: dv.getUint32(base + STAT.FRAMES, true) + oversize,
    accepted: dv.getUint32(base + STAT.ACCEPTED, true),
    rejected: dv.getUint32(base + STAT.REJECTED, true) + oversize,
    weak: dv.getUint32(base + STAT.WEAK, true),
  };
}

/** A closed window's counts from the stats block (written by window_end), plus the host's oversize frames. */
function statsOf(dv: DataView, stats: number, oversize = { wifi: 0, ble: 0, unsupported: 0 }): FirmwareWindowCounts {
  const radio = (i: number, extra: number): FirmwareRadioCounts => {
    const base = stats + i * STAT.RADIO_STRIDE;
    return {
      ...liveRadio(dv, stats, i, extra),
      devices: dv.getUint32(base + STAT.DEVICES, true),
      estimate: dv.getUint32(base + STAT.ESTIMATE, true),
      estimateMean: dv.getUint32(base + STAT.ESTIMATE_MILLI, true) / 1000,
      exact: dv.getUint32(base + STAT.EXACT, true) === 1,
    };
  };
  return {
    wifi: radio(0, oversize.wifi),
    ble: radio(1, oversize.ble),
    unsupported: dv.getUint32(stats + STAT.UNSUPPORTED, true) + oversize.unsupported,
  };
}

/**
 * The counts a window left in the stats block after the raw ABI's `window_end`. For tests that
 * drive the module directly (e.g. under a fixed key, for reproducible sketch outcomes); everything
 * else opens windows with `Firmware.beginWindow`, which always draws a fresh random key.
 */
export function readWindowCounts(x: FirmwareExports): FirmwareWindowCounts {
  return statsOf(new DataView(x.memory.buffer), x.stats_ptr());
}
