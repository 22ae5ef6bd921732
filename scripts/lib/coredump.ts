// Keeps a process's memory out of core dumps (Linux): `presence gateway` and `presence doctor` hold
// frames with device addresses on their way to the firmware (capture chunks, not zeroed:
// PRIVACY.md), `presence aggregator` a corridor group's noisy sketches and its broker and database
// credentials; a crash with core dumps enabled (ulimit -c, systemd-coredump) would write them to
// disk. Linux dumps only the kinds of mapping that /proc/self/coredump_filter names: 0 names none,
// so a core holds registers and the list of mappings, no memory. Child processes started later
// (capture commands) inherit the setting.
import { existsSync, writeFileSync } from 'node:fs';

/** Sets coredump_filter to 0. Returns the error when it cannot be set on Linux (elsewhere there is nothing to set), null when set. */
export function keepMemoryOutOfCoreDumps(): string | null {
  if (!existsSync('/proc/self/coredump_filter')) return null;
  try {
    writeFileSync('/proc/self/coredump_filter', '0');
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
