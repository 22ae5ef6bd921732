// The firmware's live block (layout.ts): frames per channel and address slots per dBm of the open
// window, counts per bucket only, for a gateway's own page. Channels come from radiotap's channel
// field (2.4, 5 and 6 GHz numbers), the BLE pseudo-header's RF channel (as channel index); the
// histogram has one count per address slot at its signal. window_end zeroes the block; the host
// carries the channel counts on across windows.
import { describe, expect, it } from 'vitest';
import { LIVE_BYTES, LIVE_RSSI_SLOTS, LIVE_WIFI_CHANNELS } from '../firmware/assembly/layout.ts';
import { channelName, Firmware, rssiOfSlot } from '../firmware/host/firmware.ts';
import { crc32 } from '../simulator/crc.ts';
import { BLE_PDU, bleAdvertLL, probeRequest } from '../simulator/frames.ts';

const ies = Uint8Array.from([0x00, 0x00]);
const addr = (i: number) => Uint8Array.from([0x02, 0x11, 0x22, 0x33, 0x44, i]);
const wifi = (channel: number, signalDbm: number, i: number) => ({
  linkType: 127,
  timestampMs: 1_700_000_000_000 + i,
  data: probeRequest({ sa: addr(i), seq: i, ies, channel, signalDbm, tsfUs: i }),
});
const ble = (channel: 37 | 38 | 39, signalDbm: number, i: number) => ({
  linkType: 256,
  timestampMs: 1_700_000_000_000 + i,
  data: bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva: addr(i), random: true, advData: Uint8Array.from([0x02, 0x01, 0x06]), channel, signalDbm }),
});

const slotOf = (name: string) => {
  for (let i = 0; i < LIVE_WIFI_CHANNELS; i++) if (channelName('wifi', i) === name) return i;
  throw new Error(name);
};

describe('firmware live block', () => {
  it('counts frames per channel and address slots per dBm, per radio', () => {
    const fw = Firmware.loadSync();
    fw.beginWindow();
    const frames = [wifi(1, -40, 1), wifi(6, -55, 2), wifi(6, -55, 3), wifi(14, -70, 4), wifi(36, -80, 5), wifi(165, -81, 6)];
    frames.push(ble(37, -60, 7), ble(38, -61, 8), ble(39, -61, 9), ble(39, -90, 10));
    fw.ingestMany(frames);
    const s = fw.liveStats();
    const nonzero = (a: ArrayLike<number>, name: (i: number) => string) =>
      Object.fromEntries(
        Array.from(a)
          .map((v, i) => [name(i), v] as const)
          .filter(([, v]) => v > 0),
      );
    expect(nonzero(s.wifiChannels, (i) => channelName('wifi', i))).toEqual({ '2.4 GHz 1': 1, '2.4 GHz 6': 2, '2.4 GHz 14': 1, '5 GHz 36': 1, '5 GHz 165': 1 });
    expect(nonzero(s.bleChannels, (i) => channelName('ble', i))).toEqual({ 'BLE 37': 1, 'BLE 38': 1, 'BLE 39': 2 });
    expect(nonzero(s.rssiWifi, (i) => String(rssiOfSlot(i)))).toEqual({ '-40': 1, '-55': 2, '-70': 1, '-80': 1, '-81': 1 });
    expect(nonzero(s.rssiBle, (i) => String(rssiOfSlot(i)))).toEqual({ '-60': 1, '-61': 2, '-90': 1 });
    expect(s.rssiWifi.length).toBe(LIVE_RSSI_SLOTS);
    // The frames add up to the radio's frame count.
    const live = fw.liveCounts();
    expect(s.wifiChannels.reduce((a, b) => a + b, 0)).toBe(live.wifi.frames);
    expect(s.bleChannels.reduce((a, b) => a + b, 0)).toBe(live.ble.frames);
    fw.endWindow();
  });

  it('the histogram is per window; channel counts carry on across windows; window_end zeroes the block in the module', () => {
    const fw = Firmware.loadSync();
    fw.beginWindow();
    fw.ingestMany([wifi(11, -50, 1), wifi(11, -50, 2), ble(37, -70, 3)]);
    fw.endWindow();
    const block = new Uint8Array(fw.exports.memory.buffer, fw.exports.live_ptr(), LIVE_BYTES);
    expect(block.every((b) => b === 0)).toBe(true);
    fw.beginWindow();
    fw.ingestMany([wifi(11, -52, 3)]);
    const s = fw.liveStats();
    expect(s.wifiChannels[slotOf('2.4 GHz 11')]).toBe(3);
    expect(s.bleChannels[37]).toBe(1);
    expect(s.rssiWifi.reduce((a, b) => a + b, 0)).toBe(1);
    expect(s.rssiWifi[-52 + 128]).toBe(1);
    expect(s.rssiBle.reduce((a, b) => a + b, 0)).toBe(0);
    expect(block.some((b) => b !== 0)).toBe(true);
    fw.endWindow();
  });

  it('frames without a channel (plain 802.11, HCI) count as unknown', () => {
    const fw = Firmware.loadSync();
    fw.beginWindow();
    const radiotap = wifi(6, -50, 1).data;
    const plain = radiotap.slice(radiotap[2]! | (radiotap[3]! << 8)); // the 802.11 frame without radiotap (and its FCS)
    fw.ingestMany([{ linkType: 105, timestampMs: 1_700_000_000_000, data: plain.slice(0, plain.length - 4) }]);
    const s = fw.liveStats();
    expect(s.wifiChannels[LIVE_WIFI_CHANNELS - 1]).toBe(1);
    expect(channelName('wifi', LIVE_WIFI_CHANNELS - 1)).toBe('unknown');
    expect(s.rssiWifi[0]).toBe(1); // no signal: the unknown slot
    expect(rssiOfSlot(0)).toBeNull();
    fw.endWindow();
  });

  it('every Wi-Fi frame counts on its channel: beacons, data frames and frames whose FCS fails too, not only counted probes', () => {
    const fw = Firmware.loadSync();
    fw.beginWindow();
    // The same radiotap frame on channel 6 with its 802.11 frame control changed, the FCS made again.
    const retyped = (fc: number, i: number) => {
      const b = wifi(6, -50, i).data.slice();
      const m = b[2]! | (b[3]! << 8);
      b[m] = fc;
      new DataView(b.buffer).setUint32(b.length - 4, crc32(b, m, b.length - 4), true);
      return { linkType: 127, timestampMs: 1_700_000_000_000 + i, data: b };
    };
    const badFcs = wifi(6, -50, 4);
    badFcs.data[badFcs.data.length - 1]! ^= 0xff;
    fw.ingestMany([retyped(0x80, 1), retyped(0x80, 2), retyped(0x08, 3), badFcs, wifi(6, -50, 5)]);
    const s = fw.liveStats();
    expect(s.wifiChannels[slotOf('2.4 GHz 6')]).toBe(5);
    expect(s.wifiChannels[LIVE_WIFI_CHANNELS - 1]).toBe(0);
    const c = fw.endWindow();
    expect(c.wifi.frames).toBe(5);
    expect(c.wifi.devices).toBe(1); // only the good probe request is counted as a device
  });
});
