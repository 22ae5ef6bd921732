// SIGUSR1 starts Node's inspector on 127.0.0.1:9229 unless the process handles the signal itself:
// any local user could then connect, run code in the gateway and read its memory (the open window's
// hashes and key state, frames on their way to the firmware, a corridor group's secret). Whoever
// can signal the gateway could open it, a capture command it started among them (same user; it
// parses what the radio hears). Every `presence` command ignores SIGUSR1 (scripts/presence.js).
// A real gateway against a real Mosquitto is sent the signal and must go on counting, with no
// inspector started.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsTopic } from '../contract/index.ts';
import { gatewayArgs, spawnGateway, subscriber, waitFor } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const SUITE = 'gateway inspector';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-inspector-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('SIGUSR1 does not open the inspector: the gateway goes on counting and says nothing of a debugger', async () => {
    const sub = await subscriber(broker.url, { filter: countsTopic('insp', 'g') });
    const gw = spawnGateway(gatewayArgs({ site: 'insp', mqttUrl: broker.url, source: 'cmd:exec sleep 600', queueDir: join(tmp, 'q') }, '--window', '1s'));
    try {
      await waitFor(() => sub.messages.length >= 1, 20_000, 'a first window');
      gw.proc.kill('SIGUSR1');
      const after = sub.messages.length;
      // still running (SIGUSR1 is not the end of it) and counting: two more windows
      await waitFor(() => sub.messages.length >= after + 2, 20_000, 'two windows after SIGUSR1');
      expect(gw.proc.exitCode).toBeNull();
      // Node says "Debugger listening on ws://..." (or that starting the inspector failed) when it opens it
      expect(gw.stderr()).not.toMatch(/Debugger listening on|Starting inspector on/);
    } finally {
      gw.proc.kill('SIGKILL');
      await gw.exited;
      await sub.client.endAsync();
    }
  });
});
