// Members of a corridor group whose clocks disagree by less than max_ahead: nothing refused or logged
// them, while their flows and travel times were shifted by the offset. With a real Mosquitto and a
// real aggregator (in process, owning four groups), statuses stamped with chosen ts: a member 60 s
// ahead of two others is named in a warn line, on /healthz and in /metrics; a pair 45 s apart is
// named as a pair; members that agree within a few seconds are not, nor a member whose first
// statuses came a minute late (a backlog) before live ones. Once fixed, the line "agree again" and
// /healthz ok. The aggregator's clock (Date.now) is moved forward between rounds of statuses, so
// the minutes pass in seconds.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { CorridorClocks, type ClockMismatch } from '../aggregator/flows/clock-offset.ts';
import { encode, statusTopic } from '../contract/index.ts';
import { publisher, status, until } from './aggregator-helpers.ts';

const ok = need('mosquitto', 'mosquitto', 'corridor-clock-offset');
const SITE = 'corridor';
const GROUPS = [
  { group: 'main-street', site: SITE, members: ['gw-a', 'gw-b', 'gw-c'], horizon: '3m' },
  { group: 'river', site: SITE, members: ['gw-d', 'gw-e'], horizon: '3m' },
  { group: 'calm', site: SITE, members: ['gw-f', 'gw-g'], horizon: '3m' },
  { group: 'backlog', site: SITE, members: ['gw-h', 'gw-i'], horizon: '3m' },
];

interface Line {
  msg: string;
  level: number;
  group?: string;
  gateways?: string[];
  majority?: string[];
  offsets_s?: Record<string, number>;
  spread_s?: number;
}

describe.skipIf(!ok)('corridor groups: members whose clocks disagree', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-clockoff-'));
  let pub: MqttClient;
  let agg: Aggregator;
  const lines: Line[] = [];
  const clock = { offset: 0 };

  beforeAll(async () => {
    await broker.start();
    pub = await publisher(broker.url);
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + clock.offset);
    agg = new Aggregator(
      {
        mqtt: { url: broker.url, clientId: 'agg-clockoff' },
        out: join(dir, 'out.lp'),
        batch: { flushInterval: '50ms' },
        http: { port: 0, host: '127.0.0.1', page: false },
        corridors: GROUPS,
      },
      {
        logger: pino(
          { level: 'info' },
          new Writable({
            write(c, _e, cb) {
              lines.push(JSON.parse(String(c)));
              cb();
            },
          }),
        ),
      },
    );
    await agg.start();
    await until(
      'the groups owned',
      () => GROUPS.every((g) => agg.flows!.owns(g.group)),
      (v) => v,
    );
  });

  afterAll(async () => {
    vi.restoreAllMocks();
    await agg?.stop(2000).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const clockLines = (group: string) => lines.filter((l) => l.group === group && /clocks? of/.test(l.msg) && l.level === 40);
  const agreeLines = (group: string) => lines.filter((l) => l.group === group && l.msg.includes('agree again'));
  const health = async () => (await (await fetch(`http://127.0.0.1:${agg.httpPort}/healthz`)).json()) as { status: string; problems: string[] };
  const metric = async (name: string, group: string) => {
    const text = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
    const m = new RegExp(`^${name}\\{group="${group}"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };

  /** Each gateway's ts relative to the aggregator's clock now (ms; + ahead), one status each (several: a list). */
  async function round(ts: Record<string, number | number[]>): Promise<void> {
    const before = agg.stats().received;
    let n = 0;
    for (const [gw, rel] of Object.entries(ts))
      for (const r of Array.isArray(rel) ? rel : [rel]) {
        await pub.publishAsync(statusTopic(SITE, gw), encode(status(SITE, gw, new Date(Date.now() + r))), { qos: 1, retain: true });
        n++;
      }
    await until(
      'the statuses received',
      () => agg.stats().received,
      (c) => c >= before + n,
    );
  }

  it('names a member 60 s ahead and a pair 45 s apart, not members that agree nor a backlog; clears once fixed', async () => {
    // gw-c 60 s ahead of gw-a and gw-b; gw-e 45 s behind gw-d; gw-f and gw-g within 3 s (gw-g's
    // statuses a little late); gw-i's statuses of the first two minutes came 60-90 s late (a backlog
    // delivered), then live.
    const ts = (minute: number): Record<string, number | number[]> => ({
      'gw-a': 0,
      'gw-b': -1500,
      'gw-c': 60_000,
      'gw-d': 0,
      'gw-e': -45_000,
      'gw-f': 0,
      'gw-g': -3000,
      'gw-h': 0,
      'gw-i': minute < 2 ? [-90_000, -75_000, -60_000] : 0,
    });
    for (let minute = 0; minute < 3; minute++) {
      await round(ts(minute));
      clock.offset += 60_000;
    }
    // two minutes of statuses: not enough to judge yet
    for (const g of GROUPS) expect(clockLines(g.group), g.group).toEqual([]);
    expect((await health()).status).toBe('ok');
    await round(ts(3)); // three minutes
    await round(ts(3)); // nothing more told by another status

    const main = clockLines('main-street');
    expect(main).toHaveLength(1);
    expect(main[0].gateways).toEqual(['gw-c']);
    expect(main[0].majority).toEqual(['gw-a', 'gw-b']);
    expect(main[0].offsets_s!['gw-c']).toBeGreaterThanOrEqual(59);
    expect(main[0].offsets_s!['gw-c']).toBeLessThanOrEqual(61);
    expect(main[0].msg).toMatch(
      /^corridor group "main-street": the clock of gw-c \(about (59|60|61) s ahead\) differs from that of gw-a, gw-b .*travel times .*presence doctor on each \("clock synchronised"\).*timedatectl/,
    );
    const river = clockLines('river');
    expect(river).toHaveLength(1);
    expect(river[0].gateways).toEqual(['gw-e', 'gw-d']);
    expect(river[0].majority).toBeUndefined();
    expect(river[0].spread_s).toBeGreaterThanOrEqual(44);
    expect(river[0].spread_s).toBeLessThanOrEqual(46);
    expect(river[0].msg).toMatch(
      /^corridor group "river": the clocks of gw-e, gw-d differ by up to about 4\d s \(gw-d about 4\d s ahead of gw-e; .*which one is off cannot be told: .*presence doctor/,
    );
    expect(clockLines('calm')).toEqual([]);
    expect(clockLines('backlog')).toEqual([]);

    const h = await health();
    expect(h.status).toBe('degraded');
    expect(h.problems).toHaveLength(2);
    expect(h.problems[0]).toMatch(/^corridor group "main-street": the clock of gw-c/);
    expect(h.problems[1]).toMatch(/^corridor group "river": the clocks of gw-e, gw-d/);
    expect(await metric('presence_aggregator_corridor_clock_mismatch', 'main-street')).toBe(1);
    expect(await metric('presence_aggregator_corridor_clock_mismatch', 'river')).toBe(2);
    expect(await metric('presence_aggregator_corridor_clock_mismatch', 'calm')).toBe(0);
    expect(await metric('presence_aggregator_corridor_clock_mismatch', 'backlog')).toBe(0);
    const spread = await metric('presence_aggregator_corridor_clock_spread_seconds', 'calm');
    expect(spread).toBeGreaterThanOrEqual(2);
    expect(spread).toBeLessThanOrEqual(4);
    expect(await metric('presence_aggregator_corridor_clock_spread_seconds', 'backlog')).toBeLessThanOrEqual(1);

    // gw-e fixed (its clock was behind: its statuses are no longer late, the next one tells)
    clock.offset += 60_000;
    await round({ ...ts(4), 'gw-e': 0 });
    expect(agreeLines('river')).toHaveLength(1);
    expect(agreeLines('main-street')).toEqual([]);
    expect(await metric('presence_aggregator_corridor_clock_mismatch', 'river')).toBe(0);
    expect((await health()).problems).toHaveLength(1);

    // gw-c fixed (it was ahead: its earlier statuses keep the smallest lag until they leave the last 10 minutes)
    for (let minute = 5; minute < 18 && !agreeLines('main-street').length; minute++) {
      clock.offset += 60_000;
      await round({ ...ts(minute), 'gw-c': 0, 'gw-e': 0 });
    }
    expect(agreeLines('main-street')).toHaveLength(1);
    expect(clockLines('main-street')).toHaveLength(1);
    expect(await health()).toMatchObject({ status: 'ok', problems: [] });
    expect(await metric('presence_aggregator_corridor_clock_mismatch', 'main-street')).toBe(0);
    for (const g of ['calm', 'backlog']) expect(clockLines(g), g).toEqual([]);

    // gw-c 60 s ahead again: told at its next status (the others' estimates stand)
    clock.offset += 60_000;
    await round({ 'gw-a': 0, 'gw-b': 0, 'gw-c': 60_000 });
    expect(clockLines('main-street')).toHaveLength(2);
    expect((await health()).status).toBe('degraded');
    // then every member silent: 5 minutes on, the aggregator's timer (its check, called here with
    // the clock moved on) still tells; once the statuses of the last 10 minutes no longer span 3 minutes,
    // it finds fewer than two members judged: told no longer
    clock.offset += 5 * 60_000;
    agg.checkCorridorIdle(Date.now());
    expect(agreeLines('main-street')).toHaveLength(1);
    expect((await health()).status).toBe('degraded');
    clock.offset += 3 * 60_000;
    agg.checkCorridorIdle(Date.now());
    expect(agreeLines('main-street')).toHaveLength(2);
    expect(await health()).toMatchObject({ status: 'ok', problems: [] });
    expect(await metric('presence_aggregator_corridor_clock_spread_seconds', 'main-street')).toBeNull();
  });
});

describe('corridor clocks: who is named, a standby, a clock set back (CorridorClocks alone)', () => {
  const G = { group: 'g', site: 's', members: ['a', 'b', 'c'], horizon: 180_000 };
  const T0 = Date.parse('2026-03-10T07:00:00Z');
  /** Statuses of every member once a minute for `minutes` from `from`, each `offsets[m]` ms ahead, received 200 ms after it is sent. */
  const rounds = (clocks: CorridorClocks, from: number, minutes: number, offsets: Record<string, number>) => {
    for (let i = 0; i < minutes; i++)
      for (const [m, off] of Object.entries(offsets)) {
        const sent = from + i * 60_000 + 1000 * Object.keys(offsets).indexOf(m);
        clocks.status('s', m, sent + off, sent + 200);
      }
  };

  it('the same clocks name the same members at every status (12 s off joined the majority when raised, left it after)', () => {
    const told: Array<ClockMismatch | null> = [];
    const clocks = new CorridorClocks(
      [G],
      () => true,
      (_g, m) => told.push(m),
    );
    rounds(clocks, T0, 8, { a: 0, b: 12_000, c: 40_000 });
    expect(told.length).toBe(1);
    expect(told[0]).toMatchObject({ majority: ['a', 'b'], gateways: [{ gateway: 'c' }] });
  });

  it('a standby keeps 10 minutes of statuses per member, not every minute since it started', () => {
    const clocks = new CorridorClocks(
      [G],
      () => false,
      () => {},
    );
    rounds(clocks, T0, 600, { a: 0, b: 0 });
    const kept = (clocks as unknown as { members: Map<string, unknown[]> }).members;
    expect(kept.get('s/a')!.length).toBeLessThanOrEqual(11);
  });

  it("this aggregator's clock set back 30 s: no member is taken for 30 s ahead of the others", () => {
    const told: Array<ClockMismatch | null> = [];
    // the monotonic clock runs on where the wall clock (the receipt times) is set back
    let mono = 0;
    const clocks = new CorridorClocks(
      [G],
      () => true,
      (_g, m) => told.push(m),
      () => mono,
    );
    const at = (from: number, minutes: number, skew: number) => {
      for (let i = 0; i < minutes; i++)
        for (const [k, m] of ['a', 'b', 'c'].entries()) {
          const sent = from + i * 60_000 + 1000 * k;
          mono = sent + 200 - T0;
          clocks.status('s', m, sent, sent + 200 + skew);
        }
    };
    at(T0, 5, 0);
    // set back 30 s between a's and b's status: b and c (and a from the next minute) send by it
    for (const [k, m] of ['a', 'b', 'c'].entries()) {
      const sent = T0 + 5 * 60_000 + 1000 * k;
      mono = sent + 200 - T0;
      const skew = k === 0 ? 0 : -30_000;
      clocks.status('s', m, sent, sent + 200 + skew);
    }
    at(T0 + 6 * 60_000, 6, -30_000);
    expect(told).toEqual([]);
  });
});
