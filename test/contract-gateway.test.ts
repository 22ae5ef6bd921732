// The gateway's side of the closed contract, with a real Mosquitto: its publisher validates every
// message right before handing it to MQTT, so a queued window or a status with a field outside the
// contract is logged and never published (a corridor sketch too), and a status whose source error
// holds an address goes out sanitised (what onlineStatus() builds). A capture command that prints addresses on stderr in
// every form and dies: its status carries a fixed error code and a message with no address, and no
// log line holds one either.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { scan } from './support/leak.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { config, queuedWindow, subscriber, waitFor } from './gateway-support.ts';
import { Gateway } from '../gateway/gateway.ts';
import { loadConfig } from '../gateway/config.ts';
import { WindowQueue } from '../gateway/queue.ts';
import { Publisher } from '../gateway/publisher.ts';
import { onlineStatus } from '../gateway/status.ts';
import { SketchQueue, sketchMessage, type SketchDrop } from '../gateway/corridor.ts';
import {
  countsTopic,
  siteFilter,
  sketchTopic,
  statusTopic,
  validateCounts,
  validateStatus,
  type CountsMessage,
  type SketchMessage,
  type StatusMessage,
} from '../contract/index.ts';

const SUITE = 'gateway publishes only the contract';
const ok = need('mosquitto', 'mosquitto', SUITE);

describe.skipIf(!ok)(SUITE, () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-contract-gw-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('drops a queued window and a status outside the contract, publishes the good ones, sanitises last_error', async () => {
    const logs: Array<{ level: number; msg: string; reason?: string }> = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s)) });
    const cfg = loadConfig({ site: 'cg', zone: 'z', id: 'g', mqttUrl: broker.url, source: ['pcap:/dev/null'], queueDir: dir }, {});
    const queue = WindowQueue.open(dir, { maxWindows: 100, log });
    const window = (seq: number): CountsMessage => queuedWindow('cg', seq, { frames: 10, devices: 3, estimate: 3 }, { frames: 5, devices: 2, estimate: 2 });
    queue.append(window(1));
    queue.append({ ...window(2), wifi: { ...window(2).wifi, mac: '3c:22:fb:01:a0:9e' } } as CountsMessage);
    queue.append(window(3));

    const sub = await subscriber(broker.url, { filter: siteFilter('cg') });
    const pub = new Publisher(cfg, queue, log, 30);
    pub.start();
    try {
      await waitFor(() => queue.depth === 0, 20_000, 'the queue to empty');
      const status = onlineStatus({
        site: 'cg',
        zone: 'z',
        gateway: 'g',
        startedAt: 0,
        now: Date.UTC(2026, 5, 1, 13),
        queueDepth: 0,
        queueDropped: 0,
        windows: 3,
        lastSeq: 3,
        sources: [
          {
            name: 'wlan0',
            radio: 'wifi',
            state: 'restarting',
            frames_per_s: 0,
            errors: 1,
            error_code: 'exited',
            last_error: 'tcpdump: dev 0xAABBCCDDEEFF gone\nbye\u0007',
          },
        ],
      });
      await pub.publishStatus({ ...status, hashes: ['9f86d081884c7d65'] } as StatusMessage);
      await pub.publishStatus(status);
      await waitFor(() => sub.messages.some((m) => m.topic === statusTopic('cg', 'g')), 20_000, 'the status');
    } finally {
      await pub.stop();
      await sub.client.endAsync();
    }
    const counts = sub.messages.filter((m) => m.topic === countsTopic('cg', 'g')).map((m) => JSON.parse(m.payload.toString()));
    expect(counts.map((c) => c.seq)).toEqual([1, 3]);
    for (const c of counts) expect(validateCounts(c).ok).toBe(true);
    const statuses = sub.messages.filter((m) => m.topic === statusTopic('cg', 'g')).map((m) => JSON.parse(m.payload.toString()) as StatusMessage);
    for (const s of statuses) expect(validateStatus(s).ok, JSON.stringify(s)).toBe(true);
    expect(statuses.some((s) => 'hashes' in s)).toBe(false);
    const online = statuses.find((s) => s.state === 'online')!;
    // Text that is not one of the contract's fixed sentences is replaced by the sentence of its error_code.
    expect(online.sources![0].last_error).toBe('the capture command exited');
    const errors = logs.filter((l) => l.level >= 50).map((l) => `${l.msg}: ${l.reason}`);
    expect(errors).toEqual([
      'queued window does not match the contract; dropped: /wifi/mac is not a field of the contract',
      'status does not match the contract; not published: /hashes is not a field of the contract',
    ]);
  });

  it('a capture tool printing addresses on stderr: status has a fixed error_code and a last_error without them; logs neither', async () => {
    // The forms of issue 10.2 and more, for the address 3c:22:fb:01:a0:9e (and reversed).
    const forms = [
      'dev 0x3c22fb01a09e',
      '3c 22 fb 01 a0 9e',
      '3c_22_fb_01_a0_9e',
      '3c22-fb01-a09e',
      '3C:22:FB:01:A0:9E',
      '9e-a0-01-fb-22-3c',
      '3c22fb.01a09e',
      '0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e',
      '3c:22:fb:1:a0:9e',
    ];
    const logs: string[] = [];
    const log = pino({ level: 'trace' }, { write: (s: string) => void logs.push(s) });
    const sub = await subscriber(broker.url, { filter: siteFilter('tool') });
    const script = `echo "${forms.join(' | ')}" >&2`; // one stderr line: it becomes the message
    const gw = new Gateway({
      config: config({
        site: 'tool',
        zone: 'z',
        id: 'g',
        mqtt: broker.url,
        source: [`wifi=cmd:${script}; exit 3`],
        window: '1s',
        statusInterval: '1s',
        queueDir: join(dir, 'q-tool'),
      }),
      log,
    });
    await gw.start();
    try {
      await waitFor(() => gw.sources[0].errors >= 2, 20_000, 'two failures of the command');
      await waitFor(
        () => sub.messages.some((m) => m.topic === statusTopic('tool', 'g') && m.payload.includes('error_code')),
        20_000,
        'a status with the error',
      );
    } finally {
      await gw.stop();
      await sub.client.endAsync();
    }
    const statuses = sub.messages.filter((m) => m.topic === statusTopic('tool', 'g')).map((m) => JSON.parse(m.payload.toString()) as StatusMessage);
    for (const st of statuses) expect(validateStatus(st).ok, JSON.stringify(st)).toBe(true);
    const failing = statuses.find((st) => st.sources?.[0]?.error_code)!.sources![0];
    // The command wrote nothing before it died: it exited (its code says why), it wrote no damaged capture.
    expect(failing.error_code).toBe('exited');
    expect(failing.last_error).toBe('the capture command exited with code 3'); // no tool text at all
    // The log says what went wrong (the exit code) and keeps the tool's words, redacted.
    expect(logs.join('\n')).toMatch(/"code":"exited","exit_code":3,"signal":null,"stderr":"dev <redacted>/);
    const everything = [...sub.messages.map((m) => m.payload.toString()), ...logs].join('\n').toLowerCase();
    for (const hex of ['3c22fb01a09e', '9ea001fb223c']) expect(everything.replace(/0x|[^0-9a-f]/g, '')).not.toContain(hex);
    for (const f of forms) expect(everything).not.toContain(f.toLowerCase().replace(/^dev /, ''));
  });
});

describe.skipIf(!ok)('gateway publishes only contract sketches', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-contract-sketch-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('drops a corridor sketch outside the contract (a field it does not have, bits of the wrong length) and publishes the good one', async () => {
    const logs: Array<{ msg: string; reason?: string }> = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s)) });
    const cfg = loadConfig({ site: 'cs', zone: 'z', id: 'g', mqttUrl: broker.url, source: ['pcap:/dev/null'], queueDir: dir }, {});
    const queue = WindowQueue.open(dir, { maxWindows: 100, log });
    const HOUR = 3_600_000;
    const start = Math.floor(Date.now() / 60_000) * 60_000;
    const epoch = Math.floor(start / HOUR);
    const sketch = (fill: number) =>
      sketchMessage(
        { site: 'cs', zone: 'z', gateway: 'g' },
        { start, end: start + 60_000 },
        { group: 'main-street', epoch, epochMs: HOUR, m: 1024, p: 0.5, bits: new Uint8Array(128).fill(fill), keyCheck: '0123456789abcdef' },
      );
    const drops: SketchDrop[] = [];
    const sketches = new SketchQueue(10, HOUR, (r) => drops.push(r));
    sketches.push({ ...sketch(1), mac: '3c:22:fb:01:a0:9e' } as SketchMessage);
    sketches.push({ ...sketch(2), bits: Buffer.alloc(64, 2).toString('base64') });
    sketches.push(sketch(3));
    const sub = await subscriber(broker.url, { filter: sketchTopic('cs', 'g') });
    const pub = new Publisher(cfg, queue, log, 30);
    pub.sketches = sketches;
    pub.start();
    try {
      await waitFor(() => sub.messages.length >= 1 && sketches.depth === 0, 20_000, 'the good sketch published');
      await new Promise((r) => setTimeout(r, 300)); // time for one that should not come
      expect(sub.messages.map((m) => JSON.parse(m.payload.toString('utf8')))).toEqual([sketch(3)]);
      expect(drops).toEqual(['invalid', 'invalid']);
      const dropped = logs.filter((l) => l.msg === 'sketch does not match the contract; dropped');
      expect(dropped).toHaveLength(2);
      expect(JSON.stringify(logs)).not.toMatch(/3c:22:fb/);
    } finally {
      await pub.stop();
      queue.close();
      await sub.client.endAsync();
    }
  });
});

describe('a damaged window file in the queue folder', () => {
  it('is removed and logged with its seq and what is wrong, never a piece of its content', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-queue-damaged-'));
    try {
      const lines: string[] = [];
      const log = pino({ level: 'trace' }, { write: (s: string) => void lines.push(s) });
      const queue = WindowQueue.open(dir, { maxWindows: 100, log });
      const seqs = [1, 2, 3];
      for (const seq of seqs)
        queue.append({
          v: 1,
          site: 'q',
          zone: 'z',
          gateway: 'g',
          seq,
          start: '2026-06-01T12:00:00.000Z',
          end: '2026-06-01T12:01:00.000Z',
          complete: true,
          wifi: { frames: 1, devices: 1, estimate: 1 },
          ble: { frames: 0, devices: 0, estimate: 0 },
        });
      // What a torn write can leave: other bytes of the disk where the window was (here an address).
      const files = readdirSync(join(dir, 'windows')).sort();
      expect(files).toHaveLength(3);
      writeFileSync(join(dir, 'windows', files[0]!), 'da:22:fb:01:a0:9e seen');
      writeFileSync(join(dir, 'windows', files[1]!), '{"v":1,"mac":da22fb01a09e}');
      expect(queue.read(seqs[0]!)).toBeNull();
      expect(queue.read(seqs[1]!)).toBeNull();
      expect(queue.read(seqs[2]!)).toMatchObject({ wifi: { devices: 1 } });
      const removed = lines.map((l) => JSON.parse(l)).filter((e) => e.msg === 'queue: unreadable window file removed');
      expect(removed.map((e) => e.seq)).toEqual([seqs[0], seqs[1]]);
      expect(readdirSync(join(dir, 'windows'))).toEqual([files[2]]);
      const text = lines.join('\n');
      expect(scan('log', text, [Uint8Array.from([0xda, 0x22, 0xfb, 0x01, 0xa0, 0x9e])], { hashLike: false })).toEqual([]);
      expect(text).not.toMatch(/da22|seen/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
