// A small tmpfs for the full-disk suites: mounted on a folder of the test's own, so a write can fill
// it. Needs root or CAP_SYS_ADMIN: without it the suite skips with the reason, and fails under CI.
import { execFileSync } from 'node:child_process';

/** Mounts a tmpfs with `options` on `at`; false (skip, with a line saying why) when this machine does not allow it, an error under CI=true. */
export function mountSmallFs(suite: string, at: string, options: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', at], { stdio: ['ignore', 'ignore', 'pipe'] });
    return true;
  } catch (e) {
    const msg = `${suite}: cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): ${(e as Error).message.split('\n')[0]}`;
    if (process.env.CI === 'true') throw new Error(`${msg}; CI=true, so this fails instead of skipping`);
    console.warn(`SKIPPED ${msg}`);
    return false;
  }
}
