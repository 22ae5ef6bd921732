// The ACL docs/deployment.md shows under "`/etc/mosquitto/presence.acl`:" is the shipped
// docs/mosquitto/presence.acl without its comments: a rule added to one and not the other fails here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const rules = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

describe('the ACL in the deployment guide', () => {
  it('is the shipped ACL, rule for rule', () => {
    const doc = readFileSync(join(ROOT, 'docs/deployment.md'), 'utf8');
    const m = /`\/etc\/mosquitto\/presence\.acl`:\n\n```\n([\s\S]*?)```/.exec(doc);
    expect(m, 'the ACL block of docs/deployment.md').not.toBeNull();
    expect(rules(m![1]!)).toEqual(rules(readFileSync(join(ROOT, 'docs/mosquitto/presence.acl'), 'utf8')));
  });
});
