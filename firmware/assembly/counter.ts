// Distinct-device counting, one counter per radio (index 0 Wi-Fi, 1 BLE).
//
// Exact while it fits: an open-addressing table (linear probing) of 64-bit keyed hashes,
// 2^16 slots (512 KiB) per radio, filled to at most 3/4 (49,152 distinct devices, exact). Every hash
// new to the table also goes into the radio's HyperLogLog sketch, so when the table is full the
// sketch already holds everything: from then on each hash only updates the sketch, and the count
// becomes the sketch's estimate (exact = false). Nothing is allocated; the table is static.

import { hllAdd, hllEstimate, hllWipe } from './hll';

export const TABLE_BITS: u32 = 16;
export const TABLE_SLOTS: u32 = 1 << TABLE_BITS;
/** Distinct hashes a table holds before the counter switches to the sketch. */
export const TABLE_LIMIT: u32 = (TABLE_SLOTS >> 2) * 3;
// @ts-ignore: decorator
@inline const MASK: u32 = TABLE_SLOTS - 1;

const TABLES: usize = memory.data(<i32>(2 * TABLE_SLOTS * 8), 16);
/** Per radio: [0] hashes in the table (u32), [4] overflowed into the sketch (u32). */
const STATE: usize = memory.data(16, 16);

export function tablesPtr(): usize {
  return TABLES;
}

/** Counts one keyed hash for radio index r. */
// @ts-ignore: decorator
@inline export function countHash(r: u32, h: u64): void {
  const st = STATE + (<usize>r << 3);
  if (load<u32>(st, 4) != 0) {
    hllAdd(r, h);
    return;
  }
  if (h == 0) h = 1; // 0 marks an empty slot
  const base = TABLES + (<usize>r << (TABLE_BITS + 3));
  let i = <u32>h & MASK;
  while (true) {
    const p = base + (<usize>i << 3);
    const v = load<u64>(p);
    if (v == h) return;
    if (v == 0) {
      hllAdd(r, h);
      const used = load<u32>(st);
      if (used < TABLE_LIMIT) {
        store<u64>(p, h);
        store<u32>(st, used + 1);
      } else {
        store<u32>(st, 1, 4); // one more than the table holds: the sketch counts from now on
      }
      return;
    }
    i = (i + 1) & MASK;
  }
}

/** True while radio index r's count is exact. */
export function countIsExact(r: u32): bool {
  return load<u32>(STATE + (<usize>r << 3), 4) == 0;
}

/** Distinct devices of radio index r: exact table count, or the sketch's estimate after overflow. */
export function countDistinct(r: u32): f64 {
  const st = STATE + (<usize>r << 3);
  if (load<u32>(st, 4) == 0) return <f64>load<u32>(st);
  return hllEstimate(r);
}

/** Zeroes both tables, both sketches and the counters. */
export function countWipe(): void {
  memory.fill(TABLES, 0, 2 * TABLE_SLOTS * 8);
  memory.fill(STATE, 0, 16);
  hllWipe();
}
