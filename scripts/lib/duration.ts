// The one duration syntax of every presence-counter command and config file: one or more
// <number><unit> parts with the units ms, s, m, h and d, e.g. 250ms, 60s, 1.5s, 15m, 1h30m, 7d.
// A duration is written with its unit, in every file and flag. A bare number is read only where a
// setting always accepted one, in the unit it always was (the caller says which: a running config
// never changes meaning), and then prints one deprecation line saying how to write it ("use 30s").
import { bareDuration } from './deprecate.ts';

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const BARE = /^\d+(?:\.\d+)?$/;

/** Regular expression source of a duration string (for JSON Schema `pattern`). */
export const DURATION_PATTERN = '^(\\d+(\\.\\d+)?(ms|s|m|h|d))+$';

/** The words every duration error ends with. */
export const DURATION_HINT = 'must be a duration like 250ms, 60s, 15m, 1h30m or 7d';

export class DurationError extends Error {
  constructor(readonly value: unknown) {
    super(`${DURATION_HINT} (got ${JSON.stringify(value)})${durationNote(value)}`);
    this.name = 'DurationError';
  }
}

/**
 * Why a duration written right is refused, for the end of its error: "0s" is no length, and
 * "99...9d" (hundreds of digits) is more milliseconds than a number holds; and the fix of a bare
 * number where one is not read (`--window 60` said only "must be a duration like ... (got "60")"):
 * a bare 0 is no length in any unit.
 */
export function durationNote(value: unknown): string {
  if (typeof value === 'string' && BARE.test(value.trim()))
    return Number(value) === 0 ? ': it must be longer than 0' : ': write it with its unit (ms, s, m, h or d)';
  if (typeof value !== 'string') return '';
  const ms = durationMs(value, { zero: true });
  if (ms === 0) return ': it must be longer than 0';
  if (Number.isNaN(ms) && new RegExp(DURATION_PATTERN).test(value.replace(/\s+/g, ''))) return ': it is too long to be counted in milliseconds';
  return '';
}

export interface DurationOptions {
  /** Unit of a bare number (a JSON/YAML number or digits only); without it a bare number is an error. */
  bare?: 'ms' | 's';
  /** Accept 0 (default: a duration must be above 0). */
  zero?: boolean;
  /** The setting's name (key or flag): a bare number read under `bare` then prints one deprecation line naming it. */
  name?: string;
  /** Where the setting was written (a file), for that line. */
  where?: string;
}

/** Milliseconds of a duration, or NaN when the value is not one. Never throws. */
export function durationMs(value: unknown, opts: DurationOptions = {}): number {
  let ms: number;
  // Spaces between the parts are allowed ("1h 30m", "500 ms").
  if (typeof value === 'string') value = value.replace(/\s+/g, '');
  if (typeof value === 'number' || (typeof value === 'string' && BARE.test(value))) {
    if (!opts.bare) return NaN;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) return NaN;
    ms = n * UNIT_MS[opts.bare];
    if (opts.name) bareDuration(opts.name, String(value).trim(), opts.bare, opts.where);
  } else if (typeof value === 'string') {
    const text = value;
    if (!text) return NaN;
    PART.lastIndex = 0;
    ms = 0;
    while (PART.lastIndex < text.length) {
      const m = PART.exec(text);
      if (!m) return NaN;
      ms += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
    }
  } else return NaN;
  ms = Math.round(ms);
  // hundreds of digits are Infinity, which no timer, date or comparison of a setting can use
  if (!Number.isFinite(ms)) return NaN;
  if (ms === 0 && !opts.zero) return NaN;
  return ms;
}

/** Milliseconds of a duration; throws DurationError ("must be a duration like ... (got "x")"). */
export function parseDuration(value: unknown, opts: DurationOptions = {}): number {
  const ms = durationMs(value, opts);
  if (Number.isNaN(ms)) throw new DurationError(value);
  return ms;
}

/** True when the value is a duration string with units (what config files should hold). */
export function isDurationString(value: unknown): boolean {
  return typeof value === 'string' && !BARE.test(value.trim()) && !Number.isNaN(durationMs(value, { zero: true }));
}

/** 90000 -> "1m30s", 250 -> "250ms", 604800000 -> "7d". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

/**
 * The longest timer Node keeps: setTimeout/setInterval take a 32-bit signed delay, and a longer one
 * fires after 1 ms instead (with a TimeoutOverflowWarning), so a setting that is a timer's period must
 * stay below it (about 24.8 days).
 */
export const TIMER_MAX_MS = 2 ** 31 - 1;

/** MQTT's keepalive is a 16-bit number of seconds; mqtt.js drops a CONNECT above it without an error. */
export const MQTT_KEEPALIVE_MAX_S = 65_535;

/** "key: must be at most 24d (...)" for each timer setting above TIMER_MAX_MS, and a keepalive above MQTT's limit. */
export function durationLimitProblems(timers: Array<[name: string, ms: number]>, keepalive?: [name: string, seconds: number]): string[] {
  const out: string[] = [];
  for (const [name, ms] of timers)
    if (ms > TIMER_MAX_MS) out.push(`${name}: must be at most 24d (a longer period fires at once in Node) (got ${formatDuration(ms)})`);
  if (keepalive && keepalive[1] > MQTT_KEEPALIVE_MAX_S)
    out.push(`${keepalive[0]}: must be at most 18h12m15s (65535 s, MQTT's limit) (got ${formatDuration(keepalive[1] * 1000)})`);
  return out;
}
