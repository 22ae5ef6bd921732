// Coarse class of a BLE advertisement from its advertising data (AD structures: length, type,
// data). Only one class is acted on: beacons (iBeacon, AltBeacon, Eddystone) are fixed equipment,
// not people, so index.ts keeps them out of the estimate (they still count in `devices`). The
// other classes are told apart for the result slot only and leave the module nowhere.

import { u8at } from './bytes';

export const BLE_CLASS_OTHER: u8 = 0;
export const BLE_CLASS_BEACON: u8 = 1; // iBeacon, AltBeacon, Eddystone
export const BLE_CLASS_APPLE: u8 = 2; // Apple manufacturer data other than iBeacon (Continuity)
export const BLE_CLASS_FAST_PAIR: u8 = 3; // Google Fast Pair service data (0xFE2C)
export const BLE_CLASS_MICROSOFT: u8 = 4; // Microsoft manufacturer data (CDP)

const AD_UUID16_INCOMPLETE: u32 = 0x02;
const AD_UUID16_COMPLETE: u32 = 0x03;
const AD_SERVICE_DATA16: u32 = 0x16;
const AD_MANUFACTURER: u32 = 0xff;
const COMPANY_APPLE: u32 = 0x004c;
const COMPANY_MICROSOFT: u32 = 0x0006;
const UUID_EDDYSTONE: u32 = 0xfeaa;
const UUID_FAST_PAIR: u32 = 0xfe2c;

@inline function le16at(p: usize): u32 {
  return <u32>u8at(p) | (<u32>u8at(p + 1) << 8);
}

/**
 * The class of the advertising data at [ptr, ptr + len). Walks the AD structures, stops at the
 * first one that overruns; a beacon anywhere in the data makes the whole advertisement a beacon.
 */
export function bleAdvClass(ptr: usize, len: u32): u8 {
  let cls = BLE_CLASS_OTHER;
  let o: u32 = 0;
  while (o + 2 <= len) {
    const n = <u32>u8at(ptr + o); // length of type + data
    if (n == 0) break; // padding: the rest is unused
    if (o + 1 + n > len) break;
    const type = <u32>u8at(ptr + o + 1);
    const d = ptr + o + 2;
    const dn = n - 1;
    if (type == AD_MANUFACTURER && dn >= 2) {
      const company = le16at(d);
      if (dn >= 4 && company == COMPANY_APPLE && u8at(d + 2) == 0x02 && u8at(d + 3) == 0x15) return BLE_CLASS_BEACON;
      if (dn >= 4 && u8at(d + 2) == 0xbe && u8at(d + 3) == 0xac) return BLE_CLASS_BEACON; // AltBeacon
      if (company == COMPANY_APPLE) cls = BLE_CLASS_APPLE;
      else if (company == COMPANY_MICROSOFT) cls = BLE_CLASS_MICROSOFT;
    } else if (type == AD_SERVICE_DATA16 && dn >= 2) {
      const uuid = le16at(d);
      if (uuid == UUID_EDDYSTONE) return BLE_CLASS_BEACON;
      if (uuid == UUID_FAST_PAIR) cls = BLE_CLASS_FAST_PAIR;
    } else if (type == AD_UUID16_COMPLETE || type == AD_UUID16_INCOMPLETE) {
      for (let i: u32 = 0; i + 2 <= dn; i += 2) if (le16at(d + i) == UUID_EDDYSTONE) return BLE_CLASS_BEACON;
    }
    o += 1 + n;
  }
  return cls;
}
