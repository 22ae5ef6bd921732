// Queued windows this user may not read are kept, not deleted. A gateway run once as root (by hand,
// `sudo presence gateway`, on the service's folder) leaves root's files in the queue folder; the
// service, run as presence, then took each of them for a damaged file when its turn to be sent came
// and deleted it ("queue: unreadable window file removed", errno EACCES): windows it had accepted,
// lost. Now it refuses to start, naming the folder and the chown, and sends them once it may read
// them. Here the service's user is nobody; as root only. And a window file that cannot be read for
// another reason while it runs (EIO, EMFILE, ...) stays queued and on disk.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { CountsMessage } from '../contract/index.ts';
import { WindowQueue } from '../gateway/queue.ts';
import { counts, queuedWindow, subscriber, waitFor } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const window = (seq: number): CountsMessage => queuedWindow('q', seq);

describe('a window file that cannot be read while the gateway runs', () => {
  it('is logged and kept, queued and on disk', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-queue-unreadable-'));
    try {
      const lines: string[] = [];
      const log = pino({ level: 'trace' }, { write: (s: string) => void lines.push(s) });
      const queue = WindowQueue.open(dir, { maxWindows: 100, log });
      for (const seq of [1, 2]) queue.append(window(seq));
      // the system refuses to read it (here: a folder in its place, EISDIR; in the field EACCES, EIO, EMFILE)
      const file = join(dir, 'windows', readdirSync(join(dir, 'windows')).sort()[0]!);
      rmSync(file);
      mkdirSync(file);
      expect(queue.read(1)).toBeNull();
      expect(queue.has(1)).toBe(true);
      expect(existsSync(file)).toBe(true);
      expect(queue.depth).toBe(2);
      const logged = lines.map((l) => JSON.parse(l)).filter((e) => e.seq === 1);
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({
        level: 50,
        errno: 'EISDIR',
        msg: 'queue: window file cannot be read now; kept, and sent after a restart once it can be read',
      });
      expect(queue.read(2)).toMatchObject({ seq: 2 });
      queue.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const root = process.getuid?.() === 0;
const ok = root && need('runuser', 'util-linux', 'gateway queue owner') && need('mosquitto', 'mosquitto', 'gateway queue owner');
if (!root) console.warn('gateway queue owner: skipped: needs root (it leaves root-owned files for another user)');

describe.skipIf(!ok)("a queue folder holding another user's files", () => {
  // a folder the user nobody may enter, as /var/lib is for presence
  const dir = mkdtempSync('/tmp/presence-queue-owner-');
  chmodSync(dir, 0o755);
  const broker = new Mosquitto();
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the gateway refuses to start, naming the folder and the chown, deletes nothing, and sends every window once it may read them', async () => {
    await broker.start();
    const q = join(dir, 'q');
    // the service ran before (its seq file is nobody's); a run as root, by hand, left three windows
    // (the broker was away), root's, mode 0640
    const queue = WindowQueue.open(q, { maxWindows: 100 });
    for (const seq of [1, 2, 3]) queue.append(window(seq));
    queue.close();
    const before = readdirSync(join(q, 'windows')).sort();
    expect(before).toHaveLength(3);
    const nobody = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim());
    // the folders are the service's (StateDirectory=), the files in them root's
    chownSync(q, nobody, statSync(q).gid);
    chownSync(join(q, 'windows'), nobody, statSync(q).gid);
    chownSync(join(q, 'seq'), nobody, statSync(q).gid);
    const cli = join(import.meta.dirname, '..', 'scripts', 'presence.js');
    const args = ['gateway', '--site', 'q', '--zone', 'z', '--id', 'g', '--source', 'cmd:sleep 100', '--mqtt-url', broker.url, '--queue-dir', q];
    const refused = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, cli, ...args], { encoding: 'utf8', timeout: 30_000 });
    expect(refused.status, refused.stderr).toBe(2);
    expect(refused.stderr.split('\n')[0]).toBe(
      `presence gateway: queue.dir ${q}: 3 of its files cannot be read by user nobody (${join(q, 'windows', before[0]!)}: owner uid 0, mode 0640), 3 of them windows not yet sent; make the folder the gateway user's, e.g. sudo chown -R nobody ${q}, then start again`,
    );
    expect(readdirSync(join(q, 'windows')).sort()).toEqual(before);

    // the fix it names, and the windows go out
    spawnSync('chown', ['-R', 'nobody', q]);
    const sub = await subscriber(broker.url, { filter: 'presence/v1/q/g/counts' });
    const gw = spawn('runuser', ['-u', 'nobody', '--', process.execPath, cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    gw.stderr!.on('data', (d) => (stderr += d));
    try {
      await waitFor(() => counts(sub.messages, 'q').length >= 3, 20_000, `the three queued windows (${stderr})`);
      expect(
        counts(sub.messages, 'q')
          .map((m) => m.seq)
          .sort(),
      ).toEqual([1, 2, 3]);
      expect(stderr).not.toContain('removed');
    } finally {
      gw.kill('SIGTERM');
      await new Promise((r) => gw.once('exit', r));
      await sub.client.endAsync();
    }
  });
});
