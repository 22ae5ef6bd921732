// What the demo prints at the end: the counting error against the simulator's ground truth, and
// where the results are.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { CountsMessage } from '../../contract/index.ts';

/** Mean absolute percentage error of the published estimates against the truth's devices in reach,
 *  per radio, over the windows where the truth is above zero (as simulator/evaluate.ts scores it). */
export function countingError(
  messages: CountsMessage[],
  truth: Array<{ gateway: string; start: string; end: string; devices: { wifi: number; ble: number } }>,
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
      if (t.devices[r] <= 0) continue;
      acc[r].n++;
      acc[r].e += Math.abs(m[r].estimate - t.devices[r]) / t.devices[r];
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

export interface SummaryInput {
  outDir: string;
  logFile: string;
  /** The line-protocol file, when the aggregator wrote to one. */
  lpFile: string | null;
  /** Where the aggregator wrote (file or InfluxDB URL). */
  target: string;
  drained: boolean;
  aggregator: { writeFailures: number; pointsWritten: number; rejected: number };
  period: { gateways: unknown[]; zones: string[]; site: string };
  table: { windows: number; messages: number };
  messages: CountsMessage[];
  truth: Parameters<typeof countingError>[1];
}

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
    `${o.period.gateways.length} gateways in ${o.period.zones.length} zones of site "${o.period.site}": ${o.table.windows} windows, ${o.table.messages} count messages, ${o.aggregator.pointsWritten} points written, ${o.aggregator.rejected} rejected`,
  );
  const err = countingError(o.messages, o.truth);
  if (err.windows) lines.push(`error against the simulator's ground truth (estimate vs devices in reach, mean over ${err.windows} gateway windows): Wi-Fi ${err.wifi} %, BLE ${err.ble} %`);
  lines.push(`results in ${rel(o.outDir)}/`);
  if (o.lpFile) {
    const lp = o.lpFile;
    lines.push(`  ${rel(lp)}  ${lineCount(lp)} points of InfluxDB line protocol (ms timestamps), ${Math.round(statSync(lp).size / 1024)} KiB`);
    lines.push(`  load into InfluxDB 1.x:  curl -XPOST 'http://127.0.0.1:8086/write?db=presence&precision=ms' --data-binary @${rel(lp)}`);
    lines.push(`  load into InfluxDB 2.x:  influx write --bucket presence --precision ms --file ${rel(lp)}`);
  } else if (o.drained) {
    lines.push(`  points went to ${o.target}`);
  }
  lines.push(`  ${rel(join(o.outDir, 'today'))}/  simulated captures (pcap, open in Wireshark) and ground truth`);
  lines.push(`  ${rel(o.logFile)}  logs of the gateways and the aggregator (JSON)`);
  lines.push('then open the dashboards (dashboards/*.json) in Grafana: see docs/deployment.md');
  return lines.join('\n') + '\n';
}
