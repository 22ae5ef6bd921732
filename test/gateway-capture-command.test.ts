// Capture commands as a field gateway runs them, against a real Mosquitto: a command restarted after
// a failure is running again once it writes its capture file header (a quiet site's windows are
// whole zeros, not cut short until a frame comes), and a capture program that cannot be executed
// (exit code 126; dumpcap installed for the wireshark group only) gets a fix that says so, not
// setcap, which would not make it executable. A command that runs but writes nothing at all for
// 15 s has its windows cut short and its source's silent_s in the status (retained), published as
// it goes silent and again, without silent_s, when it writes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteFilter, statusTopic } from '../contract/index.ts';
import { LINKTYPE } from '../firmware/host/types.ts';
import { pcapHeader } from '../simulator/pcap-writer.ts';
import { counts, gatewayArgs, logLines, spawnGateway, statuses, subscriber, waitFor } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const SUITE = 'gateway capture commands';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-capcmd-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a capture command restarted after a failure is running again once it writes its file header, before any frame', async () => {
    // A monitor interface that is not there yet at the first run (exit 1), then a tool that captures
    // on a quiet site: its header, then no frame.
    const header = join(tmp, 'header.pcap');
    writeFileSync(header, pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP));
    const mark = join(tmp, 'failed-once');
    const tool = join(tmp, 'quiet-after-failure');
    writeFileSync(
      tool,
      `#!/bin/sh\nif [ ! -e '${mark}' ]; then touch '${mark}'; echo 'capture: the interface is down' >&2; exit 1; fi\ncat '${header}'\nexec sleep 600\n`,
      { mode: 0o755 },
    );
    const sub = await subscriber(broker.url, { filter: siteFilter('quiet') });
    const gw = spawnGateway([
      ...gatewayArgs({ site: 'quiet', mqttUrl: broker.url, source: `wifi=cmd:${tool}`, queueDir: join(tmp, 'q-quiet') }),
      '--window',
      '1s',
      '--status-interval',
      '1s',
    ]);
    try {
      await waitFor(() => logLines(gw.stderr(), 'capture command stopped; restarting').length >= 1, 20_000, 'the failed first run');
      const failedAt = sub.messages.length;
      await waitFor(
        () => statuses(sub.messages.slice(failedAt), 'quiet').some((s) => s.sources?.[0]?.state === 'running'),
        15_000,
        `a status saying the restarted command runs again (log: ${gw.stderr().slice(-800)})`,
      );
      const runningAt = sub.messages.length;
      await waitFor(() => counts(sub.messages.slice(runningAt), 'quiet').length >= 2, 15_000, 'two windows after it runs again');
      const after = counts(sub.messages.slice(runningAt), 'quiet');
      expect(after.some((c) => c.complete && c.wifi.frames === 0)).toBe(true); // zero is a count
      expect(logLines(gw.stderr(), 'capture command stopped; restarting')).toHaveLength(1);
    } finally {
      gw.proc.kill('SIGTERM');
      expect(await gw.exited, gw.stderr().slice(-1500)).toBe(0);
      await sub.client.endAsync();
    }
  });

  it('a capture program that cannot be executed gets a fix about execute permission, from a shell command and from a list', async () => {
    const tool = join(tmp, 'dumpcap');
    writeFileSync(tool, '#!/bin/sh\nexit 0\n', { mode: 0o644 }); // there, but executable by nobody
    const want = {
      code: expect.any(String),
      fix: expect.stringMatching(/^dumpcap cannot be run by the user the gateway runs as \(permission denied: not executable for that user\): /),
    };
    // A string runs via /bin/sh -c: it exits 126, "Permission denied".
    const shell = spawnGateway(
      gatewayArgs({ site: 'noexec', mqttUrl: broker.url, source: `ble=cmd:${tool} -q -i bluetooth0 -w -`, queueDir: join(tmp, 'q-noexec') }),
    );
    // A list runs the program directly: the gateway sees it is not executable before it starts it.
    const config = join(tmp, 'noexec.yaml');
    writeFileSync(config, `sources:\n  - { name: ble, type: command, command: ['${tool}', '-q', '-i', 'bluetooth0', '-w', '-'] }\n`);
    const list = spawnGateway([
      '--config',
      config,
      '--site',
      'noexec2',
      '--zone',
      'z',
      '--id',
      'g',
      '--mqtt-url',
      broker.url,
      '--queue-dir',
      join(tmp, 'q-noexec2'),
    ]);
    try {
      for (const gw of [shell, list])
        await waitFor(() => logLines(gw.stderr(), 'capture command stopped; restarting').length >= 1, 20_000, `a failed run (log: ${gw.stderr().slice(-800)})`);
      expect(logLines(shell.stderr(), 'capture command stopped; restarting')[0]).toMatchObject({ ...want, code: 'exited', exit_code: 126 });
      expect(logLines(list.stderr(), 'capture command stopped; restarting')[0]).toMatchObject({ ...want, code: 'cannot_start', errno: 'EACCES' });
    } finally {
      for (const gw of [shell, list]) {
        gw.proc.kill('SIGTERM');
        expect(await gw.exited, gw.stderr().slice(-1500)).toBe(0);
      }
    }
  });
  it('the windows of a capture command that has written nothing for 15 s, not even a file header, are cut short: it counts nothing', async () => {
    // A tool that hangs before it captures (or tcpdump without -U holding its output back).
    const sub = await subscriber(broker.url, { filter: siteFilter('hung') });
    const gw = spawnGateway([
      ...gatewayArgs({ site: 'hung', mqttUrl: broker.url, source: 'wifi=cmd:exec sleep 600', queueDir: join(tmp, 'q-hung') }),
      '--window',
      '1s',
    ]);
    try {
      const said = 'capture command has written nothing, not even a capture file header: it hangs or holds its output back';
      await waitFor(() => logLines(gw.stderr(), said).length === 1, 25_000, 'the line saying the command writes nothing');
      const mutedAt = sub.messages.length;
      await waitFor(() => counts(sub.messages.slice(mutedAt), 'hung').length >= 3, 15_000, 'three windows after it');
      const after = counts(sub.messages.slice(mutedAt), 'hung');
      // (the first may have been queued as the line was written)
      expect(after.slice(1).map((c) => c.complete)).toEqual(after.slice(1).map(() => false));
      // The retained status, what the aggregator and a subscriber that comes later read, says so:
      // the source runs, but has written nothing for silent_s seconds (15 s and more).
      const later = await subscriber(broker.url, { filter: statusTopic('hung', 'g') });
      try {
        await waitFor(() => later.messages.some((m) => m.retain), 10_000, 'the retained status');
        const [retained] = statuses(
          later.messages.filter((m) => m.retain),
          'hung',
        );
        expect(retained!.sources, JSON.stringify(retained)).toEqual([
          expect.objectContaining({ name: 'wifi', state: 'running', silent_s: expect.any(Number) }),
        ]);
        expect(retained!.sources![0]!.silent_s).toBeGreaterThanOrEqual(15);
        expect(retained!.sources![0]!.silent_s).toBeLessThanOrEqual(Math.ceil(retained!.uptime_s!));
      } finally {
        await later.client.endAsync();
      }
    } finally {
      gw.proc.kill('SIGTERM');
      expect(await gw.exited, gw.stderr().slice(-1500)).toBe(0);
      await sub.client.endAsync();
    }
  }, 60_000);
  it('the status is published when a capture command goes silent and again when it writes: silent_s from 15 s, gone with its first byte', async () => {
    // A remote sniffer that takes 18 s to send its capture file header, then captures on a quiet
    // site. Windows and statuses every 10 min: only the publish on each change can bring them.
    const header = join(tmp, 'late-header.pcap');
    writeFileSync(header, pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP));
    const tool = join(tmp, 'late-header');
    writeFileSync(tool, `#!/bin/sh\nsleep 18\ncat '${header}'\nexec sleep 600\n`, { mode: 0o755 });
    const sub = await subscriber(broker.url, { filter: siteFilter('late') });
    const gw = spawnGateway([
      ...gatewayArgs({ site: 'late', mqttUrl: broker.url, source: `wifi=cmd:${tool}`, queueDir: join(tmp, 'q-late') }),
      ...['--window', '10m', '--status-interval', '10m'],
    ]);
    const silentOf = (s: { sources?: Array<{ silent_s?: number }> }) => s.sources?.[0]?.silent_s;
    try {
      const said = 'capture command has written nothing, not even a capture file header: it hangs or holds its output back';
      await waitFor(() => logLines(gw.stderr(), said).length === 1, 25_000, 'the line saying the command writes nothing');
      await waitFor(() => statuses(sub.messages, 'late').some((s) => silentOf(s) !== undefined), 3_000, 'a status with silent_s');
      const silent = statuses(sub.messages, 'late').find((s) => silentOf(s) !== undefined)!;
      // published as it went silent (the 10-min status interval would not have brought it yet)
      expect(silent.sources![0]).toMatchObject({ state: 'running', silent_s: expect.any(Number) });
      expect(silentOf(silent)).toBeGreaterThanOrEqual(15);
      expect(silentOf(silent)).toBeLessThan(18);
      await waitFor(() => logLines(gw.stderr(), 'capture command writes now').length === 1, 10_000, 'the line saying it writes now');
      await waitFor(() => silentOf(statuses(sub.messages, 'late').at(-1)!) === undefined, 3_000, `a status without silent_s (log: ${gw.stderr().slice(-800)})`);
      expect(statuses(sub.messages, 'late').at(-1)!.sources![0]).toMatchObject({ state: 'running' });
    } finally {
      gw.proc.kill('SIGTERM');
      expect(await gw.exited, gw.stderr().slice(-1500)).toBe(0);
      await sub.client.endAsync();
    }
  }, 60_000);
});
