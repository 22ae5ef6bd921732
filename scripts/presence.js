#!/usr/bin/env node
// The one CLI, `presence`: runs the compiled build in dist/ (`npm run build`; shipped in the package).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/scripts/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write(`presence: no compiled build at ${fileURLToPath(cli)}; in a checkout run npm ci (it builds) or npm run build\n`);
  process.exit(1);
}
const { main } = await import(cli.href);
await main(process.argv);
