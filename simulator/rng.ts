// Seeded randomness for the simulator. Everything random in simulator/ goes through Rng, which wraps
// pure-rand's xoroshiro128+; nothing uses Math.random, so a seed reproduces every output byte.
//
// Independent streams: `rng.fork(label)` derives a child whose sequence depends only on the parent
// seed and the label, not on how many numbers the parent has drawn. Each person, device and gateway
// gets its own stream, so adding a device to one person does not shift everyone else's randomness.
import { xoroshiro128plus, type RandomGenerator } from 'pure-rand';

/** 32-bit FNV-1a of a string, then a murmur3 finaliser: a well-mixed stream id. */
export function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

export class Rng {
  private readonly gen: RandomGenerator;
  readonly seed: number;
  private spare: number | null = null;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.gen = xoroshiro128plus(this.seed | 0);
  }

  /** A child stream that depends only on this stream's seed and `label`. */
  fork(label: string | number): Rng {
    return new Rng(hash32(String(label), this.seed ^ 0x9e3779b9));
  }

  /** Unsigned 32-bit integer. */
  u32(): number {
    return this.gen.unsafeNext() >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    // 53 bits from two draws, so tiny probabilities are not quantised to 2^-32.
    const hi = this.u32() >>> 5;
    const lo = this.u32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [a, b). */
  uniform(a: number, b: number): number {
    return a + (b - a) * this.float();
  }

  /** Integer in [a, b] inclusive. */
  int(a: number, b: number): number {
    return a + Math.floor(this.float() * (b - a + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  /** Standard normal (Marsaglia polar). */
  normal(mean = 0, sd = 1): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return mean + sd * s;
    }
    let u: number, v: number, q: number;
    do {
      u = this.float() * 2 - 1;
      v = this.float() * 2 - 1;
      q = u * u + v * v;
    } while (q >= 1 || q === 0);
    const f = Math.sqrt((-2 * Math.log(q)) / q);
    this.spare = v * f;
    return mean + sd * u * f;
  }

  /** Exponential with the given mean. */
  exp(mean: number): number {
    return -mean * Math.log(1 - this.float());
  }

  /** Log-normal with the given mean and coefficient of variation (sd / mean). */
  lognormal(mean: number, cv: number): number {
    const s2 = Math.log(1 + cv * cv);
    return Math.exp(Math.log(mean) - s2 / 2 + Math.sqrt(s2) * this.normal());
  }

  /** Poisson-distributed count (Knuth for small means, normal approximation above 50). */
  poisson(mean: number): number {
    if (mean <= 0) return 0;
    if (mean > 50) return Math.max(0, Math.round(this.normal(mean, Math.sqrt(mean))));
    const l = Math.exp(-mean);
    let k = 0;
    let p = 1;
    do {
      k++;
      p *= this.float();
    } while (p > l);
    return k - 1;
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  pick<K extends string>(weights: Readonly<Record<K, number>>): K {
    const keys = Object.keys(weights) as K[];
    let total = 0;
    for (const k of keys) total += weights[k];
    let x = this.float() * total;
    for (const k of keys) {
      x -= weights[k];
      if (x < 0) return k;
    }
    return keys[keys.length - 1];
  }

  /** Index into `weights` with probability proportional to the weight. */
  pickIndex(weights: readonly number[]): number {
    let total = 0;
    for (const w of weights) total += w;
    let x = this.float() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i];
      if (x < 0) return i;
    }
    return weights.length - 1;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}
