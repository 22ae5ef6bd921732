// PRIVACY.md and the README's privacy section cite the tests that back each claim
// (`test/x.test.ts › "name"`). This fails when a citation goes stale: a cited file or test name that
// no longer exists, an index row no claim refers to, a claim referring to no row. It also shows the
// checker (scripts/check-privacy-index.ts) catches each kind of broken citation, and that its --run
// mode fails a cited test that fails, is skipped or does not exist.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkStatic, parseMarkdown, ROOT, runCited, testNames } from '../scripts/check-privacy-index.ts';

const tmp = mkdtempSync(join(tmpdir(), 'presence-privacy-index-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const md = (name: string, text: string) => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};
const GOOD = 'test/gateway-privacy.test.ts › "budget per day: 2 x epsilon per window (devices and estimate of a radio), times the windows of a day"';

describe('privacy test index', () => {
  it('every test PRIVACY.md and the README privacy section cite exists, by file and exact name', () => {
    const { citations, problems } = checkStatic();
    expect(problems.map((p) => `${p.source}:${p.line}: ${p.message}`)).toEqual([]);
    expect(citations.filter((c) => c.source === 'PRIVACY.md' && c.id).length).toBeGreaterThan(40);
    expect(citations.some((c) => c.source === 'README.md' && c.name)).toBe(true);
    // The README's privacy section points the reader to PRIVACY.md.
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(readme.slice(readme.indexOf('## Privacy'), readme.indexOf('\n## ', readme.indexOf('## Privacy') + 1))).toContain('[PRIVACY.md](PRIVACY.md)');
  });

  it('reads test names as vitest makes them: plain, template and it.each names, inside skipIf and each', () => {
    const names = testNames(
      [
        "it('plain name', () => {});",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a test file
        'test(`tmpl ${kind}: closed`, () => {});',
        "it.skipIf(!ok)('skipped when no server', async () => {});",
        "it.each(setups)('no secret: %s', async () => {});",
        'describe(\'not a test\', () => { it.concurrent("inner", () => {}); });',
        'it(NAME_FROM_A_CONSTANT, () => {});',
      ].join('\n'),
    );
    const match = (n: string) => names.filter((t) => t.pattern.test(n)).map((t) => t.text);
    expect(match('plain name')).toEqual(['plain name']);
    expect(match('plain nam')).toEqual([]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the name as written in the source
    expect(match('tmpl counts: closed')).toEqual(['tmpl ${kind}: closed']);
    expect(match('skipped when no server')).toEqual(['skipped when no server']);
    expect(match('no secret: env and file')).toEqual(['no secret: %s']);
    expect(match('inner')).toEqual(['inner']);
    expect(match('not a test')).toEqual([]);
    expect(names).toHaveLength(5);
  });

  it('fails a broken citation: a missing file, a name not in the file, a changed name, a bad index', () => {
    const broken = md(
      'broken.md',
      [
        'Claim one [T1]. Claim two [T2, T3]. Claim four [T4]. A dangling one [T9].',
        '',
        '| id | test |',
        '|---|---|',
        `| T1 | \`${GOOD}\` |`,
        '| T2 | `test/no-such-file.test.ts › "anything"` |',
        '| T3 | `test/gateway-privacy.test.ts › "a test that was never written"` |',
        `| T4 | \`${GOOD.replace('budget per day', 'budget per week')}\` |`,
        `| T4 | \`${GOOD}\` |`,
        `| T5 | \`${GOOD}\` |`,
        '| T6 | no citation here |',
        'A citation broken over two lines [T1]: `test/gateway-privacy.test.ts ›',
        '"budget per day: ..."`',
      ].join('\n'),
    );
    const messages = checkStatic([broken]).problems.map((p) => `${p.line}: ${p.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        '6: T2: test/no-such-file.test.ts does not exist',
        '7: T3: test/gateway-privacy.test.ts has no test named "a test that was never written"',
        expect.stringMatching(/^8: T4: test\/gateway-privacy.test.ts has no test named "budget per week/),
        '9: index id T4 is used twice (also line 8)',
        '1: [T9] refers to no row of the test index',
        '10: index row T5 is not referred to by any claim',
        expect.stringMatching(/^11: index row T6 must hold exactly one citation/),
        '12: test/gateway-privacy.test.ts › must be followed by the test name in double quotes on the same line',
      ]),
    );
    expect(messages).toHaveLength(8);
    // The command exits 1 and names the problem.
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'check-privacy-index.ts'), broken], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('broken.md:6: T2: test/no-such-file.test.ts does not exist');
    // A good file passes.
    const good = md('good.md', `A claim [T1], and inline \`${GOOD}\`.\n\n| id | test |\n|---|---|\n| T1 | \`${GOOD}\` |\n`);
    expect(checkStatic([good]).problems).toEqual([]);
    const out = execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'check-privacy-index.ts'), good], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toContain('2 citations of 1 tests in 1 files');
  });

  it('inline citations and bare file mentions are checked too, in the README section only', () => {
    const text = [
      '# x',
      'test/nope.test.ts is outside the section',
      '## Privacy: what the code does',
      `- a claim (\`${GOOD}\`), see test/missing.test.ts`,
      '## Testing',
      'test/also-outside.test.ts',
    ].join('\n');
    const parsed = parseMarkdown(text, 'README.md', '## Privacy');
    expect(parsed.citations.map((c) => [c.line, c.file, c.name])).toEqual([
      [4, 'test/gateway-privacy.test.ts', 'budget per day: 2 x epsilon per window (devices and estimate of a radio), times the windows of a day'],
      [4, 'test/missing.test.ts', undefined],
    ]);
  });

  it('--run: each cited test must run and pass; a failing, a skipped and a missing one fail the check', () => {
    // A project of its own (vitest's default configuration), so these tests are not part of this suite.
    const dir = join(tmp, 'project');
    mkdirSync(join(dir, 'test'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    writeFileSync(
      join(dir, 'test', 'a.test.ts'),
      [
        "import { expect, it } from 'vitest';",
        "it('passes (1 + 1)', () => { expect(1 + 1).toBe(2); });",
        "it('fails', () => { expect(1).toBe(2); });",
        "it.skip('is skipped', () => {});",
        "it('is not cited, and fails', () => { expect(1).toBe(2); });",
        "it.each(['x', 'y'])('each %s passes', (v) => { expect(v.length).toBe(1); });",
        "it.each([['x', 1], ['yy', 3]])('each %s is %d long', (v, n) => { expect(v.length).toBe(n); });",
      ].join('\n'),
    );
    const cite = (name: string, id: string) => ({ source: 'x.md', line: 1, file: 'test/a.test.ts', name, id });
    const citations = [
      cite('passes (1 + 1)', 'T1'),
      cite('fails', 'T2'),
      cite('is skipped', 'T3'),
      cite('was never written', 'T4'),
      // an it.each citation stands for every test it makes: all must pass ("not run" before)
      cite('each %s passes', 'T5'),
      cite('each %s is %d long', 'T6'),
    ];
    const { results } = runCited(citations, dir, { ...process.env, CI: '' });
    expect(results.map((r) => [r.citation.id, r.status])).toEqual([
      ['T1', 'passed'],
      ['T2', 'failed'],
      ['T3', 'skipped'],
      ['T4', 'not run'],
      ['T5', 'passed'],
      ['T6', 'failed'],
    ]);
    // Only the cited tests ran: the uncited failing one did not make the passing citation fail.
    expect(runCited([citations[0]], dir, { ...process.env, CI: '' }).results.map((r) => r.status)).toEqual(['passed']);
  });
});
