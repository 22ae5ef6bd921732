// Deployment: the systemd unit passes `systemd-analyze verify` (and a broken copy does not), the
// README's sample configuration is valid, and `presence doctor` runs for real on this machine:
// every step reports ok/warn/fail, anything not ok says what to fix, and nothing crashes.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../gateway/config.ts';
import { checkSwap } from '../gateway/doctor.ts';
import { serviceUserOf } from '../gateway/service-user.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { freePort } from './support/ports.ts';
import { ROOT, wifiCapture } from './gateway-support.ts';

const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const hasAnalyze = need('systemd-analyze', 'systemd', 'gateway systemd unit');

function verify(unitText: string): { code: number | null; out: string } {
  // The unit names /usr/bin/node; verify checks that the executable exists, so point it at this Node.
  const dir = mkdtempSync(join(tmp, 'unit-'));
  const path = join(dir, 'presence-gateway.service');
  writeFileSync(path, unitText.replace('/usr/bin/node', process.execPath));
  const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
  // Lines about other units (systemd's own) are not ours to judge.
  const out = `${r.stdout}${r.stderr}`
    .split('\n')
    .filter((l) => l.includes('presence-gateway'))
    .join('\n');
  return { code: r.status, out };
}

describe.skipIf(!hasAnalyze)('gateway systemd unit', () => {
  const unit = readFileSync(join(ROOT, 'gateway', 'presence-gateway.service'), 'utf8');
  it('passes systemd-analyze verify with no complaint', () => {
    const r = verify(unit);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
    expect(unit).toMatch(
      /^ExecStart=\/usr\/bin\/node (--[a-z0-9-]+(=\S+)? )*\/opt\/presence-counter\/scripts\/presence\.js gateway --config \/etc\/presence\/gateway\.yaml$/m,
    );
    expect(unit).toMatch(/^StateDirectory=presence-gateway$/m);
    expect(unit).toMatch(/^AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN$/m);
    // the service's pages (frames with addresses, the open window's hashes) never go to swap
    expect(unit).toMatch(/^MemorySwapMax=0$/m);
    // and no core dump of it
    expect(unit).toMatch(/^LimitCORE=0$/m);
  });
  it('the node it starts is the one the field guide tells to install (a Node elsewhere fails with 203/EXEC while doctor says OK)', () => {
    const node = /^ExecStart=(\S+)/m.exec(unit)![1]!;
    const guide = readFileSync(join(ROOT, 'docs', 'field-guide.md'), 'utf8');
    const step1 = guide.slice(guide.indexOf('## 1. Operating system'), guide.indexOf('## 2. Install presence-counter'));
    expect(step1).toContain(`The service (step 9) starts \`${node}\``);
    expect(step1).toContain(`ln -s "$(command -v node)" ${node}`);
  });
  it('a broken copy is caught (the check can fail)', () => {
    const r = verify(unit.replace('ProtectHome=yes', 'ProtectHome=sometimes').replace('[Service]', '[Service]\nRestartt=always'));
    expect(r.out).toMatch(/ProtectHome|Restartt/);
  });
});

describe('gateway systemd unit: node flags', () => {
  it("node takes the unit's node flags (a misspelt one would stop the gateway from starting)", () => {
    const exec = /^ExecStart=(.*)$/m.exec(readFileSync(join(ROOT, 'gateway', 'presence-gateway.service'), 'utf8'))![1]!.split(' ');
    const flags = exec.slice(
      1,
      exec.findIndex((w) => w.endsWith('presence.js')),
    );
    const r = spawnSync(process.execPath, [...flags, '-e', "process.stdout.write('ok')"], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok');
    // and a wrong one is refused by the same call (the check can fail)
    expect(spawnSync(process.execPath, ['--max-semi-space-sizes=1', '-e', ''], { encoding: 'utf8' }).status).not.toBe(0);
  });
  it('node knows the V8 flags the bin sets for `presence gateway` (v8.setFlagsFromString ignores an unknown one silently)', () => {
    const bin = readFileSync(join(ROOT, 'scripts', 'presence.js'), 'utf8');
    const flags = JSON.parse(/^const GATEWAY_V8_FLAGS = (\[.*\]);$/m.exec(bin)![1]!.replace(/'/g, '"')) as string[];
    expect(flags).toContain('--no-opt');
    const r = spawnSync(process.execPath, [...flags, '-e', "process.stdout.write('ok')"], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok');
  });
});

describe('gateway README', () => {
  it('has a sample configuration the schema accepts', () => {
    const readme = readFileSync(join(ROOT, 'gateway', 'README.md'), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)![1];
    const file = join(tmp, 'readme.yaml');
    writeFileSync(file, yaml);
    const cfg = loadConfig({ config: file }, {});
    expect(cfg.sources.map((s) => s.type)).toEqual(['command', 'command']);
    expect(cfg.queue.max_windows).toBe(100000);
  });
});

interface Check {
  step: string;
  level: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

function doctor(args: string[]): { code: number | null; results: Check[]; text: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'presence.js'), 'doctor', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 45_000 });
  let results: Check[] = [];
  if (args.includes('--json')) results = JSON.parse(r.stdout);
  return { code: r.status, results, text: r.stdout + r.stderr };
}

describe('presence doctor: swap', () => {
  const swaps = (lines: string[]) => {
    const path = join(mkdtempSync(join(tmp, 'swaps-')), 'swaps');
    // the kernel's format: a header, then one line per area, tab-separated after the padded name
    writeFileSync(path, ['Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority', ...lines, ''].join('\n'));
    return path;
  };
  it("warns, naming the area and the fix, while swap on a disk or SD card is on (it may hold pages of the gateway's memory); zram or none is OK", () => {
    // Raspberry Pi OS's dphys-swapfile, and a swap partition
    const on = checkSwap(
      swaps(['/var/swap                               file\t\t102396\t\t0\t\t-2', '/dev/sda2                               partition\t2097148\t\t0\t\t-3']),
    );
    expect(on).toMatchObject({ step: 'swap', level: 'warn' });
    expect(on.detail).toContain('swap is on (/var/swap, file; /dev/sda2, partition)');
    expect(on.detail).toContain('device addresses');
    expect(on.fix).toContain('sudo dphys-swapfile swapoff && sudo dphys-swapfile uninstall && sudo systemctl disable dphys-swapfile');
    expect(on.fix).toContain('sudo swapoff -a');
    // a file name with a space, as the kernel writes it
    expect(checkSwap(swaps(['/srv/my\\040swap                          file\t\t1024\t\t0\t\t-2'])).detail).toContain('(/srv/my swap, file)');
    // compressed RAM (Raspberry Pi OS since Trixie, zram-tools): not a disk
    expect(checkSwap(swaps(['/dev/zram0                              partition\t1015804\t\t0\t\t100']))).toMatchObject({
      level: 'ok',
      detail: 'swap in RAM only (/dev/zram0, zram)',
    });
    expect(checkSwap(swaps([]))).toMatchObject({ level: 'ok', detail: "no swap: the kernel writes none of the gateway's memory to disk" });
    expect(checkSwap(join(tmp, 'no-such-swaps'))).toMatchObject({ level: 'warn', detail: expect.stringContaining('cannot tell whether swap is on') });
  });
  it.skipIf(!existsSync('/proc/swaps'))("reads this machine's /proc/swaps as swapon does", () => {
    const real = checkSwap();
    const areas = readFileSync('/proc/swaps', 'utf8').trim().split('\n').length - 1;
    expect(real.level).toBe(areas === 0 || /^\/dev\/zram/m.test(readFileSync('/proc/swaps', 'utf8')) ? 'ok' : 'warn');
  });
});

describe.skipIf(!need('mosquitto', 'mosquitto', 'gateway doctor'))('presence doctor on this machine', () => {
  const broker = new Mosquitto();
  afterAll(() => broker.dispose());

  it('runs every step with a configuration, and says what to fix for what cannot pass here', async () => {
    await broker.start();
    const cap = wifiCapture(join(tmp, 'doc.pcap'), { devices: 2, startMs: Date.parse('2026-07-01T00:00:00Z'), durationMs: 2000, framesPerS: 10 });
    const cfgFile = join(tmp, 'doctor.yaml');
    writeFileSync(
      cfgFile,
      [
        'gateway: { site: doc, zone: z, id: g, window: 60s }',
        'sources:',
        // A monitor interface that does not exist here, a capture that writes frames, a file.
        '  - { type: command, name: wifi, command: "tcpdump -i wlan0mon -U -w -", restart_min: 1s }',
        `  - { type: command, name: sample, command: "cat ${cap.path}" }`,
        `  - { type: file, name: replay, path: ${cap.path} }`,
        `mqtt: { url: "${broker.url}" }`,
        `queue: { dir: ${join(tmp, 'doctor-queue')} }`,
      ].join('\n'),
    );
    const r = doctor(['--config', cfgFile, '--json', '--frames-timeout', '2s']);
    const by = (step: string) => r.results.find((c) => c.step === step);
    const steps = r.results.map((c) => c.step);
    for (const s of [
      'configuration',
      'node',
      'firmware',
      'monitor mode (wlan0mon)',
      'bluetooth adapter',
      'frames arriving (wifi)',
      'frames arriving (sample)',
      'frames arriving (replay)',
      'broker reachable',
      'clock synchronised',
      'swap',
      'queue folder',
    ])
      expect(steps, s).toContain(s);
    expect(by('configuration')!.level).toBe('ok');
    expect(by('firmware')!.level).toBe('ok');
    expect(by('broker reachable')!.level).toBe('ok');
    expect(by('queue folder')!.level).toBe('ok');
    expect(by('frames arriving (sample)')).toMatchObject({ level: 'ok', detail: expect.stringMatching(/^20 frames/) });
    expect(by('frames arriving (replay)')!.level).toBe('ok');
    // This machine has no wlan0mon: a failure with the fix, not a crash.
    expect(by('monitor mode (wlan0mon)')).toMatchObject({ level: 'fail', fix: expect.stringMatching(/monitor/) });
    expect(by('frames arriving (wifi)')!.level).toBe('fail');
    for (const c of r.results) {
      expect(['ok', 'warn', 'fail']).toContain(c.level);
      if (c.level !== 'ok') expect(c.fix, c.step).toBeTruthy();
    }
    expect(r.code).toBe(1);
  });

  it('without a configuration checks the machine; an unreachable broker and a bad config are named', async () => {
    const plain = doctor([]);
    expect(plain.text).toMatch(/\[(WARN|FAIL| OK )\] configuration/);
    expect(plain.text).toMatch(/clock synchronised/);
    expect(plain.text).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    const port = await freePort();
    const down = doctor([
      '--json',
      '--site',
      's',
      '--zone',
      'z',
      '--id',
      'g',
      '--mqtt-url',
      `mqtt://127.0.0.1:${port}`,
      '--source',
      'stdin',
      '--frames-timeout',
      '1s',
    ]);
    expect(down.results.find((c) => c.step === 'broker reachable')).toMatchObject({ level: 'fail', fix: expect.stringMatching(/start the broker|port/) });
    const bad = doctor(['--json', '--site', 'S S', '--zone', 'z', '--id', 'g', '--mqtt-url', 'mqtt://x', '--source', 'stdin', '--window', 'long']);
    const cfg = bad.results.find((c) => c.step === 'configuration')!;
    expect(cfg.level).toBe('fail');
    expect(cfg.detail).toMatch(/--site \(gateway\.site\): must be lower case/);
    expect(cfg.detail).toMatch(/--window \(gateway\.window\): must be a duration like 250ms, 60s, 15m, 1h30m or 7d \(got "long"\)/);
  });

  it('checks the queue folder the service uses: without queue.dir it warns that the unit uses its StateDirectory, not the folder of the shell that runs doctor', async () => {
    await broker.start();
    const unit = readFileSync(join(ROOT, 'gateway', 'presence-gateway.service'), 'utf8');
    const unitDir = `/var/lib/${/^StateDirectory=(\S+)$/m.exec(unit)![1]}`;
    const home = mkdtempSync(join(tmp, 'home-'));
    const args = ['doctor', '--json', '--site', 'doc', '--zone', 'z', '--id', 'g', '--mqtt-url', broker.url, '--source', 'stdin'];
    const run = (env: NodeJS.ProcessEnv) => {
      const { STATE_DIRECTORY: _s, XDG_STATE_HOME: _x, ...rest } = process.env;
      const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'presence.js'), ...args], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 45_000,
        env: { ...rest, HOME: home, ...env },
      });
      return (JSON.parse(r.stdout) as Check[]).find((c) => c.step === 'queue folder')!;
    };
    // From a shell, as the field guide runs it: the home folder is all doctor can see, and it says so.
    const shell = run({});
    expect(shell.level).toBe('warn');
    expect(shell.detail).toContain(`under the systemd unit the gateway uses ${unitDir} ($STATE_DIRECTORY)`);
    expect(shell.detail).toContain(join(home, '.local', 'state', 'presence', 'gateway-doc-g'));
    expect(shell.fix).toBe(`set queue.dir: ${unitDir} in the configuration (the unit's StateDirectory), so that doctor checks the folder the service uses`);
    // As the unit starts it ($STATE_DIRECTORY), or with queue.dir: that folder, OK.
    const state = mkdtempSync(join(tmp, 'state-'));
    expect(run({ STATE_DIRECTORY: state })).toMatchObject({ level: 'ok', detail: `${state} is writable (fsync works); 0 windows queued` });
    // A gateway upgraded from a version that queued one level down goes on with that folder (nothing stranded).
    const earlier = join(state, 'gateway-doc-g', 'windows');
    mkdirSync(earlier, { recursive: true });
    writeFileSync(join(earlier, '000000000007.json'), '{}');
    expect(run({ STATE_DIRECTORY: state })).toMatchObject({
      level: 'ok',
      detail: `${join(state, 'gateway-doc-g')} is writable (fsync works); 1 windows queued`,
    });
    // The field guide's configuration names the unit's folder.
    const guide = readFileSync(join(ROOT, 'docs', 'field-guide.md'), 'utf8');
    const yaml = /```yaml file=\/etc\/presence\/gateway\.yaml\n([\s\S]*?)```/.exec(guide)![1]!;
    const file = join(tmp, 'guide.yaml');
    writeFileSync(file, yaml);
    expect(loadConfig({ config: file }, {}).queue.dir).toBe(unitDir);
  });
});

describe('the service user, from the unit the package ships', () => {
  // Where no unit is installed in /etc/systemd/system, the shipped one names the user. Its path was
  // taken two folders above the module, right from dist/gateway/ but outside the package from the
  // sources (as tests and tsx run them), so there it found no unit and said no service user.
  it.skipIf(existsSync('/etc/systemd/system/presence-gateway.service'))('is presence for the config the unit names, and none for another file', () => {
    expect(serviceUserOf('/etc/presence/gateway.yaml')).toBe('presence');
    expect(serviceUserOf(join(tmp, 'gateway.yaml'))).toBeNull();
  });
});
