// A PATH for a process that must find mkfifo but no perl (gateway/sources.ts enlargePipe): a folder
// holding a link to mkfifo and nothing else. Used by the tests and the gateway bench.
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable } from '../../gateway/sources.ts';

/** Makes `dir` (if needed) with a link to this machine's mkfifo in it (when there is one), and returns it as a PATH. */
export function noPerlPath(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const mkfifo = findExecutable('mkfifo');
  if (mkfifo) symlinkSync(mkfifo, join(dir, 'mkfifo'));
  return dir;
}
