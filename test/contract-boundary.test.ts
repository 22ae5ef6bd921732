// One contract module: no code outside contract/ writes a topic of its own. Every tracked source file
// (TypeScript, JavaScript, the pages' HTML) outside contract/ and test/ is searched for a string that
// starts with the topic root (`presence/v1/...`, `$share/group/presence/v1/...`) or is one topic level
// (`'/counts'`, `'/status'`, `'/sketch'`, `'/alive'`): topics come from contract/topics.ts. (Help
// texts and error messages that name a topic inside a sentence are not topics and are allowed.)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const TOPIC_LITERAL = /(['"`])(\$share\/[^/'"`]*\/)?presence\/v[0-9$]|(['"`])\/(counts|status|sketch|alive)\3/;

function offending(text: string): string[] {
  return text
    .split('\n')
    .map((line, i) => ({ line, i }))
    .filter(({ line }) => !/^\s*(\/\/|\*|\/\*)/.test(line) && TOPIC_LITERAL.test(line))
    .map(({ line, i }) => `${i + 1}: ${line.trim()}`);
}

describe('contract boundary', () => {
  it('finds a topic written by hand (control)', () => {
    expect(offending("const t = `presence/v1/` + site + '/' + gw + '/counts';")).toHaveLength(1);
    expect(offending("client.subscribe('$share/agg/presence/v1/+/+/counts');")).toHaveLength(1);
    expect(offending("if (topic.endsWith('/status')) n++;")).toHaveLength(1);
    expect(offending("detail: 'topic is not presence/v1/{site}/{gateway}/sketch'")).toEqual([]);
  });

  it('no module outside contract/ writes a topic string', () => {
    const files = execFileSync('git', ['ls-files', '*.ts', '*.js', '*.html'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter((f) => f && !f.startsWith('contract/') && !f.startsWith('test/'));
    expect(files.length).toBeGreaterThan(50);
    const found = files.flatMap((f) => offending(readFileSync(join(ROOT, f), 'utf8')).map((l) => `${f}:${l}`));
    expect(found, 'import the topic from contract/ (contract/topics.ts)').toEqual([]);
  });
});
