// What a first-time reader is told the numbers are. `devices` is the distinct addresses of a window
// (a phone that randomises leaves several) and `estimate` the devices present, averaged over the
// window; neither is people without a calibration (README.md, "People: what the numbers mean").
// The README's opening, its data flow, the aggregator page's note and `presence replay`'s
// description say so, and none calls the count of addresses "distinct devices".
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../scripts/cli.ts';

const ROOT = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const oneLine = (s: string) => s.replace(/\s+/g, ' ');

describe('what the counts are called', () => {
  it('the README before its "People" section says addresses and devices present, never distinct devices', () => {
    const readme = read('README.md');
    const before = oneLine(readme.slice(0, readme.indexOf('## People: what the numbers mean')));
    expect(before).not.toMatch(/distinct devices/i);
    expect(before).toContain('counts the distinct addresses in each window (one minute by default) and estimates the devices present');
    expect(before).toContain('counts distinct addresses and estimates the devices present per window');
  });

  it("the aggregator page's note names the estimate, not distinct devices", () => {
    const note = oneLine(/<p class="note">([\s\S]*?)<\/p>/.exec(read('aggregator/web/index.html'))![1]!);
    expect(note).not.toMatch(/distinct devices/i);
    expect(note).toContain("the gateways' estimate of the devices present, averaged over the window");
    expect(note).toContain('not people');
  });

  it('presence replay --help: distinct addresses and the devices present, not people', async () => {
    const replay = (await buildProgram()).commands.find((c) => c.name() === 'replay')!;
    expect(replay.description()).toMatch(/^Count the distinct addresses and estimate the devices present in a pcap\/pcapng capture/);
    expect(replay.description()).toContain('not people');
    // --calibration does give people: the description says so rather than deny it outright.
    expect(replay.description()).toContain('--calibration adds people');
    expect(replay.options.map((o) => o.long)).toContain('--calibration');
  });
});

describe('the demo as its two descriptions tell it', () => {
  it('README.md and docs/deployment.md give the same size for what the default run keeps (290 kB in one, 300 kB in the other; the run keeps 303 kB)', () => {
    const readme = oneLine(read('README.md'));
    const deployment = oneLine(read('docs/deployment.md'));
    const inReadme = /log: about (\d+) kB for the default run/.exec(readme);
    const inDeployment = /how much this run left in the folder \(about (\d+) kB for the default run\)/.exec(deployment);
    expect(inReadme, 'README.md').not.toBeNull();
    expect(inDeployment, 'docs/deployment.md').not.toBeNull();
    expect(inDeployment![1]).toBe(inReadme![1]);
  });
});
