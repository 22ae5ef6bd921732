// The commands that need InfluxQL (`presence influx setup`, `presence calibrate --influx-url`) pointed
// at a real VictoriaMetrics, which takes the aggregator's writes but answers every /query with one
// made-up database "_internal": they stop with one line saying it is no InfluxDB, instead of a setup
// that "succeeded" (retention policies "_internal infinite") or a site "absent" (sites "_internal").
// A real influxd 1.6.7 beside it is read as InfluxDB.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noInfluxQl } from '../aggregator/influx-setup.ts';
import { Influxd } from './support/influxd.ts';
import { need } from './support/need.ts';
import { Victoria } from './support/victoria.ts';

const ok = need('victoria-metrics', 'victoria-metrics', 'influxql-victoria') && need('influxd', 'influxdb', 'influxql-victoria');
const repo = join(import.meta.dirname, '..');

function presence(...args: string[]) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MQTT_|INFLUX_|LOG_)/.test(k)));
  const r = spawnSync(process.execPath, [join(repo, 'scripts/presence.js'), ...args], { cwd: repo, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!ok)('InfluxQL commands against VictoriaMetrics', () => {
  const vm = new Victoria();
  const influx = new Influxd();
  const dir = mkdtempSync(join(tmpdir(), 'presence-influxql-vm-'));

  beforeAll(async () => {
    await Promise.all([vm.start(), influx.start()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([vm.dispose(), influx.dispose()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('tells VictoriaMetrics from InfluxDB by its /ping', async () => {
    expect(await noInfluxQl(vm.url)).toMatch(/answers \/ping without X-Influxdb-Version, as VictoriaMetrics does/);
    expect(await noInfluxQl(influx.url)).toBeNull();
  });

  it('presence influx setup: one line saying there is nothing to set up, exit 2, no success claimed', () => {
    const r = presence('influx', 'setup', '--influx-url', vm.url);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(
      /^presence influx setup: http:\/\/127\.0\.0\.1:\d+\/ answers \/ping without X-Influxdb-Version, as VictoriaMetrics does, not as InfluxDB: .*; fix: nothing to set up there/,
    );
    expect(lines[1]).toMatch(/^hint: /);
    expect(r.stdout).not.toMatch(/retention policies|CREATE/);
  });

  it('presence calibrate --influx-url: one line saying the series cannot be read there, exit 2, no file', () => {
    const truth = join(dir, 'counts.csv');
    writeFileSync(truth, 'time;people\n2026-05-09T08:00:30Z;10\n2026-05-09T08:01:30Z;12\n');
    const out = join(dir, 'never.yaml');
    const r = presence('calibrate', '--influx-url', vm.url, '--influx-db', 'presence', '--site', 'station', '--zone', 'hall', '--truth', truth, '--out', out);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')[0]).toMatch(
      /^presence calibrate: http:\/\/127\.0\.0\.1:\d+\/ answers \/ping without X-Influxdb-Version, as VictoriaMetrics does, not as InfluxDB: .*; fix: give --influx-url the InfluxDB the series is in .*, or calibrate with captures \(--capture\)$/,
    );
    expect(r.stderr).not.toContain('_internal');
    expect(existsSync(out)).toBe(false);
  });
});
