// "devices (uncalibrated)" (issue 9's label) names the `estimate` field: the devices present,
// averaged over the window. The `devices` field is something else, the distinct addresses in the
// window. Every text a user reads the label in must say which it is: the demo's table legend and
// --help, the dashboards' descriptions, the README's field list, the contract's schema, the page.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEVICES_UNCALIBRATED, tableTitle } from '../scripts/demo/index.ts';
import countsSchema from '../contract/schemas/counts.schema.json' with { type: 'json' };

const root = join(import.meta.dirname, '..');
const read = (f: string) => readFileSync(join(root, f), 'utf8');
const LABEL = 'devices (uncalibrated';

interface Panel {
  id?: number;
  title?: string;
  description?: string;
  targets?: Array<{ alias?: string }>;
  panels?: Panel[];
}

describe('"devices (uncalibrated)" is said to be the estimate, not the devices field', () => {
  it("the demo's table legend, with and without a calibration", () => {
    expect(DEVICES_UNCALIBRATED).toMatch(/the estimate, devices present averaged over the window, not the distinct addresses/);
    for (const title of [tableTitle('calibrated from the BLE estimate, fitted on seed 101'), tableTitle(null)]) {
      expect(title).toContain(LABEL);
      expect(title).toMatch(/the estimate, devices present averaged over the window, not the distinct addresses\), Wi-Fi \/ BLE/);
    }
    expect(tableTitle(null)).toContain('not people');
  });

  it('presence demo --help', () => {
    const help = execFileSync(process.execPath, ['scripts/presence.js', 'demo', '--help'], { cwd: root, encoding: 'utf8' });
    // Commander wraps the text to the terminal: read the option's text as one line.
    const text = help.replace(/\s+/g, ' ');
    const option = text.slice(text.indexOf('--no-calibrate'), text.indexOf('--log-format'));
    expect(option).toContain(LABEL);
    expect(option).toMatch(/devices \(uncalibrated: the estimate, devices present averaged over the window, not the distinct addresses\)/);
  });

  it.each(['crowd', 'traffic', 'gateways'])('dashboards/%s.json: every panel labelled so says it in its description', (name) => {
    const d = JSON.parse(read(`dashboards/${name}.json`)) as { description?: string; panels: Panel[]; templating: { list: Panel[] } };
    const all: Panel[] = [];
    const walk = (ps: Panel[]) => {
      for (const p of ps) {
        all.push(p);
        walk(p.panels ?? []);
      }
    };
    walk(d.panels);
    walk(d.templating.list);
    const labelled = all.filter((p) => `${p.title ?? ''} ${p.description ?? ''} ${(p.targets ?? []).map((t) => t.alias ?? '').join(' ')}`.includes(LABEL));
    if (name === 'crowd') expect(labelled.length).toBeGreaterThanOrEqual(5);
    for (const p of [...labelled, ...(d.description?.includes(LABEL) ? [d as Panel] : [])]) {
      // Either in those words, or (the panels that show both fields) naming each field.
      expect(p.description, `${name} ${p.id ?? ''} ${p.title ?? ''}`).toMatch(
        /estimate field: the devices present, averaged over the window, not the devices field of distinct addresses|\(the devices field, "distinct addresses"\).*\(the estimate field, "devices present"/,
      );
    }
    // The panels that show both fields name each.
    for (const p of all.filter((x) => /distinct addresses and devices present/.test(x.title ?? '')))
      expect(p.description, `${name} ${p.id}`).toMatch(
        /\(the devices field, "distinct addresses"\).*\(the estimate field, "devices present": what the per-zone panels label "devices \(uncalibrated\)"/,
      );
  });

  it("README.md's field list, the contract's schema and README, the aggregator's page", () => {
    const readme = read('README.md');
    expect(readme).toMatch(
      /- \*\*`devices`\*\*: distinct addresses heard in the window\. [^\n]*\n[^\n]*nor what the dashboards and the demo label "devices \(uncalibrated\)": that is `estimate`/,
    );
    expect(readme).toMatch(
      /- \*\*`estimate`\*\*: the devices present, averaged over the window; the dashboards and the demo label it\n {2}"devices \(uncalibrated\)"/,
    );
    const radio = countsSchema.$defs.radio.properties;
    expect(radio.devices.description).toMatch(
      /^Distinct device addresses .*not the count the dashboards and the demo label "devices \(uncalibrated\)", which is estimate\.$/,
    );
    expect(radio.estimate.description).toMatch(/label it "devices \(uncalibrated\)"/);
    expect(read('contract/README.md')).toMatch(
      /`estimate` \(the devices present, averaged over the window: what the dashboards and the demo label "devices \(uncalibrated\)", not `devices`\)/,
    );
    expect(read('aggregator/web/index.html')).toMatch(
      /<strong>devices \(uncalibrated\)<\/strong>: the gateways' estimate of the devices present, averaged over the window \(the <code>estimate<\/code> field, not the <code>devices<\/code> field of distinct addresses/,
    );
  });
});
