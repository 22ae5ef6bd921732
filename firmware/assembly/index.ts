// presence firmware: the WebAssembly ABI. See firmware/README.md for the protocol.
//
// Fixed linear memory (32 pages = 2 MiB, never grown), runtime stub, nothing allocated: every
// buffer is a static memory.data region. Per window the host writes the key, calls window_begin,
// fills the batch buffer with frame records and calls ingest(count) per batch, then window_end,
// which finalises the stats and wipes the key state, every hash, the sketches, the parser's result
// slots and the batch buffer. A gateway of a corridor group also writes an epoch key and calls
// epoch_begin when an epoch starts; its windows then make a corridor sketch (sketch.ts): before
// window_end the host fills the sketch scratch with random bytes, window_end leaves the noisy
// bitmap at sketch_noisy_ptr() and wipes the true one; epoch_end wipes the epoch key.

import { parseFrame, frameRadio, frameStatus, frameWipe } from './frame';
import {
  resultsPtr, resultCount, RESULT_MAX, RADIO_WIFI, RADIO_BLE, STATUS_REJECTED, STATUS_ACCEPTED, SLOT_SIZE,
  RSSI_UNKNOWN, ADDR_BLE_PUBLIC, ADDR_WIFI_LOCAL, CHANNEL_UNKNOWN, frameChannel, ADDR_WIFI_GLOBAL, ADDR_BLE_RANDOM_STATIC,
  ADDR_BLE_RESOLVABLE,
} from './results';
import { setKey, wipeKey, hashAddress, hashAddressCall, blake2s as blake2sGeneral, keyedStatePtr } from './blake2s';
import { countHash, countWarm, countDistinct, countIsExact, countWipe, TABLE_LIMIT, TABLE_SLOTS } from './counter';
import {
  epochKeyPtr, epochBegin, epochEnd, sketchOpen, sketchAdd, sketchWindowBegin, sketchWindowEnd, sketchBits,
  sketchNoisyPtr, sketchScratchPtr, sketchTruePtr, sketchStatePtr,
} from './sketch';
import { HLL_M } from './hll';
import { captureSplit, captureInPtr, captureOutPtr, captureTimesPtr, captureOffsetsPtr, captureIfacesPtr, captureResultPtr } from './capture';
import { BLE_CLASS_BEACON } from './bleclass';
import {
  estimatorBegin, estimatorWarm, estimatorSpan, estimatorBurstAddresses, estimatorRecord, estimatorWifi, estimatorBle, estimatorResult, estimatorWipe, SUBWINDOW_MS,
  seenPtr, seenBytes, lastAtPtr, statePtr, stateBytes, chainPtr, chainBytes,
} from './estimator';
import {
  STATS_BYTES, STAT_FRAMES, STAT_ACCEPTED, STAT_REJECTED, STAT_WEAK, STAT_DEVICES, STAT_ESTIMATE, STAT_EXACT,
  STAT_ESTIMATE_MILLI, STAT_UNSUPPORTED, STAT_BATCH_ERRORS, STAT_OPEN, STATS_RADIO_STRIDE,
  RECORD_HEADER_BYTES, RECORD_CAPLEN, RECORD_TIME, FLAG_IGNORE_FCS, KEY_BYTES,
  LIVE_BYTES, LIVE_WIFI_CHANNEL, LIVE_BLE_CHANNEL, LIVE_RSSI_WIFI, LIVE_RSSI_BLE, LIVE_WIFI_CHANNELS, LIVE_BLE_CHANNELS,
  SKETCH_BITS_MAX, SKETCH_SCRATCH_PER_BIT, SKETCH_TAG_WIFI, SKETCH_TAG_BLE,
} from './layout';

// ---- memory ----------------------------------------------------------------------------------

/** Batch buffer size: records of (16-byte header + caplen padded to 8). */
const BATCH_BYTES: u32 = 256 * 1024;
const RECORD_HEADER: u32 = RECORD_HEADER_BYTES;
const BATCH: usize = memory.data(<i32>BATCH_BYTES, 16);
const KEY: usize = memory.data(<i32>KEY_BYTES, 16);

// Stats: u32 words, layout in layout.ts (shared with the host). A block per radio: Wi-Fi at 0, BLE at 32.
const STATS: usize = memory.data(<i32>STATS_BYTES, 16);
// Live block (layout.ts): frames per channel and address slots per dBm of the open window.
const LIVE: usize = memory.data(<i32>LIVE_BYTES, 16);
// @ts-ignore: decorator
@inline const R_FRAMES: usize = STAT_FRAMES;
// @ts-ignore: decorator
@inline const R_ACCEPTED: usize = STAT_ACCEPTED;
// @ts-ignore: decorator
@inline const R_REJECTED: usize = STAT_REJECTED;
// @ts-ignore: decorator
@inline const R_WEAK: usize = STAT_WEAK;
// @ts-ignore: decorator
@inline const S_UNSUPPORTED: usize = STAT_UNSUPPORTED;
// @ts-ignore: decorator
@inline const S_BATCH_ERRORS: usize = STAT_BATCH_ERRORS;
// @ts-ignore: decorator
@inline const S_OPEN: usize = STAT_OPEN;

let ignoreFcs: bool = false;
let rssiMin: i32 = -128;

// ---- window ----------------------------------------------------------------------------------

export function batch_ptr(): usize {
  return BATCH;
}

export function batch_capacity(): u32 {
  return BATCH_BYTES;
}

export function key_ptr(): usize {
  return KEY;
}

export function stats_ptr(): usize {
  return STATS;
}

/** The live block (layout.ts): counts per channel and per dBm of the open window. */
export function live_ptr(): usize {
  return LIVE;
}

/** The live-block slot of a Wi-Fi frequency in MHz: 2.4, 5 and 6 GHz channel numbers, else unknown. */
// @ts-ignore: decorator
@inline function wifiChannelSlot(mhz: i32): u32 {
  if (mhz == 2484) return 14;
  if (mhz >= 2407 && mhz <= 2482 && (mhz - 2407) % 5 == 0) return <u32>((mhz - 2407) / 5);
  if (mhz >= 5000 && mhz < 6000 && (mhz - 5000) % 5 == 0 && (mhz - 5000) / 5 < 200) return 16 + <u32>((mhz - 5000) / 5);
  if (mhz > 5950 && mhz <= 7145 && (mhz - 5950) % 5 == 0) return 216 + <u32>((mhz - 5950) / 5);
  return LIVE_WIFI_CHANNELS - 1;
}

/**
 * Opens a window with the 32 bytes at key_ptr(). The key is compressed into the chain value after
 * the key block and the key bytes are wiped at once. flags bit 0: ignore Wi-Fi FCS failures.
 * Slots whose RSSI is known and below rssiMinDbm count as weak, not as devices (-128: no limit).
 */
export function window_begin(flags: u32, rssiMinDbm: i32): void {
  countWipe();
  estimatorBegin(rssiMinDbm);
  memory.fill(STATS, 0, STATS_BYTES);
  memory.fill(LIVE, 0, LIVE_BYTES);
  setKey(KEY);
  memory.fill(KEY, 0, KEY_BYTES);
  sketchWindowBegin();
  ignoreFcs = (flags & FLAG_IGNORE_FCS) != 0;
  rssiMin = rssiMinDbm;
  store<u32>(STATS + S_OPEN, 1);
}

// @ts-ignore: decorator
@inline function bump(p: usize, by: u32): void {
  store<u32>(p, load<u32>(p) + by);
}

/**
 * Whether an address enters the corridor sketch: addresses a device keeps for longer than a scan
 * (Wi-Fi globally unique, BLE public, random static, resolvable private), so that two gateways can
 * see the same one; not per-scan random Wi-Fi, BLE non-resolvable or reserved addresses, nor
 * beacons (fixed equipment, not traffic).
 */
// @ts-ignore: decorator
@inline function entersSketch(radio: u32, kind: u32, beacon: bool): bool {
  if (beacon) return false;
  if (radio == RADIO_WIFI) return kind == <u32>ADDR_WIFI_GLOBAL;
  return kind == <u32>ADDR_BLE_PUBLIC || kind == <u32>ADDR_BLE_RANDOM_STATIC || kind == <u32>ADDR_BLE_RESOLVABLE;
}

/** Sets the sketch bit of an address (octets 0..3 and 4..5 as LE words, display order) when its class enters. */
// @ts-ignore: decorator
@inline function sketchSlot(radio: u32, kind: u32, beacon: bool, a0123: u32, a45: u32): void {
  if (!entersSketch(radio, kind, beacon)) return;
  sketchAdd(radio == RADIO_WIFI ? SKETCH_TAG_WIFI : SKETCH_TAG_BLE, a0123, a45);
}

// The counted address slots of a batch go through a queue, in frame order: parsing a frame only
// queues its slots (after the live block's signal slot and the weak test), then the queued
// addresses are hashed together in one tight loop (as the hashing ceiling runs: between two
// frames' hashes the parser's work kept the keyed hash from running at that speed), then counted
// and estimated in the same order as they were queued (their table slots and estimator bitmap
// bytes loaded a few entries ahead). The tables, the sketch and the estimate see exactly the calls
// they would see frame by frame (only the parser, the stats, the live block and the record times
// of the estimate's grid run ahead, and none of the calls reads what they change). The queue
// holds addresses and their hashes only during one ingest call: its entries are zeroed after
// every flush.
/** Entries of the queue: a flush happens before a frame whose RESULT_MAX slots might not fit. */
// @ts-ignore: decorator
@inline const QUEUE_ENTRIES: u32 = 512;
// @ts-ignore: decorator
@inline const QUEUE_ENTRY: u32 = 32;
/**
 * Per entry, 32 bytes: [0] u32 m0 (radio, address-kind group, address octets 0..1), [4] u32 m1
 * (octets 2..5), [8] f64 capture time, [16] u64 keyed hash (written by the flush), [24] i32 signal
 * (dBm, RSSI_UNKNOWN when none), [28] u8 address kind, [29] u8 1 for a beacon, [30] u8 radio index.
 */
const QUEUE: usize = memory.data(<i32>(QUEUE_ENTRIES * QUEUE_ENTRY), 16);
let queued: u32 = 0;

/** The live block's signal slot of result slot `slot`, then (unless weak) queues it for counting. */
// @ts-ignore: decorator
@inline function queueSlot(radio: u32, r: u32, slot: usize, stats: usize, t: f64): void {
  const rssi = <i32>load<i8>(slot, 7);
  const bucket: u32 = rssi == <i32>RSSI_UNKNOWN ? 0 : rssi >= 0 ? 128 : <u32>(rssi + 128);
  bump(LIVE + (r == 0 ? LIVE_RSSI_WIFI : LIVE_RSSI_BLE) + (<usize>bucket << 2), 1);
  if (rssi != <i32>RSSI_UNKNOWN && rssi < rssiMin) {
    bump(stats + R_WEAK, 1);
    return;
  }
  const kind = load<u8>(slot, 6);
  const group: u32 = radio == RADIO_BLE && kind != ADDR_BLE_PUBLIC ? 1 : 0;
  const e = QUEUE + <usize>(queued * QUEUE_ENTRY);
  // message: radio, address-kind group, address (6 bytes, display order)
  store<u32>(e, radio | (group << 8) | (<u32>load<u16>(slot, 0) << 16));
  store<u32>(e, load<u32>(slot, 2), 4);
  store<f64>(e, t, 8);
  store<i32>(e, rssi, 24);
  store<u8>(e, kind, 28);
  store<u8>(e, radio == RADIO_BLE && load<u8>(slot, 10) == BLE_CLASS_BEACON ? 1 : 0, 29);
  store<u8>(e, <u8>r, 30);
  queued++;
}

// @ts-ignore: decorator
@inline const WARM_CHUNK: usize = 8;

/** Loads the first table slot and the estimator bitmap bytes of the entries in [from, to). */
// @ts-ignore: decorator
@inline function warmEntries(from: usize, to: usize): void {
  for (let e = from; e < to; e += QUEUE_ENTRY) {
    const r = <u32>load<u8>(e, 30);
    const h = load<u64>(e, 16);
    countWarm(r, h);
    if (load<u8>(e, 29) == 0) estimatorWarm(r, h);
  }
}

/** Hashes, counts and estimates the queued entries in order, then zeroes them. */
function flushQueue(): void {
  const n = queued;
  if (n == 0) return;
  const end = QUEUE + <usize>(n * QUEUE_ENTRY);
  for (let e = QUEUE; e < end; e += QUEUE_ENTRY) store<u64>(e, hashAddress(load<u32>(e), load<u32>(e, 4)), 16);
  // Each entry's first table slot and estimator bitmap bytes are loaded (and dropped) a chunk of
  // entries ahead of their turn, back to back, so that their cache misses overlap.
  warmEntries(QUEUE, min<usize>(end, QUEUE + WARM_CHUNK * QUEUE_ENTRY));
  for (let e = QUEUE; e < end; e += QUEUE_ENTRY) {
    if (((e - QUEUE) & (WARM_CHUNK * QUEUE_ENTRY - 1)) == 0) {
      const next = e + WARM_CHUNK * QUEUE_ENTRY;
      if (next < end) warmEntries(next, min<usize>(end, next + WARM_CHUNK * QUEUE_ENTRY));
    }
    const r = <u32>load<u8>(e, 30);
    const radio = r + 1;
    const h = load<u64>(e, 16);
    const kind = load<u8>(e, 28);
    const beacon = load<u8>(e, 29) != 0;
    const t = load<f64>(e, 8);
    // the corridor sketch: once per device and window (its first frame), matchable classes only
    if (countHash(r, h) && sketchOpen) {
      const m0 = load<u32>(e);
      const m1 = load<u32>(e, 4);
      sketchSlot(radio, kind, beacon, (m0 >>> 16) | (m1 << 16), m1 >>> 16);
    }
    // beacons (iBeacon, AltBeacon, Eddystone) are fixed equipment: a device, but not in the estimate
    if (beacon) continue;
    if (r == 0) estimatorWifi(h, load<i32>(e, 24), t, kind == ADDR_WIFI_LOCAL);
    else estimatorBle(h, t);
  }
  memory.fill(QUEUE, 0, n * QUEUE_ENTRY);
  queued = 0;
}

/**
 * Optional, after window_begin: the window's bounds in ms since the epoch, in the clock of the
 * records' capture times. The estimate's sub-window grid starts at startMs and its mean is taken
 * over endMs - startMs. Without it the grid starts at the window's first record and the mean is
 * over the sub-windows up to its last record. Ignored unless both are finite and endMs > startMs.
 */
export function window_span(startMs: f64, endMs: f64): void {
  if (load<u32>(STATS + S_OPEN) == 0) return;
  estimatorSpan(startMs, endMs);
}

/**
 * Optional, after window_begin: the addresses of one scan burst this receiver hears (1 to 64; 7
 * unless set, window_begin resets it), the divisor of the Wi-Fi estimate's floor (a 10-s
 * sub-window counts at least its new randomised addresses / n). Returns 1 when taken, 0 when
 * ignored (no window open, or n not finite or outside 1..64).
 */
export function window_burst_addresses(n: f64): u32 {
  if (load<u32>(STATS + S_OPEN) == 0) return 0;
  return estimatorBurstAddresses(n) ? 1 : 0;
}

/** Sub-window length of the estimate in ms. */
export function subwindow_ms(): f64 {
  return SUBWINDOW_MS;
}

/**
 * Ingests the first `count` records of the batch buffer. Returns the number ingested: fewer when a
 * record header or its caplen would run past the batch end (counted in the batch-error stat).
 */
export function ingest(count: u32): u32 {
  if (load<u32>(STATS + S_OPEN) == 0) return 0;
  let off: u32 = 0;
  let n: u32 = 0;
  const fcs = ignoreFcs;
  while (n < count) {
    if (BATCH_BYTES - off < RECORD_HEADER) {
      bump(STATS + S_BATCH_ERRORS, 1);
      break;
    }
    const rec = BATCH + off;
    const linkType = load<u32>(rec); // unmasked: parseFrame masks it and reads the FCS-length bits
    const len = load<u32>(rec, RECORD_CAPLEN);
    if (len > BATCH_BYTES - off - RECORD_HEADER) {
      bump(STATS + S_BATCH_ERRORS, 1);
      break;
    }
    const t = load<f64>(rec, RECORD_TIME);
    if (queued > QUEUE_ENTRIES - RESULT_MAX) flushQueue();
    estimatorRecord(t);
    parseFrame(linkType, rec + RECORD_HEADER, len, fcs);
    const radio = frameRadio;
    if (radio == RADIO_WIFI || radio == RADIO_BLE) {
      const r: u32 = radio == RADIO_WIFI ? 0 : 1;
      const stats = STATS + <usize>(r * STATS_RADIO_STRIDE);
      bump(stats + R_FRAMES, 1);
      const ch = frameChannel;
      const chSlot: u32 =
        radio == RADIO_WIFI
          ? (ch == CHANNEL_UNKNOWN ? LIVE_WIFI_CHANNELS - 1 : wifiChannelSlot(ch))
          : (ch >= 0 && ch < 40 ? <u32>ch : LIVE_BLE_CHANNELS - 1);
      bump(LIVE + (radio == RADIO_WIFI ? LIVE_WIFI_CHANNEL : LIVE_BLE_CHANNEL) + (<usize>chSlot << 2), 1);
      const status = frameStatus;
      if (status == STATUS_ACCEPTED) {
        const k = resultCount;
        bump(stats + R_ACCEPTED, k);
        const slots = resultsPtr();
        for (let i: u32 = 0; i < k; i++) queueSlot(radio, r, slots + <usize>i * SLOT_SIZE, stats, t);
      } else if (status == STATUS_REJECTED) {
        bump(stats + R_REJECTED, 1);
      }
    } else {
      bump(STATS + S_UNSUPPORTED, 1);
    }
    off += RECORD_HEADER + ((len + 7) & ~7);
    n++;
    if (off > BATCH_BYTES) break; // padding ran past the end: nothing more fits
  }
  flushQueue();
  return n;
}

/**
 * Closes the window: writes devices, estimate and exact per radio into the stats, then wipes the
 * key, the keyed state, every hash, both sketches, the parser's result slots and the batch buffer.
 * Under an epoch key it first writes the noisy corridor sketch (randomised response from the
 * scratch the host filled) to sketch_noisy_ptr() and wipes the true bitmap and the scratch.
 */
export function window_end(): void {
  sketchWindowEnd();
  for (let r: u32 = 0; r < 2; r++) {
    const stats = STATS + <usize>(r * STATS_RADIO_STRIDE);
    const devices = <u32>Math.round(countDistinct(r));
    const estimate = estimatorResult(r);
    store<u32>(stats + STAT_DEVICES, devices);
    store<u32>(stats + STAT_ESTIMATE, <u32>Math.round(estimate));
    store<u32>(stats + STAT_ESTIMATE_MILLI, <u32>Math.round(estimate * 1000));
    store<u32>(stats + STAT_EXACT, countIsExact(r) ? 1 : 0);
  }
  store<u32>(STATS + S_OPEN, 0);
  memory.fill(LIVE, 0, LIVE_BYTES);
  memory.fill(KEY, 0, KEY_BYTES);
  wipeKey();
  countWipe();
  estimatorWipe();
  frameWipe();
  memory.fill(QUEUE, 0, QUEUE_ENTRIES * QUEUE_ENTRY); // zeroed after every flush already
  queued = 0;
  memory.fill(BATCH, 0, BATCH_BYTES);
  ignoreFcs = false;
  rssiMin = -128;
}

// ---- corridor epoch ----------------------------------------------------------------------------

/** Where the host writes the 32-byte epoch key before epoch_begin. */
export function epoch_key_ptr(): usize {
  return epochKeyPtr();
}

/**
 * Takes the epoch key at epoch_key_ptr() (wiping those bytes in every case): windows opened from
 * now on make a sketch of m bits (a power of two, 8 to sketch_bits_max()) with randomised-response
 * threshold t (0 to 65536). Returns 1, or 0 for m or t out of range (then there is no epoch).
 * Any previous epoch is ended first.
 */
export function epoch_begin(m: u32, t: u32): u32 {
  return epochBegin(m, t) ? 1 : 0;
}

/** Ends the epoch: wipes the epoch key (slot and chain value), both bitmaps and the scratch. */
export function epoch_end(): void {
  epochEnd();
}

/** Bits of the sketch of the current epoch (0: no epoch). */
export function sketch_bits(): u32 {
  return sketchBits();
}
export function sketch_bits_max(): u32 {
  return SKETCH_BITS_MAX;
}
/** The noisy bitmap of the last window closed under an epoch key (sketch_bits() / 8 bytes). */
export function sketch_noisy_ptr(): usize {
  return sketchNoisyPtr();
}
/** Where the host writes sketch_bits() * 4 random bytes before window_end. */
export function sketch_scratch_ptr(): usize {
  return sketchScratchPtr();
}
export function sketch_scratch_bytes(): u32 {
  return sketchBits() * SKETCH_SCRATCH_PER_BIT;
}
/** The true bitmap and the epoch key's chain value (for the wipe test). */
export function sketch_true_ptr(): usize {
  return sketchTruePtr();
}
export function sketch_state_ptr(): usize {
  return sketchStatePtr();
}

// ---- facts for the host ----------------------------------------------------------------------

/** Distinct devices a radio's exact table holds before switching to the sketch. */
export function table_limit(): u32 {
  return TABLE_LIMIT;
}

export function table_slots(): u32 {
  return TABLE_SLOTS;
}

export function sketch_registers(): u32 {
  return HLL_M;
}

/** End of the static data (bytes): everything the module uses lies below this. */
export function static_end(): usize {
  return __heap_base;
}

// ---- capture splitting (capture.ts) ----------------------------------------------------------

export function capture_in_ptr(): usize {
  return captureInPtr();
}
export function capture_out_ptr(): usize {
  return captureOutPtr();
}
export function capture_times_ptr(): usize {
  return captureTimesPtr();
}
export function capture_offsets_ptr(): usize {
  return captureOffsetsPtr();
}
export function capture_ifaces_ptr(): usize {
  return captureIfacesPtr();
}
export function capture_result_ptr(): usize {
  return captureResultPtr();
}
export function capture_split(format: u32, len: u32, base: u32, little: bool, linkType: u32, pcapHeader: u32, nanos: bool, interfaces: u32): u32 {
  return captureSplit(format, len, base, little, linkType, pcapHeader, nanos, interfaces);
}

// ---- test and bench entries ------------------------------------------------------------------
// They check their pointers too: no export traps, whatever it is given.

/** True when [ptr, ptr + len) lies inside linear memory. */
function inMemory(ptr: usize, len: u64): bool {
  return <u64>ptr + len <= (<u64>memory.size() << 16);
}

/** General keyed BLAKE2s (RFC 7693) over linear memory; false for an out-of-range length. */
export function blake2s(keyPtr: usize, keyLen: u32, msgPtr: usize, msgLen: u32, outPtr: usize, outLen: u32): bool {
  if (!inMemory(keyPtr, keyLen) || !inMemory(msgPtr, msgLen) || !inMemory(outPtr, outLen)) return false;
  return blake2sGeneral(keyPtr, keyLen, msgPtr, msgLen, outPtr, outLen);
}

/** The window's 8-byte keyed hash of an address (6 bytes at ptr) as a u64 (digest bytes LE). */
export function hash_address(radio: u32, group: u32, ptr: usize): u64 {
  if (!inMemory(ptr, 6)) return 0;
  return hashAddress(radio | (group << 8) | (<u32>load<u16>(ptr, 0) << 16), load<u32>(ptr, 2));
}

/**
 * Counts `n` addresses (6 bytes each, packed at ptr) of one radio and address kind into the
 * window, as if they were accepted result slots with unknown RSSI (not beacons): counter, estimate
 * and, under an epoch key, the corridor sketch. For tests and the bench.
 */
export function count_addresses(radio: u32, kind: u32, ptr: usize, n: u32): void {
  if (load<u32>(STATS + S_OPEN) == 0 || (radio != RADIO_WIFI && radio != RADIO_BLE)) return;
  if (!inMemory(ptr, <u64>n * 6)) return;
  const r: u32 = radio == RADIO_WIFI ? 0 : 1;
  const group: u32 = radio == RADIO_BLE && kind != <u32>ADDR_BLE_PUBLIC ? 1 : 0;
  for (let i: u32 = 0; i < n; i++) {
    const a = ptr + <usize>i * 6;
    const h = hashAddressCall(radio | (group << 8) | (<u32>load<u16>(a, 0) << 16), load<u32>(a, 2));
    if (countHash(r, h) && sketchOpen) sketchSlot(radio, kind, false, load<u32>(a), <u32>load<u16>(a, 4));
    if (r == 0) estimatorWifi(h, <i32>RSSI_UNKNOWN, 0, kind == <u32>ADDR_WIFI_LOCAL);
    else estimatorBle(h, 0);
  }
}

/**
 * The hashing ceiling: keyed hash of `n` addresses (8-byte stride at ptr) in a loop, nothing else.
 * Returns an XOR of the digests so the work cannot be optimised away.
 */
export function hash_addresses(ptr: usize, n: u32): u32 {
  if (!inMemory(ptr, <u64>n * 8)) return 0;
  let acc: u64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const a = ptr + (<usize>i << 3);
    acc ^= hashAddress(RADIO_WIFI | (<u32>load<u16>(a, 0) << 16), load<u32>(a, 2));
  }
  return <u32>acc ^ <u32>(acc >> 32);
}

/** Where ingest queues the counted address slots of a batch (for the wipe test). */
export function count_queue_ptr(): usize {
  return QUEUE;
}
export function count_queue_bytes(): u32 {
  return QUEUE_ENTRIES * QUEUE_ENTRY;
}

export function keyed_state_ptr(): usize {
  return keyedStatePtr();
}

/** Where the estimator keeps its per-sub-window address bitmaps (both radios) and its link times (for the wipe test). */
export function estimator_seen_ptr(): usize {
  return seenPtr();
}
export function estimator_seen_bytes(): u32 {
  return seenBytes();
}
export function estimator_link_times_ptr(): usize {
  return lastAtPtr();
}
/** Where the estimator keeps its counts and sub-window ends (for the wipe test). */
export function estimator_state_ptr(): usize {
  return statePtr();
}
export function estimator_state_bytes(): u32 {
  return stateBytes();
}
/** Where the estimator keeps, per dBm value, the time and hash of the last Wi-Fi frame (for the wipe test). */
export function estimator_chain_ptr(): usize {
  return chainPtr();
}
export function estimator_chain_bytes(): u32 {
  return chainBytes();
}
