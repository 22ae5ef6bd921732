// The small-counts table of `presence simulate --evaluate`: what each gateway privacy setting costs,
// scored as the published counts would be read downstream.
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
