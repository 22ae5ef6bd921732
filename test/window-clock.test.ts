// The one window clock (gateway/window.ts) that the gateway, `presence replay` and the simulator's
// evaluation share: alignment, one window per step, gaps filled with empty windows up to a bound,
// longer jumps skipped, windows cut short, and a fresh key for every window (drawn by the firmware).
import { describe, expect, it } from 'vitest';
import { Firmware } from '../firmware/host/firmware.ts';
import { probeRequest } from '../simulator/frames.ts';
import { WindowClock, type ClockJump, type ClosedWindow } from '../gateway/window.ts';

const IES = Uint8Array.from([0x00, 0x00, 0x01, 0x04, 0x02, 0x04, 0x0b, 0x16]);
const probe = (i: number, t: number) => ({
  linkType: 127,
  timestampMs: t,
  data: probeRequest({ sa: Uint8Array.from([0x02, 0, 0, 0, 0, i]), seq: i, ies: IES, channel: 6, signalDbm: -50, tsfUs: 0 }),
});
const T0 = Date.parse('2026-05-01T10:00:00.000Z');

function steps(clock: WindowClock, t: number): ClosedWindow[] {
  const out: ClosedWindow[] = [];
  for (let w: ClosedWindow | null; (w = clock.step(t)); ) out.push(w);
  return out;
}

describe('WindowClock', () => {
  it('opens the aligned window containing a time; counting from inside it makes it incomplete', () => {
    const fw = Firmware.loadSync();
    const clock = new WindowClock(fw, { windowMs: 60_000 });
    const w = clock.open(T0 + 1500);
    expect(w.nominalStart).toBe(T0);
    expect(clock.end).toBe(T0 + 60_000);
    expect(fw.windowOpen).toBe(true);
    fw.ingest(probe(1, T0 + 1500));
    expect(clock.step(T0 + 59_999)).toBeNull();
    const c = clock.step(T0 + 60_000)!;
    expect(c).toMatchObject({ nominalStart: T0, nominalEnd: T0 + 60_000, start: T0 + 1500, end: T0 + 60_000, complete: false });
    expect(c.counts.wifi.devices).toBe(1);
    // the next one opened on its boundary: complete
    expect(clock.window).toMatchObject({ start: T0 + 60_000, complete: true });
    expect(clock.close(T0 + 120_000)).toMatchObject({ start: T0 + 60_000, end: T0 + 120_000, complete: true });
    expect(fw.windowOpen).toBe(false);
  });

  it('fills a gap with empty windows one step at a time, each under its own key', () => {
    const fw = Firmware.loadSync();
    const hashes: bigint[] = [];
    const begin = fw.beginWindow.bind(fw);
    fw.beginWindow = (opts) => {
      begin(opts);
      const mem = new Uint8Array(fw.exports.memory.buffer);
      mem.set([0x02, 9, 9, 9, 9, 9], fw.exports.batch_ptr());
      hashes.push(fw.exports.hash_address(1, 0, fw.exports.batch_ptr()));
    };
    const clock = new WindowClock(fw, { windowMs: 1000 });
    clock.open(T0);
    fw.ingest(probe(1, T0));
    const out = steps(clock, T0 + 4200);
    expect(out.map((w) => w.nominalStart - T0)).toEqual([0, 1000, 2000, 3000]);
    expect(out.map((w) => w.counts.wifi.frames)).toEqual([1, 0, 0, 0]);
    expect(out.every((w) => w.complete)).toBe(true);
    expect(clock.window!.nominalStart).toBe(T0 + 4000);
    clock.close();
    expect(new Set(hashes).size).toBe(5);
  });

  it('skips a jump past more than maxEmptyWindows windows, reporting it; the window after it is cut short', () => {
    const fw = Firmware.loadSync();
    const jumps: ClockJump[] = [];
    const clock = new WindowClock(fw, { windowMs: 1000, maxEmptyWindows: 3, onJump: (j) => jumps.push(j) });
    clock.open(0); // a frame stamped 1970
    fw.ingest(probe(1, 0));
    const out = steps(clock, T0 + 500);
    expect(out).toHaveLength(1); // the 1970 window; millions of empty ones skipped
    expect(out[0]).toMatchObject({ nominalStart: 0, end: 1000, complete: true });
    expect(jumps).toEqual([{ from: 1000, to: T0, skipped: T0 / 1000 - 1 }]);
    expect(clock.window).toMatchObject({ start: T0 + 500, nominalStart: T0, complete: false });
    // exactly maxEmptyWindows empty windows are still filled
    const more = steps(clock, T0 + 1000 + 3 * 1000);
    expect(more).toHaveLength(4);
    expect(jumps).toHaveLength(1);
    clock.close();
  });

  it('maxEmptyWindows 0 (the wall clock): a step later than one window starts anew at that time', () => {
    const fw = Firmware.loadSync();
    const jumps: ClockJump[] = [];
    const clock = new WindowClock(fw, { windowMs: 1000, maxEmptyWindows: 0, onJump: (j) => jumps.push(j) });
    clock.open(T0);
    expect(steps(clock, T0 + 1999)).toHaveLength(1); // late, but within the next window: no jump
    expect(jumps).toEqual([]);
    expect(steps(clock, T0 + 3500)).toHaveLength(1);
    expect(jumps).toEqual([{ from: T0 + 2000, to: T0 + 3000, skipped: 1 }]);
    expect(clock.window).toMatchObject({ start: T0 + 3500, complete: false });
    clock.close();
  });

  it('close() cuts a window short; an empty interval still ends (and wipes) the firmware window', () => {
    const fw = Firmware.loadSync();
    const clock = new WindowClock(fw, { windowMs: 60_000 });
    clock.open(T0);
    expect(clock.close(T0 + 30_000)).toMatchObject({ start: T0, end: T0 + 30_000, complete: false }); // ended before its end
    clock.open(T0 + 60_000);
    clock.cutShort();
    expect(clock.close(T0 + 120_000)).toMatchObject({ start: T0 + 60_000, end: T0 + 120_000, complete: false }); // to its end, but cut short
    clock.open(T0 + 120_000);
    expect(clock.close(T0 + 180_000, false)).toMatchObject({ complete: false });
    clock.open(T0 + 180_000);
    expect(clock.close(T0 + 240_000)).toMatchObject({ complete: true }); // the control: to its end, nothing cut
    clock.open(T0 + 5000);
    const empty = clock.close(T0 + 5000)!;
    expect(empty.end).toBeLessThanOrEqual(empty.start);
    expect(fw.windowOpen).toBe(false);
    expect(clock.close()).toBeNull();
  });

  it("'all' is one window from open to close", () => {
    const fw = Firmware.loadSync();
    const clock = new WindowClock(fw, { windowMs: 'all' });
    clock.open(T0 + 123);
    expect(clock.step(T0 + 1e12)).toBeNull();
    expect(clock.close(T0 + 5000)).toMatchObject({ nominalStart: T0 + 123, start: T0 + 123, end: T0 + 5000 });
  });

  it('refuses nonsense: a second open window, a window length of 0, an open at NaN', () => {
    const fw = Firmware.loadSync();
    expect(() => new WindowClock(fw, { windowMs: 0 })).toThrow(/positive number of ms/);
    const clock = new WindowClock(fw, { windowMs: 1000 });
    expect(() => clock.open(NaN)).toThrow(/cannot open a window at NaN/);
    expect(fw.windowOpen).toBe(false);
    clock.open(T0);
    expect(() => clock.open(T0)).toThrow(/already open/);
    clock.close();
  });
});
