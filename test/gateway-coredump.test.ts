// Privacy: the gateway writes no core dump. Its JavaScript memory holds capture chunks (frames with
// device addresses) until the garbage collector reuses it (PRIVACY.md), so a crash with core dumps
// enabled (ulimit -c, systemd-coredump) would write them to disk. `presence gateway` sets its core
// file size limit to 0, soft and hard (no core at all: even a core without memory holds every
// thread's registers, and the vector registers can hold bytes of the frames copied last), and
// /proc/self/coredump_filter to 0 (no mapping dumped, should a core be written all the same); its
// capture commands inherit both. The real process is checked, and where the kernel writes core
// files into the working folder (core_pattern a plain name) a real SIGABRT writes none; a control
// core of a plain node process holding the same capture shows cores are written here and that the
// search finds the addresses in one. `presence replay -` reading a live pipe is checked the same way.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gatewayArgs, ROOT, waitFor, wifiCapture } from './gateway-support.ts';

const linux = existsSync('/proc/self/coredump_filter');
const pattern = linux ? readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim() : '';
// the kernel writes `core` (or core.PID) into the crashing process's working folder, and this user
// may raise its core size limit
const plainCores = /^core$/.test(pattern) && spawnSync('/bin/sh', ['-c', 'ulimit -c unlimited'], { stdio: 'ignore' }).status === 0;

/** Raw bytes of any of the addresses (either byte order) in a file. */
function addressesIn(file: string, addresses: Uint8Array[]): number {
  const blob = readFileSync(file);
  return addresses.filter((a) => blob.includes(Buffer.from(a)) || blob.includes(Buffer.from(a).reverse())).length;
}

/** A process started through sh with core dumps allowed, in its own folder; stderr kept. */
function withCores(dir: string, argv: string[], stdin: 'ignore' | 'pipe' = 'ignore') {
  const proc = spawn('/bin/sh', ['-c', 'ulimit -c unlimited 2>/dev/null; exec "$@"', 'sh', ...argv], { cwd: dir, stdio: [stdin, 'pipe', 'pipe'] });
  proc.stdin?.on('error', () => {}); // what is still unwritten when the process is killed (EPIPE)
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  proc.stdout!.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return { proc, stderr: () => err, exited };
}
const cores = (dir: string) => readdirSync(dir).filter((f) => /^core(\.\d+)?$/.test(f));

/** A process's core settings: coredump_filter and the core file size limit (soft, hard). */
function coreSettings(pid: number): { filter: string; limit: string } {
  const limits = /^Max core file size\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return { filter: readFileSync(`/proc/${pid}/coredump_filter`, 'utf8').trim(), limit: `${limits?.[1]} ${limits?.[2]}` };
}
const NO_CORE = { filter: '00000000', limit: '0 0' };

/** Pids of a process's descendants (from /proc/PID/stat). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) {
      if (pp !== p) continue;
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

describe.skipIf(!linux)('gateway core dumps', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'presence-core-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const cap = wifiCapture(join(tmp, 'frames.pcap'), { devices: 40, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 120_000, framesPerS: 40 });

  it('the gateway and its capture commands dump no core: core file size limit 0 and coredump_filter 0, and SIGABRT writes no core file', async () => {
    const dir = mkdtempSync(join(tmp, 'gw-'));
    const gw = withCores(dir, [
      process.execPath,
      join(ROOT, 'scripts', 'presence.js'),
      'gateway',
      ...gatewayArgs({ site: 'core', mqttUrl: 'mqtt://127.0.0.1:1', source: `pcap:${cap.path}`, queueDir: join(dir, 'q') }, '--speed', '1', '--window', '1s'),
      '--source',
      'idle=cmd:exec sleep 120',
    ]);
    try {
      // frames read and counted: a window closed on the capture clock
      await waitFor(() => gw.stderr().includes('"msg":"window closed"'), 60_000, 'a window closed');
      expect(coreSettings(gw.proc.pid!)).toEqual(NO_CORE);
      const children = descendants(gw.proc.pid!);
      expect(children.length).toBeGreaterThan(0); // the capture command and its watcher
      for (const c of children) expect(coreSettings(c), `pid ${c}`).toEqual(NO_CORE);
      gw.proc.kill('SIGABRT');
      await gw.exited;
    } finally {
      gw.proc.kill('SIGKILL');
      for (const c of descendants(gw.proc.pid!))
        try {
          process.kill(c, 'SIGKILL');
        } catch {
          /* gone already */
        }
    }
    if (!plainCores) {
      console.warn(
        `gateway core dumps: core_pattern is ${JSON.stringify(pattern)} (or ulimit -c cannot be raised), not a file in the working folder: only the core settings were checked`,
      );
      return;
    }
    expect(cores(dir)).toEqual([]);
  });

  it('presence replay of a live pipe (tcpdump ... | presence replay -) dumps no core: core file size limit 0 and coredump_filter 0, and SIGABRT writes no core file', async () => {
    // The frames come from stdin, not from a file: they are on no disk, so a core must not put them there.
    const dir = mkdtempSync(join(tmp, 'replay-'));
    const replay = withCores(dir, [process.execPath, join(ROOT, 'scripts', 'presence.js'), 'replay', '-', '--window', '1s', '--json'], 'pipe');
    try {
      replay.proc.stdin!.write(readFileSync(cap.path)); // and kept open: the replay goes on waiting for frames
      await waitFor(() => replay.stderr().includes('"start"'), 60_000, 'a window printed');
      expect(coreSettings(replay.proc.pid!)).toEqual(NO_CORE);
      replay.proc.kill('SIGABRT');
      await replay.exited;
    } finally {
      replay.proc.kill('SIGKILL');
    }
    if (!plainCores) return;
    expect(cores(dir)).toEqual([]);
  });

  it.skipIf(!plainCores)('control: the core of a node process holding the same capture has its addresses (the search finds them)', async () => {
    const dir = mkdtempSync(join(tmp, 'control-'));
    const holder = withCores(dir, [
      process.execPath,
      '-e',
      `globalThis.keep = require('node:fs').readFileSync(${JSON.stringify(cap.path)}); console.log('holding'); setInterval(() => {}, 1000);`,
    ]);
    await waitFor(() => holder.stderr().includes('holding'), 30_000, 'the capture held');
    holder.proc.kill('SIGABRT');
    await holder.exited;
    const written = cores(dir);
    expect(written.length).toBe(1);
    expect(addressesIn(join(dir, written[0]!), cap.addresses)).toBe(cap.addresses.length);
  });
});
