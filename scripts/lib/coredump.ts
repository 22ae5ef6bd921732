// Keeps a process's memory out of core dumps (Linux): `presence gateway`, `presence doctor` and
// `presence replay` (reading a live pipe) hold frames with device addresses on their way to the
// firmware (capture chunks, not zeroed: PRIVACY.md), `presence aggregator` a corridor group's noisy
// sketches and its broker and database credentials; a crash with core dumps enabled (ulimit -c,
// systemd-coredump) would write them to disk. Two settings, both inherited by the child processes
// started later (capture commands):
//   - the core file size limit (RLIMIT_CORE), soft and hard, set to 0 (util-linux `prlimit`, as
//     Node has no setrlimit): the kernel writes no core file, and systemd-coredump, which is told
//     the limit, stores none. No core at all: a core without memory still holds every thread's
//     registers, whose vector registers can hold bytes of the frames copied last (measured: a
//     core of the gateway with coredump_filter 0 held whole addresses in its AVX-512 state);
//   - /proc/self/coredump_filter set to 0: should a core be written all the same (the limit could
//     not be set), it holds no mapping, only registers and the list of mappings.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';

/** Sets both. Returns what could not be set on Linux (elsewhere there is nothing to set), null when both are set. */
export function keepMemoryOutOfCoreDumps(): string | null {
  if (!existsSync('/proc/self/coredump_filter')) return null;
  const problems: string[] = [];
  // no environment but the PATH: the gateway's holds its secrets
  const r = spawnSync('prlimit', ['--pid', String(process.pid), '--core=0:0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    env: { PATH: process.env.PATH || '/usr/bin:/bin' },
    timeout: 5000,
  });
  if (r.error || r.status !== 0)
    problems.push(
      `core file size limit not set to 0 (${r.error ? `prlimit: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}` : `prlimit: ${r.stderr.trim().split('\n')[0]}`}; install util-linux)`,
    );
  try {
    writeFileSync('/proc/self/coredump_filter', '0');
  } catch (e) {
    problems.push(`/proc/self/coredump_filter: ${(e as Error).message}`);
  }
  return problems.length > 0 ? problems.join('; ') : null;
}
