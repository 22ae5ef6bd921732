// A capture the user running the command cannot read (a capture root wrote with mode 0600, replayed
// by a service user) gives one line naming the file and the fix, before any work starts, in
// `presence replay` and `presence calibrate`. Root reads every file, so the commands run as the
// user nobody (setpriv); where that cannot be done the suite says why and skips.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LINKTYPE } from '../firmware/host/types.ts';
import { pcapHeader } from '../simulator/pcap-writer.ts';

const repo = join(import.meta.dirname, '..');
const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const run = (...args: string[]) => spawnSync('setpriv', [...asNobody, process.execPath, join(repo, 'scripts/presence.js'), ...args], { encoding: 'utf8' });

function why(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (to run the commands as the user nobody)';
  const probe = run('--version');
  if (probe.error) return `needs setpriv (util-linux): ${probe.error.message}`;
  if (probe.status !== 0) return `the user nobody cannot run this checkout (${probe.stderr.trim().split('\n')[0]})`;
  return null;
}
const reason = why();
if (reason) console.warn(`unreadable-input: skipped: ${reason}`);

describe.skipIf(reason !== null)('a capture the user cannot read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-unreadable-'));
  chmodSync(dir, 0o755);
  const capture = join(dir, 'root-only.pcap');
  writeFileSync(capture, pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP), { mode: 0o600 });
  const truth = join(dir, 'truth.csv');
  writeFileSync(truth, 'time;occupancy\n2026-01-01T00:00:00Z;3\n2026-01-01T01:00:00Z;0\n', { mode: 0o644 });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fix = 'cannot be read \\(permission denied\\); fix: give the user running this read access';

  it('presence replay names it and the fix', () => {
    const r = run('replay', capture);
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(new RegExp(`^presence replay: ${capture}: ${fix}`));
  });

  it('presence calibrate names a truth file it cannot read and the fix', () => {
    const secret = join(dir, 'root-only.csv');
    writeFileSync(secret, 'time;occupancy\n2026-01-01T00:00:00Z;3\n', { mode: 0o600 });
    const readable = join(dir, 'readable.pcap');
    writeFileSync(readable, pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP), { mode: 0o644 });
    const r = run('calibrate', '--capture', readable, '--truth', secret, '--zone', 'lab', '--leave-one-out');
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(new RegExp(`^presence calibrate: ${secret}: ${fix}`));
  });

  it('presence calibrate names it, the flag and the fix', () => {
    const r = run('calibrate', '--capture', capture, '--truth', truth, '--zone', 'lab', '--leave-one-out');
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(new RegExp(`^presence calibrate: ${capture} \\(--capture\\): ${fix}`));
  });
});
