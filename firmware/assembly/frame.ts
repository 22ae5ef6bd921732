// Frame parsing: the interface between the parsers and the counting core.
//
// parseFrame() looks at one captured frame and fills module-level results; it never allocates and
// never reads outside [ptr, ptr + len). One frame can carry several addresses (an HCI LE
// Advertising Report event holds up to 25 reports), so results are slots.
//
// Result slot layout (SLOT_SIZE bytes each, at resultsPtr() + i * SLOT_SIZE):
//   [0..5]   device address, canonical order (as displayed: most significant octet first)
//   [6]      address kind (ADDR_* below)
//   [7]      signal in dBm as i8; RSSI_UNKNOWN when the encapsulation gives none
//   [8..9]   802.11 sequence number (u16 LE), SEQ_UNKNOWN when none
//   [10..11] reserved (0)
//   [12..15] information-element fingerprint (u32 LE; Wi-Fi only, 0 when none). In-window only.

import { parseRadiotap } from './radiotap';
import { parse80211 } from './ieee80211';
import { parseLinkLayer, parseLinkLayerWithPhdr, CRC_UNKNOWN } from './ble';
import { parseNordic } from './nordic';
import { parseHciH4 } from './hci';
import { parsePpi, ppiRadio } from './ppi';

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

export let frameRadio: u32 = RADIO_NONE;
export let frameStatus: u32 = STATUS_IGNORED;
export let resultCount: u32 = 0;

@inline export function resultsPtr(): usize {
  return RESULTS;
}

/** Zeroes every result slot (called when a window ends). */
export function wipeResults(): void {
  memory.fill(RESULTS, 0, SLOT_SIZE * RESULT_MAX);
  resultCount = 0;
}

/**
 * Writes the next result slot (ignored once RESULT_MAX slots are full). addr: six octets, in
 * canonical order, or reversed (as BLE and HCI carry them on the wire) when reversed is true.
 */
export function addResult(addr: usize, reversed: bool, kind: u8, rssi: i32, seq: u16, fingerprint: u32): void {
  if (resultCount >= RESULT_MAX) return;
  const slot = RESULTS + <usize>(resultCount * SLOT_SIZE);
  if (reversed) {
    for (let i: usize = 0; i < 6; i++) store<u8>(slot + i, load<u8>(addr + 5 - i));
  } else {
    for (let i: usize = 0; i < 6; i++) store<u8>(slot + i, load<u8>(addr + i));
  }
  store<u8>(slot + 6, kind);
  store<i8>(slot + 7, rssi < -128 ? -128 : rssi > 127 ? 127 : <i8>rssi);
  store<u16>(slot + 8, seq);
  store<u16>(slot + 10, 0);
  store<u32>(slot + 12, fingerprint);
  resultCount++;
}

/**
 * Parses one frame. linkType is masked with 0x03FFFFFF here (the FCS-length bits of a pcap header
 * are honoured for link type 105, see below), so callers may pass it masked or not. Sets frameRadio, frameStatus and
 * resultCount (slots 0..resultCount-1 filled when frameStatus == STATUS_ACCEPTED).
 */
export function parseFrame(linkType: u32, ptr: usize, len: u32, ignoreFcs: bool): void {
  resultCount = 0;
  let status: u32 = STATUS_IGNORED;
  let radio: u32 = RADIO_NONE;
  // Also accepts an unmasked pcap link type: with the P bit (0x04000000) set, bits 28-31 give the
  // FCS length in 16-bit units, which is how a plain 802.11 capture says its frames end in an FCS.
  const fcsBytes: u32 = linkType & 0x04000000 ? (linkType >>> 28) << 1 : 0;
  switch (linkType & 0x03ffffff) {
    case 127: // IEEE802_11_RADIOTAP
      radio = RADIO_WIFI;
      status = parseRadiotap(ptr, len, ignoreFcs);
      break;
    case 105: // IEEE802_11: no FCS unless the link type's FCS bits say 4 bytes
      radio = RADIO_WIFI;
      status = parse80211(ptr, len, fcsBytes == 4, false, ignoreFcs, <i32>RSSI_UNKNOWN);
      break;
    case 256: // BLUETOOTH_LE_LL_WITH_PHDR
      radio = RADIO_BLE;
      status = parseLinkLayerWithPhdr(ptr, len);
      break;
    case 251: // BLUETOOTH_LE_LL
      radio = RADIO_BLE;
      status = parseLinkLayer(ptr, len, CRC_UNKNOWN, false, <i32>RSSI_UNKNOWN);
      break;
    case 272: // NORDIC_BLE
      radio = RADIO_BLE;
      status = parseNordic(ptr, len);
      break;
    case 201: // BLUETOOTH_HCI_H4_WITH_PHDR
      radio = RADIO_BLE;
      status = parseHciH4(ptr, len);
      break;
    case 192: // PPI
      status = parsePpi(ptr, len, ignoreFcs);
      radio = ppiRadio;
      break;
    default:
      break;
  }
  if (status != STATUS_ACCEPTED || radio == RADIO_NONE) resultCount = 0;
  if (radio == RADIO_NONE) status = STATUS_IGNORED;
  frameRadio = radio;
  frameStatus = status;
}
