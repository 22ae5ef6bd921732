// Corridor sketch messages for the aggregator suites: devices passing gw-a then gw-b (and back) with
// known travel times, their sketches made by the reference sketch (test/support/sketch-reference.ts)
// under one epoch key, as contract messages.
import { createHash } from 'node:crypto';
import { encode, quantisedP, sketchTopic, type SketchMessage } from '../../contract/index.ts';
import { noisySketch } from './sketch-reference.ts';

/** Deterministic bytes from a label (the gateway draws its randomness from the CSPRNG). */
export function detBytes(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0, c = 0; i < n; c++, i += 32) {
    const h = createHash('sha256').update(`${label}/${c}`).digest();
    out.set(h.subarray(0, Math.min(32, n - i)), i);
  }
  return out;
}

export interface CorridorRun {
  /** Sketch messages in window order (all gateways of a window, then the next window). */
  messages: SketchMessage[];
  /** Devices that passed gw-a then gw-b, per interval start (ms). */
  truthAb: Map<number, number>;
  /** Every address of the run (for the privacy scans). */
  addresses: Uint8Array[];
}

/**
 * `windows` 60-s windows from `startMs` (an epoch boundary), 8 devices a window from gw-a to gw-b
 * (30-40 s) and 8 the other way, 20 heard at one gateway only.
 */
export function corridorRun(o: {
  site: string;
  group: string;
  startMs: number;
  windows: number;
  m?: number;
  p?: number;
  label?: string;
  /** Window length (default 60 s; truthAb assumes it). */
  windowMs?: number;
}): CorridorRun {
  const m = o.m ?? 2048;
  const p = o.p ?? 0.05;
  const W = o.windowMs ?? 60_000;
  const key = detBytes(`${o.label ?? 'k'}/key`, 32);
  const heard = { 'gw-a': new Map<number, Uint8Array[]>(), 'gw-b': new Map<number, Uint8Array[]>() };
  const put = (g: 'gw-a' | 'gw-b', w: number, a: Uint8Array) => {
    const list = heard[g].get(w) ?? [];
    list.push(a);
    heard[g].set(w, list);
  };
  const truthAb = new Map<number, number>();
  const addresses: Uint8Array[] = [];
  let k = 0;
  for (let w = 0; w < o.windows; w++) {
    for (let i = 0; i < 16; i++, k++) {
      const a = detBytes(`${o.label ?? 'k'}/dev/${k}`, 6);
      addresses.push(a);
      const ta = w * W + ((k * 7919) % W);
      const tb = ta + 30_000 + ((k * 31) % 10_000);
      const ab = i % 2 === 0;
      const [x, y] = ab ? [ta, tb] : [tb, ta];
      put('gw-a', Math.floor(x / W), a);
      put('gw-b', Math.floor(y / W), a);
      if (ab && Math.floor(tb / W) < o.windows) {
        const iv = o.startMs + Math.floor(Math.floor(ta / W) / 5) * 5 * W;
        truthAb.set(iv, (truthAb.get(iv) ?? 0) + 1);
      }
    }
    for (let i = 0; i < 20; i++, k++) {
      const a = detBytes(`${o.label ?? 'k'}/dev/${k}`, 6);
      addresses.push(a);
      put(i % 2 ? 'gw-a' : 'gw-b', w, a);
    }
  }
  const messages: SketchMessage[] = [];
  const epochS = 3600;
  for (let w = 0; w < o.windows; w++)
    for (const g of ['gw-a', 'gw-b'] as const) {
      const start = o.startMs + w * W;
      const devices = (heard[g].get(w) ?? []).map((address) => ({ radio: 'ble' as const, address }));
      const bits = noisySketch(key, devices, m, p, detBytes(`${o.label ?? 'k'}/rr/${g}/${w}`, m * 4));
      messages.push({
        v: 1,
        site: o.site,
        gateway: g,
        group: o.group,
        epoch: Math.floor(start / (epochS * 1000)),
        epoch_s: epochS,
        window_start: new Date(start).toISOString(),
        window_end: new Date(start + W).toISOString(),
        m,
        p: quantisedP(p),
        bits: Buffer.from(bits).toString('base64'),
      });
    }
  return { messages, truthAb, addresses };
}

export const sketchItem = (s: SketchMessage) => ({ topic: sketchTopic(s.site, s.gateway), payload: encode(s) });
