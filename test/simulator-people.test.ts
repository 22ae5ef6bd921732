// People in the evaluation: a calibration fitted on one run's windows, applied to another's.
import { describe, expect, it } from 'vitest';
import type { FirmwareWindowCounts } from '../firmware/host/types.ts';
import {
  combinedFor,
  fitCombined,
  fitPeople,
  fitReference,
  PeopleAcc,
  scoreCombined,
  scorePeople,
  scoreReference,
  type CountedWindow,
} from '../simulator/people.ts';
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

  it('the reference is the same fit on the devices in reach (truth), not on any count', () => {
    // devices in reach = 1.5 * people + 2; the radios' counts are unrelated to people
    const withDevices = (w: CountedWindow, p: number) => ({ ...w, truth: { ...w.truth, devices: { total: 1.5 * p + 2 } } }) as unknown as CountedWindow;
    const make = () => Array.from({ length: 40 }, (_, m) => withDevices(win(0, 'a', m, 2 + (m % 9), 7, 7), 2 + (m % 9)));
    const f = fitReference(make(), 'seed-2')!;
    expect(f.zones[0].k.value).toBeCloseTo(1 / 1.5, 6);
    expect(f.zones[0].b.value).toBeCloseTo(2, 6);
    expect(scoreReference(f, make(), 1).overall.mape).toBe(0);
  });

  it('the phones reference is the same fit on the phones in reach alone, the other devices left out', () => {
    // phones in reach = people; every other device in reach (watches, earbuds, ...) is unrelated to people
    const withPhones = (w: CountedWindow, p: number, m: number) =>
      ({ ...w, truth: { ...w.truth, devices: { total: p + (m % 5) * 3, byKind: { phone: p } } } }) as unknown as CountedWindow;
    const make = () => Array.from({ length: 40 }, (_, m) => withPhones(win(0, 'a', m, 2 + (m % 9), 7, 7), 2 + (m % 9), m));
    const phones = fitReference(make(), 'seed-2', 'phones')!;
    expect(phones.zones[0].k.value).toBeCloseTo(1, 6);
    expect(scoreReference(phones, make(), 1, 'phones').overall.mape).toBe(0);
    const devices = fitReference(make(), 'seed-2')!;
    expect(scoreReference(devices, make(), 1).overall.mape).toBeGreaterThan(10);
  });

  it('MAPE per window, WAPE over the sums, and the share of windows inside the interval', () => {
    const a = new PeopleAcc();
    a.add({ value: 2, low: 1.5, high: 3 }, 1); // 100 % off, outside
    a.add({ value: 9, low: 8, high: 12 }, 10); // 10 % off, inside
    a.add(5, 0); // no people: not scored
    const s = a.score();
    expect(s.windows).toBe(2);
    expect(s.mape).toBe(55); // (100 + 10) / 2
    expect(s.wape).toBe(18.2); // (1 + 1) / (1 + 10)
    expect(s.coverage).toBe(50);
    expect(s.mae).toBe(1);
  });
});

describe('people from both radios', () => {
  // A deterministic scatter in -1..1 with mean near 0.
  const jitter = (i: number, salt: number) => ((((i * 7919 + salt * 104729) % 1000) + 1000) % 1000) / 500 - 1;

  it('takes the radio that tracks people when the other does not', () => {
    // Wi-Fi = 2 * people exactly; BLE = people plus a scatter of up to 3.
    const make = (salt: number) =>
      Array.from({ length: 60 }, (_, m) => {
        const p = 3 + (m % 11);
        return win(0, 'a', m, p, 2 * p, p + 3 * jitter(m, salt));
      });
    const train = make(1);
    const test = make(2);
    const fits = { wifi: fitPeople(train, 'wifi', 's').fit, ble: fitPeople(train, 'ble', 's').fit };
    const c = fitCombined(train, fits)!;
    expect(c.zones[0].wifi).toBeGreaterThan(0.99);
    const s = scoreCombined(c, fits, test, 1).overall;
    expect(s.mape).toBeLessThan(0.5);
    expect(s.mape).toBeLessThan(scorePeople(fits.ble!, 'ble', test, 1).overall.mape);
  });

  it('weighs two equally noisy radios about equally and beats each of them', () => {
    const make = (salt: number) =>
      Array.from({ length: 200 }, (_, m) => {
        const p = 5 + (m % 21);
        return win(0, 'a', m, p, p + 4 * jitter(m, salt), 2 * p + 8 * jitter(m, salt + 17));
      });
    const train = make(3);
    const test = make(5);
    const fits = { wifi: fitPeople(train, 'wifi', 's').fit, ble: fitPeople(train, 'ble', 's').fit };
    const c = fitCombined(train, fits)!;
    expect(c.zones[0].wifi).toBeGreaterThan(0.3);
    expect(c.zones[0].wifi).toBeLessThan(0.7);
    const both = scoreCombined(c, fits, test, 1).overall.mae;
    expect(both).toBeLessThan(scorePeople(fits.wifi!, 'wifi', test, 1).overall.mae);
    expect(both).toBeLessThan(scorePeople(fits.ble!, 'ble', test, 1).overall.mae);
  });

  it('uses the one radio a zone is calibrated on, and gives an interval around the value', () => {
    const train = Array.from({ length: 40 }, (_, m) => win(0, 'a', m, 2 + (m % 9), 0, 3 * (2 + (m % 9)) + jitter(m, 9)));
    const fits = { wifi: null, ble: fitPeople(train, 'ble', 's').fit };
    const c = fitCombined(train, fits)!;
    expect(c.zones).toEqual([{ zone: 'a', wifi: 0, residualSd: expect.any(Number) }]);
    const p = combinedFor(c, fits, win(0, 'a', 0, 5, 0, 15))!;
    expect(p.value).toBeCloseTo(5, 0);
    expect(p.low).toBeLessThan(p.value);
    expect(p.high).toBeGreaterThan(p.value);
    expect(combinedFor(c, fits, win(1, 'b', 0, 5, 0, 15))).toBeNull();
    expect(fitCombined(train, { wifi: null, ble: null })).toBeNull();
  });
});
