// The parser's result store: what parsing one frame found, in slots the counting core reads. The
// parsers (radiotap, 802.11, BLE, Nordic, HCI, PPI) write here; the dispatcher (frame.ts) resets
// it per frame; index.ts reads it. This file imports nothing, so no parser depends on the dispatcher.
//
// One frame can carry several addresses (an HCI LE Advertising Report event holds up to 25
// reports), so results are slots. Result slot layout (SLOT_SIZE bytes each, at resultsPtr() + i * SLOT_SIZE):
//   [0..5]   device address, canonical order (as displayed: most significant octet first)
//   [6]      address kind (ADDR_* below)
//   [7]      signal in dBm as i8; RSSI_UNKNOWN when the encapsulation gives none
//   [8..9]   802.11 sequence number (u16 LE), SEQ_UNKNOWN when none
//   [10]     BLE advertisement class (bleclass.ts; 0 = other, and for Wi-Fi)
//   [11..15] reserved (0)

export const RADIO_NONE: u32 = 0; // unsupported link type
export const RADIO_WIFI: u32 = 1;
export const RADIO_BLE: u32 = 2;

export const STATUS_IGNORED: u32 = 0; // parsed fine, not a probe request / advertising PDU with an address
export const STATUS_ACCEPTED: u32 = 1; // resultCount slots filled
export const STATUS_REJECTED: u32 = 2; // bad FCS / CRC, truncated or malformed

export const ADDR_WIFI_GLOBAL: u8 = 0; // universally administered (first octet bit 0x02 clear)
export const ADDR_WIFI_LOCAL: u8 = 1; // locally administered: randomised
export const ADDR_BLE_PUBLIC: u8 = 2;
export const ADDR_BLE_RANDOM_STATIC: u8 = 3; // random, top bits 11
export const ADDR_BLE_RESOLVABLE: u8 = 4; // random, top bits 01
export const ADDR_BLE_NONRESOLVABLE: u8 = 5; // random, top bits 00
export const ADDR_BLE_RANDOM_RESERVED: u8 = 6; // random, top bits 10 (reserved)

export const RSSI_UNKNOWN: i8 = -128;
export const SEQ_UNKNOWN: u16 = 0xffff;
export const SLOT_SIZE: u32 = 16;
export const RESULT_MAX: u32 = 32;

const RESULTS: usize = memory.data(<i32>(SLOT_SIZE * RESULT_MAX), 16);

export let resultCount: u32 = 0;

// @ts-ignore: decorator
@inline export function resultsPtr(): usize {
  return RESULTS;
}

/** The channel the current frame was heard on: Wi-Fi in MHz, BLE as its channel index 0..39; CHANNEL_UNKNOWN when the encapsulation says none. */
export const CHANNEL_UNKNOWN: i32 = -1;
export let frameChannel: i32 = CHANNEL_UNKNOWN;

/** Sets the current frame's channel (Wi-Fi: frequency in MHz; BLE: channel index). */
export function setFrameChannel(ch: i32): void {
  frameChannel = ch;
}

/** Forgets the slots of the previous frame (their bytes stay until the next write or the wipe) and its channel. */
export function resetResults(): void {
  resultCount = 0;
  frameChannel = CHANNEL_UNKNOWN;
}

/** Forgets the current frame's slots but keeps its channel: a frame that is not a counted probe was still heard there. */
export function dropResults(): void {
  resultCount = 0;
}

/** Zeroes every result slot and forgets the frame's channel (called when a window ends). */
export function wipeResults(): void {
  memory.fill(RESULTS, 0, SLOT_SIZE * RESULT_MAX);
  resultCount = 0;
  frameChannel = CHANNEL_UNKNOWN;
}

/**
 * Writes the next result slot (ignored once RESULT_MAX slots are full). addr: six octets, in
 * canonical order, or reversed (as BLE and HCI carry them on the wire) when reversed is true.
 */
export function addResult(addr: usize, reversed: bool, kind: u8, rssi: i32, seq: u16): void {
  if (resultCount >= RESULT_MAX) return;
  const slot = RESULTS + <usize>(resultCount * SLOT_SIZE);
  if (reversed) {
    store<u32>(slot, bswap<u32>(load<u32>(addr, 2)));
    store<u16>(slot, bswap<u16>(load<u16>(addr)), 4);
  } else {
    store<u32>(slot, load<u32>(addr));
    store<u16>(slot, load<u16>(addr, 4), 4);
  }
  store<u8>(slot + 6, kind);
  store<i8>(slot + 7, rssi < -128 ? -128 : rssi > 127 ? 127 : <i8>rssi);
  store<u16>(slot + 8, seq);
  store<u16>(slot + 10, 0);
  store<u32>(slot + 12, 0);
  resultCount++;
}

/** Sets the BLE advertisement class of the slot written last (nothing when no slot was written). */
export function setLastResultClass(cls: u8): void {
  if (resultCount == 0) return;
  store<u8>(RESULTS + <usize>((resultCount - 1) * SLOT_SIZE), cls, 10);
}
