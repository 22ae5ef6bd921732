// The contract's validators are ajv standalone code generated from the schema files
// (scripts/gen-validators.ts): the committed file must be exactly what the schemas make now, so a
// schema change without regenerating fails here instead of validating against the old schema.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import type { ValidateFunction } from 'ajv';
import { countsSchema, sketchSchema, statusSchema } from '../contract/index.ts';
import { validateCounts, validateSketch, validateStatus } from '../contract/validators.generated.ts';
import { dateTime } from '../contract/date-time.ts';
import { VALIDATORS_FILE, validatorsSource } from '../scripts/gen-validators.ts';

describe('generated contract validators', () => {
  it('are current with contract/schemas (else run: npx tsx scripts/gen-validators.ts)', () => {
    expect(readFileSync(VALIDATORS_FILE, 'utf8')).toBe(validatorsSource());
  });

  it('give the same verdicts and errors as ajv compiling the schemas at run time', () => {
    const addFormats = addFormatsModule as unknown as (a: Ajv2020) => Ajv2020;
    const ajv = addFormats(new Ajv2020({ allErrors: true, strict: true }));
    const compiled = { counts: ajv.compile(countsSchema), status: ajv.compile(statusSchema), sketch: ajv.compile(sketchSchema) };
    const generated = {
      counts: validateCounts as unknown as ValidateFunction,
      status: validateStatus as unknown as ValidateFunction,
      sketch: validateSketch as unknown as ValidateFunction,
    };
    const radio = { frames: 3, probes: 2, rejected: 1, devices: 1, estimate: 1, exact: true };
    const counts = {
      v: 1,
      site: 's',
      zone: 'z',
      gateway: 'g',
      seq: 1,
      start: '2026-04-27T12:00:00.000Z',
      end: '2026-04-27T12:01:00.000Z',
      complete: true,
      wifi: radio,
      ble: radio,
      privacy: { min_count: 3, epsilon: 0.5 },
    };
    const status = { v: 1, site: 's', gateway: 'g', state: 'offline' };
    const sketch = {
      v: 1,
      site: 's',
      gateway: 'g',
      group: 'main-street',
      epoch: 493210,
      epoch_s: 3600,
      window_start: '2026-04-27T12:00:00.000Z',
      window_end: '2026-04-27T12:01:00.000Z',
      m: 1024,
      p: 0.5,
      bits: 'AAAA'.repeat(42) + 'AAAAAA==',
    };
    const samples: unknown[] = [
      counts,
      status,
      sketch,
      { ...sketch, m: 1000, p: 0, bits: 'x', extra: true },
      { ...sketch, epoch_s: 10, window_start: '2026-13-01T00:00:00Z', group: 'A' },
      { ...counts, extra: 1, privacy: { min_count: -1, other: 'x' } },
      { ...counts, site: 'AA:BB:CC:DD:EE:FF', seq: 2 ** 53, start: '2026-02-30T12:00:00Z', end: '2026-04-27T12:01:60Z' },
      { ...counts, wifi: { ...radio, devices: 1.5, hash: 'x' }, ble: null, complete: 'yes' },
      { ...status, v: 2, state: 'asleep', last_error: 'x'.repeat(1000), zone: '' },
      { ...status, sources: [{ name: 'a b', state: 'x' }] },
      { v: 1 },
      null,
      'text',
      [],
    ];
    let valid = 0;
    for (const s of samples) {
      for (const k of ['counts', 'status', 'sketch'] as const) {
        const verdict = generated[k](s);
        expect(verdict).toBe(compiled[k](s));
        expect(generated[k].errors ?? null).toEqual(compiled[k].errors ?? null);
        if (verdict) valid++;
      }
    }
    expect(valid).toBe(3); // the three good samples, each by its own schema
  });

  it("check times with ajv-formats' verdict, through their quick path or not", () => {
    const full = (createRequire(import.meta.url)('ajv-formats/dist/formats') as { fullFormats: Record<string, { validate: (s: string) => boolean }> })
      .fullFormats['date-time'];
    const edges = [
      '2026-04-27T12:00:00.000Z',
      '2026-04-27T12:00:00Z',
      '2026-04-27T12:00:00.5Z',
      '2026-04-27T12:00:00.12Z',
      '2024-02-29T00:00:00Z',
      '2026-02-29T00:00:00Z',
      '2000-02-29T00:00:00Z',
      '2100-02-29T00:00:00Z',
      '1900-02-29T00:00:00.000Z',
      '2026-04-31T00:00:00Z',
      '2026-12-31T23:59:59.999Z',
      '2026-00-10T00:00:00Z',
      '2026-13-10T00:00:00Z',
      '2026-01-00T00:00:00Z',
      '2026-01-32T00:00:00Z',
      '2026-01-01T24:00:00Z',
      '2026-01-01T23:60:00Z',
      '2026-12-31T23:59:60Z',
      '2026-12-31T22:59:60Z',
      '2026-01-01T00:00:00.0000Z',
      '2026-01-01T00:00:00.Z',
      '2026-01-01t00:00:00z',
      '2026-01-01 00:00:00Z',
      '2026-01-01T00:00:00+01:00',
      '2026-01-01T00:00:00',
      '2026-1-01T00:00:00Z',
      '２026-01-01T00:00:00Z',
      '2026-01-01T00:00:0aZ',
      '2026/01/01T00:00:00Z',
      '',
    ];
    // and many random ones near the published shape: digits and separators replaced at random
    let seed = 1;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const chars = '0123456789-:.TZtz +/a';
    const samples = [...edges];
    for (let i = 0; i < 20_000; i++) {
      const base = new Date(Date.UTC(1990 + rnd(130), 0, 1) + rnd(366 * 86_400_000)).toISOString();
      const cut = [base, base.replace('.000Z', 'Z'), base.slice(0, 21) + 'Z'][rnd(3)].split('');
      for (let k = rnd(3); k > 0; k--) cut[rnd(cut.length)] = chars[rnd(chars.length)];
      samples.push(cut.join(''));
    }
    let valid = 0;
    for (const s of samples) {
      expect([s, dateTime.validate(s)]).toEqual([s, full.validate(s)]);
      if (full.validate(s)) valid++;
    }
    expect(valid).toBeGreaterThan(5_000); // both paths ran: valid times and broken ones
    expect(samples.length - valid).toBeGreaterThan(5_000);
  });
});
