// A damaged capture's error names what is wrong and where (kind of damage, byte offset) and quotes
// no value read from the stream: on a damaged stream a block's type and length, a record's length,
// an interface id or a file's first bytes can be bytes of a device address. Each kind of damage is
// made twice, with two different addresses where the reader reads its values: the sentence must be
// the same for both. `presence replay`, `presence calibrate` and `presence doctor` print it; their
// output is checked for the address in every written form.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaptureFormatError, CaptureParser, type CaptureDamage } from '../gateway/capture/pcap.ts';
import { LINKTYPE } from '../firmware/host/types.ts';
import { pcapHeader, pcapngHeader, pcapngPacket } from '../simulator/pcap-writer.ts';
import { ROOT } from './gateway-support.ts';
import { scan } from './support/leak.ts';

const tmp = mkdtempSync(join(tmpdir(), 'capture-error-text-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const A = [0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e];
const B = [0xd4, 0x6a, 0x91, 0x5e, 0x07, 0xc2];

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
};
const header = () => pcapngHeader([{ linkType: LINKTYPE.IEEE802_11_RADIOTAP, name: 'wlan0mon' }]);
const frame = () => pcapngPacket(0, 1_700_000_000_000, new Uint8Array(40));
/** A pcapng block of `type` whose body is `body` (padded), lengths right unless told otherwise. */
function block(type: number, body: Buffer, o: { len?: Buffer; trailer?: Buffer } = {}): Buffer {
  const len = 12 + body.length;
  return Buffer.concat([u32(type), o.len ?? u32(len), body, o.trailer ?? u32(len)]);
}

/** Captures damaged where the reader reads its values from `a` (an address's 6 bytes). */
const damaged: Record<string, { damage: CaptureDamage; bytes: (a: number[]) => Buffer }> = {
  'a file that starts with an address': { damage: 'not_a_capture', bytes: (a) => Buffer.from([...a, ...a, 0, 0, 0, 0]) },
  'pcap version fields': {
    damage: 'unsupported_version',
    bytes: (a) => {
      const h = pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP);
      Buffer.from(a.slice(0, 4)).copy(h, 4);
      h[4] = a[0]! | 0x04; // never 2
      return h;
    },
  },
  'pcap record length': {
    damage: 'oversized_record',
    bytes: (a) => Buffer.concat([pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP), Buffer.alloc(8), Buffer.from([a[2]!, a[3]!, a[4]!, a[5]! | 0x80]), Buffer.alloc(4)]),
  },
  'pcapng block type and length': {
    damage: 'bad_block_length',
    bytes: (a) => Buffer.concat([header(), frame(), Buffer.from([0x00, ...a, 0x01]), Buffer.alloc(16)]),
  },
  'pcapng block length past the limit': {
    damage: 'oversized_record',
    bytes: (a) => Buffer.concat([header(), u32(6), Buffer.from([a[0]! & 0xfc, a[1]!, a[2]!, a[3]! | 0x40]), Buffer.alloc(16)]),
  },
  'pcapng trailing length': {
    damage: 'block_length_mismatch',
    bytes: (a) => Buffer.concat([header(), block(0x0bad, Buffer.alloc(8), { trailer: Buffer.from(a.slice(2, 6)) })]),
  },
  'pcapng version fields': {
    damage: 'unsupported_version',
    bytes: (a) => {
      const h = header();
      Buffer.from(a.slice(0, 4)).copy(h, 12);
      h[12] = a[0]! | 0x02; // never 1
      return h;
    },
  },
  'pcapng packet length': {
    damage: 'packet_overruns_block',
    bytes: (a) => {
      const p = frame();
      Buffer.from(a.slice(2, 6)).copy(p, 20);
      return Buffer.concat([header(), p]);
    },
  },
  'pcapng simple packet length': {
    damage: 'packet_overruns_block',
    // a simple packet block whose original length (address bytes) is more than its 40 octets
    bytes: (a) => Buffer.concat([header(), block(3, Buffer.concat([Buffer.from(a.slice(2, 6)), Buffer.alloc(40)]))]),
  },
  'pcapng interface id': {
    damage: 'unknown_interface',
    bytes: (a) => {
      const p = frame();
      Buffer.from(a.slice(0, 4)).copy(p, 8);
      return Buffer.concat([header(), p]);
    },
  },
  'pcapng interface option': {
    damage: 'bad_interface_option',
    bytes: (a) => {
      // an IDB whose one option's code is address bytes and whose length overruns the block
      const body = Buffer.concat([Buffer.from([127, 0, 0, 0]), u32(65535), Buffer.from([a[4]!, a[5]!, 0xf0, 0x00]), Buffer.alloc(4)]);
      return Buffer.concat([pcapngHeader([]), block(1, body)]);
    },
  },
};

function parseError(bytes: Buffer): CaptureFormatError {
  const parser = new CaptureParser('capture');
  try {
    parser.push(bytes);
    parser.end();
  } catch (e) {
    if (e instanceof CaptureFormatError) return e;
    throw e;
  }
  throw new Error('the reader took the damaged capture');
}

describe('a damaged capture is described without a value read from the stream', () => {
  it.each(Object.entries(damaged))('%s: kind of damage and byte offset, the same sentence whatever the bytes', (_name, d) => {
    const ea = parseError(d.bytes(A));
    const eb = parseError(d.bytes(B));
    expect(ea.damage).toBe(d.damage);
    expect(eb.damage).toBe(d.damage);
    expect(ea.message).toContain(`(at byte offset ${ea.offset})`);
    expect(ea.message).toBe(eb.message);
  });

  it('a link type past the registry is not named by its number: it may be address bytes (pcap header, pcapng interface)', () => {
    const file = join(tmp, 'linktype');
    const captures = {
      pcap: (a: number[]) => {
        const h = pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP);
        Buffer.from([a[2]!, a[3]!, a[4]!, a[5]! & 0x03]).copy(h, 20); // the masked 26 bits of the link type
        return h;
      },
      pcapng: (a: number[]) => pcapngHeader([{ linkType: a[4]! | (a[5]! << 8), name: 'wlan0mon' }]),
    };
    for (const [kind, bytes] of Object.entries(captures)) {
      const outputs: string[] = [];
      for (const a of [A, B]) {
        writeFileSync(file, bytes(a));
        const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'presence.js'), 'replay', file], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
        expect(r.status, `${kind}: ${r.stderr}`).not.toBe(0);
        const text = r.stdout + r.stderr;
        expect(text, kind).toContain('link type above 511 (not in the registry; the number is not shown) is not supported');
        expect(scan('output', text, [Uint8Array.from(a)], { hashLike: false })).toEqual([]);
        for (const n of [a[4]! | (a[5]! << 8), Buffer.from([a[2]!, a[3]!, a[4]!, a[5]! & 0x03]).readUInt32LE(0)]) expect(text).not.toContain(String(n));
        outputs.push(text);
      }
      expect(outputs[0], kind).toBe(outputs[1]);
    }
  });

  it('replay, calibrate and doctor print no byte of the address of a damaged capture', () => {
    const file = join(tmp, 'damaged.pcapng');
    const truth = join(tmp, 'truth.csv');
    writeFileSync(truth, 'time;occupancy\n2023-11-14T22:13:00Z;3\n2023-11-14T22:20:00Z;3\n');
    const outputs: string[] = [];
    for (const a of [A, B]) {
      writeFileSync(file, damaged['pcapng block type and length']!.bytes(a));
      const runs = [
        ['replay', file],
        ['replay', file, '--json', '--window', 'all'],
        ['calibrate', '--capture', file, '--truth', truth, '--zone', 'z', '--json'],
        ['doctor', '--source', `pcap:${file}`, '--site', 's', '--zone', 'z', '--id', 'g'],
      ];
      let text = '';
      for (const args of runs) {
        const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'presence.js'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).not.toBe(0);
        expect(r.stdout + r.stderr, args.join(' ')).toMatch(/bad_block_length|invalid length/);
        text += `${args[0]}\n${r.stdout}${r.stderr}`;
      }
      expect(scan('output', text, [Uint8Array.from(a)], { hashLike: false })).toEqual([]);
      outputs.push(text);
    }
    // the same words whatever address the damaged block held
    expect(outputs[0]).toBe(outputs[1]);
  });
});
