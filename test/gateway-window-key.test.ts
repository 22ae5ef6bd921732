// The window keys never leave the module: a real gateway (in this process, so that the CSPRNG call
// that fills each window's key can be watched from outside, as test/firmware-window.test.ts does)
// counts real captures at the most verbose log level against a real Mosquitto; every key it drew is
// then searched for, in every written form, in every byte published on `#`, every log line and
// every file of its queue folder.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Gateway } from '../gateway/gateway.ts';
import { config, subscriber } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { capturesDir, need } from './support/need.ts';

const drawn = vi.hoisted(() => [] as Uint8Array[]);
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  const randomFillSync = ((buf: Uint8Array, offset = 0, size = buf.length - offset) => {
    const out = real.randomFillSync(buf, offset, size);
    if (size === 32) drawn.push(Uint8Array.from(buf.subarray(offset, offset + size)));
    return out;
  }) as typeof real.randomFillSync;
  return { ...real, default: { ...real, randomFillSync }, randomFillSync };
});

const SUITE = 'gateway window keys';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);
const captures = capturesDir(SUITE);

/** Where a key shows in a blob: hex (either case, with or without separators), base64 (both alphabets), raw bytes, any 8-byte run of them. */
function keyFindings(where: string, blob: Buffer, keys: Uint8Array[]): string[] {
  const out: string[] = [];
  const text = blob.toString('latin1');
  const lower = text.toLowerCase();
  const bare = lower.replace(/[^0-9a-z+/=_-]/g, '');
  for (const k of keys) {
    const b = Buffer.from(k);
    for (let i = 0; i + 8 <= 32; i += 8) {
      const part = b.subarray(i, i + 8);
      if (blob.includes(part)) out.push(`${where}: raw bytes of a key`);
      if (lower.includes(part.toString('hex')) || bare.includes(part.toString('hex'))) out.push(`${where}: a key in hex`);
    }
    for (let k0 = 0; k0 < 3; k0++) {
      const enc = Buffer.concat([Buffer.alloc(k0), b])
        .toString('base64')
        .slice(Math.ceil((8 * k0) / 6), -4);
      for (const form of [enc, enc.replace(/\+/g, '-').replace(/\//g, '_')]) if (text.includes(form.slice(0, 24))) out.push(`${where}: a key in base64`);
    }
  }
  return out;
}

describe.skipIf(!hasMosquitto || !captures)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-key-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('no window key it drew is in any byte published, any log line (trace) or any file it wrote', async () => {
    const sub = await subscriber(broker.url, { filter: '#' });
    let log = '';
    const logger = pino(
      { level: 'trace', base: null },
      new Writable({
        write(chunk, _enc, done) {
          log += String(chunk);
          done();
        },
      }),
    );
    const files = ['wifi/iPhone11-B_anonymized.pcap', 'wifi/sc6-61_2023-04-17_anonymized.pcap', 'ble/take_2__ble_all_adv.pcap'];
    const queueDir = join(tmp, 'q');
    const gw = new Gateway({
      config: config({
        site: 'key',
        zone: 'z',
        id: 'g',
        mqttUrl: broker.url,
        source: files.map((f, i) => `s${i}=pcap:${join(captures!, f)}`),
        speed: 'max',
        window: '10s',
        ignoreFcs: true,
        queueDir,
      }),
      log: logger,
      processMetrics: false,
    });
    const windows: number[] = [];
    gw.on('window', (m) => windows.push(m.wifi.devices + m.ble.devices));
    drawn.length = 0;
    await gw.run();
    await sub.client.endAsync();
    // every window was opened under a key drawn here, and the windows counted devices
    expect(windows.length).toBeGreaterThan(3);
    expect(windows.some((d) => d > 0)).toBe(true);
    expect(drawn.length).toBeGreaterThanOrEqual(windows.length);
    expect(new Set(drawn.map((k) => Buffer.from(k).toString('hex'))).size).toBe(drawn.length);
    const wire = Buffer.concat(sub.messages.flatMap((m) => [Buffer.from(m.topic), Buffer.from(m.payload)]));
    expect(sub.messages.some((m) => m.topic.endsWith('/counts'))).toBe(true);
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    const found = [...keyFindings('the broker', wire, drawn), ...keyFindings('the log', Buffer.from(log), drawn)];
    for (const f of walk(queueDir)) found.push(...keyFindings(f, readFileSync(f), drawn));
    expect(log).toContain('window closed');
    expect(found).toEqual([]);
    // control: a key written into a log line in hex, base64 or as bytes is found
    const k = Buffer.from(drawn[1]!);
    expect(keyFindings('control', Buffer.from(`${log}{"key":"${k.toString('hex').toUpperCase()}"}`), drawn)).not.toEqual([]);
    expect(keyFindings('control', Buffer.from(`${log}{"key":"${k.toString('base64url')}"}`), drawn)).not.toEqual([]);
    expect(keyFindings('control', Buffer.concat([wire, k]), drawn)).not.toEqual([]);
  });
});
