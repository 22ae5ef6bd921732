// The aggregator's pure parts: configuration (file, environment, flags, readable errors) and the
// message -> points core (validation reasons, line protocol equal to the client's Point output).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ClockSkew } from '../aggregator/clock-skew.ts';
import { ConfigError, loadConfig, parseDuration, resolveConfig } from '../aggregator/config.ts';
import { classify, countsLines, countsPoints, linesFlattened, msSettings, statusLines } from '../aggregator/messages.ts';
import { countsTopic, encode, statusTopic, MAX_PAYLOAD_BYTES, TOPIC_ROOT } from '../contract/index.ts';
import { loadMessages } from '../simulator/load.ts';
import { status, window } from './aggregator-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'presence-agg-unit-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('aggregator config', () => {
  it('has defaults that write a line-protocol file when no InfluxDB URL is set', () => {
    const c = loadConfig({}, {});
    expect(c.influx.url).toBeUndefined();
    expect(c.out).toBe('./presence.lp');
    expect(c.mqtt).toMatchObject({ url: 'mqtt://localhost:1883', protocolVersion: 5 });
    expect(c.batch.flushInterval).toBe(200);
  });

  it('layers file < environment < flags', () => {
    const f = file(
      'a.yaml',
      'aggregator:\n  mqtt:\n    url: mqtts://broker:8883\n    group: city\n  influx:\n    url: http://file:8086\n    api: v1\n    database: fromfile\n  batch:\n    flush_interval: 2s\n',
    );
    const c = loadConfig({ config: f, influxDb: 'fromflag' }, { INFLUX_URL: 'http://env:8086', INFLUX_DB: 'fromenv', INFLUX_RP: 'week' });
    expect(c.mqtt.url).toBe('mqtts://broker:8883');
    expect(c.mqtt.group).toBe('city');
    expect(c.influx).toMatchObject({ url: 'http://env:8086', api: 'v1', database: 'fromflag', retentionPolicy: 'week' });
    expect(c.batch.flushInterval).toBe(2000);
  });

  it('takes the v2 settings from INFLUX_* variables', () => {
    const c = loadConfig({}, { INFLUX_URL: 'http://db:8086', INFLUX_TOKEN: 't', INFLUX_ORG: 'city', INFLUX_BUCKET: 'presence' });
    expect(c.influx).toMatchObject({ url: 'http://db:8086', api: 'v2', token: 't', org: 'city', bucket: 'presence' });
  });

  it('refuses a broker password without a user name (the MQTT client would drop every connection silently)', () => {
    expect(() => loadConfig({}, { MQTT_PASSWORD: 'pw' })).toThrow(/mqtt\.password: is set without mqtt\.username \(--mqtt-username, MQTT_USERNAME\)/);
    expect(() => loadConfig({ mqttPasswordFile: join(dir, 'absent.pw') }, {})).toThrow(/mqtt\.password_file: is set without mqtt\.username/);
    expect(loadConfig({}, { MQTT_USERNAME: 'agg', MQTT_PASSWORD: 'pw' }).mqtt).toMatchObject({ username: 'agg', password: 'pw' });
    expect(loadConfig({ mqttUrl: 'mqtt://agg:pw@broker:1883' }, {}).mqtt.url).toBe('mqtt://agg:pw@broker:1883');
  });

  it('refuses a page password or token of fewer than 12 characters where the page is served beyond loopback, naming the key, not the value', () => {
    const tok = file('short.token', 'Zk9\n');
    expect(() => loadConfig({ httpHost: '0.0.0.0', httpPort: '9464', httpTokenFile: tok }, {})).toThrow(
      /http\.token_file holds 3 characters: a page served on 0\.0\.0\.0 can be reached from the network, where a short secret is guessed; fix: use at least 12/,
    );
    expect(() => loadConfig({ httpHost: '::', httpPort: '9464' }, { PRESENCE_HTTP_TOKEN: 'Zk9' })).toThrow(/http\.token holds 3 characters/);
    const f = file('page.yaml', 'http:\n  host: 0.0.0.0\n  port: 9464\n  user: ops\n  password: Zk9\n');
    let msg = '';
    try {
      loadConfig({ config: f }, {});
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/http\.password holds 3 characters/);
    expect(msg).not.toContain('Zk9');
    // on loopback, with the page off, or with 12 characters: taken
    expect(loadConfig({ httpHost: '127.0.0.1', httpPort: '9464', httpTokenFile: tok }, {}).http.token).toBe('Zk9');
    expect(loadConfig({ httpHost: '0.0.0.0', httpPort: 'false', httpTokenFile: tok }, {}).http.port).toBeNull();
    // the page off (--http-page off): /healthz and /metrics only, which take no secret, as the gateway's
    expect(loadConfig({ httpHost: '0.0.0.0', httpPort: '9464', httpPage: 'off', httpTokenFile: tok }, {}).http.page).toBe(false);
    expect(loadConfig({ httpHost: '0.0.0.0', httpPort: '9464' }, { PRESENCE_HTTP_TOKEN: 'twelve-chars' }).http.token).toBe('twelve-chars');
  });

  it('refuses a timer period Node cannot keep and a keepalive MQTT cannot carry', () => {
    const f = file('long.yaml', 'missing_check_interval: 30d\nbatch:\n  maxRetryDelay: 25d\nmqtt:\n  keepalive: 70000\n');
    let msg = '';
    try {
      loadConfig({ config: f }, {});
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain('batch.maxRetryDelay (now batch.max_retry_delay): must be at most 24d (a longer period fires at once in Node) (got 25d)');
    expect(msg).toContain('missing_check_interval: must be at most 24d (a longer period fires at once in Node) (got 30d)');
    expect(msg).toContain("mqtt.keepalive: must be at most 18h12m15s (65535 s, MQTT's limit) (got 19h26m40s)");
    expect(loadConfig({ flushInterval: '24d' }, {}).batch.flushInterval).toBe(24 * 86_400_000);
  });

  it('refuses a file of other components with no aggregator: section (a gateway file given by mistake) instead of running on defaults', () => {
    const gw = file('gateway.yaml', 'gateway: { site: s, zone: z, id: g }\nsources: [stdin]\nmqtt: { url: "mqtt://broker:1883" }\n');
    expect(() => loadConfig({ config: gw }, {})).toThrow(
      /gateway\.yaml.*has no aggregator settings: no aggregator: section beside gateway:.*put the aggregator's settings under aggregator:/s,
    );
    const shared = file('shared.yaml', 'gateway: { site: s, zone: z, id: g }\naggregator:\n  mqtt: { url: "mqtt://broker:1883" }\n');
    expect(loadConfig({ config: shared }, {}).mqtt.url).toBe('mqtt://broker:1883');
  });

  it('names the key and what it must be', () => {
    const f = file('bad.yaml', 'mqtt:\n  url: localhost\nbatch:\n  flush_interval: soon\n  size: -1\nsurprise: 1\nmax_ahaed: 5m\n');
    let msg = '';
    try {
      loadConfig({ config: f }, {});
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      msg = (e as Error).message;
    }
    expect(msg).toContain(`config file ${f} is invalid:`);
    expect(msg).toContain(
      'mqtt.url: must be a URL like mqtt://host:1883 or mqtts://host:8883 (TLS), or ws://, wss:// (WebSocket); tcp:// is taken as mqtt://, ssl:// and tls:// as mqtts:// (got "localhost")',
    );
    expect(msg).toContain('batch.flush_interval: must be a duration like 250ms, 60s, 15m, 1h30m or 7d (a bare number is ms) (got "soon")');
    expect(msg).toContain('batch.size: must be >= 1 (got -1)');
    expect(msg).toContain('(top level): has an unknown key "surprise"');
    expect(msg).toContain('(top level): has an unknown key "max_ahaed" (did you mean "max_ahead"?)');
    const nested = file('nested.yaml', 'aggregator:\n  mqtt:\n    url: localhost\n');
    expect(() => loadConfig({ config: nested }, {})).toThrow(/aggregator\.mqtt\.url: must be a URL/);
    // keys under aggregator: and others at the top: the top ones would be ignored (a broker and database never used)
    const mixed = file('mixed.yaml', 'mqtt:\n  url: mqtt://broker:1883\ninflux:\n  url: http://db:8086\naggregator:\n  corridors: []\n');
    expect(() => loadConfig({ config: mixed }, {})).toThrow(
      /mixed\.yaml.*aggregator settings at the top level too \(mqtt, influx\), which would be ignored: put them under aggregator:/s,
    );
    expect(() => loadConfig({ batchSize: 'lots' }, {})).toThrow(/--batch-size \(batch\.size\): must be a whole number \(got "lots"\)/);
    expect(() => loadConfig({ flushInterval: 'soon' }, {})).toThrow(/--flush-interval \(batch\.flush_interval\): must be a duration/);
    expect(() => loadConfig({}, { INFLUX_URL: 'influx:8086' })).toThrow(/INFLUX_URL \(influx\.url\): must be a URL like http:\/\/host:8086/);
    expect(() => loadConfig({ influxUrl: 'http://x:8086', influxApi: 'v1' }, {})).toThrow(/influx\.database: is required/);
    expect(() => loadConfig({ config: join(dir, 'absent.yaml') }, {})).toThrow(/config file .*absent\.yaml does not exist/);
    expect(() => loadConfig({ config: file('broken.json', '{"mqtt":') }, {})).toThrow(/not valid JSON/);
  });

  it('accepts its own output again (the demo passes loadConfig() to new Aggregator())', () => {
    const c = loadConfig({ mqttVersion: '4', httpPort: 'off', influxUrl: 'http://db:8086', influxApi: 'v1', influxDb: 'p', flushInterval: '1s' }, {});
    expect(resolveConfig(c)).toEqual(c);
    expect(c.http.port).toBeNull();
    expect(c.mqtt.protocolVersion).toBe(4);
  });

  it('parses durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration('soon')).toBeNull();
    expect(resolveConfig({ mqtt: { sessionExpiry: '1h' } }).mqtt.sessionExpiry).toBe(3600);
  });
});

describe('aggregator message core', () => {
  const now = Date.parse('2026-11-23T10:00:00Z');
  const m = window('site-a', 'gw-1', 5, now - 60_000);

  it('serialises counts exactly as the client Point class does', () => {
    for (const lm of loadMessages({ gateways: 30, windows: 20, seed: 3 })) {
      expect(countsLines(lm.message)).toEqual(countsPoints(lm.message).map((p) => p.toLineProtocol(msSettings)));
    }
    expect(countsLines(m)[0]).toBe(
      `presence,gateway=gw-1,radio=wifi,site=site-a,zone=zone-a complete=T,devices=${m.wifi.devices}i,estimate=${m.wifi.estimate}i,frames=${m.wifi.frames}i ${now - 60_000}`,
    );
  });

  it('makes each line of a counts message flat as it is built (they wait for their batch: aggregator/README.md#performance)', () => {
    const before = linesFlattened.count;
    for (let i = 0; i < 10; i++) countsLines({ ...m, seq: i });
    expect(linesFlattened.count - before).toBe(30);
  });

  it('stores the rejected-frame count when a message carries it', () => {
    const withRejected = { ...m, wifi: { ...m.wifi, rejected: 7 }, ble: { ...m.ble, rejected: 0 } };
    const lines = countsLines(withRejected);
    expect(lines[0]).toMatch(/,frames=\d+i,rejected=7i \d+$/);
    expect(lines[1]).toMatch(/,frames=\d+i,rejected=0i \d+$/);
    expect(lines).toEqual(countsPoints(withRejected).map((p) => p.toLineProtocol(msSettings)));
    expect(countsLines(m)[0]).not.toContain('rejected');
  });

  it('turns status into one gateway_status point with sums over sources', () => {
    const [line] = statusLines(status('site-a', 'gw-1', new Date(now)), now);
    expect(line).toBe(
      `gateway_status,gateway=gw-1,site=site-a capture_silent_s=0i,errors=3i,frames_per_s=15,missing=F,online=T,queue_depth=3i,sources=2i,sources_failed=0i,sources_silent=0i,up=1i,uptime_s=12.5 ${now}`,
    );
  });

  it('rejects each kind of bad message with its reason', () => {
    const t = countsTopic('site-a', 'gw-1');
    const r = (topic: string, payload: string | Buffer) => {
      const c = classify(topic, Buffer.from(payload), now, 300_000);
      return c.ok ? 'ok' : c.reason;
    };
    expect(r(t, encode(m))).toBe('ok');
    expect(r(t, '{"v":1')).toBe('bad_json');
    expect(r(t, JSON.stringify({ ...m, wifi: { ...m.wifi, devices: -1 } }))).toBe('invalid');
    expect(r(t, JSON.stringify({ ...m, seq: '5' }))).toBe('invalid');
    expect(r(t, JSON.stringify({ ...m, ble: { ...m.ble, frames: 1e20 } }))).toBe('invalid');
    expect(r(countsTopic('site-a', 'gw-2'), encode(m))).toBe('topic_mismatch');
    expect(r(countsTopic('site-b', 'gw-1'), encode(m))).toBe('topic_mismatch');
    expect(r(t, encode(window('site-a', 'gw-1', 6, now + 6 * 60_000)))).toBe('future');
    expect(r(t, encode(window('site-a', 'gw-1', 6, now + 4 * 60_000)))).toBe('ok');
    // starting within the limit but ending past it (a 2-min window that starts 4 min ahead)
    const ends = classify(t, Buffer.from(encode(window('site-a', 'gw-1', 6, now + 4 * 60_000, 120_000))), now, 300_000);
    expect(ends).toMatchObject({
      ok: false,
      reason: 'future',
      detail: expect.stringMatching(/^window ends 360 s ahead of this aggregator's clock \(max_ahead 5m\)/),
    });
    // a wrong clock: the detail says by how much, the limit, and where to look
    const early = classify(t, Buffer.from(encode(window('site-a', 'gw-1', 6, now + 10 * 60_000))), now, 300_000);
    expect(early.ok ? '' : early.detail).toBe(
      `window starts 600 s ahead of this aggregator's clock (max_ahead 5m): the gateway's clock or this host's is wrong; check both are synchronised (on the gateway: presence doctor, "clock synchronised"; timedatectl)`,
    );
    const st = classify(statusTopic('site-a', 'gw-1'), Buffer.from(encode(status('site-a', 'gw-1', new Date(now + 3_600_000)))), now, 300_000);
    expect(st.ok ? '' : st.detail).toMatch(
      /^status time is 3600 s ahead of this aggregator's clock \(max_ahead 5m\): the gateway's clock or this host's is wrong/,
    );
    expect(r(t, JSON.stringify({ ...m, pad: 'x'.repeat(MAX_PAYLOAD_BYTES) }))).toBe('too_large');
    expect(r(`${TOPIC_ROOT}/site-a/gw-1/other`, encode(m))).toBe('bad_topic');
    expect(r(statusTopic('site-a', 'gw-1'), '{"v":1,"site":"site-a","gateway":"gw-1","state":"asleep"}')).toBe('invalid');
    const bad = classify(t, Buffer.from(JSON.stringify({ ...m, wifi: { ...m.wifi, devices: -1 } })), now, 300_000);
    expect(bad.ok ? '' : bad.detail).toContain('/wifi/devices');
  });

  it('a payload that is not JSON: the detail gives the position only, never a piece of the payload (an address in it stays out of the log)', () => {
    const t = countsTopic('site-a', 'gw-1');
    // JSON.parse quotes up to about 20 characters of the text in some of its messages
    for (const payload of ['aa:bb:cc:dd:ee:ff', '{"v":1,"mac":aabbccddeeff}', 'AA-BB-CC-DD-EE-FF garbage', '{"v":1,"zone":"z",\n fa:ce:b0:0c:12:34 }']) {
      for (const topic of [t, statusTopic('site-a', 'gw-1')]) {
        const c = classify(topic, Buffer.from(payload), now, 300_000);
        expect(c.ok ? 'ok' : c.reason).toBe('bad_json');
        const detail = c.ok ? '' : c.detail;
        expect(detail).toMatch(/^payload is not JSON( \(at byte \d+\))?$/);
      }
    }
    const at = classify(t, Buffer.from('{"v":1 aabbccddeeff'), now, 300_000);
    expect(at.ok ? '' : at.detail).toBe('payload is not JSON (at byte 7)');
  });
});

describe('aggregator clock skew', () => {
  it('past maxGateways tracked gateways, says once that further gateways are not judged, naming the limit, and still judges those it tracks', () => {
    const lines: Array<{ level: number; msg: string; max_gateways?: number; gateway?: string }> = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(c, _e, cb) {
          lines.push(JSON.parse(String(c)));
          cb();
        },
      }),
    );
    const skew = new ClockSkew(60_000, log, 2);
    const HOUR = 3_600_000;
    const t0 = Date.UTC(2026, 10, 27, 12);
    // on time: not tracked, so not counted towards the limit
    skew.status('s', 'gw-ok', t0, t0 + 1000);
    for (let i = 0; i < 4; i++) {
      const now = t0 + i * 90_000;
      for (const gw of ['gw-1', 'gw-2', 'gw-3', 'gw-4']) skew.status('s', gw, now - HOUR, now);
    }
    const limit = lines.filter((l) => l.msg.includes('clock skew is tracked for at most'));
    expect(limit).toHaveLength(1);
    expect(limit[0].level).toBe(40);
    expect(limit[0].max_gateways).toBe(2);
    expect(limit[0].gateway).toBe('gw-3');
    expect(limit[0].msg).toMatch(
      /^clock skew is tracked for at most 2 gateways .*gateway s\/gw-3 and of any further one is not judged until this aggregator restarts/,
    );
    expect(skew.behind('s', 'gw-1')).toBe(HOUR);
    expect(skew.behind('s', 'gw-2')).toBe(HOUR);
    expect(skew.behind('s', 'gw-3')).toBeNull();
    expect(skew.behind('s', 'gw-4')).toBeNull();
    expect(lines.filter((l) => l.msg.includes('behind this aggregator')).map((l) => l.gateway)).toEqual(['gw-1', 'gw-2']);
  });
});
