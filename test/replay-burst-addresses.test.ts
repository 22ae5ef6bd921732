// `presence replay --burst-addresses`: the real CLI on a capture with one dense scan, the divisor
// reaching the firmware's floor (firmware/README.md, "The estimate", step 4).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { LINKTYPE } from '../firmware/host/types.ts';
import { probeRequest } from '../simulator/frames.ts';
import { pcapHeader, pcapRecord } from '../simulator/pcap-writer.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-burst-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A pcap (radiotap) of 28 randomised addresses 10 ms apart at one signal: the link makes them one burst. */
function denseScan(path: string): void {
  const parts = [pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP)];
  const t0 = Date.UTC(2026, 0, 1, 12, 0, 1);
  for (let i = 0; i < 28; i++) {
    const sa = Uint8Array.from([0x02, 0x10, 0x20, 0x30, 0x40, i]);
    parts.push(pcapRecord(t0 + i * 10, probeRequest({ sa, seq: i, ies: Uint8Array.from([0, 0]), channel: 6, signalDbm: -50, tsfUs: 0 })));
  }
  writeFileSync(path, Buffer.concat(parts));
}

async function replay(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(root, 'scripts', 'presence.js'), 'replay', ...args], { cwd: root });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

describe('presence replay --burst-addresses', () => {
  it('divides the new addresses of a 10-s sub-window by it (7 by default) and refuses values outside 1..64', async () => {
    const file = join(tmp, 'dense.pcap');
    denseScan(file);
    const estimate = async (extra: string[]) => {
      const r = await replay(['--json', '--window', '10s', ...extra, file]);
      expect(r.code, r.stderr).toBe(0);
      const w = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(w).toHaveLength(1);
      expect(w[0].wifi.devices).toBe(28);
      return w[0].wifi.estimate;
    };
    expect(await estimate([])).toBe(4); // 28 / 7
    expect(await estimate(['--burst-addresses', '2'])).toBe(14);
    expect(await estimate(['--burst-addresses', '28'])).toBe(1);
    const bad = await replay(['--burst-addresses', '0.5', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--burst-addresses: must be a number from 1 to 64, like 2.8 \(got "0.5"\)/);
  });
});

describe('presence replay: a capture whose every Wi-Fi frame is rejected', () => {
  it('says so and names --ignore-fcs (a stale FCS), and counts them with it', async () => {
    // the dense scan's probe requests with the last byte of each FCS changed
    const file = join(tmp, 'stale-fcs.pcap');
    denseScan(file);
    const bytes = readFileSync(file);
    for (let off = 24; off < bytes.length; ) {
      const len = bytes.readUInt32LE(off + 8);
      bytes[off + 16 + len - 1]! ^= 0xff;
      off += 16 + len;
    }
    writeFileSync(file, bytes);
    const stale = await replay(['--json', '--window', 'all', file]);
    expect(stale.code, stale.stderr).toBe(0);
    expect(JSON.parse(stale.stdout).wifi).toMatchObject({ frames: 28, rejected: 28, devices: 0 });
    expect(stale.stderr).toContain(
      'all 28 Wi-Fi frames were rejected (bad FCS, truncated or malformed), so nothing was counted; if the capture carries a stale FCS, replay it with --ignore-fcs',
    );
    const ignored = await replay(['--json', '--window', 'all', '--ignore-fcs', file]);
    expect(JSON.parse(ignored.stdout).wifi).toMatchObject({ frames: 28, rejected: 0, devices: 28 });
    expect(ignored.stderr).not.toContain('were rejected');
  });
});
