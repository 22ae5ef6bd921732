// presence simulate cut short: a live stream stopped by Ctrl-C (SIGINT) or SIGTERM, a --pipe file on
// a disk that fills, and a run of capture files whose truth does not fit beside them. The real CLI
// in its own process; a small tmpfs of the test's own (test/support/small-fs.ts) for the full disks.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mountSmallFs } from './support/small-fs.ts';

const repo = join(import.meta.dirname, '..');
const presence = join(repo, 'scripts/presence.js');
const root = mkdtempSync(join(tmpdir(), 'presence-simulate-stop-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * The records of a capture file (pcapng blocks, or a classic pcap's records after its header): how
 * many bytes they cover whole, the frames, and the last frame's time (ms).
 */
function records(path: string): { size: number; whole: number; frames: number; lastMs: number } {
  const b = readFileSync(path);
  let o = 0;
  let frames = 0;
  let lastMs = Number.NaN;
  if (b.readUInt32LE(0) === 0xa1b2c3d4) {
    o = 24;
    while (o + 16 <= b.length) {
      const len = b.readUInt32LE(o + 8);
      if (o + 16 + len > b.length) break;
      lastMs = b.readUInt32LE(o) * 1000 + b.readUInt32LE(o + 4) / 1000;
      o += 16 + len;
      frames++;
    }
  } else {
    while (o + 12 <= b.length) {
      const type = b.readUInt32LE(o);
      const len = b.readUInt32LE(o + 4);
      if (len < 12 || o + len > b.length || b.readUInt32LE(o + len - 4) !== len) break;
      if (type === 6) {
        lastMs = (b.readUInt32LE(o + 12) * 4294967296 + b.readUInt32LE(o + 16)) / 1000;
        frames++;
      }
      o += len;
    }
  }
  return { size: b.length, whole: o, frames, lastMs };
}

/** Runs `presence simulate args`; `signal` is sent once `ready()` holds (polled), or never. */
function simulate(
  args: string[],
  send?: { signal: NodeJS.Signals; ready: () => boolean },
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; sent: boolean }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [presence, 'simulate', ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sent = false;
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const poll = setInterval(() => {
      if (send && !sent && send.ready()) {
        sent = true;
        p.kill(send.signal);
      }
    }, 100);
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`simulate did not exit (safety net)\n${stderr}`));
    }, 90_000);
    p.on('exit', (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, sent });
    });
  });
}

/** The lines of stderr that are not JSON log lines. */
const said = (stderr: string) =>
  stderr
    .trimEnd()
    .split('\n')
    .filter((l) => l && !l.startsWith('{'));

const STOPPED =
  /^presence simulate: (SIG[A-Z]+): stopped before the end of the run, at (\S+) of its simulated (\S+) to (\S+) \(([\d,]+) frames\): (.+) holds? the run up to then, ending on a whole frame(?:; (\S+) holds the truth of the (\d+) windows? that closed before then)?$/;

describe('presence simulate --live stopped before the end of its run', () => {
  it('Ctrl-C (SIGINT) with --out: ends every capture on a whole frame, says which files hold the run up to when, and exits 130 (it was ended by the signal without a word)', async () => {
    const out = join(root, 'live-int');
    const truth = join(out, 'truth.jsonl');
    // an hour at 30x: two minutes of wall time, stopped once 2 windows have closed
    const r = await simulate(['traffic-corridor', '--scale', '0.5', '--live', '--speed', '30', '--duration', '1h', '--out', out], {
      signal: 'SIGINT',
      ready: () => existsSync(truth) && readFileSync(truth, 'utf8').split('\n').filter(Boolean).length >= 4,
    });
    expect(r.sent).toBe(true);
    expect(r.signal).toBe(null);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    const lines = said(r.stderr);
    expect(lines).toHaveLength(1);
    const m = STOPPED.exec(lines[0]);
    expect(m, lines[0]).not.toBeNull();
    const files = ['gw-a.pcapng', 'gw-b.pcapng'].map((f) => join(out, f));
    expect(m![1]).toBe('SIGINT');
    expect(m![6]).toBe(files.join(', '));
    expect(m![7]).toBe(truth);
    // every file whole up to its last frame, the last of them at the time said, the frames as said
    const recs = files.map(records);
    for (const x of recs) expect(x.whole).toBe(x.size);
    const atMs = Date.parse(m![2]);
    expect(Math.abs(Math.max(...recs.map((x) => x.lastMs)) - atMs)).toBeLessThan(1);
    expect(recs.reduce((n, x) => n + x.frames, 0)).toBe(Number(m![5].replace(/,/g, '')));
    expect(atMs).toBeLessThan(Date.parse(m![4]));
    // truth.jsonl: one line per gateway and window said
    expect(readFileSync(truth, 'utf8').split('\n').filter(Boolean)).toHaveLength(2 * Number(m![8]));
  }, 120_000);

  it('SIGTERM with --pipe FILE and a classic pcap: the same, for that file', async () => {
    const pipe = join(root, 'live-term.pcap');
    const r = await simulate(['quiet-night', '--live', '--speed', '60', '--duration', '2h', '--format', 'pcap', '--radio', 'ble', '--pipe', pipe], {
      signal: 'SIGTERM',
      ready: () => existsSync(pipe) && statSync(pipe).size > 20_000,
    });
    expect(r.sent).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    const lines = said(r.stderr);
    expect(lines).toHaveLength(1);
    const m = STOPPED.exec(lines[0]);
    expect(m, lines[0]).not.toBeNull();
    expect(m![1]).toBe('SIGTERM');
    expect(m![6]).toBe(pipe);
    expect(m![7]).toBeUndefined();
    const x = records(pipe);
    expect(x.whole).toBe(x.size);
    expect(x.frames).toBe(Number(m![5].replace(/,/g, '')));
    expect(Math.abs(x.lastMs - Date.parse(m![2]))).toBeLessThan(1);
  }, 120_000);
});

/** Runs `body` with a tmpfs of `options` on a new folder (unmounted after); skipped with a line where none can be mounted. */
function withSmallFs(name: string, options: string, body: (mnt: string) => Promise<void> | void) {
  return async () => {
    const mnt = join(root, name);
    mkdirSync(mnt);
    if (!mountSmallFs(`simulate: ${name}`, mnt, options)) return;
    try {
      await body(mnt);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  };
}

const PIPE_FIX = 'fix: free some space on its device, or give --pipe a path on another one, then run it again';

describe('presence simulate --live --pipe FILE on a disk that fills', () => {
  it(
    'removes the file it made and could not fill, and says so in one line (it was left behind cut short in its last frame)',
    withSmallFs('pipe-fills', 'size=256k', async (mnt) => {
      const pipe = join(mnt, 'live.pcapng');
      const r = await simulate(['quiet-night', '--live', '--speed', 'max', '--duration', '2h', '--pipe', pipe]);
      expect(r.code).toBe(1);
      expect(said(r.stderr)).toEqual([
        `presence simulate: the capture stream of gw-lobby (${pipe}): no space left on its device (ENOSPC); ${pipe} was removed (it held 256 kB of the stream, cut short where the disk filled); ${PIPE_FIX}`,
      ]);
      expect(readdirSync(mnt)).toEqual([]);
    }),
    60_000,
  );

  it(
    'full from the start: removes the empty file it made (it was left behind, empty)',
    withSmallFs('pipe-full', 'size=64k', async (mnt) => {
      try {
        writeFileSync(join(mnt, 'filler'), Buffer.alloc(1024 * 1024));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
      const pipe = join(mnt, 'live.pcapng');
      const r = await simulate(['quiet-night', '--live', '--speed', 'max', '--duration', '5m', '--pipe', pipe]);
      expect(r.code).toBe(1);
      expect(said(r.stderr)).toEqual([
        `presence simulate: the capture stream of gw-lobby (${pipe}): no space left on its device (ENOSPC); ${pipe} was removed (it was empty); ${PIPE_FIX}`,
      ]);
      expect(readdirSync(mnt)).toEqual(['filler']);
    }),
    60_000,
  );
});

const OUT_FIX = 'fix: free some space on its device, or give --out a path on another one, then run it again';

/** Every file left in `dir`, each checked whole to its end: a capture's records, truth.jsonl's lines. */
function leftWhole(dir: string): string[] {
  const files = readdirSync(dir).sort();
  for (const f of files) {
    const path = join(dir, f);
    if (f.endsWith('.pcapng') || f.endsWith('.pcap')) {
      const x = records(path);
      expect(x.whole, `${f} cut at ${x.whole} of ${x.size} bytes`).toBe(x.size);
    } else if (f === 'truth.jsonl') {
      const text = readFileSync(path, 'utf8');
      if (text) expect(text.endsWith('\n'), `${f} ends inside a line`).toBe(true);
      for (const l of text.split('\n').filter(Boolean)) expect(() => JSON.parse(l), `${f}: ${l.slice(-60)}`).not.toThrow();
    }
  }
  return files;
}

describe('presence simulate --live --out on a disk that fills', () => {
  it(
    'with two gateways: removes every capture file and truth.jsonl, and names each in one line (the one whose write failed first was removed, the other left cut inside a block, truth.jsonl left)',
    withSmallFs('out-fills', 'size=256k', async (mnt) => {
      const out = join(mnt, 'o');
      const r = await simulate(['traffic-corridor', '--live', '--speed', 'max', '--duration', '30m', '--out', out]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      // no file left cut short (none left: the captures could not be completed, and their truth went with them)
      expect(leftWhole(out)).toEqual([]);
      const lines = said(r.stderr);
      expect(lines).toHaveLength(1);
      const held = (f: string) => `${join(out, f)} \\(it held \\d[\\d.]* [kM]?B of the stream, cut short where the disk filled\\)`;
      expect(lines[0]).toMatch(
        new RegExp(
          `^presence simulate: the capture stream of gw-[ab] \\(${out}/gw-[ab]\\.pcapng\\): no space left on its device \\(ENOSPC\\); ` +
            `every capture file of the run was removed: ${held('gw-a.pcapng')}, ${held('gw-b.pcapng')}; ` +
            `${join(out, 'truth.jsonl')} was removed with them \\(it held the truth of \\d+ windows?\\); ${OUT_FIX.replace(/[()]/g, '\\$&')}$`,
        ),
      );
    }),
    60_000,
  );

  it(
    'with --gateway on stdout: the stream is left to its reader, truth.jsonl cut back to its last whole window and the windows it holds said (it was left ending inside a line)',
    withSmallFs('out-truth-fills', 'size=64k', async (mnt) => {
      const out = join(mnt, 'o');
      const r = await simulate(['traffic-corridor', '--live', '--speed', 'max', '--window', '1s', '--duration', '30m', '--gateway', 'gw-a', '--out', out]);
      expect(r.code, r.stderr).toBe(1);
      expect(leftWhole(out)).toEqual(['truth.jsonl']);
      const lines = said(r.stderr);
      expect(lines).toHaveLength(1);
      const truth = join(out, 'truth.jsonl');
      const m = new RegExp(
        `^presence simulate: --out ${truth}: no space left on its device \\(ENOSPC\\); the stream on stdout is left as it is; ` +
          `${truth} holds the truth of the (\\d+) windows? that closed before the disk filled, ending on a whole line; ${OUT_FIX.replace(/[()]/g, '\\$&')}$`,
      ).exec(lines[0]);
      expect(m, lines[0]).not.toBeNull();
      // one line per gateway and window said
      expect(readFileSync(truth, 'utf8').split('\n').filter(Boolean)).toHaveLength(2 * Number(m![1]));
    }),
    60_000,
  );
});

describe('presence simulate on a disk too small for its captures and their truth', () => {
  // Many short windows: truth.json and truth.csv hold more than the captures. The check counted the
  // captures alone (345 kB, on a disk of 1 MB), and the run then filled the disk (exit 1).
  const RUN = ['kingsday-square', '--scale', '0.004', '--duration', '6m', '--window', '1s'];

  it(
    'is refused before anything is written, saying what it counted, and what it counts is what the run writes',
    withSmallFs('truth-too-big', 'size=1m', async (mnt) => {
      // what the run writes on a disk large enough
      const big = join(root, 'truth-big');
      const whole = spawnSync(process.execPath, [presence, 'simulate', ...RUN, '--out', big], { cwd: repo, encoding: 'utf8' });
      expect(whole.status, whole.stderr).toBe(0);
      const sizes = readdirSync(big).map((f) => [f, statSync(join(big, f)).size] as const);
      const written = sizes.reduce((n, [, s]) => n + s, 0);
      const captures = sizes.filter(([f]) => f.endsWith('.pcapng')).reduce((n, [, s]) => n + s, 0);
      expect(captures).toBeLessThan(1024 ** 2 * 0.5); // the captures alone fit on the small disk
      expect(written).toBeGreaterThan(1024 ** 2); // with their truth they do not

      const out = join(mnt, 'out');
      const r = spawnSync(process.execPath, [presence, 'simulate', ...RUN, '--out', out], { cwd: repo, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(2);
      const m =
        /^presence simulate: this run would write about ([\d.]+) MB \(the captures [\d.]+ kB with their file headers, truth\.json and truth\.csv [\d.]+ kB\), more than the 1\.0 MB free on the file system of (\S+)$/m.exec(
          r.stderr,
        );
      expect(m, r.stderr).not.toBeNull();
      expect(m![2]).toBe(out);
      // an honest estimate: not below what the run writes, and not far above it
      const estimate = Number(m![1]) * 1024 ** 2;
      expect(estimate).toBeGreaterThanOrEqual(written);
      expect(estimate).toBeLessThan(written * 1.5);
      expect(existsSync(out)).toBe(false);
    }),
    120_000,
  );
});
