// `presence gateway` as a real process against a real Mosquitto: kill -9 turns the retained status
// offline through the last will, and after a restart seq goes on where it stopped, with every window
// written before the kill delivered. A capture command that dies is restarted with backoff and its
// failure shows in the status; windows on the wall clock close on time with zero frames too.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteFilter, statusTopic, type CountsMessage } from '../contract/index.ts';
import { Gateway } from '../gateway/gateway.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { freePort } from './support/ports.ts';
import { config, counts, gatewayArgs, logLines, spawnGateway, statuses, subscriber, waitFor, wifiCapture } from './gateway-support.ts';

const SUITE = 'gateway process';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-proc-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('kill -9: last will turns the status offline; after a restart seq goes on and no window is lost', async () => {
    const start = Date.parse('2026-04-01T08:00:00.000Z');
    const cap = wifiCapture(join(tmp, 'kill.pcap'), { devices: 4, startMs: start + 300, durationMs: 60_000, framesPerS: 20 });
    const sub = await subscriber(broker.url, { filter: siteFilter('kill') });
    const queueDir = join(tmp, 'q-kill');
    const args = [
      '--site',
      'kill',
      '--zone',
      'z',
      '--id',
      'g',
      '--mqtt-url',
      broker.url,
      '--source',
      `pcap:${cap.path}`,
      '--speed',
      '4',
      '--window',
      '1s',
      '--mqtt-keepalive',
      '1',
      '--queue-dir',
      queueDir,
    ];

    const first = spawnGateway(args);
    await waitFor(() => counts(sub.messages, 'kill').length >= 4, 20_000, 'windows from the first run');
    expect(statuses(sub.messages, 'kill').some((s) => s.state === 'online')).toBe(true);
    const killedAt = sub.messages.length;
    first.proc.kill('SIGKILL');
    await first.exited;
    await waitFor(() => statuses(sub.messages.slice(killedAt), 'kill').some((s) => s.state === 'offline'), 30_000, 'last will (offline status)');
    // The retained status is now the offline will.
    const late = await subscriber(broker.url, { filter: statusTopic('kill', 'g'), clean: true });
    await waitFor(() => late.messages.length > 0, 30_000, 'retained status');
    expect(JSON.parse(late.messages[0].payload.toString())).toMatchObject({ state: 'offline', site: 'kill', gateway: 'g' });
    await late.client.endAsync();

    const beforeRestart = new Set(counts(sub.messages, 'kill').map((c) => c.seq));
    // Each run's first window: counted from the capture's first frame, published from its boundary.
    const runStart = new Date(Math.floor(cap.firstMs / 1000) * 1000).toISOString();
    const second = spawnGateway(args);
    await waitFor(() => counts(sub.messages, 'kill').filter((c) => c.start === runStart).length >= 2, 20_000, 'the second run');
    await waitFor(() => counts(sub.messages, 'kill').length >= beforeRestart.size + 3, 20_000, 'more windows');
    const all = counts(sub.messages, 'kill');
    const runStarts = all.filter((c) => c.start === runStart).map((c) => c.seq);
    expect(runStarts[0]).toBe(1);
    const restartSeq = runStarts[1];
    // seq goes on: the second run's first window follows the last window the killed process wrote.
    expect(restartSeq).toBeGreaterThan(Math.max(...beforeRestart));
    // Nothing the first run queued is lost: every seq below the restart arrives (resent if needed).
    await waitFor(
      () =>
        new Set(
          counts(sub.messages, 'kill')
            .map((c) => c.seq)
            .filter((s) => s < restartSeq),
        ).size ===
        restartSeq - 1,
      30_000,
      'windows queued before the kill',
    );
    expect(statuses(sub.messages.slice(killedAt), 'kill').some((s) => s.state === 'online')).toBe(true);

    // A graceful stop publishes the offline status itself and exits 0.
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    const st = statuses(sub.messages, 'kill');
    expect(st.at(-1)!.state).toBe('offline');
    expect(second.stderr()).toMatch(/"msg":"gateway stopped"/);
    await sub.client.endAsync();
  });

  it('kill -9 on the wall clock: the open window is lost and no window covers the time down; seq has no gap and the next run starts cut short', async () => {
    const cap = wifiCapture(join(tmp, 'live-kill.pcap'), { devices: 3, startMs: Date.now(), durationMs: 200, framesPerS: 20 });
    const sub = await subscriber(broker.url, { filter: siteFilter('livekill') });
    const args = gatewayArgs(
      { site: 'livekill', mqttUrl: broker.url, source: `cmd:cat ${cap.path}; sleep 600`, queueDir: join(tmp, 'q-livekill') },
      '--window',
      '1s',
      '--clock',
      'wall',
    );
    const first = spawnGateway(args);
    await waitFor(() => counts(sub.messages, 'livekill').length >= 3, 20_000, 'windows of the first run');
    // Mid-window: the window after the last one published is open, with its own key and counts.
    const before = counts(sub.messages, 'livekill');
    await new Promise((r) => setTimeout(r, 400));
    first.proc.kill('SIGKILL');
    await first.exited;
    const killedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    const second = spawnGateway(args);
    await waitFor(() => counts(sub.messages, 'livekill').some((c) => Date.parse(c.start) > killedAt), 20_000, 'a window of the second run');
    await waitFor(() => counts(sub.messages, 'livekill').filter((c) => Date.parse(c.start) > killedAt).length >= 2, 20_000, 'two windows of the second run');
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    const all = counts(sub.messages, 'livekill');
    const seqs = [...new Set(all.map((c) => c.seq))];
    // seq goes on with no gap: the open window had no seq yet.
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    const run1 = all.filter((c) => Date.parse(c.start) < killedAt);
    const run2 = all.filter((c) => Date.parse(c.start) > killedAt);
    // Every window the first run closed arrived (the killed process may have closed one more after
    // `before` was read); the one open at the kill never does.
    expect(run1.length).toBeGreaterThanOrEqual(before.length);
    const lastEnd = Math.max(...run1.map((c) => Date.parse(c.end)));
    expect(lastEnd).toBeLessThanOrEqual(killedAt);
    // No window covers the time from the last closed window to the restart: the next run's first
    // window starts when it started, cut short.
    const firstOfRun2 = run2.reduce((a, b) => (a.seq < b.seq ? a : b));
    expect(firstOfRun2.complete).toBe(false);
    expect(Date.parse(firstOfRun2.start)).toBeGreaterThanOrEqual(killedAt + 1500);
    expect(all.some((c) => Date.parse(c.end) > lastEnd && Date.parse(c.start) < Date.parse(firstOfRun2.start))).toBe(false);
    await sub.client.endAsync();
  });

  it('a lock file a crash left is taken over even when its pid now belongs to another process (a reboot after a power cut): nothing queued is lost', async () => {
    const cap = wifiCapture(join(tmp, 'reboot.pcap'), { devices: 3, startMs: Date.parse('2026-04-01T11:00:00.300Z'), durationMs: 4_000, framesPerS: 20 });
    const queueDir = join(tmp, 'q-reboot');
    // The broker unreachable: every window stays queued; then the power goes (kill -9).
    const first = spawnGateway(
      gatewayArgs(
        { site: 'reboot', mqttUrl: `mqtt://127.0.0.1:${await freePort()}`, source: `pcap:${cap.path}`, queueDir },
        '--speed',
        'max',
        '--window',
        '1s',
      ),
    );
    await waitFor(() => logLines(first.stderr(), 'window closed').length >= 5, 20_000, 'the windows queued');
    first.proc.kill('SIGKILL');
    await first.exited;
    // After the reboot the pid in the lock file is another, unrelated live process.
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const lock = join(queueDir, 'lock');
      writeFileSync(lock, readFileSync(lock, 'utf8').replace(/^\d+/, String(other.pid)));
      const sub = await subscriber(broker.url, { filter: siteFilter('reboot') });
      const second = spawnGateway(gatewayArgs({ site: 'reboot', mqttUrl: broker.url, source: 'wifi=cmd:sleep 60', queueDir }, '--window', '1s'));
      await waitFor(() => counts(sub.messages, 'reboot').length >= 5 || second.stderr().includes('cannot start'), 20_000, 'the queued windows');
      expect(second.stderr()).not.toContain('cannot start');
      second.proc.kill('SIGTERM');
      expect(await second.exited, second.stderr().slice(-1500)).toBe(0);
      const c = counts(sub.messages, 'reboot');
      expect(c.slice(0, 5).map((x) => x.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(c.reduce((n, x) => n + x.wifi.frames, 0)).toBe(cap.frames);
      await sub.client.endAsync();
    } finally {
      other.kill();
    }
  });

  it("windows another gateway queued in the folder are not published as this one's: set aside, with one line naming it", async () => {
    const cap = wifiCapture(join(tmp, 'renamed.pcap'), { devices: 3, startMs: Date.parse('2026-04-01T12:00:00.300Z'), durationMs: 3_000, framesPerS: 20 });
    const queueDir = join(tmp, 'q-renamed');
    // gateway old-site/gw-old queues its windows (no broker), then the box is given another site and id
    const first = spawnGateway(
      gatewayArgs(
        { site: 'old-site', id: 'gw-old', mqttUrl: `mqtt://127.0.0.1:${await freePort()}`, source: `pcap:${cap.path}`, queueDir },
        '--speed',
        'max',
        '--window',
        '1s',
      ),
    );
    await waitFor(() => first.stderr().includes('sources ended'), 20_000, 'the windows queued');
    first.proc.kill('SIGTERM');
    expect(await first.exited, first.stderr().slice(-1500)).toBe(0);
    const queued = logLines(first.stderr(), 'window closed').length;
    expect(queued).toBeGreaterThanOrEqual(3);
    const sub = await subscriber(broker.url, { filter: '#' });
    const second = spawnGateway(gatewayArgs({ site: 'new-site', id: 'gw-new', mqttUrl: broker.url, source: 'wifi=cmd:sleep 60', queueDir }, '--window', '1s'));
    try {
      await waitFor(() => logLines(second.stderr(), 'window closed').length >= 2, 20_000, 'windows of the new gateway');
      const mine = () =>
        sub.messages.filter((m) => m.topic === 'presence/v1/new-site/gw-new/counts').map((m) => JSON.parse(m.payload.toString()) as CountsMessage);
      await waitFor(() => mine().length >= 1, 20_000, 'a window of the new gateway published');
      // nothing of gw-old went out, on any topic
      expect(sub.messages.filter((m) => m.payload.includes('gw-old'))).toEqual([]);
      const aside = readdirSync(join(queueDir, 'other-gateways')).sort();
      expect(aside).toHaveLength(queued);
      expect(aside[0]).toBe('old-site-gw-old-1.json');
      expect(JSON.parse(readFileSync(join(queueDir, 'other-gateways', aside[0]), 'utf8'))).toMatchObject({ site: 'old-site', gateway: 'gw-old', seq: 1 });
      const lines = second
        .stderr()
        .split('\n')
        .filter((l) => l.includes('queued window of gateway'));
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0])).toMatchObject({ level: 50, other: 'old-site/gw-old', this_gateway: 'new-site/gw-new' });
      // the new gateway's own windows go on from the folder's seq
      expect(mine()[0]).toMatchObject({ site: 'new-site', gateway: 'gw-new', seq: queued + 1 });
    } finally {
      second.proc.kill('SIGTERM');
      await second.exited;
      await sub.client.endAsync();
    }
  });

  it('reads pcap on stdin (--source pcap:-) on the wall clock, publishes, and exits 0 at end of input', async () => {
    const cap = wifiCapture(join(tmp, 'stdin.pcap'), { devices: 5, startMs: Date.parse('2026-04-01T10:00:00Z'), durationMs: 1_000, framesPerS: 100 });
    const sub = await subscriber(broker.url, { filter: siteFilter('stdin') });
    const gw = spawnGateway(
      ['--site', 'stdin', '--zone', 'z', '--id', 'g', '--mqtt-url', broker.url, '--source', 'pcap:-', '--window', '1s', '--queue-dir', join(tmp, 'q-stdin')],
      {},
      'pipe',
    );
    const bytes = readFileSync(cap.path);
    // Two halves with a pause between (a stream, not a file), across at least one window boundary.
    await waitFor(() => gw.stderr().includes('gateway starting'), 15_000, 'the gateway to start');
    gw.proc.stdin!.write(bytes.subarray(0, 1000));
    // The second half goes in once a window holding frames of the first has been published, so the
    // two halves are counted in different windows whatever the machine's speed.
    await waitFor(() => counts(sub.messages, 'stdin').some((c) => c.wifi.frames > 0), 50_000, 'a window with frames of the first half');
    gw.proc.stdin!.end(bytes.subarray(1000));
    expect(await gw.exited, gw.stderr().slice(-1500)).toBe(0);
    await waitFor(() => statuses(sub.messages, 'stdin').some((s) => s.state === 'offline'), 50_000, 'final status');
    const c = counts(sub.messages, 'stdin');
    expect(c.length).toBeGreaterThanOrEqual(2);
    expect(c.map((x) => x.seq)).toEqual(c.map((_, i) => i + 1));
    expect(c.reduce((n, x) => n + x.wifi.frames, 0)).toBe(cap.frames);
    expect(c.at(-1)!.complete).toBe(false);
    expect(Math.max(...c.map((x) => x.wifi.devices))).toBe(5);
    await sub.client.endAsync();
  });

  it('SIGHUP (a closed terminal) stops it as SIGTERM does: the open window with its frames is published, then the offline status, exit 0', async () => {
    const cap = wifiCapture(join(tmp, 'hup.pcap'), { devices: 4, startMs: Date.parse('2026-04-01T11:00:00Z'), durationMs: 1_000, framesPerS: 100 });
    const sub = await subscriber(broker.url, { filter: siteFilter('hup') });
    // A long window, so the frames written are still in the open window when the signal comes.
    const gw = spawnGateway(
      [
        '--site',
        'hup',
        '--zone',
        'z',
        '--id',
        'g',
        '--mqtt-url',
        broker.url,
        '--source',
        'pcap:-',
        '--window',
        '1h',
        '--status-interval',
        '1s',
        '--queue-dir',
        join(tmp, 'q-hup'),
      ],
      {},
      'pipe',
    );
    await waitFor(() => gw.stderr().includes('gateway starting'), 15_000, 'the gateway to start');
    gw.proc.stdin!.write(readFileSync(cap.path));
    // every frame read (the source's count in the status) before the signal
    await waitFor(() => statuses(sub.messages, 'hup').some((s) => s.sources?.some((x) => x.frames === cap.frames)), 30_000, 'a status with every frame read');
    gw.proc.kill('SIGHUP');
    expect(await gw.exited, gw.stderr().slice(-1500)).toBe(0);
    await waitFor(() => statuses(sub.messages, 'hup').some((s) => s.state === 'offline'), 30_000, 'offline status');
    const c = counts(sub.messages, 'hup');
    expect(c.reduce((n, x) => n + x.wifi.frames, 0)).toBe(cap.frames);
    expect(c.at(-1)!.complete).toBe(false);
    expect(gw.stderr()).toMatch(/"signal":"SIGHUP"/);
    await sub.client.endAsync();
  });

  it('restarts a dying capture command with backoff and reports it in status; wall-clock windows close with zero frames', async () => {
    const cap = wifiCapture(join(tmp, 'cmd.pcap'), { devices: 3, startMs: Date.parse('2026-04-01T09:00:00Z'), durationMs: 2_000, framesPerS: 50 });
    const sub = await subscriber(broker.url, { filter: siteFilter('cmd') });
    const gw = new Gateway({
      config: config({
        site: 'cmd',
        zone: 'z',
        id: 'g',
        mqtt: broker.url,
        // Writes a capture, then dies with code 3: restarted after 1 s, then 2 s, ...
        source: [`wifi=cmd:cat ${cap.path}; echo "capture interface went away" >&2; exit 3`],
        window: '1s',
        statusInterval: '1s',
        queueDir: join(tmp, 'q-cmd'),
      }),
    });
    const closed: CountsMessage[] = [];
    gw.on('window', (m) => closed.push(m));
    await gw.start();
    await waitFor(() => closed.length >= 4, 15_000, 'four windows');
    const src = gw.sources[0];
    expect(src.errors).toBeGreaterThanOrEqual(1);
    await gw.stop();
    const st = statuses(sub.messages, 'cmd');
    const failing = st.find((s) => s.sources?.[0]?.state === 'restarting');
    expect(failing?.sources?.[0]).toMatchObject({ name: 'wifi', state: 'restarting', errors: expect.any(Number) });
    expect(failing!.sources![0].last_error).toBe('the capture command exited with code 3');
    expect(st.some((s) => (s.sources?.[0]?.frames_per_s ?? 0) > 0)).toBe(true);
    expect(st.at(-1)!.state).toBe('offline');
    // Wall clock: windows are aligned to whole seconds, and windows with an outage are incomplete.
    for (const c of closed.slice(1, -1)) expect(Date.parse(c.start) % 1000).toBe(0);
    expect(closed[0].complete).toBe(false);
    expect(closed.at(-1)!.complete).toBe(false);
    expect(closed.some((c) => c.wifi.frames === 0)).toBe(true); // a window during the backoff: zero is a count
    expect(closed.some((c) => c.wifi.frames === cap.frames)).toBe(true); // one run of the command, counted whole
    expect(closed.reduce((n, c) => n + c.wifi.frames, 0) % cap.frames).toBe(0);
    await sub.client.endAsync();
  });

  it('a capture command that ends without writing a byte (a tool not installed) is reported as exited with its code, not as a damaged capture', async () => {
    const sub = await subscriber(broker.url, { filter: siteFilter('notool') });
    // What a field gateway runs without tcpdump installed: /bin/sh says "not found" and exits 127.
    const gw = spawnGateway([
      ...gatewayArgs({
        site: 'notool',
        mqttUrl: broker.url,
        source: 'wifi=cmd:presence-no-such-capture-tool -i wlan0mon -U -w -',
        queueDir: join(tmp, 'q-notool'),
      }),
      '--window',
      '1s',
      '--status-interval',
      '1s',
    ]);
    await waitFor(() => logLines(gw.stderr(), 'capture command stopped; restarting').length >= 2, 20_000, 'two failed runs of the command');
    gw.proc.kill('SIGTERM');
    expect(await gw.exited, gw.stderr().slice(-1500)).toBe(0);
    for (const line of logLines(gw.stderr(), 'capture command stopped; restarting')) {
      expect(line).toMatchObject({
        source: 'wifi',
        program: 'presence-no-such-capture-tool',
        code: 'exited',
        exit_code: 127,
        fix: "install presence-no-such-capture-tool (sudo apt-get install -y presence-no-such-capture-tool) or fix the command's path",
      });
      expect(line).not.toHaveProperty('damage');
    }
    await waitFor(() => statuses(sub.messages, 'notool').some((s) => s.sources?.[0]?.state === 'restarting'), 10_000, 'a status of the failing source');
    // dumpcap without capture rights: it sees no interface and says only that (a stand-in that says the same).
    const dumpcap = join(tmp, 'bin', 'dumpcap');
    mkdirSync(join(tmp, 'bin'), { recursive: true });
    // Its error line, then advice whose last line says nothing: the log's stderr is the error line.
    writeFileSync(
      dumpcap,
      '#!/bin/sh\necho "dumpcap: There are no interfaces on which a capture can be done" >&2\necho "Please check to make sure you have sufficient permissions." >&2\necho "and then restarting Wireshark." >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const noRights = spawnGateway(
      gatewayArgs({ site: 'norights', mqttUrl: broker.url, source: `ble=cmd:${dumpcap} -q -i bluetooth0 -w -`, queueDir: join(tmp, 'q-norights') }),
    );
    await waitFor(() => logLines(noRights.stderr(), 'capture command stopped; restarting').length >= 1, 20_000, 'a failed run of dumpcap');
    noRights.proc.kill('SIGTERM');
    await noRights.exited;
    expect(logLines(noRights.stderr(), 'capture command stopped; restarting')[0]).toMatchObject({
      code: 'exited',
      exit_code: 1,
      fix: 'give dumpcap capture rights: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v dumpcap) (or run the gateway with the systemd unit)',
      stderr: expect.stringMatching(/^dumpcap: There are no /),
    });
    const failing = statuses(sub.messages, 'notool').find((s) => s.sources?.[0]?.state === 'restarting')!;
    expect(failing.sources![0]).toMatchObject({ error_code: 'exited', last_error: 'the capture command exited with code 127' });
    await sub.client.endAsync();
  });

  it('a clean broker restart publishes the last will (offline) of a running gateway; it says online again as soon as it reconnects, and no window is lost', async () => {
    const cap = wifiCapture(join(tmp, 'broker-restart.pcap'), { devices: 2, startMs: Date.now(), durationMs: 200, framesPerS: 20 });
    const sub = await subscriber(broker.url, { filter: siteFilter('brestart') });
    const gw = spawnGateway(
      gatewayArgs(
        { site: 'brestart', mqttUrl: broker.url, source: `cmd:cat ${cap.path}; sleep 600`, queueDir: join(tmp, 'q-brestart') },
        '--window',
        '1s',
        '--clock',
        'wall',
      ),
    );
    try {
      await waitFor(() => counts(sub.messages, 'brestart').length >= 2, 20_000, 'windows before the restart');
      const at = sub.messages.length;
      await broker.restart();
      await waitFor(() => statuses(sub.messages.slice(at), 'brestart').some((s) => s.state === 'offline'), 20_000, 'the last will at the restart');
      const offlineAt = sub.messages.length;
      // The subscriber's session is persistent: a status in flight to it when the broker stopped
      // (the last online one, even the will) comes again, byte for byte, when it reconnects. Online
      // again is a status the reconnected gateway published, one never received before.
      const seen = new Set(sub.messages.slice(0, offlineAt).map((m) => m.payload.toString()));
      const fresh = () => sub.messages.slice(offlineAt).filter((m) => !seen.has(m.payload.toString()));
      await waitFor(() => statuses(fresh(), 'brestart').some((s) => s.state === 'online'), 20_000, 'online again (a status not received before)');
      // The retained status a new subscriber gets is online again.
      const late = await subscriber(broker.url, { filter: statusTopic('brestart', 'g'), clean: true });
      await waitFor(() => late.messages.length > 0, 20_000, 'retained status');
      expect(JSON.parse(late.messages.at(-1)!.payload.toString())).toMatchObject({ state: 'online' });
      await late.client.endAsync();
      const n = counts(sub.messages, 'brestart').length;
      await waitFor(() => counts(sub.messages, 'brestart').length >= n + 2, 20_000, 'windows after the restart');
    } finally {
      gw.proc.kill('SIGTERM');
      await gw.exited;
    }
    const seqs = [...new Set(counts(sub.messages, 'brestart').map((c) => c.seq))].sort((x, y) => x - y);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    await sub.client.endAsync();
  });
});
