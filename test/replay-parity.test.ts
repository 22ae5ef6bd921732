// `presence replay` against the TShark reference figures of ../shared/captures/README.md: the real
// CLI for some files, replayCapture() for the rest, on the real WASM firmware.
import { describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MAX_EMPTY_WINDOWS, parseWindow, replayCapture, replayFrames, type ReplayOptions, type ReplayWindow } from '../gateway/replay.ts';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { crc32 } from 'node:zlib';
import { capturesDir, need } from './support/need.ts';
import { scan, tsharkAddresses } from './support/leak.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const dir = capturesDir('replay-parity');
const tshark = need('tshark', 'tshark', 'replay-parity (reference figures and address check with TShark)');

// README figures. Wi-Fi: frames, probe requests (PR), distinct SA, of which locally administered.
const WIFI: Record<string, { frames: number; pr: number; sa: number; staleFcs?: boolean }> = {
  'ieee802.11_exthdr.pcap': { frames: 26, pr: 6, sa: 1 },
  'ieee802.11_meshid.pcap': { frames: 3, pr: 1, sa: 1 },
  'n-02.cap': { frames: 218, pr: 9, sa: 5 },
  'test1.pcap': { frames: 192, pr: 5, sa: 5 },
  'wpa3-psk.pcap': { frames: 24, pr: 1, sa: 1 },
  'sc6-61_2023-04-17_anonymized.pcap': { frames: 511, pr: 511, sa: 3 },
  'iPhone11-B_anonymized.pcap': { frames: 782, pr: 782, sa: 465, staleFcs: true },
  'S21Ultra-M_anonymized.pcap': { frames: 139, pr: 139, sa: 28, staleFcs: true },
  'OppoFindX3Neo-A_anonymized.pcap': { frames: 1185, pr: 1185, sa: 15, staleFcs: true },
};

// BLE: frames, advertising PDUs with AdvA, of which CRC-bad, distinct CRC-ok AdvA (README), and
// the packets TShark counts as CRC-ok without having verified the CRC: it stops dissecting before
// the CRC when the advertising data is malformed, and does not check a PDU whose length runs past
// the capture. Every one of those is corrupt (test/firmware-parse.test.ts recomputes their CRC);
// the firmware drops them, so they leave `unverifiedFrames` packets and `unverifiedOnly`
// bit-flipped addresses out of the README figures.
const BLE: Record<
  string,
  { frames: number; advA: number; crcBad: number; okDistinct: number; unverifiedFrames?: number; unverifiedOnly?: number; hci?: boolean }
> = {
  'anechoic__nRF52__nrf52_capture_0.pcapng': { frames: 832, advA: 817, crcBad: 32, okDistinct: 9 },
  'anechoic__Ubertooth__ubertooth_capture_0.pcapng': { frames: 1907, advA: 1883, crcBad: 12, okDistinct: 14, unverifiedFrames: 11, unverifiedOnly: 10 },
  'take_2__ble_all_adv.pcap': { frames: 221, advA: 188, crcBad: 16, okDistinct: 10, unverifiedFrames: 2, unverifiedOnly: 2 },
  'take_3__adv37.pcap': { frames: 382, advA: 203, crcBad: 64, okDistinct: 15, unverifiedFrames: 12, unverifiedOnly: 6 },
  'le_secure_connections.pcapng': { frames: 303, advA: 42, crcBad: 0, okDistinct: 1 },
  'pairing_and_ltk_exchange.pcap': { frames: 713, advA: 515, crcBad: 0, okDistinct: 1 },
  'horizon74_btsnoop_hci.lt201.pcap': { frames: 2572, advA: 412, crcBad: 0, okDistinct: 36, hci: true },
};

/** Files replayed through the real CLI (the rest call replayCapture directly). */
const VIA_CLI = new Set([
  'n-02.cap',
  'iPhone11-B_anonymized.pcap',
  'anechoic__nRF52__nrf52_capture_0.pcapng',
  'horizon74_btsnoop_hci.lt201.pcap',
  'pairing_and_ltk_exchange.pcap',
]);

async function cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(root, 'scripts', 'presence.js'), 'replay', ...args], { cwd: root, maxBuffer: 1 << 26 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

async function windows(file: string, opts: ReplayOptions): Promise<ReplayWindow[]> {
  const name = file.split('/').pop()!;
  if (VIA_CLI.has(name)) {
    const args = [file, '--json', '--window', String(opts.window === 'all' ? 'all' : `${opts.window}ms`)];
    if (opts.ignoreFcs) args.push('--ignore-fcs');
    const { stdout, stderr, code } = await cli(args);
    expect(code, stderr).toBe(0);
    return stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
  }
  const out: ReplayWindow[] = [];
  for await (const w of replayCapture(file, opts)) out.push(w);
  return out;
}

describe.skipIf(!dir)('replay --window all matches the TShark figures', { concurrent: true }, () => {
  it.each(Object.entries(WIFI))('wifi/%s', async (name, want) => {
    const file = join(dir!, 'wifi', name);
    const [w] = await windows(file, { window: 'all' });
    expect(w.wifi.frames).toBe(want.frames);
    expect(w.ble.frames).toBe(0);
    if (want.staleFcs) {
      expect(w.wifi).toMatchObject({ probes: 0, rejected: want.frames, devices: 0 });
      const all = await windows(file, { window: 'all', ignoreFcs: true });
      expect(all).toHaveLength(1);
      expect(all[0].wifi).toMatchObject({ probes: want.pr, devices: want.sa, rejected: 0 });
    } else {
      expect(w.wifi).toMatchObject({ probes: want.pr, devices: want.sa, rejected: 0, exact: true });
    }
  });

  it.each(Object.entries(BLE))('ble/%s', async (name, want) => {
    const file = join(dir!, 'ble', name);
    const all = await windows(file, { window: 'all' });
    expect(all).toHaveLength(1);
    const [w] = all;
    expect(w.ble.frames).toBe(want.frames);
    expect(w.wifi.frames).toBe(0);
    expect(w.ble.adverts).toBe(want.advA - want.crcBad - (want.unverifiedFrames ?? 0));
    expect(w.ble.devices).toBe(want.okDistinct - (want.unverifiedOnly ?? 0));
    expect(w.ble.rejected).toBeGreaterThanOrEqual(want.crcBad + (want.unverifiedFrames ?? 0));
    expect(w.unsupported).toBe(0);
  });
});

// The reference figures themselves, reproduced with the README's TShark commands.
describe.skipIf(!dir || !tshark)('the README figures are what TShark says', () => {
  const tsv = (args: string[]) =>
    execFileSync('tshark', ['-n', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 26 })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'));

  it.each(Object.entries(WIFI))('wifi/%s', (name, want) => {
    const rows = tsv([
      '-o',
      'wlan.check_checksum:TRUE',
      '-r',
      join(dir!, 'wifi', name),
      '-Y',
      'wlan.fc.type_subtype == 0x0004',
      '-T',
      'fields',
      '-e',
      'wlan.sa',
      '-e',
      'wlan.fcs.status',
    ]);
    expect(rows.length).toBe(want.pr);
    expect(new Set(rows.map((r) => r[0])).size).toBe(want.sa);
    const good = rows.filter((r) => r[1] !== '0');
    expect(new Set(good.map((r) => r[0])).size).toBe(want.staleFcs ? 0 : want.sa);
  });

  it.each(Object.entries(BLE).filter(([, w]) => !w.hci))('ble/%s', (name, want) => {
    const extra = name.startsWith('pairing') ? ['-o', 'uat:user_dlts:"User 0 (DLT=147)","btle","0","","0",""'] : [];
    const rows = tsv([
      ...extra,
      '-r',
      join(dir!, 'ble', name),
      '-Y',
      'btle.access_address == 0x8e89bed6 && btle.advertising_header',
      '-T',
      'fields',
      '-e',
      'btle.advertising_header.pdu_type',
      '-e',
      'btle.advertising_address',
      '-e',
      'btle.crc.incorrect',
      '-e',
      'nordic_ble.crcok',
      '-e',
      'btle.crc',
    ]);
    const withAdvA = rows.filter((r) => ['0x00', '0x01', '0x02', '0x04', '0x06', '0x07'].includes(r[0]) && r[1]);
    const ok = withAdvA.filter((r) => r[2] === '' && r[3] !== '0');
    expect(withAdvA.length).toBe(want.advA);
    expect(withAdvA.length - ok.length).toBe(want.crcBad);
    expect(new Set(ok.map((r) => r[1])).size).toBe(want.okDistinct);
  });

  it('ble/horizon74_btsnoop_hci.lt201.pcap', () => {
    const rows = tsv([
      '-r',
      join(dir!, 'ble', 'horizon74_btsnoop_hci.lt201.pcap'),
      '-Y',
      'bthci_evt.le_meta_subevent == 0x02 || bthci_evt.le_meta_subevent == 0x0d',
      '-T',
      'fields',
      '-e',
      'bthci_evt.bd_addr',
    ]);
    const addrs = rows.flatMap((r) => r[0].split(','));
    expect(addrs.length).toBe(412);
    expect(new Set(addrs).size).toBe(36);
  });
});

describe.skipIf(!dir)('windows, errors and privacy of the output', { concurrent: true }, () => {
  it('aligns windows to multiples of the window length on the capture clock and loses no frame', async () => {
    const file = join(dir!, 'wifi', 'sc6-61_2023-04-17_anonymized.pcap');
    const ws = await windows(file, { window: 60_000 });
    expect(ws.length).toBeGreaterThan(300); // about 5 h 12 min of capture, empty minutes included
    for (const [i, w] of ws.entries()) {
      expect(Date.parse(w.start!) % 60_000).toBe(0);
      expect(Date.parse(w.end!) - Date.parse(w.start!)).toBe(60_000);
      if (i > 0) expect(w.start).toBe(ws[i - 1].end);
    }
    expect(ws[0].start).toBe('2023-04-16T22:01:00.000Z');
    expect(ws.reduce((n, w) => n + w.wifi.probes, 0)).toBe(511);
    // a device seen in several windows counts once per window, so the sum is at least the total
    expect(ws.reduce((n, w) => n + w.wifi.devices, 0)).toBeGreaterThanOrEqual(3);
  });

  it('drops weak frames with --rssi-min', async () => {
    const file = join(dir!, 'wifi', 'sc6-61_2023-04-17_anonymized.pcap');
    const { stdout, code } = await cli([file, '--window', 'all', '--json', '--rssi-min', '-80']);
    expect(code).toBe(0);
    const w: ReplayWindow = JSON.parse(stdout);
    expect(w.wifi.weak).toBeGreaterThan(0);
    expect(w.wifi.weak).toBeLessThan(511);
    if (tshark) {
      const sig = execFileSync('tshark', ['-n', '-r', file, '-T', 'fields', '-e', 'radiotap.dbm_antsignal'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .trim()
        .split('\n')
        .map(Number);
      expect(w.wifi.weak).toBe(sig.filter((s) => s < -80).length);
    }
  });

  it('prints a table by default and never an address or hash, in any output', async () => {
    // The gateway leak test's scan: every written form of each address TShark finds, both byte
    // orders (HCI and BLE link layer carry them reversed), raw bytes, base64, and hash-like runs.
    const files = [
      join(dir!, 'wifi', 'n-02.cap'),
      join(dir!, 'ble', 'anechoic__nRF52__nrf52_capture_0.pcapng'),
      join(dir!, 'ble', 'horizon74_btsnoop_hci.lt201.pcap'),
    ];
    for (const file of files) {
      const table = await cli([file, '--window', '1s']);
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(/start.*end.*probes.*adverts/s);
      const json = await cli([file, '--window', '1s', '--json']);
      if (tshark) {
        const addresses = tsharkAddresses(file);
        expect(addresses.length).toBeGreaterThan(0);
        const outputs = { 'table stdout': table.stdout, 'table stderr': table.stderr, 'json stdout': json.stdout, 'json stderr': json.stderr };
        for (const [where, text] of Object.entries(outputs)) expect(scan(`${file} ${where}`, text, addresses)).toEqual([]);
      }
      for (const line of json.stdout.trim().split('\n')) {
        const keys = JSON.stringify(Object.keys(JSON.parse(line)));
        expect(keys).toBe('["start","end","wifi","ble","unsupported","complete"]');
      }
    }
  });

  it('names an unsupported link type and lists the supported ones', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'replay-'));
    const eth = join(tmp, 'eth.pcap');
    const hdr = Buffer.alloc(24);
    hdr.writeUInt32LE(0xa1b2c3d4, 0);
    hdr.writeUInt16LE(2, 4);
    hdr.writeUInt16LE(4, 6);
    hdr.writeUInt32LE(65535, 16);
    hdr.writeUInt32LE(1, 20);
    const rec = Buffer.alloc(16 + 60);
    rec.writeUInt32LE(60, 8);
    rec.writeUInt32LE(60, 12);
    writeFileSync(eth, Buffer.concat([hdr, rec]));
    const r = await cli([eth, '--json', '--window', 'all']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${eth}: link type 1 (ETHERNET) is not supported; supported link types: 105 (IEEE802_11), 127 (IEEE802_11_RADIOTAP)`);
    expect(r.stderr).toMatch(/; fix: replay a capture of probe requests or BLE advertisements in one of those link types/);
  });

  it('on a truncated capture prints the counts of the complete frames, then the error with its offset', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'replay-'));
    const cut = join(tmp, 'cut.pcap');
    const bytes = readFileSync(join(dir!, 'wifi', 'test1.pcap'));
    writeFileSync(cut, bytes.subarray(0, 20_000));
    const r = await cli([cut, '--json', '--window', 'all']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /cut\.pcap: input ends inside a record \(94 of its bytes present\) \(at byte offset 19906\); fix: the capture was cut short \(its recorder stopped in the middle of a block\): the frames before it were counted, none after it/,
    );
    const w: ReplayWindow = JSON.parse(r.stdout);
    expect(w.wifi.frames).toBe(125);
    expect(w.wifi.devices).toBe(5);
    // The table (no --json) is printed at the end: it still holds the window of the frames before the damage.
    const t = await cli([cut, '--window', 'all']);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/cut\.pcap: input ends inside a record \(94 of its bytes present\) \(at byte offset 19906\)/);
    const rows = t.stdout.split('\n').filter((l) => /^│ \d{4}-/.test(l));
    expect(rows, t.stdout).toHaveLength(1);
    expect(rows[0].split('│').map((c) => c.trim())[3]).toBe('125');
    const garbage = join(tmp, 'garbage.pcap');
    writeFileSync(garbage, 'this is not a capture at all');
    const g = await cli([garbage]);
    expect(g.code).toBe(1);
    expect(g.stderr).toContain(
      `${garbage}: not a pcap or pcapng capture (its first 4 bytes are no pcap or pcapng magic number) (at byte offset 0); fix: give a pcap or pcapng capture, as tcpdump -w or dumpcap -w write them\n`,
    );
    expect(g.stdout).toBe(''); // nothing counted: no empty table
  });

  it('reads a capture from stdin', async () => {
    const file = join(dir!, 'wifi', 'n-02.cap');
    const out = execFileSync(process.execPath, [join(root, 'scripts', 'presence.js'), 'replay', '-', '--json', '--window', 'all'], {
      input: readFileSync(file),
      encoding: 'utf8',
      cwd: root,
    });
    expect(JSON.parse(out).wifi).toMatchObject({ frames: 218, probes: 9, devices: 5 });
  });
});

// ---- window logic on synthetic frames (no capture folder needed) ------------------------------

/** A radiotap probe request with a good FCS from address 02:00:00:00:00:<n>. */
function probe(n: number, timestampMs: number): Frame {
  const body = [0x40, 0, 0, 0, 255, 255, 255, 255, 255, 255, 2, 0, 0, 0, 0, n, 255, 255, 255, 255, 255, 255, 0x10, 0, 0, 0];
  const fcs = crc32(Uint8Array.from(body));
  const rt = [0, 0, 9, 0, 0x02, 0, 0, 0, 0x10];
  return { linkType: 127, timestampMs, data: Uint8Array.from([...rt, ...body, fcs & 0xff, (fcs >>> 8) & 0xff, (fcs >>> 16) & 0xff, fcs >>> 24]) };
}

async function collect(frames: Frame[], opts: ReplayOptions, fw = Firmware.loadSync()) {
  const notes: string[] = [];
  const out: ReplayWindow[] = [];
  for await (const w of replayFrames([frames], fw, opts, (m) => notes.push(m))) out.push(w);
  return { out, notes };
}

describe('replay windows', () => {
  const t0 = Date.UTC(2026, 0, 1, 12, 0, 0);
  it('counts a device once per window, prints empty windows inside the capture, keeps late frames in the current window', async () => {
    const frames = [probe(1, t0 + 100), probe(2, t0 + 200), probe(1, t0 + 900), probe(1, t0 + 3500), probe(3, t0 + 3400 - 2000)];
    const { out } = await collect(frames, { window: 1000 });
    expect(out.map((w) => [w.start, w.wifi.probes, w.wifi.devices])).toEqual([
      ['2026-01-01T12:00:00.000Z', 3, 2],
      ['2026-01-01T12:00:01.000Z', 0, 0],
      ['2026-01-01T12:00:02.000Z', 0, 0],
      ['2026-01-01T12:00:03.000Z', 2, 2], // the frame from 12:00:01.4 arrived late: counted here
    ]);
    const all = await collect(frames, { window: 'all' });
    expect(all.out).toHaveLength(1);
    expect(all.out[0]).toMatchObject({ start: '2026-01-01T12:00:00.100Z', end: '2026-01-01T12:00:03.500Z', wifi: { probes: 5, devices: 3 } });
  });

  it('marks the windows the capture began or ended inside complete: false, as a gateway marks the window it started or stopped in', async () => {
    // first frame 100 ms into its window: that window and the last are parts; the empty one between is whole
    const { out } = await collect([probe(1, t0 + 100), probe(2, t0 + 2500)], { window: 1000 });
    expect(out.map((w) => [w.start, w.complete])).toEqual([
      ['2026-01-01T12:00:00.000Z', false],
      ['2026-01-01T12:00:01.000Z', true],
      ['2026-01-01T12:00:02.000Z', false],
    ]);
    // a first frame at the window's very start: that window is whole
    const atStart = await collect([probe(1, t0), probe(2, t0 + 1500)], { window: 1000 });
    expect(atStart.out.map((w) => w.complete)).toEqual([true, false]);
    // one window only: part; --window all spans the capture itself: whole
    expect((await collect([probe(1, t0 + 100)], { window: 1000 })).out.map((w) => w.complete)).toEqual([false]);
    expect((await collect([probe(1, t0 + 100), probe(2, t0 + 2500)], { window: 'all' })).out.map((w) => w.complete)).toEqual([true]);
  });

  it('marks the window a skipped clock jump opens inside complete: false, as the gateway publishes it', async () => {
    // a capture paused past MAX_EMPTY_WINDOWS windows that begins again 500 ms into a window: that window is a part
    const later = t0 + (MAX_EMPTY_WINDOWS + 5) * 1000;
    const { out } = await collect([probe(1, t0), probe(2, t0 + 1000), probe(1, later + 500), probe(2, later + 1000), probe(3, later + 2500)], {
      window: 1000,
    });
    expect(out.map((w) => [w.start, w.complete])).toEqual([
      ['2026-01-01T12:00:00.000Z', true],
      ['2026-01-01T12:00:01.000Z', true],
      [new Date(later).toISOString(), false],
      [new Date(later + 1000).toISOString(), true],
      [new Date(later + 2000).toISOString(), false],
    ]);
  });

  it('skips a clock jump of more than MAX_EMPTY_WINDOWS windows with a note', async () => {
    const later = t0 + (MAX_EMPTY_WINDOWS + 5) * 1000;
    const { out, notes } = await collect([probe(1, t0), probe(1, later)], { window: 1000 });
    expect(out).toHaveLength(2);
    expect(out[1].start).toBe(new Date(later).toISOString());
    expect(notes.join('\n')).toMatch(/clock jumps from 2026-01-01T12:00:01.000Z to .*: 10004 empty windows not printed/);
  });

  it('opens every window through the firmware, which draws a fresh key for each', async () => {
    const fw = Firmware.loadSync();
    const x = fw.exports;
    const mem = new Uint8Array(x.memory.buffer);
    const hashes: bigint[] = [];
    const begin = fw.beginWindow.bind(fw);
    fw.beginWindow = (...args: Parameters<Firmware['beginWindow']>) => {
      expect(args).toHaveLength(1); // the window options only: replay has no key to give
      begin(...args);
      // the window's hash of one fixed address (the batch buffer is empty right after opening)
      mem.set([0x02, 1, 2, 3, 4, 5], x.batch_ptr());
      hashes.push(BigInt.asUintN(64, x.hash_address(1, 0, x.batch_ptr())));
    };
    const frames = [0, 1, 2, 3, 4].map((i) => probe(i, t0 + i * 1000));
    await collect(frames, { window: 1000 }, fw);
    expect(hashes).toHaveLength(5);
    expect(new Set(hashes).size).toBe(5); // a different key in every window
    expect(fw.windowOpen).toBe(false);
  });

  it('wipes the open window when the consumer stops early', async () => {
    const fw = Firmware.loadSync();
    const frames = [0, 1, 2].map((i) => probe(i, t0 + i * 1000));
    for await (const w of replayFrames([frames], fw, { window: 1000 })) {
      expect(w.wifi.devices).toBe(1);
      break;
    }
    expect(fw.windowOpen).toBe(false);
  });

  it('parses window lengths and refuses nonsense', () => {
    expect(parseWindow('60s')).toBe(60_000);
    expect(parseWindow('5m')).toBe(300_000);
    expect(parseWindow('500ms')).toBe(500);
    expect(parseWindow('1h')).toBe(3_600_000);
    expect(parseWindow('all')).toBe('all');
    expect(() => parseWindow('0s')).toThrow(/--window: must be a duration like 250ms, 60s, 15m, 1h30m or 7d, or "all" \(got "0s"\)/);
    expect(() => parseWindow('soon')).toThrow(/got "soon"/);
  });
});
