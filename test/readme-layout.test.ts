// The top-level README's layout table is the repository's layout: one row per top-level folder under
// version control (no more, no fewer), each of their folders named in the row as `name/`, and every
// file the table links to exists. A folder added or removed without the table fails here.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

/** Rows of the table under "| component | what | README |": [name, what, readme cell]. */
function layoutRows(readme: string): string[][] {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => /^\| component \| what \| README \|$/.test(l));
  expect(start, 'the layout table').toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** Folders holding tracked files: top level and one below (`gateway/web`). */
function trackedFolders(): { top: string[]; second: string[] } {
  const files = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
  const top = new Set<string>();
  const second = new Set<string>();
  for (const f of files) {
    const parts = f.split('/');
    if (parts.length >= 2) top.add(parts[0]!);
    if (parts.length >= 3) second.add(`${parts[0]}/${parts[1]}`);
  }
  return { top: [...top].sort(), second: [...second].sort() };
}

describe('README layout table', () => {
  const rows = layoutRows(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  const { top, second } = trackedFolders();

  it('has one row per top-level folder, and no row for a folder that does not exist', () => {
    expect(rows.map((r) => r[0]).sort()).toEqual(top);
  });

  it('names every folder of a component in its row', () => {
    const missing = second.filter((d) => {
      const [parent, child] = d.split('/') as [string, string];
      const row = rows.find((r) => r[0] === parent);
      return !row || !row[1]!.includes(`${child}/`);
    });
    expect(missing, 'folders not named (as `name/`) in their component row').toEqual([]);
  });

  it('the Benchmarks section names every bench in bench/', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const list = /`npm run bench -- ([a-z-]+(?:\|[a-z-]+)+)`/.exec(readme)?.[1]?.split('|') ?? [];
    const benches = readdirSync(join(ROOT, 'bench'))
      .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
      .map((f) => f.slice(0, -3));
    expect(list.sort()).toEqual(benches.sort());
  });

  it('every component README starts with a title and a paragraph saying what the component does', () => {
    const readmes = rows.flatMap((r) => [...r[2]!.matchAll(/\]\(((?:[a-z-]+\/)+README\.md)\)/g)].map((m) => m[1]!));
    expect(readmes.length).toBeGreaterThanOrEqual(7);
    for (const f of readmes) {
      const lines = readFileSync(join(ROOT, f), 'utf8').split('\n');
      expect(lines[0], f).toMatch(/^# \S/);
      const first = lines.slice(1).find((l) => l.trim() !== '') ?? '';
      expect(first, `${f}: the first thing after the title`).toMatch(/^(?!```|[#|<>\s]|[-*] )\S/);
    }
  });

  it('links only files that exist', () => {
    for (const r of rows) for (const m of r[2]!.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)) expect(existsSync(join(ROOT, m[1]!)), `${r[0]}: ${m[1]}`).toBe(true);
  });
});
