// `presence replay FILE`: feeds a pcap/pcapng capture through the firmware and prints the counts of
// each window. Windows follow the capture clock: their boundaries fall on multiples of the window
// length (UTC), and each one is counted under a fresh random key that dies with it (the window
// clock of gateway/window.ts, as in the gateway). Only counts are
// printed: never an address, a hash or a key.

import { decimal } from '../scripts/lib/decimal.ts';
import { exitUsage, outputFailedLine, printable } from '../scripts/lib/usage.ts';
import { keepMemoryOutOfCoreDumps, refuseMemoryDumpOption } from '../scripts/lib/coredump.ts';
import { progressBar } from '../scripts/lib/progress.ts';
import { unreadableProblem } from '../scripts/lib/readable.ts';
import type { ReplayPeople } from '../aggregator/calibration/hooks.ts';
import { createReadStream, statSync } from 'node:fs';
import type { Command } from 'commander';
import { Firmware } from '../firmware/host/firmware.ts';
import type { FirmwareRadioCounts, FirmwareWindowCounts, Frame } from '../firmware/host/types.ts';
import { BURST_ADDRESSES_MAX, BURST_ADDRESSES_MIN } from '../firmware/host/types.ts';
import { alignDown, isClockTime, MAX_HELD_OFF_CLOCK, WindowClock, type ClosedWindow } from './window.ts';

/** A time (ms) a Date can hold: +-8.64e15 ms (ECMAScript's time range). */
const isDateTime = (t: number) => Math.abs(t) <= 8.64e15;

export { MAX_EMPTY_WINDOWS } from './window.ts';
import {
  CaptureFormatError,
  CaptureParser,
  captureDamageFix,
  isSupportedLinkType,
  linkTypeName,
  unsupportedLinkType,
  UnsupportedLinkTypeError,
} from './capture/pcap.ts';
import { DURATION_HINT, durationMs, durationNote } from '../scripts/lib/duration.ts';

export interface ReplayOptions {
  /** Window length in milliseconds, or 'all' for one window over the whole capture. */
  window: number | 'all';
  ignoreFcs?: boolean;
  rssiMinDbm?: number;
  /** Addresses of one scan burst the capturing radio hears (the Wi-Fi estimate's floor divisor; default 7). */
  burstAddresses?: number;
}

export interface ReplayRadio {
  frames: number;
  rejected: number;
  weak: number;
  devices: number;
  estimate: number;
  exact: boolean;
}

/** One window's counts: what `replay --json` prints per line. */
export interface ReplayWindow {
  /** ISO 8601; null only for a capture without frames. */
  start: string | null;
  end: string | null;
  wifi: ReplayRadio & { probes: number };
  ble: ReplayRadio & { adverts: number };
  /** Frames of link types (or PPI contents) the firmware does not parse. */
  unsupported: number;
  /**
   * False for a window the capture began or ended inside (its first frame came after the window's
   * start; the last window, the one a damaged or failed read ends, and the one a skipped jump of the
   * clock begins at its first frame), as a gateway marks the window
   * it started or stopped in: its counts cover part of the window. With --window all, true.
   */
  complete: boolean;
}

function radio(c: FirmwareRadioCounts) {
  return { frames: c.frames, rejected: c.rejected, weak: c.weak, devices: c.devices, estimate: c.estimate, exact: c.exact };
}

function toWindow(start: number | null, end: number | null, c: FirmwareWindowCounts, complete: boolean): ReplayWindow {
  const { accepted: probes } = c.wifi;
  const { accepted: adverts } = c.ble;
  return {
    start: start === null ? null : new Date(start).toISOString(),
    end: end === null ? null : new Date(end).toISOString(),
    wifi: { ...radio(c.wifi), probes },
    ble: { ...radio(c.ble), adverts },
    unsupported: c.unsupported,
    complete,
  };
}

/** Notes about the replay (unsupported link types, clock jumps): meant for stderr. */
export type ReplayNote = (message: string) => void;

/**
 * Counts frame batches window by window on the capture clock (gateway/window.ts WindowClock: the
 * firmware draws a fresh key for every window). Frames whose timestamp goes backwards stay in the
 * current window; a jump of the clock past more than MAX_EMPTY_WINDOWS empty windows skips them
 * with a note. Yields each window as it closes; when the capture turns out damaged
 * (CaptureFormatError) the window in progress is yielded with the frames before the damage, then
 * the error is thrown.
 */
export async function* replayFrames(
  batches: AsyncIterable<Frame[]> | Iterable<Frame[]>,
  firmware: Firmware,
  opts: ReplayOptions,
  note: ReplayNote = () => {},
): AsyncGenerator<ReplayWindow> {
  const all = opts.window === 'all';
  const clock = new WindowClock(firmware, {
    windowMs: opts.window,
    windowOptions: {
      ignoreFcs: opts.ignoreFcs,
      rssiMinDbm: opts.rssiMinDbm,
      ...(opts.burstAddresses !== undefined ? { burstAddresses: opts.burstAddresses } : {}),
    },
    onJump: (j) =>
      note(`the capture clock jumps from ${new Date(j.from).toISOString()} to ${new Date(j.to).toISOString()}: ${j.skipped} empty windows not printed`),
  });
  let last: number | null = null; // latest frame time that moved the clock ('all' ends there)
  // Frames stamped outside 2000-2099 do not move the clock, as in the gateway: they are counted in
  // the window open when they come, or held (at most MAX_HELD_OFF_CLOCK) for the first window. A
  // capture with no frame on the clock among its first MAX_HELD_OFF_CLOCK (or at all; a recorder
  // whose clock was never set) is replayed on its own clock instead, where the gateway counts none;
  // there a time no date can hold (past +-8.64e15 ms), or whose window would start or end past it,
  // does not move the clock either.
  const st: { mode: 'undecided' | 'clock' | 'own' } = { mode: 'undecided' };
  const held: Frame[] = [];
  let offClock = 0; // frames that did not move the clock
  let dropped = 0;
  // On its own clock a frame moves the clock only when its window's start and end are dates too (a
  // 7-day window of a frame stamped in the last days a date can hold would end past them).
  const dated = (t: number) =>
    all || (isDateTime(alignDown(t, opts.window as number)) && isDateTime(alignDown(t, opts.window as number) + (opts.window as number)));
  const fits = (t: number) => (st.mode === 'own' ? isDateTime(t) && dated(t) : isClockTime(t));
  // Replay prints whole aligned windows (the first and last too); 'all' spans first to last frame.
  // The first window is cut short unless its first frame came at its very start; the last (or the
  // one a failed read ends) always is, since the capture stopped inside it; so is the one a skipped
  // jump of the clock opens at its first frame (the window clock says so), as the gateway publishes it.
  let firstAt: number | null = null;
  let closed = 0;
  const out = (w: ClosedWindow | null, framed: boolean, ends = false) => {
    const first = closed++ === 0;
    return toWindow(
      framed ? w!.nominalStart : null,
      framed ? (all ? last : w!.nominalEnd) : null,
      w!.counts,
      all ? framed : !ends && w!.complete && (!first || firstAt === w!.nominalStart),
    );
  };
  /** A frame whose time fits the clock: moves it (opening the first window, with the frames held for it). */
  function* place(frame: Frame): Generator<ReplayWindow> {
    const t = frame.timestampMs;
    if (!clock.window) {
      clock.open(all ? t : alignDown(t, opts.window as number));
      firstAt = t;
      if (st.mode === 'undecided') st.mode = 'clock';
      for (const f of held.splice(0)) firmware.ingest(f);
    } else if (t >= clock.end) for (let w: ClosedWindow | null; (w = clock.step(t)); ) yield out(w, true);
    if (last === null || t > last) last = t;
    firmware.ingest(frame);
  }
  /** A frame whose time does not fit: into the open window, else held for the first one. */
  function* aside(frame: Frame): Generator<ReplayWindow> {
    if (!clock.window && held.length >= MAX_HELD_OFF_CLOCK && st.mode === 'undecided') {
      note(
        `the first ${MAX_HELD_OFF_CLOCK} frames are stamped outside 2000-2099: windows follow the capture's own clock (a gateway counts no frame before the first one stamped in 2000-2099)`,
      );
      yield* ownClock();
      yield* (fits(frame.timestampMs) ? place : aside)(frame);
      return;
    }
    offClock++;
    if (clock.window) firmware.ingest(frame);
    else if (held.length < MAX_HELD_OFF_CLOCK) held.push(frame);
    else dropped++;
  }
  /** Replays what was held, and what comes, on the capture's own clock. */
  function* ownClock(): Generator<ReplayWindow> {
    st.mode = 'own';
    const waiting = held.splice(0);
    offClock -= waiting.length;
    for (const f of waiting) yield* (fits(f.timestampMs) ? place : aside)(f);
  }
  try {
    for await (const batch of batches) for (const frame of batch) yield* (fits(frame.timestampMs) ? place : aside)(frame);
    if (st.mode === 'undecided' && held.length > 0) {
      note(`no frame of the capture is stamped in 2000-2099: windows follow the capture's own clock (a gateway counts none of its ${held.length} frame(s))`);
      yield* ownClock();
    }
    const counted = offClock - dropped;
    if (!clock.window && held.length > 0)
      note(`no frame of the capture has a time a date can hold, with its window's start and end: its ${held.length + dropped} frame(s) were not counted`);
    else if (counted > 0)
      note(
        `${counted} frame(s) ${st.mode === 'clock' ? 'stamped outside 2000-2099' : 'with a time no date can hold (or its window)'}: counted in the window open when they came (or the first one), the clock ignores their time`,
      );
    if (clock.window && dropped > 0)
      note(
        `${dropped} frame(s) with a time no date can hold came before any other and were not counted (at most ${MAX_HELD_OFF_CLOCK} wait for the first window)`,
      );
    held.length = 0;
    if (clock.window) yield out(clock.close(), true, true);
    else if (all) {
      // a capture without frames: one window of zeros
      clock.open(0);
      yield out(clock.close(), false);
    }
  } catch (err) {
    // Close the window (wiping its hashes) before passing the error on. A damaged or cut capture
    // still yields the counts of the frames before the damage: accepted data is never lost.
    // So does one whose reading failed (EIO from a device or a disk): its window was lost before.
    const w = clock.close();
    if (w && (err instanceof CaptureFormatError || typeof (err as NodeJS.ErrnoException).syscall === 'string')) yield out(w, true, true);
    throw err;
  } finally {
    // The consumer stopped early (break, closed pipe): still wipe the window.
    clock.close();
  }
}

/**
 * Reads a capture stream and yields frame batches, raising UnsupportedLinkTypeError when the capture
 * holds no link type the firmware parses (a mix only gets a note: the others count as unsupported).
 */
export async function* captureBatches(input: AsyncIterable<Uint8Array>, source: string, note: ReplayNote = () => {}): AsyncGenerator<Frame[]> {
  const parser = new CaptureParser(source);
  parser.onCut = (offset, read) => {
    if (parser.cutRecords === 1)
      note(
        `${source}: a capture began again inside a record at byte offset ${offset} (its writer was killed in the middle of it and restarted): ${read ? 'that record was counted as one frame (the cut was in its last bytes)' : 'that record was dropped'}, the frames after it are counted`,
      );
  };
  const noted = new Set<number>();
  for await (const chunk of input) {
    const frames = parser.push(chunk);
    for (const lt of parser.linkTypes) {
      if (isSupportedLinkType(lt) || noted.has(lt)) continue;
      if (![...parser.linkTypes].some(isSupportedLinkType)) throw unsupportedLinkType(lt, source);
      noted.add(lt);
      note(`${source}: frames of link type ${linkTypeName(lt)} are not parsed (counted as unsupported)`);
    }
    if (frames.length > 0) yield frames;
  }
  const last = parser.flush();
  if (last.length > 0) yield last;
  parser.end();
}

/** Replays a capture file ('-' reads stdin). */
export async function* replayCapture(
  path: string,
  opts: ReplayOptions,
  note: ReplayNote = () => {},
  onBytes?: (n: number) => void,
): AsyncGenerator<ReplayWindow> {
  const firmware = await Firmware.load();
  const stream = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: 256 * 1024 });
  const source = path === '-' ? 'stdin' : path;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of stream) {
      onBytes?.(chunk.length);
      yield chunk as Uint8Array;
    }
  }
  yield* replayFrames(captureBatches(counted(), source, note), firmware, opts, note);
}

/** The longest --window: 100 years, the span of the clock a gateway counts on (2000-2099). */
export const REPLAY_WINDOW_MAX_MS = 36_525 * 86_400_000;

/** "60s", "5m", "1h", "500ms" -> milliseconds (scripts/lib/duration.ts); 'all' stays 'all'. */
export function parseWindow(text: string): number | 'all' {
  if (text === 'all') return 'all';
  const ms = durationMs(text);
  if (Number.isNaN(ms)) throw new Error(`--window: ${DURATION_HINT}, or "all" (got "${text}")${durationNote(text)}`);
  // A longer window ends past any date ("Invalid time value" when its end was printed)
  if (ms > REPLAY_WINDOW_MAX_MS) throw new Error(`--window: must be at most 36525d, 100 years (got "${text}"); "all" is one window over the whole capture`);
  return ms;
}

function parseBurstAddresses(text: string): number {
  const v = decimal(text);
  if (!Number.isFinite(v) || v < BURST_ADDRESSES_MIN || v > BURST_ADDRESSES_MAX) {
    throw new Error(`--burst-addresses: must be a number from ${BURST_ADDRESSES_MIN} to ${BURST_ADDRESSES_MAX}, like 2.8 (got "${text}")`);
  }
  return v;
}

function parseRssi(text: string): number {
  const v = decimal(text);
  if (!Number.isFinite(v) || v < -128 || v > 127) {
    throw new Error(`--rssi-min: must be a signal level in dBm between -128 and 127, like -80 (got "${text}")`);
  }
  return v;
}

/**
 * Rows per printed table: a longer replay is printed as one table of this many windows after the
 * other, each with its header, as they are counted. One table of every window was held until the
 * end (memory growing with the capture) and cli-table3 overflowed the stack at about 150,000 rows.
 */
export const TABLE_PAGE_ROWS = 1_000;

async function humanTable(windows: AsyncIterable<ReplayWindow>, out: NodeJS.WritableStream, people: ReplayPeople | null = null, weak = false): Promise<void> {
  const { default: Table } = await import('cli-table3');
  // Headed by what the numbers are: the JSON fields devices (distinct addresses) and estimate
  // (devices present, averaged over the window). Neither is people. With --rssi-min, the frames it
  // left out (weak) too: without them a window read, say, 9 probes and 0 addresses, unexplained.
  const w = weak ? ['weak'] : [];
  const newTable = () =>
    new Table({
      head: [
        'start',
        'end',
        'wifi frames',
        'probes',
        'rejected',
        ...w,
        'addresses',
        'devices present',
        'ble frames',
        'adverts',
        'rejected',
        ...w,
        'addresses',
        'devices present',
        ...(people ? ['people (calibrated)'] : []),
      ],
      style: { head: [], border: [] },
    });
  // One line above the first table says what its counts are and that they are uncalibrated, as the
  // demo's table does: "devices present" alone read as the crowd to someone who never saw the JSON.
  let caption: string | null = tableCaption(people);
  const write = (t: string) => {
    out.write(caption === null ? `${t}\n` : `${caption}\n${t}\n`);
    caption = null;
  };
  let table = newTable();
  let printed = 0;
  const page = {
    push(row: Array<string | number>) {
      table.push(row);
      if (table.length < TABLE_PAGE_ROWS) return;
      write(table.toString());
      printed++;
      table = newTable();
    },
  };
  // Each table is written once full, and the last at the end, also when the capture turns out
  // damaged: the windows counted before the damage (replayFrames yields them before it throws) are
  // printed, then the error (no table when nothing was counted: a file that is no capture at all).
  try {
    await tableRows(windows, page, people, weak);
  } catch (e) {
    if (table.length > 0) write(table.toString());
    throw e;
  }
  if (table.length > 0 || printed === 0) write(table.toString());
}

/** The line above the table: what addresses and devices present are, uncalibrated, and where people come from. */
export function tableCaption(people: Pick<ReplayPeople, 'radio'> | null): string {
  const counts =
    'counts per window and radio: addresses (distinct addresses heard, the JSON field devices) and devices present (the estimate, averaged over the window), both uncalibrated: devices, not people';
  return people
    ? `${counts}; people (calibrated): from the ${people.radio === 'ble' ? 'BLE' : 'Wi-Fi'} devices present by --calibration, with its prediction interval (low..high)`
    : `${counts} (--calibration FILE --zone ZONE adds people)`;
}

async function tableRows(
  windows: AsyncIterable<ReplayWindow>,
  table: { push(row: Array<string | number>): unknown },
  people: ReplayPeople | null,
  weak: boolean,
): Promise<void> {
  for await (const w of windows) {
    const d = (r: ReplayRadio) => `${r.devices}${r.exact ? '' : ' (est.)'}`;
    const p = people?.(w).people;
    table.push([
      // (part): the capture began or ended inside the window, so its counts cover part of it
      w.start === null ? '-' : w.complete ? w.start : `${w.start} (part)`,
      w.end ?? '-',
      w.wifi.frames,
      w.wifi.probes,
      w.wifi.rejected,
      ...(weak ? [w.wifi.weak] : []),
      d(w.wifi),
      w.wifi.estimate,
      w.ble.frames,
      w.ble.adverts,
      w.ble.rejected,
      ...(weak ? [w.ble.weak] : []),
      d(w.ble),
      w.ble.estimate,
      ...(p ? [`${p.value} (${p.low}..${p.high})`] : []),
    ]);
  }
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description(
      'Count the distinct addresses and estimate the devices present in a pcap/pcapng capture, window by window, as a table (1,000 windows to a table, printed as they are counted) or --json (counts only, never an address; not people: --calibration adds people from a calibration file)',
    )
    .argument('<file>', 'capture file (pcap or pcapng), or - for stdin')
    .option('--window <duration>', 'window length aligned to the capture clock, e.g. 60s, 5m (at most 36525d), or "all"', '60s')
    .option('--json', 'one JSON object per window per line')
    .option('--ignore-fcs', 'count Wi-Fi frames whose FCS check fails (captures with a stale FCS)')
    .option('--rssi-min <dBm>', 'drop frames whose signal is known and below this')
    .option(
      '--burst-addresses <n>',
      "addresses of one scan burst the capturing radio heard, the Wi-Fi estimate's floor divisor, 1 to 64 (default 7: three radios fixed on channels 1, 6 and 11; gateway/README.md, estimator.burst_addresses)",
    )
    .option(
      '--calibration <file>',
      'calibration file (presence calibrate): add calibrated people to each window, with the prediction interval of its people (low, high) at the level the file gives',
    )
    .option('--zone <name>', 'zone of the capture in the calibration file')
    .action(
      async (
        file: string,
        flags: { window: string; json?: boolean; ignoreFcs?: boolean; rssiMin?: string; burstAddresses?: string; calibration?: string; zone?: string },
      ) => {
        // `presence replay x.pcap | head`: a closed pipe ends the replay quietly
        process.stdout.on('error', (e: NodeJS.ErrnoException) => {
          if (e.code === 'EPIPE') process.exit(0);
          // a full disk behind `> out.txt`: one line, not a stack trace; nothing more to print, so stop
          process.stderr.write(outputFailedLine('replay', e));
          process.exit(1);
        });
        // A live pipe (`tcpdump ... | presence replay -`) brings frames that are on no disk: a core
        // dump must not put them there, nor the windows' keys and hashes; nor a node option.
        refuseMemoryDumpOption('replay');
        const coreDumps = keepMemoryOutOfCoreDumps();
        if (coreDumps) process.stderr.write(`presence replay: cannot keep memory out of core dumps: ${coreDumps}\n`);
        // A mistake in the call (a flag, a missing file): one line, one hint, exit 2.
        const fail = (message: string): never => exitUsage('replay', new Error(message));
        let opts: ReplayOptions;
        try {
          opts = {
            window: parseWindow(flags.window),
            ignoreFcs: flags.ignoreFcs === true,
            rssiMinDbm: flags.rssiMin === undefined ? undefined : parseRssi(flags.rssiMin),
            ...(flags.burstAddresses === undefined ? {} : { burstAddresses: parseBurstAddresses(flags.burstAddresses) }),
          };
        } catch (e) {
          return fail((e as Error).message);
        }
        let people: ReplayPeople | null = null;
        if (flags.calibration) {
          try {
            const { replayPeople } = await import('../aggregator/calibration/hooks.ts');
            people = replayPeople(flags.calibration, flags.zone, opts.window, opts.rssiMinDbm, opts.burstAddresses);
          } catch (e) {
            // (with the hint the error carries: a calibration file that does not read has its own fix)
            return exitUsage('replay', new Error((e as Error).message), (e as { hint?: string }).hint);
          }
        } else if (flags.zone) return fail('--zone goes with --calibration FILE');
        let total = 0;
        if (file !== '-') {
          try {
            const st = statSync(file);
            if (st.isDirectory()) return fail(`${file}: is a folder, not a capture file`);
            const unreadable = unreadableProblem(file);
            if (unreadable) return fail(`${file}: ${unreadable}`);
            total = st.size;
          } catch (e) {
            return fail(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'the file does not exist' : (e as Error).message}`);
          }
        }
        const notes: string[] = [];
        const note = (m: string) => notes.push(m);
        if (people?.note) note(people.note);
        // Progress bar on stderr for long files, only on a terminal.
        let bar = await progressBar('replay', total, 'bytes', total > 4 * 1024 * 1024);
        let done = 0;
        const windows = replayCapture(file, opts, note, (n) => {
          done += n;
          bar?.update(done);
        });
        let unsupported = 0;
        const heard = { wifi: 0, ble: 0 };
        try {
          let wifiRejected = 0;
          async function* tally(): AsyncGenerator<ReplayWindow> {
            for await (const w of windows) {
              unsupported += w.unsupported;
              heard.wifi += w.wifi.frames;
              heard.ble += w.ble.frames;
              wifiRejected += w.wifi.rejected;
              yield w;
            }
          }
          if (flags.json) {
            for await (const w of tally()) process.stdout.write(JSON.stringify(people ? { ...w, ...people(w) } : w) + '\n');
          } else {
            await humanTable(tally(), process.stdout, people, opts.rssiMinDbm !== undefined);
          }
          if (people && heard[people.radio] === 0) {
            // People of a radio the capture never heard read an empty radio, not an empty place.
            const other = people.radio === 'wifi' ? 'ble' : 'wifi';
            note(
              `the capture holds no ${people.radio} frames, and ${flags.calibration} maps ${people.radio} counts to people: every people value above reads a radio that heard nothing, not the people there; fix: use a calibration of the ${other} counts`,
            );
          }
          if (heard.wifi > 0 && wifiRejected === heard.wifi && !opts.ignoreFcs) {
            // every Wi-Fi frame rejected: most often a capture whose FCS the driver flagged but did not update
            note(
              `all ${heard.wifi} Wi-Fi frames were rejected (bad FCS, truncated or malformed), so nothing was counted; if the capture carries a stale FCS, replay it with --ignore-fcs`,
            );
          }
          if (unsupported > 0) {
            note(
              `${unsupported} frame(s) were not parsed: their link type, or the link type inside PPI, is not one the firmware parses (inside PPI: 105, 127, 147, 251, 256)`,
            );
          }
        } catch (e) {
          bar?.stop();
          bar = null;
          // The capture itself is bad or unreadable, or the firmware build is missing: not a mistake in
          // the call, so no hint and exit 1 (the counts of the complete frames are already out).
          const message =
            e instanceof CaptureFormatError
              ? `${e.message}; fix: ${captureDamageFix(e.damage, heard.wifi + heard.ble + unsupported)}`
              : e instanceof UnsupportedLinkTypeError
                ? `${e.message}; fix: replay a capture of probe requests or BLE advertisements in one of those link types (a Wi-Fi interface in monitor mode records 127, radiotap)`
                : (e as NodeJS.ErrnoException).syscall
                  ? `${file}: ${(e as Error).message} (after byte offset ${done}); ${
                      heard.wifi + heard.ble + unsupported > 0 ? 'the frames read before it were counted, none after it' : 'no frame was read before it'
                    }`
                  : e instanceof Error
                    ? e.message
                    : String(e);
          process.stderr.write(`presence replay: ${printable(message)}\n`);
          process.exitCode = 1;
          return;
        } finally {
          bar?.stop();
          for (const m of notes) process.stderr.write(`presence replay: note: ${printable(m)}\n`);
        }
      },
    );
}
