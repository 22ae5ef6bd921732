// Validators of the payloads (ajv, JSON Schema 2020-12) against the schema files in schemas/.
// The validators are ajv's standalone code for those schemas, generated ahead of time into
// validators.generated.ts (scripts/gen-validators.ts, same ajv options as compiling here did): a
// gateway or aggregator then neither loads ajv nor compiles the schemas at start-up, which cost an
// idle gateway several MB of heap. test/contract-validators.test.ts fails when it drifts from the schemas.
import type { ErrorObject, ValidateFunction } from 'ajv';
import { validateCounts as generatedCounts, validateSketch as generatedSketch, validateStatus as generatedStatus } from './validators.generated.ts';
import { countsSchemaJson, sketchSchemaJson, statusSchemaJson } from './schemas.ts';
import { CONTRACT_VERSION, MAX_COUNT, MAX_WINDOW_MS } from './topics.ts';
import type { CountsMessage, SketchMessage, StatusMessage } from './types.ts';

/** The JSON Schema of a counts message (contract/schemas/counts.schema.json). */
export const countsSchema: Record<string, unknown> = countsSchemaJson;
/** The JSON Schema of a status message (contract/schemas/status.schema.json). */
export const statusSchema: Record<string, unknown> = statusSchemaJson;

/** The JSON Schema of a corridor sketch message (contract/schemas/sketch.schema.json). */
export const sketchSchema: Record<string, unknown> = sketchSchemaJson;

const countsValidator = generatedCounts as unknown as ValidateFunction;
const sketchValidator = generatedSketch as unknown as ValidateFunction;
const statusValidator = generatedStatus as unknown as ValidateFunction;

/** What a field of each shared definition must be, in words (instead of ajv's pattern dump). */
const DEF_WORDS: Record<string, string> = {
  id: 'must be an id: lower case letters, digits, - and _, 1 to 63 characters',
  count: `must be an integer from 0 to ${MAX_COUNT} (2^53 - 1)`,
  amount: `must be a finite number from 0 to ${MAX_COUNT} (2^53 - 1)`,
  time: 'must be a UTC time like 2026-04-27T12:00:00.000Z, in the years 2000-2099, with seconds 00-59 (no leap second)',
};
const FIELD_WORDS: Record<string, string> = {
  last_error: 'must be one of the fixed sentences of contract/last-error.ts (for exited optionally with the exit code and signal)',
  name: 'must be a source name: letters, digits, _ . -, 1 to 64 characters',
  version: 'must be a version like 1.2.3',
  bits: 'must be standard base64 with padding of m / 8 bytes',
};

/**
 * A key named in a reason: printed only when it looks like a field name (an unknown key could itself
 * be an address): lower case, digits and `_`, no run of 5 or more hex digits (`da22fb01a09e`) and
 * no 3 or more hex groups joined by `_` (`da_22_fb_01_a0_9e`).
 */
export function keyName(key: string): string {
  const fieldName = /^[a-z][a-z0-9_]{0,31}$/.test(key) && !/[0-9a-f]{5,}/.test(key) && !/(?:^|_)[0-9a-f]{1,4}(?:_[0-9a-f]{1,4}){2,}(?:_|$)/.test(key);
  return fieldName ? key : '(a key that is not a field name)';
}

/** One line a person can read, naming each bad field once: "/wifi/devices must be ...; /seq is required". */
export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  if (!errors?.length) return '';
  const out: string[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const where = e.instancePath || '/';
    const at = where === '/' ? '' : where;
    let text: string;
    if (e.keyword === 'required') text = `${at}/${(e.params as { missingProperty: string }).missingProperty} is required`;
    else if (e.keyword === 'additionalProperties')
      text = `${at}/${keyName((e.params as { additionalProperty: string }).additionalProperty)} is not a field of the contract`;
    else if (e.keyword === 'const') text = `${where} must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    else if (e.keyword === 'enum') text = `${where} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    else if (e.keyword === 'type' && (e.params as { type: string }).type === 'object') text = `${where} must be an object`;
    else {
      const def = /^#\/\$defs\/([a-z]+)\/(?:minimum|maximum|type|pattern|format|maxLength)$/.exec(e.schemaPath)?.[1];
      const field = where.split('/').pop() ?? '';
      if (def && DEF_WORDS[def]) text = `${where} ${DEF_WORDS[def]}`;
      else if (FIELD_WORDS[field] && /^(pattern|maxLength|type)$/.test(e.keyword)) text = `${where} ${FIELD_WORDS[field]}`;
      else text = `${where} ${e.message}`;
    }
    if (!seen.has(text)) out.push(text);
    seen.add(text);
  }
  return out.join('; ');
}

/** Why a payload is refused: a field that is not in the contract, or a field with a bad value. */
export type ValidationCode = 'unknown_field' | 'invalid';
export type Validation<T> = { ok: true; value: T } | { ok: false; code: ValidationCode; reason: string };

function failure(errors: ErrorObject[] | null | undefined): { ok: false; code: ValidationCode; reason: string } {
  const unknown = errors?.some((e) => e.keyword === 'additionalProperties') ?? false;
  return { ok: false, code: unknown ? 'unknown_field' : 'invalid', reason: describeErrors(errors) };
}

/** A counts message: the schema, then end after start and at most MAX_WINDOW_MS (24 h) after it. */
export function validateCounts(value: unknown): Validation<CountsMessage> {
  if (!countsValidator(value)) return failure(countsValidator.errors);
  const m = value as unknown as CountsMessage;
  const length = Date.parse(m.end) - Date.parse(m.start);
  if (length <= 0) return { ok: false, code: 'invalid', reason: '/end must be after /start' };
  if (length > MAX_WINDOW_MS) return { ok: false, code: 'invalid', reason: `/end must be at most ${MAX_WINDOW_MS / 3600_000} h after /start` };
  return { ok: true, value: m };
}

export function validateStatus(value: unknown): Validation<StatusMessage> {
  if (!statusValidator(value)) return failure(statusValidator.errors);
  return { ok: true, value: value as unknown as StatusMessage };
}

/**
 * A corridor sketch: the schema, then window_end after window_start and at most MAX_WINDOW_MS after
 * it, `bits` exactly m / 8 bytes, and `epoch` the epoch of window_start for epoch_s.
 */
export function validateSketch(value: unknown): Validation<SketchMessage> {
  if (!sketchValidator(value)) return failure(sketchValidator.errors);
  const m = value as unknown as SketchMessage;
  const start = Date.parse(m.window_start);
  const length = Date.parse(m.window_end) - start;
  if (length <= 0) return { ok: false, code: 'invalid', reason: '/window_end must be after /window_start' };
  if (length > MAX_WINDOW_MS) return { ok: false, code: 'invalid', reason: `/window_end must be at most ${MAX_WINDOW_MS / 3600_000} h after /window_start` };
  // its length without decoding it: a decoded copy would stay in Node's Buffer pool, not zero-filled
  const bytes = Buffer.byteLength(m.bits, 'base64');
  if (bytes !== m.m / 8) return { ok: false, code: 'invalid', reason: `/bits holds ${bytes} bytes, /m = ${m.m} needs ${m.m / 8}` };
  const epoch = Math.floor(start / (m.epoch_s * 1000));
  if (m.epoch !== epoch) return { ok: false, code: 'invalid', reason: `/epoch must be ${epoch}, the epoch of /window_start for /epoch_s = ${m.epoch_s}` };
  return { ok: true, value: m };
}

/** Payload bytes of a message, as published. */
export function encode(message: CountsMessage | StatusMessage | SketchMessage): Buffer {
  return Buffer.from(JSON.stringify(message));
}

/** The last-will payload a gateway registers at connect. */
export function offlineStatus(site: string, gateway: string, zone?: string): StatusMessage {
  return { v: CONTRACT_VERSION, site, gateway, ...(zone ? { zone } : {}), state: 'offline' };
}
