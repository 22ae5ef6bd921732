// `presence corridor join` on gateway config files whose `corridor` key is there but is no mapping
// yet: a `corridor:` line with its settings still commented out (or `corridor: ~`) is joined, its
// comments kept; a list, a scalar or an alias (*name: setting keys through it would change the node
// it names too) is one line naming the file and the line, and changes nothing. It was a stack trace
// from the yaml package ("Expected YAML collection at corridor"), exit code 1. The real CLI.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../gateway/config.ts';

const ROOT = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'presence-corridor-join-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function presence(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/presence.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const BASE = 'gateway:\n  site: dam\n  zone: plein\n  id: gw-1\nmqtt:\n  url: mqtt://127.0.0.1:1883\nsources:\n  - { type: stdin }\n';
const secret = join(tmp, 'main.secret');

function gatewayDir(name: string, text: string): { dir: string; config: string } {
  const dir = join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', [dir]);
  const config = join(dir, name.endsWith('json') ? 'gateway.json' : 'gateway.yaml');
  writeFileSync(config, text);
  return { dir, config };
}

describe('corridor join: a corridor key that is no mapping yet', () => {
  it('makes the group secret', () => {
    expect(presence('corridor', 'init', '--group', 'main', '--out', secret).code).toBe(0);
  });

  it.each([
    ['empty', 'corridor:   # to do, from the field guide\n  # sketch_p: 0.05\n  # epoch: 1h\nlog:\n  level: info\n'],
    ['null', 'corridor: ~\n'],
  ])('a corridor key without settings (%s) is joined, and the gateway loads it', (name, tail) => {
    const { dir, config } = gatewayDir(name, BASE + tail);
    const r = presence('corridor', 'join', '--config', config, '--group', 'main', '--secret-file', secret, '--sketch-p', '0.03');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const text = readFileSync(config, 'utf8');
    if (name === 'empty') {
      for (const comment of ['# to do, from the field guide', '# sketch_p: 0.05', '# epoch: 1h']) expect(text).toContain(comment);
      expect(text).toContain('log:\n  level: info');
    }
    const cfg = loadConfig({ config });
    expect(cfg.corridor).toMatchObject({ group: 'main', secret_file: join(dir, 'corridor-main.secret'), sketch_p: 0.03 });
  });

  it.each([
    ['list', 'corridor: []\n', /corridor \(line 9\): must be a mapping of settings, not a list$/],
    ['scalar', 'corridor: 5\n', /corridor \(line 9\): must be a mapping of settings, not the value 5$/],
    ['alias', 'log: &c\n  level: info\ncorridor: *c\n', /corridor \(line 11\): must be a mapping of settings, not an alias \(\*c\) of another node/],
    ['json', '', /"corridor" must be an object of settings, not a list$/],
  ])('a corridor key that is a %s: one line naming the file and what is wrong, nothing changed', (name, tail, what) => {
    const text =
      name === 'json'
        ? JSON.stringify({
            gateway: { site: 'dam', zone: 'plein', id: 'gw-1' },
            mqtt: { url: 'mqtt://127.0.0.1:1883' },
            sources: [{ type: 'stdin' }],
            corridor: [1],
          })
        : BASE + tail;
    const { dir, config } = gatewayDir(`bad-${name}${name === 'json' ? '.json' : ''}`, text);
    const r = presence('corridor', 'join', '--config', config, '--group', 'main', '--secret-file', secret, '--sketch-p', '0.03');
    const lines = r.err.trimEnd().split('\n');
    expect(lines, r.err).toHaveLength(2);
    expect(lines[0]).toContain(`presence corridor join: --config ${config}: `);
    expect(lines[0]).toMatch(what);
    expect(lines[1]).toMatch(/^hint: make corridor a mapping/);
    expect(r.code).toBe(2);
    expect(readFileSync(config, 'utf8')).toBe(text);
    expect(readdirSync(dir)).toEqual([config.slice(dir.length + 1)]);
    expect(existsSync(join(dir, 'corridor-main.secret'))).toBe(false);
  });
});
