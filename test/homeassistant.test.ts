// Home Assistant MQTT discovery against a real Mosquitto and the real CLI, checked against the
// conventions of Home Assistant's MQTT discovery docs: config topic
// <discovery_prefix>/<component>/[<node_id>/]<object_id>/config (ids of [a-zA-Z0-9_-]), retained
// JSON config with full key names, a unique_id and a device with identifiers, state_topic plus a
// value_template, availability_topic with payload_available / payload_not_available (here through an
// availability_template on the status JSON). The sensor's value is read the way HA would from a
// real counts message; its availability follows the gateway's last will after kill -9.
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haConfigTopic, haNodeId, haSensorConfig, validateHaConfig } from '../contract/homeassistant.ts';
import { TOPIC_ROOT } from '../contract/index.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { spawnGateway, subscriber, waitFor, wifiCapture, type Received } from './gateway-support.ts';

const SUITE = 'home assistant discovery';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

/** Home Assistant's template for these configs: `{{ value_json.a.b }}` (the only form used). */
function render(template: string, payload: string): string {
  const m = /^\{\{ value_json((?:\.[a-z_]+)+) \}\}$/.exec(template);
  if (!m) throw new Error(`template not understood: ${template}`);
  let v: unknown = JSON.parse(payload);
  for (const k of m[1].slice(1).split('.')) v = (v as Record<string, unknown>)[k];
  return String(v);
}

/** The availability HA derives from the latest message on the availability topic. */
function availability(cfg: Record<string, string>, statusPayload: string): 'available' | 'unavailable' | 'unknown' {
  const value = cfg.availability_template ? render(cfg.availability_template, statusPayload) : statusPayload;
  return value === cfg.payload_available ? 'available' : value === cfg.payload_not_available ? 'unavailable' : 'unknown';
}

describe('discovery payloads (contract)', () => {
  it('validate against the closed schema; an extra key or an abbreviation is refused', () => {
    const cfg = haSensorConfig({ site: 'utrecht', zone: 'neude', gateway: 'gw-01', radio: 'wifi', version: '0.1.0' });
    expect(validateHaConfig(cfg)).toEqual({ ok: true });
    expect(validateHaConfig({ ...cfg, extra: 1 }).ok).toBe(false);
    expect(validateHaConfig({ ...cfg, device: { ...cfg.device, mac: 'aa:bb:cc:dd:ee:ff' } }).ok).toBe(false);
    const { state_topic, ...rest } = cfg;
    expect(validateHaConfig({ ...rest, stat_t: state_topic }).ok).toBe(false);
    expect(haConfigTopic('homeassistant', 'utrecht', 'gw-01', 'neude', 'ble')).toBe('homeassistant/sensor/presence_utrecht_gw-01/neude_ble/config');
  });

  it('a sensor is a count of devices in name, unit and icon, never drawn as people (no calibration reaches Home Assistant)', () => {
    for (const radio of ['wifi', 'ble'] as const) {
      const cfg = haSensorConfig({ site: 'utrecht', zone: 'neude', gateway: 'gw-01', radio });
      expect(cfg.name).toBe(radio === 'wifi' ? 'Wi-Fi devices' : 'BLE devices');
      expect(cfg.unit_of_measurement).toBe('devices');
      expect(cfg.icon).toBe('mdi:cellphone-wireless');
      expect(validateHaConfig(cfg)).toEqual({ ok: true });
      // A people icon (the one these sensors had) is refused by the closed schema.
      expect(validateHaConfig({ ...cfg, icon: 'mdi:account-group' }).ok).toBe(false);
    }
  });

  it('default_entity_id names site, gateway, zone and radio; object_id and a display precision are refused', () => {
    const a = haSensorConfig({ site: 'utrecht', zone: 'neude', gateway: 'gw-01', radio: 'wifi' });
    const b = haSensorConfig({ site: 'utrecht', zone: 'neude', gateway: 'gw-02', radio: 'wifi' });
    expect(a.default_entity_id).toBe('sensor.presence_utrecht_gw-01_neude_wifi');
    // Two gateways in one zone: distinct entity ids and unique ids.
    expect(b.default_entity_id).toBe('sensor.presence_utrecht_gw-02_neude_wifi');
    expect(a.unique_id).not.toBe(b.unique_id);
    expect(a).not.toHaveProperty('object_id');
    expect(a).not.toHaveProperty('suggested_display_precision');
    expect(validateHaConfig(b)).toEqual({ ok: true });
    // The deprecated key and the precision (the estimate is an integer) are not in the closed schema.
    expect(validateHaConfig({ ...a, object_id: 'presence_utrecht_neude_wifi' }).ok).toBe(false);
    expect(validateHaConfig({ ...a, suggested_display_precision: 1 }).ok).toBe(false);
    expect(validateHaConfig({ ...a, default_entity_id: 'presence_utrecht_gw-01_neude_wifi' }).ok).toBe(false);
  });

  it("no two gateways share a node id: a site's underscores are doubled, a site without one keeps the plain form", () => {
    expect(haNodeId('utrecht', 'gw-01')).toBe('presence_utrecht_gw-01');
    expect(haNodeId('a_b', 'c')).toBe('presence_a__b_c');
    expect(haNodeId('a', 'b_c')).toBe('presence_a_b_c');
    const x = haSensorConfig({ site: 'a_b', zone: 'z', gateway: 'c', radio: 'wifi' });
    const y = haSensorConfig({ site: 'a', zone: 'z', gateway: 'b_c', radio: 'wifi' });
    expect(x.unique_id).not.toBe(y.unique_id);
    expect(x.device.identifiers).not.toEqual(y.device.identifiers);
    expect(haConfigTopic('homeassistant', 'a_b', 'c', 'z', 'wifi')).not.toBe(haConfigTopic('homeassistant', 'a', 'b_c', 'z', 'wifi'));
    // The longest ids, a site of underscores: still within the closed schema.
    const long = haSensorConfig({ site: `a${'_'.repeat(62)}`, zone: 'z'.repeat(63), gateway: `g${'_'.repeat(62)}`, radio: 'ble' });
    expect(validateHaConfig(long)).toEqual({ ok: true });
  });
});

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-ha-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('retained configs per radio; the sensor reads the estimate; availability follows the last will', async () => {
    const gw = spawnGateway(
      [
        '--site',
        'utrecht',
        '--zone',
        'neude',
        '--id',
        'gw-ha',
        '--mqtt-url',
        broker.url,
        '--source',
        'pcap:-@wifi',
        '--window',
        '1s',
        '--mqtt-keepalive',
        '1',
        '--queue-dir',
        join(tmp, 'q'),
        '--homeassistant',
        '--log-format',
        'json',
      ],
      {},
      'pipe',
    );
    try {
      await waitFor(() => gw.stderr().includes('Home Assistant discovery configs published'), 20_000, 'the discovery configs');
      // A subscriber that comes later (Home Assistant starting) gets the configs: they are retained.
      const ha = await subscriber(broker.url, { filter: 'homeassistant/#', clean: true });
      await waitFor(() => ha.messages.length >= 2, 10_000, 'two retained configs');
      const configs = ha.messages.filter((m) => m.retain);
      expect(configs.map((m) => m.topic).sort()).toEqual([
        'homeassistant/sensor/presence_utrecht_gw-ha/neude_ble/config',
        'homeassistant/sensor/presence_utrecht_gw-ha/neude_wifi/config',
      ]);
      for (const m of configs) {
        // <discovery_prefix>/<component>/<node_id>/<object_id>/config, ids of [a-zA-Z0-9_-]
        expect(m.topic).toMatch(/^homeassistant\/sensor\/[a-zA-Z0-9_-]+\/[a-zA-Z0-9_-]+\/config$/);
        const cfg = JSON.parse(m.payload.toString());
        expect(validateHaConfig(cfg)).toEqual({ ok: true });
        // What an MQTT sensor needs, with full key names: state, unique id, device, availability.
        for (const key of [
          'state_topic',
          'value_template',
          'unique_id',
          'unit_of_measurement',
          'state_class',
          'availability_topic',
          'payload_available',
          'payload_not_available',
          'device',
        ])
          expect(cfg, key).toHaveProperty(key);
        expect(['measurement', 'total', 'total_increasing']).toContain(cfg.state_class);
        expect(cfg.device.identifiers.length).toBeGreaterThan(0);
        expect(cfg.state_topic).toBe('presence/v1/utrecht/gw-ha/counts');
        expect(cfg.availability_topic).toBe('presence/v1/utrecht/gw-ha/status');
      }
      const wifiCfg = JSON.parse(configs.find((m) => m.topic.endsWith('neude_wifi/config'))!.payload.toString());
      const bleCfg = JSON.parse(configs.find((m) => m.topic.endsWith('neude_ble/config'))!.payload.toString());
      expect(new Set([wifiCfg.unique_id, bleCfg.unique_id]).size).toBe(2);
      expect(wifiCfg.default_entity_id).toBe('sensor.presence_utrecht_gw-ha_neude_wifi');
      expect(bleCfg.default_entity_id).toBe('sensor.presence_utrecht_gw-ha_neude_ble');
      expect(wifiCfg.device).toEqual(bleCfg.device); // one device, two sensors

      // Home Assistant subscribes to the state and availability topics.
      const states = await subscriber(broker.url, { filter: `${TOPIC_ROOT}/utrecht/gw-ha/#`, clean: true });
      const last = (kind: string): Received | undefined => [...states.messages].reverse().find((m) => m.topic.endsWith(kind));
      await waitFor(() => !!last('/status'), 10_000, 'the retained status');
      expect(availability(wifiCfg, last('/status')!.payload.toString())).toBe('available');

      // Frames in: a counts message; the sensor's state is its Wi-Fi estimate, a number.
      const cap = wifiCapture(join(tmp, 'ha.pcap'), { devices: 6, startMs: Date.now() - 2000, durationMs: 1500, framesPerS: 40 });
      gw.proc.stdin!.write(readFileSync(cap.path));
      await waitFor(
        () => states.messages.some((m) => m.topic.endsWith('/counts') && JSON.parse(m.payload.toString()).wifi.frames > 0),
        20_000,
        'a counts message with frames',
      );
      const counts = states.messages
        .filter((m) => m.topic.endsWith('/counts'))
        .map((m) => m.payload.toString())
        .find((p) => JSON.parse(p).wifi.frames > 0)!;
      const value = Number(render(wifiCfg.value_template, counts));
      expect(value).toBe(JSON.parse(counts).wifi.estimate);
      expect(Number.isFinite(Number(render(bleCfg.value_template, counts)))).toBe(true);

      // kill -9: the broker publishes the last will (retained offline status): unavailable.
      gw.proc.kill('SIGKILL');
      await waitFor(() => availability(wifiCfg, last('/status')!.payload.toString()) === 'unavailable', 20_000, 'the last will');
      // The configs stay (retained) for the next start.
      const later = await subscriber(broker.url, { filter: 'homeassistant/#', clean: true });
      await waitFor(() => later.messages.length >= 2, 10_000, 'retained configs after the gateway died');
      for (const c of [ha, states, later]) await c.client.endAsync();
    } finally {
      gw.proc.kill('SIGKILL');
    }
  });

  it('a stop right after the connection still publishes the configs first', async () => {
    // A short replay or a quick SIGTERM ends the run within milliseconds of the connection: the
    // configs (published once the discovery module had loaded) went out after the broker
    // connection was closed, or never, as the process had ended, and the run said nothing of them.
    const gw = spawnGateway(
      [
        '--site',
        'utrecht',
        '--zone',
        'neude',
        '--id',
        'gw-short',
        '--mqtt-url',
        broker.url,
        '--source',
        'pcap:-@wifi',
        '--window',
        '1s',
        '--queue-dir',
        join(tmp, 'q-short'),
        '--homeassistant',
        '--log-format',
        'json',
      ],
      {},
      'pipe',
    );
    try {
      // SIGTERM as soon as the connection is logged, not at the next poll.
      let termed = false;
      gw.proc.stderr!.on('data', () => {
        if (!termed && gw.stderr().includes('connected to broker')) termed = gw.proc.kill('SIGTERM');
      });
      await waitFor(() => gw.stderr().includes('connected to broker'), 20_000, 'the connection');
      expect(await gw.exited).toBe(0);
    } finally {
      gw.proc.kill('SIGKILL');
    }
    const line = gw
      .stderr()
      .split('\n')
      .find((l) => l.includes('Home Assistant discovery configs published'));
    expect(line, gw.stderr()).toBeDefined();
    expect(JSON.parse(line!).configs).toBe(2);
    expect(gw.stderr().indexOf('Home Assistant discovery configs published')).toBeLessThan(gw.stderr().indexOf('gateway stopped'));
    const ha = await subscriber(broker.url, { filter: 'homeassistant/sensor/presence_utrecht_gw-short/#', clean: true });
    await waitFor(() => ha.messages.length >= 2, 10_000, 'the retained configs of the short run');
    expect(ha.messages.map((m) => m.topic).sort()).toEqual([
      'homeassistant/sensor/presence_utrecht_gw-short/neude_ble/config',
      'homeassistant/sensor/presence_utrecht_gw-short/neude_wifi/config',
    ]);
    await ha.client.endAsync();
  });

  it('a config no longer published (zone changed, discovery turned off) is removed from the broker', async () => {
    // Retained configs stayed on the broker, and so in Home Assistant, for ever: after a move to
    // another zone (two configs with the same unique id, the old area) and after turning discovery off.
    const node = 'homeassistant/sensor/presence_utrecht_gw-mv';
    const queue = join(tmp, 'q-mv');
    const run = async (zone: string, ha: boolean) => {
      const gw = spawnGateway(
        [
          '--site',
          'utrecht',
          '--zone',
          zone,
          '--id',
          'gw-mv',
          '--mqtt-url',
          broker.url,
          '--source',
          'pcap:-@wifi',
          '--queue-dir',
          queue,
          ...(ha ? ['--homeassistant'] : []),
          '--log-format',
          'json',
        ],
        {},
        'pipe',
      );
      try {
        await waitFor(() => gw.stderr().includes('connected to broker'), 20_000, 'the connection');
        gw.proc.kill('SIGTERM');
        expect(await gw.exited).toBe(0);
      } finally {
        gw.proc.kill('SIGKILL');
      }
      return gw.stderr();
    };
    /** The retained messages under the gateway's node: those that come before a marker sent after subscribing. */
    const retained = async (): Promise<string[]> => {
      const sub = await subscriber(broker.url, { filter: `${node}/#`, clean: true });
      await sub.client.publishAsync(`${node}/marker`, 'x', { qos: 1 });
      await waitFor(() => sub.messages.some((m) => m.topic.endsWith('/marker')), 10_000, 'the marker');
      await sub.client.endAsync();
      return sub.messages
        .filter((m) => m.retain)
        .map((m) => m.topic)
        .sort();
    };
    await run('neude', true);
    expect(await retained()).toEqual([`${node}/neude_ble/config`, `${node}/neude_wifi/config`]);
    // Live, as Home Assistant sees it: the old zone's configs are removed before the new ones come
    // (the same unique ids on another topic would be ignored while the old ones stand).
    const live = await subscriber(broker.url, { filter: `${node}/#`, clean: true });
    const moved = await run('oudegracht', true);
    expect(moved).toContain('Home Assistant discovery configs removed');
    await waitFor(() => live.messages.filter((m) => !m.retain).length >= 4, 10_000, 'the removals and the new configs');
    const seen = live.messages.filter((m) => !m.retain).map((m) => `${m.topic.slice(node.length + 1)} ${m.payload.length ? 'config' : 'removed'}`);
    expect(seen.slice(0, 2).sort()).toEqual(['neude_ble/config removed', 'neude_wifi/config removed']);
    expect(seen.slice(2).sort()).toEqual(['oudegracht_ble/config config', 'oudegracht_wifi/config config']);
    await live.client.endAsync();
    expect(await retained()).toEqual([`${node}/oudegracht_ble/config`, `${node}/oudegracht_wifi/config`]);
    const off = await run('oudegracht', false);
    expect(off).toContain('homeassistant.enabled is off');
    expect(await retained()).toEqual([]);
    // Nothing left to remove: a gateway without discovery says and publishes nothing of it.
    expect(await run('oudegracht', false)).not.toContain('Home Assistant');
  });

  it('off by default: nothing is published under homeassistant/', async () => {
    const cap = wifiCapture(join(tmp, 'off.pcap'), { devices: 2, startMs: Date.UTC(2025, 3, 27, 12, 0, 0), durationMs: 2000, framesPerS: 5 });
    const ha = await subscriber(broker.url, { filter: 'homeassistant/sensor/presence_utrecht_gw-off/#', clean: true });
    const gw = spawnGateway([
      '--site',
      'utrecht',
      '--zone',
      'neude',
      '--id',
      'gw-off',
      '--mqtt-url',
      broker.url,
      '--source',
      `pcap:${cap.path}`,
      '--speed',
      'max',
      '--window',
      '1s',
      '--queue-dir',
      join(tmp, 'q-off'),
      '--log-format',
      'json',
    ]);
    expect(await gw.exited).toBe(0);
    expect(gw.stderr()).not.toContain('Home Assistant');
    expect(ha.messages).toEqual([]);
    await ha.client.endAsync();
  });
});
