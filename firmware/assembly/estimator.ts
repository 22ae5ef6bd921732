// The in-window estimate: devices present, averaged over the window.
//
// Sub-windows lie on a grid that starts at the window's start (window_span) or, when the host gave
// none, at the first record of the window. Wi-Fi addresses are split by their locally administered
// (LA) bit, because the two kinds behave differently on the air:
//
//   - A device that keeps its address (LA bit clear: desktops, laptops, printers, older phones)
//     counts once per FIXED_MS (60 s) sub-window in which it is heard, so it counts 1 whatever the
//     window length (desktops probe about once a minute). It counts only when heard FIXED_MARGIN_DB
//     (5 dB) above the window's RSSI gate: fixed equipment at the edge of the range is left out.
//   - A phone that randomises (LA bit set) draws a new address for every scan burst, or several
//     per burst. Per WIFI_SUB_MS (10 s) sub-window it counts once per burst: an address new in the
//     sub-window is a new burst unless a Wi-Fi frame of the same sub-window that is not fixed came at
//     most LINK_GAP_MS (1 s) from it at a signal within LINK_DB (8 dB) (then it is the next address of
//     that burst), or it is chained (below). A 10-s sub-window counts max(bursts, new addresses /
//     the addresses of one burst this receiver hears, window_burst_addresses; default
//     WIFI_FLOOR_ADDRESSES): where phones are dense their scans overlap in time and signal and the
//     link joins unrelated phones; the floor keeps the count rising with the addresses heard
//     (7: the iPhone 11 of ../shared/captures/wifi, heard by three sniffers fixed on channels 1, 6
//     and 11, shows 7.3 addresses per 10-s sub-window in which it is heard; a radio hopping over
//     channels hears fewer of each burst, so the host passes its own figure).
//   - The LA bit alone is not trusted: a phone's burst of random addresses can carry addresses
//     whose LA bit is clear (anonymised captures randomise it). An address new in its sub-windows
//     is chained when another address was heard at most CHAIN_MS (300 ms) before it, in the same
//     10-s sub-window, at a signal within LINK_DB (a table keeps, per dBm value, the time and hash
//     of the last Wi-Fi frame at that signal): a scan burst runs through its addresses every
//     20-100 ms, while fixed devices probe alone. A chained address is never fixed; and a fixed
//     device whose frame it is chained to is moved out of the fixed count into the bursts (it
//     started that burst). Another address heard in between cannot break a chain.
//
// The Wi-Fi estimate is (fixed counts of all 60-s sub-windows) / (60-s sub-windows in the window)
// + (burst counts of all 10-s sub-windows) / (10-s sub-windows in the window); each divisor is
// fractional when the window is not a multiple, and at least 1. Neither grows with the window.
// BLE addresses are not linked (advertising is continuous, so the time link would join unrelated
// devices): the BLE estimate is the mean number of distinct addresses per SUBWINDOW_MS (30 s)
// sub-window, beacons left out (index.ts, bleclass.ts).
//
// Memory: three bitmaps of 2^17 bits (16 KiB each) mark addresses by 17 bits of their keyed hash:
// Wi-Fi bursts (current 10-s sub-window), BLE (current 30-s sub-window), Wi-Fi fixed (current 60-s
// sub-window); a collision makes a new address look known (with n addresses in a sub-window about
// n / 2^18 share a bit: 0.4 % at 1,000, 6 % at 16,000), so the counts that are set bits (BLE
// addresses, Wi-Fi fixed devices and the floor's new addresses) are read through linear counting
// (distinctOf), which puts the hidden ones back on average. A table of 256 times holds, per dBm value, when a Wi-Fi
// frame of the bursts at that signal was last heard in the current 10-s sub-window; the chain
// table holds, per dBm value, the time and hash of the last Wi-Fi frame at that signal and whether
// it added a fixed device. The state block keeps the counts and sub-window ends. All are emptied
// at each new sub-window of their own (or ignored once older than it) and wiped at window_end.

import { RSSI_UNKNOWN } from './results';

/** BLE sub-window; also what subwindow_ms() reports. */
export const SUBWINDOW_MS: f64 = 30000;
/** Wi-Fi sub-window of the bursts of randomising phones. */
export const WIFI_SUB_MS: f64 = 10000;
/** Wi-Fi sub-window of the devices that keep their address. */
export const FIXED_MS: f64 = 60000;
export const LINK_GAP_MS: f64 = 1000;
export const LINK_DB: i32 = 8;
export const CHAIN_MS: f64 = 300;
export const FIXED_MARGIN_DB: i32 = 5;
/** Default addresses of one burst the receiver hears (window_burst_addresses changes it per window). */
export const WIFI_FLOOR_ADDRESSES: f64 = 7;
/** Accepted range of window_burst_addresses. */
export const BURST_ADDRESSES_MIN: f64 = 1;
export const BURST_ADDRESSES_MAX: f64 = 64;

const SEEN_BITS: u32 = 17;
const SEEN_BYTES: u32 = 1 << (SEEN_BITS - 3);
/** Bitmaps: [0] Wi-Fi bursts, [1] BLE, [2] Wi-Fi fixed. */
const SEEN: usize = memory.data(<i32>(3 * SEEN_BYTES), 16);
const FIXED_SEEN: usize = SEEN + <usize>(2 * SEEN_BYTES);
/** Wi-Fi: per dBm value (index dBm + 128), the time (ms) of the last burst frame at that signal in the sub-window. */
const LAST_AT: usize = memory.data(256 * 8, 16);
/** Wi-Fi chain table: per dBm value (index dBm + 128), 16 bytes [0] f64 time, [8] u64 hash of the last frame at that signal; then 256 bytes: 1 when that frame added a fixed device. */
const CHAIN_BYTES: u32 = 256 * 16 + 256;
/** (16 bytes after the fixed marks are never written: the range test below reads 17 marks from any slot.) */
const CHAIN: usize = memory.data(<i32>(CHAIN_BYTES + 16), 16);
const CHAIN_FIXED: usize = CHAIN + 256 * 16;
/**
 * Per radio, 64 bytes: [0] f64 index of the current sub-window, [8] f64 counts summed over the
 * closed sub-windows, [16] u32 entities (bursts) of the current sub-window, [20] u32 1 once a frame
 * was counted, [24] u32 new addresses of the current sub-window, [32] f64 end of the current
 * sub-window (ms). (The Wi-Fi fixed part's counts are module globals, zeroed with the rest.)
 */
const STATE_STRIDE: u32 = 64;
const STATE: usize = memory.data(<i32>(2 * STATE_STRIDE), 16);

let spanSet: bool = false;
let spanStart: f64 = 0;
let spanEnd: f64 = 0;
let origin: f64 = 0;
let recordSeen: bool = false;
let lastRecord: f64 = 0;
/** Start time (ms) of Wi-Fi's current 10-s sub-window: link times older than this do not count. */
let wifiSubStart: f64 = 0;
/** Signal (dBm) a fixed Wi-Fi address needs to count: the window's gate + FIXED_MARGIN_DB. */
let fixedMin: i32 = -128;
/** The floor's divisor of the open window (estimatorBurstAddresses). */
let burstAddresses: f64 = WIFI_FLOOR_ADDRESSES;
/** Wi-Fi fixed part: end (ms) of the current 60-s sub-window, its count, the closed sub-windows' sum. */
let fixedEnd: f64 = -Infinity;
let fixedCount: u32 = 0;
let fixedTotal: f64 = 0;


export function seenPtr(): usize {
  return SEEN;
}
export function seenBytes(): u32 {
  return 3 * SEEN_BYTES;
}
export function lastAtPtr(): usize {
  return LAST_AT;
}
export function statePtr(): usize {
  return STATE;
}
export function stateBytes(): u32 {
  return 2 * STATE_STRIDE;
}
export function chainPtr(): usize {
  return CHAIN;
}
export function chainBytes(): u32 {
  return CHAIN_BYTES;
}

function clearLastAt(): void {
  for (let i: usize = 0; i < 256; i++) {
    store<f64>(LAST_AT + (i << 3), -Infinity);
    store<f64>(CHAIN + (i << 4), -Infinity);
  }
}

/** Opens a window whose RSSI gate is rssiMin (dBm; -128: none): no span, empty sub-window state. */
export function estimatorBegin(rssiMin: i32): void {
  estimatorWipe();
  clearLastAt();
  fixedMin = rssiMin + FIXED_MARGIN_DB;
  burstAddresses = WIFI_FLOOR_ADDRESSES;
}

/**
 * The floor's divisor for this window: addresses of one scan burst that this receiver hears (it
 * depends on how it listens). Ignored unless finite and within BURST_ADDRESSES_MIN..MAX.
 */
export function estimatorBurstAddresses(n: f64): bool {
  if (!isFinite(n) || n < BURST_ADDRESSES_MIN || n > BURST_ADDRESSES_MAX) return false;
  burstAddresses = n;
  return true;
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

// @ts-ignore: decorator
@inline function bitOf(hash: u64): u32 {
  return <u32>hash & ((1 << SEEN_BITS) - 1);
}
// @ts-ignore: decorator
@inline function testBit(map: usize, bit: u32): bool {
  return (load<u8>(map + <usize>(bit >>> 3)) & (<u32>1 << (bit & 7))) != 0;
}
// @ts-ignore: decorator
@inline function setBit(map: usize, bit: u32): void {
  const p = map + <usize>(bit >>> 3);
  store<u8>(p, load<u8>(p) | (<u32>1 << (bit & 7)));
}
// @ts-ignore: decorator
@inline function clearBit(map: usize, bit: u32): void {
  const p = map + <usize>(bit >>> 3);
  store<u8>(p, load<u8>(p) & ~(<u32>1 << (bit & 7)));
}

/**
 * Loads the bitmap bytes that estimatorWifi (r = 0: the bursts' and the fixed devices' maps) or
 * estimatorBle (r = 1) will test for this hash, and drops them: issued ahead, they bring the bytes
 * into cache. Reads only.
 */
// @ts-ignore: decorator
@inline export function estimatorWarm(r: u32, hash: u64): void {
  const byte = <usize>(bitOf(hash) >>> 3);
  load<u8>(SEEN + (<usize>r << (SEEN_BITS - 3)) + byte);
  if (r == 0) load<u8>(FIXED_SEEN + byte);
}

/** Length of the (burst) sub-window of radio r. */
// @ts-ignore: decorator
@inline function subMs(r: u32): f64 {
  return r == 0 ? WIFI_SUB_MS : SUBWINDOW_MS;
}

/** Moves radio r's (burst) sub-window, and for Wi-Fi the fixed one, on to those holding t when t is past them. */
function advanceSlow(r: u32, st: usize, seen: usize, t: f64): void {
  if (load<u32>(st, 20) == 0) {
    store<u32>(st, 1, 20);
    enterSubwindow(r, st, t);
    if (r == 0) enterFixed(t);
    return;
  }
  if (t >= load<f64>(st, 32)) {
    // a new sub-window: close the current one (frames that arrive late count in the current one)
    store<f64>(st, load<f64>(st, 8) + subwindowCount(r, st), 8);
    store<u32>(st, 0, 16);
    store<u32>(st, 0, 24);
    memory.fill(seen, 0, SEEN_BYTES);
    enterSubwindow(r, st, t);
  }
  if (r == 0 && t >= fixedEnd) {
    fixedTotal += distinctOf(<f64>fixedCount);
    fixedCount = 0;
    memory.fill(CHAIN_FIXED, 0, 256); // a fixed device of the closed sub-window is not moved any more
    memory.fill(FIXED_SEEN, 0, SEEN_BYTES);
    enterFixed(t);
  }
}

/** One counted BLE address (not weak, not a beacon) heard at time t (ms); hash: its keyed hash in this window. */
export function estimatorBle(hash: u64, t: f64): void {
  const st = STATE + <usize>STATE_STRIDE;
  const seen = SEEN + <usize>SEEN_BYTES;
  if (t >= load<f64>(st, 32)) advanceSlow(1, st, seen, t);
  const bit = bitOf(hash);
  if (!testBit(seen, bit)) {
    setBit(seen, bit);
    store<u32>(st, load<u32>(st, 24) + 1, 24);
    store<u32>(st, load<u32>(st, 16) + 1, 16);
  }
}

/**
 * One counted Wi-Fi address (not weak) heard at time t (ms) with signal rssi (dBm, RSSI_UNKNOWN
 * when none); hash: its keyed hash in this window; local: its locally administered bit.
 */
export function estimatorWifi(hash: u64, rssi: i32, t: f64, local: bool): void {
  const st = STATE;
  const seen = SEEN;
  const known = rssi != <i32>RSSI_UNKNOWN;
  // A fixed address below the fixed gate takes no part at all.
  if (<bool>((<i32>!local) & (<i32>known) & (<i32>(rssi < fixedMin)))) return;
  if (t >= load<f64>(st, 32) || t >= fixedEnd) advanceSlow(0, st, seen, t);
  const bit = bitOf(hash);
  const inBursts = testBit(seen, bit);
  const inFixed = testBit(FIXED_SEEN, bit);
  // chained: an address new in its sub-windows that another address's frame preceded by at most
  // CHAIN_MS, in this 10-s sub-window, within LINK_DB; a fixed device counted by such a frame
  // started the burst and is moved to the bursts
  let chained = false;
  if (known && !inBursts && !inFixed) {
    const lo = max<i32>(rssi - LINK_DB, -128) + 128;
    const hi = min<i32>(rssi + LINK_DB, 127) + 128;
    const since = wifiSubStart;
    // No fixed mark among the 17 marks from lo on (a superset of lo..hi): finding one chaining frame
    // is all the scan can do, so it stops there. Otherwise every chaining frame is visited.
    const marks = CHAIN_FIXED + <usize>lo;
    const anyFixed = (load<u64>(marks) | load<u64>(marks, 8) | <u64>load<u8>(marks, 16)) != 0;
    for (let i = lo; i <= hi; i++) {
      const e = CHAIN + (<usize>i << 4);
      const at = load<f64>(e);
      // (without short-circuits: these tests are as good as random, so branches would mispredict)
      if (<bool>((<i32>(at >= since)) & (<i32>(t - at <= CHAIN_MS)) & (<i32>(load<u64>(e, 8) != hash)))) {
        chained = true;
        if (load<u8>(CHAIN_FIXED + <usize>i) != 0) {
          store<u8>(CHAIN_FIXED + <usize>i, 0);
          const pbit = bitOf(load<u64>(e, 8));
          fixedCount--;
          clearBit(FIXED_SEEN, pbit);
          if (!testBit(seen, pbit)) {
            setBit(seen, pbit);
            store<u32>(st, load<u32>(st, 24) + 1, 24);
            store<u32>(st, load<u32>(st, 16) + 1, 16);
          }
        }
        if (!anyFixed) break;
      }
    }
  }
  let addedFixed = false;
  if (<bool>((<i32>!local) & (<i32>!chained) & (<i32>!inBursts))) {
    if (!inFixed) {
      setBit(FIXED_SEEN, bit);
      fixedCount++;
      addedFixed = true;
    }
  } else if (local || !inFixed) {
    // a burst address (a fixed device heard again while chained to a neighbour adds nothing)
    if (!inBursts) {
      setBit(seen, bit);
      store<u32>(st, load<u32>(st, 24) + 1, 24);
      let linked = chained;
      if (!linked && known) {
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
      }
      if (!linked) store<u32>(st, load<u32>(st, 16) + 1, 16);
    }
    if (known) store<f64>(LAST_AT + (<usize>(rssi + 128) << 3), t);
  }
  if (known) {
    const e = CHAIN + (<usize>(rssi + 128) << 4);
    store<f64>(e, t);
    store<u64>(e, hash, 8);
    store<u8>(CHAIN_FIXED + <usize>(rssi + 128), <u8>addedFixed);
  }
}

/** The grid index of time t for sub-windows of length len, or NaN for absurd times. */
function gridIndex(t: f64, len: f64): f64 {
  const s = Math.floor((t - origin) / len);
  return s > -1e15 && s < 1e15 ? s : NaN;
}

/** Makes the sub-window holding time t the current one of radio r (state at st). */
function enterSubwindow(r: u32, st: usize, t: f64): void {
  const len = subMs(r);
  const s = gridIndex(t, len);
  if (isNaN(s)) {
    // NaN or absurd times: the current sub-window stays open for the rest of the window
    store<f64>(st, Infinity, 32);
    return;
  }
  store<f64>(st, s);
  store<f64>(st, origin + (s + 1) * len, 32);
  if (r == 0) wifiSubStart = origin + s * len;
}

/** Makes the fixed sub-window holding time t the current one. */
function enterFixed(t: f64): void {
  const s = gridIndex(t, FIXED_MS);
  fixedEnd = isNaN(s) ? Infinity : origin + (s + 1) * FIXED_MS;
}

/**
 * Distinct addresses behind `bits` set bits of a 2^SEEN_BITS-bit map (linear counting, Whang et
 * al. 1990): n addresses hashed into m bits set m * (1 - e^(-n / m)) of them on average, so n =
 * -m * ln(1 - bits / m). Two addresses that share a bit count once in the map; this puts back the
 * ones hidden so (+0.4 % at 1,000 bits, +6.6 % at 16,000: a square of 30,000 people on BLE). A
 * full map reads m * ln(m), the most it can tell.
 */
export function distinctOf(bits: f64): f64 {
  const m = <f64>(1 << SEEN_BITS);
  if (bits <= 0) return 0;
  if (bits >= m) return m * Math.log(m);
  return -m * Math.log1p(-bits / m);
}

/**
 * The (burst) count of the current sub-window of radio r whose state is at st. The counts that
 * are set bits of a map (BLE's addresses, Wi-Fi's new addresses of the floor) are taken through
 * distinctOf; the Wi-Fi bursts are not (a burst whose address shares a bit with another's is still
 * joined through its other addresses).
 */
function subwindowCount(r: u32, st: usize): f64 {
  const entities = <f64>load<u32>(st, 16);
  return r == 0 ? max<f64>(entities, distinctOf(<f64>load<u32>(st, 24)) / burstAddresses) : distinctOf(entities);
}

/** Sub-windows of length len in the window (fractional with a span; at least 1). */
function subwindows(len: f64): f64 {
  let subs: f64;
  if (spanSet) subs = max<f64>(1, (spanEnd - spanStart) / len);
  else if (recordSeen) subs = Math.floor((lastRecord - origin) / len) + 1;
  else subs = 1;
  return subs >= 1 ? subs : 1;
}

/** The estimate of radio r: the sub-windows' counts, averaged over the window. */
export function estimatorResult(r: u32): f64 {
  const st = STATE + <usize>(r * STATE_STRIDE);
  let result = (load<f64>(st, 8) + subwindowCount(r, st)) / subwindows(subMs(r));
  if (r == 0) result += (fixedTotal + distinctOf(<f64>fixedCount)) / subwindows(FIXED_MS);
  return result;
}

/** Zeroes the bitmaps, the link times and the state (window_end; also window_begin). */
export function estimatorWipe(): void {
  memory.fill(SEEN, 0, 3 * SEEN_BYTES);
  memory.fill(LAST_AT, 0, 256 * 8);
  memory.fill(STATE, 0, 2 * STATE_STRIDE);
  memory.fill(CHAIN, 0, CHAIN_BYTES);
  burstAddresses = WIFI_FLOOR_ADDRESSES;
  spanSet = false;
  spanStart = 0;
  spanEnd = 0;
  origin = 0;
  recordSeen = false;
  lastRecord = 0;
  wifiSubStart = 0;
  fixedMin = -128;
  fixedEnd = -Infinity;
  fixedCount = 0;
  fixedTotal = 0;
}
