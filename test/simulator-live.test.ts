// Live mode and the `presence simulate` command: paced streams equal the files, stdout feeds
// `presence replay`, named pipes work, bad input gets a clear message, --evaluate reports parity.
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { CaptureParser } from '../gateway/capture/pcap.ts';
import { pacedFrames, simulate } from '../simulator/index.ts';
import { runLive } from '../simulator/live.ts';
import { eventually } from './support/wait.ts';

const root = mkdtempSync(join(tmpdir(), 'sim-live-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const presence = join(import.meta.dirname, '..', 'scripts', 'presence.js');
const run = promisify(execFile);

async function collect(stream: PassThrough): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('runLive', () => {
  it('streams the same bytes as the file, paced to the requested speed', async () => {
    const file = await simulate({ scenario: 'quiet-night', durationS: 6, seed: 4, outDir: join(root, 'file') });
    const out = new PassThrough();
    const bytes = collect(out);
    const t0 = performance.now();
    const r = await runLive({ scenario: 'quiet-night', durationS: 6, seed: 4, speed: 10, outputs: [{ gateway: 'gw-lobby', stream: out }] });
    const wall = performance.now() - t0;
    expect(r.frames).toBe(file.gateways[0].frames);
    expect((await bytes).equals(readFileSync(file.gateways[0].pcap))).toBe(true);
    // 6 simulated seconds at 10x: the last frame is due after ~0.6 s, so a paced run cannot end
    // sooner. How much later it ends is the machine's speed, not the simulator's: no upper bound here.
    expect(wall).toBeGreaterThan(450);
  });

  it('writes one radio as classic pcap, readable by the capture parser', async () => {
    const out = new PassThrough();
    const bytes = collect(out);
    await runLive({
      scenario: 'quiet-night',
      durationS: 5,
      seed: 1,
      speed: Infinity,
      outputs: [{ gateway: 'gw-lobby', stream: out, format: 'pcap', radio: 'ble' }],
    });
    const p = new CaptureParser('live');
    const frames = p.push(await bytes);
    p.end();
    expect(frames.length).toBeGreaterThan(50);
    expect(new Set(frames.map((f) => f.linkType))).toEqual(new Set([256]));
  });

  it('classic pcap without --radio streams Wi-Fi, or BLE from a gateway without Wi-Fi, as --help says (it named no default)', async () => {
    const linkTypes = async (scenario: string | object, gateway: string) => {
      const out = new PassThrough();
      const bytes = collect(out);
      await runLive({ scenario: scenario as string, durationS: 60, seed: 1, speed: Infinity, outputs: [{ gateway, stream: out, format: 'pcap' }] });
      const p = new CaptureParser('live');
      const frames = p.push(await bytes);
      p.end();
      return new Set(frames.map((f) => f.linkType));
    };
    expect(await linkTypes('quiet-night', 'gw-lobby')).toEqual(new Set([127]));
    const bleOnly = join(root, 'ble-only.yaml');
    writeFileSync(
      bleOnly,
      'name: ble-only\nsite: s\nduration: 1m\ngateways:\n  - { id: gw-b, zone: z, position: [0, 0], wifi: false }\nfixed:\n  - { model: ibeacon, position: [2, 0] }\n',
    );
    expect(await linkTypes(bleOnly, 'gw-b')).toEqual(new Set([256]));
    const { stdout } = await run(process.execPath, [presence, 'simulate', '--help']);
    expect(stdout.replace(/\s+/g, ' ')).toContain('default wifi, or ble on a gateway without Wi-Fi');
  });

  it('pacedFrames releases frames in time order at the requested speed', async () => {
    const t0 = performance.now();
    let last = -Infinity;
    let n = 0;
    for await (const f of pacedFrames({ scenario: 'quiet-night', durationS: 4, seed: 2, speed: 8 })) {
      expect(f.frame.timestampMs).toBeGreaterThanOrEqual(last);
      expect(f.gatewayId).toBe('gw-lobby');
      last = f.frame.timestampMs;
      n++;
    }
    expect(n).toBeGreaterThan(50);
    expect(performance.now() - t0).toBeGreaterThan(350); // 4 s at 8x: the last frame after ~0.5 s
  });

  it('names an unknown gateway', async () => {
    await expect(runLive({ scenario: 'quiet-night', durationS: 5, outputs: [{ gateway: 'gw-nope', stream: new PassThrough() }] })).rejects.toThrow(
      'live: no gateway "gw-nope" in scenario quiet-night (gateways: gw-lobby)',
    );
  });
});

describe('presence simulate (CLI)', () => {
  it('writes captures and truth, identical for the same seed', async () => {
    const a = await run('node', [presence, 'simulate', 'traffic-corridor', '--duration', '2m', '--scale', '0.2', '--seed', '5', '--out', join(root, 'cli-a')]);
    await run('node', [presence, 'simulate', 'traffic-corridor', '--duration', '2m', '--scale', '0.2', '--seed', '5', '--out', join(root, 'cli-b')]);
    expect(a.stdout).toMatch(/traffic-corridor: \d+ people, \d+ devices/);
    for (const f of ['gw-a.pcapng', 'gw-b.pcapng', 'truth.json', 'truth.csv'])
      expect(readFileSync(join(root, 'cli-a', f)).equals(readFileSync(join(root, 'cli-b', f))), f).toBe(true);
  });

  it('--live to stdout feeds `presence replay -`', async () => {
    const sim = spawn('node', [presence, 'simulate', 'quiet-night', '--live', '--speed', 'max', '--duration', '2m', '--seed', '2'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const replay = spawn('node', [presence, 'replay', '-', '--json'], { stdio: ['pipe', 'pipe', 'pipe'] });
    sim.stdout.pipe(replay.stdin);
    let out = '';
    replay.stdout.on('data', (d) => (out += d));
    const code = await new Promise((res) => replay.on('close', res));
    expect(code).toBe(0);
    const windows = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(windows.length).toBe(2);
    const truth = await simulate({ scenario: 'quiet-night', durationS: 120, seed: 2, outDir: join(root, 'live-truth') });
    expect(windows.map((w) => [w.wifi.devices, w.ble.devices])).toEqual(truth.truth.windows.map((w) => [w.addresses.wifi, w.addresses.ble]));
  });

  it('a reader of stdout that leaves early (| head -c 1000): the run ends quietly, exit 0, no error line; a failing write is still said', async () => {
    const sim = spawn('node', [presence, 'simulate', 'quiet-night', '--live', '--speed', 'max', '--duration', '30m'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    sim.stderr.on('data', (d) => (err += d));
    let got = 0;
    await new Promise<void>((res) =>
      sim.stdout.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= 1000) {
          sim.stdout.destroy();
          res();
        }
      }),
    );
    const code = await new Promise((res) => sim.on('close', res));
    expect(code).toBe(0);
    expect(err).not.toMatch(/EPIPE|presence simulate:|Error|\n\s+at /);
    // stdout a full disk: the write error is one line, exit 1
    const full = await promisify(execFile)('sh', ['-c', `node ${presence} simulate quiet-night --live --speed max --duration 5m > /dev/full`]).catch((e) => e);
    expect(full.code).toBe(1);
    expect(full.stderr.trimEnd().split('\n').pop()).toBe('presence simulate: the capture stream of gw-lobby (stdout): ENOSPC: no space left on device, write');
  });

  it('a reader that goes away: one line naming the gateway and its pipe, exit 1 (it said "the capture stream" of several)', async () => {
    const dir = join(root, 'fifo-gone');
    const sim = spawn('node', [presence, 'simulate', 'traffic-corridor', '--live', '--speed', 'max', '--duration', '10m', '--out', dir, '--fifo'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    sim.stderr.on('data', (d) => (err += d));
    const pipes = ['gw-a.pcapng', 'gw-b.pcapng'].map((f) => join(dir, f));
    await eventually('the simulator to create both named pipes', () => pipes.every((p) => existsSync(p)) || sim.exitCode !== null);
    // gw-a's reader reads on; gw-b's reads the first bytes and leaves.
    const a = (async () => {
      for await (const _ of createReadStream(pipes[0])) void _;
    })();
    const b = createReadStream(pipes[1]);
    await new Promise((res) => b.once('data', res));
    b.destroy();
    const code = await new Promise((res) => sim.on('close', res));
    await a;
    expect(code).toBe(1);
    const last = err.trimEnd().split('\n').pop();
    expect(last).toBe(`presence simulate: the reader closed the capture stream of gw-b (${join(dir, 'gw-b.pcapng')}) (EPIPE)`);
  });

  it('--live --fifo with a pipe nobody reads yet: after a few seconds one line names it and the gateway to start; the run goes on once it is read', async () => {
    const dir = join(root, 'fifo-waiting');
    const sim = spawn('node', [presence, 'simulate', 'traffic-corridor', '--live', '--speed', 'max', '--duration', '2m', '--out', dir, '--fifo'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    sim.stderr.on('data', (d) => (err += d));
    const pipes = ['gw-a.pcapng', 'gw-b.pcapng'].map((f) => join(dir, f));
    await eventually('the simulator to create both named pipes', () => pipes.every((p) => existsSync(p)) || sim.exitCode !== null);
    // Only gw-a is read at first.
    const drain = async (p: string) => {
      for await (const _ of createReadStream(p)) void _;
    };
    const a = drain(pipes[0]);
    // A simulator that never says so would wait on gw-b's pipe for ever: it goes with the test.
    const closed = new Promise((res) => sim.on('close', res));
    try {
      await eventually('the waiting line for gw-b', () => err.includes('waiting for a reader') || sim.exitCode !== null, 20_000);
    } catch (e) {
      sim.kill();
      throw e;
    }
    const lines = err
      .split('\n')
      .filter((l) => l.includes('waiting for a reader'))
      .map((l) => JSON.parse(l) as { level: number; gateway: string; pipe: string; msg: string });
    if (lines.length !== 1) sim.kill();
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        gateway: 'gw-b',
        pipe: pipes[1],
        msg: `waiting for a reader of the named pipe ${pipes[1]}: the live stream goes on once every pipe has one (start the gateway gw-b with --source pcap:${pipes[1]})`,
      }),
    ]);
    const b = drain(pipes[1]);
    expect(await closed).toBe(0);
    await Promise.all([a, b]);
  }, 60_000);

  it('--live --fifo read late keeps its pace from the reader on (the frames due while it waited came in one burst)', async () => {
    const dir = join(root, 'fifo-late');
    // 1 simulated minute at 20x: 3 s of stream once the pipe has its reader.
    const sim = spawn('node', [presence, 'simulate', 'quiet-night', '--live', '--speed', '20', '--duration', '1m', '--out', dir, '--fifo'], {
      stdio: 'ignore',
    });
    const closed = new Promise((res) => sim.on('close', res));
    const pipe = join(dir, 'gw-lobby.pcapng');
    await eventually('the simulator to create the named pipe', () => existsSync(pipe) || sim.exitCode !== null);
    // The gateway starts 3 s late: the whole minute was due by then, and was written at once.
    await new Promise((r) => setTimeout(r, 3000));
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    for await (const c of createReadStream(pipe)) chunks.push(c as Buffer);
    const wall = performance.now() - t0;
    expect(await closed).toBe(0);
    const parser = new CaptureParser('fifo');
    expect(parser.push(Buffer.concat(chunks)).length).toBeGreaterThan(1000);
    parser.end();
    // Its last frames are due ~3 s after the reader came (no upper bound: that is the machine's speed).
    expect(wall).toBeGreaterThan(2000);
  }, 60_000);

  it('--live --fifo writes each gateway to a named pipe', async () => {
    const dir = join(root, 'fifo');
    const sim = spawn(
      'node',
      [presence, 'simulate', 'traffic-corridor', '--live', '--speed', 'max', '--duration', '3m', '--scale', '0.5', '--out', dir, '--fifo'],
      { stdio: 'ignore' },
    );
    const pipes = ['gw-a.pcapng', 'gw-b.pcapng'].map((f) => join(dir, f));
    await eventually('the simulator to create both named pipes', () => pipes.every((p) => existsSync(p)) || sim.exitCode !== null);
    for (const p of pipes) expect(statSync(p).isFIFO()).toBe(true);
    const bytes = await Promise.all(
      pipes.map(async (p) => {
        const chunks: Buffer[] = [];
        for await (const c of createReadStream(p)) chunks.push(c as Buffer);
        return Buffer.concat(chunks);
      }),
    );
    expect(await new Promise((res) => sim.on('close', res))).toBe(0);
    for (const b of bytes) {
      const parser = new CaptureParser('fifo');
      expect(parser.push(b).length).toBeGreaterThan(10);
      parser.end();
    }
  });

  it('explains a scenario file with mistakes and a mistake in the call (exit 2, one line per problem, a hint line), and a failure while running (exit 1)', async () => {
    const bad = join(root, 'bad.yaml');
    writeFileSync(bad, 'name: x\nsite: x\nduration: forever\ngateways: []\n');
    const e1 = await run('node', [presence, 'simulate', bad]).catch((e) => e);
    expect(e1.code).toBe(2);
    expect(e1.stderr).toContain(`presence simulate: ${bad}:3: duration: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (got "forever")\n`);
    expect(e1.stderr).toContain(`presence simulate: ${bad}:4: gateways: must be a list of at least 1 item, not 0 (got [])\n`);
    expect(e1.stderr).toMatch(/\nhint: \S/);
    const e2 = await run('node', [presence, 'simulate', 'quiet-night', '--format', 'tar']).catch((e) => e);
    expect(e2.code).toBe(2);
    expect(e2.stderr).toContain('--format: must be pcap or pcapng (got "tar")\nhint: presence simulate --help');
    const e3 = await run('node', [presence, 'simulate', '--load', '--count', '1', '--mqtt-url', 'mqtt://127.0.0.1:1']).catch((e) => e);
    expect(e3.code).toBe(1);
    expect(e3.stderr).toMatch(/presence simulate: .*ECONNREFUSED/);
  });

  it('--evaluate --json of every built-in prints one JSON object per scenario, one per line, as --help says (it said "print JSON", and the whole output is no JSON document)', async () => {
    const { stdout } = await run('node', [presence, 'simulate', '--evaluate', '--json', '--duration', '1m', '--scale', '0.01', '--no-calibrate', '--no-flows']);
    const lines = stdout.trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l).scenario)).toEqual(['crossroads', 'kingsday-square', 'quiet-night', 'traffic-corridor']);
    expect(() => JSON.parse(stdout)).toThrow();
    const help = (await run('node', [presence, 'simulate', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('--json evaluate: print JSON, one object per scenario on a line of its own');
  });

  it('--evaluate shows people from Wi-Fi as - for a gateway without Wi-Fi beside one with it (it showed 0 / 0, a perfect score)', async () => {
    // the sample scenario of simulator/README.md: gw-south has no Wi-Fi, gw-north's zone calibrates on Wi-Fi
    const file = join(root, 'market.yaml');
    const readme = readFileSync(join(import.meta.dirname, '..', 'simulator', 'README.md'), 'utf8');
    writeFileSync(file, /## Sample scenario\n\n```yaml\n([\s\S]*?)```/.exec(readme)![1].replace('duration: 2h', 'duration: 10m'));
    const { stdout } = await run('node', [presence, 'simulate', file, '--evaluate', '--no-flows']);
    const cells = (id: string) =>
      stdout
        .split('\n')
        .find((l) => l.startsWith(`│ ${id} `))!
        .split('│')
        .map((c) => c.trim())
        .slice(1, -1);
    // gateway, windows, Wi-Fi distinct, Wi-Fi estimate, BLE distinct, BLE estimate, people Wi-Fi, people BLE, both, parity
    expect(cells('gw-south').slice(1, 4)).toEqual(['0 / 10', '-', '-']);
    expect(cells('gw-south')[6]).toBe('-');
    expect(cells('gw-south')[7]).toMatch(/^\d+(\.\d+)? \/ \d+(\.\d+)?$/);
    expect(cells('gw-north')[6]).toMatch(/^\d+(\.\d+)? \/ \d+(\.\d+)?$/);
    const json = JSON.parse((await run('node', [presence, 'simulate', file, '--evaluate', '--no-flows', '--json'])).stdout);
    expect(json.gateways[1].people.wifi.windows).toBe(0);
  });

  it('--evaluate runs the firmware and reports errors and parity per gateway', async () => {
    const { stdout } = await run('node', [presence, 'simulate', 'quiet-night', '--evaluate', '--json', '--duration', '5m', '--seed', '3']);
    const e = JSON.parse(stdout);
    expect(e.scenario).toBe('quiet-night');
    expect(e.gateways[0].id).toBe('gw-lobby');
    expect(e.overall.wifi.windows).toBe(5);
    // The firmware counts exactly the distinct addresses of the capture (no table overflow here).
    expect(e.overall.wifi.parityMismatches).toBe(0);
    expect(e.overall.ble.parityMismatches).toBe(0);
    expect(e.overall.ble.firmwareDevices).toBe(e.overall.ble.captureAddresses);
    expect(e.overall.ble.devicesMape).toBeGreaterThanOrEqual(0);
    // People only from a calibration fitted on another seed, scored against people present.
    expect(e.calibration.fitSeed).toBe(4);
    expect(e.calibration.truth).toBe('peopleMean');
    for (const radio of ['wifi', 'ble']) {
      expect(e.calibration[radio].zones.map((z: { zone: string }) => z.zone)).toEqual(['lobby']);
      expect(e.overall.people[radio].windows).toBe(5);
      expect(e.overall.people[radio].mape).toBeGreaterThanOrEqual(0);
      expect(e.gateways[0].people[radio]).toEqual(e.overall.people[radio]);
    }
    // Both radios in one figure, with the robust WAPE and the interval's coverage beside the MAPE.
    expect(e.calibration.combined.zones.map((z: { zone: string }) => z.zone)).toEqual(['lobby']);
    expect(e.overall.people.combined.windows).toBe(5);
    for (const key of ['mape', 'wape', 'coverage']) expect(e.overall.people.combined[key]).toBeGreaterThanOrEqual(0);
    // and the reference: the same fit on the devices in reach as the simulator knows them
    expect(e.overall.people.reference.windows).toBe(5);
    // and from the phones in reach alone
    expect(e.overall.people.phones.windows).toBe(5);
    // the summary against the goal (people MAPE <= 15 %) carries the same figures
    expect(e.summary.goalMape).toBe(15);
    expect(e.summary.wifiEstimateMape).toBe(e.overall.wifi.estimateMape);
    expect(e.summary.bleEstimateMape).toBe(e.overall.ble.estimateMape);
    for (const radio of ['wifi', 'ble', 'combined', 'reference', 'phones']) expect(e.summary.people[radio]).toBe(e.overall.people[radio].mape);
    expect(e.summary.met).toEqual(['wifi', 'ble', 'combined'].filter((r) => e.overall.people[r].mape <= 15));
    // The table says which number is which: device counts are uncalibrated, people calibrated.
    const table = (await run('node', [presence, 'simulate', 'quiet-night', '--evaluate', '--duration', '5m', '--seed', '3', '--fit-seed', '7'])).stdout;
    // the address and estimate columns are named by what they count, and the note under the table says
    // both are uncalibrated and neither is people
    expect(table).toMatch(/Wi-Fi distinct\s.*\n.*addresses/);
    expect(table).toMatch(/Wi-Fi devices\s.*\n.*present \(estimate\)/);
    expect(table).toContain('both uncalibrated');
    expect(table).toContain('neither is people');
    expect(table).toMatch(/people from\s.*\n.*Wi-Fi \(calibrated\)/);
    expect(table).toContain('fitted on seed 7');
    expect(table).toMatch(/people from\s.*\n.*both radios/);
    // (seed 7's five windows all hold 4 people: nothing could be fitted there; seed 4 can be)
    expect(table).toContain('BLE: no calibration');
    const fitted = (await run('node', [presence, 'simulate', 'quiet-night', '--evaluate', '--duration', '5m', '--seed', '3'])).stdout;
    expect(fitted).toMatch(
      /WAPE %.*: Wi-Fi [\d.]+ \/ [\d.]+ \/ [\d.]+; BLE [\d.]+ \/ [\d.]+ \/ [\d.]+; both [\d.]+ \/ [\d.]+ \/ [\d.]+; reference.* [\d.]+ \/ [\d.]+ \/ [\d.]+$/m,
    );
    // one summary row per scenario: the estimates' errors, people per radio and the goal
    expect(fitted).toMatch(/summary: the scenario, 300 s in 60-s windows/);
    expect(fitted).toMatch(/people MAPE\s*│\n.*<= 15 %/);
    expect(fitted).toMatch(
      /│ quiet-night │ 3 \(4\)\s+│ 5 \/ 5\s+│ [\d.]+\s+│ [\d.]+\s+│ [\d.]+\s+│ [\d.]+\s+│ [\d.]+\s+│ [\d.]+\s+│ [\d.]+\s+│ (met: |not met \(best: )/,
    );
    const same = await run('node', [presence, 'simulate', 'quiet-night', '--evaluate', '--duration', '5m', '--seed', '3', '--fit-seed', '3']).catch((x) => x);
    expect(same.code).toBe(2);
    expect(same.stderr).toContain('--fit-seed: must differ from --seed (3)');
    const uncalibrated = JSON.parse(
      (await run('node', [presence, 'simulate', 'quiet-night', '--evaluate', '--json', '--duration', '5m', '--no-calibrate'])).stdout,
    );
    expect(uncalibrated.calibration).toBeNull();
    expect(uncalibrated.overall.people).toEqual({ wifi: null, ble: null, combined: null, reference: null, phones: null });
  });

  it('--evaluate --json on a corridor carries the flows object: errors beside the re-identification baseline, and epsilon', async () => {
    const { stdout } = await run('node', [presence, 'simulate', 'traffic-corridor', '--evaluate', '--json', '--duration', '20m', '--no-calibrate'], {
      maxBuffer: 64 << 20,
    });
    const flows = JSON.parse(stdout).flows;
    for (const k of ['count_error_pct', 'travel_median_error_pct', 'baseline_count_error_pct', 'baseline_travel_median_error_pct', 'epsilon']) {
      expect(Number.isFinite(flows[k]), k).toBe(true);
      expect(flows[k], k).toBeGreaterThanOrEqual(0);
    }
    expect(flows.sketch_path).toBe('firmware'); // made by the firmware, not the TypeScript reference
    // epsilon is the worst device's: its sketches times the epsilon of one sketch
    expect(flows.epsilon).toBeCloseTo(flows.sketches_per_device.max * flows.epsilon_per_sketch, 0);
    expect(flows.pairs.map((p: { from: string; to: string }) => `${p.from}>${p.to}`).sort()).toEqual(['gw-a>gw-b', 'gw-b>gw-a']);
    // calibrated on a run with another seed; the uncalibrated figures beside
    expect(flows.calibration_seed).toBe(1001);
    for (const k of ['matched_count_error_pct', 'baseline_matched_count_error_pct', 'travellers_count_error_pct'])
      expect(Number.isFinite(flows[k]), k).toBe(true);
    for (const p of flows.pairs) expect(p.expansion, `${p.from}>${p.to}`).toBeGreaterThan(0.5);
    expect(flows.p).toBeCloseTo(0.03, 3);
  });
});
