// Generated captures: byte-identical for a seed; TShark reads them without a malformed frame, a bad
// FCS or a bad BLE CRC; TShark's and `presence replay`'s distinct addresses per window equal the
// ground truth's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulate, type SimulateResult } from '../simulator/index.ts';
import { readCaptureFile } from '../gateway/capture/pcap.ts';
import { replayCapture } from '../gateway/replay.ts';
import { CaptureWriter, FileSink } from '../simulator/pcap-writer.ts';
import { need } from './support/need.ts';

const hasTshark = need('tshark', 'tshark', 'simulator-output');
const root = mkdtempSync(join(tmpdir(), 'sim-output-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function tshark(args: string[]): string {
  return execFileSync('tshark', ['-n', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28 });
}

/** Distinct addresses per window start (ISO) from TShark fields "epoch<TAB>address". */
function perWindow(lines: string, windowS: number): Map<string, number> {
  const sets = new Map<string, Set<string>>();
  for (const line of lines.split('\n')) {
    if (!line.trim()) continue;
    const [t, addr] = line.split('\t');
    if (!addr) continue;
    const w = new Date(Math.floor(Number(t) / windowS) * windowS * 1000).toISOString();
    if (!sets.has(w)) sets.set(w, new Set());
    sets.get(w)!.add(addr);
  }
  return new Map([...sets].map(([k, v]) => [k, v.size]));
}

function truthPerWindow(r: SimulateResult, gateway: string, radio: 'wifi' | 'ble'): Map<string, number> {
  return new Map(r.truth.windows.filter((w) => w.gateway === gateway && w.addresses[radio] > 0).map((w) => [w.start, w.addresses[radio]]));
}

describe('simulate: reproducible output', () => {
  it("writes every gateway's frames in time order", async () => {
    const r = await simulate({ scenario: 'kingsday-square', durationS: 120, scale: 0.01, seed: 2, outDir: join(root, 'order') });
    for (const g of r.gateways) {
      let last = -Infinity;
      let n = 0;
      for await (const batch of readCaptureFile(g.pcap))
        for (const f of batch) {
          expect(f.timestampMs).toBeGreaterThanOrEqual(last);
          last = f.timestampMs;
          n++;
        }
      expect(n).toBe(g.frames);
    }
  });

  it('gives byte-identical captures and truth for the same seed, different ones for another seed', async () => {
    const opts = { scenario: 'quiet-night', durationS: 300, seed: 7 };
    const a = await simulate({ ...opts, outDir: join(root, 'a') });
    const b = await simulate({ ...opts, outDir: join(root, 'b') });
    const c = await simulate({ ...opts, seed: 8, outDir: join(root, 'c') });
    for (const name of ['gw-lobby.pcapng', 'truth.json', 'truth.csv']) {
      expect(readFileSync(join(root, 'a', name)).equals(readFileSync(join(root, 'b', name))), name).toBe(true);
    }
    expect(readFileSync(join(root, 'a', 'gw-lobby.pcapng')).equals(readFileSync(join(root, 'c', 'gw-lobby.pcapng')))).toBe(false);
    expect(a.truth.windows).toHaveLength(5);
    expect(a.gateways[0].frames).toBeGreaterThan(1000);
    void b;
    void c;
  });

  it('writes classic pcap, one file per radio, when asked', async () => {
    const r = await simulate({ scenario: 'quiet-night', durationS: 60, seed: 1, format: 'pcap', outDir: join(root, 'pcap') });
    expect(r.gateways[0].pcaps.map((p) => p.split('/').pop())).toEqual(['gw-lobby.wifi.pcap', 'gw-lobby.ble.pcap']);
    expect(readFileSync(r.gateways[0].files.wifi!).readUInt32LE(20)).toBe(127);
    expect(readFileSync(r.gateways[0].files.ble!).readUInt32LE(20)).toBe(256);
  });
});

describe.skipIf(!hasTshark)('simulate: TShark reads every generated capture cleanly', () => {
  let kings: SimulateResult;
  let quiet: SimulateResult;
  let hci: SimulateResult;
  beforeAll(async () => {
    kings = await simulate({ scenario: 'kingsday-square', durationS: 300, scale: 0.01, seed: 3, outDir: join(root, 'kings') });
    quiet = await simulate({ scenario: 'quiet-night', durationS: 300, seed: 3, outDir: join(root, 'quiet') });
    hci = await simulate({ scenario: 'traffic-corridor', durationS: 300, scale: 0.5, seed: 3, bleLink: 'hci', outDir: join(root, 'hci') });
  });
  const all = () => [kings, quiet, hci].flatMap((r) => r.gateways.map((g) => [r, g] as const));

  it('finds no malformed frame, no bad FCS and no expert warning or error', () => {
    for (const [r, g] of all()) {
      expect(tshark(['-r', g.pcap, '-o', 'wlan.check_checksum:TRUE', '-Y', '_ws.malformed || wlan.fcs.status == "Bad" || btle.crc.incorrect']), g.pcap).toBe(
        '',
      );
      expect(tshark(['-r', g.pcap, '-o', 'wlan.check_checksum:TRUE', '-q', '-z', 'expert,warn']), g.pcap).not.toMatch(/Warns|Errors/);
      // Every Wi-Fi frame's FCS is checked and good.
      const good = tshark(['-r', g.pcap, '-o', 'wlan.check_checksum:TRUE', '-Y', 'wlan.fcs.status == "Good"', '-T', 'fields', '-e', 'frame.number'])
        .trim()
        .split('\n')
        .filter(Boolean).length;
      const wifiFrames = r.truth.windows.filter((w) => w.gateway === g.id).reduce((n, w) => n + w.frames.wifi, 0);
      expect(good, g.pcap).toBe(wifiFrames);
      expect(wifiFrames).toBeGreaterThan(0);
    }
  }, 300_000); // runs TShark over the captures: the timeout is only a safety net for a loaded machine

  it('has BLE CRCs that TShark verifies itself (link layer re-wrapped without the pseudo-header)', async () => {
    // With the pseudo-header the CRC-valid flag is trusted; as plain LE LL (251) TShark computes it.
    const out = join(root, 'ble-plain.pcap');
    const sink = new FileSink(out);
    const w = CaptureWriter.pcap([sink], [{ linkType: 251, name: 'ble' }]);
    let n = 0;
    for await (const batch of readCaptureFile(kings.gateways[0].pcap))
      for (const f of batch)
        if (f.linkType === 256) {
          w.write(0, f.timestampMs, f.data.subarray(10));
          n++;
        }
    await w.close();
    expect(n).toBeGreaterThan(100);
    expect(tshark(['-r', out, '-Y', 'btle.crc.incorrect || _ws.malformed'])).toBe('');
    expect(tshark(['-r', out, '-Y', 'btle.crc', '-T', 'fields', '-e', 'frame.number']).trim().split('\n')).toHaveLength(n);
  });

  it("TShark's distinct addresses per window equal the truth (Wi-Fi probes, BLE LL adverts, HCI reports)", () => {
    for (const r of [kings, quiet, hci]) {
      for (const g of r.gateways) {
        const wifi = perWindow(
          tshark(['-r', g.pcap, '-Y', 'wlan.fc.type_subtype == 0x0004', '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'wlan.sa']),
          r.windowS,
        );
        expect(wifi.size, `${g.pcap} has Wi-Fi windows`).toBeGreaterThan(0);
        expect(wifi, `${g.pcap} Wi-Fi`).toEqual(truthPerWindow(r, g.id, 'wifi'));
        const bleField = r === hci ? 'bthci_evt.bd_addr' : 'btle.advertising_address';
        const ble = perWindow(tshark(['-r', g.pcap, '-Y', bleField, '-T', 'fields', '-e', 'frame.time_epoch', '-e', bleField]), r.windowS);
        expect(ble.size, `${g.pcap} has BLE windows`).toBeGreaterThan(0);
        expect(ble, `${g.pcap} BLE`).toEqual(truthPerWindow(r, g.id, 'ble'));
      }
    }
  }, 300_000);
});

describe('simulate: presence replay gives the truth', () => {
  it('aligns windows to the UTC window grid as replay does, also when the scenario starts between boundaries', async () => {
    const r = await simulate({ scenario: 'quiet-night', durationS: 200, seed: 5, start: '2026-11-23T01:00:20Z', outDir: join(root, 'unaligned') });
    expect(r.truth.windows.map((w) => [w.start.slice(11, 19), w.end.slice(11, 19)])).toEqual([
      ['01:00:20', '01:01:00'],
      ['01:01:00', '01:02:00'],
      ['01:02:00', '01:03:00'],
      ['01:03:00', '01:03:40'],
    ]);
    const byEnd = new Map<string, [number, number]>();
    for await (const w of replayCapture(r.gateways[0].pcap, { window: 60_000 })) byEnd.set(w.end!, [w.wifi.devices, w.ble.devices]);
    for (const w of r.truth.windows.slice(0, 3)) expect(byEnd.get(w.end), w.end).toEqual([w.addresses.wifi, w.addresses.ble]);
  });

  it('counts the same distinct addresses per window as the truth holds (BLE as link layer and as HCI)', async () => {
    const ll = await simulate({ scenario: 'kingsday-square', durationS: 300, scale: 0.01, seed: 5, outDir: join(root, 'replay') });
    const hci = await simulate({ scenario: 'traffic-corridor', durationS: 300, scale: 0.5, seed: 5, bleLink: 'hci', outDir: join(root, 'replay-hci') });
    for (const [r, g] of [ll, hci].flatMap((x) => x.gateways.map((gw) => [x, gw] as const))) {
      const wifi = new Map<string, number>();
      const ble = new Map<string, number>();
      for await (const w of replayCapture(g.pcap, { window: r.windowS * 1000 })) {
        if (w.wifi.devices) wifi.set(w.start!, w.wifi.devices);
        if (w.ble.devices) ble.set(w.start!, w.ble.devices);
      }
      expect(wifi.size, g.id).toBeGreaterThan(2);
      expect(ble.size, g.id).toBeGreaterThan(2);
      expect(wifi, g.id).toEqual(truthPerWindow(r, g.id, 'wifi'));
      expect(ble, g.id).toEqual(truthPerWindow(r, g.id, 'ble'));
    }
  });
});
