// Folders made one mkdir(2) at a time (gateway queue, doctor, presence provision, the aggregator's file output).
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Makes a folder and the missing ones above it, one mkdir(2) each. Not mkdirSync's `recursive`:
 * under /proc or /sys (a path mistyped there) it retries for ever, mkdir(2) saying ENOENT
 * for the folder and EEXIST for its parent. A file on the way is named as one.
 */
export function makeFolders(dir: string, mode = 0o777): void {
  const missing: string[] = [];
  for (let p = dir; ; p = dirname(p)) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(p) === p) throw e;
      missing.unshift(p);
      continue;
    }
    if (!st.isDirectory()) throw Object.assign(new Error(`${p} is a file, not a folder`), { code: 'ENOTDIR' });
    break;
  }
  for (const m of missing)
    try {
      mkdirSync(m, mode);
    } catch (e) {
      // made meanwhile (two gateways starting on one folder: the lock sorts them out)
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(m).isDirectory()) throw e;
    }
}
