// Sizes up front: `presence simulate` prints the frames and bytes it is about to write, and past
// 200 MB stops (exit 2, nothing written) unless --yes. The estimate of a small run is exact.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { estimateOutput } from '../simulator/limits.ts';
import { loadScenario } from '../simulator/scenario.ts';
import { runScenario } from '../simulator/sim.ts';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-sim-size-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const simulate = (...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), 'simulate', ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });

describe('presence simulate: sizes up front', () => {
  it('prints the frames and bytes first; for a small run they are what it writes', () => {
    const out = join(tmp, 'small');
    const r = simulate('quiet-night', '--duration', '10m', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const m = /^presence simulate: about ([\d,]+) frames, ([\d.]+) (kB|MB) into /m.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const frames = Number(m![1].replace(/,/g, ''));
    const written = /(\d+) Wi-Fi and (\d+) BLE frames/.exec(r.stdout)!;
    expect(frames).toBe(Number(written[1]) + Number(written[2]));
    const bytes = readdirSync(out)
      .filter((f) => /\.pcapng$/.test(f))
      .reduce((n, f) => n + statSync(join(out, f)).size, 0);
    const said = Number(m![2]) * (m![3] === 'MB' ? 1024 ** 2 : 1024);
    // record bytes only (file and interface headers are not in the estimate): within 5 %
    expect(Math.abs(said - bytes) / bytes).toBeLessThan(0.05);
  });

  it('kingsday-square --scale 0.05 --duration 30m: the size it prints is what it writes (was 37.3 MB said, 26 MB written)', () => {
    // Its crowd at 10 % is a couple of dozen people, too few to scale up: counted exactly instead.
    const out = join(tmp, 'mid');
    const r = simulate('kingsday-square', '--seed', '1', '--scale', '0.05', '--duration', '30m', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const m = /^presence simulate: about ([\d,]+) frames, ([\d.]+) (kB|MB) into /m.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const written = /(\d+) Wi-Fi and (\d+) BLE frames/.exec(r.stdout)!;
    expect(Number(m![1].replace(/,/g, ''))).toBe(Number(written[1]) + Number(written[2]));
    const bytes = readdirSync(out)
      .filter((f) => /\.pcapng$/.test(f))
      .reduce((n, f) => n + statSync(join(out, f)).size, 0);
    const said = Number(m![2]) * (m![3] === 'MB' ? 1024 ** 2 : 1024);
    expect(Math.abs(said - bytes) / bytes).toBeLessThan(0.05);
  });

  it('a projected estimate counts the crowd too: quiet-night over 12 hours (its beacons stopped the count, and a day was said 15 % short)', () => {
    // Over 12 hours the fixed equipment's count reaches its half of the budget first and is projected;
    // the crowd's 1% sample (0.06 people) was counted with the equipment, stopped with it, and read as no crowd.
    const s = loadScenario('quiet-night', { durationS: 12 * 3600 });
    const est = estimateOutput(s, 1, 'll', 'pcapng');
    expect(est.projected).toBe(true);
    let frames = 0;
    for (const e of runScenario(s, { seed: 1 })) if (e.type === 'frame') frames++;
    expect(Math.abs(est.frames / frames - 1), `${est.frames} said, ${frames} made`).toBeLessThan(0.06);
  }, 120_000);

  it("past 200 MB (the README's old example: 1.8 GB) it stops before writing, exit 2, and names --yes", () => {
    const out = join(tmp, 'big');
    const r = simulate('kingsday-square', '--seed', '1', '--scale', '0.05', '--out', out);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/about [\d,]+ frames, [\d.]+ GB into .*big\/ \(estimated from a run at 1% of the crowd\)/);
    expect(r.stderr).toMatch(
      /presence simulate: this would write about [\d.]+ GB \(more than 200 MB\); pass --yes to write it\nhint: or make it smaller with --duration, --scale or --people/,
    );
    expect(existsSync(out)).toBe(false);
  });
});
