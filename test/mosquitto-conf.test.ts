// The shipped broker configuration (docs/mosquitto/presence.conf) with a real Mosquitto: counts the
// broker has acknowledged to a gateway (which then deletes them from its queue) and holds for an
// aggregator that is away survive the broker's crash (kill -9) once its autosave interval has passed.
// With Mosquitto's default (autosave_interval 1800) they were lost for up to half an hour.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { need } from './support/need.ts';
import { freePort, waitForPort } from './support/ports.ts';

const SUITE = 'shipped Mosquitto configuration';
const ok = need('mosquitto', 'mosquitto', SUITE);
const ROOT = join(import.meta.dirname, '..');

describe.skipIf(!ok)(SUITE, () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-mosquitto-conf-'));
  let broker: ChildProcess | null = null;
  afterAll(() => {
    broker?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  // The shipped file's settings about what the broker keeps (the TLS listener, passwords and ACL need
  // files this test does not have), on a loopback listener with the data in a temp folder.
  const shipped = readFileSync(join(ROOT, 'docs/mosquitto/presence.conf'), 'utf8')
    .split('\n')
    .filter((l) => /^(persistence|autosave_\w+|max_queued_messages|max_packet_size)\s/.test(l));
  const autosave = Number(/^autosave_interval\s+(\d+)/m.exec(shipped.join('\n'))?.[1] ?? 1800);

  async function startBroker(port: number): Promise<void> {
    writeFileSync(
      join(dir, 'mosquitto.conf'),
      [
        'user root', // stay root in the test (Mosquitto would switch to a user that cannot write the temp folder)
        'per_listener_settings false',
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        ...shipped,
        `persistence_location ${dir}/`,
        `log_dest file ${join(dir, 'mosquitto.log')}`,
      ].join('\n') + '\n',
    );
    broker = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
    await waitForPort(port);
  }

  it('saves what it queued for an away aggregator often enough: a broker crash after autosave_interval loses none of it', async () => {
    expect(shipped.some((l) => l.startsWith('persistence true'))).toBe(true);
    // A bound the test can wait for; a larger one loses that many seconds of acknowledged counts.
    expect(autosave).toBeLessThanOrEqual(30);
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    await startBroker(port);

    // The aggregator's persistent session, then it goes away.
    const agg = await mqtt.connectAsync(url, { clientId: 'aggregator-conf', clean: false, protocolVersion: 4, reconnectPeriod: 0 });
    await agg.subscribeAsync('presence/v1/+/+/counts', { qos: 1 });
    await agg.endAsync();

    // A gateway's windows, each acknowledged by the broker (the gateway deletes it from its queue then).
    const gw = await mqtt.connectAsync(url, { clientId: 'gw-conf', protocolVersion: 4, reconnectPeriod: 0 });
    for (let seq = 1; seq <= 10; seq++) await gw.publishAsync('presence/v1/conf/g/counts', JSON.stringify({ seq }), { qos: 1 });
    await gw.endAsync();
    const acknowledged = Date.now();

    // Its next autosave (every autosave_interval seconds; later on a loaded machine): the database
    // file written after the last acknowledgement holds the windows, then the crash.
    const db = join(dir, 'mosquitto.db');
    const saveBy = Date.now() + (autosave + 30) * 1000;
    while (!(existsSync(db) && statSync(db).mtimeMs > acknowledged)) {
      if (Date.now() > saveBy) throw new Error(`Mosquitto did not save ${db} within ${autosave + 30} s (autosave_interval ${autosave})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    broker!.kill('SIGKILL');
    await new Promise((r) => broker!.once('exit', r));
    await startBroker(port);

    const got: number[] = [];
    const back = mqtt.connect(url, { clientId: 'aggregator-conf', clean: false, protocolVersion: 4, reconnectPeriod: 0 });
    back.on('message', (_t, payload) => got.push((JSON.parse(payload.toString()) as { seq: number }).seq));
    const deadline = Date.now() + 10_000;
    while (got.length < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await back.endAsync();
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  }, 60_000);
});
