// Per-Packet Information header (link type 192): version(1)=0 flags(1) length(2 LE) dlt(4 LE),
// then fields type(2 LE) length(2 LE) data (padded to 4 octets when flags bit 0 is set).
// Inner link types parsed:
//   147 (USER0) as crackle and Ubertooth write it: a BLE link-layer packet (access address, PDU,
//        CRC) after a PPI-BTLE field (type 30006); the CRC is computed.
//   251 / 256: BLE LL without / with pseudo-header.
//   105: 802.11, FCS presence and bad-FCS from the 802.11-common field (type 2) flags.
//   127: radiotap.

import { u8at, le16, le32, alignUp } from './bytes';
import { RADIO_BLE, RADIO_NONE, RADIO_WIFI, RSSI_UNKNOWN, STATUS_IGNORED, STATUS_REJECTED, setFrameChannel } from './results';
import { parseLinkLayer, parseLinkLayerWithPhdr, CRC_UNKNOWN } from './ble';
import { parse80211 } from './ieee80211';
import { parseRadiotap } from './radiotap';

const FIELD_80211_COMMON: u32 = 2;
const COMMON_FLAG_FCS: u32 = 0x0001;
const COMMON_FLAG_BAD_FCS: u32 = 0x0004;

/** Radio of the last PPI frame parsed (RADIO_NONE for an inner link type not parsed). */
export let ppiRadio: u32 = 0; // RADIO_NONE

/** Forgets the last PPI frame's radio (window_end). */
export function ppiWipe(): void {
  ppiRadio = RADIO_NONE;
}

export function parsePpi(ptr: usize, len: u32, ignoreFcs: bool): u32 {
  ppiRadio = RADIO_NONE;
  if (len < 8) return STATUS_REJECTED;
  if (u8at(ptr) != 0) return STATUS_REJECTED;
  const aligned = (u8at(ptr + 1) & 1) != 0;
  const hdrLen = le16(ptr + 2);
  const dlt = le32(ptr + 4);
  if (hdrLen < 8 || hdrLen > len) return STATUS_REJECTED;
  if (dlt == 147 || dlt == 251 || dlt == 256) ppiRadio = RADIO_BLE;
  else if (dlt == 105 || dlt == 127) ppiRadio = RADIO_WIFI;
  else return STATUS_IGNORED;
  let rssi: i32 = <i32>RSSI_UNKNOWN;
  let hasFcs = false;
  let fcsBad = false;
  let o: u32 = 8;
  while (o + 4 <= hdrLen) {
    const type = le16(ptr + o);
    const flen = le16(ptr + o + 2);
    const data = o + 4;
    if (data + flen > hdrLen) return STATUS_REJECTED;
    // PPI-BTLE (30006): version(1) channel(2) clkn_high(1) clk100ns(4) rssi_max/min/avg/count(1 each).
    // Its RSSI figures are raw radio register values, not dBm, so the signal stays unknown.
    if (type == FIELD_80211_COMMON && flen >= 20) {
      // tsf(8) flags(2) rate(2) freq(2) channel_flags(2) fhss(2) antsignal(1) antnoise(1)
      const flags = le16(ptr + data + 8);
      hasFcs = (flags & COMMON_FLAG_FCS) != 0;
      fcsBad = (flags & COMMON_FLAG_BAD_FCS) != 0;
      rssi = <i32>load<i8>(ptr + data + 18);
      const freq = <i32>le16(ptr + data + 12);
      if (freq != 0) setFrameChannel(freq);
    }
    o = data + flen;
    if (aligned) o = alignUp(o, 4);
  }
  const inner = ptr + hdrLen;
  const innerLen = len - hdrLen;
  if (dlt == 147 || dlt == 251) return parseLinkLayer(inner, innerLen, CRC_UNKNOWN, false, rssi);
  if (dlt == 256) return parseLinkLayerWithPhdr(inner, innerLen);
  if (dlt == 105) return parse80211(inner, innerLen, hasFcs, fcsBad, ignoreFcs, rssi);
  return parseRadiotap(inner, innerLen, ignoreFcs);
}
