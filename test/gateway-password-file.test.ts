// The broker password file as a gateway service reads it: the service runs as its own user
// (presence under systemd), the password file is installed by root. Against a real Mosquitto with
// the shipped ACL and a provisioned credential, the gateway run as the user nobody (setpriv):
// - a root-owned file of mode 0640 in the gateway user's group (how docs/deployment.md installs the
//   services' secrets) is read and used without a warning whose `chmod 600` would lock it out;
// - a root-owned file of mode 0600 (an `scp` as root) stops the start before anything runs: one
//   line naming the config file, the key, the path and the chown that fixes it, a hint, exit 2;
// - a password file that does not exist does the same, naming where the path came from.
// Root reads every file, so only another user shows this; where that cannot be done the suite says why and skips.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionGateway } from '../aggregator/provision.ts';
import { countsTopic, siteFilter, statusTopic } from '../contract/index.ts';
import { ROOT, subscriber, waitFor, wifiCapture } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const SUITE = 'gateway password file read by the service user';
const NOBODY = 65534;
const asNobody = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
const PRESENCE = join(ROOT, 'scripts', 'presence.js');

function why(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (to run the gateway as the user nobody)';
  const probe = spawnSync('setpriv', [...asNobody, process.execPath, PRESENCE, '--version'], { encoding: 'utf8' });
  if (probe.error) return `needs setpriv (util-linux): ${probe.error.message}`;
  if (probe.status !== 0) return `the user nobody cannot run this checkout (${probe.stderr.trim().split('\n')[0]})`;
  return null;
}
const ok = need('mosquitto', 'mosquitto', SUITE) && need('mosquitto_passwd', 'mosquitto', SUITE);
const reason = ok ? why() : 'no mosquitto';
if (ok && reason) console.warn(`${SUITE}: skipped: ${reason}`);

describe.skipIf(reason !== null)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-gw-pwfile-'));
  chmodSync(dir, 0o755);
  const passwd = join(dir, 'passwd');
  const etc = join(dir, 'etc');
  const broker = new Mosquitto({
    listenerConfig: (port) =>
      `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${join(ROOT, 'docs/mosquitto/presence.acl')}\n`,
  });
  const password = () => readFileSync(join(dir, 'dam.pw'), 'utf8');
  beforeAll(async () => {
    execFileSync('mosquitto_passwd', ['-b', '-c', passwd, 'aggregator', 'agg-pw']);
    provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plein-1', passwordFile: passwd, secretOut: join(dir, 'dam.pw') });
    // /etc/presence as the field guide makes it: root's, readable by the service's group.
    mkdirSync(etc, { mode: 0o750 });
    chownSync(etc, 0, NOBODY);
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A config file of the gateway (root's, mode 0640, the service's group) with this password file, and a queue folder the service owns. */
  function setUp(name: string, pwFile: string): { config: string; queue: string } {
    const cap = wifiCapture(join(dir, `${name}.pcap`), { devices: 3, startMs: Date.parse('2026-04-01T08:00:00Z'), durationMs: 2_000, framesPerS: 20 });
    chmodSync(cap.path, 0o644);
    const queue = join(dir, `q-${name}`);
    mkdirSync(queue);
    chownSync(queue, NOBODY, NOBODY);
    const config = join(etc, `${name}.yaml`);
    writeFileSync(
      config,
      [
        'gateway: { site: dam, zone: plein, id: gw-plein-1, window: 1s }',
        `sources: [{ name: wifi, type: file, path: ${cap.path}, speed: max }]`,
        `mqtt: { url: "${broker.url}", username: dam/gw-plein-1, password_file: ${pwFile} }`,
        `queue: { dir: ${queue} }`,
        '',
      ].join('\n'),
    );
    chmodSync(config, 0o640);
    chownSync(config, 0, NOBODY);
    return { config, queue };
  }

  /** `presence gateway` as the user nobody, to its end (a file source at full speed). */
  function gatewayAsNobody(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
    const proc = spawn('setpriv', [...asNobody, process.execPath, PRESENCE, 'gateway', ...args], {
      cwd: dir,
      env: { ...process.env, HOME: dir, LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stdout!.on('data', (d) => (stderr += d));
    proc.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 40_000);
    return new Promise((resolve) =>
      proc.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr });
      }),
    );
  }

  it('a root-owned password file of mode 0640 in its group is read and used, without a warning to chmod 600 (which would lock it out)', async () => {
    const pw = join(etc, 'mqtt-password');
    writeFileSync(pw, password(), { mode: 0o640 });
    chmodSync(pw, 0o640);
    chownSync(pw, 0, NOBODY);
    const { config } = setUp('group', pw);
    const sub = await subscriber(broker.url, { username: 'aggregator', password: 'agg-pw', filter: siteFilter('dam') });
    try {
      const run = await gatewayAsNobody(['--config', config]);
      expect(run.code, run.stderr.slice(-1500)).toBe(0);
      expect(run.stderr).not.toMatch(/warning|chmod/);
      const of = (topic: string) => sub.messages.filter((m) => m.topic === topic).map((m) => JSON.parse(m.payload.toString()));
      await waitFor(() => of(statusTopic('dam', 'gw-plein-1')).some((s) => s.state === 'offline'), 20_000, 'the final offline status');
      expect(of(countsTopic('dam', 'gw-plein-1')).reduce((n, c) => n + c.wifi.frames, 0)).toBe(40);
    } finally {
      await sub.client.endAsync();
    }
  });

  it('a wrong password corrected in the password file while the gateway runs: it connects with the new one without a restart, and publishes the windows it queued', async () => {
    const pw = join(etc, 'corrected-password');
    writeFileSync(pw, 'not-the-password\n', { mode: 0o640 });
    chmodSync(pw, 0o640);
    chownSync(pw, 0, NOBODY);
    const { config } = setUp('corrected', pw);
    // a live source (the wall clock, 1-s windows) so that the gateway runs until stopped
    writeFileSync(
      config,
      readFileSync(config, 'utf8').replace(/sources: .*\n/, 'sources: [{ name: wifi, type: command, radio: wifi, command: "sleep 600" }]\n'),
    );
    const sub = await subscriber(broker.url, { username: 'aggregator', password: 'agg-pw', filter: siteFilter('dam') });
    const proc = spawn('setpriv', [...asNobody, process.execPath, PRESENCE, 'gateway', '--config', config], {
      cwd: dir,
      env: { ...process.env, HOME: dir, LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    proc.stderr!.on('data', (d) => (log += d));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    try {
      await waitFor(() => log.includes('Not authorized'), 20_000, 'the refused login');
      await waitFor(() => log.includes('"msg":"window closed"'), 20_000, 'a window queued while refused');
      writeFileSync(pw, password());
      await waitFor(() => log.includes('connected to broker'), 15_000, 'the connection with the corrected password');
      expect(log).toContain('mqtt.password_file has changed: the next attempt uses the password it holds now');
      expect(log).not.toContain(password().trim());
      await waitFor(
        () => sub.messages.some((m) => m.topic === countsTopic('dam', 'gw-plein-1') && JSON.parse(m.payload.toString()).seq === 1),
        15_000,
        'window 1, queued while refused, published',
      );
    } finally {
      proc.kill('SIGTERM');
      await exited;
      await sub.client.endAsync();
    }
  });

  it('a root-owned password file of mode 0600 stops the start: the config file, the key, the path and the chown that fixes it, a hint, exit 2', async () => {
    const pw = join(etc, 'root-only-password');
    writeFileSync(pw, password(), { mode: 0o600 });
    chmodSync(pw, 0o600);
    const { config, queue } = setUp('root', pw);
    const run = await gatewayAsNobody(['--config', config]);
    expect(run.code, run.stderr).toBe(2);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toEqual([
      `presence gateway: ${config}: mqtt.password_file: ${pw} cannot be read by nobody, who runs the gateway (permission denied): chown nobody ${pw} && chmod 600 ${pw}`,
      // the path is right: the hint is about read access, not "check the path"
      'hint: the file is there, but the user that runs the command may not read it (or its folder): give that user read access, with the chown or chmod the line names where it names one',
    ]);
    // Checked before anything starts: no log line, nothing in the queue folder.
    expect(run.stderr).not.toContain('gateway starting');
    expect(execFileSync('ls', ['-A', queue], { encoding: 'utf8' })).toBe('');
  });

  it('a password file that does not exist stops the start naming where its path came from (exit 2)', async () => {
    const { config } = setUp('missing', join(etc, 'no-such-password'));
    const fromFile = await gatewayAsNobody(['--config', config]);
    expect(fromFile.code, fromFile.stderr).toBe(2);
    expect(fromFile.stderr.split('\n')[0]).toBe(`presence gateway: ${config}: mqtt.password_file: ${join(etc, 'no-such-password')} does not exist`);
    expect(fromFile.stderr.split('\n')[1]).toMatch(/^hint: check the path: /);
    const fromEnv = await gatewayAsNobody(['--config', config], { MQTT_PASSWORD_FILE: '/nonexistent/mqtt-password' });
    expect(fromEnv.code, fromEnv.stderr).toBe(2);
    expect(fromEnv.stderr.split('\n')[0]).toBe('presence gateway: MQTT_PASSWORD_FILE (mqtt.password_file): /nonexistent/mqtt-password does not exist');
    expect(fromEnv.stderr).not.toContain('gateway starting');
  });
});
