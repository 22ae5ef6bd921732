// Device, radio and crowd models behave as documented in docs/simulator-models.md.
import { describe, expect, it } from 'vitest';
import { adjacentPenaltyDb, pathLossDb, reachM, tunedChannel } from '../simulator/radio.ts';
import { loadScenario, resolveScenario } from '../simulator/scenario.ts';
import { runScenario, type FrameEvent } from '../simulator/sim.ts';
import type { TruthWindow } from '../simulator/truth.ts';

function scenario(primary: Record<string, number>, extra: Record<string, unknown> = {}, durationS = 600) {
  return resolveScenario(
    {
      name: 'model-test',
      site: 'test',
      duration: durationS,
      window: '60s',
      gateways: [{ id: 'gw', zone: 'z', position: [0, 0] }],
      people: { carry: [0, 1, 0, 0], primary, secondary: { 'watch-apple': 1 } },
      crowds: [{ type: 'gathering', region: { x: -5, y: -5, width: 10, height: 10 }, occupancy: [[0, 6]], dwell: '10h', dwell_cv: 0 }],
      environment: { shadowing_db: 0, fading_db: 0 },
      ...extra,
    },
    'test',
  );
}

function run(s: ReturnType<typeof scenario>, seed = 1) {
  const frames: FrameEvent[] = [];
  const windows: TruthWindow[] = [];
  for (const ev of runScenario(s, { seed })) {
    if (ev.type === 'frame') frames.push(ev);
    else windows.push(...ev.windows);
  }
  return { frames, windows };
}

const sa = (f: FrameEvent) => f.frame.data.subarray(34, 40);
const seqOf = (f: FrameEvent) => new DataView(f.frame.data.buffer).getUint16(46, true) >> 4;
const hex = (a: Uint8Array) => Buffer.from(a).toString('hex');
const adva = (f: FrameEvent) => Uint8Array.from(f.frame.data.subarray(16, 22)).reverse();

describe('Wi-Fi address randomisation', () => {
  it('recent iPhones use a fresh locally administered address per channel visit; sequence numbers count up under one address', () => {
    const { frames, windows } = run(scenario({ 'iphone-ios17': 1 }));
    const wifi = frames.filter((f) => f.radio === 'wifi');
    expect(wifi.length).toBeGreaterThan(20);
    const addrs = new Set(wifi.map((f) => hex(sa(f))));
    for (const f of wifi) {
      expect(sa(f)[0] & 0x02, 'locally administered').toBe(0x02);
      expect(sa(f)[0] & 0x01, 'unicast').toBe(0);
    }
    // Six phones, bursts every ~46 s for 10 min: many more addresses than phones.
    expect(addrs.size).toBeGreaterThan(12);
    // Under one address sequence numbers increase by one per probe.
    const byAddr = new Map<string, number[]>();
    for (const f of wifi) byAddr.set(hex(sa(f)), [...(byAddr.get(hex(sa(f))) ?? []), seqOf(f)]);
    let steps = 0;
    for (const seqs of byAddr.values())
      for (let i = 1; i < seqs.length; i++) {
        expect((seqs[i] - seqs[i - 1] + 4096) % 4096).toBeGreaterThan(0);
        steps++;
      }
    expect(steps).toBeGreaterThan(10);
    // As the iPhone 11 of the ProbingPatternsDataset: a new address at each channel visit (2 probes).
    expect(Math.max(...[...byAddr.values()].map((x) => x.length))).toBeLessThanOrEqual(2);
    // Devices in reach stay at six phones however many addresses they use.
    expect(Math.max(...windows.map((w) => w.devices.wifi))).toBeLessThanOrEqual(6);
    expect(windows.reduce((n, w) => n + w.addresses.wifiLocal, 0)).toBeGreaterThan(0);
    expect(windows.reduce((n, w) => n + w.addresses.wifiGlobal, 0)).toBe(0);
  });

  it('recent Android phones use one fresh address per burst', () => {
    const { frames } = run(scenario({ 'android-14': 1 }, { people: { carry: [0, 1, 0, 0], primary: { 'android-14': 1 }, secondary: {} } }));
    const wifi = frames.filter((f) => f.radio === 'wifi');
    const byAddr = new Map<string, number[]>();
    for (const f of wifi) byAddr.set(hex(sa(f)), [...(byAddr.get(hex(sa(f))) ?? []), f.frame.timestampMs]);
    // One address spans the channels of a scan (hundreds of ms), never two bursts (>= 1.5 s apart).
    expect([...byAddr.values()].some((ts) => ts.length > 2)).toBe(true);
    for (const ts of byAddr.values()) expect(Math.max(...ts) - Math.min(...ts)).toBeLessThan(1500);
  });

  it('older Android phones keep their burned-in global address', () => {
    const { frames } = run(scenario({ 'android-legacy': 1 }));
    const wifi = frames.filter((f) => f.radio === 'wifi');
    expect(wifi.length).toBeGreaterThan(20);
    const addrs = new Set(wifi.map((f) => hex(sa(f))));
    expect(addrs.size).toBeLessThanOrEqual(6);
    for (const f of wifi) expect([...sa(f).subarray(0, 3)]).toEqual([0x5c, 0x0a, 0x5b]);
  });

  it('the hopping radio misses bursts: fewer addresses are captured than emitted, only on its channels', () => {
    const { frames, windows } = run(scenario({ 'android-14': 1 }, { people: { carry: [0, 1, 0, 0], primary: { 'android-14': 1 }, secondary: {} } }, 1800));
    const channels = new Set(frames.filter((f) => f.radio === 'wifi').map((f) => new DataView(f.frame.data.buffer).getUint16(18, true)));
    expect([...channels].every((mhz) => [2412, 2437, 2462].includes(mhz))).toBe(true);
    const emitted = windows.reduce((n, w) => n + w.emitted.wifi, 0);
    const captured = windows.reduce((n, w) => n + w.addresses.wifi, 0);
    expect(captured).toBeLessThan(emitted);
    expect(captured).toBeGreaterThan(emitted * 0.3);
  });
});

describe('BLE advertising', () => {
  it('phones advertise with resolvable private addresses that rotate every 10 to 15 minutes', () => {
    const s = scenario(
      { 'iphone-ios17': 1 },
      {
        people: { carry: [0, 1, 0, 0], primary: { 'iphone-ios17': 1 }, secondary: {} },
        crowds: [{ type: 'gathering', region: { x: 0, y: 0, width: 1, height: 1 }, occupancy: [[0, 1]], dwell: '10h', dwell_cv: 0 }],
      },
      3600,
    );
    let ble: FrameEvent[] = [];
    for (let seed = 1; seed < 20 && ble.length === 0; seed++) ble = run(s, seed).frames.filter((f) => f.radio === 'ble');
    expect(ble.length).toBeGreaterThan(1000);
    for (const f of ble) {
      expect(f.frame.data[14] & 0x40, 'TxAdd random').toBe(0x40);
      expect(adva(f)[0] >> 6, 'RPA top bits 01').toBe(1);
    }
    const firstSeen = new Map<string, number>();
    for (const f of ble) if (!firstSeen.has(hex(adva(f)))) firstSeen.set(hex(adva(f)), f.frame.timestampMs);
    const starts = [...firstSeen.values()];
    expect(starts.length).toBeGreaterThanOrEqual(4); // 60 min / 15 min
    expect(starts.length).toBeLessThanOrEqual(7); // 60 min / 10 min + 1
    for (let i = 2; i < starts.length; i++) {
      const gapS = (starts[i] - starts[i - 1]) / 1000;
      expect(gapS).toBeGreaterThanOrEqual(599);
      expect(gapS).toBeLessThanOrEqual(901);
    }
    // Advertising interval 250-1200 ms plus advDelay.
    const gaps = ble.slice(1).map((f, i) => f.frame.timestampMs - ble[i].frame.timestampMs);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    expect(mean).toBeGreaterThan(250);
    expect(mean).toBeLessThan(1250);
  });

  it('a fixed iBeacon keeps one public address and advertises every ~100 ms', () => {
    const s = resolveScenario(
      {
        name: 'b',
        site: 'b',
        duration: 60,
        gateways: [{ id: 'gw', zone: 'z', position: [0, 0], wifi: false }],
        fixed: [{ model: 'ibeacon', position: [3, 0] }],
        environment: { shadowing_db: 0, fading_db: 0 },
      },
      'b',
    );
    const ble = run(s).frames;
    expect(new Set(ble.map((f) => hex(adva(f)))).size).toBe(1);
    expect(ble[0].frame.data[14] & 0x40, 'TxAdd public').toBe(0);
    expect(ble.length).toBeGreaterThan(540); // 60 s / (100 ms + up to 10 ms advDelay)
    expect(ble.length).toBeLessThan(600);
  });
});

describe('radio', () => {
  const env = { pathLossExponent: 3, referenceLossDb: 40, shadowingDb: 0, fadingDb: 0, bodyLossDb: 0 };
  it('log-distance path loss: +30 dB per decade at n = 3; reach where the median meets the sensitivity', () => {
    expect(pathLossDb(env, 1)).toBe(40);
    expect(pathLossDb(env, 10)).toBeCloseTo(70);
    expect(pathLossDb(env, 100)).toBeCloseTo(100);
    expect(reachM(env, 15, -85)).toBeCloseTo(100);
  });
  it('hops channels with a deaf gap at each switch; neighbours are heard with a penalty', () => {
    const r = { channels: [1, 6, 11], dwellMs: 200, switchMs: 5, sensitivityDbm: -92, phaseMs: 0 };
    expect(tunedChannel(r, 2)).toBe(0);
    expect(tunedChannel(r, 100)).toBe(1);
    expect(tunedChannel(r, 300)).toBe(6);
    expect(tunedChannel(r, 500)).toBe(11);
    expect(tunedChannel(r, 700)).toBe(1);
    expect(adjacentPenaltyDb(6, 6)).toBe(0);
    expect(adjacentPenaltyDb(5, 6)).toBeGreaterThan(0);
    expect(adjacentPenaltyDb(1, 6)).toBeNull();
    expect(adjacentPenaltyDb(36, 40)).toBeNull();
  });
  it('received signal falls with distance', () => {
    const near = run(
      resolveScenario(
        {
          name: 'n',
          site: 'n',
          duration: 10,
          gateways: [{ id: 'gw', zone: 'z', position: [0, 0], wifi: false }],
          fixed: [{ model: 'ibeacon', position: [2, 0] }],
        },
        'n',
      ),
    ).frames;
    const far = run(
      resolveScenario(
        {
          name: 'n',
          site: 'n',
          duration: 10,
          gateways: [{ id: 'gw', zone: 'z', position: [0, 0], wifi: false }],
          fixed: [{ model: 'ibeacon', position: [30, 0] }],
        },
        'n',
      ),
    ).frames;
    const avg = (fs: FrameEvent[]) => fs.reduce((n, f) => n + new DataView(f.frame.data.buffer).getInt8(1), 0) / fs.length;
    expect(avg(near) - avg(far)).toBeGreaterThan(25);
  });
});

describe('crowds', () => {
  it("traffic-corridor: travel times between the gateways match the modes' speeds", () => {
    const s = loadScenario('traffic-corridor', { durationS: 1800 });
    const stats = new Map<string, number[]>();
    for (const ev of runScenario(s, { seed: 4 }))
      if (ev.type === 'window') for (const w of ev.windows) for (const t of w.travel ?? []) stats.set(t.mode, [...(stats.get(t.mode) ?? []), t.medianS]);
    const med = (m: string) => {
      const xs = stats.get(m)!.sort((a, b) => a - b);
      return xs[xs.length >> 1];
    };
    expect(med('car')).toBeGreaterThan((500 / 13.9) * 0.8);
    expect(med('car')).toBeLessThan((500 / 13.9) * 1.25);
    expect(med('cyclist')).toBeGreaterThan((500 / 4.5) * 0.75);
    expect(med('cyclist')).toBeLessThan((500 / 4.5) * 1.3);
    expect(med('pedestrian')).toBeGreaterThan((500 / 1.4) * 0.75);
  });

  it('kingsday-square fills up: people in reach grow over the first hour', () => {
    const s = loadScenario('kingsday-square', { durationS: 3600, scale: 0.01 });
    const perWindow: number[] = [];
    for (const ev of runScenario(s, { seed: 2 })) if (ev.type === 'window') perWindow.push(ev.windows.reduce((n, w) => Math.max(n, w.peopleMean), 0));
    expect(perWindow).toHaveLength(60);
    const first = perWindow.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = perWindow.slice(-5).reduce((a, b) => a + b) / 5;
    expect(last).toBeGreaterThan(first * 4);
  });

  it('people carry 0 to 3 devices', () => {
    const s = scenario(
      { 'iphone-ios17': 1 },
      {
        people: { carry: [0.25, 0.25, 0.25, 0.25], primary: { 'iphone-ios17': 1 }, secondary: { 'tracker-band': 1 } },
        crowds: [{ type: 'gathering', region: { x: -5, y: -5, width: 10, height: 10 }, occupancy: [[0, 200]], dwell: '10h', dwell_cv: 0 }],
      },
      60,
    );
    const { windows } = run(s);
    const w = windows[0];
    expect(w.people).toBeGreaterThanOrEqual(200); // 200 present at the start, a few arrive to replace leavers
    expect(w.people).toBeLessThan(210);
    // Expected devices per person 1.5: 300 in all, phones 150.
    expect(w.devices.byKind.phone).toBeGreaterThan(110);
    expect(w.devices.byKind.phone).toBeLessThan(190);
    expect(w.devices.byKind.tracker).toBeGreaterThan(110);
    expect(w.devices.byKind.tracker).toBeLessThan(190);
  });
});
