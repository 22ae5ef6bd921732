// IEEE 802.11 MAC frames: finds probe requests (management type 0, subtype 4) and reports the
// transmitter address (addr2), the sequence number and a fingerprint of the information elements.

import { u8at, le16, le32 } from './bytes';
import { crc32 } from './crc32';
import {
  ADDR_WIFI_GLOBAL, ADDR_WIFI_LOCAL, STATUS_ACCEPTED, STATUS_IGNORED, STATUS_REJECTED, addResult,
} from './frame';

const MGMT_HEADER: u32 = 24;
const FNV_OFFSET: u32 = 0x811c9dc5;
const FNV_PRIME: u32 = 0x01000193;

@inline function fnv(h: u32, b: u32): u32 {
  return (h ^ (b & 0xff)) * FNV_PRIME;
}

/** True for elements whose contents describe the device rather than the moment (rates, capabilities). */
function contentCounts(id: u32): bool {
  return id == 1 || id == 50 || id == 45 || id == 127 || id == 191 || id == 70 || id == 59;
}

/**
 * Fingerprint of the information elements in [ptr, ptr + len): every element's id and length, the
 * contents of the capability elements, the OUI and type of vendor elements, the extension id and
 * contents of extension elements. SSID and channel contents are left out (they vary per probe).
 * Stops at the first element that overruns the frame.
 */
export function elementsFingerprint(ptr: usize, len: u32): u32 {
  let h = FNV_OFFSET;
  let o: u32 = 0;
  while (o + 2 <= len) {
    const id = u8at(ptr + o);
    const n = u8at(ptr + o + 1);
    if (o + 2 + n > len) break;
    h = fnv(h, id);
    h = fnv(h, n);
    const body = ptr + o + 2;
    if (contentCounts(id)) {
      for (let i: u32 = 0; i < n; i++) h = fnv(h, u8at(body + i));
    } else if (id == 221) {
      const k = n < 4 ? n : 4; // OUI + vendor type
      for (let i: u32 = 0; i < k; i++) h = fnv(h, u8at(body + i));
    } else if (id == 255 && n > 0) {
      // Extension element: id, and the contents of HE/EHT capabilities
      const ext = u8at(body);
      h = fnv(h, ext);
      if (ext == 35 || ext == 108) for (let i: u32 = 1; i < n; i++) h = fnv(h, u8at(body + i));
    }
    o += 2 + n;
  }
  return h;
}

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
  const fp = elementsFingerprint(ptr + header, len - header);
  addResult(sa, false, kind, signal, seq, fp);
  return STATUS_ACCEPTED;
}
