// `npm run bench`: runs every bench/*.ts (each exports `run()`), or only those named:
// `npm run bench -- firmware`. `--smoke`: each bench does a tiny run (BENCH_SMOKE=1), to prove it
// still runs; figures from a smoke run mean nothing. A bench that throws, sets a non-zero exit code
// or cannot run (a missing server) makes the whole run exit 1; a goal missed does not.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = import.meta.dirname;
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && f !== 'index.ts')
  .map((f) => f.slice(0, -3))
  .sort();
const args = process.argv.slice(2);
const wanted = args.filter((a) => !a.startsWith('-'));
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length > 0) {
  console.error(`bench: no bench named ${unknown.join(', ')}; available: ${all.join(', ')}`);
  process.exit(2);
}
if (args.includes('--smoke')) {
  process.env.BENCH_SMOKE = '1';
  process.env.BENCH_GATEWAY_SECONDS ??= '25'; // the gateway bench's steady state starts 15 s in
  process.env.BENCH_AGGREGATOR_WINDOWS ??= '2';
}
const failed: string[] = [];
for (const name of wanted.length > 0 ? wanted : all) {
  const mod = (await import(pathToFileURL(join(dir, `${name}.ts`)).href)) as { run?: () => Promise<void> };
  if (typeof mod.run !== 'function') {
    console.error(`bench: bench/${name}.ts exports no run() function`);
    failed.push(name);
    continue;
  }
  console.log(`\n== ${name}`);
  const t0 = performance.now();
  process.exitCode = 0;
  try {
    await mod.run();
    if (process.exitCode) failed.push(name);
  } catch (e) {
    console.error(`bench: ${name} failed: ${(e as Error).stack ?? e}`);
    failed.push(name);
  }
  if (process.env.BENCH_SMOKE) console.log(`bench: ${name} ran in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
if (failed.length > 0) console.error(`\nbench: FAILED to run: ${failed.join(', ')}`);
process.exitCode = failed.length > 0 ? 1 : 0;
