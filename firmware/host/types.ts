// Host-side types shared by everything that feeds the firmware: capture readers, the gateway,
// `presence replay`, the simulator's evaluation. The firmware itself is firmware/assembly (WASM).

/** One captured frame, as a capture source delivers it. */
export interface Frame {
  /** pcap link type (DLT); the firmware masks it with 0x03FFFFFF. */
  linkType: number;
  /** Capture time, milliseconds since the Unix epoch (fractional part: sub-millisecond). */
  timestampMs: number;
  /** Captured bytes, from the link-layer header on. */
  data: Uint8Array;
}

/** Counts of one radio in one window, as the firmware reports them. */
export interface FirmwareRadioCounts {
  /** Frames of this radio's link types ingested in the window. */
  frames: number;
  /** Accepted probe requests (Wi-Fi) or advertising PDUs/reports with an address (BLE). */
  accepted: number;
  /** Frames dropped for a bad FCS/CRC, truncation or malformation. */
  rejected: number;
  /** Accepted frames dropped for a signal below the RSSI threshold. */
  weak: number;
  /** Distinct device addresses among accepted frames. */
  devices: number;
  /** Devices present, averaged over the window (firmware/README.md, "The estimate"), rounded. */
  estimate: number;
  /** The same estimate before rounding (thousandths): what calibration should be fitted on. */
  estimateMean: number;
  /** True while `devices` is an exact count (table not overflowed into the sketch). */
  exact: boolean;
}

export interface FirmwareWindowCounts {
  wifi: FirmwareRadioCounts;
  ble: FirmwareRadioCounts;
  /** Frames whose link type the firmware does not parse. */
  unsupported: number;
  /** The window's corridor sketch, when the firmware has a corridor group (Firmware.setCorridor). */
  sketch?: FirmwareSketch;
}

/** A corridor sketch as it leaves the firmware: only the noisy bitmap (firmware/README.md, "Corridor sketch"). */
export interface FirmwareSketch {
  group: string;
  /** floor(window start ms / epochMs). */
  epoch: number;
  epochMs: number;
  /** Bits in the bitmap. */
  m: number;
  /** The quantised randomised-response probability T / 65536 the firmware applied. */
  p: number;
  /** The noisy bitmap, m / 8 bytes; bit i is (bits[i >> 3] >> (i & 7)) & 1. */
  bits: Uint8Array;
  /** keyCheckOf(the epoch key): the same at every gateway holding the group's secret (the message's key_check). */
  keyCheck: string;
}

/** A corridor group as the firmware wrapper needs it (Firmware.setCorridor). */
export interface CorridorSettings {
  /** The group secret: 32 bytes (or more) from a CSPRNG. The wrapper keeps a copy until clearCorridor(). */
  secret: Uint8Array;
  /** The group id (part of the epoch key's HKDF info). */
  group: string;
  /** Epoch length in ms; epochs are aligned to Unix time. */
  epochMs: number;
  /** Bits of the sketch (a power of two). */
  bits: number;
  /** Probability that a bit is replaced by a random bit (quantised to T / 65536). */
  p: number;
}

export interface WindowOptions {
  /** Count Wi-Fi frames whose FCS check fails (needed for captures with stale FCS). */
  ignoreFcs?: boolean;
  /** Drop frames whose signal (dBm) is known and below this. */
  rssiMinDbm?: number;
  /**
   * The window's bounds, ms since the epoch in the frames' clock (give both or neither). The
   * estimate's sub-windows (10 s and 60 s Wi-Fi, 30 s BLE) start at startMs and it is averaged over endMs - startMs; without
   * them the grid starts at the window's first frame and ends at its last.
   */
  startMs?: number;
  endMs?: number;
  /**
   * Addresses of one scan burst that this receiver hears (1 to 64, default 7): the divisor of the
   * Wi-Fi estimate's floor, a 10-s sub-window counts at least its new randomised addresses / this.
   * 7 suits a receiver fixed on a channel (three fixed sniffers hear 7.3 of an iPhone 11's burst);
   * a radio hopping over channels hears fewer (firmware/README.md, "The estimate").
   */
  burstAddresses?: number;
}

/** Range of WindowOptions.burstAddresses (the firmware ignores values outside it). */
export const BURST_ADDRESSES_MIN = 1;
export const BURST_ADDRESSES_MAX = 64;
/** The firmware's default of WindowOptions.burstAddresses. */
export const BURST_ADDRESSES_DEFAULT = 7;

/** Link types the firmware parses. */
export const LINKTYPE = {
  IEEE802_11: 105,
  IEEE802_11_RADIOTAP: 127,
  PPI: 192,
  BLUETOOTH_HCI_H4_WITH_PHDR: 201,
  BLUETOOTH_LE_LL: 251,
  BLUETOOTH_LE_LL_WITH_PHDR: 256,
  NORDIC_BLE: 272,
} as const;
export const LINKTYPE_MASK = 0x03ffffff;
export const SUPPORTED_LINKTYPES: ReadonlySet<number> = new Set(Object.values(LINKTYPE));
