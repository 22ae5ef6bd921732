// Distinct-device counting, one counter per radio (index 0 Wi-Fi, 1 BLE).
//
// Exact while it fits: an open-addressing table (linear probing) of 64-bit keyed hashes per radio.
// The table starts at 2^10 slots and doubles whenever it is 3/4 full, up to 2^16 slots (512 KiB)
// holding 49,152 distinct devices, so a quiet window touches only a few KiB (cache-friendly).
// When the largest table is full, every hash it holds goes into the radio's HyperLogLog sketch at
// once (a register keeps the largest rank it was given, so the sketch is the same as if each hash
// had gone in when it was new): from then on each hash only updates the sketch, and the count
// becomes the sketch's estimate (exact = false). Nothing is allocated; the tables and the scratch
// used while doubling are static and wiped.

import { hllAdd, hllEstimate, hllWipe } from './hll';

export const TABLE_BITS: u32 = 16;
export const TABLE_SLOTS: u32 = 1 << TABLE_BITS;
/** Distinct hashes the largest table holds before the counter switches to the sketch. */
export const TABLE_LIMIT: u32 = (TABLE_SLOTS >> 2) * 3;
/** Slots of a table at the start of a window: 2^MIN_BITS. */
// @ts-ignore: decorator
@inline const MIN_BITS: u32 = 10;

const TABLES: usize = memory.data(<i32>(2 * TABLE_SLOTS * 8), 16);
/** Holds a table's hashes while it doubles (at most 3/4 of the second-largest size). */
const SCRATCH: usize = memory.data(<i32>((TABLE_SLOTS >> 3) * 3 * 8), 16);
/** Per radio, 16 bytes: [0] hashes in the table, [4] overflowed into the sketch, [8] log2 slots. */
const STATE: usize = memory.data(32, 16);

export function tablesPtr(): usize {
  return TABLES;
}

/** Doubles radio r's table: moves its hashes out to the scratch, then back in at the new size. */
function grow(r: u32, st: usize): void {
  const base = TABLES + (<usize>r << (TABLE_BITS + 3));
  const bits = load<u32>(st, 8);
  const slots = <usize>1 << bits;
  let n: usize = 0;
  for (let i: usize = 0; i < slots; i++) {
    const v = load<u64>(base + (i << 3));
    if (v != 0) {
      store<u64>(SCRATCH + (n << 3), v);
      n++;
    }
  }
  memory.fill(base, 0, slots << 3);
  const mask = (<u32>1 << (bits + 1)) - 1;
  store<u32>(st, bits + 1, 8);
  for (let j: usize = 0; j < n; j++) {
    const h = load<u64>(SCRATCH + (j << 3));
    let i = <u32>h & mask;
    while (load<u64>(base + (<usize>i << 3)) != 0) i = (i + 1) & mask;
    store<u64>(base + (<usize>i << 3), h);
  }
  memory.fill(SCRATCH, 0, n << 3);
}

/**
 * Counts one keyed hash for radio index r. Returns false when the hash was already in the exact
 * table (a device seen before in this window), true when it was new or the count has overflowed
 * into the sketch (where it is not known).
 */
// @ts-ignore: decorator
@inline export function countHash(r: u32, h: u64): bool {
  const st = STATE + (<usize>r << 4);
  if (load<u32>(st, 4) != 0) {
    hllAdd(r, h);
    return true;
  }
  if (h == 0) h = 1; // 0 marks an empty slot
  const base = TABLES + (<usize>r << (TABLE_BITS + 3));
  const bits = load<u32>(st, 8);
  const mask = (<u32>1 << bits) - 1;
  let i = <u32>h & mask;
  while (true) {
    const p = base + (<usize>i << 3);
    const v = load<u64>(p);
    if (v == h) return false;
    if (v == 0) {
      insertNew(r, st, h, p, bits);
      return true;
    }
    i = (i + 1) & mask;
  }
}

/**
 * Loads the table slot where countHash(r, h) starts its probe and drops it: issued ahead of the
 * lookup, it brings the slot into cache. Reads only.
 */
// @ts-ignore: decorator
@inline export function countWarm(r: u32, h: u64): void {
  const st = STATE + (<usize>r << 4);
  const mask = (<u32>1 << load<u32>(st, 8)) - 1;
  load<u64>(TABLES + (<usize>r << (TABLE_BITS + 3)) + (<usize>(<u32>h & mask) << 3));
}

/** A hash not in the table; p: the empty slot its probe reached. */
function insertNew(r: u32, st: usize, h: u64, p: usize, bits: u32): void {
  const used = load<u32>(st);
  if (used < ((<u32>3 << bits) >> 2)) {
    store<u64>(p, h);
    store<u32>(st, used + 1);
    return;
  }
  if (bits < TABLE_BITS) {
    grow(r, st);
    const base = TABLES + (<usize>r << (TABLE_BITS + 3));
    const mask = (<u32>1 << (bits + 1)) - 1;
    let i = <u32>h & mask;
    while (load<u64>(base + (<usize>i << 3)) != 0) i = (i + 1) & mask;
    store<u64>(base + (<usize>i << 3), h);
    store<u32>(st, used + 1);
    return;
  }
  // one more than the largest table holds: the sketch takes the table's hashes and this one, and
  // counts from now on
  const base = TABLES + (<usize>r << (TABLE_BITS + 3));
  for (let i: usize = 0; i < <usize>TABLE_SLOTS; i++) {
    const v = load<u64>(base + (i << 3));
    if (v != 0) hllAdd(r, v);
  }
  hllAdd(r, h);
  store<u32>(st, 1, 4);
}

/** True while radio index r's count is exact. */
export function countIsExact(r: u32): bool {
  return load<u32>(STATE + (<usize>r << 4), 4) == 0;
}

/**
 * Distinct devices of radio index r: the exact table count, or after overflow the sketch's
 * estimate, but never less than the full table's count plus one (known to be distinct).
 */
export function countDistinct(r: u32): f64 {
  const st = STATE + (<usize>r << 4);
  const exact = <f64>load<u32>(st);
  if (load<u32>(st, 4) == 0) return exact;
  return Math.max(hllEstimate(r), exact + 1);
}

/**
 * Zeroes both tables, the scratch, both sketches and the counters; tables restart small. A table
 * holds hashes only in its first 2^bits slots (its current size: it grows in place, and nothing
 * writes past it), and the scratch only in its first 3/4 x 2^(bits - 1) slots (the most a table
 * held when it last doubled; grow() zeroes them again itself): only those are zeroed, not the
 * whole 1.2 MiB each time (window_begin and window_end both wipe). The window wipe tests scan the
 * whole memory after window_end.
 */
export function countWipe(): void {
  for (let r: u32 = 0; r < 2; r++) {
    const bits = load<u32>(STATE + (<usize>r << 4), 8); // 0 before the first window: nothing written yet
    const used: usize = bits > TABLE_BITS ? <usize>TABLE_SLOTS : <usize>1 << bits;
    memory.fill(TABLES + (<usize>r << (TABLE_BITS + 3)), 0, used << 3);
    memory.fill(SCRATCH, 0, min<usize>((used >> 3) * 3, (<usize>TABLE_SLOTS >> 3) * 3) << 3);
  }
  memory.fill(STATE, 0, 32);
  store<u32>(STATE, MIN_BITS, 8);
  store<u32>(STATE + 16, MIN_BITS, 8);
  hllWipe();
}
