// Files a command reads whole and a person names on the command line (calibrate --truth, corridor
// join --secret-file and --config, provision gateway --password-file, --acl-file and
// --aggregator-config) are checked first: a folder, a fifo, a device (/dev/zero filled memory by
// gigabytes) or a huge file is refused with a sentence naming the flag and the file, and provision
// reads all of them before it writes anything.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { thrown } from './support/thrown.ts';
import { readOccupancy, readPointCounts } from '../aggregator/calibration/truth.ts';
import { ProvisionError, provisionGateway } from '../aggregator/provision.ts';
import { corridorInit, corridorJoin } from '../gateway/corridor-cli.ts';
import { UsageError } from '../scripts/lib/usage.ts';

const tmp = mkdtempSync(join(tmpdir(), 'presence-read-whole-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A symbolic link to a character device that reads as empty (a safe stand-in for /dev/zero). */
function device(name: string): string {
  const p = join(tmp, name);
  symlinkSync('/dev/null', p);
  return p;
}

describe('files read whole are checked first', () => {
  it('calibrate --truth: a device or a folder is refused by name', () => {
    const dev = device('truth-dev.csv');
    expect(thrown(() => readOccupancy(dev)).message).toMatch(/truth-dev\.csv.*is not a regular file \(a device\)/);
    expect(thrown(() => readPointCounts(dev)).message).toMatch(/is not a regular file \(a device\)/);
    expect(thrown(() => readOccupancy(tmp)).message).toMatch(/is a folder, not a file/);
  });

  it('corridor join: a secret file or config that is a device is refused by name', () => {
    const secret = join(tmp, 'group.secret');
    corridorInit({ group: 'main', out: secret });
    const config = join(tmp, 'gw.yaml');
    writeFileSync(config, 'gateway: { site: s, zone: z, id: g }\nsources: [stdin]\nmqtt: { url: "mqtt://h:1883" }\n');
    const e = thrown(() => corridorJoin({ config, group: 'main', secretFile: device('copy.secret'), sketchP: '0.03' }));
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toMatch(/^--secret-file .*copy\.secret: is not a regular file \(a device\)$/);
    const c = thrown(() => corridorJoin({ config: device('gw-dev.yaml'), group: 'main', secretFile: secret, sketchP: '0.03' }));
    expect(c).toBeInstanceOf(UsageError);
    expect(c.message).toMatch(/^--config .*gw-dev\.yaml: is not a regular file \(a device\)$/);
  });

  it('provision gateway: a bad ACL file is refused before the password file or the secret is written', () => {
    const passwordFile = join(tmp, 'passwd');
    const secretOut = join(tmp, 'gw.mqtt-password');
    const aclDir = join(tmp, 'acl-folder');
    mkdirSync(aclDir);
    const e = thrown(() => provisionGateway({ site: 's', zone: 'z', id: 'gw-1', passwordFile, aclFile: aclDir, secretOut }));
    expect(e).toBeInstanceOf(ProvisionError);
    expect(e.message).toBe(`--acl-file ${aclDir}: is a folder, not a file`);
    expect(existsSync(passwordFile)).toBe(false);
    expect(existsSync(secretOut)).toBe(false);
    const dev = device('passwd-dev');
    expect(thrown(() => provisionGateway({ site: 's', zone: 'z', id: 'gw-1', passwordFile: dev, secretOut })).message).toBe(
      `--password-file ${dev}: is not a regular file (a device)`,
    );
    const agg = device('agg-dev.yaml');
    expect(thrown(() => provisionGateway({ site: 's', zone: 'z', id: 'gw-1', aggregatorConfig: agg })).message).toBe(
      `--aggregator-config ${agg}: is not a regular file (a device)`,
    );
    const badJson = join(tmp, 'agg.json');
    writeFileSync(badJson, '{"aggregator":');
    expect(thrown(() => provisionGateway({ site: 's', zone: 'z', id: 'gw-1', aggregatorConfig: badJson })).message).toMatch(
      new RegExp(`^${badJson.replace(/[.]/g, '\\.')}: not valid JSON: `),
    );
    expect(readFileSync(badJson, 'utf8')).toBe('{"aggregator":');
  });
});
