// A gateway's status with many failing sources, through a real Mosquitto with the shipped
// max_packet_size (8192, docs/mosquitto/presence.conf) to a real aggregator: the schema allows 64
// sources, about 180 bytes each when they fail, but the contract's payloads are at most 4096 bytes.
// onlineStatus() fits the status in: without the last_error sentences, then with the required
// source fields only, then without sources; the aggregator writes each one (none is too_large).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { onlineStatus } from '../gateway/status.ts';
import { encode, MAX_PAYLOAD_BYTES, statusTopic, validateStatus, type SourceStatus } from '../contract/index.ts';
import { publisher, until } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'gateway-status-size');

function status(gateway: string, sources: number, nameLength: number) {
  const src = (i: number): SourceStatus => ({
    name: `s${i}`.padEnd(nameLength, 'x'),
    radio: 'wifi',
    state: 'failed',
    frames_per_s: 0,
    frames: 123_456_789,
    errors: 12_345,
    error_code: 'exited',
    last_error: 'the capture command exited with code 1',
  });
  return onlineStatus({
    site: 'size',
    zone: 'z',
    gateway,
    startedAt: Date.now() - 3600_000,
    now: Date.now(),
    queueDepth: 12_345,
    queueDropped: 0,
    windows: 60,
    lastSeq: 60,
    sources: Array.from({ length: sources }, (_, i) => src(i)),
  });
}

describe.skipIf(!ok)('gateway status size', () => {
  const broker = new Mosquitto({ extraConfig: () => 'max_packet_size 8192' });
  const dir = mkdtempSync(join(tmpdir(), 'presence-status-size-'));

  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a status of 8, 30 or 64 failing sources fits the contract and is written by the aggregator', async () => {
    const few = status('gw-few', 8, 8);
    const many = status('gw-many', 30, 8);
    const most = status('gw-most', 64, 64);
    for (const m of [few, many, most]) {
      expect(encode(m).length).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
      expect(validateStatus(m).ok).toBe(true);
    }
    expect(few.sources?.length).toBe(8);
    expect(few.sources?.every((s) => s.last_error)).toBe(true);
    expect(many.sources?.length).toBe(30);
    expect(many.sources?.some((s) => s.last_error)).toBe(false);
    expect(most.sources).toBeUndefined();

    const out = join(dir, 'status.lp');
    const agg = new Aggregator({
      mqtt: { url: broker.url, clientId: 'agg-status-size' },
      out,
      http: { port: null },
      batch: { flushInterval: '20ms' },
      logLevel: 'silent',
    });
    const rejected: string[] = [];
    agg.on('rejected', (reason: string) => rejected.push(reason));
    const pub = await publisher(broker.url);
    try {
      await agg.start();
      for (const m of [few, many, most]) await pub.publishAsync(statusTopic('size', m.gateway), encode(m), { qos: 1 });
      await until(
        '3 acknowledged',
        () => agg.stats().acked,
        (n) => n === 3,
      );
      expect(rejected).toEqual([]);
      const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
      expect(lines.length).toBe(3);
      expect(lines.find((l) => l.includes('gateway=gw-many'))).toMatch(/sources=30i/);
      expect(lines.find((l) => l.includes('gateway=gw-many'))).toMatch(/sources_failed=30i/);
    } finally {
      await pub.endAsync();
      await agg.stop(2000);
    }
  });
});
