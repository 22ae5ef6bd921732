// `presence calibrate`: fits people = k * (estimate - b) for one zone from ground truth, prints the
// fit, its interval, the data used and warnings, and writes a calibration file.
//   capture form:  --capture A.pcap --truth A_occupancy.csv [--capture B.pcap --truth B.csv ...]
//   stored form:   --influx-url URL --influx-db DB --site S --truth counts.csv
import { decimal } from '../../scripts/lib/decimal.ts';
import { exitUsage, printable } from '../../scripts/lib/usage.ts';
import { DURATION_HINT, durationMs, TIMER_MAX_MS, durationNote } from '../../scripts/lib/duration.ts';
import { progressBar } from '../../scripts/lib/progress.ts';
import { fileWriteProblem } from '../../scripts/lib/atomic-file.ts';
import { unreadableProblem } from '../../scripts/lib/readable.ts';
import { createHash } from 'node:crypto';
import { accessSync, constants, createReadStream, existsSync, readFileSync, realpathSync, type Stats, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { WASM_PATH } from '../../firmware/host/firmware.ts';
import { BURST_ADDRESSES_DEFAULT, BURST_ADDRESSES_MAX, BURST_ADDRESSES_MIN } from '../../firmware/host/types.ts';
import { parseWindow } from '../../gateway/replay.ts';
import { VERSION } from '../../scripts/cli.ts';
import { isValidId } from '../../contract/topics.ts';
import { pairCaptures, type CaptureTruth } from './capture.ts';
import { applyZone } from './apply.ts';
import { fit, FitError, priorFromZones, type Prior, type ZoneFit } from './fit.ts';
import { leaveOneOut, type LeaveOneOut, type Scores } from './evaluate.ts';
import { CalibrationFileError, readCalibration, toCalibrationFile, writeCalibration, type CalibrationFile, type Estimator } from './file.ts';
import { pairStored, StoredSeriesError } from './influx.ts';
import type { PairedWindow } from './pair.ts';
import { readPointCounts, TruthError } from './truth.ts';
import { influxCredentials, influxUrlProblem, pathCredentialsProblem, readSecretFile, redactedLine, redactUrl } from '../../scripts/lib/secrets.ts';

interface Flags {
  capture: string[];
  truth: string[];
  zone: string;
  site?: string;
  out?: string;
  radio: 'wifi' | 'ble';
  field: 'estimate' | 'devices';
  window: string;
  ignoreFcs?: boolean;
  rssiMin?: string;
  burstAddresses?: string;
  level: string;
  replicates: string;
  seed: string;
  prior?: string;
  leaveOneOut?: boolean;
  sessionBy: 'day' | 'capture';
  json?: boolean;
  influxUrl?: string;
  influxDb?: string;
  influxRp?: string;
  influxUsername?: string;
  influxPassword?: string;
  influxPasswordFile?: string;
  influxToken?: string;
  influxTokenFile?: string;
  influxTimeout: string;
  influxBucket?: string;
  influxOrg?: string;
  influxApi?: string;
}

class UsageError extends Error {}

const collect = (v: string, prev: string[]) => [...prev, v];

function firmwareId(): string | undefined {
  try {
    return `sha256:${createHash('sha256').update(readFileSync(WASM_PATH)).digest('hex')}`;
  } catch {
    return undefined;
  }
}

function number(name: string, text: string, ok: (v: number) => boolean, what: string): number {
  const v = decimal(text);
  if (!Number.isFinite(v) || !ok(v)) throw new UsageError(`--${name}: must be ${what} (got "${text}")`);
  return v;
}

/** A note on stderr (the fit goes on). */
const note = (m: string) => process.stderr.write(`presence calibrate: note: ${m}\n`);

/** Bootstrap replicates at most (each one refits every session: more only costs time and memory). */
const MAX_REPLICATES = 100_000;

/**
 * --window: whole seconds from 1 s to 24 h (a counts message covers at most 24 h; the file keeps
 * window_s). Shorter windows would only make millions of empty windows out of a capture.
 */
function calibrationWindow(text: string): number {
  let ms: number | 'all';
  try {
    ms = parseWindow(text);
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/, or "all"/, ''));
  }
  if (ms === 'all' || ms < 1000 || ms > 86_400_000 || ms % 1000 !== 0) {
    throw new UsageError(`--window: must be whole seconds from 1s to 24h, like 60s, as the gateways count (got "${text}")`);
  }
  return ms;
}

/** --burst-addresses: 1 to 64, as the gateway's estimator.burst_addresses. */
function burstAddressesFlag(text: string): number {
  return number(
    'burst-addresses',
    text,
    (v) => v >= BURST_ADDRESSES_MIN && v <= BURST_ADDRESSES_MAX,
    `a number from ${BURST_ADDRESSES_MIN} to ${BURST_ADDRESSES_MAX}, like 2.8`,
  );
}

/** A calibration file's error without its own fix, for a message that gives the fix of the flag that named the file. */
const withoutFix = (message: string) => message.replace(/; (fix: )?(give|write) .*$/, '');

/**
 * The prior of an earlier calibration file: its `global`, else its zone of the same name. The file
 * must calibrate the same counts: a k of another count is no prior. Field, radio and window length
 * must always match. The frame gate and the burst divisor must match too where both files know them;
 * counts the gateways stored carry the gateways' own settings, which no file records, so a lab prior
 * for a deployed zone (or the other way round) is taken with a note naming what must agree.
 */
function priorFrom(file: string, zone: string, want: Estimator): Prior {
  let c: CalibrationFile;
  try {
    c = readCalibration(file);
  } catch (e) {
    const why = withoutFix((e as Error).message);
    throw new CalibrationFileError(`--prior ${why}; fix: give --prior a calibration file written by presence calibrate`);
  }
  const a = c.estimator;
  if (a.field !== want.field || a.radio !== want.radio || a.window_s !== want.window_s) {
    throw new CalibrationFileError(
      `--prior ${file}: holds a calibration of ${a.radio} ${a.field} in ${a.window_s} s windows, this fit is of ${want.radio} ${want.field} in ${want.window_s} s windows; fix: give --prior a file fitted on the same counts`,
    );
  }
  if (describeCounts(a) !== describeCounts(want)) {
    if (a.counted_by !== 'gateways' && want.counted_by !== 'gateways') {
      throw new CalibrationFileError(
        `--prior ${file}: holds a calibration of ${describeCounts(a)}, this fit is of ${describeCounts(want)}; fix: give --prior a file fitted with the same --rssi-min${usesBurst(want) ? ' and --burst-addresses' : ''}${unmarked(a) ? STORED_HINT : ''}`,
      );
    }
    note(
      `--prior ${file} holds a calibration of ${describeCounts(a)}, this fit is of ${describeCounts(want)}: the prior is fair only if the gateways' ${
        usesBurst(want) ? 'gateway.rssi_min_dbm and estimator.burst_addresses are the settings' : 'gateway.rssi_min_dbm is the setting'
      } named on the other side`,
    );
  }
  // A global written before mean_sd was recorded: the same prior from the file's zones, with it.
  if (c.global) return c.global.k.mean_sd === undefined ? (priorFromZones(Object.values(c.zones)) ?? c.global) : c.global;
  // (own keys only: a zone named constructor would find Object's)
  const name = Object.hasOwn(c.zones, zone) ? zone : Object.keys(c.zones)[0];
  const z = c.zones[name];
  note(
    `--prior ${file} holds no global prior (that takes two or more zones with fitted k and b), so its zone ${name} is the prior: ` +
      'its own sd stands for how much zones differ, which one zone cannot tell, so the pull toward it is as strong as if the zones were alike',
  );
  // One zone: its value is the prior's mean, known to within its own sd.
  return { k: { mean: z.k.value, sd: z.k.sd, mean_sd: z.k.sd }, b: { mean: z.b.value, sd: z.b.sd, mean_sd: z.b.sd } };
}

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const pct = (level: number) => `${Math.round(level * 100)} %`;

export function describeFit(z: ZoneFit, field: string): string {
  const lines: string[] = [];
  const d = z.data;
  lines.push(`zone ${z.zone}: people = ${f(z.k.value, 4)} * (${field} ${z.b.value < 0 ? '+' : '-'} ${f(Math.abs(z.b.value), 2)})`);
  lines.push(`  k ${f(z.k.value, 4)}  (${pct(z.level)} interval ${f(z.k.low, 4)} .. ${f(z.k.high, 4)})   people per unit of ${field}`);
  // b held at 0 (the line through zero; the warnings say why) has no interval: "0.00 .. 0.00" would claim certainty.
  const bHeld = z.b.value === 0 && z.b.low === 0 && z.b.high === 0 && z.b.sd === 0;
  // b held at 0 because the line put it below zero: not a fitted 0.00; the bootstrap's interval (its
  // samples held at 0 too where their line fell below zero) is what the people's interval uses.
  lines.push(
    bHeld
      ? `  b 0  (held at 0, not fitted: the line goes through zero; see the warning)   ${field} with nobody there`
      : z.b_below_zero !== undefined
        ? `  b 0  (held at 0: the line put it at ${f(z.b_below_zero, 2)}, below zero; see the warning; ${pct(z.level)} interval over the bootstrap ${f(z.b.low, 2)} .. ${f(z.b.high, 2)})   ${field} with nobody there`
        : `  b ${f(z.b.value, 2)}  (${pct(z.level)} interval ${f(z.b.low, 2)} .. ${f(z.b.high, 2)})   ${field} with nobody there`,
  );
  lines.push(
    z.shrinkage.k === 1 && z.shrinkage.b === 1
      ? '  shrinkage: none (own data only)'
      : `  shrinkage toward the global prior: own weight k ${f(z.shrinkage.k)}, b ${f(z.shrinkage.b)} (own fit: k ${f(z.unshrunk.k, 4)}, b ${f(z.unshrunk.b)})`,
  );
  lines.push(
    `  data: ${d.sessions} session(s), ${d.windows} windows (${d.occupied_windows} occupied, ${d.empty_windows} empty); ` +
      `people ${d.people.min}..${d.people.max} (mean ${d.people.mean}); ${field} ${d.estimate.min}..${d.estimate.max} (mean ${d.estimate.mean})` +
      (d.from ? `; ${d.from.slice(0, 16)} .. ${d.to?.slice(0, 16)}` : ''),
  );
  lines.push(`  in-sample: Pearson r of ${field} vs people ${f(z.quality.r)}, mean absolute error ${f(z.quality.mae)} people, residual sd ${f(z.residual_sd)}`);
  const probes = [d.estimate.min, d.estimate.mean, d.estimate.max].map((e) => Math.round(e));
  // The interval of applyZone: where one window's people are (the line's uncertainty and the
  // scatter of single windows around it), not where the line is.
  lines.push(
    `  reads as (${pct(z.level)} prediction interval of the people in one window): ${probes
      .map((e) => {
        const p = applyZone(z, e, z.level);
        return `${field} ${e} -> ${f(p.value, 1)} people (${f(p.low, 1)} .. ${f(p.high, 1)})`;
      })
      .join('; ')}`,
  );
  return lines.join('\n');
}

export function describeLeaveOneOut(r: LeaveOneOut, level = 0.9): string {
  const cell = (x: number | null, d = 2) => (x === null ? '-' : x.toFixed(d));
  const cols = (s: Scores) => [cell(s.mae_occupied), cell(s.people_when_empty), cell(s.r), s.coverage === null ? '-' : `${(s.coverage * 100).toFixed(0)} %`];
  const head = [
    'session',
    'windows',
    'occupied',
    'empty',
    'estimate: MAE',
    'empty people',
    'r',
    'in interval',
    'devices: MAE',
    'empty people',
    'r',
    'in interval',
  ];
  const rows = r.sessions.map((s) => [
    s.session,
    s.estimate.windows,
    s.estimate.occupied_windows,
    s.estimate.empty_windows,
    ...cols(s.estimate),
    ...cols(s.devices),
  ]);
  const o = r.overall;
  rows.push(['all (pooled)', o.estimate.windows, o.estimate.occupied_windows, o.estimate.empty_windows, ...cols(o.estimate), ...cols(o.devices)]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells: Array<string | number>) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  const notes = r.sessions.filter((s) => s.error).map((s) => `  ${s.session}: ${s.error}`);
  return [
    'leave one session out (calibrated on the other sessions, tested on this one):',
    '  MAE: mean absolute error of calibrated people on occupied windows; empty people: mean calibrated people',
    '  on empty-room windows; r: Pearson r of the uncalibrated field against the truth; in interval: share of',
    `  windows whose people lie inside their prediction interval (people_low .. people_high; nominal ${pct(level)})`,
    line(head),
    ...rows.map(line),
    ...notes,
  ].join('\n');
}

/** sha256 of a file's bytes, read as a stream (a capture may be larger than a buffer). */
async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * A capture given twice under other names (a hard link, or a copy in another folder) would count
 * its windows twice, as if the room had been seen twice: refused as the same path is. Captures of
 * one size only are read for this (two sessions' captures are seldom of one size).
 */
async function refuseCopies(inputs: CaptureTruth[], stats: Stats[]): Promise<void> {
  const bySize = new Map<number, number[]>();
  for (let i = 0; i < inputs.length; i++) bySize.set(stats[i].size, [...(bySize.get(stats[i].size) ?? []), i]);
  for (const group of bySize.values()) {
    if (group.length < 2) continue;
    const seen = new Map<string, number>();
    for (const i of group) {
      // (empty files are no copies of each other: each is refused as empty when replayed)
      if (stats[i].size === 0) continue;
      const digest = await fileDigest(inputs[i].capture);
      const before = seen.get(digest);
      seen.set(digest, i);
      if (before !== undefined)
        throw new UsageError(
          `${inputs[i].capture}: holds the same bytes as ${inputs[before].capture}, also given as --capture (a copy or a link of one capture would count its windows twice); fix: give each capture once`,
        );
    }
  }
}

async function pairFromCaptures(flags: Flags, windowMs: number): Promise<PairedWindow[]> {
  if (flags.capture.length !== flags.truth.length) {
    throw new UsageError(`give one --truth per --capture, in the same order (got ${flags.capture.length} capture(s), ${flags.truth.length} truth file(s))`);
  }
  const inputs: CaptureTruth[] = flags.capture.map((capture, i) => ({ capture, truth: flags.truth[i] }));
  // The same capture twice would count its windows twice, as if the room had been seen on two days.
  const seen = new Map<string, string>();
  for (const i of inputs) {
    let key = i.capture;
    try {
      key = realpathSync(i.capture);
    } catch {
      // (a missing file is reported below)
    }
    const before = seen.get(key);
    if (before !== undefined) throw new UsageError(`${i.capture}: given twice as --capture (also as ${before}); fix: give each capture once`);
    seen.set(key, i.capture);
  }
  let total = 0;
  const stats: Stats[] = [];
  for (const i of inputs) {
    let st: Stats;
    try {
      st = statSync(i.capture);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UsageError(`${i.capture}: ${code === 'ENOENT' ? 'no such file' : `cannot read it (${(e as Error).message})`} (--capture)`);
    }
    if (st.isDirectory()) throw new UsageError(`${i.capture}: is a folder, not a file (--capture); fix: give a pcap or pcapng file`);
    const unreadable = unreadableProblem(i.capture);
    if (unreadable) throw new UsageError(`${i.capture} (--capture): ${unreadable}`);
    total += st.size;
    stats.push(st);
  }
  await refuseCopies(inputs, stats);
  const bar = await progressBar('replaying captures', total, 'bytes');
  let done = 0;
  try {
    return await pairCaptures(inputs, {
      radio: flags.radio,
      windowMs,
      zone: flags.zone,
      sessionBy: flags.sessionBy,
      ignoreFcs: flags.ignoreFcs === true,
      rssiMinDbm: flags.rssiMin === undefined ? undefined : number('rssi-min', flags.rssiMin, (v) => v >= -128 && v <= 127, 'a signal level in dBm like -80'),
      ...(flags.burstAddresses === undefined ? {} : { burstAddresses: burstAddressesFlag(flags.burstAddresses) }),
      onBytes: (n) => bar?.update((done += n)),
      note,
    });
  } finally {
    bar?.stop();
  }
}

/** A secret from a file (first line), as every command reads them; throws a UsageError naming the file. */
function secretFile(file: string | undefined, what: string): string | undefined {
  if (!file) return undefined;
  try {
    return readSecretFile(file, what);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * The URL and credentials of the stored-series form. Credentials may come from the environment (as
 * for the aggregator), so they stay out of `ps`; but the command line's (the flags, then the URL's
 * user and password) come first, and credentials of one kind given there (a 1.x user or password,
 * or a token) leave the environment's of the other kind unread: a shell's INFLUX_TOKEN (the influx
 * CLI's own variable) was sent instead of the --influx-username and --influx-password given, an
 * INFLUX_PASSWORD replaced the password of --influx-password-file, and one replaced the URL's
 * password and dropped its user, so that nothing was sent.
 */
function storedCredentials(flags: Flags): { url: string; username?: string; password?: string; token?: string } {
  const env = process.env;
  const inUrl = influxCredentials<{ url: string; username?: string; password?: string }>({ url: flags.influxUrl! });
  const token = flags.influxToken ?? secretFile(flags.influxTokenFile, '--influx-token-file');
  const username = flags.influxUsername ?? inUrl.username;
  const password = flags.influxPassword ?? secretFile(flags.influxPasswordFile, '--influx-password-file') ?? inUrl.password;
  const v1 = username !== undefined || password !== undefined;
  return {
    url: inUrl.url,
    username: username ?? (token === undefined ? env.INFLUX_USERNAME || undefined : undefined),
    password:
      password ?? (token === undefined ? ((env.INFLUX_PASSWORD || undefined) ?? secretFile(env.INFLUX_PASSWORD_FILE, 'INFLUX_PASSWORD_FILE')) : undefined),
    token: token ?? (v1 ? undefined : ((env.INFLUX_TOKEN || undefined) ?? secretFile(env.INFLUX_TOKEN_FILE, 'INFLUX_TOKEN_FILE'))),
  };
}

async function pairFromInflux(flags: Flags, windowMs: number): Promise<PairedWindow[]> {
  const urlProblem = influxUrlProblem(flags.influxUrl!);
  if (urlProblem) throw new UsageError(urlProblem);
  // The queries go to the URL's /query with their own parameters: a query in the URL (InfluxDB's
  // ?u=...&p=..., a ?db=...) was dropped without a word, and its credentials never sent.
  if (new URL(flags.influxUrl!).search !== '') {
    throw new UsageError(
      `--influx-url ${JSON.stringify(redactUrl(flags.influxUrl!))} holds a query (?...), which is not sent; fix: give the URL without it, like http://influxdb:8086, and the database, policy and credentials with --influx-db, --influx-rp, --influx-username and --influx-password (or --influx-token)`,
    );
  }
  if (!flags.site) throw new UsageError('--site is needed with --influx-url (the site tag of the zone)');
  if (!flags.influxDb) throw new UsageError('--influx-db is needed with --influx-url (the 1.x database, or the DBRP-mapped bucket)');
  // An empty value (a shell variable that was not set) read as no option: the database's default
  // policy, or no credentials, without a word.
  for (const [name, value] of [
    ['influx-rp', flags.influxRp],
    ['influx-username', flags.influxUsername],
    ['influx-password', flags.influxPassword],
    ['influx-token', flags.influxToken],
  ] as const) {
    if (value === '') throw new UsageError(`--${name} is empty (a variable that was not set?); fix: give its value, or leave --${name} out`);
  }
  if (flags.truth.length !== 1) throw new UsageError(`the stored-series form takes one --truth file of time;people counts (got ${flags.truth.length})`);
  if (flags.leaveOneOut) throw new UsageError('--leave-one-out works with the capture form (--capture/--truth)');
  const timeoutMs = durationMs(flags.influxTimeout);
  if (!(timeoutMs <= TIMER_MAX_MS))
    throw new UsageError(`--influx-timeout: ${DURATION_HINT}, at most 24d (got ${JSON.stringify(flags.influxTimeout)})${durationNote(flags.influxTimeout)}`);
  const counts = readPointCounts(flags.truth[0]);
  return pairStored(
    counts,
    flags.truth[0],
    {
      influx: { ...storedCredentials(flags), database: flags.influxDb, retentionPolicy: flags.influxRp, timeoutMs },
      site: flags.site,
      zone: flags.zone,
      radio: flags.radio,
      windowMs,
    },
    note,
  );
}

/** Counts that the burst divisor changes: only the Wi-Fi estimate (devices and BLE do not use it). */
const usesBurst = (e: Estimator) => e.radio === 'wifi' && e.field === 'estimate';

/** The counts a calibration maps to people, in words: what must match for zones to share a file. */
function describeCounts(e: Estimator): string {
  if (e.counted_by === 'gateways') return `${e.radio} ${e.field} in ${e.window_s} s windows (as the gateways counted them)`;
  const frames = e.rssi_min_dbm === undefined ? 'all frames' : `frames of ${e.rssi_min_dbm} dBm and stronger`;
  const burst = usesBurst(e) ? `, ${e.burst_addresses ?? BURST_ADDRESSES_DEFAULT} burst addresses` : '';
  return `${e.radio} ${e.field} in ${e.window_s} s windows (${frames}${burst})`;
}

/**
 * Files fitted on stored counts before `counted_by` was written read as counted here on all frames.
 * Where that may be the cause of a mismatch, the error says how to mark such a file.
 */
const unmarked = (e: Estimator) => e.counted_by === undefined && e.rssi_min_dbm === undefined && e.burst_addresses === undefined;
const STORED_HINT =
  ' (or, if that file was fitted on stored counts with --influx-url by an earlier presence calibrate, add `counted_by: gateways` under its `estimator:`)';
function storedHint(old: Estimator, next: Estimator): string {
  return next.counted_by === 'gateways' && unmarked(old) ? STORED_HINT : '';
}

/** What --out holds now, or null when there is no file yet; a file there that is no calibration is refused. */
function readOut(existing: string): CalibrationFile | null {
  if (!existsSync(existing)) return null;
  try {
    return readCalibration(existing);
  } catch (e) {
    // The zone is added to what --out holds: a file there that is no calibration is not overwritten.
    const why = withoutFix((e as Error).message);
    throw new CalibrationFileError(`--out ${why}; fix: give --out a calibration file to add the zone to, or a new file`);
  }
}

/** Refuses adding zones (name -> site) fitted with this estimator and level to the file at --out that holds `old`. */
function checkOut(existing: string, old: CalibrationFile, estimator: Estimator, level: number, zones: Record<string, string | undefined>): void {
  const a = old.estimator;
  const b = estimator;
  // The file's estimator and level hold for every zone in it: a zone counted or fitted otherwise
  // would be applied under settings it was not fitted with.
  if (describeCounts(a) !== describeCounts(b) || old.level !== level) {
    throw new CalibrationFileError(
      `--out ${existing}: holds a calibration of ${describeCounts(a)} at level ${old.level}, this one is of ${describeCounts(b)} at level ${level}; fix: write to another --out file${storedHint(a, b)}`,
    );
  }
  // Zones are keyed by name: a zone of another site would replace this one's without a word.
  for (const [name, site] of Object.entries(zones)) {
    const had = Object.hasOwn(old.zones, name) ? old.zones[name].site : undefined;
    if (had !== undefined && site !== undefined && had !== site) {
      throw new CalibrationFileError(
        `--out ${existing}: holds zone ${name} of site ${had}, this one is of site ${site} (a file holds one calibration per zone name); fix: write to another --out file`,
      );
    }
  }
}

/**
 * Checks --out before anything is counted or fitted (a replay of many captures takes minutes):
 * its folder exists, and a file there is a calibration. Whether this zone's counts fit the file's
 * is left to the end: a wrong --window, say, is named by its own check as the thing to fix, not
 * as a reason to write elsewhere.
 */
function checkOutFirst(out: string): void {
  const dir = dirname(resolve(out));
  let folder: Stats | undefined;
  let notDir = false;
  try {
    folder = statSync(dir);
  } catch (e) {
    folder = undefined;
    notDir = (e as NodeJS.ErrnoException).code === 'ENOTDIR';
  }
  // (a file on the way was said to be a folder that does not exist)
  if (notDir || (folder && !folder.isDirectory()))
    throw new CalibrationFileError(
      `--out ${out}: ${notDir ? `a part of ${dir}` : dir} is a file, not a folder; fix: choose a path in a folder that exists and can be written`,
    );
  if (!folder) throw new CalibrationFileError(`--out ${out}: its folder does not exist; fix: choose a path in a folder that exists and can be written`);
  // A folder this user may not write in, or on a read-only file system, was found only when the
  // file was written, after minutes of replay and fitting.
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new CalibrationFileError(`--out ${fileWriteProblem(out, e as NodeJS.ErrnoException).message}`);
  }
  readOut(out);
}

/** Merges the new zone into an existing file at --out (same estimator), so one file can hold many zones. */
function merge(existing: string, next: CalibrationFile): { file: CalibrationFile; kept: string[] } {
  const old = readOut(existing);
  if (!old) return { file: next, kept: [] };
  checkOut(existing, old, next.estimator, next.level, Object.fromEntries(Object.entries(next.zones).map(([name, z]) => [name, z.site])));
  const kept = Object.keys(old.zones).filter((z) => !Object.hasOwn(next.zones, z));
  const zones = { ...old.zones, ...next.zones };
  // With several zones, `global` is what they imply together: the prior of `--prior FILE`.
  return { file: { ...next, global: priorFromZones(Object.values(zones)) ?? next.global ?? old.global ?? null, zones }, kept };
}

/**
 * What to do when the counts do not rise with the people: the truth may be another zone's or in
 * local time, or the gateways follow people on the other radio (a crowd's Wi-Fi estimate can stay
 * flat while its BLE estimate rises: the simulated King's Day).
 */
function notRisingFix(flags: Flags, stored: boolean): string {
  const other = flags.radio === 'ble' ? 'wifi' : 'ble';
  const truth = stored
    ? `check that --truth holds the people of zone ${flags.zone} of site ${flags.site} at UTC times`
    : 'check that each --truth holds the people of its --capture at UTC times';
  return `${truth}; if the gateways hear ${other} there, calibrate its counts instead (--radio ${other})`;
}

export async function runCalibrate(flags: Flags, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  if (!flags.zone) throw new UsageError('--zone is needed (the zone this calibration is for)');
  // A URL with credentials pasted as --out would name a file after them, and be printed back as written.
  const outProblem = flags.out === undefined ? undefined : pathCredentialsProblem('--out', flags.out);
  if (outProblem) throw new UsageError(outProblem);
  // A zone or site the gateways cannot publish would never get people: refused here, not ignored later.
  for (const [flag, id] of [
    ['zone', flags.zone],
    ['site', flags.site],
  ] as const) {
    if (id !== undefined && !isValidId(id)) {
      throw new UsageError(`--${flag} "${id}": not a ${flag} id (lower case letters, digits, - and _, at most 63, as in the gateways' config)`);
    }
  }
  // The aggregator's v2 options, which the InfluxQL reads here do not take: said how to read a 2.x/3.x bucket.
  const v2 = (['influxBucket', 'influxOrg', 'influxApi'] as const).find((k) => flags[k] !== undefined);
  if (v2) {
    const name = `--${v2.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    throw new UsageError(
      `${name} is an option of the aggregator's writes: calibrate reads with InfluxQL through /query (1.x, or 2.x/3.x through their v1 API, which needs no org); fix: give a 2.x/3.x bucket by the database name it is mapped to (DBRP) as --influx-db, and leave out --influx-bucket, --influx-org and --influx-api`,
    );
  }
  const stored = flags.influxUrl !== undefined;
  if (stored && flags.capture.length) throw new UsageError('use either --capture/--truth or --influx-url, not both');
  if (stored && flags.burstAddresses !== undefined)
    throw new UsageError('--burst-addresses goes with --capture: stored counts were counted by the gateway with its own estimator.burst_addresses');
  // (they were ignored here: the stored counts are what the gateways counted with their own settings)
  if (stored && flags.rssiMin !== undefined)
    throw new UsageError('--rssi-min goes with --capture: stored counts were counted by the gateway with its own rssi_min_dbm');
  if (stored && flags.sessionBy === 'capture')
    throw new UsageError('--session-by capture goes with --capture: with stored counts a session is the UTC day of the count');
  if (stored && flags.ignoreFcs) throw new UsageError('--ignore-fcs goes with --capture: stored counts were counted by the gateway with its own setting');
  if (!stored && flags.capture.length === 0)
    throw new UsageError('give --capture FILE --truth FILE (one pair per session), or --influx-url with --site and --truth');
  if (!flags.out && !flags.leaveOneOut && !flags.json)
    throw new UsageError('--out FILE is needed (where the calibration is written), unless only --leave-one-out or --json is wanted');
  const windowMs = calibrationWindow(flags.window);
  const level = number('level', flags.level, (v) => v > 0 && v < 1, 'between 0 and 1, like 0.9');
  const replicates = number(
    'replicates',
    flags.replicates,
    (v) => Number.isInteger(v) && v >= 50 && v <= MAX_REPLICATES,
    `a whole number from 50 to ${MAX_REPLICATES}`,
  );
  const seed = number('seed', flags.seed, Number.isInteger, 'a whole number');
  // Stored counts were counted by the gateways' firmware, not by this build: no firmware is claimed for them.
  const estimator: Estimator = {
    field: flags.field,
    radio: flags.radio,
    window_s: windowMs / 1000,
    firmware: stored ? undefined : firmwareId(),
    version: VERSION,
  };
  if (stored) estimator.counted_by = 'gateways';
  if (!stored && flags.rssiMin !== undefined) estimator.rssi_min_dbm = Number(flags.rssiMin);
  if (!stored && flags.burstAddresses !== undefined) estimator.burst_addresses = Number(flags.burstAddresses);
  const prior = flags.prior ? priorFrom(flags.prior, flags.zone, estimator) : undefined;
  if (flags.out) checkOutFirst(flags.out);

  const samples = stored ? await pairFromInflux(flags, windowMs) : await pairFromCaptures(flags, windowMs);
  let result: ReturnType<typeof fit>;
  try {
    result = fit(
      samples.map((s) => ({ estimate: s[flags.field], people: s.people, session: s.session, zone: flags.zone, time: s.start })),
      { level, replicates, seed, prior, field: flags.field },
    );
  } catch (e) {
    if (e instanceof FitError && e.code === 'not_rising') throw new FitError(`${e.message}; fix: ${notRisingFix(flags, stored)}`);
    throw e;
  }
  const zone = result.zones[0];
  const loo = flags.leaveOneOut
    ? leaveOneOut(
        samples.map((s) => ({ estimate: s.estimate, devices: s.devices, people: s.people, session: s.session, time: s.start })),
        { level, seed },
      )
    : null;

  if (flags.json) {
    out.write(JSON.stringify({ fit: zone, global: result.global, estimator, leaveOneOut: loo }, null, 2) + '\n');
  } else {
    out.write(describeFit(zone, flags.field) + '\n');
    if (loo) out.write('\n' + describeLeaveOneOut(loo, level) + '\n');
  }
  for (const w of zone.warnings) process.stderr.write(`presence calibrate: warning: ${w}\n`);
  if (flags.out) {
    if (!(zone.k.value > 0)) {
      throw new FitError(
        `zone ${flags.zone}: k is ${f(zone.k.value, 4)}: people do not rise with the ${flags.field}, so no calibration file is written; fix: ${notRisingFix(flags, stored)}`,
      );
    }
    const file = toCalibrationFile(result, estimator);
    if (flags.site) file.zones[flags.zone].site = flags.site;
    const merged = merge(flags.out, file);
    try {
      writeCalibration(flags.out, merged.file);
    } catch (e) {
      // Which option the path came from: a full disk named the file alone ("PATH: no space left ...").
      if (e instanceof CalibrationFileError) throw new CalibrationFileError(`--out ${e.message}; nothing was changed`);
      throw e;
    }
    process.stderr.write(`presence calibrate: wrote ${flags.out}${merged.kept.length ? ` (kept its other zones: ${merged.kept.join(', ')})` : ''}\n`);
  }
}

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description(
      'Fit people = k * (estimate - b) for a zone from ground-truth counts; print the fit, its interval, the data and warnings; write a calibration file',
    )
    .option('--capture <file>', 'capture (pcap/pcapng) of one session; repeat, each with its --truth', collect, [])
    .option('--truth <file>', 'truth CSV: time;occupancy (step function) for each --capture, or time;people counts with --influx-url', collect, [])
    .requiredOption('--zone <name>', "zone the calibration is for: its id as in the gateways' config (lower case, digits, - and _)")
    .option('--site <name>', 'site of the zone (needed with --influx-url; written to the file)')
    .option(
      '-o, --out <file>',
      'calibration file to write (YAML); other zones already in it are kept, a zone of the same name is replaced unless of another --site (needed unless --leave-one-out or --json)',
    )
    .addOption(new Option('--radio <radio>', 'radio whose counts are calibrated').choices(['wifi', 'ble']).default('wifi'))
    .addOption(
      new Option('--field <field>', 'counts field mapped to people (devices: for comparison only)').choices(['estimate', 'devices']).default('estimate'),
    )
    .option('--window <duration>', 'window length, as the gateways count: whole seconds from 1s to 24h', '60s')
    .option('--ignore-fcs', 'capture form: count Wi-Fi frames whose FCS check fails (captures with a stale FCS)')
    .option('--rssi-min <dBm>', 'capture form: drop frames whose signal is known and below this (as the gateway is configured)')
    .option(
      '--burst-addresses <n>',
      "capture form: addresses of one scan burst the capturing radio heard, the Wi-Fi estimate's floor divisor, 1 to 64 (as the gateway's estimator.burst_addresses; default 7)",
    )
    .option('--level <p>', 'central level of the intervals', '0.9')
    .option('--replicates <n>', 'bootstrap replicates over sessions, 50 to 100000', '1000')
    .option(
      '--seed <n>',
      'seed of the bootstrap (the same windows and seed give the same file; a capture replayed again may count a window one higher or lower: a fresh random key per window)',
      '1',
    )
    .option('--prior <file>', 'earlier calibration file: shrink toward its global fit (for a zone with little data)')
    .addOption(
      new Option(
        '--session-by <unit>',
        'capture form: a session (unit of the bootstrap and of --leave-one-out) is a UTC day (captures of one day together) or a capture',
      )
        .choices(['day', 'capture'])
        .default('day'),
    )
    .option('--leave-one-out', 'capture form: for each session, calibrate on the others and test on it (estimate and devices side by side)')
    .option('--json', 'print the fit (and leave-one-out scores) as JSON')
    .option('--influx-url <url>', "stored-series form: InfluxDB to read the zone's stored series from (InfluxQL /query)")
    .option('--influx-db <database>', '1.x database (or a DBRP-mapped 2.x/3.x bucket)')
    .option('--influx-rp <policy>', "retention policy to read (left out: the database's default one, where the aggregator writes unless given --influx-rp)")
    .option('--influx-username <name>', '1.x user (env INFLUX_USERNAME)')
    .option('--influx-password <password>', '1.x password (env INFLUX_PASSWORD)')
    .option('--influx-password-file <file>', 'file whose first line is the 1.x password (env INFLUX_PASSWORD_FILE)')
    .option('--influx-token <token>', '2.x/3.x token (env INFLUX_TOKEN)')
    .option('--influx-token-file <file>', 'file whose first line is the 2.x/3.x token (env INFLUX_TOKEN_FILE)')
    .option('--influx-timeout <duration>', 'stored-series form: the longest one query may take, its answer included (answers over 256 MiB are refused)', '60s')
    // (the aggregator's v2 write options: refused with how to read a 2.x/3.x bucket, not "unknown option")
    .addOption(new Option('--influx-bucket <bucket>').hideHelp())
    .addOption(new Option('--influx-org <org>').hideHelp())
    .addOption(new Option('--influx-api <api>').hideHelp())
    .action(async (flags: Flags) => {
      try {
        await runCalibrate(flags);
      } catch (e) {
        const known = [UsageError, TruthError, FitError, CalibrationFileError, StoredSeriesError].some((c) => e instanceof c);
        const msg = known ? (e as Error).message : `${(e as Error).message ?? e}`;
        // A mistake in the call: one line and a hint (scripts/lib/usage.ts); bad data: one line naming file and line.
        if (e instanceof UsageError) exitUsage('calibrate', new Error(msg.split('\n')[0]));
        // A path or URL it names (--truth, --prior, a client's error) may hold a URL's credentials: named without them.
        process.stderr.write(`presence calibrate: ${printable(redactedLine(msg.split('\n')[0]))}\n`);
        process.exitCode = known ? 2 : 1;
      }
    });
}
