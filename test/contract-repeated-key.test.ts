// A key given twice in one object of a payload (contract/repeated-key.ts): found whatever the text's
// spacing, escapes and the ':' in its strings, by the cheap count and by the key-by-key scan alike.
import { describe, expect, it } from 'vitest';
import { encode, repeatedKey, repeatedKeyInCounts, validateCounts } from '../contract/index.ts';
import { window } from './aggregator-helpers.ts';

const twice = (text: string) => repeatedKey(text, JSON.parse(text));

describe('repeatedKey', () => {
  it('finds a key given twice, at any depth, and names its path', () => {
    expect(twice('{"a":1,"a":2}')).toBe('/a');
    expect(twice('{"a":{"b":1,"c":{"d":"x:y","d":"z"}}}')).toBe('/a/c/d');
    expect(twice('{"l":[{"x":1},{"x":1,"x":2}]}')).toBe('/l/1/x');
    expect(twice('[1, {"k": [2, 3]}, {"k": 1, "k": 1}]')).toBe('/2/k');
    expect(twice(' {\n  "a" : 1 ,\n  "a"\t:\r2 }')).toBe('/a');
  });

  it('sees through escapes: an escaped key, and an escaped ":" that would balance the count', () => {
    expect(twice('{"seq":1,"s\\u0065q":2}')).toBe('/seq');
    // a dropped member's ':' made up by a ':' that is written \u003a in the text
    expect(twice('{"a":1,"a":"\\u003a"}')).toBe('/a');
    expect(twice('{"a":"\\"","b":"\\\\"}')).toBeNull();
  });

  it('passes each key once, ":" and braces in strings and keys too', () => {
    for (const text of ['{}', '[]', '1', '"a:b"', '{"a:b":"{[:]}","c":[":",{"d":":"}],"e":{"a":1}}', '{"a":{"a":{"a":1}}}', '[{"a":1},{"a":1}]'])
      expect(twice(text), text).toBeNull();
  });

  it('names a key that is not a field name (it could hold an address) in fixed words', () => {
    expect(twice('{"3c22fb01a09e":1,"3c22fb01a09e":2}')).toBe('/(a key that is not a field name)');
    expect(twice('{"w":{"3c:22:fb:01:a0:9e":{"n":1,"n":2}}}')).toBe('/w/(a key that is not a field name)/n');
  });

  it('repeatedKeyInCounts agrees on a valid counts message', () => {
    const m = window('s', 'g', 5, Date.parse('2026-04-27T10:00:00Z'));
    const text = encode(m).toString();
    const v = validateCounts(JSON.parse(text));
    expect(v.ok && repeatedKeyInCounts(text, v.value)).toBeNull();
    const dup = text.replace('"seq":5', '"seq":4,"seq":5');
    const w = validateCounts(JSON.parse(dup));
    expect(w.ok && repeatedKeyInCounts(dup, w.value)).toBe('/seq');
    const withPrivacy = JSON.stringify({ ...m, privacy: { min_count: 3, min_count2: 1 } }).replace('"min_count2":1', '"min_count":3');
    expect(twice(withPrivacy)).toBe('/privacy/min_count');
  });
});
