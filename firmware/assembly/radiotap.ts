// Radiotap (link type 127): walks every present bitmap (extended by bit 31, namespaces switched by
// bits 29/30), aligns each field naturally relative to the header start, reads the flags (FCS at
// end 0x10, bad FCS 0x40), the channel's frequency, the antenna signal in dBm and the 0-length-PSDU
// field (no frame follows: the frame is ignored), then hands the 802.11 frame on.
// Reference: https://www.radiotap.org/fields/defined

import { u8at, le16, le32, alignUp } from './bytes';
import { STATUS_IGNORED, STATUS_REJECTED, setFrameChannel } from './results';
import { parse80211 } from './ieee80211';

export const RADIOTAP_FLAG_FCS: u32 = 0x10;
export const RADIOTAP_FLAG_BAD_FCS: u32 = 0x40;
/** Field 26, 0-length PSDU: the driver reports a transmission without its frame (a sounding PPDU, one not captured). */
const FIELD_ZERO_LENGTH_PSDU: u32 = 26;

/** Alignment (high 16 bits) and size (low 16 bits) of radiotap fields 0..27; 0 = unknown. */
// prettier-ignore
const FIELDS: usize = memory.data<u32>([
  0x00080008, // 0 TSFT
  0x00010001, // 1 Flags
  0x00010001, // 2 Rate
  0x00020004, // 3 Channel
  0x00010002, // 4 FHSS
  0x00010001, // 5 dBm antenna signal
  0x00010001, // 6 dBm antenna noise
  0x00020002, // 7 lock quality
  0x00020002, // 8 TX attenuation
  0x00020002, // 9 dB TX attenuation
  0x00010001, // 10 dBm TX power
  0x00010001, // 11 antenna
  0x00010001, // 12 dB antenna signal
  0x00010001, // 13 dB antenna noise
  0x00020002, // 14 RX flags
  0x00020002, // 15 TX flags
  0x00010001, // 16 RTS retries
  0x00010001, // 17 data retries
  0x00040008, // 18 XChannel
  0x00010003, // 19 MCS
  0x00040008, // 20 A-MPDU status
  0x0002000c, // 21 VHT
  0x0008000c, // 22 timestamp
  0x0002000c, // 23 HE
  0x0002000c, // 24 HE-MU
  0x00020006, // 25 HE-MU-other-user
  0x00010001, // 26 0-length PSDU
  0x00020004, // 27 L-SIG
]);
const KNOWN_FIELDS: u32 = 28;
const MAX_PRESENT_WORDS: u32 = 64;

// Results of the last walk (module state: no allocation).
let rtFlags: u32 = 0;
let rtSignal: i32 = -128;
let rtNoPsdu: bool = false;

// The field layout of the last well-formed header's present bitmaps (a capture's frames nearly
// always share them): up to LAYOUT_WORDS words without a vendor namespace. Offsets from the header
// start of the flags and channel fields the walk reads last and of the first antenna signal (0:
// none), and where the last field the walk reads ends. A pure function of the present words, so
// reusing it gives exactly what the walk would; module globals, forgotten at each window's end
// (radiotapWipe), like the last frame's flags and signal.
// @ts-ignore: decorator
@inline const LAYOUT_WORDS: u32 = 4;
let layoutWords: u32 = 0; // 0: nothing learnt yet
let layoutWord0: u32 = 0;
let layoutWord1: u32 = 0;
let layoutWord2: u32 = 0;
let layoutWord3: u32 = 0;
let layoutFlags: u32 = 0;
let layoutChannel: u32 = 0;
let layoutSignal: u32 = 0;
let layoutEnd: u32 = 0;
let layoutNoPsdu: bool = false;

/**
 * Forgets the last frame's flags and signal and the learnt layout (window_end): the present words
 * say which fields the driver reported for that frame, which can depend on the sender (an HE or VHT
 * field for a Wi-Fi 6 or 5 transmission), so nothing of it outlives the window.
 */
export function radiotapWipe(): void {
  rtFlags = 0;
  rtSignal = -128;
  rtNoPsdu = false;
  layoutWords = 0;
  layoutWord0 = 0;
  layoutWord1 = 0;
  layoutWord2 = 0;
  layoutWord3 = 0;
  layoutFlags = 0;
  layoutChannel = 0;
  layoutSignal = 0;
  layoutEnd = 0;
  layoutNoPsdu = false;
}

/** True when the header at ptr has exactly the learnt present words, all inside hdrLen. */
// @ts-ignore: decorator
@inline function sameLayout(ptr: usize, hdrLen: u32): bool {
  const n = layoutWords;
  if (n == 0 || le32(ptr + 4) != layoutWord0 || (n << 2) + 4 > hdrLen) return false;
  if (n > 1 && le32(ptr + 8) != layoutWord1) return false;
  if (n > 2 && le32(ptr + 12) != layoutWord2) return false;
  if (n > 3 && le32(ptr + 16) != layoutWord3) return false;
  return true; // the last learnt word ends the chain (bit 31 clear), so the header has n words
}

/**
 * Learns the layout of the header at ptr, which walk() has just found well-formed (so its present
 * words lie inside it): the same steps as the walk, without reading any field. Headers with more
 * than LAYOUT_WORDS words or a vendor namespace are not learnt (the walk reads a vendor skip length
 * from the data).
 */
function learnLayout(ptr: usize): void {
  let words: u32 = 1;
  while (le32(ptr + 4 * words) & 0x80000000) {
    words++;
    if (words > LAYOUT_WORDS) return;
  }
  let off: u32 = 4 + 4 * words;
  let bitBase: u32 = 0;
  let radiotapNs = true;
  let flags: u32 = 0;
  let channel: u32 = 0;
  let signal: u32 = 0;
  let noPsdu = false;
  let giveUp = false;
  for (let w: u32 = 0; w < words; w++) {
    const present = le32(ptr + 4 + 4 * w);
    if (present & 0x40000000) return; // a vendor namespace
    if (radiotapNs && !giveUp) {
      let bits = present & 0x1fffffff;
      while (bits != 0) {
        const bit = <u32>ctz(bits);
        bits &= bits - 1;
        const index = bitBase + bit;
        if (index >= KNOWN_FIELDS) {
          giveUp = true;
          break;
        }
        const spec = load<u32>(FIELDS + (<usize>index << 2));
        off = alignUp(off, spec >>> 16);
        if (index == 1) flags = off;
        else if (index == 3) channel = off;
        else if (index == 5 && signal == 0) signal = off;
        else if (index == FIELD_ZERO_LENGTH_PSDU) noPsdu = true;
        off += spec & 0xffff;
      }
    }
    if (present & 0x20000000) {
      radiotapNs = true;
      bitBase = 0;
    } else {
      bitBase += 32;
    }
  }
  layoutWords = words;
  layoutWord0 = le32(ptr + 4);
  layoutWord1 = words > 1 ? le32(ptr + 8) : 0;
  layoutWord2 = words > 2 ? le32(ptr + 12) : 0;
  layoutWord3 = words > 3 ? le32(ptr + 16) : 0;
  layoutFlags = flags;
  layoutChannel = channel;
  layoutSignal = signal;
  layoutEnd = off;
  layoutNoPsdu = noPsdu;
}

/**
 * Walks the radiotap header at [ptr, ptr + hdrLen). Returns false when the header is malformed
 * (a field or a bitmap runs past the header). Fields after one of unknown size are skipped (the
 * flags and signal come first, so they are still read). A header with the learnt present words
 * takes the learnt layout (fields past hdrLen: malformed); any other is walked, then learnt.
 */
function walk(ptr: usize, hdrLen: u32): bool {
  if (sameLayout(ptr, hdrLen)) {
    if (layoutEnd > hdrLen) return false;
    rtFlags = layoutFlags != 0 ? u8at(ptr + layoutFlags) : 0;
    if (layoutChannel != 0) setFrameChannel(<i32>le16(ptr + layoutChannel));
    rtSignal = layoutSignal != 0 ? <i32>load<i8>(ptr + layoutSignal) : -128;
    rtNoPsdu = layoutNoPsdu;
    return true;
  }
  if (!walkFields(ptr, hdrLen)) return false;
  learnLayout(ptr);
  return true;
}

/** The walk itself, field by field. */
function walkFields(ptr: usize, hdrLen: u32): bool {
  rtFlags = 0;
  rtSignal = -128;
  rtNoPsdu = false;
  // Count present words first: data fields start after the last one.
  let words: u32 = 1;
  let q: u32 = 4;
  while (le32(ptr + q) & 0x80000000) {
    q += 4;
    words++;
    if (q + 4 > hdrLen || words > MAX_PRESENT_WORDS) return false;
  }
  let off: u32 = 4 + 4 * words;
  let bitBase: u32 = 0;
  let radiotapNs = true;
  let haveSignal = false;
  let giveUp = false; // an unknown field was met: its size is unknown, so stop reading fields
  for (let w: u32 = 0; w < words; w++) {
    const present = le32(ptr + 4 + 4 * w);
    if (radiotapNs && !giveUp) {
      let bits = present & 0x1fffffff; // fields 0..28 of this word
      while (bits != 0) {
        const bit = <u32>ctz(bits);
        bits &= bits - 1;
        const index = bitBase + bit;
        if (index >= KNOWN_FIELDS) {
          giveUp = true; // TLVs (28) or an undefined field
          break;
        }
        const spec = load<u32>(FIELDS + (<usize>index << 2));
        const align = spec >>> 16;
        const size = spec & 0xffff;
        off = alignUp(off, align);
        if (off + size > hdrLen) return false;
        if (index == 1) rtFlags = u8at(ptr + off);
        else if (index == 3) setFrameChannel(<i32>le16(ptr + off));
        else if (index == 5 && !haveSignal) {
          rtSignal = <i32>load<i8>(ptr + off);
          haveSignal = true;
        } else if (index == FIELD_ZERO_LENGTH_PSDU) rtNoPsdu = true;
        off += size;
      }
    }
    const toRadiotap = (present & 0x20000000) != 0;
    const toVendor = (present & 0x40000000) != 0;
    if (toRadiotap && toVendor) return false;
    if (toVendor && !giveUp) {
      // Vendor namespace header: OUI(3) sub-namespace(1) skip_length(2), then skip_length bytes
      off = alignUp(off, 2);
      if (off + 6 > hdrLen) return false;
      const skip = le16(ptr + off + 4);
      off += 6 + skip;
      if (off > hdrLen) return false;
    }
    if (toRadiotap || toVendor) {
      radiotapNs = toRadiotap;
      bitBase = 0;
    } else {
      bitBase += 32;
    }
  }
  return true;
}

/** Parses a radiotap-encapsulated 802.11 frame. */
export function parseRadiotap(ptr: usize, len: u32, ignoreFcs: bool): u32 {
  if (len < 8) return STATUS_REJECTED;
  if (u8at(ptr) != 0) return STATUS_REJECTED; // version 0 only
  const hdrLen = le16(ptr + 2);
  if (hdrLen < 8 || hdrLen > len) return STATUS_REJECTED;
  if (!walk(ptr, hdrLen)) return STATUS_REJECTED;
  // no frame follows the header, by the driver's word: nothing to count, nothing malformed
  if (rtNoPsdu) return STATUS_IGNORED;
  const hasFcs = (rtFlags & RADIOTAP_FLAG_FCS) != 0;
  const fcsBad = (rtFlags & RADIOTAP_FLAG_BAD_FCS) != 0;
  return parse80211(ptr + hdrLen, len - hdrLen, hasFcs, fcsBad, ignoreFcs, rtSignal);
}
