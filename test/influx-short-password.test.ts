// A short InfluxDB password and the server's refusals: the credentials sent are taken out of a
// server's answer before it is shown (a server or proxy may echo them), and a one-letter password
// was taken out of every word that held the letter. presence influx setup run as a user without
// admin rights whose password is "r" said: e******o*** autho***izing que***y: ***eade*** not
// autho***ized ..., unreadable, and each *** showed where the password stood. A short secret is now
// hidden only where it stands alone. Checked against a real influxd 1.6.7 with auth-enabled.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withoutSecrets } from '../scripts/lib/http-body.ts';
import { Influxd } from './support/influxd.ts';
import { need } from './support/need.ts';

const ROOT = join(import.meta.dirname, '..');
const SUITE = 'presence influx setup: a short password';
const ok = need('influxd', 'influxdb', SUITE);

describe('withoutSecrets', () => {
  it('hides a short secret where it stands alone, not inside words', () => {
    expect(withoutSecrets('reader not authorized, password r given', ['r'])).toBe('reader not authorized, password *** given');
    expect(withoutSecrets('bad "ab1" for user x', ['ab1'])).toBe('bad "***" for user x');
  });
  it('hides a long secret wherever it stands', () => {
    expect(withoutSecrets('xxS3cretLongyy', ['S3cretLong'])).toBe('xx***yy');
  });
});

describe.skipIf(!ok)(SUITE, () => {
  const influx = new Influxd('presence', { username: 'admin', password: 'admin-S3cret' });
  beforeAll(async () => {
    await influx.start();
    await influx.query(`CREATE USER "reader" WITH PASSWORD 'r'`, 'POST');
  }, 60_000);
  afterAll(() => influx.dispose());

  it("a user without admin rights gets InfluxDB's refusal as InfluxDB wrote it", () => {
    const url = influx.url.replace('http://', 'http://reader:r@');
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), 'influx', 'setup', '--influx-url', url], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('reader not authorized to execute statement');
    expect(r.stderr).toContain('requires admin privilege');
    expect(r.stderr).not.toContain('***');
  });
});
