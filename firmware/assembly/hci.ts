// Bluetooth HCI H4 with the 4-octet direction pseudo-header (link type 201), as a Linux host
// (btsnoop / btmon) records it. Reports the addresses of LE Meta events (0x3E) with subevent
// LE Advertising Report (0x02, several reports per event) and LE Extended Advertising Report (0x0D).

import { u8at } from './bytes';
import { RESULT_MAX, RSSI_UNKNOWN, SEQ_UNKNOWN, STATUS_ACCEPTED, STATUS_IGNORED, STATUS_REJECTED, addResult, resultCount, setLastResultClass } from './results';
import { bleAdvClass } from './bleclass';
import { bleAddressKind } from './ble';

const H4_EVENT: u32 = 0x04;
const EVT_LE_META: u32 = 0x3e;
const LE_ADVERTISING_REPORT: u32 = 0x02;
const LE_EXTENDED_ADVERTISING_REPORT: u32 = 0x0d;
const RSSI_NOT_AVAILABLE: i32 = 127;
const ADDRESS_ANONYMOUS: u32 = 0xff;

@inline function addressRandom(type: u32): bool {
  // 0 public, 1 random, 2 public identity (resolved), 3 random static identity (resolved)
  return (type & 1) != 0;
}

@inline function rssiOf(v: i32): i32 {
  return v == RSSI_NOT_AVAILABLE ? <i32>RSSI_UNKNOWN : v;
}

export function parseHciH4(ptr: usize, len: u32): u32 {
  if (len < 5) return STATUS_REJECTED;
  const p = ptr + 4; // skip the direction pseudo-header
  if (u8at(p) != H4_EVENT) return STATUS_IGNORED; // commands, ACL, SCO, ISO
  if (len < 4 + 3) return STATUS_REJECTED;
  if (u8at(p + 1) != EVT_LE_META) return STATUS_IGNORED;
  const paramLen = u8at(p + 2);
  if (paramLen + 7 > len) return STATUS_REJECTED;
  if (paramLen < 2) return STATUS_REJECTED;
  const params = p + 3;
  const end = params + paramLen;
  const sub = u8at(params);
  if (sub != LE_ADVERTISING_REPORT && sub != LE_EXTENDED_ADVERTISING_REPORT) return STATUS_IGNORED;
  const n = u8at(params + 1);
  if (n == 0) return STATUS_REJECTED;
  // Validate every report first: a malformed event counts nothing.
  let q = params + 2;
  for (let i: u32 = 0; i < n; i++) {
    const fixed: usize = sub == LE_ADVERTISING_REPORT ? 9 : 24; // up to and including data length
    if (q + fixed > end) return STATUS_REJECTED;
    const dataLen = <usize>u8at(q + fixed - 1);
    const size = fixed + dataLen + (sub == LE_ADVERTISING_REPORT ? 1 : 0); // legacy: RSSI after data
    if (q + size > end) return STATUS_REJECTED;
    q += size;
  }
  q = params + 2;
  for (let i: u32 = 0; i < n; i++) {
    if (sub == LE_ADVERTISING_REPORT) {
      // event_type(1) address_type(1) address(6) data_length(1) data rssi(1)
      const type = u8at(q + 1);
      const dataLen = <usize>u8at(q + 8);
      const rssi = rssiOf(<i32>load<i8>(q + 9 + dataLen));
      if (resultCount < RESULT_MAX) {
        addResult(q + 2, true, bleAddressKind(addressRandom(type), u8at(q + 7)), rssi, SEQ_UNKNOWN);
        setLastResultClass(bleAdvClass(q + 9, <u32>dataLen));
      }
      q += 10 + dataLen;
    } else {
      // event_type(2) address_type(1) address(6) primary_phy(1) secondary_phy(1) sid(1) tx_power(1)
      // rssi(1) periodic_interval(2) direct_address_type(1) direct_address(6) data_length(1) data
      const type = u8at(q + 2);
      const rssi = rssiOf(<i32>load<i8>(q + 13));
      const dataLen = <usize>u8at(q + 23);
      if (type != ADDRESS_ANONYMOUS && resultCount < RESULT_MAX) {
        addResult(q + 3, true, bleAddressKind(addressRandom(type), u8at(q + 8)), rssi, SEQ_UNKNOWN);
        setLastResultClass(bleAdvClass(q + 24, <u32>dataLen));
      }
      q += 24 + dataLen;
    }
  }
  return resultCount > 0 ? STATUS_ACCEPTED : STATUS_IGNORED;
}
