// Helpers for the gateway suites: an MQTT subscriber that records everything, generated captures
// with known device addresses, a gateway config from a few fields, and polling.
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { loadConfig, type GatewayConfig, type GatewayFlags } from '../gateway/config.ts';
import { bleAdvertLL, BLE_PDU, probeRequest } from '../simulator/frames.ts';
import { pcapHeader, pcapRecord } from '../simulator/pcap-writer.ts';
import { LINKTYPE } from '../firmware/host/types.ts';
import { writeFileSync } from 'node:fs';
import { countsTopic, siteFilter, statusTopic, validateCounts, validateStatus, type CountsMessage, type StatusMessage } from '../contract/index.ts';

export const ROOT = join(import.meta.dirname, '..');

export interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

/** A whole 1-minute window of gateway `g` of `site` (zone z), number `seq`, at 12:seq on 1 June 2026, as a queue holds it. */
export const queuedWindow = (
  site: string,
  seq: number,
  wifi = { frames: 1, devices: 1, estimate: 1 },
  ble = { frames: 0, devices: 0, estimate: 0 },
): CountsMessage => ({
  v: 1,
  site,
  zone: 'z',
  gateway: 'g',
  seq,
  start: new Date(Date.UTC(2026, 5, 1, 12, seq)).toISOString(),
  end: new Date(Date.UTC(2026, 5, 1, 12, seq + 1)).toISOString(),
  complete: true,
  wifi,
  ble,
});

/** The counts messages of gateway `g` of `site` among `ms`, each checked against the contract. */
export const counts = (ms: Received[], site: string): CountsMessage[] =>
  ms
    .filter((m) => m.topic === countsTopic(site, 'g'))
    .map((m) => {
      const v = validateCounts(JSON.parse(m.payload.toString()));
      if (!v.ok) throw new Error(v.reason);
      return v.value;
    });

/** The status messages of gateway `g` of `site` among `ms`, each checked against the contract. */
export const statuses = (ms: Received[], site: string): StatusMessage[] =>
  ms
    .filter((m) => m.topic === statusTopic(site, 'g'))
    .map((m) => {
      const v = validateStatus(JSON.parse(m.payload.toString()));
      if (!v.ok) throw new Error(v.reason);
      return v.value;
    });

/** A subscriber recording every message on `filter` (default `#`). Persistent session by default. */
/**
 * A subscriber to `filter` (default `#`) that keeps every message. With `rap` it subscribes over
 * MQTT 5 with Retain As Published, so `retain` is the flag the publisher set even on a live delivery
 * (otherwise the broker clears it on every message but a retained copy sent at subscribe).
 */
export async function subscriber(
  url: string,
  opts: IClientOptions & { filter?: string; rap?: boolean } = {},
): Promise<{ client: MqttClient; messages: Received[] }> {
  const messages: Received[] = [];
  const { filter, rap, ...options } = opts;
  const client = mqtt.connect(url, {
    clientId: `test-sub-${Math.random().toString(36).slice(2)}`,
    clean: false,
    reconnectPeriod: 200,
    ...(rap ? { protocolVersion: 5 as const } : {}),
    ...options,
  });
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: Buffer.from(payload), retain: !!packet.retain }));
  client.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    setTimeout(() => reject(new Error('subscriber could not connect')), 10_000);
  });
  await client.subscribeAsync(filter ?? '#', { qos: 1, ...(rap ? { rap: true } : {}) });
  return { client, messages };
}

export async function waitFor(cond: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function config(flags: GatewayFlags): GatewayConfig {
  return loadConfig({ logLevel: 'silent', ...flags }, {});
}

/** Six bytes of a deterministic address. `local` sets the locally-administered bit. */
export function address(i: number, salt: number, local = false): Uint8Array {
  const a = new Uint8Array(6);
  let x = (i + 1) * 2654435761 + salt * 40503;
  for (let k = 0; k < 6; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    a[k] = (x >>> 16) & 0xff;
  }
  a[0] = (a[0] & 0xfc) | (local ? 0x02 : 0);
  return a;
}

export interface Generated {
  path: string;
  addresses: Uint8Array[];
  frames: number;
  firstMs: number;
  lastMs: number;
}

/** A Wi-Fi capture (radiotap, link type 127) of probe requests from `devices` known addresses. */
export function wifiCapture(path: string, o: { devices: number; startMs: number; durationMs: number; framesPerS: number; salt?: number }): Generated {
  const addresses = Array.from({ length: o.devices }, (_, i) => address(i, o.salt ?? 1, i % 2 === 1));
  const n = Math.max(1, Math.round((o.durationMs / 1000) * o.framesPerS));
  const parts: Buffer[] = [pcapHeader(LINKTYPE.IEEE802_11_RADIOTAP)];
  const ssid = Buffer.from([0x00, 0x00, 0x01, 0x08, 0x82, 0x84, 0x8b, 0x96, 0x0c, 0x12, 0x18, 0x24]);
  let last = o.startMs;
  for (let i = 0; i < n; i++) {
    const t = o.startMs + (i * o.durationMs) / n;
    last = t;
    parts.push(pcapRecord(t, probeRequest({ sa: addresses[i % o.devices], seq: i & 0xfff, ies: ssid, channel: 6, signalDbm: -50, tsfUs: i * 1000 })));
  }
  writeFileSync(path, Buffer.concat(parts));
  return { path, addresses, frames: n, firstMs: o.startMs, lastMs: last };
}

/** A BLE capture (LE LL with pseudo-header, link type 256) of ADV_IND from known addresses. */
export function bleCapture(path: string, o: { devices: number; startMs: number; durationMs: number; framesPerS: number; salt?: number }): Generated {
  const addresses = Array.from({ length: o.devices }, (_, i) => address(i, o.salt ?? 2));
  const n = Math.max(1, Math.round((o.durationMs / 1000) * o.framesPerS));
  const parts: Buffer[] = [pcapHeader(LINKTYPE.BLUETOOTH_LE_LL_WITH_PHDR)];
  const advData = Buffer.from([0x02, 0x01, 0x06]);
  let last = o.startMs;
  for (let i = 0; i < n; i++) {
    const t = o.startMs + (i * o.durationMs) / n;
    last = t;
    const channel = ([37, 38, 39] as const)[i % 3];
    parts.push(pcapRecord(t, bleAdvertLL({ pduType: BLE_PDU.ADV_IND, adva: addresses[i % o.devices], random: true, advData, channel, signalDbm: -60 })));
  }
  writeFileSync(path, Buffer.concat(parts));
  return { path, addresses, frames: n, firstMs: o.startMs, lastMs: last };
}

/** The flags every spawned test gateway takes (zone `z`, id `g` unless given), then `extra`. */
export function gatewayArgs(o: { site: string; id?: string; mqttUrl: string; source: string; queueDir: string }, ...extra: string[]): string[] {
  return ['--site', o.site, '--zone', 'z', '--id', o.id ?? 'g', '--mqtt-url', o.mqttUrl, '--source', o.source, '--queue-dir', o.queueDir, ...extra];
}

/** `node scripts/presence.js gateway ...` as a child process; stderr (the JSON log) is recorded. */
export function spawnGateway(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  stdin: 'ignore' | 'pipe' = 'ignore',
): { proc: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [join(ROOT, 'scripts', 'presence.js'), 'gateway', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  proc.stdout!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, stderr: () => err, exited };
}

/** Number of aligned windows a capture from first to last (ms) spans. */
export function windowsSpanned(firstMs: number, lastMs: number, windowMs: number): number {
  return Math.floor(lastMs / windowMs) - Math.floor(firstMs / windowMs) + 1;
}

/** pino JSON lines of a gateway's stderr with the given message. */
export const logLines = (stderr: string, msg: string): Record<string, unknown>[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);

type Spawned = ReturnType<typeof spawnGateway>;

/**
 * A capture file through a gateway of `site` (zone z, id g) to its end: subscribed to the site
 * first, then its exit (0) and its offline status waited for. The run, the counts it published and
 * `end()`, which ends the subscription. `start` spawns it (default spawnGateway).
 */
export async function runCapture(
  o: { brokerUrl: string; site: string; path: string; queueDir: string },
  extra: string[],
  start: (args: string[]) => Spawned = (args) => spawnGateway(args),
): Promise<{ gw: Spawned; counts: CountsMessage[]; end: () => Promise<void> }> {
  const sub = await subscriber(o.brokerUrl, { filter: siteFilter(o.site) });
  const gw = start(gatewayArgs({ site: o.site, mqttUrl: o.brokerUrl, source: `pcap:${o.path}`, queueDir: o.queueDir }, ...extra));
  expect(await gw.exited, gw.stderr().slice(-2000)).toBe(0);
  await waitFor(() => sub.messages.some((m) => m.topic === statusTopic(o.site, 'g') && m.payload.includes('"offline"')), 30_000, 'offline status');
  return { gw, counts: counts(sub.messages, o.site), end: () => sub.client.endAsync() };
}
