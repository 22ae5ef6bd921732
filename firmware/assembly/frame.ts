// Frame parsing: the dispatcher between the capture's link type and the parsers.
//
// parseFrame() looks at one captured frame and has the matching parser fill the result store
// (results.ts); it never allocates and never reads outside [ptr, ptr + len).

import { parseRadiotap, radiotapWipe } from './radiotap';
import { parse80211 } from './ieee80211';
import { parseLinkLayer, parseLinkLayerWithPhdr, CRC_UNKNOWN } from './ble';
import { parseNordic } from './nordic';
import { parseHciH4 } from './hci';
import { parsePpi, ppiRadio, ppiWipe } from './ppi';
import { RADIO_NONE, RADIO_WIFI, RADIO_BLE, STATUS_IGNORED, STATUS_ACCEPTED, RSSI_UNKNOWN, resetResults, dropResults, wipeResults } from './results';

export let frameRadio: u32 = RADIO_NONE;
export let frameStatus: u32 = STATUS_IGNORED;

/**
 * Parses one frame. linkType is masked with 0x03FFFFFF here (the FCS-length bits of a pcap header
 * are honoured for link type 105, see below), so callers may pass it masked or not. Sets frameRadio, frameStatus and
 * resultCount (slots 0..resultCount-1 filled when frameStatus == STATUS_ACCEPTED).
 */
export function parseFrame(linkType: u32, ptr: usize, len: u32, ignoreFcs: bool): void {
  resetResults();
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
  if (radio == RADIO_NONE) resetResults();
  else if (status != STATUS_ACCEPTED) dropResults(); // the channel stays: the live block counts every frame where it was heard
  if (radio == RADIO_NONE) status = STATUS_IGNORED;
  frameRadio = radio;
  frameStatus = status;
}

/**
 * Forgets everything of the last frame parsed (window_end): its result slots and channel, its radio
 * and status, and the parsers' module globals (radiotap flags, signal and learnt layout; the PPI
 * radio), so nothing of the window's last frame is left in linear memory or in any global.
 */
export function frameWipe(): void {
  wipeResults();
  radiotapWipe();
  ppiWipe();
  frameRadio = RADIO_NONE;
  frameStatus = STATUS_IGNORED;
}
