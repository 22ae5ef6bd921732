// TypeScript types of the payloads, kept by hand beside the JSON Schema files in schemas/.
// test/contract.test.ts fails when a type and its schema name different fields.
import type { CONTRACT_VERSION } from './topics.ts';

/** Counts of one radio in one window. */
export interface RadioCounts {
  /** Frames the radio's sources delivered in the window (all kinds, good and bad). */
  frames: number;
  /** Distinct device addresses seen in the window (exact up to the firmware's table size). */
  devices: number;
  /** Best estimate of the number of physical devices (corrects for address randomisation). */
  estimate: number;
  probes?: number;
  adverts?: number;
  rejected?: number;
  exact?: boolean;
  [extra: string]: unknown;
}

export interface CountsMessage {
  v: typeof CONTRACT_VERSION;
  site: string;
  zone: string;
  gateway: string;
  /** Increases by one per window per gateway; survives restarts. */
  seq: number;
  /** Window start and end, ISO 8601 UTC with milliseconds. */
  start: string;
  end: string;
  /** False when the window was cut short (start-up, source outage, shutdown). */
  complete: boolean;
  wifi: RadioCounts;
  ble: RadioCounts;
  [extra: string]: unknown;
}

export interface SourceStatus {
  name: string;
  radio?: 'wifi' | 'ble' | 'mixed';
  state: 'running' | 'restarting' | 'failed' | 'finished';
  frames_per_s: number;
  frames?: number;
  errors: number;
  last_error?: string;
  [extra: string]: unknown;
}

export interface StatusMessage {
  v: typeof CONTRACT_VERSION;
  site: string;
  gateway: string;
  state: 'online' | 'offline';
  zone?: string;
  version?: string;
  uptime_s?: number;
  queue_depth?: number;
  sources?: SourceStatus[];
  ts?: string;
  [extra: string]: unknown;
}
