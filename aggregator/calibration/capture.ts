// The capture form of calibration: each capture is replayed through the real firmware (the replay
// code of `presence replay`, 1-minute windows by default) and its windows are paired with the
// capture's occupancy truth. One capture is one session.
import { basename } from 'node:path';
import { CaptureFormatError, UnsupportedLinkTypeError } from '../../gateway/capture/pcap.ts';
import { replayCapture, type ReplayOptions, type ReplayWindow } from '../../gateway/replay.ts';
import { checkWithinCapture, readOccupancy, span, TruthError, type Occupancy } from './truth.ts';
import { pairOccupancy, type CountedWindow, type PairedWindow } from './pair.ts';

export interface CaptureTruth {
  capture: string;
  truth: string;
  /** Session name (default: see CaptureOptions.sessionBy). */
  session?: string;
}

export interface CaptureOptions {
  radio?: 'wifi' | 'ble';
  windowMs?: number;
  ignoreFcs?: boolean;
  rssiMinDbm?: number;
  /** Addresses of one scan burst the capturing radio heard (the Wi-Fi estimate's floor divisor; default 7). */
  burstAddresses?: number;
  zone?: string;
  /**
   * What makes a session (the unit of the bootstrap and of leave-one-out): 'day' (default), the UTC
   * day of the capture's first paired window, so two sniffers in one room on one day are one session
   * (they saw the same people); or 'capture', the capture's file name.
   */
  sessionBy?: 'day' | 'capture';
  /** Called with bytes read, for a progress bar. */
  onBytes?: (n: number) => void;
  /** Notes from the replay (unsupported link types, clock jumps). */
  note?: (m: string) => void;
}

export function sessionName(capture: string): string {
  return basename(capture).replace(/\.(pcapng|pcap|cap)$/i, '');
}

/** Replays one capture into counted windows of one radio, with the first and last frame time. */
export async function countCapture(
  file: string,
  opts: CaptureOptions = {},
): Promise<{ windows: CountedWindow[]; first: number | null; last: number | null; radioFrames: number; rejected: number; weak: number }> {
  const radio = opts.radio ?? 'wifi';
  const ropts: ReplayOptions = {
    window: opts.windowMs ?? 60_000,
    ignoreFcs: opts.ignoreFcs,
    rssiMinDbm: opts.rssiMinDbm,
    ...(opts.burstAddresses !== undefined ? { burstAddresses: opts.burstAddresses } : {}),
  };
  const windows: CountedWindow[] = [];
  // Where the capture starts and ends, to window precision: the first and last window with frames.
  let first: number | null = null;
  let last: number | null = null;
  let radioFrames = 0;
  let rejected = 0;
  let weak = 0;
  try {
    for await (const w of replayCapture(file, ropts, opts.note, opts.onBytes) as AsyncIterable<ReplayWindow>) {
      if (w.start === null || w.end === null) continue;
      const start = Date.parse(w.start);
      const end = Date.parse(w.end);
      const r = w[radio];
      windows.push({ start, end, estimate: r.estimate, devices: r.devices });
      radioFrames += r.frames;
      rejected += r.rejected;
      weak += r.weak;
      if (w.wifi.frames + w.ble.frames > 0) {
        first ??= start;
        last = end;
      }
    }
  } catch (e) {
    const problem = (err: Error) => (err.message.startsWith(`${file}: `) ? err.message.slice(file.length + 2) : err.message);
    // A capture cut short or damaged after frames were read: say how to calibrate on the frames
    // before (a fit is not made from part of a capture behind the user's back).
    if (e instanceof CaptureFormatError && windows.length > 0)
      throw new TruthError(
        file,
        null,
        problem(e),
        `${e.damage === 'ends_inside_record' ? 'the capture was cut short (its recorder stopped in the middle of a frame)' : 'the capture is damaged there'}: copy its frames before that into a new file with editcap ${file} OUT.pcapng and pass OUT.pcapng to --capture, with the truth rows up to its last frame`,
      );
    // Nothing read: no capture at all (the truth CSV given as --capture), an empty file, or damage
    // before the first frame. One line with the fix and exit 2, as for the other files.
    if (e instanceof CaptureFormatError)
      throw new TruthError(
        file,
        null,
        problem(e),
        e.damage === 'not_a_capture'
          ? 'give --capture the pcap or pcapng file of the session (its time;occupancy CSV goes to --truth)'
          : e.damage === 'empty'
            ? 'give --capture the capture of the session the --truth file counted (this file is empty)'
            : `no frame comes before the damage: give --capture another copy of the capture (capinfos ${file} says whether a copy can be read)`,
      );
    if (e instanceof UnsupportedLinkTypeError)
      throw new TruthError(
        file,
        null,
        problem(e),
        'give --capture a capture of probe requests or BLE advertisements in one of those link types (a Wi-Fi interface in monitor mode records 127, radiotap)',
      );
    throw e;
  }
  return { windows, first, last, radioFrames, rejected, weak };
}

/** Replays each capture and pairs its windows with its truth; one session per capture. */
export async function pairCaptures(inputs: CaptureTruth[], opts: CaptureOptions = {}): Promise<PairedWindow[]> {
  const out: PairedWindow[] = [];
  for (const input of inputs) {
    const truth: Occupancy = readOccupancy(input.truth);
    const { windows, first, last, radioFrames, rejected, weak } = await countCapture(input.capture, opts);
    if (first === null || last === null) {
      throw new TruthError(input.capture, null, 'holds no frames to pair with the truth', 'pass the capture of the session the --truth file counted');
    }
    const radio = opts.radio ?? 'wifi';
    if (radioFrames === 0) {
      // All its windows would count 0: the fit would fail on the data instead of saying why.
      const other = radio === 'wifi' ? 'ble' : 'wifi';
      throw new TruthError(
        input.capture,
        null,
        `holds no ${radio} frames (only ${other})`,
        `calibrate its ${other} counts with --radio ${other}, or pass a capture with ${radio} frames`,
      );
    }
    if (rejected + weak >= radioFrames) {
      // Every frame of the radio was dropped before counting: its windows all read 0, and the fit
      // would fail on the data ("does not rise with people") without saying why.
      const gate = opts.rssiMinDbm;
      throw new TruthError(
        input.capture,
        null,
        weak === 0
          ? `none of its ${radioFrames} ${radio} frames is counted: all fail the FCS/CRC check or are malformed`
          : `none of its ${radioFrames} ${radio} frames is counted: ${weak} are weaker than --rssi-min ${gate} dBm${rejected ? `, ${rejected} fail the FCS/CRC check or are malformed` : ''}`,
        weak === 0
          ? `if the capture carries a stale FCS (its recorder kept one the radio did not check), pass --ignore-fcs`
          : `lower --rssi-min (to the gateway's rssi_min_dbm) or leave it out${rejected ? ', and pass --ignore-fcs if the capture carries a stale FCS' : ''}`,
      );
    }
    checkWithinCapture(truth, first, last, opts.windowMs ?? 60_000, input.capture);
    let paired = pairOccupancy(windows, truth, input.session ?? sessionName(input.capture), opts.zone);
    if (paired.length > 0 && input.session === undefined && (opts.sessionBy ?? 'day') === 'day') {
      const day = new Date(paired[0].start).toISOString().slice(0, 10);
      paired = paired.map((p) => ({ ...p, session: day }));
    }
    if (paired.length === 0) {
      const s = span(truth);
      throw new TruthError(
        input.truth,
        null,
        `no whole window lies between its first and last time (${new Date(s.start).toISOString()} .. ${new Date(s.end).toISOString()})`,
        'give a truth file covering at least a few windows',
      );
    }
    for (const w of paired) out.push(w); // (push(...paired) throws RangeError past ~100,000 windows)
  }
  return out;
}
