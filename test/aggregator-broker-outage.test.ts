// A broker that cannot be reached, with a real Mosquitto started late and stopped again: the
// aggregator tries every second, and says so once per outage and kind of error, naming the broker,
// instead of two lines a second for as long as it lasts.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { freePort } from './support/ports.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { until } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-broker-outage');

describe.skipIf(!ok)('aggregator: broker outage', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-outage-'));
  let agg: Aggregator | null = null;

  afterAll(async () => {
    await agg?.stop(1000).catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs one line per outage, naming the broker, while it tries every second', async () => {
    broker.port = await freePort();
    const lines: Array<{ level: number; msg: string; broker?: string }> = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    agg = new Aggregator({ mqtt: { url: broker.url, clientId: 'agg-outage' }, out: join(dir, 'x.lp'), http: { port: null } }, { logger });
    const started = agg.start();
    await new Promise((r) => setTimeout(r, 3500)); // nothing listens: 3 or 4 attempts
    const warnings = () => lines.filter((l) => l.level >= 40);
    expect(warnings().map((l) => l.msg)).toEqual([expect.stringMatching(`^no connection to the MQTT broker ${broker.url}: .*ECONNREFUSED.*check mqtt.url`)]);

    await broker.start();
    await started;
    const before = warnings().length;
    await broker.stop();
    await new Promise((r) => setTimeout(r, 3500));
    expect(
      warnings()
        .slice(before)
        .map((l) => l.msg),
    ).toEqual(['connection to the broker closed; reconnecting', expect.stringMatching(/^no connection to the MQTT broker .*ECONNREFUSED/)]);
    await broker.start();
    await until(
      'connected again',
      () => agg!.connected,
      (c) => c,
    );
  });
});
