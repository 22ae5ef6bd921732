// What to do about a capture command that failed, from what it said on stderr: shared by
// `presence doctor` (its "frames arriving" line) and the gateway (its "capture command stopped" log
// line). The fix is a fixed sentence with the program and interface of the configured command only,
// never any text of the tool, whose stderr can hold device addresses.

import { keepableName, REDACTED } from '../contract/redact.ts';

/**
 * A configured name as a log line or a fix may show it: itself, unless it holds an address or part
 * of one (contract keepableName; `wlx00c0ca9a1b2c` is a USB adapter named after its MAC), then
 * `<redacted>`. Names of 2 characters or fewer (`sh`, `nc`) hold none and are shown.
 */
export function shownName(name: string): string {
  return name.length <= 2 || keepableName(name) ? name : REDACTED;
}

/**
 * Programs that run another program named after them, which is then the capture program, with the
 * options of each that take a value as a word of their own (`-u presence`, `-n 5`, `-o 0`; an
 * attached one, `-o0`, `--user=presence`, is one word) and the operands it takes before the program
 * (timeout's duration, taskset's mask). VAR=value words before a program (the shell's, env's,
 * sudo's) are skipped too, and `--` ends a wrapper's options.
 */
const WRAPPERS: Record<string, { valued: readonly string[]; operands?: number }> = {
  sudo: {
    valued: [
      '-u',
      '--user',
      '-g',
      '--group',
      '-C',
      '--close-from',
      '-D',
      '--chdir',
      '-p',
      '--prompt',
      '-r',
      '--role',
      '-t',
      '--type',
      '-T',
      '--command-timeout',
      '-U',
      '--other-user',
      '-R',
      '--chroot',
    ],
  },
  doas: { valued: ['-u', '-C'] },
  env: { valued: ['-u', '--unset', '-C', '--chdir'] },
  exec: { valued: ['-a'] },
  command: { valued: [] },
  nohup: { valued: [] },
  nice: { valued: ['-n', '--adjustment'] },
  ionice: { valued: ['-c', '--class', '-n', '--classdata'] },
  stdbuf: { valued: ['-i', '--input', '-o', '--output', '-e', '--error'] },
  timeout: { valued: ['-s', '--signal', '-k', '--kill-after'], operands: 1 },
  taskset: { valued: [], operands: 1 },
  // util-linux's setpriv (--reuid=presence, --no-new-privs, --inh-caps=...): runs the program after its options
  setpriv: {
    valued: [
      '--reuid',
      '--regid',
      '--ruid',
      '--euid',
      '--rgid',
      '--egid',
      '--groups',
      '--inh-caps',
      '--ambient-caps',
      '--bounding-set',
      '--securebits',
      '--pdeathsig',
      '--selinux-label',
      '--apparmor-profile',
      // util-linux 2.40 and later
      '--landlock-access',
      '--landlock-rule',
      '--seccomp-filter',
      '--ptracer',
    ],
  },
};

/** The Debian package of a program the gateway may tell the engineer to install. */
const PACKAGE_OF: Record<string, string> = {
  dumpcap: 'tshark',
  tshark: 'tshark',
  env: 'coreutils',
  nice: 'coreutils',
  nohup: 'coreutils',
  stdbuf: 'coreutils',
  timeout: 'coreutils',
  ionice: 'util-linux',
  taskset: 'util-linux',
  setpriv: 'util-linux',
};

/** The Debian package that installs a program (PACKAGE_OF; else the program's own name). */
export function packageOf(program: string): string {
  return Object.hasOwn(PACKAGE_OF, program) ? PACKAGE_OF[program]! : program;
}

/**
 * The program, `-i` interface and wrappers of a capture command (a string command's words without
 * the quotes around them: `-i 'bluetooth0'`). The program is the capture program, not a wrapper
 * before it: `sudo -u presence tcpdump ...`, `env X=1 tcpdump`, `stdbuf -o0 tcpdump`, `timeout 1h
 * tshark`, `nice -n 5 dumpcap` all run tcpdump, tshark or dumpcap (WRAPPERS; a command that is
 * nothing but wrappers has the last one as its program). The interface is the `-i` of the words
 * after the program (`-i wlan0mon`, `-iwlan0mon`, `--interface wlan0mon`, `--interface=wlan0mon`;
 * `env -i` clears the environment). `wrappers`: their basenames, in order.
 * `runAs`: the user the last sudo or doas before the program runs it as (`-u presence`,
 * `--user=presence`), when one is named; without it they run it as root.
 */
export function parseCaptureCommand(command: string | string[]): { program: string; iface?: string; wrappers: string[]; runAs?: string } {
  const argv = Array.isArray(command)
    ? command
    : command
        .trim()
        .split(/\s+/)
        .map((a) => a.replace(/^(["'])(.*)\1$/, '$2'));
  const base = (word: string) => word.split('/').pop()!;
  const wrappers: string[] = [];
  let runAs: string | undefined;
  let i = 0;
  for (;;) {
    while (i < argv.length && /^\w+=/.test(argv[i]!)) i++;
    const name = i < argv.length ? base(argv[i]!) : '';
    if (!Object.hasOwn(WRAPPERS, name)) break;
    const wrapper = WRAPPERS[name]!;
    wrappers.push(name);
    const elevates = name === 'sudo' || name === 'doas';
    if (elevates) runAs = undefined;
    i++;
    while (i < argv.length && argv[i]!.startsWith('-') && argv[i] !== '-') {
      const option = argv[i++]!;
      if (option === '--') break;
      if (option.startsWith('--')) {
        if (elevates && option === '--user') runAs = argv[i];
        else if (elevates && option.startsWith('--user=')) runAs = option.slice('--user='.length);
        if (wrapper.valued.includes(option)) i++;
        continue;
      }
      // Short options, also several in one word (`sudo -nu presence`, `stdbuf -oL`): the first that
      // takes a value takes the rest of the word, or the next word when it ends the word.
      for (let c = 1; c < option.length; c++) {
        if (!wrapper.valued.includes(`-${option[c]}`)) continue;
        const value = c + 1 < option.length ? option.slice(c + 1) : argv[i++];
        if (elevates && option[c] === 'u') runAs = value;
        break;
      }
    }
    while (i < argv.length && /^\w+=/.test(argv[i]!)) i++;
    i += wrapper.operands ?? 0;
  }
  const program = i < argv.length ? base(argv[i]!) : (wrappers.at(-1) ?? '');
  const args = argv.slice(i + 1);
  const at = args.findIndex((a) => a === '-i' || a === '--interface');
  const iface =
    at >= 0
      ? args[at + 1]
      : (args.find((a) => a.startsWith('--interface=')) ?? args.find((a) => a.startsWith('-i') && !a.startsWith('--')))?.replace(/^(--interface=|-i)/, '');
  return { program, ...(iface ? { iface } : {}), wrappers, ...(runAs !== undefined ? { runAs } : {}) };
}

/**
 * Names of a capture command that the operator configured and the tool's messages repeat: its
 * program and `-i` interface. redactFreeText keeps them (unless one holds an address form), so
 * `tcpdump: wlan0mon: No such device exists` still says which interface failed.
 */
export function configuredNames(command: string | string[]): string[] {
  const { program, iface } = parseCaptureCommand(command);
  return iface ? [program, iface] : [program];
}

/**
 * The line of a failed capture tool's output that says what went wrong: its own first line
 * (`dumpcap: You do not have permission to capture on device "eth0".`, `tcpdump: wlan0mon: No such
 * device exists`), else the last. dumpcap follows its error with a page of advice whose last line,
 * "and then restarting Wireshark.", said nothing.
 */
export function headline(output: string[], program: string): string {
  return output.find((l) => program !== '' && l.startsWith(`${program}: `)) ?? output[output.length - 1] ?? '';
}

/**
 * What to do about a capture tool's error, from what it said and, when known, its exit code. "No
 * such file or directory" means the program is missing only when the shell could not run it (exit
 * code 127, or 126; spawn's ENOENT): a program that ran and exited with another code said it about
 * a file its command names (`pcap-pace /missing.pcap`, `dumpcap -w /no/such/dir/x`), and telling
 * the engineer to install the program it just ran sent them the wrong way.
 */
export function captureFix(output: string[], command: string | string[], exitCode?: number | null): string {
  const text = output.join('\n');
  const parsed = parseCaptureCommand(command);
  const program = shownName(parsed.program);
  // An interface named after its address (wlx00c0ca9a1b2c) is not printed: a command to type names
  // it IFACE and says which one that is, never `<redacted>`, which a shell reads as a redirection.
  const named = parsed.iface === undefined ? undefined : shownName(parsed.iface);
  const iface = named === REDACTED ? 'IFACE' : named;
  const which = named === REDACTED ? "; IFACE: the capture command's -i interface, named after its address (ip link lists it)" : '';
  // Exit code 126: the shell (or a wrapper: stdbuf, timeout, env) found the program but could not
  // run it, "Permission denied": no execute permission for this user, which capture rights do not
  // give. dumpcap is installed that way (root:wireshark, mode 0754) when wireshark-common was told
  // that non-superusers may capture.
  if (exitCode === 126 || /^EACCES$/m.test(text))
    return `${program} cannot be run by the user the gateway runs as (permission denied: not executable for that user): see who may run it with ls -l $(command -v ${program}); dumpcap installed for the wireshark group only: sudo dpkg-reconfigure wireshark-common and answer No, or sudo usermod -aG wireshark presence (the service's user); any other program: sudo chmod 755 it`;
  // sudo (or doas) before the capture program where it cannot raise privileges: the no-new-privileges
  // flag, which the gateway's unit sets (NoNewPrivileges=yes) and a container may, stops it (older
  // sudo: "effective uid is not 0"); or it wants a password, which nobody types. The unit needs
  // neither: it gives the capture commands CAP_NET_RAW and CAP_NET_ADMIN.
  const elevator = parsed.wrappers.find((w) => w === 'sudo' || w === 'doas') ?? 'sudo';
  if (/"no new privileges" flag is set|effective uid is not 0|not installed setuid/i.test(text))
    return `${elevator} in the capture command cannot raise privileges here (the no-new-privileges flag: the gateway's systemd unit sets NoNewPrivileges=yes, a container may too) and is not needed: remove ${elevator} and its options from the command; the unit gives the capture program CAP_NET_RAW and CAP_NET_ADMIN`;
  if (/a password is required|a terminal is required to read the password|no tty present and no askpass program/i.test(text))
    return `${elevator} in the capture command asks for a password, which nobody can type there: remove ${elevator} and its options from the command and give ${program} capture rights: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v ${program}) (or run the gateway with the systemd unit, which gives them)`;
  // dumpcap without capture rights lists no interface at all and says only this.
  if (/permission|not permitted|operation not permitted|you don't have permission|EPERM|EACCES|no interfaces on which a capture can be done/i.test(text))
    return `give ${program} capture rights: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v ${program}) (or run the gateway with the systemd unit)`;
  if (/no such device|doesn't exist|does not exist|there is no device|no suitable device|not found.*interface|interface.*not found/i.test(text))
    return `the interface${iface ? ` ${iface}` : ''} is not there: check the name with \`ip link\` (Wi-Fi: the monitor interface, e.g. wlan0mon; Bluetooth: dumpcap -D lists bluetoothN)${which}`;
  const ran = typeof exitCode === 'number' && exitCode !== 126 && exitCode !== 127;
  if (ran && /No such file or directory/i.test(text))
    return `${program} ran but could not open a file its command names (No such file or directory): check the paths in the command; run it by hand to see which`;
  if (/not found|No such file or directory|command not found|ENOENT/i.test(text)) {
    // The shell could not find a wrapper (`sh: 1: stdbuf: not found`): that one is missing, not the capture program.
    const wrapper = parsed.wrappers.find((w) => new RegExp(`(^|[\\s:])${w}: (command )?not found`, 'm').test(text));
    const missing = wrapper ?? parsed.program;
    return `install ${shownName(missing)} (sudo apt-get install -y ${shownName(packageOf(missing))}) or fix the command's path`;
  }
  if (/monitor/i.test(text)) return 'put the interface in monitor mode (sudo iw dev wlan0 set type monitor, or add a wlan0mon interface)';
  if (/network is down|not up/i.test(text)) return `bring the interface up: sudo ip link set ${iface ?? 'IFACE'} up${which}`;
  return 'run the command by hand to see its error; check the interface name, that it is up, and capture permission';
}
