// The gateway's own copy of a corridor group's secret: read from its file once, handed to the
// firmware wrapper (which keeps its own copy, zero-filled when the group is left) and zero-filled
// at once, so the secret read from the file does not stay in the gateway's memory. Reading it leaves
// no other copy behind: not in Node's shared Buffer pool (small Buffers are slices of one 8 KiB
// slab that nothing zero-fills), neither as bytes nor as its hex text.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { readSecret } from '../gateway/corridor.ts';
import { Gateway } from '../gateway/gateway.ts';
import { config } from './gateway-support.ts';
import { freePort } from './support/ports.ts';

/** Every secret corridorOf read from a file, as the gateway got it (the same array). */
const read = vi.hoisted(() => [] as Uint8Array[]);
vi.mock('../gateway/corridor.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../gateway/corridor.ts')>();
  return {
    ...real,
    corridorOf: (...args: Parameters<typeof real.corridorOf>) => {
      const c = real.corridorOf(...args);
      if (c) read.push(c.secret);
      return c;
    },
  };
});

describe('gateway corridor secret in memory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-corridor-secret-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("zero-fills the secret it read once the firmware wrapper has its copy; the wrapper's copy at stop", async () => {
    const file = join(dir, 'g.secret');
    writeFileSync(file, `${'5a'.repeat(32)}\n`);
    chmodSync(file, 0o600);
    const gw = new Gateway({
      config: config({
        site: 's',
        zone: 'z',
        id: 'g',
        mqttUrl: `mqtt://127.0.0.1:${await freePort()}`,
        source: ['stdin'],
        queueDir: join(dir, 'q'),
        corridorGroup: 'main-street',
        corridorSecretFile: file,
        corridorSketchP: '0.5',
      }),
    });
    await gw.start();
    let held: Uint8Array;
    try {
      expect(read).toHaveLength(1);
      expect(read[0]!.length).toBe(32);
      expect(read[0]!.every((b) => b === 0)).toBe(true);
      const inside = gw as unknown as { fw: { corridor: { secret: Uint8Array } | null }; windows: { window: unknown } | null };
      held = inside.fw.corridor!.secret;
      expect(Buffer.from(held).toString('hex')).toBe('5a'.repeat(32));
      expect(inside.windows?.window).toBeTruthy(); // a window is open when it stops
    } finally {
      await gw.stop();
    }
    expect(held.every((b) => b === 0)).toBe(true);
  });

  it("reads the secret file without leaving a copy in Node's shared Buffer pool, as bytes or as hex text", () => {
    // the secret to look for, in buffers of their own (not the pool this test searches)
    const secret = Buffer.allocUnsafeSlow(32);
    randomBytes(32).copy(secret);
    const hexText = Buffer.allocUnsafeSlow(64);
    hexText.write(secret.toString('hex'), 'latin1');
    const file = join(dir, 'pool.secret');
    /** The bytes in a buffer of its own: Buffer.concat would put them in the pool. */
    const own = (...parts: Uint8Array[]) => {
      const b = Buffer.allocUnsafeSlow(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        b.set(p, at);
        at += p.length;
      }
      return b;
    };
    const newline = Uint8Array.of(0x0a);
    writeFileSync(file, own(hexText, newline));
    chmodSync(file, 0o600);
    const pool = () => Buffer.from(Buffer.allocUnsafe(1).buffer);
    // the search works: a secret decoded the usual way, Buffer.from(hex, 'hex'), lands in the pool
    const decoded = Buffer.from(hexText.toString('latin1'), 'hex');
    expect(decoded.buffer).toBe(pool().buffer);
    expect(pool().includes(secret)).toBe(true);
    decoded.fill(0);
    expect(pool().includes(secret)).toBe(false);
    const got = readSecret(file);
    expect(Buffer.from(got.buffer, got.byteOffset, got.length).equals(secret)).toBe(true);
    expect(got.buffer).not.toBe(pool().buffer);
    got.fill(0);
    expect(pool().includes(secret)).toBe(false);
    expect(pool().includes(hexText)).toBe(false);
    // and a file that is not a secret: nothing of its first line is left either
    const bad = join(dir, 'bad.secret');
    writeFileSync(bad, own(hexText.subarray(0, 62), Uint8Array.of(0x7a, 0x7a, 0x0a)));
    chmodSync(bad, 0o600);
    expect(() => readSecret(bad)).toThrow(/has other characters/);
    expect(pool().includes(hexText.subarray(0, 62))).toBe(false);
  });

  it('zero-fills the buffer of its own it read the file into, once the secret is decoded or refused', () => {
    const secret = randomBytes(32).toString('hex');
    const good = join(dir, 'own.secret');
    writeFileSync(good, `${secret}\n`);
    chmodSync(good, 0o600);
    const bad = join(dir, 'own-bad.secret');
    writeFileSync(bad, `${secret.slice(0, 62)}zz\n`);
    chmodSync(bad, 0o600);
    // the buffers readSecret reads into (the only allocation of its own it makes)
    const spy = vi.spyOn(Buffer, 'allocUnsafeSlow');
    try {
      const got = readSecret(good);
      expect(Buffer.from(got).toString('hex')).toBe(secret);
      expect(() => readSecret(bad)).toThrow(/has other characters/);
      const bufs = spy.mock.results.map((r) => r.value as Buffer);
      expect(bufs).toHaveLength(2);
      // control: each held the file's first line (65 bytes with its line feed), and holds nothing now
      expect(bufs.map((b) => b.length)).toEqual([65, 65]);
      for (const b of bufs) expect(b.every((x) => x === 0)).toBe(true);
      got.fill(0);
    } finally {
      spy.mockRestore();
    }
  });
});
