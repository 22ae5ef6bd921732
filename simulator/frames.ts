// Frame builders: the bytes a monitor-mode Wi-Fi radio and a BLE sniffer would capture.
//
// Wi-Fi: radiotap (TSFT, flags with "FCS at end", rate, channel, antenna signal, antenna) + an 802.11
// probe request (broadcast DA/BSSID, the device's SA, sequence number, information elements) + FCS.
// BLE: either the LE link layer with the pcap pseudo-header (LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR, 256):
// RF channel, signal, noise, reference access address, flags (dewhitened, signal/noise valid, CRC
// checked and valid), then access address 0x8E89BED6, PDU and CRC-24; or an HCI LE Advertising Report
// event as a host controller reports it (LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR, 201).
import { bleCrc24, crc32 } from './crc.ts';

export const BLE_ADV_ACCESS_ADDRESS = 0x8e89bed6;

/** Centre frequency (MHz) of a Wi-Fi channel number (2.4 GHz 1-14, 5 GHz 32-177). */
export function channelFreq(ch: number): number {
  if (ch === 14) return 2484;
  if (ch >= 1 && ch <= 13) return 2407 + 5 * ch;
  return 5000 + 5 * ch;
}

export function is5GHz(ch: number): boolean {
  return ch > 14;
}

export interface ProbeRequestFields {
  /** Transmitter (source) address, canonical order (most significant octet first). */
  sa: Uint8Array;
  /** 12-bit sequence number. */
  seq: number;
  /** Information elements, already encoded (tag, length, value ...). */
  ies: Uint8Array;
  /** Channel the capturing radio is tuned to. */
  channel: number;
  /** Received signal, dBm. */
  signalDbm: number;
  /** Radio's TSF timer, microseconds. */
  tsfUs: number;
  /** Data rate in 500 kb/s units (2 = 1 Mb/s, 12 = 6 Mb/s). Defaults by band. */
  rate?: number;
  /** Antenna index. */
  antenna?: number;
}

const RADIOTAP_LEN = 24;
// present: TSFT(0) | Flags(1) | Rate(2) | Channel(3) | dBm antenna signal(5) | Antenna(11)
const RADIOTAP_PRESENT = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 11);
const RADIOTAP_F_FCS = 0x10;
const CHAN_CCK = 0x0020;
const CHAN_OFDM = 0x0040;
const CHAN_2GHZ = 0x0080;
const CHAN_5GHZ = 0x0100;

/** Radiotap + 802.11 probe request + FCS (link type 127). */
export function probeRequest(f: ProbeRequestFields): Uint8Array {
  const macLen = 24;
  const total = RADIOTAP_LEN + macLen + f.ies.length + 4;
  const b = new Uint8Array(total);
  const v = new DataView(b.buffer);
  // radiotap header
  b[0] = 0; // version
  b[1] = 0; // pad
  v.setUint16(2, RADIOTAP_LEN, true);
  v.setUint32(4, RADIOTAP_PRESENT, true);
  v.setBigUint64(8, BigInt(Math.max(0, Math.floor(f.tsfUs))), true); // TSFT, 8-aligned
  const five = is5GHz(f.channel);
  b[16] = RADIOTAP_F_FCS; // flags
  b[17] = f.rate ?? (five ? 12 : 2); // rate
  v.setUint16(18, channelFreq(f.channel), true);
  v.setUint16(20, five ? CHAN_5GHZ | CHAN_OFDM : CHAN_2GHZ | ((f.rate ?? 2) <= 22 ? CHAN_CCK : CHAN_OFDM), true);
  v.setInt8(22, Math.max(-127, Math.min(0, Math.round(f.signalDbm))));
  b[23] = f.antenna ?? 0;
  // 802.11 MAC header: frame control = management / probe request (subtype 4)
  const m = RADIOTAP_LEN;
  b[m] = 0x40;
  b[m + 1] = 0x00;
  v.setUint16(m + 2, 0, true); // duration
  b.fill(0xff, m + 4, m + 10); // DA broadcast
  b.set(f.sa, m + 10); // SA
  b.fill(0xff, m + 16, m + 22); // BSSID wildcard
  v.setUint16(m + 22, (f.seq & 0x0fff) << 4, true); // sequence control, fragment 0
  b.set(f.ies, m + macLen);
  const fcsAt = total - 4;
  v.setUint32(fcsAt, crc32(b, m, fcsAt), true);
  return b;
}

export const BLE_PDU = {
  ADV_IND: 0x0,
  ADV_DIRECT_IND: 0x1,
  ADV_NONCONN_IND: 0x2,
  SCAN_REQ: 0x3,
  SCAN_RSP: 0x4,
  CONNECT_IND: 0x5,
  ADV_SCAN_IND: 0x6,
} as const;
export type BlePduType = (typeof BLE_PDU)[keyof typeof BLE_PDU];

export interface BleAdvertFields {
  pduType: BlePduType;
  /** Advertiser address, canonical order (most significant octet first). */
  adva: Uint8Array;
  /** True for a random address (TxAdd = 1). */
  random: boolean;
  /** AD structures (at most 31 bytes). */
  advData: Uint8Array;
  /** Advertising channel index: 37, 38 or 39. */
  channel: 37 | 38 | 39;
  signalDbm: number;
  noiseDbm?: number;
  /** Set the pseudo-header's "CRC checked" and "CRC valid" flags (default true). */
  crcFlags?: boolean;
}

/** RF channel (0..39, 2402 + 2k MHz) of an advertising channel index. */
export function bleRfChannel(ch: 37 | 38 | 39): number {
  return ch === 37 ? 0 : ch === 38 ? 12 : 39;
}

const PHDR_LEN = 10;
// dewhitened | signal valid | noise valid | reference AA valid [| CRC checked | CRC valid]
const PHDR_FLAGS = 0x0001 | 0x0002 | 0x0004 | 0x0010;
const PHDR_CRC_FLAGS = 0x0400 | 0x0800;

/** The advertising PDU (header + AdvA + AdvData), without access address or CRC. */
export function blePdu(f: Pick<BleAdvertFields, 'pduType' | 'adva' | 'random' | 'advData'>): Uint8Array {
  if (f.advData.length > 31) throw new RangeError(`advertising data is ${f.advData.length} bytes; at most 31 fit`);
  const len = 6 + f.advData.length;
  const pdu = new Uint8Array(2 + len);
  pdu[0] = (f.pduType & 0x0f) | (f.random ? 0x40 : 0);
  pdu[1] = len;
  for (let i = 0; i < 6; i++) pdu[2 + i] = f.adva[5 - i]; // little-endian on air
  pdu.set(f.advData, 8);
  return pdu;
}

/** LE link-layer advertising packet with the pcap pseudo-header (link type 256). */
export function bleAdvertLL(f: BleAdvertFields): Uint8Array {
  const pdu = blePdu(f);
  const b = new Uint8Array(PHDR_LEN + 4 + pdu.length + 3);
  const v = new DataView(b.buffer);
  b[0] = bleRfChannel(f.channel);
  v.setInt8(1, Math.max(-127, Math.min(20, Math.round(f.signalDbm))));
  v.setInt8(2, Math.max(-127, Math.min(0, Math.round(f.noiseDbm ?? -98))));
  b[3] = 0; // access address offenses
  v.setUint32(4, BLE_ADV_ACCESS_ADDRESS, true);
  v.setUint16(8, PHDR_FLAGS | (f.crcFlags === false ? 0 : PHDR_CRC_FLAGS), true);
  v.setUint32(PHDR_LEN, BLE_ADV_ACCESS_ADDRESS, true);
  b.set(pdu, PHDR_LEN + 4);
  const crc = bleCrc24(pdu);
  const c = PHDR_LEN + 4 + pdu.length;
  b[c] = crc[0];
  b[c + 1] = crc[1];
  b[c + 2] = crc[2];
  return b;
}

/** HCI LE Advertising Report event type of an advertising PDU type. */
function hciEventType(pdu: BlePduType): number {
  switch (pdu) {
    case BLE_PDU.ADV_IND:
      return 0x00;
    case BLE_PDU.ADV_DIRECT_IND:
      return 0x01;
    case BLE_PDU.ADV_SCAN_IND:
      return 0x02;
    case BLE_PDU.ADV_NONCONN_IND:
      return 0x03;
    default:
      return 0x04; // SCAN_RSP
  }
}

/**
 * HCI H4 event with the pcap direction pseudo-header (link type 201): one LE Meta / LE Advertising
 * Report (subevent 0x02) holding one report, as a Linux host's controller delivers a received advert.
 */
export function bleAdvertHci(f: Omit<BleAdvertFields, 'channel' | 'noiseDbm' | 'crcFlags'>): Uint8Array {
  if (f.advData.length > 31) throw new RangeError(`advertising data is ${f.advData.length} bytes; at most 31 fit`);
  const params = 1 + 1 + 1 + 1 + 6 + 1 + f.advData.length + 1;
  const b = new Uint8Array(4 + 1 + 2 + params);
  const v = new DataView(b.buffer);
  v.setUint32(0, 1, false); // direction: received (big-endian per LINKTYPE_BLUETOOTH_HCI_H4_WITH_PHDR)
  b[4] = 0x04; // H4: HCI event
  b[5] = 0x3e; // LE Meta event
  b[6] = params;
  let o = 7;
  b[o++] = 0x02; // LE Advertising Report
  b[o++] = 1; // number of reports
  b[o++] = hciEventType(f.pduType);
  b[o++] = f.random ? 0x01 : 0x00;
  for (let i = 0; i < 6; i++) b[o++] = f.adva[5 - i];
  b[o++] = f.advData.length;
  b.set(f.advData, o);
  o += f.advData.length;
  v.setInt8(o, Math.max(-127, Math.min(20, Math.round(f.signalDbm))));
  return b;
}
