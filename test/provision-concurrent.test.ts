// presence provision gateway run several times at once against the same broker password file, ACL
// and aggregator config (a script provisioning a site's gateways in parallel). Each run read the
// files, added its entry and wrote them back: the runs wrote over each other, the files ended with
// two or three of eight gateways, and every run said it had added its own, so the other gateways
// were refused by the broker with the password they had been given. The runs now take a lock file
// beside each file they edit, one after the other; a lock left by a run that was killed is taken over.
// Checked with real processes, real files and a real Mosquitto reading the password file and the ACL.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import * as YAML from 'yaml';
import { countsTopic } from '../contract/index.ts';
import { provisionGateway } from '../aggregator/provision.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const ROOT = join(import.meta.dirname, '..');
const SUITE = 'presence provision gateway: runs at once';
const ok = need('mosquitto', 'mosquitto', SUITE);

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const p = spawn(process.execPath, [join(ROOT, 'scripts/presence.js'), 'provision', 'gateway', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => done({ code, out }));
  });
}

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-provision-concurrent-'));
  const passwd = join(dir, 'passwd');
  const acl = join(dir, 'presence.acl');
  const cfg = join(dir, 'aggregator.yaml');
  const ids = Array.from({ length: 8 }, (_, i) => `gw-${i + 1}`);
  const broker = new Mosquitto({
    listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${acl}\n`,
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('eight runs at once: every gateway is in the password file, the ACL once and the registry, and each connects with its password', async () => {
    copyFileSync(join(ROOT, 'docs/mosquitto/presence.acl'), acl);
    const runs = await Promise.all(
      ids.map((id) =>
        run([
          '--site',
          'dam',
          '--zone',
          'plein',
          '--id',
          id,
          '--password-file',
          passwd,
          '--acl-file',
          acl,
          '--aggregator-config',
          cfg,
          '--secret-out',
          join(dir, `${id}.pw`),
        ]),
      ),
    );
    for (const r of runs) expect(r.code, r.out).toBe(0);
    const users = readFileSync(passwd, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(':')[0]);
    expect(users.sort()).toEqual(ids.map((id) => `dam/${id}`).sort());
    const registry = YAML.parse(readFileSync(cfg, 'utf8')).aggregator.gateways.registry;
    expect(Object.keys(registry).sort()).toEqual([...ids].sort());
    const aclLines = readFileSync(acl, 'utf8').split('\n');
    expect(aclLines.filter((l) => l === 'pattern write presence/v1/%u/counts')).toHaveLength(1);
    // No lock file is left behind.
    expect(readdirSync(dir).filter((n) => n.endsWith('.lock'))).toEqual([]);

    await broker.start();
    for (const id of ids) {
      const c = await mqtt.connectAsync(broker.url, {
        username: `dam/${id}`,
        password: readFileSync(join(dir, `${id}.pw`), 'utf8').trim(),
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      try {
        await c.publishAsync(countsTopic('dam', id), '{}', { qos: 1 });
      } finally {
        await c.endAsync();
      }
    }
  }, 60_000);

  it('a lock left by a run that is gone is taken over', () => {
    const d = mkdtempSync(join(dir, 'stale-'));
    const pw = join(d, 'passwd');
    // The id of a process that has exited.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(`${pw}.lock`, `${gone}\n`);
    const r = provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-stale', passwordFile: pw, secretOut: join(d, 'gw.pw') });
    expect(r.credential).toBe('dam/gw-stale');
    expect(readFileSync(pw, 'utf8')).toMatch(/^dam\/gw-stale:/);
    expect(existsSync(`${pw}.lock`)).toBe(false);
  });
});
