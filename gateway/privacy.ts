// Small counts: what the gateway does to a window's counts before anything of it leaves the process
// (queue file, log line, MQTT). Two optional settings (gateway/config.ts, `privacy:`):
//
//   min_count (k)  A radio whose published `devices` or `estimate` is below k is published with every
//                  count of the radio set to 0 and `suppressed: true` (with k > 0 every radio carries
//                  the flag, so a suppressed 0 and a counted 0 are told apart).
//   epsilon        Differential-privacy mode: two-sided geometric noise (the discrete Laplace) with
//                  this epsilon is added to `devices` and to `estimate` of each radio, per window,
//                  then the result is clamped at 0 (and at 2^53 - 1). Suppression (k) is decided after the noise, on
//                  the noisy counts.
//
// Which fields. `devices` and `estimate` are the counts of people's devices: they are noised and
// suppressed. The frame counts (`frames`, `probes` / `adverts`, `rejected`, `weak`) are not about
// devices, but a lone phone sends tens of probe requests a minute, so a frame count next to a
// suppressed 0 would still say that someone was there: a suppressed radio publishes all its counts
// as 0. `exact` is kept (false only above 49,152 addresses). Frame counts are never noised: one
// device can send any number of frames (no finite sensitivity), so the epsilon statement does not
// cover them (gateway/README.md, "Privacy").
//
// Sensitivity (the unit protected is one device address in one window):
//   devices   distinct addresses: one address changes it by at most 1 while the firmware's table
//             is exact (`exact: true`, up to 49,152 addresses; above that the sketch is read and
//             one address can move it by more). Noise scale: 1.
//   estimate  (firmware/assembly/estimator.ts) Wi-Fi: (fixed counts of the window's 60-s
//             sub-windows) / (60-s sub-windows in the window) + (burst counts of its 10-s
//             sub-windows) / (10-s sub-windows in the window), a 10-s sub-window counting
//             max(bursts, new addresses / 7); BLE: distinct addresses per 30-s sub-window, averaged.
//             The noise is scaled to estimateSensitivity: the rise of the estimate, rounded as
//             published, that the estimator's own rules give one address that is counted once as
//             a device that keeps its address (1 per 60-s sub-window it is heard in) and moved once
//             into a burst by a chain (1 per 10-s sub-window), then counted fixed again:
//             ceil(ceil(w / 60 s) / max(1, w / 60 s) + 1 / max(1, w / 10 s)) for a window of w, at
//             least the BLE part's ceil(ceil(w / 30 s) / max(1, w / 30 s)). For 60-s windows that
//             is 1 1/6 of the mean (test/firmware-estimate.test.ts), 2 once rounded: 2.
//             It is NOT a sensitivity of the estimate. One address can move it by far more, both
//             ways: (a) up: the chain table keeps, per dBm value, the last Wi-Fi frame only, so one
//             address heard again between each fixed device's probe and the random address that
//             would have chained to it (300 ms, 8 dB) keeps every such device fixed: the estimate
//             rises with the number of them (by 35 with 40 of them in a 60-s window); (b) down: a
//             new Wi-Fi address heard within 1 s and 8 dB of a frame is linked to it, so one
//             device's frames can absorb other devices' scans; (c) a window opened without a span
//             (the gateway's window clock passes one for every finite window) has its grid and
//             divisors follow the window's first and last frame, and one frame at either end moves them (test/gateway-privacy.test.ts shows
//             all three with the real firmware). The epsilon is a differential-privacy guarantee
//             for `devices`, not for `estimate`.
//
// Budget: each window publishes, for one address, its radio's `devices` and `estimate`: 2 epsilon
// per window, 2 x epsilon x windows per day for an address heard all day (basic composition;
// dailyBudget). Both assume one address moves each count by at most 1, which holds for `devices`
// only: for `estimate` (above) they are a lower bound of the cost, as the logged
// privacy_epsilon_per_day is. A phone that changes its address m times in a window is m addresses (group
// privacy: m times the cost).
//
// Randomness: Node's CSPRNG (crypto.randomFillSync), in the host, never in the WASM module. Each
// geometric draw is floor(ln U / ln alpha) with U uniform on (0, 1] from 53 random bits; the
// probability of a draw past 53 ln 2 / -ln alpha is cut off (below 2^-53). Every window draws the same
// number of values whatever its counts, and nothing but the two counts and k decides what is
// published. The noisy message is what is queued, so a window sent again (after a restart, a lost
// PUBACK) carries the same noise: it cannot be averaged away by redelivery.
import { randomFillSync } from 'node:crypto';
import type { CountsMessage, RadioCounts } from '../contract/index.ts';

/** The firmware estimator's sub-windows (firmware/assembly/estimator.ts): BLE, Wi-Fi bursts, Wi-Fi fixed. */
export const SUBWINDOW_MS = 30_000;
export const WIFI_SUB_MS = 10_000;
export const FIXED_MS = 60_000;

export interface PrivacySettings {
  /** k: radios whose devices or estimate is below it are published as zeros, suppressed (0: off). */
  minCount: number;
  /** Epsilon of the noise on each device count per window; undefined: no noise. */
  epsilon?: number;
  /** Window length (ms): sets the estimate's sensitivity. */
  windowMs: number;
}

/** A source of uniform numbers in (0, 1]. */
export type Uniform = () => number;

const TWO_POW_53 = 9007199254740992;
const scratch = new Uint32Array(2);

/** A uniform number in (0, 1] from 53 bits of Node's CSPRNG. */
export const cryptoUniform: Uniform = () => {
  randomFillSync(scratch);
  const hi = scratch[0] >>> 5; // 27 bits
  const lo = scratch[1] >>> 6; // 26 bits
  scratch.fill(0);
  return (hi * 67108864 + lo + 1) / TWO_POW_53;
};

/**
 * Geometric on {0, 1, 2, ...}: P(g) = (1 - alpha) alpha^g with alpha = exp(-rate); ln alpha = -rate exactly.
 * Not capped: at a rate so small that a draw passes 2^53 it is a large float, and the two draws of a
 * noise value stay apart (capping each at 2^53 - 1 made both the same at an epsilon of about 1e-15 or
 * less, so their difference, the noise, was 0 and the count went out exact under the epsilon it
 * claimed). A uniform of 1 is 0 at any rate.
 */
function geometric(rate: number, uniform: Uniform): number {
  const g = Math.floor(Math.log(uniform()) / -rate);
  return Number.isNaN(g) ? 0 : g;
}

/** A noisy count as the contract holds it: 0 to 2^53 - 1 (clipping is post-processing: no privacy lost). */
const countOf = (v: number) => Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, v));

/**
 * Two-sided geometric (discrete Laplace) noise: P(z) = (1 - alpha) / (1 + alpha) alpha^|z| with
 * alpha = exp(-epsilon / sensitivity); mean 0, variance 2 alpha / (1 - alpha)^2. Two draws always.
 */
export function twoSidedGeometric(epsilon: number, sensitivity: number, uniform: Uniform = cryptoUniform): number {
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new RangeError(`privacy: epsilon must be a finite number above 0, got ${epsilon}`);
  if (!(sensitivity > 0)) throw new RangeError(`privacy: sensitivity must be above 0, got ${sensitivity}`);
  const rate = epsilon / sensitivity;
  // A rate that underflows to 0 makes every draw infinite and their difference no number.
  if (!(rate > 0)) throw new RangeError(`privacy: epsilon ${epsilon} over sensitivity ${sensitivity} is too small to draw noise from`);
  // The difference of the uncapped draws, then held to what a count can be (post-processing).
  const z = geometric(rate, uniform) - geometric(rate, uniform);
  return Math.max(-Number.MAX_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, z));
}

/** Variance of twoSidedGeometric(epsilon, sensitivity): 2 alpha / (1 - alpha)^2. */
export function noiseVariance(epsilon: number, sensitivity = 1): number {
  const a = Math.exp(-epsilon / sensitivity);
  return (2 * a) / (1 - a) ** 2;
}

/**
 * The scale of the noise on the published (rounded) estimate (see the header): the rise one
 * address counted fixed, moved once into a burst and counted fixed again gives, rounded up (a
 * rounded count can rise by the ceiling of its mean's rise); at least the BLE part's. 2 for 60-s
 * windows. Not an upper bound of the estimate's sensitivity (it has none). Depends on the
 * configured window only.
 */
export function estimateSensitivity(windowMs: number): number {
  const part = (len: number) => Math.ceil(windowMs / len - 1e-9) / Math.max(1, windowMs / len);
  const wifi = part(FIXED_MS) + 1 / Math.max(1, windowMs / WIFI_SUB_MS);
  return Math.max(Math.ceil(wifi - 1e-9), Math.ceil(part(SUBWINDOW_MS) - 1e-9));
}

/** Windows per day and the epsilon spent per day on one address heard in all of them (basic composition). */
export function dailyBudget(windowMs: number, epsilon: number): { windowsPerDay: number; perWindow: number; perDay: number } {
  const windowsPerDay = 86_400_000 / windowMs;
  return { windowsPerDay, perWindow: 2 * epsilon, perDay: 2 * epsilon * windowsPerDay };
}

/** True when the settings change anything. */
export function privacyActive(s: PrivacySettings): boolean {
  return s.minCount > 0 || s.epsilon !== undefined;
}

function protectRadio(r: RadioCounts, s: PrivacySettings, uniform: Uniform): RadioCounts {
  let devices = r.devices;
  let estimate = r.estimate;
  if (s.epsilon !== undefined) {
    devices = countOf(devices + twoSidedGeometric(s.epsilon, 1, uniform));
    estimate = countOf(estimate + twoSidedGeometric(s.epsilon, estimateSensitivity(s.windowMs), uniform));
  }
  if (s.minCount <= 0) return { ...r, devices, estimate };
  // Decided on the two (noisy) counts and k only.
  if (devices < s.minCount || estimate < s.minCount) {
    const zero: RadioCounts = { frames: 0, devices: 0, estimate: 0 };
    if (r.probes !== undefined) zero.probes = 0;
    if (r.adverts !== undefined) zero.adverts = 0;
    if (r.rejected !== undefined) zero.rejected = 0;
    if (r.weak !== undefined) zero.weak = 0;
    if (r.exact !== undefined) zero.exact = r.exact;
    zero.suppressed = true;
    return zero;
  }
  return { ...r, devices, estimate, suppressed: false };
}

/**
 * The message as it may leave the gateway: noise (epsilon), then suppression (k), per radio, and
 * the `privacy` block saying which. Unchanged when neither is set. `uniform` is for tests; the
 * gateway always uses the CSPRNG.
 */
export function protect(m: CountsMessage, s: PrivacySettings, uniform: Uniform = cryptoUniform): CountsMessage {
  if (!privacyActive(s)) return m;
  return {
    ...m,
    wifi: protectRadio(m.wifi, s, uniform),
    ble: protectRadio(m.ble, s, uniform),
    privacy: { min_count: s.minCount, ...(s.epsilon !== undefined ? { epsilon: s.epsilon } : {}) },
  };
}
