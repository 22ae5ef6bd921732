// The demo's table: counts per window and zone as they pass through the broker.
import { parseTopic, validateCounts, type CountsMessage } from '../../contract/index.ts';

/** Calibrated people for a counts message (null: its zone is not calibrated). */
export type PeopleOf = (m: CountsMessage) => number | null;

/**
 * What the table's device counts are: the `estimate` field (devices present, averaged over the
 * window), not the `devices` field (distinct addresses in the window), and not people.
 */
export const DEVICES_UNCALIBRATED = 'devices (uncalibrated: the estimate, devices present averaged over the window, not the distinct addresses)';

/** The table's title: its legend, with the people column when a calibration gives people (`peopleLabel`). */
export function tableTitle(peopleLabel: string | null): string {
  return peopleLabel !== null
    ? `counts per zone and window: people (${peopleLabel}) | ${DEVICES_UNCALIBRATED}, Wi-Fi / BLE; * = window cut short`
    : `counts per zone and window: ${DEVICES_UNCALIBRATED.replace('(uncalibrated: ', '(uncalibrated, not people: ')}, Wi-Fi / BLE; * = window cut short`;
}

/**
 * Counts per window and zone: the largest estimate among the zone's gateways, per radio; these are
 * devices (uncalibrated), not people. With `people` (a calibration), also the largest calibrated
 * people among the zone's gateways.
 */
export class CountTable {
  /** @param windowMs window length: a window cut short at the start of a capture goes in its slot. */
  constructor(
    private readonly windowMs: number,
    private readonly people?: PeopleOf,
  ) {}

  private readonly cells = new Map<number, Map<string, { wifi: number; ble: number; people: number | null; complete: boolean }>>();
  readonly zones = new Set<string>();
  messages = 0;

  add(m: CountsMessage): void {
    this.messages++;
    const t = Math.floor(Date.parse(m.start) / this.windowMs) * this.windowMs;
    let row = this.cells.get(t);
    if (!row) this.cells.set(t, (row = new Map()));
    this.zones.add(m.zone);
    const c = row.get(m.zone) ?? { wifi: 0, ble: 0, people: null, complete: true };
    c.wifi = Math.max(c.wifi, m.wifi.estimate);
    c.ble = Math.max(c.ble, m.ble.estimate);
    const p = this.people?.(m) ?? null;
    if (p !== null) c.people = Math.max(c.people ?? 0, p);
    c.complete &&= m.complete;
    row.set(m.zone, c);
  }

  get windows(): number {
    return this.cells.size;
  }

  /** Rows of the last `last` windows: [time, "wifi / ble" per zone, or "people | wifi / ble" with a calibration]. */
  rows(last = 12): string[][] {
    const zones = [...this.zones].sort();
    return [...this.cells.keys()]
      .sort((a, b) => a - b)
      .slice(-last)
      .map((t) => {
        const row = this.cells.get(t)!;
        return [
          // Minutes, unless the window is not a whole number of minutes (--window 30s): two rows
          // would then read the same time.
          new Date(t)
            .toISOString()
            .slice(0, this.windowMs % 60_000 === 0 ? 16 : 19)
            .replace('T', ' '),
          ...zones.map((z) => {
            const c = row.get(z);
            if (!c) return '';
            const people = this.people ? `${c.people === null ? '-' : Math.round(c.people)} | ` : '';
            return `${people}${c.wifi} / ${c.ble}${c.complete ? '' : ' *'}`;
          }),
        ];
      });
  }

  async render(title: string, last = 12): Promise<string> {
    const { default: Table } = (await import('cli-table3')) as unknown as { default: new (o: object) => { push(r: string[]): void; toString(): string } };
    const zones = [...this.zones].sort();
    const head = this.people ? 'people | devices\nWi-Fi / BLE' : 'devices\nWi-Fi / BLE';
    const table = new Table({ head: ['window start (UTC)', ...zones.map((z) => `${z}\n${head}`)], style: { head: [], border: [], compact: true } });
    for (const r of this.rows(last)) table.push(r);
    return `${title}\n${table.toString()}`;
  }
}

/**
 * Feeds the table from what the broker sees: valid counts messages of this run (from `sinceMs` on;
 * an earlier period's are left out), each gateway window once (a QoS 1 resend is the same window).
 * Returns the broker's publish handler and the messages kept.
 */
export function countsFeed(
  table: CountTable,
  sinceMs: number,
  onChange: () => void,
): { onPublish: (topic: string, payload: Buffer) => void; messages: Map<string, CountsMessage> } {
  const messages = new Map<string, CountsMessage>(); // by gateway and window
  const onPublish = (topic: string, payload: Buffer) => {
    if (parseTopic(topic)?.kind !== 'counts') return;
    let v: ReturnType<typeof validateCounts>;
    try {
      v = validateCounts(JSON.parse(payload.toString('utf8')));
    } catch {
      return; // not JSON: the aggregator rejects and counts it
    }
    if (!v.ok || Date.parse(v.value.start) < sinceMs) return; // invalid, or last week's
    const key = `${v.value.gateway} ${v.value.start}`;
    if (messages.has(key)) return;
    messages.set(key, v.value);
    table.add(v.value);
    onChange();
  };
  return { onPublish, messages };
}
