// Numbers of a corridor sketch that both sides need (the gateway that makes it, the aggregator that
// reads it): the epoch of a window, the randomised-response threshold and its quantised
// probability, the epsilon a sketch costs, and the bitmap's bit order. Pure: no I/O.
// The design: docs of the sketch in firmware/README.md (what enters, how) and gateway/README.md
// (the privacy guarantee); schema in schemas/sketch.schema.json.

/** Randomised response compares a uniform uint16 with T: T / RR_SCALE is the replacement probability. */
export const RR_SCALE = 65536;

/** The epoch a window starting at `windowStartMs` belongs to: floor(start / E), epochs aligned to Unix time. */
export function epochOf(windowStartMs: number, epochS: number): number {
  return Math.floor(windowStartMs / (epochS * 1000));
}

/** The firmware's threshold T for a replacement probability p in [0, 1]: round(p * 65536). */
export function flipThreshold(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`sketch p must be from 0 to 1, got ${p}`);
  return Math.round(p * RR_SCALE);
}

/** The replacement probability the firmware really applies for p: T / 65536 (what a sketch message carries as `p`). */
export function quantisedP(p: number): number {
  return flipThreshold(p) / RR_SCALE;
}

/**
 * Epsilon of one sketch for one device (randomised response on the one bit a device sets):
 * ln((1 - q/2) / (q/2)) with q the quantised p. Infinity for q = 0 (no noise: no guarantee).
 */
export function sketchEpsilon(p: number): number {
  const q = quantisedP(p);
  if (q === 0) return Number.POSITIVE_INFINITY;
  return Math.log((1 - q / 2) / (q / 2));
}

/** Bit i of a published bitmap: (bytes[i >> 3] >> (i & 7)) & 1. */
export function sketchBit(bytes: Uint8Array, i: number): number {
  return (bytes[i >> 3]! >> (i & 7)) & 1;
}
