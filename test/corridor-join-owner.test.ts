// `presence corridor join` run as root, as it must be where the config lives in /etc/presence (root's
// folder, the service's group): the secret it installs is given to the user the service runs as.
// It was root's, mode 0600, and the gateway, run as presence, stopped at its next start: "cannot be
// read (permission denied)". Here the service's user is nobody (--service-user); as root only.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { corridorInit, corridorJoin } from '../gateway/corridor-cli.ts';

const root = process.getuid?.() === 0;
if (!root) console.warn('corridor join owner: skipped: needs root (it gives a file to another user)');

describe.skipIf(!root)('corridor join as root', () => {
  // a folder the user nobody may enter, as /etc/presence is for presence
  const dir = mkdtempSync('/tmp/presence-corridor-owner-');
  chmodSync(dir, 0o755);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("installs the secret as the service user's own file, mode 0600, which that user can read; a user that does not exist changes nothing", () => {
    const config = join(dir, 'gateway.yaml');
    const text = 'gateway: { site: dam, zone: plein, id: gw-1 }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://127.0.0.1:1883" }\n';
    writeFileSync(config, text);
    chmodSync(config, 0o644);
    const copy = join(dir, 'copy.secret');
    corridorInit({ group: 'main', out: copy } as never);
    const r = corridorJoin({ config, group: 'main', secretFile: copy, sketchP: '0.03', serviceUser: 'nobody' });
    const st = statSync(r.installed);
    const nobody = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim());
    expect(st.uid).toBe(nobody);
    expect(st.mode & 0o777).toBe(0o600);
    expect(r.owner).toBe('nobody');
    expect(spawnSync('runuser', ['-u', 'nobody', '--', 'test', '-r', r.installed]).status).toBe(0);

    // a root-owned copy (before this fix, or installed by hand): the gateway run as nobody names the chown
    const rootOwned = join(dir, 'root.secret');
    writeFileSync(rootOwned, readFileSync(r.installed), { mode: 0o600 });
    const cli = join(import.meta.dirname, '..', 'scripts', 'presence.js');
    const run = spawnSync(
      'runuser',
      ['-u', 'nobody', '--', process.execPath, cli, 'gateway', '--config', config, '--corridor-secret-file', rootOwned, '--queue-dir', join(dir, 'q')],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr.split('\n')[0]).toBe(
      `presence gateway: corridor.secret_file: ${rootOwned} cannot be read by nobody, who runs the gateway (permission denied): chown nobody ${rootOwned} && chmod 600 ${rootOwned}`,
    );

    const other = join(dir, 'other.yaml');
    writeFileSync(other, text);
    expect(() => corridorJoin({ config: other, group: 'main', secretFile: copy, sketchP: '0.03', serviceUser: 'no-such-user-here' })).toThrow(
      '--service-user no-such-user-here: no such user on this machine',
    );
    expect(readFileSync(other, 'utf8')).toBe(text);
  });
});
