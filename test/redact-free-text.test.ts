// The log-side redaction of a capture tool's free text (contract/redact.ts redactFreeText), and the
// capture command's environment (gateway/sources.ts captureEnv): a property test over random 48-bit
// addresses in every rendering a tool could produce, and a real capture command printing `env`.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REDACTED, redactFreeText } from '../contract/index.ts';
import { captureEnv, spawnCapture } from '../gateway/sources.ts';
import { Rng } from '../simulator/rng.ts';

const PUNCT = ' \t!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
const ZERO_WIDTH = ['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad'];
const fullWidth = (c: string) => (c >= '!' && c <= '~' ? String.fromCodePoint(c.codePointAt(0)! + 0xfee0) : c === ' ' ? '\u3000' : c);

/** One rendering of the 6 bytes, chosen by rng: groupings, separators, case, 0x, \x, base64, full width, zero width. */
function render(rng: Rng, bytes: number[]): string {
  const b = rng.chance(0.5) ? bytes : [...bytes].reverse();
  let hex = b.map((x) => x.toString(16).padStart(2, '0')).join('');
  const caseMode = rng.int(0, 2);
  const cased = (s: string) => (caseMode === 0 ? s : caseMode === 1 ? s.toUpperCase() : [...s].map((c) => (rng.chance(0.5) ? c.toUpperCase() : c)).join(''));
  let form: string;
  const kind = rng.int(0, 9);
  if (kind === 0) {
    form = b.map((x) => `\\x${cased(x.toString(16).padStart(2, '0'))}`).join('');
    if (rng.chance(0.5)) form = `b'${form}'`;
  } else if (kind === 1) {
    const enc = Buffer.from(b).toString('base64');
    form = rng.chance(0.5) ? enc : enc.replace(/\+/g, '-').replace(/\//g, '_');
  } else {
    hex = cased(hex);
    const size = [1, 2, 3, 4, 6][rng.int(0, 4)];
    let groups: string[] = hex.match(new RegExp(`.{${size}}`, 'g'))!;
    if (size === 2 && rng.chance(0.2)) groups = groups.map((g) => g.replace(/^0(?=.)/, '')); // ether_ntoa
    if (rng.chance(0.2)) groups = groups.map((g) => `0${rng.chance(0.5) ? 'x' : 'X'}${g}`);
    let sep = '';
    for (let n = rng.int(1, 4); n > 0; n--) sep += PUNCT[rng.int(0, PUNCT.length - 1)];
    if (rng.chance(0.3)) sep = ` ${sep.trim() || '-'} `;
    form = groups.join(sep);
  }
  let out = '';
  for (const c of form) {
    out += rng.chance(0.15) ? fullWidth(c) : c;
    if (rng.chance(0.1)) out += ZERO_WIDTH[rng.int(0, ZERO_WIDTH.length - 1)];
  }
  return out;
}

/** Names a capture command configures (program, interface), kept by redactFreeText. */
const KEPT = ['tcpdump', 'wlan0mon', 'bluetooth0'];

describe('redactFreeText', () => {
  it('leaves ordinary words readable', () => {
    expect(redactFreeText('fatal: wlan0: No such device')).toBe('fatal: wlan0: No such device');
    expect(redactFreeText("tcpdump: Jan's iPhone went away")).toBe("tcpdump: Jan's iPhone went away");
    expect(redactFreeText('exited with code 3: capture went away')).toBe('exited with code 3: capture went away');
  });

  it('redacts the forms a reviewer found', () => {
    for (const t of [
      "b'\\xaa\\xbb\\xcc\\xdd\\xee\\xff'",
      'aa|bb|cc|dd|ee|ff',
      'aa/bb/cc/dd/ee/ff',
      'aa\tbb\tcc\tdd\tee\tff',
      'aa::bb::cc::dd::ee::ff',
      'aa - bb - cc - dd - ee - ff',
      'A A B B C C D D E E F F',
      'qrvM3e7/',
      '\uff41\uff41:\uff42\uff42:\uff43\uff43:\uff44\uff44:\uff45\uff45:\uff46\uff46',
      'a\u200ba:b\u200db:c\u2060c:dd:ee:ff',
      'aabbccddeeff',
      '0xaabbccddeeff',
      'aab:bcc:dde:eff',
    ])
      expect(redactFreeText(`dev ${t} gone`), t).toBe(`dev ${REDACTED} gone`);
  });

  it('keeps the configured program and interface names the rules would take, with the quotes and punctuation around them', () => {
    const keep = ['tcpdump', 'wlan0mon', 'dumpcap', 'bluetooth0', 'enp0s31f6', 'phy0-mon0'];
    const lines = [
      'tcpdump: wlan0mon: No such device exists',
      'dumpcap: There is no device named "wlan0mon".',
      "dumpcap: You don't have permission to capture on 'bluetooth0'",
      'tcpdump: enp0s31f6: That device is not up',
      'dumpcap: phy0-mon0 not found',
    ];
    for (const l of lines) {
      expect(redactFreeText(l, keep), l).toBe(l);
      expect(redactFreeText(l), l).toContain(REDACTED); // without the names: taken for base64
    }
    // only the names themselves: another 8-character token, or the name glued to more, still goes
    expect(redactFreeText('tcpdump: wlan1mon: No such device', keep)).toBe(`tcpdump: ${REDACTED} No such device`);
    expect(redactFreeText('tcpdump: wlan0mon=aabbccddeeff', keep)).toBe(`tcpdump: ${REDACTED}`);
  });

  it('never keeps a configured name that holds an address (wlx + MAC), nor a short one', () => {
    expect(redactFreeText('tcpdump: wlx00c0ca9a1b2c: No such device', ['wlx00c0ca9a1b2c'])).toBe(`tcpdump: ${REDACTED} No such device`);
    expect(redactFreeText('dev aa:bb:cc:dd:ee:ff gone', ['aa:bb:cc:dd:ee:ff'])).toBe(`dev ${REDACTED} gone`);
    expect(redactFreeText('dev 0xaabb gone', ['aabb', 'ab'])).toBe(`dev ${REDACTED} gone`);
  });

  it('never keeps a configured name that holds part of an address, or one in base64, which the rules alone redact', () => {
    // 00:c0:ca:9a:1b:2c as 5 of its bytes, with '+' between its halves, in base64, with escapes, as short groups
    for (const name of ['wlan-00c0ca9a1b', 'a+00c0ca+9a1b2c', 'AMDKmhss', 'wl%00%c0%ca', 'mon-c0.ca.9a']) {
      const line = `tcpdump: ${name}: No such device exists`;
      expect(redactFreeText(line), name).toBe(`tcpdump: ${REDACTED} No such device exists`);
      expect(redactFreeText(line, ['tcpdump', name]), name).toBe(`tcpdump: ${REDACTED} No such device exists`);
    }
    // names interfaces and programs really have are kept
    for (const name of ['wlan0mon', 'enp0s31f6', 'wlp0s20f3', 'phy0-mon0', 'bluetooth0', 'Bluetooth0', 'WLAN0MON'])
      expect(redactFreeText(`tcpdump: ${name}: No such device exists`, ['tcpdump', name]), name).toBe(`tcpdump: ${name}: No such device exists`);
  });

  it('no rendering of any 48-bit address survives (property, seeded, 20000 cases)', () => {
    const rng = new Rng(4812);
    const words = ['fatal:', 'wlan0:', 'No such', 'tcpdump:', "Jan's iPhone", 'went away', 'dev', 'peer', '(', ')', 'addr', 'wlan0mon:', '"bluetooth0"'];
    const shapes = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const bytes = Array.from({ length: 6 }, () => rng.int(0, 255));
      const form = render(rng, bytes);
      shapes.add(form.replace(/[0-9a-f]/gi, 'h'));
      const pre = words[rng.int(0, words.length - 1)];
      const post = words[rng.int(0, words.length - 1)];
      const text = `${pre} ${form} ${post}`;
      // with the names a capture command configures kept (they are among the words around)
      const out = redactFreeText(text, KEPT);
      // The words around are kept; what is left of the form has no letter or digit at all.
      expect(out.startsWith(`${pre} `), JSON.stringify({ text, out })).toBe(true);
      expect(out.endsWith(` ${post}`), JSON.stringify({ text, out })).toBe(true);
      const rest = out
        .slice(pre.length, out.length - post.length)
        .split(REDACTED)
        .join('');
      expect(rest, JSON.stringify({ text, out })).toMatch(/^[^\p{L}\p{N}]*$/u);
      expect(out).toContain(REDACTED);
    }
    expect(shapes.size).toBeGreaterThan(5000);
  });
});

/** The 16 bytes of `b` from `at` as each dump tool prints a line of them: hex groups, then the bytes as characters (a dot for a byte that does not print). */
function dumpLines(b: Uint8Array, at: number): string[] {
  const row = [...b.subarray(at, at + 16)];
  const hex2 = row.map((x) => x.toString(16).padStart(2, '0'));
  const hex4 = (hex2.join('').match(/.{1,4}/g) ?? []).join(' ');
  const text = row.map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
  const off = at.toString(16);
  return [
    `${off.padStart(4, '0')}  ${hex2.join(' ')}   ${text}`, // tshark -x
    `\t0x${off.padStart(4, '0')}:  ${hex4}  ${text}`, // tcpdump -X
    `${off.padStart(8, '0')}  ${hex2.slice(0, 8).join(' ')}  ${hex2.slice(8).join(' ')}  |${text}|`, // hexdump -C
    `${off.padStart(8, '0')}: ${hex4}  ${text}`, // xxd
    `${off.padStart(6, '0')} ${hex2.join(' ')}  >${text}<`, // od -A x -t x1z
  ];
}

describe('redactFreeText: bytes shown as characters', () => {
  // An address whose bytes print (0x20-0x7e: 37 % of the bytes of a random address; all six of
  // them for one in 400) is in a dump's text column, or in raw bytes read as text, as itself:
  // no hex or base64 form of it is there to find.
  it('a hex dump line (tshark -x, tcpdump -X, hexdump -C, xxd, od) or raw bytes: the whole line goes, so no 3 bytes of an address in a row are left', () => {
    const rng = new Rng(90210);
    for (let i = 0; i < 3000; i++) {
      // a probe request as the radio hears it: broadcast around the address, at a random place
      const addr = Uint8Array.from({ length: 6 }, () => (rng.chance(0.8) ? rng.int(0x21, 0x7e) : rng.int(0, 255)));
      const frame = new Uint8Array(48).fill(0xff);
      for (let k = 0; k < 48; k++) if (rng.chance(0.3)) frame[k] = rng.int(0, 255);
      const pos = rng.int(0, 42);
      frame.set(rng.chance(0.5) ? addr : addr.slice().reverse(), pos);
      const texts = [...dumpLines(frame, pos - (pos % 16)), ...(pos % 16 > 10 ? dumpLines(frame, pos - (pos % 16) + 16) : [])];
      texts.push(`tool: ${Buffer.from(frame).toString('utf8')}`); // raw bytes written as text
      for (const t of texts) {
        const out = redactFreeText(`tool: went away\n${t}\n`, KEPT);
        // three printable bytes of the address in a row, in either order, are not left
        for (const a of [addr, addr.slice().reverse()])
          for (let k = 0; k + 3 <= 6; k++) {
            const piece = String.fromCharCode(...a.subarray(k, k + 3));
            if (/^[\x21-\x7e]{3}$/.test(piece) && !'<redacted>tool: went away'.includes(piece))
              expect(out.includes(piece), JSON.stringify({ t, out, piece })).toBe(false);
          }
        expect(out.startsWith('tool: went away '), JSON.stringify({ t, out })).toBe(true);
      }
    }
  });

  it('the text column alone (tcpdump -A): a token of dots beside other characters goes', () => {
    // 2a:4d:61:72:74:79 ("*Marty") between broadcast addresses, as a probe request holds it
    for (const line of ['\t....*Marty......', '@.........*Marty', '*Marty......', 'E..<..@.@.*Marty'])
      expect(redactFreeText(`tcpdump: ${line} went away`, KEPT), line).toBe(`tcpdump: ${REDACTED} went away`);
  });

  it('real dumps of a frame whose address prints (hexdump -C, xxd, od) leave nothing of it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-dump-'));
    try {
      // 2a:4d:61:72:74:79 ("*Marty"), a locally administered address, in a probe request after radiotap
      const addr = Buffer.from('*Marty', 'latin1');
      const frame = Buffer.concat([
        Buffer.from('00000a0022000000', 'hex'),
        Buffer.from([0, 0xce]),
        Buffer.from('40000000ffffffffffff', 'hex'),
        addr,
        Buffer.from('ffffffffffff1000000001040204', 'hex'),
      ]);
      const bin = join(dir, 'frame.bin');
      writeFileSync(bin, frame);
      const tools: string[][] = [
        ['hexdump', '-C', bin],
        ['xxd', bin],
        ['od', '-A', 'x', '-t', 'x1z', bin],
      ];
      let ran = 0;
      for (const [cmd, ...args] of tools) {
        const r = spawnSync(cmd!, args, { encoding: 'utf8' });
        if (r.status !== 0) continue;
        ran++;
        expect(r.stdout, cmd).toContain('Marty'); // control: the dump shows it
        const out = redactFreeText(r.stdout);
        expect(out, cmd).not.toMatch(/Mar|art|rty/);
        for (const line of r.stdout.split('\n')) expect(redactFreeText(line), `${cmd}: ${line}`).not.toMatch(/Mar|art|rty/);
      }
      expect(ran).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ordinary lines with dots stay: an ellipsis after a word, a relative path, a sentence', () => {
    for (const l of [
      'tcpdump: listening on wlan0mon, waiting...',
      "dumpcap: can't open ../captures/x.pcap: No such file",
      'Capturing on "wlan0mon".',
      'fatal: wlan0: No such device.',
    ])
      expect(redactFreeText(l, ['tcpdump', 'wlan0mon', 'dumpcap']), l).toBe(l);
    // a colour escape is not taken for binary
    expect(redactFreeText('\u001b[1;31mfatal:\u001b[0m wlan0: No such device')).toBe('fatal: wlan0: No such device');
  });
});

describe('capture command environment', () => {
  const secrets = {
    MQTT_PASSWORD: 'hunter2-mqtt',
    INFLUX_TOKEN: 'tok-influx',
    PRESENCE_MQTT_PASSWORD_FILE: '/run/secrets/mqtt',
    INFLUX_TOKEN_FILE: '/run/secrets/influx',
    API_SECRET: 'sec-api',
    AWS_SECRET_ACCESS_KEY: 'aws-key',
    SIGNING_KEY: 'sign-key',
    SIGNING_KEY_FILE: '/run/secrets/sign',
    github_token: 'gh-lower',
    // a URL with credentials is a secret whatever the variable's name
    MQTT_URL: 'mqtts://gw-01:pass-in-url@broker:8883',
    INFLUX_URL: 'http://admin:influx-in-url@influx:8086',
    // and so is one whose query holds a secret (InfluxDB 1.x takes u and p there; a token)
    OLD_INFLUX_URL: 'http://influx:8086/write?db=presence&u=writer&p=influx-in-query',
    HOOK: 'curl -s https://hooks.example.org/notify?token=tok-in-query',
    // and one no parser reads, its password holding a / (what redactTypedUrl takes out of an error)
    BROKER_URL: 'mqtt://gw-01:pa/ss-in-url@broker:1883',
  };

  it('captureEnv drops every secret variable and keeps the rest', () => {
    const env = captureEnv({
      ...secrets,
      PATH: '/usr/bin',
      HOME: '/home/x',
      KEYBOARD: 'us',
      LANG: 'C',
      PROXY_URL: 'http://proxy:3128/',
      MAIL: 'ops@example.org',
      DOCS_URL: 'https://example.org/search?q=presence&page=2&key=',
      FEED_URL: 'https://example.org/@presence/feed',
    });
    expect(env).toEqual({
      FEED_URL: 'https://example.org/@presence/feed',
      PATH: '/usr/bin',
      HOME: '/home/x',
      KEYBOARD: 'us',
      LANG: 'C',
      PROXY_URL: 'http://proxy:3128/',
      MAIL: 'ops@example.org',
      DOCS_URL: 'https://example.org/search?q=presence&page=2&key=',
    });
  });

  it('a capture command printing env sees none of the secrets', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, secrets);
    let out = '';
    try {
      const child = spawnCapture('env');
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((r) => child.once('close', r));
    } finally {
      for (const k of Object.keys(secrets)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    expect(out).toMatch(/^PATH=/m); // the command did run and print its environment
    for (const [k, v] of Object.entries(secrets)) {
      expect(out).not.toContain(`${k}=`);
      expect(out).not.toContain(v);
    }
  });

  // Not what captureEnv can prevent: the command runs as the gateway's user, and Linux lets a process
  // of the same user read another's initial environment (/proc/PID/environ needs no ptrace attach, so
  // kernel.yama.ptrace_scope does not stop it). PRIVACY.md's threat model and gateway/README.md say so.
  it.runIf(process.platform === 'linux')(
    "limit: a capture command that reads the gateway's own /proc/PID/environ finds the secret its environment does not hold",
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'presence-capture-environ-'));
      try {
        const stolen = join(dir, 'stolen');
        const seen = join(dir, 'env');
        // the command's parent is the gateway process (the guard's shell execs the command)
        const cmd = `env > ${seen}; tr '\\0' '\\n' < /proc/$PPID/environ > ${stolen}; exit 3`;
        writeFileSync(
          join(dir, 'gw.yaml'),
          `gateway: {site: s, zone: z, id: gw-1, window: 1s}\nmqtt: {url: "mqtt://127.0.0.1:9"}\nqueue: {dir: ${JSON.stringify(join(dir, 'q'))}}\n` +
            `sources:\n  - {type: command, name: wifi, radio: wifi, restart_min: 60s, command: ${JSON.stringify(cmd)}}\n`,
        );
        spawnSync(process.execPath, [join(import.meta.dirname, '..', 'scripts', 'presence.js'), 'gateway', '--config', join(dir, 'gw.yaml')], {
          env: { ...process.env, MQTT_USERNAME: 's/gw-1', MQTT_PASSWORD: 'Environ-Pw-7c1e' },
          timeout: 4000,
          killSignal: 'SIGTERM',
          encoding: 'utf8',
        });
        expect(existsSync(seen) && existsSync(stolen)).toBe(true); // the command ran
        expect(readFileSync(seen, 'utf8')).toMatch(/^PATH=/m);
        expect(readFileSync(seen, 'utf8')).not.toContain('Environ-Pw-7c1e'); // its own environment: none
        expect(readFileSync(stolen, 'utf8')).toContain('MQTT_PASSWORD=Environ-Pw-7c1e'); // its parent's: there
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
