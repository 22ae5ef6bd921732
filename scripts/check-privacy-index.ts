// Checks the test citations of PRIVACY.md and of the README's privacy section: every cited test file
// exists, holds a test of exactly the cited name, and (with --run) that test runs and passes.
//
//   npx tsx scripts/check-privacy-index.ts          static: files and test names (test/privacy-index.test.ts runs this)
//   npx tsx scripts/check-privacy-index.ts --run    also runs exactly the cited tests with vitest; fails unless each passed
//   npx tsx scripts/check-privacy-index.ts --run FILE.md ...   other markdown files (whole file), for trying it out
//
// A citation is written `test/NAME.test.ts › "TEST NAME"` (the test's own name as vitest reports it:
// a parametrised name with its parameters filled in, without the describe blocks around it). In
// PRIVACY.md the citations live in the test index, a table whose rows are `| T7 | citation | ... |`,
// and claims refer to its rows as [T7] or [T3, T7]: every reference must name a row, every row must
// be referred to, no id twice. A bare `test/NAME.test.ts` (no name) is checked to exist.
//
// Test names are read from the test files with the TypeScript parser: every call of `it` or `test`
// (also `it.skipIf(...)(...)`, `it.each(...)(...)`, `it.concurrent(...)`, ...) whose first argument is
// a string or template literal. A template's `${...}` and it.each's `%s`-style placeholders match any
// text, so a citation names one concrete test of a parametrised group.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

export const ROOT = join(import.meta.dirname, '..');

/** The markdown files (and which part of them) whose citations are checked by default. */
export const DEFAULT_SOURCES: { path: string; section?: string }[] = [{ path: 'PRIVACY.md' }, { path: 'README.md', section: '## Privacy' }];

export interface Citation {
  /** The markdown file and line it was found on (1-based). */
  source: string;
  line: number;
  /** Test file, relative to the root (test/x.test.ts). */
  file: string;
  /** The cited test name; undefined for a bare file mention. */
  name?: string;
  /** Index id (T7) when the citation is a row of PRIVACY.md's test index. */
  id?: string;
}

export interface Problem {
  source: string;
  line: number;
  message: string;
}

const CITATION = /(test\/[A-Za-z0-9_./-]+\.test\.ts)(?:`?\s*›\s*`?"([^"\n]+)")?/g;
/** A file and `›` with no quoted name after it on the same line: a citation broken across lines or unquoted. */
const BROKEN = /(test\/[A-Za-z0-9_./-]+\.test\.ts)`?\s*›(?!\s*`?"[^"\n]+")/g;
const INDEX_ROW = /^\|\s*(T\d+)\s*\|/;
const REFERENCE = /\[(T\d+(?:\s*,\s*T\d+)*)\]/g;

/** The lines of `text` from the heading that starts with `section` to the next heading of its level. */
function sectionOf(text: string, section: string): { lines: string[]; offset: number } | null {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(section));
  if (start < 0) return null;
  const level = /^#+/.exec(section)?.[0] ?? '##';
  let end = lines.findIndex((l, i) => i > start && new RegExp(`^#{1,${level.length}} `).test(l));
  if (end < 0) end = lines.length;
  return { lines: lines.slice(start, end), offset: start };
}

/** Citations, index rows and references of one markdown text. */
export function parseMarkdown(
  text: string,
  source: string,
  section?: string,
): { citations: Citation[]; references: { id: string; line: number }[]; problems: Problem[] } {
  const citations: Citation[] = [];
  const references: { id: string; line: number }[] = [];
  const problems: Problem[] = [];
  let lines: string[];
  let offset = 0;
  if (section) {
    const s = sectionOf(text, section);
    if (!s) return { citations, references, problems: [{ source, line: 1, message: `has no section "${section}"` }] };
    lines = s.lines;
    offset = s.offset;
  } else lines = text.split('\n');
  lines.forEach((l, i) => {
    const line = offset + i + 1;
    const row = INDEX_ROW.exec(l);
    const found = [...l.matchAll(CITATION)];
    for (const m of l.matchAll(BROKEN))
      problems.push({ source, line, message: `${m[1]} › must be followed by the test name in double quotes on the same line` });
    if (row) {
      const named = found.filter((m) => m[2] !== undefined);
      if (named.length !== 1) problems.push({ source, line, message: `index row ${row[1]} must hold exactly one citation \`test/x.test.ts › "name"\`` });
      else citations.push({ source, line, file: named[0][1], name: named[0][2], id: row[1] });
      return;
    }
    for (const m of found) citations.push({ source, line, file: m[1], ...(m[2] !== undefined ? { name: m[2] } : {}) });
    for (const m of l.matchAll(REFERENCE)) for (const id of m[1].split(',')) references.push({ id: id.trim(), line });
  });
  return { citations, references, problems };
}

/** A test name as written in the source, as a pattern that matches the names vitest gives it. */
export interface TestName {
  text: string;
  pattern: RegExp;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A pattern for the names an it.each title makes: its `%s`-style and `$name` placeholders match any text. */
const eachPattern = (s: string) =>
  escapeRe(s)
    .replace(/%[sdifjoOc#%]/g, '.+?')
    .replace(/\\\$[A-Za-z_][\w.]*/g, '.+?');

/** The names of every `it`/`test` call in a test file (see the header). */
export function testNames(source: string, fileName = 'x.test.ts'): TestName[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const out: TestName[] = [];
  const rootOf = (e: ts.Expression): { id: string | null; each: boolean } => {
    let each = false;
    let cur: ts.Expression = e;
    for (;;) {
      if (ts.isIdentifier(cur)) return { id: cur.text, each };
      if (ts.isPropertyAccessExpression(cur)) {
        if (cur.name.text === 'each' || cur.name.text === 'for') each = true;
        cur = cur.expression;
      } else if (ts.isCallExpression(cur)) cur = cur.expression;
      else return { id: null, each };
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && node.arguments.length > 0) {
      const { id, each } = rootOf(node.expression);
      const arg = node.arguments[0];
      // `it(...)` itself, not the inner call of `it.skipIf(cond)` (whose argument is the condition).
      const isInner = ts.isCallExpression(node.parent) && node.parent.expression === node;
      if ((id === 'it' || id === 'test') && !isInner) {
        let text: string | null = null;
        let pattern: string | null = null;
        const fill = (s: string) => (each ? eachPattern(s) : escapeRe(s));
        if (ts.isStringLiteral(arg) || ts.isNoSubstitutionTemplateLiteral(arg)) {
          text = arg.text;
          pattern = fill(arg.text);
        } else if (ts.isTemplateExpression(arg)) {
          text = arg.head.text + arg.templateSpans.map((s) => `\${${s.expression.getText(sf)}}${s.literal.text}`).join('');
          pattern = fill(arg.head.text) + arg.templateSpans.map((s) => `.+?${fill(s.literal.text)}`).join('');
        }
        if (text !== null && pattern !== null) out.push({ text, pattern: new RegExp(`^${pattern}$`, 's') });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The markdown sources to check: the defaults, or the files given (whole files). */
export function collect(files?: string[], root = ROOT): { citations: Citation[]; problems: Problem[] } {
  const sources = files && files.length > 0 ? files.map((path) => ({ path, section: undefined as string | undefined })) : DEFAULT_SOURCES;
  const citations: Citation[] = [];
  const problems: Problem[] = [];
  for (const s of sources) {
    const abs = resolve(root, s.path);
    const name = relative(root, abs) || s.path;
    if (!existsSync(abs)) {
      problems.push({ source: name, line: 1, message: 'does not exist' });
      continue;
    }
    const parsed = parseMarkdown(readFileSync(abs, 'utf8'), name, s.section);
    citations.push(...parsed.citations);
    problems.push(...parsed.problems);
    // The index: ids unique, every reference names a row, every row is referred to.
    const rows = parsed.citations.filter((c) => c.id !== undefined);
    const ids = new Map<string, Citation>();
    for (const r of rows) {
      if (ids.has(r.id!)) problems.push({ source: name, line: r.line, message: `index id ${r.id} is used twice (also line ${ids.get(r.id!)!.line})` });
      else ids.set(r.id!, r);
    }
    for (const ref of parsed.references) {
      if (!ids.has(ref.id)) problems.push({ source: name, line: ref.line, message: `[${ref.id}] refers to no row of the test index` });
    }
    const referred = new Set(parsed.references.map((r) => r.id));
    for (const r of rows) if (!referred.has(r.id!)) problems.push({ source: name, line: r.line, message: `index row ${r.id} is not referred to by any claim` });
  }
  return { citations, problems };
}

/** Static check: every cited file exists and holds a test of exactly the cited name. */
export function checkStatic(files?: string[], root = ROOT): { citations: Citation[]; problems: Problem[] } {
  const { citations, problems } = collect(files, root);
  if (citations.filter((c) => c.name !== undefined).length === 0)
    problems.push({ source: files?.join(', ') || 'PRIVACY.md', line: 1, message: 'cites no test' });
  const names = new Map<string, TestName[] | null>();
  for (const c of citations) {
    if (!names.has(c.file)) {
      const abs = join(root, c.file);
      names.set(c.file, existsSync(abs) ? testNames(readFileSync(abs, 'utf8'), c.file) : null);
    }
    const inFile = names.get(c.file);
    const where = c.id ? `${c.id}: ` : '';
    if (inFile === null || inFile === undefined) {
      problems.push({ source: c.source, line: c.line, message: `${where}${c.file} does not exist` });
      continue;
    }
    if (c.name === undefined) continue;
    const matching = inFile.filter((t) => t.pattern.test(c.name!));
    if (matching.length === 0) problems.push({ source: c.source, line: c.line, message: `${where}${c.file} has no test named "${c.name}"` });
  }
  return { citations, problems };
}

export interface RunResult {
  citation: Citation;
  status: string;
}

/**
 * Runs exactly the cited tests: one vitest run over the cited files, filtered (-t) to the cited names
 * (anchored at the end of the full name), with the JSON reporter; then each citation must have a
 * test of its file with its exact name that passed (a skipped or missing one fails).
 */
export function runCited(
  citations: Citation[],
  root = ROOT,
  env: NodeJS.ProcessEnv = process.env,
): { results: RunResult[]; output: string; exitCode: number | null } {
  const named = citations.filter((c) => c.name !== undefined);
  const files = [...new Set(named.map((c) => c.file))];
  // A cited it.each or template name (`%s`, `$name`, `${...}`) stands for every test it makes: each
  // placeholder matches any text, as in the static check; a plain name matches itself only.
  const nameRe = (name: string) => (/%[sdifjoOc#]|\$[A-Za-z_{]/.test(name) ? eachPattern(name.replace(/\$\{[^}]*\}/g, '%s')) : escapeRe(name));
  const pattern = `(?:${[...new Set(named.map((c) => nameRe(c.name!)))].join('|')})$`;
  const dir = mkdtempSync(join(tmpdir(), 'privacy-index-'));
  const report = join(dir, 'report.json');
  try {
    const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
    const r = spawnSync(process.execPath, [vitest, 'run', ...files, '-t', pattern, '--reporter=default', '--reporter=json', `--outputFile.json=${report}`], {
      cwd: root,
      env,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const statuses = new Map<string, string[]>();
    if (existsSync(report)) {
      const json = JSON.parse(readFileSync(report, 'utf8')) as { testResults: { name: string; assertionResults: { title: string; status: string }[] }[] };
      for (const f of json.testResults) {
        const file = relative(root, f.name);
        for (const a of f.assertionResults) {
          const key = `${file}\u0000${a.title}`;
          statuses.set(key, [...(statuses.get(key) ?? []), a.status]);
        }
      }
    }
    const results = named.map((citation) => {
      const re = new RegExp(`^${nameRe(citation.name!)}$`, 's');
      const s = [...statuses].filter(([key]) => key.startsWith(`${citation.file}\u0000`) && re.test(key.slice(citation.file.length + 1))).flatMap(([, v]) => v);
      const status = s.length === 0 ? 'not run' : s.every((x) => x === 'passed') ? 'passed' : (s.find((x) => x !== 'passed') ?? 'failed');
      return { citation, status };
    });
    return { results, output, exitCode: r.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(argv: string[]): number {
  const run = argv.includes('--run');
  const files = argv.filter((a) => !a.startsWith('--'));
  const { citations, problems } = checkStatic(files);
  const named = citations.filter((c) => c.name !== undefined);
  for (const p of problems) console.error(`privacy index: ${p.source}:${p.line}: ${p.message}`);
  if (problems.length > 0) {
    console.error(`privacy index: ${problems.length} problem(s) in ${named.length} citations`);
    return 1;
  }
  console.log(
    `privacy index: ${named.length} citations of ${new Set(named.map((c) => `${c.file} ${c.name}`)).size} tests in ${new Set(named.map((c) => c.file)).size} files: every file and test name exists`,
  );
  if (!run) return 0;
  const { results, output, exitCode } = runCited(citations);
  const bad = results.filter((r) => r.status !== 'passed');
  const seen = new Set<string>();
  for (const r of bad) {
    const key = `${r.citation.file} ${r.citation.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    console.error(`privacy index: ${r.citation.source}:${r.citation.line}: ${r.citation.file} › "${r.citation.name}" ${r.status}`);
  }
  if (bad.length > 0 || exitCode !== 0) {
    if (bad.length === 0) console.error(`privacy index: vitest exited with ${exitCode}`);
    console.error(output.split('\n').slice(-40).join('\n'));
    console.error(`privacy index: ${seen.size || 'the run of the'} cited test(s) did not pass`);
    return 1;
  }
  console.log(`privacy index: all ${new Set(results.map((r) => `${r.citation.file} ${r.citation.name}`)).size} cited tests ran and passed`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) process.exitCode = main(process.argv.slice(2));
