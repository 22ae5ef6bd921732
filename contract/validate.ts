// Validators of the payloads (ajv, JSON Schema 2020-12) against the schema files in schemas/.
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import countsSchemaJson from './schemas/counts.schema.json' with { type: 'json' };
import statusSchemaJson from './schemas/status.schema.json' with { type: 'json' };
import { CONTRACT_VERSION } from './topics.ts';
import type { CountsMessage, StatusMessage } from './types.ts';

/** The JSON Schema of a counts message (contract/schemas/counts.schema.json). */
export const countsSchema: Record<string, unknown> = countsSchemaJson;
/** The JSON Schema of a status message (contract/schemas/status.schema.json). */
export const statusSchema: Record<string, unknown> = statusSchemaJson;

const addFormats = addFormatsModule as unknown as (a: Ajv2020) => Ajv2020;
const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
const countsValidator = ajv.compile(countsSchema);
const statusValidator = ajv.compile(statusSchema);

/** One line a person can read, naming each bad field: "/wifi/devices must be >= 0; /seq is required". */
export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  if (!errors?.length) return '';
  return errors
    .map((e) => {
      const where = e.instancePath || '/';
      if (e.keyword === 'required') return `${where === '/' ? '' : where}/${(e.params as { missingProperty: string }).missingProperty} is required`;
      if (e.keyword === 'const') return `${where} must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
      if (e.keyword === 'enum') return `${where} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
      return `${where} ${e.message}`;
    })
    .join('; ');
}

export type Validation<T> = { ok: true; value: T } | { ok: false; reason: string };

export function validateCounts(value: unknown): Validation<CountsMessage> {
  if (countsValidator(value)) {
    const m = value as unknown as CountsMessage;
    if (Date.parse(m.end) <= Date.parse(m.start)) return { ok: false, reason: '/end must be after /start' };
    return { ok: true, value: m };
  }
  return { ok: false, reason: describeErrors(countsValidator.errors) };
}

export function validateStatus(value: unknown): Validation<StatusMessage> {
  if (statusValidator(value)) return { ok: true, value: value as unknown as StatusMessage };
  return { ok: false, reason: describeErrors(statusValidator.errors) };
}

/** Payload bytes of a message, as published. */
export function encode(message: CountsMessage | StatusMessage): Buffer {
  return Buffer.from(JSON.stringify(message));
}

/** The last-will payload a gateway registers at connect. */
export function offlineStatus(site: string, gateway: string, zone?: string): StatusMessage {
  return { v: CONTRACT_VERSION, site, gateway, ...(zone ? { zone } : {}), state: 'offline' };
}
