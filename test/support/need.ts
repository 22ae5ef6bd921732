// Integration suites need real servers from Debian packages. Outside CI a missing one skips the
// suite with a clear message; under CI=true it fails instead, so CI never passes by skipping.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const CI = process.env.CI === 'true';

export function hasBinary(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return ['/usr/sbin', '/usr/bin', '/sbin'].some((d) => existsSync(join(d, bin)));
  }
}

/** True when `bin` is installed. Missing: under CI throws (the suite fails); else warns and returns false. */
export function need(bin: string, debianPackage: string, suite: string): boolean {
  if (hasBinary(bin)) return true;
  const msg = `${suite}: needs \`${bin}\` (Debian package ${debianPackage}: apt-get install -y ${debianPackage})`;
  if (CI) throw new Error(`${msg}; CI=true, so this fails instead of skipping`);
  console.warn(`SKIPPED ${msg}`);
  return false;
}

/** Folder of real public captures beside the repo, or null (tests skip with a message; under CI they fail). */
export function capturesDir(suite: string): string | null {
  const dir = join(import.meta.dirname, '..', '..', '..', 'shared', 'captures');
  if (existsSync(join(dir, 'README.md'))) return dir;
  const msg = `${suite}: ../shared/captures is absent, so the real-capture tests are skipped`;
  if (CI) throw new Error(`${msg}; CI=true, so this fails instead of skipping`);
  console.warn(`SKIPPED ${msg}`);
  return null;
}
