// Node's own options can put a process's memory in a file or in another process's hands:
// --heapsnapshot-signal writes a heap snapshot (every JavaScript string, a capture tool's stderr
// with the addresses it printed among them) into the working directory on a signal that anything
// able to signal the process can send (a capture command it started: same user); --report-on-signal
// writes a report with the environment (the broker password the capture commands are not given);
// --inspect opens a debugger. Given in NODE_OPTIONS (a unit's EnvironmentFile, a shell profile) or
// on node's command line, they were taken without a word: with --heapsnapshot-signal=SIGUSR2 a
// gateway whose capture command had printed an address on stderr wrote a snapshot holding it to its
// working directory on SIGUSR2. The commands that handle frames or sketches (gateway, doctor,
// replay, aggregator) refuse to start with any of them: one line naming the option and where it
// came from, one hint, exit 2, before reading anything.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryDumpOption } from '../scripts/lib/coredump.ts';
import { ROOT } from './gateway-support.ts';

const tmp = mkdtempSync(join(tmpdir(), 'presence-node-options-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs `node [nodeArgs] presence.js args` in a folder of its own; resolves with its exit code, output and the files it left. */
function run(nodeArgs: string[], args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; files: string[] }> {
  const cwd = mkdtempSync(join(tmp, 'run-'));
  const proc = spawn(process.execPath, [...nodeArgs, join(ROOT, 'scripts', 'presence.js'), ...args], {
    cwd,
    env: { ...process.env, NODE_OPTIONS: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  // A command that started after all (no refusal) is given the signal the option listens for, so
  // what it would write is looked for, then stopped.
  const started = setTimeout(() => proc.kill('SIGUSR2'), 8_000);
  const stop = setTimeout(() => proc.kill('SIGKILL'), 12_000);
  return new Promise((resolve) =>
    proc.once('exit', (code) => {
      clearTimeout(started);
      clearTimeout(stop);
      resolve({ code, out, files: readdirSync(cwd) });
    }),
  );
}

describe('node options that write memory to a file or open a debugger', () => {
  it('finds them on the command line and in NODE_OPTIONS, written as node takes them; others pass', () => {
    expect(memoryDumpOption([], '--heapsnapshot-signal=SIGUSR2')).toMatchObject({ option: '--heapsnapshot-signal', where: 'NODE_OPTIONS' });
    expect(memoryDumpOption([], '--max-old-space-size=64  --heapsnapshot_signal SIGUSR2')?.option).toBe('--heapsnapshot-signal');
    expect(memoryDumpOption(['--heapsnapshot-signal', 'SIGUSR2'], '')).toMatchObject({ option: '--heapsnapshot-signal', where: "node's command line" });
    expect(memoryDumpOption([], '"--heapsnapshot-near-heap-limit=2"')?.option).toBe('--heapsnapshot-near-heap-limit');
    for (const o of [
      '--report-on-signal',
      '--report-on-fatalerror',
      '--report-uncaught-exception',
      '--inspect',
      '--inspect=0.0.0.0:9229',
      '--inspect-brk',
      '--inspect-wait',
      '--inspect-brk-node=127.0.0.1:9229', // node's own debugging option: it opens the inspector too
    ])
      expect(memoryDumpOption([o], ''), o).not.toBeNull();
    // the systemd unit's own flags, --inspect-port alone (opens nothing) and a report signal alone
    expect(
      memoryDumpOption(['--max-semi-space-size=1', '--v8-pool-size=1', '--no-opt', '--optimize-for-size'], '--inspect-port=9230 --report-signal=SIGUSR2'),
    ).toBeNull();
  });

  it('presence gateway, doctor, replay and aggregator refuse to start with one: one line naming it and where it came from, a hint, exit 2, no file written', async () => {
    const gateway = (q: string) => [
      ...['gateway', '--site', 's', '--zone', 'z', '--id', 'g', '--source', 'cmd:exec sleep 600'],
      ...['--mqtt-url', 'mqtt://127.0.0.1:1', '--window', '1s', '--queue-dir', join(tmp, q)],
    ];
    const cases: Array<[string, string[], string[], NodeJS.ProcessEnv, RegExp]> = [
      [
        'gateway',
        [],
        gateway('q1'),
        { NODE_OPTIONS: '--heapsnapshot-signal=SIGUSR2' },
        /^presence gateway: node option --heapsnapshot-signal \(NODE_OPTIONS\) writes a heap snapshot/,
      ],
      [
        'gateway',
        ['--report-on-signal', '--report-signal=SIGUSR2'],
        gateway('q2'),
        {},
        /^presence gateway: node option --report-on-signal \(node's command line\) writes a diagnostic report/,
      ],
      [
        'doctor',
        [],
        ['doctor', '--source', 'cmd:exec sleep 600', '--frames-timeout', '1s'],
        { NODE_OPTIONS: '--heapsnapshot_signal=SIGUSR2' },
        /^presence doctor: node option --heapsnapshot-signal/,
      ],
      ['replay', ['--heapsnapshot-signal=SIGUSR2'], ['replay', '-'], {}, /^presence replay: node option --heapsnapshot-signal \(node's command line\)/],
      [
        'aggregator',
        [],
        ['aggregator', '--mqtt-url', 'mqtt://127.0.0.1:1', '--out', 'points.lp'],
        { NODE_OPTIONS: '--report-uncaught-exception --heapsnapshot-signal=SIGUSR2' },
        /^presence aggregator: node option --report-uncaught-exception \(NODE_OPTIONS\)/,
      ],
    ];
    const results = await Promise.all(cases.map(([, nodeArgs, args, env]) => run(nodeArgs, args, env)));
    cases.forEach(([name, , , , line], i) => {
      const r = results[i]!;
      expect(r.code, `${name}: ${r.out}`).toBe(2);
      const lines = r.out.trim().split('\n');
      expect(lines, name).toHaveLength(2);
      expect(lines[0], name).toMatch(line);
      expect(lines[1], name).toMatch(/^hint: remove --[a-z-]+ from (NODE_OPTIONS|node's command line)/);
      // NODE_OPTIONS may be shared with other programs: the hint says how to run without it
      if (lines[0]!.includes('(NODE_OPTIONS)'))
        expect(lines[1], name).toMatch(/env -u NODE_OPTIONS presence [a-z]+ \.\.\., a unit's UnsetEnvironment=NODE_OPTIONS/);
      expect(r.files, name).toEqual([]);
    });
  });
});
