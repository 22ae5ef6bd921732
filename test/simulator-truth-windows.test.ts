// The ground truth of windows that are no multiple of the truth step, or shorter than it: each
// window's people in reach and their mean come from the samples inside it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { countWindows } from '../simulator/evaluate.ts';
import { simulate } from '../simulator/index.ts';
import { loadScenario } from '../simulator/scenario.ts';

const root = mkdtempSync(join(tmpdir(), 'sim-truth-windows-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('truth of odd window lengths (quiet-night samples every 5 s)', () => {
  it('every window of 7 s, 250 ms, 60 s and a cut first one reads the people in reach, and its mean lies within them', async () => {
    for (const [windowS, start] of [
      [7, undefined],
      [0.25, undefined],
      [60, '2026-11-23T01:00:17.500Z'],
    ] as const) {
      const r = await simulate({ scenario: 'quiet-night', seed: 1, durationS: 120, windowS, start, outDir: join(root, `w${windowS}`) });
      const ws = r.truth.windows;
      expect(ws.length).toBeGreaterThan(1);
      for (const w of ws) {
        const what = `--window ${windowS}s, window ${w.start}: people ${w.people}, mean ${w.peopleMean}`;
        // The lobby holds 4 to 5 people in its first two minutes: a window with none had no sample
        // (250 ms windows between the 5-s samples), and a mean above the distinct people came from a
        // whole step counted into a shorter window (7 s: 2.86 and 5.71 for 4 people; 250 ms: 80).
        expect(w.people, what).toBeGreaterThan(0);
        expect(w.peopleMean, what).toBeGreaterThan(0);
        expect(w.peopleMean, what).toBeLessThanOrEqual(w.people);
        expect(w.devices.total, what).toBeGreaterThan(0);
      }
    }
  });
});

describe("the evaluation's firmware on a window the run's end cuts short", () => {
  it('estimates over the part simulated, as the truth window counts it: a 2-h window of a 5-min run reads as a 5-min window', async () => {
    // The firmware was told the whole 2-h window as its span, so its estimate (a mean over the
    // window's sub-windows) was divided over 2 h: 0 against the devices of the 5 minutes, MAPE 100 %.
    const counted = async (windowS: number) => {
      const [w, ...more] = await countWindows(loadScenario('quiet-night', { durationS: 300, windowS }), 1);
      expect(more).toHaveLength(0);
      expect(w.truth.end).toBe('2026-11-23T01:05:00.000Z');
      return w.counts;
    };
    const cut = await counted(7200);
    const whole = await counted(300);
    for (const radio of ['wifi', 'ble'] as const) {
      expect(cut[radio].devices, radio).toBe(whole[radio].devices);
      expect(cut[radio].estimate, radio).toBeGreaterThan(0);
      // each window draws its own key, which moves the estimate by a little
      expect(Math.abs(cut[radio].estimate - whole[radio].estimate), radio).toBeLessThanOrEqual(1);
    }
  });
});
