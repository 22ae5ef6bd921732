// The demo's people calibration. Before today's period, the same scenario and period are simulated
// with another seed (a "calibration day": same crowd pattern, other people and devices) and counted
// by the firmware; people = k * (estimate - b) is fitted per zone against the simulator's people
// present, with the fit of `presence calibrate`, and written as a calibration file. The aggregator
// then writes people for those zones, and the table and summary show people only from it.
//
// A calibration file maps one radio's estimate. With radio "auto" both are fitted and the one whose
// estimate follows people more closely on the calibration run (Pearson r, mean over the zones) is
// kept: chosen on the calibration run only, never on the period it is then shown on.
import { join } from 'node:path';
import { Calibration, readCalibration, toCalibrationFile, writeCalibration, type FitResult } from '../../aggregator/calibration/index.ts';
import { countWindows } from '../../simulator/evaluate.ts';
import { fitPeople, RADIOS, type CountsRadio } from '../../simulator/people.ts';
import { loadScenario } from '../../simulator/scenario.ts';

export type CalibrationRadio = CountsRadio | 'auto';

export interface DemoCalibration {
  /** The calibration file written (the aggregator's --calibration). */
  file: string;
  calibration: Calibration;
  radio: CountsRadio;
  /** Seed of the simulated run it was fitted on. */
  seed: number;
  /** How the radio was chosen (auto), e.g. "r 0.98 against people; Wi-Fi r 0.21". */
  why: string | null;
}

const NAME: Record<CountsRadio, string> = { wifi: 'Wi-Fi', ble: 'BLE' };

/** Mean Pearson r of estimate against people over the zones of a fit. */
function meanR(f: FitResult): number {
  const rs = f.zones.map((z) => z.quality.r).filter((r) => Number.isFinite(r));
  return rs.length ? rs.reduce((a, b) => a + b, 0) / rs.length : -Infinity;
}

/** Fits and writes the demo's calibration, or returns the reason it could not be fitted. */
export async function fitDemoCalibration(o: {
  scenario: string;
  seed: number;
  startMs: number;
  durationS: number;
  windowS: number;
  scale: number;
  radio: CalibrationRadio;
  outDir: string;
  /** Called as the calibration run goes, with the simulated seconds of it counted (at each window
   *  end and every 65,536 frames): the demo's progress. */
  onSimulatedTime?: (simulatedS: number) => void;
}): Promise<DemoCalibration | { error: string }> {
  const s = loadScenario(o.scenario, { durationS: o.durationS, windowS: o.windowS, start: o.startMs, scale: o.scale });
  // Counted as the demo's gateways count (pipeline.ts, demoBurstAddresses): each gateway's firmware
  // with the burst addresses its simulated receiver hears, as --evaluate gives them.
  const progress = o.onSimulatedTime;
  const windows = await countWindows(s, o.seed, {
    scenario: s,
    ...(progress ? { onTime: progress, onWindow: (n: number) => progress(Math.min(o.durationS, n * o.windowS)) } : {}),
  });
  const candidates = (o.radio === 'auto' ? RADIOS : [o.radio]).map((radio) => ({ radio, ...fitPeople(windows, radio, `seed-${o.seed}`) }));
  const fitted = candidates.filter((c) => c.fit !== null).sort((a, b) => meanR(b.fit!) - meanR(a.fit!));
  if (!fitted.length) return { error: candidates.map((c) => `${NAME[c.radio]}: ${c.summary.error}`).join('; ') };
  const best = fitted[0];
  const others = candidates
    .filter((c) => c !== best)
    .map((c) => (c.fit ? `${NAME[c.radio]} r ${meanR(c.fit).toFixed(2)}` : `${NAME[c.radio]} not calibratable`));
  const why = o.radio === 'auto' ? `r ${meanR(best.fit!).toFixed(2)} against people on that run${others.length ? `; ${others.join(', ')}` : ''}` : null;
  const content = toCalibrationFile(best.fit!, { field: 'estimate', radio: best.radio, window_s: o.windowS });
  // Zones of this site only: the file names the site of the simulated scenario.
  for (const z of Object.values(content.zones)) z.site = s.site;
  const file = join(o.outDir, 'calibration.yaml');
  writeCalibration(file, content);
  // Read back as the aggregator reads a --calibration file (schema-checked).
  return { file, calibration: new Calibration(readCalibration(file), file), radio: best.radio, seed: o.seed, why };
}
