// nRF Sniffer for Bluetooth LE (link type 272). Header versions as Wireshark's packet-nordic_ble.c:
//   legacy (0xBEEF marker): marker(2) id(1) counter(2) unused(2) payload_len(1)
//   version 1: board(1) hlen(1) plen(1) version(1) counter(2) id(1) packet_len(1)
//   version >= 2: board(1) plen(2 LE) version(1) counter(2) id(1) packet_len(1)
// then flags(1: bit0 CRC ok, bits 4-6 PHY) channel(1) rssi(1, negated) event_counter(2)
// delta time / timestamp(4), then the LL packet (access address first). The total length must
// match the header's lengths (Wireshark does not dissect the packet otherwise; neither do we).

import { u8at, le16 } from './bytes';
import { STATUS_IGNORED, STATUS_REJECTED, setFrameChannel } from './results';
import { parseLinkLayer, CRC_OK, CRC_BAD } from './ble';

const LL_OFFSET: u32 = 17;
const PACKET_ID_ADVERTISING: u32 = 0x02;
const PACKET_ID_DATA: u32 = 0x06;
const PHY_CODED: u32 = 2;

export function parseNordic(ptr: usize, len: u32): u32 {
  if (len < LL_OFFSET) return STATUS_REJECTED;
  let hlen: u32;
  let plen: u32;
  let version: u32;
  let id: u32;
  if (u8at(ptr) == 0xbe && u8at(ptr + 1) == 0xef) {
    version = 0;
    id = u8at(ptr + 2);
    plen = u8at(ptr + 7);
    hlen = 8;
  } else {
    version = u8at(ptr + 3);
    if (version == 1) {
      hlen = u8at(ptr + 1) + 1;
      plen = u8at(ptr + 2);
    } else {
      hlen = 7;
      plen = le16(ptr + 1);
    }
    id = u8at(ptr + 6);
  }
  if (hlen + plen != len) return STATUS_REJECTED;
  if (version >= 3 && id != PACKET_ID_ADVERTISING && id != PACKET_ID_DATA) return STATUS_IGNORED;
  if (version < 3 && id != PACKET_ID_DATA) return STATUS_IGNORED; // not an EVENT_PACKET
  const flags = u8at(ptr + 8);
  const rssi: i32 = -<i32>u8at(ptr + 10);
  const channel = <i32>u8at(ptr + 9);
  if (channel <= 39) setFrameChannel(channel);
  const coded = ((flags >>> 4) & 7) == PHY_CODED;
  return parseLinkLayer(ptr + LL_OFFSET, len - LL_OFFSET, flags & 1 ? CRC_OK : CRC_BAD, coded, rssi);
}
