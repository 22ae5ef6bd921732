// presence influx setup against a real influxd 1.6.7 with auth-enabled, refused for want of
// credentials or rights: the line said only what InfluxDB said ("unable to parse authentication
// credentials", "authorization failed", "requires admin privilege") and the hint pointed to --help.
// It now says what to do: give an admin user and its password, check them, or grant the user admin
// rights; and the password given is not shown.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Influxd } from './support/influxd.ts';
import { need } from './support/need.ts';

const ROOT = join(import.meta.dirname, '..');
const SUITE = 'presence influx setup: a server with auth';
const ok = need('influxd', 'influxdb', SUITE);

describe.skipIf(!ok)(SUITE, () => {
  const influx = new Influxd('presence', { username: 'admin', password: 'admin-S3cret' });
  beforeAll(async () => {
    await influx.start();
    await influx.query(`CREATE USER "writer" WITH PASSWORD 'writer-S3cret'`, 'POST');
  }, 60_000);
  afterAll(() => influx.dispose());

  const setup = (url: string) =>
    spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), 'influx', 'setup', '--influx-url', url], {
      encoding: 'utf8',
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('INFLUX_'))),
    });

  it('no credentials: says to give an admin user and its password', () => {
    const r = setup(influx.url);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('unable to parse authentication credentials; fix:');
    expect(r.stderr).toContain('--influx-username with INFLUX_PASSWORD or --influx-password-file');
  });

  it('a wrong password: says to check the user name and password, and shows neither password', () => {
    const r = setup(influx.url.replace('http://', 'http://admin:Wr0ng-pass@'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('authorization failed; fix: check the user name admin and its password');
    expect(r.stderr).not.toContain('Wr0ng-pass');
    expect(r.stderr).not.toContain('admin-S3cret');
  });

  it('a user that is no admin: says to grant it or use an admin user', () => {
    const r = setup(influx.url.replace('http://', 'http://writer:writer-S3cret@'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('requires admin privilege; fix:');
    expect(r.stderr).toContain('GRANT ALL PRIVILEGES TO "writer"');
    expect(r.stderr).not.toContain('writer-S3cret');
  });

  it('the admin user sets it up, twice', () => {
    for (let i = 0; i < 2; i++) {
      const r = setup(influx.url.replace('http://', 'http://admin:admin-S3cret@'));
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain('detail 30d (default), hourly 400d; continuous query presence_hourly');
    }
  });
});
