// A live capture (a capture command's stdout, standard input) is read a tick's worth at a time
// (gateway/sources.ts tickedChunks): what arrives while the reader waits for its tick comes out as
// one chunk, every byte in order, nothing dropped; a full buffer is read on without waiting; the
// stream's end, error or destruction end the reading as a for-await over the stream would. The
// tick's timer is faked: nothing here waits on the wall clock.
import { closeSync, constants as fsConstants, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { LINKTYPE } from '../firmware/host/types.ts';
import type { RecordBatch } from '../firmware/host/batch.ts';
import {
  CommandSource,
  capturePipe,
  enlargePipe,
  findExecutable,
  measurePipe,
  PIPE_BYTES,
  PIPE_DEFAULT_BYTES,
  READ_TICK_MAX_MS,
  READ_TICK_MIN_MS,
  readTick,
  StdinSource,
  tickedChunks,
  tickedPipe,
  type FrameSink,
} from '../gateway/sources.ts';
import { probeRequest } from '../simulator/frames.ts';
import { noPerlPath } from './support/no-perl.ts';
import { shrinkPipe } from './support/shrink-pipe.ts';
import { pcapHeader, pcapngHeader, pcapngPacket, pcapRecord } from '../simulator/pcap-writer.ts';
import { Firmware } from '../firmware/host/firmware.ts';

const turn = () => new Promise((r) => setImmediate(r));

/** Probe request number `i` as a pcapng packet: an address and a time (1 ms apart) of its own. */
function numberedProbe(i: number): Buffer {
  const sa = Uint8Array.from([0x02, 0, 0, 0, i >> 8, i & 0xff]);
  return pcapngPacket(0, Date.parse('2026-08-01T12:00:00Z') + i, probeRequest({ sa, seq: i, ies: new Uint8Array(0), channel: 1, signalDbm: -50, tsfUs: i }));
}

/** Writes `chunk` again and again into a FIFO (through a second, non-blocking opening of it) until a write would wait: the bytes it took. */
function fillPipe(writeFd: number, chunk: Buffer): number {
  const w = openSync(`/proc/self/fd/${writeFd}`, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  let held = 0;
  try {
    for (;;) held += writeSync(w, chunk);
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('EAGAIN');
  } finally {
    closeSync(w);
  }
  return held;
}

afterEach(() => {
  vi.useRealTimers();
});
const dir = mkdtempSync(join(tmpdir(), 'source-ticked-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
    for (let i = 0; i < n; i++) {
      input.write(numberedProbe(i));
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

describe('a live source delivers a pcap record whose last bytes could begin a file magic without waiting for more bytes', () => {
  // The reader once held such a record (about 2 % of records) until 3 more bytes came, in case a
  // restarted capture's file header began in it: at a quiet place the last frame before a pause
  // missed its window. Here nothing more is written until the frame is delivered.
  for (const split of [false, true])
    for (const tail of [[0xd4, 0xc3, 0xb2], [0x0a, 0x0d, 0x0d], [0xa1, 0xb2], [0x34]])
      it(`tail ${tail.map((b) => b.toString(16).padStart(2, '0')).join(' ')}${split ? ', the firmware splitting the records' : ''}`, async () => {
        const input = new PassThrough();
        const src = new StdinSource({ name: 'stdin' }, pino({ level: 'silent' }), input);
        if (split) src.splitter = (await Firmware.load()).splitter;
        const times: number[] = [];
        src.start({ deliver: (_s, b) => void times.push(...b.times), stateChanged: () => {} });
        const t0 = Date.parse('2026-08-01T12:00:00Z');
        const probe = probeRequest({ sa: Uint8Array.from([2, 0, 0, 0, 0, 1]), seq: 1, ies: new Uint8Array(0), channel: 1, signalDbm: -50, tsfUs: 1 });
        input.write(
          Buffer.concat([pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP), pcapRecord(t0, probe), pcapRecord(t0 + 1, Buffer.concat([probe, Buffer.from(tail)]))]),
        );
        await vi.waitFor(() => expect(times).toEqual([t0, t0 + 1]), { timeout: 10_000, interval: 20 }); // the input stays open
        expect(src.frames).toBe(2);
        input.end();
        await src.finished;
        expect(src.state).toBe('finished');
      });
});

describe('StdinSource: standard input that is a pipe is read as a FIFO (tcpdump -U -w - | presence gateway --source stdin)', () => {
  it('enlarges the pipe, reads it on the tick, and delivers every frame of a capture written to it packet by packet', async () => {
    const n = 500;
    const fifo = capturePipe()!;
    // The source runs in a process of its own whose standard input is the FIFO's read end (the
    // compiled sources, as `presence` runs them: npm test builds dist/ first).
    const sources = pathToFileURL(join(import.meta.dirname, '..', 'dist', 'gateway', 'sources.js')).href;
    const script = `
      import { StdinSource } from ${JSON.stringify(sources)};
      const quiet = { info() {}, warn() {}, error() {}, debug() {} };
      const src = new StdinSource({ name: 'stdin' }, quiet);
      let batches = 0;
      src.start({ deliver: () => void batches++, stateChanged: () => {} });
      await src.finished;
      process.stdout.write(JSON.stringify({ state: src.state, frames: src.frames, batches, pipeBytes: src.pipeBytes }));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: [fifo.read, 'pipe', 'inherit'] });
    closeSync(fifo.read);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    writeSync(fifo.write, pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }]));
    const sa = Uint8Array.from([0x02, 0, 0, 0, 0, 0]);
    for (let i = 0; i < n; i++) {
      sa[5] = i & 0xff;
      sa[4] = i >> 8;
      const packet = pcapngPacket(
        0,
        Date.parse('2026-08-01T12:00:00Z') + i,
        probeRequest({ sa, seq: i, ies: new Uint8Array(0), channel: 1, signalDbm: -50, tsfUs: i }),
      );
      writeSync(fifo.write, packet); // one write(2) each
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    closeSync(fifo.write);
    expect(await exited).toBe(0);
    const got = JSON.parse(out);
    expect(got).toMatchObject({ state: 'finished', frames: n });
    expect(got.batches).toBeLessThan(n); // coalesced, not one batch per write
    expect(got.pipeBytes).toBe(process.platform === 'linux' && findExecutable('perl') ? PIPE_BYTES : null);
  });

  it('without perl its size is not known: it is read whenever it holds something, never held back for a tick, as a pipe over the quota (8 KiB) must be', async () => {
    if (process.platform !== 'linux' || !findExecutable('perl')) return; // nothing can shrink a pipe for the test
    const fifo = capturePipe()!;
    // What a user over fs.pipe-user-pages-soft gets: a pipe of two pages.
    expect(shrinkPipe(fifo.write)).toBe(8192);
    // The source in a process of its own, its standard input the FIFO's read end, no perl on its PATH,
    // and no timer that ever fires: only reads made when the pipe holds something deliver. A read
    // left waiting for a tick never comes back, and the process ends with its top-level await
    // unsettled (exit code 13), the frames not all read.
    const sources = pathToFileURL(join(import.meta.dirname, '..', 'dist', 'gateway', 'sources.js')).href;
    const script = `
      globalThis.setTimeout = () => ({ ref() {}, unref() {}, hasRef: () => false });
      const { StdinSource } = await import(${JSON.stringify(sources)});
      const warnings = [];
      const log = { info() {}, warn: (o) => warnings.push(o), error() {}, debug() {} };
      const src = new StdinSource({ name: 'stdin' }, log);
      src.start({ deliver: () => {}, stateChanged: () => {} });
      await src.finished;
      process.stdout.write(JSON.stringify({ state: src.state, frames: src.frames, readsPipe: src.readsPipe, pipeBytes: src.pipeBytes, warnings }));
    `;
    const bin = noPerlPath(mkdtempSync(join(tmpdir(), 'stdin-no-perl-')));
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: [fifo.read, 'pipe', 'inherit'], env: { PATH: bin } });
    closeSync(fifo.read);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    // A writer with 25 pipes' worth of packets, one write(2) each: it waits whenever the pipe is full.
    const n = 2500; // 84 B each
    const packets: Buffer[] = [pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }])];
    for (let i = 0; i < n; i++) {
      packets.push(numberedProbe(i));
    }
    expect(packets.reduce((k, p) => k + p.length, 0)).toBeGreaterThan(25 * 8192);
    const capture = join(dir, 'stdin-no-perl.pcapng');
    writeFileSync(capture, Buffer.concat(packets));
    const lengths = JSON.stringify(packets.map((p) => p.length));
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('fs'); const b = fs.readFileSync(${JSON.stringify(capture)}); let o = 0; for (const k of ${lengths}) { fs.writeSync(1, b, o, k); o += k; }`,
      ],
      { stdio: ['ignore', fifo.write, 'ignore'] },
    );
    closeSync(fifo.write);
    const writerExited = new Promise<number | null>((r) => writer.once('exit', r));
    try {
      expect(await exited).toBe(0);
      expect(await writerExited).toBe(0);
      const got = JSON.parse(out);
      expect(got).toMatchObject({ state: 'finished', frames: n, readsPipe: true, pipeBytes: null });
      expect(got.warnings).toEqual([{ source: 'stdin', pipe_bytes: null, read: 'every_write' }]);
    } finally {
      writer.kill();
      child.kill();
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('readTick: the wait between two reads of a FIFO follows the data rate', () => {
  const target = (PIPE_DEFAULT_BYTES * 3) / 4;
  it('waits until the pipe should be three quarters full, within the shortest and longest tick', () => {
    // 840 KB/s (10,000 frames/s of 84-B records) into a 64 KiB pipe: 48 KiB in ~58 ms
    expect(readTick(null, 8400, 10, false).tickMs).toBeCloseTo(target / 840, 5);
    // twice the rate: half the tick; far above it: never below the shortest
    expect(readTick(null, 16800, 10, false).tickMs).toBeCloseTo(target / 1680, 5);
    expect(readTick(null, 60_000, 1, false).tickMs).toBe(READ_TICK_MIN_MS);
    // a trickle, or nothing: the longest tick (a frame waits no longer than that)
    expect(readTick(null, 84, 100, false).tickMs).toBe(READ_TICK_MAX_MS);
    expect(readTick(null, 0, 100, false).tickMs).toBe(READ_TICK_MAX_MS);
    // a 1 MiB pipe at the same rate: the longest tick
    expect(readTick(null, 8400, 10, false, READ_TICK_MIN_MS, READ_TICK_MAX_MS, (PIPE_BYTES * 3) / 4).tickMs).toBe(READ_TICK_MAX_MS);
  });

  it('averages the rate with the last one, and after a read that found the pipe full waits at most half as long as before', () => {
    const slow = readTick(null, 840, 10, false); // 84 B/ms
    const mixed = readTick(slow, 8400, 10, false); // (84 + 840) / 2 B/ms
    expect(mixed.rate).toBeCloseTo(462, 5);
    expect(mixed.tickMs).toBeCloseTo(target / 462, 5);
    // the pipe was full: what came is no measure of the rate (it was more); the tick halves, down to the shortest
    let t = { tickMs: READ_TICK_MAX_MS, rate: 84 };
    const ticks: number[] = [];
    for (let k = 0; k < 6; k++) {
      t = readTick(t, 1, 1000, true);
      ticks.push(t.tickMs);
    }
    expect(ticks).toEqual([READ_TICK_MAX_MS / 2, READ_TICK_MAX_MS / 4, READ_TICK_MAX_MS / 8, READ_TICK_MAX_MS / 16, READ_TICK_MIN_MS, READ_TICK_MIN_MS]);
  });
});

describe('capturePipe: the FIFO a capture command writes into', () => {
  it('holds PIPE_BYTES where Linux and perl let it be enlarged, and says what it holds', () => {
    const fifo = capturePipe()!;
    expect(fifo).not.toBeNull();
    try {
      const held = fillPipe(fifo.write, Buffer.alloc(4096, 1));
      expect(held).toBe(fifo.bytes);
      if (process.platform === 'linux' && findExecutable('perl')) expect(fifo.bytes).toBe(PIPE_BYTES);
      else expect(fifo.bytes).toBe(PIPE_DEFAULT_BYTES);
    } finally {
      closeSync(fifo.read);
      closeSync(fifo.write);
    }
  });

  it('never shrinks a pipe: asked for less than it holds, it keeps what it holds', () => {
    const fifo = capturePipe()!;
    try {
      if (process.platform === 'linux' && findExecutable('perl')) {
        expect(enlargePipe(fifo.write, 16 * 1024)).toBe(fifo.bytes);
        expect(fifo.bytes).toBeGreaterThanOrEqual(PIPE_DEFAULT_BYTES);
      }
    } finally {
      closeSync(fifo.read);
      closeSync(fifo.write);
    }
  });

  it('without perl, measures what the FIFO holds (8 KiB over the pipe quota) and leaves it empty', () => {
    if (process.platform !== 'linux' || !findExecutable('perl')) return; // nothing can shrink a pipe for the test
    const fifo = capturePipe()!;
    try {
      // What a user over fs.pipe-user-pages-soft gets: a pipe of two pages.
      expect(shrinkPipe(fifo.write)).toBe(8192);
      expect(measurePipe(fifo.read, fifo.write)).toBe(8192);
      expect(() => readSync(fifo.read, Buffer.alloc(16))).toThrow(expect.objectContaining({ code: 'EAGAIN' })); // nothing left in it
    } finally {
      closeSync(fifo.read);
      closeSync(fifo.write);
    }
  });

  it('stays as Linux made it (64 KiB) and still works where no perl is found', async () => {
    const saved = process.env.PATH;
    const bin = mkdtempSync(join(tmpdir(), 'no-perl-'));
    try {
      expect(findExecutable('mkfifo')).not.toBeNull();
      process.env.PATH = noPerlPath(bin);
      const fifo = capturePipe()!;
      process.env.PATH = saved;
      expect(fifo.bytes).toBe(PIPE_DEFAULT_BYTES);
      writeSync(fifo.write, Buffer.from([1, 2, 3]));
      closeSync(fifo.write);
      const pipe = tickedPipe(fifo.read, 1, fifo.bytes);
      const got: number[] = [];
      for await (const c of pipe.chunks) got.push(...c);
      expect(got).toEqual([1, 2, 3]);
    } finally {
      process.env.PATH = saved;
      rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('tickedPipe: a capture command writes into a FIFO that is not watched between ticks', () => {
  it('writes made while the reader waits for its tick are read at once when it comes, all of them, in order', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const fifo = capturePipe();
    expect(fifo).not.toBeNull();
    const pipe = tickedPipe(fifo!.read, 10);
    const it = pipe.chunks[Symbol.asyncIterator]();
    writeSync(fifo!.write, Buffer.from([0]));
    expect(Buffer.from((await it.next()).value!)).toEqual(Buffer.from([0]));
    const next = it.next(); // paused until the tick
    const all: number[] = [];
    for (let k = 1; k <= 200; k++) {
      writeSync(fifo!.write, Buffer.from([k & 0xff, k >> 8])); // one write(2) each
      all.push(k & 0xff, k >> 8);
      if (k % 20 === 0) await turn();
    }
    expect(pipe.pending()).toBe(0); // nothing was read while paused
    await vi.advanceTimersByTimeAsync(10);
    expect(Buffer.from((await next).value!)).toEqual(Buffer.from(all));
    closeSync(fifo!.write);
    const done = it.next();
    await vi.advanceTimersByTimeAsync(10);
    expect((await done).done).toBe(true);
  });

  it('a pipe smaller than 64 KiB (over the pipe quota) is read whenever it holds something, never held back for a tick', async () => {
    if (process.platform !== 'linux' || !findExecutable('perl')) return; // nothing can shrink a pipe for the test
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }); // the tick never comes: only reads on events deliver
    const fifo = capturePipe()!;
    // What a user over fs.pipe-user-pages-soft gets: a pipe of two pages.
    expect(shrinkPipe(fifo.write)).toBe(8192);
    const pipe = tickedPipe(fifo.read, { minMs: READ_TICK_MIN_MS, maxMs: READ_TICK_MAX_MS }, 8192);
    // A writer with 25 pipes' worth of bytes, one write(2) of 300 B per packet: it waits whenever the pipe is full.
    const total = 25 * 8192;
    const writer = spawn(
      process.execPath,
      ['-e', `const b = Buffer.alloc(300, 7); let n = ${total}; while (n > 0) { const k = Math.min(300, n); require('fs').writeSync(1, b, 0, k); n -= k; }`],
      {
        stdio: ['ignore', fifo.write, 'inherit'],
      },
    );
    closeSync(fifo.write);
    let got = 0;
    for await (const c of pipe.chunks) got += c.length;
    expect(got).toBe(total);
    await new Promise((r) => writer.once('close', r));
  });

  it('a read that finds the enlarged pipe full of 300-B writes (95 % of its bytes: a writer waits) reads on at once, not a tick later', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }); // the tick never comes: only reading on delivers
    const fifo = capturePipe()!;
    // Fill it as tcpdump -U would, one write of a 300-B record at a time.
    const held = fillPipe(fifo.write, Buffer.alloc(300, 5));
    expect(held).toBe(Math.floor(4096 / 300) * 300 * (fifo.bytes / 4096)); // whole records only, page by page
    const pipe = tickedPipe(fifo.read, { minMs: READ_TICK_MIN_MS, maxMs: READ_TICK_MAX_MS }, fifo.bytes);
    const it = pipe.chunks[Symbol.asyncIterator]();
    expect((await it.next()).value!.length).toBe(held);
    writeSync(fifo.write, Buffer.from([9])); // what the waiting writer wrote as soon as there was room
    expect(Buffer.from((await it.next()).value!)).toEqual(Buffer.from([9]));
    closeSync(fifo.write);
    pipe.destroy();
    await it.next().catch(() => {});
  });

  it('a destroyed reader ends with a premature close, as a destroyed stream does', async () => {
    const fifo = capturePipe()!;
    const pipe = tickedPipe(fifo.read, 1);
    const p = pipe.chunks.next();
    pipe.destroy();
    await expect(p).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    closeSync(fifo.write);
  });

  it('CommandSource closes both ends of its FIFO when the command cannot even be spawned (the source fails, no descriptor is left open)', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const src = new CommandSource(
      // a NUL byte: spawn() throws at once, before any process exists
      { name: 'nul', radio: 'wifi', command: 'tcpdump -i wlan0mon\u0000 -U -w -', restart_min: '60s', restart_max: '60s' },
      pino({ level: 'silent' }),
    );
    const failed = new Promise<void>((resolve) => src.start({ deliver: () => {}, stateChanged: (s) => s.state === 'failed' && resolve() }));
    await failed;
    await src.stop();
    expect(fds()).toBe(before);
  });

  it('CommandSource delivers every frame of a capture written in real time, one write(2) per packet', async () => {
    const n = 400;
    const path = join(dir, 'paced.pcapng');
    const parts = [pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }])];
    for (let i = 0; i < n; i++) {
      parts.push(numberedProbe(i));
    }
    writeFileSync(path, Buffer.concat(parts));
    const writer = join(import.meta.dirname, '..', 'bench', 'live-capture-writer.mjs');
    const src = new CommandSource(
      { name: 'w', radio: 'wifi', command: [process.execPath, writer, path, 'packet'], restart_min: '60s', restart_max: '60s' },
      pino({ level: 'silent' }),
    );
    let batches = 0;
    const restarting = new Promise<void>((resolve) => {
      src.start({
        deliver: (_s, b) => void (batches += b.count > 0 ? 1 : 0),
        stateChanged: (s) => s.state === 'restarting' && resolve(),
      });
    });
    await restarting; // the writer exited after the whole capture
    await src.stop();
    expect(src.frames).toBe(n);
    expect(batches).toBeLessThan(n);
  });
});
