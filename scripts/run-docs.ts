// Runs the shell blocks of the operator docs top to bottom on this machine, each doc as a clean
// machine of its own: README.md (the demo and its load line), docs/deployment.md, docs/field-guide.md.
//
//   npx tsx scripts/run-docs.ts [--keep] [--verbose] [docs/deployment.md ...]
//
// Exit 0 when every block meant to run passed; otherwise 1 with the doc, the line and the command
// that failed, its output and the logs of the servers. test/docs-run.test.ts runs it.
//
// Which blocks run: the fence's info string after the language says so.
//   ```sh run                       run it, command by command (a `\` continues a command)
//   ```sh run needs=influxd         ... with an InfluxDB 1.x on "127.0.0.1:8086" running first
//   ```sh run needs=influx2         ... with VictoriaMetrics standing in for an InfluxDB 2.x's write API
//                                   (/api/v2/write, any token): "8086" in this block is its port
//   ```sh skip="why"                not run; printed as skipped with the reason
//   ```yaml file=/etc/x.yaml        the block is written to that file when reached (with the
//                                   substitutions below); `ini` and `yaml` blocks without file= are text
// In docs/deployment.md and docs/field-guide.md every `sh` block must carry `run` or `skip=`: an
// unmarked one fails the run, so a new block is either tested or says why not. In README.md only
// blocks marked `run` run.
//
// The machine: each doc gets a temp folder holding a copy of this checkout (its files as git sees
// them, the built dist/ and WASM, node_modules linked) in which commands start, as a reader starts
// in the repository, and a prefix standing for the root of the file system. Within a block `cd`
// carries over to the next command; every block starts in the checkout. The release tarball
// (presence-counter-VERSION.tgz, `npm pack` of this checkout) is in the checkout, and so is `ca.pem`,
// a broker CA certificate made with openssl (what the backend team hands a field engineer).
//
// Substitutions (machine-specific parts), applied to every command and to every file a block
// writes or that the docs copy into /etc before a server reads it:
//   /opt/ /etc/ /var/lib/ /var/log/ /usr/local/bin/ /root/   -> PREFIX/opt/ ...   ($PREFIX/usr/local/bin is on PATH)
//   ports 1883 8883 8086 9464                               -> free loopback ports (MQTT, MQTT over TLS, InfluxDB, aggregator HTTP)
//   `listener N` without a host                             -> `listener N 127.0.0.1`
//   `sudo `                                                 -> nothing (the prefix is ours)
//   `-o root -g presence` of install                        -> dropped (no `presence` user here)
//   `useradd ...`                                           -> not run (creates no user on this machine)
//   `MQTT_PASSWORD=...`, `-P ...`, `mosquitto_passwd -c F U` -> the aggregator's password (batch mode, -b)
//   `npm ci` in the checkout                                -> not run: node_modules is installed (the package's `npm ci --omit=dev` runs for real)
//   `mosquitto_sub ...` (runs until stopped)                -> `mosquitto_sub -C 1 -W 30 ...`: ends after the first message, fails
//                                                              after 30 s without one; `-p 1883` when it names no port
//   `curl ...`                                              -> `curl --fail-with-body ...` (an HTTP error answer fails the command)
//   `presence doctor` (no configuration)                    -> must print `[ OK ] node` and `[ OK ] firmware` (what the field guide expects
//                                                              at that step); exit 1 is accepted only for the one FAIL of a machine
//                                                              with no Wi-Fi card and no Bluetooth adapter
//   ```sh run host=gateway                                  -> the block runs on the gateway's machine: a prefix of its own, holding
//                                                              /etc/presence/ca.pem, the broker's CA (docs/field-guide.md, step 7)
//   `scp F host:/path`                                      -> cp F to the gateway's prefix
//   `... | ssh host 'CMD'`                                  -> ... | CMD on the gateway's machine: CMD substituted with the gateway's
//                                                              prefix, the folder of the last path it names made first
//   `cmd:tcpdump -i wlan0mon ...` source                    -> `pcap:` a capture the simulator made (quiet-night, 3 min); the gateway
//                                                              gets --speed max and STATE_DIRECTORY (as its unit's StateDirectory=)
//                                                              in its prefix, and ends once its windows are acknowledged
//   `broker.example`, `broker.example.net`                  -> 127.0.0.1 (the Mosquitto above; its certificate names 127.0.0.1)
//   `npm test`                                              -> not run (this runner is part of it)
//   `npm start`                                             -> `npm start -- --minutes 3 --speed max --no-live --no-last-week` (DEMO_ARGS)
//   `apt-get install -y P...`                               -> checks every package is installed (dpkg-query), installs nothing,
//                                                              makes the folders the package makes (/etc/mosquitto/conf.d, ...) in the prefix
//   `systemctl enable --now influxdb`                       -> influxd (installed 1.x) with its data in PREFIX/var/lib/influxdb, started as test/support/influxd.ts does, no database made
//   `systemctl restart mosquitto`                           -> mosquitto -c PREFIX/etc/mosquitto/mosquitto.conf (Debian's main file: include_dir conf.d)
//                                                              started as Debian's mosquitto.service starts it: as root, no `user` line, so
//                                                              Mosquitto switches to user mosquitto before it reads its files (its folders
//                                                              owned as the package and the unit's ExecStartPre leave them); not root or no
//                                                              user mosquitto: as this user. The recipe's TLS files (certfile, keyfile,
//                                                              cafile) are made with openssl when absent, root's, the key mode 0600
//   `chown root:mosquitto KEY && chmod 0640 KEY`            -> run as written, once those TLS files are made; skipped when not root or no
//                                                              user mosquitto (the broker then reads its files as this user)
//   `chown mosquitto:mosquitto PASSWD && chmod 0600 PASSWD`  -> run as written; skipped when not root or no user mosquitto
//   `systemctl reload mosquitto`                            -> SIGHUP to that mosquitto
//   `systemctl stop|start presence-gateway`                 -> not run (the gateway's service needs systemd as PID 1 and the capture hardware)
//   `cp UNIT /etc/systemd/system/ && systemctl daemon-reload` -> the copy only, into the prefix's /etc/systemd/system (made when absent)
//   `presence doctor --config /etc/presence/gateway.yaml` as root with gateway.env (the field guide's check)
//                                                           -> not run (its sources need wlan0mon and bluetooth0, its broker broker.example.net)
//   `systemctl kill -s HUP presence-aggregator`             -> SIGHUP to the aggregator the doc started
//   `systemctl daemon-reload && systemctl enable --now presence-aggregator`
//                                                           -> the ExecStart of the unit file the doc wrote (substituted, --http-port added;
//                                                              /usr/bin/node is this node when absent), with its EnvironmentFile's
//                                                              variables, as this user (not User=), in the background until /healthz answers
//   `presence aggregator ...` (runs until stopped)          -> started in the background with `--http-port` (9464 substituted),
//                                                              the block goes on once its /healthz answers; stopped at the end
// Everything started is stopped at the end; the temp folder is removed unless --keep.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { makeCertificates } from '../test/support/tls.ts';
import { packCommand } from '../test/support/pack.ts';
import { freePort, waitForPort } from '../test/support/ports.ts';

const REPO = join(import.meta.dirname, '..');
const DEMO_ARGS = '--minutes 3 --speed max --no-live --no-last-week';
// The docs' placeholder for the aggregator's broker password; mosquitto_passwd gets it too.
const AGGREGATOR_PASSWORD = 'the-aggregator-password';
const COVERED = ['docs/deployment.md', 'docs/field-guide.md'];
const DEFAULT_DOCS = ['README.md', 'docs/deployment.md', 'docs/field-guide.md'];

export interface Block {
  doc: string;
  line: number; // 1-based line of the opening fence
  lang: string;
  attrs: Record<string, string>;
  lines: Array<{ line: number; text: string }>;
}

/** Fenced code blocks of a markdown file, with the info string's `key=value`/`key="value"`/`flag` words. */
export function parseBlocks(doc: string, text: string): Block[] {
  const out: Block[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)\s*([\w-]*)\s*(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang, info] = open;
    const attrs: Record<string, string> = {};
    for (const m of info!.matchAll(/([\w-]+)(?:=("([^"]*)"|\S+))?/g)) attrs[m[1]!] = m[3] ?? m[2] ?? '';
    const block: Block = { doc, line: i + 1, lang: lang!, attrs, lines: [] };
    for (i++; i < lines.length; i++) {
      const l = lines[i]!;
      if (l.trim().startsWith(fence!) && l.trim().replace(/`/g, '') === '') break;
      block.lines.push({ line: i + 1, text: l.startsWith(indent!) ? l.slice(indent!.length) : l.trimStart() });
    }
    out.push(block);
  }
  return out;
}

/** Logical commands of a shell block: comment-only and blank lines dropped, `\` continuations joined. */
export function commands(block: Block): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  let cur: { line: number; text: string } | null = null;
  for (const { line, text } of block.lines) {
    if (!cur && (text.trim() === '' || text.trim().startsWith('#'))) continue;
    if (!cur) cur = { line, text: '' };
    if (text.trimEnd().endsWith('\\')) {
      cur.text += `${text.trimEnd().slice(0, -1)} `;
      continue;
    }
    cur.text += text;
    out.push(cur);
    cur = null;
  }
  if (cur) out.push(cur);
  return out;
}

interface Machine {
  root: string;
  checkout: string;
  prefix: string;
  /** The gateway's machine (blocks with host=gateway): its own prefix. */
  gatewayPrefix: string;
  /** A capture file standing in for a monitor-mode interface on the gateway's machine. */
  capture: string;
  ports: { mqtt: number; mqtts: number; influx: number; aggregatorHttp: number; influxRpc: number; influx2: number };
}

/** Folders a Debian package makes on install (the apt-get substitution makes them in the prefix). */
const PACKAGE_DIRS: Record<string, string[]> = {
  mosquitto: ['/etc/mosquitto/conf.d', '/var/lib/mosquitto', '/var/log/mosquitto'],
  influxdb: ['/etc/influxdb', '/var/lib/influxdb'],
};

const PATHS = ['/opt/', '/etc/', '/var/lib/', '/var/log/', '/usr/local/bin/', '/root/'];

/**
 * Debian's user for its Mosquitto (the package's postinst makes it), when the broker can be started
 * as Debian's unit starts it: as root, which Mosquitto switches from to that user. Null otherwise.
 */
function debianMosquittoUser(): { uid: number } | null {
  if (process.getuid?.() !== 0) return null;
  try {
    return { uid: Number(execFileSync('id', ['-u', 'mosquitto'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()) };
  } catch {
    return null;
  }
}

/** The substitutions every command and file goes through (idempotent). */
export function substitute(text: string, m: Machine): string {
  let t = text;
  for (const p of PATHS) t = t.replace(new RegExp(`(?<![\\w./-])${p.replace(/\//g, '\\/')}`, 'g'), `${m.prefix}${p}`);
  t = t.replace(/\b1883\b/g, String(m.ports.mqtt)).replace(/\b8883\b/g, String(m.ports.mqtts));
  t = t.replace(/\b8086\b/g, String(m.ports.influx)).replace(/\b9464\b/g, String(m.ports.aggregatorHttp));
  t = t.replace(/^(\s*listener \d+)\s*$/gm, '$1 127.0.0.1');
  return t;
}

type Step =
  | { kind: 'shell'; cmd: string; accept?: (code: number, out: string) => string | null }
  | { kind: 'skip'; why: string }
  | { kind: 'background'; cmd: string; health: string }
  | { kind: 'action'; what: string; run: (m: Machine, s: Services) => Promise<void> };

/** A documented command turned into what runs here. */
export function rewrite(cmd: string, m: Machine): Step {
  let c = cmd;
  if (/^\s*npm test\b/.test(c)) return { kind: 'skip', why: 'the whole suite: this runner is part of it' };
  if (/^\s*npm ci\s*($|&&|#)/.test(c)) {
    if (/&&\s*npm start/.test(c)) c = c.replace(/^\s*npm ci\s*&&\s*/, '');
    else return { kind: 'skip', why: "the checkout's node_modules is installed already (the package's npm ci --omit=dev runs for real)" };
  }
  c = c.replace(/\bnpm start\b(?!\s+--)/, `npm start -- ${DEMO_ARGS}`).replace(/\bnpm start --(?! --minutes 3)/, `npm start -- ${DEMO_ARGS}`);
  if (/\buseradd\b/.test(c)) return { kind: 'skip', why: 'creates a system user: not on this machine (the -o/-g ownership flags are dropped below)' };
  c = c.replace(/\bsudo\s+/g, '');
  c = c.replace(/\s-o root -g presence\b/g, '');
  c = c.replace(/\bMQTT_PASSWORD=(\.\.\.|…)/g, `MQTT_PASSWORD=${AGGREGATOR_PASSWORD}`).replace(/\s-P\s+(\.\.\.|…)/g, ` -P ${AGGREGATOR_PASSWORD}`);
  c = c.replace(/\bmosquitto_passwd -c (\S+) (\S+)/, `mosquitto_passwd -c -b $1 $2 ${AGGREGATOR_PASSWORD}`);
  const apt = /^\s*apt-get install -y ([\w\s.+-]+?)\s*(#.*)?$/.exec(c);
  if (apt) {
    const pkgs = apt[1]!.trim().split(/\s+/);
    // The folders those packages create, in the prefix.
    const dirs = pkgs.flatMap((p) => PACKAGE_DIRS[p] ?? []).map((d) => substitute(d, m));
    return {
      kind: 'shell',
      cmd: `dpkg-query -W ${pkgs.join(' ')} >/dev/null || { echo "not installed: ${pkgs.join(' ')} (apt-get install -y ${pkgs.join(' ')})"; exit 1; }${dirs.length ? ` && mkdir -p ${dirs.join(' ')}` : ''}`,
    };
  }
  // The broker's key made readable by its user (docs/deployment.md): the recipe's TLS files, which
  // the reader brings, are made first where absent (Services.tlsFiles), then the command runs.
  if (/^\s*chown root:mosquitto\s/.test(c)) {
    if (!debianMosquittoUser())
      return { kind: 'skip', why: 'not root, or no user mosquitto here: the broker runs as this user and reads its own files (restartMosquitto)' };
    const cmd = substitute(c, m);
    return {
      kind: 'action',
      what: 'the TLS files, then the chown',
      run: async (mm, s) => {
        s.tlsFiles(mm);
        execFileSync('bash', ['-c', cmd], { stdio: 'pipe' });
      },
    };
  }
  // The broker's password file given to its user: as written, where there is such a user.
  if (/^\s*chown mosquitto:mosquitto\s/.test(c) && !debianMosquittoUser())
    return { kind: 'skip', why: 'not root, or no user mosquitto here: the broker runs as this user and reads its own files (restartMosquitto)' };
  if (/^\s*systemctl (stop|start|restart) presence-gateway\s*(#.*)?$/.test(c))
    return { kind: 'skip', why: "the gateway's service: needs systemd as PID 1 and the capture hardware" };
  if (/^\s*sh -c '.*presence doctor --config \/etc\/presence\/gateway\.yaml'\s*$/.test(c))
    return { kind: 'skip', why: "the field guide's configuration: its sources need wlan0mon and bluetooth0, its broker broker.example.net" };
  const unit = /^\s*cp (\S+) \/etc\/systemd\/system\/\s*&&\s*systemctl daemon-reload\s*(#.*)?$/.exec(c);
  if (unit) {
    const dir = substitute('/etc/systemd/system', m);
    return { kind: 'shell', cmd: `mkdir -p ${dir} && cp ${substitute(unit[1]!, m)} ${dir}/` };
  }
  if (/^\s*systemctl enable --now influxdb\s*(#.*)?$/.test(c)) return { kind: 'action', what: 'start influxd', run: (mm, s) => s.startInfluxd(mm) };
  if (/^\s*systemctl restart mosquitto\s*(#.*)?$/.test(c)) return { kind: 'action', what: 'restart mosquitto', run: (mm, s) => s.restartMosquitto(mm) };
  if (/^\s*systemctl daemon-reload && systemctl enable --now presence-aggregator\s*(#.*)?$/.test(c))
    return {
      kind: 'action',
      what: 'start the aggregator unit',
      run: (mm, s) => s.startUnit(mm, 'aggregator', 'etc/systemd/system/presence-aggregator.service'),
    };
  const reloads = /^\s*systemctl reload mosquitto\s*&&\s*systemctl kill -s HUP presence-aggregator\b/.test(c);
  if (reloads)
    return {
      kind: 'action',
      what: 'SIGHUP mosquitto and the aggregator',
      run: async (_mm, s) => {
        s.hup('mosquitto');
        s.hup('aggregator');
      },
    };
  // To the gateway: its own prefix.
  const scp = /^\s*scp (\S+) (?:\S+@)?[\w.-]+:(\S+)(.*)$/.exec(c);
  if (scp) {
    const to = substitute(scp[2]!, { ...m, prefix: m.gatewayPrefix });
    c = `mkdir -p ${dirname(to)} && cp ${scp[1]} ${to}${scp[3]}`;
  }
  // A command piped to the gateway over ssh: run there, in the gateway's prefix (its folder made
  // first, as for scp).
  const ssh = /^(.*?)\|\s*ssh (?:\S+@)?[\w.-]+ '([^']*)'(.*)$/.exec(c);
  if (ssh) {
    const remote = substitute(ssh[2]!, { ...m, prefix: m.gatewayPrefix });
    const to = /\s(\/\S+)\s*$/.exec(remote)?.[1];
    c = `${ssh[1]}| { ${to ? `mkdir -p ${dirname(to)} && ` : ''}${remote}; }${ssh[3]}`;
  }
  // On the gateway: a capture file instead of the monitor-mode interface, replayed at full speed
  // (the gateway ends once its windows are acknowledged); the queue in its state folder.
  if (/\bcmd:tcpdump -i wlan0mon\b/.test(c)) {
    c = c.replace(/cmd:tcpdump -i wlan0mon [^']*/g, `pcap:${m.capture}`);
    if (/\bpresence gateway\b/.test(c)) c = c.replace(/\bpresence gateway\b/, `STATE_DIRECTORY=${m.prefix}/var/lib/presence-gateway $& --speed max`);
  }
  c = c.replace(/\bbroker\.example(\.net)?\b/g, '127.0.0.1');
  // mosquitto_sub runs until stopped: here it ends after the first message (within 30 s); without -p
  // it means the default port.
  if (/^\s*mosquitto_sub\b/.test(c)) {
    if (!/\s-p\s/.test(c)) c = c.replace(/^\s*mosquitto_sub\b/, '$& -p 1883');
    if (!/\s-C\s/.test(c)) c = c.replace(/^\s*mosquitto_sub\b/, '$& -C 1 -W 30');
  }
  c = substitute(c, m);
  // curl exits 0 on an HTTP error: here an error answer fails the command.
  c = c.replace(/(^|&&\s*|\|\s*)curl\s/g, '$1curl --fail-with-body ');
  if (/\bpresence(\.js)? aggregator\b/.test(c) && !/--help|--print/.test(c)) {
    if (!/--http-port\b/.test(c)) c = c.replace(/\bpresence(\.js)? aggregator\b/, `$& --http-port ${m.ports.aggregatorHttp}`);
    return { kind: 'background', cmd: c, health: `http://127.0.0.1:${m.ports.aggregatorHttp}/healthz` };
  }
  if (/^\s*presence doctor\s*(#.*)?$/.test(c))
    return {
      kind: 'shell',
      cmd: c,
      // Without a configuration doctor checks the machine; one with no Wi-Fi card and no Bluetooth
      // adapter (this one; a Pi has its built-in Bluetooth) fails "a source that delivers frames".
      // What the doc expects at this step must be there all the same.
      accept: (code, out) => {
        for (const want of ['[ OK ] node', '[ OK ] firmware']) if (!out.includes(want)) return `no "${want}" in its output`;
        const fails = out.split('\n').filter((l) => l.startsWith('[FAIL]'));
        if (code === 0) return null;
        if (fails.length === 1 && /^\[FAIL\] a source that delivers frames\s+this machine has no Wi-Fi interface and no Bluetooth adapter/.test(fails[0]!))
          return null;
        return `exit code ${code} with ${fails.length ? fails.join('; ') : 'no [FAIL] line'}`;
      },
    };
  return { kind: 'shell', cmd: c };
}

class Services {
  private procs = new Map<string, { proc: ChildProcess; output: () => string }>();

  constructor(private readonly log: (s: string) => void = () => {}) {}

  private spawnLogged(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
    const proc = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    this.procs.set(name, { proc, output: () => out });
    return proc;
  }

  running(name: string): boolean {
    const p = this.procs.get(name)?.proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  async startInfluxd(m: Machine): Promise<void> {
    if (this.running('influxd')) return; // systemctl enable --now on a running service does nothing
    const dir = join(m.prefix, 'var/lib/influxdb');
    mkdirSync(dir, { recursive: true });
    const conf = join(m.prefix, 'etc/influxdb/influxdb.conf');
    mkdirSync(dirname(conf), { recursive: true });
    // As test/support/influxd.ts, but no database is made: the docs make it.
    writeFileSync(
      conf,
      `reporting-disabled = true\nbind-address = "127.0.0.1:${m.ports.influxRpc}"\n[meta]\n  dir = "${dir}/meta"\n[data]\n  dir = "${dir}/data"\n  wal-dir = "${dir}/wal"\n  query-log-enabled = false\n` +
        `[http]\n  enabled = true\n  bind-address = "127.0.0.1:${m.ports.influx}"\n  log-enabled = false\n[monitor]\n  store-enabled = false\n[logging]\n  level = "warn"\n`,
    );
    const proc = this.spawnLogged('influxd', 'influxd', ['-config', conf]);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`influxd exited (${proc.exitCode}): ${this.output('influxd')}`);
      try {
        if ((await fetch(`http://127.0.0.1:${m.ports.influx}/ping`)).status === 204) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`influxd did not answer /ping: ${this.output('influxd')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async startVictoria(m: Machine): Promise<void> {
    if (this.running('victoria-metrics')) return;
    // As test/support/victoria.ts does.
    const proc = this.spawnLogged('victoria-metrics', 'victoria-metrics', [
      `-storageDataPath=${join(m.prefix, 'var/lib/victoria-metrics')}`,
      `-httpListenAddr=127.0.0.1:${m.ports.influx2}`,
      '-retentionPeriod=100y',
      '-loggerLevel=ERROR',
    ]);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`victoria-metrics exited (${proc.exitCode}): ${this.output('victoria-metrics')}`);
      try {
        if ((await fetch(`http://127.0.0.1:${m.ports.influx2}/health`)).ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`victoria-metrics did not answer /health: ${this.output('victoria-metrics')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Starts Mosquitto as Debian's mosquitto.service does (/lib/systemd/system/mosquitto.service: no
   * User=, so ExecStart=/usr/sbin/mosquitto -c /etc/mosquitto/mosquitto.conf runs as root, and
   * Mosquitto, with no `user` line in Debian's mosquitto.conf, switches to its default user
   * `mosquitto` before it reads the TLS files, the password file and the ACL), with the folders
   * made and owned as the package's postinst and the unit's ExecStartPre leave them. Run by
   * anyone but root (or without a user mosquitto), it runs as that user and reads its own files.
   */
  async restartMosquitto(m: Machine): Promise<void> {
    await this.stop('mosquitto');
    const etc = join(m.prefix, 'etc/mosquitto');
    const lib = join(m.prefix, 'var/lib/mosquitto');
    const logs = join(m.prefix, 'var/log/mosquitto');
    const run = join(m.prefix, 'run/mosquitto');
    mkdirSync(join(etc, 'conf.d'), { recursive: true });
    mkdirSync(lib, { recursive: true });
    // ExecStartPre=/bin/mkdir -m 740 -p /var/log/mosquitto (and /run/mosquitto)
    for (const d of [logs, run]) {
      mkdirSync(dirname(d), { recursive: true });
      if (!existsSync(d)) mkdirSync(d, { mode: 0o740 });
    }
    const user = debianMosquittoUser();
    // postinst: chown mosquitto /var/lib/mosquitto /var/log/mosquitto; ExecStartPre=/bin/chown mosquitto /var/log/mosquitto (and /run/mosquitto)
    if (user) for (const d of [lib, logs, run]) chownSync(d, user.uid, -1);
    // Debian's /etc/mosquitto/mosquitto.conf, in the prefix (no `user` line).
    writeFileSync(
      join(etc, 'mosquitto.conf'),
      [
        `pid_file ${run}/mosquitto.pid`,
        '',
        'persistence true',
        `persistence_location ${lib}/`,
        '',
        `log_dest file ${logs}/mosquitto.log`,
        '',
        `include_dir ${etc}/conf.d`,
        '',
      ].join('\n'),
    );
    this.tlsFiles(m);
    // ExecStart (Type=notify: without systemd's NOTIFY_SOCKET Mosquitto notifies nobody, and systemd is not here to wait for it)
    const proc = this.spawnLogged('mosquitto', 'mosquitto', ['-c', join(etc, 'mosquitto.conf')]);
    const exited = new Promise<never>((_, reject) =>
      proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${this.output('mosquitto')}${this.mosquittoLog(m)}`))),
    );
    await Promise.race([waitForPort(m.ports.mqtt, 30_000), exited]);
    exited.catch(() => {});
    // The user it reads its files as from now on (the effective uid of /proc/PID/status).
    const uid = Number(/^Uid:\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1]);
    if (user && uid !== user.uid) throw new Error(`mosquitto runs as uid ${uid}, not as its user mosquitto (${user.uid}) as under Debian's unit`);
    this.log(
      user
        ? `    mosquitto started as root as Debian's unit starts it, running as user mosquitto (uid ${uid})`
        : `    mosquitto running as this user (uid ${uid}): not root or no user mosquitto here, so it cannot switch to one as under Debian's unit`,
    );
  }

  /**
   * The conf.d files substituted in place, and the TLS files they name (certfile, keyfile, cafile)
   * made with openssl where absent, as the reader would have them before following the docs: root's,
   * the key readable by root only (mode 0600, as openssl and a certbot privkey.pem leave it).
   */
  tlsFiles(m: Machine): void {
    const confd = join(m.prefix, 'etc/mosquitto/conf.d');
    if (!existsSync(confd)) return;
    for (const f of readdirSync(confd)) {
      const p = join(confd, f);
      const text = substitute(readFileSync(p, 'utf8'), m);
      writeFileSync(p, text);
      const named = (k: string) => new RegExp(`^${k}\\s+(\\S+)`, 'm').exec(text)?.[1];
      const want = ['certfile', 'keyfile', 'cafile'].map(named).filter(Boolean) as string[];
      if (!want.length || want.every((w) => existsSync(w))) continue;
      const certs = join(m.root, 'certs');
      if (!existsSync(join(certs, 'server.key'))) {
        mkdirSync(certs, { recursive: true });
        makeCertificates(certs, { cn: 'docs-run', user: 'docs-run', password: 'docs-run' });
      }
      const from: Record<string, string> = { certfile: 'server.pem', keyfile: 'server.key', cafile: 'ca.pem' };
      for (const k of ['certfile', 'keyfile', 'cafile']) {
        const to = named(k);
        if (!to || existsSync(to)) continue;
        mkdirSync(dirname(to), { recursive: true });
        cpSync(join(certs, from[k]!), to);
        chmodSync(to, k === 'keyfile' ? 0o600 : 0o644);
      }
    }
  }

  mosquittoLog(m: Machine): string {
    const f = join(m.prefix, 'var/log/mosquitto/mosquitto.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  async background(name: string, cmd: string, cwd: string, env: NodeJS.ProcessEnv, health: string): Promise<void> {
    const proc = this.spawnLogged(name, 'bash', ['-c', `exec ${cmd}`], { cwd, env });
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(`exited (${proc.exitCode ?? proc.signalCode}) before ${health} answered:\n${this.output(name)}`);
      try {
        const res = await fetch(health);
        if (res.ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`${health} did not answer ok:\n${this.output(name)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** What systemd would start for a unit file the doc wrote: its ExecStart (substituted, with
   *  `--http-port`), the variables of its EnvironmentFile, in the background until /healthz answers. */
  async startUnit(m: Machine, name: string, unitPath: string): Promise<void> {
    const file = join(m.prefix, unitPath);
    if (!existsSync(file)) throw new Error(`no unit file ${file}: the doc did not write it`);
    const unit = readFileSync(file, 'utf8');
    const exec = /^ExecStart=(.+)$/m.exec(unit)?.[1];
    if (!exec) throw new Error(`${unitPath} has no ExecStart=`);
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (/^(INFLUX_|MQTT_|LOG_)/.test(k)) delete env[k];
    for (const [, optional, f] of unit.matchAll(/^EnvironmentFile=(-?)(.+)$/gm)) {
      const path = substitute(f!, m);
      if (!existsSync(path)) {
        if (optional) continue;
        throw new Error(`EnvironmentFile ${path} is missing`);
      }
      for (const l of readFileSync(path, 'utf8').split('\n')) {
        const kv = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(l);
        if (kv) env[kv[1]!] = kv[2]!.replace(/^"(.*)"$/, '$1');
      }
    }
    let cmd = substitute(exec, m);
    if (!existsSync('/usr/bin/node')) cmd = cmd.replace(/^\/usr\/bin\/node\b/, process.execPath);
    if (!/--http-port\b/.test(cmd)) cmd = cmd.replace(/\baggregator\b/, `aggregator --http-port ${m.ports.aggregatorHttp}`);
    await this.background(name, cmd, m.checkout, env, `http://127.0.0.1:${m.ports.aggregatorHttp}/healthz`);
  }

  hup(name: string): void {
    const p = this.procs.get(name)?.proc;
    if (!p || !this.running(name)) throw new Error(`${name} is not running, nothing to reload`);
    p.kill('SIGHUP');
  }

  output(name: string): string {
    return this.procs.get(name)?.output() ?? '';
  }

  names(): string[] {
    return [...this.procs.keys()];
  }

  async stop(name: string): Promise<void> {
    const p = this.procs.get(name)?.proc;
    if (!p || !this.running(name)) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        try {
          process.kill(-p.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, 15_000);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      try {
        process.kill(-p.pid!, 'SIGTERM');
      } catch {
        p.kill('SIGTERM');
      }
    });
  }

  async stopAll(): Promise<void> {
    for (const n of [...this.procs.keys()].reverse()) await this.stop(n);
  }
}

async function aggregatorMetrics(port: number): Promise<{ counts: number; received: number; acked: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sum = (re: RegExp) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
  return {
    counts: sum(/^presence_aggregator_messages_total\{kind="counts"\} (\S+)$/gm),
    received: sum(/^presence_aggregator_messages_total\{[^}]*\} (\S+)$/gm),
    acked: sum(/^presence_aggregator_acked_total (\S+)$/gm),
  };
}

/** Waits (on the aggregator's own counters) until it received `counts` count messages and acknowledged every message. */
async function aggregatorTook(port: number, counts: number): Promise<string | null> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const mm = await aggregatorMetrics(port);
    if (mm.counts >= counts && mm.acked >= mm.received) return null;
    if (Date.now() > deadline) return `the aggregator did not take the gateway's windows: ${JSON.stringify(mm)}, waited for ${counts} count messages`;
    await new Promise((r) => setTimeout(r, 200));
  }
}

let tarball: string | null = null;
/** `npm pack` of this checkout, once per run (its prepack build finds dist/ and the WASM current). */
function pack(root: string): string {
  if (tarball) return tarball;
  const dir = join(root, 'pack');
  mkdirSync(dir, { recursive: true });
  const out = execFileSync(...packCommand(dir), { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [packed] = JSON.parse(out) as Array<{ filename: string }>;
  tarball = join(dir, packed!.filename);
  return tarball;
}

/** A temp machine: a copy of this checkout as git sees it (plus dist/ and the WASM), a prefix, free ports. */
async function machine(root: string, name: string): Promise<Machine> {
  const base = join(root, name);
  const checkout = join(base, 'presence-counter');
  const prefix = join(base, 'root');
  mkdirSync(checkout, { recursive: true });
  mkdirSync(join(prefix, 'usr/local/bin'), { recursive: true });
  // Root's home, which every machine has (the docs write secrets to /root/...).
  mkdirSync(join(prefix, 'root'), { recursive: true });
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: REPO, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f && existsSync(join(REPO, f)));
  for (const f of [...files, 'dist', 'firmware/build']) {
    if (!existsSync(join(REPO, f))) continue;
    cpSync(join(REPO, f), join(checkout, f), { recursive: true, preserveTimestamps: true, dereference: false });
  }
  symlinkSync(join(REPO, 'node_modules'), join(checkout, 'node_modules'));
  const tgz = pack(root);
  cpSync(tgz, join(checkout, relative(dirname(tgz), tgz)));
  // What the backend team hands a field engineer (docs/field-guide.md): the broker's CA certificate.
  const backend = join(root, 'backend');
  if (!existsSync(join(backend, 'ca.pem'))) {
    mkdirSync(backend, { recursive: true });
    makeCertificates(backend, { cn: 'docs-run', user: 'docs-run', password: 'docs-run' });
  }
  cpSync(join(backend, 'ca.pem'), join(checkout, 'ca.pem'));
  const gatewayPrefix = join(base, 'gateway-root');
  mkdirSync(join(gatewayPrefix, 'root'), { recursive: true });
  const capture = join(root, 'capture', 'gw-lobby.pcapng');
  if (!existsSync(capture))
    execFileSync(
      process.execPath,
      [join(REPO, 'scripts/presence.js'), 'simulate', 'quiet-night', '--seed', '3', '--duration', '3m', '--scale', '0.2', '--out', dirname(capture)],
      {
        stdio: 'ignore',
      },
    );
  const ports = {
    mqtt: await freePort(),
    mqtts: await freePort(),
    influx: await freePort(),
    aggregatorHttp: await freePort(),
    influxRpc: await freePort(),
    influx2: await freePort(),
  };
  return { root: base, checkout, prefix, gatewayPrefix, capture, ports };
}

export interface RunResult {
  ran: Array<{ doc: string; line: number; cmd: string }>;
  skipped: Array<{ doc: string; line: number; what: string; why: string }>;
  failure: string | null;
}

function sh(cmd: string, cwd: string, env: NodeJS.ProcessEnv, cwdFile: string): Promise<{ code: number; out: string }> {
  const script = `set -o pipefail\n${cmd}\nrc=$?\npwd > ${JSON.stringify(cwdFile)}\nexit $rc\n`;
  return new Promise((resolve) => {
    const p = spawn('bash', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), out }));
  });
}

/** Runs one doc on a machine of its own. */
export async function runDoc(doc: string, root: string, log: (s: string) => void): Promise<RunResult> {
  const result: RunResult = { ran: [], skipped: [], failure: null };
  const text = readFileSync(join(REPO, doc), 'utf8');
  const blocks = parseBlocks(doc, text);
  const covered = COVERED.includes(doc);
  for (const b of blocks) {
    if (covered && b.lang === 'sh' && !('run' in b.attrs) && !('skip' in b.attrs))
      return { ...result, failure: `${doc}:${b.line}: a sh block without a marker: write \`\`\`sh run or \`\`\`sh skip="why" (see scripts/run-docs.ts)` };
  }
  const m = await machine(root, doc.replace(/[^\w]+/g, '-'));
  const services = new Services(log);
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(INFLUX_|MQTT_|LOG_)/.test(k))),
    PATH: `${join(m.prefix, 'usr/local/bin')}:${process.env.PATH}`,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    npm_config_prefer_offline: 'true',
  };
  const cwdFile = join(m.root, '.cwd');
  const where = (line: number) => `${doc}:${line}`;
  log(
    `== ${doc} (checkout ${m.checkout}, prefix ${m.prefix}; MQTT ${m.ports.mqtt}, MQTT/TLS ${m.ports.mqtts}, InfluxDB ${m.ports.influx}, aggregator HTTP ${m.ports.aggregatorHttp})`,
  );
  try {
    for (const b of blocks) {
      if (b.attrs.file && ['yaml', 'ini', 'json'].includes(b.lang)) {
        const to = substitute(b.attrs.file, m);
        mkdirSync(dirname(to), { recursive: true });
        writeFileSync(to, substitute(`${b.lines.map((l) => l.text).join('\n')}\n`, m));
        log(`${where(b.line)}: wrote ${b.attrs.file}`);
        continue;
      }
      if (b.lang !== 'sh') continue;
      if ('skip' in b.attrs) {
        result.skipped.push({ doc, line: b.line, what: 'block', why: b.attrs.skip || '(no reason given)' });
        log(`${where(b.line)}: SKIPPED block: ${b.attrs.skip}`);
        continue;
      }
      if (!('run' in b.attrs)) continue;
      if (b.attrs.needs === 'influxd') await services.startInfluxd(m);
      // InfluxDB 2.x's write API: VictoriaMetrics stands in for it (it takes /api/v2/write), on its own port.
      if (b.attrs.needs === 'influx2') await services.startVictoria(m);
      let bm = b.attrs.needs === 'influx2' ? { ...m, ports: { ...m.ports, influx: m.ports.influx2 } } : m;
      if (b.attrs.host === 'gateway') {
        bm = { ...m, prefix: m.gatewayPrefix };
        // Set up as docs/field-guide.md says (step 7): the broker's CA certificate.
        const ca = join(m.root, 'certs', 'ca.pem');
        if (existsSync(ca) && !existsSync(join(m.gatewayPrefix, 'etc/presence/ca.pem'))) {
          mkdirSync(join(m.gatewayPrefix, 'etc/presence'), { recursive: true });
          cpSync(ca, join(m.gatewayPrefix, 'etc/presence/ca.pem'));
          log(`${where(b.line)}: the gateway's machine has the broker's CA as /etc/presence/ca.pem (docs/field-guide.md, step 7)`);
        }
      }
      let cwd = m.checkout;
      for (const c of commands(b)) {
        const step = rewrite(c.text, bm);
        const fail = (why: string) => {
          throw new Error(`${where(c.line)}: ${c.text.trim()}\n${step.kind === 'shell' || step.kind === 'background' ? `  ran: ${step.cmd}\n` : ''}${why}`);
        };
        if (step.kind === 'skip') {
          result.skipped.push({ doc, line: c.line, what: c.text.trim(), why: step.why });
          log(`${where(c.line)}: SKIPPED ${c.text.trim()}: ${step.why}`);
          continue;
        }
        log(`${where(c.line)}: ${c.text.trim()}`);
        const before = services.running('aggregator') ? (await aggregatorMetrics(m.ports.aggregatorHttp)).counts : 0;
        if (step.kind === 'action') {
          try {
            await step.run(m, services);
          } catch (e) {
            fail(String((e as Error).message));
          }
        } else if (step.kind === 'background') {
          try {
            await services.background(`aggregator`, step.cmd, cwd, env, step.health);
          } catch (e) {
            fail(String((e as Error).message));
          }
        } else {
          const r = await sh(step.cmd, cwd, env, cwdFile);
          if (process.argv.includes('--verbose')) log(r.out.replace(/^/gm, '    | '));
          const wrong = step.accept ? step.accept(r.code, r.out) : r.code !== 0 ? `exit code ${r.code}` : null;
          if (wrong) fail(`${wrong}:\n${r.out.replace(/^/gm, '  | ')}`);
          if (existsSync(cwdFile)) cwd = readFileSync(cwdFile, 'utf8').trim();
          // A gateway that ended has its windows acknowledged by the broker, not yet written: the
          // checks that follow read InfluxDB, so wait until the aggregator has taken every window
          // the gateway closed and acknowledged all it received (its /metrics).
          const windows = (r.out.match(/"msg":"window closed"/g) ?? []).length;
          if (b.attrs.host === 'gateway' && windows > 0 && services.running('aggregator')) {
            const wrong = await aggregatorTook(m.ports.aggregatorHttp, before + windows);
            if (wrong) fail(wrong);
          }
        }
        result.ran.push({ doc, line: c.line, cmd: c.text.trim() });
      }
    }
  } catch (e) {
    const logs = services
      .names()
      .map((n) => `--- ${n} output:\n${services.output(n).slice(-4000)}`)
      .join('\n');
    result.failure = `${(e as Error).message}\n${logs}${services.names().includes('mosquitto') ? `\n--- mosquitto log:\n${services.mosquittoLog(m).slice(-2000)}` : ''}`;
  } finally {
    await services.stopAll();
  }
  return result;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const docs = args.filter((a) => !a.startsWith('--'));
  const root = mkdtempSync(join(tmpdir(), 'presence-docs-run-'));
  chmodSync(root, 0o755);
  let failed = false;
  const skipped: RunResult['skipped'] = [];
  let ran = 0;
  try {
    for (const doc of docs.length ? docs : DEFAULT_DOCS) {
      const r = await runDoc(doc, root, (s) => console.log(s));
      ran += r.ran.length;
      skipped.push(...r.skipped);
      if (r.failure) {
        console.error(`FAILED ${r.failure}`);
        failed = true;
        break;
      }
    }
  } finally {
    if (!args.includes('--keep')) rmSync(root, { recursive: true, force: true });
    else console.log(`kept ${root}`);
  }
  console.log(`${failed ? 'FAILED' : 'passed'}: ${ran} commands ran, ${skipped.length} skipped`);
  for (const s of skipped) console.log(`  skipped ${s.doc}:${s.line}: ${s.what === 'block' ? 'block' : s.what} (${s.why})`);
  process.exit(failed ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
