// Writes the configuration reference of each component into its README, from the component's option
// table (the same list the config loader, the JSON Schema and --help are built from), as Telegraf
// does with sample.conf: every key with its type, default, flag, environment variable, old names and
// description, then a sample YAML file.
//
// Commands that take flags only (`presence simulate`, `presence replay`) get a flags reference
// instead, from the command's commander options (what --help prints).
//
//   npx tsx scripts/gen-config-docs.ts           rewrite the marked sections
//   npx tsx scripts/gen-config-docs.ts --check   exit 1 when a README is out of date (the test does this too)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Document, isSeq, stringify, visit } from 'yaml';
import { AGGREGATOR_OPTIONS } from '../aggregator/config.ts';
import { GATEWAY_OPTIONS } from '../gateway/config.ts';
import { buildProgram } from './cli.ts';
import { defaultText, longFlag, type OptionSpec } from './lib/config-loader.ts';

const ROOT = join(import.meta.dirname, '..');

export interface Component {
  name: string;
  readme: string;
  source: string;
  specs: OptionSpec[];
  /** The section the keys live under in a shared file (`aggregator:`), or none (the gateway's file is its own). */
  section?: string;
}

export const COMPONENTS: Component[] = [
  { name: 'gateway', readme: 'gateway/README.md', source: 'gateway/config.ts', specs: GATEWAY_OPTIONS },
  { name: 'aggregator', readme: 'aggregator/README.md', source: 'aggregator/config.ts', specs: AGGREGATOR_OPTIONS, section: 'aggregator' },
];

const BEGIN = (c: Component) =>
  `<!-- BEGIN config reference: generated from ${c.source} by scripts/gen-config-docs.ts; edit the option table there, not here -->`;
const END = '<!-- END config reference -->';

function typeOf(spec: OptionSpec): string {
  if (spec.duration) return 'duration';
  const s = spec.schema ?? {};
  if (Array.isArray(s.enum)) return (s.enum as unknown[]).map(String).join(' \\| ');
  if (s.type === 'array') return 'list';
  if (s.anyOf) return (s.anyOf as Array<Record<string, unknown>>).map((b) => (b.const !== undefined ? String(b.const) : String(b.type))).join(' \\| ');
  if (s.type === 'string') return spec.path ? 'path' : 'string';
  return String(s.type ?? 'any');
}

const code = (t: string) => `\`${t}\``;
const cell = (t: string) => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function table(c: Component): string {
  const rows = c.specs.map((s) => {
    const d = defaultText(s);
    const old = [...(s.old?.flags ?? []), ...(s.old?.env ?? []), ...(s.old?.keys ?? [])].map(code).join(', ');
    return [
      code(s.key) + (s.required ? ' (required)' : ''),
      typeOf(s),
      d === undefined ? '' : code(d),
      s.flag ? code(longFlag(s.flag)) : '',
      s.env ? code(s.env) : '',
      old,
      cell(s.description),
    ].join(' | ');
  });
  return [
    '| key | type | default | flag | environment | old names (deprecated) | description |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
  ].join('\n');
}

/** A sample file: every key with its default or an example; keys with neither are commented out. */
function sample(c: Component): string {
  const lines: string[] = [];
  const indent0 = c.section ? '  ' : '';
  if (c.section) lines.push(`${c.section}:`);
  let section = '';
  for (const s of c.specs) {
    const parts = s.key.split('.');
    const sec = parts.length > 1 ? parts[0] : '';
    if (sec !== section) {
      if (sec) lines.push(`${indent0}${sec}:`);
      section = sec;
    }
    const indent = indent0 + (sec ? '  ' : '');
    const leaf = parts[parts.length - 1];
    const value = s.example ?? s.default;
    const comment = `# ${s.description}${s.flag || s.env ? ` (${[s.flag ? longFlag(s.flag) : '', s.env ?? ''].filter(Boolean).join(', ')})` : ''}`;
    if (value !== undefined && typeof value === 'object' && value !== null) {
      lines.push(`${indent}${leaf}:  ${comment}`);
      // Lists inside an entry (a command's argv) as [a, b, c], the entries themselves as blocks.
      const doc = new Document(value);
      visit(doc, { Seq: (_, node, path) => void (isSeq(node) && path.length > 2 && (node.flow = true)) });
      const body = doc.toString({ lineWidth: 0, flowCollectionPadding: false }).trimEnd();
      for (const l of body.split('\n')) lines.push(`${indent}  ${l}`);
      continue;
    }
    const prefix = value === undefined || s.secret ? '# ' : '';
    const shown = s.secret ? '...' : value === undefined ? (s.defaultText ? `${s.defaultText}` : '...') : stringify(value).trim();
    lines.push(`${indent}${prefix}${leaf}: ${shown}  ${comment}`);
  }
  return lines.join('\n');
}

export function reference(c: Component): string {
  return [BEGIN(c), '', table(c), '', `Sample \`${c.name}.yaml\` (every key, at its default or an example):`, '', '```yaml', sample(c), '```', '', END].join(
    '\n',
  );
}

/** The README with its marked section replaced; throws when the markers are missing. */
export function updated(c: Component, text: string): string {
  const start = text.indexOf('<!-- BEGIN config reference');
  const end = text.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${c.readme}: no "<!-- BEGIN config reference ... -->" / "${END}" markers`);
  return text.slice(0, start) + reference(c) + text.slice(end + END.length);
}

/** A command configured by flags only, and the README that documents them. */
export interface FlagsDoc {
  command: string;
  readme: string;
}

export const FLAG_DOCS: FlagsDoc[] = [
  { command: 'simulate', readme: 'simulator/README.md' },
  { command: 'replay', readme: 'gateway/capture/README.md' },
];

const FLAGS_BEGIN = (d: FlagsDoc) =>
  `<!-- BEGIN flags reference: generated from the options of \`presence ${d.command}\` by scripts/gen-config-docs.ts; edit them there, not here -->`;
const FLAGS_END = '<!-- END flags reference -->';

/** The options of a command as commander holds them (what --help lists), without the hidden old names. */
export interface FlagInfo {
  flags: string;
  description: string;
  defaultValue?: unknown;
  defaultValueDescription?: string;
  argChoices?: string[];
  hidden?: boolean;
}

export async function commandFlags(command: string): Promise<{ usage: string; options: FlagInfo[] }> {
  const program = await buildProgram();
  const cmd = program.commands.find((c) => c.name() === command);
  if (!cmd) throw new Error(`no command ${command}`);
  return { usage: `presence ${command} ${cmd.usage()}`, options: cmd.options as unknown as FlagInfo[] };
}

export function flagsReference(d: FlagsDoc, flags: { usage: string; options: FlagInfo[] }): string {
  const rows = flags.options
    .filter((o) => !o.hidden)
    .map((o) => {
      const dflt = o.defaultValueDescription ?? (o.defaultValue === undefined ? '' : String(o.defaultValue));
      const choices = o.argChoices ? ` (one of ${o.argChoices.join(', ')})` : '';
      return `| ${code(o.flags)} | ${dflt ? code(dflt) : ''} | ${cell(o.description + choices)} |`;
    });
  return [FLAGS_BEGIN(d), '', `\`${flags.usage}\``, '', '| flag | default | description |', '|---|---|---|', ...rows, '', FLAGS_END].join('\n');
}

/** The README with its marked flags section replaced; throws when the markers are missing. */
export function updatedFlags(d: FlagsDoc, flags: { usage: string; options: FlagInfo[] }, text: string): string {
  const start = text.indexOf('<!-- BEGIN flags reference');
  const end = text.indexOf(FLAGS_END);
  if (start < 0 || end < start) throw new Error(`${d.readme}: no "<!-- BEGIN flags reference ... -->" / "${FLAGS_END}" markers`);
  return text.slice(0, start) + flagsReference(d, flags) + text.slice(end + FLAGS_END.length);
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const d of FLAG_DOCS) {
    const path = join(ROOT, d.readme);
    const before = readFileSync(path, 'utf8');
    const after = updatedFlags(d, await commandFlags(d.command), before);
    if (before === after) continue;
    if (check) {
      process.stderr.write(`${d.readme}: the flags reference is out of date; run npx tsx scripts/gen-config-docs.ts\n`);
      stale++;
    } else {
      writeFileSync(path, after);
      process.stdout.write(`${d.readme}: flags reference rewritten\n`);
    }
  }
  for (const c of COMPONENTS) {
    const path = join(ROOT, c.readme);
    const before = readFileSync(path, 'utf8');
    const after = updated(c, before);
    if (before === after) continue;
    if (check) {
      process.stderr.write(`${c.readme}: the config reference is out of date; run npx tsx scripts/gen-config-docs.ts\n`);
      stale++;
    } else {
      writeFileSync(path, after);
      process.stdout.write(`${c.readme}: config reference rewritten\n`);
    }
  }
  process.exit(stale ? 1 : 0);
}
