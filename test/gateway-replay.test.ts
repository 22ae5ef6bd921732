// The gateway against a real Mosquitto: a real capture replayed as fast as possible publishes one
// contract-valid window per aligned window of the capture's clock; Wi-Fi + BLE sources feed one
// firmware; the broker stopped mid-replay and restarted loses no window and reorders none.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptureFile } from '../gateway/capture/pcap.ts';
import { COUNTS_FILTER, STATUS_FILTER, countsTopic, siteFilter, validateCounts, validateStatus, type CountsMessage } from '../contract/index.ts';
import { Gateway } from '../gateway/gateway.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { capturesDir, need } from './support/need.ts';
import { bleCapture, config, counts, ROOT, runCapture, spawnGateway, statuses, subscriber, waitFor, wifiCapture, windowsSpanned } from './gateway-support.ts';

const SUITE = 'gateway replay';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);
const hasPython = need('python3', 'python3', SUITE);
const captures = capturesDir(SUITE);

async function captureSpan(path: string): Promise<{ frames: number; first: number; last: number }> {
  let frames = 0;
  let first = Infinity;
  let last = -Infinity;
  for await (const batch of readCaptureFile(path))
    for (const f of batch) {
      frames++;
      first = Math.min(first, f.timestampMs);
      last = Math.max(last, f.timestampMs);
    }
  return { frames, first, last };
}

function countsOf(messages: { topic: string; payload: Buffer }[]): CountsMessage[] {
  return messages
    .filter((m) => m.topic.endsWith('/counts'))
    .map((m) => {
      const v = validateCounts(JSON.parse(m.payload.toString()));
      if (!v.ok) throw new Error(`invalid counts: ${v.reason}`);
      return v.value;
    });
}

/** First arrival of each seq, in arrival order. */
function firstArrivals(counts: CountsMessage[]): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (const c of counts) if (!seen.has(c.seq)) seen.add(c.seq), out.push(c.seq);
  return out;
}

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-replay-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it.skipIf(!captures)('replays a real capture at max speed: one valid window per aligned window, then resolves', async () => {
    const file = join(captures!, 'wifi', 'OppoFindX3Neo-A_anonymized.pcap');
    const span = await captureSpan(file);
    const windowMs = 10_000;
    const sub = await subscriber(broker.url, { filter: siteFilter('replay') });
    const cfg = config({
      site: 'replay',
      zone: 'lab',
      id: 'oppo',
      mqtt: broker.url,
      source: [`pcap:${file}`],
      speed: 'max',
      window: '10s',
      ignoreFcs: true,
      queueDir: join(tmp, 'q-real'),
    });
    const gw = new Gateway({ config: cfg });
    const windows: CountsMessage[] = [];
    gw.on('window', (m) => windows.push(m));
    await gw.run();
    expect(gw.queueDepth).toBe(0);

    const expected = windowsSpanned(span.first, span.last, windowMs);
    expect(windows.length).toBe(expected);
    await waitFor(() => countsOf(sub.messages).length >= expected, 30_000, 'all windows at the subscriber');
    const counts = countsOf(sub.messages);
    expect(firstArrivals(counts)).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
    for (const c of counts) expect(c).toMatchObject({ v: 1, site: 'replay', zone: 'lab', gateway: 'oppo' });
    // Windows follow the capture's clock: aligned, contiguous, first and last cut short (and
    // published with their boundaries: no time of a frame).
    expect(Date.parse(counts[0].start)).toBe(Math.floor(span.first / windowMs) * windowMs);
    expect(Date.parse(counts.at(-1)!.end) % windowMs).toBe(0);
    expect(counts[0].complete).toBe(false);
    expect(counts.at(-1)!.complete).toBe(false);
    for (let i = 1; i < counts.length; i++) {
      expect(Date.parse(counts[i].start)).toBe(Date.parse(counts[i - 1].end));
      if (i < counts.length - 1) {
        expect(counts[i].complete).toBe(true);
        expect(Date.parse(counts[i].end) - Date.parse(counts[i].start)).toBe(windowMs);
      }
    }
    // Every frame of the file was counted once, in some window; one phone is seen.
    expect(counts.reduce((n, c) => n + c.wifi.frames, 0)).toBe(span.frames);
    expect(counts.reduce((n, c) => n + (c.wifi.probes ?? 0), 0)).toBeGreaterThan(0);
    expect(Math.max(...counts.map((c) => c.wifi.devices))).toBeGreaterThan(0);

    // Status is retained; after a finished replay the gateway says it is offline.
    const late = await subscriber(broker.url, { filter: STATUS_FILTER, clean: true });
    await waitFor(() => late.messages.length > 0, 30_000, 'retained status');
    const status = validateStatus(JSON.parse(late.messages[0].payload.toString()));
    expect(status.ok && status.value).toMatchObject({ site: 'replay', gateway: 'oppo', state: 'offline' });
    expect(sub.messages.filter((m) => m.topic.endsWith('/status')).some((m) => JSON.parse(m.payload.toString()).state === 'online')).toBe(true);
    await late.client.endAsync();
    await sub.client.endAsync();
  });

  it('feeds Wi-Fi and BLE sources into one firmware: both radios counted in the same windows', async () => {
    const start = Date.parse('2026-03-01T10:00:00.000Z');
    const wifi = wifiCapture(join(tmp, 'multi-wifi.pcap'), { devices: 7, startMs: start + 250, durationMs: 9_500, framesPerS: 40 });
    const ble = bleCapture(join(tmp, 'multi-ble.pcap'), { devices: 5, startMs: start + 100, durationMs: 9_800, framesPerS: 60 });
    const sub = await subscriber(broker.url, { filter: COUNTS_FILTER.replace('+/+', 'multi/+') });
    const gw = new Gateway({
      config: config({
        site: 'multi',
        zone: 'z',
        id: 'g',
        mqtt: broker.url,
        source: [`wifi=pcap:${wifi.path}@wifi`, `ble=pcap:${ble.path}@ble`],
        speed: 'max',
        window: '2s',
        queueDir: join(tmp, 'q-multi'),
      }),
    });
    await gw.run();
    const expected = windowsSpanned(ble.firstMs, wifi.lastMs, 2000);
    await waitFor(() => countsOf(sub.messages).length >= expected, 30_000, 'windows');
    const counts = countsOf(sub.messages);
    expect(firstArrivals(counts)).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
    expect(counts.reduce((n, c) => n + c.wifi.frames, 0)).toBe(wifi.frames);
    expect(counts.reduce((n, c) => n + c.ble.frames, 0)).toBe(ble.frames);
    const full = counts.filter((c) => c.complete);
    expect(full.length).toBeGreaterThan(0);
    for (const c of full) {
      expect(c.wifi.devices).toBe(7);
      expect(c.ble.devices).toBe(5);
    }
    await sub.client.endAsync();
  });

  it('a broker URL written tcp://host:port (as Paho and many brokers write it) is mqtt:// and publishes every window', async () => {
    const cap = wifiCapture(join(tmp, 'tcp-url.pcap'), { devices: 3, startMs: Date.UTC(2025, 3, 27, 12, 0, 5), durationMs: 25_000, framesPerS: 4 });
    const url = broker.url.replace(/^mqtt:/, 'tcp:');
    expect(url).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const run = await runCapture({ brokerUrl: url, site: 'tcpurl', path: cap.path, queueDir: join(tmp, 'q-tcp') }, ['--speed', 'max', '--window', '10s']);
    expect(run.counts.map((c) => c.seq)).toEqual([1, 2, 3]);
    expect(run.counts.reduce((n, c) => n + c.wifi.frames, 0)).toBe(cap.frames);
    await run.end();
  });

  it('--rssi-min drops weak frames: they are counted as weak, not as devices', async () => {
    const start = Date.parse('2026-03-01T10:30:00.000Z');
    const wifi = wifiCapture(join(tmp, 'rssi-wifi.pcap'), { devices: 4, startMs: start, durationMs: 1_900, framesPerS: 20 }); // -50 dBm
    const ble = bleCapture(join(tmp, 'rssi-ble.pcap'), { devices: 3, startMs: start, durationMs: 1_900, framesPerS: 20 }); // -60 dBm
    const run = async (site: string, extra: Record<string, unknown>) => {
      const out: CountsMessage[] = [];
      const gw = new Gateway({
        config: config({
          site,
          zone: 'z',
          id: 'g',
          mqtt: broker.url,
          source: [`pcap:${wifi.path}`, `pcap:${ble.path}`],
          speed: 'max',
          window: '1s',
          queueDir: join(tmp, `q-${site}`),
          ...extra,
        }),
      });
      gw.on('window', (m) => out.push(m));
      await gw.run();
      return out;
    };
    const all = await run('rssi-all', {});
    expect(Math.max(...all.map((c) => c.ble.devices))).toBe(3);
    expect(all.reduce((n, c) => n + (c.ble.weak as number), 0)).toBe(0);
    const strong = await run('rssi-55', { rssiMin: '-55' });
    expect(Math.max(...strong.map((c) => c.wifi.devices))).toBe(4);
    expect(Math.max(...strong.map((c) => c.ble.devices))).toBe(0);
    expect(strong.reduce((n, c) => n + (c.ble.weak as number), 0)).toBe(ble.frames);
  });

  it('paced replay: windows close on the capture clock through a quiet stretch, not at the next frame', async () => {
    const base = Date.parse('2026-03-01T11:00:00.000Z');
    // 10 frames in the first second, then silence until 5.5 s.
    const busy = wifiCapture(join(tmp, 'gap-a.pcap'), { devices: 2, startMs: base + 100, durationMs: 900, framesPerS: 10 });
    const late = wifiCapture(join(tmp, 'gap-b.pcap'), { devices: 1, startMs: base + 5500, durationMs: 10, framesPerS: 100 });
    // The capture comes through a named pipe: the frame at 5.5 s is written only once [2 s, 3 s) has
    // closed. A gateway that closed windows only when the next frame comes would never close it, and
    // the wait below would fail; no wall-clock limit is needed to tell the two apart.
    const fifo = join(tmp, 'gap.pcap');
    execFileSync('mkfifo', [fifo]);
    const gw = new Gateway({
      config: config({ site: 'gap', zone: 'z', id: 'g', mqtt: broker.url, source: [`pcap:${fifo}`], speed: '1', window: '1s', queueDir: join(tmp, 'q-gap') }),
    });
    const closedAt: Array<{ start: number; at: number }> = [];
    gw.on('window', (m) => closedAt.push({ start: Date.parse(m.start) - base, at: performance.now() }));
    const done = gw.run();
    const writer = await open(fifo, 'w');
    const wroteAt = performance.now(); // no frame can be read, so the replay's clock cannot start, before this
    await writer.write(readFileSync(busy.path));
    await waitFor(() => closedAt.some((c) => c.start === 2000), 50_000, 'window [2 s, 3 s) to close before the frame at 5.5 s is written');
    await writer.write(readFileSync(late.path).subarray(24));
    await writer.close();
    await done;
    expect(closedAt.map((c) => c.start)).toEqual([0, 1000, 2000, 3000, 4000, 5000]);
    // Paced on the capture clock, not early: [2 s, 3 s) closes once the clock, started at the first
    // frame (0.1 s), has passed 3 s, so no sooner than 2.9 s after the bytes were written. (Measured
    // from a moment before the replay starts, so a slow machine only makes it later; the distance
    // between two closes, as before, shrank when the first close came late.)
    expect(closedAt[2].at - wroteAt).toBeGreaterThanOrEqual(2900);
  });

  it('presence gateway --source pcap:FIFO (the command line, as gateway/README.md says) counts what a writer puts into the FIFO', async () => {
    const cap = wifiCapture(join(tmp, 'fifo-src.pcap'), { devices: 3, startMs: Date.parse('2026-03-01T10:00:00.000Z'), durationMs: 3000, framesPerS: 20 });
    const fifo = join(tmp, 'cli.fifo');
    execFileSync('mkfifo', [fifo]);
    // The writer opens once the gateway has opened the FIFO for reading (open waits for the other end).
    const writing = (async () => {
      const w = await open(fifo, 'w');
      await w.write(readFileSync(cap.path));
      await w.close();
    })();
    const run = await runCapture({ brokerUrl: broker.url, site: 'fifo', path: fifo, queueDir: join(tmp, 'q-fifo') }, ['--speed', 'max', '--window', '1s']);
    await writing;
    await run.end();
    expect(run.counts.map((c) => c.seq)).toEqual([1, 2, 3]);
    expect(run.counts.reduce((n, c) => n + c.wifi.frames, 0)).toBe(cap.frames);
    expect(Math.max(...run.counts.map((c) => c.wifi.devices))).toBe(3);
  });

  it('presence gateway --source pcap:FIFO without --speed reads the FIFO as it comes, not paced at real time by its capture times', async () => {
    // Paced at 1 as a file, a writer faster than real time (presence simulate --live --speed 60
    // --fifo) blocked on the full FIFO: these 10 minutes of capture would take 10 minutes.
    const cap = wifiCapture(join(tmp, 'fifo-fast.pcap'), { devices: 3, startMs: Date.parse('2026-03-01T11:00:00.000Z'), durationMs: 600_000, framesPerS: 20 });
    const fifo = join(tmp, 'fast.fifo');
    execFileSync('mkfifo', [fifo]);
    const writing = (async () => {
      const w = await open(fifo, 'w');
      await w.write(readFileSync(cap.path));
      await w.close();
    })();
    const run = await runCapture({ brokerUrl: broker.url, site: 'fifofast', path: fifo, queueDir: join(tmp, 'q-fifo-fast') }, ['--window', '60s']);
    await writing;
    await run.end();
    expect(run.counts.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(run.counts.reduce((n, c) => n + c.wifi.frames, 0)).toBe(cap.frames);
  }, 60_000);

  it('presence gateway --source pcap:FIFO stops on SIGTERM while the writer is quiet or never came, and queues the open window', async () => {
    // The FIFO was read in libuv's thread pool, whose thread waited in read(2) (or open(2)) for the
    // writer: 'stopping' was logged and the process never ended, not even on a second signal.
    const cap = wifiCapture(join(tmp, 'quiet.pcap'), { devices: 3, startMs: Date.parse('2026-03-01T13:00:00.000Z'), durationMs: 3000, framesPerS: 20 });
    const sub = await subscriber(broker.url, { filter: siteFilter('quiet'), clientId: 'quiet-sub' });
    const fifo = join(tmp, 'quiet.fifo');
    execFileSync('mkfifo', [fifo]);
    const gw = spawnGateway(
      ['--site', 'quiet', '--zone', 'z', '--id', 'g', '--source', `pcap:${fifo}`, '--window', '1h', '--status-interval', '1s'].concat([
        '--mqtt-url',
        broker.url,
        '--queue-dir',
        join(tmp, 'q-quiet'),
        '--log-format',
        'json',
      ]),
    );
    const writer = await open(fifo, 'w'); // stays open, writing nothing more
    try {
      await writer.write(readFileSync(cap.path));
      // every frame read: the status says so
      await waitFor(() => statuses(sub.messages, 'quiet').some((m) => m.sources?.[0]?.frames === cap.frames), 30_000, 'the frames read');
      gw.proc.kill('SIGTERM');
      expect(await gw.exited).toBe(0);
    } finally {
      if (gw.proc.exitCode === null) gw.proc.kill('SIGKILL');
      await writer.close();
    }
    await waitFor(() => counts(sub.messages, 'quiet').length > 0, 10_000, 'the open window');
    const [w] = counts(sub.messages, 'quiet');
    expect([w.wifi.frames, w.wifi.devices, w.complete]).toEqual([cap.frames, 3, false]);

    // no writer ever opened it
    const lonely = join(tmp, 'lonely.fifo');
    execFileSync('mkfifo', [lonely]);
    const alone = spawnGateway([
      '--site',
      'quiet',
      '--zone',
      'z',
      '--id',
      'g2',
      '--source',
      `pcap:${lonely}`,
      '--mqtt-url',
      broker.url,
      '--queue-dir',
      join(tmp, 'q-lonely'),
    ]);
    try {
      await waitFor(() => alone.stderr().includes('connected to broker'), 30_000, 'the gateway to start');
      alone.proc.kill('SIGTERM');
      expect(await alone.exited).toBe(0);
    } finally {
      if (alone.proc.exitCode === null) alone.proc.kill('SIGKILL');
    }
    await sub.client.endAsync();
  }, 90_000);

  it.skipIf(!hasPython)(
    'presence gateway --source pcap:DEVICE (a tty) stops on SIGTERM while the device is quiet, and queues the open window',
    async () => {
      // Read in libuv's thread pool, a quiet device held the process's exit as a quiet FIFO did.
      const cap = wifiCapture(join(tmp, 'tty.pcap'), { devices: 2, startMs: Date.parse('2026-03-01T14:00:00.000Z'), durationMs: 2000, framesPerS: 10 });
      // a pseudo-terminal in raw mode (bytes pass as they are): the capture is written into its
      // master, which stays open; the gateway reads its slave, a character device
      const pty = spawn(
        'python3',
        [
          '-c',
          'import os, pty, sys, tty, time\nm, s = pty.openpty()\ntty.setraw(s)\nprint(os.ttyname(s), flush=True)\nsys.stdin.readline()\nos.write(m, open(sys.argv[1], "rb").read())\ntime.sleep(600)',
          cap.path,
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      try {
        const device = await new Promise<string>((resolve) => pty.stdout!.once('data', (d) => resolve(String(d).trim())));
        const sub = await subscriber(broker.url, { filter: siteFilter('tty'), clientId: 'tty-sub' });
        const gw = spawnGateway(
          ['--site', 'tty', '--zone', 'z', '--id', 'g', '--source', `pcap:${device}`, '--window', '1h', '--status-interval', '1s'].concat([
            '--mqtt-url',
            broker.url,
            '--queue-dir',
            join(tmp, 'q-tty'),
            '--log-format',
            'json',
          ]),
        );
        try {
          await waitFor(() => gw.stderr().includes('connected to broker'), 30_000, 'the gateway to start');
          pty.stdin!.write('go\n');
          await waitFor(() => statuses(sub.messages, 'tty').some((m) => m.sources?.[0]?.frames === cap.frames), 30_000, 'the frames read');
          gw.proc.kill('SIGTERM');
          expect(await gw.exited).toBe(0);
        } finally {
          if (gw.proc.exitCode === null) gw.proc.kill('SIGKILL');
        }
        await waitFor(() => counts(sub.messages, 'tty').length > 0, 10_000, 'the open window');
        const [w] = counts(sub.messages, 'tty');
        expect([w.wifi.frames, w.wifi.devices, w.complete]).toEqual([cap.frames, 2, false]);
        await sub.client.endAsync();
      } finally {
        pty.kill('SIGKILL');
      }
    },
    90_000,
  );

  it.skipIf(!hasPython)(
    'presence replay of a device whose read fails (EIO) prints the window of the frames read before it, then the error with its offset',
    () => {
      // Only a damaged capture's open window was printed: a failed read lost the frames read before it.
      const start = Date.parse('2026-03-01T15:00:00.000Z');
      const first = wifiCapture(join(tmp, 'eio-a.pcap'), { devices: 2, startMs: start, durationMs: 10_000, framesPerS: 2 });
      const second = wifiCapture(join(tmp, 'eio-b.pcap'), { devices: 3, startMs: start + 60_000, durationMs: 10_000, framesPerS: 2, salt: 5 });
      const capture = join(tmp, 'eio.pcap');
      writeFileSync(capture, Buffer.concat([readFileSync(first.path), readFileSync(second.path).subarray(24)]));
      // A raw pseudo-terminal: the capture is written into its master; once the first window is
      // printed (a frame of the second was read), the pty is closed and the replay's next read fails.
      const script = [
        'import json, os, pty, subprocess, sys, tty',
        'm, s = pty.openpty()',
        'tty.setraw(s)',
        "p = subprocess.Popen([sys.argv[1], sys.argv[2], 'replay', '--json', os.ttyname(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)",
        "os.write(m, open(sys.argv[3], 'rb').read())",
        'line = p.stdout.readline()',
        'os.close(s)',
        'os.close(m)',
        'out, err = p.communicate(timeout=60)',
        "print(json.dumps({'rc': p.returncode, 'out': line.decode() + out.decode(), 'err': err.decode()}))",
      ].join('\n');
      const r = JSON.parse(
        execFileSync('python3', ['-c', script, process.execPath, join(ROOT, 'scripts', 'presence.js'), capture], { encoding: 'utf8', timeout: 90_000 }),
      );
      expect(r.rc).toBe(1);
      const windows = (r.out as string)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(windows.map((w) => w.start)).toEqual(['2026-03-01T15:00:00.000Z', '2026-03-01T15:01:00.000Z']);
      expect(windows[0].wifi.frames).toBe(first.frames);
      expect(windows[1].wifi.frames).toBeGreaterThan(0);
      expect(r.err).toMatch(
        /^presence replay: \/dev\/pts\/\d+: EIO: i\/o error, read \(after byte offset \d+\); the frames read before it were counted, none after it\n$/,
      );
    },
    120_000,
  );

  it('loses no window and reorders none when the broker stops mid-replay and comes back', async () => {
    const start = Date.parse('2026-03-01T12:00:00.000Z');
    // 120 s of capture at speed 20 = 6 s of replay, 1 s windows: about 120 windows.
    const cap = wifiCapture(join(tmp, 'outage.pcap'), { devices: 3, startMs: start + 500, durationMs: 120_000, framesPerS: 20 });
    const sub = await subscriber(broker.url, { filter: countsTopic('outage', '+'), clientId: 'outage-sub' });
    const gw = new Gateway({
      config: config({
        site: 'outage',
        zone: 'z',
        id: 'g',
        mqtt: broker.url,
        source: [`pcap:${cap.path}`],
        speed: '20',
        window: '1s',
        keepalive: '2s',
        queueDir: join(tmp, 'q-outage'),
      }),
    });
    let maxDepth = 0;
    gw.on('window', () => (maxDepth = Math.max(maxDepth, gw.queueDepth)));
    const done = gw.run();
    await waitFor(() => countsOf(sub.messages).length >= 10, 30_000, 'first windows');
    await broker.stop();
    // The outage lasts until windows are held in the queue (the event), not a fixed time.
    await waitFor(() => gw.queueDepth > 5, 50_000, 'windows held in the queue while the broker is down');
    await broker.start();
    await done;
    const expected = windowsSpanned(cap.firstMs, cap.lastMs, 1000);
    await waitFor(() => new Set(countsOf(sub.messages).map((c) => c.seq)).size >= expected, 20_000, 'every window after the outage');
    const arrivals = firstArrivals(countsOf(sub.messages));
    expect(arrivals).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
    expect(maxDepth).toBeGreaterThan(5); // windows really were held in the queue during the outage
    expect(gw.queueDepth).toBe(0);
    await sub.client.endAsync();
  });
});
