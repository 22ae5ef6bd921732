// What the engine yields, and the state it shares between its parts: the gateways as the engine
// sees them (position, receivers, reach, own random stream).
import type { Frame } from '../../firmware/host/types.ts';
import type { WifiReceiver } from '../radio.ts';
import type { Rng } from '../rng.ts';
import type { Scenario } from '../scenario.ts';
import type { TruthWindow } from '../truth.ts';
import type { Device } from './devices.ts';
import type { Agent } from './population.ts';

export type BleLink = 'll' | 'hci';
export type Radio = 'wifi' | 'ble';

export interface FrameEvent {
  type: 'frame';
  /** Index into scenario.gateways. */
  gateway: number;
  radio: Radio;
  frame: Frame;
}
export interface WindowEvent {
  type: 'window';
  /** One entry per gateway, in scenario order. */
  windows: TruthWindow[];
}
export type SimEvent = FrameEvent | WindowEvent;

/** What a finished run returns (the generator's return value). */
export interface SimTotals {
  /** People who were present at some time of the run (at the start or arriving later). */
  people: number;
  /** Devices those people and the fixed installations carried. */
  devices: number;
}

export interface EngineOptions {
  seed: number;
  /** BLE encapsulation: link layer with pseudo-header (256) or HCI event (201). */
  bleLink?: BleLink;
  /** What the flows evaluation needs to know beyond the frames (simulator/flows-eval.ts). */
  tap?: EngineTap;
}

/**
 * Per-device truth for the flows evaluation: which gateways a flow agent passes and when, and who sent
 * each captured frame. Only the evaluation listens; the frames and window truths do not change.
 */
export interface EngineTap {
  /** A flow agent's passes (closest point of its path to each gateway within reach), in time order, s. */
  passes?(agent: Agent, passes: Array<{ gateway: number; t: number }>): void;
  /** Gateway g captured a frame of device d at t (s) on `radio`. */
  captured?(g: number, radio: Radio, d: Device, t: number): void;
}

/** A gateway as the engine uses it. */
export interface GatewayState {
  spec: Scenario['gateways'][number];
  index: number;
  /** The Wi-Fi receiver with this gateway's random hopping phase. */
  wifi: WifiReceiver | undefined;
  ble: Scenario['gateways'][number]['ble'];
  x: number;
  y: number;
  /** People within this distance count as in reach. */
  reach: number;
  /** Offset of the radio's TSF clock, us. */
  tsfOffsetUs: number;
  rng: Rng;
}
