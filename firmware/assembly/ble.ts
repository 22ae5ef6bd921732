// Bluetooth LE link layer: advertising physical channel PDUs (access address 0x8E89BED6). Reports
// the advertiser address (AdvA) of ADV_IND, ADV_DIRECT_IND, ADV_NONCONN_IND, SCAN_RSP, ADV_SCAN_IND
// and of ADV_EXT_IND / AUX_* PDUs whose extended header carries AdvA. Also the LE LL
// pseudo-header (link type 256) and the plain LL (251).

import { u8at, le16, le32 } from './bytes';
import { crc24, ADV_CRC_INIT } from './crc24';
import {
  ADDR_BLE_PUBLIC, ADDR_BLE_RANDOM_STATIC, ADDR_BLE_RESOLVABLE, ADDR_BLE_NONRESOLVABLE,
  ADDR_BLE_RANDOM_RESERVED, RSSI_UNKNOWN, SEQ_UNKNOWN, STATUS_ACCEPTED, STATUS_IGNORED,
  STATUS_REJECTED, addResult, setLastResultClass, setFrameChannel,
} from './results';
import { bleAdvClass } from './bleclass';

export const ADVERTISING_ACCESS_ADDRESS: u32 = 0x8e89bed6;

/** What the encapsulation says about the CRC. */
export const CRC_UNKNOWN: u32 = 0; // not checked: compute it
export const CRC_OK: u32 = 1;
export const CRC_BAD: u32 = 2;

export const PDU_ADV_IND: u32 = 0;
export const PDU_ADV_DIRECT_IND: u32 = 1;
export const PDU_ADV_NONCONN_IND: u32 = 2;
export const PDU_SCAN_REQ: u32 = 3;
export const PDU_SCAN_RSP: u32 = 4;
export const PDU_CONNECT_IND: u32 = 5;
export const PDU_ADV_SCAN_IND: u32 = 6;
export const PDU_ADV_EXT_IND: u32 = 7;

const LEGACY_PAYLOAD_MAX: u32 = 37;
const DIRECT_PAYLOAD_LEN: u32 = 12;

/**
 * Address kind of a BLE device address. random: TxAdd (or the HCI address type) says random;
 * msb: the most significant octet (its top two bits tell the random sub-type).
 */
export function bleAddressKind(random: bool, msb: u32): u8 {
  if (!random) return ADDR_BLE_PUBLIC;
  const top = msb >>> 6;
  if (top == 3) return ADDR_BLE_RANDOM_STATIC;
  if (top == 1) return ADDR_BLE_RESOLVABLE;
  if (top == 0) return ADDR_BLE_NONRESOLVABLE;
  return ADDR_BLE_RANDOM_RESERVED;
}

/**
 * Parses a link-layer packet at [ptr, ptr + len): access address, (coded PHY: CI octet), PDU header,
 * payload, CRC (3 octets). crc: CRC_OK / CRC_BAD from the capture, or CRC_UNKNOWN to compute it.
 */
export function parseLinkLayer(ptr: usize, len: u32, crc: u32, coded: bool, rssi: i32): u32 {
  if (len < 4) return STATUS_REJECTED;
  if (le32(ptr) != ADVERTISING_ACCESS_ADDRESS) return STATUS_IGNORED; // data channel
  let pdu = ptr + 4;
  let left = len - 4;
  if (coded) {
    if (left < 1) return STATUS_REJECTED;
    pdu++;
    left--;
  }
  if (left < 2) return STATUS_REJECTED;
  const h0 = u8at(pdu);
  const plen = u8at(pdu + 1);
  if (plen + 5 > left) return STATUS_REJECTED; // truncated: no room for payload and CRC
  if (crc == CRC_BAD) return STATUS_REJECTED;
  if (crc == CRC_UNKNOWN) {
    const sent = <u32>u8at(pdu + 2 + plen) | (u8at(pdu + 3 + plen) << 8) | (u8at(pdu + 4 + plen) << 16);
    if (crc24(pdu, 2 + plen, ADV_CRC_INIT) != sent) return STATUS_REJECTED;
  }
  const type = h0 & 0x0f;
  const txRandom = (h0 & 0x40) != 0;
  const payload = pdu + 2;
  let adva: usize = 0;
  if (type == PDU_ADV_IND || type == PDU_ADV_DIRECT_IND || type == PDU_ADV_NONCONN_IND ||
      type == PDU_SCAN_RSP || type == PDU_ADV_SCAN_IND) {
    // Core spec Vol 6 Part B 2.3.1: a legacy advertising PDU's payload is AdvA (6) and at most 31
    // octets after it; ADV_DIRECT_IND's is exactly AdvA and TargetA (12). Another length is malformed.
    if (plen < 6 || plen > LEGACY_PAYLOAD_MAX) return STATUS_REJECTED;
    if (type == PDU_ADV_DIRECT_IND && plen != DIRECT_PAYLOAD_LEN) return STATUS_REJECTED;
    adva = payload;
  } else if (type == PDU_ADV_EXT_IND) {
    // Common extended advertising payload: ext header length (6 bits) + AdvMode, flags, AdvA...
    if (plen < 1) return STATUS_REJECTED;
    const extLen = u8at(payload) & 0x3f;
    if (1 + extLen > plen) return STATUS_REJECTED;
    if (extLen == 0) return STATUS_IGNORED;
    const flags = u8at(payload + 1);
    if ((flags & 0x01) == 0) return STATUS_IGNORED; // no AdvA
    if (extLen < 7) return STATUS_REJECTED;
    adva = payload + 2;
  } else {
    return STATUS_IGNORED; // SCAN_REQ, CONNECT_IND, reserved
  }
  addResult(adva, true, bleAddressKind(txRandom, u8at(adva + 5)), rssi, SEQ_UNKNOWN);
  // legacy PDUs with advertising data after AdvA (ADV_DIRECT_IND has none; extended data is not read)
  if (type == PDU_ADV_IND || type == PDU_ADV_NONCONN_IND || type == PDU_SCAN_RSP || type == PDU_ADV_SCAN_IND) {
    setLastResultClass(bleAdvClass(payload + 6, plen - 6));
  }
  return STATUS_ACCEPTED;
}

// LE LL pseudo-header (link type 256): rf_channel(1) signal(1) noise(1) aa_offenses(1)
// ref_access_address(4) flags(2), then the LL packet.
const PHDR_LEN: u32 = 10;
const PHDR_SIGNAL_VALID: u32 = 0x0002;
const PHDR_CRC_CHECKED: u32 = 0x0400;
const PHDR_CRC_VALID: u32 = 0x0800;
const PHDR_PHY_SHIFT: u32 = 14;
const PHY_CODED: u32 = 2;

export function parseLinkLayerWithPhdr(ptr: usize, len: u32): u32 {
  if (len < PHDR_LEN) return STATUS_REJECTED;
  const flags = le16(ptr + 8);
  const rssi: i32 = flags & PHDR_SIGNAL_VALID ? <i32>load<i8>(ptr + 1) : <i32>RSSI_UNKNOWN;
  // rf_channel is the RF channel (2402 + 2n MHz); advertising channels 37, 38, 39 are RF 0, 12, 39
  const rf = <i32>u8at(ptr);
  if (rf <= 39) setFrameChannel(rf == 0 ? 37 : rf == 12 ? 38 : rf == 39 ? 39 : rf < 12 ? rf - 1 : rf - 2);
  let crc = CRC_UNKNOWN;
  if (flags & PHDR_CRC_CHECKED) crc = flags & PHDR_CRC_VALID ? CRC_OK : CRC_BAD;
  const coded = ((flags >>> PHDR_PHY_SHIFT) & 3) == PHY_CODED;
  return parseLinkLayer(ptr + PHDR_LEN, len - PHDR_LEN, crc, coded, rssi);
}
