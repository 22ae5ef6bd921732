// The wall clock of a live gateway can be set back (NTP stepping a board without a real-time clock,
// an operator fixing the time). Each window's key may live for the window's span only: before the
// fix, a gateway whose clock went back an hour kept its open window, its key and every hash of it,
// for that hour. A real gateway (in this process, so that its wall clock can be moved by Date.now)
// against a real Mosquitto, with the firmware's beginWindow watched.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateStatus, type CountsMessage } from '../contract/index.ts';
import { Firmware } from '../firmware/host/firmware.ts';
import { Gateway } from '../gateway/gateway.ts';
import { config, subscriber } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const SUITE = 'gateway wall clock';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);
const HOUR = 3_600_000;

/** Waits on the monotonic clock (Date.now is moved by the test). */
async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Date.now moved by `clock.offset` ms (the mock is restored after each test). */
function movableClock(): { realNow: () => number; offset: number } {
  const realNow = Date.now.bind(Date);
  const clock = { realNow, offset: 0 };
  vi.spyOn(Date, 'now').mockImplementation(() => realNow() + clock.offset);
  return clock;
}

/** A logger at info whose lines land in `lines` as objects. */
function capturedLog(lines: Record<string, unknown>[]) {
  return pino(
    { level: 'info', base: null },
    new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    }),
  );
}

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-wall-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** A started gateway on the wall clock (one quiet capture command) and the windows it closes. */
  async function wallGateway(id: string, window: string, opts: { log: Logger; firmware?: Firmware }) {
    const gw = new Gateway({
      config: config({ site: 'wall', zone: 'z', id, mqttUrl: broker.url, source: ['wifi=cmd:exec sleep 600'], window, queueDir: join(tmp, `q-${id}`) }),
      ...opts,
      processMetrics: false,
    });
    const closed: CountsMessage[] = [];
    gw.on('window', (m) => closed.push(m));
    await gw.start();
    return { gw, closed };
  }

  it('the wall clock set back an hour: the open window ends after its span all the same, the next one under a new key, and the log says so', async () => {
    const clock = movableClock();
    const fw = await Firmware.load();
    const begun: number[] = [];
    const begin = fw.beginWindow.bind(fw);
    fw.beginWindow = (o) => {
      begun.push(performance.now());
      begin(o);
    };
    const lines: Record<string, unknown>[] = [];
    const { gw, closed } = await wallGateway('g', '1s', { log: capturedLog(lines), firmware: fw });
    try {
      await until(() => closed.length >= 2, 'two windows on the right clock');

      // Back by an hour: the open window must still end after its second, not an hour later.
      clock.offset = -HOUR;
      const before = { closed: closed.length, begun: begun.length, at: performance.now() };
      await until(() => closed.length >= before.closed + 3, 'three windows after the clock went back');
      const cut = closed[before.closed]!;
      expect(cut.complete).toBe(false);
      expect(Date.parse(cut.end) - Date.parse(cut.start)).toBeLessThanOrEqual(1000);
      const warned = lines.filter((l) => l.msg === 'the wall clock went back; the window ends now and the next one starts at the new time');
      expect(warned).toHaveLength(1);
      expect(warned[0]!.back_ms).toBeGreaterThan(HOUR - 2000);
      // the windows after it are on the new clock, each opened by the firmware with a fresh key
      const after = closed.slice(before.closed + 1);
      for (const w of after) expect(Date.parse(w.start)).toBeLessThan(clock.realNow() - HOUR + 5000);
      expect(begun.length).toBeGreaterThanOrEqual(before.begun + 3);

      // Forward by the hour again: the window closes and the next one opens at the new time.
      clock.offset = 0;
      const fwd = closed.length;
      await until(() => closed.length >= fwd + 2, 'two windows after the clock went forward');
      expect(lines.some((l) => l.msg === 'clock jumped or the process stalled; the next window starts now')).toBe(true);
      expect(Date.parse(closed.at(-1)!.start)).toBeGreaterThan(clock.realNow() - 5000);
    } finally {
      await gw.stop();
    }
  });

  it('a wall clock not set yet (1970, a board without a real-time clock before NTP): no window is stamped or queued, one line says why; the status goes without ts; counting starts once it is set', async () => {
    const clock = movableClock();
    clock.offset = Date.UTC(1970, 0, 8) - clock.realNow();
    const sub = await subscriber(broker.url, { filter: 'presence/v1/wall/unset/#' });
    const lines: Record<string, unknown>[] = [];
    const { gw, closed } = await wallGateway('unset', '1s', { log: capturedLog(lines) });
    try {
      // Three and a half 1-s windows at least (a loaded machine may take longer to close the first):
      // none stamped, one line.
      await new Promise((r) => setTimeout(r, 3500));
      const warnings = () => lines.filter((l) => String(l.msg).startsWith('the wall clock reads 1970-01-08T'));
      await until(() => warnings().length > 0, 'the line saying the clock is not set');
      expect(closed).toEqual([]);
      const warned = warnings();
      expect(warned).toHaveLength(1);
      expect(warned[0]!.level).toBe(40);
      expect(String(warned[0]!.msg)).toContain('outside 2000-2099: it is not set');
      expect(String(warned[0]!.msg)).toContain('timedatectl show -p NTPSynchronized');
      expect(lines.filter((l) => String(l.msg).includes('does not match the contract'))).toEqual([]);
      const published = () => sub.messages.map((m) => ({ topic: m.topic, body: JSON.parse(m.payload.toString()) }));
      expect(published().filter((m) => m.topic.endsWith('/counts'))).toEqual([]);
      await until(() => published().some((m) => m.topic.endsWith('/status') && m.body.state === 'online'), 'an online status');
      const online = published().filter((m) => m.topic.endsWith('/status') && m.body.state === 'online');
      for (const st of online) {
        expect(validateStatus(st.body).ok).toBe(true);
        expect(st.body.ts).toBeUndefined();
      }

      // NTP sets the clock: windows from then on, stamped now, seq from 1
      clock.offset = 0;
      await until(() => published().filter((m) => m.topic.endsWith('/counts')).length >= 2, 'windows once the clock is set');
      const c = published().filter((m) => m.topic.endsWith('/counts'))[0]!.body as CountsMessage;
      expect(c.seq).toBe(1);
      expect(Date.parse(c.start)).toBeGreaterThan(clock.realNow() - 10_000);
      expect(
        published()
          .filter((m) => m.topic.endsWith('/status'))
          .at(-1)!.body.ts,
      ).toBeDefined();
    } finally {
      await gw.stop();
      await sub.client.endAsync();
    }
  });

  it('a step back smaller than a second only lengthens the open window by the step: no window is cut for it', async () => {
    const clock = movableClock();
    const lines: Record<string, unknown>[] = [];
    const { gw, closed } = await wallGateway('g2', '1s', { log: capturedLog(lines) });
    try {
      await until(() => closed.length >= 2, 'two windows');
      clock.offset = -300;
      const n = closed.length;
      await until(() => closed.length >= n + 3, 'three windows after a step back of 300 ms');
      expect(lines.some((l) => String(l.msg).includes('the wall clock went back'))).toBe(false);
      // every window after the step follows the one before it (a machine that stalls the process
      // for half a window or more starts the next one later: "clock jumped or the process stalled")
      const stalled = lines.some((l) => String(l.msg).includes('clock jumped or the process stalled'));
      for (let i = n + 1; i < closed.length && !stalled; i++) expect(closed[i]!.start).toBe(closed[i - 1]!.end);
    } finally {
      await gw.stop();
    }
  });
  it('stopped right after the wall clock was set back: the open window is still published, with the time it counted', async () => {
    const clock = movableClock();
    const { gw, closed } = await wallGateway('g3', '10s', { log: pino({ level: 'silent' }) });
    await new Promise((r) => setTimeout(r, 300)); // the open window counts a while
    const before = closed.length; // 0, or 1 when a 10-s boundary fell in these 300 ms
    clock.offset = -HOUR;
    await gw.stop();
    // before the fix, the window was closed at the new time, before its start: an empty interval, never published
    expect(closed).toHaveLength(before + 1);
    const last = closed.at(-1)!;
    expect(last.complete).toBe(false);
    expect(Date.parse(last.end)).toBeGreaterThan(Date.parse(last.start));
    expect(Date.parse(last.start)).toBeGreaterThan(clock.realNow() - 60_000);
  });
});
