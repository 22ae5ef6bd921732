// What the demo prints at the end: the counting error against the simulator's ground truth, and
// where the results are.
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { delimiter, join, relative } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.ts';
import type { CountsMessage } from '../../contract/index.ts';

/** Mean absolute percentage error of the published estimates against the truth's devices in reach
 *  (BLE: without beacons, which the estimate leaves out), per radio, over the windows where the truth
 *  is above zero (as simulator/evaluate.ts scores it). */
export function countingError(
  messages: CountsMessage[],
  truth: Array<{ gateway: string; start: string; end: string; devices: { wifi: number; ble: number; byKind?: { beacon: number } } }>,
): { windows: number; wifi: number; ble: number } {
  const acc = { wifi: { n: 0, e: 0 }, ble: { n: 0, e: 0 } };
  let windows = 0;
  for (const m of messages) {
    // The truth window holding the message's start (a window cut short starts inside it).
    const at = Date.parse(m.start);
    const t = truth.find((w) => w.gateway === m.gateway && Date.parse(w.start) <= at && at < Date.parse(w.end));
    if (!t) continue;
    windows++;
    for (const r of ['wifi', 'ble'] as const) {
      const real = r === 'ble' ? t.devices.ble - (t.devices.byKind?.beacon ?? 0) : t.devices.wifi;
      if (real <= 0) continue;
      acc[r].n++;
      acc[r].e += Math.abs(m[r].estimate - real) / real;
    }
  }
  const pct = (a: { n: number; e: number }) => (a.n ? Math.round((a.e / a.n) * 1000) / 10 : 0);
  return { windows, wifi: pct(acc.wifi), ble: pct(acc.ble) };
}

/** Points in a line-protocol file (lines that are neither blank nor comments). */
export function lineCount(file: string): number {
  if (!existsSync(file)) return 0;
  const text = readFileSync(file, 'utf8');
  return text.split('\n').filter((l) => l.trim() && !l.startsWith('#')).length;
}

/** Error of calibrated people against the truth's people present (time-averaged), over the windows
 *  with people present and a calibrated zone; with `intervalOf`, also in how many of them the truth
 *  lies inside the window's people_low .. people_high. */
export function peopleError(
  messages: CountsMessage[],
  truth: Array<{ gateway: string; start: string; end: string; peopleMean: number }>,
  peopleOf: (m: CountsMessage) => number | null,
  intervalOf?: (m: CountsMessage) => { low: number; high: number } | null,
): { windows: number; mape: number; mae: number; inside?: number } {
  let n = 0;
  let pct = 0;
  let abs = 0;
  let inside = 0;
  for (const m of messages) {
    const at = Date.parse(m.start);
    const t = truth.find((w) => w.gateway === m.gateway && Date.parse(w.start) <= at && at < Date.parse(w.end));
    const p = peopleOf(m);
    if (!t || p === null || t.peopleMean <= 0) continue;
    n++;
    pct += Math.abs(p - t.peopleMean) / t.peopleMean;
    abs += Math.abs(p - t.peopleMean);
    const i = intervalOf?.(m);
    if (i && i.low <= t.peopleMean && t.peopleMean <= i.high) inside++;
  }
  return {
    windows: n,
    mape: n ? Math.round((pct / n) * 1000) / 10 : 0,
    mae: n ? Math.round((abs / n) * 100) / 100 : 0,
    ...(intervalOf ? { inside } : {}),
  };
}

export interface SummaryInput {
  outDir: string;
  /** false: the captures were deleted at the end (undefined: not said). */
  capturesKept?: boolean;
  logFile: string;
  /** How the log file is written (--log-format): JSON lines, or readable lines. */
  logFormat: 'json' | 'pretty';
  /** The line-protocol file, when the aggregator wrote to one. */
  lpFile: string | null;
  /** Where the aggregator wrote (file or InfluxDB URL). */
  target: string;
  drained: boolean;
  aggregator: { writeFailures: number; pointsWritten: number; rejected: number };
  period: { gateways: unknown[]; zones: string[]; site: string };
  table: { windows: number; messages: number };
  messages: CountsMessage[];
  truth: Array<Parameters<typeof countingError>[1][number] & { peopleMean: number }>;
  /** The people calibration, when the demo fitted one. */
  people?: {
    of: (m: CountsMessage) => number | null;
    label: string;
    file: string;
    /** The window's people_low .. people_high, at `level` (0.9: a 90 % interval). */
    interval?: { of: (m: CountsMessage) => { low: number; high: number } | null; level: number };
  };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The lines printed after the table: what ran, the error against the truth, where the results are. */
export function summary(o: SummaryInput): string {
  const rel = (p: string) => {
    const r = relative(process.cwd(), p);
    return r === '' ? '.' : r.startsWith('..') ? p : r;
  };
  const lines: string[] = [''];
  if (!o.drained || o.aggregator.writeFailures > 0)
    lines.push(`warning: the aggregator could not write everything to ${o.target} (${o.aggregator.writeFailures} failed writes); see ${o.logFile}`);
  lines.push(
    `${plural(o.period.gateways.length, 'gateway')} in ${plural(o.period.zones.length, 'zone')} of site "${o.period.site}": ${plural(o.table.windows, 'window')}, ${plural(o.table.messages, 'count message')}, ${o.aggregator.pointsWritten} points written, ${o.aggregator.rejected} rejected`,
  );
  const err = countingError(o.messages, o.truth);
  if (err.windows)
    lines.push(
      `error against the simulator's ground truth, devices (uncalibrated): estimate vs devices in reach (BLE without beacons), mean over ${err.windows} gateway windows: Wi-Fi ${err.wifi} %, BLE ${err.ble} % (the estimate is a count of devices heard, not people, and in a crowd reads far below the devices in reach: a calibration turns it into people; why, in README.md, "Limits a traffic engineer should know")`,
    );
  if (o.people) {
    const iv = o.people.interval;
    const pe = peopleError(o.messages, o.truth, o.people.of, iv?.of);
    // The interval is the calibration run's own (its line and its windows' scatter): another run's
    // people lie inside it less often than its level says, and the line says how often they did.
    const inside =
      iv && pe.inside !== undefined
        ? `; the truth inside the window's ${Math.round(iv.level * 100)} % interval in ${pe.inside} of them (${Math.round((pe.inside / pe.windows) * 100)} %)`
        : '';
    if (pe.windows)
      lines.push(
        `error against the simulator's ground truth, people (${o.people.label}): vs people present, mean over ${pe.windows} gateway windows: MAPE ${pe.mape} %, MAE ${pe.mae} people${inside}`,
      );
  }
  lines.push(`results in ${rel(o.outDir)}/`);
  if (o.lpFile) {
    const lp = o.lpFile;
    lines.push(`  ${rel(lp)}  ${lineCount(lp)} points of InfluxDB line protocol (ms timestamps), ${Math.round(statSync(lp).size / 1024)} KiB`);
    lines.push(`  load into InfluxDB 1.x:  ${presenceCommand()} influx setup --influx-url http://127.0.0.1:8086   # once: database and retention`);
    lines.push(`                           curl -XPOST 'http://127.0.0.1:8086/write?db=presence&precision=ms' --data-binary @${rel(lp)}`);
    lines.push(`  load into InfluxDB 2.x:  influx write --bucket presence --precision ms --file ${rel(lp)}`);
  } else if (o.drained) {
    lines.push(`  points went to ${o.target}`);
  }
  if (o.people) lines.push(`  ${rel(o.people.file)}  the people calibration (${o.people.label}); the aggregator wrote people for its zones`);
  lines.push(
    `  ${rel(join(o.outDir, 'today'))}/  ${o.capturesKept === false ? 'ground truth (the simulated captures are deleted; --keep-pcaps keeps them)' : 'simulated captures (pcap, open in Wireshark) and ground truth'}`,
  );
  lines.push(`  ${rel(o.logFile)}  logs of the gateways and the aggregator (${o.logFormat === 'pretty' ? 'readable lines' : 'JSON'})`);
  lines.push(`then open the dashboards (${rel(join(PACKAGE_ROOT, 'dashboards'))}/*.json) in Grafana: see ${rel(join(PACKAGE_ROOT, 'docs', 'deployment.md'))}`);
  return lines.join('\n') + '\n';
}

/**
 * How to run this CLI from the current folder: `npx presence` in the checkout or the unpacked package
 * (npx finds the project's own bin) or in a project that installed it; `presence` when the one on
 * PATH is this one (npm install -g, the field guide's link in /usr/local/bin); else this script's path.
 * Never a bare `npx presence` elsewhere: npx would fetch the registry's unrelated package of that name.
 */
function presenceCommand(): string {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return null;
    }
  };
  const script = real(join(PACKAGE_ROOT, 'scripts', 'presence.js'));
  const inside = relative(PACKAGE_ROOT, process.cwd());
  if (!inside.startsWith('..') && !inside.startsWith('/')) return 'npx presence';
  if (real(join(process.cwd(), 'node_modules', '.bin', 'presence')) === script) return 'npx presence';
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir && real(join(dir, 'presence')) === script) return 'presence';
  return script && /^[\w./-]+$/.test(script) ? script : JSON.stringify(script ?? join(PACKAGE_ROOT, 'scripts', 'presence.js'));
}
