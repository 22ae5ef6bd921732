// `presence simulate`: generate captures and ground truth, stream them live, drive load, or
// evaluate the firmware against the truth.
import { decimal } from '../scripts/lib/decimal.ts';
import { exitUsage, UsageError } from '../scripts/lib/usage.ts';
import { delayedProgressBar, progressBar } from '../scripts/lib/progress.ts';
import { Option, type Command } from 'commander';
import { accessSync, appendFileSync, constants, existsSync, lstatSync, rmSync, statSync, truncateSync, unlinkSync, WriteStream, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DISK_FULL_FIX, fileWriteProblem, isDiskFull } from '../scripts/lib/atomic-file.ts';
import { createLogger } from '../scripts/lib/log.ts';
import { BURST_ADDRESSES_MAX, BURST_ADDRESSES_MIN } from '../firmware/host/types.ts';
import { evaluate, PEOPLE_GOAL_MAPE, type Evaluation, type GatewayScore } from './evaluate.ts';
import { privacyTable } from './privacy-eval.ts';
import type { PeopleScore } from './people.ts';
import { simulate } from './index.ts';
import { openLivePath, runLive, type LiveOutput } from './live.ts';
import { CaptureStreamError, ReaderClosedError } from './pcap-writer.ts';
import { runLoad } from './load.ts';
import { renameOldFlags, type OptionSpec } from '../scripts/lib/config-loader.ts';
import { DURATION_HINT, durationMs, formatDuration, durationNote } from '../scripts/lib/duration.ts';
import {
  AT_AFTER_HOST_HINT,
  badUserinfoEscape,
  USERINFO_ESCAPE_HINT,
  atAfterHost,
  isParsableUrl,
  outOfRangePort,
  PORT_RANGE_HINT,
  pathCredentialsProblem,
  readSecretFile,
  redactTypedUrl,
  redactUrl,
} from '../scripts/lib/secrets.ts';
import { canonicalMqttUrl, MQTT_URL_HINT, MQTT_URL_PATTERN, passwordWithoutUsername } from '../scripts/lib/mqtt-options.ts';
import { flipThreshold, isValidId, MAX_WINDOW_MS, RR_SCALE, SKETCH_BITS_ALLOWED } from '../contract/index.ts';
import { CLOCK_MIN_MS } from '../gateway/window.ts';
import { builtinScenarios, loadScenario, nominalPeople, ScenarioError, type Scenario, type ScenarioOverrides } from './scenario.ts';
import {
  checkDisk,
  checkDuration,
  checkRun,
  ESTIMATE_BUDGET_FRAMES,
  estimateOutput,
  formatBytes,
  LOAD_GATEWAYS_MAX,
  makeOutDir,
  removeDirs,
  scenarioUsageError,
  SIZE_GUARD_BYTES,
  seedOf,
} from './limits.ts';

export { estimateOutput, formatBytes, SIZE_GUARD_BYTES } from './limits.ts';
import { captureInterfaces, type BleLink } from './sim.ts';
import { CAPTURE_HEADER_BYTES, estimateTruthBytes } from './truth-size.ts';

interface Flags {
  yes?: boolean;
  list?: boolean;
  seed: string;
  duration?: string;
  window?: string;
  scale?: string;
  people?: string;
  start?: string;
  out?: string;
  format: string;
  bleLink: string;
  live?: boolean;
  speed: string;
  gateway?: string;
  pipe?: string;
  fifo?: boolean;
  radio?: string;
  load?: boolean;
  gateways: string;
  rate: string;
  mqttUrl?: string;
  /** @deprecated --mqtt, the old name of --mqtt-url */
  mqtt?: string;
  site: string;
  count?: string;
  invalid?: string;
  malformed?: string;
  duplicate?: string;
  evaluate?: boolean;
  json?: boolean;
  ignoreFcs?: boolean;
  rssiMin?: string;
  fitSeed?: string;
  burstAddresses?: string;
  calibrate: boolean;
  sketchBits?: string;
  sketchP?: string;
  flows: boolean;
}

/** --evaluate without --duration / --scale / --people: at most this long, at most this crowd. */
const EVALUATE_DEFAULT_S = 1800;
const EVALUATE_DEFAULT_PEOPLE = 300;

function num(name: string, v: string | undefined, min = -Infinity): number | undefined {
  if (v === undefined) return undefined;
  const n = decimal(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name}: must be a number${min > -Infinity ? ` >= ${min}` : ''} (got "${v}")`);
  return n;
}
/** A count flag: a whole number of at least `min`. */
function whole(name: string, v: string | undefined, min: number): number | undefined {
  const n = num(name, v, min);
  if (n !== undefined && !Number.isInteger(n)) throw new UsageError(`--${name}: must be a whole number >= ${min} (got "${v}")`);
  return n;
}
/** --gateways of load mode: a whole number from 1 to LOAD_GATEWAYS_MAX. */
function loadGateways(v: string | undefined): number {
  const n = whole('gateways', v, 1)!;
  if (n > LOAD_GATEWAYS_MAX)
    throw new UsageError(
      `--gateways: at most ${LOAD_GATEWAYS_MAX.toLocaleString('en')} virtual gateways (got "${v}")`,
      'each virtual gateway is held in memory; for more, run several load generators, each with its own --site',
    );
  return n;
}
/** A share flag: 0 to 1. */
function share(name: string, v: string | undefined): number | undefined {
  const n = num(name, v, 0);
  if (n !== undefined && n > 1) throw new UsageError(`--${name}: must be a share from 0 to 1, like 0.01 (got "${v}")`);
  return n;
}
/** --sketch-p: a flip probability the firmware quantises to T = 1 .. 65535 of 65536 (T = 0 randomises no bit, 65536 every bit; a sketch's p is above 0 and below 1). */
function sketchP(v: string | undefined): number | undefined {
  const n = share('sketch-p', v);
  if (n === undefined) return n;
  const t = flipThreshold(n);
  if (t === 0 || t === RR_SCALE)
    throw new UsageError(
      `--sketch-p: must be from 1 / 131072 (0.0000077) to below 1 - 1 / 131072 (0.99999237), like 0.03 (got "${v}"): it rounds to T = ${t} of 65536, ${t === 0 ? 'no bit would be randomised' : 'every bit would be a coin flip'}, and the aggregator refuses such a sketch`,
      "the gateways' corridor.sketch_p takes the same values",
    );
  return n;
}
/** --rssi-min: a signal level in dBm, -128 to 127 (as presence replay takes it). */
function rssiMin(v: string | undefined): number | undefined {
  const n = num('rssi-min', v);
  if (n !== undefined && !(n >= -128 && n <= 127))
    throw new UsageError(`--rssi-min: must be a signal level in dBm between -128 and 127, like -80 (got "${v}")`);
  return n;
}
/** --burst-addresses: 1 to 64. */
function burstAddresses(v: string | undefined): number | undefined {
  const n = num('burst-addresses', v);
  if (n !== undefined && !(n >= BURST_ADDRESSES_MIN && n <= BURST_ADDRESSES_MAX))
    throw new UsageError(`--burst-addresses: must be a number from ${BURST_ADDRESSES_MIN} to ${BURST_ADDRESSES_MAX} (got "${v}")`);
  return n;
}
/** Seconds of a duration flag; a bare number is seconds, as these flags always read it (with one deprecation line). */
function dur(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const ms = durationMs(v, { bare: 's' });
  // A bare 0 is read as seconds too: it is refused for being 0, and says so (durationNote), in that
  // one line (its deprecation line, "use 0s", came first, for a value no unit makes right).
  if (Number.isNaN(ms)) throw new UsageError(`--${name}: ${DURATION_HINT} (got "${v}")${durationNote(v)}`);
  durationMs(v, { bare: 's', name: `--${name}` }); // a bare number taken: its deprecation line
  return ms / 1000;
}

/** Flags renamed to the names every command uses; the old ones still work and print one deprecation line. */
const RENAMED: OptionSpec[] = [{ key: 'mqtt.url', flag: '--mqtt-url <url>', env: 'MQTT_URL', old: { flags: ['--mqtt'] }, description: 'load: broker URL' }];

/** The scenario named on the command line; a name that is neither a file nor a built-in is a usage error. */
function loadScenarioArg(nameOrPath: string, o: ScenarioOverrides): Scenario {
  if (!existsSync(nameOrPath) && !builtinScenarios().includes(nameOrPath))
    throw new UsageError(
      `scenario "${nameOrPath}": not a built-in scenario and no such file`,
      `the built-in scenarios are ${builtinScenarios().join(', ')} (presence simulate --list describes them); or give a scenario file (YAML/JSON)`,
    );
  return loadScenario(nameOrPath, o);
}

/** --pipe names a path in a folder that must exist: checked before the stream starts. */
function checkPipeFolder(path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(
      `--pipe ${path}: the folder ${dir} does not exist`,
      'give a path in an existing folder (mkfifo PATH makes a named pipe; --fifo makes it for you)',
    );
  // A folder there, or a new file in a folder it cannot write to, failed after 'live stream started'
  // (EISDIR, EACCES: exit 1, no hint).
  const st = existsSync(path) ? statSync(path) : null;
  if (st?.isDirectory()) throw new UsageError(`--pipe ${path}: is a folder`, 'give the path of a named pipe (mkfifo PATH, or --fifo) or of a new file');
  if (!st) {
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      throw new UsageError(`--pipe ${path}: the folder ${dir} is not writable`, 'give a path in a folder you can write to');
    }
  }
  // A file that is there already is not written over: a stream goes into a named pipe or a new file.
  if (st?.isFile())
    throw new UsageError(
      `--pipe ${path}: a file of that name exists, and --pipe does not write over it`,
      'remove it, give another path, or make a named pipe there (mkfifo PATH; --fifo makes it for you)',
    );
}

/** The flags of each mode (the help marks them live:, load:, evaluate:); --seed, --duration and --window are every mode's. */
const MODE_FLAGS: Record<'files' | 'live' | 'load' | 'evaluate', ReadonlyArray<keyof Flags>> = {
  files: ['scale', 'people', 'start', 'out', 'yes', 'format', 'bleLink'],
  live: ['scale', 'people', 'start', 'out', 'format', 'bleLink', 'speed', 'gateway', 'pipe', 'fifo', 'radio'],
  load: ['gateways', 'rate', 'mqttUrl', 'mqtt', 'site', 'count', 'invalid', 'malformed', 'duplicate'],
  evaluate: ['scale', 'people', 'start', 'bleLink', 'json', 'ignoreFcs', 'rssiMin', 'burstAddresses', 'fitSeed', 'calibrate', 'sketchBits', 'sketchP', 'flows'],
};
const MODE_NAME = { files: 'a run that writes capture files', live: '--live', load: '--load', evaluate: '--evaluate' };

/** The option's flag as written: bleLink -> --ble-link, calibrate -> --no-calibrate. */
function flagName(key: string): string {
  if (key === 'calibrate' || key === 'flows') return `--no-${key}`;
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * A flag given for another mode than the one run is refused: it was silently ignored (--radio wifi on a
 * pcapng stream streamed both radios, --out with --evaluate wrote nothing, --scale with --load changed nothing).
 */
function checkModeFlags(f: Flags, scenarioArg: string | undefined, given: (key: string) => boolean): void {
  for (const [name, path] of [
    ['--out', f.out],
    ['--pipe', f.pipe],
  ] as const) {
    // ("" was the working folder's parent, named "/", then a bare ENOENT from mkdir)
    if (path === '') throw new UsageError(`${name} is empty: give the ${name === '--out' ? 'folder' : 'file'} to write to`);
    const problem = path === undefined ? undefined : pathCredentialsProblem(name, path);
    if (problem) throw new UsageError(problem, 'give the folder or file to write there');
  }
  const modes = (['live', 'load', 'evaluate'] as const).filter((m) => f[m]);
  if (modes.length > 1) throw new UsageError(`${modes.map((m) => `--${m}`).join(' and ')}: give one mode`, "presence simulate --help marks each option's mode");
  if (f.list) return;
  const mode = modes[0] ?? 'files';
  const allowed = new Set<string>(MODE_FLAGS[mode]);
  for (const key of new Set(Object.values(MODE_FLAGS).flat()))
    if (!allowed.has(key) && given(key)) {
      const owners = (Object.keys(MODE_FLAGS) as Array<keyof typeof MODE_FLAGS>).filter((m) => MODE_FLAGS[m].includes(key)).map((m) => MODE_NAME[m]);
      throw new UsageError(`${flagName(key)}: used by ${owners.join(' or ')}, not by ${MODE_NAME[mode]}`, "presence simulate --help marks each option's mode");
    }
  if (mode === 'load' && scenarioArg !== undefined)
    throw new UsageError(
      `scenario "${scenarioArg}": --load publishes counts of virtual gateways and runs no scenario`,
      'leave the scenario out, or leave out --load',
    );
  if (mode === 'live') {
    if (given('radio') && f.format !== 'pcap')
      throw new UsageError(`--radio ${f.radio}: only with --format pcap (a pcapng stream holds both radios)`, 'add --format pcap, or leave out --radio');
    // a classic pcap of the Wi-Fi radio holds no BLE: --ble-link hci there was ignored without a word
    if (given('bleLink') && f.format === 'pcap' && f.radio === 'wifi')
      throw new UsageError(`--ble-link ${f.bleLink}: a --format pcap stream of --radio wifi holds no BLE`, 'leave out --ble-link, or give --radio ble');
    if (f.fifo && !f.out && !f.pipe)
      throw new UsageError('--fifo: makes the named pipes of --out or --pipe; give one of them', 'presence simulate --help describes both');
  }
}

/** "1 person", "2 people". */
const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** What is at `path` when it is not a regular file ("a folder", "a named pipe", ...); undefined for a file. */
function notAFile(path: string): string | undefined {
  const st = lstatSync(path);
  if (st.isFile()) return undefined;
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isSocket()) return 'a socket';
  return 'a device';
}

/** Refuses anything but a file (a folder, a named pipe, ...) where --out's run writes the file `name`. */
function refuseNotAFile(outDir: string, name: string, kind: string | undefined): void {
  if (kind)
    throw new UsageError(
      `--out ${outDir}: ${name} there is ${kind}, not a file of an earlier run, and this run writes a file of that name`,
      'remove it or give another --out',
    );
}

function overrides(f: Flags): ScenarioOverrides {
  const start = f.start;
  if (start !== undefined && Number.isNaN(Date.parse(start))) throw new UsageError(`--start: must be a date like 2026-04-27T10:00:00Z (got "${start}")`);
  const durationS = dur('duration', f.duration);
  if (durationS !== undefined) checkDuration('--duration', durationS, f.duration!);
  // Both set the crowd's scale: one of them was silently dropped (--people won).
  if (f.scale !== undefined && f.people !== undefined)
    throw new UsageError(
      `--scale ${f.scale} and --people ${f.people}: both set the crowd's size; give one of them`,
      '--scale multiplies the crowds, --people N sets that factor so their nominal peak is N people',
    );
  return {
    durationS,
    windowS: dur('window', f.window),
    scale: num('scale', f.scale, 0),
    people: num('people', f.people, 0),
    start,
  };
}

function sketchBits(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = decimal(v);
  // The sizes a gateway's corridor.sketch_bits and the contract take: 64 to 512 passed here and the
  // aggregator's intake refused the first sketch once the whole run was simulated (exit 1, no hint).
  if (!SKETCH_BITS_ALLOWED.includes(n))
    throw new UsageError(
      `--sketch-bits: must be one of ${SKETCH_BITS_ALLOWED.join(', ')} (got "${v}")`,
      "the sizes a gateway's corridor.sketch_bits takes; the same in every gateway of the group",
    );
  return n;
}

function flowsTable(e: Evaluation, Table: typeof import('cli-table3')): string {
  const f = e.flows;
  if (!f) return '';
  const t = new Table({
    style: { head: [], border: [] },
    head: [
      'from',
      'to',
      'true flow',
      'estimate',
      'baseline',
      'flow error %\n(baseline)',
      'travel median s\ntrue / estimate',
      'travel median\nerror % (baseline)',
    ],
  });
  const v = (x: number | null) => (x === null ? '-' : String(x));
  for (const p of f.pairs)
    t.push([
      p.from,
      p.to,
      p.truth,
      p.estimate,
      p.baseline,
      `${v(p.count_error_pct)} (${v(p.baseline_count_error_pct)})`,
      `${v(p.truth_travel_median_s)} / ${v(p.estimate_travel_median_s)}`,
      `${v(p.travel_median_error_pct)} (${v(p.baseline_travel_median_error_pct)})`,
    ]);
  return (
    [
      `flows from corridor sketches (m ${f.m}, p ${+f.p.toFixed(4)}; the firmware's sketches of the simulated frames): per ${f.interval_s / 60}-min interval, ${f.intervals} intervals with a true flow >= 10 matchable identities`,
      t.toString(),
      `all pairs: flow error ${v(f.count_error_pct)} % (baseline ${v(f.baseline_count_error_pct)} %), travel median error ${v(f.travel_median_error_pct)} % (baseline ${v(f.baseline_travel_median_error_pct)} %); true flow within the bounds in ${f.count_bounds_coverage === null ? '-' : Math.round(f.count_bounds_coverage * 100)} % of intervals`,
      f.calibration_seed === null
        ? 'not calibrated: the flows are matched devices (expansion 1)'
        : `expansion factors calibrated on a run with seed ${f.calibration_seed}; uncalibrated (matched devices): flow error ${v(f.matched_count_error_pct)} % (baseline ${v(f.baseline_matched_count_error_pct)} %); as travellers (a vehicle is one): ${v(f.travellers_count_error_pct)} %`,
      `epsilon per device per ${f.epoch_s / 3600}-h epoch: worst device ${f.epsilon} (${f.sketches_per_device.max} sketches), 95th percentile ${f.epsilon_p95} (${f.sketches_per_device.p95}), median device ${f.epsilon_median} (${f.sketches_per_device.median}); ${f.epsilon_per_sketch} per sketch`,
    ].join('\n') + '\n'
  );
}

function evaluationTable(e: Evaluation, Table: typeof import('cli-table3')): string {
  const t = new Table({
    style: { head: [], border: [] },
    head: [
      'gateway',
      // scored: windows with devices of that radio in reach (a BLE-only gateway showed 0 windows)
      'windows\nscored\nWi-Fi / BLE',
      'Wi-Fi distinct\naddresses\nMAPE %',
      'Wi-Fi devices\npresent (estimate)\nMAPE %',
      'BLE distinct\naddresses\nMAPE %',
      'BLE devices\npresent (estimate)\nMAPE %',
      'people from\nWi-Fi (calibrated)\nMAPE % / MAE',
      'people from\nBLE (calibrated)\nMAPE % / MAE',
      'people from\nboth radios\nMAPE % / MAE',
      'parity\nmismatches',
    ],
  });
  // No window scored (no calibration for the radio, or none for this gateway's zone: a gateway without
  // Wi-Fi beside one with it) is '-': its 0 / 0 read as a perfect score.
  const people = (p: PeopleScore | null) => (p && p.windows > 0 ? `${p.mape} / ${p.mae}` : '-');
  // A MAPE over no window (no such radio, nothing of it in reach) is '-', not a perfect 0.
  const mape = (x: number, windows: number) => (windows > 0 ? x : '-');
  const row = (id: string, g: Pick<GatewayScore, 'wifi' | 'ble' | 'people'>) => [
    id,
    `${g.wifi.windows} / ${g.ble.windows}`,
    mape(g.wifi.devicesMape, g.wifi.windows),
    mape(g.wifi.estimateMape, g.wifi.estimateWindows),
    mape(g.ble.devicesMape, g.ble.windows),
    mape(g.ble.estimateMape, g.ble.estimateWindows),
    people(g.people.wifi),
    people(g.people.ble),
    people(g.people.combined),
    g.wifi.parityMismatches + g.ble.parityMismatches,
  ];
  for (const g of e.gateways) t.push(row(g.id, g));
  t.push(row('all', e.overall));
  const lines = [
    `${e.scenario} (seed ${e.seed}, scale ${+e.scale.toFixed(4)}, ${e.durationS} s in ${e.windowS}-s windows)`,
    t.toString(),
    'distinct addresses (the devices field) and devices present (the estimate field), both uncalibrated, against the devices in reach per radio (the BLE estimate: without beacons, which it leaves out); neither is people.',
    `Wi-Fi estimate's floor: new addresses / burst addresses per 10-s sub-window; burst addresses per gateway ${e.gateways.map((g) => `${g.id} ${g.burstAddresses}`).join(', ')}.`,
  ];
  const c = e.calibration;
  if (c) {
    lines.push(
      `people: people = k * (estimate - b) per zone, fitted on seed ${c.fitSeed} and tested here, against people present (time-averaged); MAE in people.`,
    );
    for (const cal of [c.wifi, c.ble]) {
      const radio = cal.radio === 'wifi' ? 'Wi-Fi' : 'BLE';
      if (cal.error) lines.push(`  ${radio}: no calibration: ${cal.error}`);
      else {
        const warnings = cal.zones.reduce((n, z) => n + z.warnings.length, 0);
        lines.push(
          `  ${radio}: ${cal.zones.map((z) => `${z.zone} k ${+z.k.toFixed(3)} b ${+z.b.toFixed(2)}`).join(', ')}${warnings ? ` (${warnings} fit warnings: --json lists them)` : ''}`,
        );
      }
    }
    if (c.combined)
      lines.push(
        `  both radios (evaluation only, no calibration file holds it): per zone Wi-Fi weight ${c.combined.zones.map((z) => `${z.zone} ${z.wifi}`).join(', ')} (the rest BLE; weights from the errors on seed ${c.fitSeed})`,
      );
    const o = e.overall.people;
    const all = (name: string, p: PeopleScore | null) => (p && p.windows > 0 ? `${name} ${p.mape} / ${p.wape} / ${p.coverage}` : `${name} -`);
    if (o.wifi || o.ble || o.combined || o.reference)
      lines.push(
        `  all windows, MAPE % / WAPE % (absolute errors over people, summed) / windows inside the 90 % interval %: ${all('Wi-Fi', o.wifi)}; ${all('BLE', o.ble)}; ${all('both', o.combined)}; reference, people from the devices in reach as the simulator knows them (no radio measures that) ${all('', o.reference).trim()}; from the phones in reach alone ${all('', o.phones).trim()}`,
      );
  } else lines.push('people: not calibrated (--no-calibrate), so not shown.');
  return lines.join('\n') + '\n';
}

/** One row per scenario evaluated: the estimates' error and people per radio against the goal. */
export function summaryTable(es: Evaluation[], Table: typeof import('cli-table3')): string {
  const t = new Table({
    style: { head: [], border: [] },
    head: [
      'scenario',
      'seed\n(fit seed)',
      'windows\nscored\nWi-Fi / BLE',
      'Wi-Fi devices\npresent (estimate)\nMAPE %',
      'BLE devices\npresent (estimate)\nMAPE %',
      'people from\nWi-Fi\nMAPE %',
      'people from\nBLE\nMAPE %',
      'people from\nboth radios\nMAPE %',
      'reference:\ndevices in reach\nMAPE %',
      'reference:\nphones in reach\nMAPE %',
      `people MAPE\n<= ${PEOPLE_GOAL_MAPE} %`,
    ],
  });
  const v = (x: number | null) => (x === null ? '-' : x);
  const names = { wifi: 'Wi-Fi', ble: 'BLE', combined: 'both radios' } as const;
  for (const e of es) {
    const s = e.summary;
    const radios = (['wifi', 'ble', 'combined'] as const).filter((r) => s.people[r] !== null);
    const best = radios.sort((a, b) => s.people[a]! - s.people[b]!)[0];
    const verdict = !e.calibration
      ? 'not scored'
      : s.met.length
        ? `met: ${s.met.map((r) => names[r]).join(', ')}`
        : best
          ? `not met (best: ${names[best]})`
          : 'not met (no calibration)';
    t.push([
      e.scenario,
      e.calibration ? `${e.seed} (${e.calibration.fitSeed})` : e.seed,
      `${e.overall.wifi.windows} / ${e.overall.ble.windows}`,
      v(s.wifiEstimateMape),
      v(s.bleEstimateMape),
      v(s.people.wifi),
      v(s.people.ble),
      v(s.people.combined),
      v(s.people.reference),
      v(s.people.phones),
      verdict,
    ]);
  }
  const e0 = es[0];
  return (
    [
      `summary: ${es.length === 1 ? 'the scenario' : `${es.length} scenarios`}, ${e0.durationS} s in ${e0.windowS}-s windows; people calibrated on the fit seed and scored on the seed, against people present; the estimates against the devices in reach`,
      t.toString(),
    ].join('\n') + '\n'
  );
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('Simulated crowds: captures per gateway with ground truth, live streams, MQTT load, or firmware evaluation')
    .argument('[scenario]', `built-in scenario (${builtinScenarios().join(', ')}) or a scenario file (YAML/JSON)`)
    .option('--list', 'list the built-in scenarios')
    .option('--seed <n>', 'random seed, 0 to 4294967295: the same seed gives byte-identical output', '1')
    .option('--duration <duration>', "simulated time, e.g. 15m or 1h, at most 31d (default: the scenario's)")
    .option('--window <duration>', "ground-truth window, e.g. 60s (default: the scenario's); load: the counts' window, at most 24h (default 60s)")
    .option('--scale <factor>', 'multiply crowd sizes and flow rates, e.g. 0.01 for a quick run (at most 300,000 people at the peak)')
    .option('--people <n>', 'scale the crowds so their nominal peak is n people')
    .option('--start <time>', 'simulated start time (ISO 8601); the run must lie in 2000-2099, the years a gateway counts')
    .option('--out <dir>', 'output folder, made when missing; files of an earlier run there are replaced (default: sim-out/<scenario>)')
    .option('--yes', 'write the captures even when they come to more than 200 MB (the size is printed first)')
    .option('--format <format>', 'pcapng (one file per gateway, both radios) or pcap (one file per radio)', 'pcapng')
    .option('--ble-link <kind>', 'BLE capture as ll (link layer with pseudo-header, 256) or hci (HCI events, 201)', 'll')
    .option('--live', 'stream frames in (accelerated) real time instead of writing files')
    .option('--speed <n>', 'live: simulated seconds per second, or "max"', '1')
    .option('--gateway <id>', 'live: the gateway whose stream goes to stdout or --pipe')
    .option('--pipe <path>', 'live: write the stream to this path (a named pipe, or a new file) instead of stdout')
    .option('--fifo', 'live with --out: create named pipes <out>/<gateway>.pcapng for the gateways to read')
    .option(
      '--radio <radio>',
      'live with --format pcap: the radio to stream, wifi or ble (classic pcap holds one link type; default wifi, or ble on a gateway without Wi-Fi)',
    )
    .option('--load', 'load mode: publish count messages for virtual gateways to MQTT')
    .option('--gateways <n>', `load: number of virtual gateways (1 to ${LOAD_GATEWAYS_MAX.toLocaleString('en')})`, '10')
    .option('--rate <msgs/s>', 'load: messages per second', '100')
    .option(
      '--mqtt-url <url>',
      'load: broker URL (env MQTT_URL; default mqtt://127.0.0.1:1883; credentials from MQTT_USERNAME and MQTT_PASSWORD or MQTT_PASSWORD_FILE)',
    )
    .addOption(new Option('--mqtt <url>', 'deprecated: use --mqtt-url').hideHelp())
    .option('--site <id>', 'load: site id', 'load')
    .option('--count <n>', 'load: stop after n messages')
    .option('--invalid <share>', 'load: share of schema-invalid payloads (0..1)')
    .option('--malformed <share>', 'load: share of payloads that are not JSON (0..1)')
    .option('--duplicate <share>', 'load: share of messages sent twice, as a QoS 1 redelivery (0..1)')
    .option(
      '--evaluate',
      "run the firmware over the frames and print its error against the truth, and people from a calibration fitted on another seed: per radio, both radios together, and references from the devices and from the phones in reach, then a summary row per scenario against the goal of people within 15 % (all built-ins when no scenario is given; without --duration/--scale/--people: at most 30 min, crowd scaled to a nominal peak of at most ~300 people, as --people counts; King's Day then holds 5-30 per gateway in its first 30 minutes)",
    )
    .option('--json', 'evaluate: print JSON, one object per scenario on a line of its own')
    .option('--ignore-fcs', 'evaluate: count frames with a bad FCS')
    .option('--rssi-min <dBm>', 'evaluate: firmware drops frames weaker than this')
    .option(
      '--burst-addresses <n>',
      "evaluate: addresses of one scan burst every gateway hears, the Wi-Fi estimate's floor divisor, 1 to 64 (default: each gateway's figure from its simulated receiver, printed with the table)",
    )
    .option('--fit-seed <n>', 'evaluate: seed of the run the people calibration is fitted on (default: --seed + 1, 0 after 4294967295)')
    .option('--no-calibrate', 'evaluate: skip the calibration run; people are not scored')
    .option('--sketch-bits <m>', `evaluate: corridor sketch size in bits, ${SKETCH_BITS_ALLOWED.join(', ')} (default 8192, as the gateway)`)
    .option(
      '--sketch-p <p>',
      'evaluate: corridor sketch flip probability, above 0 and below 1 (0.0000077 to 0.99999237: quantised to T / 65536 with T from 1 to 65535; default 0.03)',
    )
    .option('--no-flows', 'evaluate: skip the flows between gateways (corridor sketches)')
    .action(async (scenarioArg: string | undefined, given: Flags, cmd: Command) => {
      const f = renameOldFlags(given as Flags & Record<string, unknown>, RENAMED, true);
      const log = createLogger({ component: 'simulate' });
      const fail = (m: string) => {
        process.stderr.write(`presence simulate: ${m}\n`);
        process.exitCode = 1;
      };
      /** With --live: true while a named pipe of the stream has no reader yet (set once they are made). */
      let waitingPipe: (() => boolean) | null = null;
      try {
        const seed = seedOf('--seed', f.seed)!;
        if (f.list) {
          // --list runs nothing: a scenario or another flag beside it was silently ignored
          const others = cmd.options.map((o) => o.attributeName()).filter((k) => k !== 'list' && cmd.getOptionValueSource(k) === 'cli');
          if (scenarioArg !== undefined || others.length)
            throw new UsageError(
              `--list: lists the built-in scenarios and runs nothing, so ${scenarioArg !== undefined ? `scenario "${scenarioArg}"` : others.map(flagName).join(', ')} would be ignored`,
              'give --list alone, or leave it out to run',
            );
          for (const name of builtinScenarios()) {
            const s = loadScenario(name);
            process.stdout.write(`${name.padEnd(18)} ${s.description}\n`);
          }
          return;
        }
        checkModeFlags(f, scenarioArg, (key) => cmd.getOptionValueSource(key) === 'cli');
        if (f.format !== 'pcap' && f.format !== 'pcapng') throw new UsageError(`--format: must be pcap or pcapng (got "${f.format}")`);
        if (f.bleLink !== 'll' && f.bleLink !== 'hci') throw new UsageError(`--ble-link: must be ll or hci (got "${f.bleLink}")`);
        const bleLink = f.bleLink as BleLink;

        if (f.load) {
          const duration = dur('duration', f.duration);
          const count = whole('count', f.count, 1);
          if (duration === undefined && count === undefined) throw new UsageError('--load needs --duration or --count');
          // Checked before connecting: the generator found them only after the broker had the statuses.
          if (!isValidId(f.site))
            throw new UsageError(
              `--site ${JSON.stringify(f.site)}: must be lower-case letters, digits, - and _, like city-centre`,
              'a site id is part of every topic',
            );
          const windowS = dur('window', f.window) ?? 60;
          if (windowS * 1000 > MAX_WINDOW_MS)
            throw new UsageError(
              `--window ${f.window}: a counts window is at most ${MAX_WINDOW_MS / 3_600_000}h (the contract's limit)`,
              'give a shorter --window, like 60s',
            );
          // The windows end near now, one per gateway and message: too many go back before 2000, which no
          // gateway counts and the contract refuses (found after connecting, naming no flag).
          const gateways = loadGateways(f.gateways);
          const rate = num('rate', f.rate, 0.001)!;
          const limit = Math.min(count ?? Infinity, duration !== undefined ? Math.ceil(rate * duration) : Infinity);
          const firstStart = Date.now() - (Math.ceil(limit / gateways) + 1) * windowS * 1000;
          if (firstStart < CLOCK_MIN_MS)
            throw new UsageError(
              `${count !== undefined && limit === count ? `--count ${f.count}` : `--duration ${f.duration} at --rate ${f.rate}`}: ${limit.toLocaleString('en')} messages of ${gateways.toLocaleString('en')} gateways in ${formatDuration(windowS * 1000)} windows ending now begin before 2000, the years a gateway counts`,
              'give fewer messages (--count, --duration), more --gateways or a shorter --window',
            );
          // A message is broken one way or the other: the two shares together are at most the whole
          // (0.6 and 0.6 made every message invalid or malformed, 0.6 and 0.4, without a word).
          const faults = { invalid: share('invalid', f.invalid), malformed: share('malformed', f.malformed), duplicate: share('duplicate', f.duplicate) };
          if ((faults.invalid ?? 0) + (faults.malformed ?? 0) > 1)
            throw new UsageError(
              `--invalid ${f.invalid} and --malformed ${f.malformed}: together more than 1 (each message is broken one way at most)`,
              'give shares that add up to 1 or less, like --invalid 0.01 --malformed 0.01',
            );
          const url = f.mqttUrl ?? (process.env.MQTT_URL || 'mqtt://127.0.0.1:1883');
          if (!new RegExp(MQTT_URL_PATTERN).test(url) || !isParsableUrl(url)) {
            const port = outOfRangePort(url);
            throw new UsageError(
              `${f.mqttUrl ? '--mqtt-url' : 'MQTT_URL'}: ${atAfterHost(url) ? AT_AFTER_HOST_HINT : badUserinfoEscape(url) ? USERINFO_ESCAPE_HINT : port !== undefined ? `port ${port} ${PORT_RANGE_HINT}` : MQTT_URL_HINT} (got ${JSON.stringify(redactTypedUrl(url))})`,
            );
          }
          // The broker credentials as every command takes them (the URL's user:password works too).
          const username = process.env.MQTT_USERNAME || undefined;
          const noUser = passwordWithoutUsername({
            url,
            username,
            password: process.env.MQTT_PASSWORD || undefined,
            password_file: process.env.MQTT_PASSWORD_FILE || undefined,
          });
          if (noUser)
            throw new UsageError(
              `${process.env.MQTT_PASSWORD ? 'MQTT_PASSWORD' : 'MQTT_PASSWORD_FILE'}: is set without MQTT_USERNAME: an MQTT client sends no password without a user name, so it would never connect; set MQTT_USERNAME too (or a user name in the URL)`,
            );
          let password = process.env.MQTT_PASSWORD || undefined;
          if (password === undefined && process.env.MQTT_PASSWORD_FILE) {
            try {
              password = readSecretFile(process.env.MQTT_PASSWORD_FILE, 'MQTT_PASSWORD_FILE');
            } catch (e) {
              throw new UsageError((e as Error).message);
            }
          }
          const r = await runLoad({
            url: canonicalMqttUrl(url),
            mqttOptions: { ...(username !== undefined && { username }), ...(password !== undefined && { password }) },
            gateways,
            rate,
            duration,
            count,
            site: f.site,
            seed,
            windowMs: windowS * 1000,
            faults,
            onProgress: (p) => log.info({ published: p.published, acked: p.acked, elapsed_s: p.elapsedS }, 'load progress'),
            onConnection: (state, unacked) =>
              state === 'lost'
                ? log.warn({ broker: redactUrl(url), unacked }, 'lost the connection to the broker; reconnecting, publishes wait for it')
                : log.info({ broker: redactUrl(url), unacked }, 'connected to the broker again'),
          });
          process.stdout.write(JSON.stringify(r) + '\n');
          if (r.refused > 0)
            return fail(
              `${r.refused} of the messages published (counts and statuses) were refused by the broker at ${redactUrl(url)} (PUBACK ${r.refusedReason}): ` +
                `its ACL does not let ${username === undefined ? 'an anonymous client' : `user ${username}`} publish on presence/v1/${f.site}/#; ` +
                `give the load a user that may (with docs/mosquitto/presence.acl: a user block with topic write presence/v1/${f.site}/#)`,
            );
          if (r.failed > 0 || r.unacked > 0)
            return fail(
              `${r.failed + r.unacked} of the messages published (counts and statuses) were not acknowledged by the broker at ${redactUrl(url)}` +
                ` (${r.failed} failed, ${r.unacked} unanswered when the run ended); check that the broker stays up and reachable for the whole run`,
            );
          return;
        }

        const o = overrides(f);
        if (f.evaluate) {
          const names = scenarioArg ? [scenarioArg] : builtinScenarios();
          // Every flag and every scenario's run is checked before the first run starts.
          const fitSeed = seedOf('--fit-seed', f.fitSeed);
          if (fitSeed !== undefined && fitSeed === seed)
            throw new UsageError(`--fit-seed: must differ from --seed (${seed}): the calibration is tested on a run it was not fitted on`);
          const settings = {
            seed,
            fitSeed,
            calibrate: f.calibrate,
            bleLink,
            ignoreFcs: f.ignoreFcs,
            rssiMinDbm: rssiMin(f.rssiMin),
            burstAddresses: burstAddresses(f.burstAddresses),
            sketchBits: sketchBits(f.sketchBits),
            sketchP: sketchP(f.sketchP),
            flows: f.flows,
          };
          const runs = names.map((name) => {
            // Quick by default: at most 30 simulated minutes and a crowd of at most ~300 people.
            const base = loadScenario(name);
            const quick: ScenarioOverrides = {
              durationS: o.durationS ?? Math.min(base.durationS, EVALUATE_DEFAULT_S),
              scale: o.scale ?? (o.people === undefined ? Math.min(1, EVALUATE_DEFAULT_PEOPLE / Math.max(1, nominalPeople(base))) : undefined),
            };
            const run = loadScenario(name, { ...o, ...quick });
            checkRun(run, f);
            return { name, quick, run };
          });
          const Table = (await import('cli-table3')).default;
          const done: Evaluation[] = [];
          for (const { name, quick, run } of runs) {
            // A bar on a terminal over the scored run and the fitting run (the flows' runs come after it);
            // with windows longer than a minute, over the simulated minutes, as simulate's bar.
            const runsToCount = f.calibrate ? 2 : 1;
            const byMinute = run.windowS > 60;
            const perRun = byMinute ? Math.ceil(run.durationS / 60) : Math.ceil(run.durationS / run.windowS);
            const total = perRun * runsToCount;
            const bar = await progressBar(`evaluate ${run.name}`, total, byMinute ? 'simulated minutes' : 'windows');
            const windowsPerRun = Math.ceil(run.durationS / run.windowS);
            const e = await evaluate({
              scenario: name,
              ...settings,
              ...o,
              ...quick,
              // a run's last window may be cut short by its end: its minutes end with the run
              onWindow: (n) =>
                bar?.update(
                  byMinute
                    ? Math.min(total, Math.floor(n / windowsPerRun) * perRun + Math.min(perRun, Math.ceil(((n % windowsPerRun) * run.windowS) / 60)))
                    : Math.min(n, total),
                ),
              onTime: byMinute ? (t) => bar?.update(Math.min(total, Math.floor(t / 60))) : undefined,
            });
            bar?.stop();
            process.stdout.write(f.json ? JSON.stringify(e) + '\n' : evaluationTable(e, Table) + privacyTable(e.privacy, Table) + flowsTable(e, Table));
            done.push(e);
          }
          if (!f.json) process.stdout.write(summaryTable(done, Table));
          return;
        }

        if (!scenarioArg) throw new UsageError(`give a scenario (${builtinScenarios().join(', ')}) or a scenario file; --list shows them`);
        const scenario = loadScenarioArg(scenarioArg, o);
        checkRun(scenario, f);

        if (f.live) {
          if (f.radio !== undefined && f.radio !== 'wifi' && f.radio !== 'ble') throw new UsageError(`--radio: must be wifi or ble (got "${f.radio}")`);
          const radio = f.radio as 'wifi' | 'ble' | undefined;
          const speed = f.speed === 'max' ? Infinity : num('speed', f.speed, 0.001)!;
          const outputs: LiveOutput[] = [];
          const ids = scenario.gateways.map((g) => g.id);
          if (f.gateway !== undefined && !ids.includes(f.gateway))
            throw new UsageError(`--gateway ${f.gateway}: ${scenario.name} has no such gateway (its gateways: ${ids.join(', ')})`);
          // A classic pcap of a radio the gateway lacks: said before any folder, file or pipe is made
          // (it failed after 'live stream started', exit 1 and no hint, leaving an empty file).
          if (radio !== undefined) {
            const streamed = f.out && !f.gateway ? scenario.gateways : scenario.gateways.filter((g) => g.id === (f.gateway ?? ids[0]));
            const without = streamed.filter((g) => !g[radio]);
            if (without.length)
              throw new UsageError(
                `--radio ${radio}: ${without.map((g) => g.id).join(', ')} of ${scenario.name} ${without.length > 1 ? 'have' : 'has'} no ${radio === 'wifi' ? 'Wi-Fi' : 'BLE'} radio`,
                `give the other --radio${
                  streamed.length > without.length || ids.length > 1
                    ? `, or a --gateway with that radio (${
                        scenario.gateways
                          .filter((g) => g[radio])
                          .map((g) => g.id)
                          .join(', ') || 'none has it'
                      })`
                    : ''
                }`,
              );
          }
          if (f.out) {
            makeOutDir('--out', f.out);
            // The run appends each window's truth to truth.jsonl there: a folder or a pipe in its place is
            // said now, before any pipe is made (it failed after 'live stream started', then waited for
            // ever on the pipes' readers).
            const truthJsonl = join(f.out, 'truth.jsonl');
            refuseNotAFile(f.out, 'truth.jsonl', existsSync(truthJsonl) && !isLink(truthJsonl) ? notAFile(truthJsonl) : undefined);
          }
          if (f.out && !f.gateway) {
            // Captures of an earlier run under the names this run streams to are written over, and that
            // run's truth.json and truth.csv removed: they described those captures, and were left beside
            // the new ones. With --fifo each such file gives way to the named pipe --fifo promises (a
            // plain file was written there, which a gateway reading a FIFO took for a finished capture).
            const replaced: string[] = [];
            for (const g of scenario.gateways) {
              const path = join(f.out, `${g.id}.${f.format}`);
              if (existsSync(path) && !isLink(path) && !notAFile(path)) {
                replaced.push(basename(path));
                if (f.fifo) unlinkSync(path);
              }
            }
            for (const n of ['truth.json', 'truth.csv']) {
              const path = join(f.out, n);
              if (existsSync(path) && !isLink(path) && !notAFile(path)) {
                replaced.push(n);
                unlinkSync(path);
              }
            }
            if (replaced.length)
              process.stderr.write(`presence simulate: replacing ${replaced.join(', ')} of an earlier run in ${f.out.replace(/\/+$/, '')}/\n`);
            for (const g of scenario.gateways) {
              const path = join(f.out, `${g.id}.${f.format}`);
              outputs.push({
                gateway: g.id,
                stream: openLivePath(path, f.fifo === true),
                format: f.format as 'pcap' | 'pcapng',
                radio,
                name: path,
                option: '--out',
              });
            }
          } else {
            const gateway = f.gateway ?? scenario.gateways[0].id;
            if (f.pipe) checkPipeFolder(f.pipe);
            // As gzip does: a binary capture is not written to a terminal (hours of it at --speed 1).
            else if (process.stdout.isTTY)
              throw new UsageError(
                `--live: the capture stream of ${gateway} goes to stdout, which is a terminal`,
                'pipe it into its reader (| presence replay - --json), or give --pipe PATH or --out DIR',
              );
            const stream = f.pipe ? openLivePath(f.pipe, f.fifo === true) : process.stdout;
            outputs.push({
              gateway,
              stream,
              format: f.format as 'pcap' | 'pcapng',
              radio,
              end: !!f.pipe,
              name: f.pipe ?? 'stdout',
              option: f.pipe ? '--pipe' : undefined,
            });
          }
          // A named pipe still without a reader holds its open(2) in a thread of libuv's pool: after a
          // failure the process would wait for that reader for ever (the error said, nothing else done).
          waitingPipe = () => outputs.some((o) => o.stream instanceof WriteStream && o.stream.pending);
          log.info({ scenario: scenario.name, speed: Number.isFinite(speed) ? speed : 'max', outputs: outputs.map((x) => x.gateway) }, 'live stream started');
          const waiting = waitForReaders(outputs, log);
          // With --out, the truth of each window is appended to <out>/truth.jsonl as it closes.
          const truthLog = f.out ? join(f.out, 'truth.jsonl') : null;
          // A full disk named the file and its option, not only "ENOSPC: no space left on device, write".
          // What it holds in whole windows is counted, to cut it back to them when a write fails.
          const truthHeld = { windows: 0, bytes: 0 };
          const writeTruthLog = (append: (path: string) => void) => {
            try {
              if (truthLog) append(truthLog);
            } catch (e) {
              if (isDiskFull(e)) throw new TruthLogFull(truthLog!, (e as NodeJS.ErrnoException).code!);
              throw new Error(`--out ${fileWriteProblem(truthLog!, e as NodeJS.ErrnoException).message}`);
            }
          };
          try {
            writeTruthLog((p) => writeFileSync(p, ''));
          } catch (e) {
            // not made: nothing was streamed yet
            if (e instanceof TruthLogFull) throw new Error(`--out ${fileWriteProblem(e.path, e).message}`);
            throw e;
          }
          // Ctrl-C (SIGINT) or SIGTERM: Node's default ended the process where it stood, without a word
          // on what its captures held. Now the stream stops at the next frame, every output is ended on
          // a whole frame, one line says which files hold the run up to which simulated time, and it
          // exits with 130. A second signal, or one while a named pipe still waits for its reader
          // (nothing streamed yet), ends it at once.
          const abort = new AbortController();
          let stoppedBy: NodeJS.Signals | null = null;
          const onSignal = (signal: NodeJS.Signals) => {
            const waitingFor = outputs.filter((o) => o.stream instanceof WriteStream && o.stream.pending).map((o) => o.name);
            if (stoppedBy || waitingFor.length) {
              process.stderr.write(
                stoppedBy
                  ? `presence simulate: ${signal} again: stopped at once\n`
                  : `presence simulate: ${signal}: stopped before the stream started (${waitingFor.join(', ')} had no reader yet); no frame was streamed\n`,
              );
              process.exit(130);
            }
            stoppedBy = signal;
            abort.abort();
          };
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          const r = await runLive({
            scenario,
            seed,
            bleLink,
            speed,
            outputs,
            signal: abort.signal,
            onWindow: (w) => {
              const lines = w.map((x) => JSON.stringify(x)).join('\n') + '\n';
              writeTruthLog((p) => appendFileSync(p, lines));
              truthHeld.windows++;
              truthHeld.bytes += Buffer.byteLength(lines);
              log.info({ window: w[0]?.start, people: w.map((x) => x.people) }, 'window');
            },
          })
            .catch((e) => {
              // `presence simulate --live | head -c 1000`: the reader of stdout took what it wanted and
              // left; as a Unix tool does, the stream ends quietly (exit 0, as presence replay | head). A
              // named pipe's reader (a gateway) going away, or a write that fails, is said.
              if (e instanceof ReaderClosedError && e.stream === process.stdout) process.exit(0);
              // A full disk under any output ends them all alike (diskFullEnd).
              if (e instanceof CaptureStreamError && isDiskFull(e)) {
                const o = outputs.find((x) => x.stream === e.stream);
                if (o?.option && o.name)
                  throw new Error(
                    diskFullEnd({ what: `the capture stream of ${o.gateway} (${o.name})`, option: o.option, code: e.code! }, outputs, truthLog, truthHeld),
                  );
              }
              if (e instanceof TruthLogFull)
                throw new Error(diskFullEnd({ what: `--out ${e.path}`, option: '--out', code: e.code }, outputs, truthLog, truthHeld));
              throw e;
            })
            .finally(() => {
              process.off('SIGINT', onSignal);
              process.off('SIGTERM', onSignal);
            });
          for (const t of waiting) clearTimeout(t);
          log.info(r, 'live stream finished');
          if (r.stopped && stoppedBy) {
            const names = outputs.map((o) => (o.name === 'stdout' || !o.name ? 'the stream on stdout' : o.name));
            const at = (ms: number) => new Date(ms).toISOString();
            process.stderr.write(
              `presence simulate: ${stoppedBy}: stopped before the end of the run, at ${at(r.lastMs)} of its simulated ${at(scenario.startMs)} to ${at(scenario.startMs + scenario.durationS * 1000)} ` +
                `(${r.frames.toLocaleString('en')} frames): ${names.join(', ')} ${names.length > 1 ? 'hold' : 'holds'} the run up to then, ending on a whole frame` +
                `${truthLog ? `; ${truthLog} holds the truth of the ${count(r.windows, 'window', 'windows')} that closed before then` : ''}\n`,
            );
            process.exitCode = 130;
          }
          return;
        }

        const outDir = f.out ?? join('sim-out', scenario.name);
        const shownDir = `${outDir.replace(/\/+$/, '')}/`;
        // The folder first: a file in its place, or a place no folder can be made, is said before the estimate runs.
        const made = makeOutDir('--out', outDir);
        // Files of an earlier run that this one replaces (nothing else in the folder is touched). Anything
        // else under one of their names (a folder, a named pipe, a link) is said now: writing into it failed
        // with EISDIR after the captures were written, or waited for ever on a pipe's reader.
        const names = ['truth.json', 'truth.csv'];
        for (const g of scenario.gateways)
          if (f.format === 'pcapng') names.splice(names.length - 2, 0, `${g.id}.pcapng`);
          else for (const i of captureInterfaces(g, bleLink)) names.splice(names.length - 2, 0, `${g.id}.${i.radio}.pcap`);
        const replaced = names.filter((n) => existsSync(join(outDir, n)) || isLink(join(outDir, n)));
        // The truth a live run wrote there went with its captures, which this run replaces: removed once this run's files are in.
        const liveTruth = join(outDir, 'truth.jsonl');
        const staleLiveTruth = existsSync(liveTruth) && !isLink(liveTruth) && !notAFile(liveTruth);
        if (staleLiveTruth) replaced.push('truth.jsonl');
        for (const n of replaced) refuseNotAFile(outDir, n, notAFile(join(outDir, n)));
        // Sizes up front: what is about to be written, and --yes past SIZE_GUARD_BYTES.
        // A large crowd's estimate runs for many seconds before its line: a bar on a terminal after the first second.
        const estimating = await delayedProgressBar('estimating the size', ESTIMATE_BUDGET_FRAMES, 'frames (at most)');
        const est = estimateOutput(scenario, seed, bleLink, f.format as 'pcap' | 'pcapng', ESTIMATE_BUDGET_FRAMES, (n) => estimating?.update(n));
        estimating?.stop();
        // Counted exactly and no frame: a crowd scaled to nearly nobody (--people 0.001 on the corridor)
        // or a run shorter than any device's interval wrote captures without a frame and said so only
        // as "0 frames", as --scale 0 on a scenario without fixed devices did before it was refused.
        if (est.exact && est.frames === 0) {
          removeDirs(made);
          const crowd = f.people !== undefined ? ` at --people ${f.people}` : f.scale !== undefined ? ` at --scale ${f.scale}` : '';
          throw new UsageError(
            `${scenario.name} over ${formatDuration(scenario.durationS * 1000)}${crowd}: its captures would hold no frame (no gateway hears a device in that time); nothing was written`,
            'give a larger --scale or --people, or a longer --duration',
          );
        }
        const pct = (x: number) => `${x * 100}%`;
        process.stderr.write(
          `presence simulate: about ${est.frames.toLocaleString('en')} frames, ${formatBytes(est.bytes)} into ${shownDir}` +
            (est.projected
              ? ` (projected from its first ${formatDuration(est.reachedS * 1000)} of ${formatDuration(scenario.durationS * 1000)}${est.fraction < 1 ? ` at ${pct(est.fraction)} of the crowd` : ''}, where the estimate stopped)`
              : est.exact
                ? ''
                : ` (estimated from a run at ${pct(est.fraction)} of the crowd)`) +
            '\n',
        );
        if (est.bytes > SIZE_GUARD_BYTES && !f.yes) {
          removeDirs(made);
          throw new UsageError(
            `this would write about ${formatBytes(est.bytes)} (more than ${SIZE_GUARD_BYTES / 1024 ** 2} MB); pass --yes to write it`,
            'or make it smaller with --duration, --scale or --people',
          );
        }
        // With --yes too: a run that cannot fit on the disk is not started. What it writes is counted:
        // the captures with their file headers, and truth.json and truth.csv (the captures alone were,
        // and a run of many short windows wrote about as much truth again beside them).
        const captureFiles = scenario.gateways.reduce((n, g) => n + (f.format === 'pcapng' ? 1 : captureInterfaces(g, bleLink).length), 0);
        const captureBytes = est.bytes + captureFiles * CAPTURE_HEADER_BYTES;
        const truthBytes = estimateTruthBytes(scenario, {
          files: (id) =>
            f.format === 'pcapng'
              ? [`${id}.pcapng`]
              : captureInterfaces(scenario.gateways.find((g) => g.id === id)!, bleLink).map((i) => `${id}.${i.radio}.pcap`),
          maxCount: est.frames,
        });
        try {
          checkDisk(
            outDir,
            captureBytes + truthBytes,
            'this run',
            'make it smaller with --duration, --scale or --people (or a longer --window), or give an --out on a larger disk',
            `the captures ${formatBytes(captureBytes)} with their file headers, truth.json and truth.csv ${formatBytes(truthBytes)}`,
          );
        } catch (e) {
          removeDirs(made);
          throw e;
        }
        if (replaced.length) process.stderr.write(`presence simulate: replacing ${replaced.join(', ')} of an earlier run in ${shownDir}\n`);
        const t0 = performance.now();
        // Over the windows; with windows longer than a minute, over the simulated minutes (one 31-day
        // window held the bar at 0 for the whole run).
        const byMinute = scenario.windowS > 60;
        const minutes = Math.ceil(scenario.durationS / 60);
        const bar = byMinute
          ? await progressBar('simulate', minutes, 'simulated minutes')
          : await progressBar('simulate', Math.ceil(scenario.durationS / scenario.windowS), 'windows');
        let windows = 0;
        const r = await simulate({
          scenario,
          seed,
          outDir,
          format: f.format as 'pcap' | 'pcapng',
          bleLink,
          onWindow: (w) => bar?.update(byMinute ? Math.min(minutes, Math.ceil((Date.parse(w[0]?.end ?? '') - scenario.startMs) / 60_000) || 0) : ++windows),
          onTime: byMinute ? (t) => bar?.update(Math.min(minutes, Math.floor(t / 60))) : undefined,
        }).catch((e) => {
          bar?.stop();
          // The disk filled after the check above (another writer, or files and folders all taken):
          // it said "ENOSPC: no space left on device, write", naming neither the folder nor --out.
          if (isDiskFull(e))
            throw new Error(
              `--out ${shownDir}: no space left on its device (or the quota is full) while the files were written (${(e as NodeJS.ErrnoException).code}); ${DISK_FULL_FIX}; files of an earlier run there are as they were`,
            );
          throw e;
        });
        bar?.stop();
        if (staleLiveTruth) rmSync(liveTruth, { force: true });
        const secs = ((performance.now() - t0) / 1000).toFixed(1);
        process.stdout.write(
          `${scenario.name}: ${count(r.truth.totals.people, 'person', 'people')}, ${count(r.truth.totals.devices, 'device', 'devices')}, ` +
            `${r.truth.totals.frames.wifi} Wi-Fi and ${r.truth.totals.frames.ble} BLE frames in ${secs} s\n` +
            r.gateways.map((g) => `  ${g.id} (${g.zone}): ${g.pcaps.join(', ')}  ${g.frames} frames\n`).join('') +
            `  truth: ${r.truthPath}${r.truthCsvPath ? `, ${r.truthCsvPath}` : ''}\n`,
        );
      } catch (e) {
        // A mistake in the call: one line, one hint, exit 2 (scripts/lib/usage.ts).
        if (e instanceof UsageError) exitUsage('simulate', e);
        // A scenario file's mistakes are a usage error too: one line per problem naming the file and the field.
        if (e instanceof ScenarioError) exitUsage('simulate', scenarioUsageError(e));
        // Every failure is reported as one line naming what is wrong; nothing prints a stack trace.
        fail((e as Error).message ?? String(e));
        if (waitingPipe?.()) process.exit();
      }
    });
}

/** Appending a window's truth to truth.jsonl found its disk full. */
class TruthLogFull extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
  ) {
    super(`${path}: no space left on its device (${code})`);
  }
}

/**
 * A live run whose disk filled under one of its outputs ends them all alike: every capture file the
 * run made is removed (it ended where the disk filled or the run stopped, often in the middle of a
 * frame, or held nothing: only the one whose write failed first was removed, the others left cut
 * short); a named pipe or stdout is left as it is. truth.jsonl goes with the capture files when they
 * were all there is; beside a pipe, whose reader got the stream, it is cut back to its last whole
 * window. One line names every file removed and what it held, and what is left.
 */
function diskFullEnd(
  failed: { what: string; option: string; code: string },
  outputs: LiveOutput[],
  truthLog: string | null,
  truth: { windows: number; bytes: number },
): string {
  const removed: Array<{ path: string; held: string }> = [];
  const left: string[] = [];
  for (const o of outputs) {
    if (!o.option || !o.name) {
      left.push('the stream on stdout');
      continue;
    }
    let size: number;
    try {
      const st = lstatSync(o.name);
      if (!st.isFile()) {
        left.push(o.name);
        continue;
      }
      size = st.size;
      rmSync(o.name, { force: true });
    } catch {
      left.push(o.name);
      continue;
    }
    removed.push({ path: o.name, held: size ? `it held ${formatBytes(size)} of the stream, cut short where the disk filled` : 'it was empty' });
  }
  const windows = count(truth.windows, 'window', 'windows');
  let truthSaid = '';
  if (truthLog) {
    if (!left.length) {
      rmSync(truthLog, { force: true });
      truthSaid = `; ${truthLog} was removed with them (it held the truth of ${windows})`;
    } else {
      try {
        truncateSync(truthLog, truth.bytes);
        truthSaid = `; ${truthLog} holds the truth of the ${windows} that closed before the disk filled, ending on a whole line`;
      } catch (e) {
        truthSaid = `; ${truthLog} could not be cut back to its last whole window (${(e as NodeJS.ErrnoException).code})`;
      }
    }
  }
  const said = [
    removed.length === 1
      ? `${removed[0].path} was removed (${removed[0].held})`
      : removed.length
        ? `every capture file of the run was removed: ${removed.map((x) => `${x.path} (${x.held})`).join(', ')}`
        : '',
    left.length ? `${left.join(', ')} ${left.length > 1 ? 'are' : 'is'} left as ${left.length > 1 ? 'they are' : 'it is'}` : '',
  ].filter(Boolean);
  return (
    `${failed.what}: no space left on its device (${failed.code}); ${said.join('; ')}${truthSaid}; ` +
    `fix: free some space on its device, or give ${failed.option} a path on another one, then run it again`
  );
}

/** How long a named pipe of --live may wait for its reader before one line says so. */
export const PIPE_READER_WAIT_MS = 5000;

/**
 * A named pipe opens when its reader opens it, and the live stream waits until every one has a
 * reader: with --out --fifo and one gateway started, the others' pipes held the whole run after its
 * first window, with nothing said. One warning per pipe still without a reader after
 * PIPE_READER_WAIT_MS, naming it and the gateway that should read it.
 */
function waitForReaders(outputs: LiveOutput[], log: ReturnType<typeof createLogger>): NodeJS.Timeout[] {
  const timers: NodeJS.Timeout[] = [];
  for (const o of outputs) {
    const s = o.stream;
    if (!(s instanceof WriteStream) || !s.pending || !o.name || !existsSync(o.name) || !statSync(o.name).isFIFO()) continue;
    const t = setTimeout(
      () =>
        log.warn(
          { gateway: o.gateway, pipe: o.name },
          `waiting for a reader of the named pipe ${o.name}: the live stream goes on once every pipe has one (start the gateway ${o.gateway} with --source pcap:${o.name})`,
        ),
      PIPE_READER_WAIT_MS,
    );
    t.unref();
    s.once('open', () => clearTimeout(t));
    s.once('close', () => clearTimeout(t));
    timers.push(t);
  }
  return timers;
}
