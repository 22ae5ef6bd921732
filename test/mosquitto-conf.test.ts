// The shipped broker configuration (docs/mosquitto/presence.conf) with a real Mosquitto: counts the
// broker has acknowledged to a gateway (which then deletes them from its queue) and holds for an
// aggregator that is away survive the broker's crash (kill -9) once its autosave interval has passed.
// With Mosquitto's default (autosave_interval 1800) they were lost for up to half an hour.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { need } from './support/need.ts';
import { freePort, waitForPort } from './support/ports.ts';
import { makeCertificates } from './support/tls.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { processesUnder } from './support/tmp.ts';
import { eventually } from './support/wait.ts';
import { provisionGateway } from '../aggregator/provision.ts';

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

describe.skipIf(!ok)("the tests' Mosquitto (test/support/mosquitto.ts)", () => {
  it('started twice runs one broker, which stop() stops: a second start left the first running after the test run', async () => {
    const broker = new Mosquitto();
    try {
      await broker.start();
      await broker.start(); // as test/gateway-deploy.test.ts did, one test after the other
      expect(processesUnder(broker.dir)).toHaveLength(1);
      await broker.stop();
      await eventually('no broker left in its folder', () => processesUnder(broker.dir).length === 0, 5000);
    } finally {
      for (const pid of processesUnder(broker.dir)) process.kill(pid, 'SIGKILL');
      await broker.dispose();
    }
  });
});

// The whole recipe as Debian's service runs it: started as root, Mosquitto switches to its user
// `mosquitto` before it reads the TLS files (the tests elsewhere stay root with `user root`, which
// hid this). A key only root may read stops the broker; the key installed as the recipe says starts it.
const asDebian = ok && process.getuid?.() === 0 && spawnSync('id', ['-u', 'mosquitto']).status === 0 && need('openssl', 'openssl', SUITE);

describe.skipIf(!asDebian)('shipped Mosquitto recipe, started as Debian starts it (root, then user mosquitto)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'presence-mosquitto-recipe-'));
  let broker: ChildProcess | null = null;
  afterAll(() => {
    broker?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  function start(tls: number, local: number): Promise<string> {
    const recipe = readFileSync(join(ROOT, 'docs/mosquitto/presence.conf'), 'utf8')
      .replace('/etc/mosquitto/passwd', join(dir, 'passwd'))
      .replace('/etc/mosquitto/presence.acl', join(dir, 'presence.acl'))
      .replaceAll('/etc/mosquitto/certs/', `${dir}/`)
      .replace(/^listener 8883$/m, `listener ${tls}`)
      .replace(/^listener 1883 127\.0\.0\.1$/m, `listener ${local} 127.0.0.1`);
    // Debian's /etc/mosquitto/mosquitto.conf (its pid_file needs systemd's /run/mosquitto: left out), then conf.d/
    writeFileSync(join(dir, 'conf.d', 'presence.conf'), recipe);
    writeFileSync(join(dir, 'mosquitto.conf'), `persistence true\npersistence_location ${dir}/db/\nlog_dest stderr\ninclude_dir ${dir}/conf.d\n`);
    const proc = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    broker = proc;
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    return new Promise<string>((resolve) => proc.once('exit', () => resolve(stderr)));
  }

  it('starts with the key readable by group mosquitto, and stops naming the key file when only root may read it', async () => {
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'conf.d'));
    mkdirSync(join(dir, 'db'));
    execFileSync('chown', ['mosquitto', join(dir, 'db')]);
    makeCertificates(dir, { cn: 'unused', user: 'aggregator', password: 'agg-pw' });
    copyFileSync(join(ROOT, 'docs/mosquitto/presence.acl'), join(dir, 'presence.acl'));

    // A key only root may read (what openssl, a copy made as root or certbot leaves): no broker.
    chmodSync(join(dir, 'server.key'), 0o600);
    const [tls1, local1] = [await freePort(), await freePort()];
    const said = await Promise.race([start(tls1, local1), new Promise<string>((r) => setTimeout(() => r('still running'), 10_000))]);
    expect(said).toMatch(/Unable to load server key file/);

    // As docs/deployment.md and the recipe's comment say: root:mosquitto, mode 0640.
    for (const doc of ['docs/deployment.md', 'docs/mosquitto/presence.conf'])
      expect(readFileSync(join(ROOT, doc), 'utf8')).toMatch(/chown root:mosquitto server\.key && (sudo )?chmod\s+0640 server\.key/);
    execFileSync('chown', ['root:mosquitto', join(dir, 'server.key')]);
    chmodSync(join(dir, 'server.key'), 0o640);
    const [tls, local] = [await freePort(), await freePort()];
    const exited = start(tls, local);
    await Promise.race([waitForPort(tls, 10_000), exited.then((e) => Promise.reject(new Error(`mosquitto exited: ${e}`)))]);
    const client = await mqtt.connectAsync(`mqtts://localhost:${tls}`, {
      ca: readFileSync(join(dir, 'ca.pem')),
      username: 'aggregator',
      password: 'agg-pw',
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    await client.subscribeAsync('presence/v1/#', { qos: 1 });
    await client.endAsync();
  }, 60_000);

  it("reads a password file that presence provision gateway created (it was root's, mode 0600: the broker stopped at start)", async () => {
    // (the first test left the key as the recipe says and the broker running)
    broker?.kill('SIGKILL');
    rmSync(join(dir, 'passwd'));
    provisionGateway({ site: 'dam', zone: 'plein', id: 'gw-plein-1', passwordFile: join(dir, 'passwd'), secretOut: join(dir, 'gw.secret') });
    const st = statSync(join(dir, 'passwd'));
    expect([st.uid, st.mode & 0o777]).toEqual([Number(execFileSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }).trim()), 0o600]);

    const [tls, local] = [await freePort(), await freePort()];
    const exited = start(tls, local);
    await Promise.race([waitForPort(tls, 10_000), exited.then((e) => Promise.reject(new Error(`mosquitto exited: ${e}`)))]);
    const gw = await mqtt.connectAsync(`mqtts://localhost:${tls}`, {
      ca: readFileSync(join(dir, 'ca.pem')),
      username: 'dam/gw-plein-1',
      password: readFileSync(join(dir, 'gw.secret'), 'utf8').trim(),
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    const ack = await gw.publishAsync('presence/v1/dam/gw-plein-1/status', '{}', { qos: 1 });
    expect((ack as { reasonCode?: number } | undefined)?.reasonCode ?? 0).toBe(0); // (a refused publish rejects)
    await gw.endAsync();
  }, 60_000);
});
