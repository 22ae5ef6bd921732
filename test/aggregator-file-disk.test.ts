// The aggregator's line-protocol file (--out) on a disk that fills up, with a real Mosquitto. The
// file lives on a small tmpfs this test mounts (it runs as root; under CI=true a failed mount fails
// the suite instead of skipping it). A write the disk takes only in part must not leave a torn line
// in the file for the retry to append the whole batch after: the file would no longer load into
// InfluxDB (the torn line and the one it runs into are refused) and would hold lines twice. Once
// there is space again every message is in the file once, each line whole; the log line says the
// filesystem is full and what to do.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Aggregator } from '../aggregator/aggregator.ts';
import { countsLines } from '../aggregator/messages.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';
import { mountSmallFs } from './support/small-fs.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';

const SUITE = 'aggregator file on a full disk';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

const root = mkdtempSync(join(tmpdir(), 'presence-agg-disk-'));
const mnt = join(root, 'mnt');
mkdirSync(mnt);

const mounted = hasMosquitto && mountSmallFs(SUITE, mnt, 'size=256k,mode=0755');

describe.skipIf(!mounted)(SUITE, () => {
  const broker = new Mosquitto();
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    execFileSync('umount', ['-l', mnt]);
    rmSync(root, { recursive: true, force: true });
  });

  it('a write the full disk took in part is cut back: after space returns each line is whole and there once', async () => {
    // the disk full but for one page (tmpfs hands out whole pages)
    const filler = join(mnt, 'filler');
    const fd = openSync(filler, 'a');
    try {
      const chunk = Buffer.alloc(4096, 0x5a);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      }
      ftruncateSync(fd, fstatSync(fd).size - 4096);
    } finally {
      closeSync(fd);
    }

    const out = join(mnt, 'presence.lp');
    const log: Array<{ msg: string }> = [];
    const agg = new Aggregator(
      {
        mqtt: { url: broker.url, clientId: 'agg-file-disk' },
        out,
        http: { port: null },
        batch: { flushInterval: '100ms', maxRetryDelay: '300ms' },
      },
      {
        logger: pino(
          { level: 'warn' },
          new Writable({
            write(c, _e, cb) {
              log.push(JSON.parse(String(c)));
              cb();
            },
          }),
        ),
      },
    );
    await agg.start();
    const pub = await publisher(broker.url);
    try {
      // 2 x 20 windows, about 9 KB of lines: more than the page left
      const sent = windows('disk', 2, 20);
      await publishAll(pub, sent.map(countsItem));
      await until(
        'the write failed for the full disk',
        () => log.map((l) => l.msg),
        (m) => m.some((x) => x.includes('ENOSPC')),
      );
      const line = log.find((l) => l.msg.includes('ENOSPC'))!.msg;
      expect(line).toMatch(/fail: ENOSPC: no space left on device, write: its filesystem \(or the quota\) is full; free space there/);
      expect(line).not.toContain('ENOSPC: ENOSPC');
      // the setting the path came from: by default ./presence.lp, named only by its full path
      expect(line).toContain(`writes to file ${out} (out, --out) fail: ENOSPC`);
      // the part the disk took is cut back: nothing torn waits in the file
      await new Promise((r) => setTimeout(r, 500));
      const held = existsSync(out) ? readFileSync(out, 'utf8') : '';
      expect(held === '' || held.endsWith('\n')).toBe(true);

      unlinkSync(filler);
      await until(
        'all acknowledged',
        () => agg.stats(),
        (s) => s.queueDepth === 0 && s.received === sent.length,
        20_000,
      );
      await agg.drain();
      const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
      const expected = sent.flatMap((m) => countsLines(m, Date.parse(m.start), null));
      expect(lines).toHaveLength(expected.length);
      expect([...lines].sort()).toEqual([...expected].sort());
    } finally {
      await pub.endAsync();
      await agg.stop(2000);
    }
  }, 60_000);
});
