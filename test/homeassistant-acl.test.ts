// Home Assistant discovery behind the shipped Mosquitto ACL (docs/mosquitto/presence.acl), with a real
// Mosquitto and the real CLI. The recipe's patterns bind a gateway to presence/v1/{site}/{gateway}/...
// only; `presence provision gateway --homeassistant` adds the grant of the gateway's own discovery
// topics, so a gateway with --homeassistant gets both configs published. A gateway without the grant
// is refused (and says so in its log), and no gateway may write another gateway's discovery config.
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProvisionError, provisionGateway } from '../aggregator/provision.ts';
import { haConfigTopic } from '../contract/homeassistant.ts';
import { statusTopic } from '../contract/index.ts';
import { ROOT, spawnGateway, subscriber, waitFor } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const SUITE = 'home assistant discovery behind the shipped ACL';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('mosquitto_passwd', 'mosquitto', SUITE);

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-ha-acl-'));
  const passwd = join(dir, 'passwd');
  const acl = join(dir, 'presence.acl');
  const broker = new Mosquitto({
    listenerConfig: (port) => `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${acl}\n`,
  });

  beforeAll(async () => {
    copyFileSync(join(ROOT, 'docs/mosquitto/presence.acl'), acl);
    provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-ha', passwordFile: passwd, aclFile: acl, homeassistant: true, secretOut: join(dir, 'gw-ha.pw') });
    provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plain', passwordFile: passwd, aclFile: acl, secretOut: join(dir, 'gw-plain.pw') });
    // Two gateways whose site and id join alike with an underscore: dam_oost + gw, dam + oost_gw.
    provisionGateway({ site: 'dam_oost', zone: 'plein', id: 'gw', passwordFile: passwd, aclFile: acl, homeassistant: true, secretOut: join(dir, 'gw.pw') });
    provisionGateway({
      site: 'dam',
      zone: 'plein',
      id: 'oost_gw',
      passwordFile: passwd,
      aclFile: acl,
      homeassistant: true,
      secretOut: join(dir, 'oost_gw.pw'),
    });
    // Home Assistant's own broker user reads the discovery configs.
    execFileSync('mosquitto_passwd', ['-b', passwd, 'ha', 'ha-pw']);
    appendFileSync(acl, '\nuser ha\ntopic read homeassistant/#\n');
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const gateway = (id: string, site = 'dam') =>
    spawnGateway(
      [
        '--site',
        site,
        '--zone',
        'plein',
        '--id',
        id,
        '--mqtt-url',
        broker.url,
        '--mqtt-username',
        `${site}/${id}`,
        '--mqtt-password-file',
        join(dir, `${id}.pw`),
        '--source',
        'pcap:-@wifi',
        '--queue-dir',
        join(dir, `q-${id}`),
        '--homeassistant',
        '--log-format',
        'json',
      ],
      {},
      'pipe',
    );

  it('provision writes the grant once per gateway, next to the recipe it leaves as it was', () => {
    const text = readFileSync(acl, 'utf8');
    expect(text.startsWith(readFileSync(join(ROOT, 'docs/mosquitto/presence.acl'), 'utf8'))).toBe(true);
    expect(text).toContain('\nuser dam/gw-ha\ntopic write homeassistant/sensor/presence_dam_gw-ha/+/config\n');
    expect(text).not.toContain('gw-plain');
    const again = provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-ha', aclFile: acl, homeassistant: true, aggregatorConfig: join(dir, 'agg.yaml') });
    expect(again.changed.filter((c) => c.startsWith(acl))).toEqual([]);
    expect(() => provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-x', passwordFile: passwd, homeassistant: true })).toThrow(ProvisionError);
  });

  it('with the grant both configs are published; without it the broker refuses them and the gateway says so', async () => {
    const ha = await subscriber(broker.url, { filter: 'homeassistant/#', clean: true, username: 'ha', password: 'ha-pw', protocolVersion: 5 });
    const granted = gateway('gw-ha');
    const plain = gateway('gw-plain');
    try {
      await waitFor(() => granted.stderr().includes('Home Assistant discovery configs published'), 20_000, 'gw-ha publishing its discovery');
      await waitFor(() => plain.stderr().includes('Home Assistant discovery configs published'), 20_000, 'gw-plain trying its discovery');
      await waitFor(() => ha.messages.length >= 2, 10_000, 'the two configs of gw-ha');
      expect(ha.messages.map((m) => m.topic).sort()).toEqual([
        haConfigTopic('homeassistant', 'dam', 'gw-ha', 'plein', 'ble'),
        haConfigTopic('homeassistant', 'dam', 'gw-ha', 'plein', 'wifi'),
      ]);
      const summary = (text: string) => JSON.parse(text.split('\n').find((l) => l.includes('Home Assistant discovery configs published'))!);
      expect(summary(granted.stderr()).configs).toBe(2);
      expect(summary(plain.stderr()).configs).toBe(0);
      expect(plain.stderr()).toContain('Home Assistant discovery config not published');
      expect(plain.stderr()).toContain('presence provision gateway --homeassistant');
    } finally {
      granted.proc.kill('SIGKILL');
      plain.proc.kill('SIGKILL');
      await ha.client.endAsync();
    }
  });

  it('the grant adds to the recipe: the gateway with it still publishes its own status, and nothing of another gateway', async () => {
    const c = await mqtt.connectAsync(broker.url, {
      username: 'dam/gw-ha',
      password: readFileSync(join(dir, 'gw-ha.pw'), 'utf8').trim(),
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    try {
      await c.publishAsync(statusTopic('dam', 'gw-ha'), '{"v":1}', { qos: 1 });
      const err = await c.publishAsync(statusTopic('dam', 'gw-plain'), '{"v":1}', { qos: 1 }).then(
        () => null,
        (e: { code?: number }) => e,
      );
      expect(err?.code).toBe(0x87);
    } finally {
      await c.endAsync();
    }
  });

  it("a gateway cannot write another gateway's discovery config (MQTT 5 PUBACK 0x87)", async () => {
    const c = await mqtt.connectAsync(broker.url, {
      username: 'dam/gw-plain',
      password: readFileSync(join(dir, 'gw-plain.pw'), 'utf8').trim(),
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    try {
      const topic = haConfigTopic('homeassistant', 'dam', 'gw-ha', 'plein', 'wifi');
      const err = await c.publishAsync(topic, '{}', { qos: 1, retain: true }).then(
        () => null,
        (e: { code?: number }) => e,
      );
      expect(err?.code).toBe(0x87);
    } finally {
      await c.endAsync();
    }
  });

  it('gateways whose site and id join alike get their own device, unique ids and grant', async () => {
    // site dam_oost, gateway gw and site dam, gateway oost_gw were both presence_dam_oost_gw: one
    // config topic, one device and the same unique ids in Home Assistant, and each gateway's grant
    // let it write the other's configs.
    const ha = await subscriber(broker.url, { filter: 'homeassistant/#', clean: true, username: 'ha', password: 'ha-pw', protocolVersion: 5 });
    const a = gateway('gw', 'dam_oost');
    const b = gateway('oost_gw');
    try {
      for (const g of [a, b]) await waitFor(() => g.stderr().includes('Home Assistant discovery configs published'), 20_000, 'the discovery of both');
      const summary = (text: string) => JSON.parse(text.split('\n').find((l) => l.includes('Home Assistant discovery configs published'))!);
      expect(summary(a.stderr()).configs).toBe(2);
      expect(summary(b.stderr()).configs).toBe(2);
      const topics = [
        haConfigTopic('homeassistant', 'dam_oost', 'gw', 'plein', 'wifi'),
        haConfigTopic('homeassistant', 'dam_oost', 'gw', 'plein', 'ble'),
        haConfigTopic('homeassistant', 'dam', 'oost_gw', 'plein', 'wifi'),
        haConfigTopic('homeassistant', 'dam', 'oost_gw', 'plein', 'ble'),
      ];
      expect(new Set(topics).size).toBe(4);
      await waitFor(() => topics.every((t) => ha.messages.some((m) => m.topic === t)), 10_000, 'the four configs');
      const configs = topics.map((t) =>
        JSON.parse(
          [...ha.messages]
            .reverse()
            .find((m) => m.topic === t)!
            .payload.toString(),
        ),
      );
      expect(new Set(configs.map((c) => c.unique_id)).size).toBe(4);
      expect(new Set(configs.map((c) => c.device.identifiers[0])).size).toBe(2);
      expect(configs.map((c) => c.state_topic)).toEqual([
        'presence/v1/dam_oost/gw/counts',
        'presence/v1/dam_oost/gw/counts',
        'presence/v1/dam/oost_gw/counts',
        'presence/v1/dam/oost_gw/counts',
      ]);
    } finally {
      a.proc.kill('SIGKILL');
      b.proc.kill('SIGKILL');
      await ha.client.endAsync();
    }
    // dam/oost_gw's grant does not reach the configs of dam_oost/gw.
    const c = await mqtt.connectAsync(broker.url, {
      username: 'dam/oost_gw',
      password: readFileSync(join(dir, 'oost_gw.pw'), 'utf8').trim(),
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    try {
      const err = await c.publishAsync(haConfigTopic('homeassistant', 'dam_oost', 'gw', 'plein', 'wifi'), '{}', { qos: 1, retain: true }).then(
        () => null,
        (e: { code?: number }) => e,
      );
      expect(err?.code).toBe(0x87);
    } finally {
      await c.endAsync();
    }
  });
});
