// A full disk never kills the gateway. The queue folder lives on a small tmpfs this test mounts (it
// runs as root; under CI=true a failed mount fails the suite instead of skipping it), which is
// filled to ENOSPC with the gateway running:
//   - WindowQueue on its own: appends do not throw, no temp file is left, windows are kept in
//     memory (bounded) and readable, the seq file is still updated (in place), and recover()
//     writes them out once there is space again;
//   - the real `presence gateway` process with a real Mosquitto: it keeps counting and publishing,
//     its retained status says queue_state disk_full (so do /metrics and /healthz), windows closed while both the disk was full
//     and the broker down are published once the broker is back, and once space returns it
//     recovers by itself; a restart on a full disk does not crash, removes stale temp files and
//     goes on with seq; a kill -9 while the disk is full does not make seq go back.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CountsMessage, type QueueState, siteFilter } from '../contract/index.ts';
import { WindowQueue } from '../gateway/queue.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { counts, spawnGateway, statuses, subscriber, waitFor, wifiCapture } from './gateway-support.ts';
import { freePort } from './support/ports.ts';
import { mountSmallFs } from './support/small-fs.ts';

const SUITE = 'gateway full disk';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

const root = mkdtempSync(join(tmpdir(), 'presence-gw-disk-'));
const mnt = join(root, 'mnt');
mkdirSync(mnt);

const mounted = mountSmallFs(SUITE, mnt, 'size=2m,mode=0755');
// A second one with a handful of inodes: once they are used, even a folder cannot be created.
const fewInodes = join(root, 'inodes');
mkdirSync(fewInodes);
const mountedInodes = mounted && mountSmallFs(SUITE, fewInodes, 'size=1m,nr_inodes=8,mode=0755');

const gateways: Array<ReturnType<typeof spawnGateway>> = [];
/** `presence gateway` as a child process, killed after the suite if a failed test left it running. */
function gateway(args: string[]): ReturnType<typeof spawnGateway> {
  const g = spawnGateway(args);
  gateways.push(g);
  return g;
}

afterAll(() => {
  for (const g of gateways) if (g.proc.exitCode === null && g.proc.signalCode === null) g.proc.kill('SIGKILL');
  if (mountedInodes) execFileSync('umount', ['-l', fewInodes]);
  if (mounted) execFileSync('umount', ['-l', mnt]);
  rmSync(root, { recursive: true, force: true });
});

/** Fills the filesystem of `dir` to ENOSPC with one file; returns it (unlink it to free the space). */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'a');
  const chunk = Buffer.alloc(4096, 0x5a);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Keeps the filesystem full (as other writers on a full disk do) until the returned function is called. */
function keepFull(dir: string): () => void {
  fill(dir);
  const t = setInterval(() => {
    try {
      fill(dir);
    } catch {
      clearInterval(t); // the test ended and the filesystem is gone
    }
  }, 20);
  return () => clearInterval(t);
}

const tmpFiles = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.tmp'))
    : [];

function msg(seq: number): CountsMessage {
  const r = { frames: 3, devices: 2, estimate: 2 };
  return {
    v: 1,
    site: 's',
    zone: 'z',
    gateway: 'g',
    seq,
    start: new Date(1.8e12 + seq * 1000).toISOString(),
    end: new Date(1.8e12 + seq * 1000 + 1000).toISOString(),
    complete: true,
    wifi: r,
    ble: r,
  };
}

describe.skipIf(!mounted)(`${SUITE}: the queue`, () => {
  it('on a full filesystem: no throw, no temp file, windows kept in memory (bounded), seq kept, written out once space returns', () => {
    const dir = join(mnt, 'unit');
    const states: QueueState[] = [];
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(s) });
    const q = WindowQueue.open(dir, { maxWindows: 100, memoryWindows: 3, log, onStateChange: (s) => states.push(s) });
    q.append(msg(1));
    q.append(msg(2));
    const filler = fill(mnt);
    for (let s = 3; s <= 5; s++) q.append(msg(s));
    expect(q.state).toBe('disk_full');
    expect(states).toEqual(['disk_full']);
    expect(lines.some((l) => l.includes('"code":"disk_full"') && l.includes('queue folder full'))).toBe(true);
    expect(q.depth).toBe(5);
    expect(q.inMemory).toBe(3);
    expect(q.pending(0, 10)).toEqual([1, 2, 3, 4, 5]);
    expect(q.read(4)).toEqual(msg(4));
    expect(readdirSync(join(dir, 'windows')).sort()).toEqual(['000000000001.json', '000000000002.json']);
    expect(tmpFiles(dir)).toEqual([]);
    // The seq of windows held only in memory is on disk (the seq file is rewritten in place).
    expect(Number(readFileSync(join(dir, 'seq'), 'utf8'))).toBe(5);
    // Acknowledged windows leave, from memory or disk, while the disk is full.
    q.remove(1);
    q.remove(3);
    expect(q.pending(0, 10)).toEqual([2, 4, 5]);
    // Bounded: past memoryWindows the oldest in memory is dropped and counted.
    for (let s = 6; s <= 7; s++) q.append(msg(s));
    expect(q.inMemory).toBe(3);
    expect(q.pending(0, 10)).toEqual([2, 5, 6, 7]);
    expect(q.dropped).toBe(1);
    expect(Number(readFileSync(join(dir, 'seq'), 'utf8'))).toBe(7);
    expect(q.recover()).toBe(false); // still full
    unlinkSync(filler);
    expect(q.recover()).toBe(true);
    expect(q.state).toBe('ok');
    expect(states).toEqual(['disk_full', 'ok']);
    expect(q.inMemory).toBe(0);
    expect(readdirSync(join(dir, 'windows')).sort()).toEqual(['000000000002.json', '000000000005.json', '000000000006.json', '000000000007.json']);
    q.close();
    const again = WindowQueue.open(dir, { maxWindows: 100 });
    expect(again.pending(0, 10)).toEqual([2, 5, 6, 7]);
    expect(again.read(7)).toEqual(msg(7));
    expect(again.nextSeq).toBe(8);
    again.close();
    rmSync(dir, { recursive: true });
  });

  it('stays degraded while the disk is full even once every window held in memory was acknowledged', () => {
    const dir = join(mnt, 'unit-acked');
    const q = WindowQueue.open(dir, { maxWindows: 100 });
    q.append(msg(1));
    const filler = fill(mnt);
    q.append(msg(2));
    expect(q.state).toBe('disk_full');
    q.remove(1);
    q.remove(2);
    fill(mnt); // the page window 1 held
    expect(q.depth).toBe(0);
    expect(q.recover()).toBe(false); // nothing left to write, but a write still fails
    expect(q.state).toBe('disk_full');
    unlinkSync(filler);
    expect(q.recover()).toBe(true);
    expect(tmpFiles(dir)).toEqual([]);
    q.close();
    rmSync(dir, { recursive: true });
  });

  it('opens on a full filesystem (stale temp files removed) and recovers', () => {
    const dir = join(mnt, 'unit-open');
    const q0 = WindowQueue.open(dir, { maxWindows: 100 });
    q0.append(msg(1));
    q0.close();
    writeFileSync(join(dir, 'windows', '000000000002.json.tmp'), '{"v":1,"seq":2,"cut sho');
    writeFileSync(join(dir, 'seq.tmp'), '00000');
    const filler = fill(mnt);
    const q = WindowQueue.open(dir, { maxWindows: 100 });
    expect(tmpFiles(dir)).toEqual([]);
    q.append(msg(2)); // the space the temp files held may take this one; keep filling until one is in memory
    fill(mnt);
    q.append(msg(3));
    expect(q.state).toBe('disk_full');
    expect(q.pending(0, 10)).toEqual([1, 2, 3]);
    unlinkSync(filler);
    expect(q.recover()).toBe(true);
    q.close();
    expect(WindowQueue.open(dir, { maxWindows: 100 }).pending(0, 10)).toEqual([1, 2, 3]);
    expect(tmpFiles(dir)).toEqual([]);
  });
});

describe.skipIf(!mountedInodes)(`${SUITE}: no inode left`, () => {
  it('opens where not even its folder can be created, keeps windows in memory, creates everything once it can', () => {
    const fillers: string[] = [];
    for (let i = 0; ; i++) {
      try {
        writeFileSync(join(fewInodes, `f${i}`), '');
        fillers.push(join(fewInodes, `f${i}`));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        break;
      }
    }
    const dir = join(fewInodes, 'q');
    const states: QueueState[] = [];
    const q = WindowQueue.open(dir, { maxWindows: 100, onStateChange: (s) => states.push(s) });
    expect(q.state).toBe('disk_full');
    expect(existsSync(dir)).toBe(false);
    q.append(msg(1));
    q.append(msg(2));
    expect(q.state).toBe('disk_full');
    expect(q.pending(0, 10)).toEqual([1, 2]);
    expect(q.read(2)).toEqual(msg(2));
    expect(q.recover()).toBe(false);
    for (const f of fillers) unlinkSync(f);
    expect(q.recover()).toBe(true);
    expect(states).toEqual(['disk_full', 'ok']);
    expect(readdirSync(join(dir, 'windows')).sort()).toEqual(['000000000001.json', '000000000002.json']);
    expect(Number(readFileSync(join(dir, 'seq'), 'utf8'))).toBe(2);
    expect(Number(readFileSync(join(dir, 'lock'), 'utf8').split(' ')[0])).toBe(process.pid);
    q.close();
    expect(tmpFiles(dir)).toEqual([]);
    const again = WindowQueue.open(dir, { maxWindows: 100 });
    expect(again.pending(0, 10)).toEqual([1, 2]);
    expect(again.nextSeq).toBe(3);
    again.close();
  });
});

/** `seq` of every "window closed" line of a gateway's log. */
const closedSeqs = (log: string): number[] =>
  log
    .split('\n')
    .filter((l) => l.includes('"msg":"window closed"'))
    .map((l) => JSON.parse(l).seq as number);

describe.skipIf(!mounted || !hasMosquitto)(`${SUITE}: the gateway process`, () => {
  const broker = new Mosquitto();
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
  });

  it('keeps counting and publishing with status disk_full, publishes windows held in memory, recovers when space returns; a restart on a full disk and a kill -9 while full lose no seq', async () => {
    const site = 'disk';
    const cap = wifiCapture(join(root, 'live.pcap'), { devices: 5, startMs: Date.parse('2026-05-01T10:00:00Z'), durationMs: 2000, framesPerS: 20 });
    // A live capture command: the capture once, then its records again every 0.3 s (wall clock windows).
    const script = join(root, 'capture.sh');
    writeFileSync(script, `#!/bin/sh\ncat '${cap.path}'\nwhile :; do tail -c +25 '${cap.path}'; sleep 0.3; done\n`, { mode: 0o755 });
    const queueDir = join(mnt, 'gw');
    const httpPort = await freePort();
    const args = [
      '--site',
      site,
      '--zone',
      'z',
      '--id',
      'g',
      '--mqtt-url',
      broker.url,
      '--source',
      `wifi=cmd:${script}`,
      '--window',
      '1s',
      '--status-interval',
      '1s',
      '--queue-dir',
      queueDir,
      '--http-port',
      String(httpPort),
    ];
    /** The queue_state gauge that is 1 on /metrics, and the /healthz status. */
    const scrape = async (): Promise<{ metric: string | undefined; health: string }> => {
      const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      const metric = /^presence_gateway_queue_state\{state="([a-z_]+)"\} 1$/m.exec(text)?.[1];
      const health = ((await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json()) as { status: string }).status;
      return { metric, health };
    };
    const sub = await subscriber(broker.url, { filter: siteFilter(site) });
    const seqs = () => counts(sub.messages, site).map((c) => c.seq);
    const alive = (g: ReturnType<typeof spawnGateway>) => g.proc.exitCode === null && g.proc.signalCode === null;

    // 1. Normal start.
    const g1 = gateway(args);
    await waitFor(() => seqs().length >= 2, 20_000, 'windows before the disk fills');

    // 2. The disk fills: counting and publishing go on, the status says disk_full.
    let stop = keepFull(mnt);
    const fullAt = sub.messages.length;
    await waitFor(() => statuses(sub.messages.slice(fullAt), site).some((s) => s.queue_state === 'disk_full'), 20_000, 'status disk_full');
    expect(g1.stderr()).toContain('queue folder full');
    const firstFull = closedSeqs(g1.stderr()).at(-1)!;
    await waitFor(() => seqs().filter((s) => s > firstFull).length >= 3, 20_000, 'windows published while the disk is full');
    const whileFull = counts(sub.messages, site).filter((c) => c.seq > firstFull);
    expect(
      whileFull.every((c) => c.wifi.devices > 0),
      JSON.stringify(counts(sub.messages, site)),
    ).toBe(true); // still counting
    expect(alive(g1)).toBe(true);
    expect(
      await scrape(),
      g1
        .stderr()
        .split('\n')
        .filter((l) => /queue folder|window closed/.test(l))
        .join('\n'),
    ).toEqual({ metric: 'disk_full', health: 'degraded' });

    // 3. The broker goes away too: windows only in memory are published once it is back.
    await broker.stop();
    const downFrom = closedSeqs(g1.stderr()).length;
    await waitFor(() => closedSeqs(g1.stderr()).length >= downFrom + 3, 20_000, 'windows closed with the broker down and the disk full');
    const heldInMemory = closedSeqs(g1.stderr()).slice(downFrom, downFrom + 3);
    expect(g1.stderr()).toMatch(/"queue_state":"disk_full","in_memory":[1-9]/);
    await broker.start();
    await waitFor(() => heldInMemory.every((s) => seqs().includes(s)), 30_000, `windows ${heldInMemory} held in memory, published after the broker came back`);
    expect(alive(g1)).toBe(true);

    // 4. Space returns: it recovers by itself.
    stop();
    unlinkSync(join(mnt, 'filler'));
    const freedAt = sub.messages.length;
    await waitFor(() => statuses(sub.messages.slice(freedAt), site).some((s) => s.queue_state === 'ok'), 60_000, 'status ok again');
    expect(g1.stderr()).toContain('queue folder writable again');
    expect((await scrape()).metric).toBe('ok');
    const afterRecovery = Math.max(...seqs());
    await waitFor(() => seqs().filter((s) => s > afterRecovery).length >= 2, 20_000, 'windows after recovery');
    g1.proc.kill('SIGTERM');
    expect(await g1.exited, g1.stderr().slice(-3000)).toBe(0);
    expect(tmpFiles(queueDir)).toEqual([]);
    const lastOfG1 = closedSeqs(g1.stderr()).at(-1)!;
    // Every window from the first to the last was published: none lost to the full disk.
    const got = new Set(seqs());
    for (let s = Math.min(...got); s <= lastOfG1; s++) expect(got.has(s), `seq ${s} published`).toBe(true);

    // 5. A restart on a full disk, with stale temp files of a crash: no crash, seq goes on.
    writeFileSync(join(queueDir, 'windows', `${String(lastOfG1 + 1).padStart(12, '0')}.json.tmp`), '{"v":1,"cut');
    writeFileSync(join(queueDir, 'seq.tmp'), '0000');
    stop = keepFull(mnt);
    const g2At = sub.messages.length;
    const g2 = gateway(args);
    await waitFor(
      () => statuses(sub.messages.slice(g2At), site).some((s) => s.state === 'online' && s.queue_state === 'disk_full'),
      20_000,
      'status disk_full after a restart on a full disk',
    );
    await waitFor(() => counts(sub.messages.slice(g2At), site).length >= 3, 20_000, 'windows published after a restart on a full disk');
    expect(alive(g2)).toBe(true);
    expect(Math.min(...counts(sub.messages.slice(g2At), site).map((c) => c.seq))).toBe(lastOfG1 + 1);
    expect(tmpFiles(queueDir)).toEqual([]);

    // 6. kill -9 while the disk is full: windows only in memory are gone, but seq never goes back.
    const lastOfG2 = Math.max(...counts(sub.messages.slice(g2At), site).map((c) => c.seq));
    g2.proc.kill('SIGKILL');
    await g2.exited;
    stop();
    unlinkSync(join(mnt, 'filler'));
    const g3At = sub.messages.length;
    const g3 = gateway(args);
    await waitFor(() => counts(sub.messages.slice(g3At), site).length >= 2, 20_000, 'windows after a kill -9 on a full disk');
    expect(Math.min(...counts(sub.messages.slice(g3At), site).map((c) => c.seq))).toBeGreaterThan(lastOfG2);
    g3.proc.kill('SIGTERM');
    expect(await g3.exited, g3.stderr().slice(-3000)).toBe(0);
    expect(tmpFiles(queueDir)).toEqual([]);
    await sub.client.endAsync();
  }, 240_000);
});

describe.skipIf(!mounted || !hasMosquitto)(`${SUITE}: stopped while windows are held in memory`, () => {
  it('the stop line does not say windows held in memory only are sent after the next start: it says how many are lost unless the folder takes them', async () => {
    const queueDir = join(mnt, 'q-stop');
    const closed = await freePort(); // no broker: nothing is acknowledged
    const g = gateway([
      '--site',
      's',
      '--zone',
      'z',
      '--id',
      'stop',
      '--mqtt-url',
      `mqtt://127.0.0.1:${closed}`,
      '--source',
      'cmd:sleep 600',
      '--window',
      '1s',
      '--queue-dir',
      queueDir,
      '--log-format',
      'json',
    ]);
    await waitFor(() => g.stderr().includes('gateway starting'), 20_000, 'the start');
    const stopFilling = keepFull(mnt);
    try {
      await waitFor(() => /"in_memory":[2-9]/.test(g.stderr()), 20_000, 'two windows held in memory');
      g.proc.kill('SIGTERM');
      await g.exited;
      const line = g
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => String(l.msg).startsWith('stopping with windows not yet acknowledged'));
      expect(line, g.stderr()).toBeDefined();
      expect(line!.msg).toMatch(
        /^stopping with windows not yet acknowledged; those on disk are sent after the next start, the \d+ held in memory only \(queue folder disk_full\) are lost unless the folder takes them now$/,
      );
      expect(line!.in_memory).toBeGreaterThanOrEqual(2);
    } finally {
      stopFilling();
      rmSync(join(mnt, 'filler'), { force: true });
    }
  });
});
