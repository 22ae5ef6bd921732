// A deterministic xorshift32 generator for the seeded tests: a failure names a reproducible case.

export interface Rng {
  /** The next 32-bit value (0 to 2^32 - 1). */
  next: () => number;
  /** An integer from 0 to n - 1. */
  below: (n: number) => number;
  /** A byte, 0 to 255. */
  byte: () => number;
}

export function rng(seed: number): Rng {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return { next, below: (n) => next() % n, byte: () => next() & 0xff };
}
