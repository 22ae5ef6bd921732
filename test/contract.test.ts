// The wire contract (contract/): topics, the closed schemas, the validators' reasons, and a
// schema walk that generates payloads and proves every field is bounded and no extra field passes.
import { describe, expect, it } from 'vitest';
import {
  countsTopic,
  statusTopic,
  parseTopic,
  topicKind,
  sharedFilter,
  COUNTS_FILTER,
  validateCounts,
  validateStatus,
  offlineStatus,
  encode,
  countsSchema,
  statusSchema,
  sanitiseMessage,
  redactAddresses,
  FIELDS,
  ID_PATTERN,
  SOURCE_NAME_PATTERN,
  MESSAGE_PATTERN,
  LAST_ERROR_PATTERN,
  LAST_ERROR_SENTENCES,
  LAST_ERROR_SIGNALS,
  isLastError,
  lastErrorText,
  MAX_PAYLOAD_BYTES,
  MAX_COUNT,
  type CountsMessage,
  type StatusMessage,
} from '../contract/index.ts';
import { Rng } from '../simulator/rng.ts';

const good: CountsMessage = {
  v: 1,
  site: 'utrecht',
  zone: 'neude',
  gateway: 'gw-01',
  seq: 1234,
  start: '2026-04-27T12:00:00.000Z',
  end: '2026-04-27T12:01:00.000Z',
  complete: true,
  wifi: { frames: 812, devices: 140, estimate: 61 },
  ble: { frames: 3011, devices: 95, estimate: 70 },
};

// ---- a small walker over the two schema files ------------------------------------------------

type Schema = Record<string, unknown> & {
  $ref?: string;
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: unknown;
  pattern?: string;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  enum?: unknown[];
  const?: unknown;
  maxItems?: number;
  format?: string;
};

/** Follows a local `#/$defs/x` reference (the files have no other kind). */
function deref(root: Schema, s: Schema): Schema {
  if (!s.$ref) return s;
  const m = /^#\/\$defs\/([A-Za-z_]+)$/.exec(s.$ref);
  if (!m) throw new Error(`unexpected $ref ${s.$ref}: the schema files must stand alone`);
  return deref(root, (root.$defs as Record<string, Schema>)[m[1]]);
}

/** Every subschema with its JSON pointer-ish path (`/wifi/frames`, `/sources/[]/name`). */
function* subschemas(root: Schema, s: Schema = root, path = ''): Generator<{ path: string; schema: Schema }> {
  const r = deref(root, s);
  yield { path: path || '/', schema: r };
  for (const [k, p] of Object.entries(r.properties ?? {})) yield* subschemas(root, p, `${path}/${k}`);
  if (r.items) yield* subschemas(root, r.items, `${path}/[]`);
}

/** Generators of strings, one per pattern the schemas use. A new string field must add one here. */
const STRINGS: Record<string, (rng: Rng) => string> = {
  [ID_PATTERN]: (rng) => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789_-';
    let s = alphabet[rng.int(0, 35)];
    for (let i = rng.int(0, rng.chance(0.1) ? 62 : 10); i > 0; i--) s += alphabet[rng.int(0, alphabet.length - 1)];
    return s;
  },
  [SOURCE_NAME_PATTERN]: (rng) => ['wlan0', 'hci0', 'pcap0', 'mon.1', 'ubertooth_A', 'x'.repeat(64)][rng.int(0, 5)],
  [LAST_ERROR_PATTERN]: (rng) => {
    const codes = Object.keys(LAST_ERROR_SENTENCES) as Array<keyof typeof LAST_ERROR_SENTENCES>;
    const signal = rng.chance(0.5) ? LAST_ERROR_SIGNALS[rng.int(0, LAST_ERROR_SIGNALS.length - 1)] : null;
    return lastErrorText(codes[rng.int(0, codes.length - 1)], { code: rng.chance(0.5) ? rng.int(0, 255) : null, signal });
  },
};
const TIME_PATTERN = (countsSchema.$defs as Record<string, Schema>).time.pattern!;
const VERSION_PATTERN = (statusSchema.properties as Record<string, Schema>).version.pattern!;
STRINGS[TIME_PATTERN] = (rng) => new Date(rng.int(Date.UTC(2000, 0, 1), Date.UTC(2099, 11, 31, 23, 59, 59, 999))).toISOString();
STRINGS[VERSION_PATTERN] = (rng) => `${rng.int(0, 99)}.${rng.int(0, 99)}.${rng.int(0, 999)}${rng.chance(0.3) ? '-rc.1' : ''}`;

/** Text with everything a capture tool could print: words, hex, addresses in many forms, control bytes, non-ASCII. */
function randomText(rng: Rng, max: number): string {
  const parts = ['error', ' ', 'dev ', 'exited with code 3', ':', '-', '.', '_', '0x', '\n', '\t', '\u00e9', '\u0000', 'ENOENT', '[', ']', '"'];
  let s = '';
  while (s.length < rng.int(0, max)) {
    if (rng.chance(0.2)) s += addressForm(rng);
    else if (rng.chance(0.3)) s += rng.u32().toString(16);
    else s += parts[rng.int(0, parts.length - 1)];
  }
  return s;
}

/** One written form of a 48-bit address: any separator or none, any case, `0x`, either byte order,
 *  groups of 2, 4 or 6 hex digits, ether_ntoa's colon form, C-array form. */
export function addressForm(rng: Rng, bytes: number[] = Array.from({ length: 6 }, () => rng.int(0, 255))): string {
  const b = rng.chance(0.5) ? [...bytes].reverse() : bytes;
  const hex = b.map((x) => x.toString(16).padStart(2, '0'));
  const kind = rng.int(0, 9);
  let s: string;
  if (kind === 0)
    s = b.map((x) => x.toString(16)).join(':'); // ether_ntoa: no leading zeros
  else if (kind === 1)
    s = hex.map((h) => `0x${h}`).join([', ', ',', ' '][rng.int(0, 2)]); // C array
  else {
    const group = [2, 2, 2, 4, 4, 6, 12][rng.int(0, 6)]; // hex digits per group
    const sep = group === 12 ? '' : [':', '-', '.', '_', ' ', ','][rng.int(0, 5)];
    s = (hex.join('').match(new RegExp(`.{${group}}`, 'g')) as string[]).join(sep);
    if (rng.chance(0.2)) s = `0x${s}`;
  }
  const casing = rng.int(0, 2); // lower, upper, mixed
  if (casing === 1) s = s.toUpperCase().replace(/0X/g, rng.chance(0.5) ? '0x' : '0X');
  if (casing === 2)
    s = [...s]
      .map((c) => (rng.chance(0.5) ? c.toUpperCase() : c))
      .join('')
      .replace(/0X/g, '0x');
  return s;
}

/** A payload the schema allows, drawn at random (optional fields sometimes, bounds often). */
function generate(root: Schema, s: Schema, rng: Rng, full: boolean): unknown {
  const r = deref(root, s);
  if ('const' in r) return r.const;
  if (r.enum) return r.enum[rng.int(0, r.enum.length - 1)];
  switch (r.type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [k, p] of Object.entries(r.properties ?? {})) if (full || r.required?.includes(k) || rng.chance(0.5)) out[k] = generate(root, p, rng, full);
      return out;
    }
    case 'array':
      return Array.from({ length: full ? 2 : rng.int(0, 3) }, () => generate(root, r.items!, rng, full));
    case 'integer':
      return rng.chance(0.2) ? r.maximum! : rng.chance(0.2) ? r.minimum! : rng.int(r.minimum!, rng.chance(0.5) ? 100_000 : r.maximum!);
    case 'number':
      return rng.chance(0.2) ? r.maximum! : Math.round(rng.float() * 1e6) / 10;
    case 'boolean':
      return rng.chance(0.5);
    case 'string': {
      const g = STRINGS[r.pattern ?? ''];
      if (!g) throw new Error(`no generator for a string with pattern ${r.pattern}: add one (and give the field a bounded pattern)`);
      return g(rng);
    }
    default:
      throw new Error(`schema node of unknown type ${String(r.type)}`);
  }
}

function generateCounts(rng: Rng, full = false): CountsMessage {
  const m = generate(countsSchema, countsSchema, rng, full) as CountsMessage;
  // The one rule outside the schema: end after start, by at most 24 h.
  const start = Date.parse(m.start);
  m.end = new Date(Math.min(start + rng.int(1, 24 * 3600_000), Date.UTC(2099, 11, 31, 23, 59, 59, 999) + 1)).toISOString();
  if (m.end <= m.start || m.end.startsWith('2100')) m.start = new Date(start - 60_000).toISOString();
  if (m.end.startsWith('2100')) m.end = new Date(start).toISOString();
  return m;
}
const generateStatus = (rng: Rng, full = false) => generate(statusSchema, statusSchema, rng, full) as StatusMessage;

/** Every object inside a value, with its path. */
function objectsIn(v: unknown, path = ''): Array<{ path: string; obj: Record<string, unknown> }> {
  if (Array.isArray(v)) return v.flatMap((x, i) => objectsIn(x, `${path}/${i}`));
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return [{ path, obj: o }, ...Object.entries(o).flatMap(([k, x]) => objectsIn(x, `${path}/${k}`))];
  }
  return [];
}
/** Every string inside a value, with its path and a setter. */
function stringsIn(v: unknown, path = ''): Array<{ path: string; key: string; set: (s: string) => void; get: () => unknown }> {
  if (!v || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  return Object.entries(o).flatMap(([k, x]) =>
    typeof x === 'string' ? [{ path: `${path}/${k}`, key: k, set: (s: string) => (o[k] = s), get: () => o[k] }] : stringsIn(x, `${path}/${k}`),
  );
}

const schemas = { counts: countsSchema as Schema, status: statusSchema as Schema };
const validators = { counts: validateCounts, status: validateStatus };

// ---- tests -----------------------------------------------------------------------------------

describe('wire contract', () => {
  it('builds and splits topics', () => {
    expect(countsTopic('utrecht', 'gw-01')).toBe('presence/v1/utrecht/gw-01/counts');
    expect(statusTopic('utrecht', 'gw-01')).toBe('presence/v1/utrecht/gw-01/status');
    expect(parseTopic('presence/v1/utrecht/gw-01/counts')).toEqual({ site: 'utrecht', gateway: 'gw-01', kind: 'counts' });
    expect(parseTopic('presence/v2/utrecht/gw-01/counts')).toBeNull();
    expect(parseTopic('presence/v1/utrecht/gw-01/other')).toBeNull();
    expect(parseTopic('presence/v1/Utrecht/gw 01/counts')).toBeNull();
    // the kind of a refused topic still counts it as counts or status (the aggregator's metrics)
    expect(topicKind('presence/v1/Utrecht/gw 01/status')).toBe('status');
    expect(topicKind('presence/v1/utrecht/gw-01/sketch')).toBe('sketch');
    expect(topicKind('presence/v1/utrecht/gw-01/other')).toBeNull();
    expect(sharedFilter('agg', COUNTS_FILTER)).toBe('$share/agg/presence/v1/+/+/counts');
  });

  it('accepts the example payload and every optional field', () => {
    expect(validateCounts(good)).toEqual({ ok: true, value: good });
    const full = {
      ...good,
      wifi: { ...good.wifi, probes: 3, rejected: 1, weak: 2, exact: true },
      ble: { ...good.ble, adverts: 9, rejected: 0, weak: 0, exact: false },
    };
    expect(validateCounts(full).ok).toBe(true);
    // Small-count protection (gateway/privacy.ts): the privacy block and the per-radio suppressed flag.
    const priv = {
      ...good,
      wifi: { ...good.wifi, suppressed: false },
      ble: { frames: 0, devices: 0, estimate: 0, suppressed: true },
      privacy: { min_count: 15, epsilon: 0.5 },
    };
    expect(validateCounts(priv).ok).toBe(true);
    expect(validateCounts({ ...good, privacy: { min_count: 5 } }).ok).toBe(true);
    expect(validateCounts({ ...good, privacy: { epsilon: 1 } })).toEqual({ ok: false, code: 'invalid', reason: '/privacy/min_count is required' });
    expect(validateCounts({ ...good, privacy: { min_count: 5, noise: [1, -2] } }).ok).toBe(false);
    expect(validateCounts({ ...good, wifi: { ...good.wifi, suppressed: 'yes' } }).ok).toBe(false);
  });

  it('names every bad field', () => {
    const bad = { ...good, seq: -1, wifi: { frames: 1, devices: 'x' } } as unknown;
    const r = validateCounts(bad);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.code).toBe('invalid');
      expect(r.reason).toContain('/seq must be an integer from 0 to 9007199254740991');
      expect(r.reason).toContain('/wifi/devices must be an integer from 0');
      expect(r.reason).toContain('/wifi/estimate is required');
    }
    const noV = { ...good } as Record<string, unknown>;
    delete noV.v;
    expect(validateCounts(noV)).toEqual({ ok: false, code: 'invalid', reason: '/v is required' });
    expect(validateCounts({ ...good, v: 2 })).toEqual({ ok: false, code: 'invalid', reason: '/v must be 1' });
    expect(validateCounts({ ...good, end: good.start })).toEqual({ ok: false, code: 'invalid', reason: '/end must be after /start' });
    expect(validateCounts({ ...good, end: '2026-04-28T12:00:00.001Z' })).toEqual({
      ok: false,
      code: 'invalid',
      reason: '/end must be at most 24 h after /start',
    });
    expect(validateCounts({ ...good, start: 'yesterday' }).ok).toBe(false);
  });

  it('rejects fields the contract does not have, at every level, naming where', () => {
    const mac = validateCounts({ ...good, wifi: { ...good.wifi, mac: '3c:22:fb:01:a0:9e' } });
    expect(mac).toEqual({ ok: false, code: 'unknown_field', reason: '/wifi/mac is not a field of the contract' });
    expect(validateCounts({ ...good, hashes: ['a1b2c3d4e5f60718'] })).toEqual({
      ok: false,
      code: 'unknown_field',
      reason: '/hashes is not a field of the contract',
    });
    // A key that could itself be an address is not repeated in the reason.
    const r = validateCounts({ ...good, ble: { ...good.ble, '3c:22:fb:01:a0:9e': 1 } });
    expect(r).toEqual({ ok: false, code: 'unknown_field', reason: '/ble/(a key that is not a field name) is not a field of the contract' });
    const s = validateStatus({
      v: 1,
      site: 'a',
      gateway: 'b',
      state: 'online',
      sources: [{ name: 'x', state: 'running', frames_per_s: 0, errors: 0, addr: 'aa' }],
    });
    expect(s).toEqual({ ok: false, code: 'unknown_field', reason: '/sources/0/addr is not a field of the contract' });
  });

  it('an unknown key shaped like a field name but holding an address (bare hex, hex groups joined by _) is not repeated in the reason', () => {
    const keys = ['da22fb01a09e', 'DA22FB01A09E'.toLowerCase(), 'da_22_fb_01_a0_9e', 'da_22_fb_1_a0_9e', 'e_9_a_0_1_f', 'da22fb01', 'fb01a0', 'ca_fe_01'];
    for (const key of keys) {
      const where = [
        validateCounts({ ...good, [key]: 1 }),
        validateCounts({ ...good, wifi: { ...good.wifi, [key]: 1 } }),
        validateStatus({ v: 1, site: 'a', gateway: 'b', state: 'online', sources: [{ name: 'x', state: 'running', frames_per_s: 0, errors: 0, [key]: 1 }] }),
      ];
      for (const v of where) {
        expect(v.ok, key).toBe(false);
        if (!v.ok) {
          expect(v.reason, key).not.toContain(key);
          expect(v.reason, key).toMatch(/\/\(a key that is not a field name\) is not a field of the contract$/);
        }
      }
    }
    // Names a person reads as a field's are still named, and every name the contract has anywhere.
    for (const key of ['mac', 'hashes', 'device_list', 'accepted', 'estimate', 'frames_per_s', 'last_error'])
      expect(validateCounts({ ...good, ble: { ...good.ble, [key]: 1 }, [key]: 1 })).toMatchObject({
        reason: expect.stringContaining(`/${key} is not a field of the contract`),
      });
  });

  it('rejects times outside 2000-2099, leap seconds, offsets and numbers beyond 2^53 - 1 with clear reasons', () => {
    const time = 'must be a UTC time like 2026-04-27T12:00:00.000Z, in the years 2000-2099, with seconds 00-59 (no leap second)';
    const at = (start: string, end = '2026-04-27T12:01:00.000Z') => validateCounts({ ...good, start, end });
    expect(at('2024-06-30T23:59:60Z', '2024-06-30T23:59:59.999Z')).toEqual({ ok: false, code: 'invalid', reason: `/start ${time}` });
    expect(at('0001-01-01T00:00:00.000Z')).toEqual({ ok: false, code: 'invalid', reason: `/start ${time}` });
    expect(at('1999-12-31T23:59:00.000Z', '2000-01-01T00:00:00.000Z')).toEqual({ ok: false, code: 'invalid', reason: `/start ${time}` });
    expect(at('2099-12-31T23:59:00.000Z', '2100-01-01T00:00:00.000Z')).toEqual({ ok: false, code: 'invalid', reason: `/end ${time}` });
    expect(at('2026-04-27T14:00:00.000+02:00').ok).toBe(false);
    expect(at('2026-02-30T12:00:00.000Z', '2026-03-01T12:00:00.000Z').ok).toBe(false);
    expect(at('2000-01-01T00:00:00.000Z', '2000-01-01T00:01:00Z').ok).toBe(true);

    const count = 'must be an integer from 0 to 9007199254740991 (2^53 - 1)';
    const raw = (seq: string) => validateCounts(JSON.parse(JSON.stringify({ ...good, seq: 0 }).replace('"seq":0', `"seq":${seq}`)));
    expect(JSON.parse('1e400')).toBe(Infinity);
    expect(raw('1e400')).toEqual({ ok: false, code: 'invalid', reason: `/seq ${count}` });
    expect(raw('-1e400')).toEqual({ ok: false, code: 'invalid', reason: `/seq ${count}` });
    expect(raw('9007199254740992')).toEqual({ ok: false, code: 'invalid', reason: `/seq ${count}` });
    expect(raw('9007199254740991').ok).toBe(true);
    expect(raw('1.5')).toEqual({ ok: false, code: 'invalid', reason: `/seq ${count}` });
    const st = validateStatus(JSON.parse('{"v":1,"site":"a","gateway":"b","state":"online","uptime_s":1e400}'));
    expect(st).toEqual({ ok: false, code: 'invalid', reason: '/uptime_s must be a finite number from 0 to 9007199254740991 (2^53 - 1)' });
  });

  it("has types that name exactly the schemas' fields", () => {
    const props = (root: Schema, s: Schema) => Object.keys(deref(root, s).properties ?? {}).sort();
    const c = countsSchema as Schema;
    const st = statusSchema as Schema;
    expect(Object.keys(FIELDS.counts).sort()).toEqual(props(c, c));
    expect(Object.keys(FIELDS.radio).sort()).toEqual(props(c, { $ref: '#/$defs/radio' }));
    expect(Object.keys(FIELDS.privacy).sort()).toEqual(props(c, (c.properties as Record<string, Schema>).privacy));
    expect(Object.keys(FIELDS.status).sort()).toEqual(props(st, st));
    expect(Object.keys(FIELDS.source).sort()).toEqual(props(st, { $ref: '#/$defs/source' }));
    // The shared definitions are the same in both files, and the code's patterns are the files'.
    const defs = (s: Schema) => s.$defs as Record<string, Schema>;
    for (const d of ['id', 'count', 'amount', 'time']) expect(defs(st)[d]).toEqual(defs(c)[d]);
    expect(defs(c).id.pattern).toBe(ID_PATTERN);
    expect((defs(st).source.properties as Record<string, Schema>).last_error.pattern).toBe(LAST_ERROR_PATTERN);
    expect(JSON.stringify([c, st])).not.toMatch(/"\$ref":"(?!#\/\$defs\/)/);
  });

  for (const [kind, root] of Object.entries(schemas) as Array<['counts' | 'status', Schema]>) {
    it(`${kind}: closed at every level, every string bounded by a pattern, every number by 2^53 - 1`, () => {
      let objects = 0;
      let strings = 0;
      for (const { path, schema } of subschemas(root)) {
        if (schema.type === 'object') {
          objects++;
          expect(schema.additionalProperties, `${kind} ${path}`).toBe(false);
        } else if (schema.type === 'string') {
          strings++;
          expect(schema.pattern, `${kind} ${path} has no pattern`).toMatch(/^\^.*\$$/);
          expect(schema.maxLength, `${kind} ${path} has no maxLength`).toBeLessThanOrEqual(200);
        } else if (schema.type === 'integer' || schema.type === 'number') {
          expect(schema.minimum, `${kind} ${path}`).toBe(0);
          expect(schema.maximum, `${kind} ${path}`).toBe(MAX_COUNT);
        } else if (schema.type === 'array') {
          expect(schema.maxItems, `${kind} ${path}`).toBeGreaterThan(0);
        } else if (schema.type === 'boolean') {
          // nothing to bound
        } else {
          expect(schema.enum ?? [schema.const], `${kind} ${path}: enum or const of fixed strings/numbers`).toSatisfy((v: unknown[]) =>
            v.every((x) => typeof x === 'number' || (typeof x === 'string' && /^[a-z_]+$/.test(x))),
          );
        }
      }
      expect(objects).toBeGreaterThanOrEqual(kind === 'counts' ? 3 : 2);
      expect(strings).toBeGreaterThanOrEqual(4);
    });

    it(`${kind}: generated payloads pass; any extra field anywhere, and free text in any string field, fails`, () => {
      const rng = new Rng(kind === 'counts' ? 11 : 12);
      const gen = (full: boolean) => (kind === 'counts' ? generateCounts(rng, full) : generateStatus(rng, full));
      const validate = validators[kind];
      const address = [
        '3c:22:fb:01:a0:9e',
        '3C-22-FB-01-A0-9E',
        '3c22.fb01.a09e',
        '3c22fb01a09e',
        '0x3c22fb01a09e',
        '3c 22 fb 01 a0 9e',
        'dev 9e_a0_01_fb_22_3c',
      ];
      const freeText = ['hello world', 'Name Surname', 'x'.repeat(201), 'line\nbreak', 'caf\u00e9', '', ...address];
      let extras = 0;
      let texts = 0;
      for (let i = 0; i < 150; i++) {
        const m = gen(i % 3 === 0);
        const v = validate(m);
        expect(v.ok, `${JSON.stringify(m)}: ${v.ok ? '' : v.reason}`).toBe(true);
        expect(encode(m).length).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);

        const copy = () => JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
        // One extra field at each object of the payload.
        for (const { path } of objectsIn(m)) {
          const c = copy();
          const target = objectsIn(c).find((o) => o.path === path)!.obj;
          const key = ['mac', 'hashes', 'address', 'x', 'device_id', 'people'][rng.int(0, 5)];
          target[key] = rng.chance(0.5) ? 'aa:bb:cc:dd:ee:ff' : [1, 2, 3];
          const r = validate(c);
          expect(r.ok ? 'ok' : r.code, `${kind} extra ${path}/${key}`).toBe('unknown_field');
          if (!r.ok) expect(r.reason).toContain(`${path}/${key} is not a field of the contract`);
          extras++;
        }
        // Free text and addresses in each string field: rejected, unless the field's pattern allows
        // exactly that text (an id may look like hex; last_error takes only its fixed sentences).
        for (const { path, key } of stringsIn(m)) {
          for (const text of freeText) {
            const c = copy();
            stringsIn(c)
              .find((s) => s.path === path)!
              .set(text);
            const r = validate(c);
            const allowed =
              key === 'last_error'
                ? isLastError(text)
                : key === 'site' || key === 'zone' || key === 'gateway'
                  ? new RegExp(ID_PATTERN).test(text)
                  : key === 'name'
                    ? new RegExp(SOURCE_NAME_PATTERN).test(text)
                    : false;
            expect(r.ok, `${kind} ${path} = ${JSON.stringify(text)}`).toBe(allowed);
            texts++;
          }
        }
      }
      expect(extras).toBeGreaterThan(300);
      expect(texts).toBeGreaterThan(1000);
    });
  }

  it('validates status and the last will', () => {
    expect(validateStatus(offlineStatus('utrecht', 'gw-01', 'neude')).ok).toBe(true);
    const r = validateStatus({ v: 1, site: 'utrecht', gateway: 'gw-01', state: 'sleeping' });
    expect(r).toEqual({ ok: false, code: 'invalid', reason: '/state must be one of online, offline' });
  });

  it('last_error is closed: a fixed sentence per error_code (exited with exit code and signal), no tool text, no hex run', () => {
    const re = new RegExp(LAST_ERROR_PATTERN);
    const all: string[] = [];
    for (const code of Object.keys(LAST_ERROR_SENTENCES) as Array<keyof typeof LAST_ERROR_SENTENCES>) {
      all.push(lastErrorText(code));
      for (let c = 0; c <= 255; c++) for (const signal of [null, ...LAST_ERROR_SIGNALS]) all.push(lastErrorText(code, { code: c, signal }));
    }
    for (const s of all) {
      expect(re.test(s), s).toBe(true);
      expect(s, s).not.toMatch(/[0-9A-Fa-f]{4}/); // nothing that could be part of an address
    }
    expect(lastErrorText('exited', { code: 3, signal: null })).toBe('the capture command exited with code 3');
    expect(lastErrorText('exited', { code: null, signal: 'SIGKILL' })).toBe('the capture command exited by SIGKILL');
    expect(lastErrorText('exited', { code: 4096, signal: 'SIGAABBCC' })).toBe('the capture command exited'); // out of range: left out
    // Any text of a capture tool is refused, however harmless it looks.
    const rng = new Rng(5);
    for (let i = 0; i < 2000; i++) expect(re.test(randomText(rng, 600))).toBe(false);
    for (const t of ['tcpdump: wlan0: No such device', "Jan's iPhone", 'the capture command exited: aa', 'the source failed '])
      expect(re.test(t), t).toBe(false);
    expect(
      validateStatus({
        v: 1,
        site: 'utrecht',
        gateway: 'gw-01',
        state: 'online',
        sources: [{ name: 'wlan0', state: 'failed', frames_per_s: 0, errors: 1, last_error: 'tcpdump: oops' }],
      }),
    ).toEqual({
      ok: false,
      code: 'invalid',
      reason: expect.stringContaining('last_error must be one of the fixed sentences'),
    });
  });

  it('redaction removes every written form of an address, in any surrounding text (property, 5000 cases)', () => {
    const rng = new Rng(48);
    const around = [
      '',
      ' ',
      'dev ',
      'addr=',
      'MAC:',
      '[',
      '](',
      ', ',
      ':',
      '-',
      '.',
      '_',
      'dead',
      'BEEF',
      'cafe ',
      '0x',
      '1',
      'f',
      '12:',
      'a ',
      '2026-04-27 12:00:00',
      'tcpdump: ',
    ];
    const pick = () => around[rng.int(0, around.length - 1)];
    const re = new RegExp(MESSAGE_PATTERN);
    const forms = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const bytes = Array.from({ length: 6 }, () => rng.int(0, 255));
      const form = addressForm(rng, bytes);
      forms.add(form.replace(/[0-9a-f]/gi, 'h'));
      const text = `${pick()}${pick()}${form}${pick()}${pick()}${rng.chance(0.2) ? addressForm(rng) : ''}`;
      const out = redactAddresses(text);
      // Nothing of 4 or more of its bytes survives, in either order, whatever separators remain.
      const flat = out
        .toLowerCase()
        .replace(/0x/g, '')
        .replace(/[^0-9a-f]/g, '');
      for (const order of [bytes, [...bytes].reverse()]) {
        const h = order.map((x) => x.toString(16).padStart(2, '0')).join('');
        for (let k = 0; k + 8 <= 12; k += 2) expect(flat, JSON.stringify({ text, out })).not.toContain(h.slice(k, k + 8));
      }
      // The message pattern refuses the raw text, and accepts its sanitised form.
      if (text.length <= 200) expect(re.test(text), text).toBe(false);
      expect(re.test(sanitiseMessage(text))).toBe(true);
    }
    expect(forms.size).toBeGreaterThan(60); // many distinct shapes were tried
    // The forms of issue 10.2, and ordinary text left alone.
    for (const t of ['dev 0xaabbccddeeff', 'aa bb cc dd ee ff', 'aa_bb_cc_dd_ee_ff', 'aabb-ccdd-eeff']) expect(redactAddresses(t)).not.toMatch(/aa|ff/i);
    expect(redactAddresses('exited with code 3 at 2026-04-27 12:00:00.000: capture interface went away')).toBe(
      'exited with code 3 at 2026-04-27 12:00:00.000: capture interface went away',
    );
  });
});
