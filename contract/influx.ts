// The stored side of the contract: the InfluxDB measurements the aggregator writes, with their tags
// and fields. The aggregator writes them (aggregator/messages.ts, aggregator/flows/intake.ts), the
// dashboards and `presence influx setup` read them, and their tests take the names from here
// (test/influx-contract.test.ts checks that what the aggregator writes and what the dashboards
// query is exactly this).

/** Measurement of the per-window counts: one point per gateway, radio and window (time = window start). */
export const PRESENCE_MEASUREMENT = 'presence';
/** Measurement of the gateways' status: one point per status message, one per window received (time = window start:
 *  `window_complete`, so a panel can count a gateway's windows and show 0 for one that sends status but no window
 *  from this measurement alone), and one when a gateway goes missing or comes back. */
export const GATEWAY_STATUS_MEASUREMENT = 'gateway_status';
/** Measurement of the corridor flows: one point per group pair and interval (time = interval start). */
export const FLOW_MEASUREMENT = 'flow';

/** Every measurement's tags and fields (a field is written only when it applies: `calibrated` and `people` only with a calibration). */
export const INFLUX_SCHEMA = {
  [PRESENCE_MEASUREMENT]: {
    tags: ['gateway', 'radio', 'site', 'zone'],
    fields: ['calibrated', 'complete', 'devices', 'estimate', 'frames', 'people', 'people_high', 'people_low', 'rejected', 'suppressed'],
  },
  [GATEWAY_STATUS_MEASUREMENT]: {
    tags: ['gateway', 'site', 'zone'],
    fields: [
      'capture_silent_s',
      'clock_behind_s',
      'errors',
      'frames_per_s',
      'gateway_ts_ms',
      'missing',
      'missing_windows',
      'online',
      'publish_refused',
      'queue_depth',
      'queue_disk_full',
      'queue_dropped',
      'queue_ok',
      'sources',
      'sources_failed',
      'sources_silent',
      'up',
      'uptime_s',
      'window_complete',
    ],
  },
  [FLOW_MEASUREMENT]: {
    tags: ['from', 'site', 'to'],
    fields: [
      'count',
      'count_high',
      'count_low',
      'interval_s',
      'travel_median_high_s',
      'travel_median_low_s',
      'travel_median_s',
      'travel_p85_high_s',
      'travel_p85_low_s',
      'travel_p85_s',
      'windows',
    ],
  },
} as const satisfies Record<string, { tags: readonly string[]; fields: readonly string[] }>;

export type Measurement = keyof typeof INFLUX_SCHEMA;
