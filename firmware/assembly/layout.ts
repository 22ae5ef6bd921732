// The window ABI's numbers, in one place: byte offsets of the stats block, the batch record header
// and the window_begin flags. Plain numeric constants only, so that this one file is compiled into
// the WASM module (AssemblyScript) and imported by the Node host wrapper and the tests (TypeScript).
// Changing a number here changes both sides.

/** Bytes of the stats block at stats_ptr(). */
export const STATS_BYTES = 128;
/** Bytes per radio in the stats block: Wi-Fi at 0, BLE at 32. Each field below is a u32. */
export const STATS_RADIO_STRIDE = 32;
export const STAT_FRAMES = 0;
export const STAT_ACCEPTED = 4;
export const STAT_REJECTED = 8;
export const STAT_WEAK = 12;
/** Distinct addresses (written by window_end). */
export const STAT_DEVICES = 16;
/** The estimate rounded to a whole number (written by window_end). */
export const STAT_ESTIMATE = 20;
export const STAT_EXACT = 24;
/** The estimate in thousandths (written by window_end). */
export const STAT_ESTIMATE_MILLI = 28;
/** Module-wide words after the two radio blocks. */
export const STAT_UNSUPPORTED = 64;
export const STAT_BATCH_ERRORS = 68;
export const STAT_OPEN = 72;

/**
 * Live block at live_ptr(): u32 counters of the open window, for a gateway's own page (counts per
 * bucket only, never per device). Zeroed by window_begin and by window_end. Frames per Wi-Fi
 * channel (every frame of the radio): slots 0..15 the 2.4 GHz channels, 16 + n the 5 GHz channel
 * n (0..199), 216 + n the 6 GHz channel n (0..239), then one slot for an unknown channel. Frames per
 * BLE channel index 0..39, then unknown. Address slots (accepted, weak ones included) per signal:
 * one histogram per radio, slot 0 unknown, slot d + 128 for d dBm (-127..-1), slot 128 for 0 dBm and above.
 */
export const LIVE_WIFI_CHANNELS = 457;
export const LIVE_BLE_CHANNELS = 41;
export const LIVE_RSSI_SLOTS = 129;
export const LIVE_WIFI_CHANNEL = 0;
export const LIVE_BLE_CHANNEL = LIVE_WIFI_CHANNEL + 4 * LIVE_WIFI_CHANNELS;
export const LIVE_RSSI_WIFI = LIVE_BLE_CHANNEL + 4 * LIVE_BLE_CHANNELS;
export const LIVE_RSSI_BLE = LIVE_RSSI_WIFI + 4 * LIVE_RSSI_SLOTS;
export const LIVE_BYTES = LIVE_RSSI_BLE + 4 * LIVE_RSSI_SLOTS;

/** Batch record header: link type u32 at 0, caplen u32 at 4, capture time f64 (ms) at 8. */
export const RECORD_HEADER_BYTES = 16;
export const RECORD_LINKTYPE = 0;
export const RECORD_CAPLEN = 4;
export const RECORD_TIME = 8;

/** window_begin flag bit: count Wi-Fi frames whose FCS check fails. */
export const FLAG_IGNORE_FCS = 1;
/** Bytes of the per-window key at key_ptr(). */
export const KEY_BYTES = 32;

/** Bytes of the corridor epoch key at epoch_key_ptr(). */
export const EPOCH_KEY_BYTES = 32;
/** Largest corridor sketch in bits (a power of two): the bitmaps and the scratch are sized for it. */
export const SKETCH_BITS_MAX = 32768;
/** Smallest corridor sketch in bits. */
export const SKETCH_BITS_MIN = 8;
/**
 * Scratch bytes of randomness per sketch bit, filled by the host at window end: u = u16 LE at 4i
 * (replace the bit when u < T), the replacement bit = bit 15 of the u16 LE at 4i + 2.
 */
export const SKETCH_SCRATCH_PER_BIT = 4;
/** T / RR_SCALE is the probability that a sketch bit is replaced by a random bit; T <= RR_SCALE. */
export const RR_SCALE = 65536;
/** First byte of a sketch position message: the radio. */
export const SKETCH_TAG_WIFI = 1;
export const SKETCH_TAG_BLE = 2;

/**
 * Capture splitting (capture.ts, capture_split): the host copies up to CAPTURE_IN_BYTES of a
 * pcap/pcapng stream to capture_in_ptr(); the module writes the complete records it finds as batch
 * records to capture_out_ptr() (at most CAPTURE_OUT_BYTES), their capture times (f64) to
 * capture_times_ptr() and their offsets (u32, n + 1 of them) to capture_offsets_ptr().
 */
export const CAPTURE_IN_BYTES = 65536;
export const CAPTURE_OUT_BYTES = 98304;
/** Most records one call writes (a pcap record is at least 16 bytes). */
export const CAPTURE_MAX_RECORDS = 4096;
/** pcapng interfaces the host describes at capture_ifaces_ptr(); a packet of a later one is left to the host. */
export const CAPTURE_MAX_INTERFACES = 64;
/** Bytes per interface: link type u32 at 0, timestamp units per second f64 at 8, offset in seconds f64 at 16. */
export const CAPTURE_IFACE_BYTES = 24;
export const CAPTURE_IFACE_LINKTYPE = 0;
export const CAPTURE_IFACE_UNITS = 8;
export const CAPTURE_IFACE_OFFSET = 16;
/** Result block at capture_result_ptr(): bytes consumed u32, records u32, record bytes u32, times non-decreasing u32 (1/0), last capture time f64. */
export const CAPTURE_RESULT_CONSUMED = 0;
export const CAPTURE_RESULT_RECORDS = 4;
export const CAPTURE_RESULT_BYTES = 8;
export const CAPTURE_RESULT_SORTED = 12;
export const CAPTURE_RESULT_LAST_TIME = 16;
/** capture_split formats. */
export const CAPTURE_PCAP = 1;
export const CAPTURE_PCAPNG = 2;
/** Largest record or block the host's reader accepts (gateway/capture/pcap.ts MAX_RECORD_BYTES). */
export const CAPTURE_MAX_RECORD_BYTES = 16 * 1024 * 1024;
