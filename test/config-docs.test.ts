// The config reference in each component README is generated from the component's option table
// (scripts/gen-config-docs.ts); this fails when a README no longer matches the table, and checks
// that the sample files in them are valid configurations.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkConfigObject, loadConfig as loadAggregatorConfig } from '../aggregator/config.ts';
import { loadConfig } from '../gateway/config.ts';
import { webAccess } from '../scripts/lib/web.ts';
import { COMPONENTS, commandFlags, FLAG_DOCS, flagsReference, reference, updated, updatedFlags } from '../scripts/gen-config-docs.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const ROOT = join(import.meta.dirname, '..');
const readme = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const sampleOf = (text: string) => /<!-- BEGIN config reference[\s\S]*?```yaml\n([\s\S]*?)```[\s\S]*?<!-- END config reference -->/.exec(text)?.[1];

describe('config reference in the READMEs', () => {
  for (const c of COMPONENTS) {
    it(`${c.readme} holds the reference generated from ${c.source} (npx tsx scripts/gen-config-docs.ts rewrites it)`, () => {
      const text = readme(c.readme);
      expect(updated(c, text), `${c.readme} is out of date: run npx tsx scripts/gen-config-docs.ts`).toBe(text);
      for (const spec of c.specs) expect(text).toContain(`| \`${spec.key}\``);
    });

    it(`${c.readme} starts with what the component does and a runnable example, then its configuration`, () => {
      const text = readme(c.readme);
      const example = text.indexOf('Runnable example');
      const config = text.indexOf('## Configuration');
      const ref = text.indexOf('<!-- BEGIN config reference');
      expect(example).toBeGreaterThan(0);
      expect(config).toBeGreaterThan(example);
      expect(ref).toBeGreaterThan(config);
      // Nothing but the opening description and the example before the configuration section.
      expect(text.slice(0, config).match(/^## /gm) ?? []).toEqual([]);
    });
  }

  for (const d of FLAG_DOCS) {
    it(`${d.readme} holds the flags reference generated from presence ${d.command}'s options (npx tsx scripts/gen-config-docs.ts rewrites it)`, async () => {
      const text = readme(d.readme);
      const flags = await commandFlags(d.command);
      expect(updatedFlags(d, flags, text), `${d.readme} is out of date: run npx tsx scripts/gen-config-docs.ts`).toBe(text);
      const shown = flags.options.filter((o) => !o.hidden);
      expect(shown.length).toBeGreaterThan(3);
      for (const o of shown) expect(text).toContain(`| \`${o.flags}\``);
      // A changed description makes it stale.
      const changed = { ...flags, options: flags.options.map((o, i) => (i === 0 ? { ...o, description: `${o.description}, changed` } : o)) };
      expect(flagsReference(d, changed)).not.toBe(flagsReference(d, flags));
    });
  }

  it('the help of every flag that still reads a bare number as a duration says so, and in which unit', async () => {
    const { buildProgram } = await import('../scripts/cli.ts');
    const program = await buildProgram();
    for (const c of COMPONENTS) {
      const cmd = program.commands.find((x) => x.name() === c.name)!;
      for (const spec of c.specs) {
        const bare = spec.duration?.bareText ?? spec.duration?.bare;
        if (!spec.flag || !bare) continue;
        const long = spec.flag.split(/[ ,]/)[0];
        const help = cmd.options.find((o) => o.long === long)!.description.replace(/\s+/g, ' ');
        expect(help, `${c.name} ${long}`).toContain(`a bare number, deprecated, is read as ${bare === 's' ? 'seconds' : 'ms'}`);
      }
    }
  });

  it("the aggregator's --http-port and --http-host name the page they serve, as the gateway's do", async () => {
    const { buildProgram } = await import('../scripts/cli.ts');
    const program = await buildProgram();
    for (const name of ['aggregator', 'gateway']) {
      const cmd = program.commands.find((c) => c.name() === name)!;
      const opt = (flag: string) => cmd.options.find((o) => o.long === flag)!.description.replace(/\s+/g, ' ');
      expect(opt('--http-port'), name).toMatch(/the (live )?page at \//);
      expect(opt('--http-host'), name).toMatch(/page/);
    }
  });

  it("the aggregator README's metrics table lists every presence_* metric of /metrics, as one table", async () => {
    const { AggregatorMetrics } = await import('../aggregator/health.ts');
    const served = (await new AggregatorMetrics().registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('presence_'));
    expect(served.length).toBeGreaterThan(10);
    const text = readme('aggregator/README.md');
    const start = text.indexOf('| metric | |');
    expect(start).toBeGreaterThan(0);
    // The table's rows: from its header to the first line that is not a row (a blank line ends a Markdown table).
    const rows = text.slice(start).split('\n').slice(2);
    const table = rows
      .slice(
        0,
        rows.findIndex((l) => !l.startsWith('|')),
      )
      .join('\n');
    for (const name of served) {
      const short = name.replace(/^presence_aggregator/, '');
      expect(table.includes(`\`${name}`) || table.includes(`\`${short}`), `${name} in the metrics table`).toBe(true);
    }
  });

  it('the simulator README lists every built-in scenario', () => {
    const text = readme('simulator/README.md');
    for (const f of readdirSync(join(ROOT, 'simulator/scenarios')).filter((n) => n.endsWith('.yaml')))
      expect(text, f).toContain(`| \`${f.slice(0, -'.yaml'.length)}\` |`);
  });

  it('a changed option table makes the README stale', () => {
    const c = COMPONENTS[0];
    const changed = { ...c, specs: c.specs.map((s, i) => (i === 0 ? { ...s, description: `${s.description}, changed` } : s)) };
    const text = readme(c.readme);
    expect(updated(changed, text)).not.toBe(text);
    expect(reference(changed)).toContain(', changed');
  });

  // The samples load as a reader would use them: their /etc/presence files made in a folder of their own.
  const withSampleFiles = (readmePath: string, run: (file: string, dir: string) => void) => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-docs-'));
    try {
      const text = sampleOf(readme(readmePath))!;
      const named = [...new Set(text.match(/\/etc\/presence\/[\w.-]+/g) ?? [])];
      expect(named.length).toBeGreaterThan(0);
      for (const path of named) writeFileSync(join(dir, path.slice('/etc/presence/'.length)), 'a-secret-line\n', { mode: 0o600 });
      const file = join(dir, 'sample.yaml');
      writeFileSync(file, text.replaceAll('/etc/presence/', `${dir}/`), { mode: 0o600 });
      run(file, dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('the gateway sample is a valid gateway configuration, its page credentials included', () => {
    withSampleFiles('gateway/README.md', (file) => {
      const cfg = loadConfig({ config: file }, {});
      expect(cfg.sources.map((s) => s.name)).toEqual(['wifi', 'ble']);
      // What the gateway checks when --http-port starts its page: basic auth needs both halves.
      expect(webAccess('127.0.0.1', cfg.http).scheme).toBe('basic+token');
    });
  });

  it('the aggregator sample loads as an aggregator configuration, as `presence aggregator --config` loads it', () => {
    const sample = parse(sampleOf(readme('aggregator/README.md'))!);
    expect(checkConfigObject(sample.aggregator)).toEqual([]);
    withSampleFiles('aggregator/README.md', (file) => {
      const cfg = loadAggregatorConfig({ config: file }, {});
      expect(cfg.http.user).toBe('ops');
      expect(cfg.http.password).toBe('a-secret-line');
      expect(cfg.influx.token).toBe('a-secret-line');
    });
  });
});
