// The aggregator's log of a corridor group's key_check mismatch, with a real Mosquitto: a member
// whose key_check alternates from window to window (it switches between two secret files, or two
// gateways run under one id with different ones) changed the group's state with every sketch, and
// each change was a log line. Now a group has at most three lines per interval, the changes after
// them are logged at its end as the state then with their number, and the metric follows each.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Aggregator } from '../aggregator/aggregator.ts';
import { publisher, publishAll, until } from './aggregator-helpers.ts';
import { corridorRun, sketchItem } from './support/corridor.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const ok = need('mosquitto', 'mosquitto', 'corridor key_check log');
const START = Date.parse('2026-03-10T07:00:00Z');
const K = '0123456789abcdef';
const WRONG = 'fedcba9876543210';

describe.skipIf(!ok)("corridor key_check: a group's log lines come at most three times per interval, then once at its end", () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-keylog-'));
  beforeAll(async () => {
    await broker.start();
  }, 60_000);
  afterAll(async () => {
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a member that flips its key_check every window: three lines at once, one with the state and the number of changes at the interval's end", async () => {
    const logs: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s)) });
    const agg = new Aggregator(
      {
        mqtt: { url: broker.url, clientId: 'keylog-agg' },
        out: join(dir, 'flows.lp'),
        corridors: [{ group: 'main-street', site: 'corridor', members: ['gw-a', 'gw-b', 'gw-c'], horizon: '3m' }],
      },
      { logger, keyLogIntervalMs: 3000 },
    );
    const pub = await publisher(broker.url);
    try {
      await agg.start();
      await until(
        'the group owned',
        () => agg.flows!.owns('main-street'),
        (v) => v,
      );
      const run = corridorRun({ site: 'corridor', group: 'main-street', startMs: START, windows: 14 });
      const items = [];
      for (let w = 0; w < 14; w++) {
        const m = run.messages[2 * w]!;
        items.push(sketchItem({ ...m, gateway: 'gw-a', key_check: K }));
        items.push(sketchItem({ ...m, gateway: 'gw-b', key_check: K }));
        // gw-c: the wrong secret in even windows, the group's in odd ones (ending on the group's)
        items.push(sketchItem({ ...m, gateway: 'gw-c', key_check: w % 2 ? K : WRONG }));
      }
      const t0 = performance.now();
      const later = items.splice(30);
      await publishAll(pub, items, 1);
      const keyLines = () => logs.filter((l) => /key_check/.test(String(l.msg)));
      await until(
        'every sketch taken',
        () => agg.stats().received,
        (n) => n >= items.length,
      );
      const early = keyLines();
      // within the interval: the first three changes only (ten changes were ten lines)
      if (performance.now() - t0 < 3000) expect(early.length).toBe(3);
      expect(early.map((l) => [l.level, l.changes])).toEqual([
        [40, 1],
        [30, 1],
        [40, 1],
      ]);
      expect(early[0]).toMatchObject({ group: 'main-street', gateways: ['gw-c'] });
      // the metric follows each change: gw-c agrees now
      expect(agg.flows!.keyMismatches).toEqual([]);
      // at the interval's end, one line with the state then and how many changes it stands for
      const late = await until('the line of the changes since', keyLines, (l) => l.length >= 4, 10_000);
      expect(late.length).toBe(4);
      expect(late[3]).toMatchObject({ level: 30, group: 'main-street', changes: 7 });
      expect(String(late[3]!.msg)).toMatch(
        /the key_check of its gateways agree again \(7 changes since the last line: after 3 lines in 3 s, one line at the end of it;/,
      );
      // four more changes in the next interval: two logged at once (three lines in it with that one),
      // two not yet when the aggregator stops: logged at the stop as the state then (they were dropped)
      await publishAll(pub, later, 1);
      await until(
        'the later sketches taken',
        () => agg.stats().received,
        (n) => n >= items.length + later.length,
      );
      const beforeStop = keyLines().length;
      await agg.stop(5000);
      const atStop = keyLines();
      expect(beforeStop).toBe(6);
      expect(atStop.length).toBe(7);
      expect(atStop[6]).toMatchObject({ level: 30, group: 'main-street', changes: 2 });
    } finally {
      await pub.endAsync();
      await agg.stop(5000);
    }
  }, 60_000);
});
