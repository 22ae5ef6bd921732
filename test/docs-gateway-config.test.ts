// The gateway configurations the docs show a field engineer load as written, and their broker user
// name is the one `presence provision gateway` creates and the shipped ACL (docs/mosquitto/presence.acl,
// `pattern write presence/v1/%u/counts`) lets publish: "{site}/{gateway}". A sample with another
// user name would have every window refused by the broker (PUBACK 0x87) on a machine set up by the docs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../gateway/config.ts';
import { problemLines } from '../scripts/lib/usage.ts';

const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'docs-gw-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The YAML blocks of a doc that hold a gateway configuration (a `gateway:` section and `mqtt:`). */
function gatewayBlocks(doc: string): Array<{ line: number; text: string }> {
  const text = readFileSync(join(ROOT, doc), 'utf8');
  const out: Array<{ line: number; text: string }> = [];
  for (const m of text.matchAll(/```yaml[^\n]*\n([\s\S]*?)```/g)) {
    const body = m[1]!;
    if (/^gateway:/m.test(body) && /^mqtt:/m.test(body)) out.push({ line: text.slice(0, m.index).split('\n').length, text: body });
  }
  return out;
}

describe('gateway configurations in the docs', () => {
  const blocks = ['docs/field-guide.md', 'gateway/README.md'].flatMap((doc) => gatewayBlocks(doc).map((b) => ({ doc, ...b })));

  it('there are some', () => {
    expect(blocks.map((b) => b.doc)).toEqual(expect.arrayContaining(['docs/field-guide.md', 'gateway/README.md']));
  });

  it.each(blocks.map((b) => [`${b.doc}:${b.line}`, b] as const))('%s loads and its mqtt.username is {site}/{gateway}', (_, b) => {
    const file = join(dir, `${b.doc.replace(/\W/g, '_')}-${b.line}.yaml`);
    writeFileSync(file, b.text);
    const cfg = loadConfig({ config: file }, {});
    if (cfg.mqtt.username !== undefined) expect(cfg.mqtt.username).toBe(`${cfg.gateway.site}/${cfg.gateway.id}`);
  });

  it("the field guide's gateway.yaml sets estimator.burst_addresses to what its step 5 gives for its radio, not the default for three", () => {
    // Step 5 sets up one radio fixed on one channel and names the burst setting for that set-up; the
    // default (7) is for three radios on 1, 6 and 11, and left at it, a crowd is under-counted.
    const guide = readFileSync(join(ROOT, 'docs/field-guide.md'), 'utf8');
    const channel = /iw dev wlan0mon set channel (\d+)/.exec(guide)?.[1];
    const said = /`estimator\.burst_addresses` \(gateway\/README\.md; ([\d.]+) for this set-up\)/.exec(guide.replace(/\s*\n\s*/g, ' '))?.[1];
    expect(channel).toBe('6');
    expect(said).toBeDefined();
    const [b] = gatewayBlocks('docs/field-guide.md');
    const file = join(dir, 'field-guide-burst.yaml');
    writeFileSync(file, b!.text);
    const cfg = loadConfig({ config: file }, {});
    expect(cfg.estimator.burst_addresses).toBe(Number(said));
  });

  it('the error lines the field guide quotes for a bad gateway.yaml are what the gateway and doctor print', () => {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, 'gateway: { site: s, zone: z, id: g, window: 1 minute, windw: 60s }\nsources: [{ type: stdin }]\nmqtt: { url: "mqtt://h" }\n');
    let lines: string[] = [];
    try {
      loadConfig({ config: file }, {});
    } catch (e) {
      lines = problemLines(e as Error).map((l) => l.replace(file, '/etc/presence/gateway.yaml'));
    }
    const guide = readFileSync(join(ROOT, 'docs/field-guide.md'), 'utf8').replace(/\s*\n\s*/g, ' ');
    const quoted = [...guide.matchAll(/`(\/etc\/presence\/gateway\.yaml: [^`]*)`/g)].map((m) => m[1]!);
    expect(quoted.length).toBeGreaterThanOrEqual(2);
    for (const q of quoted) expect(lines).toContain(q);
  });
});
