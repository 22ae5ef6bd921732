// Scenario files: YAML or JSON, validated against a JSON schema (ajv) with messages that name the
// field ("gateways[1].wifi.dwell: must be a duration like 250ms, 60s, 15m, 1h30m or 7d").
// Built-in scenarios live in simulator/scenarios/<name>.yaml.
import { Ajv, type ErrorObject } from 'ajv';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { notTextProblem, readSmallFileBytes } from '../scripts/lib/small-file.ts';
import { basename, extname, join } from 'node:path';
import * as YAML from 'yaml';
import { parseJson, parseYamlDocument } from '../scripts/lib/yaml-doc.ts';
import { ID_PATTERN, isValidId } from '../contract/index.ts';
import { PACKAGE_ROOT } from '../scripts/package-root.ts';
import { MODELS } from './devices.ts';
import type { Environment } from './radio.ts';
import { DURATION_HINT, durationMs } from '../scripts/lib/duration.ts';
import { describeErrors, distance, type JsonSchema } from '../scripts/lib/config-loader.ts';
import { deprecated } from '../scripts/lib/deprecate.ts';

export const SCENARIO_DIR = join(PACKAGE_ROOT, 'simulator', 'scenarios');

/**
 * Seconds of a duration: text like 250ms, 60s, 15m, 1h30m (the one syntax of scripts/lib/duration.ts).
 * A YAML number is read as seconds, as scenarios always did; with `name` (the key) it prints one
 * deprecation line saying how to write it. NaN when not one.
 */
export function parseDuration(v: string | number, name?: string, where?: string): number {
  const ms = durationMs(v, typeof v === 'number' ? { bare: 's', zero: true, name, where } : { zero: true });
  return Number.isNaN(ms) ? NaN : ms / 1000;
}

// ---------- resolved scenario (what the simulation runs) ----------
export interface WifiRadioSpec {
  channels: number[];
  dwellMs: number;
  switchMs: number;
  sensitivityDbm: number;
}
export interface BleRadioSpec {
  channel: 37 | 38 | 39;
  sensitivityDbm: number;
  duty: number;
}
export interface GatewaySpec {
  id: string;
  zone: string;
  position: [number, number];
  wifi?: WifiRadioSpec;
  ble?: BleRadioSpec;
  /** People within this distance count as "in reach" in the ground truth (metres). */
  reachM?: number;
}
export interface PeopleSpec {
  /** Weights of carrying 0, 1, 2, 3 devices, scaled to sum to 1 (as people.primary's are). */
  carry: [number, number, number, number];
  /** Model of a person's first device. */
  primary: Record<string, number>;
  /** Models of further devices. */
  secondary: Record<string, number>;
}
export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}
export interface GatheringSpec {
  type: 'gathering';
  name: string;
  region: Region;
  /** Target number of people present: [time (s), people], linear between points. */
  occupancy: Array<[number, number]>;
  dwellS: number;
  dwellCv: number;
  speedMps: number;
  /** Mean time between moves to another spot inside the region. */
  moveEveryS: number;
}
export interface FlowModeSpec {
  perHour: number;
  speedMps: number;
  speedCv: number;
  people: [number, number];
  attenuationDb: number;
  /** Devices of the vehicle itself: model -> probability. */
  vehicleDevices: Record<string, number>;
}
export interface FlowSpec {
  type: 'flow';
  name: string;
  from: [number, number];
  to: [number, number];
  bidirectional: boolean;
  modes: Record<string, FlowModeSpec>;
}
export type CrowdSpec = GatheringSpec | FlowSpec;
export interface FixedSpec {
  model: string;
  position: [number, number];
  count: number;
}
export interface Scenario {
  name: string;
  description: string;
  site: string;
  /** Start time, ms since the Unix epoch. */
  startMs: number;
  durationS: number;
  windowS: number;
  /** Seconds between ground-truth samples of who is in reach. */
  truthStepS: number;
  /** Multiplier applied to crowd sizes and flow rates. */
  scale: number;
  environment: Environment;
  gateways: GatewaySpec[];
  people: PeopleSpec;
  crowds: CrowdSpec[];
  fixed: FixedSpec[];
}

// ---------- schema of the file ----------
const duration = { type: ['string', 'number'], format: 'duration', minimum: 0 } as const;
const point = { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2 } as const;
const weights = { type: 'object', additionalProperties: { type: 'number', minimum: 0 } } as const;
const dbm = { type: 'number', minimum: -130, maximum: 0 } as const;

export const scenarioSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'site', 'duration', 'gateways'],
  properties: {
    name: { type: 'string', minLength: 1 },
    description: { type: 'string' },
    site: { type: 'string', pattern: ID_PATTERN },
    start: { type: 'string', format: 'date-time' },
    duration: duration,
    window: duration,
    truth_step: duration,
    environment: {
      type: 'object',
      additionalProperties: false,
      properties: {
        path_loss_exponent: { type: 'number', minimum: 1.5, maximum: 6 },
        reference_loss_db: { type: 'number', minimum: 0, maximum: 80 },
        shadowing_db: { type: 'number', minimum: 0, maximum: 20 },
        fading_db: { type: 'number', minimum: 0, maximum: 20 },
        body_loss_db: { type: 'number', minimum: 0, maximum: 30 },
      },
    },
    gateways: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'zone', 'position'],
        properties: {
          id: { type: 'string', pattern: ID_PATTERN },
          zone: { type: 'string', pattern: ID_PATTERN },
          position: point,
          reach: { type: 'number', exclusiveMinimum: 0 },
          wifi: {
            oneOf: [
              { type: 'boolean', const: false },
              {
                type: 'object',
                additionalProperties: false,
                properties: {
                  channels: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 1, maximum: 177 } },
                  dwell: duration,
                  switch: duration,
                  sensitivity_dbm: dbm,
                },
              },
            ],
          },
          ble: {
            oneOf: [
              { type: 'boolean', const: false },
              {
                type: 'object',
                additionalProperties: false,
                properties: {
                  channel: { enum: [37, 38, 39] },
                  sensitivity_dbm: dbm,
                  duty: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
                },
              },
            ],
          },
        },
      },
    },
    people: {
      type: 'object',
      additionalProperties: false,
      properties: {
        carry: { type: 'array', items: { type: 'number', minimum: 0 }, minItems: 4, maxItems: 4 },
        primary: weights,
        secondary: weights,
      },
    },
    crowds: {
      type: 'array',
      items: {
        type: 'object',
        required: ['type'],
        properties: { type: { enum: ['gathering', 'flow'] } },
        if: { properties: { type: { const: 'gathering' } } },
        then: {
          additionalProperties: false,
          required: ['type', 'region', 'occupancy'],
          properties: {
            type: { const: 'gathering' },
            name: { type: 'string' },
            region: {
              type: 'object',
              additionalProperties: false,
              required: ['x', 'y', 'width', 'height'],
              properties: {
                x: { type: 'number' },
                y: { type: 'number' },
                width: { type: 'number', exclusiveMinimum: 0 },
                height: { type: 'number', exclusiveMinimum: 0 },
              },
            },
            occupancy: {
              type: 'array',
              minItems: 1,
              // [time, people]: the tuple form of `items` (this Ajv reads draft-07, which has no prefixItems)
              items: { type: 'array', minItems: 2, maxItems: 2, items: [duration, { type: 'number', minimum: 0 }] },
            },
            dwell: duration,
            dwell_cv: { type: 'number', minimum: 0, maximum: 5 },
            speed: { type: 'number', exclusiveMinimum: 0 },
            move_every: duration,
          },
        },
        // a flow only when it says so: a type that is neither (a misspelt 'gatherin') is the enum's one
        // line above, not a flow's required keys and every gathering key called unknown
        else: {
          if: { properties: { type: { const: 'flow' } } },
          then: {
            additionalProperties: false,
            required: ['type', 'from', 'to', 'modes'],
            properties: {
              type: { const: 'flow' },
              name: { type: 'string' },
              from: point,
              to: point,
              bidirectional: { type: 'boolean' },
              modes: {
                type: 'object',
                minProperties: 1,
                additionalProperties: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['per_hour', 'speed'],
                  properties: {
                    per_hour: { type: 'number', minimum: 0 },
                    speed: { type: 'number', exclusiveMinimum: 0 },
                    speed_cv: { type: 'number', minimum: 0, maximum: 1 },
                    people: { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 2, maxItems: 2 },
                    attenuation_db: { type: 'number', minimum: 0, maximum: 40 },
                    vehicle_devices: { type: 'object', additionalProperties: { type: 'number', minimum: 0, maximum: 1 } },
                  },
                },
              },
            },
          },
        },
      },
    },
    fixed: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['model', 'position'],
        properties: { model: { type: 'string' }, position: point, count: { type: 'integer', minimum: 1 } },
      },
    },
  },
} as const;

// strictNumbers: YAML reads 1e400 as Infinity (and .nan as NaN), which type number would let through
const ajv = new Ajv({ allErrors: true, strict: false, strictNumbers: true });
ajv.addFormat('duration', { type: 'string', validate: (s: string) => !Number.isNaN(parseDuration(s)) });
ajv.addFormat('date-time', { type: 'string', validate: (s: string) => /^\d{4}-\d{2}-\d{2}T/.test(s) && !Number.isNaN(Date.parse(s)) });
const validate = ajv.compile(scenarioSchema);

/** The finest truth_step: a person walks 14 cm in it, and a finer one only slows the run. */
export const TRUTH_STEP_MIN_S = 0.1;
/** Most fixed devices (the sum of fixed[].count) a scenario may have: each is held in memory for the whole run. */
export const FIXED_DEVICES_MAX = 100_000;

export class ScenarioError extends Error {
  /**
   * `lines[i]`: the line of the file that problem i is about (`file.yaml:12: ...`), where the problem
   * names a key the file holds (or the mapping a missing key belongs in); unset for a document given
   * as an object, or a problem about no key (a flag, the whole file).
   */
  constructor(
    readonly source: string,
    readonly problems: string[],
    readonly lines: ReadonlyArray<number | undefined> = [],
  ) {
    const where = (i: number) => `${source}${lines[i] ? `:${lines[i]}` : ''}`;
    super(
      problems.length === 1
        ? `${where(0)}: ${problems[0]}`
        : `${source}: ${problems.length} problems:\n  - ${problems.map((p, i) => (lines[i] ? `line ${lines[i]}: ${p}` : p)).join('\n  - ')}`,
    );
    this.name = 'ScenarioError';
  }

  /** "file.yaml:12: problem" (or "file.yaml: problem" without a line), one per problem. */
  lineOf(i: number): string {
    return `${this.source}${this.lines[i] ? `:${this.lines[i]}` : ''}: ${this.problems[i]}`;
  }
}

/** The key path a problem starts with ("crowds[0].modes.car.people: ..."), as keys and indices; null for "(top level)". */
function problemPath(problem: string): Array<string | number> | null | undefined {
  if (problem.startsWith('(top level): ')) return null;
  const m = /^([A-Za-z_][\w-]*(?:\[\d+\]|\.[A-Za-z_][\w-]*)*): /.exec(problem);
  if (!m) return undefined;
  return m[1].split(/\.|(?=\[)/).map((seg) => (seg.startsWith('[') ? Number(seg.slice(1, -1)) : seg));
}

const camel = (key: string) => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * The line of a scenario text that each problem is about: the key its path ends at, or the deepest
 * mapping of that path the text holds (where a missing key belongs), or, for an unknown field, that
 * field's key. Keys renamed from their camelCase form are found under their old name.
 */
function problemLines(text: string, problems: readonly string[]): Array<number | undefined> {
  const lineCounter = new YAML.LineCounter();
  let doc: YAML.Document.Parsed;
  try {
    doc = YAML.parseDocument(text, { lineCounter, uniqueKeys: false });
  } catch {
    return [];
  }
  if (doc.errors.length) return [];
  const lineAt = (offset: number | undefined) => (offset === undefined ? undefined : lineCounter.linePos(offset).line);
  const pairIn = (node: unknown, key: string) =>
    YAML.isMap(node) ? node.items.find((p) => YAML.isScalar(p.key) && (p.key.value === key || p.key.value === camel(key))) : undefined;
  return problems.map((problem) => {
    const path = problemPath(problem);
    if (path === undefined) return undefined;
    let node: unknown = doc.contents;
    let line = lineAt((node as YAML.Node | null)?.range?.[0]);
    let found = 0;
    for (const seg of path ?? []) {
      if (typeof seg === 'number') {
        if (!YAML.isSeq(node) || !node.items[seg]) break;
        node = node.items[seg];
        line = lineAt((node as YAML.Node).range?.[0]);
      } else {
        const pair = pairIn(node, seg);
        if (!pair) break;
        line = lineAt((pair.key as YAML.Node).range?.[0]);
        node = pair.value;
      }
      found++;
    }
    // a top-level key the file does not hold (a value given by a flag): no line, unless it is the missing one
    if (path?.length && !found && !/: is required$/.test(problem)) line = undefined;
    // an unknown field: its own key's line, when the path led to its mapping
    const unknown = /: unknown field "([^"]+)"/.exec(problem);
    if (unknown) {
      let parent: unknown = doc.contents;
      for (const seg of path ?? []) parent = typeof seg === 'number' ? (YAML.isSeq(parent) ? parent.items[seg] : undefined) : pairIn(parent, seg)?.value;
      const pair = pairIn(parent, unknown[1]);
      if (pair) line = lineAt((pair.key as YAML.Node).range?.[0]);
    }
    return line;
  });
}

/** The schema object an error's schemaPath ("#/properties/gateways/items/additionalProperties") belongs to. */
function schemaAt(schemaPath: string): { properties?: Record<string, unknown> } | undefined {
  const parts = schemaPath.replace(/^#\//, '').split('/').slice(0, -1);
  return parts.reduce<any>((node, k) => node?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], scenarioSchema);
}

/** "/gateways/0/wifi/dwell" -> "gateways[0].wifi.dwell" */
function dotted(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function describe(errors: ErrorObject[]): string[] {
  const out = new Set<string>();
  // oneOf/if-then noise: report the concrete child errors, not the combinators.
  let concrete = errors.filter((e) => !['oneOf', 'anyOf', 'if'].includes(e.keyword));
  // A branch that failed on its type (`wifi: false` vs an object) is noise when the other branch
  // reports something deeper down: keep the deeper, concrete message.
  concrete = concrete.filter(
    (e) => !((e.keyword === 'type' || e.keyword === 'const') && concrete.some((o) => o.instancePath.startsWith(`${e.instancePath}/`))),
  );
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of concrete) byPath.set(e.instancePath, [...(byPath.get(e.instancePath) ?? []), e]);
  for (const [path, errs] of byPath) {
    const where = dotted(path) || '(top level)';
    // A radio that is neither false nor a mapping (wifi: true): one line for the two branches, not
    // "must be false" and "must be a mapping" one after the other.
    const radio = /^\/gateways\/\d+\/(wifi|ble)$/.exec(path)?.[1];
    if (radio && errs.every((e) => e.keyword === 'type' || e.keyword === 'const')) {
      out.add(
        `${where}: must be false (no ${radio === 'wifi' ? 'Wi-Fi' : 'BLE'} radio) or a mapping of its settings like ${radio === 'wifi' ? '{ channels: [1, 6, 11] }' : '{ channel: 37 }'}; leave it out for the default radio (got ${JSON.stringify(valueAt(path))})`,
      );
      continue;
    }
    // `wifi: false` vs an object: prefer the object branch's messages.
    // (a radio's mapping with a mistake in it: its false branch's "must be true or false" named a true
    // that is no radio's value, above the mistake itself)
    const relevant = errs.some((e) => e.keyword !== 'type' && e.keyword !== 'const')
      ? errs.filter((e) => !(e.keyword === 'const' && (e.params as { allowedValue: unknown }).allowedValue === false) && !(radio && e.keyword === 'type'))
      : errs;
    for (const e of relevant) {
      switch (e.keyword) {
        case 'required':
          out.add(`${path ? `${where}.` : ''}${(e.params as { missingProperty: string }).missingProperty}: is required`);
          break;
        case 'additionalProperties': {
          // the fix: the key meant (truth_stepp: did you mean "truth_step"?), else the keys that go there
          const extra = (e.params as { additionalProperty: string }).additionalProperty;
          const keys = Object.keys(schemaAt(e.schemaPath)?.properties ?? {});
          const close = keys
            .filter((k) => distance(k, extra) <= Math.max(2, Math.floor(extra.length / 3)))
            .sort((a, b) => distance(a, extra) - distance(b, extra));
          out.add(`${where}: unknown field "${extra}"${close.length ? ` (did you mean "${close[0]}"?)` : keys.length ? ` (known: ${keys.join(', ')})` : ''}`);
          break;
        }
        case 'format':
          out.add(
            (e.params as { format: string }).format === 'duration'
              ? `${where}: ${DURATION_HINT} (got ${JSON.stringify(valueAt(path))})`
              : `${where}: must be a date and time like 2026-04-27T10:00:00Z (got ${JSON.stringify(valueAt(path))})`,
          );
          break;
        case 'pattern':
          out.add(`${where}: must be lower-case letters, digits, - and _, starting with a letter or digit (got ${JSON.stringify(valueAt(path))})`);
          break;
        case 'type':
          if (!path) {
            out.add(
              `(top level): must be a mapping of keys (name:, site:, duration:, gateways: ...), not ${Array.isArray(currentInput) ? 'a list' : typeof currentInput}`,
            );
            break;
          }
          out.add(asConfig(e, where));
          break;
        default:
          // Worded as every config file's problems are (scripts/lib/config-loader.ts describeErrors):
          // "people.carry: must be a list of exactly 4 items, not 3 (got [...])", not ajv's
          // "must NOT have fewer than 4 items".
          out.add(asConfig(e, where));
      }
    }
  }
  return [...out];
  /** The config files' line for the error, under the scenario's name of the key (a key holding / or ~ too). */
  function asConfig(e: ErrorObject, where: string): string {
    const line =
      describeErrors([e], { specs: [], schema: scenarioSchema as unknown as JsonSchema, data: currentInput, origins: new Map() })[0] ?? `: ${e.message}`;
    return `${where}${line.slice(line.indexOf(': '))}`;
  }
  function valueAt(p: string): unknown {
    let v: unknown = currentInput;
    for (const k of p.split('/').slice(1)) v = (v as Record<string, unknown> | undefined)?.[k];
    return v;
  }
}
let currentInput: unknown;

export interface ScenarioOverrides {
  durationS?: number;
  windowS?: number;
  /** Multiply crowd sizes and flow rates. */
  scale?: number;
  /** Scale crowds so that the nominal peak number of people is this. */
  people?: number;
  start?: string | number | Date;
  truthStepS?: number;
}

const DEFAULT_ENV: Environment = { pathLossExponent: 3.0, referenceLossDb: 40, shadowingDb: 4, fadingDb: 2, bodyLossDb: 3 };
const DEFAULT_PEOPLE: PeopleSpec = {
  carry: [0.04, 0.56, 0.3, 0.1],
  primary: { 'iphone-ios17': 0.45, 'android-14': 0.3, 'android-oppo': 0.17, 'android-legacy': 0.08 },
  secondary: { 'watch-apple': 0.25, 'watch-wearos': 0.1, 'earbuds-airpods': 0.3, 'tracker-band': 0.1, 'ipad-ios17': 0.1, 'laptop-windows': 0.15 },
};

/**
 * Keys that were camelCase until scenario files took the snake_case of every other configuration
 * file: old name -> new name, by where they sit. An old key still works and prints one deprecation
 * line (per key, whichever gateway or crowd it is in); when both are given, the new one wins.
 */
const OLD_SCENARIO_KEYS: Array<{ at: (d: Rec) => Rec[]; where: string; keys: Record<string, string> }> = [
  { at: (d) => [d], where: '', keys: { truthStep: 'truth_step' } },
  {
    at: (d) => [d.environment as Rec],
    where: 'environment.',
    keys: {
      pathLossExponent: 'path_loss_exponent',
      referenceLossDb: 'reference_loss_db',
      shadowingDb: 'shadowing_db',
      fadingDb: 'fading_db',
      bodyLossDb: 'body_loss_db',
    },
  },
  { at: (d) => list(d.gateways).map((g) => g.wifi as Rec), where: 'gateways[].wifi.', keys: { sensitivityDbm: 'sensitivity_dbm' } },
  { at: (d) => list(d.gateways).map((g) => g.ble as Rec), where: 'gateways[].ble.', keys: { sensitivityDbm: 'sensitivity_dbm' } },
  { at: (d) => list(d.crowds), where: 'crowds[].', keys: { dwellCv: 'dwell_cv', moveEvery: 'move_every' } },
  {
    at: (d) => list(d.crowds).flatMap((c) => (isRec(c.modes) ? Object.values(c.modes) : []) as Rec[]),
    where: 'crowds[].modes.*.',
    keys: { perHour: 'per_hour', speedCv: 'speed_cv', attenuationDb: 'attenuation_db', vehicleDevices: 'vehicle_devices' },
  },
];
type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): Rec[] => (Array.isArray(v) ? v.filter(isRec) : []);

/** A copy of the document with old camelCase keys under their snake_case names, one deprecation line per old key. */
export function renameOldScenarioKeys(doc: unknown, source: string): unknown {
  if (!isRec(doc)) return doc;
  const copy = structuredClone(doc);
  for (const { at, where, keys } of OLD_SCENARIO_KEYS) {
    for (const o of at(copy)) {
      if (!isRec(o)) continue;
      for (const [old, key] of Object.entries(keys)) {
        if (!(old in o)) continue;
        deprecated('config key', where + old, where + key, source);
        if (!(key in o)) o[key] = o[old];
        delete o[old];
      }
    }
  }
  return copy;
}

/** The radio environment of a file (snake_case keys) over the defaults. */
function environmentOf(e: Rec | undefined): Environment {
  const pick = (k: string, def: number) => (typeof e?.[k] === 'number' ? (e[k] as number) : def);
  return {
    pathLossExponent: pick('path_loss_exponent', DEFAULT_ENV.pathLossExponent),
    referenceLossDb: pick('reference_loss_db', DEFAULT_ENV.referenceLossDb),
    shadowingDb: pick('shadowing_db', DEFAULT_ENV.shadowingDb),
    fadingDb: pick('fading_db', DEFAULT_ENV.fadingDb),
    bodyLossDb: pick('body_loss_db', DEFAULT_ENV.bodyLossDb),
  };
}

/** Validates a parsed scenario document and resolves defaults and overrides. Throws ScenarioError. */
export function resolveScenario(doc: unknown, source = 'scenario', o: ScenarioOverrides = {}): Scenario {
  doc = renameOldScenarioKeys(doc, source);
  currentInput = doc;
  if (!validate(doc)) throw new ScenarioError(source, describe(validate.errors ?? []));
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const d = doc as any;
  const problems: string[] = [];
  const dur = (v: unknown, def: number, name: string) => (v === undefined ? def : parseDuration(v as string | number, name, source));

  // The captures go to sim-out/<name> when no --out is given: a name of "../../x" wrote them outside
  // sim-out, "/tmp/x" into sim-out/tmp/x.
  if (/[/\\\0]/.test(d.name) || d.name === '.' || d.name === '..')
    problems.push(`name: must not hold a / or \\ or be . or .. (got ${JSON.stringify(d.name)}): the captures go to sim-out/<name> unless --out is given`);

  const knownModels = Object.keys(MODELS);
  const checkModels = (where: string, w: Record<string, number> | undefined) => {
    for (const k of Object.keys(w ?? {})) if (!MODELS[k]) problems.push(`${where}: unknown device model "${k}" (known: ${knownModels.join(', ')})`);
  };
  const people: PeopleSpec = {
    carry: d.people?.carry ?? DEFAULT_PEOPLE.carry,
    primary: d.people?.primary ?? DEFAULT_PEOPLE.primary,
    secondary: d.people?.secondary ?? DEFAULT_PEOPLE.secondary,
  };
  checkModels('people.primary', d.people?.primary);
  checkModels('people.secondary', d.people?.secondary);
  if (people.carry.reduce((a, b) => a + b, 0) <= 0) problems.push('people.carry: at least one probability must be above 0');
  // A person's devices are drawn from these weights: none above 0 (`primary: {}`) crashed the run
  // ("Cannot read properties of undefined") or gave every person the last model listed.
  const [, one, two, three] = people.carry;
  const noWeight = (w: Record<string, number>) => !Object.values(w).some((v) => v > 0);
  if (one + two + three > 0 && noWeight(people.primary))
    problems.push(`people.primary: needs a device model with a weight above 0, like { iphone-ios17: 1 } (people.carry gives people a device)`);
  if (two + three > 0 && noWeight(people.secondary))
    problems.push(`people.secondary: needs a device model with a weight above 0, like { watch-apple: 1 } (people.carry gives people a second device)`);

  const seen = new Set<string>();
  const gateways: GatewaySpec[] = d.gateways.map((g: any, i: number): GatewaySpec => {
    if (seen.has(g.id)) problems.push(`gateways[${i}].id: "${g.id}" is used by another gateway`);
    seen.add(g.id);
    const wifi: WifiRadioSpec | undefined =
      g.wifi === false
        ? undefined
        : {
            channels: g.wifi?.channels ?? [1, 6, 11],
            dwellMs: dur(g.wifi?.dwell, 0.2, `gateways[${i}].wifi.dwell`) * 1000,
            switchMs: dur(g.wifi?.switch, 0.005, `gateways[${i}].wifi.switch`) * 1000,
            sensitivityDbm: g.wifi?.sensitivity_dbm ?? -92,
          };
    for (const ch of wifi ? new Set(wifi.channels) : [])
      if (!isWifiChannel(ch))
        problems.push(
          `gateways[${i}].wifi.channels: ${ch} is not a Wi-Fi channel (2.4 GHz: 1-14; 5 GHz: 32-68, 96-144 and 149-177 in steps of 4, e.g. 36, 100, 149)`,
        );
    if (wifi && new Set(wifi.channels).size < wifi.channels.length)
      problems.push(`gateways[${i}].wifi.channels: a channel is listed twice (${wifi.channels.join(', ')}); list each once`);
    if (wifi && wifi.switchMs >= wifi.dwellMs) problems.push(`gateways[${i}].wifi.switch: must be shorter than wifi.dwell`);
    if (wifi && !(wifi.dwellMs > 0)) problems.push(`gateways[${i}].wifi.dwell: must be above 0`);
    const ble: BleRadioSpec | undefined =
      g.ble === false ? undefined : { channel: g.ble?.channel ?? 37, sensitivityDbm: g.ble?.sensitivity_dbm ?? -95, duty: g.ble?.duty ?? 1 };
    if (!wifi && !ble) problems.push(`gateways[${i}]: needs a wifi or a ble radio`);
    return { id: g.id, zone: g.zone, position: g.position, wifi, ble, reachM: g.reach };
  });

  const crowds: CrowdSpec[] = (d.crowds ?? []).map((c: any, i: number): CrowdSpec => {
    if (c.type === 'gathering') {
      const occ: Array<[number, number]> = c.occupancy.map((p: [string | number, number]) => [parseDuration(p[0], `crowds[${i}].occupancy`, source), p[1]]);
      for (let k = 1; k < occ.length; k++)
        if (!(occ[k][0] > occ[k - 1][0])) problems.push(`crowds[${i}].occupancy[${k}]: times must increase (${occ[k][0]} s after ${occ[k - 1][0]} s)`);
      const dwellS = dur(c.dwell, 1800, `crowds[${i}].dwell`);
      const moveEveryS = dur(c.move_every, 900, `crowds[${i}].move_every`);
      // Arrivals come at N(t) / dwell a second: 0 s ran until the heap ran out (in the size estimate,
      // before anything was written), with no line saying why.
      if (dwellS < 1) problems.push(`crowds[${i}].dwell: must be at least 1s, like 30m (got ${c.dwell})`);
      // A person moves on after an exponential stay of this mean: 0 s in a small region made a waypoint
      // every few milliseconds of a person's stay (300 people in a 1-cm region ran the heap out).
      if (moveEveryS < 1) problems.push(`crowds[${i}].move_every: must be at least 1s, like 10m (got ${c.move_every})`);
      return {
        type: 'gathering',
        name: c.name ?? `gathering-${i}`,
        region: c.region,
        occupancy: occ,
        dwellS,
        dwellCv: c.dwell_cv ?? 0.8,
        speedMps: c.speed ?? 1.2,
        moveEveryS,
      };
    }
    if (c.from[0] === c.to[0] && c.from[1] === c.to[1])
      problems.push(`crowds[${i}].to: must differ from from (${JSON.stringify(c.from)}): a flow passes from one end to the other`);
    const modes: Record<string, FlowModeSpec> = {};
    for (const [name, m] of Object.entries<any>(c.modes)) {
      checkModels(`crowds[${i}].modes.${name}.vehicle_devices`, m.vehicle_devices);
      const ppl: [number, number] = m.people ?? [1, 1];
      // Each traveller of a mode is a person or a vehicle with its occupants: [0, 0] ran cars with
      // nobody in them (their car kits counted as devices of no one) and [0, 3] some of them.
      if (ppl[0] < 1) problems.push(`crowds[${i}].modes.${name}.people: each ${name} carries at least one person, like [1, 3] (got ${JSON.stringify(ppl)})`);
      else if (ppl[1] < ppl[0]) problems.push(`crowds[${i}].modes.${name}.people: [min, max] with max >= min`);
      modes[name] = {
        perHour: m.per_hour,
        speedMps: m.speed,
        speedCv: m.speed_cv ?? 0.15,
        people: ppl,
        attenuationDb: m.attenuation_db ?? 0,
        vehicleDevices: m.vehicle_devices ?? {},
      };
    }
    return { type: 'flow', name: c.name ?? `flow-${i}`, from: c.from, to: c.to, bidirectional: c.bidirectional ?? true, modes };
  });
  const fixed: FixedSpec[] = (d.fixed ?? []).map((f: any, i: number) => {
    if (!MODELS[f.model]) problems.push(`fixed[${i}].model: unknown device model "${f.model}" (known: ${knownModels.join(', ')})`);
    return { model: f.model, position: f.position, count: f.count ?? 1 };
  });
  // Every fixed device is kept in memory for the whole run, as a person is (~15 kB each; --scale
  // does not touch them): a count of 100,000,000 ran the heap out (a V8 crash, no line saying why).
  const fixedDevices = fixed.reduce((n, f) => n + f.count, 0);
  if (fixedDevices > FIXED_DEVICES_MAX) {
    const largest = fixed.reduce((a, f, i) => (f.count > fixed[a].count ? i : a), 0);
    problems.push(
      `fixed[${largest}].count: the fixed devices come to ${fixedDevices.toLocaleString('en')}; the simulator holds at most ${FIXED_DEVICES_MAX.toLocaleString('en')} (each is kept in memory): lower the count`,
    );
  }

  const startMs = o.start !== undefined ? new Date(o.start).getTime() : d.start ? Date.parse(d.start) : Date.parse('2026-04-27T10:00:00Z');
  if (!Number.isFinite(startMs)) problems.push(`start: not a date (${String(o.start)})`);
  const durationS = o.durationS ?? parseDuration(d.duration, 'duration', source);
  const windowS = o.windowS ?? dur(d.window, 60, 'window');
  if (!(durationS > 0)) problems.push(`duration: must be above 0 (got ${durationS})`);
  if (!(windowS > 0)) problems.push(`window: must be above 0 (got ${windowS})`);
  const truthStepS = o.truthStepS ?? dur(d.truth_step, Math.min(5, windowS), 'truth_step');
  // the truth is sampled every truth_step: 0s sampled the same instant for ever (the run never ended)
  if (!(truthStepS > 0)) problems.push(`truth_step: must be above 0, like 5s (got ${d.truth_step ?? o.truthStepS})`);
  // and not finer than 100 ms (a walker moves 14 cm in it): 1ms sampled everyone 1,000 times a second,
  // a 2-minute run took seconds and a day's run hours, for a truth no different from 100ms's
  else if (truthStepS < TRUTH_STEP_MIN_S && (d.truth_step !== undefined || o.truthStepS !== undefined))
    problems.push(
      `truth_step: must be at least 100ms, like 5s (got ${d.truth_step ?? `${o.truthStepS}s`}): who is in reach is sampled this often, and a walker moves 14 cm in 100 ms; a finer step only makes the run slower`,
    );
  // Nothing that sends: no crowd holding anyone and no fixed device wrote captures of 0 frames without
  // a word (the flags' --scale 0 on such a scenario is refused the same way, limits.ts checkCrowd).
  // (after the file's other problems, of which it may be one; --people on such crowds says so below)
  if (!problems.length && o.people === undefined && !fixed.some((f) => f.count > 0) && !(nominalPeople({ crowds }) > 0))
    problems.push(
      crowds.length
        ? "crowds: hold nobody at their peak (every occupancy is 0 and every flow's per_hour 0) and the scenario has no fixed devices, so nothing would send a frame and the captures would be empty; give a crowd people, or add devices under fixed:"
        : 'crowds: the scenario has no crowds and no fixed devices, so nothing would send a frame and the captures would be empty; add a gathering or a flow under crowds:, or devices under fixed:',
    );
  if (problems.length) throw new ScenarioError(source, problems);

  const scenario: Scenario = {
    name: d.name,
    description: d.description ?? '',
    site: d.site,
    startMs,
    durationS,
    windowS,
    truthStepS,
    scale: 1,
    environment: environmentOf(d.environment),
    gateways,
    people,
    crowds,
    fixed,
  };
  let scale = o.scale ?? 1;
  if (o.people !== undefined) {
    const nominal = nominalPeople(scenario);
    if (nominal <= 0)
      throw new ScenarioError(source, [
        scenario.crowds.length
          ? // occupancy 0 throughout, or per_hour 0: "no crowds ... fixed equipment" was not what the file said
            `--people ${o.people}: the scenario's crowds hold nobody at their peak (every occupancy is 0 and every flow's per_hour 0), so no scale gives a peak of ${o.people} people; leave out --people, or give a crowd people in the file`
          : `--people ${o.people}: the scenario has no crowds to scale (its devices are fixed equipment), so no scale gives a peak of ${o.people} people; leave out --people`,
      ]);
    scale = o.people / nominal;
  }
  if (!(scale >= 0) || !Number.isFinite(scale)) throw new ScenarioError(source, [`scale: must be a number >= 0 (got ${scale})`]);
  scenario.scale = scale;
  return scenario;
}

/** Peak people the crowds aim for at scale 1: gathering peaks plus people on the flows at once. */
export function nominalPeople(s: Pick<Scenario, 'crowds'>): number {
  let n = 0;
  for (const c of s.crowds) {
    if (c.type === 'gathering') n += Math.max(...c.occupancy.map((p) => p[1]));
    else {
      const len = Math.hypot(c.to[0] - c.from[0], c.to[1] - c.from[1]);
      for (const m of Object.values(c.modes)) n += (m.perHour / 3600) * (len / m.speedMps) * ((m.people[0] + m.people[1]) / 2) * (c.bidirectional ? 2 : 1);
    }
  }
  return n;
}

/** A 20-MHz Wi-Fi channel number: 2.4 GHz 1-14, 5 GHz 32-68, 96-144, 149-177 in steps of 4. */
export function isWifiChannel(ch: number): boolean {
  if (ch >= 1 && ch <= 14) return true;
  if (ch % 4 === 0) return (ch >= 32 && ch <= 68) || (ch >= 96 && ch <= 144);
  return ch % 4 === 1 && ch >= 149 && ch <= 177;
}

export function builtinScenarios(): string[] {
  if (!existsSync(SCENARIO_DIR)) return [];
  return readdirSync(SCENARIO_DIR)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .map((f) => basename(f, extname(f)))
    .sort();
}

/** ' at line L, column C: what' from JSON.parse's message, which gives a character position
 *  ("... in JSON at position 11"), or the end of the text when it ran out ("Unexpected end"). */
function jsonErrorPlace(text: string, message: string): string {
  const at = /\s*in JSON at position (\d+)/.exec(message);
  const what = message.replace(/\s*in JSON at position \d+.*$/, '').replace(/ of JSON input$/, '');
  const pos = at ? Number(at[1]) : /end of JSON input/.test(message) ? text.length : -1;
  if (pos < 0) return `: ${message}`;
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - (before.lastIndexOf('\n') + 1) + 1;
  return ` at line ${line}, column ${column}: ${what}`;
}

/** Parses YAML or JSON text; syntax errors name the line and column. */
export function parseScenarioText(text: string, source: string): unknown {
  if (source.endsWith('.json')) {
    try {
      return parseJson(YAML, text);
    } catch (e) {
      // a key twice ("Map keys must be unique at line L, column C") already says where
      const m = (e as Error).message;
      throw new ScenarioError(source, [`not valid JSON${e instanceof SyntaxError ? jsonErrorPlace(text, m) : `: ${m}`}`]);
    }
  }
  const doc = parseYamlDocument(YAML, text, { prettyErrors: true });
  if (doc.errors.length)
    throw new ScenarioError(
      source,
      // the first line of the parser's message ends in ':' before a code frame of the line
      doc.errors.map((e) => `not valid YAML: ${e.message.split('\n')[0].replace(/:\s*$/, '')}`),
    );
  // An empty file (or one of comments) is null: said as such, not as '(top level): must be object'.
  if (doc.contents === null) throw new ScenarioError(source, ['the file is empty; a scenario needs at least name, site, duration and gateways']);
  try {
    return doc.toJS();
  } catch (e) {
    // (too many aliases, a YAML bomb, shows here, not in doc.errors)
    throw new ScenarioError(source, [`not valid YAML: ${(e as Error).message.split('\n')[0]}`]);
  }
}

/** A scenario file is at most this big (the built-ins are 1-3 kB). */
const MAX_SCENARIO_BYTES = 1024 * 1024;

/** Loads a built-in scenario by name or a scenario file by path. */
export function loadScenario(nameOrPath: string, o: ScenarioOverrides = {}): Scenario {
  let path = nameOrPath;
  // A built-in's name that is also a folder here (the output of an earlier `--out kingsday-square`)
  // names the built-in: a folder is never a scenario file.
  const folder = existsSync(path) && statSync(path).isDirectory() && builtinScenarios().includes(nameOrPath);
  if (!existsSync(path) || folder) {
    const hit = ['yaml', 'yml', 'json'].map((e) => join(SCENARIO_DIR, `${nameOrPath}.${e}`)).find((p) => existsSync(p));
    if (!hit) throw new ScenarioError(nameOrPath, [`no such scenario file, and not a built-in scenario (built-ins: ${builtinScenarios().join(', ')})`]);
    path = hit;
  }
  let bytes: Buffer;
  try {
    bytes = readSmallFileBytes(path, MAX_SCENARIO_BYTES);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESMALLFILE') throw new ScenarioError(path, [`the scenario file ${(e as Error).message}`]);
    throw new ScenarioError(path, [`cannot read the scenario file (${(e as Error).message})`]);
  }
  // A capture (the simulator's own output, say) named as the scenario: said as such, not as YAML.
  const notText = notTextProblem(bytes);
  if (notText) throw new ScenarioError(path, [`the scenario file ${notText}`]);
  const text = bytes.toString('utf8');
  const doc = parseScenarioText(text, path);
  try {
    return resolveScenario(doc, path, o);
  } catch (e) {
    // The same problems, each with the line of the file it is about (a JSON file reads as YAML too).
    if (e instanceof ScenarioError && !e.lines.length) throw new ScenarioError(e.source, e.problems, problemLines(text, e.problems));
    throw e;
  }
}

export { isValidId };
