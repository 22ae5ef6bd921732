// The gateway's in-memory queue of corridor sketches (gateway/corridor.ts SketchQueue): bounded,
// oldest dropped when full, a sketch held longer than an epoch dropped as expired, in-flight ones
// neither dropped nor handed out twice, every drop reported with its reason.
import { describe, expect, it } from 'vitest';
import { SketchQueue, sketchMessage, type SketchDrop } from '../gateway/corridor.ts';
import { validateSketch } from '../contract/index.ts';

const HOUR = 3_600_000;
function message(i: number) {
  const start = 493_210 * HOUR + i * 60_000;
  return sketchMessage(
    { site: 's', zone: 'z', gateway: 'g' },
    { start, end: start + 60_000 },
    { group: 'main-street', epoch: 493_210, epochMs: HOUR, m: 1024, p: 0.5, bits: new Uint8Array(128).fill(i), keyCheck: '0123456789abcdef' },
  );
}

describe('sketch queue', () => {
  it('makes contract messages: the window of the counts, epoch in seconds, bits in base64', () => {
    const m = message(3);
    expect(validateSketch(m).ok).toBe(true);
    expect(m).toMatchObject({ window_start: '2026-04-07T10:03:00.000Z', epoch_s: 3600, m: 1024, p: 0.5 });
    expect(Buffer.from(m.bits, 'base64')).toEqual(Buffer.alloc(128, 3));
  });

  it('drops the oldest when full and those held longer than an epoch, never one in flight; reports each drop', () => {
    const drops: SketchDrop[] = [];
    const q = new SketchQueue(3, HOUR, (r) => drops.push(r));
    const t = 1_000_000;
    q.push(message(0), t);
    q.push(message(1), t);
    const first = q.take(t); // 0 and 1 in flight
    expect(first.map((x) => x.message.window_start)).toEqual([message(0).window_start, message(1).window_start]);
    q.push(message(2), t + 1);
    q.push(message(3), t + 2); // full: the oldest not in flight (2) goes
    expect(drops).toEqual(['full']);
    expect(q.depth).toBe(3);
    // acknowledged, not sent, refused
    first[0]!.settle(true);
    first[1]!.settle(false);
    expect(q.depth).toBe(2);
    const again = q.take(t + 3);
    expect(again.map((x) => x.message.window_start)).toEqual([message(1).window_start, message(3).window_start]);
    expect(q.take(t + 3)).toEqual([]); // nothing handed out twice
    again[0]!.settle('refused');
    again[1]!.settle(false);
    expect(drops).toEqual(['full', 'refused']);
    // held longer than an epoch: expired
    q.push(message(4), t + HOUR);
    q.expire(t + HOUR + 10);
    expect(drops).toEqual(['full', 'refused', 'expired']);
    expect(q.take(t + HOUR + 10).map((x) => x.message.window_start)).toEqual([message(4).window_start]);
    q.clear();
    expect(q.depth).toBe(0);
  });
});
