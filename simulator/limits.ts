// What a simulated run may ask for, checked before anything runs by `presence simulate` and
// `presence demo`: a seed the generator takes as it is, a duration and a crowd the engine can hold,
// and an output folder that is one (or can be made). Each mistake is a UsageError: one line naming
// the flag and what it must be (scripts/lib/usage.ts).
import { accessSync, constants, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../scripts/lib/usage.ts';
import { formatDuration } from '../scripts/lib/duration.ts';
import { nominalPeople, type ScenarioError, type Scenario } from './scenario.ts';

/** The simulator's RNG takes a 32-bit seed: a seed is a whole number in that range (1.5 and 2^32 + 1 were seed 1). */
export const SEED_MAX = 0xffff_ffff;

/** Longest simulated time: the truth of every window is held until the run ends, and the engine samples every few seconds. */
export const DURATION_MAX_S = 31 * 86_400;

/** Most people a crowd may hold at its nominal peak: the engine keeps every person present in memory (~25 kB each). */
export const PEOPLE_MAX = 300_000;

/** A seed flag's value: a whole number from 0 to SEED_MAX. */
export function seedOf(flag: string, v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (String(v).trim() === '' || !Number.isInteger(n) || n < 0 || n > SEED_MAX)
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
  const peak = nominal * s.scale;
  if (!(peak > PEOPLE_MAX)) return;
  const byPeople = given.people !== undefined;
  const flag = byPeople ? `--people ${given.people}` : `--scale ${given.scale}`;
  const fits = (x: number) => {
    const r = Number(x.toPrecision(3));
    return r > x ? Number((x * 0.995).toPrecision(3)) : r;
  };
  const instead = byPeople ? `--people ${PEOPLE_MAX}` : `--scale ${fits(PEOPLE_MAX / nominal)}`;
  throw new UsageError(
    `${flag}: ${s.name} would hold ${Math.round(peak).toLocaleString('en')} people at its peak; the simulator holds at most ${PEOPLE_MAX.toLocaleString('en')} (${instead} or less)`,
    'every person present is kept in memory; make the crowd smaller with --scale or --people',
  );
}

/** A scenario file's mistakes as a usage error: one line per problem naming the file and the field. */
export function scenarioUsageError(e: ScenarioError): UsageError {
  return new UsageError(
    e.problems.map((p) => `${e.source}: ${p}`).join('\n'),
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
