// Ground truth: per gateway and window, who and what was really in reach, and which addresses the
// gateway's capture holds (so `presence replay` and TShark can be checked against it).
import { writeFileSync } from 'node:fs';
import { DEVICE_KINDS, type DeviceKind } from './devices.ts';

export interface TravelStat {
  from: string;
  to: string;
  mode: string;
  /** Agents (people, cyclists, vehicles) that passed `to` in this window after passing `from`. */
  count: number;
  meanS: number;
  medianS: number;
}

export interface TruthWindow {
  gateway: string;
  zone: string;
  start: string;
  end: string;
  /** Distinct people within the gateway's reach at any moment of the window. */
  people: number;
  /** Time-averaged number of people in reach. */
  peopleMean: number;
  /** Physical devices in reach: radio on, mean signal of the link (path loss + its shadowing) above the sensitivity. */
  devices: { total: number; wifi: number; ble: number; byKind: Record<DeviceKind, number> };
  /** Distinct source addresses in the gateway's capture in this window (what a perfect counter counts). */
  addresses: { wifi: number; ble: number; wifiLocal: number; wifiGlobal: number; blePublic: number; bleRandom: number };
  /** Frames in the capture. */
  frames: { wifi: number; ble: number };
  /** Distinct addresses transmitted by devices in reach, heard or not (channel hopping misses some). */
  emitted: { wifi: number; ble: number };
  travel?: TravelStat[];
}

export interface TruthFile {
  scenario: string;
  description: string;
  seed: number;
  scale: number;
  site: string;
  start: string;
  durationS: number;
  windowS: number;
  gateways: Array<{ id: string; zone: string; site: string; position: [number, number]; reachM: number; files: string[] }>;
  totals: { people: number; devices: number; frames: { wifi: number; ble: number } };
  windows: TruthWindow[];
}

/** Accumulates one gateway's window. */
export class WindowTally {
  people = new Map<number, number>(); // agent -> people carried
  /** People in reach summed over the window's truth samples, and the number of samples: their mean is peopleMean. */
  peopleSampled = 0;
  samples = 0;
  devices = new Set<number>();
  wifiDevices = new Set<number>();
  bleDevices = new Set<number>();
  kinds = new Map<number, DeviceKind>();
  wifiAddr = new Set<string>();
  bleAddr = new Set<string>();
  wifiLocal = 0;
  wifiGlobal = 0;
  blePublic = 0;
  bleRandom = 0;
  wifiFrames = 0;
  bleFrames = 0;
  emittedWifi = new Set<string>();
  emittedBle = new Set<string>();

  capturedWifi(addr: string, local: boolean): void {
    this.wifiFrames++;
    if (this.wifiAddr.has(addr)) return;
    this.wifiAddr.add(addr);
    if (local) this.wifiLocal++;
    else this.wifiGlobal++;
  }
  capturedBle(addr: string, random: boolean): void {
    this.bleFrames++;
    if (this.bleAddr.has(addr)) return;
    this.bleAddr.add(addr);
    if (random) this.bleRandom++;
    else this.blePublic++;
  }

  close(gateway: string, zone: string, startMs: number, endMs: number, travel?: TravelStat[]): TruthWindow {
    const byKind = Object.fromEntries(DEVICE_KINDS.map((k) => [k, 0])) as Record<DeviceKind, number>;
    for (const k of this.kinds.values()) byKind[k]++;
    let people = 0;
    for (const n of this.people.values()) people += n;
    const w: TruthWindow = {
      gateway,
      zone,
      start: new Date(startMs).toISOString(),
      end: new Date(endMs).toISOString(),
      people,
      // The mean of the samples, not their people-seconds over the window's length: a window that is no
      // multiple of the truth step holds one sample more or less (7-s windows of 4 people read 2.86 and
      // 5.71), and one shorter than the step held a whole step (a 250-ms window read 80).
      peopleMean: this.samples ? Math.round((this.peopleSampled / this.samples) * 100) / 100 : 0,
      devices: { total: this.devices.size, wifi: this.wifiDevices.size, ble: this.bleDevices.size, byKind },
      addresses: {
        wifi: this.wifiAddr.size,
        ble: this.bleAddr.size,
        wifiLocal: this.wifiLocal,
        wifiGlobal: this.wifiGlobal,
        blePublic: this.blePublic,
        bleRandom: this.bleRandom,
      },
      frames: { wifi: this.wifiFrames, ble: this.bleFrames },
      emitted: { wifi: this.emittedWifi.size, ble: this.emittedBle.size },
    };
    if (travel?.length) w.travel = travel;
    return w;
  }
}

export function median(xs: number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const CSV_COLUMNS = [
  'gateway',
  'zone',
  'start',
  'end',
  'people',
  'people_mean',
  'devices',
  'devices_wifi',
  'devices_ble',
  ...DEVICE_KINDS.map((k) => `devices_${k}`),
  'addresses_wifi',
  'addresses_ble',
  'addresses_wifi_local',
  'addresses_wifi_global',
  'addresses_ble_public',
  'addresses_ble_random',
  'frames_wifi',
  'frames_ble',
  'emitted_wifi',
  'emitted_ble',
];

/** One CSV row per gateway and window (travel statistics stay in the JSON file). */
export function truthCsv(t: TruthFile): string {
  const rows = [CSV_COLUMNS.join(',')];
  for (const w of t.windows) {
    rows.push(
      [
        w.gateway,
        w.zone,
        w.start,
        w.end,
        w.people,
        w.peopleMean,
        w.devices.total,
        w.devices.wifi,
        w.devices.ble,
        ...DEVICE_KINDS.map((k) => w.devices.byKind[k]),
        w.addresses.wifi,
        w.addresses.ble,
        w.addresses.wifiLocal,
        w.addresses.wifiGlobal,
        w.addresses.blePublic,
        w.addresses.bleRandom,
        w.frames.wifi,
        w.frames.ble,
        w.emitted.wifi,
        w.emitted.ble,
      ].join(','),
    );
  }
  return rows.join('\n') + '\n';
}

export function writeTruth(jsonPath: string, csvPath: string | null, t: TruthFile): void {
  writeFileSync(jsonPath, JSON.stringify(t, null, 1) + '\n');
  if (csvPath) writeFileSync(csvPath, truthCsv(t));
}
