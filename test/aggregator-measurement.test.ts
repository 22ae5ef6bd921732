// The measurement of a line of protocol, as the write pipeline counts stored points by it
// (presence_aggregator_points_total{measurement}): the scan for the common case must give what the
// line protocol's escaping rules give (up to the first unescaped comma or white space, escapes undone).
import { describe, expect, it } from 'vitest';
import { measurementOf } from '../aggregator/pipeline.ts';

/** The rule as a pattern: the reference the scan is checked against. */
const byPattern = (line: string) => {
  const m = /^(?:[^,\s\\]|\\.)*/.exec(line);
  return m ? m[0].replace(/\\(.)/g, '$1') : '';
};

describe('measurementOf', () => {
  it('reads the names the aggregator writes, and escaped ones', () => {
    expect(measurementOf('presence,gateway=g,radio=wifi,site=s,zone=z complete=T 1')).toBe('presence');
    expect(measurementOf('gateway_status window_complete=T 1')).toBe('gateway_status');
    expect(measurementOf('my\\ name,t=1 f=1')).toBe('my name');
    expect(measurementOf('a\\,b,t=1 f=1')).toBe('a,b');
    expect(measurementOf('nospace')).toBe('nospace');
    expect(measurementOf('')).toBe('');
  });

  it('equals the escaping rule on 200,000 strings of commas, spaces, backslashes and other white space', () => {
    const alphabet = ['a', 'b', ',', ' ', '\\', '\t', '\n', '\r', '\v', '\f', '\u00a0', '\u2028', 'é', '=', '"'];
    let seed = 42;
    const next = () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 8;
    };
    for (let i = 0; i < 200_000; i++) {
      let line = '';
      for (let j = next() % 10; j > 0; j--) line += alphabet[next() % alphabet.length];
      if (measurementOf(line) !== byPattern(line)) expect.fail(`differs on ${JSON.stringify(line)}: ${measurementOf(line)} vs ${byPattern(line)}`);
    }
  });
});
