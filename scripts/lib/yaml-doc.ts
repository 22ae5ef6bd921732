// YAML documents with their duplicate keys found in one pass.
//
// The yaml package checks each key of a mapping against every key before it, which is quadratic in
// the keys of one mapping: an aggregator config of 10,000 gateways.registry entries (600 kB, under
// the 1 MiB a config may have) took 5.7 s to parse at every start and SIGHUP, with no message read
// or acknowledged meanwhile, and a calibration file of many zones took minutes to hours. This parses
// with that check off, then finds duplicates with a set per mapping: the same keys are duplicates
// (equal scalar values) and the error is the package's own (DUPLICATE_KEY, "Map keys must be unique
// at line L, column C"), in the document's errors.
//
//   import YAML from 'yaml';
//   const doc = parseYamlDocument(YAML, text, { logLevel: 'error' });
//   if (doc.errors.length) throw doc.errors[0];
//
// An alias inside the node its anchor names (`a: &a [*a]`, `a: &a {b: *a}`) is refused the same
// way (BAD_ALIAS, "An alias cannot refer to a node that holds it (a cycle) at line L, column C"):
// the package turns it into an object that holds itself, and every walk over the settings (the
// check for secrets, the schema's error text, JSON.stringify) then ran out of stack with a trace.
//
// The yaml module is passed in, so a caller that loads it for one use (scripts/lib/config-loader.ts)
// keeps doing so.
import type { Document, DocumentOptions, LineCounter, ParseOptions, SchemaOptions } from 'yaml';

type YamlModule = typeof import('yaml');

export type YamlDocumentOptions = ParseOptions & DocumentOptions & SchemaOptions;

/**
 * parseDocument, with duplicate keys found in linear time (unless options.uniqueKeys is false) and an
 * alias inside its own anchor's node refused.
 */
export function parseYamlDocument(yaml: YamlModule, text: string, options: YamlDocumentOptions = {}): Document.Parsed {
  const lineCounter: LineCounter = options.lineCounter ?? new yaml.LineCounter();
  const doc = yaml.parseDocument(text, { ...options, lineCounter, uniqueKeys: false });
  const checkKeys = options.uniqueKeys !== false;
  let found = false;
  const error = (at: number, code: 'DUPLICATE_KEY' | 'BAD_ALIAS', message: string) => {
    const e = new yaml.YAMLParseError([at, at + 1], code, message);
    const pos = lineCounter.linePos(at);
    e.linePos = [pos];
    e.message += ` at line ${pos.line}, column ${pos.col}`;
    doc.errors.push(e);
    found = true;
  };
  yaml.visit(doc, {
    Alias(_key, alias, path) {
      // path: the nodes that hold this alias, outermost first; its anchor's node among them is a cycle
      const target = alias.resolve(doc);
      if (target && path.includes(target)) error(alias.range?.[0] ?? 0, 'BAD_ALIAS', 'An alias cannot refer to a node that holds it (a cycle)');
    },
    Map(_key, map) {
      if (!checkKeys) return;
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        // As the package compares: scalar keys by their value (=== : NaN never equals itself).
        if (!yaml.isScalar(pair.key)) continue;
        const value = pair.key.value;
        if (typeof value === 'number' && Number.isNaN(value)) continue;
        if (!seen.has(value)) {
          seen.add(value);
          continue;
        }
        error(pair.key.range?.[0] ?? 0, 'DUPLICATE_KEY', 'Map keys must be unique');
      }
    },
  });
  // In the order of the text, as the package reports them (an outer mapping is visited first).
  if (found) doc.errors.sort((a, b) => a.pos[0] - b.pos[0]);
  return doc;
}

/** The deepest nesting of objects and lists a JSON file may have: settings are a few levels deep. */
export const MAX_JSON_DEPTH = 64;

/** True when objects and lists nest deeper than `max` (counted without recursion). */
function deeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * JSON.parse, refusing a key twice in an object as a YAML file's is refused: JSON.parse keeps the
 * last one silently, so the settings before it were dropped without a word, and a file that
 * `presence provision` or `corridor join` rewrites lost them. The YAML parser finds the duplicate
 * (JSON is YAML's flow style) and says where; its other complaints about valid JSON are ignored.
 * Nesting deeper than MAX_JSON_DEPTH is refused first: every walk over the value (the check for
 * secrets, structuredClone, JSON.stringify, the YAML parser) ran out of stack on a few kB of
 * brackets, with a stack trace or, in the YAML parser, the process out of memory.
 * Throws JSON.parse's SyntaxError, or an Error saying what is wrong (and where, for a key twice).
 */
export function parseJson(yaml: YamlModule, text: string): unknown {
  const value = JSON.parse(text);
  if (deeperThan(value, MAX_JSON_DEPTH)) throw new Error(`objects and lists nested more than ${MAX_JSON_DEPTH} deep (settings are a few levels deep)`);
  const twice = parseYamlDocument(yaml, text).errors.find((e) => e.code === 'DUPLICATE_KEY');
  if (twice) throw new Error(twice.message.split('\n')[0]!.replace(/:\s*$/, ''));
  return value;
}
