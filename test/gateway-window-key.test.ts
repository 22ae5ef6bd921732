// The window keys never leave the module: a real gateway (in this process, so that the CSPRNG call
// that fills each window's key can be watched from outside, as test/firmware-window.test.ts does)
// counts real captures at the most verbose log level against a real Mosquitto; every key it drew is
// then searched for, in every written form, in every byte published on `#`, every log line and
// every file of its queue folder.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Gateway } from '../gateway/gateway.ts';
import { bleCapture, config, ROOT, subscriber, waitFor, wifiCapture } from './gateway-support.ts';
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

// The same, for the real process: `presence gateway` as a child process, as it runs in the field,
// counting a simulated capture of several 1-s windows against a real Mosquitto. A preload
// (`node --import`, a file in the test's folder) wraps `crypto.randomFillSync` and appends every
// 32-byte fill of a WebAssembly memory (the window key's call in firmware/host/firmware.ts) to a side
// file in a folder of the test that the gateway is not told of. The gateway runs in a working folder,
// HOME (its default queue folder is under it) and TMPDIR of its own, all in the test's folder; after
// it exits, every file under them, its stdout and stderr (trace level) and every message on `#` are
// searched for each key recorded, as raw bytes, hex (either case) and base64 (both alphabets).
// Limits: only what the process writes under those three folders, to its stdout and stderr and to
// the broker is scanned; a file it wrote under another absolute path (/dev/shm, /var/tmp, a path in
// its configuration) would not be, nor what it sends elsewhere over the network. The preload sees
// the key's one call path (randomFillSync into the module's memory): a key drawn another way would
// not be recorded, and the count check below (one distinct key per window) would then fail.
const PRELOAD = `import crypto from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const real = crypto.randomFillSync;
crypto.randomFillSync = function (buf, offset, size) {
  const out = real.apply(this, arguments);
  if (size === 32 && buf instanceof Uint8Array && buf.buffer.byteLength % 65536 === 0 && buf.buffer.byteLength > 0)
    appendFileSync(process.env.KEY_RECORD, Buffer.from(buf.buffer, buf.byteOffset + offset, 32).toString('hex') + '\\n');
  return out;
};
syncBuiltinESMExports();
`;

describe.skipIf(!hasMosquitto)('gateway window keys, real process', () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-keyproc-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('no window key a gateway process drew is in any file it wrote (working folder, HOME, TMPDIR), its stdout or stderr, or any message on the broker', async () => {
    const [input, rec, run] = ['in', 'rec', 'run'].map((d) => join(tmp, d));
    const [work, home, tmpd] = ['work', 'home', 'tmp'].map((d) => join(run, d));
    for (const d of [input, rec, work, home, tmpd]) mkdirSync(d, { recursive: true });
    const preload = join(rec, 'record-keys.mjs');
    const record = join(rec, 'keys.txt');
    writeFileSync(preload, PRELOAD);
    const start = Date.parse('2026-06-01T12:00:00.000Z');
    const wifi = wifiCapture(join(input, 'wifi.pcap'), { devices: 12, startMs: start + 100, durationMs: 6_000, framesPerS: 80, salt: 5 });
    const ble = bleCapture(join(input, 'ble.pcap'), { devices: 9, startMs: start + 50, durationMs: 6_000, framesPerS: 80, salt: 6 });
    const sub = await subscriber(broker.url, { filter: '#' });
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, TMPDIR: tmpd, KEY_RECORD: record };
    for (const v of ['XDG_STATE_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'XDG_DATA_HOME', 'NODE_OPTIONS']) delete env[v];
    const args = ['--site', 'keyproc', '--zone', 'z', '--id', 'g', '--mqtt-url', broker.url];
    args.push('--source', `wifi=pcap:${wifi.path}@wifi`, '--source', `ble=pcap:${ble.path}@ble`);
    args.push('--speed', 'max', '--window', '1s', '--log-level', 'trace');
    const proc = spawn(process.execPath, ['--import', pathToFileURL(preload).href, join(ROOT, 'scripts', 'presence.js'), 'gateway', ...args], {
      cwd: work,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout!.on('data', (d: Buffer) => out.push(d));
    proc.stderr!.on('data', (d: Buffer) => err.push(d));
    const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    const stdout = Buffer.concat(out);
    const stderr = Buffer.concat(err);
    expect(code, stderr.toString().slice(-2000)).toBe(0);
    await waitFor(() => sub.messages.some((m) => m.topic.endsWith('/status') && m.payload.includes('"offline"')), 30_000, 'offline status');
    await sub.client.endAsync();

    // the keys were recorded: one per window published, all different
    const keys = readFileSync(record, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
    const windows = sub.messages.filter((m) => m.topic.endsWith('/counts'));
    expect(windows.length).toBeGreaterThanOrEqual(6);
    expect(windows.some((m) => JSON.parse(m.payload.toString()).wifi.devices > 0)).toBe(true);
    expect(keys.length).toBe(windows.length);
    expect(new Set(keys.map((k) => Buffer.from(k).toString('hex'))).size).toBe(keys.length);

    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    const scanAll = (): string[] => {
      const found = [...keyFindings('stdout', stdout, keys), ...keyFindings('stderr', stderr, keys)];
      for (const m of sub.messages) found.push(...keyFindings(`the broker (${m.topic})`, Buffer.concat([Buffer.from(m.topic), Buffer.from(m.payload)]), keys));
      for (const f of walk(run)) found.push(...keyFindings(f, readFileSync(f), keys));
      return found;
    };
    // it wrote something there: its queue folder under HOME
    expect(walk(home).some((f) => f.includes(join(home, '.local', 'state', 'presence')))).toBe(true);
    expect(stderr.toString()).toContain('window closed');
    expect(scanAll()).toEqual([]);

    // control: a key planted in a file the scan covers is found, as upper-case hex, base64url or raw bytes
    const k = Buffer.from(keys[2]!);
    for (const [name, data] of [
      ['work/planted.log', `{"msg":"x","key":"${k.toString('hex').toUpperCase()}"}\n`],
      ['home/planted.json', `{"key":"${k.toString('base64url')}"}`],
      ['tmp/planted.bin', Buffer.concat([Buffer.from('head'), k])],
    ] as Array<[string, string | Buffer]>) {
      const p = join(run, name);
      writeFileSync(p, data);
      expect(scanAll().filter((f) => f.startsWith(p))).not.toEqual([]);
      rmSync(p);
    }
  });
});
