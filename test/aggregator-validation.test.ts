// The aggregator at the privacy and robustness boundary, with a real Mosquitto: a counts message with
// a field the contract does not have (an address) is refused and counted; times on a leap second, in
// year 0001 and numbers like 1e400 are refused with reasons; an oversized (~100 MB) publish never
// reaches the aggregator (its MQTT 5 Maximum Packet Size makes the broker drop it); a flood of bad
// messages gives a bounded number of log lines plus a summary by reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import mqtt from 'mqtt';
import { metricNameProblems, metricTypes } from './support/metric-names.ts';
import { need } from './support/need.ts';
import { scan } from './support/leak.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Aggregator, type AggregatorOptions } from '../aggregator/aggregator.ts';
import { RejectLog } from '../aggregator/reject-log.ts';
import { GatewayLiveness } from '../aggregator/liveness.ts';
import { AggregatorMetrics } from '../aggregator/health.ts';
import { GatewayIdentity } from '../aggregator/registry.ts';
import { CorridorFlows } from '../aggregator/flows/intake.ts';
import { classify } from '../aggregator/messages.ts';
import { countsTopic, encode, MAX_PACKET_BYTES, statusTopic } from '../contract/index.ts';
import { publishAll, publisher, status, until, window } from './aggregator-helpers.ts';

const SUITE = 'aggregator validation';
const ok = need('mosquitto', 'mosquitto', SUITE);

type LogLine = { level: number; msg: string; reason?: string; detail?: string; not_logged?: number; by_reason?: Record<string, number> };

/** A pino logger that keeps its lines. */
function capturingLogger(lines: LogLine[]) {
  return pino({ level: 'trace' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
}

describe('rejection log: a topic level that is a valid id shaped like an address', () => {
  it('is not logged, in the topic or in the detail that names it (3c-22-fb-01-a0-9e, 3c22fb01a09e)', () => {
    const lines: Array<LogLine & { topic?: string }> = [];
    const r = new RejectLog(capturingLogger(lines), { perInterval: 10, intervalMs: 3600_000 });
    const now = Date.now();
    const payload = encode(window('val', 'gw-1', 4, now - 670_000));
    const addr = Uint8Array.from([0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e]);
    // both topics parse (their levels are valid ids): a topic_mismatch whose detail names the topic's levels
    const topics = ['presence/v1/3c-22-fb-01-a0-9e/gw-1/counts', 'presence/v1/val/3c22fb01a09e/counts'];
    for (const topic of topics) {
      const c = classify(topic, payload, now, 60_000);
      if (c.ok) throw new Error(`${topic} was accepted`);
      r.record(c.reason, topic, c.detail, now);
    }
    expect(lines.map((l) => [l.reason, l.topic, l.detail])).toEqual([
      ['topic_mismatch', 'presence/v1/(not an id)/gw-1/counts', 'topic names (not an id)/gw-1, payload val/gw-1'],
      ['topic_mismatch', 'presence/v1/val/(not an id)/counts', 'topic names val/(not an id), payload val/gw-1'],
    ]);
    expect(scan('log', JSON.stringify(lines), [addr], { hashLike: false })).toEqual([]);
  });

  it('is not logged when a gateway of that name goes missing or comes back', () => {
    const lines: Array<LogLine & { gateway?: string }> = [];
    const addr = Uint8Array.from([0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e]);
    const written: string[][] = [];
    const live = new GatewayLiveness(
      2,
      capturingLogger(lines),
      new AggregatorMetrics(),
      (l) => written.push(l),
      () => {},
    );
    const t0 = Date.now();
    for (const id of ['3c22fb01a09e', '3c-22-fb-01-a0-9e']) live.seen('val', id, 60_000, true, t0);
    live.check(t0 + 180_000, true);
    for (const id of ['3c22fb01a09e', '3c-22-fb-01-a0-9e']) live.seen('val', id, 60_000, true, t0 + 200_000);
    expect(lines.map((l) => [l.msg, l.gateway])).toEqual([
      ['gateway missing', '(not an id)'],
      ['gateway missing', '(not an id)'],
      ['gateway is back', '(not an id)'],
      ['gateway is back', '(not an id)'],
    ]);
    expect(scan('log', JSON.stringify(lines), [addr], { hashLike: false })).toEqual([]);
    // (the points written name the gateway: it is the gateway's own id, and the series is its)
    expect(written).toHaveLength(4);
  });

  it("is not logged when the payload names it either: the payload's site, gateway, zone or group", () => {
    const lines: Array<LogLine & { topic?: string }> = [];
    const r = new RejectLog(capturingLogger(lines), { perInterval: 100, intervalMs: 3600_000 });
    const now = Date.now();
    const addr = Uint8Array.from([0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e]);
    const forms = ['3c22fb01a09e', '3c-22-fb-01-a0-9e', '3c_22_fb_01_a0_9e', 'gw-3c22fb01a09e'];
    for (const id of forms) {
      // counts and status on a gateway's own topic, whose payload names another (address-shaped) gateway or site
      for (const [topic, payload] of [
        ['presence/v1/val/gw-1/counts', encode(window('val', id, 4, now - 670_000))],
        ['presence/v1/val/gw-1/counts', encode(window(id, 'gw-1', 4, now - 670_000))],
        ['presence/v1/val/gw-1/status', encode(status('val', id))],
      ] as const) {
        const c = classify(topic, payload, now, 60_000);
        if (c.ok) throw new Error(`${topic} was accepted`);
        r.record(c.reason, topic, c.detail, now);
      }
      // the registry, for a payload's zone
      const reg = new GatewayIdentity(
        { registry: { 'gw-1': { site: 'val', zone: 'zone-a' } }, allow_unknown: false, max_known: 10, conflict_memory: 10 },
        pino({ level: 'silent' }),
      );
      const v = reg.admit('val', 'gw-1', id);
      if (!v) throw new Error(`zone ${id} was admitted`);
      r.record(v.reason, 'presence/v1/val/gw-1/counts', v.detail, now);
      // the corridor intake, for a payload's group
      const flows = new CorridorFlows([{ group: 'main-street', site: 'val', members: ['gw-1', 'gw-2'], horizon: 600_000 }]);
      const windowStart = Math.floor(now / 60_000) * 60_000 - 120_000;
      const sketch = {
        v: 1,
        site: 'val',
        gateway: 'gw-1',
        group: id,
        epoch: Math.floor(windowStart / 3_600_000),
        epoch_s: 3600,
        window_start: new Date(windowStart).toISOString(),
        window_end: new Date(windowStart + 60_000).toISOString(),
        m: 1024,
        p: 0.5,
        bits: Buffer.alloc(128).toString('base64'),
      };
      const f = flows.accept('presence/v1/val/gw-1/sketch', Buffer.from(JSON.stringify(sketch)), now);
      if (f.ok) throw new Error(`group ${id} was accepted`);
      r.record(f.reason, 'presence/v1/val/gw-1/sketch', f.detail, now);
    }
    expect(lines.filter((l) => l.msg === 'message rejected')).toHaveLength(forms.length * 5);
    for (const l of lines) if (l.detail) expect(l.detail).toContain('(not an id)');
    expect(lines.map((l) => l.detail)).toContain('topic names val/gw-1, payload val/(not an id)');
    expect(scan('log', JSON.stringify(lines), [addr], { hashLike: false })).toEqual([]);
    // ids that are not shaped like an address are shown as they are
    const c = classify('presence/v1/val/gw-1/counts', encode(window('val', 'gw-2', 4, now - 670_000)), now, 60_000);
    if (c.ok) throw new Error('gw-2 on the topic of gw-1 was accepted');
    expect(c.detail).toBe('topic names val/gw-1, payload val/gw-2');
  });
});

describe('rejection log rate limit', () => {
  it('logs the first rejections of an interval one by one, then one summary by reason', () => {
    const lines: LogLine[] = [];
    const r = new RejectLog(capturingLogger(lines), { perInterval: 3, intervalMs: 1000 });
    for (let i = 0; i < 100; i++) r.record(i % 4 === 0 ? 'unknown_field' : 'invalid', 't', `d${i}`, 5000 + i);
    expect(lines.filter((l) => l.msg === 'message rejected')).toHaveLength(3);
    r.record('bad_json', 't', 'x', 6000); // next interval: the summary of the last one, then this line
    const summary = lines.find((l) => l.msg === 'messages rejected (summary)')!;
    expect(summary.not_logged).toBe(97);
    expect(summary.by_reason).toEqual({ invalid: 73, unknown_field: 24 });
    expect(lines.filter((l) => l.msg === 'message rejected')).toHaveLength(4);
    r.flush();
    expect(lines.filter((l) => l.msg === 'messages rejected (summary)')).toHaveLength(1); // nothing new to sum
  });

  it('writes the summary when the interval ends, also when no further message comes', async () => {
    const lines: LogLine[] = [];
    const r = new RejectLog(capturingLogger(lines), { perInterval: 1, intervalMs: 50 });
    for (let i = 0; i < 5; i++) r.record('invalid', 't', 'd', Date.now());
    await until(
      'the summary',
      () => lines.filter((l) => l.msg === 'messages rejected (summary)').length,
      (n) => n === 1,
    );
    expect(lines.find((l) => l.msg === 'messages rejected (summary)')!.by_reason).toEqual({ invalid: 4 });
  });
});

/**
 * A Mosquitto and an aggregator writing line protocol into a temporary folder, started before the
 * describe's tests and stopped after them: its rejections and log lines collected, its
 * rejected-messages counter read from /metrics (0 when it has none for that reason).
 */
function aggregatorUnderTest(name: string, brokerOptions: ConstructorParameters<typeof Mosquitto>[0] = {}, options: Partial<AggregatorOptions> = {}) {
  const broker = new Mosquitto(brokerOptions);
  const dir = mkdtempSync(join(tmpdir(), `presence-agg-${name}-`));
  const out = join(dir, 'presence.lp');
  const logs: LogLine[] = [];
  const rejected: string[] = [];
  const run = {
    broker,
    out,
    logs,
    rejected,
    agg: undefined as unknown as Aggregator,
    pub: undefined as unknown as mqtt.MqttClient,
    fileLines: () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []),
    metric: async (reason: string) => {
      const text = await (await fetch(`http://127.0.0.1:${run.agg.httpPort}/metrics`)).text();
      return Number(new RegExp(`presence_aggregator_rejected_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    },
  };
  beforeAll(async () => {
    await broker.start();
    run.agg = new Aggregator(
      { mqtt: { url: broker.url, client_id: `agg-${name}` }, out, http: { port: 0, host: '127.0.0.1' }, batch: { flush_interval: '20ms' } },
      { logger: capturingLogger(logs), ...options },
    );
    run.agg.on('rejected', (reason: string) => rejected.push(reason));
    await run.agg.start();
    run.pub = await publisher(broker.url);
  });
  afterAll(async () => {
    await run.pub?.endAsync();
    await run.agg?.stop();
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  return run;
}

describe.skipIf(!ok)(SUITE, () => {
  // The broker itself takes packets up to 120 MB here (the fixture's default is 1 MiB), so what
  // stops a 100 MB message is the aggregator's own Maximum Packet Size.
  const run = aggregatorUnderTest('validation', { extraConfig: () => 'max_packet_size 120000000' }, { rejectLog: { perInterval: 10, intervalMs: 3600_000 } });
  const { broker, logs, rejected, fileLines, metric } = run;

  const sentinelBase = Math.floor(Date.now() / 1000) * 1000 - 120_000;
  /** Publishes, then a good sentinel window, and waits until the sentinel is written. */
  const publishThenSentinel = async (items: Array<{ topic: string; payload: Buffer | string }>, seq: number) => {
    // A second of its own per seq: windows of one gateway that overlap are rejected (overlap).
    const sentinel = window('val', 'gw-1', seq, sentinelBase - seq * 1000);
    await publishAll(run.pub, [...items, { topic: countsTopic('val', 'gw-1'), payload: encode(sentinel) }], 1);
    await until(
      'the sentinel written',
      () => fileLines().filter((l) => l.endsWith(` ${Date.parse(sentinel.start)}`)).length,
      (n) => n === 3,
    );
  };

  it('refuses a counts message carrying an address field, names the field, counts it, writes nothing of it', async () => {
    const m = window('val', 'gw-1', 1, Date.now() - 600_000);
    const withMac = { ...m, wifi: { ...m.wifi, mac: '3c:22:fb:01:a0:9e' } };
    const withHashes = { ...m, seq: 2, hashes: ['9f86d081884c7d65'] };
    await publishThenSentinel(
      [withMac, withHashes].map((x) => ({ topic: countsTopic('val', 'gw-1'), payload: JSON.stringify(x) })),
      3,
    );
    expect(rejected).toEqual(['unknown_field', 'unknown_field']);
    expect(await metric('unknown_field')).toBe(2);
    const lines = logs.filter((l) => l.msg === 'message rejected');
    expect(lines.map((l) => l.detail)).toEqual(['/wifi/mac is not a field of the contract', '/hashes is not a field of the contract']);
    // the values are never logged, at any level (the logger keeps trace and debug lines too)
    expect(JSON.stringify(logs)).not.toContain('3c:22:fb:01:a0:9e');
    expect(JSON.stringify(logs)).not.toContain('9f86d081884c7d65');
    expect(fileLines()).toHaveLength(3); // the sentinel's three points only (wifi, ble, its marker)
  });

  it('a topic whose site or gateway level is no id (an address): bad_topic, logged with the levels that are no id left out', async () => {
    const before = await metric('bad_topic');
    const from = logs.length;
    const m = encode(window('val', 'gw-1', 3, Date.now() - 660_000));
    const addr = Uint8Array.from([0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e]);
    const topics = ['presence/v1/3C:22:FB:01:A0:9E/gw-1/counts', 'presence/v1/val/9e.a0.01.fb.22.3c/status', 'presence/v1/val/PGlfsY0j/counts'];
    await publishThenSentinel(
      topics.map((topic) => ({ topic, payload: m })),
      4,
    );
    expect((await metric('bad_topic')) - before).toBe(3);
    const lines = logs.slice(from).filter((l) => l.msg === 'message rejected') as Array<LogLine & { topic?: string }>;
    expect(lines.map((l) => [l.reason, l.topic])).toEqual([
      ['bad_topic', 'presence/v1/(not an id)/gw-1/counts'],
      ['bad_topic', 'presence/v1/val/(not an id)/status'],
      ['bad_topic', 'presence/v1/val/(not an id)/counts'],
    ]);
    expect(scan('log', JSON.stringify(logs.slice(from)), [addr], { hashLike: false })).toEqual([]);
    expect(JSON.stringify(logs.slice(from))).not.toContain('PGlfsY0j');
  });

  it('refuses a leap second, year 0001 and 1e400 with reasons naming the field', async () => {
    rejected.length = 0;
    const m = window('val', 'gw-1', 10, Date.now() - 900_000);
    const raw = JSON.stringify(m);
    const bad = [
      raw.replace(m.start, '2016-12-31T23:59:60Z').replace(m.end, '2017-01-01T00:00:00.500Z'),
      raw.replace(m.start, '0001-01-01T00:00:00.000Z'),
      raw.replace('"seq":10', '"seq":1e400'),
      raw.replace(/"devices":\d+/, '"devices":1e400'),
    ];
    const before = await metric('invalid');
    await publishThenSentinel(
      bad.map((payload) => ({ topic: countsTopic('val', 'gw-1'), payload })),
      11,
    );
    expect(rejected).toEqual(['invalid', 'invalid', 'invalid', 'invalid']);
    expect((await metric('invalid')) - before).toBe(4);
    const details = logs
      .filter((l) => l.msg === 'message rejected')
      .slice(-4)
      .map((l) => l.detail);
    expect(details[0]).toMatch(/^\/start must be a UTC time .* \(no leap second\)$/);
    expect(details[1]).toMatch(/^\/start must be a UTC time .* in the years 2000-2099/);
    expect(details[2]).toBe('/seq must be an integer from 0 to 9007199254740991 (2^53 - 1)');
    expect(details[3]).toBe('/wifi/devices must be an integer from 0 to 9007199254740991 (2^53 - 1)');
    expect(fileLines().some((l) => /NaN|Infinity/.test(l))).toBe(false);
  });

  it('a ~100 MB publish never reaches the aggregator: the broker drops it for the aggregator, a client without the limit gets it', async () => {
    // Control: a subscriber without a maximum packet size receives the big message.
    const control = await mqtt.connectAsync(broker.url, { clientId: 'control-big', protocolVersion: 5 });
    let controlGot = 0;
    control.on('message', (_t, p) => (controlGot = Math.max(controlGot, p.length)));
    await control.subscribeAsync(countsTopic('val', 'gw-1'), { qos: 1 });
    const received = run.agg.stats().received;
    const rejectedBefore = run.agg.stats().rejected;
    const big = Buffer.alloc(100 * 1024 * 1024, 0x20);
    big.write('{"v":1,"pad":"', 0);
    big.write('"}', big.length - 2);
    expect(big.length).toBeGreaterThan(MAX_PACKET_BYTES * 10_000);
    await publishThenSentinel([{ topic: countsTopic('val', 'gw-1'), payload: big }], 20);
    await until(
      'the control subscriber got it',
      () => controlGot,
      (n) => n === big.length,
      60_000,
    );
    await control.endAsync();
    // The aggregator heard only the sentinel: the big one was neither received nor rejected as too_large.
    expect(run.agg.stats().received - received).toBe(1);
    expect(run.agg.stats().rejected).toBe(rejectedBefore);
    expect(await metric('too_large')).toBe(0);
    expect(run.agg.connected).toBe(true);
  });

  it('/metrics follows the Prometheus conventions: every counter ends in _total, nothing else does', async () => {
    const text = await (await fetch(`http://127.0.0.1:${run.agg.httpPort}/metrics`)).text();
    expect(metricNameProblems(text)).toEqual([]);
    expect(metricTypes(text)).toMatchObject({
      presence_aggregator_messages_total: 'counter',
      presence_aggregator_rejected_total: 'counter',
      presence_aggregator_acked_total: 'counter',
      presence_aggregator_web_viewers_dropped_total: 'counter',
      presence_aggregator_queue_depth: 'gauge',
    });
  });

  it('a flood of bad messages gives a bounded log: the first lines of the interval, then one summary by reason', async () => {
    const singleBefore = logs.filter((l) => l.msg === 'message rejected').length; // 9 so far in this interval
    const bad = Array.from({ length: 300 }, (_, i) => ({
      topic: countsTopic('val', 'gw-1'),
      payload: i % 3 === 0 ? '{"v":1,' : JSON.stringify({ ...window('val', 'gw-1', 100 + i, Date.now() - 60_000), extra: i }),
    }));
    await publishThenSentinel(bad, 30);
    expect(await metric('bad_json')).toBe(100);
    expect(await metric('unknown_field')).toBe(2 + 200);
    await run.agg.stop(); // the end of the interval: its summary is written
    const single = logs.filter((l) => l.msg === 'message rejected').length;
    expect(singleBefore).toBe(9);
    expect(single).toBe(10); // perInterval
    const summary = logs.filter((l) => l.msg === 'messages rejected (summary)');
    expect(summary).toHaveLength(1);
    expect(summary[0].not_logged).toBe(299);
    expect(summary[0].by_reason).toEqual({ bad_json: 99, unknown_field: 200 });
  });
});

describe.skipIf(!ok)(`${SUITE}: a key given twice in one object`, () => {
  const run = aggregatorUnderTest('twice');
  const { logs, rejected, fileLines, metric } = run;

  it('refuses a counts or status message with a key given twice (JSON.parse kept the last: "devices": 3, "devices": 900 was stored as 900), names the key and the topic, counts it, writes nothing of it', async () => {
    const m = window('val', 'gw-1', 20, Date.now() - 1_200_000);
    const raw = JSON.stringify(m);
    const devices = `"devices":${m.wifi.devices}`;
    const st = JSON.stringify(status('val', 'gw-1', new Date()));
    const twice = [
      { topic: countsTopic('val', 'gw-1'), payload: raw.replace(devices, `${devices}, "devices": 900`) }, // valid either way
      { topic: countsTopic('val', 'gw-1'), payload: raw.replace(devices, `${devices},"devices":"x"`) }, // the kept one invalid
      { topic: countsTopic('val', 'gw-1'), payload: raw.replace('"seq":20', '"seq":20,"s\\u0065q":21') }, // the key escaped
      { topic: countsTopic('val', 'gw-1'), payload: raw.replace('{', '{"3c22fb01a09e":1,"3c22fb01a09e":2,') }, // no field name
      { topic: statusTopic('val', 'gw-1'), payload: st.replace('"state":"online"', '"state":"online","state":"offline"') },
    ];
    const before = await metric('invalid');
    const from = logs.length;
    await publishAll(run.pub, twice, 1);
    await until(
      'five rejected',
      () => rejected.length,
      (n) => n === 5,
    );
    expect(rejected).toEqual(['invalid', 'invalid', 'invalid', 'invalid', 'invalid']);
    expect((await metric('invalid')) - before).toBe(5);
    const lines = logs.slice(from).filter((l) => l.msg === 'message rejected') as Array<LogLine & { topic?: string }>;
    const line = (key: string) =>
      `${key} is given twice: a payload holds each field once (a JSON parser keeps one of the two values, which one depends on the parser)`;
    expect(lines.map((l) => [l.topic, l.detail])).toEqual([
      ['presence/v1/val/gw-1/counts', line('/wifi/devices')],
      ['presence/v1/val/gw-1/counts', line('/wifi/devices')],
      ['presence/v1/val/gw-1/counts', line('/seq')],
      ['presence/v1/val/gw-1/counts', line('/(a key that is not a field name)')],
      ['presence/v1/val/gw-1/status', line('/state')],
    ]);
    expect(JSON.stringify(logs.slice(from))).not.toContain('3c22fb01a09e');
    // none of the five is written (the 900 not at all)
    expect(fileLines()).toEqual([]);
  });

  it('takes the same message with each key once', async () => {
    const m = window('val', 'gw-1', 30, Date.now() - 1_800_000);
    await publishAll(run.pub, [{ topic: countsTopic('val', 'gw-1'), payload: JSON.stringify(m) }], 1);
    await until(
      'the window written',
      () => fileLines().filter((l) => l.endsWith(` ${Date.parse(m.start)}`)).length,
      (n) => n === 3,
    );
  });
});
