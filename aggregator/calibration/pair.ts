// Pairing counted windows with ground truth.
import { meanOccupancy, type Occupancy, type PointCount } from './truth.ts';

/** The counts of one window that calibration uses (from `presence replay` or the stored series). */
export interface CountedWindow {
  /** Window start and end, ms since the epoch. */
  start: number;
  end: number;
  estimate: number;
  devices: number;
}

/** A window with its truth: what the fit and the leave-one-out evaluation take. */
export interface PairedWindow extends CountedWindow {
  people: number;
  session: string;
  zone?: string;
}

/**
 * Windows that lie entirely between the first and the last truth time, each with the time-weighted
 * occupancy over it. Windows partly outside (the first and last of a capture) are left out: their
 * counts cover a part of the window only.
 */
export function pairOccupancy(windows: CountedWindow[], truth: Occupancy, session: string, zone?: string): PairedWindow[] {
  const out: PairedWindow[] = [];
  for (const w of windows) {
    const people = meanOccupancy(truth, w.start, w.end);
    if (people === null) continue;
    out.push({ ...w, people, session, ...(zone === undefined ? {} : { zone }) });
  }
  return out;
}

/**
 * Point counts paired with the window that contains each count's time (start <= t < end). Counts
 * that fall in one window are one pair with their mean (a counter every 10 s in a 60-s window is one
 * window's people, not six samples of the same estimate, which would weigh that window six times in
 * the fit and count six windows in the data it prints). A count with no window is returned in
 * `unmatched` (the caller decides whether that is an error). The session of a pair is the UTC day
 * of its window's first count.
 */
export function pairPointCounts(windows: CountedWindow[], counts: PointCount[], zone?: string): { paired: PairedWindow[]; unmatched: PointCount[] } {
  const sorted = [...windows].sort((a, b) => a.start - b.start);
  const held = new Map<CountedWindow, { sum: number; n: number; first: number }>();
  const unmatched: PointCount[] = [];
  for (const c of counts) {
    // Binary search for the last window starting at or before the count.
    let lo = 0,
      hi = sorted.length - 1,
      at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid].start <= c.time) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const w = at >= 0 ? sorted[at] : undefined;
    if (!w || c.time >= w.end) {
      unmatched.push(c);
      continue;
    }
    const h = held.get(w);
    if (h) {
      h.sum += c.people;
      h.n++;
      h.first = Math.min(h.first, c.time);
    } else held.set(w, { sum: c.people, n: 1, first: c.time });
  }
  const paired: PairedWindow[] = [];
  for (const w of sorted) {
    const h = held.get(w);
    if (!h) continue;
    paired.push({ ...w, people: h.sum / h.n, session: new Date(h.first).toISOString().slice(0, 10), ...(zone === undefined ? {} : { zone }) });
  }
  return { paired, unmatched };
}
