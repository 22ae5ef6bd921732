// Windows and the clock: windows are aligned to multiples of the window length since the Unix epoch
// (wall clock when live, the capture's own clock when replaying a file). Pure functions and a small
// value class; the gateway drives them.
import { CONTRACT_VERSION, type CountsMessage } from '../contract/index.ts';
import type { FirmwareWindowCounts } from '../firmware/host/types.ts';

/** Start of the aligned window containing t. */
export function alignDown(t: number, windowMs: number): number {
  return Math.floor(t / windowMs) * windowMs;
}

/** One window being counted. Times in ms since the epoch (on whichever clock drives it). */
export class OpenWindow {
  /** Aligned boundaries. */
  readonly nominalStart: number;
  readonly nominalEnd: number;
  /** False once anything cut the window short (start-up, source outage, shutdown). */
  complete: boolean;

  /** `start` is when counting began; a window opened after its boundary is incomplete. */
  constructor(readonly start: number, windowMs: number, complete = true) {
    this.nominalStart = alignDown(start, windowMs);
    this.nominalEnd = this.nominalStart + windowMs;
    this.complete = complete && start === this.nominalStart;
  }

  /** The interval counted when closed at `at` (clipped to the boundary); null when it is empty. */
  span(at: number = this.nominalEnd): { start: number; end: number; complete: boolean } | null {
    const start = Math.floor(this.start);
    const end = Math.min(this.nominalEnd, Math.floor(at));
    if (end <= start) return null;
    return { start, end, complete: this.complete && end === this.nominalEnd };
  }
}

export interface Identity {
  site: string;
  zone: string;
  gateway: string;
}

/** The contract's counts message for one closed window. Only counts: nothing per device. */
export function countsMessage(
  id: Identity,
  seq: number,
  span: { start: number; end: number; complete: boolean },
  c: FirmwareWindowCounts,
): CountsMessage {
  return {
    v: CONTRACT_VERSION,
    site: id.site,
    zone: id.zone,
    gateway: id.gateway,
    seq,
    start: new Date(span.start).toISOString(),
    end: new Date(span.end).toISOString(),
    complete: span.complete,
    wifi: {
      frames: c.wifi.frames,
      devices: c.wifi.devices,
      estimate: c.wifi.estimate,
      probes: c.wifi.accepted,
      rejected: c.wifi.rejected,
      weak: c.wifi.weak,
      exact: c.wifi.exact,
    },
    ble: {
      frames: c.ble.frames,
      devices: c.ble.devices,
      estimate: c.ble.estimate,
      adverts: c.ble.accepted,
      rejected: c.ble.rejected,
      weak: c.ble.weak,
      exact: c.ble.exact,
    },
  };
}
