// `presence replay`'s table shows per radio the `estimate` beside `devices`, the figure its
// `--json` carries and the one `--calibration` turns into people: the table showed devices only,
// so its people column could not be traced to any count on screen.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-replay-table-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const presence = (...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });

describe('presence replay: the table', () => {
  it('has devices and estimate per radio, the same numbers as --json, window by window', () => {
    const sim = presence('simulate', 'kingsday-square', '--scale', '0.01', '--duration', '5m', '--out', join(tmp, 'sim'));
    expect(sim.status, sim.stderr).toBe(0);
    const capture = join(tmp, 'sim', 'gw-east.pcapng');
    const table = presence('replay', capture);
    expect(table.status, table.stderr).toBe(0);
    const json = presence('replay', capture, '--json');
    expect(json.status, json.stderr).toBe(0);
    const rows = table.stdout
      .split('\n')
      .filter((l) => l.startsWith('│'))
      .map((l) =>
        l
          .split('│')
          .slice(1, -1)
          .map((c) => c.trim()),
      );
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
      expect(r[0]).toBe(w.start);
      expect([r[5], r[6], r[10], r[11]]).toEqual([String(w.wifi.devices), String(w.wifi.estimate), String(w.ble.devices), String(w.ble.estimate)]);
      estimated += w.wifi.estimate + w.ble.estimate;
    });
    expect(estimated).toBeGreaterThan(0);
  });
});
