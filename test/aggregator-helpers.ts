import { Calibration, parseCalibration } from '../aggregator/calibration/index.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
// Shared bits of the aggregator suites: contract-conformant windows and a QoS 1 publisher.
import mqtt, { type MqttClient } from 'mqtt';
import { countsTopic, encode, statusTopic, type CountsMessage, type StatusMessage } from '../contract/index.ts';

export function window(site: string, gateway: string, seq: number, startMs: number, windowMs = 1000, zone = 'zone-a'): CountsMessage {
  return {
    v: 1,
    site,
    zone,
    gateway,
    seq,
    start: new Date(startMs).toISOString(),
    end: new Date(startMs + windowMs).toISOString(),
    complete: true,
    wifi: { frames: 100 + (seq % 50), devices: 10 + (seq % 7), estimate: 8 + (seq % 5) },
    ble: { frames: 200 + (seq % 30), devices: 20 + (seq % 11), estimate: 15 + (seq % 3) },
  };
}

/** `count` windows per gateway, gateways gw-0..gw-{n-1} of one site, windows back from `endMs`. */
export function windows(site: string, gateways: number, count: number, endMs = Date.now() - 60_000, windowMs = 1000): CountsMessage[] {
  const out: CountsMessage[] = [];
  for (let s = 0; s < count; s++) for (let g = 0; g < gateways; g++) out.push(window(site, `gw-${g}`, s, endMs - (count - s) * windowMs, windowMs));
  return out;
}

export function status(site: string, gateway: string, ts = new Date()): StatusMessage {
  return {
    v: 1,
    site,
    gateway,
    state: 'online',
    uptime_s: 12.5,
    queue_depth: 3,
    ts: ts.toISOString(),
    sources: [
      { name: 'wlan0', radio: 'wifi', state: 'running', frames_per_s: 10.5, errors: 1 },
      { name: 'hci0', radio: 'ble', state: 'running', frames_per_s: 4.5, errors: 2 },
    ],
  };
}

export async function publisher(url: string, clientId = `pub-${process.pid}-${Math.random().toString(36).slice(2)}`): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 200 });
}

/** Publishes QoS 1, at most `parallel` unacknowledged at once. */
export async function publishAll(client: MqttClient, items: Array<{ topic: string; payload: Buffer | string }>, parallel = 200): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const it = items[i++];
      await client.publishAsync(it.topic, it.payload, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

export const countsItem = (m: CountsMessage) => ({ topic: countsTopic(m.site, m.gateway), payload: encode(m) });
export const statusItem = (m: StatusMessage) => ({ topic: statusTopic(m.site, m.gateway), payload: encode(m) });

export async function until<T>(what: string, fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export const silentLogger = { level: 'silent' };

/** A Wi-Fi estimate calibration of one zone, "hall" (k 0.5, b 4), for tests that need people written. */
export function hallCalibration(): Calibration {
  return new Calibration(
    parseCalibration(`format: presence-calibration/1
estimator: { field: estimate, radio: wifi, window_s: 60 }
level: 0.9
zones:
  hall:
    k: { value: 0.5, low: 0.45, high: 0.55, sd: 0.03 }
    b: { value: 4, low: 3, high: 5, sd: 0.6 }
    corr_kb: 0.4
    residual_sd: 1.5
`),
  );
}

/** An aggregator on a real broker and influxd 1.x (database made at start) applying this calibration; quick batches, no log. */
export function calibratedAggregator(brokerUrl: string, influxUrl: string, clientId: string, calibration: Calibration): Aggregator {
  return new Aggregator(
    {
      mqtt: { url: brokerUrl, clientId },
      influx: { url: influxUrl, api: 'v1', database: 'presence', create: true },
      batch: { size: 300, flushInterval: '20ms', maxBuffer: 1000, maxRetryDelay: '500ms' },
      http: { port: 0, host: '127.0.0.1' },
      logLevel: 'silent',
    },
    { calibration },
  );
}

/** An aggregator writing to influxd's "presence" at once, retrying fast, with 1-s windows' silence noticed within a second (liveness suites). */
export function quickAggregatorConfig(brokerUrl: string, influxUrl: string, clientId: string) {
  return {
    mqtt: { url: brokerUrl, clientId },
    influx: { url: influxUrl, api: 'v1' as const, database: 'presence' },
    batch: { flushInterval: '50ms', maxRetryDelay: '300ms' },
    http: { port: null },
    missingAfterWindows: 2,
    missingCheckInterval: '100ms',
    logLevel: 'silent' as const,
  };
}
