#!/usr/bin/env node
// `npm pack` around the tarball (package.json's prepack and postpack):
//   prepack   brings the build up to date (scripts/build.js), copies package-lock.json to
//             npm-shrinkwrap.json (the package's lockfile) and takes `prepare` out of package.json,
//             keeping the file as it was in package.json.packing;
//   postpack  puts package.json back from package.json.packing and removes npm-shrinkwrap.json.
// `prepare` builds a checkout on `npm ci`; the package is built already, and npm lists a `prepare`
// in a package installed from a tarball (`npm install ./presence-counter-0.1.0.tgz`) as an install
// script to approve (`npm warn install-scripts ... not yet covered by allowScripts`), so the packed
// package.json has none. npm reads package.json again after prepack, so it packs the file without
// `prepare` and runs no `prepare` itself (hence the build here). package.json is replaced by a
// rename both ways: a command reading it meanwhile (the tests run `presence` while one of them
// packs) finds it whole. Reports on stderr only: `npm pack --json` owns stdout.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const manifest = join(root, 'package.json');
const kept = join(root, 'package.json.packing');
const shrinkwrap = join(root, 'npm-shrinkwrap.json');
const step = process.argv[2];

if (step === 'prepack') {
  if (existsSync(kept)) {
    console.error(
      `pack: ${kept} is left from an npm pack that did not finish: it holds package.json as it was; put it back (mv package.json.packing package.json) or remove it, then pack again`,
    );
    process.exit(1);
  }
  execFileSync(process.execPath, [join(root, 'scripts', 'build.js')], { stdio: ['ignore', 2, 2], cwd: root });
  copyFileSync(join(root, 'package-lock.json'), shrinkwrap);
  const text = readFileSync(manifest, 'utf8');
  const pkg = JSON.parse(text);
  delete pkg.scripts.prepare;
  copyFileSync(manifest, kept);
  writeFileSync(`${manifest}.next`, `${JSON.stringify(pkg, null, 2)}\n`);
  renameSync(`${manifest}.next`, manifest);
} else if (step === 'postpack') {
  if (existsSync(kept)) renameSync(kept, manifest);
  rmSync(shrinkwrap, { force: true });
} else {
  console.error('usage: node scripts/pack.js prepack|postpack (npm pack runs both)');
  process.exit(2);
}
