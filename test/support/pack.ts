// `npm pack` of a checkout, one at a time on this machine. The package's prepack runs the build,
// which rewrites dist/ when a source changed, so two packs of one checkout at once
// (test/package.test.ts and the docs run of test/docs-run.test.ts, in parallel workers) could pack a
// dist/ the other is writing. flock (util-linux, in every Debian) holds a lock file around each.
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The command and arguments that pack the checkout (run it with the checkout as cwd) into `dest` and print npm's JSON report. */
export function packCommand(dest: string): [string, string[]] {
  return ['flock', [join(tmpdir(), 'presence-counter-pack.lock'), 'npm', 'pack', '--json', '--pack-destination', dest]];
}
