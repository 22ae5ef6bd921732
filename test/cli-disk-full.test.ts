// Every command that writes to a path the user gave, on a really full disk (a small tmpfs of each
// test's own; test/support/small-fs.ts): one line naming the option and the path, that the disk
// (or the quota) is full, and what to do: free space there or choose a path on another device.
// Files and folders all taken (a tmpfs with few inodes) is ENOSPC too, and reaches the writes after
// a command's check of the free bytes. The aggregator's line-protocol file on a full disk is in
// test/aggregator-file-disk.test.ts.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capturesDir } from './support/need.ts';
import { mountSmallFs } from './support/small-fs.ts';
import { eventually } from './support/wait.ts';

const repo = join(import.meta.dirname, '..');
const root = mkdtempSync(join(tmpdir(), 'presence-disk-full-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function presence(...args: string[]) {
  const r = spawnSync(process.execPath, [join(repo, 'scripts/presence.js'), ...args], { cwd: repo, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The lines of stderr that are not warnings or JSON log lines. */
const errorLines = (stderr: string) =>
  stderr
    .trimEnd()
    .split('\n')
    .filter((l) => l && !l.startsWith('{') && !l.includes(': warning: '));

/**
 * Runs `body` with a tmpfs of `options` mounted on a new folder, filled up to its last byte when
 * `fill`; unmounted after. Skipped (a line saying why) where no tmpfs can be mounted, failed under CI.
 */
function withSmallFs(name: string, options: string, fill: boolean, body: (mnt: string) => Promise<void> | void) {
  return async () => {
    const mnt = join(root, name);
    mkdirSync(mnt);
    if (!mountSmallFs(`disk full: ${name}`, mnt, options)) return;
    try {
      if (fill) {
        try {
          writeFileSync(join(mnt, 'filler'), Buffer.alloc(1024 * 1024));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        }
      }
      await body(mnt);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  };
}

const FIX = 'free some there, or choose a path on another device, then run it again';

const captures = capturesDir('disk full: presence calibrate --out');

describe('a full disk under a path given on the command line', () => {
  it.skipIf(!captures)(
    'presence calibrate --out: names --out, the path (and the file a link there leads to) and what to do, and leaves the file as it was (it said "PATH: ...; free some, then run it again", without --out, and through a link named the file only)',
    withSmallFs('calibrate', 'size=16k,mode=0755', false, (mnt) => {
      const occ = join(captures!, 'occupancy');
      const args = ['--capture', join(occ, 'sc6-61_2022-10-18.pcap'), '--truth', join(occ, 'sc6-61_2022-10-18_occupancy.csv'), '--zone', 'lab'];
      // a calibration there already, then the disk full
      const first = join(root, 'first.yaml');
      expect(presence('calibrate', ...args, '--out', first).code).toBe(0);
      const out = join(mnt, 'lab.yaml');
      copyFileSync(first, out);
      try {
        writeFileSync(join(mnt, 'filler'), Buffer.alloc(64 * 1024));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
      const before = readFileSync(out, 'utf8');
      const r = presence('calibrate', ...args, '--out', out);
      expect(r.code).toBe(2);
      expect(errorLines(r.stderr)).toEqual([
        `presence calibrate: --out ${out}: no space left on the device of ${mnt} (or the quota is full); ${FIX}; nothing was changed`,
      ]);
      // a link to it (/etc/presence/calibration.yaml -> one file per season): both named
      const link = join(root, 'calibration.yaml');
      symlinkSync(out, link);
      const viaLink = presence('calibrate', ...args, '--out', link);
      expect(viaLink.code).toBe(2);
      expect(errorLines(viaLink.stderr)).toEqual([
        `presence calibrate: --out ${link} (a link to ${out}): no space left on the device of ${mnt} (or the quota is full); ${FIX}; nothing was changed`,
      ]);
      expect(readFileSync(out, 'utf8')).toBe(before);
      expect(readdirSync(mnt).sort()).toEqual(['filler', 'lab.yaml']);
    }),
    120_000,
  );

  it(
    'presence simulate --out, the disk filled after its check of the free space (here: no file left to make): names --out and the folder, and leaves no partial file (it said "ENOSPC: no space left on device, open \'.../truth.json.partial\'")',
    withSmallFs('simulate-out', 'size=2m,nr_inodes=3,mode=0755', false, (mnt) => {
      const out = join(mnt, 'sim');
      const r = presence('simulate', 'quiet-night', '--duration', '5m', '--out', out);
      expect(r.code).toBe(1);
      expect(errorLines(r.stderr).slice(1)).toEqual([
        `presence simulate: --out ${out}/: no space left on its device (or the quota is full) while the files were written (ENOSPC); ${FIX}; files of an earlier run there are as they were`,
      ]);
      expect(readdirSync(out)).toEqual([]);
    }),
    60_000,
  );

  it(
    'presence simulate --live --pipe FILE: names the file and what to do, --pipe among it (it said "ENOSPC: no space left on device, write" and nothing to do), and removes the empty file it made',
    withSmallFs('simulate-pipe', 'size=64k,mode=0755', true, (mnt) => {
      const pipe = join(mnt, 'live.pcapng');
      const r = presence('simulate', 'quiet-night', '--live', '--speed', 'max', '--duration', '5m', '--pipe', pipe);
      expect(r.code).toBe(1);
      expect(errorLines(r.stderr)).toEqual([
        `presence simulate: the capture stream of gw-lobby (${pipe}): no space left on its device (ENOSPC); ${pipe} was removed (it was empty); fix: free some space on its device, or give --pipe a path on another one, then run it again`,
      ]);
      expect(existsSync(pipe)).toBe(false);
    }),
    60_000,
  );

  it(
    "presence simulate --live --out DIR: the truth appended to DIR/truth.jsonl on a full disk names --out and the file (it said only 'ENOSPC: no space left on device, write')",
    withSmallFs('simulate-live-truth', 'size=4k,mode=0755', false, async (mnt) => {
      // the captures go to named pipes (read here), the truth alone to the disk
      const out = join(mnt, 'live');
      const sim = spawn(
        process.execPath,
        [join(repo, 'scripts/presence.js'), 'simulate', 'quiet-night', '--live', '--speed', 'max', '--duration', '2h', '--out', out, '--fifo'],
        {
          cwd: repo,
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      sim.stderr.on('data', (d) => (stderr += d));
      const fifo = join(out, 'gw-lobby.pcapng');
      await eventually('the named pipe', () => existsSync(fifo) || sim.exitCode !== null);
      createReadStream(fifo).resume();
      const code = await new Promise((res) => sim.on('close', res));
      expect(code).toBe(1);
      // the pipe is left to its reader, truth.jsonl cut back to its last whole window (simulate-stop.test.ts)
      const truth = join(out, 'truth.jsonl');
      const lines = errorLines(stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `^presence simulate: --out ${truth}: no space left on its device \\(ENOSPC\\); ${fifo} is left as it is; ${truth} holds the truth of the \\d+ windows? that closed before the disk filled, ending on a whole line; fix: free some space on its device, or give --out a path on another one, then run it again$`,
        ),
      );
      const text = readFileSync(truth, 'utf8');
      expect(text === '' || text.endsWith('\n')).toBe(true);
    }),
    60_000,
  );

  it(
    "presence simulate --live --out DIR --fifo, truth.jsonl not made (no file left to make) while no gateway reads the pipe yet: says it and ends (it said it, then waited for ever for the pipe's reader)",
    withSmallFs('simulate-live-fifo', 'size=64k,nr_inodes=3,mode=0755', false, async (mnt) => {
      // the root, the folder and the named pipe take the three inodes: truth.jsonl cannot be made
      const out = join(mnt, 'live');
      const r = spawnSync(
        process.execPath,
        [join(repo, 'scripts/presence.js'), 'simulate', 'quiet-night', '--live', '--speed', 'max', '--duration', '5m', '--out', out, '--fifo'],
        { cwd: repo, encoding: 'utf8', timeout: 30_000 },
      );
      expect(r.signal).toBeNull(); // not ended by the timeout
      expect(r.status).toBe(1);
      expect(errorLines(r.stderr)).toEqual([
        `presence simulate: --out ${join(out, 'truth.jsonl')}: no space left on the device of ${out} (or the quota is full); ${FIX}`,
      ]);
      expect(r.stderr).not.toContain('waiting for a reader');
    }),
    60_000,
  );

  it(
    'presence corridor init --out and presence provision gateway --secret-out: the option, the path, what to do and where df shows the space (the hint said to fix the path or the permissions)',
    withSmallFs('secrets', 'size=64k,mode=0755', true, (mnt) => {
      const secret = join(mnt, 'main.secret');
      const corridor = presence('corridor', 'init', '--group', 'main', '--out', secret);
      expect(corridor.code).toBe(2);
      expect(corridor.stderr.trimEnd().split('\n')).toEqual([
        `presence corridor init: --out ${secret}: no space left on the device of ${mnt} (or the quota is full); ${FIX}`,
        `hint: nothing was changed; df -h ${mnt} shows the space left there`,
      ]);
      const dir = join(root, 'provision');
      mkdirSync(dir);
      const pw = join(mnt, 'g1.mqtt-password');
      const provision = presence(
        ...['provision', 'gateway', '--site', 's1', '--zone', 'z1', '--id', 'g1'],
        ...['--password-file', join(dir, 'passwd'), '--acl-file', join(dir, 'acl'), '--secret-out', pw],
      );
      expect(provision.code).toBe(2);
      expect(provision.stderr.trimEnd().split('\n')).toEqual([
        `presence provision gateway: --secret-out ${pw}: no space left on the device of ${mnt} (or the quota is full); ${FIX}; nothing was changed`,
        `hint: df -h ${mnt} shows the space left there`,
      ]);
      expect(readdirSync(mnt)).toEqual(['filler']);
      expect(readdirSync(dir)).toEqual([]);
    }),
    60_000,
  );
});
