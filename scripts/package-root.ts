// The package's root folder, the same from the TypeScript sources (`<root>/scripts/`) and from the
// compiled build (`<root>/dist/scripts/`): the nearest folder above this file that holds package.json.
// Files that ship beside the build (firmware/build/presence.wasm, simulator/scenarios/, package.json)
// are found from here.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function packageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const PACKAGE_ROOT: string = packageRoot(join(import.meta.dirname, '..'));
