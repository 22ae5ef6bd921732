// The aggregator's corridor intake (aggregator/flows/intake.ts) and its config: bad sketches are
// rejected with a reason and change nothing else; flows come out per interval once the horizon has
// passed; sketches are dropped once used; ownership (rendezvous) moves only the lost instance's groups.
import { describe, expect, it, vi } from 'vitest';
import { resolveConfig, type CorridorConfig } from '../aggregator/config.ts';
import { CorridorFlows, type KeyMismatch } from '../aggregator/flows/intake.ts';
import { keyMismatchText } from '../aggregator/aggregator.ts';
import { instanceId, Ownership, ownerOf } from '../aggregator/flows/ownership.ts';
import { encode, sketchTopic, type SketchMessage } from '../contract/index.ts';
import { corridorRun } from './support/corridor.ts';

const START = Date.parse('2026-03-10T07:00:00Z');
const CORRIDOR = { group: 'main-street', site: 'corridor', members: ['gw-a', 'gw-b'], horizon: 180_000 };
const NOW = START + 24 * 3_600_000;

function feed(flows: CorridorFlows, msgs: SketchMessage[], now = NOW) {
  const lines: string[] = [];
  const rejected: string[] = [];
  for (const s of msgs) {
    const r = flows.accept(sketchTopic(s.site, s.gateway), encode(s), now);
    if (r.ok) lines.push(...r.lines);
    else rejected.push(r.reason);
  }
  return { lines, rejected };
}

describe('corridor flows intake', () => {
  const run = corridorRun({ site: 'corridor', group: 'main-street', startMs: START, windows: 40 });

  it('writes one flow point per direction and interval, with bounds, and drops the sketches it used', () => {
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    const { lines, rejected } = feed(flows, run.messages);
    expect(rejected).toEqual([]);
    // 40 windows = 8 intervals; the last ones wait for their horizon (3 windows + 1)
    const ab = lines.filter((l) => l.startsWith('flow,from=gw-a,site=corridor,to=gw-b '));
    const ba = lines.filter((l) => l.startsWith('flow,from=gw-b,site=corridor,to=gw-a '));
    expect(ab.length).toBe(7);
    expect(ba.length).toBe(7);
    for (const l of ab) {
      const f = Object.fromEntries(
        l
          .split(' ')[1]
          .split(',')
          .map((kv) => kv.split('=')),
      );
      const ts = Number(l.split(' ')[2]);
      const truth = run.truthAb.get(ts)!;
      expect(Number(f.count_low)).toBeLessThanOrEqual(Number(f.count));
      expect(Number(f.count_high)).toBeGreaterThanOrEqual(Number(f.count));
      expect(Math.abs(Number(f.count) - truth) / truth).toBeLessThan(0.5);
      expect(Number(f.travel_median_s)).toBeGreaterThan(15);
      expect(Number(f.travel_median_s)).toBeLessThan(60);
    }
    // held: only what later intervals still need (the window before the next interval, and after)
    expect(flows.held).toBeLessThanOrEqual(2 * (40 - 35 + 1));
    expect(flows.sketchesDropped).toBeGreaterThanOrEqual(2 * 34);
  });

  it('key_check: two members under different keys are named both and give no flow (not one of about 0); agreeing or absent key_checks change nothing', () => {
    const other = corridorRun({ site: 'corridor', group: 'main-street', startMs: START, windows: 40, label: 'another-secret' });
    const KA = '00112233aabbccdd';
    const KB = 'ffeeddcc44556677';
    const mixed = run.messages.map((m, i) => (m.gateway === 'gw-a' ? { ...m, key_check: KA } : { ...other.messages[i]!, key_check: KB }));
    const reported: Array<KeyMismatch | null> = [];
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1, onKeyMismatch: (_g, m) => reported.push(m) });
    flows.own('main-street', START);
    const { lines, rejected } = feed(flows, mixed);
    // neither can be told to be the right one: nothing refused, nothing compared, nothing written
    expect(rejected).toEqual([]);
    expect(lines).toEqual([]);
    expect(reported).toEqual([{ group: 'main-street', epoch: run.messages[0]!.epoch, gateways: ['gw-a', 'gw-b'], majority: null }]);
    expect(flows.keyMismatches).toEqual(reported);
    expect(keyMismatchText(reported[0]!)).toMatch(/^corridor group "main-street": gw-a, gw-b give different key_check values .*presence corridor join --force/);
    // without key_check (the same sketches): flows of about 0 are written, as gateways before it get
    const unchecked = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    unchecked.own('main-street', START);
    const zero = feed(
      unchecked,
      mixed.map(({ key_check: _, ...m }) => m),
    ).lines;
    expect(zero.length).toBeGreaterThan(0);
    // the same key_check at both, or at one only: the same flows as without
    const plain = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    plain.own('main-street', START);
    const expected = feed(plain, run.messages).lines;
    for (const variant of [run.messages.map((m) => ({ ...m, key_check: KA })), run.messages.map((m) => (m.gateway === 'gw-a' ? { ...m, key_check: KA } : m))]) {
      const seen: Array<KeyMismatch | null> = [];
      const f = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1, onKeyMismatch: (_g, m) => seen.push(m) });
      f.own('main-street', START);
      expect(feed(f, variant).lines).toEqual(expected);
      expect(seen).toEqual([]);
    }
  });

  it('key_check: the member that disagrees with the majority has every sketch refused, also those held before; a fixed secret clears it', () => {
    const THREE = { ...CORRIDOR, members: ['gw-a', 'gw-b', 'gw-c'] };
    const K = '0123456789abcdef';
    const WRONG = 'fedcba9876543210';
    const epoch = run.messages[0]!.epoch;
    const reported: Array<KeyMismatch | null> = [];
    const flows = new CorridorFlows([THREE], { maxAheadMs: 300_000, seed: 1, onKeyMismatch: (_g, m) => reported.push(m) });
    flows.own('main-street', START);
    const c = (m: SketchMessage, kc: string) => ({ ...m, gateway: 'gw-c', key_check: kc });
    const at = (i: number) => run.messages[i]!;
    const refusals: Array<{ reason: string; topic: string }> = [];
    const put = (m: SketchMessage) => {
      const r = flows.accept(sketchTopic(m.site, m.gateway), encode(m), NOW);
      for (const w of r.waited ?? []) refusals.push({ reason: w.reason, topic: w.topic });
      if (!r.ok) refusals.push({ reason: r.reason, topic: sketchTopic(m.site, m.gateway) });
      return r;
    };
    // gw-c first (held: nothing to compare with), then gw-a (one against one: both named), then gw-b
    put(c(at(0), WRONG));
    put(c(at(2), WRONG));
    expect(flows.held).toBe(2);
    put({ ...at(0), key_check: K });
    expect(reported.at(-1)).toEqual({ group: 'main-street', epoch, gateways: ['gw-a', 'gw-c'], majority: null });
    expect(refusals).toEqual([]);
    put({ ...at(1), key_check: K });
    // gw-a and gw-b agree: gw-c's held sketches are refused, and its next one at once
    expect(reported.at(-1)).toEqual({ group: 'main-street', epoch, gateways: ['gw-c'], majority: ['gw-a', 'gw-b'] });
    expect(refusals).toEqual([
      { reason: 'sketch_key_mismatch', topic: sketchTopic('corridor', 'gw-c') },
      { reason: 'sketch_key_mismatch', topic: sketchTopic('corridor', 'gw-c') },
    ]);
    expect(flows.held).toBe(2);
    const r = put(c(at(4), WRONG));
    expect(r.ok ? 'held' : r.reason).toBe('sketch_key_mismatch');
    expect(flows.held).toBe(2);
    // its secret file replaced by the group's: it agrees, and the mismatch is over
    const fixed = put(c(at(6), K));
    expect(fixed.ok).toBe(true);
    expect(reported.at(-1)).toBeNull();
    expect(flows.keyMismatches).toEqual([]);
  });

  it("key_check: a member with a shorter corridor.epoch or a replayed window does not change what the others are taken to hold (it cleared the group's mismatch)", () => {
    const FOUR = { ...CORRIDOR, members: ['gw-a', 'gw-b', 'gw-c', 'gw-m'] };
    const K = '0123456789abcdef';
    const WRONG = 'fedcba9876543210';
    const reported: Array<KeyMismatch | null> = [];
    const flows = new CorridorFlows([FOUR], { maxAheadMs: 300_000, seed: 1, onKeyMismatch: (_g, m) => reported.push(m) });
    flows.own('main-street', START);
    const results = new Map<string, string[]>();
    const put = (m: SketchMessage) => {
      const r = flows.accept(sketchTopic(m.site, m.gateway), encode(m), NOW);
      results.set(m.gateway, [...(results.get(m.gateway) ?? []), r.ok ? 'held' : r.reason]);
    };
    for (let w = 0; w < 40; w++) {
      const m = run.messages[2 * w]!;
      const start = Date.parse(m.window_start);
      put({ ...m, gateway: 'gw-a', key_check: K });
      put({ ...m, gateway: 'gw-b', key_check: K });
      put({ ...m, gateway: 'gw-c', key_check: WRONG });
      // corridor.epoch 30 min: epochs numbered about twice as high, a key_check of its own each
      put({ ...m, gateway: 'gw-m', epoch_s: 1800, epoch: Math.floor(start / 1_800_000), key_check: '00112233445566ff' });
      expect(
        flows.keyMismatches.map((k) => k.gateways),
        `window ${w}`,
      ).toEqual([['gw-c']]);
    }
    expect(reported.at(-1)?.gateways).toEqual(['gw-c']);
    expect(reported.filter((r) => r === null)).toEqual([]);
    expect(new Set(results.get('gw-c')!.slice(1))).toEqual(new Set(['sketch_key_mismatch']));
    expect(new Set(results.get('gw-m')!.slice(1))).toEqual(new Set(['sketch_invalid'])); // its first waited for the window length
    // a replay of an old window of gw-a under another key: refused, and nobody is named anew
    const old = run.messages[2 * 30]!;
    for (let i = 0; i < 100; i++) put({ ...old, gateway: 'gw-a', key_check: WRONG });
    expect(
      results
        .get('gw-a')!
        .slice(-100)
        .every((r) => r === 'sketch_key_mismatch'),
    ).toBe(true);
    const before = reported.length;
    expect(before).toBeLessThanOrEqual(3);
    for (let i = 0; i < 100; i++) put({ ...old, gateway: 'gw-a', key_check: i % 2 ? K : WRONG });
    expect(reported.length).toBe(before);
    expect(flows.keyMismatches.map((k) => k.gateways)).toEqual([['gw-c']]);
  });

  it('a sketch with p = 1 (every bit a coin flip) is refused and the group goes on: it was held, then every sketch of the group threw', () => {
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    const results = run.messages.map((s) =>
      flows.accept(sketchTopic(s.site, s.gateway), encode(s.gateway === 'gw-a' && s.window_start.endsWith(':05:00.000Z') ? { ...s, p: 1 } : s), NOW),
    );
    const refused = results.filter((r) => !r.ok);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r).toMatchObject({ ok: false, reason: 'sketch_invalid', detail: '/p must be < 1' });
    // gw-b's sketches and gw-a's others are held and flows still come out
    expect(results.filter((r) => r.ok).flatMap((r) => (r.ok ? r.lines : [])).length).toBeGreaterThan(0);
  });

  it('refuses a sketch with a key given twice, naming it (JSON.parse kept the last, a valid p)', () => {
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    const s = run.messages[0];
    const text = JSON.stringify(s).replace('"p":', '"p":0.5,"p":');
    expect(flows.accept(sketchTopic(s.site, s.gateway), Buffer.from(text), NOW)).toEqual({
      ok: false,
      reason: 'sketch_invalid',
      detail: '/p is given twice: a payload holds each field once (a JSON parser keeps one of the two values, which one depends on the parser)',
    });
    expect(flows.accept(sketchTopic(s.site, s.gateway), Buffer.from(JSON.stringify(s)), NOW).ok).toBe(true);
  });

  it('rejects bad sketches with a reason, and they change nothing else', () => {
    const good = run.messages.slice(0, 40);
    const bad: Array<[string, SketchMessage | string]> = [
      ['sketch_invalid', { ...good[0], v: 2 as 1 }],
      ['sketch_size', { ...good[0], m: 1000 }],
      ['sketch_size', { ...good[0], m: 4096 }],
      ['sketch_size', { ...good[0], bits: Buffer.alloc(128).toString('base64') }],
      ['sketch_unknown_group', { ...good[0], group: 'other-street' }],
      ['sketch_not_member', { ...good[0], gateway: 'gw-x' }],
      ['sketch_not_member', { ...good[0], site: 'elsewhere' }],
      [
        'sketch_future',
        {
          ...good[0],
          epoch: Math.floor((NOW + 3_600_000) / 3_600_000),
          window_start: new Date(NOW + 3_600_000).toISOString(),
          window_end: new Date(NOW + 3_660_000).toISOString(),
        },
      ],
      ['sketch_invalid', { ...good[0], epoch: good[0].epoch + 1 }],
      ['sketch_invalid', 'not json'],
      // p = 1: every bit a coin flip; it was held, and from the group's first interval on every sketch of the group threw ('p = 1: must be in [0, 1)')
      ['sketch_invalid', { ...good[0], p: 1 }],
    ];
    const clean = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    clean.own('main-street', START);
    const expected = feed(clean, run.messages).lines;

    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    const reasons: string[] = [];
    const lines: string[] = [];
    run.messages.forEach((s, i) => {
      const r = flows.accept(sketchTopic(s.site, s.gateway), encode(s), NOW);
      if (r.ok) lines.push(...r.lines);
      if (i === 10)
        for (const [, b] of bad) {
          const topic = typeof b === 'string' ? sketchTopic('corridor', 'gw-a') : sketchTopic(b.site, b.gateway);
          const rb = flows.accept(topic, typeof b === 'string' ? Buffer.from(b) : encode(b), NOW);
          reasons.push(rb.ok ? 'accepted' : rb.reason);
        }
      // a replay of a sketch already held, and of one already used
      if (i === 30) {
        const dup = flows.accept(sketchTopic('corridor', 'gw-a'), encode(run.messages[28]), NOW);
        const old = flows.accept(sketchTopic('corridor', 'gw-a'), encode(run.messages[0]), NOW);
        reasons.push(dup.ok ? 'accepted' : dup.reason, old.ok ? 'accepted' : old.reason);
      }
    });
    expect(reasons).toEqual([...bad.map(([r]) => r), 'sketch_duplicate', 'sketch_too_old']);
    // a window cut short: placed in its window once the length is known (two windows of one
    // gateway that follow each other and are equally long), refused before
    expect([good[0], good[2], good[4]].map((s) => [s.gateway, s.window_start])).toEqual(
      [0, 1, 2].map((w) => ['gw-a', new Date(START + w * 60_000).toISOString()]),
    );
    const fresh = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000 });
    fresh.own('main-street', START);
    const part = { ...good[4], window_start: new Date(START + 120_000 + 20_000).toISOString() }; // 40 s, from no multiple of 40 s
    const first = fresh.accept(sketchTopic('corridor', 'gw-a'), encode(part), NOW);
    expect(first.ok ? 'held' : first.reason).toBe('sketch_partial');
    expect(fresh.accept(sketchTopic('corridor', 'gw-a'), encode(good[0]), NOW)).toMatchObject({ ok: true, held: true });
    expect(fresh.held).toBe(1);
    expect(fresh.accept(sketchTopic('corridor', 'gw-a'), encode(good[2]), NOW)).toMatchObject({ ok: true, held: true });
    const second = fresh.accept(sketchTopic('corridor', 'gw-a'), encode(part), NOW);
    expect(second.ok && second.held).toBe(true);
    expect(fresh.held).toBe(3);
    expect(lines).toEqual(expected);
  });

  it("a window that ends ahead of the clock is from the future (as for counts), and does not set the group's window length", () => {
    const clean = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    clean.own('main-street', START);
    const expected = feed(clean, run.messages).lines;
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    // starts now, on the hour, but ends an hour later: the group's first sketch
    const long = { ...run.messages[0], window_end: new Date(START + 3_600_000).toISOString() };
    const r = flows.accept(sketchTopic('corridor', 'gw-a'), encode(long), START + 60_000);
    expect(r.ok ? 'held' : r.reason).toBe('sketch_future');
    expect(r.ok ? '' : r.detail).toMatch(/window ends 3540 s ahead of this aggregator's clock \(max_ahead 5m\): the gateway's clock or this host's is wrong/);
    expect(flows.held).toBe(0);
    const { lines, rejected } = feed(flows, run.messages);
    expect(rejected).toEqual([]);
    expect(lines).toEqual(expected);
  });

  it('a payload that is not JSON is rejected without quoting it (no piece of a bitmap in the reason)', () => {
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    const bits = Buffer.from(run.messages[0].bits, 'base64').subarray(0, 24).toString('base64');
    for (const text of [`{"bits": ${bits}}`, bits, `{"v":1,"bits":"${bits}" x}`]) {
      const r = flows.accept(sketchTopic('corridor', 'gw-a'), Buffer.from(text), NOW);
      expect(r.ok ? 'held' : r.reason).toBe('sketch_invalid');
      expect(r.ok ? '' : r.detail).toMatch(/^payload is not JSON/);
      expect(r.ok ? '' : r.detail).not.toContain(bits.slice(0, 8));
    }
    expect(flows.held).toBe(0);
  });

  it("a gateway's last window, cut short by its stop, arriving first does not set the group's window length: the flows are a clean run's", () => {
    const clean = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    clean.own('main-street', START);
    const expected = feed(clean, run.messages).lines;
    expect(expected.length).toBe(14);
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    // gw-a stopped 5 s into the window before the run: its last sketch, from a boundary to the stop
    const at = START - 60_000;
    const cut = {
      ...run.messages[0],
      epoch: Math.floor(at / 3_600_000),
      window_start: new Date(at).toISOString(),
      window_end: new Date(at + 5_000).toISOString(),
    };
    const { lines, rejected } = feed(flows, [cut, ...run.messages]);
    expect(rejected).toEqual([]);
    expect(lines).toEqual(expected);
  });

  it("windows shorter than 1 s are not taken as a group's length (5 minutes would be 300,000 windows of 1 ms to compare)", () => {
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    // 1-ms windows of gw-a, an hour before the run: the second follows the first
    const at = START - 3_600_000;
    const ms = (w: number) => ({
      ...run.messages[0],
      epoch: Math.floor(at / 3_600_000),
      window_start: new Date(at + w).toISOString(),
      window_end: new Date(at + w + 1).toISOString(),
    });
    const { rejected } = feed(flows, [ms(0), ms(1)]);
    expect(rejected).toEqual(['sketch_invalid']);
    expect(flows.accept(sketchTopic('corridor', 'gw-a'), encode(ms(1)), NOW)).toMatchObject({
      ok: false,
      detail: "windows of 1 ms: a corridor group's windows are at least 1 s (gateway.window of its gateways)",
    });
    // the group's gateways with whole windows are not held up by them
    const { lines, rejected: after } = feed(flows, run.messages);
    expect(after).toEqual([]);
    expect(lines.length).toBe(14);
  });

  it("a member whose epoch length is not the group's is refused, naming both (its bits are under keys the others never use)", () => {
    expect(run.messages[0].gateway).toBe('gw-a');
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    const msgs = run.messages.map((s) => (s.gateway === 'gw-b' ? { ...s, epoch_s: 1800, epoch: Math.floor(Date.parse(s.window_start) / 1_800_000) } : s));
    const details: string[] = [];
    for (const s of msgs) {
      const r = flows.accept(sketchTopic(s.site, s.gateway), encode(s), NOW);
      if (!r.ok) details.push(`${s.gateway} ${r.reason} ${r.detail}`);
      // gw-b's first sketch waited for the window length (two windows of gw-a), then was refused
      else for (const w of r.waited ?? []) details.push(`${w.topic.split('/')[3]} ${w.reason} ${w.detail}`);
    }
    expect(details.length).toBe(msgs.filter((s) => s.gateway === 'gw-b').length);
    expect(details[0]).toMatch(/^gw-b sketch_invalid epoch_s is 1800, the group's sketches have 3600/);
    expect(flows.held).toBeGreaterThan(0);
  });

  it("an old sketch replayed as a group's first (year 2000) changes no flow and does not make the instance walk every interval since", () => {
    const clean = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    clean.own('main-street', START);
    const expected = feed(clean, run.messages).lines;
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    const at = Date.parse('2000-01-01T00:00:00Z');
    const old = {
      ...run.messages[1],
      epoch: Math.floor(at / 3_600_000),
      window_start: new Date(at).toISOString(),
      window_end: new Date(at + 60_000).toISOString(),
    };
    flows.accept(sketchTopic('corridor', old.gateway), encode(old), NOW);
    const { lines, rejected } = feed(flows, run.messages);
    expect(rejected).toEqual([]);
    expect(lines).toEqual(expected);
    // 26 years are 2.8 million 5-min intervals, all empty
    expect(flows.intervalsComputed).toBeLessThanOrEqual(clean.intervalsComputed + 1);
  });

  it('a group that goes silent: after horizon + one interval of the clock its due intervals are written as a run that went on would, and no sketch is held', () => {
    const idle = CorridorFlows.idleLimit(CORRIDOR);
    expect(idle).toBe(180_000 + 300_000);
    // the run that went on: the gateways come back two hours later, which moves the group's clock past every interval held
    const on = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    on.own('main-street', START);
    const at = START + 2 * 3_600_000;
    const later = run.messages.slice(0, 2).map((s) => ({
      ...s,
      epoch: Math.floor(at / 3_600_000),
      window_start: new Date(at).toISOString(),
      window_end: new Date(at + 60_000).toISOString(),
    }));
    const expected = feed(on, [...run.messages, ...later]);
    expect(expected.rejected).toEqual([]);
    // the group that stops after window 39: intervals 0-6 written as the sketches came, interval 7 waits
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    const fed = feed(flows, run.messages);
    expect(fed.rejected).toEqual([]);
    const start = (l: string) => Number(l.split(' ')[2]);
    const iv = (ls: string[]) => [...new Set(ls.map(start))].map((t) => (t - START) / 300_000).sort((a, b) => a - b);
    expect(iv(fed.lines)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const held = flows.held;
    expect(held).toBeGreaterThan(0);
    // not before the limit
    expect(flows.expireIdle(NOW + idle - 1)).toEqual([]);
    expect(flows.held).toBe(held);
    const dropped = flows.sketchesDropped;
    const flushed = flows.expireIdle(NOW + idle);
    expect(iv(flushed)).toEqual([7]);
    expect([...fed.lines, ...flushed]).toEqual(expected.lines);
    expect(flows.held).toBe(0);
    expect(flows.sketchesDropped).toBe(dropped + held);
    // a late sketch of a window used is too old; the group's state goes on (a gateway that comes back is held)
    expect(feed(flows, [run.messages[60]], NOW + idle).rejected).toEqual(['sketch_too_old']);
    expect(feed(flows, later, NOW + idle).rejected).toEqual([]);
    expect(flows.held).toBe(2);
    // silent again: the interval of that window is written (both gateways had a sketch in it), then nothing is held
    expect(iv(flows.expireIdle(NOW + 2 * idle))).toEqual([(at - START) / 300_000]);
    expect(flows.held).toBe(0);
  });

  it('zero-fills every sketch it decoded once it lets go of it: used, expired, stopped, or refused after decoding', () => {
    // Every bitmap the intake decodes (base64 -> bytes) is caught here; once the intake holds none,
    // each must be all zeros: those used by an interval, those of a silent group, those dropped at
    // stop, and those refused after decoding (a duplicate, one too old, one of another m).
    const decoded: Buffer[] = [];
    const from = Buffer.from.bind(Buffer) as (...a: unknown[]) => Buffer;
    const spy = vi.spyOn(Buffer, 'from').mockImplementation(((...a: unknown[]) => {
      const b = from(...a);
      if (a[1] === 'base64') decoded.push(b);
      return b;
    }) as typeof Buffer.from);
    try {
      const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
      flows.own('main-street', START);
      expect(feed(flows, run.messages.slice(0, 60)).rejected).toEqual([]);
      const used = decoded.length;
      expect(used).toBe(60);
      expect(flows.held).toBeGreaterThan(0);
      const other = { ...run.messages[70]!, m: 1024, bits: Buffer.alloc(128, 0xa5).toString('base64') };
      expect(feed(flows, [run.messages[59]!, run.messages[0]!, other]).rejected).toEqual(['sketch_duplicate', 'sketch_too_old', 'sketch_size']);
      expect(decoded.length).toBe(used + 3);
      // the refused ones at once, whatever the intake still holds
      for (const b of decoded.slice(used)) expect(b.every((x) => x === 0)).toBe(true);
      // the control: a bitmap still held is not all zeros
      const nonZero = (bs: Buffer[]) => bs.filter((b) => b.some((x) => x !== 0)).length;
      expect(nonZero(decoded)).toBe(flows.held);
      flows.expireIdle(NOW + CorridorFlows.idleLimit(CORRIDOR));
      expect(flows.held).toBe(0);
      expect(nonZero(decoded)).toBe(0);
      // and at stop
      const stopped = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
      stopped.own('main-street', START);
      const before = decoded.length;
      expect(feed(stopped, run.messages.slice(0, 10)).rejected).toEqual([]);
      expect(nonZero(decoded.slice(before))).toBe(stopped.held);
      expect(stopped.held).toBeGreaterThan(0);
      stopped.dropAll();
      expect(nonZero(decoded.slice(before))).toBe(0);
    } finally {
      spy.mockRestore();
    }
  });

  it("a silent group's sketches are dropped after the idle limit of the clock's forward steps, however far it was set back meanwhile", () => {
    // Before, a wall clock set back an hour after the
    // last sketch kept a silent group's sketches in memory an hour longer than horizon + one interval.
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    flows.own('main-street', START);
    expect(feed(flows, run.messages).rejected).toEqual([]);
    const held = flows.held;
    expect(held).toBeGreaterThan(0);
    const idle = CorridorFlows.idleLimit(CORRIDOR);
    const back = NOW - 3_600_000; // the clock, set back an hour after the last sketch
    flows.expireIdle(back);
    flows.expireIdle(back + idle - 1);
    expect(flows.held).toBe(held);
    flows.expireIdle(back + idle);
    expect(flows.held).toBe(0);
    expect(flows.sketchesDropped).toBeGreaterThanOrEqual(held);
  });

  it('a standby whose group goes silent drops every sketch after the idle limit and writes nothing', () => {
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    expect(feed(flows, run.messages).lines).toEqual([]);
    expect(flows.held).toBeGreaterThan(0);
    const computed = flows.intervalsComputed;
    expect(flows.expireIdle(NOW + CorridorFlows.idleLimit(CORRIDOR))).toEqual([]);
    expect(flows.intervalsComputed).toBe(computed);
    expect(flows.held).toBe(0);
  });

  it('a standby (another instance owns the group) holds the sketches, writes nothing, drops them as the owner does plus one interval', () => {
    const flows = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000 });
    const r = feed(flows, run.messages.slice(0, 40));
    expect(r.rejected).toEqual([]);
    expect(r.lines).toEqual([]);
    expect(flows.owns('main-street')).toBe(false);
    expect(flows.intervalsComputed).toBe(0);
    // windows 0-19 of both gateways; intervals 0-2 due: the owner keeps windows 14-19, the standby 9-19
    expect(flows.held).toBe(2 * 11);
    flows.dropAll();
    expect(flows.held).toBe(0);
  });

  it('a take-over from standby writes the interval in progress, and the last due one again with the same values', () => {
    const owner = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    const standby = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    const whole = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    owner.own('main-street', START);
    whole.own('main-street', START);
    const all = feed(whole, run.messages).lines;
    // both see windows 0-19; the owner dies (its lines for intervals 0-2 were written)
    const before = feed(owner, run.messages.slice(0, 40)).lines;
    expect(feed(standby, run.messages.slice(0, 40)).lines).toEqual([]);
    standby.own('main-street', START + 20 * 60_000);
    const after = feed(standby, run.messages.slice(40)).lines;
    const start = (l: string) => Number(l.split(' ')[2]);
    const iv = (ls: string[]) => [...new Set(ls.map(start))].map((t) => (t - START) / 300_000).sort((a, b) => a - b);
    expect(iv(before)).toEqual([0, 1, 2]);
    // interval 3 (windows 15-19, in progress at the change) is written, and interval 2 again
    expect(iv(after)).toEqual([2, 3, 4, 5, 6]);
    // the same points an owner that never went away writes: interval 2 twice is one point in the database
    expect([...new Set([...before, ...after])].sort()).toEqual([...all].sort());
  });

  it('a newcomer that takes the group over from an empty start: the old owner writes the intervals in progress, no interval is lost', () => {
    const old = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    const fresh = new CorridorFlows([CORRIDOR], { maxAheadMs: 300_000, seed: 1 });
    old.own('main-street', START);
    const before = feed(old, run.messages.slice(0, 40)).lines;
    // the newcomer starts at window 21 and ranks first: it owns the group from its first sketch on
    fresh.own('main-street', START + 21 * 60_000);
    old.disown('main-street');
    expect(old.owns('main-street')).toBe(false);
    const afterOld = feed(old, run.messages.slice(40)).lines;
    const afterNew = feed(fresh, run.messages.slice(42)).lines;
    const start = (l: string) => Number(l.split(' ')[2]);
    const iv = (ls: string[]) => [...new Set(ls.map(start))].map((t) => (t - START) / 300_000).sort((a, b) => a - b);
    expect(iv(before)).toEqual([0, 1, 2]);
    // the newcomer's first whole interval is 5 (windows 25-29); the old owner writes 3 and 4 (and 5, overlapping), then stops
    expect(iv(afterNew)).toEqual([5, 6]);
    expect(iv(afterOld)).toEqual([3, 4, 5]);
    expect(old.intervalsComputed).toBe(6);
    expect(new Set([...iv(before), ...iv(afterOld), ...iv(afterNew)]).size).toBe(7);
  });

  it('owner: rendezvous over the live instances; losing one moves only its groups', () => {
    const groups = Array.from({ length: 40 }, (_, i) => `g-${i}`);
    const ids = ['agg-1', 'agg-2', 'agg-3'].map(instanceId);
    const alive = new Map(ids.map((id) => [id, groups]));
    const before = new Map(groups.map((g) => [g, ownerOf(g, alive)]));
    expect(new Set(before.values()).size).toBe(3);
    alive.delete(ids[0]);
    for (const g of groups) {
      const now = ownerOf(g, alive);
      if (before.get(g) !== ids[0]) expect(now).toBe(before.get(g));
      else expect(now).not.toBe(ids[0]);
    }
    const o = new Ownership(ids[1], ['main-street']);
    expect(o.owned()).toEqual(ownerOf('main-street', new Map([[ids[1], ['main-street']]])) === ids[1] ? ['main-street'] : []);
    expect(o.update(ids[2], Buffer.from(JSON.stringify({ v: 1, instance: ids[2], groups: ['main-street'] })))).toBe(true);
    const both = ownerOf(
      'main-street',
      new Map([
        [ids[1], ['main-street']],
        [ids[2], ['main-street']],
      ]),
    );
    expect(o.owned()).toEqual(both === ids[1] ? ['main-street'] : []);
    expect(o.update(ids[2], Buffer.alloc(0))).toBe(true);
    expect(o.owned()).toEqual(['main-street']);
  });

  it('config: corridors validated with messages naming the entry', () => {
    expect(resolveConfig({ corridors: [CORRIDOR] }).corridors).toEqual([CORRIDOR]);
    expect(resolveConfig({ corridors: [{ group: 'a', site: 's', members: ['x', 'y'] }] }).corridors[0].horizon).toBe(600_000);
    expect(() => resolveConfig({ corridors: [{ group: 'a', site: 's', members: ['x'] }] })).toThrow(/corridors/);
    expect(() => resolveConfig({ corridors: [{ group: 'A B', site: 's', members: ['x', 'y'] }] })).toThrow(/corridors/);
    expect(() =>
      resolveConfig({
        corridors: [
          { group: 'a', site: 's', members: ['x', 'y'] },
          { group: 'a', site: 's', members: ['z', 'w'] },
        ],
      }),
    ).toThrow(/corridors\[1\]\.group: "a" is also corridors\[0\]\.group/);
    expect(() =>
      resolveConfig({
        corridors: [
          { group: 'a', site: 's', members: ['x', 'y'] },
          { group: 'b', site: 's', members: ['y', 'z'] },
        ],
      }),
    ).toThrow(/corridors\[1\]\.members: gateway "y" of site "s" is already a member of group "a"/);
    // the same id at another site is another gateway
    expect(
      resolveConfig({
        corridors: [
          { group: 'a', site: 's', members: ['x', 'y'] },
          { group: 'b', site: 't', members: ['y', 'z'] },
        ],
      }).corridors.map((c) => c.group),
    ).toEqual(['a', 'b']);
    expect(() => resolveConfig({ corridors: [{ group: 'a', site: 's', members: ['x', 'y'], horizon: '10s' }] })).toThrow(
      /corridors\[0\]\.horizon: must be a duration from 1m to 6h/,
    );
    // expansion: one factor, or per ordered pair of the group's members
    expect(resolveConfig({ corridors: [{ group: 'a', site: 's', members: ['x', 'y'], expansion: 1.2 }] }).corridors[0].expansion).toBe(1.2);
    expect(resolveConfig({ corridors: [{ group: 'a', site: 's', members: ['x', 'y'], expansion: { 'x>y': 1.1 } }] }).corridors[0].expansion).toEqual({
      'x>y': 1.1,
    });
    expect(() => resolveConfig({ corridors: [{ group: 'a', site: 's', members: ['x', 'y'], expansion: { 'x>z': 1.1 } }] })).toThrow(
      /corridors\[0\]\.expansion: "x>z" is not an ordered pair of two of the group's members \(x, y\)/,
    );
    expect(() => resolveConfig({ corridors: [{ group: 'a', site: 's', members: ['x', 'y'], expansion: 0 }] })).toThrow(/expansion/);
  });

  it("writes matched devices times the pair's expansion factor (count and bounds), per direction", () => {
    const lines = (expansion?: CorridorConfig['expansion']) => {
      const flows = new CorridorFlows([{ ...CORRIDOR, ...(expansion === undefined ? {} : { expansion }) }], { maxAheadMs: 300_000, seed: 1 });
      flows.own('main-street', START);
      return feed(flows, run.messages).lines.map((l) => {
        const f = Object.fromEntries(
          l
            .split(' ')[1]
            .split(',')
            .map((kv) => kv.split('=')),
        );
        return { dir: l.split(' ')[0], count: Number(f.count), low: Number(f.count_low), high: Number(f.count_high), travel: f.travel_median_s };
      });
    };
    const plain = lines();
    const scaled = lines({ 'gw-a>gw-b': 1.5 });
    expect(scaled.length).toBe(plain.length);
    for (let i = 0; i < plain.length; i++) {
      const k = plain[i].dir.includes('from=gw-a') ? 1.5 : 1;
      expect(scaled[i].count).toBeCloseTo(plain[i].count * k, 1);
      if (plain[i].high > 0) expect(scaled[i].high).toBeCloseTo(plain[i].high * k, 1);
      expect(scaled[i].travel).toBe(plain[i].travel); // travel times are not scaled
    }
  });
});
