// Membership privacy of the corridor sketches, on what the broker and the aggregator receive for an
// epoch: every sketch the real firmware published (30 windows, 100 devices each, each device in one
// window), plus every address of the run (3000 that were heard, 3000 that were not).
//
// - Without the epoch key (broker, aggregator, anyone reading MQTT): a membership test can only guess
//   where a device's bit is. Tests that place it by BLAKE2s without a key, with a zero key, or with
//   the key of a guessed secret do no better than chance (area under the ROC curve 0.5 +- 0.03); they
//   would if the position did not depend on the group's secret.
// - With the key (the strongest attacker: knows each device's bit): the best test on one sketch is
//   "the bit is 1". Its true and false positive rates must respect the randomised response's bound
//   TPR <= e^epsilon * FPR and 1 - FPR <= e^epsilon * (1 - TPR), and the members' bits must be
//   flipped at the advertised rate q/2 (a firmware applying less noise than the message says fails).
import { randomBytes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { describe, expect, it } from 'vitest';
import { sketchEpsilon } from '../contract/index.ts';
import { Firmware } from '../firmware/host/firmware.ts';
import type { Frame } from '../firmware/host/types.ts';
import { BLE_PDU, bleAdvertLL } from '../simulator/frames.ts';
import { epochKey, sketchBit, sketchPosition } from './support/sketch-reference.ts';

const HOUR = 3_600_000;
const M = 2048;
const P = 0.05;
const WINDOWS = 30;
const PER_WINDOW = 100;

/** Random static BLE addresses (top bits 11): they enter the sketch. */
function address(): Uint8Array {
  const a = randomBytes(6);
  a[0] |= 0xc0;
  return a;
}

/** Area under the ROC curve of integer scores (the probability a member outscores a non-member, ties half). */
function auc(members: number[], others: number[]): number {
  const max = Math.max(...members, ...others);
  const h = new Float64Array(max + 1);
  for (const y of others) h[y]++;
  let below = 0;
  const cum = new Float64Array(max + 2);
  for (let v = 0; v <= max; v++) {
    cum[v] = below;
    below += h[v];
  }
  let wins = 0;
  for (const x of members) wins += cum[x] + h[x] / 2;
  return wins / (members.length * others.length);
}

describe('corridor sketch membership privacy (real firmware, one epoch)', () => {
  const secret = randomBytes(32);
  const start = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
  const members: Array<{ a: Uint8Array; w: number }> = [];
  const others: Uint8Array[] = Array.from({ length: WINDOWS * PER_WINDOW }, address);
  const sketches: Uint8Array[] = [];
  let p = 0;

  {
    const fw = Firmware.loadSync();
    fw.setCorridor({ secret, group: 'main-street', epochMs: HOUR, bits: M, p: P });
    for (let w = 0; w < WINDOWS; w++) {
      const t0 = start + w * 60_000;
      fw.beginWindow({ startMs: t0, endMs: t0 + 60_000 });
      for (let i = 0; i < PER_WINDOW; i++) {
        const a = address();
        members.push({ a, w });
        const frame: Frame = {
          linkType: 256,
          timestampMs: t0 + 100 * i,
          data: bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva: a, random: true, advData: Uint8Array.from([2, 1, 6]), channel: 37, signalDbm: -60 }),
        };
        fw.ingest(frame);
      }
      const c = fw.endWindow();
      sketches.push(c.sketch!.bits);
      p = c.sketch!.p;
    }
    fw.clearCorridor();
  }
  const epsilon = sketchEpsilon(p);

  it('without the key, guessing the position does no better than chance', () => {
    const guessed = epochKey(new Uint8Array(32), 'main-street', start / HOUR);
    const guesses: Array<[string, (a: Uint8Array) => number]> = [
      ['unkeyed BLAKE2s', (a) => pos(blake2s(Uint8Array.from([2, ...a]), { dkLen: 32 }))],
      ['zero key', (a) => pos(blake2s(Uint8Array.from([2, ...a]), { key: new Uint8Array(32), dkLen: 32 }))],
      ['key of a guessed secret', (a) => sketchPosition(guessed, 'ble', a, M)],
    ];
    for (const [name, position] of guesses) {
      // score: how many of the epoch's sketches have the guessed bit set (the attacker does not know the window either)
      const score = (a: Uint8Array) => {
        const i = position(a);
        return sketches.reduce((n, s) => n + sketchBit(s, i), 0);
      };
      const area = auc(
        members.map((m) => score(m.a)),
        others.map(score),
      );
      expect(Math.abs(area - 0.5), `${name}: AUC ${area.toFixed(3)}`).toBeLessThan(0.03);
    }
  });

  it('with the key, the best test on the bit stays within the epsilon of one sketch, and the flip rate is the advertised one', () => {
    const key = epochKey(secret, 'main-street', start / HOUR);
    // members: their own window's sketch; non-members: the same windows, in turn
    const memberBits = members.map((m) => sketchBit(sketches[m.w], sketchPosition(key, 'ble', m.a, M)));
    const otherBits = others.map((a, i) => sketchBit(sketches[i % WINDOWS], sketchPosition(key, 'ble', a, M)));
    const n1 = memberBits.length;
    const n0 = otherBits.length;
    const tpr = memberBits.reduce((s, b) => s + b, 0) / n1;
    const fpr = otherBits.reduce((s, b) => s + b, 0) / n0;
    // the members' bits are 0 only when randomised response replaced them with a 0: rate q/2
    const f = p / 2;
    const sd = Math.sqrt((f * (1 - f)) / n1);
    expect(1 - tpr).toBeGreaterThan(f - 4 * sd);
    expect(1 - tpr).toBeLessThan(f + 4 * sd);
    // epsilon-DP of one sketch for the test "bit = 1" and for its complement, with 4 sigma of sampling slack
    const slack = (x: number, n: number) => 4 * Math.sqrt(Math.max(x * (1 - x), 1e-4) / n);
    expect(tpr - slack(tpr, n1)).toBeLessThanOrEqual(Math.exp(epsilon) * (fpr + slack(fpr, n0)));
    expect(1 - fpr - slack(fpr, n0)).toBeLessThanOrEqual(Math.exp(epsilon) * (1 - tpr + slack(tpr, n1)));
    // and the advantage of the test stays below what epsilon allows, (e^eps - 1) / (e^eps + 1)
    expect(tpr - fpr).toBeLessThan((Math.exp(epsilon) - 1) / (Math.exp(epsilon) + 1) + slack(tpr, n1) + slack(fpr, n0));
  });
});

function pos(h: Uint8Array): number {
  return ((h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0) & (M - 1);
}
