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
  /** Called once the period is simulated (captures and ground truth made), before the gateways start. */
  onSimulated?: (simulation: SimulateResult) => void;
}

export interface GatewayRun {
  gateway: string;
  zone: string;
  windows: number;
  failedSources: number;
}

export interface PeriodResult {
  site: string;
  zones: string[];
  gateways: GatewayRun[];
  simulation: SimulateResult;
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
  });
  o.onSimulated?.(simulation);
  const gateways = simulation.gateways.map((g) => {
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
      },
      {},
    );
    const gw = new Gateway({ config, log: o.log.child({ component: 'gateway', site: simulation.site, zone: g.zone, gateway: g.id }) });
    if (o.onWindow) gw.on('window', o.onWindow);
    return { g, gw };
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
    gateways: gateways.map(({ g, gw }) => ({
      gateway: g.id,
      zone: g.zone,
      windows: gw.windowsClosed,
      failedSources: gw.sources.filter((s) => s.state === 'failed').length,
    })),
    simulation,
  };
}
