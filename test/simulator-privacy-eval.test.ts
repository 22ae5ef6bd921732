// The small-counts table of `presence simulate --evaluate`: what each gateway privacy setting costs,
// scored as the published counts would be read downstream.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluate } from '../simulator/evaluate.ts';

describe('evaluate: small-count protection scored as published', () => {
  it('a suppressed window has no people: with every window suppressed, people are 100 % off (they were read as k * -b people)', async () => {
    // quiet-night's lobby: a few people and devices, so k = 15 suppresses every window; its BLE fit on
    // seed 2 has b < 0, so the calibration of a published 0 was a positive number of people.
    const e = await evaluate({ scenario: 'quiet-night', seed: 1, durationS: 600, flows: false });
    const rows = e.privacy.filter((r) => r.minCount === 15);
    expect(rows.length).toBeGreaterThan(0);
    let checked = 0;
    for (const r of rows)
      for (const radio of ['wifi', 'ble'] as const)
        if (r[radio].suppressedPct === 100 && r[radio].peopleMape !== null) {
          expect(r[radio].peopleMape, `k ${r.minCount} epsilon ${r.epsilon} ${radio}`).toBe(100);
          checked++;
        }
    expect(checked).toBeGreaterThan(0);
    // Without protection, people are scored from the counts as the evaluation's own table does.
    const none = e.privacy.find((r) => r.minCount === 0 && r.epsilon === null)!;
    expect(none.ble.peopleMape).toBe(e.overall.people.ble!.mape);
  });
});

describe('evaluate: a radio with nothing to score', () => {
  it('a Wi-Fi-only gateway: BLE MAPEs are "-" in the tables and null in the summary, not a perfect 0', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-eval-wifi-only-'));
    try {
      const file = join(dir, 'wifi-only.yaml');
      writeFileSync(
        file,
        [
          'name: wifi-only',
          'site: lab',
          'start: "2026-01-01T00:00:00Z"',
          'duration: 10m',
          'gateways:',
          '  - { id: rx, zone: bench, position: [0, 0], wifi: { channels: [1, 6, 11], dwell: 200ms }, ble: false }',
          'fixed:',
          '  - { model: iphone-ios17, position: [1, 0], count: 1 }',
          '',
        ].join('\n'),
      );
      const cli = (...args: string[]) =>
        spawnSync(process.execPath, [join(import.meta.dirname, '..', 'scripts', 'presence.js'), 'simulate', file, '--evaluate', '--no-calibrate', ...args], {
          encoding: 'utf8',
          timeout: 60_000,
        });
      const json = cli('--json');
      expect(json.status, json.stderr).toBe(0);
      const e = JSON.parse(json.stdout);
      expect(e.overall.ble.estimateWindows).toBe(0);
      expect(e.summary.bleEstimateMape).toBeNull();
      expect(e.summary.wifiEstimateMape).toBeGreaterThan(0);
      const table = cli();
      expect(table.status, table.stderr).toBe(0);
      // gateway, windows, Wi-Fi distinct addresses, Wi-Fi estimate, BLE distinct addresses, BLE estimate
      expect(table.stdout).toMatch(/│ all\s+│ \d+ \/ 0\s+│ [\d.]+\s+│ [\d.]+\s+│ -\s+│ -\s+│/);
      expect(table.stdout).toMatch(/│ 0\s+│ none\s+│ [\d.]+\s+│ [\d.]+\s+│ [\d.]+\s+│ -\s+│ 0\s+│ -\s+│ -\s+│/);
      expect(table.stdout).toMatch(/│ wifi-only\s+│ 1\s+│ \d+ \/ 0\s+│ [\d.]+\s+│ -\s+│/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("evaluate: the seeds it derives stay within the generator's 32 bits", () => {
  it('seed 4294967295 is fitted on seed 0 and says so (it said 4294967296, which the generator reads as 0)', async () => {
    const e = await evaluate({ scenario: 'quiet-night', seed: 4294967295, durationS: 300, flows: false });
    expect(e.calibration?.fitSeed).toBe(0);
    const same = await evaluate({ scenario: 'quiet-night', seed: 4294967295, fitSeed: 0, durationS: 300, flows: false });
    expect(same.calibration?.wifi).toEqual(e.calibration?.wifi);
  });
});
