// vitest globalSetup: every temporary folder of a run lives under one folder of its own, removed when
// the run ends. The suites make their folders at collection time (a describe's body), which runs even
// when the describe is skipped or filtered out (`-t`) and its afterAll, which removes them, never runs;
// servers started by a suite write their own files there too. The workers and every process they
// start inherit TMPDIR, which os.tmpdir() reads.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The processes still running whose command line names `root` (a Mosquitto, influxd or VictoriaMetrics
 * started with its config or data folder there), outside this process. Linux /proc; none elsewhere.
 */
export function processesUnder(root: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(`${root}/`)) out.push(Number(e));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out;
}

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'presence-test-'));
  // Enterable by every user (mkdtemp makes it 0700): suites run commands as the user nobody on
  // folders they open to it (gateway-password-file, secret-writes); each folder inside keeps its own mode.
  chmodSync(root, 0o755);
  process.env.TMPDIR = root;
  return () => {
    // A server a suite left running would outlive the run, holding its port; it is named and stopped
    // before its folder goes (one Mosquitto after each full run was test/gateway-deploy.test.ts
    // starting its broker in two tests, see Mosquitto.start).
    const left = processesUnder(root);
    for (const pid of left) {
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      } catch {}
      try {
        process.kill(pid, 'SIGKILL');
        process.stderr.write(`test run: stopped a process a suite left running: ${pid} ${cmd}\n`);
      } catch {}
    }
    rmSync(root, { recursive: true, force: true });
  };
}
