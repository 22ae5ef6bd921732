#!/usr/bin/env node
// `npm run build`: the WASM firmware (scripts/build-wasm.js) and the TypeScript sources compiled to
// dist/ (tsc -p tsconfig.build.json: scripts/cli.ts and everything it imports). Runs on `npm ci`
// (preprepare: see the README's "Build and package"), on `npm pack` (prepack), before `npm start`,
// `npm test` and `npm run bench`; skips each part that is newer than its sources.
// Reports on stderr only: `npm pack --json` owns stdout.
//   --force     rebuild both
//   --no-check  emit without type checking (tests and benches; `npm run typecheck` checks)
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');
const stamp = join(dist, '.built');
const force = process.argv.includes('--force');
// What tsc may compile: every .ts file and every .json file below the root (at the root only the
// tsconfig files: package.json and the lockfile npm-shrinkwrap.json are no input),
// outside these folders (firmware/assembly included: the host imports its ABI layout).
const SKIP = new Set(['node_modules', 'dist', 'test', 'bench', 'docs', 'presence-demo', 'sim-out', 'out', 'tmp']);
const SKIP_PATHS = new Set([join(root, 'firmware', 'build')]);

/** Newest modification time and number of the inputs (a deleted file changes the number). */
function inputs(dir, acc = { newest: 0, count: 0 }) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIP.has(e.name) && !e.name.startsWith('.') && !e.name.startsWith('dist.') && !SKIP_PATHS.has(p)) inputs(p, acc);
    } else if (e.name.endsWith('.ts') || (e.name.endsWith('.json') && (dir !== root || e.name.startsWith('tsconfig')))) {
      acc.newest = Math.max(acc.newest, statSync(p).mtimeMs);
      acc.count++;
    }
  }
  return acc;
}

if (!existsSync(join(root, 'scripts', 'cli.ts'))) {
  if (existsSync(stamp)) process.exit(0); // an installed package: built before it was packed
  console.error(`build: neither sources nor a build in ${root}`);
  process.exit(1);
}
let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  console.error('build: TypeScript is not installed; a checkout needs its dev dependencies: npm ci (without --omit=dev)');
  process.exit(1);
}

execFileSync(process.execPath, [join(root, 'scripts', 'build-wasm.js'), ...(force ? ['--force'] : [])], { stdio: ['ignore', 2, 2], cwd: root });

const now = inputs(root);
const built = existsSync(stamp) ? { at: statSync(stamp).mtimeMs, count: Number(readFileSync(stamp, 'utf8').split(' ')[1]) } : null;
if (!force && built && built.at >= now.newest && built.count === now.count) process.exit(0);
console.error(`build: compiling TypeScript to dist/${process.argv.includes('--no-check') ? ' (without type checking)' : ''}`);
// Compiled beside dist/, then swapped in: a `presence` started meanwhile (a test, a bench) finds the
// old build whole, and files of deleted sources do not linger.
const next = `${dist}.next-${process.pid}`;
const args = ['-p', join(root, 'tsconfig.build.json'), '--outDir', next, ...(process.argv.includes('--no-check') ? ['--noCheck'] : [])];
try {
  execFileSync(process.execPath, [tsc, ...args], { stdio: ['ignore', 2, 2], cwd: root });
} catch {
  rmSync(next, { recursive: true, force: true });
  console.error('build: tsc failed (above)');
  process.exit(1);
}
writeFileSync(join(next, '.built'), `${new Date().toISOString()} ${now.count}\n`);
const old = `${dist}.old-${process.pid}`;
if (existsSync(dist)) renameSync(dist, old);
renameSync(next, dist);
rmSync(old, { recursive: true, force: true });
