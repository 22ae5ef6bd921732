// presence demo cut short (Ctrl-C: SIGINT) in the middle of its replay, and options refused before
// anything is written. The real CLI, its embedded broker (Aedes), real gateways and aggregator.
import { describe, it, expect } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { mountSmallFs } from './support/small-fs.ts';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(dir, f)).isFile());
}

/** Runs `presence demo args`; `onOutput` sees stdout so far and may signal the process. */
function demo(
  args: string[],
  onOutput?: (stdout: string, kill: (s: NodeJS.Signals) => void) => void,
  timeoutMs = 120_000,
  influx: Record<string, string> = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INFLUX_'))), ...influx };
    const p = spawn(process.execPath, ['scripts/presence.js', 'demo', ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
      onOutput?.(stdout, (s) => p.kill(s));
    });
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`demo did not exit (safety net of ${timeoutMs} ms)\n${stdout}\n${stderr}`));
    }, timeoutMs);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A run of 20 simulated minutes at 4x (about 5 minutes) on a small crowd, today only: cut short long before its end. */
const LONG_RUN = ['--minutes', '20', '--speed', '4', '--scale', '0.05', '--no-calibrate', '--no-last-week', '--no-live', '--http-port', 'off', '--no-hold'];

describe('presence demo cut short by Ctrl-C', () => {
  it('writes what it received, deletes the captures it wrote (half-written ones too), says what was written and exits 130', async () => {
    const out = mkdtempSync(join(tmpdir(), 'presence-demo-int-'));
    const lp = join(out, 'presence.lp');
    let sent = false;
    let kill: ((s: NodeJS.Signals) => void) | undefined;
    // Interrupted once the replay has written some windows: long before its end.
    const poll = setInterval(() => {
      if (!sent && existsSync(lp) && readFileSync(lp, 'utf8').split('\n').filter(Boolean).length >= 3) {
        sent = true;
        kill?.('SIGINT');
      }
    }, 100);
    const r = await demo([...LONG_RUN, '--out', out], (_s, k) => (kill = k)).finally(() => clearInterval(poll));
    expect(sent).toBe(true);
    // Node's default ended it where it stood: killed by the signal, not a word, its captures left.
    expect(r.signal).toBe(null);
    expect(r.code).toBe(130);
    expect(r.stdout).toContain('presence demo: SIGINT: stopping before the end of the run');
    const points = readFileSync(lp, 'utf8').split('\n').filter(Boolean).length;
    expect(r.stdout).toContain(`${lp} holds ${points} points: the windows written before SIGINT, not the whole run`);
    expect(r.stdout).toMatch(/the \d+ simulated captures this run wrote \([\d.]+ [kM]B, those cut short included\) were deleted/);
    expect(r.stdout).not.toContain('error against the simulator');
    const left = files(out);
    expect(left.filter((f) => /\.pcap/.test(f))).toEqual([]);
    // The gateways stopped (each queue's lock file goes with its gateway): nothing runs on.
    expect(left.filter((f) => /queues\/[^/]+\/lock$/.test(f))).toEqual([]);
    expect(left).toContain(join('today', 'truth.json'));
    // Every line written whole.
    for (const l of readFileSync(lp, 'utf8').split('\n').filter(Boolean)) expect(l).toMatch(/^[a-z_]+,.* \d{13}$/);
  }, 180_000);

  it('keeps the whole captures with --keep-pcaps, and only deletes the ones cut short', async () => {
    const out = mkdtempSync(join(tmpdir(), 'presence-demo-int-'));
    let kill: ((s: NodeJS.Signals) => void) | undefined;
    let sent = false;
    const poll = setInterval(() => {
      const lp = join(out, 'presence.lp');
      if (!sent && existsSync(lp) && readFileSync(lp, 'utf8').length > 0) {
        sent = true;
        kill?.('SIGTERM');
      }
    }, 100);
    const r = await demo([...LONG_RUN, '--keep-pcaps', '--out', out], (_s, k) => (kill = k)).finally(() => clearInterval(poll));
    expect(r.code).toBe(130);
    expect(r.stdout).toContain('presence demo: SIGTERM: stopping before the end of the run');
    const pcaps = files(out).filter((f) => /\.pcap/.test(f));
    expect(pcaps.length).toBeGreaterThan(0);
    expect(pcaps.filter((f) => f.endsWith('.partial'))).toEqual([]);
  }, 180_000);
});

describe('presence demo options refused before anything is written', () => {
  for (const [flag, value] of [
    ['--calibration-radio', 'wlan'],
    ['--http-port', 'eighty'],
  ])
    it(`${flag} ${value}: refused, and no --out folder is made (it was, marked as the demo's, with an empty demo.log)`, async () => {
      const out = join(mkdtempSync(join(tmpdir(), 'presence-demo-int-')), 'new');
      const r = await demo(['--minutes', '1', '--no-hold', '--out', out, flag, value]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`presence demo: ${flag} "${value}": must be`);
      expect(existsSync(out)).toBe(false);
    });
});

describe('presence demo with INFLUX_* settings that are refused', () => {
  it("says so before anything is written: no --out folder is made (it was, marked as the demo's, with a demo.log)", async () => {
    // a port nothing listens on
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const out = join(mkdtempSync(join(tmpdir(), 'presence-demo-int-')), 'new');
    const r = await demo(['--minutes', '1', '--no-hold', '--out', out], undefined, 60_000, { INFLUX_URL: `http://127.0.0.1:${port}`, INFLUX_DB: 'presence' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`presence demo: INFLUX_URL http://127.0.0.1:${port}: no InfluxDB answers (ECONNREFUSED)`);
    expect(r.stdout).toBe('');
    expect(existsSync(out)).toBe(false);
  });
});

describe('two presence demo runs in one folder', () => {
  it('refuses the second while the first runs (they wrote over each other: one presence.lp of both runs, each saying it wrote its own), and a killed run does not lock the folder', async () => {
    const out = mkdtempSync(join(tmpdir(), 'presence-demo-int-'));
    let second: Promise<Awaited<ReturnType<typeof demo>>> | null = null;
    let kill: ((s: NodeJS.Signals) => void) | undefined;
    const first = demo([...LONG_RUN, '--out', out], (stdout, k) => {
      kill = k;
      if (!second && stdout.includes('simulating today')) second = demo(['--minutes', '1', '--no-calibrate', '--no-last-week', '--no-hold', '--out', out]);
    });
    // the first is cut short once the second has ended
    const waitSecond = async () => {
      while (!second) await new Promise((r) => setTimeout(r, 100));
      return second;
    };
    const r2 = await waitSecond();
    kill!('SIGINT');
    const r1 = await first;
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/^presence demo: --out \S+: another presence demo \(process \d+\) is running in this folder/m);
    expect(r2.stdout).toBe('');
    expect(r1.code).toBe(130);
    // presence.lp is the first run's alone, as many points as it says
    const points = readFileSync(join(out, 'presence.lp'), 'utf8').split('\n').filter(Boolean).length;
    expect(r1.stdout).toContain(`holds ${points} points`);
    expect(existsSync(join(out, '.presence-demo.lock'))).toBe(false);

    // A run killed outright (SIGKILL) leaves its lock: the next run takes it over.
    const killed = await demo([...LONG_RUN, '--out', out], (stdout, k) => stdout.includes('simulating today') && k('SIGKILL'));
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(out, '.presence-demo.lock'))).toBe(true);
    const next = await demo(['--minutes', '1', '--speed', 'max', '--scale', '0.05', '--no-calibrate', '--no-last-week', '--no-hold', '--out', out]);
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    expect(existsSync(join(out, '.presence-demo.lock'))).toBe(false);
  }, 240_000);
});

describe('presence demo on a disk too small for what it writes', () => {
  // A run of many short windows: its truth files, presence.lp and demo.log hold about as much as its
  // captures. The check before the run counted the captures only (550 kB, on a disk of 1 MB), and the
  // run then filled the disk.
  const RUN = [
    '--minutes',
    '2',
    '--window',
    '1s',
    '--scale',
    '0.05',
    '--speed',
    'max',
    '--no-last-week',
    '--no-calibrate',
    '--no-live',
    '--http-port',
    'off',
    '--no-hold',
  ];

  it('is refused before anything is written, saying what it counted, and what it counts is what a run writes', async () => {
    // What the run writes, on a disk large enough (captures kept, as they are there until its end).
    const big = mkdtempSync(join(tmpdir(), 'presence-demo-int-'));
    const whole = await demo([...RUN, '--keep-pcaps', '--out', big]);
    expect(whole.code, whole.stderr).toBe(0);
    const written = files(big).reduce((n, f) => n + statSync(join(big, f)).size, 0);
    const captures = files(big)
      .filter((f) => /\.pcapng$/.test(f))
      .reduce((n, f) => n + statSync(join(big, f)).size, 0);
    expect(captures).toBeLessThan(1024 ** 2 * 0.75); // the captures alone fit on the small disk below
    rmSync(big, { recursive: true, force: true });

    const mnt = join(mkdtempSync(join(tmpdir(), 'presence-demo-int-')), 'disk');
    mkdirSync(mnt);
    if (!mountSmallFs('demo: disk too small', mnt, 'size=1m')) return;
    try {
      const out = join(mnt, 'out');
      const r = await demo([...RUN, '--out', out]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      const m =
        /^presence demo: the demo would write about ([\d.]+) MB \(the simulated captures of today [\d.]+ kB, their truth\.json and truth\.csv [\d.]+ kB, presence\.lp, demo\.log and queues\/ [\d.]+ kB\), more than the 1\.0 MB free on the file system of (\S+)$/m.exec(
          r.stderr,
        );
      expect(m, r.stderr).not.toBeNull();
      expect(m![2]).toBe(out);
      // an honest estimate: not below what a run writes, and not far above it
      const said = Number(m![1]) * 1024 ** 2;
      expect(said).toBeGreaterThanOrEqual(written);
      expect(said).toBeLessThan(written * 1.5);
      expect(existsSync(out)).toBe(false);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  }, 120_000);
});

describe('presence demo when the disk of --out fills during the run', () => {
  it('says once that demo.log could not be written and goes on (a failed write to demo.log ended it with a stack trace, its captures left)', async () => {
    const mnt = join(mkdtempSync(join(tmpdir(), 'presence-demo-int-')), 'disk');
    mkdirSync(mnt);
    if (!mountSmallFs('demo: disk full', mnt, 'size=16m')) return;
    try {
      const out = join(mnt, 'out');
      let filled = false;
      // Once the captures are written (before the gateways start), the rest of the disk is taken.
      const poll = setInterval(() => {
        const today = join(out, 'today');
        if (filled || !existsSync(today) || !readdirSync(today).some((f) => f.endsWith('.pcapng'))) return;
        filled = true;
        const fd = openSync(join(mnt, 'filler'), 'w');
        const block = Buffer.alloc(64 * 1024, 1);
        try {
          for (;;) writeSync(fd, block);
        } catch {
          // full
        }
        for (const n of [4096, 512, 1])
          try {
            for (;;) writeSync(fd, Buffer.alloc(n, 1));
          } catch {
            // full
          }
        closeSync(fd);
      }, 20);
      const r = await demo([
        '--minutes',
        '3',
        '--speed',
        '10',
        '--scale',
        '0.05',
        '--no-calibrate',
        '--no-last-week',
        '--no-live',
        '--http-port',
        'off',
        '--no-hold',
        '--out',
        out,
      ]).finally(() => clearInterval(poll));
      expect(filled).toBe(true);
      expect(r.signal).toBe(null);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      const said = r.stderr.split('\n').filter((l) => l.includes('demo.log failed'));
      expect(said).toEqual([
        `presence demo: --out ${out}: writing ${join(out, 'demo.log')} failed (ENOSPC: no space left on its device); its lines are lost until it can be written again: free some space, or give an --out on a larger disk`,
      ]);
      // it went on to its end: the summary, and its captures deleted
      expect(r.stdout).toContain('count message');
      expect(files(out).filter((f) => /\.pcap/.test(f))).toEqual([]);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  }, 120_000);
});
