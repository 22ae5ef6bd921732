// The package's root folder, the same from the TypeScript sources (`<root>/scripts/`) and from the
// compiled build (`<root>/dist/scripts/`): the nearest folder above this file that holds package.json.
// Files that ship beside the build (firmware/build/presence.wasm, simulator/scenarios/, package.json)
// are found from here.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

function packageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const PACKAGE_ROOT: string = packageRoot(join(import.meta.dirname, '..'));

/** A JSON file of the package, by its path from the package root, parsed; an unreadable or malformed one is named. */
export function packageJson<T>(path: string): T {
  const file = join(PACKAGE_ROOT, path);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}
