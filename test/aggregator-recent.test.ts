// The aggregator's memory of what it wrote recently (aggregator/recent.ts), the data of its page:
// per zone the largest value among its gateways per window, people only where calibrated, the
// gateways' states, and its bounds.
import { describe, expect, it } from 'vitest';
import { RecentWrites, type ZoneWindow } from '../aggregator/recent.ts';
import { status, window } from './aggregator-helpers.ts';

const T0 = Date.parse('2026-04-27T12:00:00Z');
const MIN = 60_000;

describe('recent writes', () => {
  it('keeps per zone and window the largest value among the gateways, people with its interval', () => {
    const r = new RecentWrites();
    const a = window('s', 'gw-a', 1, T0, MIN, 'west');
    const b = window('s', 'gw-b', 2, T0, MIN, 'west');
    b.wifi.estimate = a.wifi.estimate + 5;
    b.ble.devices = 1;
    r.counts(a, { value: 10, low: 8, high: 12 });
    r.counts(b, { value: 14, low: 11, high: 17 });
    r.counts(window('s', 'gw-c', 3, T0, MIN, 'east'), null);
    const snap = r.snapshot();
    expect(snap.format).toBe('presence-recent/1');
    expect(snap.zones.map((z) => [z.zone, z.calibrated])).toEqual([
      ['east', false],
      ['west', true],
    ]);
    const w = snap.zones[1].windows[0];
    expect(w).toMatchObject({ t: T0, len: MIN, gateways: 2, truth: null, people: { value: 14, low: 11, high: 17 } });
    expect(w.wifi.estimate).toBe(b.wifi.estimate);
    expect(w.ble.devices).toBe(a.ble.devices);
    expect(snap.zones[0].windows[0].people).toBeNull();
    expect(snap.gateways.map((g) => [g.gateway, g.zone, g.last_window])).toEqual([
      ['gw-a', 'west', T0],
      ['gw-b', 'west', T0],
      ['gw-c', 'east', T0],
    ]);
  });

  it('a calibrated zone whose windows were all suppressed (no people) is still calibrated', () => {
    const r = new RecentWrites();
    const zeros = { frames: 0, devices: 0, estimate: 0, suppressed: true };
    const quiet = { ...window('s', 'gw-q', 1, T0, MIN, 'quiet'), privacy: { min_count: 5 }, wifi: zeros, ble: zeros };
    r.counts(quiet, null, Date.now(), true);
    r.counts(window('s', 'gw-c', 1, T0, MIN, 'east'), null, Date.now(), false);
    expect(r.snapshot().zones.map((z) => [z.zone, z.calibrated, z.windows[0].people])).toEqual([
      ['east', false, null],
      ['quiet', true, null],
    ]);
  });

  it("keeps a gateway's last received status and newest missing point when an earlier one is confirmed after it (batches written out of order)", () => {
    const r = new RecentWrites();
    const offline = { ...status('s', 'gw-a', new Date(T0 + MIN)), state: 'offline' as const };
    r.status(offline, T0 + MIN, T0 + MIN);
    r.status(status('s', 'gw-a', new Date(T0)), T0 + MIN, T0); // received before, confirmed later
    expect(r.snapshot().gateways[0]).toMatchObject({ state: 'offline', status_at: T0 + MIN });
    r.status(status('s', 'gw-a', new Date(T0 + 2 * MIN)), T0 + 2 * MIN, T0 + 2 * MIN); // received after: taken
    expect(r.snapshot().gateways[0]).toMatchObject({ state: 'online', status_at: T0 + 2 * MIN });
    // the same for the aggregator's own missing / back points
    r.missing('s', 'gw-a', 0, T0 + 4 * MIN); // back, confirmed first
    r.missing('s', 'gw-a', 3, T0 + 3 * MIN); // the missing point before it, confirmed later
    expect(r.snapshot().gateways[0]).toMatchObject({ missing: false, missing_windows: 0 });
    r.missing('s', 'gw-a', 5, T0 + 9 * MIN);
    expect(r.snapshot().gateways[0]).toMatchObject({ missing: true, missing_windows: 5 });
  });

  it("takes a status received after the one shown when the aggregator's wall clock was set back between them (the order of receipt comes from a clock that never goes back)", () => {
    const r = new RecentWrites();
    r.status(status('s', 'gw-a', new Date(T0)), T0, T0, null, 1000);
    // the wall clock set back an hour, then the broker's offline status (its last will, no ts)
    r.status({ v: 1, site: 's', gateway: 'gw-a', state: 'offline' }, T0 - 59 * MIN, T0 - 59 * MIN, null, 1000 + MIN);
    expect(r.snapshot().gateways[0]).toMatchObject({ state: 'offline', status_at: T0 - 59 * MIN });
    // one received before it and confirmed after it is still left out
    r.status(status('s', 'gw-a', new Date(T0 + MIN)), T0, T0 + MIN, null, 1000 + MIN / 2);
    expect(r.snapshot().gateways[0]).toMatchObject({ state: 'offline' });
  });

  it('a gateway whose clock is days behind: its online status received after the offline one stamped on receipt shows it online, with its clock behind', () => {
    const r = new RecentWrites();
    const DAYS = 3 * 24 * 60 * MIN;
    // the broker's offline status (its last will: no ts), stamped when it was received
    r.status({ v: 1, site: 's', gateway: 'gw-a', state: 'offline' }, T0, T0);
    expect(r.snapshot().gateways[0]).toMatchObject({ state: 'offline', status_at: T0 });
    // it comes back, its clock three days behind: every ts is three days before the offline one's time
    r.status(status('s', 'gw-a', new Date(T0 + MIN - DAYS)), T0 + MIN, T0 + MIN);
    expect(r.snapshot().gateways[0]).toMatchObject({ state: 'online', status_at: T0 + MIN - DAYS });
    expect(r.snapshot().gateways[0].clock_behind_s).toBeNull(); // not judged yet (ClockSkew: late over three minutes)
    r.status(status('s', 'gw-a', new Date(T0 + 5 * MIN - DAYS)), T0 + 5 * MIN, T0 + 5 * MIN, DAYS);
    expect(r.snapshot().gateways[0]).toMatchObject({ state: 'online', status_at: T0 + 5 * MIN - DAYS, clock_behind_s: DAYS / 1000 });
  });

  it('emits each written window and gateway, and the truth once known', () => {
    const r = new RecentWrites();
    const seen: Array<[string, ZoneWindow]> = [];
    r.on('window', (_site, zone, w) => seen.push([zone, w]));
    const gws: string[] = [];
    r.on('gateway', (g) => gws.push(`${g.gateway}:${g.state}:${g.missing}`));
    r.counts(window('s', 'gw-a', 1, T0, MIN, 'west'), null);
    r.truth('s', 'west', T0, T0 + MIN, 42.5);
    r.truth('s', 'west', T0 + MIN, T0 + 2 * MIN, 43); // not written yet: kept for later, no event
    r.counts(window('s', 'gw-a', 2, T0 + MIN, MIN, 'west'), null);
    r.status(status('s', 'gw-a'));
    r.missing('s', 'gw-a', 3, T0 + 2 * MIN);
    expect(seen.map(([, w]) => [w.t, w.truth])).toEqual([
      [T0, null],
      [T0, 42.5],
      [T0 + MIN, 43],
    ]);
    expect(gws).toEqual(['gw-a:null:false', 'gw-a:null:false', 'gw-a:online:false', 'gw-a:online:true']);
    const g = r.snapshot().gateways[0];
    expect(g).toMatchObject({
      state: 'online',
      uptime_s: 12.5,
      queue_depth: 3,
      frames_per_s: 15,
      errors: 3,
      sources: 2,
      sources_failed: 0,
      missing_windows: 3,
    });
  });

  it('is bounded: windows by age and number per zone, zones and gateways by number', () => {
    const r = new RecentWrites({ maxAgeMs: 10 * MIN, maxWindows: 5, maxZones: 3, maxGateways: 4 });
    for (let i = 0; i < 20; i++) r.counts(window('s', 'gw-a', i, T0 + i * MIN, MIN, 'west'), null);
    expect(r.snapshot().zones[0].windows.map((w) => (w.t - T0) / MIN)).toEqual([15, 16, 17, 18, 19]);
    // A window from long before is not taken.
    r.counts(window('s', 'gw-a', 99, T0 - 7 * 86400_000, MIN, 'west'), null);
    expect(r.snapshot().zones[0].windows).toHaveLength(5);
    const age = new RecentWrites({ maxAgeMs: 10 * MIN });
    age.counts(window('s', 'gw-a', 0, T0 - 7 * 86400_000, MIN, 'west'), null); // last week's period first
    age.counts(window('s', 'gw-a', 1, T0, MIN, 'west'), null);
    expect(age.snapshot().zones[0].windows.map((w) => w.t)).toEqual([T0]);
    for (let z = 0; z < 6; z++) r.counts(window('s', `gw-${z}`, 1, T0, MIN, `zone-${z}`), null, Date.now() + 1000 + z);
    const snap = r.snapshot();
    expect(snap.zones.map((z) => z.zone)).toEqual(['zone-3', 'zone-4', 'zone-5']);
    expect(snap.gateways.map((g) => g.gateway)).toEqual(['gw-2', 'gw-3', 'gw-4', 'gw-5']);
  });

  it('is bounded in gateway windows over all zones: many gateways per zone no longer multiply the windows kept', () => {
    // 1440 windows per zone held one entry per gateway of the zone each: 2,000 gateways over a day of
    // 1-minute windows came to 2.9 million entries (about 700 MB) while every per-zone bound held.
    expect(new RecentWrites().maxEntries).toBe(500_000);
    const r = new RecentWrites({ maxEntries: 100 });
    for (let i = 0; i < 20; i++) for (let g = 0; g < 30; g++) r.counts(window('s', `gw-${g}`, i, T0 + i * MIN, MIN, `zone-${g % 3}`), null);
    expect(r.held).toBeLessThanOrEqual(100);
    const snap = r.snapshot();
    const held = snap.zones.flatMap((z) => z.windows);
    expect(held.reduce((n, w) => n + w.gateways, 0)).toBe(r.held);
    // the newest windows stay, in every zone, each with all its 10 gateways; the oldest went
    for (const z of snap.zones) {
      expect(z.windows.at(-1)!.t).toBe(T0 + 19 * MIN);
      for (const w of z.windows.slice(1)) expect(w.gateways).toBe(10);
    }
    expect(Math.min(...held.map((w) => w.t))).toBeGreaterThan(T0 + 15 * MIN);
    // a window written again by the same gateway (a redelivery) is no second entry
    const before = r.held;
    r.counts(window('s', 'gw-0', 19, T0 + 19 * MIN, MIN, 'zone-0'), null);
    expect(r.held).toBe(before);
    // zones evicted and windows aged out give their entries back
    const small = new RecentWrites({ maxZones: 2, maxWindows: 3 });
    for (let i = 0; i < 10; i++) for (let z = 0; z < 4; z++) small.counts(window('s', `gw-${z}`, i, T0 + i * MIN, MIN, `zone-${z}`), null);
    expect(small.held).toBe(small.snapshot().zones.reduce((n, z) => n + z.windows.reduce((m, w) => m + w.gateways, 0), 0));
    expect(small.held).toBeLessThanOrEqual(2 * 3);
  });

  it('windows arriving out of order are kept in time order', () => {
    const r = new RecentWrites();
    for (const i of [3, 1, 2, 0]) r.counts(window('s', 'gw-a', i, T0 + i * MIN, MIN, 'west'), null);
    expect(r.snapshot().zones[0].windows.map((w) => (w.t - T0) / MIN)).toEqual([0, 1, 2, 3]);
  });
});
