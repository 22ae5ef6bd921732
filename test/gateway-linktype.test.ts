// A capture of a link type the firmware does not parse (tcpdump on a normal network interface,
// not the monitor-mode one: Ethernet frames), or whose every frame the firmware rejects (a stale
// FCS), counts nothing. `presence gateway` says so in its log instead of publishing zeros in
// silence. A real gateway process and a real Mosquitto.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LINKTYPE } from '../firmware/host/types.ts';
import { probeRequest } from '../simulator/frames.ts';
import { pcapHeader, pcapRecord } from '../simulator/pcap-writer.ts';
import { address, gatewayArgs, logLines, runCapture, spawnGateway } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { freePort, waitForPort } from './support/ports.ts';

const SUITE = 'gateway link types';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

const UNPARSED = 'frames of a link type the firmware does not parse: not counted';
const REJECTED = 'every frame of the window was rejected (bad FCS or CRC, truncated or malformed): nothing counted';
describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-linktype-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  const capture = (name: string, linkType: number) => {
    const t0 = Date.parse('2026-05-04T10:00:00.250Z');
    const path = join(tmp, name);
    const probe = (i: number) => probeRequest({ sa: address(i % 5, 3, true), seq: i, ies: Uint8Array.from([0, 0]), channel: 6, signalDbm: -50, tsfUs: i });
    writeFileSync(path, Buffer.concat([pcapHeader(linkType), ...Array.from({ length: 20 }, (_, i) => pcapRecord(t0 + i * 100, probe(i)))]));
    return path;
  };

  it('an Ethernet capture: zeros are published, and one warn line says its frames were not counted and what to check', async () => {
    const path = capture('eth.pcap', 1); // LINKTYPE_ETHERNET
    const {
      gw,
      counts: c,
      end,
    } = await runCapture({ brokerUrl: broker.url, site: 'eth', path, queueDir: join(tmp, 'q-eth') }, ['--speed', 'max', '--window', '1s']);
    expect(c.length).toBeGreaterThan(0);
    expect(c.every((w) => w.wifi.frames === 0 && w.ble.frames === 0)).toBe(true);
    const warned = logLines(gw.stderr(), UNPARSED);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, frames: 8 }); // those of the first window: .250 to .950
    expect(String(warned[0]!.fix)).toMatch(/monitor-mode interface/);
    await end();
  });

  it("a live Ethernet capture: /healthz says degraded with the frames not counted, and the page's picture carries them, while they last", async () => {
    const path = capture('eth-live.pcap', 1); // LINKTYPE_ETHERNET
    const port = await freePort();
    // tcpdump -i eth0 as a field gateway would run it by mistake: a capture command (wall clock)
    const gw = spawnGateway(
      gatewayArgs(
        { site: 'ethlive', mqttUrl: broker.url, source: `wifi=cmd:cat ${path}; sleep 600`, queueDir: join(tmp, 'q-ethlive') },
        '--window',
        '3s',
        '--http-port',
        String(port),
      ),
    );
    try {
      await waitForPort(port);
      const get = async (p: string) => (await fetch(`http://127.0.0.1:${port}${p}`)).text();
      const until = async (cond: () => Promise<boolean>, what: string) => {
        for (const deadline = Date.now() + 15_000; !(await cond()); await new Promise((r) => setTimeout(r, 50)))
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${gw.stderr().slice(-1500)}`);
      };
      let body: { status: string; problems: string[] } = { status: '', problems: [] };
      await until(async () => {
        body = JSON.parse(await get('/healthz'));
        return body.problems.some((x) => /link type the firmware does not parse/.test(x));
      }, 'a health answer naming the frames not counted');
      expect(body.status).toBe('degraded');
      expect(body.problems).toContain(
        '20 frame(s) of the last window are of a link type the firmware does not parse (a normal network interface, not the monitor-mode one): not counted; capture from the monitor-mode interface (presence doctor names the link type)',
      );
      // the page's event stream: its first picture carries the same number (the page shows it as an alert)
      const ctrl = new AbortController();
      const res = await fetch(`http://127.0.0.1:${port}/events`, { signal: ctrl.signal });
      const reader = res.body!.getReader();
      let text = '';
      while (!/"unparsed":\d+/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      ctrl.abort();
      expect(text).toMatch(/"unparsed":20\b/);
      // the next window has none: healthy again (the broker is connected, the source runs)
      await until(async () => JSON.parse(await get('/healthz')).status === 'ok', 'ok once a window without them closed');
    } finally {
      gw.proc.kill('SIGTERM');
      await gw.exited;
    }
  });

  it('a radiotap capture says nothing of the kind', async () => {
    const path = capture('radiotap.pcap', LINKTYPE.IEEE802_11_RADIOTAP);
    const {
      gw,
      counts: c,
      end,
    } = await runCapture({ brokerUrl: broker.url, site: 'rt', path, queueDir: join(tmp, 'q-rt') }, ['--speed', 'max', '--window', '1s']);
    // The lines below come when a window closes: first, the windows closed with every frame counted
    // (without any, no line would say nothing).
    expect(c.length).toBeGreaterThan(0);
    expect(logLines(gw.stderr(), 'window closed')).toHaveLength(c.length);
    expect(c.reduce((n, w) => n + w.wifi.frames, 0)).toBe(20);
    expect(c.every((w) => w.wifi.rejected === 0)).toBe(true);
    expect(c.some((w) => w.wifi.devices > 0)).toBe(true);
    expect(logLines(gw.stderr(), UNPARSED)).toHaveLength(0);
    expect(logLines(gw.stderr(), REJECTED)).toHaveLength(0);
    await end();
  });

  /** A Wi-Fi capture whose every frame's FCS is stale (its last byte flipped). */
  function staleCapture(name: string): string {
    const path = capture(name, LINKTYPE.IEEE802_11_RADIOTAP);
    const bytes = readFileSync(path);
    for (let off = 24; off < bytes.length; ) {
      const len = bytes.readUInt32LE(off + 8);
      bytes[off + 16 + len - 1] ^= 0xff; // the FCS's last byte
      off += 16 + len;
    }
    writeFileSync(path, bytes);
    return path;
  }

  it('a capture whose every FCS is stale: zeros, and one warn line names gateway.ignore_fcs; with it the frames count', async () => {
    const path = staleCapture('stale.pcap');
    const gw = spawnGateway(
      gatewayArgs({ site: 'stale', mqttUrl: broker.url, source: `pcap:${path}`, queueDir: join(tmp, 'q-stale') }, '--speed', 'max', '--window', '1s'),
    );
    expect(await gw.exited, gw.stderr().slice(-2000)).toBe(0);
    const warned = logLines(gw.stderr(), REJECTED);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, radio: 'wifi', frames: 8 });
    expect(String(warned[0]!.fix)).toContain('set gateway.ignore_fcs: true (--ignore-fcs)');
    const ignored = await runCapture({ brokerUrl: broker.url, site: 'stale2', path, queueDir: join(tmp, 'q-stale2') }, [
      '--speed',
      'max',
      '--window',
      '1s',
      '--ignore-fcs',
    ]);
    // The line would come when a window closes: the windows closed, and their frames counted this time.
    expect(ignored.counts.length).toBeGreaterThan(0);
    expect(logLines(ignored.gw.stderr(), 'window closed')).toHaveLength(ignored.counts.length);
    expect(ignored.counts.reduce((n, w) => n + w.wifi.frames, 0)).toBe(20);
    expect(ignored.counts.every((w) => w.wifi.rejected === 0)).toBe(true);
    expect(ignored.counts.some((w) => w.wifi.devices > 0)).toBe(true);
    expect(logLines(ignored.gw.stderr(), REJECTED)).toHaveLength(0);
    await ignored.end();
  });

  it('with privacy.min_count the warn line of a window whose every frame was rejected leaves out how many: the log holds the counts only as published', async () => {
    const path = staleCapture('stale-k.pcap');
    const {
      gw,
      counts: c,
      end,
    } = await runCapture({ brokerUrl: broker.url, site: 'stale-k', path, queueDir: join(tmp, 'q-stale-k') }, [
      '--speed',
      'max',
      '--window',
      '1s',
      '--privacy-min-count',
      '5',
    ]);
    expect(c.length).toBeGreaterThan(0);
    expect(c.every((w) => w.wifi.frames === 0 && w.wifi.rejected === 0 && w.wifi.suppressed === true)).toBe(true);
    const warned = logLines(gw.stderr(), REJECTED);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: 40, radio: 'wifi' });
    expect(warned[0]).not.toHaveProperty('frames');
    expect(String(warned[0]!.fix)).toContain('set gateway.ignore_fcs: true (--ignore-fcs)');
    await end();
  });
});
