// The runnable examples at the top of the gateway and aggregator READMEs run as written, against a
// real Mosquitto: the block is taken from the README and run by bash, with only what is
// machine-specific replaced (the broker the example starts on 1883 is this suite's Mosquitto on a
// free port, /tmp/ is a temp folder, `npx presence` the checkout's CLI, the aggregator's 9464 a free
// port); the contract's and the firmware's examples print what their READMEs say. The other docs'
// shell blocks are run by test/docs-run.test.ts.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { freePort } from './support/ports.ts';

const SUITE = 'README examples';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('mosquitto_sub', 'mosquitto-clients', SUITE);
const ROOT = join(import.meta.dirname, '..');

/** The sh block right after "Runnable example" in a README. */
function example(readme: string): string {
  const text = readFileSync(join(ROOT, readme), 'utf8');
  const m = /Runnable example[^\n]*\n\n```sh\n([\s\S]*?)```/.exec(text);
  if (!m) throw new Error(`${readme}: no sh block after "Runnable example"`);
  return m[1]!;
}

describe.skipIf(!ok)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-readme-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** Runs a README block with bash; background jobs are stopped when it ends. */
  async function run(block: string, httpPort: number): Promise<string> {
    const lines = block.split('\n').filter((l) => !/^\s*mosquitto -p 1883 -d\b/.test(l));
    const script = [
      'set -e',
      "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
      ...lines.map((l) =>
        l
          .replaceAll('npx presence aggregator', `npx presence aggregator --http-port ${httpPort}`)
          .replaceAll('1883', String(broker.port))
          .replaceAll('9464', String(httpPort))
          .replaceAll('/tmp/', `${tmp}/`)
          // last: the checkout's own path (which may be below /tmp/) is not rewritten
          .replaceAll('npx presence', `node ${join(ROOT, 'scripts', 'presence.js')}`),
      ),
    ].join('\n');
    return new Promise((resolve, reject) =>
      execFile('bash', ['-c', script], { cwd: tmp, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      ),
    );
  }

  it('gateway/README.md: the counts of a simulated capture reach the broker', async () => {
    const out = await run(example('gateway/README.md'), await freePort());
    const counts = out.split('\n').filter((l) => l.startsWith('presence/v1/demo/gw-lobby/counts {'));
    expect(counts.length, out).toBeGreaterThanOrEqual(5);
    expect(JSON.parse(counts[0]!.slice(counts[0]!.indexOf(' ') + 1))).toMatchObject({ site: 'demo', zone: 'lobby', gateway: 'gw-lobby' });
  }, 180_000);

  it('aggregator/README.md: 200 load messages become 400 points in the file and on /metrics', async () => {
    const out = await run(example('aggregator/README.md'), await freePort());
    expect(out).toMatch(/^(presence|gateway_status),\S+ \S+ \d+$/m); // head -3: line protocol
    expect(out).toContain('presence_aggregator_points_written_total{measurement="presence"} 400');
  }, 180_000);
});

const bash = (script: string) =>
  new Promise<string>((resolve, reject) =>
    execFile('bash', ['-c', script], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );

describe('README examples without a broker', () => {
  it('contract/README.md: the example prints what the README says', async () => {
    const text = readFileSync(join(ROOT, 'contract/README.md'), 'utf8');
    const m = /## Example\n\n```sh\n([\s\S]*?)```\n\nprints\n\n```\n([\s\S]*?)```/.exec(text);
    expect(m, 'the example and its output in contract/README.md').not.toBeNull();
    expect(await bash(m![1]!)).toBe(m![2]);
  });

  const capture = join(ROOT, '..', 'shared', 'captures', 'wifi', 'n-02.cap');
  if (!existsSync(capture)) console.warn(`README examples: ${capture} is absent (public captures beside the repo); the firmware example is skipped`);
  it.skipIf(!existsSync(capture))('firmware/README.md: replaying the capture prints the counts the README shows', async () => {
    const text = readFileSync(join(ROOT, 'firmware/README.md'), 'utf8');
    const block = /Build it and count a capture with it[\s\S]*?```sh\n([\s\S]*?)```/.exec(text)![1]!;
    const command = block.split('\n').find((l) => l.startsWith('node scripts/presence.js replay'))!;
    const expected = block
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .map((l) => l.replace(/^#\s*/, ''))
      .join('');
    const out = (await bash(command)).trim();
    let at = 0;
    for (const part of expected.split('...')) {
      const i = out.indexOf(part, at);
      expect(i, `"${part}" in ${out}`).toBeGreaterThanOrEqual(at);
      at = i + part.length;
    }
  });
});
