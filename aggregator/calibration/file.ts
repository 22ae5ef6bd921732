// The calibration file: YAML, checked against calibration.schema.json (ajv). It holds per zone
// k, b and their intervals, the data they were fitted on, warnings, and the estimator (counts
// field, radio, window length, firmware build) the fit is valid for.
import { lstatSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileWriteProblem } from '../../scripts/lib/atomic-file.ts';
import { notTextProblem, readSmallFileBytes } from '../../scripts/lib/small-file.ts';
import { packageJson } from '../../scripts/package-root.ts';
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import YAML from 'yaml';
import { parseYamlDocument } from '../../scripts/lib/yaml-doc.ts';
import type { FitResult, Param, Prior, ZoneFit } from './fit.ts';

export const FORMAT = 'presence-calibration/1';

export interface Estimator {
  /** Counts field the fit maps to people: `estimate` (normal) or `devices` (comparison). */
  field: 'estimate' | 'devices';
  radio: 'wifi' | 'ble';
  /** Window length the fit was made on (seconds). */
  window_s: number;
  /** Frames below this signal were dropped when the windows were counted (as the gateway's --rssi-min). */
  rssi_min_dbm?: number;
  /** Addresses of one scan burst the radio heard, the Wi-Fi estimate's floor divisor (as the gateway's estimator.burst_addresses); absent: 7. */
  burst_addresses?: number;
  /**
   * 'gateways': fitted on the counts the gateways stored (the stored-series form), with their own
   * rssi_min_dbm and burst_addresses, which the file does not know. Absent: replayed captures with
   * the settings recorded here.
   */
  counted_by?: 'gateways';
  /** sha256 of the firmware (WASM) build the windows were counted with. */
  firmware?: string;
  /** presence-counter version. */
  version?: string;
}

export interface ZoneCalibration {
  site?: string;
  k: Param;
  b: Param;
  corr_kb: number;
  residual_sd: number;
  level?: number;
  shrinkage?: { k: number; b: number };
  unshrunk?: { k: number; b: number };
  data?: object;
  quality?: { r: number | null; mae: number };
  warnings?: string[];
}

export interface CalibrationFile {
  format: typeof FORMAT;
  created?: string;
  estimator: Estimator;
  level: number;
  global?: Prior | null;
  zones: Record<string, ZoneCalibration>;
}

export class CalibrationFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CalibrationFileError';
  }
}

const addFormats = addFormatsModule as unknown as (a: Ajv) => Ajv;
const ajv = new Ajv({ allErrors: true, strict: false, strictNumbers: true });
addFormats(ajv);
const validate = ajv.compile<CalibrationFile>(packageJson('aggregator/calibration/calibration.schema.json'));

function human(e: ErrorObject): string {
  const key = e.instancePath.slice(1).replace(/\//g, '.') || '(top)';
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${key === '(top)' ? '' : `${key}: `}missing key "${p.missingProperty}"`;
    case 'additionalProperties':
      return `${key}: unknown key "${p.additionalProperty}"`;
    case 'const':
      return `${key}: must be ${JSON.stringify(p.allowedValue)} (a calibration file written by \`presence calibrate\`)`;
    case 'enum':
      return `${key}: must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'exclusiveMinimum':
      if (key.endsWith('k.value')) return `${key}: must be above 0 (people rise with the estimate); refit with more varied data`;
      return `${key}: must be above ${p.limit}`;
    case 'maximum':
      return `${key}: must be at most ${p.limit} (a calibration's numbers keep people finite); refit with presence calibrate`;
    case 'minimum':
      return `${key}: must be at least ${p.limit}`;
    case 'minProperties':
      return `${key}: must name at least one zone`;
    case 'propertyNames':
      return `${key}: zone name "${p.propertyName}" is not a zone id (lower case letters, digits, - and _, at most 63, as the gateways publish it)`;
    case 'pattern':
      // (the pattern of a zone name is reported by its propertyNames error)
      if ((e as { propertyName?: string }).propertyName !== undefined) return '';
      return `${key}: must be an id (lower case letters, digits, - and _, at most 63, as the gateways publish it)`;
    case 'type':
      return `${key}: must be ${p.type === 'number' ? 'a finite number' : p.type === 'object' ? 'a mapping of keys' : p.type}`;
    default:
      return `${key}: ${e.message}`;
  }
}

/** One problem of a file: the keys leading to it (to find its line) and the sentence. */
interface Problem {
  path: Array<string | number>;
  text: string;
}

const pathOf = (pointer: string): string[] =>
  pointer
    ? pointer
        .slice(1)
        .split('/')
        .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
    : [];

/** The value at a JSON pointer path of the parsed file, shown after a problem: ` (got "1.35")`. */
function got(value: unknown, path: string[]): string {
  let v: unknown = value;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  if (v === undefined || (v !== null && typeof v === 'object')) return '';
  // (JSON would show .nan and 1e400 as null)
  const shown = typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? String(v));
  return ` (got ${shown.length > 60 ? `${shown.slice(0, 57)}...` : shown})`;
}

function problems(value: unknown): Problem[] {
  if (validate(value)) {
    const v = value as CalibrationFile;
    const out: Problem[] = [];
    for (const [zone, z] of Object.entries(v.zones)) {
      for (const name of ['k', 'b'] as const) {
        const p = z[name];
        if (!(p.low <= p.value && p.value <= p.high))
          out.push({ path: ['zones', zone, name], text: `zones.${zone}.${name}: low <= value <= high does not hold (${p.low}, ${p.value}, ${p.high})` });
      }
    }
    return out;
  }
  const errors = (validate.errors ?? []).filter((e) => e.keyword !== 'if' && e.keyword !== 'allOf');
  const anyOf = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const kept = errors.filter((e) => e.keyword === 'anyOf' || !anyOf.has(e.instancePath));
  const seen = new Set<string>();
  const out: Problem[] = [];
  for (const e of kept) {
    let text = human(e);
    if (text === '' || seen.has(text)) continue;
    seen.add(text);
    const path = pathOf(e.instancePath);
    const p = e.params as Record<string, unknown>;
    // A key that should not be there is found at itself; a wrong value is shown as it is.
    if (e.keyword === 'additionalProperties') path.push(String(p.additionalProperty));
    else if (e.keyword === 'propertyNames') path.push(String(p.propertyName));
    else if (e.keyword !== 'required' && e.keyword !== 'minProperties') {
      // the value goes with the problem, before a "; refit ..."
      const cut = text.indexOf('; ');
      text = cut < 0 ? text + got(value, path) : text.slice(0, cut) + got(value, path) + text.slice(cut);
    }
    out.push({ path, text });
  }
  return out;
}

/** Checks a parsed object; returns readable problems (empty when valid). */
export function checkCalibration(value: unknown): string[] {
  return problems(value).map((p) => p.text);
}

/** The 1-based line of the key at `path` in the YAML text (of the nearest key that is there). */
function lineOf(doc: YAML.Document, lines: YAML.LineCounter, path: Array<string | number>): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = (n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)) as { range?: [number, number, number] } | undefined;
    // a key's line: the pair's key node when the parent is a mapping
    const parent = n > 0 ? (n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true)) : undefined;
    if (YAML.isMap(parent)) {
      const pair = parent.items.find((it) => YAML.isScalar(it.key) && String(it.key.value) === String(path[n - 1]));
      const key = pair?.key as { range?: [number, number, number] } | undefined;
      if (key?.range) return lines.linePos(key.range[0]).line;
    }
    if (node?.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

/** Problems of a file named in its error, at most (the rest are counted). */
export const MAX_PROBLEMS_SHOWN = 20;

/** Parses and validates the text of a calibration file; throws CalibrationFileError naming the problem and its line. */
export function parseCalibration(text: string, file = 'calibration'): CalibrationFile {
  let parsed: unknown;
  // One parse: its document gives the lines of the problems too; duplicate keys found in one pass
  // (scripts/lib/yaml-doc.ts: the yaml package's own check is quadratic in a mapping's keys).
  const lines = new YAML.LineCounter();
  const doc = parseYamlDocument(YAML, text, { lineCounter: lines, logLevel: 'error' });
  try {
    if (doc.errors.length) throw doc.errors[0];
    parsed = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    const pos = (e as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
    const first = (e as Error).message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new CalibrationFileError(`${file}${pos ? `:${pos.line}:${pos.col}` : ''}: not valid YAML: ${first}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CalibrationFileError(`${file}: not a calibration file (expected a mapping with format: ${FORMAT}); write one with \`presence calibrate\``);
  }
  const found = problems(parsed);
  if (found.length) {
    const at = (p: Problem) => {
      // (a key missing at the top has no line of its own)
      const line = p.path.length ? lineOf(doc, lines, p.path) : undefined;
      return `${file}${line ? `:${line}` : ''}: ${p.text}`;
    };
    // The first problems only, each with its line: finding a key's line scans its mapping, so a
    // line for every problem of a file of many bad zones was quadratic in them, and the message
    // held every problem (a megabyte for 16,000 zones).
    const shown = found.slice(0, MAX_PROBLEMS_SHOWN).map(at);
    const more = found.length - shown.length;
    throw new CalibrationFileError(`${shown.join('; ')}${more > 0 ? `; and ${more} more problem(s) (fix these first)` : ''}`);
  }
  return parsed as CalibrationFile;
}

/** A calibration file is at most this big (one zone is about 1 kB). */
const MAX_CALIBRATION_BYTES = 4 * 1024 * 1024;

export function readCalibration(file: string): CalibrationFile {
  let bytes: Buffer;
  try {
    bytes = readSmallFileBytes(file, MAX_CALIBRATION_BYTES);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ESMALLFILE') throw new CalibrationFileError(`${file}: ${(e as Error).message}; give the calibration file presence calibrate wrote`);
    throw new CalibrationFileError(`${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read it (${(e as Error).message})`}`);
  }
  // A capture named where the calibration goes is said as such, not as YAML that fails at line 1.
  const notText = notTextProblem(bytes);
  if (notText) throw new CalibrationFileError(`${file}: ${notText}; give the calibration file presence calibrate wrote`);
  return parseCalibration(bytes.toString('utf8'), file);
}

/** The file content for a fit. */
export function toCalibrationFile(result: FitResult, estimator: Estimator, created = new Date()): CalibrationFile {
  const zones: Record<string, ZoneCalibration> = {};
  for (const z of result.zones) zones[z.zone] = zoneEntry(z);
  const level = result.zones[0]?.level ?? 0.9;
  return { format: FORMAT, created: created.toISOString(), estimator, level, global: result.global, zones };
}

function zoneEntry(z: ZoneFit): ZoneCalibration {
  return {
    k: z.k,
    b: z.b,
    corr_kb: z.corr_kb,
    residual_sd: z.residual_sd,
    shrinkage: z.shrinkage,
    unshrunk: z.unshrunk,
    data: z.data,
    quality: { r: Number.isFinite(z.quality.r) ? z.quality.r : null, mae: z.quality.mae },
    warnings: z.warnings,
  };
}

export function formatCalibration(c: CalibrationFile): string {
  const head =
    '# presence-counter calibration (written by `presence calibrate`)\n' +
    '# people = k * (estimate - b) per zone; low/high: central interval at `level` (bootstrap over sessions)\n';
  return head + YAML.stringify(c, { lineWidth: 0 });
}

/** Validates, then writes atomically (temp file + rename). */
export function writeCalibration(file: string, c: CalibrationFile): void {
  const problems = checkCalibration(c);
  if (problems.length) throw new CalibrationFileError(`${file}: refusing to write an invalid calibration: ${problems.join('; ')}`);
  // A link to a calibration file (/etc/presence/calibration.yaml -> one file per season) is written
  // through: the rename replaced the link with a file, so the file it named, which an aggregator may
  // load, kept the old calibration, and the zones read from it were written beside it.
  let target = file;
  try {
    if (lstatSync(file).isSymbolicLink()) target = realpathSync(file);
  } catch {
    // (no file there yet, or a link to nothing: written at the path given)
  }
  const tmp = `${target}.tmp-${process.pid}`;
  try {
    // A new file, never one that is there (wx): in a folder others can write, a link put at the
    // temporary name would otherwise have the file it points to overwritten (by root, say).
    rmSync(tmp, { force: true });
    writeFileSync(tmp, formatCalibration(c), { flag: 'wx' });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    // What is wrong in words, with what to do: a full disk is no wrong path (it said 'cannot write it
    // (ENOSPC); fix: choose a path in a folder that exists and can be written'). The path given
    // first, and the file a link there leads to (the one whose disk is full): it named that alone.
    const why = fileWriteProblem(target, e as NodeJS.ErrnoException).message.slice(target.length);
    throw new CalibrationFileError(`${target === file ? file : `${file} (a link to ${target})`}${why}`);
  }
}
