// The operator docs run top to bottom on a clean machine: scripts/run-docs.ts executes every shell
// block of docs/deployment.md and docs/field-guide.md marked `run` (and the README's demo and load
// line) against the real Mosquitto, influxd 1.6.7 and VictoriaMetrics installed here, with the
// machine-specific parts substituted (free loopback ports, a temp prefix for /opt and /etc, the
// package from `npm pack` of this checkout installed with `npm ci --omit=dev`). Blocks that need
// hardware or systemd are marked skipped with their reason, which the runner prints.
// Needs the npm registry (or npm's cache) for the package's runtime dependencies.
//
// The broker of docs/deployment.md is started as Debian's mosquitto.service starts it
// (/lib/systemd/system/mosquitto.service has no User=: ExecStart=/usr/sbin/mosquitto -c
// /etc/mosquitto/mosquitto.conf runs as root, and Debian's mosquitto.conf has no `user` line, so
// Mosquitto switches to its user `mosquitto` before it reads the TLS files, the password file and
// the ACL). Run as root on a machine with that user (CI, this one), the recipe's file ownerships are
// exercised as on a real install: the key, which the runner makes as openssl leaves it (root's, mode
// 0600), is readable by the broker only through the doc's `chown root:mosquitto ... && chmod 0640`
// line (without it the broker stops at start, "Unable to load server key file"), and the password
// file and ACL the doc makes and `presence provision gateway` rewrites are read as `mosquitto`, at
// start and on the doc's reload. The test checks that the broker ran as that user. What still
// differs from a real install: systemd does not start it (there is none here), so the runner does
// the unit's ExecStartPre (the log and run folders, chown mosquitto) and the package's postinst
// (chown mosquitto of its data folder) itself and starts ExecStart; the unit's Type=notify waits for
// nothing; the files live under a temporary prefix, not /etc (the package ships no AppArmor profile
// that would confine it to /etc/mosquitto). The password file is the one `mosquitto_passwd -c` makes
// as root (mode 0644 with the Mosquitto 2.0.11 installed here), given to `mosquitto` with mode 0600 by
// the doc's next line, which provision keeps with its owner and mode when it adds the gateway (the
// broker reads it at start and on the doc's reload). Not root, or no user mosquitto: the broker runs
// as the user running the test, reads its own files whatever their ownership, and the doc's chown
// line is skipped (the test then does not ask for either).
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { need } from './support/need.ts';
import { commands, parseBlocks, rewrite, substitute } from '../scripts/run-docs.ts';

const SUITE = 'docs run top to bottom';
const repo = join(import.meta.dirname, '..');
const servers = [
  need('mosquitto', 'mosquitto', SUITE),
  need('mosquitto_passwd', 'mosquitto', SUITE),
  need('influxd', 'influxdb', SUITE),
  need('victoria-metrics', 'victoria-metrics', SUITE),
  need('openssl', 'openssl', SUITE),
].every(Boolean);
/** Root on a machine with Debian's user mosquitto: the broker can be started as Debian's unit starts it. */
const asDebian = process.getuid?.() === 0 && spawnSync('id', ['-u', 'mosquitto']).status === 0;

function runDocs(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(repo, 'scripts', 'run-docs.ts'), ...args],
      { cwd: repo, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

const machine = {
  root: '/tmp/m',
  gatewayPrefix: '/tmp/m/gw',
  capture: '/tmp/m/c.pcapng',
  checkout: '/tmp/m/c',
  prefix: '/tmp/m/root',
  ports: { mqtt: 1, mqtts: 2, influx: 3, aggregatorHttp: 4, influxRpc: 5, influx2: 6 },
};

describe('the docs runner', () => {
  it('reads the fence markers and joins continued lines', () => {
    const blocks = parseBlocks('x.md', 'a\n```sh run needs=influxd\necho a \\\n  b\n# note\n\necho c\n```\n  ```sh skip="no card"\n  iw dev\n  ```\n');
    expect(blocks.map((b) => [b.line, b.lang, b.attrs])).toEqual([
      [2, 'sh', { run: '', needs: 'influxd' }],
      [9, 'sh', { skip: 'no card' }],
    ]);
    expect(commands(blocks[0]!)).toEqual([
      { line: 3, text: 'echo a    b' },
      { line: 7, text: 'echo c' },
    ]);
  });

  it('substitutes paths and ports once, and turns service commands into what runs here', () => {
    const once = substitute('cp a /etc/mosquitto/x; curl http://127.0.0.1:8086/ping -p 1883\nlistener 8883', machine);
    expect(once).toBe('cp a /tmp/m/root/etc/mosquitto/x; curl http://127.0.0.1:3/ping -p 1\nlistener 2 127.0.0.1');
    expect(substitute(once, machine)).toBe(once);
    expect(rewrite('sudo systemctl restart mosquitto', machine).kind).toBe('action');
    expect(rewrite('npm test', machine).kind).toBe('skip');
    expect(rewrite('sudo systemctl stop presence-gateway', machine).kind).toBe('skip');
    expect(rewrite('sudo cp /opt/presence-counter/gateway/presence-gateway.service /etc/systemd/system/ && sudo systemctl daemon-reload', machine)).toEqual({
      kind: 'shell',
      cmd: 'mkdir -p /tmp/m/root/etc/systemd/system && cp /tmp/m/root/opt/presence-counter/gateway/presence-gateway.service /tmp/m/root/etc/systemd/system/',
    });
    // the key's chown runs as written where the broker can run as Debian runs it (root, user mosquitto)
    expect(rewrite('sudo chown root:mosquitto /etc/mosquitto/certs/server.key && sudo chmod 0640 /etc/mosquitto/certs/server.key', machine).kind).toBe(
      asDebian ? 'action' : 'skip',
    );
    // a secret piped to the gateway over ssh is installed in the gateway's prefix, its folder made first
    expect(
      rewrite(
        "sudo cat /root/gw.pw | ssh gw-1 'sudo install -m 0640 -o root -g presence /dev/stdin /etc/presence/mqtt-password' && sudo rm /root/gw.pw",
        machine,
      ),
    ).toEqual({
      kind: 'shell',
      cmd: 'cat /tmp/m/root/root/gw.pw | { mkdir -p /tmp/m/gw/etc/presence && install -m 0640 /dev/stdin /tmp/m/gw/etc/presence/mqtt-password; } && rm /tmp/m/root/root/gw.pw',
    });
    expect(rewrite('sudo mosquitto_passwd -c /etc/mosquitto/passwd aggregator', machine)).toEqual({
      kind: 'shell',
      cmd: 'mosquitto_passwd -c -b /tmp/m/root/etc/mosquitto/passwd aggregator the-aggregator-password',
    });
  });

  it('every shell block of the covered docs says whether it runs', () => {
    for (const doc of ['docs/deployment.md', 'docs/field-guide.md']) {
      const blocks = parseBlocks(doc, readFileSync(join(repo, doc), 'utf8')).filter((b) => b.lang === 'sh');
      expect(blocks.length).toBeGreaterThan(3);
      for (const b of blocks) expect('run' in b.attrs || !!b.attrs.skip, `${doc}:${b.line}`).toBe(true);
    }
  });

  it("the aggregator's broker password and a gateway's are different files", () => {
    // One machine may run both (gateway/README.md: one configuration file for both); with one path
    // the gateway's password, installed by the provisioning line, replaced the aggregator's, which
    // was then refused by the broker at its next connection.
    const text = readFileSync(join(repo, 'docs/deployment.md'), 'utf8');
    const aggregator = /MQTT_PASSWORD_FILE=(\S+?)'? \| sudo install .* \/etc\/presence\/aggregator\.env/.exec(text)?.[1];
    const gateway = /\| ssh gw-plein-1 'sudo install .* \/dev\/stdin (\S+)'/.exec(text)?.[1];
    expect(aggregator).toMatch(/^\/etc\/presence\//);
    expect(gateway).toBe('/etc/presence/mqtt-password');
    expect(aggregator).not.toBe(gateway);
  });

  it('no command logs in to another machine as root', () => {
    // The field guide sets a gateway up with SSH for the engineer's own user and key; Debian's and
    // Raspberry Pi OS's sshd let root in with no password (PermitRootLogin prohibit-password) and root
    // there has no key, so `scp ... root@gateway:` fails as written.
    for (const doc of ['docs/deployment.md', 'docs/field-guide.md', 'gateway/README.md', 'aggregator/README.md']) {
      const blocks = parseBlocks(doc, readFileSync(join(repo, doc), 'utf8')).filter((b) => b.lang === 'sh');
      for (const b of blocks) for (const c of commands(b)) expect(c.text, `${doc}:${c.line}`).not.toMatch(/\b(scp|ssh|rsync)\b.*\broot@/);
    }
  });

  it.skipIf(!servers)(
    'README.md, docs/deployment.md and docs/field-guide.md run as written (modulo the substitutions)',
    async () => {
      const r = await runDocs('--verbose');
      expect(r.out, r.out).toMatch(/^passed: \d+ commands ran/m);
      expect(r.code, r.out).toBe(0);
      // What must have run, not been skipped: the package installed from the tarball, the load line
      // into influxd, the broker with the recipe, provisioning, the aggregator's unit, the checks.
      for (const line of [
        /^README\.md:\d+: curl -XPOST .*\/write\?db=presence/m,
        /^docs\/deployment\.md:\d+: sudo tar -xzf presence-counter-/m,
        /^docs\/deployment\.md:\d+: sudo systemctl restart mosquitto/m,
        /^docs\/deployment\.md:\d+: sudo presence provision gateway/m,
        /^docs\/deployment\.md:\d+: sudo cat \/root\/gw-plein-1\.mqtt-password \| ssh gw-plein-1 'sudo install -m 0640 -o root -g presence \/dev\/stdin /m,
        /^docs\/deployment\.md:\d+: sudo systemctl daemon-reload && sudo systemctl enable --now presence-aggregator/m,
        /^docs\/deployment\.md:\d+: curl -sG http:\/\/127\.0\.0\.1:8086\/query/m,
        /^docs\/deployment\.md:\d+: presence gateway --site dam/m,
        /^docs\/deployment\.md:\d+: mosquitto_sub -h 127\.0\.0\.1 -u aggregator/m,
        /^docs\/field-guide\.md:\d+: cd \/opt\/presence-counter && sudo npm ci --omit=dev/m,
        // the upgrade: the package put in place afresh over the installed one, with its unit, and it runs
        /^docs\/field-guide\.md:\d+: sudo rm -rf \/opt\/presence-counter && sudo mkdir -p \/opt\/presence-counter/m,
        /^docs\/field-guide\.md:\d+: sudo cp \/opt\/presence-counter\/gateway\/presence-gateway\.service \/etc\/systemd\/system\/ && sudo systemctl daemon-reload/m,
      ])
        expect(r.out).toMatch(line);
      // The broker started as root and ran as user mosquitto, after the doc's chown of its key ran.
      if (asDebian) {
        expect(r.out).toMatch(/^docs\/deployment\.md:\d+: sudo chown root:mosquitto \/etc\/mosquitto\/certs\/server\.key && sudo chmod 0640 /m);
        expect(r.out).toMatch(/^docs\/deployment\.md:\d+: sudo chown mosquitto:mosquitto \/etc\/mosquitto\/passwd && sudo chmod 0600 /m);
        expect(r.out).toMatch(/^\s+mosquitto started as root as Debian's unit starts it, running as user mosquitto \(uid \d+\)$/m);
        expect(r.out).not.toMatch(/mosquitto running as this user/);
      }
      // The documented checks answered what the doc says: the query found the demo's counts (loaded
      // in section 1), /healthz says ok.
      expect(r.out).toMatch(/^\s+\| \{"results":\[\{"statement_id":0,"series":\[\{"name":"presence"/m);
      expect(r.out).toMatch(/\{"name":"presence","tags":\{"radio":"(ble|wifi)","zone":"square-(east|west|north)"\}/);
      expect(r.out).toMatch(/^\s+\| \{"status":"ok"/m);
      // The gateway provisioned in docs/deployment.md published over TLS with its own credential
      // through the recipe's ACL: its retained status reached mosquitto_sub, its counts InfluxDB.
      expect(r.out).toMatch(/^\s+\| presence\/v1\/dam\/gw-plein-1\/status \{/m);
      expect(r.out).toMatch(/"tags":\{"radio":"(ble|wifi)","zone":"plein"\}/);
    },
    600_000,
  );
});
