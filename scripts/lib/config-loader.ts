// The one configuration system of every presence-counter command.
//
// A component describes each setting once, as an OptionSpec: its key in the YAML file (snake_case,
// dotted path), its JSON Schema, default, command-line flag, environment variable, description and
// any old names. From that list come the JSON Schema (validated with ajv), the commander options,
// the environment layer, readable errors naming the file or flag and the key, the deprecation lines
// for old names, and the config reference in the component's README (scripts/gen-config-docs.ts).
//
// Adding a setting = adding one entry to the component's table, e.g. (aggregator/config.ts)
//   { key: 'calibration', schema: { type: 'string', minLength: 1 }, path: true, flag: '--calibration <file>',
//     description: 'calibration file (presence calibrate): ...' }
// then `npx tsx scripts/gen-config-docs.ts` to rewrite the README reference. A renamed setting keeps
// its old names in `old: { flags, env, keys }` (and a line in test/config-aliases.test.ts).
// Layers, lowest first: defaults < config file < environment < flags.
import { decimal } from './decimal.ts';
import { type Stats, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type { Ajv, ErrorObject } from 'ajv';
import { Option, type Command } from 'commander';
import { bareDuration, deprecated, warning } from './deprecate.ts';
import { notTextProblem, oversizedCapture, readAtMost } from './small-file.ts';
import { DURATION_HINT, durationMs, durationNote, type DurationOptions } from './duration.ts';
import {
  AT_AFTER_HOST_HINT,
  badUserinfoEscape,
  atAfterHost,
  holdsUrlCredentials,
  isParsableUrl,
  noteSecretFileAsWritten,
  outOfRangePort,
  PORT_RANGE_HINT,
  USERINFO_ESCAPE_HINT,
  readableSecretProblem,
  redactTypedUrl,
  redactUrlsIn,
} from './secrets.ts';
import { parseJson, parseYamlDocument, syntaxProblem } from './yaml-doc.ts';

export type JsonSchema = Record<string, unknown>;

export interface OptionSpec {
  /** Dotted key in the component's YAML section, snake_case: 'mqtt.url'. */
  key: string;
  /** JSON Schema of the value (without `default`). For durations use `duration` instead. */
  schema?: JsonSchema;
  /**
   * The value is a duration ("60s"), written with its unit. `bare` names the unit of a bare number
   * where the setting always accepted one (file, environment and flag); `bareText`, where only its
   * flag and environment variable did. Such a number keeps its old meaning and prints one
   * deprecation line (bareDurations).
   */
  duration?: DurationOptions & { bareText?: 'ms' | 's' };
  description: string;
  /** Applied when the key is unset. */
  default?: unknown;
  /** Shown instead of `default` in docs and help (e.g. a default computed at run time). */
  defaultText?: string;
  required?: boolean;
  /** Commander syntax: '--mqtt-url <url>', or '--ignore-fcs' for a switch. */
  flag?: string;
  /** Help of the flag when it says something else than `description` (e.g. a switch that turns a key off). */
  flagHelp?: string;
  /** The value a switch (flag without argument) sets; default true. */
  flagValue?: unknown;
  /** The component reads this flag itself (e.g. a repeatable --source); the loader skips it. */
  manualFlag?: boolean;
  env?: string;
  /** A path: relative to the config file when it comes from one. */
  path?: boolean;
  /** A secret: never shown in help defaults; its *_file sibling holds the path to read it from. */
  secret?: boolean;
  /** Converts the text of a flag or environment variable; default: by the schema's type. */
  fromText?: (text: string) => unknown;
  /** What a value problem should say instead of ajv's words (for pattern and similar). */
  hint?: string;
  /** Example for the sample YAML when there is no default. */
  example?: unknown;
  /** Old names that still work and print one deprecation line. Keys are dotted paths. */
  old?: {
    flags?: string[];
    env?: string[];
    keys?: string[];
    /** An old flag that took no value and stands for one value of the new flag ('--http-no-page': 'off'). */
    flagValues?: Record<string, string>;
  };
}

// ------------------------------------------------------------------------------------------ errors

export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    readonly where = 'configuration',
    /** The hint line after the problems (scripts/lib/usage.ts exitUsage); unset: the command's --help. */
    readonly hint?: string,
  ) {
    // Problems of flags name their flag already: no "flags is invalid" header.
    super(where === 'flags' ? problems.join('\n') : `${where} is invalid:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

// ------------------------------------------------------------------------------------ object paths

export function getPath(obj: unknown, key: string): unknown {
  let cur: unknown = obj;
  for (const part of key.split('.').filter(Boolean)) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

export function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    const next = cur[part];
    if (!next || typeof next !== 'object' || Array.isArray(next)) cur[part] = {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]] = value;
}

export function deletePath(obj: Record<string, unknown>, key: string): void {
  const parts = key.split('.');
  const parent = getPath(obj, parts.slice(0, -1).join('.')) ?? (parts.length === 1 ? obj : undefined);
  if (parent && typeof parent === 'object') delete (parent as Record<string, unknown>)[parts[parts.length - 1]];
}

// ------------------------------------------------------------------------------------------ schema

/** The JSON Schema of one value, with its default. */
export function valueSchema(spec: OptionSpec): JsonSchema {
  const s: JsonSchema = spec.duration ? { 'x-duration': spec.duration } : { ...(spec.schema ?? {}) };
  // A path is no URL: one with credentials pasted there would be a file or folder named with the password.
  if (spec.path) s['x-no-credentials'] = true;
  if (spec.default !== undefined) s.default = spec.default;
  if (spec.description) s.description = spec.description;
  return s;
}

/** Nested object schema of a component's options; sections without required keys default to {}. */
export function buildSchema(specs: OptionSpec[], id: string): JsonSchema {
  const root: JsonSchema = { $id: id, type: 'object', additionalProperties: false, properties: {} };
  for (const spec of specs) {
    const parts = spec.key.split('.');
    let node = root;
    for (let i = 0; i < parts.length; i++) {
      const props = node.properties as Record<string, JsonSchema>;
      const last = i === parts.length - 1;
      if (last) props[parts[i]] = valueSchema(spec);
      else props[parts[i]] ??= { type: 'object', additionalProperties: false, properties: {}, default: {} };
      if (spec.required) {
        const req = (node.required as string[] | undefined) ?? [];
        if (!req.includes(parts[i])) req.push(parts[i]);
        node.required = req;
        if (!last) delete props[parts[i]].default;
      }
      node = props[parts[i]];
    }
  }
  return root;
}

/**
 * Loads a CommonJS package for one use and takes it out of require's cache again, so that once the
 * caller drops what it got (the Ajv instance and validator after loading a config, the YAML parser
 * after reading the file), their code and data can be garbage collected: a long-running gateway does
 * not keep ajv (several MB of heap) or yaml loaded for a job done once at start-up. A later call loads
 * the package again. (An ESM `import` would stay loaded for the life of the process.)
 */
function requireTransient<T>(id: string): T {
  const require = createRequire(import.meta.url);
  const before = new Set(Object.keys(require.cache));
  const mod = require(id) as T;
  for (const key of Object.keys(require.cache)) if (!before.has(key)) delete require.cache[key];
  return mod;
}

/**
 * An Ajv for config schemas. Loads ajv on each call (requireTransient): compile, validate, let go.
 * The schemas are built by buildSchema from the components' option lists, not read from users, so
 * they are not checked against the JSON Schema meta-schema at run time (`validateSchema: false`)
 * and ajv's pass that tidies the generated code is skipped (`code.optimize: false`): the validator
 * is used once. Together that is ~4 of the ~12 MB a gateway allocated to load its config, garbage
 * the idle process keeps paged in until V8's memory reducer returns it (bench/startup.ts).
 * test/config-lib.test.ts checks each config schema against the meta-schema instead.
 */
export function createAjv(): Ajv {
  const { Ajv } = requireTransient<typeof import('ajv')>('ajv');
  const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true, validateSchema: false, code: { optimize: false } });
  ajv.addKeyword({
    keyword: 'x-duration',
    schemaType: 'object',
    errors: false,
    validate: (opts: DurationOptions, data: unknown) => !Number.isNaN(durationMs(data, opts)),
  });
  // A path (or a name) holding a URL's credentials, also without `scheme://` (`mqtt:/user:secret@broker`,
  // what a path made of `mqtt://user:secret@broker` becomes): a pasted URL, refused before a file or
  // folder is made or looked for under a name every user listing its folder would read.
  ajv.addKeyword({
    keyword: 'x-no-credentials',
    schemaType: 'boolean',
    errors: false,
    validate: (on: boolean, data: unknown) => !on || typeof data !== 'string' || !holdsUrlCredentials(data),
  });
  // `format: 'url'`: a URL that Node can parse (a scheme pattern alone lets `mqtt://u:p@[::1` through,
  // which then throws, with its password, deep inside a client library).
  ajv.addFormat('url', { type: 'string', validate: isParsableUrl });
  return ajv;
}

// -------------------------------------------------------------------------------- names of a spec

/** '--mqtt-url <url>' -> '--mqtt-url'. */
export function longFlag(flag: string): string {
  return flag.split(/[\s,]+/).find((p) => p.startsWith('--'))!;
}
/** Commander's attribute name of a flag: '--mqtt-url' -> 'mqttUrl'. */
export function attrOf(flag: string): string {
  return longFlag(flag)
    .slice(2)
    .replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** "--mqtt-url, MQTT_URL": how a key can be set apart from the file. */
export function namesOf(spec: OptionSpec): string {
  return [spec.flag ? longFlag(spec.flag) : '', spec.env ?? ''].filter(Boolean).join(', ');
}

// ---------------------------------------------------------------------------------------- commander

function schemaEnum(spec: OptionSpec): string[] | undefined {
  const e = spec.schema?.enum as unknown[] | undefined;
  return e && e.every((v) => typeof v === 'string') ? (e as string[]) : undefined;
}

export function defaultText(spec: OptionSpec): string | undefined {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.default === undefined || spec.secret) return undefined;
  if (typeof spec.default === 'object' && spec.default !== null) return JSON.stringify(spec.default);
  return String(spec.default);
}

/** Help text of a flag: description, then (key; env; default). */
export function helpOf(spec: OptionSpec): string {
  const d = defaultText(spec);
  const bits = [spec.key, spec.env ? `env ${spec.env}` : '', d !== undefined ? `default ${d}` : ''].filter(Boolean);
  return `${spec.flagHelp ?? spec.description} (${bits.join('; ')})`;
}

/** Registers every spec's flag (and its hidden old flags) on a command. */
export function addOptions(cmd: Command, specs: OptionSpec[], extra: Record<string, (o: Option) => Option> = {}): Command {
  for (const spec of specs) {
    if (!spec.flag) continue;
    let opt = new Option(spec.flag, helpOf(spec));
    const choices = schemaEnum(spec);
    if (choices) opt = opt.choices(choices);
    const tweak = extra[longFlag(spec.flag)];
    cmd.addOption(tweak ? tweak(opt) : opt);
    for (const old of spec.old?.flags ?? []) {
      const fixed = spec.old?.flagValues?.[old];
      const args = fixed !== undefined ? '' : spec.flag.slice(spec.flag.indexOf(longFlag(spec.flag)) + longFlag(spec.flag).length);
      let o = new Option(`${old}${args}`, `deprecated: use ${longFlag(spec.flag)}${fixed !== undefined ? ` ${fixed}` : ''}`).hideHelp();
      if (tweak && fixed === undefined) o = tweak(o).hideHelp();
      cmd.addOption(o);
    }
  }
  return cmd;
}

/**
 * Moves the values of old flags to the new attribute names of a commander options object.
 * `announce` prints one deprecation line per old flag used (the CLI); in-process callers that
 * still pass an old attribute name get it mapped silently.
 */
export function renameOldFlags<T extends Record<string, unknown>>(flags: T, specs: OptionSpec[], announce: boolean): T {
  const out: Record<string, unknown> = { ...flags };
  for (const spec of specs) {
    if (!spec.flag) continue;
    const attr = attrOf(spec.flag);
    for (const old of spec.old?.flags ?? []) {
      const oldAttr = attrOf(old);
      if (out[oldAttr] === undefined || oldAttr === attr) continue;
      const fixed = spec.old?.flagValues?.[old];
      if (announce) deprecated('flag', old, `${longFlag(spec.flag)}${fixed !== undefined ? ` ${fixed}` : ''}`);
      if (out[attr] === undefined) out[attr] = fixed !== undefined ? fixed : out[oldAttr];
      delete out[oldAttr];
    }
  }
  return out as T;
}

// ------------------------------------------------------------------------------------------ layers

/** Where each key's value came from, for error messages. */
export type Origins = Map<string, string>;

function textValue(spec: OptionSpec, text: string): unknown {
  if (spec.fromText) return spec.fromText(text);
  if (spec.duration) return text;
  const t = spec.schema?.type;
  const trimmed = text.trim();
  if ((t === 'integer' || t === 'number') && Number.isFinite(decimal(trimmed))) return decimal(trimmed);
  if (t === 'boolean' && /^(true|false)$/i.test(trimmed)) return /^true$/i.test(trimmed);
  return text;
}

/** The text of an on/off flag (`--http-page off`): on, true, yes, 1 or off, false, no, 0; anything else as given (refused by the schema). */
export function onOff(text: string): unknown {
  const t = text.trim();
  return /^(on|true|yes|1)$/i.test(t) ? true : /^(off|false|no|0)$/i.test(t) ? false : text;
}

/**
 * Applies environment variables (an empty one counts as unset); old names print one deprecation
 * line, or, when the new name is set too, one warning that the old one is ignored.
 */
export function applyEnv(raw: Record<string, unknown>, specs: OptionSpec[], env: NodeJS.ProcessEnv, origins: Origins): void {
  for (const spec of specs) {
    if (!spec.env) continue;
    let name = spec.env;
    let text = env[name];
    if (text !== undefined && text !== '') {
      for (const old of spec.old?.env ?? [])
        if (env[old] !== undefined && env[old] !== '') warning(`environment variable ${old} is ignored: ${spec.env} is set too and wins (unset ${old})`);
    } else {
      for (const old of spec.old?.env ?? []) {
        if (env[old] === undefined || env[old] === '') continue;
        deprecated('environment variable', old, spec.env);
        name = old;
        text = env[old];
        break;
      }
    }
    if (text === undefined || text === '') continue;
    setPath(raw, spec.key, textValue(spec, text));
    origins.set(spec.key, name);
  }
}

/** Applies command-line flags (commander attribute names; old attribute names mapped silently). */
export function applyFlags(raw: Record<string, unknown>, specs: OptionSpec[], flags: Record<string, unknown>, origins: Origins): void {
  const f = renameOldFlags(flags, specs, false);
  for (const spec of specs) {
    if (!spec.flag || spec.manualFlag) continue;
    const v = f[attrOf(spec.flag)];
    if (v === undefined) continue;
    const value = typeof v === 'string' ? textValue(spec, v) : v === true && spec.flagValue !== undefined ? spec.flagValue : v;
    setPath(raw, spec.key, value);
    origins.set(spec.key, longFlag(spec.flag));
  }
}

const BARE_NUMBER = /^\d+(?:\.\d+)?$/;

/**
 * Durations written as a bare number where the setting always took one (OptionSpec.duration `bare`,
 * or `bareText` when set by a flag or variable): rewritten with the unit they were always read in,
 * one deprecation line each naming the key, that unit and how to write it ("use 30s"). Anything
 * else is left to the schema, which wants a unit. Call after the file, environment and flags.
 */
export function bareDurations(raw: Record<string, unknown>, specs: OptionSpec[], origins: Origins, file?: string, prefix = ''): void {
  for (const spec of specs) {
    const from = origins.get(spec.key);
    const unit = spec.duration?.bare ?? (from ? spec.duration?.bareText : undefined);
    if (!unit) continue;
    const v = getPath(raw, spec.key);
    const text = typeof v === 'number' && Number.isFinite(v) && v >= 0 ? String(v) : typeof v === 'string' && BARE_NUMBER.test(v.trim()) ? v.trim() : null;
    if (text === null) continue;
    bareDuration(`${prefix}${spec.key}${from ? ` (${from})` : ''}`, text, unit, from ? undefined : file);
    setPath(raw, spec.key, `${text}${unit}`);
  }
}

/** Old key names found in a config: new key -> the old key as the user wrote it (with the prefix). */
export type Renamed = Map<string, string>;

/** Where one setting's value came from (SettingSources.of). */
export interface SettingSource {
  /** As it was given: the flag (`--http-port`), the variable, or the key as the config file has it
   *  (`aggregator.http.port`); the key for a default. */
  name: string;
  /** What is said after the value: the key after a flag or variable (`http.port`), `in config file F`
   *  after a file's key, `the default` after a default. */
  note: string;
  from: 'flag' | 'env' | 'file' | 'default';
  /** The config file, when it came from one. */
  file?: string;
}

/**
 * Where each setting of a loaded configuration came from: the flag or variable that set it, the
 * config file, or its default, to name a value found wrong only at run time (a taken --http-port, a
 * calibration file that does not load) where it was given, as the loader's own problems name it.
 */
export class SettingSources {
  private readonly inFile: Set<string>;
  /** Each option's value as given (JSON; absent: not given), to tell what a reload of the same file changed. */
  private readonly given: Map<string, string | undefined>;
  /** `raw`: the settings after the file, the environment and the flags, before defaults are filled in. */
  constructor(
    specs: OptionSpec[],
    raw: Record<string, unknown>,
    private readonly origins: Origins = new Map(),
    private readonly file?: string,
    private readonly prefix = '',
    private readonly renamed?: Renamed,
  ) {
    this.inFile = new Set(file ? specs.filter((s) => !origins.has(s.key) && getPath(raw, s.key) !== undefined).map((s) => s.key) : []);
    this.given = new Map(specs.map((s) => [s.key, JSON.stringify(getPath(raw, s.key))]));
  }

  /** The keys (of `keys`) whose given value differs in `other`, as the user writes them (never a value). */
  changedFrom(other: SettingSources, keys: Iterable<string>): string[] {
    return [...keys].filter((k) => this.given.get(k) !== other.given.get(k)).map((k) => keyName(k, other.renamed, other.prefix));
  }

  of(key: string): SettingSource {
    const origin = this.origins.get(key);
    if (origin) return { name: origin, note: key, from: origin.startsWith('-') ? 'flag' : 'env' };
    if (this.file && this.inFile.has(key))
      return { name: keyName(key, this.renamed, this.prefix), note: `in config file ${this.file}`, from: 'file', file: this.file };
    return { name: key, note: 'the default', from: 'default' };
  }
}

/** A key as the user wrote it: "batch.maxBuffer (now batch.max_buffer)" for a renamed one. */
export function keyName(key: string, renamed?: Renamed, prefix = ''): string {
  const old = renamed?.get(key);
  return old ? `${old} (now ${prefix}${key})` : `${prefix}${key}`;
}

/** Moves old keys of a file to their new names, one deprecation line each; returns what was renamed. */
export function renameOldKeys(raw: Record<string, unknown>, specs: OptionSpec[], where: string, prefix = '', announce = true): Renamed {
  const renamed: Renamed = new Map();
  for (const spec of specs) {
    for (const old of spec.old?.keys ?? []) {
      const v = getPath(raw, old);
      if (v === undefined) continue;
      if (announce) deprecated('config key', prefix + old, prefix + spec.key, where);
      if (getPath(raw, spec.key) === undefined) {
        setPath(raw, spec.key, v);
        renamed.set(spec.key, prefix + old);
      }
      deletePath(raw, old);
    }
  }
  return renamed;
}

/** Creates the (empty) sections of every option, so a missing one reports its required keys by name. */
export function ensureSections(raw: Record<string, unknown>, specs: OptionSpec[]): void {
  for (const spec of specs) {
    const parts = spec.key.split('.');
    let cur = raw;
    for (const part of parts.slice(0, -1)) {
      if (cur[part] === undefined) cur[part] = {};
      if (!cur[part] || typeof cur[part] !== 'object' || Array.isArray(cur[part])) break;
      cur = cur[part] as Record<string, unknown>;
    }
  }
}

/** A key whose value is the path of a file holding a secret (`mqtt.password_file`, `influx.token_file`). */
const SECRET_FILE_KEY = /(password|token|secret)_file$/;

/**
 * Resolves path options of a file against the file's folder. A secret file's value without a folder is
 * noted as such (noteSecretFileAsWritten): when it is no file, its error does not show it, resolved or not.
 */
export function resolvePaths(raw: Record<string, unknown>, specs: OptionSpec[], file: string): void {
  const base = dirname(resolve(file));
  for (const spec of specs) {
    if (!spec.path) continue;
    const v = getPath(raw, spec.key);
    if (typeof v !== 'string' || !v) continue;
    const resolved = resolve(base, v);
    if (SECRET_FILE_KEY.test(spec.key)) noteSecretFileAsWritten(resolved, v, file);
    setPath(raw, spec.key, resolved);
  }
}

/** A config file is at most this big: anything larger is a wrong path, not a configuration. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** "a fifo", "a device", "a socket": what a path that is not a regular file is. */
export function kindOfFile(st: Stats): string {
  if (st.isFIFO()) return 'a fifo';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * Plain YAML data only: a tag (`!!binary`, `!!set`, `!!timestamp`, `!!js/function`, ...) is an error
 * (thrown, like a syntax error) instead of a Buffer, Set or Date no setting takes, or a warning
 * printed by the process; at most 100 aliases are expanded (a "billion laughs" file is refused); a
 * key twice in a mapping is an error, found in one pass (./yaml-doc.ts: a large registry parses in
 * linear time).
 */
function parseYaml(text: string): unknown {
  // logLevel 'error', not 'silent': with 'silent' the package drops its MULTIPLE_DOCS error, and a
  // file of two documents (`---` between them) was read as its first alone, the settings after the
  // `---` (privacy.min_count, a registry) left out without a word. Neither level prints anything.
  const doc = parseYamlDocument(requireTransient<typeof import('yaml')>('yaml'), text, { resolveKnownTags: false, logLevel: 'error' });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw problem;
  return doc.toJS({ maxAliasCount: 100 });
}

/** Reads a YAML or JSON config file into a mapping; throws ConfigError naming the file. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    // Checked before reading: a fifo would block the read forever, a device or a huge file fill memory.
    const st = statSync(path);
    if (st.isDirectory()) throw new ConfigError([`config file ${path} is a folder, not a file`], 'flags');
    if (!st.isFile()) throw new ConfigError([`config file ${path} is not a regular file (${kindOfFile(st)}): give the path of a YAML or JSON file`], 'flags');
    const capture = st.size > MAX_CONFIG_BYTES ? oversizedCapture(path) : null;
    if (capture) throw new ConfigError([`config file ${path} ${capture}: give the path of a YAML or JSON file`], 'flags');
    if (st.size > MAX_CONFIG_BYTES)
      throw new ConfigError(
        [`config file ${path} is ${+(st.size / 2 ** 20).toFixed(1)} MiB; a config file is at most ${MAX_CONFIG_BYTES / 2 ** 20} MiB`],
        'flags',
      );
    const bytes = readAtMost(path, MAX_CONFIG_BYTES);
    if (!bytes)
      throw new ConfigError(
        [`config file ${path} holds more than ${MAX_CONFIG_BYTES / 2 ** 20} MiB; a config file is at most ${MAX_CONFIG_BYTES / 2 ** 20} MiB`],
        'flags',
      );
    // A capture or other binary file named as the config: said as such, not as YAML that fails at line 1.
    const notText = notTextProblem(bytes);
    if (notText) throw new ConfigError([`config file ${path} ${notText}: give the path of a YAML or JSON file`], 'flags');
    text = bytes.toString('utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    // Not "is invalid": the file is not there (or not readable), which is a different fix.
    if (code === 'ENOENT')
      throw Object.assign(
        new ConfigError(
          [`config file ${redactUrlsIn(path)} does not exist${resolve(path) !== path ? ` (looked for ${redactUrlsIn(resolve(path))})` : ''}`],
          'flags',
        ),
        {
          hint: 'give --config the path of an existing YAML or JSON file (a relative path starts from the current folder)',
        },
      );
    if (code === 'EACCES') throw new ConfigError([`config file ${path} cannot be read: permission denied (the user running this needs read access)`], 'flags');
    throw new ConfigError([`config file ${path} cannot be read: ${(e as Error).message}`], 'flags');
  }
  const json = /\.json$/i.test(path);
  let value: unknown;
  try {
    value = json ? parseJson(requireTransient<typeof import('yaml')>('yaml'), text) : parseYaml(text);
  } catch (e) {
    // The yaml parser's first line ends "at line 2, column 9:" before a snippet of the file, and some
    // messages quote a value (syntaxProblem: not shown, it may be a secret); the line and column say where.
    throw new ConfigError([`not valid ${json ? 'JSON' : 'YAML'}: ${syntaxProblem(e, text, json)}`], path);
  }
  value ??= {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(['the top level must be a mapping (key: value)'], path);
  warnReadableSecrets(path, value as Record<string, unknown>);
  return value as Record<string, unknown>;
}

/** Keys whose value is a secret, wherever they are in a config file. */
const SECRET_KEY = /^(password|token|secret)$/;
/** The dotted keys of a config mapping that hold a secret: a password or token, or a URL with credentials (a user name or password, or a secret query value: holdsUrlCredentials). */
export function secretKeys(obj: unknown, prefix = ''): string[] {
  if (!obj || typeof obj !== 'object') return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const key = Array.isArray(obj) ? `${prefix.replace(/\.$/, '')}[${k}]` : `${prefix}${k}`;
    if (typeof v === 'string' && v !== '' && SECRET_KEY.test(k)) out.push(key);
    else if (typeof v === 'string' && holdsUrlCredentials(v)) out.push(`${key} (credentials)`);
    else if (v && typeof v === 'object') out.push(...secretKeys(v, `${key}.`));
  }
  return out;
}

/** One warning line when a config file that holds secrets can be read by others than its owner. */
function warnReadableSecrets(path: string, value: Record<string, unknown>): void {
  const readable = readableSecretProblem(path, statSync(path));
  if (!readable) return;
  const keys = secretKeys(value);
  if (keys.length === 0) return;
  warning(`config file ${path} holds ${keys.join(', ')} and ${readable}`);
}

// ---------------------------------------------------------------------------------------- messages

/** Edit distance (Levenshtein) of two names: the "did you mean" of a misspelt key or name. */
export function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length];
}

function known(schema: JsonSchema, path: string): string[] {
  let node: JsonSchema | undefined = schema;
  for (const part of path.split('.').filter(Boolean)) node = (node?.properties as Record<string, JsonSchema> | undefined)?.[part];
  return Object.keys((node?.properties as Record<string, JsonSchema> | undefined) ?? {});
}

/** "/mqtt/url" -> "mqtt.url", "/sources/0/speed" -> "sources[0].speed". */
export function keyOfPointer(pointer: string): string {
  return pointer
    .replace(/^\//, '')
    .replace(/\//g, '.')
    .replace(/\.(\d+)(?=\.|$)/g, '[$1]');
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'a whole number',
  number: 'a number',
  string: 'text',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping (key: value)',
  null: 'null',
};

export interface DescribeOptions {
  specs: OptionSpec[];
  schema: JsonSchema;
  data: unknown;
  origins: Origins;
  /** Shown before every key: "aggregator." when the file nests the section. */
  prefix?: string;
  /** Keys the user wrote under an old name (renameOldKeys): messages name both. */
  renamed?: Renamed;
}

/** The schema object an ajv error's schemaPath ("#/properties/people/properties/carry/minItems") is the keyword of. */
function schemaNode(schema: JsonSchema, schemaPath: string): Record<string, unknown> | undefined {
  const parts = schemaPath.replace(/^#\/?/, '').split('/').slice(0, -1);
  let node: unknown = schema;
  for (const p of parts) node = (node as Record<string, unknown> | undefined)?.[p.replace(/~1/g, '/').replace(/~0/g, '~')];
  return node && typeof node === 'object' ? (node as Record<string, unknown>) : undefined;
}

/** One readable line per problem: "gateway.window (--window): must be a duration like ... (got "x")". */
export function describeErrors(errors: ErrorObject[], o: DescribeOptions): string[] {
  const byKey = new Map(o.specs.map((s) => [s.key, s]));
  const out: string[] = [];
  // A value that fits none of the alternatives of an anyOf/oneOf (`integer or null`) gets one line,
  // not one per alternative: the key's hint when it has one, else the first alternative's message.
  const alternatives = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf');
  const collapsed = new Set<ErrorObject>();
  for (const e of errors) {
    if (e.keyword === 'oneOf' || e.keyword === 'anyOf' || e.keyword === 'if') continue;
    const alt = alternatives
      .filter((a) => a.instancePath === e.instancePath && e.schemaPath.startsWith(`${a.schemaPath}/`))
      .sort((a, b) => a.schemaPath.length - b.schemaPath.length)[0];
    if (alt) {
      if (collapsed.has(alt)) continue;
      collapsed.add(alt);
    }
    let key = keyOfPointer(e.instancePath);
    if (e.keyword === 'required')
      key = key ? `${key}.${(e.params as { missingProperty: string }).missingProperty}` : (e.params as { missingProperty: string }).missingProperty;
    const spec = byKey.get(key.replace(/\[\d+\].*$/, ''));
    // A key inside an object option (gateways.registry.gw-1.site): the option's hint, not a pattern.
    let outer = spec;
    for (let k = key.replace(/\[\d+\].*$/, ''); !outer && k.includes('.'); ) {
      k = k.slice(0, k.lastIndexOf('.'));
      outer = byKey.get(k);
    }
    const origin = o.origins.get(key);
    // A key is the file's text too: a URL pasted as one (`mqtt://user:password@broker:1883:`) is named without its credentials.
    const label = key ? redactUrlsIn(keyName(key, o.renamed, o.prefix ?? '')) : `${o.prefix ?? ''}(top level)`;
    const value = getPath(o.data, key.replace(/\[(\d+)\]/g, '.$1'));
    // A secret's value is never echoed, nor the credentials of a URL (`http://user:secret@host`).
    // A URL is echoed as typed (less its credentials): redactUrlsIn would normalise it, or cut it at a space.
    // So is any value of a URL key, also one without `scheme://` (`http//user:pw@host`, `user:pw@host`).
    const shown = () =>
      typeof value === 'string' && (spec?.schema?.format === 'url' || /^[a-z][a-z0-9+.-]*:\/\//i.test(value))
        ? JSON.stringify(redactTypedUrl(value))
        : typeof value === 'number' && !Number.isFinite(value)
          ? String(value) // YAML's .inf, .nan, 1e400: JSON.stringify says null, which the file does not
          : redactUrlsIn(JSON.stringify(value));
    const got = value === undefined || spec?.secret ? '' : ` (got ${shown()})`;
    let line: string;
    // YAML's .nan fails every bound (`must be <= 100`, `must be >= 0.000001`, a line each): said once, as what it is.
    const notANumber = typeof value === 'number' && Number.isNaN(value) && e.keyword !== 'type';
    switch (notANumber ? 'type' : e.keyword) {
      case 'required': {
        const names = spec ? namesOf(spec) : '';
        line = `${label}: is required${names ? `: set it in the --config file or with ${names.split(', ').join(' or ')}` : ''}`;
        break;
      }
      case 'additionalProperties': {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        // YAML 1.1's merge key (`<<: *base`): the YAML 1.2 parser reads it as a key named "<<", and
        // "did you mean" a known key that looks like it sent people looking for a typo.
        if (extra === '<<') {
          line = `${label}: has a YAML merge key "<<", which settings files do not take: write the keys out in full (an alias of a whole value, *name, works)`;
          break;
        }
        const choices = known(o.schema, e.instancePath.replace(/^\//, '').replace(/\//g, '.'));
        const close = choices
          .filter((c) => distance(c, extra) <= Math.max(2, Math.floor(extra.length / 3)))
          .sort((a, b) => distance(a, extra) - distance(b, extra));
        line = `${label}: has an unknown key "${redactUrlsIn(extra)}"${close.length ? ` (did you mean "${close[0]}"?)` : choices.length ? ` (known: ${choices.join(', ')})` : ''}`;
        break;
      }
      case 'x-no-credentials':
        line = `${label}: holds a URL's user name and password, not a path: a file or folder so named shows them to every user who lists its folder; the broker's or InfluxDB's URL goes in its own setting${got}`;
        break;
      case 'x-duration':
        line = `${label}: ${DURATION_HINT}${spec?.duration?.bare ? ` (a bare number is ${spec.duration.bare})` : ''}${got}${
          typeof value === 'number' || (typeof value === 'string' && BARE_NUMBER.test(value.trim()))
            ? ': write it with its unit (ms, s, m, h or d)'
            : durationNote(value)
        }`;
        break;
      case 'enum':
        line = `${label}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}${got}`;
        break;
      case 'const':
        line = `${label}: must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}${got}`;
        break;
      case 'pattern':
      case 'format': {
        if (e.keyword === 'format' && typeof value === 'string' && atAfterHost(value)) {
          line = `${label}: ${AT_AFTER_HOST_HINT}${got}`;
          break;
        }
        if (e.keyword === 'format' && typeof value === 'string' && badUserinfoEscape(value)) {
          line = `${label}: ${USERINFO_ESCAPE_HINT}${got}`;
          break;
        }
        // A port past 65535 (or 0): said so, not the key's general "must be a URL like ..."
        const port = e.keyword === 'format' && typeof value === 'string' ? outOfRangePort(value) : undefined;
        if (port !== undefined) {
          line = `${label}: port ${port} ${PORT_RANGE_HINT}${got}`;
          break;
        }
        line = `${label}: ${outer?.hint ?? `must match ${(e.params as { pattern?: string; format?: string }).pattern ?? (e.params as { format: string }).format}`}${got}`;
        break;
      }
      case 'type': {
        // YAML's .inf and .nan (and 1e400) are numbers, but none a setting can hold: said as such
        // (JSON.stringify shows them as null).
        if (typeof value === 'number' && !Number.isFinite(value)) {
          line = `${label}: must be a finite number (got ${value})`;
          break;
        }
        const types = String((e.params as { type: string | string[] }).type).split(',');
        line = `${label}: must be ${types.map((t) => TYPE_WORDS[t] ?? `a ${t}`).join(' or ')}${got}`;
        break;
      }
      case 'minItems':
      case 'maxItems': {
        const node = schemaNode(o.schema, e.schemaPath);
        const limit = (e.params as { limit: number }).limit;
        const n = Array.isArray(value) ? value.length : undefined;
        const items = (k: number) => `${k} item${k === 1 ? '' : 's'}`;
        const want =
          node?.minItems === node?.maxItems ? `exactly ${items(limit)}` : e.keyword === 'minItems' ? `at least ${items(limit)}` : `at most ${items(limit)}`;
        line = `${label}: must be a list of ${want}${n === undefined ? '' : `, not ${n}`}${got}`;
        break;
      }
      case 'minLength':
      case 'maxLength': {
        const limit = (e.params as { limit: number }).limit;
        line =
          e.keyword === 'minLength' && limit === 1
            ? `${label}: must not be empty${got}`
            : `${label}: must be ${e.keyword === 'minLength' ? 'at least' : 'at most'} ${limit} character${limit === 1 ? '' : 's'}${got}`;
        break;
      }
      case 'minProperties':
      case 'maxProperties': {
        const limit = (e.params as { limit: number }).limit;
        line = `${label}: must hold ${e.keyword === 'minProperties' ? 'at least' : 'at most'} ${limit === 1 ? 'one key' : `${limit} keys`}${got}`;
        break;
      }
      case 'uniqueItems': {
        const { i, j } = e.params as { i: number; j: number };
        line = `${label}: must not repeat an item (items ${j} and ${i} are the same)${got}`;
        break;
      }
      default:
        line = `${label}: ${spec?.hint ?? e.message ?? 'is invalid'}${got}`;
    }
    if (alt && spec?.hint) line = `${label}: ${spec.hint}${got}`;
    if (origin && e.keyword !== 'required') line = `${origin} (${label.replace(/:.*/, '')}):${line.slice(label.length + 1)}`;
    out.push(line);
  }
  return [...new Set(out)];
}
