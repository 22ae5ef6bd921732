// Files a person names (a scenario, a calibration) are read whole; these checks come first, so a
// wrong path fails at once with a sentence instead of hanging on a fifo or filling memory from a
// device or a huge file. (Config and secret files have their own, same checks in config-loader.ts
// and secrets.ts.)
import { readFileSync, statSync } from 'node:fs';

/** 1.9 MiB, 64 KiB. */
const size = (bytes: number) => (bytes >= 2 ** 20 ? `${+(bytes / 2 ** 20).toFixed(1)} MiB` : `${+(bytes / 1024).toFixed(1)} KiB`);

/** What is wrong with a path that should be a regular file of at most maxBytes, or null. */
export function smallFileProblem(path: string, maxBytes: number): string | null {
  const st = statSync(path);
  if (st.isDirectory()) return 'is a folder, not a file';
  if (!st.isFile()) return `is not a regular file (${st.isFIFO() ? 'a fifo' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'a socket'})`;
  if (st.size > maxBytes) return `is ${size(st.size)}; at most ${size(maxBytes)} is read`;
  return null;
}

/** The bytes of a small regular file; throws an Error whose message is the problem (fs errors as they are). */
export function readSmallFileBytes(path: string, maxBytes: number): Buffer {
  const problem = smallFileProblem(path, maxBytes);
  if (problem) throw Object.assign(new Error(problem), { code: 'ESMALLFILE' });
  return readFileSync(path);
}

/** The text (UTF-8) of a small regular file; throws as readSmallFileBytes does. */
export function readSmallFile(path: string, maxBytes: number): string {
  return readSmallFileBytes(path, maxBytes).toString('utf8');
}
