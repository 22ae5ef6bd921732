#!/usr/bin/env node
// `npm run build`: the WASM firmware (scripts/build-wasm.js) and the TypeScript sources compiled to
// dist/ (tsc -p tsconfig.build.json: scripts/cli.ts and everything it imports). Runs on `npm ci`
// (prepare), before `npm test` and `npm run bench`; skips each part that is newer than its sources.
//   --force     rebuild both
//   --no-check  emit without type checking (tests and benches; `npm run typecheck` checks)
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const dist = join(root, 'dist');
const stamp = join(dist, '.built');
const force = process.argv.includes('--force');
const sources = ['contract', 'gateway', 'aggregator', 'simulator', 'dashboards', 'firmware/host', 'scripts'];

function newest(path) {
  if (!existsSync(path)) return 0;
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let t = s.mtimeMs; // a deleted file changes its folder
  for (const e of readdirSync(path)) t = Math.max(t, newest(join(path, e)));
  return t;
}

let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  if (existsSync(stamp)) process.exit(0); // an installed package: built before it was packed
  console.error('build: TypeScript is not installed; a checkout needs its dev dependencies: npm ci (without --omit=dev)');
  process.exit(1);
}

execFileSync(process.execPath, [join(root, 'scripts', 'build-wasm.js'), ...(force ? ['--force'] : [])], { stdio: 'inherit', cwd: root });

const inputs = Math.max(...sources.map((d) => newest(join(root, d))), newest(join(root, 'tsconfig.json')), newest(join(root, 'tsconfig.build.json')));
if (!force && existsSync(stamp) && statSync(stamp).mtimeMs >= inputs) process.exit(0);
rmSync(dist, { recursive: true, force: true });
const args = ['-p', join(root, 'tsconfig.build.json'), ...(process.argv.includes('--no-check') ? ['--noCheck'] : [])];
try {
  execFileSync(process.execPath, [tsc, ...args], { stdio: 'inherit', cwd: root });
} catch {
  console.error('build: tsc failed (above)');
  process.exit(1);
}
writeFileSync(stamp, `${new Date().toISOString()}\n`);
