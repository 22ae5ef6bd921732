// What a run writes beside its captures' frames, estimated before it runs for the check of the free
// space (presence simulate, presence demo): each capture file's own header, and the truth.json and
// truth.csv of the run. The truth grows with the gateways and windows, not the crowd: it is sized by
// its own serialisers (truth.ts) for every gateway and window, with every count as long as the
// largest a run can hold, so that the estimate is not below what is written.
import type { Scenario } from './scenario.ts';
import { truthCsv, type TruthFile, type TruthWindow } from './truth.ts';
import { DEVICE_KINDS, type DeviceKind } from './devices.ts';

/** A count of 7 digits: above any count of one gateway's window in a run the demo can make. */
export const BIG_COUNT = 9_999_999;
/** Each capture file's own header (pcapng: a Section Header Block, an Interface Description Block per radio: about 150 bytes; pcap: 24). */
export const CAPTURE_HEADER_BYTES = 1024;

/** The windows of each gateway: they fall on multiples of the window length in UTC, so a run that starts between two has one more. */
export function windowCount(s: Scenario): number {
  const w = s.windowS * 1000;
  return Math.max(1, Math.ceil((s.startMs + s.durationS * 1000) / w) - Math.floor(s.startMs / w));
}

/** A truth window of `gateway` whose every count is `big`, with `travel` entries. */
export function bigWindow(gateway: string, zone: string, travel: number, big = BIG_COUNT): TruthWindow {
  const date = new Date(0).toISOString();
  const byKind = Object.fromEntries(DEVICE_KINDS.map((k) => [k, big])) as Record<DeviceKind, number>;
  const w: TruthWindow = {
    gateway,
    zone,
    start: date,
    end: date,
    people: big,
    peopleMean: big + 0.99,
    devices: { total: big, wifi: big, ble: big, byKind },
    addresses: { wifi: big, ble: big, wifiLocal: big, wifiGlobal: big, blePublic: big, bleRandom: big },
    frames: { wifi: big, ble: big },
    emitted: { wifi: big, ble: big },
  };
  // a travel entry names two gateways and a mode: the longest of each
  if (travel > 0)
    w.travel = Array.from({ length: travel }, () => ({ from: gateway, to: gateway, mode: 'pedestrian', count: big, meanS: 99999.9, medianS: 99999.9 }));
  return w;
}

/** The largest count that `maxCount` allows, as a number of all nines (9, 99, ... at least 9). */
function nines(maxCount: number): number {
  return 10 ** Math.max(1, String(Math.max(0, Math.ceil(maxCount))).length) - 1;
}

/**
 * Bytes of the truth.json and truth.csv (when `csv`) of a run of `s`: `files` names the capture files
 * of a gateway (as the truth's head lists them), `maxCount` bounds every count of a window (the
 * run's frames do: BIG_COUNT when unknown).
 */
export function estimateTruthBytes(s: Scenario, o: { files: (gatewayId: string) => string[]; csv?: boolean; maxCount?: number }): number {
  const big = o.maxCount === undefined ? BIG_COUNT : nines(o.maxCount);
  const csv = o.csv !== false;
  const bytes = (text: string) => Buffer.byteLength(text);
  // Travel times are kept per window for each gateway reached from another by a flow, per mode.
  const modes = new Set(s.crowds.flatMap((c) => (c.type === 'flow' ? Object.keys(c.modes) : [])));
  const travel = modes.size ? (s.gateways.length - 1) * modes.size : 0;
  // truth.json (JSON.stringify(t, null, 1)): its head, and each window as it stands in the array.
  const head: TruthFile = {
    scenario: s.name,
    description: s.description,
    seed: 4294967295,
    scale: s.scale,
    site: s.site,
    start: new Date(0).toISOString(),
    durationS: s.durationS,
    windowS: s.windowS,
    gateways: s.gateways.map((g) => ({ id: g.id, zone: g.zone, site: s.site, position: [BIG_COUNT, BIG_COUNT], reachM: BIG_COUNT, files: o.files(g.id) })),
    totals: { people: BIG_COUNT * 1000, devices: BIG_COUNT * 1000, frames: { wifi: BIG_COUNT * 1000, ble: BIG_COUNT * 1000 } },
    windows: [],
  };
  const headJson = bytes(JSON.stringify(head, null, 1));
  let perWindow = 0;
  for (const g of s.gateways) {
    const w = bigWindow(g.id, g.zone, travel, big);
    // one window in the array, less the empty array: the window with its indentation and a comma
    perWindow += bytes(JSON.stringify({ ...head, windows: [w] }, null, 1)) - headJson + 1;
    if (csv) perWindow += bytes(truthCsv({ ...head, windows: [w] })) - bytes(truthCsv(head));
  }
  return headJson + 1 + (csv ? bytes(truthCsv(head)) : 0) + windowCount(s) * perWindow;
}
