// Ground-truth readers for calibration. Two CSV shapes, `;`-separated, UTC times in ISO 8601:
//   - `time;occupancy`: a step function, people present from that moment on (one row per change,
//     plus a last row at the end of the observation), as in ../shared/captures/occupancy;
//   - `time;people`: point counts of a deployed zone (a person or a camera counted N at time T).
// As a spreadsheet writes them: fields in double quotes, a trailing ";", spaces around a field, a
// small t and z in times. A value with decimals is an average (a camera's mean over its interval).
// Every error names the file, the line and the fix, on one line.

import { PERMISSION_DENIED } from '../../scripts/lib/readable.ts';
import { isBinaryText, readSmallFileBytes } from '../../scripts/lib/small-file.ts';

/** A truth file is read whole: at most this big (a year of 1-s rows is about 1 GB; of 1-min rows, 20 MB). */
const TRUTH_MAX_BYTES = 256 * 2 ** 20;

export class TruthError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | null,
    problem: string,
    fix: string,
  ) {
    super(`${file}${line === null ? '' : `:${line}`}: ${problem}; fix: ${fix}`);
    this.name = 'TruthError';
  }
}

/** A step function: `people[i]` holds from `times[i]` until `times[i + 1]`; known only up to the last time. */
export interface Occupancy {
  file: string;
  times: number[];
  people: number[];
  /** 1-based line of each row in the file (for errors about a row). */
  lines: number[];
  /** Each row's time as written (for errors about a row written with an offset from UTC). */
  written?: string[];
}

/** One counted moment of a deployed zone. */
export interface PointCount {
  time: number;
  people: number;
  line: number;
  /** The time as the file writes it (with its offset from UTC, when it has one). */
  written?: string;
}

/** More people than this in one zone is a typo or a wrong column (and would swamp the fit). */
export const MAX_PEOPLE = 1_000_000;

const ISO = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
/** An ISO 8601 time without its zone (which Date.parse would read as local time). */
const NO_ZONE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

/**
 * A line's fields, as a spreadsheet exports them: split on ";", spaces around a field let go, a
 * field in double quotes ("2024-02-08T10:00:00Z";"3") read without them ("" inside is one "), and
 * empty fields at the end of the line (Excel's trailing ";") dropped, as they hold nothing.
 */
function fields(raw: string): string[] {
  const out = raw.split(';').map((f) => {
    const t = f.trim();
    return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1).replaceAll('""', '"').trim() : t;
  });
  while (out.length > 2 && out[out.length - 1] === '') out.pop();
  return out;
}

/** Text of the file as a message shows it: quoted, control characters escaped, at most 60 characters. */
const quote = (text: string) => JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text);

function rows(file: string, text: string, valueName: 'occupancy' | 'people'): Array<{ time: number; value: number; line: number; written: string }> {
  // A capture (or any binary file) given as the truth: said as such, not echoed to the terminal.
  if (isBinaryText(text.slice(0, 4096))) {
    throw new TruthError(
      file,
      null,
      'is not a text file (it holds binary data, as a capture does)',
      `give --truth the time;${valueName} CSV (and the capture to --capture)`,
    );
  }
  // An empty file (a spreadsheet export that failed, a file made but never written) is said as such,
  // not as a header "" that is not time;occupancy.
  if (text.replace(/^\uFEFF/, '').trim() === '') {
    throw new TruthError(
      file,
      null,
      'is empty',
      valueName === 'occupancy'
        ? 'write the header time;occupancy, then a row per change of the people present (like 2022-10-18T08:54:02Z;3) up to the end of the observation'
        : 'write the header time;people, then a row per count (like 2026-05-09T08:00:00Z;12)',
    );
  }
  // Line ends of any system: \r\n (Windows), \n, and a lone \r (classic Mac, some spreadsheets' exports).
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  // Read as the rows are: spaces around a field ("time; occupancy"), quotes and a trailing ";" too.
  const header = fields(lines[0] ?? '')
    .join(';')
    .toLowerCase();
  const want = `time;${valueName}`;
  if (header !== want) {
    const other = valueName === 'occupancy' ? 'time;people' : 'time;occupancy';
    // A file written with another separator (a spreadsheet's "," or a tab) gets that said, not only its header.
    const sep = [',', '\t', '|'].find((c) => header.includes(c) && [want, other].includes(header.split(c).join(';')));
    const shown = (c: string) => (c === '\t' ? 'tabs' : `"${c}"`);
    const hint = sep
      ? `the fields are separated by ${shown(sep)}: separate them with ";" in every line (${want})`
      : header === other
        ? valueName === 'people'
          ? 'this is a time;occupancy file (the people present from each time on), the truth of --capture; fitting stored counts (--influx-url) takes people counted at moments, a time;people file (rows like 2026-05-09T08:00:00Z;12)'
          : 'this is a time;people file (people counted at moments), the truth of stored counts (--influx-url); --capture takes a time;occupancy file, the people present from each time on (rows like 2022-10-18T08:54:02Z;3)'
        : `make the first line exactly "${want}"`;
    throw new TruthError(file, 1, `header is ${quote(lines[0] ?? '')}, expected "${want}"`, hint);
  }
  const out: Array<{ time: number; value: number; line: number; written: string }> = [];
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const line = i + 1;
    const parts = fields(raw);
    if (parts.length !== 2) {
      throw new TruthError(file, line, `${quote(raw)} has ${parts.length} field(s), expected 2 (time;${valueName})`, `write the row as 2022-10-18T08:54:02Z;3`);
    }
    const [t, v] = parts;
    // ISO 8601 (RFC 3339) lets the T and the Z be written small: 2024-02-08t10:00:00z is that time.
    const upper = t.toUpperCase();
    const time = ISO.test(upper) ? Date.parse(upper) : NaN;
    if (!Number.isFinite(time) && NO_ZONE.test(upper)) {
      // Read as local time it would move by the machine's offset, and no error would follow.
      throw new TruthError(
        file,
        line,
        `time ${quote(t)} has no time zone`,
        `add it: Z when the time is UTC (${t}Z), else its offset from UTC (${t}+01:00 for 1 hour ahead)`,
      );
    }
    if (!Number.isFinite(time)) {
      throw new TruthError(file, line, `${quote(t)} is not a time`, 'use ISO 8601 with a zone, e.g. 2022-10-18T08:54:02Z');
    }
    // Date.parse rolls a day past the month's end over (2022-02-30 is read as 2022-03-02): refused, not moved.
    const [y, m, d] = t.slice(0, 10).split('-').map(Number);
    if (d > new Date(Date.UTC(y, m, 0)).getUTCDate()) {
      throw new TruthError(file, line, `${quote(t)} is not a date (month ${t.slice(5, 7)} of ${y} has no day ${d})`, 'correct the date');
    }
    // A value with decimals (1.5) is taken as an average of people over the time it holds (a
    // camera's or counter's mean over its interval), weighted by time as a whole count is.
    const value = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
    if (/^\d+,\d+$/.test(v)) {
      throw new TruthError(file, line, `${valueName} ${quote(v)} has a decimal comma`, `write it with a decimal point, like ${v.replace(',', '.')}`);
    }
    if (!Number.isFinite(value)) {
      throw new TruthError(file, line, `${valueName} ${quote(v)} is not a number of people`, 'write a number of people >= 0, like 3');
    }
    if (value > MAX_PEOPLE) {
      throw new TruthError(
        file,
        line,
        `${valueName} ${v} is more people than a zone holds (at most ${MAX_PEOPLE})`,
        'write the number of people counted, like 3',
      );
    }
    if (out.length > 0 && time < out[out.length - 1].time) {
      throw new TruthError(file, line, `time ${t} is earlier than the row before it (line ${out[out.length - 1].line})`, 'sort the rows by time');
    }
    out.push({ time, value, line, written: t });
  }
  return out;
}

/** Parses a `time;occupancy` step function. Needs at least two rows (a start and an end). */
export function parseOccupancy(text: string, file = 'truth'): Occupancy {
  const r = rows(file, text, 'occupancy');
  if (r.length < 2) {
    throw new TruthError(
      file,
      null,
      `holds ${r.length} row(s); a step function needs a first and a last time`,
      'add a row at the end of the observation (the last time the count was known)',
    );
  }
  // Two rows of one time with other people: the first would hold for no time and be dropped without
  // a word (a row typed twice with a typo, or two exports pasted together). One row per time.
  for (let i = 1; i < r.length; i++) {
    if (r[i].time === r[i - 1].time && r[i].value !== r[i - 1].value) {
      throw new TruthError(
        file,
        r[i].line,
        `time ${new Date(r[i].time).toISOString()} is also the time of line ${r[i - 1].line}, which gives ${r[i - 1].value} people there and this line ${r[i].value} (the earlier row would hold for no time)`,
        'keep one row per time: the people present from that moment on',
      );
    }
  }
  return { file, times: r.map((x) => x.time), people: r.map((x) => x.value), lines: r.map((x) => x.line), written: r.map((x) => x.written) };
}

export function readOccupancy(file: string): Occupancy {
  return parseOccupancy(readText(file), file);
}

/** Parses `time;people` point counts. */
export function parsePointCounts(text: string, file = 'truth'): PointCount[] {
  const r = rows(file, text, 'people');
  if (r.length === 0) throw new TruthError(file, null, 'holds no counts', 'add rows like 2025-06-01T12:00:00Z;140');
  return r.map((x) => ({ time: x.time, people: x.value, line: x.line, written: x.written }));
}

export function readPointCounts(file: string): PointCount[] {
  return parsePointCounts(readText(file), file);
}

/**
 * The text of a truth file: UTF-8, or UTF-16 with its byte-order mark (a spreadsheet's "Unicode
 * text"), which read as UTF-8 is NUL bytes between the characters and was refused as binary.
 */
export function decodeTruth(bytes: Buffer): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return bytes.subarray(2).toString('utf16le');
  if (bytes[0] === 0xfe && bytes[1] === 0xff) {
    const le = Buffer.from(bytes.subarray(2, 2 + ((bytes.length - 2) & ~1)));
    return le.swap16().toString('utf16le');
  }
  return bytes.toString('utf8');
}

function readText(file: string): string {
  try {
    return decodeTruth(readSmallFileBytes(file, TRUTH_MAX_BYTES));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new TruthError(file, null, PERMISSION_DENIED.problem, PERMISSION_DENIED.fix);
    throw new TruthError(file, null, code === 'ENOENT' ? 'no such file' : (e as Error).message, 'check the path given to --truth');
  }
}

/** First and last time at which the occupancy is known. */
export function span(o: Occupancy): { start: number; end: number } {
  return { start: o.times[0], end: o.times[o.times.length - 1] };
}

/**
 * Time-weighted mean occupancy over [start, end); null unless the interval lies entirely inside
 * the known span (occupancy is known only between the first and the last row).
 */
export function meanOccupancy(o: Occupancy, start: number, end: number): number | null {
  const { times, people } = o;
  if (end <= start || start < times[0] || end > times[times.length - 1]) return null;
  // The last row at or before `start` (binary search: a truth file may hold millions of rows, and
  // this runs for every window), then the rows up to `end`.
  let lo = 0;
  let hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (times[mid] <= start) lo = mid;
    else hi = mid - 1;
  }
  let sum = 0;
  for (let i = lo; i < times.length - 1 && times[i] < end; i++) {
    const a = Math.max(start, times[i]);
    const b = Math.min(end, times[i + 1]);
    if (b > a) sum += people[i] * (b - a);
  }
  return sum / (end - start);
}

/**
 * Checks the truth against the bounds of the capture's windows that hold frames (`first`, `last`:
 * whole windows, not the frames' own times); a row more than `slackMs` outside them is an error
 * naming its line (the truth of another capture, or a clock in local time).
 */
export function checkWithinCapture(o: Occupancy, first: number, last: number, slackMs: number, capture: string): void {
  for (let i = 0; i < o.times.length; i++) {
    const t = o.times[i];
    if (t < first - slackMs || t > last + slackMs) {
      const iso = (ms: number) => new Date(ms).toISOString();
      // A time written with an offset from UTC is shown as written and as UTC: the offset (a clock's
      // winter offset in summer, say) may be what moved it out, and the UTC time is not in the file.
      const offset = /[+-](\d{2}):?(\d{2})$/.exec(o.written?.[i] ?? '');
      const shifted = offset !== null && offset[1] + offset[2] !== '0000';
      throw new TruthError(
        o.file,
        o.lines[i],
        // first and last are the bounds of the windows that hold frames, not the frames' own times.
        `time ${shifted ? `${o.written![i]} (${iso(t)} in UTC)` : iso(t)} is outside the capture ${capture} (its frames lie in the windows from ${iso(first)} to ${iso(last)}; a row may be at most ${slackMs / 1000} s outside them)`,
        // Another day: the truth of another capture. The same day: a clock in local time, or rows
        // counted while the sniffer was not recording.
        shifted
          ? `check that ${offset![0]} is the offset from UTC of the clock that wrote the row (summer time is another offset than winter time), or write times in UTC (Z); then remove any rows ${t < first ? 'before the capture starts' : 'after the capture ends'}`
          : iso(t).slice(0, 10) === iso(first).slice(0, 10) || iso(t).slice(0, 10) === iso(last).slice(0, 10)
            ? `write times in UTC (Z), and remove the rows ${t < first ? 'before the capture starts' : 'after the capture ends'}`
            : 'pair each --capture with its own --truth file, and write times in UTC (Z)',
      );
    }
  }
}
