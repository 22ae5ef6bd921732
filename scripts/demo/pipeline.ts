// One simulated period through real gateways: the simulator makes captures and ground truth for the
// scenario's gateways, and each capture is replayed through a real Gateway (WASM firmware, on-disk
// queue, MQTT QoS 1) into a broker. The demo runs it for today (and one week earlier); the
// end-to-end test runs it against Mosquitto and influxd.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CountsMessage } from '../../contract/index.ts';
import { loadConfig as loadGatewayConfig } from '../../gateway/config.ts';
import { Gateway } from '../../gateway/gateway.ts';
import { simulate, type SimulateResult } from '../../simulator/index.ts';
import { gatewayBurstAddresses } from '../../simulator/evaluate.ts';
import type { Scenario } from '../../simulator/scenario.ts';

export interface PeriodOptions {
  /** Built-in scenario name or a scenario file. */
  scenario: string;
  seed: number;
  /** Simulated time: start (ms since the epoch), length and window (s). */
  startMs: number;
  durationS: number;
  windowS: number;
  /** Multiplier of the scenario's crowd sizes and flow rates. */
  scale?: number;
  /** Folder for this period's captures and ground truth. */
  dir: string;
  /** Folder of the gateways' durable queues (shared between periods: seq goes on). */
  queueDir: string;
  /** Broker the gateways publish to. */
  mqttUrl: string;
  /** Replay speed of the captures: 'max' or a factor (1 = real time). */
  speed: number | 'max';
  log: Logger;
  /** Called for each window a gateway closes (after it is queued on disk). */
  onWindow?: (m: CountsMessage) => void;
  /** Called as the simulator goes, with the simulated seconds of the period it has written (at each
   *  window end and every 65,536 frames): the demo's progress lines. */
  onSimulatedTime?: (simulatedS: number) => void;
  /** Called once the period is simulated (captures and ground truth made), before the gateways start. */
  onSimulated?: (simulation: SimulateResult) => void;
  /** Called once the gateways are made, with a function that stops them all (each closes its open
   *  window as cut short and sends what it queued, up to `flushMs`): the demo's Ctrl-C. */
  onGateways?: (stop: (flushMs: number) => Promise<void>) => void;
}

export interface GatewayRun {
  gateway: string;
  zone: string;
  /** Its `estimator.burst_addresses` (demoBurstAddresses). */
  burstAddresses: number;
  windows: number;
  failedSources: number;
}

export interface PeriodResult {
  site: string;
  zones: string[];
  gateways: GatewayRun[];
  simulation: SimulateResult;
}

/**
 * Per gateway id, the `estimator.burst_addresses` its gateway runs with: the addresses of one phone's
 * scan burst its simulated Wi-Fi radio hears, measured from the simulator's model as
 * `presence simulate --evaluate` gives each gateway (simulator/evaluate.ts, gatewayBurstAddresses).
 * That is how gateway/README.md tells a field engineer to set it, for how the radio listens (the
 * built-in gateways hop over channels 1, 6 and 11: about 2.4), not the default of 7, which is for
 * three radios fixed on those channels.
 */
export function demoBurstAddresses(s: Scenario): Map<string, number> {
  const burst = gatewayBurstAddresses(s);
  return new Map(s.gateways.map((g, i) => [g.id, burst[i]]));
}

/**
 * The demo's line saying what its gateways run with, per gateway with Wi-Fi:
 * "gw-west 2.4 (one radio hopping over channels 1, 6 and 11, 200 ms each), ...".
 */
export function burstAddressesLine(s: Scenario): string {
  const burst = demoBurstAddresses(s);
  const radio = (w: NonNullable<Scenario['gateways'][number]['wifi']>) =>
    w.channels.length === 1
      ? `one radio fixed on channel ${w.channels[0]}`
      : `one radio hopping over channels ${w.channels.slice(0, -1).join(', ')} and ${w.channels.at(-1)}, ${w.dwellMs} ms each`;
  const each = s.gateways.filter((g) => g.wifi).map((g) => `${g.id} ${burst.get(g.id)} (${radio(g.wifi!)})`);
  return (
    "gateways: estimator.burst_addresses (--burst-addresses) set for how each one's radio listens, as gateway/README.md says: " +
    `the addresses of one phone's scan burst its simulated radio hears (as presence simulate --evaluate gives them): ${each.join(', ')}`
  );
}

/** Simulates one period (captures per gateway + ground truth in `dir`) and replays every gateway's
 *  capture through a real gateway (WASM firmware, on-disk queue, MQTT QoS 1) into the broker. */
export async function runPeriod(o: PeriodOptions): Promise<PeriodResult> {
  mkdirSync(o.dir, { recursive: true });
  const simulation = await simulate({
    scenario: o.scenario,
    seed: o.seed,
    durationS: o.durationS,
    windowS: o.windowS,
    start: o.startMs,
    outDir: o.dir,
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
    ...(o.onSimulatedTime
      ? {
          onTime: o.onSimulatedTime,
          onWindow: (ws: { end: string }[]) => {
            if (ws.length) o.onSimulatedTime!((Date.parse(ws[0].end) - o.startMs) / 1000);
          },
        }
      : {}),
  });
  o.onSimulated?.(simulation);
  const burst = demoBurstAddresses(simulation.scenario);
  const gateways = simulation.gateways.map((g) => {
    const burstAddresses = burst.get(g.id);
    if (burstAddresses === undefined) throw new Error(`runPeriod: gateway ${g.id} is not in the scenario`);
    const config = loadGatewayConfig(
      {
        site: simulation.site,
        zone: g.zone,
        id: g.id,
        window: `${simulation.windowS}s`,
        clock: 'capture',
        source: [`capture=pcap:${g.pcap}`],
        speed: String(o.speed),
        mqttUrl: o.mqttUrl,
        queueDir: join(o.queueDir, g.id),
        logLevel: 'info',
        burstAddresses: String(burstAddresses),
      },
      {},
    );
    const gw = new Gateway({ config, log: o.log.child({ component: 'gateway', site: simulation.site, zone: g.zone, gateway: g.id }) });
    if (o.onWindow) gw.on('window', o.onWindow);
    return { g, gw, burstAddresses: config.estimator.burst_addresses };
  });
  o.onGateways?.(async (flushMs) => {
    await Promise.all(gateways.map(({ gw }) => gw.stop(flushMs).catch(() => {})));
  });
  try {
    await Promise.all(gateways.map(({ gw }) => gw.start()));
    await Promise.all(gateways.map(({ gw }) => gw.done));
  } catch (e) {
    await Promise.all(gateways.map(({ gw }) => gw.stop().catch(() => {})));
    throw e;
  }
  return {
    site: simulation.site,
    zones: [...new Set(simulation.gateways.map((g) => g.zone))].sort(),
    gateways: gateways.map(({ g, gw, burstAddresses }) => ({
      gateway: g.id,
      zone: g.zone,
      burstAddresses,
      windows: gw.windowsClosed,
      failedSources: gw.sources.filter((s) => s.state === 'failed').length,
    })),
    simulation,
  };
}
