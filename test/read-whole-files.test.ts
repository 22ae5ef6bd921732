// Files a command reads whole and a person names on the command line (calibrate --truth, corridor
// join --secret-file and --config, provision gateway --password-file, --acl-file and
// --aggregator-config) are checked first: a folder, a fifo, a device (/dev/zero filled memory by
// gigabytes) or a huge file is refused with a sentence naming the flag and the file, and provision
// reads all of them before it writes anything.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { thrown } from './support/thrown.ts';
import { readOccupancy, readPointCounts } from '../aggregator/calibration/truth.ts';
import { ProvisionError, provisionGateway } from '../aggregator/provision.ts';
import { corridorInit, corridorJoin } from '../gateway/corridor-cli.ts';
import { UsageError } from '../scripts/lib/usage.ts';

const ROOT = join(import.meta.dirname, '..');
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

describe('a capture named where a YAML file goes is said to be one', () => {
  /** A pcap global header (little-endian, link type 127), then `pad` bytes of zeros. */
  function pcap(name: string, pad = 0): string {
    const p = join(tmp, name);
    const head = Buffer.alloc(24);
    head.writeUInt32LE(0xa1b2c3d4, 0);
    head.writeUInt16LE(2, 4);
    head.writeUInt16LE(4, 6);
    head.writeUInt32LE(65535, 16);
    head.writeUInt32LE(127, 20);
    writeFileSync(p, Buffer.concat([head, Buffer.alloc(pad)]));
    return p;
  }
  function presence(...args: string[]): { code: number | null; err: string } {
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, err: r.stderr };
  }

  it('--calibration, --prior, --config and a scenario file: one line naming the file as a capture (was "not valid YAML: Implicit keys need to be on a single line" at 1:1)', () => {
    const small = pcap('day.pcap', 100);
    const truth = join(tmp, 'day_occupancy.csv');
    writeFileSync(truth, 'time;occupancy\n2024-02-08T08:00:00Z;3\n2024-02-08T09:00:00Z;3\n');
    const pcapng = join(tmp, 'gw.pcapng');
    writeFileSync(
      pcapng,
      Buffer.from([0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1c, 0, 0, 0]),
    );
    const cases: Array<[string[], string]> = [
      [
        ['replay', small, '--calibration', small, '--zone', 'lab'],
        `presence replay: --calibration ${small}: is a pcap capture, not a text file; give the calibration file presence calibrate wrote`,
      ],
      [['simulate', pcapng], `presence simulate: ${pcapng}: the scenario file is a pcapng capture, not a text file`],
      [['gateway', '--config', pcapng], `presence gateway: config file ${pcapng} is a pcapng capture, not a text file: give the path of a YAML or JSON file`],
      [
        ['calibrate', '--capture', small, '--truth', truth, '--zone', 'lab', '--prior', small, '--json'],
        `presence calibrate: --prior ${small}: is a pcap capture, not a text file; fix: give --prior a calibration file written by presence calibrate`,
      ],
      [['aggregator', '--calibration', small, '--out', join(tmp, 'agg.lp')], `presence aggregator: --calibration ${small}: is a pcap capture, not a text file`],
    ];
    for (const [args, first] of cases) {
      const r = presence(...args);
      expect(r.err.split('\n')[0], r.err).toMatch(new RegExp(`^${first.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      expect(r.err).not.toMatch(/not valid YAML/);
      expect(r.code).toBe(2);
    }
  });

  it('a capture past the size limit is named as a capture, not as a file to make smaller', () => {
    const big = pcap('big.pcap', 2 * 2 ** 20);
    const sim = presence('simulate', big);
    expect(sim.err.split('\n')[0]).toBe(`presence simulate: ${big}: the scenario file is a pcap capture, not a text file`);
    const gw = presence('gateway', '--config', big);
    expect(gw.err.split('\n')[0]).toBe(`presence gateway: config file ${big} is a pcap capture, not a text file: give the path of a YAML or JSON file`);
    expect(`${sim.err}${gw.err}`).not.toMatch(/MiB/);
  });
});
