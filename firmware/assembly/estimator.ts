// The in-window estimate: devices present, averaged over the window.
//
// The window is cut into sub-windows of SUBWINDOW_MS (30 s) on a grid that starts at the window's
// start (window_span) or, when the host gave none, at the first record of the window. In each
// sub-window the estimator counts "entities", per radio:
//   - an address heard for the first time in the sub-window is a new entity,
//   - except (Wi-Fi, signal known) when a probe request of the same sub-window ingested before it
//     was heard at most LINK_GAP_MS (1 s) from it at a signal within LINK_DB (8 dB): then it is
//     taken as the next address of a phone's scan burst (phones that randomise draw a new address
//     per scan, or several per scan) and adds nothing.
// A sub-window counts max(entities, new addresses / FLOOR_ADDRESSES): where phones are so dense
// that their scans overlap in time and signal, the link joins unrelated phones and the entities
// stop growing with the crowd (they even fall); the floor keeps the count rising with the number of
// addresses there. FLOOR_ADDRESSES = 9: the iPhone 11 of ../shared/captures/wifi, the phone with
// the most addresses, shows 8.96 per 30-s sub-window in which it is heard.
// The estimate is the mean of these per-sub-window counts over the window. A device that keeps
// its address counts once per sub-window in which it probes; a phone that randomises counts about
// once per scan burst. One phone alone reads 0.61-1.17 on average per 1-minute window in the real
// single-phone captures (firmware/README.md), so no divisor is applied. The mean does not grow
// with the window's length. BLE addresses are not linked (advertising is continuous, so the time
// link would join unrelated devices): the BLE estimate is the mean number of distinct addresses
// per sub-window, beacons left out (index.ts, bleclass.ts).
//
// Memory: per radio a bitmap of 2^17 bits (16 KiB) marks the addresses of the current sub-window
// by 17 bits of their keyed hash (a collision makes a new address look known: with n addresses in
// a sub-window about n / 2^17 of them are missed, 0.8 % at 1,000); a table of 256 times holds,
// per dBm value, when a Wi-Fi frame at that signal was last heard in the current sub-window. Both
// are emptied at each new sub-window and wiped at window_end.

import { RSSI_UNKNOWN } from './results';

export const SUBWINDOW_MS: f64 = 30000;
export const LINK_GAP_MS: f64 = 1000;
export const LINK_DB: i32 = 8;
export const FLOOR_ADDRESSES: f64 = 9;

const SEEN_BITS: u32 = 17;
const SEEN_BYTES: u32 = 1 << (SEEN_BITS - 3);
const SEEN: usize = memory.data(<i32>(2 * SEEN_BYTES), 16);
/** Wi-Fi: per dBm value (index dBm + 128), the time (ms) of the last frame at that signal in the sub-window. */
const LAST_AT: usize = memory.data(256 * 8, 16);
/**
 * Per radio, 64 bytes: [0] f64 index of the current sub-window, [8] f64 counts summed over the
 * closed sub-windows, [16] u32 entities of the current sub-window, [20] u32 1 once a frame was
 * counted, [24] u32 new addresses of the current sub-window, [32] f64 end of the current sub-window (ms).
 */
const STATE_STRIDE: u32 = 64;
const STATE: usize = memory.data(<i32>(2 * STATE_STRIDE), 16);

let spanSet: bool = false;
let spanStart: f64 = 0;
let spanEnd: f64 = 0;
let origin: f64 = 0;
let recordSeen: bool = false;
let lastRecord: f64 = 0;
/** Start time (ms) of Wi-Fi's current sub-window: link times older than this do not count. */
let wifiSubStart: f64 = 0;

export function seenPtr(): usize {
  return SEEN;
}
export function seenBytes(): u32 {
  return 2 * SEEN_BYTES;
}
export function lastAtPtr(): usize {
  return LAST_AT;
}

function clearLastAt(): void {
  for (let i: usize = 0; i < 256; i++) store<f64>(LAST_AT + (i << 3), -Infinity);
}

/** Opens a window: no span, empty sub-window state. */
export function estimatorBegin(): void {
  estimatorWipe();
  clearLastAt();
}

/** The window's bounds (ms, the frames' clock): the grid starts at start; the mean is over end - start. */
export function estimatorSpan(start: f64, end: f64): void {
  if (!isFinite(start) || !isFinite(end) || end <= start) return;
  spanSet = true;
  spanStart = start;
  spanEnd = end;
  origin = start;
}

/** Every record of the window (counted or not) passes its time here: it places the grid. */
// @ts-ignore: decorator
@inline export function estimatorRecord(t: f64): void {
  if (!recordSeen) {
    recordSeen = true;
    if (!spanSet) origin = t;
    lastRecord = t;
  } else if (t > lastRecord) {
    lastRecord = t;
  }
}

/**
 * One counted address (not weak) of radio r (0 Wi-Fi, 1 BLE) heard at time t (ms) with signal
 * rssi (dBm, RSSI_UNKNOWN when none); hash: its keyed hash in this window.
 */
export function estimatorAddress(r: u32, hash: u64, rssi: i32, t: f64): void {
  const st = STATE + <usize>(r * STATE_STRIDE);
  const seen = SEEN + <usize>(r * SEEN_BYTES);
  if (load<u32>(st, 20) == 0) {
    store<u32>(st, 1, 20);
    enterSubwindow(r, st, t);
  } else if (t >= load<f64>(st, 32)) {
    // a new sub-window: close the current one (frames that arrive late count in the current one)
    store<f64>(st, load<f64>(st, 8) + subwindowCount(st), 8);
    store<u32>(st, 0, 16);
    store<u32>(st, 0, 24);
    memory.fill(seen, 0, SEEN_BYTES);
    enterSubwindow(r, st, t);
  }
  const bit = <u32>hash & ((1 << SEEN_BITS) - 1);
  const p = seen + <usize>(bit >>> 3);
  const m: u32 = <u32>1 << (bit & 7);
  const b: u32 = load<u8>(p);
  const isNew = (b & m) == 0;
  if (isNew) {
    store<u8>(p, b | m);
    store<u32>(st, load<u32>(st, 24) + 1, 24);
  }
  if (r == 0 && rssi != <i32>RSSI_UNKNOWN) {
    let linked = false;
    if (isNew) {
      const lo = max<i32>(rssi - LINK_DB, -128) + 128;
      const hi = min<i32>(rssi + LINK_DB, 127) + 128;
      const since = wifiSubStart;
      for (let i = lo; i <= hi; i++) {
        const at = load<f64>(LAST_AT + (<usize>i << 3));
        if (at >= since && Math.abs(t - at) <= LINK_GAP_MS) {
          linked = true;
          break;
        }
      }
      if (!linked) store<u32>(st, load<u32>(st, 16) + 1, 16);
    }
    store<f64>(LAST_AT + (<usize>(rssi + 128) << 3), t);
  } else if (isNew) {
    store<u32>(st, load<u32>(st, 16) + 1, 16);
  }
}

/** Makes the sub-window holding time t the current one of radio r (state at st). */
function enterSubwindow(r: u32, st: usize, t: f64): void {
  const s = Math.floor((t - origin) / SUBWINDOW_MS);
  if (!(s > -1e15 && s < 1e15)) {
    // NaN or absurd times: the current sub-window stays open for the rest of the window
    store<f64>(st, Infinity, 32);
    return;
  }
  store<f64>(st, s);
  store<f64>(st, origin + (s + 1) * SUBWINDOW_MS, 32);
  if (r == 0) wifiSubStart = origin + s * SUBWINDOW_MS;
}

/** The count of the current sub-window of the radio whose state is at st. */
function subwindowCount(st: usize): f64 {
  return max<f64>(<f64>load<u32>(st, 16), <f64>load<u32>(st, 24) / FLOOR_ADDRESSES);
}

/** The estimate of radio r: the sub-windows' counts, averaged over the window. */
export function estimatorResult(r: u32): f64 {
  const st = STATE + <usize>(r * STATE_STRIDE);
  const total = load<f64>(st, 8) + subwindowCount(st);
  let subs: f64;
  if (spanSet) subs = max<f64>(1, (spanEnd - spanStart) / SUBWINDOW_MS);
  else if (recordSeen) subs = Math.floor((lastRecord - origin) / SUBWINDOW_MS) + 1;
  else subs = 1;
  if (!(subs >= 1)) subs = 1;
  return total / subs;
}

/** Zeroes the bitmaps, the link times and the state (window_end; also window_begin). */
export function estimatorWipe(): void {
  memory.fill(SEEN, 0, 2 * SEEN_BYTES);
  memory.fill(LAST_AT, 0, 256 * 8);
  memory.fill(STATE, 0, 2 * STATE_STRIDE);
  spanSet = false;
  spanStart = 0;
  spanEnd = 0;
  origin = 0;
  recordSeen = false;
  lastRecord = 0;
  wifiSubStart = 0;
}
