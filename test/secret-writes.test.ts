// The commands that write a secret (presence corridor init and join, presence provision gateway)
// and a file they cannot write: a folder named where the file goes, a folder under /proc, a folder
// the user may not write. Each gives one line naming the flag, the path and why, leaves no
// temporary file (it held the secret: `PATH.tmp-PID` was left beside a folder named by --out or
// --secret-out), and changes nothing: corridor join installed the secret, then stopped with a stack
// trace at a config in a folder the user may not write; provision kept the gateway's password file
// when the broker's password file could not be written, and refused it as existing the next time.
// Root writes every folder, so those runs are made as the user nobody (setpriv); where that cannot
// be done they say why and skip.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { thrown } from './support/thrown.ts';
import { ProvisionError, provisionGateway } from '../aggregator/provision.ts';
import { corridorInit, corridorJoin } from '../gateway/corridor-cli.ts';
import { UsageError } from '../scripts/lib/usage.ts';

const repo = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-secret-writes-'));
chmodSync(tmp, 0o755);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Names in a folder that look like a temporary file of an atomic write. */
const temporary = (dir: string) => readdirSync(dir).filter((n) => n.includes('.tmp-'));

describe('a secret file that cannot be written', () => {
  it('corridor init: a folder as --out (with --force) or a folder under /proc is named with the flag; no temporary file is left', () => {
    const dir = mkdtempSync(join(tmp, 'init-'));
    const folder = join(dir, 'main.secret');
    mkdirSync(folder);
    for (const force of [false, true]) {
      const e = thrown(() => corridorInit({ group: 'main', out: folder, force }));
      expect(e).toBeInstanceOf(UsageError);
      expect(e.message).toBe(`--out ${folder}: is a folder; give the path of the secret file to create, e.g. ${join(folder, 'main.secret')}`);
    }
    const proc = thrown(() => corridorInit({ group: 'main', out: '/proc/main.secret' }));
    expect(proc).toBeInstanceOf(UsageError);
    expect(proc.message).toBe('--out /proc/main.secret: the folder /proc does not exist or cannot hold files; check the path');
    expect(temporary(dir)).toEqual([]);
  });

  it('corridor init and provision: an --out or --secret-out that is a link to a device (/dev/stdout) or a fifo is refused, and the link stays a link (as root the rename replaced /dev/stdout itself)', () => {
    const dir = mkdtempSync(join(tmp, 'device-'));
    const link = join(dir, 'stdout');
    symlinkSync('/dev/null', link);
    const fifo = join(dir, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const out of [link, fifo]) {
      const e = thrown(() => corridorInit({ group: 'main', out, force: true }));
      expect(e).toBeInstanceOf(UsageError);
      expect(e.message).toBe(`--out ${out}: is not a regular file (a fifo, a device or a socket); give the path of a file`);
      const p = thrown(() => provisionGateway({ site: 's', zone: 'z', id: 'gw-1', passwordFile: join(dir, 'passwd'), secretOut: out, rotate: true }));
      expect(p).toBeInstanceOf(ProvisionError);
      expect(p.message).toBe(`--secret-out ${out}: is not a regular file (a fifo, a device or a socket); give the path of a file; nothing was changed`);
    }
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('/dev/null');
    expect(temporary(dir)).toEqual([]);
  });

  it('corridor init and provision: an --out or --secret-out that is /dev/stdout with the output going to a file (a link to a regular file, through /proc) is refused, and the link stays a link', () => {
    const dir = mkdtempSync(join(tmp, 'stdout-file-'));
    const redirected = join(dir, 'redirected.txt');
    const fd = openSync(redirected, 'w');
    try {
      // as /dev/stdout -> /proc/self/fd/1 when the shell sent the output to a file
      const link = join(dir, 'stdout');
      symlinkSync(`/proc/self/fd/${fd}`, link);
      const why = 'is a link to an open file of this process (/dev/stdout, /dev/fd/N), which the file would replace; give the path of a file';
      const e = thrown(() => corridorInit({ group: 'main', out: link, force: true }));
      expect(e).toBeInstanceOf(UsageError);
      expect(e.message).toBe(`--out ${link}: ${why}`);
      const p = thrown(() => provisionGateway({ site: 's', zone: 'z', id: 'gw-1', passwordFile: join(dir, 'passwd'), secretOut: link, rotate: true }));
      expect(p).toBeInstanceOf(ProvisionError);
      expect(p.message).toBe(`--secret-out ${link}: ${why}; nothing was changed`);
      // and the same file descriptor named directly
      expect(thrown(() => corridorInit({ group: 'main', out: `/dev/fd/${fd}`, force: true })).message).toBe(`--out /dev/fd/${fd}: ${why}`);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(`/proc/self/fd/${fd}`);
      expect(readFileSync(redirected, 'utf8')).toBe('');
      expect(temporary(dir)).toEqual([]);
    } finally {
      closeSync(fd);
    }
  });

  it('corridor join: an --install that is a folder or a fifo is refused before anything is read or written (a fifo blocked for ever)', () => {
    const dir = mkdtempSync(join(tmp, 'join-'));
    const secret = join(dir, 'main.secret');
    corridorInit({ group: 'main', out: secret });
    const config = join(dir, 'gw.yaml');
    const text = 'gateway: { site: s, zone: z, id: g }\nsources: [stdin]\nmqtt: { url: "mqtt://h:1883" }\n';
    writeFileSync(config, text);
    const fifo = join(dir, 'install.fifo');
    execFileSync('mkfifo', [fifo]);
    const f = thrown(() => corridorJoin({ config, group: 'main', secretFile: secret, install: fifo, sketchP: '0.03', force: true }));
    expect(f).toBeInstanceOf(UsageError);
    expect(f.message).toBe(`--install ${fifo}: is not a regular file (a fifo, a device or a socket); give the path of a file`);
    const d = thrown(() => corridorJoin({ config, group: 'main', secretFile: secret, install: dir, sketchP: '0.03', force: true }));
    expect(d.message).toBe(`--install ${dir}: is a folder; give the path of a file`);
    expect(readFileSync(config, 'utf8')).toBe(text);
    expect(temporary(dir)).toEqual([]);
  });

  it('provision gateway: a folder as --secret-out (with --rotate) is named with the flag; nothing is written, no temporary file left', () => {
    const dir = mkdtempSync(join(tmp, 'provision-'));
    const passwordFile = join(dir, 'passwd');
    const folder = join(dir, 'gw.mqtt-password');
    mkdirSync(folder);
    const e = thrown(() => provisionGateway({ site: 's', zone: 'z', id: 'gw-1', passwordFile, secretOut: folder, rotate: true }));
    expect(e).toBeInstanceOf(ProvisionError);
    expect(e.message).toBe(`--secret-out ${folder}: is a folder; give the path of a file; nothing was changed`);
    expect(readdirSync(dir)).toEqual(['gw.mqtt-password']);
  });
});

const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const run = (cwd: string, ...args: string[]) =>
  spawnSync('setpriv', [...asNobody, process.execPath, join(repo, 'scripts/presence.js'), ...args], { encoding: 'utf8', cwd });

function why(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (to run the commands as the user nobody)';
  const probe = run(tmp, '--version');
  if (probe.error) return `needs setpriv (util-linux): ${probe.error.message}`;
  if (probe.status !== 0) return `the user nobody cannot run this checkout (${probe.stderr.trim().split('\n')[0]})`;
  return null;
}
const reason = why();
if (reason) console.warn(`secret-writes: the runs as another user are skipped: ${reason}`);

describe.skipIf(reason !== null)('a folder the user may not write', () => {
  /** A folder of root (0755: nobody may read it, not write it) and one of nobody. */
  function folders(name: string): { root: string; own: string } {
    const root = join(tmp, `${name}-root`);
    const own = join(tmp, `${name}-nobody`);
    mkdirSync(root, { mode: 0o755 });
    mkdirSync(own, { mode: 0o755 });
    chownSync(own, 65534, 65534);
    return { root, own };
  }

  it('corridor init: one line naming --out, the folder and the fix; exit 2, no stack trace', () => {
    const { root } = folders('init');
    const out = join(root, 'main.secret');
    const r = run(tmp, 'corridor', 'init', '--group', 'main', '--out', out);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `presence corridor init: --out ${out}: permission denied: this user may not write in ${root}; run it as a user who may (sudo), or choose another path\n` +
        'hint: nothing was changed: fix the path or the permissions, then run it again\n',
    );
    expect(readdirSync(root)).toEqual([]);
  });

  it('corridor join: a config in a folder the user may not write changes nothing: the secret just installed is taken back', () => {
    const { root, own } = folders('join');
    const secret = join(own, 'main.secret');
    corridorInit({ group: 'main', out: secret });
    chownSync(secret, 65534, 65534);
    const config = join(root, 'gw.yaml');
    const text = 'gateway: { site: s, zone: z, id: g }\nsources: [stdin]\nmqtt: { url: "mqtt://h:1883" }\n';
    writeFileSync(config, text, { mode: 0o644 });
    const install = join(own, 'installed.secret');
    const r = run(own, 'corridor', 'join', '--config', config, '--group', 'main', '--secret-file', secret, '--install', install, '--sketch-p', '0.03');
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(
      `presence corridor join: --config ${config}: permission denied: this user may not write in ${root}; run it as a user who may (sudo), or choose another path`,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(own).sort()).toEqual(['main.secret']);
    expect(readdirSync(root)).toEqual(['gw.yaml']);
    expect(readFileSync(config, 'utf8')).toBe(text);
  });

  it('provision gateway: a password file in a folder the user may not write takes back the gateway password written before it', () => {
    const { root, own } = folders('provision');
    const passwordFile = join(root, 'passwd');
    const secretOut = join(own, 'gw-1.mqtt-password');
    const r = run(own, 'provision', 'gateway', '--site', 's', '--zone', 'z', '--id', 'gw-1', '--password-file', passwordFile, '--secret-out', secretOut);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `presence provision gateway: --password-file ${passwordFile}: permission denied: this user may not write in ${root}; run it as a user who may (sudo), or choose another path; nothing was changed\n` +
        'hint: check the paths given and that this user may write them (sudo)\n',
    );
    expect(readdirSync(own)).toEqual([]);
    expect(readdirSync(root)).toEqual([]);
  });
});
