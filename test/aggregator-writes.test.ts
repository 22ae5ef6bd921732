// Every write outcome counted truthfully, with real servers: points InfluxDB 1.6.7 refuses (beyond
// the retention policy, field type conflict) are dropped and counted by reason, never as written,
// their messages acknowledged and /healthz "degraded". The v2 path against a real VictoriaMetrics
// behind a fault-injecting proxy for the InfluxDB 2.x answers neither server gives: 422 partial
// write, 400 without a count (the refused point found by splitting), 413 (batch split), 429 with
// Retry-After (honoured), 401 (unhealthy with the reason, nothing acknowledged, then written).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Victoria } from './support/victoria.ts';
import { FaultProxy } from './support/fault-proxy.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsItem, publishAll, publisher, status, statusItem, until, window, windows } from './aggregator-helpers.ts';
import type { CountsMessage } from '../contract/index.ts';

const ok =
  need('mosquitto', 'mosquitto', 'aggregator-writes') &&
  need('influxd', 'influxdb', 'aggregator-writes') &&
  need('victoria-metrics', 'victoria-metrics', 'aggregator-writes');

let seq = 0;
const metric = (text: string, name: string, labels = '') => {
  const m = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[{}]/g, '')}\\}` : ''} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

describe.skipIf(!ok)('aggregator write outcomes', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  const vm = new Victoria();
  let proxy: FaultProxy;
  let pub: MqttClient;
  let agg: Aggregator | null = null;

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start(), vm.start()]);
    proxy = await new FaultProxy(vm.url).start();
    pub = await publisher(broker.url);
  });

  afterEach(async () => {
    proxy.rule = () => undefined;
    await agg?.stop(2000).catch(() => {});
    agg = null;
  });

  afterAll(async () => {
    await pub?.endAsync().catch(() => {});
    await proxy?.close();
    await Promise.all([broker.dispose(), influx.dispose(), vm.dispose()]);
  });

  async function start(influxCfg: Record<string, unknown>, batchSize = 300): Promise<Aggregator> {
    agg = new Aggregator({
      mqtt: { url: broker.url, clientId: `agg-writes-${++seq}` },
      influx: influxCfg,
      batch: { size: batchSize, flushInterval: '100ms', maxBuffer: 1000, maxRetryDelay: '300ms' },
      http: { port: 0, host: '127.0.0.1' },
      missingAfterWindows: 1_000_000,
      logLevel: 'silent',
    });
    await agg.start();
    return agg;
  }
  const scrape = async (a: Aggregator) => (await fetch(`http://127.0.0.1:${a.httpPort}/metrics`)).text();
  const health = async (a: Aggregator) => {
    const r = await fetch(`http://127.0.0.1:${a.httpPort}/healthz`);
    return { code: r.status, body: (await r.json()) as { status: string; problems: string[]; dropped?: Record<string, number> } };
  };
  const allAcked = (a: Aggregator, n: number) =>
    until(
      `${n} messages acknowledged`,
      () => a.stats().acked,
      (x) => x >= n,
      30_000,
    );

  it('1.x: points beyond the retention policy are dropped and counted as such, not as written; the stream goes on', async () => {
    await influx.query('CREATE DATABASE "short" WITH DURATION 1h', 'POST');
    const a = await start({ url: influx.url, api: 'v1', database: 'short' });
    const old = windows('site-old', 3, 10, Date.parse('2023-04-27T12:00:00Z')); // 30 windows of a 2023 capture
    const recent = windows('site-new', 2, 10); // 20 windows of the last minutes
    await publishAll(pub, [...old, ...recent].map(countsItem));
    await allAcked(a, 50);
    const stored = (site: string) =>
      influx.rows(`SELECT count("devices") FROM "short"."autogen"."presence" WHERE "site"='${site}'`).then((r) => (r.length ? Number(r[0].count) : 0));
    expect(await stored('site-new')).toBe(40);
    expect(await stored('site-old')).toBe(0);
    // three points per window: wifi, ble and its marker in gateway_status
    expect(a.stats()).toMatchObject({ pointsWritten: 60, pointsDropped: 90, queueDepth: 0 });
    const m = await scrape(a);
    expect(metric(m, 'presence_aggregator_points_written_total', '{measurement="presence"}')).toBe(40);
    expect(metric(m, 'presence_aggregator_points_written_total', '{measurement="gateway_status"}')).toBe(20);
    expect(metric(m, 'presence_aggregator_points_dropped_total', '{reason="retention"}')).toBe(90);
    expect(metric(m, 'presence_aggregator_points_dropped_total', '{reason="type_conflict"}')).toBe(0);
    const h = await health(a);
    expect(h.code).toBe(200);
    expect(h.body.status).toBe('degraded');
    expect(h.body.dropped).toEqual({ retention: 90 });
    // the fix keeps the retention (never "DURATION INF" on the detail policy) and names where an old capture goes
    expect(h.body.problems.join('\n')).toMatch(
      /90 point\(s\) refused .*retention.*beyond retention policy.*to load an old capture, write it where it is kept: 1\.x --influx-rp autogen/,
    );
    expect(h.body.problems.join('\n')).not.toMatch(/DURATION INF/);
  });

  it("1.x: a window beyond the retention policy in a batch keeps the other gateways' stored windows on the page", async () => {
    await influx.query('CREATE DATABASE "short2" WITH DURATION 1h', 'POST');
    // one batch: one gateway replaying a 2023 window among the recent windows of two others
    const a = await start({ url: influx.url, api: 'v1', database: 'short2' }, 1000);
    const recent = windows('site-live', 2, 5);
    const old = window('site-live', 'gw-stale', 0, Date.parse('2023-04-27T12:00:00Z'), 1000, 'zone-stale');
    await publishAll(pub, [...recent.slice(0, 5), old, ...recent.slice(5)].map(countsItem));
    await allAcked(a, 11);
    expect(a.stats()).toMatchObject({ pointsWritten: 30, pointsDropped: 3, queueDepth: 0 });
    const stored = await influx.rows(`SELECT count("devices") FROM "short2"."autogen"."presence" WHERE "site"='site-live'`);
    expect(Number(stored[0].count)).toBe(20);
    // the page shows what was stored: the ten windows of gw-0 and gw-1, not the refused one
    const snap = a.recent!.snapshot(Date.now());
    expect(snap.gateways.map((g) => g.gateway).sort()).toEqual(['gw-0', 'gw-1']);
    const zone = snap.zones.find((z) => z.zone === 'zone-a');
    expect(zone?.windows.length).toBe(5);
    expect(zone?.windows.every((w) => w.gateways === 2)).toBe(true);
    expect(snap.zones.some((z) => z.zone === 'zone-stale')).toBe(false);
  });

  it('1.x: a field type conflict drops the conflicting points (counted) and the others are stored', async () => {
    await influx.query('CREATE DATABASE "conflict"', 'POST');
    // devices written once as a float: the aggregator's integer devices conflict from now on
    const w = await fetch(`${influx.url}/write?db=conflict&precision=ms`, {
      method: 'POST',
      body: `presence,site=earlier,radio=wifi devices=1.5 ${Date.now() - 3600_000}`,
    });
    expect(w.status).toBe(204);
    const a = await start({ url: influx.url, api: 'v1', database: 'conflict' });
    const msgs = windows('site-conflict', 3, 10);
    await publishAll(pub, msgs.map(countsItem));
    await allAcked(a, 30);
    // the presence points conflict; the windows' markers in gateway_status do not
    expect(a.stats()).toMatchObject({ pointsWritten: 30, pointsDropped: 60 });
    const m = await scrape(a);
    expect(metric(m, 'presence_aggregator_points_written_total', '{measurement="presence"}')).toBeNaN(); // never incremented
    expect(metric(m, 'presence_aggregator_points_dropped_total', '{reason="type_conflict"}')).toBe(60);
    const h = await health(a);
    expect(h.body.status).toBe('degraded');
    expect(h.body.problems.join('\n')).toMatch(/type_conflict.*field type conflict/);
    expect(await influx.rows(`SELECT count("devices") FROM "conflict"."autogen"."presence" WHERE "site"='site-conflict'`)).toEqual([]);
  });

  const v2 = () => ({ url: proxy.url, api: 'v2', token: 'unused', org: 'city', bucket: 'presence' });
  const vmCount = (site: string, expected: number) =>
    until(
      `${expected} samples of ${site}`,
      () => vm.count(`presence_devices{site="${site}"}`),
      (n) => n === expected,
      20_000,
    );

  it('v2: a 422 partial write stores the rest and counts the refused points as dropped', async () => {
    proxy.rule = (r) => {
      if (!r.path.startsWith('/api/v2/write')) return undefined;
      const refused = r.lines.filter((l) => l.includes('gateway=gw-1'));
      if (!refused.length) return undefined;
      return {
        status: 422,
        forward: r.lines.filter((l) => !l.includes('gateway=gw-1')),
        body: JSON.stringify({
          code: 'unprocessable entity',
          message: `failure writing points to database: partial write: field type conflict: input field "devices" on measurement "presence" is type integer, already exists as type float dropped=${refused.length}`,
        }),
      };
    };
    const a = await start(v2());
    await publishAll(pub, windows('site-422', 2, 20).map(countsItem));
    await allAcked(a, 40);
    expect(await vmCount('site-422', 40)).toBe(40);
    expect(a.stats()).toMatchObject({ pointsWritten: 60, pointsDropped: 60 });
    expect(metric(await scrape(a), 'presence_aggregator_points_dropped_total', '{reason="type_conflict"}')).toBe(60);
    expect((await health(a)).body.status).toBe('degraded');
  });

  it('v2: a 400 that does not say which point is refused: the batch is split until it is found; the others are stored', async () => {
    // one clock reading for the three: read per window, a millisecond passing between two made the
    // 1-s windows overlap by it, and the aggregator refused one as overlap instead of writing it
    const at = Date.now() - 60_000;
    const poison: CountsMessage[] = [0, 1, 2].map((s) => window('site-400', 'gw-poison', s, at - s * 1000));
    proxy.rule = (r) => {
      if (!r.path.startsWith('/api/v2/write')) return undefined;
      const bad = r.lines.find((l) => l.includes('gateway=gw-poison'));
      return bad
        ? { status: 400, body: JSON.stringify({ code: 'invalid', message: `unable to parse '${bad.slice(0, 40)}': invalid field format` }) }
        : undefined;
    };
    const a = await start(v2());
    const good = windows('site-400', 3, 10);
    const items = good.map(countsItem);
    poison.forEach((p, i) => {
      items.splice(i * 9 + 4, 0, countsItem(p));
    });
    await publishAll(pub, items, 1);
    await allAcked(a, 33);
    expect(await vmCount('site-400', 60)).toBe(60);
    expect(a.stats()).toMatchObject({ pointsWritten: 90, pointsDropped: 9 });
    expect(metric(await scrape(a), 'presence_aggregator_points_dropped_total', '{reason="bad_line"}')).toBe(9);
    expect(proxy.writes().filter((w) => w.status === 400).length).toBeGreaterThanOrEqual(6);
  });

  it('v2: a 400 for every write that names no fault of a point (a proxy in front, an HTTPS port) drops nothing and acknowledges nothing until writes go through', async () => {
    const page =
      '<html><head><title>400 The plain HTTP request was sent to HTTPS port</title></head><body><center><h1>400 Bad Request</h1></center><hr><center>nginx</center></body></html>';
    proxy.rule = (r) => (r.path.startsWith('/api/v2/write') ? { status: 400, headers: { 'content-type': 'text/html' }, body: page } : undefined);
    const a = await start(v2());
    await publishAll(pub, windows('site-https', 2, 10).map(countsItem));
    await until(
      'the request refused as a whole, reported',
      async () => (await health(a)).body.problems.join('\n'),
      (p) => p.includes('refuses every write (400)'),
    );
    const refusedWrites = proxy.writes().filter((w) => w.status === 400).length;
    await new Promise((r) => setTimeout(r, 1500)); // several retries (batch.maxRetryDelay 300ms)
    const h = await health(a);
    expect(h.code).toBe(503);
    expect(h.body.problems.join('\n')).toMatch(/plain HTTP request was sent to HTTPS port.*check influx\.url/);
    expect(a.stats()).toMatchObject({ acked: 0, pointsDropped: 0, pointsWritten: 0 });
    // Retried as a whole, not split again line by line.
    expect(proxy.writes().filter((w) => w.status === 400).length - refusedWrites).toBeLessThanOrEqual(20);
    proxy.rule = () => undefined;
    await allAcked(a, 20);
    expect(await vmCount('site-https', 40)).toBe(40);
    expect(a.stats()).toMatchObject({ pointsWritten: 60, pointsDropped: 0 });
  });

  it('v1: a point VictoriaMetrics refuses (a line too long), the only line of its batch, is dropped and counted, not retried for ever', async () => {
    // A real VictoriaMetrics that takes lines of at most 200 bytes: the status line of the longest
    // gateway id (224 bytes), alone in its batch, is refused ("too long line"); the same server takes an
    // empty write, so the point is at fault, not the request.
    const small = await new Victoria(['-influx.maxLineSize=200']).start();
    try {
      const a = await start({ url: small.url, api: 'v1', database: 'presence' }, 1);
      await publishAll(pub, [statusItem(status('site-long', `gw-${'x'.repeat(60)}`))], 1);
      await until(
        'the refused point dropped',
        () => a.stats().pointsDropped,
        (n) => n === 1,
        10_000,
      );
      await publishAll(pub, windows('site-long', 1, 5).map(countsItem), 1);
      await allAcked(a, 6);
      await until(
        'the 10 points after it stored',
        () => small.count('presence_devices{site="site-long"}'),
        (n) => n === 10,
        20_000,
      );
      expect(a.stats()).toMatchObject({ pointsWritten: 15, pointsDropped: 1 });
      expect(metric(await scrape(a), 'presence_aggregator_points_dropped_total', '{reason="refused"}')).toBe(1);
      const h = await health(a);
      expect(h.code).toBe(200);
      expect(h.body.status).toBe('degraded');
      expect(h.body.problems.join('\n')).toMatch(/too long line/);
      expect(h.body.problems.join('\n')).not.toMatch(/refuses every write/);
    } finally {
      await agg?.stop(2000).catch(() => {});
      agg = null;
      await small.dispose();
    }
  });

  it('v1: once a refused request is fixed, a point the server then refuses in other words is dropped, not retried for ever as the request', async () => {
    // A proxy page refuses every write (the request is refused: nothing dropped); then the proxy lets
    // writes through to a VictoriaMetrics that refuses the lone 224-byte status line ("too long line").
    const small = await new Victoria(['-influx.maxLineSize=200']).start();
    const front = await new FaultProxy(small.url).start();
    try {
      const page = '<html><head><title>400 The plain HTTP request was sent to HTTPS port</title></head><body>nginx</body></html>';
      front.rule = (r) => (r.path.startsWith('/write') ? { status: 400, headers: { 'content-type': 'text/html' }, body: page } : undefined);
      const a = await start({ url: front.url, api: 'v1', database: 'presence' }, 1);
      await publishAll(pub, [statusItem(status('site-fixed', `gw-${'y'.repeat(60)}`))], 1);
      await until(
        'the request refused as a whole, reported',
        async () => (await health(a)).body.problems.join('\n'),
        (p) => p.includes('refuses every write (400)'),
      );
      front.rule = () => undefined;
      await until(
        'the refused point dropped',
        () => a.stats().pointsDropped,
        (n) => n === 1,
        10_000,
      );
      await publishAll(pub, windows('site-fixed', 1, 3).map(countsItem), 1);
      await allAcked(a, 4);
      expect(a.stats()).toMatchObject({ pointsWritten: 9, pointsDropped: 1 });
    } finally {
      await agg?.stop(2000).catch(() => {});
      agg = null;
      await front.close();
      await small.dispose();
    }
  });

  it('v1: a 200 with a page in it (a proxy sign-in page at influx.url) is not taken as stored: nothing acknowledged until writes go through', async () => {
    proxy.rule = (r) =>
      r.path.startsWith('/write')
        ? { status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Sign in to continue</body></html>' }
        : undefined;
    const a = await start({ url: proxy.url, api: 'v1', database: 'presence' });
    await publishAll(pub, windows('site-signin', 2, 5).map(countsItem));
    await until(
      'the answer reported',
      async () => (await health(a)).body.problems.join('\n'),
      (p) => p.includes('Sign in to continue'),
    );
    const h = await health(a);
    expect(h.code).toBe(503);
    expect(h.body.problems.join('\n')).toMatch(/answered 200 to a write.*204 expected.*not the write endpoint/);
    expect(a.stats()).toMatchObject({ acked: 0, pointsWritten: 0, pointsDropped: 0 });
    proxy.rule = () => undefined;
    await allAcked(a, 10);
    expect(await vmCount('site-signin', 20)).toBe(20);
  });

  it('v2: 413 splits a batch until it fits; nothing is dropped', async () => {
    proxy.rule = (r) =>
      r.path.startsWith('/api/v2/write') && r.lines.length > 25
        ? { status: 413, body: JSON.stringify({ code: 'request too large', message: 'unable to read data: points batch is too large' }) }
        : undefined;
    const before = proxy.writes().length;
    const a = await start(v2(), 300);
    await publishAll(pub, windows('site-413', 4, 25).map(countsItem)); // 100 windows, 300 points (200 of them presence)
    await allAcked(a, 100);
    expect(await vmCount('site-413', 200)).toBe(200);
    expect(a.stats()).toMatchObject({ pointsWritten: 300, pointsDropped: 0 });
    const writes = proxy.writes().slice(before);
    expect(writes.some((w) => w.status === 413)).toBe(true);
    expect(writes.filter((w) => w.status === 204).every((w) => w.lines.length <= 25)).toBe(true);
    expect((await health(a)).body.status).toBe('ok');
  });

  it('v2: 429 with Retry-After is honoured before the next attempt', async () => {
    let throttled = 0;
    proxy.rule = (r) =>
      r.path.startsWith('/api/v2/write') && throttled++ === 0
        ? { status: 429, headers: { 'retry-after': '2' }, body: JSON.stringify({ code: 'too many requests', message: 'org exceeded write limit' }) }
        : undefined;
    const before = proxy.writes().length;
    const a = await start(v2());
    await publishAll(pub, windows('site-429', 1, 5).map(countsItem));
    await allAcked(a, 5);
    expect(await vmCount('site-429', 10)).toBe(10);
    const writes = proxy.writes().slice(before);
    expect(writes[0].status).toBe(429);
    // maxRetryDelay is 300 ms here: only Retry-After explains a pause of 2 s
    expect(writes[1].at - writes[0].at).toBeGreaterThanOrEqual(1950);
    expect(a.stats().pointsDropped).toBe(0);
  });

  it('v2: 401 makes /healthz unhealthy with the reason, acknowledges nothing, and writes once the credentials work', async () => {
    let refuse = true;
    proxy.rule = (r) =>
      r.path.startsWith('/api/v2/write') && refuse
        ? { status: 401, body: JSON.stringify({ code: 'unauthorized', message: 'unauthorized access' }) }
        : undefined;
    const a = await start(v2());
    await publishAll(pub, windows('site-401', 1, 8).map(countsItem));
    const h = await until(
      'healthz unhealthy',
      () => health(a),
      (x) => x.code === 503,
    );
    expect(h.body.status).toBe('unhealthy');
    expect(h.body.problems.join('\n')).toMatch(/refuses the credentials \(401\).*influx\.token/);
    expect(a.stats().acked).toBe(0);
    refuse = false;
    await allAcked(a, 8);
    expect(await vmCount('site-401', 16)).toBe(16);
    expect((await health(a)).body.status).toBe('ok');
    expect(a.stats()).toMatchObject({ pointsWritten: 24, pointsDropped: 0 });
  });
});
