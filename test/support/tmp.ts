// vitest globalSetup: every temporary folder of a run lives under one folder of its own, removed when
// the run ends. The suites make their folders at collection time (a describe's body), which runs even
// when the describe is skipped or filtered out (`-t`) and its afterAll, which removes them, never runs;
// servers started by a suite write their own files there too. The workers and every process they
// start inherit TMPDIR, which os.tmpdir() reads.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'presence-test-'));
  // Enterable by every user (mkdtemp makes it 0700): suites run commands as the user nobody on
  // folders they open to it (gateway-password-file, secret-writes); each folder inside keeps its own mode.
  chmodSync(root, 0o755);
  process.env.TMPDIR = root;
  return () => rmSync(root, { recursive: true, force: true });
}
