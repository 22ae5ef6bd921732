// Device models: how a phone, watch, laptop, beacon or printer shows itself on the air.
//
// Every number here has a public source; docs/simulator-models.md names it. Where sources give a
// range or only a qualitative statement the model takes a value inside that range and says so.
import type { Rng } from './rng.ts';
import { BLE_PDU, type BlePduType, is5GHz } from './frames.ts';

export type DeviceKind = 'phone' | 'tablet' | 'laptop' | 'watch' | 'earbuds' | 'tracker' | 'beacon' | 'printer' | 'iot' | 'carkit';
export const DEVICE_KINDS: readonly DeviceKind[] = ['phone', 'tablet', 'laptop', 'watch', 'earbuds', 'tracker', 'beacon', 'printer', 'iot', 'carkit'];

/** How a Wi-Fi device picks the source address of its probe requests. */
export type MacPolicy =
  | 'per-channel' // a fresh random address (and sequence number) at every channel visit of a scan (iPhone 11 in the ProbingPatternsDataset)
  | 'per-burst' // a fresh random locally administered address for every scan (iOS 8+, Android 8+ unassociated scans)
  | 'fixed'; // the burned-in, globally unique address (older phones, most laptops, IoT, printers)

export interface Distribution {
  /** Mean, seconds or milliseconds as the field says. */
  mean: number;
  /** Coefficient of variation (sd / mean) of a log-normal draw. */
  cv: number;
  min: number;
}

export interface WifiModel {
  txPowerDbm: number;
  macPolicy: MacPolicy;
  /** OUI of the burned-in address (fixed policy). */
  oui: readonly [number, number, number];
  /** Seconds between scans (probe bursts). */
  burstIntervalS: Distribution;
  /** Probe requests sent per channel visited in a scan. */
  probesPerChannel: readonly [number, number];
  /** Milliseconds between the probes on one channel. */
  probeGapMs: number;
  /** Channels visited in order during a scan. */
  channels: readonly number[];
  /**
   * Kinds of scan, one drawn by share at every scan, each visiting its own channels (default: every
   * scan visits `channels`). The iPhone 11 alternates full scans with short ones on a few channels.
   */
  scanKinds?: ReadonlyArray<{ share: number; channels: readonly number[] }>;
  /** Time spent on each channel (active scan dwell), milliseconds. */
  channelDwellMs: number;
  /** Visit the channels in list order, or in a fresh random order every scan. */
  channelOrder?: 'list' | 'shuffled';
  /** Sequence number when the address changes: drawn at random, or continuing the counter. */
  seqOnNewAddress: 'random' | 'continue';
  /** Share of devices of this model with Wi-Fi switched on. */
  activeShare: number;
  /** Information elements of a probe on `channel` (without SSID-specific content: the SSID is the wildcard). */
  ies(channel: number, dev: DeviceIdentity): Uint8Array;
  /** What a real capture of one such phone shows, which the model must reproduce (simulator/phones.ts). */
  measured?: MeasuredPhone;
}

/**
 * Figures of a public single-phone capture, measured by simulator/phones.ts (phoneFigures) over its
 * whole 1-minute windows, each with its standard error: test/simulator-phones.test.ts re-measures
 * the capture and checks that the model's simulated figures match these.
 */
export interface MeasuredPhone {
  /** The capture, in ../shared/captures/wifi. */
  capture: string;
  windows: number;
  bursts: number;
  /** [mean, standard error] */
  addressesPerMinute: readonly [number, number];
  newAddressesPerMinute: readonly [number, number];
  addressesPerBurst: readonly [number, number];
  probesPerBurst: readonly [number, number];
  burstIntervalS: readonly [number, number];
}

export type BleAddressPolicy = 'rpa' | 'static-random' | 'public';

export interface BleModel {
  txPowerDbm: number;
  address: BleAddressPolicy;
  /** RPA rotation period range, seconds (rpa policy). */
  rotationS: readonly [number, number];
  /** Advertising interval range, milliseconds (the link layer adds advDelay 0-10 ms per event). */
  intervalMs: readonly [number, number];
  pduType: BlePduType;
  /** Share of devices of this model that advertise at all. */
  activeShare: number;
  /** Public address OUI (public policy). */
  oui?: readonly [number, number, number];
  /** AD structures for one address period. */
  advData(rng: Rng, dev: DeviceIdentity): Uint8Array;
}

export interface DeviceModel {
  id: string;
  kind: DeviceKind;
  label: string;
  wifi?: WifiModel;
  ble?: BleModel;
}

/** Per-device constants some models put in their frames (e.g. the WPS UUID-E). */
export interface DeviceIdentity {
  uuid: Uint8Array;
  /** Beacon major/minor, namespace bytes. */
  tag: Uint8Array;
}

// ---------- information elements ----------
function ie(tag: number, ...body: number[]): number[] {
  return [tag, body.length, ...body];
}
function ext(extId: number, ...body: number[]): number[] {
  return [255, body.length + 1, extId, ...body];
}
function vendor(oui: readonly number[], type: number, ...body: number[]): number[] {
  return [221, 4 + body.length, ...oui, type, ...body];
}
const SSID_WILDCARD = ie(0);
const RATES_24 = ie(1, 0x02, 0x04, 0x0b, 0x16, 0x0c, 0x12, 0x18, 0x24); // 1,2,5.5,11,6,9,12,18 Mb/s
const EXT_RATES_24 = ie(50, 0x30, 0x48, 0x60, 0x6c); // 24,36,48,54
const RATES_5 = ie(1, 0x8c, 0x12, 0x98, 0x24, 0xb0, 0x48, 0x60, 0x6c); // 6b,9,12b,18,24b,36,48,54
const RATES_24_B_ONLY = ie(1, 0x82, 0x84, 0x8b, 0x96, 0x0c, 0x12, 0x18, 0x24);
const ds = (ch: number) => ie(3, ch);
/** HT Capabilities: cap info, A-MPDU parameters, MCS set (streams), extended caps, TxBF, ASEL. */
function htCaps(capInfo: number, ampdu: number, streams: number): number[] {
  const mcs = new Array(16).fill(0);
  for (let s = 0; s < streams; s++) mcs[s] = 0xff;
  return ie(45, capInfo & 0xff, capInfo >> 8, ampdu, ...mcs, 0, 0, 0, 0, 0, 0, 0);
}
/** VHT Capabilities: 4 bytes info, 8 bytes MCS/NSS map. */
function vhtCaps(info: number, streams: number): number[] {
  const map = (0xffff & ~((1 << (2 * streams)) - 1)) | (streams >= 1 ? 0b10 : 0) | (streams >= 2 ? 0b1000 : 0);
  return ie(191, info & 0xff, (info >> 8) & 0xff, (info >> 16) & 0xff, (info >>> 24) & 0xff, map & 0xff, map >> 8, 0, 0, map & 0xff, map >> 8, 0, 0);
}
/** HE Capabilities (element extension 35): MAC caps, PHY caps (20 MHz only on 2.4, so one MCS map), MCS map. */
function heCaps(mac: number[], phy: number[]): number[] {
  return ext(35, ...mac, ...phy, 0xfa, 0xff, 0xfa, 0xff);
}
const HE_PHY_24 = [0x00, 0x20, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
const HE_PHY_5 = [0x02, 0x20, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];

const APPLE_OUI = [0x00, 0x17, 0xf2];
const MICROSOFT_OUI = [0x00, 0x50, 0xf2];
const WFA_OUI = [0x50, 0x6f, 0x9a];
const EPIGRAM_OUI = [0x00, 0x90, 0x4c];

/** WPS (Microsoft OUI type 4) in a probe request: version, request type, config methods, UUID-E, RF bands. */
function wps(uuid: Uint8Array): number[] {
  const attr = (t: number, ...v: number[]) => [t >> 8, t & 0xff, v.length >> 8, v.length & 0xff, ...v];
  return vendor(
    MICROSOFT_OUI,
    0x04,
    ...attr(0x104a, 0x10),
    ...attr(0x103a, 0x00),
    ...attr(0x1008, 0x43, 0x88),
    ...attr(0x1047, ...uuid),
    ...attr(0x103c, 0x03),
  );
}
/** Wi-Fi Direct (P2P) attributes: capability and listen channel. */
const P2P = vendor(WFA_OUI, 0x09, 0x02, 0x02, 0x00, 0x25, 0x00, 0x06, 0x05, 0x00, 0x58, 0x58, 0x04, 0x51, 0x06);

function bytes(...parts: number[][]): Uint8Array {
  return Uint8Array.from(parts.flat());
}

/**
 * Information elements copied from one real probe request of a phone in the public
 * ProbingPatternsDataset (GiovanniBaccichet/ProbingPatternsDataset, GPL-3.0), in the phone's order.
 * 'DS' marks the DS Parameter Set, filled with the channel. On 5 GHz the 2.4 GHz rate sets are
 * replaced by the OFDM rates (the dataset holds 2.4 GHz probes only).
 */
function realIes(list: readonly string[]): (ch: number) => Uint8Array {
  const parts = list.map((h) => (h === 'DS' ? null : Array.from(Buffer.from(h, 'hex'))));
  return (ch) =>
    bytes(
      ...parts.flatMap((p) => {
        if (p === null) return [ds(ch)];
        if (is5GHz(ch) && p[0] === 1) return [RATES_5];
        if (is5GHz(ch) && p[0] === 50) return [];
        return [p];
      }),
    );
}
/** iPhone 11 (iOS), ProbingPatternsDataset iPhone11-B. */
const IES_IPHONE11 = realIes([
  '0000',
  '010482848b96',
  '32080c1218243048606c',
  'DS',
  '2d1a2d401bff00000000000000000000000000000000000000000000',
  '7f080000080400000040',
  'ff1c23010808180080203002000d009f08000000fdfffdff391cc7711c07',
]);
/** Samsung Galaxy S21 Ultra (Android), ProbingPatternsDataset S21Ultra-M. */
const IES_S21 = realIes([
  '0000',
  '010482848b96',
  '32080c1218243048606c',
  'DS',
  '2d1a2d001bffff000000000000000000000000000000000000000000',
  '7f0a04004880014000400021',
  'ff03020014',
  'ff1c23010808180080203002800d019e000c0000f5fff5ff391cc7711c07',
  'dd1300904c0408bf0c7678910ffaff0000faff0020',
  'dd070050f208001200',
  'dd0a00101802000010000000',
  'dd0a506f9a16030102650101',
]);
/** Oppo Find X3 Neo (Android), ProbingPatternsDataset OppoFindX3Neo-A. */
const IES_OPPO = realIes([
  '0000',
  '010402040b16',
  '32080c1218243048606c',
  'DS',
  '2d1aef0113ffff000000000000000000000000000000000000000100',
  'bf0c92f19033faff6203faff6203',
  'dd070050f208002800',
  '7f0b00000a8200400000000120',
  'ff03020046',
  'dd0a506f9a16030101650101',
  'dd088cfdf00101020100',
]);

const CH_24_EU = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
const CH_5_EU = [36, 40, 44, 48, 52, 56, 60, 64, 100, 104, 108, 112, 116, 120, 124, 128, 132, 136, 140];

// ---------- BLE advertising data ----------
function ad(type: number, ...body: number[]): number[] {
  return [body.length + 1, type, ...body];
}
const rnd = (rng: Rng, n: number) => Array.from(rng.bytes(n));

// ---------- the models ----------
export const MODELS: Record<string, DeviceModel> = {
  'iphone-ios17': {
    id: 'iphone-ios17',
    kind: 'phone',
    label: 'iPhone, iOS 14 or later',
    wifi: {
      txPowerDbm: 15,
      macPolicy: 'per-channel',
      oui: [0xf0, 0x18, 0x98],
      // iPhone11-B: bursts start 47.3 s apart on average over its whole minutes (45.7 s over the
      // whole capture, cv 0.8, shortest 1.6 s).
      burstIntervalS: { mean: 47, cv: 0.8, min: 1.5 },
      // iPhone11-B: 1.68 probes per address (a channel visit), about 20 ms apart.
      probesPerChannel: [1, 2],
      probeGapMs: 20,
      channels: [...CH_24_EU, ...CH_5_EU],
      // iPhone11-B: of 70 bursts, 24 visit all of channels 1-13 (13 addresses), 30 only channels 1, 6,
      // 11 and 13 (4 addresses), 16 only channels 1 and 6 (2-3 addresses).
      scanKinds: [
        { share: 24, channels: [...CH_24_EU, ...CH_5_EU] },
        { share: 30, channels: [1, 6, 11, 13] },
        { share: 16, channels: [1, 6] },
      ],
      channelDwellMs: 25,
      channelOrder: 'shuffled',
      seqOnNewAddress: 'random',
      activeShare: 0.9,
      ies: (ch) => IES_IPHONE11(ch),
      measured: {
        capture: 'iPhone11-B_anonymized.pcap',
        windows: 51,
        bursts: 65,
        addressesPerMinute: [7.9, 1.04],
        newAddressesPerMinute: [7.88, 1.04],
        addressesPerBurst: [6.18, 0.56],
        probesPerBurst: [10.6, 1],
        burstIntervalS: [47.3, 4.7],
      },
    },
    ble: {
      txPowerDbm: 4,
      address: 'rpa',
      rotationS: [600, 900],
      intervalMs: [250, 1200],
      pduType: BLE_PDU.ADV_IND,
      activeShare: 0.95,
      advData: (rng) => bytes(ad(0x01, 0x1a), ad(0xff, 0x4c, 0x00, 0x10, 0x06, ...rnd(rng, 6))),
    },
  },
  'android-14': {
    id: 'android-14',
    kind: 'phone',
    label: 'Android 10 or later phone (Pixel, Samsung Galaxy)',
    wifi: {
      txPowerDbm: 16,
      macPolicy: 'per-burst',
      oui: [0x5c, 0x0a, 0x5b],
      // S21Ultra-M: bursts start 50.8 s apart on average (49 s over the whole capture, cv 0.8).
      burstIntervalS: { mean: 50, cv: 0.8, min: 1.5 },
      probesPerChannel: [2, 2],
      probeGapMs: 20,
      // S21Ultra-M probes only channels 1, 6 and 11 on 2.4 GHz, two probes each, reaching 6 about
      // 0.24 s after 1 and 11 about 0.24 s later; its sequence numbers jump by about 18 in between,
      // so it sends other frames there: taken as the 5 GHz channels, in three groups (assumption).
      channels: [1, 36, 40, 44, 48, 52, 56, 60, 64, 6, 100, 104, 108, 112, 116, 120, 124, 128, 11, 132, 136, 140],
      channelDwellMs: 26,
      seqOnNewAddress: 'random',
      activeShare: 0.85,
      ies: (ch) => IES_S21(ch),
      measured: {
        capture: 'S21Ultra-M_anonymized.pcap',
        windows: 19,
        bursts: 23,
        addressesPerMinute: [1.32, 0.31],
        newAddressesPerMinute: [1.32, 0.31],
        addressesPerBurst: [1.09, 0.06],
        probesPerBurst: [5.6, 0.4],
        burstIntervalS: [50.8, 8.8],
      },
    },
    ble: {
      txPowerDbm: 2,
      address: 'rpa',
      rotationS: [900, 900],
      intervalMs: [300, 1500],
      pduType: BLE_PDU.ADV_NONCONN_IND,
      activeShare: 0.5,
      advData: (rng) => bytes(ad(0x01, 0x06), ad(0x03, 0x2c, 0xfe), ad(0x16, 0x2c, 0xfe, ...rnd(rng, 3))),
    },
  },
  'android-oppo': {
    id: 'android-oppo',
    kind: 'phone',
    label: 'Android 11 or later phone (Oppo Find X3 Neo element set)',
    wifi: {
      txPowerDbm: 16,
      macPolicy: 'per-burst',
      oui: [0x1c, 0x77, 0xf6],
      // OppoFindX3Neo-A: bursts start 41.6 s apart over its whole minutes (a 60 s period with extra
      // scans between; cv about 0.45); 30 s over the whole capture, whose first minute is busier.
      // The interval is counted from the end of a scan (1.3 s here).
      burstIntervalS: { mean: 40.5, cv: 0.45, min: 4.8 },
      probesPerChannel: [4, 12],
      probeGapMs: 3,
      // OppoFindX3Neo-A: 9 of its 15 bursts visit channels 1-6 and 8-11 (leaving out 7, 12 and 13), 2
      // all of 1-13, 2 ten or eleven channels, one 1-3 and one is a single probe.
      channels: [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, ...CH_5_EU],
      channelDwellMs: 45,
      seqOnNewAddress: 'random',
      activeShare: 0.85,
      ies: (ch) => IES_OPPO(ch),
      // Its 60 s bursts fall on the minute boundary (six start at :59.6 to :59.9 and last about 0.6 s),
      // so each of its 6 whole minutes also counts the previous minute's address: 2.5 addresses per
      // minute where 1.5 are new.
      measured: {
        capture: 'OppoFindX3Neo-A_anonymized.pcap',
        windows: 6,
        bursts: 9,
        addressesPerMinute: [2.5, 0.22],
        newAddressesPerMinute: [1.5, 0.22],
        addressesPerBurst: [1, 0],
        probesPerBurst: [80.2, 12.4],
        burstIntervalS: [41.6, 6.8],
      },
    },
    ble: {
      txPowerDbm: 2,
      address: 'rpa',
      rotationS: [900, 900],
      intervalMs: [300, 1500],
      pduType: BLE_PDU.ADV_NONCONN_IND,
      activeShare: 0.5,
      advData: (rng) => bytes(ad(0x01, 0x06), ad(0x03, 0x2c, 0xfe), ad(0x16, 0x2c, 0xfe, ...rnd(rng, 3))),
    },
  },
  'android-legacy': {
    id: 'android-legacy',
    kind: 'phone',
    label: 'Android 7 or older phone (no probe address randomisation)',
    wifi: {
      txPowerDbm: 15,
      macPolicy: 'fixed',
      oui: [0x5c, 0x0a, 0x5b],
      burstIntervalS: { mean: 60, cv: 0.8, min: 15 },
      probesPerChannel: [1, 2],
      probeGapMs: 3,
      channels: CH_24_EU,
      channelDwellMs: 40,
      seqOnNewAddress: 'continue',
      activeShare: 0.85,
      ies: (ch, dev) =>
        bytes(SSID_WILDCARD, RATES_24_B_ONLY, EXT_RATES_24, ds(ch), htCaps(0x012c, 0x03, 1), ie(127, 0x00, 0x00, 0x08, 0x80), wps(dev.uuid), P2P),
    },
  },
  'ipad-ios17': {
    id: 'ipad-ios17',
    kind: 'tablet',
    label: 'iPad, iPadOS 14 or later',
    wifi: {
      txPowerDbm: 15,
      macPolicy: 'per-burst',
      oui: [0xf0, 0x18, 0x98],
      burstIntervalS: { mean: 240, cv: 1.0, min: 30 },
      probesPerChannel: [1, 2],
      probeGapMs: 2,
      channels: [...CH_24_EU, ...CH_5_EU],
      channelDwellMs: 30,
      seqOnNewAddress: 'random',
      activeShare: 0.95,
      ies: (ch) =>
        bytes(
          SSID_WILDCARD,
          is5GHz(ch) ? RATES_5 : RATES_24,
          is5GHz(ch) ? [] : EXT_RATES_24,
          ds(ch),
          htCaps(0x0063, 0x17, 2),
          ie(127, 0x04, 0x00, 0x0a, 0x02, 0x01, 0x40, 0x40, 0x40, 0x00, 0x21),
          ie(107, 0x0f),
          vendor(APPLE_OUI, 0x0a, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00),
        ),
    },
    ble: {
      txPowerDbm: 4,
      address: 'rpa',
      rotationS: [600, 900],
      intervalMs: [500, 2000],
      pduType: BLE_PDU.ADV_IND,
      activeShare: 0.8,
      advData: (rng) => bytes(ad(0x01, 0x1a), ad(0xff, 0x4c, 0x00, 0x10, 0x05, ...rnd(rng, 5))),
    },
  },
  'laptop-windows': {
    id: 'laptop-windows',
    kind: 'laptop',
    label: 'Windows laptop (random hardware addresses off, the default)',
    wifi: {
      txPowerDbm: 18,
      macPolicy: 'fixed',
      oui: [0x8c, 0x8d, 0x28],
      burstIntervalS: { mean: 90, cv: 0.6, min: 30 },
      probesPerChannel: [1, 1],
      probeGapMs: 2,
      channels: [...CH_24_EU, ...CH_5_EU],
      channelDwellMs: 25,
      seqOnNewAddress: 'continue',
      activeShare: 0.9,
      ies: (ch) =>
        bytes(
          SSID_WILDCARD,
          is5GHz(ch) ? RATES_5 : RATES_24,
          is5GHz(ch) ? [] : EXT_RATES_24,
          ds(ch),
          htCaps(0x09ef, 0x1b, 2),
          ie(127, 0x04, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x40),
          is5GHz(ch) ? vhtCaps(0x339b71b2, 2) : [],
          heCaps([0x01, 0x00, 0x08, 0x12, 0x00, 0x10], is5GHz(ch) ? HE_PHY_5 : HE_PHY_24),
          vendor(EPIGRAM_OUI, 0x04, 0x08, 0xbf, 0x0c, 0xb2, 0x79, 0x91, 0x33, 0xfa, 0xff, 0x0c, 0x03, 0xfa, 0xff, 0x0c, 0x03),
        ),
    },
  },
  'watch-apple': {
    id: 'watch-apple',
    kind: 'watch',
    label: 'Apple Watch',
    ble: {
      txPowerDbm: 0,
      address: 'rpa',
      rotationS: [600, 900],
      intervalMs: [500, 2000],
      pduType: BLE_PDU.ADV_IND,
      activeShare: 0.9,
      advData: (rng) => bytes(ad(0x01, 0x1a), ad(0xff, 0x4c, 0x00, 0x10, 0x05, ...rnd(rng, 5))),
    },
  },
  'watch-wearos': {
    id: 'watch-wearos',
    kind: 'watch',
    label: 'Wear OS watch',
    ble: {
      txPowerDbm: 0,
      address: 'rpa',
      rotationS: [900, 900],
      intervalMs: [1000, 2500],
      pduType: BLE_PDU.ADV_IND,
      activeShare: 0.7,
      advData: () => bytes(ad(0x01, 0x06), ad(0x03, 0x9f, 0xfe)),
    },
  },
  'earbuds-airpods': {
    id: 'earbuds-airpods',
    kind: 'earbuds',
    label: 'AirPods-style earbuds',
    ble: {
      txPowerDbm: -4,
      address: 'rpa',
      rotationS: [600, 900],
      intervalMs: [200, 400],
      pduType: BLE_PDU.ADV_NONCONN_IND,
      activeShare: 0.4,
      advData: (rng) => bytes(ad(0xff, 0x4c, 0x00, 0x07, 0x19, 0x01, 0x0e, 0x20, ...rnd(rng, 22))),
    },
  },
  'tracker-band': {
    id: 'tracker-band',
    kind: 'tracker',
    label: 'Fitness band (static random address)',
    ble: {
      txPowerDbm: -2,
      address: 'static-random',
      rotationS: [0, 0],
      intervalMs: [1000, 2000],
      pduType: BLE_PDU.ADV_IND,
      activeShare: 0.9,
      advData: () => bytes(ad(0x01, 0x06), ad(0x03, 0x0d, 0x18)),
    },
  },
  ibeacon: {
    id: 'ibeacon',
    kind: 'beacon',
    label: 'iBeacon (public address, 100 ms)',
    ble: {
      txPowerDbm: 0,
      address: 'public',
      oui: [0xd0, 0x39, 0x72],
      rotationS: [0, 0],
      intervalMs: [100, 100],
      pduType: BLE_PDU.ADV_NONCONN_IND,
      activeShare: 1,
      advData: (_rng, dev) =>
        bytes(ad(0x01, 0x06), ad(0xff, 0x4c, 0x00, 0x02, 0x15, ...Array.from(dev.uuid), dev.tag[0], dev.tag[1], dev.tag[2], dev.tag[3], 0xc5)),
    },
  },
  eddystone: {
    id: 'eddystone',
    kind: 'beacon',
    label: 'Eddystone-UID beacon (static random address, 1 s)',
    ble: {
      txPowerDbm: -4,
      address: 'static-random',
      rotationS: [0, 0],
      intervalMs: [1000, 1000],
      pduType: BLE_PDU.ADV_NONCONN_IND,
      activeShare: 1,
      advData: (_rng, dev) =>
        bytes(
          ad(0x01, 0x06),
          ad(0x03, 0xaa, 0xfe),
          ad(0x16, 0xaa, 0xfe, 0x00, 0xee, ...Array.from(dev.uuid.subarray(0, 10)), ...Array.from(dev.tag), 0x00, 0x00),
        ),
    },
  },
  'printer-wifi-direct': {
    id: 'printer-wifi-direct',
    kind: 'printer',
    label: 'Office printer with Wi-Fi Direct',
    wifi: {
      txPowerDbm: 17,
      macPolicy: 'fixed',
      oui: [0x3c, 0x2a, 0xf4],
      burstIntervalS: { mean: 300, cv: 0.3, min: 60 },
      probesPerChannel: [1, 1],
      probeGapMs: 2,
      channels: [1, 6, 11],
      channelDwellMs: 100,
      seqOnNewAddress: 'continue',
      activeShare: 1,
      ies: (ch, dev) => bytes(SSID_WILDCARD, RATES_24_B_ONLY, EXT_RATES_24, ds(ch), htCaps(0x002c, 0x03, 1), wps(dev.uuid), P2P),
    },
  },
  'iot-esp32': {
    id: 'iot-esp32',
    kind: 'iot',
    label: 'ESP32 sensor (fixed Espressif address)',
    wifi: {
      txPowerDbm: 19,
      macPolicy: 'fixed',
      oui: [0x24, 0x0a, 0xc4],
      burstIntervalS: { mean: 60, cv: 0.2, min: 30 },
      probesPerChannel: [1, 1],
      probeGapMs: 1,
      channels: CH_24_EU,
      channelDwellMs: 120,
      seqOnNewAddress: 'continue',
      activeShare: 1,
      ies: () => bytes(SSID_WILDCARD, RATES_24_B_ONLY, EXT_RATES_24, htCaps(0x012c, 0x03, 1)),
    },
  },
  'carkit-ble': {
    id: 'carkit-ble',
    kind: 'carkit',
    label: 'Car infotainment / hands-free unit (public address)',
    ble: {
      txPowerDbm: 4,
      address: 'public',
      oui: [0x00, 0x1e, 0xae],
      rotationS: [0, 0],
      intervalMs: [200, 500],
      pduType: BLE_PDU.ADV_IND,
      activeShare: 1,
      advData: () => bytes(ad(0x01, 0x1a), ad(0x09, 0x43, 0x41, 0x52)),
    },
  },
};

export function modelIds(): string[] {
  return Object.keys(MODELS);
}

/** A random locally administered, unicast Wi-Fi address (what randomising devices send). */
export function randomLocalMac(rng: Rng): Uint8Array {
  const a = rng.bytes(6);
  a[0] = (a[0] & 0xfc) | 0x02;
  return a;
}

/** A burned-in, globally unique address with the model's OUI. */
export function globalMac(rng: Rng, oui: readonly number[]): Uint8Array {
  const a = rng.bytes(6);
  a[0] = oui[0];
  a[1] = oui[1];
  a[2] = oui[2];
  return a;
}

/** BLE resolvable private address: top two bits 01, 22 random bits of prand, 24-bit hash. */
export function bleRpa(rng: Rng): Uint8Array {
  const a = rng.bytes(6);
  a[0] = (a[0] & 0x3f) | 0x40;
  return a;
}

/** BLE static random address: top two bits 11. */
export function bleStaticRandom(rng: Rng): Uint8Array {
  const a = rng.bytes(6);
  a[0] = a[0] | 0xc0;
  return a;
}
