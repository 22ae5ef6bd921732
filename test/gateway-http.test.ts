// `presence gateway --http-port`: /metrics and /healthz of the real CLI during a paced replay
// against a real Mosquitto. Frames rise between scrapes while the replay runs; process metrics carry
// their standard names and presence_build_info is there; window frames are counted as published (0 for a
// radio k suppressed); a taken port stops the start naming --http-port.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { metricNameProblems, metricTypes } from './support/metric-names.ts';
import { freePort } from './support/ports.ts';
import { gatewayArgs, logLines, spawnGateway, waitFor, wifiCapture } from './gateway-support.ts';
import { LINKTYPE } from '../firmware/host/types.ts';
import { health, QUIET_MIN_MS, QUIET_WINDOWS, type GatewayView } from '../gateway/http.ts';
import { NO_OUTPUT_MS } from '../gateway/sources.ts';
import { pcapngHeader } from '../simulator/pcap-writer.ts';

const SUITE = 'gateway http';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

/** Value of one sample of a Prometheus text exposition (first line matching name and labels). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return undefined;
}

async function get(port: number, path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, text: await res.text() };
}

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-http-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('serves /metrics and /healthz during a replay; frames rise between scrapes', async () => {
    // 40 s of capture at 20 frames/s, replayed 4x: about 10 s of wall time.
    const cap = wifiCapture(join(tmp, 'http.pcap'), { devices: 12, startMs: Date.UTC(2025, 3, 27, 12, 0, 0), durationMs: 40_000, framesPerS: 20 });
    const port = await freePort();
    const gw = spawnGateway(
      gatewayArgs(
        { site: 'http', id: 'gw-http', mqttUrl: broker.url, source: `wifi=pcap:${cap.path}@wifi`, queueDir: join(tmp, 'q') },
        '--speed',
        '4',
        '--window',
        '10s',
        '--http-port',
        String(port),
        '--log-format',
        'json',
      ),
    );
    try {
      const seen: number[] = [];
      let text = '';
      // Scrape until the source has read some frames but not all, then until a later scrape reads more.
      await waitFor(() => /"http":"127\.0\.0\.1:\d+"/.test(gw.stderr()), 20_000, 'gateway starting with http');
      const scrape = async () => {
        text = (await get(port, '/metrics')).text;
        return sample(text, 'presence_gateway_source_frames_total', { source: 'wifi', radio: 'wifi' }) ?? 0;
      };
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const f = await scrape();
        if (f > 0 && f < cap.frames) seen.push(f);
        if (seen.length >= 2 && seen[seen.length - 1] > seen[0]) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(seen.length, `scrapes during the replay: ${seen.join(', ')}`).toBeGreaterThanOrEqual(2);
      expect(seen[seen.length - 1]).toBeGreaterThan(seen[0]);
      expect(sample(text, 'presence_gateway_source_state', { source: 'wifi', state: 'running' })).toBe(1);
      expect(sample(text, 'presence_gateway_mqtt_connected')).toBe(1);
      expect(sample(text, 'presence_gateway_queue_state', { state: 'ok' })).toBe(1);
      expect(sample(text, 'presence_gateway_queue_depth')).toBeGreaterThanOrEqual(0);
      // Standard process metrics, no project prefix; the build is named.
      expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
      expect(sample(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
      expect(text).not.toMatch(/presence_gateway_process_|presence_gateway_nodejs_/);
      expect(sample(text, 'presence_build_info', { component: 'gateway', version: '0.1.0' })).toBe(1);
      // Prometheus conventions: what is counted since start is a counter, and every counter ends in _total.
      expect(metricNameProblems(text)).toEqual([]);
      expect(metricTypes(text)).toMatchObject({
        presence_gateway_source_frames_total: 'counter',
        presence_gateway_source_errors_total: 'counter',
        presence_gateway_queue_dropped_total: 'counter',
        presence_gateway_windows_closed_total: 'counter',
        presence_gateway_windows_published_total: 'counter',
        presence_gateway_page_viewers_dropped_total: 'counter',
        presence_gateway_page_viewers_refused_total: 'counter',
        presence_gateway_queue_depth: 'gauge',
      });
      const h = await get(port, '/healthz');
      expect(h.status).toBe(200);
      expect(JSON.parse(h.text)).toMatchObject({ status: 'ok', problems: [], sources: { wifi: 'running' } });
      // Windows are published and counted while the replay goes on.
      const until = Date.now() + 30_000;
      while ((sample(text, 'presence_gateway_windows_published_total') ?? 0) < 1) {
        if (Date.now() > until) throw new Error('no published window on /metrics');
        await new Promise((r) => setTimeout(r, 100));
        await scrape();
      }
      expect(sample(text, 'presence_gateway_window_frames_total', { radio: 'wifi' })).toBeGreaterThan(0);
      expect((await get(port, '/nothing')).status).toBe(404);
      expect(await gw.exited).toBe(0);
    } finally {
      gw.proc.kill('SIGKILL');
    }
  });

  it('window frames on /metrics are the published ones: 0 for a radio k suppressed, while the source frames still count (not protected)', async () => {
    // 12 devices, k = 100: every window's Wi-Fi radio goes out as zeros.
    const cap = wifiCapture(join(tmp, 'k.pcap'), { devices: 12, startMs: Date.UTC(2025, 3, 27, 12, 0, 0), durationMs: 30_000, framesPerS: 20 });
    const port = await freePort();
    const gw = spawnGateway(
      gatewayArgs(
        { site: 'http', id: 'gw-k', mqttUrl: broker.url, source: `wifi=pcap:${cap.path}@wifi`, queueDir: join(tmp, 'q-k') },
        '--speed',
        '4',
        '--window',
        '10s',
        '--privacy-min-count',
        '100',
        '--http-port',
        String(port),
        '--log-format',
        'json',
      ),
    );
    try {
      await waitFor(() => /"http":"127\.0\.0\.1:\d+"/.test(gw.stderr()), 20_000, 'gateway starting with http');
      let text = '';
      const until = Date.now() + 30_000;
      while ((sample(text, 'presence_gateway_windows_closed_total') ?? 0) < 2) {
        if (Date.now() > until) throw new Error('no closed windows on /metrics');
        await new Promise((r) => setTimeout(r, 100));
        text = (await get(port, '/metrics')).text;
      }
      expect(sample(text, 'presence_gateway_source_frames_total', { source: 'wifi', radio: 'wifi' })).toBeGreaterThan(0);
      expect(sample(text, 'presence_gateway_window_frames_total', { radio: 'wifi' })).toBe(0);
      expect(sample(text, 'presence_gateway_window_frames_total', { radio: 'ble' })).toBe(0);
      expect(await gw.exited).toBe(0);
    } finally {
      gw.proc.kill('SIGKILL');
    }
  });

  it('/healthz says degraded, with the reason, while a capture command keeps failing', async () => {
    const port = await freePort();
    const gw = spawnGateway(
      gatewayArgs(
        { site: 'http', id: 'gw-bad', mqttUrl: broker.url, source: 'bad=cmd:echo "no such device" >&2; exit 1', queueDir: join(tmp, 'q-bad') },
        '--http-port',
        String(port),
        '--log-format',
        'json',
      ),
    );
    try {
      await waitFor(() => gw.stderr().includes('"state":"restarting"'), 20_000, 'the source restarting');
      // (between restarts the command runs again for a moment: read until a restarting state is seen)
      let body: { status: string; problems: string[] } = { status: '', problems: [] };
      const until = Date.now() + 20_000;
      while (body.status !== 'degraded' && Date.now() < until) {
        const h = await get(port, '/healthz');
        expect(h.status).toBe(200);
        body = JSON.parse(h.text);
      }
      expect(body.status).toBe('degraded');
      // why and what to do, as the log line says it (the status's fixed sentence and the command's fix)
      expect(body.problems).toContainEqual(
        expect.stringMatching(
          /^source bad is restarting \(\d+ errors so far\): the capture command exited with code 1; fix: the interface .*is not there: check the name with `ip link`/,
        ),
      );
      const text = (await get(port, '/metrics')).text;
      expect(sample(text, 'presence_gateway_source_state', { source: 'bad', state: 'failed' })).toBe(0);
      expect(sample(text, 'presence_gateway_source_errors_total', { source: 'bad' })).toBeGreaterThanOrEqual(1);
    } finally {
      gw.proc.kill('SIGTERM');
      await gw.exited;
    }
  });

  it('a capture command that writes nothing, not even a header, makes /healthz degraded naming it and the fix; one that wrote its header does not', async () => {
    const hdr = join(tmp, 'header.pcapng');
    writeFileSync(hdr, pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }]));
    const port = await freePort();
    const gw = spawnGateway(
      gatewayArgs(
        // (through a wrapper: the log names the program it runs, sleep, not env)
        { site: 'http', id: 'gw-hung', mqttUrl: broker.url, source: 'hung=cmd:env X=1 sleep 100000', queueDir: join(tmp, 'q-hung') },
        '--source',
        `quiet=cmd:cat ${hdr}; sleep 100000`,
        '--http-port',
        String(port),
        '--log-format',
        'json',
      ),
    );
    type Body = { status: string; problems: string[]; warnings: string[]; sources: Record<string, string> };
    try {
      await waitFor(() => /"http":"127\.0\.0\.1:\d+"/.test(gw.stderr()), 20_000, 'gateway starting with http');
      // before the bound: nothing to say yet (a capture tool may take a moment to open its interface),
      // once the broker connection is up (asked at once, a loaded machine may not have connected yet)
      let early = JSON.parse((await get(port, '/healthz')).text) as Body;
      for (const until = Date.now() + 8000; early.status !== 'ok' && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 100));
        early = JSON.parse((await get(port, '/healthz')).text) as Body;
      }
      expect(early).toMatchObject({ status: 'ok', problems: [], warnings: [] });
      const msg = 'capture command has written nothing, not even a capture file header: it hangs or holds its output back';
      await waitFor(() => logLines(gw.stderr(), msg).length > 0, NO_OUTPUT_MS + 10_000, 'the no-output warn line');
      expect(logLines(gw.stderr(), msg).map((l) => [l.level, l.source, l.program])).toEqual([[40, 'hung', 'sleep']]);
      const h = await get(port, '/healthz');
      expect(h.status).toBe(200);
      const body = JSON.parse(h.text) as Body;
      expect(body.status).toBe('degraded');
      expect(body.sources).toEqual({ hung: 'running', quiet: 'running' });
      expect(body.problems).toHaveLength(1);
      expect(body.problems[0]).toMatch(
        /^source hung: the capture command has written nothing for 1\d s since it started, not even a capture file header, so nothing is counted: .*; fix: run the command by hand .*tcpdump needs -U/,
      );
      // a header, then silence: a quiet site, not a fault (and not yet QUIET_WINDOWS windows)
      expect(body.warnings).toEqual([]);
      expect(gw.stderr()).not.toContain('"source":"quiet","program"');
      // the page's event stream: its first picture carries the same sentence for that source only (an alert on the page)
      const ctrl = new AbortController();
      const res = await fetch(`http://127.0.0.1:${port}/events`, { signal: ctrl.signal });
      const reader = res.body!.getReader();
      let text = '';
      while (!/"viewers"/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      ctrl.abort();
      const picture = JSON.parse(/^data: (.*)$/m.exec(text)![1]) as { sources: Array<{ name: string; silence?: { level: string; text: string } }> };
      expect(picture.sources.map((x) => [x.name, x.silence?.level])).toEqual([
        ['hung', 'problem'],
        ['quiet', undefined],
      ]);
      expect(picture.sources[0].silence!.text).toMatch(/^source hung: the capture command has written nothing/);
    } finally {
      gw.proc.kill('SIGTERM');
      await gw.exited;
    }
  }, 60_000);

  it('a capture command that writes only after the silence bound: /healthz degraded until then, one info line "capture command writes now" naming its program, then ok and its frames counted', async () => {
    // A capture tool that holds its output back until the test lets it go (a marker file), once the
    // warn line of the bound (NO_OUTPUT_MS, fixed) is out: then a capture header and frames.
    const cap = wifiCapture(join(tmp, 'late.pcap'), { devices: 3, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 2000, framesPerS: 10 });
    const marker = join(tmp, 'late.go');
    const tool = join(tmp, 'late-capture');
    writeFileSync(tool, `#!/bin/sh\nuntil [ -e ${marker} ]; do sleep 0.1; done\ncat ${cap.path}\nexec sleep 100000\n`, { mode: 0o755 });
    const port = await freePort();
    const gw = spawnGateway(
      gatewayArgs(
        // through wrappers: the log names the program they run
        { site: 'http', id: 'gw-late', mqttUrl: broker.url, source: `late=cmd:stdbuf -o0 nice -n 1 ${tool}`, queueDir: join(tmp, 'q-late') },
        '--http-port',
        String(port),
        '--log-format',
        'json',
      ),
    );
    type Body = { status: string; problems: string[]; warnings: string[] };
    const healthz = async () => JSON.parse((await get(port, '/healthz')).text) as Body;
    const silent = 'capture command has written nothing, not even a capture file header: it hangs or holds its output back';
    const writes = 'capture command writes now';
    try {
      await waitFor(() => logLines(gw.stderr(), silent).length > 0, NO_OUTPUT_MS + 15_000, 'the no-output warn line');
      expect(logLines(gw.stderr(), writes)).toEqual([]);
      const before = await healthz();
      expect(before.status).toBe('degraded');
      expect(before.problems).toEqual([expect.stringMatching(/^source late: the capture command has written nothing for 1\d s since it started/)]);

      writeFileSync(marker, '');
      await waitFor(() => logLines(gw.stderr(), writes).length > 0, 15_000, 'the line saying the command writes now');
      const line = logLines(gw.stderr(), writes);
      expect(line).toHaveLength(1);
      expect(line[0]).toMatchObject({ level: 30, source: 'late', program: 'late-capture' });
      expect(line[0]!.silent_ms).toBeGreaterThanOrEqual(NO_OUTPUT_MS);
      expect(logLines(gw.stderr(), silent)).toHaveLength(1);
      // the problem is gone once it wrote, and its frames are read
      let after = await healthz();
      for (const until = Date.now() + 10_000; after.status !== 'ok' && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 100));
        after = await healthz();
      }
      expect(after).toMatchObject({ status: 'ok', problems: [], warnings: [] });
      const frames = async () => sample((await get(port, '/metrics')).text, 'presence_gateway_source_frames_total', { source: 'late' }) ?? 0;
      let read = await frames();
      for (const until = Date.now() + 10_000; read < 20 && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, 100));
        read = await frames();
      }
      expect(read).toBe(20);
    } finally {
      gw.proc.kill('SIGTERM');
      await gw.exited;
    }
  }, 60_000);

  it('/healthz and the page say why the broker cannot be reached and what to do, not only that it is not connected', async () => {
    const [port, closed] = [await freePort(), await freePort()]; // nothing listens on `closed`
    const cap = wifiCapture(join(tmp, 'nobroker.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 1000, framesPerS: 10 });
    const gw = spawnGateway(
      gatewayArgs(
        { site: 'http', id: 'gw-nobroker', mqttUrl: `mqtt://127.0.0.1:${closed}`, source: `cmd:cat ${cap.path}; sleep 600`, queueDir: join(tmp, 'q-nobroker') },
        '--http-port',
        String(port),
      ),
    );
    try {
      await waitFor(() => gw.stderr().includes('cannot connect to the broker'), 20_000, 'the failed connection');
      const body = JSON.parse((await get(port, '/healthz')).text) as { status: string; problems: string[] };
      expect(body.status).toBe('degraded');
      expect(body.problems).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^not connected to the MQTT broker: \\d+ window\\(s\\) queued \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${closed}; fix: nothing listens there: start the broker, or fix the port in mqtt\\.url\\)$`,
          ),
        ),
      );
      // the page's picture carries the same (its alert shows them)
      const ctrl = new AbortController();
      const res = await fetch(`http://127.0.0.1:${port}/events`, { signal: ctrl.signal });
      const reader = res.body!.getReader();
      let text = '';
      while (!text.includes('"broker":')) text += new TextDecoder().decode((await reader.read()).value);
      ctrl.abort();
      expect(text).toContain(
        `"broker":{"connected":false,"url":"mqtt://127.0.0.1:${closed}","error":"connect ECONNREFUSED 127.0.0.1:${closed}","fix":"nothing listens there: start the broker, or fix the port in mqtt.url"}`,
      );
    } finally {
      gw.proc.kill('SIGTERM');
      await gw.exited;
    }
  });

  it('the same gateway run twice: /healthz of each says the session is taken over and what to do, every time it is asked', async () => {
    const ports = [await freePort(), await freePort()];
    // a capture that writes its header, then nothing (a command that writes nothing at all is a problem of its own)
    const hdr = join(tmp, 'twice.pcapng');
    writeFileSync(hdr, pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }]));
    const gws = ports.map((port, i) =>
      spawnGateway(
        gatewayArgs(
          { site: 'http', id: 'gw-twice', mqttUrl: broker.url, source: `cmd:cat ${hdr}; sleep 600`, queueDir: join(tmp, `q-twice-${i}`) },
          '--http-port',
          String(port),
          '--log-format',
          'json',
        ),
      ),
    );
    try {
      await waitFor(() => gws.every((g) => g.stderr().includes('session taken over')), 30_000, 'the take-over, seen by both');
      // while the two take the connection from each other, each answer names it: half of them had said
      // ok and the other half "not connected" without a reason
      const answers: string[] = [];
      const until = Date.now() + 4000;
      while (Date.now() < until) {
        for (const port of ports) {
          const body = JSON.parse((await get(port, '/healthz')).text) as { status: string; problems: string[] };
          answers.push(`${body.status} ${body.problems.join(' | ')}`);
        }
        await new Promise((r) => setTimeout(r, 150));
      }
      for (const a of answers)
        expect(a).toMatch(
          /^degraded .*session taken over: another client with this client id \(presence-gw-http-gw-twice\) keeps taking the connection; fix: is gateway http\/gw-twice running twice\? Stop the other one/,
        );
      // once the other one stops, the one left is ok again
      gws[1].proc.kill('SIGTERM');
      await gws[1].exited;
      let body = { status: '', problems: [] as string[] };
      const settle = Date.now() + 20_000;
      while (body.status !== 'ok' && Date.now() < settle) {
        body = JSON.parse((await get(ports[0], '/healthz')).text);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(body).toMatchObject({ status: 'ok', problems: [] });
    } finally {
      for (const g of gws) g.proc.kill('SIGTERM');
      await Promise.all(gws.map((g) => g.exited));
    }
  });

  it('a taken --http-port stops the start with a message naming the flag (exit 2)', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    const cap = wifiCapture(join(tmp, 'taken.pcap'), { devices: 2, startMs: Date.UTC(2025, 3, 27, 12, 0, 0), durationMs: 2000, framesPerS: 5 });
    try {
      const gw = spawnGateway(
        gatewayArgs(
          { site: 'http', id: 'gw-taken', mqttUrl: broker.url, source: `pcap:${cap.path}`, queueDir: join(tmp, 'q2') },
          '--http-port',
          String(port),
          '--log-format',
          'json',
        ),
      );
      expect(await gw.exited).toBe(2);
      expect(gw.stderr()).toContain(`presence gateway: --http-port ${port} (http.port): 127.0.0.1:${port} is already in use`);
    } finally {
      blocker.close();
    }
  });
});

describe('health(): a capture command silent for a long time', () => {
  const WINDOW = 60_000;
  const view = (silence: { bytes: number; silentMs: number } | null): GatewayView =>
    ({
      sources: [{ name: 'wifi', state: 'running', frames: 0, errors: 0, silence: () => silence }],
      windowMs: WINDOW,
      queueDepth: 0,
      mqttConnected: true,
      brokerProblem: null,
      unparsedFrames: 0,
      status: () => ({}),
      on: () => undefined,
    }) as GatewayView;

  it('no byte at all: ok before the bound, degraded after it', () => {
    expect(health(view({ bytes: 0, silentMs: NO_OUTPUT_MS - 1 }))).toMatchObject({ status: 'ok', problems: [], warnings: [] });
    const h = health(view({ bytes: 0, silentMs: NO_OUTPUT_MS }));
    expect(h.status).toBe('degraded');
    expect(h.problems).toEqual([
      expect.stringMatching(/^source wifi: the capture command has written nothing for 15 s since it started, not even a capture file header/),
    ]);
    expect(h.warnings).toEqual([]);
  });

  it('a header, then no frame for many windows: a warning, the status stays ok', () => {
    const quiet = Math.max(QUIET_MIN_MS, QUIET_WINDOWS * WINDOW);
    expect(health(view({ bytes: 24, silentMs: quiet - 1 }))).toMatchObject({ status: 'ok', problems: [], warnings: [] });
    const h = health(view({ bytes: 24, silentMs: quiet + 60_000 }));
    expect(h.status).toBe('ok');
    expect(h.problems).toEqual([]);
    expect(h.warnings).toEqual([
      expect.stringMatching(/^source wifi: the capture command wrote a capture file header but no frame for 11 min \(11 windows\): a quiet site/),
    ]);
  });

  it('frames came, then stopped: the same warning (silentMs counts from the last frame)', () => {
    expect(health(view({ bytes: 100_000, silentMs: 3_600_000 })).warnings).toEqual([expect.stringContaining('no frame for 60 min (60 windows)')]);
  });

  it('no command running (waiting to restart) or not a command: nothing about silence', () => {
    expect(health(view(null))).toMatchObject({ status: 'ok', problems: [], warnings: [] });
  });
});
