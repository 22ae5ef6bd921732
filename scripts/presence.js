#!/usr/bin/env node
// The one CLI, `presence`: runs the compiled build in dist/ (`npm run build`; shipped in the package).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The oldest Node the build runs on is package.json's engines.node (">=20.12.0": node:crypto's hash,
// import.meta.dirname). npm only warns when it installs on an
// older one, where every command would then stop with a SyntaxError or TypeError from deep inside
// the build: say so here instead, in one line, with the fix.
const minimum = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).engines.node);
if (minimum) {
  const have = process.versions.node.split('.').map(Number);
  const need = minimum.slice(1).map((n) => Number(n ?? 0));
  const older = have[0] !== need[0] ? have[0] < need[0] : have[1] !== need[1] ? have[1] < need[1] : have[2] < need[2];
  if (older) {
    process.stderr.write(
      `presence: needs Node ${need.join('.')} or newer; ${process.execPath} is ${process.versions.node}: install a newer Node (docs/field-guide.md, step 1)\n`,
    );
    process.exit(1);
  }
}

// `presence gateway` runs for months on small boards (a Pi Zero 2 has 512 MB): before anything is
// loaded, two V8 settings that V8 reads while running (not only when node starts) are set for it:
// --no-opt: no optimising compiler (TurboFan): start-up's module loading and config validation made
//   it compile a few dozen functions, whose compiler code (paged in from the node binary) and
//   worker-thread memory stayed resident, ~9 MB of an idle gateway. The per-frame work is the WASM
//   module's (its compiler is apart from this flag); `npm run bench -- gateway` measures the CPU.
// --semi-space-growth-factor=1: the young generation keeps its 1 MB semi-spaces instead of
//   doubling to 8 MB during start-up (the effect of the systemd unit's --max-semi-space-size=1,
//   which only works on node's command line).
// Flags given to node itself (command line or NODE_OPTIONS) win: a flag named there is not set.
// Flags that only take effect when node starts (--max-semi-space-size, --v8-pool-size) stay on the
// unit's command line (gateway/presence-gateway.service). bench/startup.ts measures both ways.
const GATEWAY_V8_FLAGS = ['--no-opt', '--semi-space-growth-factor=1'];

// SIGUSR1 would start Node's inspector on 127.0.0.1:9229, through which any local user could run
// code in this process and read its memory (a window's hashes and key state, frames on their way to
// the firmware, a corridor group's secret). Anyone able to signal the process could open it: a
// capture command it started, which parses radio frames and runs as the same user, for one.
// With a listener of its own Node does not start the inspector; the signal is ignored.
process.on('SIGUSR1', () => {});

const command = process.argv.slice(2).find((a) => !a.startsWith('-'));
if (command === 'gateway') {
  const { setFlagsFromString } = await import('node:v8'); // (only here: --version stays as small as it was)
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map(flagName);
  for (const flag of GATEWAY_V8_FLAGS) if (!given.includes(flagName(flag))) setFlagsFromString(flag);
}

/** '--no-opt' and '--opt' -> 'opt'; '--semi-space-growth-factor=1' -> 'semi_space_growth_factor'. */
function flagName(flag) {
  return flag.replace(/^--/, '').replace(/=.*$/, '').replace(/^no-/, '').replace(/-/g, '_');
}

const cli = new URL('../dist/scripts/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write(`presence: no compiled build at ${fileURLToPath(cli)}; in a checkout run npm ci (it builds) or npm run build\n`);
  process.exit(1);
}
const { main } = await import(cli.href);
await main(process.argv);
