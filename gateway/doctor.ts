// `presence doctor`: checks, step by step, what a gateway needs on this machine and says what to fix.
// Every check returns ok / warn / fail with a one-line detail and, when not ok, the fix. A check that
// cannot run here (no systemd, no Wi-Fi adapter, no broker) reports that; it never throws.
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import mqtt from 'mqtt';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame, FirmwareWindowCounts } from '../firmware/host/types.ts';
import { CaptureFormatError, CaptureParser, commandDamageFix, isSupportedLinkType, linkTypeName, readCaptureFile } from './capture/pcap.ts';
import { corridorOf } from './corridor.ts';
import {
  ConfigError,
  CORRIDOR_HINT,
  defaultQueueDir,
  epsilonText,
  loadConfig,
  parseDuration,
  startFileError,
  rejectedFramesFix,
  FLOWS_AT_HALF,
  SKETCH_P_ADVISED,
  type GatewayConfig,
  type GatewayFlags,
  type SourceConfig,
} from './config.ts';
import { mqttOptions, pubackReason, safeUrl } from './publisher.ts';
import { brokerErrorFix } from '../scripts/lib/mqtt-options.ts';
import { encode, offlineStatus, QOS, quantisedP, sketchEpsilon, statusTopic } from '../contract/index.ts';
import { queueFiles, queueStartFileFolder, unreadableQueueFiles, writeDurably } from './queue.ts';
import { currentUser, redactUrlsIn } from '../scripts/lib/secrets.ts';
import { makeFolders } from '../scripts/lib/folders.ts';
import { capturePipe, findExecutable, NO_OUTPUT_FIX, PIPE_BYTES, spawnCapture } from './sources.ts';
import { captureFix, configuredNames, headline, packageOf, parseCaptureCommand, shownName } from './capture-fix.ts';
import { REDACTED } from '../contract/redact.ts';
import { serviceUserOf, userIds } from './service-user.ts';
import { PACKAGE_ROOT, packageJson } from '../scripts/package-root.ts';

export { captureFix, parseCaptureCommand };
import { redactFreeText } from './status.ts';
import { isClockTime } from './window.ts';
import { printable, problemLines } from '../scripts/lib/usage.ts';

export type Level = 'ok' | 'warn' | 'fail';
export interface CheckResult {
  step: string;
  level: Level;
  detail: string;
  fix?: string;
  /** Every line a capture tool wrote on stderr, through the contract's redactFreeText (every token that could hold an address is <redacted>). */
  output?: string[];
}

type CommandSource = Extract<SourceConfig, { type: 'command' }>;

/** The radio of a source: its `radio` key, else guessed from a capture command's interface (bluetoothN/hciN: BLE). */
export function radioOf(s: SourceConfig): 'wifi' | 'ble' | 'mixed' | 'unknown' {
  if (s.radio) return s.radio;
  if (s.type !== 'command') return 'unknown';
  const iface = parseCaptureCommand(s.command).iface;
  if (iface) return /^(bluetooth|hci)/.test(iface) ? 'ble' : 'wifi';
  return /bluetooth|hci\d/.test(JSON.stringify(s.command)) ? 'ble' : 'unknown';
}

/** Capture commands of a configuration that listen on `radio` (a mixed or unknown one counts for both). */
/** Capture tools that open an interface of this machine: their interface, capture rights and monitor mode can be checked here. */
const LOCAL_CAPTURE_TOOLS = new Set(['tcpdump', 'dumpcap', 'tshark']);

/** A capture command that is not a local capture tool (ssh to another machine, a simulator, a script): what it captures from cannot be seen from here. */
const notLocal = (c: CommandSource) => !LOCAL_CAPTURE_TOOLS.has(parseCaptureCommand(c.command).program);

function commandsFor(cfg: GatewayConfig | null, radio: 'wifi' | 'ble'): CommandSource[] {
  return (cfg?.sources ?? []).filter((s): s is CommandSource => s.type === 'command' && [radio, 'mixed', 'unknown'].includes(radioOf(s)));
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

const SYS_NET = '/sys/class/net';
function netType(iface: string, sysNet = SYS_NET): number | null {
  try {
    return Number(readFileSync(join(sysNet, iface, 'type'), 'utf8').trim());
  } catch {
    return null;
  }
}
function wirelessInterfaces(sysNet = SYS_NET): string[] {
  try {
    return readdirSync(sysNet).filter((i) => existsSync(join(sysNet, i, 'wireless')) || existsSync(join(sysNet, i, 'phy80211')));
  } catch {
    return [];
  }
}
/** ARPHRD_IEEE80211_RADIOTAP (803): an interface in monitor mode delivering radiotap frames. */
const ARPHRD_RADIOTAP = 803;
/** Names of the link types (ARPHRD_*) of interfaces a capture command is pointed at by mistake. */
const ARPHRD_NAMES: Record<number, string> = {
  1: 'Ethernet',
  772: 'loopback',
  65534: 'no link layer (tun)',
  768: 'IP-in-IP tunnel',
  776: 'IPv6-in-IPv4 tunnel',
};

async function checkCapturePermission(cfg: GatewayConfig | null): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const commands = (cfg?.sources ?? []).filter((s): s is CommandSource => s.type === 'command');
  if (cfg && !commands.length) return [{ step: 'capture tool', level: 'ok', detail: 'not needed: no capture command in this configuration' }];
  const parsed = commands.map((c) => parseCaptureCommand(c.command));
  const programs = commands.length ? [...new Set(parsed.map((p) => p.program))] : ['tcpdump', 'dumpcap'];
  const root = process.getuid?.() === 0;
  for (const real of programs) {
    const found = which(real);
    // Shown as the gateway's log shows it (shownName): a program named after an address is <redacted>.
    const prog = shownName(real);
    const path = found && prog !== real ? REDACTED : found;
    const pkg = packageOf(real);
    if (!found) {
      out.push({
        step: `capture tool ${prog}`,
        level: commands.length ? 'fail' : 'warn',
        detail: `${prog} is not installed`,
        fix: LOCAL_CAPTURE_TOOLS.has(real) ? `sudo apt-get install -y ${pkg}` : `install ${prog}, or fix the command's path`,
      });
      continue;
    }
    // Another program (ssh, a script) captures elsewhere or not at all: its rights here say nothing.
    if (!LOCAL_CAPTURE_TOOLS.has(real)) {
      out.push({ step: `capture tool ${prog}`, level: 'ok', detail: `${path} (not a local capture tool: its capture rights are not checked here)` });
      continue;
    }
    // Run only through sudo or doas as root in every command that runs it: their rules grant the
    // rights, not the file's capabilities or who runs doctor; those rules are the gateway user's, not
    // checked here. Run as another user (sudo -u presence) the program has that user's rights: its
    // file's capabilities, whoever runs doctor.
    const runs = parsed.filter((p) => p.program === real);
    const asRoot = (p: (typeof parsed)[number]) => p.runAs === undefined || p.runAs === 'root' || p.runAs === '#0';
    const elevated = runs.map((p) => (asRoot(p) ? p.wrappers.filter((w) => w === 'sudo' || w === 'doas').at(-1) : undefined));
    const asOther = [...new Set(runs.flatMap((p) => (p.wrappers.some((w) => w === 'sudo' || w === 'doas') && !asRoot(p) ? [p.runAs!] : [])))];
    if (elevated.length && elevated.every(Boolean)) {
      out.push({
        step: `capture permission (${prog})`,
        level: 'ok',
        detail: `${path}; run through ${[...new Set(elevated)].join(' and ')}, whose rules grant the capture rights: not checked here (the gateway's user needs a rule that asks no password, e.g. sudo -n -l ${path} as that user)`,
      });
      continue;
    }
    if (root && !asOther.length) {
      out.push({ step: `capture permission (${prog})`, level: 'ok', detail: `${path}; running as root` });
      continue;
    }
    const cap = await run('getcap', [found]);
    if (/cap_net_raw/.test(cap.stdout) && /cap_net_admin/.test(cap.stdout)) {
      out.push({ step: `capture permission (${prog})`, level: 'ok', detail: `${path} has ${cap.stdout.trim().split(/\s+/).slice(1).join(' ')}` });
    } else {
      out.push({
        step: `capture permission (${prog})`,
        level: 'fail',
        detail: `${asOther.length ? `run as ${asOther.join(' and ')} (sudo -u), not root,` : 'not root'} and ${path} lacks cap_net_raw,cap_net_admin`,
        fix: `sudo setcap cap_net_raw,cap_net_admin=eip ${path}   (or run the gateway with the systemd unit, which grants these capabilities)`,
      });
    }
  }
  return out;
}

/**
 * Monitor mode of the Wi-Fi capture commands' interfaces (`sysNet`: /sys/class/net). Interface
 * names are shown as the log shows them (shownName): a USB adapter named after its MAC
 * (`wlx00c0ca9a1b2c`, systemd's name on Debian) is <redacted>, here and on the gateway page, whose
 * checks these are; a fix for it says how to find the name instead.
 */
export function checkMonitorMode(cfg: GatewayConfig | null, sysNet = SYS_NET): CheckResult[] {
  const out: CheckResult[] = [];
  const commands = commandsFor(cfg, 'wifi');
  // A configuration without a Wi-Fi capture command (BLE only, or files/stdin) needs no monitor mode.
  if (cfg && !commands.length)
    return [{ step: 'monitor mode', level: 'ok', detail: 'not needed: no Wi-Fi capture command in this configuration (files, stdin or Bluetooth only)' }];
  // Every Wi-Fi command another program (ssh to a remote sniffer, a simulator): no interface of
  // this machine to check; the frames sampled further down show whether the capture works.
  if (cfg && commands.every(notLocal))
    return [
      {
        step: 'monitor mode',
        level: 'ok',
        detail: `not checked: the Wi-Fi capture command runs ${[...new Set(commands.map((c) => shownName(parseCaptureCommand(c.command).program)))].join(', ')}, not a local capture tool (tcpdump, dumpcap, tshark); the frames sampled below show whether its capture works`,
      },
    ];
  const wifiIfaces = commands
    .filter((c) => !notLocal(c))
    .map((c) => parseCaptureCommand(c.command).iface)
    .filter((i): i is string => !!i && !/^(bluetooth|hci)/.test(i));
  if (!existsSync(sysNet)) return [{ step: 'monitor mode', level: 'warn', detail: `${sysNet} is absent: cannot inspect network interfaces here` }];
  const wireless = wirelessInterfaces(sysNet);
  const monitors = (() => {
    try {
      return readdirSync(sysNet).filter((i) => netType(i, sysNet) === ARPHRD_RADIOTAP);
    } catch {
      return [];
    }
  })();
  const names = (list: string[]) => list.map(shownName).sort().join(', ');
  const fixFor = (phyIface: string) => {
    const shown = shownName(phyIface);
    const n = shown === REDACTED ? 'IFACE' : shown;
    return `sudo ip link set ${n} down && sudo iw dev ${n} set type monitor && sudo ip link set ${n} up   (or: sudo iw dev ${n} interface add wlan0mon type monitor && sudo ip link set wlan0mon up)${
      shown === REDACTED ? '; IFACE: the Wi-Fi adapter, named after its address (iw dev lists it)' : ''
    }`;
  };
  if (wifiIfaces.length) {
    for (const iface of wifiIfaces) {
      const t = netType(iface, sysNet);
      const name = shownName(iface);
      if (t === null)
        out.push({
          step: `monitor mode (${name})`,
          level: 'fail',
          detail: `interface ${name} does not exist (present: ${names(readdirSync(sysNet) ?? [])})`,
          fix: wireless.length
            ? fixFor(wireless[0])
            : 'plug in a Wi-Fi adapter that supports monitor mode (check `iw list` for "monitor" under "Supported interface modes")',
        });
      else if (t === ARPHRD_RADIOTAP) out.push({ step: `monitor mode (${name})`, level: 'ok', detail: `${name} is in monitor mode (radiotap)` });
      else if (!wireless.includes(iface))
        // eth0, lo, a bridge: no radio behind it, so `iw ... set type monitor` cannot apply; the
        // capture command names the wrong interface.
        out.push({
          step: `monitor mode (${name})`,
          level: 'fail',
          detail: `${name} is not a Wi-Fi interface (link type ${t}${ARPHRD_NAMES[t] ? `, ${ARPHRD_NAMES[t]}` : ''}): it cannot hear probe requests`,
          fix: monitors.length
            ? shownName(monitors[0]!) === REDACTED
              ? 'capture from the monitor-mode interface instead: -i IFACE in the Wi-Fi capture command; IFACE: the monitor-mode interface, named after its address (iw dev lists it)'
              : `capture from the monitor-mode interface instead: -i ${monitors[0]} in the Wi-Fi capture command`
            : wireless.length
              ? `give the Wi-Fi adapter a monitor-mode interface and capture from it: sudo iw dev ${shownName(wireless[0]!) === REDACTED ? 'IFACE' : wireless[0]} interface add wlan0mon type monitor && sudo ip link set wlan0mon up, then -i wlan0mon in the Wi-Fi capture command`
              : 'plug in a USB Wi-Fi adapter that supports monitor mode (`iw list` must show "monitor"), give it a monitor-mode interface (docs/field-guide.md, step 5) and capture from that one (-i wlan0mon)',
        });
      else
        out.push({ step: `monitor mode (${name})`, level: 'fail', detail: `${name} exists but is not in monitor mode (link type ${t})`, fix: fixFor(iface) });
    }
    return out;
  }
  if (monitors.length) return [{ step: 'monitor mode', level: 'ok', detail: `monitor-mode interfaces: ${names(monitors)}` }];
  if (wireless.length)
    return [{ step: 'monitor mode', level: 'fail', detail: `Wi-Fi interfaces ${names(wireless)} but none in monitor mode`, fix: fixFor(wireless[0]!) }];
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
  const wantsBt = commandsFor(cfg, 'ble').some((s) => radioOf(s) === 'ble');
  let adapters: string[] = [];
  try {
    adapters = readdirSync('/sys/class/bluetooth').filter((a) => /^hci\d+$/.test(a));
  } catch {
    /* none */
  }
  if (adapters.length) return { step: 'bluetooth adapter', level: 'ok', detail: `adapters: ${adapters.join(', ')} (dumpcap names hciN as bluetoothN)` };
  // A Wi-Fi-only gateway (or one replaying files) needs no adapter.
  if (cfg && !wantsBt)
    return { step: 'bluetooth adapter', level: 'ok', detail: 'not needed: no Bluetooth capture command in this configuration (none on this machine)' };
  // Every BLE command another program (ssh to a remote sniffer, a simulator): as for monitor mode,
  // no adapter of this machine to check; the frames sampled further down judge it. It was failed,
  // so doctor never said ready for a gateway whose BLE frames came from elsewhere.
  const bleCommands = commandsFor(cfg, 'ble').filter((s) => radioOf(s) === 'ble');
  if (cfg && bleCommands.every(notLocal))
    return {
      step: 'bluetooth adapter',
      level: 'ok',
      detail: `not checked: the Bluetooth capture command runs ${[...new Set(bleCommands.map((c) => shownName(parseCaptureCommand(c.command).program)))].join(', ')}, not a local capture tool (tcpdump, dumpcap, tshark); the frames sampled below show whether its capture works`,
    };
  return {
    step: 'bluetooth adapter',
    level: wantsBt ? 'fail' : 'warn',
    detail: 'no Bluetooth adapter (/sys/class/bluetooth has no hciN)',
    fix: 'sudo apt-get install -y bluez && sudo systemctl enable --now bluetooth && sudo rfkill unblock bluetooth; on a Raspberry Pi also check `dtoverlay=disable-bt` is not in /boot/firmware/config.txt',
  };
}

/** Runs one capture command for up to `timeoutMs` and counts the frames it writes. */
/** Lines of a capture tool's stderr kept for the report (the last ones when it writes more). */
const MAX_OUTPUT_LINES = 40;

/**
 * A capture tool's stderr, line by line, through the contract's redactFreeText (every token that
 * could hold an address is <redacted>, but for `keep`: the command's configured program and
 * interface, configuredNames).
 */
export function toolOutput(stderr: string, keep: readonly string[] = []): string[] {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => redactFreeText(l, keep))
    .filter((l) => l.trim() !== '');
  return lines.length > MAX_OUTPUT_LINES ? [`... (${lines.length - MAX_OUTPUT_LINES} earlier lines left out)`, ...lines.slice(-MAX_OUTPUT_LINES)] : lines;
}

async function sampleCommand(
  command: string | string[],
  timeoutMs: number,
  onFrames: (frames: Frame[]) => void = () => {},
): Promise<{
  frames: number;
  bytes: number;
  linkTypes: number[];
  problem?: string;
  damage?: string;
  output: string[];
  fix: string;
  span: string;
  ended?: number | null;
}> {
  const startedAt = performance.now();
  let timedOut = false;
  // the gateway's own start: a process group of its own under a watcher that kills the group once
  // doctor closes the guard's pipe (or exits), so no capture process outlives doctor
  const child = spawnCapture(command);
  const parser = new CaptureParser('capture command');
  let frames = 0;
  let bytes = 0;
  let problem: string | undefined;
  // A damaged capture in fixed words (the reader's sentence quotes values read from the stream).
  let damage: string | undefined;
  let damageFix: string | undefined;
  // The first damage found is the one said; any error is kept as the problem.
  const noteDamage = (e: unknown) => {
    if (e instanceof CaptureFormatError) {
      damage ??= `the command's output is not a valid capture: ${e.damage} at byte offset ${e.offset}, after ${frames} frames`;
      damageFix ??= commandDamageFix(e.damage, frames);
    }
    problem ??= (e as Error).message;
  };
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  child.stdout!.on('data', (d: Buffer) => {
    bytes += d.length;
    try {
      const got = parser.push(d);
      frames += got.length;
      onFrames(got);
    } catch (e) {
      noteDamage(e);
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (e) => {
      problem ??= e.message;
      resolve(null);
    });
    child.once('close', (code) => resolve(code));
  });
  const group = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      /* the group is gone */
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    group('SIGTERM');
  }, timeoutMs);
  const code = await exited;
  clearTimeout(timer);
  // How long the frames were read: the sampling time, or less when the command ended by itself.
  const span = timedOut ? `in ${timeoutMs / 1000}s` : `in ${((performance.now() - startedAt) / 1000).toFixed(1)}s (the command ended)`;
  // Damage in the chunk that also completed the last frames is kept by the parser for its next
  // push (the frames first): an empty push asks for it. (Not end(): a command stopped at the
  // timeout may end inside a record, which is no damage.) Whether the two came in one read or two
  // depended on timing, so doctor said OK or WARN for the same output.
  if (!damage)
    try {
      parser.push(new Uint8Array(0));
    } catch (e) {
      noteDamage(e);
    }
  child.stdin!.end(); // the watcher kills whatever is left of the group
  const output = toolOutput(stderr, configuredNames(command));
  if (!problem && frames === 0 && code !== null && code !== 0 && code !== 143)
    problem = `exited with code ${code}${output.length ? `: ${headline(output, parseCaptureCommand(command).program)}` : ''}`;
  // The fix is chosen from the tool's words before redaction (it is never printed); what is shown is the redacted output.
  return {
    frames,
    bytes,
    linkTypes: [...parser.linkTypes],
    output,
    // Output that is no capture: the command's words say nothing of it (it ran), its output does.
    fix: damageFix ?? captureFix(stderr.split(/\r?\n/), command, code),
    span,
    ...(timedOut ? {} : { ended: code }),
    ...(problem ? { problem } : {}),
    ...(damage ? { damage } : {}),
  };
}

/**
 * Frame checks that are not ok but whose source delivered frames (canCount): none countable yet (a
 * quiet place), or countable ones before the damage that stopped it.
 */
const deliveredFrames = new WeakSet<CheckResult>();
function delivered(r: CheckResult): CheckResult {
  deliveredFrames.add(r);
  return r;
}

/**
 * What the gateway's firmware makes of a source's frames under its settings (gateway.ignore_fcs,
 * rssi_min_dbm): frames that arrive but are all rejected (a driver that flags an FCS it does not
 * update) or all below the RSSI gate count nothing, so the gateway would publish only zeros. Counts
 * only: the window is closed (and wiped) before the verdict is read.
 */
class Counter {
  private counts: FirmwareWindowCounts | null = null;
  private constructor(private readonly fw: Firmware) {}

  static async open(cfg: GatewayConfig): Promise<Counter> {
    const fw = await Firmware.load();
    const g = cfg.gateway;
    fw.beginWindow({ ignoreFcs: g.ignore_fcs, ...(g.rssi_min_dbm !== undefined ? { rssiMinDbm: g.rssi_min_dbm } : {}) });
    return new Counter(fw);
  }

  add(frames: Frame[]): void {
    if (!this.counts) this.fw.ingestMany(frames);
  }

  close(): void {
    this.counts ??= this.fw.endWindow();
  }

  /** Frames the firmware counts (accepted, not below the RSSI gate); closes the window. */
  countable(): number {
    this.close();
    const { wifi, ble } = this.counts!;
    return wifi.accepted + ble.accepted - wifi.weak - ble.weak;
  }

  verdict(step: string, detail: string, cfg: GatewayConfig): CheckResult {
    this.close();
    const { wifi, ble } = this.counts!;
    const accepted = wifi.accepted + ble.accepted;
    const rejected = wifi.rejected + ble.rejected;
    const weak = wifi.weak + ble.weak;
    if (accepted === 0 && rejected > 0)
      return {
        step,
        level: 'fail',
        detail: `${detail}, none countable: the firmware rejected ${rejected} (bad FCS or CRC, truncated or malformed), so the gateway would publish only zeros`,
        fix: rejectedFramesFix(!!cfg.gateway.ignore_fcs),
      };
    if (accepted > 0 && weak === accepted)
      return {
        step,
        level: 'fail',
        detail: `${detail}, none countable: all ${accepted} probe requests and advertisements are below gateway.rssi_min_dbm (${cfg.gateway.rssi_min_dbm} dBm), so the gateway would publish only zeros`,
        fix: 'lower gateway.rssi_min_dbm (--rssi-min) or leave it unset, or move the antenna closer to where people are',
      };
    if (accepted === 0)
      return delivered({
        step,
        level: 'warn',
        detail: `${detail}, but none is a probe request or a BLE advertisement with an address: nothing to count yet`,
        fix: 'on a live radio, wait for people nearby or check the channel (probe requests) and that the Bluetooth adapter scans; a file may simply hold none',
      });
    const notes = [rejected ? `${rejected} rejected` : '', weak ? `${weak} below rssi_min_dbm` : ''].filter(Boolean);
    return { step, level: 'ok', detail: `${detail}; ${accepted - weak} countable${notes.length ? ` (${notes.join(', ')})` : ''}` };
  }
}

/** The fix for a FIFO whose writer wrote something that is not one capture. */
const FIFO_CAPTURE_FIX = 'have the capture tool write one pcap or pcapng capture into it (tcpdump -U -w FIFO)';

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return true; // missing or unreadable: reading it says so
  }
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
    if (s.type === 'file' && !isRegularFile(s.path)) {
      // A FIFO (or a device) may have no writer yet, or one that never stops: it is sampled for
      // --frames-timeout by `cat`, as a capture command is (a read of doctor's own would wait in
      // open(2) for a writer, and hold doctor's exit with it).
      const counter = await Counter.open(cfg);
      const r = await sampleCommand(['cat', '--', s.path], timeoutMs, (f) => counter.add(f));
      counter.close();
      const what = `${s.path} (a FIFO or device): ${r.frames} frames in ${timeoutMs / 1000}s`;
      if (r.frames > 0) {
        const v = counter.verdict(step, what, cfg);
        out.push(
          r.damage && v.level === 'ok'
            ? delivered({
                step,
                level: 'warn',
                detail: `${v.detail}; then ${r.damage.replace("the command's output", 'the FIFO')}`,
                fix: FIFO_CAPTURE_FIX,
              })
            : v,
        );
      } else
        out.push({
          step,
          level: 'fail',
          detail: r.damage
            ? `${s.path}: ${r.damage.replace("the command's output", 'what was written into it')}`
            : r.problem
              ? `${s.path}: ${redactFreeText(r.problem)}`
              : `${what}: nothing was written into it`,
          fix: r.damage
            ? FIFO_CAPTURE_FIX
            : `start the capture that writes into ${s.path} (e.g. tcpdump -U -w ${s.path}), or wait longer with --frames-timeout 30s`,
        });
      continue;
    }
    if (s.type === 'file') {
      const counter = await Counter.open(cfg);
      let frames = 0;
      try {
        for await (const batch of readCaptureFile(s.path)) {
          frames += batch.length;
          counter.add(batch);
        }
        out.push(
          frames
            ? counter.verdict(step, `${s.path}: ${frames} frames`, cfg)
            : { step, level: 'warn', detail: `${s.path}: 0 frames`, fix: 'the file holds no frames' },
        );
      } catch (e) {
        // A damaged capture in fixed words: the reader's sentence quotes values read from the file
        // (its first bytes, a length), which may be address bytes.
        // The frames before the damage are counted by the gateway (its source fails after them): said
        // here, and the source counts as one that delivered frames (canCount), not as only zeros.
        const before = e instanceof CaptureFormatError && frames > 0 ? counter.countable() : 0;
        const detail =
          e instanceof CaptureFormatError
            ? `${s.path}: not a valid capture: ${e.damage} at byte offset ${e.offset}, after ${frames} frames${
                before > 0 ? ` (${before} countable: the gateway counts them, then the source fails)` : ''
              }`
            : (e as Error).message;
        const r: CheckResult = { step, level: 'fail', detail, fix: 'give a pcap or pcapng file (tcpdump -w / dumpcap -w output)' };
        out.push(before > 0 ? delivered(r) : r);
      } finally {
        counter.close();
      }
      continue;
    }
    const counter = await Counter.open(cfg);
    const r = await sampleCommand(s.command, timeoutMs, (f) => counter.add(f));
    counter.close();
    const unsupported = r.linkTypes.filter((l) => !isSupportedLinkType(l));
    if (unsupported.length) {
      out.push({
        step,
        level: 'fail',
        detail: `capture link type ${unsupported.map(linkTypeName).join(', ')} cannot be counted`,
        fix: 'capture from the monitor-mode interface (radiotap, 127) or the Bluetooth adapter (dumpcap -i bluetoothN), not a normal network interface',
      });
    } else if (r.frames > 0) {
      const v = counter.verdict(step, `${r.frames} frames ${r.span} (link types ${r.linkTypes.map(linkTypeName).join(', ')})`, cfg);
      if (r.damage && v.level === 'ok') {
        // counted, but then the output turned damaged: the gateway stops and restarts the command there
        out.push(
          delivered({
            step,
            level: 'warn',
            detail: `${v.detail}; then ${r.damage}`,
            fix: 'the gateway restarts the command each time its output turns damaged: have the capture tool write the capture alone to stdout (tcpdump -U -w -, dumpcap -q -w -)',
          }),
        );
      } else out.push(v);
    } else
      out.push({
        step,
        level: 'fail',
        detail:
          r.damage ??
          (r.problem
            ? redactFreeText(r.problem, configuredNames(s.command))
            : r.bytes === 0
              ? r.ended !== undefined
                ? `no byte ${r.span}, not even a capture file header: the command ended by itself${r.ended === null ? '' : ` with exit code ${r.ended}`} without writing a capture to its standard output`
                : `no byte ${r.span}, not even a capture file header: the command hangs or holds its output back`
              : `a capture file header but no frames ${r.span}`),
        fix: r.problem
          ? r.fix
          : r.bytes === 0
            ? r.ended !== undefined
              ? 'run the command by hand: a capture command writes the capture to its standard output and goes on until it is stopped (tcpdump -i wlan0mon -U -w -, dumpcap -q -i bluetooth0 -w -); this one stopped at once: not a capture tool, its output sent elsewhere (-w FILE, a > redirection), or it finished what it had to do'
              : NO_OUTPUT_FIX
            : r.ended !== undefined
              ? `the command stopped by itself${r.ended === null ? '' : ` (exit code ${r.ended})`} after its capture file header: run it by hand to see why${r.output.length ? ' (what it wrote on stderr is below)' : ''}; a capture command goes on until it is stopped (a packet count such as tcpdump -c or dumpcap -c, -a duration:N or -a packets:N ends it)`
              : 'check the interface is in monitor mode and up, on a busy channel (sudo iw dev wlan0mon set channel 6); for Bluetooth, that the adapter is up (bluetoothctl power on)',
        ...(r.output.length ? { output: r.output } : {}),
      });
  }
  return out;
}

/**
 * Connects as the gateway would (MQTT 5 unless mqtt.version is 4; 3.1.1 when the broker refuses 5)
 * and first subscribes to the gateway's status topic, waiting up to STATUS_WAIT_MS for its retained
 * status. When that says online, the gateway is running and publishing there (its own publishes
 * prove the permission): doctor publishes nothing, so subscribers (aggregator, Home Assistant
 * availability) never see a running gateway go offline. Otherwise (no retained status, offline, or
 * the ACL does not let this user read the topic: a refused SUBACK, or, with Mosquitto, no message at
 * all) it publishes one test message the gateway is
 * allowed to send: the offline form of its status ({v, site, gateway, zone, state: offline}, what its
 * last will says), QoS 1, NOT retained, so the retained status stays the gateway's own. Over MQTT 5
 * the PUBACK reason code says whether the broker (its ACL) accepted it; over 3.1.1 a denied publish
 * is acknowledged like any other, so the check can only warn.
 */
/** How long doctor waits for the retained status before its test publish. */
export const STATUS_WAIT_MS = 2000;

async function checkBroker(cfg: GatewayConfig | null, version?: 4 | 5): Promise<CheckResult> {
  const step = 'broker reachable';
  if (!cfg) return { step, level: 'warn', detail: 'no broker configured (give --config or --mqtt-url)' };
  const v = version ?? cfg.mqtt.version ?? 5;
  let opts: ReturnType<typeof mqttOptions>;
  try {
    opts = mqttOptions(cfg, 10, v);
  } catch (e) {
    return { step, level: 'fail', detail: (e as Error).message, fix: 'check the mqtt.ca / cert / key / password_file paths' };
  }
  const url = safeUrl(cfg.mqtt.url);
  const { site, zone, id } = cfg.gateway;
  const topic = statusTopic(site, id);
  const { will: _will, ...rest } = opts;
  // mqtt.js builds the connection at once and throws what it cannot (a client key that is not the
  // certificate's, a file that is no PEM; a % in the URL's password that starts no escape is refused
  // with the configuration, isParsableUrl): the gateway stops at its start with it ("cannot start"); here it is this step's FAIL, not an
  // uncaught error that ended doctor before it printed any step.
  let client: ReturnType<typeof mqtt.connect>;
  try {
    client = mqtt.connect(cfg.mqtt.url, { ...rest, clientId: `${opts.clientId}-doctor`, reconnectPeriod: 0, connectTimeout: 5000 });
  } catch (e) {
    return connectThrew(step, url, cfg, e);
  }
  const result = await new Promise<CheckResult | 'fallback'>((resolve) => {
    let done = false;
    let decided = false;
    let statusWait: ReturnType<typeof setTimeout> | undefined;
    const finish = (r: CheckResult | 'fallback') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(statusWait);
      client.end(true);
      resolve(r);
    };
    const timer = setTimeout(
      () =>
        finish({
          step,
          level: 'fail',
          detail: `${url}: no answer in ${(6000 + STATUS_WAIT_MS) / 1000} s`,
          fix: 'check the host and port, the network route and any firewall between gateway and broker',
        }),
      6000 + STATUS_WAIT_MS,
    );
    // Decides once: the retained status says online (publish nothing), or test-publish.
    const decide = (online: boolean, note: string) => {
      if (decided || done) return;
      decided = true;
      clearTimeout(statusWait);
      if (online)
        finish({
          step,
          level: 'ok',
          detail: `${url}: connected; publish not tested: the gateway is online and publishing on ${topic} (its own publishes prove the permission)`,
        });
      else testPublish(note);
    };
    client.on('message', (t, payload, packet) => {
      if (t !== topic || !packet.retain) return;
      let state: unknown;
      try {
        state = (JSON.parse(payload.toString()) as { state?: unknown }).state;
      } catch {
        state = undefined;
      }
      decide(state === 'online', '');
    });
    client.once('connect', () => {
      client.subscribe(topic, { qos: QOS }, (err, granted) => {
        const refused = !!err || (granted ?? []).some((g) => g.qos >= 0x80);
        if (refused) return decide(false, ` (its retained status could not be read: the broker refused the subscription)`);
        statusWait = setTimeout(() => decide(false, ''), STATUS_WAIT_MS);
      });
    });
    const testPublish = (note: string) => {
      client.publish(topic, encode(offlineStatus(site, id, zone)), { qos: QOS, retain: false }, (err) => {
        const code = (err as (Error & { code?: unknown }) | undefined)?.code;
        if (err && typeof code === 'number' && code >= 0x80)
          finish({
            step,
            level: 'fail',
            detail: `${url}: connected, but the broker refused a test publish on ${topic} (PUBACK ${pubackReason(code)})`,
            fix:
              code === 0x87
                ? `the broker ACL does not let user ${cfg.mqtt.username === undefined ? '(none)' : `"${cfg.mqtt.username}"`} publish there: with docs/mosquitto/presence.acl the user name must be "${site}/${id}" (presence provision gateway) and --site/--id must match it`
                : 'check the broker log for why it refused the publish',
          });
        else if (err)
          finish({ step, level: 'fail', detail: `${url}: connected, but the test publish on ${topic} failed: ${err.message}`, fix: 'check the broker log' });
        else if (v === 4)
          finish({
            step,
            level: 'warn',
            detail: `${url}: connected over MQTT 3.1.1 and published on ${topic}, but 3.1.1 acknowledges a publish the ACL denies like any other: not proven allowed`,
            fix: 'use a broker that speaks MQTT 5 (Mosquitto 2 does) and leave mqtt.version at 5, or check the broker log for "Denied PUBLISH"',
          });
        else finish({ step, level: 'ok', detail: `${url}: connected; test publish on ${topic} accepted (MQTT 5 PUBACK)${note}` });
      });
    };
    client.once('error', (err: Error & { code?: number | string }) => {
      if (v === 5 && (err.code === 1 || err.code === 132)) return finish('fallback');
      const m = err.message;
      finish({ step, level: 'fail', detail: `${url}: ${m}`, fix: brokerErrorFix(m, cfg.mqtt.url) });
    });
    // The connection closed with no error (a broker that closes it without a CONNACK, e.g. Mosquitto
    // past max_connections): it was "no answer in 8 s" with a fix about routes and firewalls, said
    // once the timer ran out. Said at once (after any error that comes with the close, which wins).
    let connected = false;
    client.once('connect', () => {
      connected = true;
    });
    client.on('close', () => {
      if (done) return;
      setTimeout(
        () =>
          finish(
            connected
              ? {
                  step,
                  level: 'fail',
                  detail: `${url}: connected, then the broker closed the connection before the test was done`,
                  fix: 'check the broker log: it says why it closed the connection',
                }
              : {
                  step,
                  level: 'fail',
                  detail: `${url}: the connection was closed before the broker accepted it (no CONNACK): something listens there but gave no MQTT answer`,
                  fix: 'check the broker log and the port in mqtt.url: a broker that takes no more clients closes new ones (Mosquitto: "max_connections exceeded"), a TLS listener closes a plain connection (use mqtts://), and a service that is not an MQTT broker may close it too',
                },
          ),
        200,
      );
    });
  });
  if (result === 'fallback') return checkBroker(cfg, 4);
  // TLS without checking the broker's certificate (--mqtt-insecure): it connects, and was OK, but
  // whoever answers in the broker's place gets the password and every count.
  if (result.level === 'ok' && !cfg.mqtt.reject_unauthorized && /^(mqtts|wss):/i.test(cfg.mqtt.url))
    return {
      step,
      level: 'warn',
      detail: `${result.detail}; but the broker's certificate is not checked (mqtt.reject_unauthorized: false, --mqtt-insecure): a machine on the way can pose as the broker and read the password and every count`,
      fix: 'set mqtt.ca (--mqtt-ca) to the CA certificate that signed the broker certificate and drop --mqtt-insecure (mqtt.reject_unauthorized: true, the default)',
    };
  return result;
}

/**
 * The broker step when mqtt.js threw as it built the connection. A TLS file that cannot be used is
 * named: each of mqtt.ca, mqtt.cert and mqtt.key is tried alone (createSecureContext), then the
 * certificate with its key. OpenSSL's words name a routine and a reason, never a file's bytes.
 */
function connectThrew(step: string, url: string, cfg: GatewayConfig, e: unknown): CheckResult {
  const err = e as Error & { code?: unknown };
  const m = cfg.mqtt;
  const load = (what: 'ca' | 'cert' | 'key'): string | undefined => {
    try {
      createSecureContext({ [what]: readFileSync(m[what]!) });
      return undefined;
    } catch (x) {
      return (x as Error).message;
    }
  };
  const unusable = (['ca', 'cert', 'key'] as const).flatMap((k) => {
    if (!m[k]) return [];
    const why = load(k);
    return why === undefined ? [] : [`mqtt.${k} ${m[k]} cannot be used (${why})`];
  });
  if (unusable.length)
    return {
      step,
      level: 'fail',
      detail: `${url}: ${unusable.join('; ')}: the gateway stops at its start with the same error`,
      fix: "mqtt.ca and mqtt.cert must be certificates in PEM (-----BEGIN CERTIFICATE-----, check: openssl x509 -in FILE -noout), mqtt.key the client certificate's private key in PEM, not encrypted (check: openssl pkey -in FILE -noout)",
    };
  if (err.code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH')
    return {
      step,
      level: 'fail',
      detail: `${url}: mqtt.key ${m.key} is not the key of the certificate mqtt.cert ${m.cert} (${err.message}): the gateway stops at its start with the same error`,
      fix: `set mqtt.key (--mqtt-key) to the key the client certificate was made with: openssl x509 -in ${m.cert} -noout -pubkey and openssl pkey -in ${m.key} -pubout print the same public key`,
    };
  return {
    step,
    level: 'fail',
    detail: `${url}: ${redactUrlsIn(err.message ?? String(e))}: the gateway stops at its start with the same error`,
    fix: brokerErrorFix(err.message ?? '', cfg.mqtt.url),
  };
}

export async function checkClock(): Promise<CheckResult> {
  const step = 'clock synchronised';
  // Not set at all (a board without a real-time clock or fake-hwclock reads 1970 until NTP sets it): whatever the tools say, the
  // gateway stamps and publishes no window until it is.
  const now = Date.now();
  if (!isClockTime(now))
    return {
      step,
      level: 'fail',
      detail: `the clock reads ${new Date(now).toISOString()}, outside 2000-2099: it is not set, and the gateway counts no window until it is`,
      fix: 'sudo timedatectl set-ntp true (systemd-timesyncd), or install chrony; the gateway needs network access to an NTP server (UDP port 123)',
    };
  const td = await run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value']);
  if (td.code === 0 && td.stdout.trim() === 'yes') return { step, level: 'ok', detail: 'timedatectl: NTP synchronised' };
  if (td.code === 0 && td.stdout.trim() === 'no')
    return {
      step,
      level: 'fail',
      detail: 'timedatectl: the clock is NOT synchronised',
      fix: 'sudo timedatectl set-ntp true (systemd-timesyncd), or install chrony; the gateway needs network access to an NTP server',
    };
  if (existsSync('/run/systemd/timesync/synchronized')) return { step, level: 'ok', detail: 'systemd-timesyncd reports synchronised' };
  const chrony = await run('chronyc', ['-n', 'tracking']);
  if (chrony.code === 0) {
    const status = /Leap status\s*:\s*(.+)/.exec(chrony.stdout)?.[1]?.trim();
    if (status === 'Normal') return { step, level: 'ok', detail: 'chrony: synchronised' };
    return { step, level: 'fail', detail: `chrony: leap status ${status ?? 'unknown'}`, fix: 'check `chronyc sources`: chrony needs a reachable NTP server' };
  }
  // chronyc is there but chronyd did not answer it (not running: "506 Cannot talk to daemon"): it
  // was "no chrony on this machine", and the fix to install what is installed.
  if (which('chronyc')) {
    const said = (chrony.stdout + chrony.stderr).split('\n').find((l) => l.trim() !== '');
    const why = chrony.code === null ? 'chronyc did not end in 5 s' : said ? redactFreeText(said.trim()) : `exit code ${chrony.code}`;
    return {
      step,
      level: 'warn',
      detail: `cannot tell: no systemd (timedatectl), and chrony is installed but chronyc tracking got no answer from chronyd (${why}): nothing here says the clock is synchronised`,
      fix: 'start chronyd: sudo systemctl enable --now chrony (chronyd on some systems; without systemd: sudo chronyd), then `chronyc tracking` must show "Leap status : Normal"; the gateway needs network access to an NTP server (UDP port 123)',
    };
  }
  return {
    step,
    level: 'warn',
    detail: 'cannot tell: no systemd (timedatectl) and no chrony on this machine',
    fix: 'on the gateway install systemd-timesyncd or chrony; windows are aligned to the wall clock, so a wrong clock shifts every window',
  };
}

/**
 * Swap (the kernel's list of swap areas, `/proc/swaps`): with an area on a disk or SD card the
 * kernel may write any page of the gateway's memory there (frames with device addresses on their
 * way to the firmware, the open window's hashes and key state), which coredump_filter does not
 * stop and nothing wipes. zram areas are compressed RAM, not a disk: OK (unless the operator gave
 * zram a backing device, which this does not see). A `WARN` with the fix while disk swap is on.
 */
export function checkSwap(swaps = '/proc/swaps'): CheckResult {
  const step = 'swap';
  let text: string;
  try {
    text = readFileSync(swaps, 'utf8');
  } catch (e) {
    return {
      step,
      level: 'warn',
      detail: `cannot tell whether swap is on: ${swaps}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      fix: 'check with `swapon --show`; turn swap off on a gateway (see the fix doctor gives when it is on)',
    };
  }
  // "Filename Type Size Used Priority", then one line per area (a path with spaces is written \040)
  const areas = text
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[0] !== '')
    .map((f) => ({ name: f[0]!.replace(/\\040/g, ' '), type: f[1]! }));
  const disk = areas.filter((a) => !/^\/dev\/zram\d+$/.test(a.name));
  if (disk.length === 0)
    return {
      step,
      level: 'ok',
      detail:
        areas.length === 0
          ? "no swap: the kernel writes none of the gateway's memory to disk"
          : `swap in RAM only (${areas.map((a) => a.name).join(', ')}, zram)`,
    };
  return {
    step,
    level: 'warn',
    detail: `swap is on (${disk.map((a) => `${a.name}, ${a.type}`).join('; ')}): the kernel may write pages of the gateway's memory there, frames with device addresses and the open window's hashes among them, and nothing wipes them`,
    fix: 'turn swap off: sudo swapoff -a and remove its line from /etc/fstab; on Raspberry Pi OS: sudo dphys-swapfile swapoff && sudo dphys-swapfile uninstall && sudo systemctl disable dphys-swapfile (docs/field-guide.md, step 1)',
  };
}

/** The queue folder of the shipped systemd unit (StateDirectory=presence-gateway, given to the gateway as $STATE_DIRECTORY). */
export const UNIT_QUEUE_DIR = '/var/lib/presence-gateway';

/** The primary group of a user (`id -gn`), or the user's name when it cannot be told. */
function groupOf(user: string): string {
  return spawnSync('id', ['-gn', user], { encoding: 'utf8' }).stdout?.trim() || user;
}

/**
 * Run as root, doctor makes and writes the queue folder as root, which the service's user may not
 * write: "OK", and the service then stopped at its start (EACCES). So, as root and where that user is
 * known, the folder is tried as that user too (runuser, as checkServiceUser reads the files). The
 * unit's own folder is left out: systemd gives its StateDirectory to the unit's User= at every start.
 * null: nothing to say (not root, no user, the unit's folder, no runuser).
 */
function queueNotWritableBy(dir: string, user: string | null): CheckResult | null {
  if (!user || process.getuid?.() !== 0) return null;
  if (dir === UNIT_QUEUE_DIR || dir.startsWith(`${UNIT_QUEUE_DIR}/`)) return null;
  const r = spawnSync('runuser', ['-u', user, '--', 'test', '-w', dir, '-a', '-x', dir], { encoding: 'utf8', timeout: 5000 });
  if (r.error || r.status === 0 || r.stderr?.trim()) return null;
  const group = groupOf(user);
  const parent = dirname(dir);
  const enters = spawnSync('runuser', ['-u', user, '--', 'test', '-x', parent], { encoding: 'utf8', timeout: 5000 }).status === 0;
  return {
    step: 'queue folder',
    level: 'fail',
    detail: `${dir} is writable by root, who runs doctor, but not by ${user}, who runs the service: the gateway would stop at its start (EACCES)`,
    fix: `sudo chown -R ${user}:${group} ${dir} && sudo chmod 0750 ${dir}${enters ? '' : ` (and let ${user} into ${parent})`} (or set queue.dir: ${UNIT_QUEUE_DIR}, the unit's StateDirectory, which systemd gives to ${user})`,
  };
}

/**
 * The first file of the queue folder that the gateway reads at its start (queueFiles: seq, windows)
 * and that its user may not read, or null: the gateway refuses such a folder at its start, naming the
 * chown (a run by hand as root leaves root's window files, mode 0640). Checked as this user, and, run
 * as root, as the service's user too (runuser). The unit's own folder while it is not that user's
 * is left out: systemd then gives it to User=, with every file in it, at the next start.
 */
function queueFileNotReadable(dir: string, user: string | null): CheckResult | null {
  let files: string[];
  try {
    files = queueFiles(dir);
  } catch {
    return null;
  }
  if (!files.length) return null;
  const root = process.getuid?.() === 0;
  let who = currentUser();
  let first: string | undefined = unreadableQueueFiles(dir)[0];
  if (!first && root && user) {
    const uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout?.trim());
    const unitsOwn = dir === UNIT_QUEUE_DIR && Number.isInteger(uid) && statSync(dir).uid !== uid;
    if (unitsOwn) return null;
    // the paths on stdin, one a line: a long queue is no argument list
    const r = spawnSync('runuser', ['-u', user, '--', 'sh', '-c', 'while IFS= read -r f; do [ -r "$f" ] || { printf "%s\\n" "$f"; exit 1; }; done; exit 0'], {
      input: `${files.join('\n')}\n`,
      encoding: 'utf8',
      timeout: 10_000,
    });
    if (r.error || r.status !== 1) return null;
    first = r.stdout.trim() || undefined;
    who = user;
  }
  if (!first) return null;
  const st = statSync(first);
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  const group = groupOf(who);
  return {
    step: 'queue folder',
    level: 'fail',
    detail: `${dir}: ${first} cannot be read by ${who}${who === user ? ', who runs the service' : ''} (owner uid ${st.uid}, mode ${mode}): the gateway would refuse to start, naming it`,
    fix: `sudo chown -R ${who}:${group} ${dir}`,
  };
}

function checkQueue(cfg: GatewayConfig | null, env: NodeJS.ProcessEnv = process.env, user: string | null = null): CheckResult {
  if (!cfg) return { step: 'queue folder', level: 'warn', detail: 'no configuration, so the queue folder is unknown' };
  const dir = defaultQueueDir(cfg, env);
  try {
    makeFolders(dir);
    const probe = join(dir, `.doctor-${process.pid}`);
    writeDurably(probe, 'ok', dir);
    unlinkSync(probe);
    const queued = existsSync(join(dir, 'windows')) ? readdirSync(join(dir, 'windows')).filter((f) => f.endsWith('.json')).length : 0;
    const detail = `${dir} is writable (fsync works); ${queued} windows queued`;
    const notTheirs = queueNotWritableBy(dir, user) ?? queueFileNotReadable(dir, user);
    if (notTheirs) return notTheirs;
    const folder = queueStartFileFolder(dir);
    if (folder) return { step: 'queue folder', level: 'fail', detail: folder, fix: 'remove that folder: the gateway writes the file itself' };
    // Without queue.dir the gateway's folder depends on how it is started: the systemd unit gives it
    // $STATE_DIRECTORY, a shell does not, so doctor (run from a shell) checked the home folder of
    // whoever ran it while the service used another one.
    if (!cfg.queue.dir && !env.STATE_DIRECTORY)
      return {
        step: 'queue folder',
        level: 'warn',
        detail: `queue.dir is not set: under the systemd unit the gateway uses ${UNIT_QUEUE_DIR} ($STATE_DIRECTORY), not the folder checked here, which it uses when started from a shell as this user: ${detail}`,
        fix: `set queue.dir: ${UNIT_QUEUE_DIR} in the configuration (the unit's StateDirectory), so that doctor checks the folder the service uses`,
      };
    return { step: 'queue folder', level: 'ok', detail };
  } catch (e) {
    // A full or read-only file system is no matter of creating the folder or of its owner.
    const code = (e as NodeJS.ErrnoException).code;
    const fix =
      code === 'ENOSPC' || code === 'EDQUOT'
        ? `free space on its file system: df -h ${dir}, then e.g. sudo journalctl --vacuum-size=100M or old logs (a running gateway keeps new windows in memory meanwhile, lost at a restart)`
        : code === 'EROFS' || code === 'EIO'
          ? `its file system is read-only or failing (a worn SD card is often remounted read-only): check dmesg and mount, remount it read-write or replace the card`
          : `create it and give the gateway's user write access (the systemd unit uses StateDirectory=presence-gateway)`;
    return { step: 'queue folder', level: 'fail', detail: `${dir}: ${(e as Error).message}`, fix };
  }
}

/**
 * The FIFO a capture command (or a piped stdin) writes into: enlarged to 1 MiB, the gateway reads it
 * a few times a second; left at 64 KiB (no perl, or over the user's pipe quota) it must read it up
 * to 16 times as often at high frame rates, which costs CPU (gateway/README.md "Host cost"). A
 * piped stdin whose size the gateway cannot tell (no perl) is read on every write.
 */
export function checkCapturePipe(cfg: GatewayConfig | null): CheckResult | null {
  if (!cfg?.sources.some((s) => s.type === 'command' || s.type === 'stdin')) return null;
  const fifo = capturePipe();
  if (!fifo)
    return {
      step: 'capture pipe',
      level: 'warn',
      detail: 'no FIFO could be made (mkfifo missing?): a capture command is read as a stream, woken by every packet it writes',
      fix: 'install coreutils (mkfifo)',
    };
  closeSync(fifo.read);
  closeSync(fifo.write);
  const kib = Math.round(fifo.bytes / 1024);
  if (fifo.bytes >= PIPE_BYTES) return { step: 'capture pipe', level: 'ok', detail: `the capture FIFO holds ${kib} KiB: read a few times a second` };
  const perl = findExecutable('perl') !== null;
  return {
    step: 'capture pipe',
    level: 'warn',
    detail: `the capture FIFO holds ${kib} KiB, not ${PIPE_BYTES / 1024}: ${perl ? "Linux refused to enlarge it (/proc/sys/fs/pipe-max-size, or the user's pipe quota)" : 'no perl found to enlarge it'}; at high frame rates the gateway reads it more often, which costs CPU${!perl && cfg.sources.some((s) => s.type === 'stdin') ? ' (a piped stdin, whose size it cannot tell without perl, on every write)' : ''}`,
    fix: perl
      ? 'raise /proc/sys/fs/pipe-max-size to 1048576 (sysctl fs.pipe-max-size=1048576) or the pipe quota (fs.pipe-user-pages-soft)'
      : 'apt-get install perl-base',
  };
}

async function checkFirmware(): Promise<CheckResult> {
  try {
    await Firmware.load();
    return { step: 'firmware', level: 'ok', detail: 'WASM module loads' };
  } catch (e) {
    return {
      step: 'firmware',
      level: 'fail',
      detail: (e as Error).message.split('\n')[0],
      fix: 'install the package again (it carries firmware/build/presence.wasm); in a checkout: npm run build',
    };
  }
}

/**
 * The checks a running gateway makes of its machine for its page (gateway/web.ts), without
 * disturbing itself: capture permission, monitor mode, Bluetooth adapter, clock, swap. No capture command
 * is run, no broker connection made, nothing written (the gateway's own sources, broker connection
 * and queue say the rest). Each check runs its tool asynchronously with a timeout.
 */
export async function machineChecks(cfg: GatewayConfig): Promise<CheckResult[]> {
  return [...(await checkCapturePermission(cfg)), ...checkMonitorMode(cfg), checkBluetooth(cfg), await checkClock(), checkSwap()];
}

/** A check that needs the configuration, when the configuration has errors. */
const skippedForConfig = (step: string): CheckResult => ({
  step,
  level: 'warn',
  detail: 'skipped: the configuration has errors (listed above)',
  fix: 'correct the configuration, then run presence doctor again',
});

export async function runDoctor(flags: GatewayFlags & { framesTimeout?: string; serviceUser?: string }): Promise<CheckResult[]> {
  // The gateway's file from its environment, as `presence gateway` reads it (loadConfig).
  if (!flags.config && process.env.PRESENCE_GATEWAY_CONFIG) flags = { ...flags, config: process.env.PRESENCE_GATEWAY_CONFIG };
  const results: CheckResult[] = [];
  let cfg: GatewayConfig | null = null;
  const anyConfig = Object.entries(flags).some(([k, v]) => v !== undefined && k !== 'framesTimeout' && k !== 'json' && k !== 'serviceUser');
  let brokerGiven = true;
  // The broker may come from the flag or from MQTT_URL, as for the gateway.
  const brokerUrl = flags.mqttUrl ?? flags.mqtt ?? (process.env.MQTT_URL || undefined);
  if (anyConfig) {
    try {
      if (!flags.config && !(flags.site && flags.zone && flags.id && brokerUrl) && flags.source?.length) {
        // Checking a step by hand (`presence doctor --source cmd:...`): fill in what is missing.
        brokerGiven = !!brokerUrl;
        cfg = loadConfig({
          ...flags,
          site: flags.site ?? 'doctor',
          zone: flags.zone ?? 'doctor',
          id: flags.id ?? 'doctor',
          mqttUrl: brokerUrl ?? 'mqtt://127.0.0.1:1883',
          mqtt: undefined,
        });
        results.push({
          step: 'configuration',
          level: 'warn',
          detail: `partial (no ${['site', 'zone', 'id', 'mqtt-url'].filter((k) => !(k === 'mqtt-url' ? brokerUrl : flags[k as keyof GatewayFlags])).join(', ')}): checking the given sources only`,
          fix: 'for the full check: presence doctor --config /etc/presence/gateway.yaml',
        });
      } else {
        cfg = loadConfig(flags);
        // What the gateway checks before it starts: a capture or TLS file that is missing or unreadable.
        const missing = startFileError(cfg, flags);
        if (missing) throw missing;
        results.push({
          step: 'configuration',
          level: 'ok',
          detail: `${cfg.gateway.site}/${cfg.gateway.zone}/${cfg.gateway.id}, ${cfg.sources.length} source(s)`,
        });
      }
    } catch (e) {
      // As the gateway says it (problemLines): a file's problems name the file.
      const hint = (e as { hint?: string }).hint;
      results.push({
        step: 'configuration',
        level: 'fail',
        detail: e instanceof ConfigError ? problemLines(e).join('; ') : (e as Error).message,
        fix: hint ?? 'correct the configuration; see gateway/README.md for every key',
      });
    }
  } else
    results.push({
      step: 'configuration',
      level: 'warn',
      detail: 'none given: only machine checks run',
      fix: 'presence doctor --config /etc/presence/gateway.yaml',
    });
  // The oldest Node the build runs on: package.json's engines.node (scripts/presence.js stops on an older one).
  const engines = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(packageJson<{ engines: { node: string } }>('package.json').engines.node);
  const need = [1, 2, 3].map((i) => Number(engines?.[i] ?? 0));
  const have = process.versions.node.split('.').map(Number);
  const older = have[0] !== need[0] ? have[0]! < need[0]! : have[1] !== need[1] ? have[1]! < need[1]! : have[2]! < need[2]!;
  results.push(
    older
      ? { step: 'node', level: 'fail', detail: `Node ${process.versions.node}`, fix: `install Node ${need.join('.')} or newer` }
      : { step: 'node', level: 'ok', detail: `Node ${process.versions.node}` },
  );
  results.push(await checkFirmware());
  if (cfg?.corridor?.group || cfg?.corridor?.secret_file) results.push(checkCorridor(cfg));
  results.push(...(await checkCapturePermission(cfg)));
  const pipe = checkCapturePipe(cfg);
  if (pipe) results.push(pipe);
  results.push(...checkMonitorMode(cfg));
  results.push(checkBluetooth(cfg));
  // A configuration that failed to load gives no sources, broker or queue folder to check: say so,
  // not "no sources configured (give --config ...)" to someone who gave --config.
  const configFailed = results.some((r) => r.step === 'configuration' && r.level === 'fail');
  if (configFailed) results.push(skippedForConfig('frames arriving'), skippedForConfig('a source that delivers frames'));
  else {
    const frames = await checkFrames(cfg, parseDuration(flags.framesTimeout ?? '5s'));
    results.push(...frames);
    results.push(canCount(cfg, frames, results));
  }
  if (configFailed) results.push(skippedForConfig('broker reachable'));
  else
    results.push(
      brokerGiven
        ? await checkBroker(cfg)
        : { step: 'broker reachable', level: 'warn', detail: 'no broker given (--mqtt-url)', fix: 'presence doctor --config /etc/presence/gateway.yaml' },
    );
  const user = !configFailed && flags.config ? (flags.serviceUser ?? serviceUserOf(flags.config)) : null;
  if (user) {
    const service = userIds(user) ? checkServiceUser(cfg, flags.config!, user) : noSuchServiceUser(user, flags.serviceUser !== undefined);
    if (service) results.push(service);
  }
  results.push(await checkClock());
  results.push(checkSwap());
  results.push(
    configFailed
      ? skippedForConfig('queue folder')
      : brokerGiven || flags.queueDir
        ? checkQueue(cfg, process.env, user)
        : {
            step: 'queue folder',
            level: 'warn',
            detail: 'not checked for a partial configuration',
            fix: 'presence doctor --config /etc/presence/gateway.yaml',
          },
  );
  return results;
}

/**
 * Run as root (`sudo presence doctor`, as the field guide says), doctor reads every file, while the
 * service runs as its own user (presence): a password file only root may read (the copy `scp` as
 * root leaves) passed here, "ready", and the service then stopped at its start naming it. So, as
 * root and where that user exists, the files the gateway reads at start are read as that user too
 * (runuser, util-linux): the configuration, the password file, the TLS files, the corridor secret.
 * null: not root, no such user, no runuser.
 */
export function checkServiceUser(cfg: GatewayConfig | null, configPath: string, user: string): CheckResult | null {
  if (!cfg || process.getuid?.() !== 0) return null;
  const step = `service user (${user})`;
  const files: [string, string][] = [['the configuration', resolve(configPath)]];
  const m = cfg.mqtt;
  if (m.password === undefined && m.password_file) files.push(['mqtt.password_file', m.password_file]);
  for (const k of ['ca', 'cert', 'key'] as const) if (m[k]) files.push([`mqtt.${k}`, m[k]!]);
  if (cfg.corridor?.group && cfg.corridor.secret_file) files.push(['corridor.secret_file', cfg.corridor.secret_file]);
  const unreadable: [string, string][] = [];
  for (const [what, path] of files) {
    // runuser (util-linux): the user's own groups, as systemd gives them to the service
    const r = spawnSync('runuser', ['-u', user, '--', 'test', '-r', path], { encoding: 'utf8', timeout: 5000 });
    if (r.error) return null; // no runuser here
    if (r.status === 0) continue;
    // `test -r` says nothing: words on stderr are runuser's own (no such user), no verdict on the file
    if (r.stderr?.trim()) return null;
    unreadable.push([what, path]);
  }
  if (!unreadable.length) return { step, level: 'ok', detail: `${user}, who runs the service, can read the configuration and the files it names` };
  const group = groupOf(user);
  return {
    step,
    level: 'fail',
    detail: `${user}, who runs the service, cannot read ${unreadable.map(([what, path]) => `${what} ${path}`).join(', ')}: the service would stop at its start (doctor runs as root, which reads every file)`,
    fix: unreadable
      .map(([what, path]) =>
        what === 'corridor.secret_file'
          ? `sudo chown ${user} ${path} && sudo chmod 600 ${path}`
          : `sudo chown root:${group} ${path} && sudo chmod 0640 ${path}${entersFolder(user, dirname(path)) ? '' : ` (and let ${user} into ${dirname(path)})`}`,
      )
      .join('; '),
  };
}

/**
 * The service's user (--service-user, or the installed unit's User=) is no user of this machine:
 * systemd cannot start the unit (status=217/USER). It was no line at all (runuser said the user
 * does not exist, which the file checks take for "cannot tell"), and doctor said ready.
 */
function noSuchServiceUser(user: string, given: boolean): CheckResult {
  return {
    step: `service user (${user})`,
    level: 'fail',
    detail: `${user}, ${given ? 'given with --service-user' : "the unit's User="}, is no user of this machine: systemd cannot start the service (status=217/USER)`,
    fix: `sudo useradd --system --no-create-home --shell /usr/sbin/nologin ${user}   (add --groups bluetooth for a Bluetooth capture; docs/field-guide.md, docs/deployment.md)${given ? ', or give --service-user the user the unit runs as' : ''}`,
  };
}

/** Whether a user may enter a folder (search permission on it and every folder above it), as runuser finds it. */
function entersFolder(user: string, dir: string): boolean {
  return spawnSync('runuser', ['-u', user, '--', 'test', '-x', dir], { encoding: 'utf8', timeout: 5000 }).status === 0;
}

/** Above this flip probability the flows of the sketches are too noisy to use (README "Flows between gateways"). */
export const USABLE_SKETCH_P = 0.1;

/**
 * The corridor group, as the gateway reads it at start (gateway/corridor.ts): the group named, its
 * secret file there, readable, of mode 0600 or stricter, owned by the user doctor runs as (the
 * gateway's user), one line of 64 hex digits. Never shows the secret. A flip probability above
 * USABLE_SKETCH_P is a warning: legal, and more private, but its flows will be inaccurate.
 */
export function checkCorridor(cfg: GatewayConfig | null): CheckResult {
  const step = 'corridor secret';
  if (!cfg) return { step, level: 'warn', detail: 'not checked: no configuration loaded' };
  const c = cfg.corridor;
  if (!c?.group) return { step, level: 'ok', detail: 'no corridor group (corridor.group): no sketches, no flows from this gateway' };
  let corridor: ReturnType<typeof corridorOf>;
  try {
    corridor = corridorOf(cfg);
  } catch (e) {
    const problems = e instanceof ConfigError ? e.problems.join('; ') : (e as Error).message;
    return { step, level: 'fail', detail: `group ${c.group}: ${problems}`, fix: CORRIDOR_HINT };
  }
  if (!corridor) return { step, level: 'fail', detail: `group ${c.group} has no corridor.secret_file`, fix: CORRIDOR_HINT };
  corridor.secret.fill(0);
  const file = c.secret_file!;
  const st = statSync(file);
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0 && st.uid !== uid)
    return {
      step,
      level: 'fail',
      detail: `group ${c.group}: ${file} is owned by uid ${st.uid}, not by uid ${uid} that runs this check (and the gateway)`,
      fix: `sudo chown $(id -u):$(id -g) ${file}   (the file must belong to the user the gateway runs as, mode 0600)`,
    };
  const p = quantisedP(corridor.p);
  const what = `group ${c.group}: ${file} holds a 32-byte secret, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; epoch ${c.epoch}, m ${c.sketch_bits}, p ${+p.toFixed(4)} (epsilon ${sketchEpsilon(p).toFixed(2)} per sketch and device)`;
  if (p > USABLE_SKETCH_P)
    return {
      step,
      level: 'warn',
      detail: `${what}: flows will be inaccurate: sketches this noisy put them far off (at p 0.5 ${FLOWS_AT_HALF} per 5-min interval on the simulator, travel times by several hundred %)`,
      fix: `set corridor.sketch_p: ${SKETCH_P_ADVISED} in every gateway of the group (epsilon ${epsilonText(SKETCH_P_ADVISED)} per sketch) if the group is to give usable flows (README, "Flows between gateways")`,
    };
  return { step, level: 'ok', detail: what };
}

/**
 * The verdict the gateway depends on: can any source deliver frames? With a configuration, at least
 * one source must have delivered frames (or be stdin, which only the gateway can read); without one,
 * the machine needs a radio: a Wi-Fi interface or a Bluetooth adapter. Never "ready" without.
 */
function canCount(cfg: GatewayConfig | null, frames: CheckResult[], results: CheckResult[]): CheckResult {
  const step = 'a source that delivers frames';
  if (cfg) {
    const ok = frames.filter((f) => f.level === 'ok' || deliveredFrames.has(f)).map((f) => /\((.*)\)$/.exec(f.step)?.[1] ?? f.step);
    if (ok.length) return { step, level: 'ok', detail: `${ok.join(', ')} delivered frames` };
    if (cfg.sources.some((s) => s.type === 'stdin'))
      return { step, level: 'warn', detail: 'only stdin, which doctor cannot sample', fix: 'pipe a capture into the gateway itself to see it count' };
    return {
      step,
      level: 'fail',
      detail: `none of the ${cfg.sources.length} configured source(s) delivered a frame the firmware counts: the gateway would publish only zeros`,
      fix: 'fix the failed steps above (capture tool, interface, monitor mode, adapter, FCS, RSSI gate), then run doctor again',
    };
  }
  const wifi = wirelessInterfaces().length > 0;
  const bt = results.find((r) => r.step === 'bluetooth adapter')?.level === 'ok';
  if (wifi || bt)
    return {
      step,
      level: 'ok',
      detail: `this machine has ${[wifi ? 'a Wi-Fi interface' : '', bt ? 'a Bluetooth adapter' : ''].filter(Boolean).join(' and ')}; give --config to try the capture`,
    };
  return {
    step,
    level: 'fail',
    detail: 'this machine has no Wi-Fi interface and no Bluetooth adapter: nothing here can hear a phone',
    fix: 'plug in a USB Wi-Fi adapter that supports monitor mode or a Bluetooth adapter, or give --config with a pcap file source to replay one',
  };
}

export function printReport(results: CheckResult[], json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(results, null, 2) + '\n');
    return;
  }
  const tag = { ok: ' OK ', warn: 'WARN', fail: 'FAIL' };
  const width = Math.max(...results.map((r) => r.step.length));
  for (const r of results) {
    // A detail may echo what the config holds (a key, a value, a file name): shown printable.
    process.stdout.write(`[${tag[r.level]}] ${r.step.padEnd(width)}  ${printable(r.detail)}\n`);
    for (const line of r.output ?? []) process.stdout.write(`       ${' '.repeat(width)}  | ${printable(line)}\n`);
    if (r.fix && r.level !== 'ok') process.stdout.write(`       ${' '.repeat(width)}  fix: ${printable(r.fix)}\n`);
  }
  const fails = results.filter((r) => r.level === 'fail').length;
  const warns = results.filter((r) => r.level === 'warn').length;
  process.stdout.write(`\n${fails ? `${fails} to fix` : 'ready'}${warns ? `, ${warns} warning(s)` : ''}\n`);
}
