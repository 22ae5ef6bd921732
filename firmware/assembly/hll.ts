// HyperLogLog sketch: one per radio, 2^14 one-byte registers, fed with the 64-bit keyed hashes
// of device addresses. Estimated with Ertl's improved estimator ("New cardinality estimation
// algorithms for HyperLogLog sketches", 2017), which needs no empirical bias tables and is
// unbiased from 0 to far beyond our range. Relative standard error 1.04 / sqrt(2^14) = 0.81 %.

export const HLL_P: u32 = 14;
export const HLL_M: u32 = 1 << HLL_P;
/** Bits of the hash left for the rank. */
// @ts-ignore: decorator
@inline const Q: u32 = 64 - HLL_P;
/** ln 2 */
// @ts-ignore: decorator
@inline const LN2: f64 = 0.6931471805599453;

const REGISTERS: usize = memory.data(<i32>(2 * HLL_M), 16);
/** Histogram of register values 0..Q+1, for the estimator. */
const HISTOGRAM: usize = memory.data(<i32>((Q + 2) * 4), 16);

export function hllRegistersPtr(): usize {
  return REGISTERS;
}

/** Adds a hash to the sketch of radio index r (0 Wi-Fi, 1 BLE). Index: top P bits; rank: the rest. */
// @ts-ignore: decorator
@inline export function hllAdd(r: u32, h: u64): void {
  const p = REGISTERS + (<usize>r << HLL_P) + <usize>(h >> Q);
  const rank = <u32>clz<u64>((h << HLL_P) | (<u64>1 << (HLL_P - 1))) + 1; // 1 ..= Q + 1
  if (rank > <u32>load<u8>(p)) store<u8>(p, <u8>rank);
}

function sigma(x: f64): f64 {
  if (x == 1.0) return Infinity;
  let y = 1.0;
  let z = x;
  for (let i = 0; i < 200; i++) {
    x *= x;
    const zPrev = z;
    z += x * y;
    y += y;
    if (z == zPrev) break;
  }
  return z;
}

function tau(x: f64): f64 {
  if (x == 0.0 || x == 1.0) return 0.0;
  let y = 1.0;
  let z = 1.0 - x;
  for (let i = 0; i < 200; i++) {
    x = Math.sqrt(x);
    const zPrev = z;
    y *= 0.5;
    const d = 1.0 - x;
    z -= d * d * y;
    if (z == zPrev) break;
  }
  return z / 3.0;
}

/** Estimated number of distinct hashes added to radio index r's sketch. */
export function hllEstimate(r: u32): f64 {
  memory.fill(HISTOGRAM, 0, (Q + 2) * 4);
  const base = REGISTERS + (<usize>r << HLL_P);
  for (let i: usize = 0; i < <usize>HLL_M; i++) {
    const c = HISTOGRAM + (<usize>load<u8>(base + i) << 2);
    store<u32>(c, load<u32>(c) + 1);
  }
  const m = <f64>HLL_M;
  let z = m * tau(1.0 - <f64>load<u32>(HISTOGRAM + (<usize>(Q + 1) << 2)) / m);
  for (let k: i32 = <i32>Q; k >= 1; k--) {
    z = 0.5 * (z + <f64>load<u32>(HISTOGRAM + (<usize>k << 2)));
  }
  z += m * sigma(<f64>load<u32>(HISTOGRAM) / m);
  return (m * m) / (2.0 * LN2 * z);
}

/** Zeroes both sketches. */
export function hllWipe(): void {
  memory.fill(REGISTERS, 0, 2 * HLL_M);
  memory.fill(HISTOGRAM, 0, (Q + 2) * 4);
}
