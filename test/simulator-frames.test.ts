// Frame builders and checksums: the FCS and the BLE CRC-24 match independent references (a known
// CRC-32 check value, and CRC-valid packets of a real public BLE capture).
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { bleCrc24, crc32 } from '../simulator/crc.ts';
import { BLE_PDU, bleAdvertHci, bleAdvertLL, blePdu, channelFreq, probeRequest } from '../simulator/frames.ts';
import { pcapngPacket, pcapRecord, pcapHeader } from '../simulator/pcap-writer.ts';
import { capturesDir } from './support/need.ts';
import { readCaptureFile } from '../gateway/capture/pcap.ts';

describe('checksums', () => {
  it('CRC-32 has the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  const dir = capturesDir('simulator-frames');
  it.skipIf(!dir)('BLE CRC-24 equals the CRC of the advertising packets of a real capture (all but its few corrupted ones)', async () => {
    let checked = 0;
    let matched = 0;
    for await (const batch of readCaptureFile(join(dir!, 'ble', 'anechoic__Ubertooth__ubertooth_capture_0.pcapng'))) {
      for (const f of batch) {
        if (f.linkType !== 256) continue;
        const d = f.data;
        const aa = (d[10] | (d[11] << 8) | (d[12] << 16) | (d[13] << 24)) >>> 0;
        if (aa !== 0x8e89bed6) continue;
        const len = d[15];
        const pdu = d.subarray(14, 16 + len);
        const crc = d.subarray(16 + len, 19 + len);
        if (16 + len + 3 > d.length) continue;
        checked++;
        const mine = bleCrc24(pdu);
        if (mine[0] === crc[0] && mine[1] === crc[1] && mine[2] === crc[2]) matched++;
      }
    }
    // README: 1883 advertising PDUs with AdvA, 12 of them with a bad CRC.
    expect(checked).toBeGreaterThan(1800);
    expect(matched).toBeGreaterThan(checked - 40);
  });
});

describe('probe request', () => {
  const sa = Uint8Array.from([0xda, 0xa1, 0x19, 0x01, 0x02, 0x03]);
  const ies = Uint8Array.from([0, 0, 1, 4, 0x02, 0x04, 0x0b, 0x16]);
  const f = probeRequest({ sa, seq: 0x123, ies, channel: 6, signalDbm: -71.4, tsfUs: 1234 });
  const v = new DataView(f.buffer);

  it('has radiotap with FCS flag, channel and signal, then a probe request with a valid FCS', () => {
    expect(v.getUint16(2, true)).toBe(24); // radiotap length
    expect(f[16] & 0x10).toBe(0x10); // flags: FCS at end
    expect(v.getUint16(18, true)).toBe(channelFreq(6));
    expect(v.getInt8(22)).toBe(-71);
    expect(f[24]).toBe(0x40); // management, probe request
    expect([...f.subarray(28, 34)]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect([...f.subarray(34, 40)]).toEqual([...sa]);
    expect(v.getUint16(46, true) >> 4).toBe(0x123);
    expect([...f.subarray(48, 48 + ies.length)]).toEqual([...ies]);
    expect(v.getUint32(f.length - 4, true)).toBe(crc32(f, 24, f.length - 4));
  });

  it('uses 5 GHz frequency and OFDM flags above channel 14', () => {
    const g = probeRequest({ sa, seq: 1, ies, channel: 36, signalDbm: -60, tsfUs: 0 });
    const gv = new DataView(g.buffer);
    expect(gv.getUint16(18, true)).toBe(5180);
    expect(gv.getUint16(20, true) & 0x0140).toBe(0x0140);
  });
});

describe('BLE advert', () => {
  const adva = Uint8Array.from([0x5a, 0x11, 0x22, 0x33, 0x44, 0x55]);
  const advData = Uint8Array.from([2, 1, 6]);

  it('LL with pseudo-header: channel, access address, little-endian AdvA, CRC over the PDU', () => {
    const f = bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva, random: true, advData, channel: 38, signalDbm: -80 });
    expect(f[0]).toBe(12); // RF channel of advertising channel 38
    expect(new DataView(f.buffer).getInt8(1)).toBe(-80);
    expect((f[8] | (f[9] << 8)) & 0x0c00).toBe(0x0c00); // CRC checked + valid
    expect(f[14]).toBe(0x40); // ADV_IND, TxAdd random
    expect(f[15]).toBe(9);
    expect([...f.subarray(16, 22)]).toEqual([...adva].reverse());
    const pdu = blePdu({ pduType: BLE_PDU.ADV_IND, adva, random: true, advData });
    expect([...f.subarray(f.length - 3)]).toEqual(bleCrc24(pdu));
  });

  it('HCI LE Advertising Report with direction header', () => {
    const f = bleAdvertHci({ pduType: BLE_PDU.ADV_NONCONN_IND, adva, random: false, advData, signalDbm: -70 });
    expect(new DataView(f.buffer).getUint32(0, false)).toBe(1);
    expect([...f.subarray(4, 7)]).toEqual([0x04, 0x3e, f.length - 7]);
    expect(f[7]).toBe(0x02); // LE Advertising Report
    expect(f[9]).toBe(0x03); // ADV_NONCONN_IND
    expect(f[10]).toBe(0x00); // public
    expect([...f.subarray(11, 17)]).toEqual([...adva].reverse());
    expect(new DataView(f.buffer).getInt8(f.length - 1)).toBe(-70);
  });

  it('refuses advertising data longer than 31 bytes', () => {
    expect(() => bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva, random: true, advData: new Uint8Array(32), channel: 37, signalDbm: -80 })).toThrow(/31/);
  });
});

describe('pcap encoding', () => {
  it('classic pcap header and record', () => {
    const h = pcapHeader(127);
    expect(h.readUInt32LE(0)).toBe(0xa1b2c3d4);
    expect(h.readUInt32LE(20)).toBe(127);
    const r = pcapRecord(1700000000123.456, Uint8Array.of(1, 2, 3));
    expect(r.readUInt32LE(0)).toBe(1700000000);
    expect(r.readUInt32LE(4)).toBe(123456);
    expect(r.readUInt32LE(8)).toBe(3);
  });
  it('pcapng enhanced packet block pads to 4 bytes and repeats its length', () => {
    const b = pcapngPacket(1, 1000, Uint8Array.of(1, 2, 3, 4, 5));
    expect(b.length % 4).toBe(0);
    expect(b.readUInt32LE(4)).toBe(b.length);
    expect(b.readUInt32LE(b.length - 4)).toBe(b.length);
    expect(b.readUInt32LE(8)).toBe(1);
  });
});
