// The corridor sketch: per window, a bitmap of m bits in which every matchable device sets one bit
// at a position keyed by the corridor group's epoch key, published only after randomised response
// (firmware/README.md, "Corridor sketch"). One concern: the epoch key slot, the bitmaps, the
// randomised-response scratch and their wipes. index.ts decides which addresses enter.
//
// The epoch key is 32 bytes the host writes at epochKeyPtr(); epochBegin() compresses it into the
// BLAKE2s chain value after the key block (digest 32 bytes) and wipes the key bytes at once; that
// chain value is the epoch key from then on, wiped by epochEnd(). Position of a device:
//   h = BLAKE2s-256(key = K_e, msg = [radio tag] ++ address[6] in display order)
//   bit = (h[0] | h[1] << 8 | h[2] << 16 | h[3] << 24) & (m - 1)
// At window end the host fills the scratch with CSPRNG bytes (4 per bit) and sketchWindowEnd()
// writes the noisy bitmap: bit i is replaced by bit 15 of the u16 LE at scratch[4i + 2] when the
// u16 LE at scratch[4i] is below T, else it is the true bit. The true bitmap and the scratch are
// wiped right after; the noisy bitmap is all that is left. Nothing is allocated.

import { keyState, keyedHash } from './blake2s';
import { EPOCH_KEY_BYTES, RR_SCALE, SKETCH_BITS_MAX, SKETCH_BITS_MIN, SKETCH_SCRATCH_PER_BIT } from './layout';

const KEY: usize = memory.data(<i32>EPOCH_KEY_BYTES, 16);
/** Chain value after the epoch key block: the epoch key as the hash uses it. */
const STATE: usize = memory.data(32, 16);
const TRUE_BITS: usize = memory.data(<i32>(SKETCH_BITS_MAX >> 3), 16);
const NOISY_BITS: usize = memory.data(<i32>(SKETCH_BITS_MAX >> 3), 16);
const SCRATCH: usize = memory.data(<i32>(SKETCH_BITS_MAX * SKETCH_SCRATCH_PER_BIT), 16);

/** Bits of the sketch while an epoch is open (0: no epoch key, no sketch). */
let bits: u32 = 0;
let threshold: u32 = 0;
/** True between sketchWindowBegin and sketchWindowEnd of a window under an epoch key. */
export let sketchOpen: bool = false;

export function epochKeyPtr(): usize {
  return KEY;
}
export function sketchStatePtr(): usize {
  return STATE;
}
export function sketchTruePtr(): usize {
  return TRUE_BITS;
}
export function sketchNoisyPtr(): usize {
  return NOISY_BITS;
}
export function sketchScratchPtr(): usize {
  return SCRATCH;
}
export function sketchBits(): u32 {
  return bits;
}

/**
 * Takes the epoch key at epochKeyPtr() for sketches of m bits (a power of two from SKETCH_BITS_MIN
 * to SKETCH_BITS_MAX) with randomised-response threshold t (0..RR_SCALE). Wipes the key bytes in
 * every case; false (and no epoch) when m or t is out of range.
 */
export function epochBegin(m: u32, t: u32): bool {
  wipeEpoch();
  const ok = m >= <u32>SKETCH_BITS_MIN && m <= <u32>SKETCH_BITS_MAX && (m & (m - 1)) == 0 && t <= <u32>RR_SCALE;
  if (ok) {
    keyState(STATE, KEY, 32);
    bits = m;
    threshold = t;
  }
  memory.fill(KEY, 0, EPOCH_KEY_BYTES);
  return ok;
}

/** Ends the epoch: wipes the key slot, the key's chain value, both bitmaps and the scratch. */
export function epochEnd(): void {
  memory.fill(KEY, 0, EPOCH_KEY_BYTES);
  wipeEpoch();
}

/** Everything of an epoch but the key slot (which epochBegin reads next). */
function wipeEpoch(): void {
  memory.fill(STATE, 0, 32);
  memory.fill(TRUE_BITS, 0, SKETCH_BITS_MAX >> 3);
  memory.fill(NOISY_BITS, 0, SKETCH_BITS_MAX >> 3);
  memory.fill(SCRATCH, 0, SKETCH_BITS_MAX * SKETCH_SCRATCH_PER_BIT);
  bits = 0;
  threshold = 0;
  sketchOpen = false;
}

/** A window opens: clears both bitmaps; the window has a sketch when an epoch is open. */
export function sketchWindowBegin(): void {
  memory.fill(TRUE_BITS, 0, SKETCH_BITS_MAX >> 3);
  memory.fill(NOISY_BITS, 0, SKETCH_BITS_MAX >> 3);
  sketchOpen = bits != 0;
}

/**
 * Sets the bit of one device: tag is the radio (SKETCH_TAG_*), a0123 the address's first four
 * octets (display order) as a LE u32, a45 its last two as a LE u16. Only while sketchOpen.
 */
// @ts-ignore: decorator
@inline export function sketchAdd(tag: u32, a0123: u32, a45: u32): void {
  // message [tag, a0, a1, a2, a3, a4, a5]: 7 bytes, t = 64 (key block) + 7
  const h = <u32>keyedHash(STATE, 71, tag | (a0123 << 8), (a0123 >>> 24) | (a45 << 8));
  const i = h & (bits - 1);
  const p = TRUE_BITS + <usize>(i >> 3);
  store<u8>(p, load<u8>(p) | <u8>(<u32>1 << (i & 7)));
}

/**
 * The window closes: randomised response from the scratch into the noisy bitmap, then the true
 * bitmap and the scratch are wiped. Scratch the host did not fill is zero: every bit is then
 * replaced by 0 (for t > 0), so a forgotten fill publishes nothing of the devices.
 */
export function sketchWindowEnd(): void {
  if (!sketchOpen) return;
  const t = threshold;
  const bytes = bits >> 3;
  for (let b: u32 = 0; b < bytes; b++) {
    const truth = <u32>load<u8>(TRUE_BITS + b);
    let out: u32 = 0;
    const s = SCRATCH + (<usize>b << 5); // 8 bits * 4 bytes
    for (let k: u32 = 0; k < 8; k++) {
      // the u16 LE at 4k in the low half, the one at 4k + 2 in the high half (its bit 15 is bit 31);
      // (a select, not a branch: which bits are replaced is as good as random)
      const w = load<u32>(s + (k << 2));
      const bit = select<u32>(w >>> 31, (truth >> k) & 1, (w & 0xffff) < t);
      out |= bit << k;
    }
    store<u8>(NOISY_BITS + b, <u8>out);
  }
  memory.fill(TRUE_BITS, 0, SKETCH_BITS_MAX >> 3);
  memory.fill(SCRATCH, 0, SKETCH_BITS_MAX * SKETCH_SCRATCH_PER_BIT);
  sketchOpen = false;
}
