// Radio propagation and the gateway's receivers.
//
// Received signal = transmit power - path loss(d) - extra losses + shadowing + fading, with the
// log-distance path loss model PL(d) = PL(d0) + 10 n log10(d / d0), d0 = 1 m (Rappaport, Wireless
// Communications, ch. 4). Shadowing is log-normal: a zero-mean Gaussian in dB, drawn once per
// device-gateway link (slow, from obstacles and bodies), plus a smaller Gaussian per frame (fading).
//
// A Wi-Fi monitor radio hears one channel at a time: it hops a channel list with a dwell time and is
// deaf while retuning. A 2.4 GHz transmission on a neighbouring channel is still received with an
// adjacent-channel penalty (the DSSS signal is 22 MHz wide on a 5 MHz channel raster). A BLE sniffer
// listens on one advertising channel; an advertiser sends every advertising event on 37, 38 and 39.
import { is5GHz } from './frames.ts';

export interface Environment {
  pathLossExponent: number;
  /** Path loss at 1 m, dB (free space at 2.4 GHz: 40 dB). */
  referenceLossDb: number;
  /** Standard deviation of the per-link shadowing, dB. */
  shadowingDb: number;
  /** Standard deviation of the per-frame fading, dB. */
  fadingDb: number;
  /** Loss from the carrier's body (phone in a pocket or hand), dB. */
  bodyLossDb: number;
}

export function pathLossDb(env: Environment, distanceM: number): number {
  return env.referenceLossDb + 10 * env.pathLossExponent * Math.log10(Math.max(1, distanceM));
}

/** Distance at which the median received signal of `txDbm` equals `sensitivityDbm`. */
export function reachM(env: Environment, txDbm: number, sensitivityDbm: number, extraLossDb = 0): number {
  const budget = txDbm - extraLossDb - sensitivityDbm - env.referenceLossDb;
  return 10 ** (budget / (10 * env.pathLossExponent));
}

export interface WifiReceiver {
  channels: readonly number[];
  dwellMs: number;
  /** Deaf time after each channel switch, ms. */
  switchMs: number;
  sensitivityDbm: number;
  /** Where in the hop cycle the radio is at time 0, ms. */
  phaseMs: number;
}

/** Channel the radio listens on at time t (ms since simulation start), or 0 while retuning. */
export function tunedChannel(r: WifiReceiver, tMs: number): number {
  const cycle = r.channels.length * r.dwellMs;
  const x = (((tMs + r.phaseMs) % cycle) + cycle) % cycle;
  const slot = Math.floor(x / r.dwellMs);
  if (x - slot * r.dwellMs < r.switchMs) return 0;
  return r.channels[slot];
}

/** Adjacent-channel penalty (dB) of receiving a frame sent on `tx` while tuned to `rx`; null: not received. */
export function adjacentPenaltyDb(tx: number, rx: number): number | null {
  if (tx === rx) return 0;
  if (is5GHz(tx) || is5GHz(rx)) return null;
  const d = Math.abs(tx - rx);
  return d === 1 ? 4 : d === 2 ? 12 : null;
}

/** True when a frame on `tx` could ever be heard by a radio hopping `channels`. */
export function audible(tx: number, channels: readonly number[]): boolean {
  return channels.some((c) => adjacentPenaltyDb(tx, c) !== null);
}

export interface BleReceiver {
  /** Advertising channel the sniffer follows. */
  channel: 37 | 38 | 39;
  sensitivityDbm: number;
  /** Share of time the receiver listens (a host controller's scan window / scan interval). */
  duty: number;
}
