// Queued windows this user may not read are kept, not deleted. A gateway run once as root (by hand,
// `sudo presence gateway`, on the service's folder) leaves root's files in the queue folder; the
// service, run as presence, then took each of them for a damaged file when its turn to be sent came
// and deleted it ("queue: unreadable window file removed", errno EACCES): windows it had accepted,
// lost. Now it refuses to start, naming the folder and the chown, and sends them once it may read
// them. Here the service's user is nobody; as root only. And a window file that cannot be read for
// another reason while it runs (EIO, EMFILE, ...) stays queued and on disk.
import { spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { CountsMessage, StatusMessage } from '../contract/index.ts';
import { GatewayMetrics, type GatewayView } from '../gateway/http.ts';
import { WindowQueue } from '../gateway/queue.ts';
import { counts, queuedWindow, subscriber, waitFor } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { freePort } from './support/ports.ts';

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
      // counted, once however often it is tried, and said with the fix
      expect(queue.read(1)).toBeNull();
      expect(queue.unreadableCount).toBe(1);
      const logged = lines.map((l) => JSON.parse(l)).filter((e) => e.seq === 1);
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({
        level: 50,
        errno: 'EISDIR',
        file,
        unreadable: 1,
        queue_depth: 2,
        msg: 'queue: window file cannot be read now; kept on disk and queued (counted in queue_depth and queue_unreadable), sent once it can be read',
      });
      expect(logged[0].fix).toContain(`sudo chown -R ${userInfo().username} ${dir} && sudo chmod -R u+rwX ${dir}`);
      expect(queue.unreadableProblem()).toMatch(
        new RegExp(
          `^1 queued window cannot be read by user ${userInfo().username} \\(${file}: owner uid \\d+, mode \\d{4}, EISDIR\\): kept on disk and counted in queue_depth`,
        ),
      );
      expect(queue.read(2)).toMatchObject({ seq: 2 });
      // still unreadable: not handed back to be sent
      expect(queue.readableAgain()).toEqual([]);
      expect(queue.unreadableCount).toBe(1);
      queue.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a window file that could not be read and can be now', () => {
  it('is read once: what the recheck read is what is sent', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-queue-readback-'));
    try {
      let now = 0;
      const queue = WindowQueue.open(dir, { maxWindows: 100, now: () => now });
      for (const seq of [1, 2]) queue.append(window(seq));
      const file = join(dir, 'windows', readdirSync(join(dir, 'windows')).sort()[0]!);
      rmSync(file);
      mkdirSync(file); // EISDIR: cannot be read, also by root
      expect(queue.read(1)).toBeNull();
      expect(queue.unreadableCount).toBe(1);
      rmSync(file, { recursive: true });
      writeFileSync(file, JSON.stringify(queuedWindow('q', 1, { frames: 111, devices: 1, estimate: 1 })));
      now += 5_000;
      expect(queue.readableAgain()).toEqual([1]);
      expect(queue.unreadableCount).toBe(0);
      // changed after the recheck read it: a second read would give 222
      writeFileSync(file, JSON.stringify(queuedWindow('q', 1, { frames: 222, devices: 1, estimate: 1 })));
      expect(queue.read(1)).toMatchObject({ seq: 1, wifi: { frames: 111 } });
      expect(queue.read(1)).toMatchObject({ seq: 1, wifi: { frames: 222 } });
      queue.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('presence_gateway_queue_unreadable', () => {
  it('is read from the queue, without making the whole status', async () => {
    const gw = Object.assign(new EventEmitter(), {
      sources: [],
      queueDepth: 5,
      queueUnreadableCount: 3,
      mqttConnected: true,
      status(): never {
        throw new Error('status() made for one gauge');
      },
    });
    const metrics = new GatewayMetrics(gw as unknown as GatewayView, false);
    const text = await metrics.registry.getSingleMetricAsString('presence_gateway_queue_unreadable');
    expect(text).toMatch(/^presence_gateway_queue_unreadable 3$/m);
  });

  it("and so are queue_dropped and queue_state: a scrape makes no status (each made the whole status, and moved its sources' rate baseline)", async () => {
    const gw = Object.assign(new EventEmitter(), {
      sources: [],
      queueDepth: 5,
      queueUnreadableCount: 0,
      queueDropped: 7,
      queueState: 'disk_full',
      mqttConnected: true,
      status(): never {
        throw new Error('status() made for a scrape');
      },
    });
    const text = await new GatewayMetrics(gw as unknown as GatewayView, false).registry.metrics();
    expect(text).toMatch(/^presence_gateway_queue_dropped_total 7$/m);
    expect(text).toMatch(/^presence_gateway_queue_state\{state="disk_full"\} 1$/m);
    expect(text).toMatch(/^presence_gateway_queue_state\{state="ok"\} 0$/m);
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

// A window file made unreadable while the gateway runs (chmod 000 after it was queued): it was
// counted in queue_depth until the next restart with nothing saying why. Now the gateway, as the
// user nobody, keeps it, says so in its status (queue_unreadable), /healthz and /metrics with the
// fix, and sends it once it can be read, without a restart. Real Mosquitto, started after the
// gateway so the windows wait in its queue.
describe.skipIf(!ok)('a queued window file made unreadable while the gateway runs', () => {
  const dir = mkdtempSync('/tmp/presence-queue-chmod-');
  chmodSync(dir, 0o755);
  const broker = new Mosquitto();
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stays queued and counted, the status, /healthz and /metrics say how many and the fix, and it is sent once readable again', async () => {
    broker.port = await freePort();
    const q = join(dir, 'q');
    // 40 windows queued: the gateway hands the first 32 to mqtt.js at once, the rest wait on disk
    const queue = WindowQueue.open(q, { maxWindows: 100 });
    for (let seq = 1; seq <= 40; seq++) queue.append(queuedWindow('qc', seq));
    queue.close();
    spawnSync('chown', ['-R', 'nobody', q]);
    const files = readdirSync(join(q, 'windows')).sort();
    const second = join(q, 'windows', files[35 - 1]!);
    const httpPort = await freePort();
    const cli = join(import.meta.dirname, '..', 'scripts', 'presence.js');
    const args = ['gateway', '--site', 'qc', '--zone', 'z', '--id', 'g', '--source', 'cmd:sleep 100', '--mqtt-url', broker.url, '--queue-dir', q];
    const gw = spawn('runuser', ['-u', 'nobody', '--', process.execPath, cli, ...args, '--window', '2s', '--http-port', String(httpPort)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    gw.stderr!.on('data', (d) => (stderr += d));
    const healthz = async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json() as Promise<{ status: string; problems: string[] }>;
    const metric = async () => /^presence_gateway_queue_unreadable (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text())?.[1];
    let sub: Awaited<ReturnType<typeof subscriber>> | null = null;
    try {
      // running, the broker not there yet: the windows wait; then the file is made unreadable
      await waitFor(() => stderr.includes('"msg":"window closed"'), 20_000, `the gateway running (${stderr})`);
      chmodSync(second, 0o000);
      await broker.start();
      sub = await subscriber(broker.url, { filter: 'presence/v1/qc/g/#' });
      const statuses = () => sub!.messages.filter((m) => m.topic === 'presence/v1/qc/g/status').map((m) => JSON.parse(m.payload.toString()) as StatusMessage);
      await waitFor(() => statuses().some((s) => s.queue_unreadable === 1), 20_000, `a status with queue_unreadable 1 (${stderr.slice(-2000)})`);
      const st = statuses()
        .filter((s) => s.queue_unreadable === 1)
        .at(-1)!;
      expect(st.queue_depth).toBeGreaterThanOrEqual(1);
      expect(existsSync(second)).toBe(true);
      // the others went
      await waitFor(() => readdirSync(join(q, 'windows')).filter((f) => files.includes(f)).length === 1, 10_000, 'the other queued windows sent');
      const h = await healthz();
      expect(h.status).toBe('degraded');
      expect(h.problems).toContain(
        `1 queued window cannot be read by user nobody (${second}: owner uid ${statSync(second).uid}, mode 0000, EACCES): kept on disk and counted in queue_depth, sent once they can be read; fix: make the queue folder the gateway user's and readable, e.g. sudo chown -R nobody ${q} && sudo chmod -R u+rwX ${q}`,
      );
      expect(await metric()).toBe('1');
      const logged = stderr
        .split('\n')
        .filter((l) => l.includes('window file cannot be read now'))
        .map((l) => JSON.parse(l));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({ level: 50, seq: 35, errno: 'EACCES', file: second });

      // the fix: sent without a restart; the status and /healthz say so
      chmodSync(second, 0o640);
      await waitFor(() => counts(sub!.messages, 'qc').some((m) => m.seq === 35), 20_000, `window 35 sent (${stderr.slice(-2000)})`);
      await waitFor(() => !existsSync(second), 10_000, 'its file removed once acknowledged');
      const after = statuses().length;
      await waitFor(() => statuses().length > after, 20_000, 'a later status');
      expect(statuses().at(-1)!.queue_unreadable).toBeUndefined();
      expect((await healthz()).problems.join('\n')).not.toMatch(/cannot be read/);
      expect(await metric()).toBe('0');
      expect(stderr).not.toContain('removed');
    } finally {
      gw.kill('SIGTERM');
      await new Promise((r) => gw.once('exit', r));
      await sub?.client.endAsync();
    }
  });

  it('one behind others is noticed before its turn to be sent: /healthz and /metrics say so while the broker is away', async () => {
    await broker.stop(); // the test before left it running
    broker.port = await freePort();
    const q = join(dir, 'q-behind');
    const queue = WindowQueue.open(q, { maxWindows: 100 });
    for (let seq = 1; seq <= 40; seq++) queue.append(queuedWindow('qb', seq));
    queue.close();
    spawnSync('chown', ['-R', 'nobody', q]);
    const files = readdirSync(join(q, 'windows')).sort();
    const behind = join(q, 'windows', files[38 - 1]!);
    const httpPort = await freePort();
    const cli = join(import.meta.dirname, '..', 'scripts', 'presence.js');
    const args = ['gateway', '--site', 'qb', '--zone', 'z', '--id', 'g', '--source', 'cmd:sleep 100', '--mqtt-url', broker.url, '--queue-dir', q];
    const gw = spawn('runuser', ['-u', 'nobody', '--', process.execPath, cli, ...args, '--window', '1s', '--http-port', String(httpPort)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    gw.stderr!.on('data', (d) => (stderr += d));
    let unreadable: string | undefined;
    const metric = async () => /^presence_gateway_queue_unreadable (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text())?.[1];
    const metricIs = async (want: string, what: string) => {
      for (const deadline = Date.now() + 20_000; (unreadable = await metric()) !== want; await new Promise((r) => setTimeout(r, 100)))
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (it is ${unreadable}): ${stderr.slice(-2000)}`);
    };
    let sub: Awaited<ReturnType<typeof subscriber>> | null = null;
    try {
      await waitFor(() => stderr.includes('"msg":"window closed"'), 20_000, `the gateway running (${stderr})`);
      chmodSync(behind, 0o000);
      // no broker: windows 1-32 handed to mqtt.js wait for it, 38 is not read for sending before they are acknowledged
      await metricIs('1', 'queue_unreadable 1 before the broker is there');
      const h = (await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json()) as { problems: string[] };
      expect(h.problems.join('\n')).toContain(
        `1 queued window cannot be read by user nobody (${behind}: owner uid ${statSync(behind).uid}, mode 0000, EACCES)`,
      );
      const logged = stderr
        .split('\n')
        .filter((l) => l.includes('window file cannot be read now'))
        .map((l) => JSON.parse(l));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({ level: 50, seq: 38, errno: 'EACCES', file: behind });
      // readable again, then the broker: every window sent, 38 too
      chmodSync(behind, 0o640);
      await metricIs('0', 'queue_unreadable 0 once it can be read');
      await broker.start();
      sub = await subscriber(broker.url, { filter: 'presence/v1/qb/g/#' });
      await waitFor(
        () => readdirSync(join(q, 'windows')).filter((f) => files.includes(f)).length === 0,
        20_000,
        `every queued window sent (${stderr.slice(-2000)})`,
      );
    } finally {
      gw.kill('SIGTERM');
      await new Promise((r) => gw.once('exit', r));
      await sub?.client.endAsync();
      await broker.stop();
    }
  });
});
