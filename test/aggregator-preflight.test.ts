// Start-up checks with a real influxd 1.6.7, a real VictoriaMetrics and a real Mosquitto, through the
// `presence aggregator` process: a missing database stops it (exit 2) with the command that creates
// it; --influx-create creates it (as `presence influx setup` does) and the counts are written; the
// default --influx-api v2 against InfluxDB 1.6 stops with the --influx-api to use. And the README's
// load line for the demo's line-protocol file works as written, with the same lines as
// docs/deployment.md.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import pino from 'pino';
import { loadConfig } from '../aggregator/config.ts';
import { preflight } from '../aggregator/preflight.ts';
import { BAD_PORT } from '../aggregator/influx-setup.ts';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Victoria } from './support/victoria.ts';
import { freePort as freeLoopbackPort } from './support/ports.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';

const ok =
  need('mosquitto', 'mosquitto', 'aggregator-preflight') &&
  need('influxd', 'influxdb', 'aggregator-preflight') &&
  need('victoria-metrics', 'victoria-metrics', 'aggregator-preflight') &&
  need('curl', 'curl', 'aggregator-preflight');
const repo = join(import.meta.dirname, '..');

describe.skipIf(!ok)('aggregator start-up checks', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  const vm = new Victoria();
  const dir = mkdtempSync(join(tmpdir(), 'presence-preflight-'));
  const procs: ChildProcess[] = [];
  let pub: MqttClient;

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start(), vm.start()]);
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose(), vm.dispose()]);
    rmSync(dir, { recursive: true, force: true });
  });

  function run(args: string[]): { proc: ChildProcess; out: () => string; exited: Promise<number | null> } {
    const proc = spawn(process.execPath, [join(repo, 'scripts/presence.js'), 'aggregator', '--mqtt-url', broker.url, '--http-port', 'off', ...args], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.push(proc);
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    return { proc, out: () => out, exited };
  }

  it('a missing database stops the aggregator (exit 2) with the command that creates it', async () => {
    const r = run(['--influx-url', influx.url, '--influx-api', 'v1', '--influx-db', 'nodb', '--mqtt-client-id', 'preflight-missing']);
    expect(await r.exited).toBe(2);
    const lastLines = r
      .out()
      .split('\n')
      .filter((l) => l.startsWith('presence aggregator:') || l.startsWith('  '));
    expect(lastLines.join('\n')).toContain(`has no database "nodb"`);
    expect(r.out()).toContain(`  presence influx setup --influx-url ${influx.url} --influx-db nodb --detail 30d\n`);
    expect(r.out()).toContain('--influx-create');
    expect(r.out()).not.toContain('"subscribed"');
  });

  it('a retention InfluxDB would refuse, from the config file, without influx.create: the missing database is said, and the retention left out of the command, naming its key, not a flag never given', async () => {
    const file = join(dir, 'retention.yaml');
    writeFileSync(file, `aggregator:\n  influx: { url: "${influx.url}", api: v1, database: noretention, retention: 90m }\n`);
    const r = run(['--config', file, '--mqtt-client-id', 'preflight-retention']);
    expect(await r.exited).toBe(2);
    // it had stopped on "influx.retention (--influx-retention): must be ... (got 5400000 ms)", hiding the missing database
    expect(r.out()).toContain(`has no database "noretention"`);
    expect(r.out()).toContain(`  presence influx setup --influx-url ${influx.url} --influx-db noretention --detail 30d\n`);
    expect(r.out()).toMatch(/influx\.retention \(1h30m\) is left out of that command: it must be whole hours or days, at least 2h/);
    expect(r.out()).not.toContain('--influx-retention');
    // with influx.create the configuration refuses it at once, naming the file's key
    writeFileSync(file, `aggregator:\n  influx: { url: "${influx.url}", api: v1, database: noretention, retention: 90m, create: true }\n`);
    const c = run(['--config', file, '--mqtt-client-id', 'preflight-retention']);
    expect(await c.exited).toBe(2);
    expect(c.out()).toContain(`presence aggregator: ${file}: aggregator.influx.retention: must be whole hours or days, at least 2h`);
    expect(c.out()).not.toContain('--influx-retention');
  });

  it('a misspelt database: the line lists the databases there and names the one it may be, before the command that would create the misspelt one', async () => {
    await influx.query('CREATE DATABASE "presence"', 'POST');
    const r = run(['--influx-url', influx.url, '--influx-api', 'v1', '--influx-db', 'presense', '--mqtt-client-id', 'preflight-typo']);
    expect(await r.exited).toBe(2);
    expect(r.out()).toMatch(
      /has no database "presense" \(it has [^)]*"presence"[^)]*\)\. Did you mean "presence"\? Then fix --influx-db \(influx\.database, INFLUX_DB\)\. Create it with\n/,
    );
    expect(r.out()).not.toMatch(/"_internal"/);
  });

  it('the command it prints creates the database', async () => {
    execFileSync(
      process.execPath,
      [join(repo, 'scripts/presence.js'), 'influx', 'setup', '--influx-url', influx.url, '--influx-db', 'printed', '--detail', '30d'],
      { cwd: repo, stdio: 'ignore' },
    );
    const dbs = await influx.query('SHOW DATABASES');
    expect(dbs.results[0].series[0].values.flat()).toContain('printed');
  });

  it('--influx-create creates the database with the retention from config, and the counts are written', async () => {
    const r = run([
      '--influx-url',
      influx.url,
      '--influx-api',
      'v1',
      '--influx-db',
      'created',
      '--influx-create',
      '--influx-retention',
      '7d',
      '--mqtt-client-id',
      'preflight-create',
    ]);
    try {
      await subscribed(r);
      expect(r.out()).toContain('created database created');
      const rps = await influx.query('SHOW RETENTION POLICIES ON "created"');
      const rows = rps.results[0].series[0].values as unknown[][];
      expect(rows.find((v) => v[0] === 'detail')).toEqual(expect.arrayContaining(['detail', '168h0m0s', true]));
      await publishAll(pub, windows('site-created', 2, 5).map(countsItem));
      await until(
        '10 windows stored',
        async () => (await influx.rows(`SELECT count("devices") FROM "created"."detail"."presence" WHERE "radio"='wifi'`))[0]?.count,
        (n) => n === 10,
      );
    } finally {
      r.proc.kill('SIGTERM');
      await r.exited;
    }
  });

  /** Waits for the aggregator's "subscribed" line (it must not have exited). */
  async function subscribed(r: ReturnType<typeof run>): Promise<void> {
    await until(
      'subscribed',
      () => {
        if (r.proc.exitCode !== null) throw new Error(`exited ${r.proc.exitCode}: ${r.out()}`);
        return r.out().includes('"subscribed"');
      },
      (x) => x,
    );
  }

  it('--influx-create with InfluxDB down at start: once it answers without the database, the database is created and every window written', async () => {
    // Not started yet: its port is known so the aggregator can be given the URL. It comes up empty
    // (its own database is another one), as a reinstalled or wiped InfluxDB does.
    const late = new Influxd('unused-db-name');
    late.port = await freeLoopbackPort();
    const r = run([
      '--influx-url',
      late.url,
      '--influx-api',
      'v1',
      '--influx-db',
      'late',
      '--influx-create',
      '--mqtt-client-id',
      'preflight-late',
      '--log-format',
      'json',
    ]);
    try {
      await subscribed(r);
      expect(r.out()).toContain('InfluxDB does not answer /ping');
      await publishAll(pub, windows('site-late', 2, 5).map(countsItem));
      await until(
        'a write failing',
        () => r.out().includes('write failed; retrying'),
        (x) => x,
      );
      await late.start();
      await until(
        '10 windows stored',
        async () => (await late.rows(`SELECT count("devices") FROM "late"."detail"."presence" WHERE "radio"='wifi'`).catch(() => []))[0]?.count,
        (n) => n === 10,
      );
      expect(r.out()).toContain('created database late');
      expect(r.out()).toContain('is created again (influx.create)');
    } finally {
      r.proc.kill('SIGTERM');
      await r.exited;
      await late.dispose();
    }
  });

  /** With --influx-create: 3 windows stored, then `drop` run against influxd, then 8 more windows
   *  stored, and the log says `said`. */
  async function storedAgainAfter(opts: { db: string; rp: string; args: string[]; drop: string; said: string }): Promise<void> {
    const { db, rp } = opts;
    const r = run([
      '--influx-url',
      influx.url,
      '--influx-api',
      'v1',
      '--influx-db',
      db,
      ...opts.args,
      '--influx-create',
      '--mqtt-client-id',
      `preflight-${db}`,
    ]);
    const stored = async () => (await influx.rows(`SELECT count("devices") FROM "${db}"."${rp}"."presence" WHERE "radio"='wifi'`).catch(() => []))[0]?.count;
    try {
      await subscribed(r);
      await publishAll(pub, windows(`site-${db}`, 1, 3).map(countsItem));
      await until('3 windows stored', stored, (n) => n === 3);
      await influx.query(opts.drop, 'POST');
      await publishAll(pub, windows(`site-${db}-after`, 2, 4).map(countsItem));
      await until('the 8 windows sent after the drop stored', stored, (n) => n === 8);
      expect(r.out()).toContain(opts.said);
    } finally {
      r.proc.kill('SIGTERM');
      await r.exited;
    }
  }

  it('--influx-create and the database dropped while the aggregator runs: it is created again and the later windows written', () =>
    storedAgainAfter({ db: 'dropped', rp: 'detail', args: [], drop: 'DROP DATABASE "dropped"', said: 'is created again (influx.create)' }));

  it('--influx-create and the --influx-rp retention policy dropped while it runs (1.x answers 500): created again, the later windows written', () =>
    storedAgainAfter({
      db: 'rpdrop',
      rp: 'week',
      args: ['--influx-rp', 'week'],
      drop: 'DROP RETENTION POLICY "week" ON "rpdrop"',
      said: 'write answered 500: the database or retention policy was missing',
    }));

  it('the default --influx-api v2 against InfluxDB 1.6 stops with the --influx-api to use', async () => {
    const r = run(['--influx-url', influx.url, '--influx-db', 'presence', '--mqtt-client-id', 'preflight-v2']);
    expect(await r.exited).toBe(2);
    expect(r.out()).toMatch(/presence aggregator: InfluxDB 1\.6\.7\S* at http:\/\/127\.0\.0\.1:\d+ has no v2 write API .*--influx-api v1 --influx-db presence/);
  });

  it('VictoriaMetrics (no X-Influxdb-Version on /ping) is not checked: both APIs start', async () => {
    for (const api of ['v1', 'v2']) {
      const r = run(['--influx-url', vm.url, '--influx-api', api, '--influx-db', 'presence', '--mqtt-client-id', `preflight-vm-${api}`]);
      try {
        await until(
          `subscribed (${api})`,
          () => {
            if (r.proc.exitCode !== null) throw new Error(`exited ${r.proc.exitCode}: ${r.out()}`);
            return r.out().includes('"subscribed"');
          },
          (x) => x,
        );
        expect(r.out()).toContain('without X-Influxdb-Version');
      } finally {
        r.proc.kill('SIGTERM');
        await r.exited;
      }
    }
  });

  it("the README's load lines (database set-up, then curl) work as written, and docs/deployment.md has the same lines", async () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const block = /Load the result into InfluxDB 1\.x:\s*```sh[^\n]*\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeTruthy();
    const lines = block!.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    expect(lines.length).toBe(2);
    expect(lines[1]).toMatch(/^curl -XPOST .*\/write\?db=presence&precision=ms' --data-binary @presence-demo\/presence\.lp$/);
    const deployment = readFileSync(join(repo, 'docs/deployment.md'), 'utf8');
    for (const l of lines) expect(deployment).toContain(l);
    const work = mkdtempSync(join(dir, 'readme-'));
    // a line-protocol file as the demo writes it (ms timestamps)
    const now = Date.now() - 60_000;
    const file = [0, 1, 2]
      .map((i) => `presence,site=site-readme,zone=z,gateway=gw-0,radio=wifi devices=${i + 1}i,estimate=1i,frames=3i,complete=true ${now + i * 1000}`)
      .join('\n');
    execFileSync('mkdir', ['-p', join(work, 'presence-demo')]);
    writeFileSync(join(work, 'presence-demo', 'presence.lp'), `${file}\n`);
    const other = new Influxd('unused-db-name');
    await other.start();
    try {
      for (const l of lines) {
        const cmd = l
          .replaceAll('http://127.0.0.1:8086', other.url)
          .replace(/^npx presence /, `${JSON.stringify(process.execPath)} ${JSON.stringify(join(repo, 'scripts/presence.js'))} `);
        execFileSync('sh', ['-c', cmd.startsWith('curl') ? `${cmd} --fail --silent --show-error` : cmd], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
      }
      const rows = await fetch(
        `${other.url}/query?${new URLSearchParams({ db: 'presence', q: `SELECT count("devices") FROM presence WHERE "site"='site-readme'` })}`,
      ).then((r) => r.json() as Promise<any>);
      expect(rows.results[0].series[0].values[0][1]).toBe(3);
    } finally {
      await other.dispose();
    }
  });
});

// No server needed: what the start-up check logs when nothing answers /ping.
describe('aggregator start-up check of an InfluxDB that does not answer', () => {
  async function warned(url: string): Promise<Record<string, unknown>[]> {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const cfg = loadConfig({ influxUrl: url, influxApi: 'v1', influxDb: 'presence' }, {}).influx;
    expect(await preflight(cfg, log)).toBeNull();
    return lines;
  }
  const freePort = () =>
    new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });

  it('names the reason (ECONNREFUSED, "bad port"; not fetch\'s bare "fetch failed") and what to check', async () => {
    const port = await freePort();
    // port 1 is one fetch refuses to use at all: its cause says "bad port", with no code
    for (const [url, reason] of [
      [`http://127.0.0.1:${port}`, 'ECONNREFUSED'],
      ['http://127.0.0.1:1', BAD_PORT],
    ]) {
      const lines = await warned(url);
      expect(lines).toHaveLength(1);
      expect(lines[0].level).toBe(40);
      expect(lines[0].err).toBe(reason);
      expect(lines[0].msg).toContain('check the host and port of influx.url (--influx-url, INFLUX_URL) and that InfluxDB runs there');
    }
  });
});
