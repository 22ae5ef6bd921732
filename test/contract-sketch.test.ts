// The corridor sketch's part of the wire contract: topic, schema (closed, bounded), the checks
// outside the schema (bits length, epoch, window order), the shared numbers (epoch, threshold,
// epsilon) and the reference implementation's epoch key against node:crypto's HKDF.
import { hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_SKETCH_PAYLOAD_BYTES,
  MAX_PACKET_BYTES,
  SKETCH_BITS_ALLOWED,
  SKETCH_FILTER,
  encode,
  epochOf,
  flipThreshold,
  parseTopic,
  quantisedP,
  sketchBit,
  sketchEpsilon,
  sketchSchema,
  sketchTopic,
  validateSketch,
  FIELDS,
  type SketchMessage,
} from '../contract/index.ts';
import { epochKey, randomisedResponse, sketchPosition, trueSketch } from './support/sketch-reference.ts';

function message(m = 8192): SketchMessage {
  const start = Date.parse('2026-04-27T12:00:00.000Z');
  return {
    v: 1,
    site: 'utrecht',
    gateway: 'gw-01',
    group: 'main-street',
    epoch: epochOf(start, 3600),
    epoch_s: 3600,
    window_start: new Date(start).toISOString(),
    window_end: new Date(start + 60_000).toISOString(),
    m,
    p: quantisedP(0.5),
    bits: Buffer.alloc(m / 8, 0xa5).toString('base64'),
  };
}

describe('corridor sketch contract', () => {
  it('builds and splits the sketch topic', () => {
    expect(sketchTopic('utrecht', 'gw-01')).toBe('presence/v1/utrecht/gw-01/sketch');
    expect(parseTopic('presence/v1/utrecht/gw-01/sketch')).toEqual({ site: 'utrecht', gateway: 'gw-01', kind: 'sketch' });
    expect(SKETCH_FILTER).toBe('presence/v1/+/+/sketch');
    expect(parseTopic('presence/v1/utrecht/gw-01/sketches')).toBeNull();
  });

  it('accepts a sketch of every allowed size, each within the sketch payload limit and the packet limit', () => {
    for (const m of SKETCH_BITS_ALLOWED) {
      const msg = { ...message(m), site: 'x'.repeat(63), gateway: 'y'.repeat(63), group: 'z'.repeat(63) };
      expect(validateSketch(msg)).toEqual({ ok: true, value: msg });
      expect(encode(msg).length).toBeLessThanOrEqual(MAX_SKETCH_PAYLOAD_BYTES);
    }
    expect(MAX_PACKET_BYTES).toBeGreaterThan(MAX_SKETCH_PAYLOAD_BYTES);
  });

  it('is closed and names every bad field', () => {
    const extra = validateSketch({ ...message(), mac: '3c:22:fb:01:a0:9e' });
    expect(extra).toMatchObject({ ok: false, code: 'unknown_field', reason: '/mac is not a field of the contract' });
    const bad = validateSketch({ ...message(), m: 1000, p: 0, group: 'Main Street', bits: 'not base64!' });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.code).toBe('invalid');
      for (const f of ['/m', '/p', '/group', '/bits']) expect(bad.reason).toContain(f);
    }
    const { bits: _bits, ...missing } = message();
    expect(validateSketch(missing)).toMatchObject({ ok: false, reason: '/bits is required' });
  });

  it('refuses bits of the wrong length, an epoch that is not the window start, and a window that ends before it starts', () => {
    const m = message();
    expect(validateSketch({ ...m, bits: Buffer.alloc(512).toString('base64') })).toMatchObject({
      ok: false,
      reason: '/bits holds 512 bytes, /m = 8192 needs 1024',
    });
    // too many bytes as well as too few (2048 bytes is still within the schema's maxLength)
    expect(validateSketch({ ...m, bits: Buffer.alloc(2048).toString('base64') })).toMatchObject({
      ok: false,
      reason: '/bits holds 2048 bytes, /m = 8192 needs 1024',
    });
    expect(validateSketch({ ...m, epoch: m.epoch + 1 })).toMatchObject({ ok: false, reason: expect.stringContaining('/epoch must be') });
    expect(validateSketch({ ...m, epoch: m.epoch - 1 })).toMatchObject({ ok: false, reason: expect.stringContaining('/epoch must be') });
    expect(validateSketch({ ...m, window_end: m.window_start })).toMatchObject({ ok: false, reason: '/window_end must be after /window_start' });
    expect(validateSketch({ ...m, bits: 'x'.repeat(6000) }).ok).toBe(false);
  });

  it('has a type that names exactly the schema fields', () => {
    expect(Object.keys(FIELDS.sketch).sort()).toEqual(Object.keys(sketchSchema.properties as object).sort());
    expect(sketchSchema.additionalProperties).toBe(false);
  });

  it('quantises p to T / 65536 and states epsilon per sketch from it', () => {
    expect(flipThreshold(0.5)).toBe(32768);
    expect(quantisedP(0.3)).toBe(Math.round(0.3 * 65536) / 65536);
    expect(sketchEpsilon(0.5)).toBeCloseTo(Math.log(3), 12);
    expect(sketchEpsilon(1)).toBe(0);
    // p goes up to 1 and every larger p is more private: 0.5 is not the most private setting
    expect(sketchEpsilon(0.75)).toBeCloseTo(Math.log(5 / 3), 3);
    for (let t = 1; t + 97 <= 65536; t += 97) expect(sketchEpsilon((t + 97) / 65536)).toBeLessThan(sketchEpsilon(t / 65536));
    expect(sketchEpsilon(0)).toBe(Number.POSITIVE_INFINITY);
    expect(() => flipThreshold(1.5)).toThrow(/from 0 to 1/);
    expect(epochOf(Date.parse('2026-04-27T12:59:59.999Z'), 3600)).toBe(epochOf(Date.parse('2026-04-27T12:00:00.000Z'), 3600));
    expect(epochOf(Date.parse('2026-04-27T13:00:00.000Z'), 3600)).toBe(epochOf(Date.parse('2026-04-27T12:00:00.000Z'), 3600) + 1);
  });

  it("reference: the epoch key is node:crypto's HKDF-SHA256 with the agreed salt and info; bits and RR follow the agreed order", () => {
    const secret = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
    const node = new Uint8Array(hkdfSync('sha256', secret, 'presence-corridor/v1', 'main-street/493210', 32));
    expect(epochKey(secret, 'main-street', 493210)).toEqual(node);
    expect(epochKey(secret, 'main-street', 493211)).not.toEqual(node);
    const addr = Uint8Array.from([0x00, 0x1a, 0x7d, 0xda, 0x71, 0x13]);
    const i = sketchPosition(node, 'wifi', addr, 8192);
    const bits = trueSketch(node, [{ radio: 'wifi', address: addr }], 8192);
    expect(sketchBit(bits, i)).toBe(1);
    expect(bits.reduce((n, b) => n + b.toString(2).replaceAll('0', '').length, 0)).toBe(1);
    expect(sketchPosition(node, 'ble', addr, 8192)).not.toBe(i); // the radio tag is in the message (1 in 8192 it is not)
    // T = 0: the true bits; T = 65536: every bit is the replacement bit
    const random = new Uint8Array(4 * 8192).fill(0xff);
    expect(randomisedResponse(bits, 8192, 0, random)).toEqual(bits);
    expect(randomisedResponse(bits, 8192, 1, random).every((b) => b === 0xff)).toBe(true);
  });
});
