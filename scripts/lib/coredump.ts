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
//
// Node's own options can write the memory to a file too, or open it to another process: those
// are refused (memoryDumpOption) by the same commands, whether on node's command line or in
// NODE_OPTIONS (a systemd unit's EnvironmentFile, a shell profile).
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { exitUsage } from './usage.ts';

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

const SNAPSHOT = "writes a heap snapshot (the process's JavaScript memory: its strings and objects) to a file";
const REPORT = "writes a diagnostic report (the process's environment, with any secret given there such as MQTT_PASSWORD) to a file";
const INSPECTOR = 'opens the inspector, through which a local user can read and change the memory of the process';

/** Node options (names as node normalises them) that put the process's memory in a file or in another process's hands. */
const MEMORY_DUMP_OPTIONS: ReadonlyMap<string, string> = new Map([
  ['heapsnapshot-signal', `${SNAPSHOT} on a signal`],
  ['heapsnapshot-near-heap-limit', `${SNAPSHOT} when the heap nears its limit`],
  ['report-on-signal', `${REPORT} on a signal`],
  ['report-on-fatalerror', `${REPORT} on a fatal error`],
  ['report-uncaught-exception', `${REPORT} on an uncaught exception`],
  ['inspect', INSPECTOR],
  ['inspect-brk', INSPECTOR],
  ['inspect-wait', INSPECTOR],
  // node's own debugging option (command line only): the inspector, paused before node's internals
  ['inspect-brk-node', INSPECTOR],
]);

/** '--heapsnapshot_signal=SIGUSR2' -> 'heapsnapshot-signal' (node takes _ for - in option names); null for a value. */
function optionName(token: string): string | null {
  const t = token.replace(/^["']|["']$/g, '');
  if (!t.startsWith('--')) return null;
  return t.slice(2).replace(/=.*$/s, '').replace(/_/g, '-');
}

/**
 * The first node option, given on node's command line (`execArgv`) or in NODE_OPTIONS, that would
 * write the process's memory (or its environment) to a file or open it to a debugger, with where
 * it came from and what it does; null when there is none.
 */
export function memoryDumpOption(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
): { option: string; where: string; does: string } | null {
  for (const [where, tokens] of [
    ["node's command line", execArgv],
    ['NODE_OPTIONS', nodeOptions.split(/\s+/)],
  ] as const) {
    for (const token of tokens) {
      const name = optionName(token);
      const does = name === null ? undefined : MEMORY_DUMP_OPTIONS.get(name);
      if (does) return { option: `--${name}`, where, does };
    }
  }
  return null;
}

/**
 * Exits with a usage error (one line, one hint, exit 2) when node was given an option of
 * memoryDumpOption(); returns when there is none. For `presence COMMAND`, before it reads anything.
 */
export function refuseMemoryDumpOption(command: string, found = memoryDumpOption()): void {
  if (!found) return;
  const from =
    found.where === 'NODE_OPTIONS' ? "NODE_OPTIONS (the environment: a shell profile, a unit's Environment= or EnvironmentFile=)" : "node's command line";
  // NODE_OPTIONS may come from a file other programs share (/etc/environment, a profile): how to run without it, too
  const without =
    found.where === 'NODE_OPTIONS'
      ? `, or leave NODE_OPTIONS out for this command (env -u NODE_OPTIONS presence ${command} ..., a unit's UnsetEnvironment=NODE_OPTIONS)`
      : '';
  exitUsage(command, new Error(`node option ${found.option} (${found.where}) ${found.does}`), `remove ${found.option} from ${from}${without}`);
}
