// People in the evaluation: a calibration fitted on one run's windows, applied to another's.
import { describe, expect, it } from 'vitest';
import type { FirmwareWindowCounts } from '../firmware/host/types.ts';
import { fitPeople, scorePeople, type CountedWindow } from '../simulator/people.ts';
import type { TruthWindow } from '../simulator/truth.ts';

function win(gateway: number, zone: string, minute: number, peopleMean: number, wifi: number, ble: number): CountedWindow {
  const radio = (n: number) => ({ frames: n, accepted: n, rejected: 0, weak: 0, devices: n, estimate: n, exact: true });
  const start = new Date(Date.UTC(2026, 0, 1, 10, minute)).toISOString();
  return {
    gateway,
    zone,
    counts: { wifi: radio(wifi), ble: radio(ble), unsupported: 0 } as unknown as FirmwareWindowCounts,
    truth: { gateway: `g${gateway}`, zone, start, end: start, people: Math.ceil(peopleMean), peopleMean } as TruthWindow,
  };
}

describe('people from a calibration fitted on another run', () => {
  it('recovers people = k * (estimate - b) per zone and scores the other run with it', () => {
    // Zone a: estimate = 3 + 2 * people (k 0.5, b 3); zone b: estimate = 1 + 4 * people (k 0.25, b 1).
    const train: CountedWindow[] = [];
    const test: CountedWindow[] = [];
    for (let m = 0; m < 40; m++) {
      const p = 2 + (m % 9);
      train.push(win(0, 'a', m, p, 3 + 2 * p, 0), win(1, 'b', m, p, 1 + 4 * p, 0));
      const q = 1 + (m % 7);
      test.push(win(0, 'a', m, q, 3 + 2 * q, 0), win(1, 'b', m, q, 1 + 4 * q, 0));
    }
    const { fit, summary } = fitPeople(train, 'wifi', 'seed-2');
    expect(summary.error).toBeUndefined();
    const byZone = Object.fromEntries(summary.zones.map((z) => [z.zone, z]));
    expect(byZone.a.k).toBeCloseTo(0.5, 6);
    expect(byZone.a.b).toBeCloseTo(3, 6);
    expect(byZone.b.k).toBeCloseTo(0.25, 6);
    expect(byZone.b.b).toBeCloseTo(1, 6);
    const s = scorePeople(fit!, 'wifi', test, 2);
    expect(s.overall.windows).toBe(80);
    expect(s.overall.mape).toBe(0);
    expect(s.perGateway[1].mae).toBe(0);
  });

  it('scores the error of the calibrated value, not of the raw estimate', () => {
    const train = Array.from({ length: 30 }, (_, m) => win(0, 'a', m, 1 + (m % 5), 2 * (1 + (m % 5)), 0));
    const { fit } = fitPeople(train, 'wifi', 'seed-2');
    // Test windows read 20 % high: estimate 2.4 * people, so calibrated people are 1.2 * people.
    const test = Array.from({ length: 10 }, (_, m) => win(0, 'a', m, 5, 12, 0));
    const s = scorePeople(fit!, 'wifi', test, 1);
    expect(s.overall.mape).toBeCloseTo(20, 1);
    expect(s.overall.mae).toBeCloseTo(1, 2);
  });

  it('says why when the estimate cannot be calibrated, instead of scoring people', () => {
    const flat = Array.from({ length: 10 }, (_, m) => win(0, 'a', m, 4, 7, 7));
    const { fit, summary } = fitPeople(flat, 'ble', 'seed-2');
    expect(fit).toBeNull();
    expect(summary.error).toMatch(/same number of people/);
  });
});
