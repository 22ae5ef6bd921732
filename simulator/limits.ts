// What a simulated run may ask for, checked before anything runs by `presence simulate` and
// `presence demo`: a seed the generator takes as it is, a duration and a crowd the engine can hold,
// an output folder that is one (or can be made), and captures that fit: the size estimate. Each mistake is a UsageError: one line naming
// the flag and what it must be (scripts/lib/usage.ts).
import { decimal } from '../scripts/lib/decimal.ts';
import { accessSync, constants, mkdirSync, rmdirSync, statfsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../scripts/lib/usage.ts';
import { formatDuration } from '../scripts/lib/duration.ts';
import { nominalPeople, type ScenarioError, type Scenario } from './scenario.ts';
import { runScenario, type BleLink } from './sim.ts';
import { CLOCK_MAX_MS, CLOCK_MIN_MS } from '../gateway/window.ts';

/** The simulator's RNG takes a 32-bit seed: a seed is a whole number in that range (1.5 and 2^32 + 1 were seed 1). */
export const SEED_MAX = 0xffff_ffff;

/** Longest simulated time: the truth of every window is held until the run ends, and the engine samples every few seconds. */
export const DURATION_MAX_S = 31 * 86_400;

/** Most people a crowd may hold at its nominal peak: the engine keeps every person present in memory (~25 kB each). */
export const PEOPLE_MAX = 300_000;

/** Most virtual gateways of load mode: each is held in memory with its own generator (1e8 ran out of heap). */
export const LOAD_GATEWAYS_MAX = 100_000;

/** A seed flag's value: a whole number from 0 to SEED_MAX. */
export function seedOf(flag: string, v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'number' ? v : decimal(v);
  if (!Number.isInteger(n) || n < 0 || n > SEED_MAX)
    throw new UsageError(
      `${flag}: must be a whole number from 0 to ${SEED_MAX} (got "${v}")`,
      'the same seed gives byte-identical output; another seed, another crowd',
    );
  return n;
}

/** A simulated time of at most DURATION_MAX_S; `shown` is the flag and value as given. */
export function checkDuration(
  flag: string,
  seconds: number,
  shown: string,
  hint = 'simulate a longer period as several runs, each with its own --start',
): void {
  if (seconds > DURATION_MAX_S) throw new UsageError(`${flag}: at most ${formatDuration(DURATION_MAX_S * 1000)} (got "${shown}")`, hint);
}

/**
 * A scale whose crowd the engine cannot hold is refused before anything runs, naming the largest
 * that fits. `flag` is how the crowd was asked for: `--scale` (with `scaleText`) or `--people`.
 */
export function checkCrowd(s: Scenario, given: { people?: string | number; scale?: string | number }): void {
  const nominal = nominalPeople(s);
  // --scale 0 or --people 0 empties the crowds; with no fixed devices nothing is left to send a
  // frame, and the run wrote captures without one, without a word.
  if (s.scale === 0 && (given.scale !== undefined || given.people !== undefined) && !s.fixed.some((f) => f.count > 0)) {
    const flag = given.people !== undefined ? `--people ${given.people}` : `--scale ${given.scale}`;
    const instead = given.people !== undefined ? '--people 1 or more' : '--scale above 0, like --scale 0.01';
    throw new UsageError(
      `${flag}: ${s.name} has no fixed devices, so with its crowds emptied nothing would send a frame and the captures would be empty; give ${instead}`,
      "--scale multiplies the crowds, --people N scales them to a peak of N people; fixed devices (a scenario file's fixed:) are left alone by both",
    );
  }
  const peak = nominal * s.scale;
  if (!(peak > PEOPLE_MAX)) return;
  const byPeople = given.people !== undefined;
  const fits = (x: number) => {
    const r = Number(x.toPrecision(3));
    return r > x ? Number((x * 0.995).toPrecision(3)) : r;
  };
  const instead = byPeople ? `--people ${PEOPLE_MAX}` : `--scale ${fits(PEOPLE_MAX / nominal)}`;
  // A number past a trillion is shown as 3.00e+13 (a flow of speed 1e-300 gave a line of 400 digits).
  // Past the largest number (--scale 1e308 on King's Day) it said "Infinity people".
  const peakShown = peak < 1e12 ? Math.round(peak).toLocaleString('en') : Number.isFinite(peak) ? peak.toExponential(2) : 'more than 1e308';
  const peakText = `${peakShown} people at its peak; the simulator holds at most ${PEOPLE_MAX.toLocaleString('en')}`;
  // Neither flag: the crowd is the scenario's own (a file's occupancy or per_hour), so the line names
  // the scenario, not a --scale that was never given, and the crowd that holds the most.
  if (!byPeople && given.scale === undefined) {
    const shares = s.crowds.map((c) => nominalPeople({ crowds: [c] }));
    const most = shares.indexOf(Math.max(...shares));
    const what = s.crowds[most]?.type === 'flow' ? 'per_hour, or a higher speed (people on the way: per_hour x length / speed)' : 'occupancy';
    throw new UsageError(
      `${s.name}: its crowds would hold ${peakText} (--scale ${fits(PEOPLE_MAX / nominal)} or less, or in its file a smaller crowds[${most}].${what})`,
      'every person present is kept in memory; make the crowd smaller with --scale or --people',
    );
  }
  const flag = byPeople ? `--people ${given.people}` : `--scale ${given.scale}`;
  throw new UsageError(
    `${flag}: ${s.name} would hold ${peakText} (${instead} or less)`,
    'every person present is kept in memory; make the crowd smaller with --scale or --people',
  );
}

/** Most truth windows a run may have: the truth of every window and gateway is kept until the run ends (a month of 60-s windows is 44,640). */
export const WINDOWS_MAX = 50_000;

/** A --window so short for the run's --duration that its truth would not fit in memory is refused, naming the shortest that fits. */
export function checkWindows(s: Scenario, given: { window?: string; duration?: string }): void {
  const windows = Math.ceil(s.durationS / s.windowS);
  if (windows <= WINDOWS_MAX) return;
  const shortest = formatDuration(Math.ceil(s.durationS / WINDOWS_MAX) * 1000);
  throw new UsageError(
    `${given.window !== undefined ? `--window ${given.window}` : `${s.name}: window ${formatDuration(s.windowS * 1000)}`}: ${windows.toLocaleString('en')} windows over ${formatDuration(s.durationS * 1000)}; the simulator keeps the truth of at most ${WINDOWS_MAX.toLocaleString('en')} (--window ${shortest} or longer)`,
    'give a longer --window or a shorter --duration',
  );
}

/** A scenario's run as the flags made it: its crowd, its start and its windows (checkCrowd, checkStart, checkWindows). */
export function checkRun(s: Scenario, given: { people?: string | number; scale?: string | number; start?: string; window?: string; duration?: string }): void {
  // --duration is checked as a flag; a scenario file's own duration is held to the same month
  if (given.duration === undefined)
    checkDuration(
      `${s.name}: duration`,
      s.durationS,
      formatDuration(s.durationS * 1000),
      'give a --duration of at most 31d, or simulate the period as several runs, each with its own --start',
    );
  checkCrowd(s, given);
  checkStart(s, given.start);
  checkWindows(s, given);
}

/** A run's simulated time must lie in 2000-2099: the gateway counts no frame stamped outside it (and classic pcap ends in 2106). */
export function checkStart(s: Scenario, given: string | undefined): void {
  const endMs = s.startMs + s.durationS * 1000;
  if (s.startMs >= CLOCK_MIN_MS && endMs <= CLOCK_MAX_MS) return;
  const what = given !== undefined ? `--start ${given}` : `${s.name}: start ${Number.isFinite(s.startMs) ? new Date(s.startMs).toISOString() : s.startMs}`;
  throw new UsageError(
    `${what}: the run must lie in the years 2000 to 2099, like --start 2026-04-27T10:00:00Z (a gateway and presence replay count no frame stamped outside them)`,
    'give a --start in 2000-2099 whose run ends by 2100',
  );
}

/** A scenario file's mistakes as a usage error: one line per problem naming the file and the field. */
export function scenarioUsageError(e: ScenarioError): UsageError {
  return new UsageError(
    e.problems.map((_, i) => e.lineOf(i)).join('\n'),
    'simulator/README.md, "Sample scenario", shows every key; presence simulate --list names the built-in scenarios',
  );
}

/**
 * An output folder: an existing one, or the folders to make under the nearest one that exists;
 * made here (one level at a time: Node's recursive mkdir never returns under /proc). Returns the
 * folders it made, so a run refused afterwards can take them away again (removeDirs).
 */
export function makeOutDir(flag: string, dir: string): string[] {
  const missing: string[] = [];
  let p = resolve(dir);
  const hint = 'give a folder you can write to (it is made when missing)';
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOTDIR: a file on the way up, named by the next step
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(p) === p)
        throw new UsageError(`${flag} ${dir}: cannot use ${p} (${code ?? (e as Error).message})`, hint);
      missing.unshift(p);
      p = dirname(p);
      continue;
    }
    if (!isDir) throw new UsageError(`${flag} ${dir}: ${missing.length ? `${p} is a file, not a folder` : 'is a file, not a folder'}`, hint);
    try {
      accessSync(p, constants.W_OK);
    } catch {
      throw new UsageError(
        `${flag} ${dir}: ${missing.length ? `cannot create the folder ${missing[0]}: ${p} is not writable` : 'the folder is not writable'}`,
        hint,
      );
    }
    break;
  }
  const made: string[] = [];
  for (const m of missing) {
    try {
      mkdirSync(m);
      made.push(m);
    } catch (e) {
      removeDirs(made);
      throw new UsageError(`${flag} ${dir}: cannot create the folder ${m} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, hint);
    }
  }
  return made;
}

/** Takes away the (empty) folders makeOutDir made, innermost first. */
export function removeDirs(made: string[]): void {
  for (const d of [...made].reverse())
    try {
      rmdirSync(d);
    } catch {
      // not empty or gone: left as it is
    }
}

/** Output larger than this needs --yes. */
export const SIZE_GUARD_BYTES = 200 * 1024 * 1024;

export function formatBytes(n: number): string {
  if (n >= 1024 ** 4) return `${(n / 1024 ** 4).toFixed(1)} TB`;
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(0)} kB`;
  return `${n} bytes`;
}

/** Engine frames the estimate may run through (a few seconds); past them it projects what it counted over the whole run. */
export const ESTIMATE_BUDGET_FRAMES = 1_000_000;

/** Longest window the estimate counts in: where it may stop (a minute of any built-in crowd is far below the budget). */
export const ESTIMATE_WINDOW_S = 60;

/** What a run will write: counted (exact), scaled up from a fraction of the crowd, or projected from its first part. */
export interface OutputEstimate {
  frames: number;
  bytes: number;
  /** The share of the crowd the count ran with (1: all of it). */
  fraction: number;
  exact: boolean;
  /** The count stopped after ESTIMATE_BUDGET_FRAMES: frames and bytes are its rate up to reachedS, over the whole run. */
  projected: boolean;
  /** Simulated seconds the count reached (the run's duration unless projected). */
  reachedS: number;
}

/**
 * Frames and bytes a run will write, before writing: the engine (no files) on the same scenario with
 * a fraction of its crowd, scaled up; a fraction of 1 when a small run gives too few frames to scale
 * (then exact). Frames grow with the crowd, so a 1% crowd costs about 1% of the run.
 * A sample is scaled up only from 50,000 crowd frames: a few dozen people make far more or fewer
 * frames than their share (kingsday-square --scale 0.05 --duration 30m at 10%: 456,377 frames
 * estimated, 283,512 written; at --scale 0.1 from 1%: 2.6 million for 548,000). Below that the next
 * fraction runs, so the estimate costs at most an engine run of about 500,000 frames (about a second)
 * beside the 1% one.
 * The count runs through at most `budget` engine frames, half of them for the fixed equipment (a
 * month of quiet-night's beacons is tens of millions): past them it stops at a window end and
 * projects the bytes per simulated second it counted over the whole run (`projected`), the fixed
 * equipment's at its own rate. A large crowd takes about 20 s of CPU to reach the budget (300,000
 * people, 28 Nov): `onFrames` hears the engine frames run so far, every 16,384, for a progress bar.
 */
export function estimateOutput(
  scenario: Scenario,
  seed: number,
  bleLink: BleLink,
  format: 'pcap' | 'pcapng',
  budget = ESTIMATE_BUDGET_FRAMES,
  onFrames?: (spent: number) => void,
): OutputEstimate {
  // per record: pcap 16-byte header; pcapng Enhanced Packet Block 32 bytes + padding to 4
  const overhead = format === 'pcap' ? 16 : 34;
  let spent = 0;
  // Frames and bytes up to each window end, and the simulated time of that end.
  type Mark = { frames: number; bytes: number; endS: number };
  type Run = { frames: number; bytes: number; at: Mark[]; stopped: boolean };
  // crowdOnly: the scenario without its fixed equipment, so a sample of the crowd is counted on its own.
  const count = (scale: number, limit: number, crowdOnly = false): Run => {
    const r: Run = { frames: 0, bytes: 0, at: [], stopped: false };
    // Counted in windows of at most a minute whatever the run's --window (the frames do not depend on
    // it): the count can only stop at a window end, and one 31-day window ran all of it, for many minutes.
    const run = { ...scenario, scale, windowS: Math.min(scenario.windowS, ESTIMATE_WINDOW_S), ...(crowdOnly && { fixed: [] }) };
    const it = runScenario(run, { seed, bleLink });
    for (let e = it.next(); !e.done; e = it.next())
      if (e.value.type === 'frame') {
        r.frames++;
        r.bytes += e.value.frame.data.length + overhead;
        if (onFrames && (r.frames & 16383) === 0) onFrames(spent + r.frames);
      } else {
        const w = e.value.windows[0];
        r.at.push({ frames: r.frames, bytes: r.bytes, endS: w ? (Date.parse(w.end) - scenario.startMs) / 1000 : 0 });
        if (r.frames > limit) {
          r.stopped = true;
          break;
        }
      }
    spent += r.frames;
    return r;
  };
  const duration = scenario.durationS;
  // Fixed equipment (beacons, printers) does not scale with the crowd: counted once, at scale 0.
  const base = count(0, budget / 2);
  const baseEnd = base.at.length ? base.at[base.at.length - 1].endS : 0;
  // The fixed equipment's frames and bytes up to a window end: counted, or at its rate past where its count stopped.
  const baseAt = (i: number, endS: number): { frames: number; bytes: number } =>
    i < base.at.length ? base.at[i] : { frames: (base.frames * endS) / baseEnd, bytes: (base.bytes * endS) / baseEnd };
  const baseAll = base.stopped ? baseAt(Number.POSITIVE_INFINITY, duration) : base;
  for (const fraction of [0.01, 0.1, 1]) {
    // A share of the crowd is counted without the fixed equipment, so the budget's stop comes from crowd
    // frames: with the equipment in, a month of quiet-night's beacons stopped the 1% count (0.06 people)
    // and the estimate left the crowd out (a day: 1,737,099 frames said, 2,048,366 written). The whole
    // crowd is counted with the equipment, as the run itself, so a small run's count is exact.
    const sample = fraction < 1;
    const part = count(sample ? scenario.scale * fraction : scenario.scale, Math.max(1, budget - spent), sample);
    if (part.stopped) {
      // The crowd's frames so far (the part's, less the fixed equipment's to the same window end when it
      // ran with it), scaled up, then over the whole run.
      const i = part.at.length - 1;
      const reachedS = part.at[i].endS;
      const fixed = baseAt(i, reachedS);
      const crowd = sample ? part : { frames: Math.max(0, part.frames - fixed.frames), bytes: Math.max(0, part.bytes - fixed.bytes) };
      const over = reachedS > 0 ? duration / reachedS : 1;
      return {
        frames: Math.round((fixed.frames + crowd.frames / fraction) * over),
        bytes: Math.round((fixed.bytes + crowd.bytes / fraction) * over),
        fraction,
        exact: false,
        projected: true,
        reachedS,
      };
    }
    const crowdFrames = sample ? part.frames : part.frames - baseAll.frames;
    const crowdBytes = sample ? part.bytes : part.bytes - baseAll.bytes;
    if (fraction === 1 || crowdFrames >= 50_000)
      return {
        frames: Math.round(baseAll.frames + crowdFrames / fraction),
        bytes: Math.round(baseAll.bytes + crowdBytes / fraction),
        fraction,
        exact: fraction === 1 && !base.stopped,
        projected: base.stopped,
        reachedS: base.stopped ? baseEnd : duration,
      };
  }
  throw new Error('unreachable');
}

/** Bytes free for an unprivileged writer on the file system that holds `dir` (or its nearest existing parent). */
export function freeBytes(dir: string): number {
  let p = resolve(dir);
  for (;;) {
    try {
      const f = statfsSync(p);
      return f.bavail * f.bsize;
    } catch {
      if (dirname(p) === p) return Number.POSITIVE_INFINITY;
      p = dirname(p);
    }
  }
}

/** A run whose captures would not fit on the disk is refused before it writes anything (whatever --yes says);
 *  `parts` says what the bytes count (in the message, after the figure). */
export function checkDisk(dir: string, bytes: number, what: string, hint: string, parts?: string): void {
  const free = freeBytes(dir);
  if (bytes > free)
    throw new UsageError(
      `${what} would write about ${formatBytes(bytes)}${parts ? ` (${parts})` : ''}, more than the ${formatBytes(free)} free on the file system of ${dir}`,
      hint,
    );
}
