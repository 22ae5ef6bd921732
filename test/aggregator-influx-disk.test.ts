// InfluxDB's own disk fills up under the aggregator: a real influxd 1.6 whose data and WAL folders are
// on a small tmpfs this test mounts (it runs as root; under CI=true a failed mount fails the suite
// instead of skipping it), a real Mosquitto. influxd answers 500 "engine: error writing WAL entry:
// ... no space left on device", and goes on answering so after space is freed until it is
// restarted (1.6.7). Nothing is acknowledged meanwhile; /healthz says the disk is full, where, and
// that influxd may need a restart; once it is back every window is stored once.
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Aggregator } from '../aggregator/aggregator.ts';
import { Influxd } from './support/influxd.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { mountSmallFs } from './support/small-fs.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';

const SUITE = 'aggregator with InfluxDB on a full disk';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('influxd', 'influxdb', SUITE);
const influx = new Influxd('presence');
const mounted = ok && mountSmallFs(SUITE, influx.dir, 'size=16m,mode=0755');

describe.skipIf(!mounted)(SUITE, () => {
  const broker = new Mosquitto();
  let agg: Aggregator | null = null;

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
  });

  afterAll(async () => {
    await agg?.stop(2000).catch(() => {});
    await Promise.all([broker.dispose(), influx.stop()]);
    execFileSync('umount', ['-l', influx.dir]);
    rmSync(influx.dir, { recursive: true, force: true });
  });

  it('nothing is acknowledged while its disk is full, /healthz says so, and every window is stored once after it is freed', async () => {
    agg = new Aggregator(
      {
        mqtt: { url: broker.url, clientId: 'agg-influx-disk' },
        influx: { url: influx.url, api: 'v1', database: 'presence', create: true },
        batch: { size: 200, flushInterval: '50ms', maxRetryDelay: '300ms' },
        http: { port: 0, host: '127.0.0.1' },
      },
      { logger: pino({ level: 'silent' }) },
    );
    await agg.start();
    const pub = await publisher(broker.url);
    const msgs = windows('site-disk', 4, 300); // 1200 windows
    await publishAll(pub, msgs.slice(0, 200).map(countsItem));
    await until(
      'the first 200 windows stored',
      () => influx.count('presence', 'devices', `"radio"='wifi'`),
      (n) => n === 200,
      30_000,
    );

    // The disk full: a file takes every page left.
    const filler = join(influx.dir, 'filler');
    const fd = openSync(filler, 'a');
    try {
      const chunk = Buffer.alloc(65536, 0x5a);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
      expect(fstatSync(fd).size).toBeGreaterThan(0);
    } finally {
      closeSync(fd);
    }
    await publishAll(pub, msgs.slice(200).map(countsItem));
    const health = await until(
      '/healthz names the full disk',
      async () => (await (await fetch(`http://127.0.0.1:${agg!.httpPort}/healthz`)).json()) as { status: string; problems: string[] },
      (h) => h.problems.some((p) => /no space left on device/.test(p)),
      30_000,
    );
    expect(health.status).toBe('unhealthy');
    const problem = health.problems.find((p) => /no space left on device/.test(p))!;
    expect(problem).toMatch(/the disk of InfluxDB's data or WAL folder \(or its quota\) is full; free space there/);
    expect(problem).toMatch(/until it is restarted/);
    // What the disk still took (pages the WAL had already) is stored and acknowledged; nothing else.
    const acked = agg.stats().acked;
    expect(acked).toBeLessThan(1200);
    expect(acked).toBeLessThanOrEqual(await influx.count('presence', 'devices', `"radio"='wifi'`));

    // Space freed, influxd restarted (1.6.7 refuses on until then): every window stored, once.
    rmSync(filler);
    await influx.stop();
    await influx.start();
    await until(
      'all 1200 windows stored',
      () => influx.count('presence', 'devices', `"radio"='wifi'`),
      (n) => n === 1200,
      60_000,
    );
    await until(
      'all 1200 acknowledged',
      () => agg!.stats().acked,
      (n) => n >= 1200,
      30_000,
    );
    expect(await influx.count('presence', 'devices', `"radio"='ble'`)).toBe(1200);
    expect(await influx.count('gateway_status', 'window_complete')).toBe(1200);
    await pub.endAsync();
  }, 150_000);
});
