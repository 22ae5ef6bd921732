// A long command's progress bar leaves the terminal as it found it. Ctrl-C ends `presence simulate`
// (or replay, calibrate) at once, while its work holds the event loop, so no code of the command
// runs to undo what the bar did: the bar hid the cursor and turned line wrapping off, and after a
// Ctrl-C the shell was left without a cursor and with lines cut at the right edge. The bar now
// changes no terminal mode and is narrowed to fit the terminal's width instead. And a simulation cut
// short by Ctrl-C leaves no capture cut off under a capture's name.
// The terminal is script(1)'s pseudo-terminal (util-linux); Ctrl-C is the ^C byte typed into it.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { barWidth } from '../scripts/lib/progress.ts';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-progress-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = `${process.execPath} ${join(ROOT, 'scripts/presence.js')}`;
const HIDE_CURSOR = '\x1b[?25l';
const NO_WRAP = '\x1b[?7l';

/** Runs `command` on a pseudo-terminal; types ^C once the bar has drawn `after` (when given). */
function onTerminal(command: string, interruptAt?: RegExp): Promise<{ code: number | null; out: string; interrupted: boolean }> {
  return new Promise((resolve, reject) => {
    const p = spawn('script', ['-qec', command, '/dev/null'], { cwd: tmp, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let interrupted = false;
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      if (interruptAt && !interrupted && interruptAt.test(out)) {
        interrupted = true;
        p.stdin.write('\x03');
      }
    });
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, interrupted });
    });
  });
}

describe('progress bar on a terminal', () => {
  it('Ctrl-C during presence simulate ends it (130), leaves the cursor shown and line wrapping on, and the earlier run in --out as it was', async () => {
    // An earlier, complete run in the same folder.
    const out = join(tmp, 'sim');
    const before = spawnSync(
      process.execPath,
      [join(ROOT, 'scripts/presence.js'), 'simulate', 'kingsday-square', '--scale', '0.01', '--duration', '10m', '--out', out],
      { encoding: 'utf8' },
    );
    expect(before.status, before.stderr).toBe(0);
    const names = readdirSync(out).sort();
    expect(names).toEqual(['gw-east.pcapng', 'gw-north.pcapng', 'gw-west.pcapng', 'truth.csv', 'truth.json']);
    const earlier = new Map(names.map((n) => [n, readFileSync(join(out, n))]));
    const t = await onTerminal(`${cli} simulate kingsday-square --seed 2 --scale 0.05 --duration 30m --out ${out}`, /simulate \[[^\]]*\] \d+%/);
    expect(t.interrupted, t.out).toBe(true);
    expect(t.code, t.out).toBe(130);
    expect(t.out).not.toContain(HIDE_CURSOR);
    expect(t.out).not.toContain(NO_WRAP);
    // The captures cut off went to .partial files: the earlier run's captures and truth are whole
    // and still together (they were overwritten, the truth left over beside empty captures).
    for (const [n, bytes] of earlier) expect(readFileSync(join(out, n)).equals(bytes), n).toBe(true);
    expect(
      readdirSync(out)
        .filter((n) => !earlier.has(n))
        .every((n) => n.endsWith('.partial')),
    ).toBe(true);
  });

  it('a run to its end draws no terminal mode change either, and every redraw fits a 60-column terminal', async () => {
    const t = await onTerminal(`stty cols 60 rows 24; ${cli} simulate quiet-night --duration 30m --out ${join(tmp, 'narrow')}`);
    expect(t.code, t.out).toBe(0);
    expect(t.out).toMatch(/simulate \[[^\]]*\] 100% \| 30\/30 windows/);
    expect(t.out).not.toContain(HIDE_CURSOR);
    expect(t.out).not.toContain(NO_WRAP);
    // each redraw: back to column 1, the bar, clear to the end of the line
    // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escapes
    const draws = [...t.out.matchAll(/\x1b\[1G(simulate \[[^\x1b]*)\x1b\[0K/g)].map((m) => m[1]);
    expect(draws.length).toBeGreaterThan(0);
    for (const d of draws) expect(d.length, d).toBeLessThan(60);
  });

  it('a size estimate that runs for seconds (a huge crowd) shows a bar of its own after its first second', async () => {
    // 300,000 people for a month: the estimate runs its whole frame budget, about 20 s of CPU, before
    // its line, and showed nothing until then. Ctrl-C once the bar is drawn: the estimate's wait is not the point.
    const big = await onTerminal(
      `${cli} simulate kingsday-square --scale 10 --duration 31d --yes --out ${join(tmp, 'huge')}`,
      /estimating the size \[[^\]]*\] \d+% \| [\d,]+\/1000000 frames \(at most\)/,
    );
    expect(big.interrupted, big.out).toBe(true);
    expect(big.code, big.out).toBe(130);
    expect(big.out).not.toContain(HIDE_CURSOR);
  });

  it('the bar is 40 wide where the line fits, narrower (at least 10) where it would not, as on a terminal of 80 columns where the width is unknown', () => {
    const format = 'replay [{bar}] {percentage}% | {value}/{total} bytes';
    const rest = 'replay [] 100% | 179841376/179841376 bytes'.length;
    // no width from the terminal (script(1)'s pseudo-terminal): cli-progress cuts lines at 80, so the bar fits 80
    expect(barWidth(format, 179841376, undefined)).toBe(80 - 1 - rest);
    expect(barWidth(format, 179841376, 0)).toBe(80 - 1 - rest);
    expect(barWidth(format, 179841376, 200)).toBe(40);
    expect(barWidth(format, 179841376, 80)).toBe(80 - 1 - rest);
    expect(barWidth(format, 179841376, 30)).toBe(10);
  });
});
