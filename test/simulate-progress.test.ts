// Long runs show progress on a terminal: `presence simulate` a bar over the windows it writes,
// `--evaluate` one per scenario over the scored run and the run the calibration is fitted on (it
// printed nothing until a scenario's table, minutes for a long run); with windows longer than a
// minute both bars count simulated minutes, so they move inside a window. On a pipe, no bar. And a live
// capture stream is not written to a terminal.
// The terminal is script(1)'s pseudo-terminal (util-linux, on every Debian).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-sim-progress-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = `${process.execPath} ${join(ROOT, 'scripts/presence.js')}`;
/** The command on a pseudo-terminal: stdout and stderr together, as a terminal shows them. */
const onTerminal = (args: string) => {
  const r = spawnSync('script', ['-qec', `${cli} ${args}`, '/dev/null'], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
  expect(r.error, 'script(1) from util-linux').toBeUndefined();
  return { code: r.status, out: r.stdout.replace(/\r/g, '\n') };
};
const onPipe = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });

describe('progress of long runs', () => {
  it('--evaluate: a bar per scenario over the scored and the fitting run, then the table; none on a pipe', () => {
    const t = onTerminal('simulate quiet-night --evaluate --duration 10m');
    expect(t.code, t.out).toBe(0);
    expect(t.out).toMatch(/evaluate quiet-night \[[^\]]*\] 100% \| 20\/20 windows/);
    expect(t.out.indexOf('20/20 windows')).toBeLessThan(t.out.indexOf('summary:'));
    const noCalibration = onTerminal('simulate quiet-night --evaluate --duration 10m --no-calibrate');
    expect(noCalibration.out).toMatch(/evaluate quiet-night \[[^\]]*\] 100% \| 10\/10 windows/);
    const p = onPipe(['simulate', 'quiet-night', '--evaluate', '--duration', '10m']);
    expect(p.status, p.stderr).toBe(0);
    expect(p.stderr + p.stdout).not.toMatch(/windows\s*$|\d+\/\d+ windows/m);
  });

  it('--evaluate: with windows longer than a minute, a bar over the simulated minutes of both runs that moves inside a window', () => {
    const t = onTerminal('simulate quiet-night --evaluate --duration 3h --window 3h --no-flows');
    expect(t.code, t.out).toBe(0);
    expect(t.out).toMatch(/evaluate quiet-night \[[^\]]*\] 100% \| 360\/360 simulated minutes/);
    const between = [...t.out.matchAll(/\| (\d+)\/360 simulated minutes/g)].map((m) => Number(m[1]));
    // inside the scored run's one window, and inside the fitting run's
    expect(
      between.some((n) => n > 0 && n < 180),
      t.out,
    ).toBe(true);
    expect(
      between.some((n) => n > 180 && n < 360),
      t.out,
    ).toBe(true);
  });

  it('simulate: with windows longer than a minute, a bar over the simulated minutes that moves inside a window (one 6-h window held it at 0/1)', () => {
    const t = onTerminal(`simulate quiet-night --duration 6h --window 6h --out ${join(tmp, 'long-window')}`);
    expect(t.code, t.out).toBe(0);
    expect(t.out).toMatch(/simulate \[[^\]]*\] 100% \| 360\/360 simulated minutes/);
    const between = [...t.out.matchAll(/\| (\d+)\/360 simulated minutes/g)].map((m) => Number(m[1])).filter((n) => n > 0 && n < 360);
    expect(between.length, t.out).toBeGreaterThan(0);
  });

  it('--live to stdout on a terminal is refused: a binary capture there is garbage on the screen', () => {
    const t = onTerminal('simulate quiet-night --live --speed max --duration 1m');
    expect(t.code).toBe(2);
    expect(t.out).toMatch(/^presence simulate: --live: the capture stream of gw-lobby goes to stdout, which is a terminal\n+hint: pipe it into its reader/m);
    expect(t.out).not.toContain(String.fromCharCode(0));
  });

  it('simulate: a bar over the windows it writes', () => {
    const t = onTerminal(`simulate quiet-night --duration 10m --out ${join(tmp, 'out')}`);
    expect(t.code, t.out).toBe(0);
    expect(t.out).toMatch(/simulate \[[^\]]*\] 100% \| 10\/10 windows/);
  });
});
