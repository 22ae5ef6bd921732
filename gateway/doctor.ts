// `presence doctor`: checks, step by step, what a gateway needs on this machine and says what to fix.
// Every check returns ok / warn / fail with a one-line detail and, when not ok, the fix. A check that
// cannot run here (no systemd, no Wi-Fi adapter, no broker) reports that; it never throws.
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { Firmware } from '../firmware/host/firmware.ts';
import { CaptureParser, isSupportedLinkType, linkTypeName, readCaptureFile } from './capture/pcap.ts';
import { ConfigError, defaultQueueDir, loadConfig, parseDuration, type GatewayConfig, type GatewayFlags, type SourceConfig } from './config.ts';
import { mqttOptions, safeUrl } from './publisher.ts';
import { writeDurably } from './queue.ts';
import { redactAddresses } from './status.ts';

export type Level = 'ok' | 'warn' | 'fail';
export interface CheckResult {
  step: string;
  level: Level;
  detail: string;
  fix?: string;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  error?: string;
}

function run(cmd: string, args: string[], timeoutMs = 5000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        stdout: stdout ?? '',
        stderr: stderr ?? '',
        ...(e && typeof e.code !== 'number' ? { error: e.message } : {}),
      });
    });
  });
}

function which(bin: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    const p = join(dir || '.', bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** The program and `-i` interface of a capture command. */
export function parseCaptureCommand(command: string | string[]): { program: string; iface?: string } {
  const argv = Array.isArray(command) ? command : command.trim().split(/\s+/);
  let i = 0;
  while (i < argv.length && (argv[i] === 'sudo' || argv[i] === 'exec' || /^\w+=/.test(argv[i]))) i++;
  const program = argv[i] ?? '';
  const at = argv.findIndex((a) => a === '-i' || a === '--interface');
  const iface = at >= 0 ? argv[at + 1] : argv.find((a) => a.startsWith('-i') && a.length > 2)?.slice(2);
  return { program: program.split('/').pop()!, ...(iface ? { iface } : {}) };
}

const sysNet = '/sys/class/net';
function netType(iface: string): number | null {
  try {
    return Number(readFileSync(join(sysNet, iface, 'type'), 'utf8').trim());
  } catch {
    return null;
  }
}
function wirelessInterfaces(): string[] {
  try {
    return readdirSync(sysNet).filter((i) => existsSync(join(sysNet, i, 'wireless')) || existsSync(join(sysNet, i, 'phy80211')));
  } catch {
    return [];
  }
}
/** ARPHRD_IEEE80211_RADIOTAP (803): an interface in monitor mode delivering radiotap frames. */
const ARPHRD_RADIOTAP = 803;

async function checkCapturePermission(cfg: GatewayConfig | null): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const commands = (cfg?.sources ?? []).filter((s): s is Extract<SourceConfig, { type: 'command' }> => s.type === 'command');
  const programs = commands.length ? [...new Set(commands.map((c) => parseCaptureCommand(c.command).program))] : ['tcpdump', 'dumpcap'];
  const root = process.getuid?.() === 0;
  for (const prog of programs) {
    const path = which(prog);
    const pkg = prog === 'dumpcap' || prog === 'tshark' ? 'tshark' : prog;
    if (!path) {
      out.push({
        step: `capture tool ${prog}`,
        level: commands.length ? 'fail' : 'warn',
        detail: `${prog} is not installed`,
        fix: `sudo apt-get install -y ${pkg}`,
      });
      continue;
    }
    if (root) {
      out.push({ step: `capture permission (${prog})`, level: 'ok', detail: `${path}; running as root` });
      continue;
    }
    const cap = await run('getcap', [path]);
    if (/cap_net_raw/.test(cap.stdout) && /cap_net_admin/.test(cap.stdout)) {
      out.push({ step: `capture permission (${prog})`, level: 'ok', detail: `${path} has ${cap.stdout.trim().split(/\s+/).slice(1).join(' ')}` });
    } else {
      out.push({
        step: `capture permission (${prog})`,
        level: 'fail',
        detail: `not root and ${path} lacks cap_net_raw,cap_net_admin`,
        fix: `sudo setcap cap_net_raw,cap_net_admin=eip ${path}   (or run the gateway with the systemd unit, which grants these capabilities)`,
      });
    }
  }
  return out;
}

function checkMonitorMode(cfg: GatewayConfig | null): CheckResult[] {
  const out: CheckResult[] = [];
  const commands = (cfg?.sources ?? []).filter((s): s is Extract<SourceConfig, { type: 'command' }> => s.type === 'command');
  const wifiIfaces = commands
    .map((c) => parseCaptureCommand(c.command).iface)
    .filter((i): i is string => !!i && !/^(bluetooth|hci)/.test(i));
  if (!existsSync(sysNet)) return [{ step: 'monitor mode', level: 'warn', detail: `${sysNet} is absent: cannot inspect network interfaces here` }];
  const wireless = wirelessInterfaces();
  const monitors = (() => {
    try {
      return readdirSync(sysNet).filter((i) => netType(i) === ARPHRD_RADIOTAP);
    } catch {
      return [];
    }
  })();
  const fixFor = (phyIface: string) =>
    `sudo ip link set ${phyIface} down && sudo iw dev ${phyIface} set type monitor && sudo ip link set ${phyIface} up   (or: sudo iw dev ${phyIface} interface add wlan0mon type monitor && sudo ip link set wlan0mon up)`;
  if (wifiIfaces.length) {
    for (const iface of wifiIfaces) {
      const t = netType(iface);
      if (t === null)
        out.push({
          step: `monitor mode (${iface})`,
          level: 'fail',
          detail: `interface ${iface} does not exist (present: ${(readdirSync(sysNet) ?? []).join(', ')})`,
          fix: wireless.length ? fixFor(wireless[0]) : 'plug in a Wi-Fi adapter that supports monitor mode (check `iw list` for "monitor" under "Supported interface modes")',
        });
      else if (t === ARPHRD_RADIOTAP) out.push({ step: `monitor mode (${iface})`, level: 'ok', detail: `${iface} is in monitor mode (radiotap)` });
      else out.push({ step: `monitor mode (${iface})`, level: 'fail', detail: `${iface} exists but is not in monitor mode (link type ${t})`, fix: fixFor(iface) });
    }
    return out;
  }
  if (monitors.length) return [{ step: 'monitor mode', level: 'ok', detail: `monitor-mode interfaces: ${monitors.join(', ')}` }];
  if (wireless.length)
    return [{ step: 'monitor mode', level: 'fail', detail: `Wi-Fi interfaces ${wireless.join(', ')} but none in monitor mode`, fix: fixFor(wireless[0]) }];
  return [
    {
      step: 'monitor mode',
      level: commands.length ? 'fail' : 'warn',
      detail: 'no Wi-Fi interface on this machine',
      fix: 'plug in a USB Wi-Fi adapter that supports monitor mode (e.g. one on the mt76 or ath9k_htc driver); `iw list` must show "monitor"',
    },
  ];
}

function checkBluetooth(cfg: GatewayConfig | null): CheckResult {
  const wantsBt = (cfg?.sources ?? []).some((s) => s.type === 'command' && /bluetooth|hci/.test(JSON.stringify(s.command)));
  let adapters: string[] = [];
  try {
    adapters = readdirSync('/sys/class/bluetooth').filter((a) => /^hci\d+$/.test(a));
  } catch {
    /* none */
  }
  if (adapters.length) return { step: 'bluetooth adapter', level: 'ok', detail: `adapters: ${adapters.join(', ')} (dumpcap names hciN as bluetoothN)` };
  return {
    step: 'bluetooth adapter',
    level: wantsBt ? 'fail' : 'warn',
    detail: 'no Bluetooth adapter (/sys/class/bluetooth has no hciN)',
    fix: 'sudo apt-get install -y bluez && sudo systemctl enable --now bluetooth && sudo rfkill unblock bluetooth; on a Raspberry Pi also check `dtoverlay=disable-bt` is not in /boot/firmware/config.txt',
  };
}

/** Runs one capture command for up to `timeoutMs` and counts the frames it writes. */
async function sampleCommand(command: string | string[], timeoutMs: number): Promise<{ frames: number; linkTypes: number[]; problem?: string }> {
  const { spawn } = await import('node:child_process');
  const child = Array.isArray(command)
    ? spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
  const parser = new CaptureParser('capture command');
  let frames = 0;
  let problem: string | undefined;
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-1000)));
  child.stdout!.on('data', (d: Buffer) => {
    try {
      frames += parser.push(d).length;
    } catch (e) {
      problem ??= (e as Error).message;
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (e) => {
      problem ??= e.message;
      resolve(null);
    });
    child.once('close', (code) => resolve(code));
  });
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
  const code = await exited;
  clearTimeout(timer);
  const last = redactAddresses(stderr.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '');
  if (!problem && frames === 0 && code !== null && code !== 0 && code !== 143) problem = `exited with code ${code}${last ? `: ${last}` : ''}`;
  return { frames, linkTypes: [...parser.linkTypes], ...(problem ? { problem } : {}) };
}

async function checkFrames(cfg: GatewayConfig | null, timeoutMs: number): Promise<CheckResult[]> {
  if (!cfg) return [{ step: 'frames arriving', level: 'warn', detail: 'no sources configured (give --config or --source) so no capture was tried' }];
  const out: CheckResult[] = [];
  for (const s of cfg.sources) {
    const step = `frames arriving (${s.name})`;
    if (s.type === 'stdin') {
      out.push({ step, level: 'warn', detail: 'stdin source: doctor cannot sample it; pipe a capture in with the gateway itself' });
      continue;
    }
    if (s.type === 'file') {
      try {
        let frames = 0;
        for await (const batch of readCaptureFile(s.path)) frames += batch.length;
        out.push({ step, level: frames ? 'ok' : 'warn', detail: `${s.path}: ${frames} frames`, ...(frames ? {} : { fix: 'the file holds no frames' }) });
      } catch (e) {
        out.push({ step, level: 'fail', detail: (e as Error).message, fix: 'give a pcap or pcapng file (tcpdump -w / dumpcap -w output)' });
      }
      continue;
    }
    const r = await sampleCommand(s.command, timeoutMs);
    const unsupported = r.linkTypes.filter((l) => !isSupportedLinkType(l));
    if (unsupported.length) {
      out.push({
        step,
        level: 'fail',
        detail: `capture link type ${unsupported.map(linkTypeName).join(', ')} cannot be counted`,
        fix: 'capture from the monitor-mode interface (radiotap, 127) or the Bluetooth adapter (dumpcap -i bluetoothN), not a normal network interface',
      });
    } else if (r.frames > 0) out.push({ step, level: 'ok', detail: `${r.frames} frames in ${timeoutMs / 1000}s (link types ${r.linkTypes.map(linkTypeName).join(', ')})` });
    else
      out.push({
        step,
        level: 'fail',
        detail: r.problem ? redactAddresses(r.problem) : `no frames in ${timeoutMs / 1000}s`,
        fix: r.problem
          ? 'run the command by hand to see its error; check the interface name, that it is up, and capture permission'
          : 'check the interface is in monitor mode and up, on a busy channel (sudo iw dev wlan0mon set channel 6); for Bluetooth, that the adapter is up (bluetoothctl power on)',
      });
  }
  return out;
}

async function checkBroker(cfg: GatewayConfig | null): Promise<CheckResult> {
  if (!cfg) return { step: 'broker reachable', level: 'warn', detail: 'no broker configured (give --config or --mqtt-url)' };
  let opts;
  try {
    opts = mqttOptions(cfg, 10);
  } catch (e) {
    return { step: 'broker reachable', level: 'fail', detail: (e as Error).message, fix: 'check the mqtt.ca / cert / key / password_file paths' };
  }
  const url = safeUrl(cfg.mqtt.url);
  const { will: _will, ...rest } = opts;
  return new Promise((resolve) => {
    const client = mqtt.connect(cfg.mqtt.url, { ...rest, clientId: `${opts.clientId}-doctor`, reconnectPeriod: 0, connectTimeout: 5000 });
    const finish = (r: CheckResult) => {
      clearTimeout(timer);
      client.end(true);
      resolve(r);
    };
    const timer = setTimeout(
      () => finish({ step: 'broker reachable', level: 'fail', detail: `${url}: no answer in 6 s`, fix: 'check the host and port, the network route and any firewall between gateway and broker' }),
      6000,
    );
    client.once('connect', () => finish({ step: 'broker reachable', level: 'ok', detail: `${url}: connected` }));
    client.once('error', (err) => {
      const m = err.message;
      const fix = /not authori[sz]ed|bad user name or password/i.test(m)
        ? 'check mqtt.username / mqtt.password (or MQTT_PASSWORD, MQTT_PASSWORD_FILE) against the broker password file'
        : /certificate|self.signed|CERT|SSL|TLS/i.test(m)
          ? 'check mqtt.ca is the CA that signed the broker certificate and the URL host matches the certificate name'
          : /ECONNREFUSED/.test(m)
            ? 'nothing listens there: start the broker, or fix the port in mqtt.url'
            : 'check mqtt.url and that the broker is running';
      finish({ step: 'broker reachable', level: 'fail', detail: `${url}: ${m}`, fix });
    });
  });
}

async function checkClock(): Promise<CheckResult> {
  const step = 'clock synchronised';
  const td = await run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value']);
  if (td.code === 0 && td.stdout.trim() === 'yes') return { step, level: 'ok', detail: 'timedatectl: NTP synchronised' };
  if (td.code === 0 && td.stdout.trim() === 'no')
    return { step, level: 'fail', detail: 'timedatectl: the clock is NOT synchronised', fix: 'sudo timedatectl set-ntp true (systemd-timesyncd), or install chrony; the gateway needs network access to an NTP server' };
  if (existsSync('/run/systemd/timesync/synchronized')) return { step, level: 'ok', detail: 'systemd-timesyncd reports synchronised' };
  const chrony = await run('chronyc', ['-n', 'tracking']);
  if (chrony.code === 0) {
    const status = /Leap status\s*:\s*(.+)/.exec(chrony.stdout)?.[1]?.trim();
    if (status === 'Normal') return { step, level: 'ok', detail: 'chrony: synchronised' };
    return { step, level: 'fail', detail: `chrony: leap status ${status ?? 'unknown'}`, fix: 'check `chronyc sources`: chrony needs a reachable NTP server' };
  }
  return {
    step,
    level: 'warn',
    detail: 'cannot tell: no systemd (timedatectl) and no chrony on this machine',
    fix: 'on the gateway install systemd-timesyncd or chrony; windows are aligned to the wall clock, so a wrong clock shifts every window',
  };
}

function checkQueue(cfg: GatewayConfig | null): CheckResult {
  if (!cfg) return { step: 'queue folder', level: 'warn', detail: 'no configuration, so the queue folder is unknown' };
  const dir = defaultQueueDir(cfg);
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.doctor-${process.pid}`);
    writeDurably(probe, 'ok', dir);
    unlinkSync(probe);
    const queued = existsSync(join(dir, 'windows')) ? readdirSync(join(dir, 'windows')).filter((f) => f.endsWith('.json')).length : 0;
    return { step: 'queue folder', level: 'ok', detail: `${dir} is writable (fsync works); ${queued} windows queued` };
  } catch (e) {
    return { step: 'queue folder', level: 'fail', detail: `${dir}: ${(e as Error).message}`, fix: `create it and give the gateway's user write access (the systemd unit uses StateDirectory=presence-gateway)` };
  }
}

async function checkFirmware(): Promise<CheckResult> {
  try {
    await Firmware.load();
    return { step: 'firmware', level: 'ok', detail: 'WASM module loads' };
  } catch (e) {
    return { step: 'firmware', level: 'fail', detail: (e as Error).message.split('\n')[0], fix: 'install the package again (it carries firmware/build/presence.wasm); in a checkout: npm run build' };
  }
}

export async function runDoctor(flags: GatewayFlags & { framesTimeout?: string }): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let cfg: GatewayConfig | null = null;
  const anyConfig = Object.entries(flags).some(([k, v]) => v !== undefined && k !== 'framesTimeout' && k !== 'json');
  let brokerGiven = true;
  // The broker may come from the flag or from MQTT_URL, as for the gateway.
  const brokerUrl = flags.mqttUrl ?? flags.mqtt ?? (process.env.MQTT_URL || undefined);
  if (anyConfig) {
    try {
      if (!flags.config && !(flags.site && flags.zone && flags.id && brokerUrl) && flags.source?.length) {
        // Checking a step by hand (`presence doctor --source cmd:...`): fill in what is missing.
        brokerGiven = !!brokerUrl;
        cfg = loadConfig({ ...flags, site: flags.site ?? 'doctor', zone: flags.zone ?? 'doctor', id: flags.id ?? 'doctor', mqttUrl: brokerUrl ?? 'mqtt://127.0.0.1:1883', mqtt: undefined });
        results.push({
          step: 'configuration',
          level: 'warn',
          detail: `partial (no ${['site', 'zone', 'id', 'mqtt-url'].filter((k) => !(k === 'mqtt-url' ? brokerUrl : flags[k as keyof GatewayFlags])).join(', ')}): checking the given sources only`,
          fix: 'for the full check: presence doctor --config /etc/presence/gateway.yaml',
        });
      } else {
        cfg = loadConfig(flags);
        results.push({ step: 'configuration', level: 'ok', detail: `${cfg.gateway.site}/${cfg.gateway.zone}/${cfg.gateway.id}, ${cfg.sources.length} source(s)` });
      }
    } catch (e) {
      results.push({
        step: 'configuration',
        level: 'fail',
        detail: e instanceof ConfigError ? e.problems.join('; ') : (e as Error).message,
        fix: 'correct the configuration; see gateway/README.md for every key',
      });
    }
  } else results.push({ step: 'configuration', level: 'warn', detail: 'none given: only machine checks run', fix: 'presence doctor --config /etc/presence/gateway.yaml' });
  const [major] = process.versions.node.split('.').map(Number);
  results.push(major >= 20 ? { step: 'node', level: 'ok', detail: `Node ${process.versions.node}` } : { step: 'node', level: 'fail', detail: `Node ${process.versions.node}`, fix: 'install Node 20 or newer' });
  results.push(await checkFirmware());
  results.push(...(await checkCapturePermission(cfg)));
  results.push(...checkMonitorMode(cfg));
  results.push(checkBluetooth(cfg));
  results.push(...(await checkFrames(cfg, parseDuration(flags.framesTimeout ?? '5s'))));
  results.push(brokerGiven ? await checkBroker(cfg) : { step: 'broker reachable', level: 'warn', detail: 'no broker given (--mqtt-url)', fix: 'presence doctor --config /etc/presence/gateway.yaml' });
  results.push(await checkClock());
  results.push(brokerGiven || flags.queueDir ? checkQueue(cfg) : { step: 'queue folder', level: 'warn', detail: 'not checked for a partial configuration', fix: 'presence doctor --config /etc/presence/gateway.yaml' });
  return results;
}

export function printReport(results: CheckResult[], json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    return;
  }
  const tag = { ok: ' OK ', warn: 'WARN', fail: 'FAIL' };
  const width = Math.max(...results.map((r) => r.step.length));
  for (const r of results) {
    process.stdout.write(`[${tag[r.level]}] ${r.step.padEnd(width)}  ${r.detail}\n`);
    if (r.fix && r.level !== 'ok') process.stdout.write(`       ${' '.repeat(width)}  fix: ${r.fix}\n`);
  }
  const fails = results.filter((r) => r.level === 'fail').length;
  const warns = results.filter((r) => r.level === 'warn').length;
  process.stdout.write(`\n${fails ? `${fails} to fix` : 'ready'}${warns ? `, ${warns} warning(s)` : ''}\n`);
}
