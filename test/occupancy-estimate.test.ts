// The estimate against real people counts: the lab captures of ../shared/captures/occupancy (12 days,
// 14 captures, probe requests heard by an ESP32 sniffer, `time;occupancy` truth) run through the
// real WASM firmware in 1-minute and 15-minute windows, and the single-phone captures of
// ../shared/captures/wifi. Leave one day out: calibrate people = k * (x - b) on the other days (the
// fit of `presence calibrate`), test on the held-out day; the same for the count of distinct
// addresses (`devices`), side by side. Prints the table; asserts the levels measured when the
// estimator was written (with a small margin), so a change that makes it worse fails here.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { readCaptureFile } from '../gateway/capture/pcap.ts';
import { meanOccupancy, parseOccupancy, type Occupancy } from '../aggregator/calibration/truth.ts';
import { leaveOneOut, type EvalSample, type Scores } from '../aggregator/calibration/evaluate.ts';
import { ols, pearson } from '../aggregator/calibration/stats.ts';
import { capturesDir } from './support/need.ts';

/** Window options of the evaluation: frames below -70 dBm are "not in the room". */
const RSSI_MIN = -70;
const MINUTE = 60_000;
/** Where the truth is suspect: held-out figures are printed without it too (never fitted to it apart). */
const SUSPECT = { day: 'sc6-61_2024-02-08', from: Date.parse('2024-02-08T17:36:00.750Z') };
const QUARTER = 15 * MINUTE;

const dir = capturesDir('occupancy-estimate');
const occupancyDir = dir && join(dir, 'occupancy');
const fw = Firmware.loadSync();

async function readFrames(file: string): Promise<Frame[]> {
  const out: Frame[] = [];
  for await (const batch of readCaptureFile(file)) for (const f of batch) out.push(f);
  out.sort((a, b) => a.timestampMs - b.timestampMs);
  return out;
}

interface Win {
  start: number;
  /** estimate before rounding, and distinct addresses */
  estimate: number;
  devices: number;
}

/** Windows of `ms` aligned to multiples of ms, lying entirely between the first and the last frame. */
function windows(frames: Frame[], ms: number, opts: { ignoreFcs?: boolean } = {}): Win[] {
  const out: Win[] = [];
  if (frames.length === 0) return out;
  const first = frames[0].timestampMs;
  const last = frames[frames.length - 1].timestampMs;
  let i = 0;
  for (let t = Math.ceil(first / ms) * ms; t + ms <= last; t += ms) {
    while (i < frames.length && frames[i].timestampMs < t) i++;
    fw.beginWindow({ rssiMinDbm: RSSI_MIN, ignoreFcs: opts.ignoreFcs, startMs: t, endMs: t + ms });
    for (; i < frames.length && frames[i].timestampMs < t + ms; i++) fw.ingest(frames[i]);
    const c = fw.endWindow();
    out.push({ start: t, estimate: c.wifi.estimateMean, devices: c.wifi.devices });
  }
  return out;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * What any line can do with this count at best: for each day a line people = a + c * x fitted by
 * least squares on that day's own windows (the day it is then scored on, so not a calibration
 * anyone could have), people below 0 read 0. Its error is the scatter of single windows around
 * their own day's line, which no choice of k and b removes.
 */
function ownDayLine(samples: EvalSample[], field: 'estimate' | 'devices'): { mae: number; empty: number } {
  const occupied: number[] = [];
  const empty: number[] = [];
  for (const day of new Set(samples.map((s) => s.session))) {
    const xs = samples.filter((s) => s.session === day);
    const line = ols(
      xs.map((s) => s[field]),
      xs.map((s) => s.people),
    );
    if (!line) continue;
    for (const s of xs) {
      const p = Math.max(0, line.a + line.c * s[field]);
      if (s.people > 0) occupied.push(Math.abs(p - s.people));
      else empty.push(p);
    }
  }
  return { mae: mean(occupied), empty: mean(empty) };
}
const f2 = (x: number | null) => (x === null ? '-' : x.toFixed(2));

describe.skipIf(!dir)('estimate against the occupancy of a real room (leave one day out)', () => {
  it('scores the estimate and distinct addresses side by side', async () => {
    const names = readdirSync(occupancyDir!)
      .filter((f) => f.endsWith('.pcap'))
      .sort();
    expect(names.length).toBeGreaterThanOrEqual(14);
    const samples: EvalSample[] = [];
    const samples15: EvalSample[] = [];
    // growth: mean over 15-minute windows with people throughout, and over the 1-minute windows inside them
    const growth = { est15: [] as number[], est1: [] as number[], dev15: [] as number[], dev1: [] as number[] };
    for (const name of names) {
      const base = name.replace(/\.pcap$/, '');
      const truth: Occupancy = parseOccupancy(readFileSync(join(occupancyDir!, `${base}_occupancy.csv`), 'utf8'), `${base}_occupancy.csv`);
      const frames = await readFrames(join(occupancyDir!, name));
      const day = base.slice(0, 'sc6-61_2022-10-18'.length); // both sniffer positions of a day are one session
      const ones = windows(frames, MINUTE);
      const truthOf = new Map<number, number>();
      for (const w of ones) {
        const people = meanOccupancy(truth, w.start, w.start + MINUTE);
        if (people === null) continue;
        truthOf.set(w.start, people);
        samples.push({ estimate: w.estimate, devices: w.devices, people, session: day, time: w.start });
      }
      for (const q of windows(frames, QUARTER)) {
        const people = meanOccupancy(truth, q.start, q.start + QUARTER);
        if (people !== null) samples15.push({ estimate: q.estimate, devices: q.devices, people, session: day, time: q.start });
        const inside = ones.filter((w) => w.start >= q.start && w.start < q.start + QUARTER);
        if (inside.length !== 15 || !inside.every((w) => (truthOf.get(w.start) ?? 0) > 0)) continue;
        growth.est15.push(q.estimate);
        growth.dev15.push(q.devices);
        growth.est1.push(...inside.map((w) => w.estimate));
        growth.dev1.push(...inside.map((w) => w.devices));
      }
    }
    const loo = leaveOneOut(samples);
    const loo15 = leaveOneOut(samples15);
    // The truth of 2024-02-08 from 17:36 on is suspect (3 people for six hours on both sniffers
    // while nothing in the room is heard, firmware/README.md): kept in the figures above, and
    // printed apart here with that span left out of both the fit and the scores.
    const suspect = (s: EvalSample) => s.session === SUSPECT.day && s.time! >= SUSPECT.from;
    const clean = samples.filter((s) => !suspect(s));
    const looClean = leaveOneOut(clean);
    const rClean = (f: 'estimate' | 'devices') =>
      pearson(
        clean.map((s) => s[f]),
        clean.map((s) => s.people),
      ).toFixed(3);
    const est: Scores = loo.overall.estimate;
    const dev: Scores = loo.overall.devices;
    const rEst = pearson(
      samples.map((s) => s.estimate),
      samples.map((s) => s.people),
    );
    const rDev = pearson(
      samples.map((s) => s.devices),
      samples.map((s) => s.people),
    );
    const boundEst = ownDayLine(samples, 'estimate');
    const boundDev = ownDayLine(samples, 'devices');
    const gEst = mean(growth.est15) / mean(growth.est1);
    const gDev = mean(growth.dev15) / mean(growth.dev1);
    const rows = [
      ['', 'estimate', 'distinct addresses', 'goal'],
      ['MAE people, occupied 1-min windows', f2(est.mae_occupied), f2(dev.mae_occupied), '<= 1.5'],
      ['people in empty-room 1-min windows', f2(est.people_when_empty), f2(dev.people_when_empty), '<= 0.5'],
      ['Pearson r, uncalibrated, all 1-min windows', rEst.toFixed(3), rDev.toFixed(3), '>= 0.97'],
      ['mean 15-min / mean 1-min, occupied periods', gEst.toFixed(2), gDev.toFixed(2), '<= 1.2'],
      ['15-min windows: MAE people, occupied', f2(loo15.overall.estimate.mae_occupied), f2(loo15.overall.devices.mae_occupied), ''],
      ['15-min windows: Pearson r, uncalibrated', f2(loo15.overall.estimate.r), f2(loo15.overall.devices.r), ''],
      [
        `without 2024-02-08 from 17:36 (${samples.length - clean.length} windows): MAE`,
        f2(looClean.overall.estimate.mae_occupied),
        f2(looClean.overall.devices.mae_occupied),
        '',
      ],
      ['  ... people in empty-room windows', f2(looClean.overall.estimate.people_when_empty), f2(looClean.overall.devices.people_when_empty), ''],
      ['  ... Pearson r, uncalibrated', rClean('estimate'), rClean('devices'), ''],
      ['bound: line fitted on the scored day itself: MAE', f2(boundEst.mae), f2(boundDev.mae), ''],
      ['  ... people in empty-room windows', f2(boundEst.empty), f2(boundDev.empty), ''],
    ];
    console.log(
      `occupancy: ${samples.length} 1-min windows (${est.occupied_windows} occupied, ${est.empty_windows} empty), ` +
        `${growth.est15.length} occupied 15-min windows, ${new Set(samples.map((s) => s.session)).size} days, frames >= ${RSSI_MIN} dBm\n` +
        rows.map((r) => `  ${r[0].padEnd(52)} ${r[1].padStart(9)} ${r[2].padStart(19)} ${r[3].padStart(8)}`).join('\n') +
        '\n  per held-out day (MAE occupied / empty-room people, estimate | distinct):\n' +
        loo.sessions
          .map(
            (s) =>
              `    ${s.session}  ${f2(s.estimate.mae_occupied)} / ${f2(s.estimate.people_when_empty)}  |  ${f2(s.devices.mae_occupied)} / ${f2(s.devices.people_when_empty)}`,
          )
          .join('\n'),
    );
    // Levels measured (see firmware/README.md), plus a margin. Measured: MAE 2.62, empty room 1.21,
    // r 0.886, growth 1.00 (the fit holding b at 0: before, with b as low as -0.76, 2.67 and 1.99).
    expect(est.mae_occupied!).toBeLessThanOrEqual(2.7);
    expect(est.people_when_empty!).toBeLessThanOrEqual(1.3);
    expect(rEst).toBeGreaterThanOrEqual(0.875);
    expect(gEst).toBeLessThanOrEqual(1.05);
    // ... and it beats a calibrated count of distinct addresses on every figure
    expect(est.mae_occupied!).toBeLessThan(dev.mae_occupied! - 0.2);
    expect(est.people_when_empty!).toBeLessThan(dev.people_when_empty! - 0.2);
    expect(rEst).toBeGreaterThan(rDev + 0.02);
    // ... and the estimate beats distinct addresses where distinct addresses fail: longer windows
    expect(gDev).toBeGreaterThan(3);
    expect(loo15.overall.estimate.mae_occupied!).toBeLessThan(loo15.overall.devices.mae_occupied! - 1);
    expect(loo15.overall.estimate.r!).toBeGreaterThan(loo15.overall.devices.r! + 0.1);
  }, 300_000);

  it('a lone phone counts about one per minute', async () => {
    const phones = ['iPhone11-B_anonymized.pcap', 'S21Ultra-M_anonymized.pcap', 'OppoFindX3Neo-A_anonymized.pcap'];
    const lines: string[] = [];
    const all: number[] = [];
    for (const p of phones) {
      // their anonymiser left the FCS stale and randomised the locally administered bit
      const ws = windows(await readFrames(join(dir!, 'wifi', p)), MINUTE, { ignoreFcs: true });
      expect(ws.length).toBeGreaterThan(3);
      const e = ws.map((w) => w.estimate);
      const d = ws.map((w) => w.devices);
      all.push(...e);
      lines.push(
        `  ${p.replace('_anonymized.pcap', '').padEnd(16)} ${String(ws.length).padStart(3)} windows  estimate mean ${mean(e).toFixed(2)} max ${Math.max(...e).toFixed(2)}   distinct addresses mean ${mean(d).toFixed(2)} max ${Math.max(...d)}`,
      );
      expect(mean(e), p).toBeLessThanOrEqual(1.0); // measured 0.72, 0.65, 0.94
    }
    console.log(`lone phone, 1-min windows (goal: <= 1.2):\n${lines.join('\n')}\n  all windows: estimate mean ${mean(all).toFixed(2)}`);
    expect(mean(all)).toBeLessThanOrEqual(0.85); // measured 0.72
  }, 120_000);
});
