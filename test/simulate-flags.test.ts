// `presence simulate` with flag values a tester gets wrong: each is one line naming the flag and
// what it must be, one hint line, exit 2, before anything runs or is written; never a hang, a
// stack trace or a silent substitute (a seed of 1.5 was seed 1, 2^32 + 1 too).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-sim-flags-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function simulate(...args: string[]): { code: number | null; out: string; err: string } {
  return simulateWithin(60_000, ...args);
}

function simulateWithin(timeout: number, ...args: string[]): { code: number | null; out: string; err: string } {
  // The timeout only ends a hang the test then reports; no assertion depends on how long a run takes.
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), 'simulate', ...args], { cwd: tmp, encoding: 'utf8', timeout });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** "presence simulate: ..." matching `what`, then one hint line; exit 2; nothing on stdout. */
function refused(r: ReturnType<typeof simulate>, what: RegExp): void {
  const lines = r.err.trimEnd().split('\n');
  expect(lines, r.err).toHaveLength(2);
  expect(lines[0]).toMatch(/^presence simulate: /);
  expect(lines[0]).toMatch(what);
  expect(lines[1]).toMatch(/^hint: \S/);
  expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  expect(r.out).toBe('');
  expect(r.code).toBe(2);
}

describe('presence simulate: bad flag values', () => {
  it('a --sketch-p that rounds to T = 0 or 65536 is refused naming the flag (it ended in the aggregator\'s "/p must be > 0")', () => {
    for (const [p, what] of [
      ['0', 'T = 0 of 65536, no bit would be randomised'],
      ['0.000001', 'T = 0 of 65536, no bit would be randomised'],
      ['1', 'T = 65536 of 65536, every bit would be a coin flip'],
    ])
      refused(
        simulate('traffic-corridor', '--evaluate', '--duration', '15m', '--scale', '0.05', '--sketch-p', p),
        new RegExp(
          `^presence simulate: --sketch-p: must be from 1 / 131072 \\(0\\.0000077\\) to below 1 - 1 / 131072 \\(0\\.99999237\\), like 0\\.03 \\(got "${p}"\\): it rounds to ${what}`,
        ),
      );
  });

  it('a --sketch-bits a gateway cannot take is refused naming the sizes (512 and 65536 ran the whole simulation, then the aggregator or the firmware refused the sketch)', () => {
    for (const m of ['64', '512', '65536', '4294967296'])
      refused(
        simulate('traffic-corridor', '--evaluate', '--duration', '15m', '--scale', '0.05', '--no-calibrate', '--sketch-bits', m),
        new RegExp(`^presence simulate: --sketch-bits: must be one of 1024, 2048, 4096, 8192, 16384, 32768 \\(got "${m}"\\)$`),
      );
  });

  it('a seed that is not a whole number from 0 to 4294967295 is refused (1.5 and 4294967297 were seed 1)', () => {
    for (const seed of ['1.5', '-1', '4294967297', '1e30']) {
      const out = join(tmp, `seed-${seed}`);
      refused(
        simulate('quiet-night', '--duration', '1m', '--seed', seed, '--out', out),
        new RegExp(`--seed: must be a whole number from 0 to 4294967295 \\(got "${seed.replace('.', '\\.')}"\\)`),
      );
      expect(existsSync(out)).toBe(false);
    }
    refused(
      simulate('quiet-night', '--evaluate', '--duration', '1m', '--fit-seed', '2.5'),
      /--fit-seed: must be a whole number from 0 to 4294967295 \(got "2\.5"\)/,
    );
  });

  it('a --start whose run does not lie in 2000-2099 is refused: a gateway counts none of its frames (1970), classic pcap cannot stamp 2150 (it failed naming no flag)', () => {
    for (const start of ['1970-01-01T00:00:00Z', '2150-01-01T00:00:00Z', '2099-12-31T23:59:00Z']) {
      const out = join(tmp, 'start');
      refused(
        simulate('quiet-night', '--duration', '2m', '--format', 'pcap', '--start', start, '--out', out),
        new RegExp(`--start ${start}: the run must lie in the years 2000 to 2099`),
      );
      expect(existsSync(out)).toBe(false);
    }
    refused(
      simulate('quiet-night', '--evaluate', '--duration', '2m', '--start', '1970-01-01T00:00:00Z'),
      /--start 1970-01-01T00:00:00Z: the run must lie in the years 2000 to 2099/,
    );
    const ok = simulate('quiet-night', '--duration', '2m', '--start', '2099-12-31T23:00:00Z', '--out', join(tmp, 'start-ok'));
    expect(ok.code, ok.err).toBe(0);
  });

  it('more than 50,000 truth windows is refused, naming the shortest window that fits (--window 10ms over 31d was 267 million, all kept in memory)', () => {
    const out = join(tmp, 'windows');
    refused(
      simulate('quiet-night', '--window', '10ms', '--duration', '31d', '--out', out),
      /--window 10ms: 267,840,000 windows over 31d; the simulator keeps the truth of at most 50,000 \(--window 54s or longer\)/,
    );
    refused(simulate('quiet-night', '--evaluate', '--window', '1s', '--duration', '1d'), /--window 1s: 86,400 windows over 1d; .*\(--window 2s or longer\)/);
    expect(existsSync(out)).toBe(false);
  });

  it('--people for a scenario without crowds names the flag (it said "people override")', () => {
    const file = join(tmp, 'fixed-only.yaml');
    writeFileSync(
      file,
      'name: fixed-only\nsite: lab\nduration: 1m\ngateways:\n  - { id: rx, zone: bench, position: [0, 0] }\nfixed:\n  - { model: ibeacon, position: [1, 0] }\n',
    );
    const r = simulate(file, '--out', join(tmp, 'fixed-only'));
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^fixed-only: 0 people, 1 device, /); // was "1 devices"
    refused(
      simulate(file, '--people', '5', '--out', join(tmp, 'fixed-only')),
      /^presence simulate: .*fixed-only\.yaml: --people 5: the scenario has no crowds to scale .*; leave out --people$/,
    );
  });

  it('--scale 0 or --people 0 on a scenario without fixed devices is refused naming the flag (it wrote empty captures without a word); with fixed devices it runs', () => {
    for (const [flag, fix] of [
      ['--scale', 'give --scale above 0, like --scale 0\\.01'],
      ['--people', 'give --people 1 or more'],
    ]) {
      const out = join(tmp, `zero${flag}`);
      refused(
        simulate('traffic-corridor', flag, '0', '--duration', '1m', '--out', out),
        new RegExp(
          `^presence simulate: ${flag} 0: traffic-corridor has no fixed devices, so with its crowds emptied nothing would send a frame and the captures would be empty; ${fix}$`,
        ),
      );
      expect(existsSync(out)).toBe(false);
      refused(
        simulate('crossroads', '--evaluate', flag, '0', '--duration', '1m'),
        new RegExp(`^presence simulate: ${flag} 0: crossroads has no fixed devices`),
      );
    }
    // A crowd scaled to nearly nobody, or a run shorter than any device's interval, holds no frame
    // either: counted exactly, it is refused the same way (it wrote empty captures, exit 0).
    for (const [args, what] of [
      [['traffic-corridor', '--people', '0.001', '--duration', '5m'], 'traffic-corridor over 5m at --people 0.001'],
      [['quiet-night', '--duration', '1ms'], 'quiet-night over 1ms'],
    ] as const) {
      const out = join(tmp, 'no-frame');
      refused(
        simulate(...args, '--out', out),
        new RegExp(`^presence simulate: ${what}: its captures would hold no frame \\(no gateway hears a device in that time\\); nothing was written$`),
      );
      expect(existsSync(out)).toBe(false);
    }
    // quiet-night has fixed devices (a printer, beacons, a sensor): an empty room is a fair run.
    const r = simulate('quiet-night', '--scale', '0', '--duration', '1m', '--out', join(tmp, 'zero-fixed'));
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^quiet-night: 0 people, \d+ devices?, /);
  });

  it('--scale and --people together are refused: both set the scale, and --people silently won', () => {
    const out = join(tmp, 'both');
    refused(
      simulate('kingsday-square', '--people', '100', '--scale', '0.5', '--duration', '1m', '--out', out),
      /^presence simulate: --scale 0\.5 and --people 100: both set the crowd's size; give one of them$/,
    );
    refused(simulate('kingsday-square', '--evaluate', '--people', '100', '--scale', '0.5', '--duration', '1m'), /--scale 0\.5 and --people 100: /);
    expect(existsSync(out)).toBe(false);
  });

  it('a zero duration says it must be longer than 0', () => {
    refused(
      simulate('quiet-night', '--duration', '0s', '--out', join(tmp, 'zero')),
      /--duration: must be a duration like .* \(got "0s"\): it must be longer than 0/,
    );
    // A bare 0 (seconds, deprecated) was refused as if it were not a duration at all.
    const r = simulate('quiet-night', '--window', '0', '--out', join(tmp, 'zero'));
    expect(r.err).toMatch(/^presence simulate: --window: must be a duration like .* \(got "0"\): it must be longer than 0$/m);
    expect(r.code).toBe(2);
    // in that one line: a deprecation line before it said to write it "0s", which is refused too
    expect(r.err).not.toContain('warning');
  });

  it('a duration past 31d is refused at once (99999d ran the engine for hours before saying anything)', () => {
    const out = join(tmp, 'long');
    refused(simulate('quiet-night', '--duration', '99999d', '--out', out), /--duration: at most 31d \(got "99999d"\)/);
    refused(simulate('quiet-night', '--evaluate', '--duration', '99999d'), /--duration: at most 31d \(got "99999d"\)/);
    expect(existsSync(out)).toBe(false);
  });

  it('a month of output is refused after a bounded estimate that projects what it counted, not after counting all of it', () => {
    // quiet-night's fixed beacons alone make about 1.7 million frames a day: counting 31 days took minutes.
    const out = join(tmp, 'month');
    const r = simulate('quiet-night', '--duration', '31d', '--out', out);
    const lines = r.err.trimEnd().split('\n');
    expect(lines, r.err).toHaveLength(3);
    const m =
      /^presence simulate: about ([\d,]+) frames, ([\d.]+) GB into .*month\/ \(projected from its first \S+ of 31d at 1% of the crowd, where the estimate stopped\)$/.exec(
        lines[0],
      );
    expect(m, lines[0]).not.toBeNull();
    // 31 days of about 2 million frames a day (a 1-day run writes 2,048,366; the estimate said 1,737,165
    // a day, the fixed equipment's alone, while its crowd sample was counted with it)
    expect(Number(m![1].replace(/,/g, '')) / 31 / 2_048_366).toBeGreaterThan(0.9);
    expect(Number(m![1].replace(/,/g, '')) / 31 / 2_048_366).toBeLessThan(1.1);
    expect(lines[1]).toMatch(/^presence simulate: this would write about [\d.]+ GB \(more than 200 MB\); pass --yes to write it$/);
    expect(lines[2]).toMatch(/^hint: /);
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });

  it('a month in one --window is estimated as fast as in minutes (the estimate stops only at a window end: one 31-day window ran all of it)', () => {
    const out = join(tmp, 'month-window');
    const r = simulate('quiet-night', '--duration', '31d', '--window', '31d', '--out', out);
    const lines = r.err.trimEnd().split('\n');
    expect(lines, r.err).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^presence simulate: about [\d,]+ frames, [\d.]+ GB into .*month-window\/ \(projected from its first \S+ of 31d at 1% of the crowd, where the estimate stopped\)$/,
    );
    expect(lines[1]).toMatch(/^presence simulate: this would write about [\d.]+ GB \(more than 200 MB\); pass --yes to write it$/);
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });

  it('with --yes, captures that cannot fit on the disk are refused before anything is written', () => {
    // 300,000 people for a month: terabytes, more than any disk this runs on has free
    const out = join(tmp, 'disk');
    // Its estimate runs the whole frame budget (about 20 s of CPU): 133 s at a load average of 15 on 2 cores.
    const r = simulateWithin(300_000, 'kingsday-square', '--scale', '10', '--duration', '31d', '--yes', '--out', out);
    const lines = r.err.trimEnd().split('\n');
    expect(lines, r.err).toHaveLength(3);
    expect(lines[0]).toMatch(/^presence simulate: about [\d,]+ frames, [\d.]+ TB into .*disk\/ \(projected from its first/);
    expect(lines[1]).toMatch(
      /^presence simulate: this run would write about [\d.]+ TB \(the captures [\d.]+ TB with their file headers, truth\.json and truth\.csv [\d.]+ [kMG]B\), more than the [\d.]+ [kMGT]?B free on the file system of .*disk$/,
    );
    expect(lines[2]).toMatch(/^hint: /);
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  }, 320_000);

  it('a crowd past 300,000 people is refused at once, naming the scale that fits (--scale 1e9 never came back)', () => {
    const out = join(tmp, 'crowd');
    refused(
      simulate('kingsday-square', '--scale', '1e9', '--duration', '1m', '--out', out),
      /--scale 1e9: kingsday-square would hold 3\.00e\+13 people at its peak; the simulator holds at most 300,000 \(--scale 10 or less\)/,
    );
    refused(simulate('kingsday-square', '--people', '1000000', '--duration', '1m', '--out', out), /--people 1000000: .* at most 300,000/);
    refused(simulate('kingsday-square', '--evaluate', '--scale', '1e9', '--duration', '1m'), /--scale 1e9: kingsday-square would hold/);
    expect(existsSync(out)).toBe(false);
  });

  it('--evaluate counts the windows scored per radio: a gateway with BLE only showed 0 windows beside its BLE errors', () => {
    const file = join(tmp, 'ble-only.yaml');
    writeFileSync(
      file,
      [
        'name: ble-only',
        'site: ble-only',
        'duration: 5m',
        'gateways: [{ id: gw-1, zone: z1, position: [5, 5], wifi: false }]',
        'crowds: [{ type: gathering, region: { x: 0, y: 0, width: 10, height: 10 }, occupancy: [[0s, 6]] }]',
      ].join('\n'),
    );
    const r = simulate(file, '--evaluate', '--no-calibrate');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/windows\s+│[^\n]*\n[^\n]*scored\s+│[^\n]*\n[^\n]*Wi-Fi \/ BLE/);
    expect(r.out).toMatch(/│ gw-1\s+│ 0 \/ 5\s+│ -\s+│ -\s+│ [\d.]+\s+│/);
    expect(r.out).toMatch(/│ ble-only │ 1\s+│ 0 \/ 5\s+│ -\s+│ [\d.]+\s+│/);
  });

  it("a scenario file's own duration past 31d is refused as --duration is, before the size estimate", () => {
    const file = join(tmp, 'long.yaml');
    writeFileSync(
      file,
      [
        'name: long',
        'site: long',
        'duration: 40d',
        'window: 1h',
        'gateways: [{ id: gw-1, zone: z1, position: [0, 0] }]',
        'crowds: [{ type: gathering, region: { x: 0, y: 0, width: 10, height: 10 }, occupancy: [[0s, 3]] }]',
      ].join('\n'),
    );
    const out = join(tmp, 'long');
    // it estimated 3.6 GB and asked for --yes, which then simulated the 40 days
    refused(simulate(file, '--out', out), /^presence simulate: long: duration: at most 31d \(got "40d"\)$/);
    expect(existsSync(out)).toBe(false);
  });

  it('--live --format pcap --radio of a radio the gateway lacks is one line before any file or pipe is made', () => {
    // It failed after 'live stream started' with exit 1 and no hint, leaving an empty --pipe file.
    const file = join(tmp, 'wifi-only.yaml');
    writeFileSync(
      file,
      [
        'name: wifi-only',
        'site: wifi-only',
        'duration: 1m',
        'gateways: [{ id: gw-1, zone: z1, position: [0, 0], ble: false }, { id: gw-2, zone: z2, position: [9, 0] }]',
        'crowds: [{ type: gathering, region: { x: 0, y: 0, width: 10, height: 10 }, occupancy: [[0s, 3]] }]',
      ].join('\n'),
    );
    const pipe = join(tmp, 'wifi-only.pcap');
    refused(
      simulate(file, '--live', '--speed', 'max', '--format', 'pcap', '--radio', 'ble', '--pipe', pipe),
      /^presence simulate: --radio ble: gw-1 of wifi-only has no BLE radio$/,
    );
    expect(existsSync(pipe)).toBe(false);
    const out = join(tmp, 'wifi-only-out');
    refused(
      simulate(file, '--live', '--speed', 'max', '--format', 'pcap', '--radio', 'ble', '--out', out, '--fifo'),
      /^presence simulate: --radio ble: gw-1 of wifi-only has no BLE radio$/,
    );
    expect(existsSync(out)).toBe(false);
    // the gateway that has it streams
    const r = simulate(file, '--live', '--speed', 'max', '--format', 'pcap', '--radio', 'ble', '--gateway', 'gw-2', '--pipe', pipe);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(pipe)).toBe(true);
  });

  it("a scenario file whose own crowd is past 300,000 people is named, not a --scale that was never given ('--scale undefined')", () => {
    const file = join(tmp, 'stadium.yaml');
    /** The stadium scenario with these lines of crowds. */
    const stadium = (...crowds: string[]) =>
      writeFileSync(file, ['name: stadium', 'site: stadium', 'duration: 10m', 'gateways: [{ id: gw-1, zone: z1, position: [0, 0] }]', ...crowds].join('\n'));
    stadium('crowds: [{ type: gathering, region: { x: 0, y: 0, width: 100, height: 100 }, occupancy: [[0s, 1000000]] }]');
    const out = join(tmp, 'stadium');
    refused(
      simulate(file, '--out', out),
      /^presence simulate: stadium: its crowds would hold 1,000,000 people at its peak; the simulator holds at most 300,000 \(--scale 0\.3 or less, or in its file a smaller crowds\[0\]\.occupancy\)$/,
    );
    expect(existsSync(out)).toBe(false);
    // a flow that hardly moves keeps its people on the way: a short line naming the crowd and its speed, not 300 digits
    stadium(
      'crowds:',
      '  - { type: gathering, region: { x: 0, y: 0, width: 100, height: 100 }, occupancy: [[0s, 10]] }',
      '  - { type: flow, from: [0, 0], to: [10, 0], modes: { walk: { per_hour: 100, speed: 1e-300 } } }',
    );
    refused(
      simulate(file, '--out', out),
      /^presence simulate: stadium: its crowds would hold 5\.56e\+299 people at its peak; the simulator holds at most 300,000 \(--scale [0-9.e-]+ or less, or in its file a smaller crowds\[1\]\.per_hour, or a higher speed \(people on the way: per_hour x length \/ speed\)\)$/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('--out naming a file, a folder under a file, or a place no folder can be made is one line, before the size is estimated', () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    refused(simulate('quiet-night', '--duration', '1m', '--out', file), /--out .*a-file: is a file, not a folder/);
    refused(simulate('quiet-night', '--duration', '1m', '--out', join(file, 'sub')), /--out .*a-file\/sub: .*a-file is a file, not a folder/);
    // /proc takes no new folder, even from root (Node's recursive mkdir loops on it for ever)
    refused(
      simulate('quiet-night', '--duration', '1m', '--out', '/proc/presence-sim-test/x'),
      /--out \/proc\/presence-sim-test\/x: cannot create the folder \/proc\/presence-sim-test/,
    );
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it("a scenario file's mistakes: one line per problem naming the file and the field, a hint, exit 2 (was exit 1, the problems in a list)", () => {
    const file = join(tmp, 'market.yaml');
    writeFileSync(
      file,
      [
        'name: market-street',
        'site: market',
        'duration: 2h',
        'window: 60s',
        'gateways:',
        '  - id: gw-north',
        '    zone: market-north',
        '    position: [20, 5]',
        '    wifi: { channels: [1, 6, 11], dwell: fast, sensitivity_dbm: high }',
        'crowds:',
        '  - type: gathering',
        '    region: { x: 0, y: 0, width: 200, height: 12 }',
        '    occupancy: [[0s, 50], [1h, 800]]',
        '    dwell: 30m',
        '',
      ].join('\n'),
    );
    for (const args of [['--out', join(tmp, 'market')], ['--evaluate']]) {
      const r = simulate(file, '--duration', '1m', ...args);
      const lines = r.err.trimEnd().split('\n');
      expect(lines, r.err).toEqual([
        `presence simulate: ${file}:9: gateways[0].wifi.dwell: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "fast")`,
        `presence simulate: ${file}:9: gateways[0].wifi.sensitivity_dbm: must be a number (got "high")`,
        expect.stringMatching(/^hint: \S/),
      ]);
      expect(r.code).toBe(2);
    }
    writeFileSync(
      file,
      readFileSync(file, 'utf8')
        .replace('dwell: fast, sensitivity_dbm: high', 'dwell: 200ms')
        .replace('crowds:', 'people:\n  primary: { nokia-3310: 1 }\ncrowds:'),
    );
    const r = simulate(file, '--duration', '1m', '--out', join(tmp, 'market'));
    refused(r, /^presence simulate: .*market\.yaml:11: people\.primary: unknown device model "nokia-3310" \(known: iphone-ios17, /);
    expect(existsSync(join(tmp, 'market'))).toBe(false);
  });

  it('a folder, a named pipe or a link under the name of an output file is one line before anything is written (was EISDIR after the captures, or a hang on the pipe)', () => {
    for (const [name, make, kind] of [
      ['gw-lobby.pcapng', (p: string) => mkdirSync(p), 'a folder'],
      ['truth.csv', (p: string) => execFileSync('mkfifo', [p]), 'a named pipe'],
      ['truth.json', (p: string) => symlinkSync(join(tmp, 'nowhere', 'x'), p), 'a symbolic link'],
    ] as const) {
      const out = join(tmp, `taken-${name}`);
      mkdirSync(out);
      make(join(out, name));
      const r = simulate('quiet-night', '--duration', '1m', '--out', out);
      refused(
        r,
        new RegExp(`^presence simulate: --out .*taken-${name.replace('.', '\\.')}: ${name.replace('.', '\\.')} there is ${kind}, not a file of an earlier run`),
      );
      expect(readdirSync(out)).toEqual([name]);
    }
  });

  it('files of an earlier run in --out are replaced with one line saying which, and nothing else there is touched', () => {
    const out = join(tmp, 'again');
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const first = simulate('quiet-night', '--duration', '1m', '--out', out);
    expect(first.code, first.err).toBe(0);
    expect(first.err).not.toMatch(/replac/);
    const second = simulate('quiet-night', '--duration', '1m', '--out', out);
    expect(second.code, second.err).toBe(0);
    expect(second.err).toMatch(/^presence simulate: replacing gw-lobby\.pcapng, truth\.json, truth\.csv of an earlier run in .*again\/$/m);
    expect(readdirSync(out).sort()).toEqual(['gw-lobby.pcapng', 'notes.txt', 'truth.csv', 'truth.json']);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it("--live --out --fifo over an earlier run's captures makes the named pipe it says (it wrote a plain file there, which a gateway reading a FIFO took for a finished capture), and an earlier run's truth beside the new captures is removed, with one line saying which", () => {
    const out = join(tmp, 'live-over');
    const first = simulate('quiet-night', '--duration', '2m', '--out', out);
    expect(first.code, first.err).toBe(0);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    // A reader for the pipe: the stream waits until one opens it.
    const pipe = join(out, 'gw-lobby.pcapng');
    const live = spawnSync(
      'bash',
      [
        '-c',
        `node "$0" simulate quiet-night --live --speed max --duration 1m --seed 9 --out "$1" --fifo & sim=$!
         for i in $(seq 100); do [ -p "$2" ] && break; sleep 0.1; done
         if [ -p "$2" ]; then echo PIPE; cat "$2" > /dev/null; else echo NOPIPE; fi
         wait $sim`,
        join(ROOT, 'scripts/presence.js'),
        out,
        pipe,
      ],
      { cwd: tmp, encoding: 'utf8', timeout: 60_000 },
    );
    expect(live.status, live.stderr).toBe(0);
    expect(live.stdout).toBe('PIPE\n');
    expect(live.stderr).toMatch(/^presence simulate: replacing gw-lobby\.pcapng, truth\.json, truth\.csv of an earlier run in .*live-over\/$/m);
    expect(readdirSync(out).sort()).toEqual(['gw-lobby.pcapng', 'notes.txt', 'truth.jsonl']);
    // A run that writes files refuses the named pipe (a test above); a live run without --fifo writes a file.
    rmSync(pipe);
    const again = simulate('quiet-night', '--duration', '1m', '--out', out);
    expect(again.code, again.err).toBe(0);
    // ... and a run that writes files takes the live run's truth.jsonl away with its captures.
    expect(again.err).toMatch(/^presence simulate: replacing truth\.jsonl of an earlier run in .*live-over\/$/m);
    expect(readdirSync(out).sort()).toEqual(['gw-lobby.pcapng', 'notes.txt', 'truth.csv', 'truth.json']);
    // Without --fifo the live capture is written over the earlier one as a file, and named the same way.
    const plain = simulate('quiet-night', '--live', '--speed', 'max', '--duration', '1m', '--out', out);
    expect(plain.code, plain.err).toBe(0);
    expect(plain.err).toMatch(/^presence simulate: replacing gw-lobby\.pcapng, truth\.json, truth\.csv of an earlier run in .*live-over\/$/m);
    expect(readdirSync(out).sort()).toEqual(['gw-lobby.pcapng', 'notes.txt', 'truth.jsonl']);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('--list beside a scenario or another flag is refused (it listed the built-ins and ignored them: --list quiet-night ran nothing)', () => {
    refused(
      simulate('--list', 'quiet-night'),
      /^presence simulate: --list: lists the built-in scenarios and runs nothing, so scenario "quiet-night" would be ignored$/,
    );
    refused(simulate('--list', '--seed', '5', '--no-calibrate'), /^presence simulate: --list: .* so --seed, --no-calibrate would be ignored$/);
    const alone = simulate('--list');
    expect(alone.code, alone.err).toBe(0);
    expect(alone.out).toMatch(/^quiet-night +\S/m);
  });

  it('--ble-link on a live --format pcap stream of --radio wifi is refused (it streamed the Wi-Fi pcap and ignored it)', () => {
    refused(
      simulate(
        'quiet-night',
        '--live',
        '--speed',
        'max',
        '--duration',
        '1m',
        '--format',
        'pcap',
        '--radio',
        'wifi',
        '--ble-link',
        'hci',
        '--pipe',
        join(tmp, 'wifi-hci.pcap'),
      ),
      /^presence simulate: --ble-link hci: a --format pcap stream of --radio wifi holds no BLE$/,
    );
    expect(existsSync(join(tmp, 'wifi-hci.pcap'))).toBe(false);
  });

  it("people.carry are weights, as simulator/README.md's sample says: [4, 56, 30, 10] gives the run [0.04, 0.56, 0.3, 0.1] gives (the sample called them probabilities, and [0.5, 0.6, 0.3, 0.1] ran without a word)", () => {
    const readme = readFileSync(join(ROOT, 'simulator', 'README.md'), 'utf8');
    const sample = /## Sample scenario\n\n```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    expect(sample).toMatch(/carry: \[0\.04, 0\.56, 0\.3, 0\.1\] +# weights of carrying 0, 1, 2, 3 devices, scaled to sum to 1/);
    const runs = ['[0.04, 0.56, 0.3, 0.1]', '[4, 56, 30, 10]'].map((carry, i) => {
      const file = join(tmp, `carry-${i}.yaml`);
      writeFileSync(file, sample.replace('[0.04, 0.56, 0.3, 0.1]', carry));
      const out = join(tmp, `carry-${i}`);
      const r = simulate(file, '--duration', '2m', '--scale', '0.05', '--out', out);
      expect(r.code, r.err).toBe(0);
      return readFileSync(join(out, 'gw-north.pcapng'));
    });
    expect(runs[1]!.equals(runs[0]!)).toBe(true);
  });

  it('a built-in name that is also a folder here (an earlier --out quiet-night) still names the built-in (it said "the scenario file is a folder")', () => {
    // simulate() runs in tmp: this writes tmp/quiet-night/, then names the built-in from there again.
    const first = simulate('quiet-night', '--duration', '1m', '--out', 'quiet-night');
    expect(first.code, first.err).toBe(0);
    expect(existsSync(join(tmp, 'quiet-night', 'gw-lobby.pcapng'))).toBe(true);
    const again = simulate('quiet-night', '--duration', '1m', '--out', join(tmp, 'quiet-night-2'));
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/^quiet-night: /m);
    const evaluated = simulate('quiet-night', '--evaluate', '--duration', '2m', '--no-calibrate', '--no-flows', '--json');
    expect(evaluated.code, evaluated.err).toBe(0);
    expect(JSON.parse(evaluated.out.trim().split('\n')[0]).scenario).toBe('quiet-night');
  });
});

describe('presence simulate --load and --evaluate: counts, shares and signal levels', () => {
  it('flows over no scored interval show their coverage as -, as every other figure over nothing (it read "within the bounds in 0 % of intervals")', () => {
    const args = ['traffic-corridor', '--evaluate', '--duration', '10m', '--scale', '0.01', '--no-calibrate'];
    const json = simulate(...args, '--json');
    expect(json.code, json.err).toBe(0);
    const flows = JSON.parse(json.out.trim().split('\n')[0]).flows;
    expect(flows.intervals).toBe(0);
    expect(flows.count_bounds_coverage).toBeNull();
    const text = simulate(...args);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toContain('per 5-min interval, 0 intervals with a true flow >= 10 matchable identities');
    expect(text.out).toContain('true flow within the bounds in - % of intervals');
  });

  it('--gateways and --count are whole numbers, the fault shares 0 to 1: refused before connecting', () => {
    const load = (...args: string[]) => simulate('--load', '--count', '5', '--mqtt-url', 'mqtt://127.0.0.1:1', ...args);
    refused(load('--gateways', '1.5'), /--gateways: must be a whole number >= 1 \(got "1\.5"\)/);
    // each virtual gateway is held in memory: 1e8 ran out of heap once a broker answered
    refused(load('--gateways', '100000000'), /--gateways: at most 100,000 virtual gateways \(got "100000000"\)/);
    refused(load('--count', '2.5'), /--count: must be a whole number >= 1 \(got "2\.5"\)/);
    refused(load('--invalid', '2'), /--invalid: must be a share from 0 to 1, like 0\.01 \(got "2"\)/);
    // each message is broken one way at most: 0.6 and 0.6 broke every message, 0.4 of them malformed
    refused(
      load('--invalid', '0.6', '--malformed', '0.6'),
      /^presence simulate: --invalid 0\.6 and --malformed 0\.6: together more than 1 \(each message is broken one way at most\)$/,
    );
    refused(load('--duplicate', '5'), /--duplicate: must be a share from 0 to 1, like 0\.01 \(got "5"\)/);
  });

  it('--site and --window of load mode are checked before connecting (they failed after it, exit 1, naming no flag)', () => {
    // No broker listens on port 1: a check after connecting would say ECONNREFUSED instead.
    refused(
      simulate('--load', '--count', '1', '--site', 'Bad Site', '--mqtt-url', 'mqtt://127.0.0.1:1'),
      /^presence simulate: --site "Bad Site": must be lower-case letters, digits, - and _/,
    );
    refused(
      simulate('--load', '--count', '1', '--window', '40d', '--mqtt-url', 'mqtt://127.0.0.1:1'),
      /^presence simulate: --window 40d: a counts window is at most 24h \(the contract's limit\)$/,
    );
  });

  it("load's --mqtt-url with a % in its password that starts no escape says so, without the password (it said the URL must be one like mqtt://host:1883)", () => {
    const r = simulate('--load', '--count', '1', '--mqtt-url', 'mqtt://u:Pw-in-url%Zz@127.0.0.1:1');
    refused(r, /^presence simulate: --mqtt-url: holds a % in its user name or password that starts no %XX escape .*%25.* \(got "mqtt:\/\/127\.0\.0\.1:1"\)$/);
    expect(r.out + r.err).not.toContain('Pw-in-url');
  });

  it("load windows that would begin before 2000 are refused before connecting (they failed after it with the contract's reason)", () => {
    refused(
      simulate('--load', '--count', '100000000', '--gateways', '1', '--mqtt-url', 'mqtt://127.0.0.1:1'),
      /^presence simulate: --count 100000000: 100,000,000 messages of 1 gateways in 1m windows ending now begin before 2000, the years a gateway counts$/,
    );
    refused(
      simulate('--load', '--duration', '31d', '--rate', '1000', '--gateways', '1', '--mqtt-url', 'mqtt://127.0.0.1:1'),
      /^presence simulate: --duration 31d at --rate 1000: /,
    );
  });

  it('--rssi-min is a signal level and --sketch-p a probability; every scenario is checked before the first runs', () => {
    refused(
      simulate('quiet-night', '--evaluate', '--duration', '1m', '--rssi-min', '500'),
      /--rssi-min: must be a signal level in dBm between -128 and 127, like -80 \(got "500"\)/,
    );
    refused(
      simulate('traffic-corridor', '--evaluate', '--duration', '1m', '--sketch-p', '2'),
      /--sketch-p: must be a share from 0 to 1, like 0\.01 \(got "2"\)/,
    );
    // crossroads (first) holds 3,337 people at --scale 11, kingsday-square (second) 330,000: it printed crossroads' tables first
    refused(simulate('--evaluate', '--duration', '1m', '--scale', '11'), /--scale 11: kingsday-square would hold 330,000 people at its peak/);
    // a crowd past the largest number said "would hold Infinity people"
    refused(
      simulate('kingsday-square', '--duration', '1m', '--scale', '1e308', '--out', join(tmp, 'huge-scale')),
      /^presence simulate: --scale 1e308: kingsday-square would hold more than 1e308 people at its peak; the simulator holds at most 300,000 \(--scale 10 or less\)$/,
    );
  });
});

describe('presence simulate: a flag of another mode is refused, not ignored', () => {
  it('--radio on a pcapng stream, --out with --evaluate, --speed when writing files, --scale or a scenario with --load, two modes', () => {
    const out = join(tmp, 'modes');
    refused(
      simulate('quiet-night', '--live', '--speed', 'max', '--radio', 'wifi', '--duration', '1m'),
      /^presence simulate: --radio wifi: only with --format pcap/,
    );
    refused(
      simulate('quiet-night', '--live', '--speed', 'max', '--fifo', '--duration', '1m'),
      /^presence simulate: --fifo: makes the named pipes of --out or --pipe/,
    );
    refused(
      simulate('quiet-night', '--evaluate', '--duration', '1m', '--out', out),
      /^presence simulate: --out: used by a run that writes capture files or --live, not by --evaluate$/,
    );
    refused(
      simulate('quiet-night', '--speed', '10', '--duration', '1m', '--out', out),
      /^presence simulate: --speed: used by --live, not by a run that writes capture files$/,
    );
    refused(
      simulate('quiet-night', '--no-calibrate', '--duration', '1m', '--out', out),
      /^presence simulate: --no-calibrate: used by --evaluate, not by a run that writes capture files$/,
    );
    refused(simulate('--load', '--count', '1', '--scale', '2', '--mqtt-url', 'mqtt://127.0.0.1:1'), /^presence simulate: --scale: used by .*, not by --load$/);
    refused(
      simulate('quiet-night', '--load', '--count', '1', '--mqtt-url', 'mqtt://127.0.0.1:1'),
      /^presence simulate: scenario "quiet-night": --load publishes counts of virtual gateways and runs no scenario$/,
    );
    refused(simulate('--load', '--evaluate', '--count', '1'), /^presence simulate: --load and --evaluate: give one mode$/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('presence simulate --live: its outputs are checked before the stream starts', () => {
  it('an unknown --gateway, an --out that is a file or cannot be made, and a --pipe onto an existing file are one line each', () => {
    const live = (...args: string[]) => simulate('quiet-night', '--live', '--speed', 'max', '--duration', '1m', ...args);
    refused(live('--gateway', 'gw-nosuch'), /--gateway gw-nosuch: quiet-night has no such gateway \(its gateways: gw-lobby\)/);
    const file = join(tmp, 'live-file');
    writeFileSync(file, 'keep me');
    refused(live('--out', file), /--out .*live-file: is a file, not a folder/);
    refused(live('--out', '/proc/presence-live-test/x'), /--out \/proc\/presence-live-test\/x: cannot create the folder \/proc\/presence-live-test/);
    // it wrote the stream over the file, without a word
    refused(live('--pipe', file), /--pipe .*live-file: a file of that name exists, and --pipe does not write over it/);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
    // --out with --gateway: the folder is made for truth.jsonl (it was not, and the run failed on it)
    const out = join(tmp, 'live-one');
    const pipe = join(tmp, 'live-one.pcapng');
    const r = live('--out', out, '--gateway', 'gw-lobby', '--pipe', pipe);
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(join(out, 'truth.jsonl'), 'utf8')).toMatch(/"gateway":"gw-lobby"/);
  });

  it('a --pipe that is a folder is one line before the stream starts (it said "live stream started", then EISDIR, exit 1, no hint)', () => {
    const dir = join(tmp, 'live-pipe-folder');
    mkdirSync(dir);
    refused(
      simulate('quiet-night', '--live', '--speed', 'max', '--duration', '1m', '--pipe', dir),
      new RegExp(`^presence simulate: --pipe ${dir}: is a folder$`),
    );
  });

  it('--live --out DIR --fifo with a folder named truth.jsonl in DIR is one line before any pipe is made (it said "live stream started", then the folder, then waited for ever for the pipes\' readers)', () => {
    const out = join(tmp, 'live-truth-folder');
    mkdirSync(join(out, 'truth.jsonl'), { recursive: true });
    const r = simulateWithin(30_000, 'traffic-corridor', '--live', '--speed', 'max', '--duration', '1m', '--out', out, '--fifo');
    refused(
      r,
      new RegExp(`^presence simulate: --out ${out}: truth.jsonl there is a folder, not a file of an earlier run, and this run writes a file of that name$`),
    );
    expect(readdirSync(out)).toEqual(['truth.jsonl']); // no pipe made
  });
});

describe('presence demo: the same limits, before the calibration run starts', () => {
  const demo = (...args: string[]) => {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), 'demo', '--no-hold', '--http-port', 'off', ...args], {
      cwd: tmp,
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  /** What was wrong, one line each, then one hint; exit 2; the calibration run never started. */
  const refusedDemo = (r: ReturnType<typeof demo>, ...what: RegExp[]) => {
    const lines = r.err.trimEnd().split('\n');
    expect(lines, r.err).toHaveLength(what.length + 1);
    for (const [i, w] of what.entries()) expect(lines[i]).toMatch(new RegExp(`^presence demo: ${w.source}`));
    expect(lines[what.length]).toMatch(/^hint: \S/);
    expect(r.out).not.toMatch(/fitting a people calibration/);
    expect(r.code).toBe(2);
  };

  it('a scenario that does not exist or has mistakes, a crowd or a length the simulator cannot hold, a seed out of range', () => {
    refusedDemo(demo('--scenario', 'nosuch'), /nosuch: no such scenario file, and not a built-in scenario/);
    const file = join(tmp, 'demo-bad.yaml');
    writeFileSync(file, 'name: x\nsite: x\nduration: 1h\nwindow: 60s\ngateways:\n  - { id: g, zone: z, position: [0, 0], wifi: { dwell: fast } }\n');
    refusedDemo(demo('--scenario', file), /.*demo-bad\.yaml:6: gateways\[0\]\.wifi\.dwell: must be a duration/);
    refusedDemo(demo('--scale', '1e9'), /--scale 1000000000: kingsday-square would hold 3\.00e\+13 people at its peak; .*--scale 10 or less/);
    refusedDemo(demo('--minutes', '99999999'), /--minutes: at most 31d \(got "99999999"\)/);
    // a length that rounds to 0 s was blamed on the scenario file ('kingsday-square.yaml: duration: must be above 0 (got 0)', exit 1)
    refusedDemo(demo('--minutes', '1e-300'), /--minutes "1e-300": must be at least one simulated second \(0\.0167 minutes\), like 30$/);
    refusedDemo(demo('--seed', '-1'), /--seed: must be a whole number from 0 to 4294967295 \(got "-1"\)/);
    refusedDemo(demo('--minutes', '44640', '--window', '1s'), /--window 1s: 2,678,400 windows over 31d; .*\(--window 54s or longer\)/);
    // a month of 300,000 people: terabytes of captures, refused before they fill the disk
    refusedDemo(
      demo('--minutes', '44640', '--scale', '10', '--out', join(tmp, 'demo-disk')),
      /the demo would write about [\d.]+ TB \(the simulated captures of today and a week earlier [\d.]+ TB, their truth\.json and truth\.csv [\d.]+ [kMG]B, presence\.lp, demo\.log, calibration\.yaml and queues\/ [\d.]+ [kMG]B\), more than the [\d.]+ [kMGT]?B free/,
    );
    expect(existsSync(join(tmp, 'demo-disk'))).toBe(false);
  }, 180_000); // eight refused demo runs, each a process start: over a minute on a loaded machine

  it('--out that is a file, or a folder that cannot be made, is one line (was EEXIST with exit 1, and a hang under /proc)', () => {
    const file = join(tmp, 'demo-file');
    writeFileSync(file, 'x');
    refusedDemo(demo('--out', file), /--out .*demo-file: is a file, not a folder/);
    refusedDemo(demo('--out', '/proc/presence-demo-test/x'), /--out \/proc\/presence-demo-test\/x: cannot create the folder \/proc\/presence-demo-test/);
    expect(readFileSync(file, 'utf8')).toBe('x');
  }, 240_000);
});
