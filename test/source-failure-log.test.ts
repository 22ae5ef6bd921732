// What the gateway logs when a capture source fails: what is wrong and where, readable (kind of
// damage, byte offset, frames read before it, the configured path), and no byte of a frame: values
// read from the stream (a block's type and length, a file's first bytes) can be part of a device
// address on a damaged stream (the reader's sentence quotes none: test/capture-error-text.test.ts).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { LINKTYPE } from '../firmware/host/types.ts';
import { CommandSource, FileSource, type FrameSink } from '../gateway/sources.ts';
import { radioOf } from '../gateway/doctor.ts';
import { captureFix, parseCaptureCommand } from '../gateway/capture-fix.ts';
import { pcapngHeader, pcapngPacket } from '../simulator/pcap-writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'source-failure-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An address's bytes: the reader's sentence would quote them, the log must not hold them in any form. */
const ADDRESS = [0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e];

async function failLog(bytes: Buffer): Promise<{ entry: Record<string, unknown>; text: string; path: string }> {
  const path = join(dir, `c${Math.random().toString(36).slice(2, 8)}.pcapng`);
  writeFileSync(path, bytes);
  const lines: string[] = [];
  const log = pino({ level: 'trace' }, { write: (s: string) => void lines.push(s) });
  const src = new FileSource({ name: 'replay', radio: 'wifi', path, speed: 'max' }, log);
  const sink: FrameSink = { deliver: () => {}, stateChanged: () => {} };
  src.start(sink);
  await src.finished;
  expect(src.state).toBe('failed');
  const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const entry = entries.find((e) => e.msg === 'source failed')!;
  expect(entry).toBeDefined();
  // every log line without pino's own time, pid and host
  const text = entries.map(({ time, pid, hostname, ...rest }) => JSON.stringify(rest)).join('\n');
  return { entry, text, path };
}

/** No rendering of ADDRESS (either byte order, any 4 of its bytes in a row) in the text's hex digits. */
function expectNoAddress(text: string): void {
  const hex = text.toLowerCase().replace(/0x|[^0-9a-f]/g, '');
  for (const order of [ADDRESS, [...ADDRESS].reverse()])
    for (let i = 0; i + 4 <= order.length; i++) {
      const piece = order
        .slice(i, i + 4)
        .map((b) => b.toString(16).padStart(2, '0'))
        .join('');
      expect(hex, piece).not.toContain(piece);
    }
  expect(text).not.toMatch(/\b\d{8,}\b/); // nor as a decimal number
}

const header = () => pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }]);
const frame = () => pcapngPacket(0, 1_700_000_000_000, new Uint8Array(40));

describe('a failing capture source logs what is wrong and where, without frame bytes', () => {
  it('a block whose type and length are address bytes: kind of damage, byte offset, frames before it, the path', async () => {
    const good = Buffer.concat([header(), frame(), frame()]);
    const bad = Buffer.from([0x00, ...ADDRESS, 0x01, ...Buffer.alloc(16)]); // type 0xfb223c00, length 0x019ea001 (odd)
    const { entry, text, path } = await failLog(Buffer.concat([good, bad]));
    expect(entry).toMatchObject({ source: 'replay', path, code: 'bad_capture', damage: 'bad_block_length', frames_before: 2 });
    expect(entry.fix).toBe(
      'the capture is damaged there: the frames before it were counted, none after it; check the recorder (a full disk, a crash, a copy cut short) for the rest',
    );
    expect(entry.byte_offset).toBe(good.length + 4);
    expect(text).not.toContain('<redacted>'); // nothing in it needed hiding
    expectNoAddress(text.replaceAll(path, ''));
  });

  it('a file that starts with an address: not a capture, at byte 0', async () => {
    const { entry, text, path } = await failLog(Buffer.from([...ADDRESS, ...ADDRESS, 0, 0, 0, 0]));
    expect(entry).toMatchObject({ path, code: 'bad_capture', damage: 'not_a_capture', byte_offset: 0, frames_before: 0 });
    expect(entry.fix).toBe('give a pcap or pcapng capture, as tcpdump -w or dumpcap -w write them');
    expectNoAddress(text.replaceAll(path, ''));
  });

  it('a capture cut short inside a record', async () => {
    const good = Buffer.concat([header(), frame()]);
    const { entry, path } = await failLog(Buffer.concat([good, frame().subarray(0, 20)]));
    expect(entry).toMatchObject({ path, code: 'bad_capture', damage: 'ends_inside_record', byte_offset: good.length, frames_before: 1 });
    expect(entry.fix).toMatch(/^the capture was cut short \(its recorder stopped in the middle of a block\): the frames before it were counted, none after it/);
  });

  it('an empty file, and one cut short in its header: the fix says what to give (no frame came before)', async () => {
    const empty = await failLog(Buffer.alloc(0));
    expect(empty.entry).toMatchObject({ code: 'bad_capture', damage: 'empty', frames_before: 0 });
    expect(empty.entry.fix).toBe('give a capture that holds frames (on a pipe: start the capture tool first, e.g. tcpdump -U -w -)');
    const cut = await failLog(header().subarray(0, 10));
    expect(cut.entry).toMatchObject({ code: 'bad_capture', frames_before: 0 });
    expect(cut.entry.fix).toMatch(/, before its first frame: give a complete copy of the capture$/);
  });

  it('a file that cannot be read: errno and call, the path', async () => {
    const path = join(dir, 'missing.pcapng');
    const lines: string[] = [];
    const log = pino({ level: 'trace' }, { write: (s: string) => void lines.push(s) });
    const src = new FileSource({ name: 'replay', path, speed: 'max' }, log);
    src.start({ deliver: () => {}, stateChanged: () => {} });
    await src.finished;
    const entry = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.msg === 'source failed');
    expect(entry).toMatchObject({ path, code: 'read_failed', errno: 'ENOENT' });
  });
});

describe('a capture command that stops', () => {
  /** The first 'capture command stopped; restarting' line of a command source running `command`. */
  async function stoppedLine(command: string): Promise<Record<string, unknown>> {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'trace' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const src = new CommandSource({ name: 'wifi', radio: 'wifi', command, restart_min: '1s', restart_max: '60s' }, log);
    src.start({ deliver: () => {}, stateChanged: () => {} });
    const deadline = Date.now() + 10_000;
    while (!lines.some((l) => l.msg === 'capture command stopped; restarting') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await src.stop();
    const line = lines.find((l) => l.msg === 'capture command stopped; restarting');
    expect(line, JSON.stringify(lines)).toBeDefined();
    return line!;
  }

  it('a command that writes text, not a capture (tcpdump without -w -): the fix says to write the capture to stdout', async () => {
    const line = await stoppedLine('echo "listening on wlan0mon, link-type IEEE802_11_RADIO"');
    expect(line).toMatchObject({ program: 'echo', code: 'bad_capture', damage: 'not_a_capture', byte_offset: 0, frames_before: 0 });
    expect(line.fix).toBe(
      'the command writes something other than pcap or pcapng to its standard output (tcpdump without -w - prints text lines there): have the capture tool write the capture to stdout (tcpdump -U -w -, dumpcap -q -w -, tshark -w -)',
    );
  });

  it('a command whose capture turns damaged after frames: the fix says they were counted and what to change', async () => {
    const capture = join(dir, 'then-text.pcapng');
    writeFileSync(capture, Buffer.concat([header(), frame(), frame()]));
    const line = await stoppedLine(`cat ${capture}; echo "2 packets captured"`);
    expect(line).toMatchObject({ program: 'cat', code: 'bad_capture', frames_before: 2 });
    expect(line.fix).toMatch(
      /^the frames before it were counted; the command's output is damaged there: have the capture tool write the capture alone to stdout/,
    );
  });

  it('a program that ran and could not open a file its command names is not to be installed: the fix says to check the paths', async () => {
    const missing = join(dir, 'no-such-capture.pcap');
    const line = await stoppedLine(`cat ${missing}`);
    expect(line).toMatchObject({ program: 'cat', exit_code: 1 });
    expect(line.fix).not.toMatch(/install/);
    expect(line.fix).toMatch(/^cat ran but could not open a file its command names \(No such file or directory\): check the paths in the command/);
  });

  it("the configured interface stays readable in the tool's stderr line (wlan0mon, which the redaction takes for base64), an address beside it does not", async () => {
    // a capture tool (a script named like tcpdump, run with -i wlan0mon) that cannot open it
    const tool = join(dir, 'tcpdump');
    writeFileSync(tool, '#!/bin/sh\necho "tcpdump: wlan0mon: No such device exists (last seen 3c:22:fb:01:a0:9e)" >&2\nexit 1\n', { mode: 0o755 });
    const line = await stoppedLine(`${tool} -i wlan0mon -U -w -`);
    expect(line).toMatchObject({ program: 'tcpdump', exit_code: 1 });
    expect(line.stderr).toBe('tcpdump: wlan0mon: No such device exists (last seen <redacted>');
  });

  it("a quoted interface in a command line (-i 'wlan0mon', as the shell takes it) stays readable too, and the fix names it without the quotes", async () => {
    const tool = join(dir, 'tcpdump');
    writeFileSync(tool, '#!/bin/sh\necho "tcpdump: wlan0mon: No such device exists" >&2\nexit 1\n', { mode: 0o755 });
    const line = await stoppedLine(`${tool} -i 'wlan0mon' -U -w -`);
    expect(line.stderr).toBe('tcpdump: wlan0mon: No such device exists');
    expect(line.fix).toMatch(/^the interface wlan0mon is not there/);
    // and presence doctor takes a quoted Bluetooth interface for BLE, as an unquoted one
    expect(radioOf({ type: 'command', name: 'bt', command: `dumpcap -i "bluetooth0" -w -`, restart_min: '1s', restart_max: '60s' })).toBe('ble');
  });

  it('an interface or program named after a MAC is in no field of the line: not in its stderr, its fix or its program', async () => {
    const tool = join(dir, 'tcpdump');
    writeFileSync(tool, '#!/bin/sh\necho "tcpdump: wlx00c0ca9a1b2c: No such device exists" >&2\nexit 1\n', { mode: 0o755 });
    const line = await stoppedLine(`${tool} -i wlx00c0ca9a1b2c -U -w -`);
    expect(line.stderr).toBe('tcpdump: <redacted> No such device exists');
    // the fix is a command to type: IFACE and how to find it, not <redacted>
    expect(line.fix).toMatch(
      /^the interface IFACE is not there: check the name with `ip link`.*; IFACE: the capture command's -i interface, named after its address/,
    );
    expect(JSON.stringify(line)).not.toMatch(/00c0ca/i);
    const named = join(dir, 'sniff-00c0ca9a1b2c');
    writeFileSync(named, '#!/bin/sh\necho "permission denied" >&2\nexit 1\n', { mode: 0o755 });
    const other = await stoppedLine(`${named} -i wlan0mon -w -`);
    expect(other).toMatchObject({ program: '<redacted>', exit_code: 1 });
    expect(other.fix).toMatch(/^give <redacted> capture rights/);
    expect(JSON.stringify(other)).not.toMatch(/00c0ca/i);
  });

  it('a capture program run through wrappers (env, stdbuf, timeout, nice) is named in the line, not the first word; the interface too', async () => {
    const tool = join(dir, 'tcpdump');
    writeFileSync(tool, '#!/bin/sh\necho "tcpdump: wlan0mon: No such device exists" >&2\nexit 1\n', { mode: 0o755 });
    const line = await stoppedLine(`env X=1 stdbuf -o0 timeout -s INT 1h nice -n 5 ${tool} -i wlan0mon -U -w -`);
    expect(line).toMatchObject({ program: 'tcpdump', exit_code: 1 });
    expect(line.stderr).toBe('tcpdump: wlan0mon: No such device exists');
    expect(line.fix).toMatch(/^the interface wlan0mon is not there/);
    // one named after a MAC stays hidden behind a wrapper as well
    const named = join(dir, 'sniff-00c0ca9a1b2c');
    writeFileSync(named, '#!/bin/sh\necho "permission denied" >&2\nexit 1\n', { mode: 0o755 });
    const other = await stoppedLine(`stdbuf -o0 ${named} -i wlan0mon -w -`);
    expect(other).toMatchObject({ program: '<redacted>', exit_code: 1 });
    expect(other.fix).toMatch(/^give <redacted> capture rights/);
    expect(JSON.stringify(other)).not.toMatch(/00c0ca/i);
  });

  it('the program of a command is the one after its wrappers, their options, operands and VAR=value words', () => {
    const cases: Array<[string | string[], string, string | undefined]> = [
      ['sudo tcpdump -i wlan0mon -U -w -', 'tcpdump', 'wlan0mon'],
      ['sudo -n -u presence -E /usr/sbin/tcpdump -i wlan0mon -w -', 'tcpdump', 'wlan0mon'],
      ['sudo --user=presence -- tcpdump -iwlan0mon', 'tcpdump', 'wlan0mon'],
      ['env X=1 tcpdump -i wlan0mon', 'tcpdump', 'wlan0mon'],
      ['env -i PATH=/usr/sbin:/usr/bin tcpdump -i wlan0mon', 'tcpdump', 'wlan0mon'], // env's -i is no interface
      ['env -u LANG -C /tmp dumpcap -i bluetooth0 -w -', 'dumpcap', 'bluetooth0'],
      ['stdbuf -o0 tcpdump -i wlan0mon', 'tcpdump', 'wlan0mon'],
      ['stdbuf -o 0 -e L tcpdump -i wlan0mon', 'tcpdump', 'wlan0mon'],
      ['timeout 1h tshark -i wlan0mon -w -', 'tshark', 'wlan0mon'],
      ['timeout -k 10s --signal=INT 1h tshark -i wlan0mon', 'tshark', 'wlan0mon'],
      ['nice -n 5 dumpcap -i bluetooth0 -w -', 'dumpcap', 'bluetooth0'],
      ['nice -5 dumpcap -i bluetooth0', 'dumpcap', 'bluetooth0'],
      ['LC_ALL=C nohup ionice -c 3 taskset -c 1 exec tcpdump -i wlan0mon', 'tcpdump', 'wlan0mon'],
      [['sudo', '-u', 'presence', '/usr/bin/dumpcap', '-i', 'bluetooth0'], 'dumpcap', 'bluetooth0'],
      ['ssh gw-a sudo tcpdump -i wlan0mon -w -', 'ssh', 'wlan0mon'], // another machine's capture: ssh runs it
      ['tcpdump -i wlan0mon', 'tcpdump', 'wlan0mon'],
      ['sudo', 'sudo', undefined],
      ['setpriv --reuid presence --regid presence --init-groups tcpdump -i wlan0mon', 'tcpdump', 'wlan0mon'],
      ['setpriv --landlock-access fs --landlock-rule path-beneath:read:/usr --seccomp-filter f.bpf --ptracer 1 dumpcap -i wlan0mon', 'dumpcap', 'wlan0mon'],
    ];
    for (const [command, program, iface] of cases) {
      const parsed = parseCaptureCommand(command);
      expect([parsed.program, parsed.iface], JSON.stringify(command)).toEqual([program, iface]);
    }
  });

  it('a missing wrapper is the one to install, not the capture program behind it; a missing capture program still is', () => {
    expect(captureFix(['/bin/sh: 1: stdbuf: not found'], 'stdbuf -o0 tcpdump -i wlan0mon -w -', 127)).toBe(
      "install stdbuf (sudo apt-get install -y coreutils) or fix the command's path",
    );
    expect(captureFix(['stdbuf: failed to run command ‘tcpdump’: No such file or directory'], 'stdbuf -o0 tcpdump -i wlan0mon -w -', 127)).toBe(
      "install tcpdump (sudo apt-get install -y tcpdump) or fix the command's path",
    );
    expect(captureFix(['sudo: tcpdump: command not found'], 'sudo tcpdump -i wlan0mon', 1)).toMatch(/^install tcpdump /);
    expect(captureFix(['permission denied'], 'nice -n 5 dumpcap -i bluetooth0 -w -', 1)).toMatch(/^give dumpcap capture rights: .*\$\(command -v dumpcap\)/);
  });

  it("a tool that dumps a frame on stderr: the dump's line goes whole, hex and text column, where an address that prints stands as itself", async () => {
    // a probe request's addresses: broadcast, then 2a:4d:61:72:74:79, whose bytes read "*Marty"
    const bytes = join(dir, 'frame.bin');
    writeFileSync(bytes, Buffer.concat([Buffer.from('ffffffffffff', 'hex'), Buffer.from('*Marty', 'latin1'), Buffer.from('ffffffff', 'hex')]));
    // od's dump of it, "000000 ff ff ff ff ff ff 2a 4d 61 72 74 79 ff ff ff ff  >......*Marty....<", as the last line
    const line = await stoppedLine(`od -A x -t x1z -v ${bytes} | head -n 1 >&2; exit 1`);
    expect(line).toMatchObject({ exit_code: 1, stderr: '<redacted>' });
    expect(JSON.stringify(line)).not.toMatch(/\*Ma|Mar|arty|2a4d|2a 4d/);
    // raw bytes of a frame written as text: the line goes, the words before it stay
    const raw = await stoppedLine(`printf 'tcpdump: went away ' >&2; cat ${bytes} >&2; exit 1`);
    expect(raw.stderr).toBe('<redacted>');
    expect(JSON.stringify(raw)).not.toMatch(/\*Ma|Mar|arty/);
  });

  // sudo run by a user other than root, with and without the no-new-privileges flag the gateway's
  // unit sets (setpriv sets both here; it needs root). Real sudo, real messages.
  const sudoWhy = !existsSync('/usr/bin/sudo')
    ? 'sudo is not installed (apt-get install -y sudo)'
    : process.getuid?.() !== 0
      ? 'setpriv needs root to run sudo as another user'
      : '';
  if (sudoWhy) console.warn(`skipping the sudo cases: ${sudoWhy}`);
  it.skipIf(sudoWhy !== '' && process.env.CI !== 'true')(
    "sudo in a capture command under the no-new-privileges flag (the unit's NoNewPrivileges=yes): the fix is to remove it, not to give capture rights",
    async () => {
      expect(sudoWhy, 'CI installs sudo and runs as root').toBe('');
      const line = await stoppedLine('setpriv --no-new-privs --reuid=65534 --regid=65534 --clear-groups sudo -n tcpdump -i wlan0mon -U -w -');
      expect(line).toMatchObject({ program: 'tcpdump', exit_code: 1 });
      expect(line.fix).toBe(
        "sudo in the capture command cannot raise privileges here (the no-new-privileges flag: the gateway's systemd unit sets NoNewPrivileges=yes, a container may too) and is not needed: remove sudo and its options from the command; the unit gives the capture program CAP_NET_RAW and CAP_NET_ADMIN",
      );
    },
  );

  it.skipIf(sudoWhy !== '' && process.env.CI !== 'true')(
    'sudo in a capture command that asks for a password: the fix is to remove it and give the program capture rights',
    async () => {
      expect(sudoWhy, 'CI installs sudo and runs as root').toBe('');
      const line = await stoppedLine('setpriv --reuid=65534 --regid=65534 --clear-groups sudo -n tcpdump -i wlan0mon -U -w -');
      expect(line).toMatchObject({ program: 'tcpdump', exit_code: 1 });
      expect(line.fix).toBe(
        'sudo in the capture command asks for a password, which nobody can type there: remove sudo and its options from the command and give tcpdump capture rights: sudo setcap cap_net_raw,cap_net_admin=eip $(command -v tcpdump) (or run the gateway with the systemd unit, which gives them)',
      );
    },
  );

  it('a program that is not installed (the shell says so, exit code 127) is still to be installed', async () => {
    const line = await stoppedLine('no-such-capture-tool -i wlan0mon -w -');
    expect(line).toMatchObject({ exit_code: 127 });
    expect(line.fix).toMatch(/^install no-such-capture-tool/);
  });
});
