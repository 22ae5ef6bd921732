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

/** A second document (after a `---` line) in a file read as one: its settings would be left out. */
const MULTIPLE_DOCS = 'a second YAML document, whose settings would be left out (a file is one document): remove the --- line';

export type YamlDocumentOptions = ParseOptions & DocumentOptions & SchemaOptions;

/**
 * parseDocument, with duplicate keys found in linear time (unless options.uniqueKeys is false) and an
 * alias inside its own anchor's node refused.
 */
export function parseYamlDocument(yaml: YamlModule, text: string, options: YamlDocumentOptions = {}): Document.Parsed {
  const lineCounter: LineCounter = options.lineCounter ?? new yaml.LineCounter();
  const doc = yaml.parseDocument(text, { ...options, lineCounter, uniqueKeys: false });
  // The package's words for a second document name its own API; a user is told what to change.
  for (const e of doc.errors)
    if (e.code === 'MULTIPLE_DOCS') e.message = e.message.replace(/^Source contains multiple documents;[^\n]*?(?= at line |$)/, MULTIPLE_DOCS);
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

/** A tag of the YAML type registry or of a language's YAML library (`!!binary`, `!!js/function`): named in an error, it is no value. */
const STANDARD_TAG =
  /^tag:yaml\.org,2002:(?:binary|bool|float|int|map|merge|null|omap|pairs|seq|set|str|timestamp|value|yaml|(?:js|python|ruby|perl|php|java)\/[a-z_./:]+)$/;

/** Line and column (1-based) of a character offset in `text`. */
function lineColumn(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, col: offset - before.lastIndexOf('\n') };
}

/**
 * A YAML or JSON syntax error of a file as one line that quotes no text of the file: some of the
 * parsers' messages do (`Unresolved tag: !Gx8...`, `Unresolved alias ...: *Gx8...`, `Invalid escape
 * sequence \xS3`, V8's `Unexpected token 'S', ..."password": S3cret}" is not valid JSON`), and the
 * text may be a secret written without quotes, such as a password that starts with ! or *. Such a
 * message keeps its kind, the line and column, and says how to write the value instead.
 */
export function syntaxProblem(e: unknown, text: string, json: boolean): string {
  const message = e instanceof Error ? e.message : String(e);
  if (json) {
    const quoted = /^Unexpected token '[\s\S]*?', (\.\.\.)?"([\s\S]*)"(?:\.\.\.)? is not valid JSON$/.exec(message);
    if (quoted) {
      // V8 quotes the text around the token, 10 characters before it when it starts with "..."
      const base = text.indexOf(quoted[2]!);
      const where = base < 0 ? '' : quoted[1] ? ` at line ${lineColumn(text, base + 10).line}, column ${lineColumn(text, base + 10).col}` : ' near the start';
      return `unexpected character${where} (a text value needs double quotes)`;
    }
    if (/ is not valid JSON$/.test(message)) return 'not JSON text';
    const at = /^([\s\S]*?) in JSON at position (\d+)/.exec(message);
    if (at) {
      const { line, col } = lineColumn(text, Number(at[2]));
      return `${at[1]} at line ${line}, column ${col}`;
    }
    return message.split('\n')[0]!;
  }
  const first = message.split('\n')[0]!.replace(/:\s*$/, '');
  const at = / at line \d+, column \d+$/.exec(first)?.[0] ?? '';
  const what = (at ? first.slice(0, -at.length) : first)
    .replace(/^Unresolved tag: ([\s\S]*)$/, (_m, tag: string) =>
      STANDARD_TAG.test(tag) ? `Unresolved tag: ${tag}` : 'Unresolved tag (a value that starts with ! is a tag: put it in quotes)',
    )
    .replace(
      /^Unresolved alias \(the anchor must be set before the alias\): [\s\S]*$/,
      'Unresolved alias (a value that starts with * is an alias: put it in quotes)',
    )
    .replace(/^Invalid escape sequence [\s\S]*$/, 'Invalid escape sequence (in double quotes a backslash starts an escape: use single quotes)')
    .replace(/^(Block scalar header includes extra characters): [\s\S]*$/, '$1')

    // the lexer's own errors: its message, then the text it could not read, JSON-quoted
    .replace(/^([^"]*): "(?:[^"\\]|\\.)*"$/, '$1');
  return what + at;
}
