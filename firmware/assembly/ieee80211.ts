// IEEE 802.11 MAC frames: finds probe requests (management type 0, subtype 4) and reports the
// transmitter address (addr2) and the sequence number. The information elements are not read.

import { u8at, le16, le32 } from './bytes';
import { crc32 } from './crc32';
import {
  ADDR_WIFI_GLOBAL, ADDR_WIFI_LOCAL, STATUS_ACCEPTED, STATUS_IGNORED, STATUS_REJECTED, addResult,
} from './results';

const MGMT_HEADER: u32 = 24;

/**
 * Parses an 802.11 frame at [ptr, ptr + len). hasFcs: the last four octets are the FCS (verified
 * for probe requests); fcsBad: the capture already says the FCS is bad. Returns a STATUS_* value
 * and fills a result slot for a probe request. Frames other than probe requests are IGNORED
 * whatever their FCS, so REJECTED counts probe requests with a bad FCS or a short header.
 */
export function parse80211(ptr: usize, len: u32, hasFcs: bool, fcsBad: bool, ignoreFcs: bool, signal: i32): u32 {
  if (hasFcs) {
    if (len < 4) return STATUS_REJECTED;
    len -= 4;
  }
  if (len < 2) return STATUS_REJECTED;
  const fc0 = u8at(ptr);
  // Only probe requests matter: the FCS of other frames (data frames are most of the air time and
  // the longest) is not computed. Protocol version other than 0 (PV1 short frames) is ignored too.
  if (fc0 != 0x40) return STATUS_IGNORED; // management, subtype 4, version 0: probe request
  if (!ignoreFcs) {
    if (fcsBad) return STATUS_REJECTED;
    if (hasFcs && crc32(ptr, len) != le32(ptr + len)) return STATUS_REJECTED;
  }
  let header = MGMT_HEADER;
  if (u8at(ptr + 1) & 0x80) header += 4; // +HTC: HT control field follows the sequence control
  if (len < header) return STATUS_REJECTED;
  const sa = ptr + 10;
  const kind = u8at(sa) & 0x02 ? ADDR_WIFI_LOCAL : ADDR_WIFI_GLOBAL;
  const seq = <u16>(le16(ptr + 22) >>> 4);
  addResult(sa, false, kind, signal, seq);
  return STATUS_ACCEPTED;
}
