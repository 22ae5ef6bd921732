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

/** Batch record header: link type u32 at 0, caplen u32 at 4, capture time f64 (ms) at 8. */
export const RECORD_HEADER_BYTES = 16;
export const RECORD_LINKTYPE = 0;
export const RECORD_CAPLEN = 4;
export const RECORD_TIME = 8;

/** window_begin flag bit: count Wi-Fi frames whose FCS check fails. */
export const FLAG_IGNORE_FCS = 1;
/** Bytes of the per-window key at key_ptr(). */
export const KEY_BYTES = 32;
