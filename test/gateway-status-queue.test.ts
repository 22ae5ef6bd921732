// The queue_depth a gateway's status reports with each window, with a real Mosquitto: the windows
// not yet acknowledged. Taken as the window was handed to the broker, it counted that window, so
// every status of a healthy gateway said 1 (and the gateways dashboard's queue panel never showed 0,
// nor could an operator wait for 0 before moving a gateway). The status now waits for the broker's
// answer for the window (at most 2 s).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusTopic, validateStatus, type StatusMessage } from '../contract/index.ts';
import { Gateway } from '../gateway/gateway.ts';
import { config, subscriber, waitFor } from './gateway-support.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { need } from './support/need.ts';

const SUITE = 'gateway status queue depth';
const hasMosquitto = need('mosquitto', 'mosquitto', SUITE);

describe.skipIf(!hasMosquitto)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-status-q-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a connected gateway whose windows are acknowledged reports queue_depth 0 with each window', async () => {
    const sub = await subscriber(broker.url, { filter: statusTopic('sq', 'g') });
    const gw = new Gateway({
      config: config({ site: 'sq', zone: 'z', id: 'g', mqttUrl: broker.url, source: ['wifi=cmd:exec sleep 600'], window: '1s', queueDir: join(tmp, 'q') }),
      log: pino({ level: 'silent' }),
      processMetrics: false,
    });
    const online = () =>
      sub.messages.map((m) => JSON.parse(m.payload.toString()) as StatusMessage).filter((st) => st.state === 'online' && (st.windows ?? 0) > 0);
    await gw.start();
    try {
      await waitFor(() => online().length >= 3, 20_000, 'three statuses sent with windows');
      for (const st of online()) {
        expect(validateStatus(st).ok).toBe(true);
        expect(st.queue_depth).toBe(0);
      }
    } finally {
      await gw.stop();
      await sub.client.endAsync();
    }
  });
});
