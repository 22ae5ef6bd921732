// vitest globalSetup: tests that run `scripts/presence.js` run the compiled build, so bring dist/ (and
// the WASM) up to date with the sources first; skipped in a moment when nothing changed.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export default function setup(): void {
  const root = join(import.meta.dirname, '..', '..');
  execFileSync(process.execPath, [join(root, 'scripts', 'build.js'), '--no-check'], { cwd: root, stdio: 'inherit' });
}
