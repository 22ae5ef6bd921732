// `presence provision gateway` says it makes sure the ACL binds the gateway's credential to its own
// topics. It added the recipe's patterns when missing, but said nothing of a line already in the ACL
// that grants more (`pattern write #`, `pattern presence/v1/+/+/counts`, a `topic write presence/#`
// under the gateway's user): the credential could then publish as any other gateway, or as an
// aggregator on the corridor alive topic, while the run reported the gateway bound. It now warns,
// naming the file, the line and what it lets the gateway do. A real Mosquitto reading such an ACL
// shows the warning is true: the gateway's credential publishes on another gateway's counts topic.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { aclGrantsBeyondOwn, provisionGateway } from '../aggregator/provision.ts';
import { countsTopic } from '../contract/index.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const ROOT = join(import.meta.dirname, '..');
const SHIPPED = readFileSync(join(ROOT, 'docs/mosquitto/presence.acl'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'presence-provision-acl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('provision gateway: ACL lines that grant a gateway more than its own topics', () => {
  it('the shipped ACL and narrow additions give no warning; broad patterns, a broad topic line under its user, %c and the alive topic do, naming the line', () => {
    const user = 'dam/gw-1';
    expect(aclGrantsBeyondOwn(SHIPPED, user)).toEqual([]);
    for (const narrow of [
      'pattern write presence/v1/%u/#',
      'pattern deny #',
      'topic write #', // before any user line: anonymous clients only
      'user dam/gw-2\ntopic write presence/#', // another user's lines
      'user aggregator\ntopic read presence/v1/#',
    ])
      expect(aclGrantsBeyondOwn(`${narrow}\n${SHIPPED}`, user), narrow).toEqual([]);
    const cases: Array<[string, RegExp]> = [
      [
        'pattern write #',
        /line 1 "pattern write #" lets every user, this gateway too, publish as another gateway \(e\.g\. presence\/v1\/dam\/gw-1-other\/counts\)/,
      ],
      ['pattern presence/v1/+/+/counts', /line 1 .* publish as another gateway/],
      ['pattern write presence/v1/%c/#', /line 1 .* publish as another gateway/],
      ['pattern readwrite presence/v1/_aggregators/#', /line 1 .* publish as an aggregator \(presence\/v1\/_aggregators\/other\/alive\)/],
      ['pattern read presence/v1/+/+/sketch', /line 1 .* read other gateways' sketches/],
      ['user dam/gw-1\ntopic write presence/#', /line 2 "topic write presence\/#" lets user dam\/gw-1 publish as another gateway/],
    ];
    for (const [line, want] of cases) {
      const found = aclGrantsBeyondOwn(`${line}\n${SHIPPED}`, user);
      expect(found, line).toHaveLength(1);
      expect(found[0], line).toMatch(want);
      expect(found[0]).toMatch(/remove or narrow that line$/);
    }
  });

  it('the command warns on stderr naming the ACL file and its line, and still provisions (exit 0)', () => {
    const acl = join(dir, 'cli.acl');
    writeFileSync(acl, `${SHIPPED}pattern write presence/v1/+/+/counts\n`);
    const r = spawnSync(
      process.execPath,
      [
        join(ROOT, 'scripts/presence.js'),
        'provision',
        'gateway',
        '--site',
        'dam',
        '--zone',
        'plein',
        '--id',
        'gw-cli',
        '--password-file',
        join(dir, 'cli.passwd'),
        '--acl-file',
        acl,
        '--secret-out',
        join(dir, 'cli.pw'),
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const line = SHIPPED.split('\n').length;
    expect(r.stderr).toContain(
      `presence provision gateway: warning: ${acl}: ACL line ${line} "pattern write presence/v1/+/+/counts" lets every user, this gateway too, publish as another gateway`,
    );
    expect(r.stdout).toContain('broker user name dam/gw-cli');
  });

  const ok = need('mosquitto', 'mosquitto', 'provision ACL warning against a real broker');
  it.skipIf(!ok)('what the warning says is true: with that ACL a real Mosquitto takes a publish of the gateway on another gateway counts topic', async () => {
    const passwd = join(dir, 'broker.passwd');
    const acl = join(dir, 'broker.acl');
    writeFileSync(acl, `${SHIPPED}pattern write presence/v1/+/+/counts\n`);
    const r = provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-a', passwordFile: passwd, aclFile: acl, secretOut: join(dir, 'gw-a.pw') });
    expect(r.warnings).toHaveLength(1);
    const broker = new Mosquitto({
      listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${acl}\n`,
    });
    await broker.start();
    try {
      const client = await mqtt.connectAsync(broker.url, {
        username: 'dam/gw-a',
        password: readFileSync(join(dir, 'gw-a.pw'), 'utf8').trim(),
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      try {
        // MQTT 5: a publish the ACL denies is answered with reason code 0x87; an allowed one with success.
        const reason = async (topic: string) => {
          try {
            await client.publishAsync(topic, '{}', { qos: 1 });
            return 0;
          } catch (e) {
            return (e as { code?: number }).code ?? -1;
          }
        };
        expect(await reason(countsTopic('dam', 'gw-b'))).toBe(0);
        // another gateway's status, which no line of that ACL grants it, stays denied
        expect(await reason('presence/v1/dam/gw-b/status')).toBe(0x87);
      } finally {
        await client.endAsync();
      }
    } finally {
      await broker.dispose();
    }
  });
});

describe('provision gateway: a password file every user may read', () => {
  it('warns, naming the file and its mode, keeps the mode, and says nothing of a 0600 or a new file', () => {
    const open = join(dir, 'open.passwd');
    writeFileSync(open, '# broker users\n');
    chmodSync(open, 0o644);
    const r = provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-open', passwordFile: open, secretOut: join(dir, 'gw-open.pw') });
    expect(r.warnings).toEqual([
      `${open}: every user of this machine may read it (mode 0644), and so try passwords against its hashes offline; its mode was kept: chmod o-rwx ${open}`,
    ]);
    expect(statSync(open).mode & 0o777).toBe(0o644);
    expect(readFileSync(open, 'utf8')).toMatch(/^# broker users\ndam\/gw-open:\$7\$/);

    const closed = join(dir, 'closed.passwd');
    writeFileSync(closed, '');
    chmodSync(closed, 0o600);
    expect(provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-closed', passwordFile: closed, secretOut: join(dir, 'gw-closed.pw') }).warnings).toEqual([]);
    const fresh = join(dir, 'fresh.passwd');
    expect(provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-fresh', passwordFile: fresh, secretOut: join(dir, 'gw-fresh.pw') }).warnings).toEqual([]);
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
  });
});
