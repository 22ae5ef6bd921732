// Gateway liveness: which gateways the aggregator has heard from, and which have been silent for
// missingAfterWindows of their window lengths (learned from their counts messages; a gateway heard
// only through a window cut short, its first after a start, has no length yet and is not counted). A gateway going
// missing, and coming back, is written as a gateway_status point (missingLines in ./messages.ts).
// Silence is not counted while the aggregator itself cannot hear (disconnected, or not reading
// because writes fail): counting starts again from when it hears again.
import type { Logger } from 'pino';
import type { AggregatorMetrics } from './health.ts';
import { idForLog } from '../contract/index.ts';
import { missingLines } from './messages.ts';

interface GatewayState {
  site: string;
  gateway: string;
  /** The zone of its latest counts message: its missing points carry it, as its status points do. */
  zone: string;
  lastSeen: number;
  windowMs: number;
  missing: boolean;
}

export class GatewayLiveness {
  private readonly gateways = new Map<string, GatewayState>();
  private blindUntil = 0;

  /**
   * @param write   takes gateway_status lines (missing / back: windows 0, made at `at`) to be written
   * @param onMissing called when a gateway is recorded as missing
   */
  constructor(
    private readonly missingAfterWindows: number,
    private readonly log: Logger,
    private readonly metrics: AggregatorMetrics,
    private readonly write: (lines: string[], site: string, gateway: string, windows: number, at: number) => void,
    private readonly onMissing: (site: string, gateway: string) => void,
  ) {}

  /** A counts message of this gateway (in `zone`) arrived at `now` (ms). */
  seen(site: string, gateway: string, windowMs: number, complete: boolean, now: number, zone = ''): void {
    const key = `${site}/${gateway}`;
    let g = this.gateways.get(key);
    if (!g) {
      // A window cut short does not tell the length: the first one after a gateway starts spans
      // from the start to the next boundary, often a second or two of a minute's window, and taken
      // as the length it recorded every newly started gateway missing (and back) a few seconds later.
      // Its length is learned from its next window (complete, or cut short but longer).
      g = { site, gateway, zone, lastSeen: now, windowMs: complete ? windowMs : 0, missing: false };
      this.gateways.set(key, g);
      this.metrics.gatewaysKnown.set(this.gateways.size);
    } else if (complete || windowMs > g.windowMs) g.windowMs = windowMs;
    g.lastSeen = now;
    g.zone = zone;
    if (g.missing) {
      g.missing = false;
      this.metrics.gatewaysMissing.dec();
      this.log.info({ site: idForLog(site), gateway: idForLog(gateway) }, 'gateway is back');
      this.write(missingLines(site, gateway, 0, now, zone), site, gateway, 0, now);
    }
  }

  /** Records gateways silent for missingAfterWindows window lengths. `hearing`: false while the
   *  aggregator cannot receive (then silence proves nothing). */
  check(now: number, hearing: boolean): void {
    if (!hearing) {
      this.blindUntil = now;
      return;
    }
    for (const g of this.gateways.values()) {
      if (g.missing || g.windowMs <= 0) continue;
      const windows = Math.floor((now - Math.max(g.lastSeen, this.blindUntil)) / g.windowMs);
      if (windows >= this.missingAfterWindows) {
        g.missing = true;
        this.metrics.gatewaysMissing.inc();
        this.log.warn({ site: idForLog(g.site), gateway: idForLog(g.gateway), silent_s: Math.round((now - g.lastSeen) / 1000) }, 'gateway missing');
        this.write(missingLines(g.site, g.gateway, windows, now, g.zone), g.site, g.gateway, windows, now);
        this.onMissing(g.site, g.gateway);
      }
    }
  }

  /** Whether this gateway is recorded as missing now. */
  isMissing(site: string, gateway: string): boolean {
    return this.gateways.get(`${site}/${gateway}`)?.missing === true;
  }

  /** Gateways currently recorded as missing, as site/gateway. */
  missing(): string[] {
    return [...this.gateways.values()].filter((g) => g.missing).map((g) => `${g.site}/${g.gateway}`);
  }
}
