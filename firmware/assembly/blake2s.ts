// BLAKE2s (RFC 7693) in AssemblyScript: keyed, 32-bit words, 10 rounds. No allocation: the state
// and the one block of scratch are static, and both are wiped after use.
//
// Two entry points:
//  - blake2s(): the general function (any key length 0..32, any message length, digest 1..32
//    bytes). Used by tests and by key set-up.
//  - hashAddress() / keyedHash(): the hot path. The window's key is compressed once (setKey) and the state after
//    the key block is kept; each 8-byte device message then costs exactly one compression, with
//    the 14 zero message words folded out of the unrolled rounds. Digest length is 8 bytes.

// @ts-ignore: decorator
@inline const IV0: u32 = 0x6a09e667;
// @ts-ignore: decorator
@inline const IV1: u32 = 0xbb67ae85;
// @ts-ignore: decorator
@inline const IV2: u32 = 0x3c6ef372;
// @ts-ignore: decorator
@inline const IV3: u32 = 0xa54ff53a;
// @ts-ignore: decorator
@inline const IV4: u32 = 0x510e527f;
// @ts-ignore: decorator
@inline const IV5: u32 = 0x9b05688c;
// @ts-ignore: decorator
@inline const IV6: u32 = 0x1f83d9ab;
// @ts-ignore: decorator
@inline const IV7: u32 = 0x5be0cd19;

/** Message word schedule, RFC 7693 section 2.7 (rounds 0..9). */
const SIGMA: usize = memory.data<u8>([
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3,
  11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4,
  7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8,
  9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13,
  2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9,
  12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11,
  13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10,
  6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5,
  10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0,
]);

/** Digest length of hashAddress(), in bytes. */
export const ADDRESS_DIGEST_BYTES: u32 = 8;
/** Key length the window uses, in bytes. */
export const KEY_BYTES: u32 = 32;

/** Chain value h0..h7 after the window's key block (digest length ADDRESS_DIGEST_BYTES). */
const KEYED: usize = memory.data(32, 16);
/** Scratch for the general function: chain value (32 bytes) then one padded block (64 bytes). */
const SCRATCH: usize = memory.data(96, 16);

// @ts-ignore: decorator
@inline function word(m: usize, s: usize, i: usize): u32 {
  return load<u32>(m + (<usize>load<u8>(s + i) << 2));
}

/** Compresses the 64-byte block at m into the chain value at h. t: bytes so far, incl. this block. */
function compress(h: usize, m: usize, t: u64, last: bool): void {
  let v0 = load<u32>(h, 0), v1 = load<u32>(h, 4), v2 = load<u32>(h, 8), v3 = load<u32>(h, 12);
  let v4 = load<u32>(h, 16), v5 = load<u32>(h, 20), v6 = load<u32>(h, 24), v7 = load<u32>(h, 28);
  let v8 = IV0, v9 = IV1, v10 = IV2, v11 = IV3;
  let v12 = IV4 ^ <u32>t, v13 = IV5 ^ <u32>(t >> 32), v14 = last ? ~IV6 : IV6, v15 = IV7;
  for (let r: usize = 0; r < 10; r++) {
    const s = SIGMA + (r << 4);
    v0 += v4 + word(m, s, 0); v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
    v0 += v4 + word(m, s, 1); v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
    v1 += v5 + word(m, s, 2); v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
    v1 += v5 + word(m, s, 3); v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
    v2 += v6 + word(m, s, 4); v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
    v2 += v6 + word(m, s, 5); v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
    v3 += v7 + word(m, s, 6); v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
    v3 += v7 + word(m, s, 7); v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
    v0 += v5 + word(m, s, 8); v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
    v0 += v5 + word(m, s, 9); v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
    v1 += v6 + word(m, s, 10); v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
    v1 += v6 + word(m, s, 11); v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
    v2 += v7 + word(m, s, 12); v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
    v2 += v7 + word(m, s, 13); v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
    v3 += v4 + word(m, s, 14); v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
    v3 += v4 + word(m, s, 15); v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  }
  store<u32>(h, load<u32>(h, 0) ^ v0 ^ v8, 0);
  store<u32>(h, load<u32>(h, 4) ^ v1 ^ v9, 4);
  store<u32>(h, load<u32>(h, 8) ^ v2 ^ v10, 8);
  store<u32>(h, load<u32>(h, 12) ^ v3 ^ v11, 12);
  store<u32>(h, load<u32>(h, 16) ^ v4 ^ v12, 16);
  store<u32>(h, load<u32>(h, 20) ^ v5 ^ v13, 20);
  store<u32>(h, load<u32>(h, 24) ^ v6 ^ v14, 24);
  store<u32>(h, load<u32>(h, 28) ^ v7 ^ v15, 28);
}

/** Sets h to the initial chain value for a digest of outLen bytes and a key of keyLen bytes. */
function init(h: usize, outLen: u32, keyLen: u32): void {
  store<u32>(h, IV0 ^ 0x01010000 ^ (keyLen << 8) ^ outLen, 0);
  store<u32>(h, IV1, 4);
  store<u32>(h, IV2, 8);
  store<u32>(h, IV3, 12);
  store<u32>(h, IV4, 16);
  store<u32>(h, IV5, 20);
  store<u32>(h, IV6, 24);
  store<u32>(h, IV7, 28);
}

/**
 * General keyed BLAKE2s: digest of outLen (1..32) bytes of msg under a key of keyLen (0..32) bytes,
 * written to out. Returns false (and writes nothing) for an out-of-range length.
 */
export function blake2s(keyPtr: usize, keyLen: u32, msgPtr: usize, msgLen: u32, outPtr: usize, outLen: u32): bool {
  if (outLen < 1 || outLen > 32 || keyLen > 32) return false;
  const h = SCRATCH;
  const block = SCRATCH + 32;
  init(h, outLen, keyLen);
  let t: u64 = 0;
  if (keyLen > 0) {
    memory.fill(block, 0, 64);
    memory.copy(block, keyPtr, keyLen);
    t = 64;
    compress(h, block, t, msgLen == 0);
  }
  if (msgLen > 0 || keyLen == 0) {
    let off: u32 = 0;
    while (msgLen - off > 64) {
      t += 64;
      compress(h, msgPtr + off, t, false);
      off += 64;
    }
    const rest = msgLen - off;
    memory.fill(block, 0, 64);
    memory.copy(block, msgPtr + off, rest);
    t += rest;
    compress(h, block, t, true);
  }
  memory.copy(outPtr, h, outLen);
  memory.fill(SCRATCH, 0, 96);
  return true;
}

/** Takes the window's 32-byte key: keeps only the chain value after the key block. */
export function setKey(keyPtr: usize): void {
  keyState(KEYED, keyPtr, ADDRESS_DIGEST_BYTES);
}

/**
 * The chain value (32 bytes, written to state) after the key block of a 32-byte key at keyPtr, for
 * digests of outLen bytes: what keyedHash() continues from. The scratch is wiped; the key bytes are
 * the caller's to wipe.
 */
export function keyState(state: usize, keyPtr: usize, outLen: u32): void {
  init(state, outLen, KEY_BYTES);
  const block = SCRATCH + 32;
  memory.fill(block, 0, 64);
  memory.copy(block, keyPtr, KEY_BYTES);
  compress(state, block, 64, false);
  memory.fill(SCRATCH, 0, 96);
}

/** Wipes the chain value after the key block (and the scratch). */
export function wipeKey(): void {
  memory.fill(KEYED, 0, 32);
  memory.fill(SCRATCH, 0, 96);
}

/** Pointer to the keyed chain value, for the memory-wipe test and the budget. */
export function keyedStatePtr(): usize {
  return KEYED;
}

/**
 * Keyed BLAKE2s (digest 8 bytes) of the 8-byte message m0 | m1 (little-endian words), under the
 * key given to setKey(). Exactly one compression. The digest bytes are the returned u64, LE.
 */
// @ts-ignore: decorator
@inline export function hashAddress(m0: u32, m1: u32): u64 {
  return keyedHash(KEYED, 72, m0, m1); // t = 64 (key block) + 8
}

/**
 * hashAddress() as a function of its own, for count_addresses(): inlined into a loop that does
 * other work per address, the sixteen state words compete for registers with the loop's own
 * values and spill. (ingest hashes its queued addresses in a loop of their own, inlined.) The same
 * digest as hashAddress().
 */
export function hashAddressCall(m0: u32, m1: u32): u64 {
  return keyedHash(KEYED, 72, m0, m1);
}

/**
 * The last (and only) message block after a key block: BLAKE2s from the chain value at `state`
 * (keyState()) over a message of at most 8 bytes, m0 | m1 little-endian words (the rest of the
 * block zero), t = 64 + message length. Exactly one compression. Returns the first 8 digest bytes
 * as a u64, LE (the digest length is the one keyState() was given).
 */
// @ts-ignore: decorator
@inline export function keyedHash(state: usize, t: u32, m0: u32, m1: u32): u64 {
  const h0 = load<u32>(state, 0), h1 = load<u32>(state, 4);
  let v0 = h0, v1 = h1, v2 = load<u32>(state, 8), v3 = load<u32>(state, 12);
  let v4 = load<u32>(state, 16), v5 = load<u32>(state, 20), v6 = load<u32>(state, 24), v7 = load<u32>(state, 28);
  let v8 = IV0, v9 = IV1, v10 = IV2, v11 = IV3;
  let v12 = IV4 ^ t, v13 = IV5, v14 = ~IV6, v15 = IV7; // last block
  // round 0
  v0 += v4 + m0; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + m1; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 1
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + m1; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6 + m0; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 2
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + m0; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + m1; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 3
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + m1; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + m0; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 4
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + m0; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + m1; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 5
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6 + m0; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4 + m1; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 6
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5 + m1; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + m0; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 7
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6 + m1; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + m0; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 8
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + m0; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7 + m1; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // round 9
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4; v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5; v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6; v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + m1; v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7; v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5; v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6; v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7; v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4; v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4 + m0; v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  return <u64>(h0 ^ v0 ^ v8) | (<u64>(h1 ^ v1 ^ v9) << 32);
}
