// Privacy: the aggregator writes no core dump. An aggregator of a corridor group holds the gateways'
// noisy sketches for minutes (PRIVACY.md: "never written to InfluxDB, a file or a log"), and every
// aggregator its broker and database credentials; a crash with core dumps enabled (ulimit -c,
// systemd-coredump) would write them to disk. `presence aggregator` sets its core file size limit
// to 0 and /proc/self/coredump_filter to 0, as the gateway does (test/gateway-coredump.test.ts).
// The real process is checked while it holds sketches, and where the kernel writes core files into
// the working folder a real SIGABRT writes none; a control core of a plain node process holding the
// same sketches shows cores are written here and that the search finds the sketches in one.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishAll, publisher, until } from './aggregator-helpers.ts';
import { corridorRun, sketchItem } from './support/corridor.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { freePort } from './support/ports.ts';

const ROOT = join(import.meta.dirname, '..');
const linux = existsSync('/proc/self/coredump_filter');
const pattern = linux ? readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim() : '';
const plainCores = /^core$/.test(pattern) && spawnSync('/bin/sh', ['-c', 'ulimit -c unlimited'], { stdio: 'ignore' }).status === 0;
const cores = (dir: string) => readdirSync(dir).filter((f) => /^core(\.\d+)?$/.test(f));

/** A process started through sh with core dumps allowed, in its own folder; its output kept. */
function withCores(dir: string, argv: string[]) {
  const proc = spawn('/bin/sh', ['-c', 'ulimit -c unlimited 2>/dev/null; exec "$@"', 'sh', ...argv], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stderr!.on('data', (d) => (out += d));
  proc.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return { proc, output: () => out, exited };
}

/** How many of the sketches (their bitmap bytes, or their base64 text) a core file holds. */
function sketchesIn(file: string, sketches: { bits: string }[]): number {
  const blob = readFileSync(file);
  return sketches.filter((s) => blob.includes(Buffer.from(s.bits, 'base64')) || blob.includes(Buffer.from(s.bits))).length;
}

describe.skipIf(!linux)('aggregator core dumps', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'presence-agg-core-'));
  const broker = new Mosquitto();
  beforeAll(() => broker.start());
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });
  // six sketches of the previous hour: not due for minutes, so the aggregator holds them all
  const start = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
  const run = corridorRun({ site: 'corridor', group: 'main-street', startMs: start, windows: 3, label: 'core' });

  it('the aggregator dumps no core while it holds corridor sketches: core file size limit 0 and coredump_filter 0, and SIGABRT writes no core file', async () => {
    const dir = mkdtempSync(join(tmp, 'agg-'));
    const port = await freePort();
    const config = join(dir, 'aggregator.yaml');
    writeFileSync(
      config,
      [
        'aggregator:',
        `  mqtt: { url: "${broker.url}", client_id: agg-core }`,
        `  out: ${join(dir, 'points.lp')}`,
        `  http: { port: ${port}, host: 127.0.0.1 }`,
        '  corridors:',
        '    - { group: main-street, site: corridor, members: [gw-a, gw-b], horizon: 10m }',
        '',
      ].join('\n'),
    );
    const agg = withCores(dir, [process.execPath, join(ROOT, 'scripts', 'presence.js'), 'aggregator', '--config', config]);
    try {
      await until(
        'the corridor link subscribed',
        () => agg.output(),
        (o) => o.includes('corridor link subscribed'),
      );
      const pub = await publisher(broker.url);
      await publishAll(pub, run.messages.map(sketchItem), 10);
      await pub.endAsync();
      await until(
        'every sketch held',
        async () => {
          const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
          return Number(/^presence_aggregator_sketches_held (\S+)$/m.exec(text)?.[1]);
        },
        (n) => n === run.messages.length,
      );
      expect(readFileSync(`/proc/${agg.proc.pid}/coredump_filter`, 'utf8').trim()).toBe('00000000');
      expect(readFileSync(`/proc/${agg.proc.pid}/limits`, 'utf8')).toMatch(/^Max core file size\s+0\s+0\s+bytes\s*$/m);
      agg.proc.kill('SIGABRT');
      await agg.exited;
    } finally {
      agg.proc.kill('SIGKILL');
    }
    if (!plainCores) {
      console.warn(`aggregator core dumps: core_pattern is ${JSON.stringify(pattern)} (or ulimit -c cannot be raised): only the core settings were checked`);
      return;
    }
    expect(cores(dir)).toEqual([]);
  });

  it.skipIf(!plainCores)('control: the core of a node process holding the same sketches has them (the search finds them)', async () => {
    const dir = mkdtempSync(join(tmp, 'control-'));
    const held = join(dir, 'sketches.json');
    writeFileSync(held, JSON.stringify(run.messages.map((m) => m.bits)));
    const holder = withCores(dir, [
      process.execPath,
      '-e',
      `globalThis.keep = JSON.parse(require('node:fs').readFileSync(${JSON.stringify(held)}, 'utf8')).map((b) => Buffer.from(b, 'base64')); console.log('holding'); setInterval(() => {}, 1000);`,
    ]);
    await until(
      'the sketches held',
      () => holder.output(),
      (o) => o.includes('holding'),
    );
    holder.proc.kill('SIGABRT');
    await holder.exited;
    rmSync(held);
    const written = cores(dir);
    expect(written.length).toBe(1);
    expect(sketchesIn(join(dir, written[0]!), run.messages)).toBe(run.messages.length);
  });
});
