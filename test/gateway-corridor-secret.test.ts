// The gateway's own copy of a corridor group's secret: read from its file once, handed to the
// firmware wrapper (which keeps its own copy, zero-filled when the group is left) and zero-filled
// at once, so the secret read from the file does not stay in the gateway's memory.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
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
});
