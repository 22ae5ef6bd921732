#!/usr/bin/env node
// Compiles firmware/assembly (AssemblyScript) to firmware/build/presence.wasm.
// Runs on install and before tests and benchmarks; skips when the build is newer than every source.
import { readdirSync, statSync, mkdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'firmware', 'assembly');
const out = join(root, 'firmware', 'build', 'presence.wasm');

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

if (!existsSync(join(src, 'index.ts'))) process.exit(0);
if (existsSync(out) && statSync(out).mtimeMs >= newest(src) && !process.argv.includes('--force')) process.exit(0);
mkdirSync(dirname(out), { recursive: true });
const asc = join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
execFileSync(
  process.execPath,
  [asc, join(src, 'index.ts'), '--config', join(root, 'firmware', 'asconfig.json'), '--target', 'release', '-o', out, '-t', out.replace(/\.wasm$/, '.wat')],
  { stdio: 'inherit', cwd: root },
);
