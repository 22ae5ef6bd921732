// Gateway liveness: which gateways the aggregator has heard from, and which have been silent for
// missingAfterWindows of their window lengths (learned from their complete windows; windows cut
// short, as at a stop and a start, tell no length: see seen()). A gateway going
// missing, and coming back, is written as a gateway_status point (missingLines in ./messages.ts).
// Silence is not counted while the aggregator itself cannot hear (disconnected, or not reading
// because writes fail): counting starts again from when it hears again. With `monotonic` (the
// aggregator's), silence is measured on that clock: a step of the wall clock (NTP, an operator)
// neither records every gateway missing at once nor hides a silent one; the points still carry
// wall-clock times.
import type { Logger } from 'pino';
import type { AggregatorMetrics } from './health.ts';
import { idForLog } from '../contract/index.ts';
import { missingLines } from './messages.ts';

interface GatewayState {
  site: string;
  gateway: string;
  /** The zone of its latest counts message: its missing points carry it, as its status points do. */
  zone: string;
  /** When it was last heard on the silence clock (the monotonic one, or the `now` given). */
  heardAt: number;
  windowMs: number;
  missing: boolean;
  /** Windows cut short (complete: false) since the last complete one, and the longest of them. */
  cutShort: number;
  cutShortMax: number;
}

/** Windows cut short in a row after which a gateway with no complete window takes the longest as its length. */
export const CUT_SHORT_RUN = 3;

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
    /** The clock silence is measured on (ms; performance.now in the aggregator); without it, the `now` given. */
    private readonly monotonic?: () => number,
  ) {}

  private silenceClock(now: number): number {
    return this.monotonic ? this.monotonic() : now;
  }

  /** A counts message of this gateway (in `zone`) arrived at `now` (ms). */
  seen(site: string, gateway: string, windowMs: number, complete: boolean, now: number, zone = ''): void {
    const key = `${site}/${gateway}`;
    let g = this.gateways.get(key);
    if (!g) {
      g = { site, gateway, zone, heardAt: this.silenceClock(now), windowMs: 0, missing: false, cutShort: 0, cutShortMax: 0 };
      this.gateways.set(key, g);
      this.metrics.gatewaysKnown.set(this.gateways.size);
    }
    // A window cut short does not tell the length: the last one before a gateway stops and the first
    // one after it starts span a second or two of a minute's window, and taken as the length they
    // recorded every newly started (or restarted, after the aggregator) gateway missing, and back, a
    // few seconds later. The length comes from a complete window; a known one grows with a longer
    // window cut short; only a gateway whose windows are all cut short (a capture command that keeps
    // restarting), CUT_SHORT_RUN of them in a row, gets the longest of them.
    if (complete) {
      g.windowMs = windowMs;
      g.cutShort = 0;
      g.cutShortMax = 0;
    } else {
      g.cutShort++;
      g.cutShortMax = Math.max(g.cutShortMax, windowMs);
      if (g.windowMs > 0) g.windowMs = Math.max(g.windowMs, windowMs);
      else if (g.cutShort >= CUT_SHORT_RUN) g.windowMs = g.cutShortMax;
    }
    g.heardAt = this.silenceClock(now);
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
    const t = this.silenceClock(now);
    if (!hearing) {
      this.blindUntil = t;
      return;
    }
    for (const g of this.gateways.values()) {
      if (g.missing || g.windowMs <= 0) continue;
      const windows = Math.floor((t - Math.max(g.heardAt, this.blindUntil)) / g.windowMs);
      if (windows >= this.missingAfterWindows) {
        g.missing = true;
        this.metrics.gatewaysMissing.inc();
        this.log.warn({ site: idForLog(g.site), gateway: idForLog(g.gateway), silent_s: Math.round((t - g.heardAt) / 1000) }, 'gateway missing');
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
