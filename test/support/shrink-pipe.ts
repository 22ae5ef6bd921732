// A pipe as small as a user over its pipe quota gets (fs.pipe-user-pages-soft exceeded: two pages,
// 8 KiB, that cannot be enlarged), made by shrinking one: fcntl(F_SETPIPE_SZ) by perl, as
// gateway/sources.ts enlargePipe does (Node has no fcntl). It changes that one pipe, no limit of the
// user or the machine, so it is safe on a shared machine, and it works as root (whom the quota does
// not limit). Used by the tests and the gateway bench.
import { spawnSync } from 'node:child_process';
import { findExecutable } from '../../gateway/sources.ts';

/** Shrinks the pipe behind `fd` (empty, or holding at most `bytes`) to `bytes`: what it holds then (F_GETPIPE_SZ), null without perl or where fcntl fails (not Linux). */
export function shrinkPipe(fd: number, bytes = 8192): number | null {
  const perl = findExecutable('perl');
  if (!perl) return null;
  // 1031, 1032: F_SETPIPE_SZ, F_GETPIPE_SZ (linux/fcntl.h)
  const r = spawnSync(perl, ['-e', 'fcntl(STDOUT, 1031, $ARGV[0] + 0) or exit 1; print STDERR fcntl(STDOUT, 1032, 0) + 0', String(bytes)], {
    stdio: ['ignore', fd, 'pipe'],
    encoding: 'utf8',
  });
  return r.status === 0 ? Number(r.stderr.trim()) : null;
}
