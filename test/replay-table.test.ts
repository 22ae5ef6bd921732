// `presence replay`'s table shows per radio the `estimate` beside `devices`, the figure its
// `--json` carries and the one `--calibration` turns into people: the table showed devices only,
// so its people column could not be traced to any count on screen.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LINKTYPE } from '../firmware/host/types.ts';
import { TABLE_PAGE_ROWS, tableCaption } from '../gateway/replay.ts';
import { probeRequest } from '../simulator/frames.ts';
import { pcapHeader, pcapRecord } from '../simulator/pcap-writer.ts';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-replay-table-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const presence = (...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });

/** The cells of each row of a printed table (cli-table3's box lines left out). */
const cells = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('│'))
    .map((l) =>
      l
        .split('│')
        .slice(1, -1)
        .map((c) => c.trim()),
    );

describe('presence replay: the table', () => {
  it('has devices and estimate per radio, the same numbers as --json, window by window', () => {
    const sim = presence('simulate', 'kingsday-square', '--scale', '0.01', '--duration', '5m', '--out', join(tmp, 'sim'));
    expect(sim.status, sim.stderr).toBe(0);
    const capture = join(tmp, 'sim', 'gw-east.pcapng');
    const table = presence('replay', capture);
    expect(table.status, table.stderr).toBe(0);
    const json = presence('replay', capture, '--json');
    expect(json.status, json.stderr).toBe(0);
    // The line above the table says the counts are uncalibrated devices, not people, and how to get
    // people: without it "devices present" read as the crowd.
    expect(table.stdout.split('\n')[0]).toBe(tableCaption(null));
    expect(tableCaption(null)).toMatch(/both uncalibrated: devices, not people \(--calibration FILE --zone ZONE adds people\)$/);
    expect(table.stdout.split('\n').filter((l) => l.includes('uncalibrated')).length).toBe(1);
    // with --calibration the line names the radio the people come from instead of the flag
    expect(tableCaption({ radio: 'ble' })).toMatch(
      /not people; people \(calibrated\): from the BLE devices present by --calibration, with its prediction interval \(low\.\.high\)$/,
    );
    const rows = cells(table.stdout);
    expect(rows[0]).toEqual([
      'start',
      'end',
      'wifi frames',
      'probes',
      'rejected',
      'addresses',
      'devices present',
      'ble frames',
      'adverts',
      'rejected',
      'addresses',
      'devices present',
    ]);
    const windows = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.length - 1).toBe(windows.length);
    let estimated = 0;
    windows.forEach((w, i) => {
      const r = rows[i + 1];
      expect(r[0]).toBe(w.complete ? w.start : `${w.start} (part)`);
      expect([r[5], r[6], r[10], r[11]]).toEqual([String(w.wifi.devices), String(w.wifi.estimate), String(w.ble.devices), String(w.ble.estimate)]);
      estimated += w.wifi.estimate + w.ble.estimate;
    });
    expect(estimated).toBeGreaterThan(0);

    // With --rssi-min, the frames it left out (weak) per radio beside rejected, as --json has them:
    // without them a window read, say, 9 probes and 0 addresses, which the table did not explain.
    const gated = presence('replay', capture, '--rssi-min', '-70');
    expect(gated.status, gated.stderr).toBe(0);
    const gatedJson = presence('replay', capture, '--rssi-min', '-70', '--json');
    const gatedRows = cells(gated.stdout);
    expect(gatedRows[0]).toEqual([
      'start',
      'end',
      'wifi frames',
      'probes',
      'rejected',
      'weak',
      'addresses',
      'devices present',
      'ble frames',
      'adverts',
      'rejected',
      'weak',
      'addresses',
      'devices present',
    ]);
    const gatedWindows = gatedJson.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(gatedRows.length - 1).toBe(gatedWindows.length);
    let weak = 0;
    gatedWindows.forEach((w, i) => {
      const r = gatedRows[i + 1];
      expect([r[5], r[6], r[11], r[12]]).toEqual([w.wifi.weak, w.wifi.devices, w.ble.weak, w.ble.devices].map(String));
      weak += w.wifi.weak + w.ble.weak;
    });
    expect(weak).toBeGreaterThan(0);
  });

  it('a replay of many windows is printed as tables of TABLE_PAGE_ROWS windows, each headed, as they are counted (one table of every window overflowed the stack at about 150,000)', () => {
    const probe = (i: number) =>
      probeRequest({ sa: Uint8Array.from([0x02, 0, 0, 0, 0, i]), seq: i, ies: Uint8Array.from([0, 0]), channel: 6, signalDbm: -50, tsfUs: 0 });
    const t0 = Date.UTC(2026, 0, 1);
    const file = join(tmp, 'sparse.pcap');
    // three frames 1,200 and 2,500 minutes apart: 2,501 one-minute windows, most of them empty
    writeFileSync(file, Buffer.concat([pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP), ...[0, 1_200, 2_500].map((m, i) => pcapRecord(t0 + m * 60_000, probe(i)))]));
    const table = presence('replay', file);
    expect(table.status, table.stderr).toBe(0);
    const json = presence('replay', file, '--json');
    expect(json.status, json.stderr).toBe(0);
    const windows = json.stdout.trim().split('\n').length;
    expect(windows).toBe(2_501);
    // one caption, above the first table only
    expect(table.stdout.split('\n').filter((l) => l === tableCaption(null)).length).toBe(1);
    expect(table.stdout.startsWith(`${tableCaption(null)}\n┌`)).toBe(true);
    const lines = table.stdout.split('\n').filter((l) => l.startsWith('│'));
    const heads = lines.filter((l) => /^│ start\s+│/.test(l)).length;
    expect(heads).toBe(Math.ceil(windows / TABLE_PAGE_ROWS));
    expect(lines.length - heads).toBe(windows);
  }, 60_000);
});
