// `presence calibrate` and `presence replay --calibration` as a user runs them: the capture form on
// the real lab captures with occupancy truth (../shared/captures/occupancy), the stored-series form
// against a real influxd, and bad input giving one line that names the file, the line and the fix.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer, request } from 'node:http';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capturesDir, need } from './support/need.ts';
import { Influxd } from './support/influxd.ts';
import { freePort } from './support/ports.ts';
import { mountSmallFs } from './support/small-fs.ts';
import { applyZone, pairCaptures, readCalibration, readOccupancy } from '../aggregator/calibration/index.ts';

const repo = join(import.meta.dirname, '..');
const captures = capturesDir('calibrate-cli');
const occ = captures && join(captures, 'occupancy');
// (the paths are built while the tests are collected, also when they are skipped for want of captures)
const occDir = occ ?? join(repo, '..', 'shared', 'captures', 'occupancy');
const DAYS = ['2022-10-18', '2022-10-25', '2022-11-01'];
const pcap = (d: string) => join(occDir, `sc6-61_${d}.pcap`);
const truth = (d: string) => join(occDir, `sc6-61_${d}_occupancy.csv`);
/** A lone iPhone (../shared/captures/wifi): every frame carries a stale FCS. */
const iphone = join(occDir, '..', 'wifi', 'iPhone11-B_anonymized.pcap');

const oneLine = (s: string) => s.replace(/\s+/g, ' ');

function presence(...args: string[]) {
  const r = spawnSync(process.execPath, [join(repo, 'scripts/presence.js'), ...args], { cwd: repo, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Whole 1-minute windows between the first and the last truth time. */
function wholeMinutes(csv: string): number {
  const o = readOccupancy(csv);
  const first = Math.ceil(o.times[0] / 60_000);
  const last = Math.floor(o.times[o.times.length - 1] / 60_000);
  return last - first;
}

describe.skipIf(!occ)('presence calibrate: capture form on real occupancy captures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-calibrate-'));
  const out = join(dir, 'lab.yaml');
  let run: ReturnType<typeof presence>;

  beforeAll(() => {
    run = presence('calibrate', ...DAYS.flatMap((d) => ['--capture', pcap(d), '--truth', truth(d)]), '--zone', 'lab', '--out', out, '--leave-one-out');
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the fit, its interval, the data used and leave-one-out scores, and writes the file', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^zone lab: people = [\d.]+ \* \(estimate [-+] [\d.]+\)/);
    expect(run.stdout).toMatch(/k [\d.]+ +\(90 % interval [\d.]+ \.\. [\d.]+\)/);
    expect(run.stdout).toMatch(/data: 3 session\(s\), \d+ windows \(\d+ occupied, \d+ empty\)/);
    // What the intervals of "reads as" are: their level, and that they hold one window's people (applyZone), not the line.
    expect(run.stdout).toMatch(
      /^ {2}reads as \(90 % prediction interval of the people in one window\): estimate \d+ -> [\d.]+ people \([\d.]+ \.\. [\d.]+\);/m,
    );
    expect(run.stdout).toContain('leave one session out');
    for (const d of DAYS) expect(run.stdout).toMatch(new RegExp(`^${d} +\\d+`, 'm'));
    expect(run.stdout).toMatch(/all \(pooled\) +\d+/);
    expect(run.stderr).toContain(`wrote ${out}`);
    const file = readCalibration(out);
    expect(file.estimator).toMatchObject({ field: 'estimate', radio: 'wifi', window_s: 60 });
    expect(file.estimator.firmware).toMatch(/^sha256:[0-9a-f]{64}$/);
    const z = file.zones.lab;
    expect(z.k.low).toBeLessThanOrEqual(z.k.value);
    expect(z.k.high).toBeGreaterThanOrEqual(z.k.value);
    expect(z.data).toMatchObject({ sessions: 3, session_ids: DAYS });
  });

  it("aggregator/README.md's leave-one-day-out figures over every capture of the folder are what --leave-one-out prints (without --rssi-min the README said 90 % of the held-out windows inside the interval for distinct addresses, 93 % now)", () => {
    const readme = oneLine(readFileSync(join(repo, 'aggregator/README.md'), 'utf8'));
    const all = readdirSync(occDir)
      .filter((f) => f.endsWith('.pcap'))
      .sort()
      .flatMap((f) => ['--capture', join(occDir, f), '--truth', join(occDir, f.replace(/\.pcap$/, '_occupancy.csv'))]);
    expect(all.length / 4).toBe(14);
    /** The pooled row: estimate MAE, empty people, r, in interval %, then the same for devices. */
    const pooled = (...flags: string[]) => {
      const r = presence('calibrate', '--zone', 'lab', '--leave-one-out', ...flags, ...all);
      expect(r.code, r.stderr).toBe(0);
      const row = r.stdout.split('\n').find((l) => l.startsWith('all (pooled)'))!;
      const n = row.replace('all (pooled)', '').replace(/%/g, '').trim().split(/\s+/).map(Number);
      return n.slice(3);
    };
    // The estimate's counts move a little from run to run (a fresh random key per window: 3.87 or
    // 3.88); the distinct addresses' do not. Each figure within what that moves it.
    const slack = [0.02, 0.02, 0.01, 1.5, 0.005, 0.005, 0.005, 0.5];
    const agree = (got: number[], want: number[], what: string) => {
      for (const [i, w] of want.entries())
        expect(Math.abs(got[i] - w), `${what}, figure ${i + 1}: printed ${got[i]}, README ${w}`).toBeLessThanOrEqual(slack[i]);
    };
    const gated = pooled('--rssi-min', '-70');
    const cell = (name: string) => new RegExp(`\\| ${name} \\| ([\\d.]+)[^|]*\\| ([\\d.]+)`).exec(readme)!.slice(1).map(Number);
    const table = [
      'MAE of calibrated people, occupied 1-minute windows',
      'calibrated people in empty-room windows',
      'Pearson r, uncalibrated, all windows',
      'held-out windows whose people lie inside the 90 % interval',
    ].map(cell);
    agree(gated, [...table.map((c) => c[0]), ...table.map((c) => c[1])], 'the table (--rssi-min -70)');
    const said =
      /Without `--rssi-min` \(all frames\) the same figures are ([\d.]+) \/ ([\d.]+) \/ ([\d.]+) \/ ([\d.]+) % against ([\d.]+) \/ ([\d.]+) \/ ([\d.]+) \/ ([\d.]+) %/.exec(
        readme,
      );
    expect(said, 'the sentence giving the figures without --rssi-min').not.toBeNull();
    agree(pooled(), said!.slice(1).map(Number), 'without --rssi-min');
  }, 300_000);

  it("aggregator/README.md's example on three lab days prints what the README shows, and its calibration file holds the numbers this fit writes", () => {
    // The estimate marks hashes under a fresh random key per window, so its counts (and the fit) vary
    // a little from run to run: each number must agree within 1 % + 0.05, the words exactly.
    const near = (got: number, want: number, what: string) =>
      expect(Math.abs(got - want), `${what}: ${got}, README ${want}`).toBeLessThanOrEqual(0.01 * Math.abs(want) + 0.05);
    const numbers = (text: string) => [...text.matchAll(/-?\d+(?:\.\d+)?/g)].map((m) => Number(m[0]));
    const words = (text: string) => text.replace(/-?\d+(?:\.\d+)?/g, '#');
    const readme = readFileSync(join(repo, 'aggregator/README.md'), 'utf8');
    const example = ['2022-11-08', '2023-02-07', '2023-03-07'].flatMap((d) => ['--capture', pcap(d), '--truth', truth(d)]);
    const shown = readme.split('### Example on a real occupancy capture')[1].split('```\n')[2].split('\n').slice(0, 7).join('\n').trim();
    const r = presence('calibrate', '--zone', 'lab', '--rssi-min', '-70', '--out', join(dir, 'readme.yaml'), ...example);
    expect(r.code, r.stderr).toBe(0);
    expect(words(r.stdout.trim())).toBe(words(shown));
    const got = numbers(r.stdout.trim());
    const wantNumbers = numbers(shown);
    // The estimate's largest window is a whole number that one hash collision under a window's key
    // moves by one (seen: 15 instead of 16 in about one run of ten), and the last "reads as" probe is
    // that maximum: it may differ by one, and then its people must be the printed line at that estimate.
    const dataLine = shown.split('\n').findIndex((l) => l.trim().startsWith('data:'));
    const before = (line: number) => numbers(shown.split('\n').slice(0, line).join('\n')).length;
    const maxAt = before(dataLine) + 8; // sessions, windows, occupied, empty, people min, max, mean, estimate min, estimate max
    const probeAt = wantNumbers.length - 4; // the last probe: estimate -> people (low .. high)
    expect(Math.abs(got[maxAt] - wantNumbers[maxAt]), `the estimate's maximum: ${got[maxAt]}, README ${wantNumbers[maxAt]}`).toBeLessThanOrEqual(1);
    expect(got[probeAt], 'the last probe reads the estimate at its maximum').toBe(got[maxAt]);
    const [k, b] = [got[0], got[1]];
    for (const [i, want] of wantNumbers.entries()) {
      if (i === maxAt) continue;
      if (got[maxAt] !== wantNumbers[maxAt] && i >= probeAt) {
        if (i === probeAt + 1) near(got[i], Math.round(10 * k * (got[maxAt] - b)) / 10, 'the people read at the maximum, on the printed line');
        if (i === probeAt + 2) expect(got[i], 'its interval starts below it').toBeLessThan(got[probeAt + 1]);
        if (i === probeAt + 3) expect(got[i], 'its interval ends above it').toBeGreaterThan(got[probeAt + 1]);
        continue;
      }
      near(got[i], want, `number ${i + 1} of the printed fit`);
    }
    // and the replay of a fourth day with it: its first window's people as the README shows them
    // (the README's 2.52 stayed when the interval changed; the replay gave 2.55)
    const replayed = readme.split('### Example on a real occupancy capture')[1].split('```\n')[4].trim().split('\n')[0];
    const want = JSON.parse(/"people":(\{[^}]*\})/.exec(replayed)![1]) as { value: number; low: number; high: number };
    const rp = presence('replay', pcap('2023-03-14'), '--rssi-min', '-70', '--calibration', join(dir, 'readme.yaml'), '--zone', 'lab', '--json');
    expect(rp.code, rp.stderr).toBe(0);
    const first = JSON.parse(rp.stdout.split('\n')[0]) as { start: string; ble: unknown; people: { value: number; low: number; high: number } };
    // the line as the README shows it, its shortened ble counts and its people aside: every field
    // (the README's "complete": true stayed when replay began to mark the window the capture began in)
    const { people: _readmePeople, ...readmeRest } = JSON.parse(replayed.replace('"ble":{...}', '"ble":null')) as Record<string, unknown>;
    const { people: _people, ...rest } = first;
    expect({ ...rest, ble: null }).toEqual(readmeRest);
    // (closer than the fit's 1 %: the windows of these days count exactly, so the people of a window
    // move only as far as the fit does, which agreed with the README to its last digit)
    for (const k of ['value', 'low', 'high'] as const)
      expect(Math.abs(first.people[k] - want[k]), `people.${k} of the replay's first window: ${first.people[k]}, README ${want[k]}`).toBeLessThanOrEqual(0.02);
    // the file of the same fit at --burst-addresses 2.8, as the README's "The calibration file" says
    const block = readme.split('### The calibration file')[1].split('```yaml\n')[1].split('```')[0];
    const r28 = presence('calibrate', '--zone', 'lab', '--rssi-min', '-70', '--burst-addresses', '2.8', '--out', join(dir, 'readme28.yaml'), ...example);
    expect(r28.code, r28.stderr).toBe(0);
    const z = readCalibration(join(dir, 'readme28.yaml')).zones.lab;
    const num = (key: string) => Number(new RegExp(`${key}[:, ]+(-?[\\d.]+)`).exec(block)![1]);
    near(z.k.value, num('k: \\{ value'), 'k');
    near(z.b.value, num('b: \\{ value'), 'b');
    near(z.corr_kb, num('corr_kb'), 'corr_kb');
    near(z.residual_sd, num('residual_sd'), 'residual_sd');
    near(z.quality?.r ?? NaN, num('quality: \\{ r'), 'r');
    near(z.quality?.mae ?? NaN, num('mae'), 'mae');
    const data = z.data as { windows: number; occupied_windows: number; empty_windows: number };
    expect(block).toContain(`windows: ${data.windows}, occupied_windows: ${data.occupied_windows}, empty_windows: ${data.empty_windows}`);
  });

  /** --capture and --truth of one day. */
  const day = (d: string) => ['--capture', pcap(d), '--truth', truth(d)];
  /** The lines of stderr that are not warnings. */
  const errorLines = (stderr: string) =>
    stderr
      .trim()
      .split('\n')
      .filter((l) => !l.includes(': warning: '));

  it('a zone counted with other settings is not added to a file (its estimator would then be wrong for one of them)', () => {
    const mixed = join(dir, 'mixed.yaml');
    const first = presence('calibrate', ...day(DAYS[0]), ...day(DAYS[1]), '--zone', 'lab', '--rssi-min', '-70', '--out', mixed);
    expect(first.code, first.stderr).toBe(0);
    const before = readFileSync(mixed, 'utf8');
    const r = presence('calibrate', ...day(DAYS[0]), ...day(DAYS[1]), '--zone', 'lab-b', '--out', mixed);
    expect(r.code).toBe(2);
    const lines = errorLines(r.stderr);
    expect(lines).toEqual([
      `presence calibrate: --out ${mixed}: holds a calibration of wifi estimate in 60 s windows (frames of -70 dBm and stronger, 7 burst addresses) at level 0.9, this one is of wifi estimate in 60 s windows (all frames, 7 burst addresses) at level 0.9; fix: write to another --out file`,
    ]);
    expect(readFileSync(mixed, 'utf8')).toBe(before);
    // The same settings are added.
    const same = presence('calibrate', ...day(DAYS[0]), ...day(DAYS[1]), '--zone', 'lab-b', '--rssi-min', '-70', '--out', mixed);
    expect(same.code, same.stderr).toBe(0);
    expect(Object.keys(readCalibration(mixed).zones).sort()).toEqual(['lab', 'lab-b']);
  });

  it('a zone of another site is not written over a zone of the same name in the file (a file holds one calibration per zone name)', () => {
    const sites = join(dir, 'sites.yaml');
    const first = presence('calibrate', ...day(DAYS[0]), ...day(DAYS[1]), '--zone', 'lab', '--site', 'site-a', '--out', sites);
    expect(first.code, first.stderr).toBe(0);
    const before = readFileSync(sites, 'utf8');
    const r = presence('calibrate', ...day(DAYS[0]), ...day(DAYS[1]), '--zone', 'lab', '--site', 'site-b', '--out', sites);
    expect(r.code).toBe(2);
    const lines = errorLines(r.stderr);
    expect(lines).toEqual([
      `presence calibrate: --out ${sites}: holds zone lab of site site-a, this one is of site site-b (a file holds one calibration per zone name); fix: write to another --out file`,
    ]);
    expect(readFileSync(sites, 'utf8')).toBe(before);
    // The same site is refitted in place.
    const again = presence('calibrate', ...day(DAYS[0]), ...day(DAYS[1]), '--zone', 'lab', '--site', 'site-a', '--out', sites);
    expect(again.code, again.stderr).toBe(0);
    expect(readCalibration(sites).zones.lab.site).toBe('site-a');
  });

  it('presence replay --calibration of a radio the capture never heard says so (its people read an empty radio)', () => {
    const ble = join(dir, 'ble.yaml');
    writeFileSync(
      ble,
      `format: presence-calibration/1
estimator: { field: estimate, radio: ble, window_s: 60 }
level: 0.9
zones:
  lab:
    k: { value: 1.2, low: 1.1, high: 1.3, sd: 0.05 }
    b: { value: 1, low: 0.5, high: 1.5, sd: 0.3 }
    corr_kb: 0.2
    residual_sd: 1.5
`,
    );
    const r = presence('replay', pcap(DAYS[0]), '--calibration', ble, '--zone', 'lab', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').length).toBeGreaterThan(100);
    expect(r.stderr).toContain(
      `presence replay: note: the capture holds no ble frames, and ${ble} maps ble counts to people: every people value above reads a radio that heard nothing, not the people there; fix: use a calibration of the wifi counts`,
    );
    // A calibration of the radio it holds: no such note.
    const wifi = presence('replay', pcap(DAYS[0]), '--calibration', out, '--zone', 'lab', '--json');
    expect(wifi.code, wifi.stderr).toBe(0);
    expect(wifi.stderr).not.toContain('holds no');
  });

  it('a b held at 0 is printed as held, not as a fitted b with an interval of 0 .. 0', () => {
    // One lab day: its data cannot tell k from b, so the fit holds b at 0 and warns.
    const r = presence('calibrate', '--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--zone', 'lab', '--out', join(dir, 'held.yaml'));
    expect(r.code, r.stderr).toBe(0);
    expect(readCalibration(join(dir, 'held.yaml')).zones.lab.b).toEqual({ value: 0, low: 0, high: 0, sd: 0 });
    expect(r.stdout).toMatch(/^ {2}b 0 {2}\(held at 0, not fitted: the line goes through zero; see the warning\)/m);
    expect(r.stdout).not.toMatch(/interval 0\.00 \.\. 0\.00/);
    expect(r.stderr).toMatch(/warning: zone lab: .*b is 0 and the line goes through zero/);
  });

  it('pairs exactly the whole 1-minute windows between the first and last truth time of each capture', () => {
    const z = readCalibration(out).zones.lab;
    expect((z.data as { windows: number }).windows).toBe(DAYS.reduce((n, d) => n + wholeMinutes(truth(d)), 0));
  });

  it('a capture cut short (its recorder stopped mid-frame) is one line naming the file, the offset and how to keep the frames before', () => {
    const cut = join(dir, 'cut.pcap');
    writeFileSync(cut, readFileSync(pcap(DAYS[0])).subarray(0, 300_000));
    const r = presence('calibrate', '--capture', cut, '--truth', truth(DAYS[0]), '--zone', 'lab', '--json');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `presence calibrate: ${cut}: input ends inside a record (120 of its bytes present) (at byte offset 299880); fix: the capture was cut short (its recorder stopped in the middle of a frame): copy its frames before that into a new file with editcap ${cut} OUT.pcapng and pass OUT.pcapng to --capture, with the truth rows up to its last frame\n`,
    );
  });

  it('a --capture that is no capture (the truth CSV), empty, damaged before its first frame or of another link type: one line with the fix, exit 2', () => {
    const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // They ended with exit 1 and no fix (aggregator/README.md: bad input is one line with the fix, exit 2).
    const empty = join(dir, 'empty.pcap');
    writeFileSync(empty, '');
    const header = Buffer.alloc(24);
    header.writeUInt32LE(0xa1b2c3d4, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeUInt32LE(65535, 16);
    const ethernet = join(dir, 'ethernet.pcap');
    header.writeUInt32LE(1, 20);
    writeFileSync(ethernet, Buffer.concat([header, Buffer.from([0x00, 0x4e, 0x53, 0x65, 0, 0, 0, 0, 20, 0, 0, 0, 20, 0, 0, 0]), Buffer.alloc(20)]));
    const version = join(dir, 'version-9.pcap');
    header.writeUInt16LE(9, 4);
    header.writeUInt32LE(127, 20);
    writeFileSync(version, header);
    for (const [capture, problem, fix] of [
      [truth(DAYS[0]), 'not a pcap or pcapng capture', 'give --capture the pcap or pcapng file of the session (its time;occupancy CSV goes to --truth)'],
      [empty, 'empty input', 'give --capture the capture of the session the --truth file counted (this file is empty)'],
      [
        version,
        'unsupported pcap version',
        `no frame comes before the damage: give --capture another copy of the capture (capinfos ${version} says whether a copy can be read)`,
      ],
      [ethernet, 'link type 1 (ETHERNET) is not supported', 'give --capture a capture of probe requests or BLE advertisements in one of those link types'],
    ]) {
      const r = presence('calibrate', '--capture', capture, '--truth', truth(DAYS[0]), '--zone', 'lab', '--json');
      expect(r.stdout).toBe('');
      expect(r.stderr.split('\n'), r.stderr).toHaveLength(2);
      expect(r.stderr).toMatch(new RegExp(`^presence calibrate: ${escapeRe(capture)}: ${escapeRe(problem)}.*; fix: ${escapeRe(fix)}`));
      expect(r.code, r.stderr).toBe(2);
    }
  });

  it('a second zone is added to the file, which then holds the prior both imply; --prior shrinks toward it', () => {
    const multi = join(dir, 'multi.yaml');
    const days = (ds: string[]) => ds.flatMap((d) => ['--capture', pcap(d), '--truth', truth(d)]);
    expect(presence('calibrate', ...days(DAYS), '--zone', 'lab', '--out', multi).code).toBe(0);
    const second = presence('calibrate', ...days(['2022-11-08', '2022-11-15', '2022-11-22']), '--zone', 'lab-b', '--out', multi);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('kept its other zones: lab');
    const file = readCalibration(multi);
    expect(Object.keys(file.zones).sort()).toEqual(['lab', 'lab-b']);
    expect(file.global).not.toBeNull();
    // One short day of a new zone leans on that prior.
    const third = presence('calibrate', ...days(['2022-11-01']), '--zone', 'lab-c', '--prior', multi, '--json');
    expect(third.code, third.stderr).toBe(0);
    const fit = JSON.parse(third.stdout).fit;
    expect(fit.shrinkage.k).toBeLessThan(1);
    expect(third.stderr).toMatch(/one session only/);
  });

  it('a zone named constructor (an id, and a key every object inherits) takes its prior from another zone and is kept in the file', () => {
    const file = join(dir, 'constructor.yaml');
    const day = ['--capture', pcap('2022-11-01'), '--truth', truth('2022-11-01')];
    expect(readCalibration(out).global ?? null).toBeNull(); // one zone: its own is the prior
    const first = presence('calibrate', ...day, '--zone', 'constructor', '--prior', out, '--out', file);
    expect(first.code, first.stderr).toBe(0);
    // A zone's own sd is no spread between zones: the fit says what such a prior does.
    expect(first.stderr).toContain(
      `presence calibrate: note: --prior ${out} holds no global prior (that takes two or more zones with fitted k and b), so its zone lab is the prior: its own sd stands for how much zones differ, which one zone cannot tell, so the pull toward it is as strong as if the zones were alike`,
    );
    expect(first.stdout).toMatch(/^zone constructor: people = /);
    const second = presence('calibrate', ...day, '--zone', 'lab', '--out', file);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('kept its other zones: constructor');
    expect(Object.keys(readCalibration(file).zones).sort()).toEqual(['constructor', 'lab']);
  });

  it('two sniffers in the room on one day are one session (unless --session-by capture)', async () => {
    const both = ['', '_pos2'].map((p) => ({ capture: join(occ!, `sc6-61_2024-02-15${p}.pcap`), truth: join(occ!, `sc6-61_2024-02-15${p}_occupancy.csv`) }));
    expect([...new Set((await pairCaptures(both)).map((s) => s.session))]).toEqual(['2024-02-15']);
    expect([...new Set((await pairCaptures(both, { sessionBy: 'capture' })).map((s) => s.session))]).toEqual(['sc6-61_2024-02-15', 'sc6-61_2024-02-15_pos2']);
  });

  it.each([
    [
      'in a folder that does not exist',
      () => join(dir, 'no-such-folder', 'lab.yaml'),
      /: its folder does not exist; fix: choose a path in a folder that exists/,
    ],
    [
      'under a file, as if it were a folder (it was said to be a folder that does not exist)',
      () => {
        const file = join(dir, 'plain-file.yaml');
        writeFileSync(file, 'x\n');
        return join(file, 'lab.yaml');
      },
      /--out .*plain-file\.yaml\/lab\.yaml: .*plain-file\.yaml is a file, not a folder; fix: choose a path in a folder that exists/,
    ],
    [
      'under a file two levels up',
      () => {
        const file = join(dir, 'plain-file-2.yaml');
        writeFileSync(file, 'x\n');
        return join(file, 'sub', 'lab.yaml');
      },
      /--out .*: a part of .*plain-file-2\.yaml\/sub is a file, not a folder; fix: choose a path in a folder that exists/,
    ],
    [
      'onto a file that is not a calibration',
      () => {
        const other = join(dir, 'notes.txt');
        writeFileSync(other, 'my notes\n');
        return other;
      },
      /^presence calibrate: --out .*notes\.txt: not a calibration file .*; fix: give --out a calibration file to add the zone to, or a new file$/,
    ],
  ])('--out %s: one line naming it and the fix, before anything is counted or fitted, nothing written', (_name, path, message) => {
    const target = path();
    const before = existsSync(target) ? readFileSync(target, 'utf8') : null;
    const r = presence('calibrate', '--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--zone', 'lab', '--out', target);
    expect(r.code).toBe(2);
    // Refused before the capture was counted: no fit printed, none of its warnings (it fitted, printed,
    // then refused the --out it had been given at the start).
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(existsSync(target) ? readFileSync(target, 'utf8') : null).toBe(before);
  });

  it('--out in a folder on a read-only file system: one line naming it and the fix before anything is counted or fitted (it failed only when the file was written, after the fit)', () => {
    const at = join(dir, 'read-only');
    mkdirSync(at);
    if (!mountSmallFs('calibrate-cli', at, 'size=64k,ro')) return;
    try {
      const r = presence('calibrate', '--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--zone', 'lab', '--out', join(at, 'lab.yaml'));
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      const lines = errorLines(r.stderr);
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^presence calibrate: --out .*read-only\/lab\.yaml: .*read-only is on a read-only file system; choose a path on a writable one$/,
      );
      expect(readdirSync(at)).toEqual([]);
    } finally {
      execFileSync('umount', [at]);
    }
  });

  it('presence replay --calibration adds people with an interval to each window', () => {
    const r = presence('replay', pcap(DAYS[0]), '--calibration', out, '--zone', 'lab', '--json');
    expect(r.code, r.stderr).toBe(0);
    const zone = readCalibration(out).zones.lab;
    const windows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(windows.length).toBeGreaterThan(200);
    for (const w of windows) {
      expect(w.people).toEqual(applyZone(zone, w.wifi.estimate, 0.9));
      expect(w.people.low).toBeGreaterThanOrEqual(0);
      expect(w.people.low).toBeLessThanOrEqual(w.people.value);
      expect(w.people.high).toBeGreaterThanOrEqual(w.people.value);
    }
    const plain = presence('replay', pcap(DAYS[0]), '--json');
    expect(plain.stdout).not.toContain('people');
    const wrong = presence('replay', pcap(DAYS[0]), '--calibration', out, '--zone', 'hall', '--json');
    expect(wrong.code).toBe(2); // a usage mistake: one line, one hint, exit 2
    expect(wrong.stderr.trim().split('\n')).toEqual([
      `presence replay: zone hall is not in ${out} (zones there: lab); fix: pass one of them to --zone, or calibrate this zone`,
      'hint: presence replay --help lists the options',
    ]);
  });

  it.each([
    ['k made negative', (t: string) => t.replace(/(\n {4}k:\n {6}value: )/, '$1-'), /^ {6}value: -/, 'zones.lab.k.value: must be above 0'],
    [
      'an interval with low above high',
      (t: string) => t.replace(/(\n {4}k:\n {6}value: \S+\n {6}low: )\S+/, '$19'),
      /^ {4}k:$/,
      'zones.lab.k: low <= value <= high does not hold',
    ],
    [
      'an unknown key in a zone',
      (t: string) => t.replace('\n  lab:\n', '\n  lab:\n    people_max: 30\n'),
      /^ {4}people_max:/,
      'zones.lab: unknown key "people_max"',
    ],
    ['a zone given twice', (t: string) => `${t}${t.slice(t.indexOf('\n  lab:\n') + 1)}`, /^ {2}lab:$/, 'not valid YAML: Map keys must be unique'],
  ])(
    'a calibration file hand-edited with %s: replay and the aggregator give one line naming the file and its line, and the same fix',
    (_name, edit, at, problem) => {
      const bad = join(dir, 'hand-edited.yaml');
      const text = edit(readFileSync(out, 'utf8'));
      writeFileSync(bad, text);
      const lines = text.split('\n');
      // the line of the problem: the last one matching (the second `lab:` of a zone given twice)
      const line = lines.map((l, i) => (new RegExp(at.source).test(l) ? i + 1 : 0)).reduce((a, b) => Math.max(a, b));
      const where = new RegExp(`^--calibration ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}(:\\d+)?: `);
      const hint = 'hint: give the file presence calibrate wrote (aggregator/README.md, "Calibration: people from counts")';
      const replay = presence('replay', pcap(DAYS[0]), '--calibration', bad, '--zone', 'lab', '--json');
      const agg = presence('aggregator', '--calibration', bad, '--mqtt-url', 'mqtt://127.0.0.1:1', '--out', join(dir, 'never.lp'));
      for (const [r, command] of [
        [replay, 'replay'],
        [agg, 'aggregator'],
      ] as const) {
        expect(r.code, r.stderr).toBe(2);
        expect(r.stdout).toBe('');
        const [first, second, ...rest] = r.stderr.trim().split('\n');
        expect(first.slice(`presence ${command}: `.length)).toMatch(where);
        expect(first).toContain(problem);
        // (replay's said to read its --help)
        expect(second).toBe(hint);
        expect(rest).toEqual([]);
      }
    },
  );

  it('--burst-addresses is recorded in the file, and replay refuses a calibration counted with another divisor', () => {
    const burst = join(dir, 'burst.yaml');
    const c = presence('calibrate', '--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--zone', 'lab', '--out', burst, '--burst-addresses', '2.8');
    expect(c.code, c.stderr).toBe(0);
    expect(readCalibration(burst).estimator.burst_addresses).toBe(2.8);
    expect(readCalibration(out).estimator.burst_addresses).toBeUndefined(); // the default, 7
    const other = presence('replay', pcap(DAYS[0]), '--calibration', burst, '--zone', 'lab', '--json');
    expect(other.code).toBe(2);
    expect(other.stderr.trim().split('\n')[0]).toBe(
      `presence replay: ${burst} was fitted on Wi-Fi estimates counted with 2.8 burst addresses; fix: replay with --burst-addresses 2.8 (another divisor gives other estimates)`,
    );
    expect(presence('replay', pcap(DAYS[0]), '--calibration', out, '--zone', 'lab', '--burst-addresses', '2.8', '--json').code).toBe(2);
    const same = presence('replay', pcap(DAYS[0]), '--calibration', burst, '--zone', 'lab', '--burst-addresses', '2.8', '--json');
    expect(same.code, same.stderr).toBe(0);
    const zone = readCalibration(burst).zones.lab;
    for (const line of same.stdout.trim().split('\n')) {
      const w = JSON.parse(line);
      expect(w.people).toEqual(applyZone(zone, w.wifi.estimate, 0.9));
    }
    const stored = presence(
      'calibrate',
      '--influx-url',
      'http://127.0.0.1:1',
      '--site',
      's',
      '--zone',
      'lab',
      '--truth',
      truth(DAYS[0]),
      '--out',
      burst,
      '--burst-addresses',
      '2.8',
    );
    expect(stored.code).toBe(2);
    expect(stored.stderr).toContain('--burst-addresses goes with --capture');
  });

  /** The first day's capture with its truth, the occupancy on line 5 replaced by `value`, written as `name`. */
  const withRow5 = (name: string, value: string) => {
    const bad = join(dir, name);
    const rows = readFileSync(truth(DAYS[0]), 'utf8').split('\n');
    rows[4] = rows[4].replace(/;\d+$/, `;${value}`);
    writeFileSync(bad, rows.join('\n'));
    return ['--capture', pcap(DAYS[0]), '--truth', bad];
  };

  it.each([
    [
      'the truth of another day (times outside the capture)',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[1])],
      new RegExp(
        `^presence calibrate: ${truth(DAYS[1]).replace(/[.]/g, '\\.')}:2: time 2022-10-25T08:58:51\\.533Z is outside the capture .*; fix: pair each --capture with its own --truth file`,
      ),
    ],
    [
      'a bad row',
      () => withRow5('bad.csv', 'five'),
      /^presence calibrate: .*bad\.csv:5: occupancy "five" is not a number of people; fix: write a number of people >= 0, like 3$/,
    ],
    [
      'one truth short',
      () => ['--capture', pcap(DAYS[0]), '--capture', pcap(DAYS[1]), '--truth', truth(DAYS[0])],
      /give one --truth per --capture, in the same order \(got 2 capture\(s\), 1 truth file\(s\)\)/,
    ],
    [
      'a folder as the capture',
      () => ['--capture', dir, '--truth', truth(DAYS[0])],
      new RegExp(`^presence calibrate: ${dir.replace(/[.]/g, '\\.')}: is a folder, not a file \\(--capture\\); fix: give a pcap or pcapng file$`),
    ],
    [
      'a count of people too large to be one',
      () => withRow5('huge.csv', '99999999999999999999999'),
      /^presence calibrate: .*huge\.csv:5: occupancy 99999999999999999999999 is more people than a zone holds \(at most 1000000\); fix: /,
    ],
    [
      'the BLE counts of a capture without BLE frames',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--radio', 'ble'],
      new RegExp(
        `^presence calibrate: ${pcap(DAYS[0]).replace(/[.]/g, '\\.')}: holds no ble frames \\(only wifi\\); fix: calibrate its wifi counts with --radio wifi`,
      ),
    ],
    [
      // (the fit failed on the data: 'the estimate does not rise with people (it changes by 0.000 per person)', no file, no fix)
      'a frame gate above every frame (all frames weak)',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--rssi-min', '-20'],
      new RegExp(
        `^presence calibrate: ${pcap(DAYS[0]).replace(/[.]/g, '\\.')}: none of its \\d+ wifi frames is counted: \\d+ are weaker than --rssi-min -20 dBm; fix: lower --rssi-min \\(to the gateway's rssi_min_dbm\\) or leave it out`,
      ),
    ],
    [
      'a capture whose every frame fails the FCS check (a stale FCS: the iPhone capture)',
      () => {
        const day = join(dir, 'iphone_occupancy.csv');
        writeFileSync(day, 'time;occupancy\n2023-10-12T21:50:00Z;1\n2023-10-12T22:10:00Z;2\n2023-10-12T22:40:00Z;2\n');
        return ['--capture', iphone, '--truth', day];
      },
      /^presence calibrate: .*iPhone11-B_anonymized\.pcap: none of its 782 wifi frames is counted: all fail the FCS\/CRC check or are malformed; fix: .*pass --ignore-fcs$/,
    ],
    [
      'a prior fitted on another count (devices)',
      () => {
        const devices = join(dir, 'devices.yaml');
        const r = presence(
          'calibrate',
          ...DAYS.flatMap((d) => ['--capture', pcap(d), '--truth', truth(d)]),
          '--zone',
          'lab',
          '--field',
          'devices',
          '--out',
          devices,
        );
        expect(r.code, r.stderr).toBe(0);
        return ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--prior', devices];
      },
      /^presence calibrate: --prior .*devices\.yaml: holds a calibration of wifi devices in 60 s windows, this fit is of wifi estimate in 60 s windows; fix: give --prior a file fitted on the same counts$/,
    ],
    [
      'a prior fitted on all frames for a fit at --rssi-min -70 (its k and b are of other counts)',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--rssi-min', '-70', '--prior', out],
      /^presence calibrate: --prior .*lab\.yaml: holds a calibration of wifi estimate in 60 s windows \(all frames, 7 burst addresses\), this fit is of wifi estimate in 60 s windows \(frames of -70 dBm and stronger, 7 burst addresses\); fix: give --prior a file fitted with the same --rssi-min and --burst-addresses \(or, if that file was fitted on stored counts with --influx-url by an earlier presence calibrate, add `counted_by: gateways` under its `estimator:`\)$/,
    ],
    [
      'a window shorter than a second (1ms made millions of empty windows)',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--window', '500ms'],
      /^presence calibrate: --window: must be whole seconds from 1s to 24h, like 60s, as the gateways count \(got "500ms"\)$/,
    ],
    [
      'a billion bootstrap replicates (out of memory)',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--replicates', '1e9'],
      /^presence calibrate: --replicates: must be a whole number from 50 to 100000 \(got "1e9"\)$/,
    ],
    [
      'a zone no gateway can publish (upper case: people would never be written for it)',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--zone', 'Lab'],
      /^presence calibrate: --zone "Lab": not a zone id \(lower case letters, digits, - and _, at most 63, as in the gateways' config\)$/,
    ],
    [
      'the same capture twice (its windows would count twice)',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--capture', `${occDir}/./sc6-61_${DAYS[0]}.pcap`, '--truth', truth(DAYS[0])],
      /^presence calibrate: .*sc6-61_2022-10-18\.pcap: given twice as --capture \(also as .*\); fix: give each capture once$/,
    ],
    [
      'a copy of a capture beside it (the same bytes under another name: its windows would count twice, as two sessions with --session-by capture)',
      () => {
        const copy = join(dir, 'copy-of-one-day.pcap');
        copyFileSync(pcap(DAYS[0]), copy);
        return ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--capture', copy, '--truth', truth(DAYS[0]), '--session-by', 'capture'];
      },
      /^presence calibrate: .*copy-of-one-day\.pcap: holds the same bytes as .*sc6-61_2022-10-18\.pcap, also given as --capture \(a copy or a link of one capture would count its windows twice\); fix: give each capture once$/,
    ],
    [
      'a prior that is not a calibration file',
      () => ['--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--prior', truth(DAYS[0])],
      /^presence calibrate: --prior .*_occupancy\.csv: not a calibration file .*; fix: give --prior a calibration file written by presence calibrate$/,
    ],
  ])('bad input: %s gives one line naming file, line and fix', (_name, args, message) => {
    const r = presence('calibrate', '--zone', 'lab', ...args(), '--out', join(dir, 'never.yaml'));
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    // bad data: one line; a mistake in the call (one truth short): that line and a hint line
    expect(lines.length === 1 || (lines.length === 2 && lines[1].startsWith('hint: '))).toBe(true);
    expect(lines[0]).toMatch(message);
  });
});

const hasInflux = need('influxd', 'influxdb', 'calibrate-cli (stored series)');

describe.skipIf(!hasInflux)('presence calibrate: stored-series form against a real influxd', () => {
  const influx = new Influxd('presence');
  const dir = mkdtempSync(join(tmpdir(), 'presence-calibrate-stored-'));
  const t0 = Date.parse('2026-05-04T08:00:00Z');
  // Three days, two gateways in zone "hall" (the zone's count is the larger), one in zone "gate".
  // estimate = 5 + 2 * people (+ a wobble), so k = 0.5, b = 5.
  const people = (day: number, i: number) => Math.round(20 + 18 * Math.sin(i / 20 + day));
  const counts: string[] = ['time;people'];

  beforeAll(async () => {
    await influx.start();
    const lines: string[] = [];
    for (let day = 0; day < 3; day++) {
      for (let i = 0; i < 120; i++) {
        const t = t0 + day * 86_400_000 + i * 60_000;
        const p = people(day, i);
        const e = 5 + 2 * p + (Math.floor(i / 10) % 5) - 2;
        lines.push(`presence,gateway=gw-1,radio=wifi,site=station,zone=hall devices=${e * 3}i,estimate=${e}i,frames=100i,complete=T ${t}`);
        lines.push(`presence,gateway=gw-2,radio=wifi,site=station,zone=hall devices=${e}i,estimate=${Math.max(0, e - 3)}i,frames=100i,complete=T ${t}`);
        lines.push(`presence,gateway=gw-3,radio=wifi,site=station,zone=gate devices=3i,estimate=3i,frames=10i,complete=T ${t}`);
        if (i % 10 === 5) counts.push(`${new Date(t + 20_000).toISOString()};${p}`);
      }
    }
    const res = await fetch(`${influx.url}/write?db=presence&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    writeFileSync(join(dir, 'counts.csv'), counts.join('\n') + '\n');
  }, 60_000);
  afterAll(async () => {
    await influx.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The stored-series form on site station with this truth file and --out. */
  const storedWith = (truthFile: string, out: string, ...extra: string[]) =>
    presence('calibrate', '--influx-url', influx.url, '--influx-db', 'presence', '--site', 'station', '--truth', truthFile, '--out', out, ...extra);
  const stored = (...extra: string[]) => storedWith(join(dir, 'counts.csv'), join(dir, 'cal.yaml'), ...extra);
  /** The capture form on one lab day, zone lab, with a prior (and the rest of the flags). */
  const labDayWithPrior = (prior: string, ...extra: string[]) =>
    presence('calibrate', '--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--zone', 'lab', ...extra, '--prior', prior, '--json');

  it('reads the zone series with InfluxQL, pairs each count with its window and fits', () => {
    const r = stored('--zone', 'hall');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/data: 3 session\(s\), 36 windows/);
    const file = readCalibration(join(dir, 'cal.yaml'));
    // The gateways counted these windows: the file names no firmware build of this machine, and
    // says it does not know their frame gate and burst divisor.
    expect(file.estimator.firmware).toBeUndefined();
    expect(file.estimator.counted_by).toBe('gateways');
    expect(file.estimator.rssi_min_dbm).toBeUndefined();
    const z = file.zones.hall;
    expect(z.site).toBe('station');
    expect(z.k.value).toBeGreaterThan(0.47);
    expect(z.k.value).toBeLessThan(0.53);
    expect(z.b.value).toBeGreaterThan(3.5);
    expect(z.b.value).toBeLessThan(6.5);
  });

  it('a --window longer than the stored windows is refused (their max would be fitted as one window)', () => {
    const r = stored('--zone', 'hall', '--window', '120s');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(
      /^presence calibrate: gateway gw-[12] of zone hall stored several windows in \d+ of its \d+ windows of --window 120s: its windows are shorter; fix: give --window the gateways' window length \(gateway\.window\)$/,
    );
  });

  it.each([
    [['--rssi-min', '-70'], '--rssi-min goes with --capture: stored counts were counted by the gateway with its own rssi_min_dbm'],
    [['--ignore-fcs'], '--ignore-fcs goes with --capture: stored counts were counted by the gateway with its own setting'],
    [['--session-by', 'capture'], '--session-by capture goes with --capture: with stored counts a session is the UTC day of the count'],
  ])('%s is refused with stored counts (it was ignored, and the file said nothing of it)', (extra, message) => {
    const r = stored('--zone', 'hall', ...extra);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(`presence calibrate: ${message}`);
  });

  it.skipIf(!occ)('presence replay with it does not claim it was fitted on all frames: a note says the gateways settings apply', () => {
    // (runs after the test above wrote cal.yaml)
    const r = presence('replay', pcap(DAYS[0]), '--rssi-min', '-70', '--calibration', join(dir, 'cal.yaml'), '--zone', 'hall', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.split('\n')[0]).people).toBeDefined();
    expect(r.stderr).toContain(
      `presence replay: note: ${join(dir, 'cal.yaml')} was fitted on the counts the gateways stored, whose --rssi-min and --burst-addresses it does not record: its people hold for this replay only if it used the gateways' settings`,
    );
  });

  it.skipIf(!occ)('a lab prior for stored counts (or the other way round) is taken, with a note naming what must agree', () => {
    // (runs after the first test wrote cal.yaml, fitted on the gateways' counts)
    const r = labDayWithPrior(join(dir, 'cal.yaml'), '--rssi-min', '-70');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `presence calibrate: note: --prior ${join(dir, 'cal.yaml')} holds a calibration of wifi estimate in 60 s windows (as the gateways counted them), this fit is of wifi estimate in 60 s windows (frames of -70 dBm and stronger, 7 burst addresses): the prior is fair only if the gateways' gateway.rssi_min_dbm and estimator.burst_addresses are the settings named on the other side`,
    );
  });

  it.skipIf(!occ)('a prior of the stored devices: the note names the RSSI gate only (the burst divisor plays no part in devices)', () => {
    // (runs after the first test wrote cal.yaml, fitted on the gateways' counts)
    const devices = join(dir, 'cal-devices.yaml');
    writeFileSync(devices, readFileSync(join(dir, 'cal.yaml'), 'utf8').replace(/^ {2}field: estimate$/m, '  field: devices'));
    // (the note is written when the prior is read, before the fit: whether this one day's devices fit is not the point)
    const r = labDayWithPrior(devices, '--field', 'devices', '--rssi-min', '-70');
    expect(r.stderr).toContain(
      `presence calibrate: note: --prior ${devices} holds a calibration of wifi devices in 60 s windows (as the gateways counted them), this fit is of wifi devices in 60 s windows (frames of -70 dBm and stronger): the prior is fair only if the gateways' gateway.rssi_min_dbm is the setting named on the other side`,
    );
  });

  it('a file fitted on stored counts before counted_by existed: the refusal to add to it says how to mark it', () => {
    const old = join(dir, 'old.yaml');
    const text = readFileSync(join(dir, 'cal.yaml'), 'utf8');
    expect(text).toMatch(/^ {2}counted_by: gateways\n/m);
    writeFileSync(old, text.replace(/^ {2}counted_by: gateways\n/m, ''));
    const r = storedWith(join(dir, 'counts.csv'), old, '--zone', 'hall');
    expect(r.code).toBe(2);
    // (the fit's own warnings come first; the refusal is the last line)
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      `presence calibrate: --out ${old}: holds a calibration of wifi estimate in 60 s windows (all frames, 7 burst addresses) at level 0.9, this one is of wifi estimate in 60 s windows (as the gateways counted them) at level 0.9; fix: write to another --out file (or, if that file was fitted on stored counts with --influx-url by an earlier presence calibrate, add \`counted_by: gateways\` under its \`estimator:\`)`,
    );
  });

  it.skipIf(!occ)('a prior fitted on stored counts before counted_by existed: its refusal says how to mark it', () => {
    const old = join(dir, 'old-prior.yaml');
    writeFileSync(old, readFileSync(join(dir, 'cal.yaml'), 'utf8').replace(/^ {2}counted_by: gateways\n/m, ''));
    const r = presence('calibrate', '--capture', pcap(DAYS[0]), '--truth', truth(DAYS[0]), '--zone', 'lab', '--rssi-min', '-70', '--prior', old, '--json');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')[0]).toBe(
      `presence calibrate: --prior ${old}: holds a calibration of wifi estimate in 60 s windows (all frames, 7 burst addresses), this fit is of wifi estimate in 60 s windows (frames of -70 dBm and stronger, 7 burst addresses); fix: give --prior a file fitted with the same --rssi-min and --burst-addresses (or, if that file was fitted on stored counts with --influx-url by an earlier presence calibrate, add \`counted_by: gateways\` under its \`estimator:\`)`,
    );
  });

  it('a --window shorter than the stored windows is refused, not read as gateways that were down', () => {
    const r = stored('--zone', 'hall', '--window', '30s');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      "presence calibrate: the stored windows of zone hall start at least 60 s apart: --window 30s is shorter than the gateways' windows; fix: give --window the gateways' window length (gateway.window)",
    );
  });

  it("an InfluxDB behind a proxy under a path is queried under that path, not at the proxy's /query", async () => {
    // a reverse proxy that serves InfluxDB under /influxdb/ and answers 404 elsewhere, as nginx would
    const target = new URL(influx.url);
    const proxy = createServer((req, res) => {
      if (!req.url?.startsWith('/influxdb/')) {
        res.writeHead(404, { 'content-type': 'text/html' });
        return void res.end('<html><body>404 Not Found</body></html>');
      }
      const up = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url.slice('/influxdb'.length), headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const a = proxy.address();
    const url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/influxdb`;
    try {
      // (the proxy answers in this process: the command runs without blocking it)
      const args = [
        'calibrate',
        '--influx-url',
        url,
        '--influx-db',
        'presence',
        '--site',
        'station',
        '--zone',
        'hall',
        '--truth',
        join(dir, 'counts.csv'),
        '--json',
      ];
      const child = spawn(process.execPath, [join(repo, 'scripts/presence.js'), ...args], { cwd: repo });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const code = await new Promise<number | null>((r) => child.on('close', r));
      expect(stderr).not.toMatch(/404/);
      expect(code, stderr).toBe(0);
      expect(JSON.parse(stdout).fit.data.windows).toBe(36);
    } finally {
      proxy.closeAllConnections();
      proxy.close();
    }
  });

  it('a zone absent from the series is one line naming the zones there', () => {
    const r = stored('--zone', 'platform');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      'presence calibrate: zone platform is absent from the stored series of site station (zones there: gate, hall); fix: check --zone',
    );
  });

  it.each([
    [
      'a database that is not there',
      () => ['--influx-url', influx.url, '--influx-db', 'nodb'],
      /^presence calibrate: InfluxDB at http:\/\/127\.0\.0\.1:\d+\/: rejected the query: database not found: nodb; fix: check --influx-db$/,
    ],
    [
      'a retention policy that is not there',
      () => ['--influx-url', influx.url, '--influx-db', 'presence', '--influx-rp', 'nope'],
      /^presence calibrate: InfluxDB at http:\/\/127\.0\.0\.1:\d+\/: rejected the query: retention policy not found: nope; fix: check --influx-rp, or leave it out to read the database's default retention policy$/,
    ],
    [
      'no InfluxDB at the URL',
      async () => ['--influx-url', `http://127.0.0.1:${await freePort()}`, '--influx-db', 'presence'],
      /^presence calibrate: cannot reach InfluxDB at http:\/\/127\.0\.0\.1:\d+\/ \(ECONNREFUSED\); fix: check --influx-url and that InfluxDB runs there$/,
    ],
    [
      // the aggregator's v2 options were "unknown option" with no word on how to read a bucket
      "the aggregator's --influx-bucket and --influx-org",
      () => ['--influx-url', influx.url, '--influx-bucket', 'presence', '--influx-org', 'city', '--influx-token', 'tok'],
      /^presence calibrate: --influx-bucket is an option of the aggregator's writes: calibrate reads with InfluxQL through \/query \(1\.x, or 2\.x\/3\.x through their v1 API, which needs no org\); fix: give a 2\.x\/3\.x bucket by the database name it is mapped to \(DBRP\) as --influx-db, and leave out --influx-bucket, --influx-org and --influx-api$/,
    ],
    [
      "the aggregator's --influx-api",
      () => ['--influx-url', influx.url, '--influx-db', 'presence', '--influx-api', 'v2'],
      /^presence calibrate: --influx-api is an option of the aggregator's writes: /,
    ],
    [
      // read as no option: the database's default policy, without a word
      'an empty --influx-rp',
      () => ['--influx-url', influx.url, '--influx-db', 'presence', '--influx-rp', ''],
      /^presence calibrate: --influx-rp is empty \(a variable that was not set\?\); fix: give its value, or leave --influx-rp out$/,
    ],
    [
      'an empty --influx-username',
      () => ['--influx-url', influx.url, '--influx-db', 'presence', '--influx-username', ''],
      /^presence calibrate: --influx-username is empty \(a variable that was not set\?\); fix: give its value, or leave --influx-username out$/,
    ],
    [
      // InfluxDB's own ?u=...&p=... was dropped and the query went out without credentials
      'a URL with a query',
      () => ['--influx-url', `${influx.url}/?u=engineer&p=Pq-secret-9`, '--influx-db', 'presence'],
      /^presence calibrate: --influx-url "http:\/\/127\.0\.0\.1:\d+\/\?u=engineer&p=REDACTED" holds a query \(\?\.\.\.\), which is not sent; fix: give the URL without it, like http:\/\/influxdb:8086\/, and the database, policy and credentials with --influx-db, --influx-rp, --influx-username and --influx-password \(or --influx-token\)$/,
    ],
    [
      'a URL that is none',
      () => ['--influx-url', 'influx:8086', '--influx-db', 'presence'],
      /^presence calibrate: --influx-url "influx:8086" does not start with http:\/\/ or https:\/\/ \(InfluxDB answers HTTP\); fix: give an http\(s\) URL, like http:\/\/influxdb:8086$/,
    ],
  ])('%s: one line naming it and the fix', async (_name, args, message) => {
    const r = presence(
      'calibrate',
      ...(await args()),
      '--site',
      'station',
      '--zone',
      'hall',
      '--truth',
      join(dir, 'counts.csv'),
      '--out',
      join(dir, 'never.yaml'),
    );
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines.length === 1 || (lines.length === 2 && lines[1].startsWith('hint: '))).toBe(true);
    expect(lines[0]).toMatch(message);
    expect(existsSync(join(dir, 'never.yaml'))).toBe(false);
  });

  it('counts in windows the gateways suppressed (privacy.min_count) are left out with a note, not fitted as 0', async () => {
    // Zone "quiet": estimate = 5 + 2 * people, but windows below the gateways' minimum count (12)
    // are published as zeros with suppressed: true, as gateway/privacy.ts does.
    const lines: string[] = [];
    const quiet: string[] = ['time;people'];
    let hidden = 0;
    for (let day = 0; day < 3; day++) {
      for (let i = 0; i < 120; i++) {
        const t = t0 + day * 86_400_000 + i * 60_000;
        const p = Math.round(10 + 10 * Math.sin(i / 15 + day));
        const e = 5 + 2 * p;
        const suppressed = e < 12;
        for (const gw of ['gw-q1', 'gw-q2']) {
          lines.push(
            suppressed
              ? `presence,gateway=${gw},radio=wifi,site=station,zone=quiet devices=0i,estimate=0i,frames=0i,complete=T,suppressed=T ${t}`
              : `presence,gateway=${gw},radio=wifi,site=station,zone=quiet devices=${e}i,estimate=${e}i,frames=100i,complete=T,suppressed=F ${t}`,
          );
        }
        if (i % 5 === 2) {
          quiet.push(`${new Date(t + 20_000).toISOString()};${p}`);
          if (suppressed) hidden++;
        }
      }
    }
    expect(hidden).toBeGreaterThan(5);
    const res = await fetch(`${influx.url}/write?db=presence&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    const file = join(dir, 'quiet.csv');
    writeFileSync(file, `${quiet.join('\n')}\n`);
    const out = join(dir, 'quiet.yaml');
    const r = storedWith(file, out, '--zone', 'quiet');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(`note: .*quiet\\.csv: ${hidden} count\\(s\\) \\(first on line \\d+\\) fall in windows whose counts the gateways suppressed`),
    );
    const z = readCalibration(out).zones.quiet;
    expect((z.data as { windows: number }).windows).toBe(quiet.length - 1 - hidden);
    expect(z.k.value).toBeCloseTo(0.5, 6);
    expect(z.b.value).toBeCloseTo(5, 6);
  });

  it('counts in windows the gateways counted cut short (complete=false) are left out with a note, not fitted as whole windows', async () => {
    // Zone "restart": estimate = 5 + 2 * people in whole windows; the gateways restart now and then,
    // and the window they restart in counts a part of it (a third here), stored with complete=false.
    const lines: string[] = [];
    const rows: string[] = ['time;people'];
    let cut = 0;
    for (let day = 0; day < 3; day++) {
      for (let i = 0; i < 120; i++) {
        const t = t0 + day * 86_400_000 + i * 60_000;
        const p = Math.round(20 + 15 * Math.sin(i / 15 + day));
        const e = 5 + 2 * p;
        const whole = i % 9 !== 4;
        for (const gw of ['gw-r1', 'gw-r2']) {
          const n = whole ? e : Math.floor(e / 3);
          lines.push(`presence,gateway=${gw},radio=wifi,site=station,zone=restart devices=${n}i,estimate=${n}i,frames=100i,complete=${whole ? 'T' : 'F'} ${t}`);
        }
        if (i % 3 === 1) {
          rows.push(`${new Date(t + 20_000).toISOString()};${p}`);
          if (!whole) cut++;
        }
      }
    }
    expect(cut).toBeGreaterThan(5);
    const res = await fetch(`${influx.url}/write?db=presence&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    const file = join(dir, 'restart.csv');
    writeFileSync(file, `${rows.join('\n')}\n`);
    const out = join(dir, 'restart.yaml');
    const r = storedWith(file, out, '--zone', 'restart');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(`note: .*restart\\.csv: ${cut} count\\(s\\) \\(first on line 3\\) fall in windows that every gateway of zone restart counted cut short`),
    );
    const z = readCalibration(out).zones.restart;
    expect((z.data as { windows: number }).windows).toBe(rows.length - 1 - cut);
    expect(z.k.value).toBeCloseTo(0.5, 6);
    expect(z.b.value).toBeCloseTo(5, 6);
    // The same counts and one made while the gateways were down: the refusal is the one line, no note
    // on counts left out of a fit that is not made comes before it.
    const late = join(dir, 'restart-late.csv');
    writeFileSync(late, `${rows.join('\n')}\n2026-05-09T08:00:00Z;12\n`);
    const refused = storedWith(late, join(dir, 'never.yaml'), '--zone', 'restart');
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^presence calibrate: .*restart-late\\.csv:${rows.length + 1}: no stored window of zone restart holds `)),
    ]);
  });

  it('counts where the default retention policy holds no window: the line names the policy read and that --influx-rp reads another', async () => {
    // the zone's windows written to another policy (an old capture loaded with --influx-rp autogen)
    await influx.query('CREATE RETENTION POLICY "other" ON "presence" DURATION INF REPLICATION 1', 'POST');
    const at = Date.parse('2026-05-20T10:00:00Z');
    const lines = Array.from(
      { length: 30 },
      (_, i) => `presence,gateway=gw-o,radio=wifi,site=station,zone=elsewhere devices=${i}i,estimate=${i}i,frames=9i,complete=T ${at + i * 60_000}`,
    );
    const res = await fetch(`${influx.url}/write?db=presence&rp=other&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    const file = join(dir, 'elsewhere.csv');
    writeFileSync(file, 'time;people\n2026-05-20T10:05:20Z;4\n2026-05-20T10:15:20Z;12\n2026-05-20T10:25:20Z;20\n');
    const r = storedWith(file, join(dir, 'elsewhere.yaml'), '--zone', 'elsewhere');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /elsewhere\.csv: no stored wifi windows of zone elsewhere \(site station\) between .* in the database's default retention policy; fix: .*read with --influx-rp/,
    );
    const other = storedWith(file, join(dir, 'elsewhere.yaml'), '--zone', 'elsewhere', '--influx-rp', 'other');
    expect(other.stderr).not.toMatch(/no stored wifi windows/);
  });

  it('the BLE counts of a zone whose gateways hear no BLE (they publish BLE zeros): one line naming the truth file and the radio they hear', async () => {
    // A gateway without a BLE source publishes its BLE radio as zeros every window, as real ones do.
    // The fit failed on the data: 'the estimate does not rise with people', naming no file and no fix.
    const lines: string[] = [];
    const tram: string[] = ['time;people'];
    for (let i = 0; i < 90; i++) {
      const t = t0 + i * 60_000;
      const p = Math.round(10 + 8 * Math.sin(i / 12));
      lines.push(`presence,gateway=gw-t,radio=wifi,site=station,zone=tram devices=${3 + 2 * p}i,estimate=${3 + 2 * p}i,frames=200i,complete=T ${t}`);
      lines.push(`presence,gateway=gw-t,radio=ble,site=station,zone=tram devices=0i,estimate=0i,frames=0i,complete=T ${t}`);
      if (i % 6 === 3) tram.push(`${new Date(t + 20_000).toISOString()};${p}`);
    }
    const res = await fetch(`${influx.url}/write?db=presence&precision=ms`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    const file = join(dir, 'tram.csv');
    writeFileSync(file, `${tram.join('\n')}\n`);
    const r = storedWith(file, join(dir, 'never.yaml'), '--zone', 'tram', '--radio', 'ble');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      `presence calibrate: ${file}: every stored ble window of zone tram that holds a count (${tram.length - 1}, 2026-05-04T08:03:00.000Z to 2026-05-04T09:28:00.000Z) counted 0 devices: its gateways heard no ble there; fix: calibrate the radio they hear (--radio wifi), or check the gateways' ble sources`,
    ]);
    expect(existsSync(join(dir, 'never.yaml'))).toBe(false);
    // the radio they hear fits
    const wifi = storedWith(file, join(dir, 'tram.yaml'), '--zone', 'tram');
    expect(wifi.code, wifi.stderr).toBe(0);
  });

  it('counts that do not rise with the people: one line with the fix (the truth of this zone in UTC, or the other radio), no file', () => {
    // The people of the truth fall as the stored estimate rises: another zone's counts, or a radio
    // that stays flat in a crowd (the simulated King's Day's Wi-Fi). The line said no more than
    // "it cannot be calibrated to people here".
    const file = join(dir, 'falling.csv');
    writeFileSync(file, `${counts.map((l, i) => (i === 0 ? l : `${l.split(';')[0]};${60 - Number(l.split(';')[1])}`)).join('\n')}\n`);
    const r = storedWith(file, join(dir, 'never.yaml'), '--zone', 'hall');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^presence calibrate: zone hall: the estimate does not rise with people \(it changes by -[\d.]+ per person\): it cannot be calibrated to people here; fix: check that --truth holds the people of zone hall of site station at UTC times; if the gateways hear ble there, calibrate its counts instead \(--radio ble\)$/,
      ),
    ]);
    expect(existsSync(join(dir, 'never.yaml'))).toBe(false);
  });

  it('a count outside the stored windows written with an offset from UTC: shown as written and in UTC, and the offset is named', () => {
    // a clock in summer time (+02:00) written with the winter offset: the count lands an hour late
    const file = join(dir, 'offset.csv');
    writeFileSync(file, 'time;people\n2026-05-04T08:05:20Z;20\n2026-05-04T08:15:20Z;25\n2026-05-04T11:30:20+01:00;30\n');
    const r = storedWith(file, join(dir, 'never.yaml'), '--zone', 'hall');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /offset\.csv:4: no stored window of zone hall holds 2026-05-04T11:30:20\+01:00 \(2026-05-04T10:30:20\.000Z in UTC\) \(1 count\(s\) without one; .*\); fix: check that \+01:00 is the offset from UTC of the clock that wrote the row \(summer time is another offset than winter time\), or write times in UTC \(Z\); then remove counts made while the gateways were down$/,
      ),
    ]);
  });

  it('a count outside the stored windows names its line', () => {
    const file = join(dir, 'late.csv');
    writeFileSync(file, `${counts.join('\n')}\n2026-05-09T08:00:00Z;12\n`);
    const r = storedWith(file, join(dir, 'never.yaml'), '--zone', 'hall');
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `late\\.csv:${counts.length + 1}: no stored window of zone hall holds 2026-05-09T08:00:00\\.000Z .*; fix: remove counts made while the gateways were down`,
      ),
    );
  });
});

describe.skipIf(!hasInflux)('presence calibrate: stored-series credentials against influxd with auth enabled', () => {
  const PW = 'Cal-pw-7q2x';
  const influx = new Influxd('presence', { username: 'engineer', password: PW });
  const dir = mkdtempSync(join(tmpdir(), 'presence-calibrate-auth-'));
  const t0 = Date.parse('2026-05-04T08:00:00Z');
  const counts = join(dir, 'counts.csv');
  const pwFile = join(dir, 'influx-password');

  beforeAll(async () => {
    await influx.start();
    const lines: string[] = [];
    const rows = ['time;people'];
    for (let day = 0; day < 3; day++) {
      for (let i = 0; i < 60; i++) {
        const t = t0 + day * 86_400_000 + i * 60_000;
        const p = Math.round(20 + 15 * Math.sin(i / 9 + day));
        lines.push(`presence,gateway=gw-1,radio=wifi,site=station,zone=hall devices=${5 + 2 * p}i,estimate=${5 + 2 * p}i,frames=100i,complete=T ${t}`);
        if (i % 4 === 1) rows.push(`${new Date(t + 30_000).toISOString()};${p}`);
      }
    }
    const auth = `Basic ${Buffer.from(`engineer:${PW}`).toString('base64')}`;
    const res = await fetch(`${influx.url}/write?db=presence&precision=ms`, { method: 'POST', headers: { authorization: auth }, body: lines.join('\n') });
    expect(res.status).toBe(204);
    writeFileSync(counts, `${rows.join('\n')}\n`);
    writeFileSync(pwFile, `${PW}\n`, { mode: 0o600 });
  }, 60_000);
  afterAll(async () => {
    await influx.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The stored-series form with this URL, these flags and these variables set (and no other INFLUX_*). */
  function calibrate(url: string, env: Record<string, string>, ...extra: string[]) {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INFLUX_')));
    const args = ['calibrate', '--influx-url', url, '--influx-db', 'presence', '--site', 'station', '--zone', 'hall', '--truth', counts, '--json', ...extra];
    const r = spawnSync(process.execPath, [join(repo, 'scripts/presence.js'), ...args], { cwd: repo, encoding: 'utf8', env: { ...clean, ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it.each([
    // a shell with the influx CLI's INFLUX_TOKEN: the token was sent, not the user and password given
    [
      '--influx-username/--influx-password with INFLUX_TOKEN set',
      () => influx.url,
      { INFLUX_TOKEN: 'tok-of-another-server' },
      ['--influx-username', 'engineer', '--influx-password', PW],
    ],
    [
      '--influx-username/--influx-password-file with INFLUX_TOKEN set',
      () => influx.url,
      { INFLUX_TOKEN: 'tok-of-another-server' },
      ['--influx-username', 'engineer', '--influx-password-file', pwFile],
    ],
    // the variable's password replaced the file's given on the command line
    [
      '--influx-password-file with another INFLUX_PASSWORD set',
      () => influx.url,
      { INFLUX_USERNAME: 'engineer', INFLUX_PASSWORD: 'old-pw' },
      ['--influx-password-file', pwFile],
    ],
    // the variable's password replaced the URL's and dropped its user: no credentials were sent
    ["the URL's user and password with another INFLUX_PASSWORD set", () => influx.url.replace('//', `//engineer:${PW}@`), { INFLUX_PASSWORD: 'old-pw' }, []],
    ["the URL's user and password with INFLUX_TOKEN set", () => influx.url.replace('//', `//engineer:${PW}@`), { INFLUX_TOKEN: 'tok-of-another-server' }, []],
    // what the environment alone gives still works, and a user in the URL takes the variable's password
    ['INFLUX_USERNAME and INFLUX_PASSWORD alone', () => influx.url, { INFLUX_USERNAME: 'engineer', INFLUX_PASSWORD: PW }, []],
    ['a user in the URL and INFLUX_PASSWORD_FILE', () => influx.url.replace('//', '//engineer@'), { INFLUX_PASSWORD_FILE: pwFile }, []],
  ] as const)("the command line's credentials are sent, not the environment's: %s", (_name, url, env, extra) => {
    const r = calibrate(url(), env, ...extra);
    expect(r.stderr).not.toMatch(/401/);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).fit.data.windows).toBe(45);
    expect(r.stdout + r.stderr).not.toContain(PW);
  });

  it.each([
    // "check the credentials" named a token that influxd 1.6/1.7 cannot take, or credentials never given
    [
      'a token, which influxd 1.7 and older do not take',
      ['--influx-token', 'tok-for-1.8'],
      'InfluxDB 1.7 and older take no token: give its 1.x user and password (--influx-username and --influx-password, or INFLUX_USERNAME and INFLUX_PASSWORD) instead of --influx-token or INFLUX_TOKEN',
    ],
    ['no credentials', [], 'it needs a user and password: give --influx-username and --influx-password (or INFLUX_USERNAME and INFLUX_PASSWORD)'],
  ])('influxd with auth and %s: the line says what to give', (_name, extra, fix) => {
    const r = calibrate(influx.url, {}, ...extra);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `presence calibrate: InfluxDB at ${influx.url}/: rejected the query (401): unable to parse authentication credentials; fix: ${fix}`,
    );
  });
});
