// `presence replay` keeps the gateway's capture clock (gateway/README.md, "A capture clock that
// misbehaves"): a frame stamped outside 2000-2099 does not move the clock and is counted in the
// window open when it comes (or the first one). The real CLI on captures written here.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { LINKTYPE } from '../firmware/host/types.ts';
import { MAX_HELD_OFF_CLOCK } from '../gateway/window.ts';
import { probeRequest } from '../simulator/frames.ts';
import { pcapHeader, pcapngHeader, pcapngPacket, pcapRecord } from '../simulator/pcap-writer.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-replay-clock-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const probe = (i: number) =>
  probeRequest({
    sa: Uint8Array.from([0x02, 0x10, 0x20, 0x30, (i >> 8) & 0xff, i & 0xff]),
    seq: i & 0xfff,
    ies: Uint8Array.from([0, 0]),
    channel: 6,
    signalDbm: -50,
    tsfUs: 0,
  });
const EPOCH_1970 = 5_000;
const YEAR_2106 = 0xffffffff * 1000; // the largest pcap seconds field

async function replay(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(root, 'scripts', 'presence.js'), 'replay', ...args], { cwd: root, maxBuffer: 64 << 20 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}
const lines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { start: string; end: string; wifi: { frames: number } });

describe('presence replay: frames stamped outside 2000-2099', () => {
  const t0 = Date.parse('2026-05-04T10:00:00.250Z');
  const real = Array.from({ length: 30 }, (_, i) => t0 + i * 100); // 10:00:00.250 to 10:00:03.150
  const file = join(tmp, 'off-clock.pcap');
  writeFileSync(
    file,
    Buffer.concat([
      pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP),
      pcapRecord(EPOCH_1970, probe(900)), // before the first real frame: counted in the first window
      ...real.slice(0, 10).map((t, i) => pcapRecord(t, probe(i))),
      pcapRecord(YEAR_2106, probe(901)), // in the middle: counted in the window open then
      ...real.slice(10).map((t, i) => pcapRecord(t, probe(10 + i))),
      pcapRecord(EPOCH_1970, probe(902)), // at the end: in the last window
    ]),
  );

  it('counts them in the window open when they come, or the first one; no window in 1970 or 2106, no jump', async () => {
    const r = await replay(['--json', '--window', '1s', file]);
    expect(r.code, r.stderr).toBe(0);
    const w = lines(r.stdout);
    expect(w.map((x) => x.start)).toEqual(['2026-05-04T10:00:00.000Z', '2026-05-04T10:00:01.000Z', '2026-05-04T10:00:02.000Z', '2026-05-04T10:00:03.000Z']);
    expect(w.map((x) => x.wifi.frames)).toEqual([8 + 1, 10 + 1, 10, 2 + 1]);
    expect(r.stderr).not.toMatch(/jumps/);
    expect(r.stderr).toMatch(
      /3 frame\(s\) stamped outside 2000-2099: counted in the window open when they came \(or the first one\), the clock ignores their time/,
    );
  });

  it('--window all spans the frames on the clock', async () => {
    const r = await replay(['--json', '--window', 'all', file]);
    expect(r.code, r.stderr).toBe(0);
    const w = lines(r.stdout);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatchObject({ start: new Date(real[0]!).toISOString(), end: new Date(real.at(-1)!).toISOString(), wifi: { frames: 33 } });
  });

  it('a capture with no frame on the clock (a recorder whose clock was never set) is replayed on its own clock, and says that a gateway counts none of it', async () => {
    const all1970 = join(tmp, 'all1970.pcap');
    const n = 500;
    writeFileSync(
      all1970,
      Buffer.concat([pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP), ...Array.from({ length: n }, (_, i) => pcapRecord(EPOCH_1970 + i * 10, probe(i)))]),
    );
    const r = await replay(['--json', '--window', 'all', all1970]);
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual([expect.objectContaining({ start: new Date(EPOCH_1970).toISOString(), wifi: expect.objectContaining({ frames: n }) })]);
    expect(r.stderr).toMatch(
      new RegExp(
        `no frame of the capture is stamped in 2000-2099: windows follow the capture's own clock \\(a gateway counts none of its ${n} frame\\(s\\)\\)`,
      ),
    );
  });

  it('when the first MAX_HELD_OFF_CLOCK frames are all off the clock, the replay follows the capture clock of its own from the start', async () => {
    const late = join(tmp, 'late.pcap');
    const n = MAX_HELD_OFF_CLOCK + 100;
    writeFileSync(
      late,
      Buffer.concat([
        pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP),
        ...Array.from({ length: n }, (_, i) => pcapRecord(EPOCH_1970 + i, probe(i))),
        ...real.map((t, i) => pcapRecord(t, probe(i))),
      ]),
    );
    const l = await replay(['--json', '--window', 'all', late]);
    expect(l.code, l.stderr).toBe(0);
    expect(lines(l.stdout)).toEqual([
      expect.objectContaining({ start: new Date(EPOCH_1970).toISOString(), wifi: expect.objectContaining({ frames: n + real.length }) }),
    ]);
    expect(l.stderr).toMatch(new RegExp(`the first ${MAX_HELD_OFF_CLOCK} frames are stamped outside 2000-2099: windows follow the capture's own clock`));
  });

  it('a time no date can hold (a pcapng timestamp past 8.64e15 ms): counted beside the others, never an "Invalid time value"', async () => {
    const huge = (data: Uint8Array) => {
      const b = pcapngPacket(0, 0, data);
      b.writeUInt32LE(0x7fffffff, 12); // 2^63 us: 9.2e15 ms
      return b;
    };
    const head = pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }]);
    const mixed = join(tmp, 'huge-time.pcapng');
    writeFileSync(mixed, Buffer.concat([head, huge(probe(1)), pcapngPacket(0, real[0]!, probe(2))]));
    const r = await replay(['--json', '--window', 'all', mixed]);
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual([expect.objectContaining({ start: new Date(real[0]!).toISOString(), wifi: expect.objectContaining({ frames: 2 }) })]);
    const alone = join(tmp, 'huge-time-only.pcapng');
    writeFileSync(alone, Buffer.concat([head, huge(probe(1))]));
    const a = await replay(['--json', '--window', 'all', alone]);
    expect(a.code, a.stderr).toBe(0);
    expect(lines(a.stdout)).toEqual([expect.objectContaining({ start: null, wifi: expect.objectContaining({ frames: 0 }) })]);
    expect(a.stderr).toMatch(/no frame of the capture has a time a date can hold, with its window's start and end: its 1 frame\(s\) were not counted/);
    expect(a.stderr).not.toMatch(/Invalid time value/);
  });

  it('a frame an hour before the last time a date can hold, in 7-day windows (which would end past it), and a --window longer than 100 years: never an "Invalid time value"', async () => {
    const head = pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }]);
    const last = join(tmp, 'last-hour.pcapng');
    writeFileSync(last, Buffer.concat([head, pcapngPacket(0, 8.64e15 - 3_600_000, probe(1))]));
    const week = await replay(['--json', '--window', '7d', last]);
    expect(week.stderr).not.toMatch(/Invalid time value/);
    expect(week.code, week.stderr).toBe(0);
    expect(week.stderr).toMatch(/no frame of the capture has a time a date can hold, with its window's start and end: its 1 frame\(s\) were not counted/);
    // in 1-minute windows the same frame is counted: its window ends within the dates
    const minute = await replay(['--json', '--window', '60s', last]);
    expect(minute.code, minute.stderr).toBe(0);
    expect(lines(minute.stdout)).toEqual([expect.objectContaining({ wifi: expect.objectContaining({ frames: 1, devices: 1 }) })]);
    // a window longer than 100 years ended past every date; hundreds of digits were Infinity
    const capture = join(tmp, 'one-probe.pcap');
    writeFileSync(capture, Buffer.concat([pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP), pcapRecord(real[0]!, probe(1))]));
    const long = await replay(['--json', '--window', '1000000000d', capture]);
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(
      /^presence replay: --window: must be at most 36525d, 100 years \(got "1000000000d"\); "all" is one window over the whole capture\nhint: /,
    );
    const digits = await replay(['--json', '--window', `${'9'.repeat(400)}d`, capture]);
    expect(digits.code).toBe(2);
    expect(digits.stderr).toMatch(/^presence replay: --window: must be a duration .*: it is too long to be counted in milliseconds\nhint: /);
    const most = await replay(['--json', '--window', '36525d', capture]);
    expect(most.code, most.stderr).toBe(0);
    expect(lines(most.stdout)).toEqual([expect.objectContaining({ start: '1970-01-01T00:00:00.000Z', end: '2070-01-01T00:00:00.000Z' })]);
  });
});

describe('presence replay: a capture clock that goes back', () => {
  it('limit: a capture clock that goes back an hour keeps the open window, and its key, for the hour of frames after it', async () => {
    // Frames stamped earlier than the open window are counted in it however far back
    // (gateway/README.md): 30 s of 10 devices, then 40 minutes of 40 other devices stamped an hour
    // earlier, all in the one window open when they come. A window of the capture clock is not
    // bounded in capture time the way a wall-clock window is (test/gateway-wall-clock.test.ts).
    const t0 = Date.parse('2026-05-04T10:00:00.000Z');
    const records: Buffer[] = [pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP)];
    for (let s = 0; s < 30; s++) records.push(pcapRecord(t0 + s * 1000, probe(s % 10)));
    for (let m = 0; m < 40; m++) for (let s = 0; s < 60; s += 5) records.push(pcapRecord(t0 - 3_600_000 + m * 60_000 + s * 1000, probe(100 + m)));
    const path = join(tmp, 'back.pcap');
    writeFileSync(path, Buffer.concat(records));
    const r = await replay([path, '--json', '--window', '60s']);
    expect(r.code).toBe(0);
    const w = lines(r.stdout) as unknown as Array<{ start: string; end: string; wifi: { frames: number; devices: number } }>;
    expect(w.map((x) => [x.start, x.end])).toEqual([['2026-05-04T10:00:00.000Z', '2026-05-04T10:01:00.000Z']]);
    expect(w[0]!.wifi).toMatchObject({ frames: 30 + 40 * 12, devices: 50 });
  });
});
