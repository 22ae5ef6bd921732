// A live capture (a capture command's stdout, standard input) is read a tick's worth at a time
// (gateway/sources.ts tickedChunks): what arrives while the reader waits for its tick comes out as
// one chunk, every byte in order, nothing dropped; a full buffer is read on without waiting; the
// stream's end, error or destruction end the reading as a for-await over the stream would. The
// tick's timer is faked: nothing here waits on the wall clock.
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LINKTYPE } from '../firmware/host/types.ts';
import type { RecordBatch } from '../firmware/host/batch.ts';
import { StdinSource, tickedChunks, type FrameSink } from '../gateway/sources.ts';
import { probeRequest } from '../simulator/frames.ts';
import { pcapngHeader, pcapngPacket } from '../simulator/pcap-writer.ts';

const turn = () => new Promise((r) => setImmediate(r));

afterEach(() => {
  vi.useRealTimers();
});

describe('tickedChunks', () => {
  it('hands on what arrived during a tick as one chunk, in order, and ends with the stream', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = new PassThrough();
    const it = tickedChunks(s, 10)[Symbol.asyncIterator]();
    s.write(Buffer.from([1]));
    expect(Buffer.from((await it.next()).value!)).toEqual(Buffer.from([1]));
    const next = it.next(); // waits for the tick
    for (let k = 2; k <= 6; k++) {
      s.write(Buffer.from([k]));
      await turn();
    }
    let got = false;
    void next.then(() => (got = true));
    await turn();
    expect(got).toBe(false); // the five writes were not handed on one by one
    await vi.advanceTimersByTimeAsync(10);
    expect(Buffer.from((await next).value!)).toEqual(Buffer.from([2, 3, 4, 5, 6]));
    s.end(Buffer.from([7]));
    const last = it.next();
    await vi.advanceTimersByTimeAsync(10);
    expect(Buffer.from((await last).value!)).toEqual(Buffer.from([7]));
    const done = it.next();
    await vi.advanceTimersByTimeAsync(10);
    expect((await done).done).toBe(true);
  });

  it('reads on without waiting for the tick while the stream buffer is full', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = new PassThrough({ highWaterMark: 4 });
    const it = tickedChunks(s, 60_000)[Symbol.asyncIterator]();
    s.write(Buffer.alloc(8, 1));
    expect((await it.next()).value!.length).toBe(8);
    s.write(Buffer.alloc(3, 2));
    const next = await it.next(); // no timer advanced: the last read found the buffer full
    expect(Buffer.from(next.value!)).toEqual(Buffer.alloc(3, 2));
  });

  it("throws the stream's error, and a premature close when it is destroyed before its end", async () => {
    const failing = new PassThrough();
    const a = tickedChunks(failing, 1)[Symbol.asyncIterator]();
    const pa = a.next();
    failing.destroy(Object.assign(new Error('read EIO'), { code: 'EIO' }));
    await expect(pa).rejects.toThrow('read EIO');

    const cut = new PassThrough();
    const b = tickedChunks(cut, 1)[Symbol.asyncIterator]();
    const pb = b.next();
    cut.destroy();
    await expect(pb).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });
});

describe('StdinSource reads a tick at a time and loses no frame', () => {
  it('delivers every frame of a capture written packet by packet, each with its own write', async () => {
    const n = 500;
    const input = new PassThrough();
    const src = new StdinSource({ name: 'stdin' }, pino({ level: 'silent' }), input);
    const batches: RecordBatch[] = [];
    const sink: FrameSink = { deliver: (_s, b) => void batches.push(b), stateChanged: () => {} };
    src.start(sink);
    input.write(pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }]));
    const sa = Uint8Array.from([0x02, 0, 0, 0, 0, 0]);
    for (let i = 0; i < n; i++) {
      sa[5] = i & 0xff;
      sa[4] = i >> 8;
      input.write(
        pcapngPacket(0, Date.parse('2026-08-01T12:00:00Z') + i, probeRequest({ sa, seq: i, ies: new Uint8Array(0), channel: 1, signalDbm: -50, tsfUs: i })),
      );
      if (i % 50 === 0) await turn();
    }
    input.end();
    await src.finished;
    expect(src.state).toBe('finished');
    expect(src.frames).toBe(n);
    expect(batches.reduce((k, b) => k + b.count, 0)).toBe(n);
    expect(batches.length).toBeLessThan(n); // coalesced, not one batch per write
  });
});
