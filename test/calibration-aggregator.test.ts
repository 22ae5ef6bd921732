// Calibrated people in the aggregator: `presence aggregator --calibration FILE` as a real process
// against a real Mosquitto. A file that does not parse stops it at start with the reason; a good
// one adds calibrated=T and people, people_low, people_high to the calibrated radio's points of calibrated zones;
// SIGHUP reloads it, and a bad file on SIGHUP keeps the one in use and logs why.
// Windows with privacy.epsilon noise go through a real influxd 1.6.7 with their counts, whatever the epsilon.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from './support/need.ts';
import { freePort } from './support/ports.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import type { Aggregator } from '../aggregator/aggregator.ts';
import { calibratedAggregator, countsItem, publishAll, publisher, until, window } from './aggregator-helpers.ts';
import { countsLines, countsPoints, msSettings } from '../aggregator/messages.ts';
import { applyZone, Calibration, parseCalibration } from '../aggregator/calibration/index.ts';
import { windowPeople } from '../aggregator/calibration/apply.ts';
import { protect } from '../gateway/privacy.ts';
import { Rng } from '../simulator/rng.ts';

const ok = need('mosquitto', 'mosquitto', 'calibration-aggregator');
const okInflux = ok && need('influxd', 'influxdb', 'calibration-aggregator (influxd)');
const repo = join(import.meta.dirname, '..');

function calibrationYaml(k: number, b: number, zone = 'zone-a', windowS = 1): string {
  return `format: presence-calibration/1
estimator: { field: estimate, radio: wifi, window_s: ${windowS} }
level: 0.9
zones:
  ${zone}:
    k: { value: ${k}, low: ${k * 0.9}, high: ${k * 1.1}, sd: ${k * 0.05} }
    b: { value: ${b}, low: ${b - 1}, high: ${b + 1}, sd: 0.5 }
    corr_kb: 0.3
    residual_sd: 1.2
`;
}

/** A 60-s Wi-Fi calibration of zone-a with this line, these sds, correlation and residual (its intervals matter to no test here). */
function exactLine(o: { k: number; kSd: number; b: number; bSd: number; corr: number; residual: number }): Calibration {
  return new Calibration(
    parseCalibration(`format: presence-calibration/1
estimator: { field: estimate, radio: wifi, window_s: 60 }
level: 0.9
zones:
  zone-a:
    k: { value: ${o.k}, low: ${o.k}, high: ${o.k}, sd: ${o.kSd} }
    b: { value: ${o.b}, low: ${Math.min(o.b, -o.b)}, high: ${Math.max(o.b, -o.b)}, sd: ${o.bSd} }
    corr_kb: ${o.corr}
    residual_sd: ${o.residual}
`),
  );
}

/** people fields of the wifi lines of a zone, in file order. */
function peopleOf(text: string, zone: string, radio = 'wifi'): Array<{ estimate: number; people: number; low: number; high: number } | null> {
  return text
    .split('\n')
    .filter((l) => l.includes(`radio=${radio},`) && l.includes(`zone=${zone} `))
    .map((l) => {
      const f = (k: string) => {
        const m = new RegExp(`[ ,]${k}=([-\\d.]+)i?[ ,]`).exec(l);
        return m ? Number(m[1]) : null;
      };
      const people = f('people');
      return people === null ? null : { estimate: f('estimate')!, people, low: f('people_low')!, high: f('people_high')! };
    });
}

describe('people fields in points', () => {
  const cal = new Calibration(parseCalibration(calibrationYaml(0.5, 4, 'zone-a', 60)));
  const m = window('s', 'g', 3, Date.parse('2026-01-01T00:00:00Z'), 60_000, 'zone-a');

  it('are what the client Point writes, on the calibrated radio of a calibrated zone only', () => {
    const lines = countsLines(m, Date.parse(m.start), cal);
    expect(lines).toEqual(countsPoints(m, cal).map((p) => p.toLineProtocol(msSettings)));
    const p = applyZone(cal.file.zones['zone-a'], m.wifi.estimate);
    expect(lines[0]).toContain(`,people=${p.value},people_high=${p.high},people_low=${p.low} `);
    expect(lines[0]).toContain(' calibrated=T,complete=T,');
    expect(lines[1]).not.toContain('people');
    expect(lines[1]).not.toContain('calibrated');
    const other = { ...m, zone: 'zone-b' };
    expect(countsLines(other, Date.parse(m.start), cal).join('\n')).not.toMatch(/people|calibrated/);
    expect(countsLines(m, Date.parse(m.start), null)).toEqual(countsLines(m));
  });

  it('only for windows the calibration holds for: a complete window of its length, or a shorter cut-short one', () => {
    const t = Date.parse('2026-01-01T00:00:00Z');
    const five = window('s', 'g', 4, t, 300_000, 'zone-a');
    expect(countsLines(five, t, cal)[0]).not.toContain('people');
    expect(countsLines(five, t, cal)[0]).not.toContain('calibrated');
    const cut = { ...window('s', 'g', 5, t, 20_000, 'zone-a'), complete: false };
    expect(countsLines(cut, t, cal)[0]).toContain('people=');
    const short = window('s', 'g', 6, t, 20_000, 'zone-a');
    expect(countsLines(short, t, cal)[0]).not.toContain('people');
  });

  it('not for a radio the gateway suppressed (privacy.min_count): its 0 is no count of people', () => {
    const t = Date.parse(m.start);
    const zeros = { frames: 0, devices: 0, estimate: 0 };
    const suppressed = { ...m, privacy: { min_count: 5 }, wifi: { ...zeros, suppressed: true }, ble: { ...zeros, suppressed: true } };
    const lines = countsLines(suppressed, t, cal);
    expect(lines).toEqual(countsPoints(suppressed, cal).map((p) => p.toLineProtocol(msSettings)));
    expect(lines[0]).toContain(',suppressed=T ');
    expect(lines[0]).not.toContain('people');
    // It is still a calibrated zone's point: the dashboard must not take the zone for uncalibrated.
    expect(lines[0]).toContain(' calibrated=T,complete=T,');
    expect(lines[1]).not.toContain('calibrated');
    // A counted 0 of the same gateway (not suppressed) still gets its people.
    const counted = { ...suppressed, wifi: { ...zeros, suppressed: false } };
    expect(countsLines(counted, t, cal)[0]).toMatch(/,people=0,people_high=[\d.]+,people_low=0,suppressed=F /);
  });

  it('stay finite numbers line protocol can hold, for any count and any calibration the file format allows', () => {
    const max = 1_000_000;
    const widest = exactLine({ k: max, kSd: max, b: -max, bSd: max, corr: -1, residual: max });
    const huge = { ...m, wifi: { ...m.wifi, estimate: Number.MAX_SAFE_INTEGER, devices: Number.MAX_SAFE_INTEGER } };
    const line = countsLines(huge, Date.parse(m.start), widest)[0];
    for (const k of ['people', 'people_low', 'people_high']) expect(Number.isFinite(Number(new RegExp(`,${k}=([^, ]+)`).exec(line)![1]))).toBe(true);
  });

  it('stay finite numbers or are left out for any privacy.epsilon the contract allows (a noise too wide for a finite interval gives no people, the counts stay)', () => {
    const t = Date.parse(m.start);
    const max = 1_000_000;
    const wide = exactLine({ k: max, kSd: max, b: 0, bSd: 0, corr: 0, residual: 1 });
    for (const c of [cal, wide]) {
      for (const epsilon of [Number.MIN_VALUE, 1e-300, 1e-17, 1e-9, 0.5, 1e9, Number.MAX_SAFE_INTEGER]) {
        const noisy = { ...m, privacy: { min_count: 0, epsilon } };
        const lines = countsLines(noisy, t, c);
        // The hand-written line is what the client Point writes (which refuses a field that is not finite).
        expect(lines).toEqual(countsPoints(noisy, c).map((p) => p.toLineProtocol(msSettings)));
        expect(lines[0]).toContain(`estimate=${m.wifi.estimate}`);
        const fields = ['people', 'people_low', 'people_high'].map((k) => new RegExp(`,${k}=([^, ]+)`).exec(lines[0])?.[1]);
        if (fields[0] === undefined) expect(fields).toEqual([undefined, undefined, undefined]);
        else for (const f of fields) expect(f).toMatch(/^\d+(\.\d+)?(e\+\d+)?$/);
      }
      // An epsilon that leaves the interval finite still gets its people.
      expect(countsLines({ ...m, privacy: { min_count: 0, epsilon: 1e-9 } }, t, c)[0]).toContain(',people=');
    }
    // A noise variance past what a double holds: no people, the counts are written as they are.
    expect(countsLines({ ...m, privacy: { min_count: 0, epsilon: 1e-300 } }, t, cal)[0]).not.toContain('people');
  });

  it('with privacy.epsilon, hold the people as often as the level says despite the noise on the estimate', () => {
    // A line known exactly (k 1, b 0, residual 0.01): all the uncertainty is the gateway's noise.
    const exact = exactLine({ k: 1, kSd: 0, b: 0, bSd: 0, corr: 0, residual: 0.01 });
    const people = 40;
    const counted = { ...m, wifi: { ...m.wifi, devices: people, estimate: people } };
    const rng = new Rng(7);
    const uniform = () => 1 - rng.float();
    const settings = { minCount: 0, epsilon: 0.5, windowMs: 60_000 };
    let inside = 0;
    let insideWithout = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) {
      const noisy = protect(counted, settings, uniform);
      const p = windowPeople(exact, noisy, 'wifi', noisy.wifi)!;
      if (p.low <= people && people <= p.high) inside++;
      const bare = windowPeople(exact, { ...noisy, privacy: undefined }, 'wifi', noisy.wifi)!;
      if (bare.low <= people && people <= bare.high) insideWithout++;
    }
    expect(inside / n).toBeGreaterThanOrEqual(0.85);
    // The interval that ignores the noise would hold them far less often than it claims.
    expect(insideWithout / n).toBeLessThan(0.5);
  });

  it('are never negative', () => {
    const low = { ...m, wifi: { ...m.wifi, estimate: 0 } };
    expect(countsLines(low, Date.parse(m.start), cal)[0]).toMatch(/,people=0,people_high=[\d.]+,people_low=0 /);
  });
});

describe.skipIf(!ok)('presence aggregator --calibration (real process, real Mosquitto)', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-cal-agg-'));
  const procs: ChildProcess[] = [];

  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    for (const p of procs) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await new Promise((r) => p.once('exit', r));
      }
    }
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  function start(calibration: string, out: string, clientId: string, httpPort: number | 'off' = 'off') {
    const p = spawn(
      process.execPath,
      [
        join(repo, 'scripts/presence.js'),
        'aggregator',
        '--mqtt-url',
        broker.url,
        '--mqtt-client-id',
        clientId,
        '--out',
        out,
        '--http-port',
        String(httpPort),
        '--flush-interval',
        '20ms',
        '--calibration',
        calibration,
      ],
      { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, INFLUX_URL: '' } },
    );
    procs.push(p);
    const state = { log: '', code: null as number | null };
    p.stderr!.on('data', (d) => (state.log += d));
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r((state.code = code))));
    return { p, state, exited };
  }

  it.each([
    ['not YAML', 'format: presence-calibration/1\nzones: [a\nlevel: 1\n', /bad\.yaml:\d+:\d+: not valid YAML/],
    ['k not positive', calibrationYaml(-0.5, 4), /zones\.zone-a\.k\.value: must be above 0/],
    ['missing file', null, /nope\.yaml: no such file/],
  ])('a calibration file that does not parse stops it at start: %s', async (_name, text, message) => {
    const file = join(dir, text === null ? 'nope.yaml' : 'bad.yaml');
    if (text !== null) writeFileSync(file, text);
    const out = join(dir, 'never.lp');
    const { state, exited } = start(file, out, 'cal-bad');
    expect(await exited).toBe(2);
    const lines = state.log.trim().split('\n');
    expect(lines).toHaveLength(2); // the problem, then the hint
    expect(lines[0]).toMatch(/^presence aggregator: --calibration /);
    expect(lines[0]).toMatch(message);
    expect(lines[1]).toMatch(/^hint: give the file presence calibrate wrote/);
    expect(state.log).not.toContain('subscribed');
    expect(existsSync(out)).toBe(false);
  });

  it('says which calibrated zones no registered gateway is in, at start and after SIGHUP', async () => {
    const cfg = join(dir, 'registry.yaml');
    writeFileSync(cfg, 'aggregator:\n  gateways:\n    registry:\n      gw-a: { site: dam, zone: plein }\n');
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, calibrationYaml(0.5, 4, 'plien', 60));
    const p = spawn(
      process.execPath,
      [
        join(repo, 'scripts/presence.js'),
        'aggregator',
        '--config',
        cfg,
        '--mqtt-url',
        broker.url,
        '--mqtt-client-id',
        'cal-zones',
        '--out',
        join(dir, 'zones.lp'),
        '--http-port',
        'off',
        '--calibration',
        file,
      ],
      { cwd: repo, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, INFLUX_URL: '', PRESENCE_AGGREGATOR_CONFIG: '' } },
    );
    procs.push(p);
    let log = '';
    p.stderr!.on('data', (d) => (log += d));
    await until(
      'subscribed',
      () => log,
      (l) => l.includes('"msg":"subscribed"'),
    );
    const warnings = () => log.split('\n').filter((l) => l.includes("in no registered gateway's zone"));
    expect(warnings()).toHaveLength(1);
    const w = JSON.parse(warnings()[0]);
    expect(w.level).toBe(40);
    expect(w.msg).toBe("calibration zone plien is in no registered gateway's zone: no window there gets people");
    expect(w.zones).toEqual(['plien']);
    expect(w.registered_zones).toEqual(['dam/plein']);
    expect(w.file).toBe(file);
    expect(w.fix).toMatch(/presence calibrate --zone/);

    // the zone id corrected: reloaded on SIGHUP, no warning
    writeFileSync(file, calibrationYaml(0.5, 4, 'plein', 60));
    p.kill('SIGHUP');
    await until(
      'reloaded',
      () => log,
      (l) => l.includes('"msg":"gateway registry reloaded"') && l.includes('"msg":"calibration reloaded"'),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(warnings()).toHaveLength(1);

    // the registry moves the gateway to another zone: the calibration's zone is in none again
    writeFileSync(cfg, 'aggregator:\n  gateways:\n    registry:\n      gw-a: { site: dam, zone: noord }\n');
    p.kill('SIGHUP');
    await until('warned after the reload', warnings, (w) => w.length === 2);
    expect(JSON.parse(warnings()[1]).registered_zones).toEqual(['dam/noord']);
  });

  it('says once why a calibrated zone gets no people when its windows are not the fitted length', async () => {
    const file = join(dir, 'one-second.yaml');
    const out = join(dir, 'two-second.lp');
    writeFileSync(file, calibrationYaml(0.5, 4)); // fitted on 1-s windows
    const { p, state } = start(file, out, 'cal-length');
    const pub = await publisher(broker.url);
    try {
      await until(
        'subscribed',
        () => state.log,
        (l) => l.includes('"subscribed"'),
      );
      const t0 = Date.now() - 3_600_000;
      // Five 2-s windows of the calibrated zone, one of an uncalibrated zone (no note for it).
      const batch = [0, 1, 2, 3, 4].map((i) => window('site-len', 'gw-len', i, t0 + i * 2000, 2000, 'zone-a'));
      batch.push(window('site-len', 'gw-other', 0, t0, 2000, 'zone-b'));
      await publishAll(pub, batch.map(countsItem));
      await until(
        'lines written',
        () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean).length : 0),
        (c) => c >= 18,
      );
      expect(peopleOf(readFileSync(out, 'utf8'), 'zone-a').every((x) => x === null)).toBe(true);
      await until(
        'noted',
        () => state.log,
        (l) => l.includes('calibrated zone gets no people'),
      );
      const notes = state.log.split('\n').filter((l) => l.includes('calibrated zone gets no people'));
      expect(notes).toHaveLength(1);
      expect(JSON.parse(notes[0])).toMatchObject({ level: 40, site: 'site-len', zone: 'zone-a', window_s: 2, calibration_window_s: 1, calibration: file });
      expect(JSON.parse(notes[0]).msg).toContain('fix: calibrate on 2 s windows (presence calibrate --window 2s)');
    } finally {
      await pub.endAsync();
      p.kill('SIGTERM');
      await new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)));
    }
  });

  it('writes people for calibrated zones; SIGHUP reloads a good file and keeps the old one on a bad file', async () => {
    const file = join(dir, 'calibration.yaml');
    const out = join(dir, 'presence.lp');
    writeFileSync(file, calibrationYaml(0.5, 4));
    const httpPort = await freePort();
    const { p, state } = start(file, out, 'cal-good', httpPort);
    const health = async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json() as Promise<{ status: string; problems: string[] }>;
    const pub = await publisher(broker.url);
    const t0 = Date.now() - 3_600_000;
    let seq = 0;
    const send = async (n: number) => {
      const batch = [];
      for (let i = 0; i < n; i++, seq++)
        batch.push(window('site-cal', 'gw-a', seq, t0 + seq * 1000, 1000, 'zone-a'), window('site-cal', 'gw-b', seq, t0 + seq * 1000, 1000, 'zone-b'));
      await publishAll(pub, batch.map(countsItem));
      await until(
        'lines written',
        () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean).length : 0),
        (c) => c >= seq * 6, // two gateways, three points a window (wifi, ble, the marker)
      );
    };
    try {
      await until(
        'subscribed',
        () => state.log,
        (l) => l.includes('"subscribed"'),
      );
      expect(state.log).toContain('"calibration loaded"');
      await send(20);
      const first = new Calibration(parseCalibration(calibrationYaml(0.5, 4)));
      let text = readFileSync(out, 'utf8');
      let a = peopleOf(text, 'zone-a');
      expect(a).toHaveLength(20);
      for (const x of a) {
        const want = first.apply('zone-a', x!.estimate)!;
        expect(x).toEqual({ estimate: x!.estimate, people: want.value, low: want.low, high: want.high });
      }
      expect(peopleOf(text, 'zone-b').every((x) => x === null)).toBe(true);
      expect(peopleOf(text, 'zone-a', 'ble').every((x) => x === null)).toBe(true);

      // A good file on SIGHUP: new k and b from the next window on.
      writeFileSync(file, calibrationYaml(2, 1));
      p.kill('SIGHUP');
      await until(
        'reloaded',
        () => state.log,
        (l) => l.includes('"calibration reloaded"'),
      );
      await send(10);
      const second = new Calibration(parseCalibration(calibrationYaml(2, 1)));
      text = readFileSync(out, 'utf8');
      a = peopleOf(text, 'zone-a');
      for (const x of a.slice(20)) expect(x!.people).toBe(second.apply('zone-a', x!.estimate)!.value);

      // A bad file on SIGHUP: logged, the second calibration stays, the process goes on.
      writeFileSync(file, 'format: presence-calibration/1\nzones: {}\n');
      p.kill('SIGHUP');
      await until(
        'kept',
        () => state.log,
        (l) => l.includes('calibration not reloaded; keeping the one in use'),
      );
      const line = state.log.split('\n').find((l) => l.includes('calibration not reloaded'))!;
      expect(JSON.parse(line)).toMatchObject({
        level: 50,
        file,
        kept: ['zone-a'],
        fix: 'correct the file (or write it again with presence calibrate), then send SIGHUP again',
      });
      expect(JSON.parse(line).err).toMatch(/calibration\.yaml: .*missing key "estimator"/);
      // /healthz says so until a reload succeeds: the next restart would refuse the file.
      const degraded = await health();
      expect(degraded.status).toBe('degraded');
      expect(degraded.problems).toEqual([
        expect.stringMatching(
          /^calibration .*calibration\.yaml not reloaded on SIGHUP \(.*missing key "estimator".*\): the calibration loaded before is still in use; fix: /,
        ),
      ]);
      await send(10);
      text = readFileSync(out, 'utf8');
      a = peopleOf(text, 'zone-a');
      expect(a).toHaveLength(40);
      for (const x of a.slice(30)) expect(x!.people).toBe(second.apply('zone-a', x!.estimate)!.value);
      expect(p.exitCode).toBeNull();
      // The file corrected and SIGHUP again: ok.
      writeFileSync(file, calibrationYaml(2, 1));
      p.kill('SIGHUP');
      await until(
        'reloaded again',
        () => state.log.split('"calibration reloaded"').length,
        (n) => n === 3,
      );
      expect(await health()).toMatchObject({ status: 'ok', problems: [] });
    } finally {
      await pub.endAsync();
      p.kill('SIGTERM');
      await new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)));
    }
    expect(p.exitCode).toBe(0);
  });
});

describe.skipIf(!okInflux)('people of noisy windows into a real influxd 1.6.7 (real Mosquitto)', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  let agg: Aggregator | null = null;

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
  });
  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
  });

  it('a window of any privacy.epsilon the contract allows is stored with its counts (people only where their interval is finite)', async () => {
    const cal = new Calibration(parseCalibration(calibrationYaml(0.5, 4, 'zone-a', 60)));
    agg = calibratedAggregator(broker.url, influx.url, 'cal-agg-eps', cal);
    await agg.start();
    const pub = await publisher(broker.url);
    const t0 = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
    const epsilons = [1e-300, 1e-17, 1e-9, 0.5, 1e9];
    const msgs = epsilons.map((epsilon, i) => ({ ...window('site-eps', 'gw-eps', i, t0 + i * 60_000, 60_000, 'zone-a'), privacy: { min_count: 0, epsilon } }));
    try {
      await publishAll(pub, msgs.map(countsItem));
      // Every window's Wi-Fi point is stored (a people_high=Infinity made InfluxDB refuse two of them).
      const rows = await until(
        'the five Wi-Fi points in influxd',
        () => influx.rows(`SELECT "estimate", "people", "people_high", "people_low" FROM "presence" WHERE "site" = 'site-eps' AND "radio" = 'wifi'`),
        (r) => r.length === epsilons.length,
      );
      expect(rows.map((r) => r.estimate)).toEqual(msgs.map((m) => m.wifi.estimate));
      // Below about 1e-16 the noise's variance is past a double: no people; above, finite people.
      expect(rows.slice(0, 2).map((r) => r.people)).toEqual([null, null]);
      for (const r of rows.slice(2)) for (const k of ['people', 'people_high', 'people_low']) expect(Number.isFinite(r[k])).toBe(true);
    } finally {
      await pub.endAsync();
    }
  });
});
