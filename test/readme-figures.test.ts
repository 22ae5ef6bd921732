// Figures two READMEs give for the same thing by two methods: where they differ, each README says
// so, with the figures its tables hold. The empty-room people of the lab days' leave-one-day-out are
// 1.21 in firmware/README.md (test/occupancy-estimate.test.ts, the estimate before rounding) and
// 1.19 in aggregator/README.md (presence calibrate --leave-one-out, the published integer): a
// reader meeting both took one for a mistake.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
/** The text with its line breaks as spaces (a sentence may be wrapped anywhere). */
const oneLine = (s: string) => s.replace(/\s+/g, ' ');

describe('figures by two methods', () => {
  it('the empty-room people of firmware/README.md (before rounding) and of --leave-one-out (aggregator/README.md) are each explained where a reader meets both', () => {
    const firmware = oneLine(read('firmware/README.md'));
    const aggregator = oneLine(read('aggregator/README.md'));
    const unrounded = /\| people shown in empty-room windows \| \*\*([\d.]+)\*\* \|/.exec(firmware)?.[1];
    const published = /\| calibrated people in empty-room windows \| ([\d.]+) \|/.exec(aggregator)?.[1];
    expect(unrounded, "firmware/README.md's table").toBeDefined();
    expect(published, "aggregator/README.md's table").toBeDefined();
    if (unrounded === published) return;
    // Right after each table's last row: both figures, which method gives which, that both are right.
    for (const [name, text, row] of [
      ['firmware/README.md', firmware, '| 15-minute windows: Pearson r, uncalibrated |'],
      ['aggregator/README.md', aggregator, '| held-out windows whose people lie inside the 90 % interval |'],
    ] as const) {
      const at = text.indexOf(row);
      expect(at, `${name}: the table's last row`).toBeGreaterThanOrEqual(0);
      const next = text.slice(at, at + 500);
      expect(next, name).toContain(unrounded!);
      expect(next, name).toContain(published!);
      expect(next, name).toMatch(/before rounding/);
      expect(next, name).toMatch(/published integer/);
      expect(next, name).toMatch(/both are right/);
    }
  });
});
