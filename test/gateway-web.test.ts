// The gateway's live page (`presence gateway --http-port`, gateway/web.ts) in real headless Chromium
// against the real CLI and a real Mosquitto:
// - the page loads with no console error and shows what the gateway hears (frames per channel,
//   the signal histogram, the windows it published); the page, its assets, its event stream and
//   the rendered page hold no address in any form, although the frames replayed carry known
//   addresses (the leak scan of test/support/leak.ts, the one the MQTT and log checks use);
// - a capture command that exits shows on the page at once: the update interval is an hour, so
//   only the push on a source's change of state can bring it; one that runs but has written nothing
//   for 15 s shows as capture silent in the sources, not as a plain running;
// - a window suppressed for privacy.min_count shows as suppressed below k (a gap in its chart), not as 0;
// - the gateway gone (killed), the page says it has no connection since when and that what it
//   shows is from then; the gateway back, the next picture takes that away;
// - 50 viewers, 10 of them never reading, during a max-speed replay: the gateway counts every frame,
//   each viewer's unsent bytes stay under http.viewer_buffer, the stalled ones are dropped and
//   counted, the reading ones get every picture; a closed viewer is gone from the count;
// - no secret (the broker password in the URL, the page token, the corridor secret) reaches the
//   page, its stream, /metrics or /healthz; its state badges are readable (contrast 4.5:1);
// - markup in configured strings (a program, an interface, the broker URL) shows as text; a failing
//   source shows the fix /healthz gives for it;
// - beyond loopback the page needs credentials (403 without any, 401 with wrong ones) while
//   /metrics stays open.
// UPDATE_SCREENSHOTS=1 writes docs/gateway-page.png from the first test.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { freePort, waitForPort } from './support/ports.ts';
import { launchBrowser, needChromium, openPage, type Browser } from './support/browser.ts';
import { scan, type Finding } from './support/leak.ts';
import { bleCapture, spawnGateway, waitFor, wifiCapture } from './gateway-support.ts';
import { ASSETS } from '../scripts/lib/web.ts';

const SUITE = 'gateway page';
const ok = needChromium(SUITE) && need('mosquitto', 'mosquitto', SUITE);
const ROOT = join(import.meta.dirname, '..');

/** Value of one sample of a Prometheus text exposition. */
function sample(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** A viewer reading /events: everything it got, and the number of pictures. */
function viewer(port: number): Promise<{ res: IncomingMessage; text: () => string; pictures: () => number; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events' }, (res) => {
      let n = 0;
      let tail = '';
      let all = '';
      let closed = false;
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        const s = tail + d;
        n += s.split('event: snapshot\n').length - 1;
        tail = s.slice(-15);
        if (all.length < 4_000_000) all += d;
      });
      res.on('close', () => (closed = true));
      resolve({ res, text: () => all, pictures: () => n, closed: () => closed });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A viewer that sends its request and never reads a byte. */
function stalledViewer(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      s.pause();
      resolve(s);
    });
    s.on('error', () => {}); // reset by the gateway when dropped
    s.once('error', reject);
  });
}

/** Waits for an asynchronous condition, checking every 50 ms. */
async function poll(cond: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function text(url: string, init?: RequestInit): Promise<{ status: number; body: Buffer }> {
  const r = await fetch(url, init);
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}

describe.skipIf(!ok)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-web-'));
  let browser: Browser;
  beforeAll(async () => {
    await broker.start();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });
  const start = Date.parse('2026-06-01T12:00:00.000Z');

  it('loads with no console error, shows what the gateway hears, and no address reaches the page, its assets, its stream, /metrics or /healthz', async () => {
    const wifi = wifiCapture(join(tmp, 'w.pcap'), { devices: 25, startMs: start + 100, durationMs: 60_000, framesPerS: 60, salt: 21 });
    const ble = bleCapture(join(tmp, 'b.pcap'), { devices: 15, startMs: start + 50, durationMs: 60_000, framesPerS: 60, salt: 22 });
    const addresses = [...wifi.addresses, ...ble.addresses];
    const port = await freePort();
    const gw = spawnGateway([
      ...['--site', 'web', '--zone', 'hall', '--id', 'gw-web', '--mqtt-url', broker.url, '--window', '5s', '--log-level', 'debug'],
      ...['--source', `wifi=pcap:${wifi.path}@wifi`, '--source', `ble=pcap:${ble.path}@ble`, '--speed', '4'],
      ...['--queue-dir', join(tmp, 'q1'), '--http-port', String(port), '--http-update', '500ms'],
    ]);
    try {
      await waitForPort(port);
      const base = `http://127.0.0.1:${port}`;
      const stream = await viewer(port);
      const v = await openPage(browser, `${base}/`, { viewport: { width: 1280, height: 1400 } });
      // A window published, frames per channel and the signal histogram on the page.
      await v.page.waitForFunction("document.querySelector('#windows')?.textContent.includes('published')", { timeout: 30_000 });
      await v.page.waitForFunction("/2\\.4 GHz 6: [1-9]/.test(document.getElementById('channels-text')?.textContent ?? '')", { timeout: 30_000 });
      await v.page.waitForFunction("document.querySelector('#checks')?.textContent.includes('clock')", { timeout: 30_000 });
      const shown = await v.page.evaluate('document.body.innerText');
      expect(shown).toMatch(/BLE 37: [1-9]/);
      expect(shown).toMatch(/web \/ hall \/ gw-web/);
      // the machine checks include swap (the kernel may write the gateway's memory there)
      expect(await v.page.evaluate("document.querySelector('#checks')?.textContent ?? ''")).toContain('swap');
      expect(await v.page.$$eval('canvas', (c) => c.length)).toBeGreaterThanOrEqual(4);
      // Every state badge (white text on its colour) is readable: WCAG AA contrast, 4.5:1 at least.
      const contrasts = (await v.page.evaluate(`(() => {
        const lum = (css) => {
          const [r, g, b] = css.match(/[0-9.]+/g).slice(0, 3).map((x) => Number(x) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
          return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const out = {};
        for (const level of ['ok', 'warn', 'fail', 'info']) {
          const el = document.createElement('span');
          el.className = 'badge ' + level;
          el.textContent = level;
          document.body.append(el);
          const st = getComputedStyle(el);
          const [a, b] = [lum(st.color), lum(st.backgroundColor)].sort((x, y) => y - x);
          out[level] = (a + 0.05) / (b + 0.05);
          el.remove();
        }
        return out;
      })()`)) as Record<string, number>;
      for (const [level, ratio] of Object.entries(contrasts)) expect(ratio, `contrast of the ${level} badge`).toBeGreaterThanOrEqual(4.5);
      // The page and its assets as served.
      const served: Array<[string, Buffer]> = [['page', (await text(`${base}/`)).body]];
      for (const path of Object.keys(ASSETS)) served.push([path, (await text(`${base}${path}`)).body]);
      // /metrics and /healthz of the same server: addresses in the whole text, hash-like runs in
      // everything but the sample values (floats such as 0.0011254285322632516 read as hex runs)
      const metrics = (await text(`${base}/metrics`)).body.toString('utf8');
      const healthz = (await text(`${base}/healthz`)).body;
      expect(metrics).toMatch(/presence_gateway_source_frames_total\{source="wifi",radio="wifi"\} [1-9]/);
      if (process.env.UPDATE_SCREENSHOTS === '1') {
        await new Promise((r) => setTimeout(r, 4000)); // a few more pictures on the charts
        await v.page.screenshot({ path: join(ROOT, 'docs', 'gateway-page.png'), fullPage: true });
      }
      expect(await gw.exited, gw.stderr().slice(-2000)).toBe(0);
      // Everything the browser was given, the stream of a whole run, and what the page rendered.
      const findings: Finding[] = [];
      for (const [what, body] of served) {
        expect(body.length, what).toBeGreaterThan(1000);
        // uPlot's minified code is third-party: addresses only (its identifiers can look hash-like)
        findings.push(...scan(what, body, addresses, { hashLike: what === 'page' }));
      }
      findings.push(...scan('page as rendered', Buffer.from(await v.page.content()), addresses));
      findings.push(...scan('event stream', Buffer.from(stream.text()), addresses));
      findings.push(...scan('/metrics', metrics, addresses, { hashLike: false }));
      const metricNamesAndLabels = metrics.replace(/^([^#\n][^\n]*) \S+$/gm, '$1');
      findings.push(...scan('/metrics without its values', metricNamesAndLabels, addresses));
      findings.push(...scan('/healthz', healthz, addresses));
      // control: a hash in a label value is found once the values are taken off
      expect(scan('control', `${metricNamesAndLabels}\npresence_x{source="a1b2c3d4e5f60718"} 1\n`, []).map((f) => f.what)).toEqual([
        'hex run "a1b2c3d4e5f60718"',
      ]);
      expect(stream.pictures()).toBeGreaterThan(3);
      // The frames did carry these addresses: the windows counted devices.
      expect(stream.text()).toMatch(/"devices":[1-9]/);
      expect(findings).toEqual([]);
      // Control: the same scan finds one of these addresses planted in the stream.
      const a = Buffer.from(wifi.addresses[3]!).toString('hex').toUpperCase().match(/../g)!.join(':');
      expect(scan('control', Buffer.from(`${stream.text()}data: {"x":"${a}"}\n`), addresses)).not.toEqual([]);
      expect(v.errors).toEqual([]);
      await v.page.close();
    } finally {
      gw.proc.kill('SIGKILL');
    }
  }, 120_000);

  it('serves the page and assets as they are in the package; --http-page off leaves /metrics and /healthz only', async () => {
    const port = await freePort();
    const cap = wifiCapture(join(tmp, 'w2.pcap'), { devices: 5, startMs: start, durationMs: 20_000, framesPerS: 10, salt: 23 });
    const gw = spawnGateway([
      ...['--site', 'web', '--zone', 'hall', '--id', 'gw-serve', '--mqtt-url', `mqtt://127.0.0.1:${await freePort()}`],
      ...['--source', `pcap:${cap.path}@wifi`, '--speed', '1', '--queue-dir', join(tmp, 'q2'), '--http-port', String(port)],
    ]);
    try {
      await waitForPort(port);
      const base = `http://127.0.0.1:${port}`;
      const page = await text(`${base}/`);
      expect(page.status).toBe(200);
      expect(page.body.equals(readFileSync(join(ROOT, 'gateway', 'web', 'index.html')))).toBe(true);
      for (const path of Object.keys(ASSETS)) {
        const a = await text(`${base}${path}`);
        expect(a.status, path).toBe(200);
        expect(a.body.equals(readFileSync(join(ROOT, 'node_modules', ASSETS[path]!))), path).toBe(true);
      }
      expect((await text(`${base}/metrics`)).status).toBe(200);
      expect((await text(`${base}/nope`)).body.toString()).toMatch(/\/events/);
    } finally {
      gw.proc.kill('SIGKILL');
    }
    // --http-page off: /metrics and /healthz only.
    const port2 = await freePort();
    const off = spawnGateway([
      ...['--site', 'web', '--zone', 'hall', '--id', 'gw-nopage', '--mqtt-url', `mqtt://127.0.0.1:${await freePort()}`, '--http-page', 'off'],
      ...['--source', `pcap:${cap.path}@wifi`, '--speed', '1', '--queue-dir', join(tmp, 'q2b'), '--http-port', String(port2)],
    ]);
    try {
      await waitForPort(port2);
      expect((await text(`http://127.0.0.1:${port2}/`)).status).toBe(404);
      expect((await text(`http://127.0.0.1:${port2}/events`)).status).toBe(404);
      expect((await text(`http://127.0.0.1:${port2}/metrics`)).body.toString()).not.toMatch(/presence_gateway_page_viewers/);
      expect((await text(`http://127.0.0.1:${port2}/healthz`)).status).toBe(200);
    } finally {
      off.proc.kill('SIGKILL');
    }
  });

  it('a capture command that exits shows on the page at once (the update interval is an hour)', async () => {
    const cap = wifiCapture(join(tmp, 'cmd.pcap'), { devices: 4, startMs: Date.now() - 1000, durationMs: 500, framesPerS: 20, salt: 24 });
    const go = join(tmp, 'fail-now');
    const script = join(tmp, 'capture.sh');
    // Writes a capture, then waits until told, then exits with code 3 (and again on each restart).
    writeFileSync(script, `#!/bin/sh\ncat '${cap.path}'\nwhile [ ! -f '${go}' ]; do sleep 0.05; done\nexit 3\n`, { mode: 0o755 });
    const config = join(tmp, 'cmd.json');
    writeFileSync(
      config,
      JSON.stringify({
        sources: [{ type: 'command', name: 'antenna', radio: 'wifi', command: [script], restart_min: '30s', restart_max: '60s' }],
        http: { update_interval: '1h' },
      }),
    );
    const port = await freePort();
    const gw = spawnGateway([
      ...['--config', config, '--site', 'web', '--zone', 'hall', '--id', 'gw-fail', '--mqtt-url', broker.url],
      ...['--queue-dir', join(tmp, 'q3'), '--http-port', String(port), '--window', '10s'],
    ]);
    try {
      await waitForPort(port);
      const v = await openPage(browser, `http://127.0.0.1:${port}/`, { timeZone: 'America/New_York' });
      await v.page.waitForFunction("document.getElementById('sources')?.textContent.includes('running')", { timeout: 30_000 });
      // Times in the viewer's time zone, named on the page (and on the time axes, drawn in the canvas).
      expect(await v.page.evaluate("document.getElementById('tz').textContent")).toBe('America/New_York');
      expect(await v.page.evaluate("document.getElementById('alerts').textContent")).not.toMatch(/antenna/);
      writeFileSync(go, '');
      await v.page.waitForFunction(
        "document.getElementById('alerts')?.textContent.includes('Source antenna restarting: the capture command exited with code 3')",
        {
          timeout: 30_000,
        },
      );
      expect(await v.page.evaluate("document.getElementById('sources').textContent")).toMatch(/restarting/);
      expect(v.errors).toEqual([]);
      await v.page.close();
    } finally {
      gw.proc.kill('SIGKILL');
    }
  });

  it('a capture command that runs but has written nothing for 15 s shows as capture silent in the sources, not as a plain running', async () => {
    const port = await freePort();
    const gw = spawnGateway([
      ...['--site', 'web', '--zone', 'hall', '--id', 'gw-mute', '--mqtt-url', broker.url, '--source', 'wifi=cmd:exec sleep 600'],
      ...['--queue-dir', join(tmp, 'q-mute'), '--http-port', String(port), '--http-update', '500ms'],
    ]);
    try {
      await waitForPort(port);
      const v = await openPage(browser, `http://127.0.0.1:${port}/`);
      const sources = () => v.page.evaluate("document.getElementById('sources').textContent") as Promise<string>;
      await v.page.waitForFunction("document.getElementById('sources')?.textContent.includes('running')", { timeout: 30_000 });
      expect(await sources()).not.toContain('capture silent');
      await v.page.waitForFunction("document.getElementById('sources')?.textContent.includes('capture silent')", { timeout: 30_000 });
      expect(await sources()).toMatch(/running, capture silent (1[5-9]|[2-9][0-9]) s/);
      expect(v.errors).toEqual([]);
      await v.page.close();
    } finally {
      gw.proc.kill('SIGKILL');
    }
  }, 60_000);
  it('50 viewers, 10 never reading, during a max-speed replay: every frame counted, buffers bounded, the stalled ones dropped and counted', async () => {
    const wifi = wifiCapture(join(tmp, 'fast.pcap'), { devices: 200, startMs: start, durationMs: 600_000, framesPerS: 400, salt: 25 });
    const port = await freePort();
    const queueDir = join(tmp, 'q4');
    const BUFFER = 256 * 1024;
    const config = join(tmp, 'fast.json');
    writeFileSync(config, JSON.stringify({ http: { update_interval: '10ms', viewer_buffer: BUFFER, max_viewers: 60 } }));
    // The broker is down, so the gateway stays up with its windows queued after the input ends.
    const gw = spawnGateway(
      [
        ...['--config', config, '--site', 'web', '--zone', 'hall', '--id', 'gw-load', '--mqtt-url', `mqtt://127.0.0.1:${await freePort()}`],
        ...['--source', 'stdin@wifi', '--clock', 'capture', '--window', '10s', '--queue-dir', queueDir, '--http-port', String(port)],
      ],
      {},
      'pipe',
    );
    try {
      await waitForPort(port);
      const base = `http://127.0.0.1:${port}`;
      const metrics = async () => (await text(`${base}/metrics`)).body.toString();
      const readers = await Promise.all(Array.from({ length: 40 }, () => viewer(port)));
      const stalled = await Promise.all(Array.from({ length: 10 }, () => stalledViewer(port)));
      await waitFor(() => readers.every((r) => r.pictures() > 0), 20_000, 'every reader has a picture');
      expect(sample(await metrics(), 'presence_gateway_page_viewers')).toBe(50);
      // The whole capture at once on standard input: the gateway reads it as fast as it can.
      gw.proc.stdin!.end(readFileSync(wifi.path));
      await waitFor(() => gw.stderr().includes('sources ended'), 60_000, 'the gateway to read the whole capture');
      // Every frame is in a queued window.
      const windows = readdirSync(join(queueDir, 'windows'))
        .filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(readFileSync(join(queueDir, 'windows', f), 'utf8')));
      expect(windows.reduce((n, w) => n + w.wifi.frames, 0)).toBe(wifi.frames);
      expect(windows.length).toBe(60);
      // Pictures keep coming until the stalled viewers' buffers (the kernel's, then the gateway's) are full.
      let m = '';
      await poll(
        async () => (sample((m = await metrics()), 'presence_gateway_page_viewers_dropped_total') ?? 0) >= 10,
        'the 10 stalled viewers dropped',
        400_000,
      );
      expect(sample(m, 'presence_gateway_page_viewers_dropped_total')).toBe(10);
      expect(sample(m, 'presence_gateway_page_viewers')).toBe(40);
      expect(sample(m, 'presence_gateway_page_buffer_peak_bytes')).toBeLessThanOrEqual(BUFFER);
      expect(sample(m, 'presence_gateway_page_buffer_peak_bytes')).toBeGreaterThan(0);
      // The readers were never dropped and are still getting pictures.
      const before = readers.map((r) => r.pictures());
      await waitFor(() => readers.every((r, i) => r.pictures() > before[i]!), 20_000, 'more pictures for every reader');
      expect(readers.filter((r) => r.closed())).toEqual([]);
      // A viewer that closes is gone from the count.
      for (const r of readers.slice(0, 5)) r.res.destroy();
      await poll(async () => sample(await metrics(), 'presence_gateway_page_viewers') === 35, '35 viewers after 5 closed');
      for (const s of stalled) s.destroy();
      for (const r of readers) r.res.destroy();
      gw.proc.kill('SIGTERM');
      expect(await gw.exited).toBe(0);
    } finally {
      gw.proc.kill('SIGKILL');
    }
    // Pictures of about 1 kB every 10 ms: the kernel's buffers of a stalled viewer (a few MB) take a minute to fill.
  }, 600_000);

  it('strings from the configuration reach the page as text, never as HTML (program, interface, broker URL)', async () => {
    const port = await freePort();
    const cfg = join(tmp, 'xss.yaml');
    writeFileSync(
      cfg,
      [
        'gateway: { site: web, zone: hall, id: gw-xss }',
        `mqtt: { url: "${broker.url}/<img src=x id=xss0 onerror=alert(0)>" }`,
        'sources:',
        '  - type: command',
        '    name: cap',
        // (names without white space: a name with white space is shown as <redacted>, as in the log)
        '    command: ["/nonexistent/<xss1>", "-i", "wlan0mon"]',
        // a local capture tool's interface is named in the monitor-mode check (another program's is not checked)
        '  - type: command',
        '    name: cap2',
        '    command: ["/nonexistent/tcpdump", "-i", "<xss2>wlan"]',
        `http: { port: ${port}, update_interval: 200ms }`,
        `queue: { dir: ${join(tmp, 'q9')} }`,
      ].join('\n'),
    );
    const gw = spawnGateway(['--config', cfg]);
    try {
      await waitForPort(port);
      const v = await openPage(browser, `http://127.0.0.1:${port}/`);
      await v.page.waitForFunction("document.querySelector('#checks')?.textContent.includes('monitor mode')", { timeout: 30_000 });
      const shown = (await v.page.evaluate('document.body.innerText')) as string;
      // the markup as the visitor sees it, literally, and no element made from it
      expect(shown).toContain('capture tool <xss1>');
      expect(shown).toContain('monitor mode (<xss2>wlan)');
      expect(await v.page.evaluate("['xss0'].filter((id) => document.getElementById(id))")).toEqual([]);
      expect(await v.page.evaluate("['xss1', 'xss2'].filter((tag) => document.querySelector(tag))")).toEqual([]);
      expect(await v.page.$$eval('main img, header img', (imgs) => imgs.length)).toBe(0);
      // A failing source's fix shows on the page as /healthz gives it, as text too
      const health = JSON.parse((await text(`http://127.0.0.1:${port}/healthz`)).body.toString()) as { problems: string[] };
      const fix = /^source cap (?:failed|is restarting)[^;]*; fix: (.+)$/.exec(health.problems.find((p) => p.startsWith('source cap ')) ?? '')?.[1];
      expect(fix).toMatch(/^install <xss1> /);
      await v.page.waitForFunction(`document.getElementById('sources')?.textContent.includes(${JSON.stringify(`fix: ${fix}`)})`, { timeout: 10_000 });
      expect(await v.page.evaluate("document.getElementById('alerts').textContent")).toContain(`Fix: ${fix}`);
      expect(await v.page.evaluate("['xss1'].filter((tag) => document.querySelector(tag))")).toEqual([]);
      expect(v.errors).toEqual([]);
      await v.page.close();
    } finally {
      gw.proc.kill('SIGKILL');
    }
  }, 60_000);

  it('no secret reaches the page, its stream, /metrics or /healthz: not the broker password, the page token or the corridor secret', async () => {
    const cap = wifiCapture(join(tmp, 'w8.pcap'), { devices: 3, startMs: start, durationMs: 30_000, framesPerS: 5, salt: 27 });
    const secretFile = join(tmp, 'corridor.secret');
    const corridorSecret = `${'c0ffee'.repeat(10)}beef`;
    writeFileSync(secretFile, `${corridorSecret}\n`, { mode: 0o600 });
    const mqttPassword = 'mqtt-Pw-7f3a9';
    const token = 'page-Tok-5d1e8';
    const port = await freePort();
    const brokerUrl = new URL(broker.url);
    brokerUrl.username = 'presence';
    brokerUrl.password = mqttPassword;
    const gw = spawnGateway(
      [
        ...['--site', 'web', '--zone', 'hall', '--id', 'gw-sec', '--mqtt-url', brokerUrl.href, '--source', `pcap:${cap.path}@wifi`, '--speed', '5'],
        ...[
          '--corridor-group',
          'main-street',
          '--corridor-secret-file',
          secretFile,
          '--corridor-sketch-p',
          '0.03',
          '--queue-dir',
          join(tmp, 'q8'),
          '--http-port',
          String(port),
          '--http-update',
          '200ms',
        ],
      ],
      { PRESENCE_HTTP_TOKEN: token },
    );
    try {
      await waitForPort(port);
      const auth = { authorization: `Bearer ${token}` };
      // the page, /metrics and /healthz while it runs (it exits at the end of the file), then
      const served = [(await text(`http://127.0.0.1:${port}/`, { headers: auth })).body.toString()];
      for (const path of ['/metrics', '/healthz']) served.push((await text(`http://127.0.0.1:${port}${path}`)).body.toString());
      // the stream until a picture with the machine checks and a closed window has come
      const stream = await new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/events', headers: auth }, (res) => {
          let all = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            all += d;
            if (/"checks":\{/.test(all) && /"seq":1/.test(all)) {
              res.destroy();
              resolve(all);
            }
          });
        });
        req.on('error', reject);
        req.end();
      });
      served.push(stream);
      expect(stream).toMatch(/"url":"mqtt:\/\/127\.0\.0\.1:\d+"/);
      for (const body of served)
        for (const secret of [mqttPassword, token, corridorSecret, corridorSecret.toUpperCase(), Buffer.from(corridorSecret, 'hex').toString('base64')])
          expect(body.includes(secret), `${secret} in ${body.slice(0, 60)}`).toBe(false);
    } finally {
      gw.proc.kill('SIGKILL');
    }
  }, 60_000);

  it('beyond loopback the page needs credentials; /metrics stays open', async () => {
    const cap = wifiCapture(join(tmp, 'w5.pcap'), { devices: 3, startMs: start, durationMs: 30_000, framesPerS: 5, salt: 26 });
    const common = (port: number) => [
      ...['--site', 'web', '--zone', 'hall', '--id', 'gw-auth', '--mqtt-url', `mqtt://127.0.0.1:1`, '--source', `pcap:${cap.path}@wifi`, '--speed', '1'],
      ...['--http-port', String(port), '--http-host', '0.0.0.0'],
    ];
    // No credentials: refused with a line naming the keys, /metrics and /healthz as before.
    const port1 = await freePort();
    const open = spawnGateway([...common(port1), '--queue-dir', join(tmp, 'q5')]);
    try {
      await waitForPort(port1);
      const r = await text(`http://127.0.0.1:${port1}/`);
      expect(r.status).toBe(403);
      expect(r.body.toString()).toMatch(/http\.user and http\.password/);
      expect((await text(`http://127.0.0.1:${port1}/events`)).status).toBe(403);
      expect((await text(`http://127.0.0.1:${port1}/metrics`)).status).toBe(200);
      await waitFor(() => /the page is not served on 0\.0\.0\.0/.test(open.stderr()), 10_000, 'the refusal in the log');
    } finally {
      open.proc.kill('SIGKILL');
    }
    // A token from a file (PRESENCE_HTTP_TOKEN_FILE): bearer or basic with it as password.
    const tokenFile = join(tmp, 'token');
    writeFileSync(tokenFile, 's3cret-token\n');
    const port2 = await freePort();
    const authed = spawnGateway([...common(port2), '--queue-dir', join(tmp, 'q6')], { PRESENCE_HTTP_TOKEN_FILE: tokenFile });
    try {
      await waitForPort(port2);
      const url = `http://127.0.0.1:${port2}/`;
      expect((await text(url)).status).toBe(401);
      expect((await text(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await text(url, { headers: { authorization: 'Bearer s3cret-token' } })).status).toBe(200);
      const v = await openPage(browser, url, { auth: { username: 'field', password: 's3cret-token' } });
      await v.page.waitForFunction("document.getElementById('stream')?.textContent === 'live'", { timeout: 20_000 });
      expect(v.errors).toEqual([]);
      await v.page.close();
      expect(authed.stderr()).not.toContain('s3cret-token');
    } finally {
      authed.proc.kill('SIGKILL');
    }
    // A user without a password is a usage error naming the key.
    const half = spawnGateway([...common(await freePort()), '--queue-dir', join(tmp, 'q7'), '--http-user', 'field']);
    expect(await half.exited).not.toBe(0);
    expect(half.stderr()).toMatch(/http\.user \(--http-user\): is set without http\.password/);
    expect(existsSync(join(tmp, 'q7', 'windows')) && readdirSync(join(tmp, 'q7', 'windows')).length > 0).toBe(false);
    // A token too short for a page the network can reach: refused at start, its length named, not its value.
    const shortFile = join(tmp, 'short-token');
    writeFileSync(shortFile, 'Xq7\n');
    const short = spawnGateway([...common(await freePort()), '--queue-dir', join(tmp, 'q-short-token')], { PRESENCE_HTTP_TOKEN_FILE: shortFile });
    expect(await short.exited).toBe(2);
    expect(short.stderr()).toMatch(/http\.token_file holds 3 characters: a page served on 0\.0\.0\.0 can be reached from the network, .*fix: use at least 12/);
    expect(short.stderr()).not.toContain('Xq7');
    expect(existsSync(join(tmp, 'q-short-token', 'windows')) && readdirSync(join(tmp, 'q-short-token', 'windows')).length > 0).toBe(false);
  }, 90_000);
  it('says when it has lost the gateway, and that what it shows is from then; the next picture takes the notice away', async () => {
    const cap = wifiCapture(join(tmp, 'lost.pcap'), { devices: 4, startMs: Date.now() - 1000, durationMs: 600_000, framesPerS: 5, salt: 25 });
    const port = await freePort();
    const args = [
      ...['--site', 'web', '--zone', 'hall', '--id', 'gw-lost', '--mqtt-url', broker.url, '--source', `wifi=pcap:${cap.path}@wifi`, '--speed', '1'],
      ...['--queue-dir', join(tmp, 'q-lost'), '--http-port', String(port), '--http-update', '500ms'],
    ];
    let gw = spawnGateway(args);
    try {
      await waitForPort(port);
      const v = await openPage(browser, `http://127.0.0.1:${port}/`);
      const alerts = () =>
        v.page.evaluate("(() => { const a = document.getElementById('alerts'); return { text: a.textContent, shown: a.offsetHeight > 0 }; })()") as Promise<{
          text: string;
          shown: boolean;
        }>;
      await v.page.waitForFunction("document.getElementById('sources')?.textContent.includes('running')", { timeout: 30_000 });
      expect((await alerts()).text).not.toContain('No connection to the gateway');
      gw.proc.kill('SIGKILL');
      await poll(async () => (await alerts()).text.includes('No connection to the gateway since'), 'the page saying it lost the gateway');
      const a = await alerts();
      expect(a.shown).toBe(true);
      expect(a.text).toMatch(/No connection to the gateway since .*: what is shown is from then, and whether it still counts is not known\./);
      // the old picture is still there (a source "running"): the notice is what says it is old
      expect(await v.page.evaluate("document.getElementById('sources').textContent")).toMatch(/running/);
      gw = spawnGateway(args);
      await poll(async () => !(await alerts()).text.includes('No connection to the gateway'), 'the notice gone with the next picture', 30_000);
      expect(await v.page.evaluate("document.getElementById('stream').textContent")).toBe('live');
      await v.page.close();
    } finally {
      gw.proc.kill('SIGKILL');
    }
  }, 90_000);
  it('a window suppressed for privacy.min_count shows as suppressed below k, not as 0 devices', async () => {
    const cap = wifiCapture(join(tmp, 'small.pcap'), { devices: 3, startMs: Date.now() - 1000, durationMs: 120_000, framesPerS: 20, salt: 26 });
    const port = await freePort();
    const gw = spawnGateway([
      ...['--site', 'web', '--zone', 'hall', '--id', 'gw-small', '--mqtt-url', broker.url, '--source', `wifi=pcap:${cap.path}@wifi`, '--speed', '8'],
      ...['--window', '5s', '--privacy-min-count', '50', '--queue-dir', join(tmp, 'q-small'), '--http-port', String(port), '--http-update', '500ms'],
    ]);
    try {
      await waitForPort(port);
      const v = await openPage(browser, `http://127.0.0.1:${port}/`);
      await v.page.waitForFunction("document.querySelectorAll('#windows tr').length >= 2", { timeout: 30_000 });
      const rows = (await v.page.evaluate("[...document.querySelectorAll('#windows tr')].map((tr) => tr.innerText)")) as string[];
      for (const r of rows) {
        // seq, start, end, whole, then each radio: suppressed, never its zeros
        expect(r).toMatch(/suppressed \(below 50\)[\s\S]*suppressed \(below 50\)/);
        expect(
          r
            .split('\t')
            .slice(4, -1)
            .filter((c) => c.trim() === '0'),
        ).toEqual([]);
      }
      // the chart has gaps, not zeros, for the suppressed estimates
      const estimates = (await v.page.evaluate("charts['windows-chart'].data.slice(1)")) as Array<Array<number | null>>;
      expect(estimates[0]!.length).toBeGreaterThan(0);
      expect(estimates.flat().filter((e) => e !== null)).toEqual([]);
      expect(v.errors).toEqual([]);
      await v.page.close();
    } finally {
      gw.proc.kill('SIGKILL');
    }
  }, 90_000);
});
