// Corridor flows: what a sketch costs on the wire and what the aggregator spends per pair of
// gateways and 5-min interval, with the group size that implies (pairs grow as n(n - 1) / 2).
//  - size: bytes of a sketch message per window for each allowed m, per gateway per day at 60-s windows;
//  - CPU: the aggregator's corridor intake (aggregator/flows/intake.ts) fed one group's sketches
//    (60-s windows, horizon 10 min, m = 8192, p = 0.05), as the CPU time per pair and interval, against
//    the same messages read and validated by an instance without the group (the baseline: what every
//    sketch costs before any flow is computed), measured in the same run; and what an instance that
//    stands by for the group (holds the sketches, keeps the lag histories, computes no flow) spends.
import { randomBytes } from 'node:crypto';
import { encode, sketchTopic, type SketchMessage } from '../contract/index.ts';
import { CorridorFlows } from '../aggregator/flows/intake.ts';

const smoke = !!process.env.BENCH_SMOKE;
const W = 60_000;

function messages(gateways: string[], windows: number, m: number, p: number, startMs: number): Array<{ topic: string; payload: Buffer }> {
  const out: Array<{ topic: string; payload: Buffer }> = [];
  const q = Math.round(p * 65536) / 65536;
  for (let w = 0; w < windows; w++)
    for (const g of gateways) {
      // a window's noisy bitmap: ~5 % of the bits set by devices, then randomised response
      const bits = randomBytes(m / 8);
      for (let i = 0; i < bits.length; i++) bits[i] &= randomBytes(1)[0] & randomBytes(1)[0] & randomBytes(1)[0] & 0x55;
      const s = startMs + w * W;
      const msg: SketchMessage = {
        v: 1,
        site: 'bench',
        gateway: g,
        group: 'bench-street',
        epoch: Math.floor(s / 3_600_000),
        epoch_s: 3600,
        window_start: new Date(s).toISOString(),
        window_end: new Date(s + W).toISOString(),
        m,
        p: q,
        bits: bits.toString('base64'),
      };
      out.push({ topic: sketchTopic('bench', g), payload: encode(msg) });
    }
  return out;
}

function cpuMs(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

export async function run(): Promise<void> {
  const start = Date.parse('2026-03-10T07:00:00Z');
  console.log('sketch size per window (one gateway):');
  for (const m of [1024, 2048, 4096, 8192, 32768]) {
    const [msg] = messages(['gw-0'], 1, m, 0.05, start);
    console.log(
      `  m ${String(m).padStart(5)}: bitmap ${m / 8} B, message ${msg.payload.length} B; per gateway per day at 60-s windows ${((msg.payload.length * 1440) / 1e6).toFixed(1)} MB`,
    );
  }

  const intervals = smoke ? 2 : 6;
  const horizon = 600_000;
  const windows = intervals * 5 + horizon / W + 2;
  const sizes = smoke ? [2, 4] : [2, 4, 8];
  let perPair = 0;
  // warm-up (JIT): one group of 2 before anything is measured
  {
    const warm = new CorridorFlows([{ group: 'bench-street', site: 'bench', members: ['gw-0', 'gw-1'], horizon }], { maxAheadMs: Number.POSITIVE_INFINITY });
    warm.own('bench-street', start);
    for (const x of messages(['gw-0', 'gw-1'], windows, 8192, 0.05, start)) warm.accept(x.topic, x.payload, 0);
  }
  for (const n of sizes) {
    const gateways = Array.from({ length: n }, (_, i) => `gw-${i}`);
    const msgs = messages(gateways, windows, 8192, 0.05, start);
    const corridor = { group: 'bench-street', site: 'bench', members: gateways, horizon };
    // baseline: read and validate only (an instance without the group: each sketch is read, validated and refused)
    const idle = new CorridorFlows([], { maxAheadMs: Number.POSITIVE_INFINITY });
    const base = cpuMs(() => {
      for (const x of msgs) idle.accept(x.topic, x.payload, 0);
    });
    // standby: the group owned elsewhere; this one holds its sketches and keeps the histories
    const standby = new CorridorFlows([corridor], { maxAheadMs: Number.POSITIVE_INFINITY });
    const held = cpuMs(() => {
      for (const x of msgs) standby.accept(x.topic, x.payload, 0);
    });
    const owner = new CorridorFlows([corridor], { maxAheadMs: Number.POSITIVE_INFINITY, seed: 1 });
    owner.own('bench-street', start);
    let lines = 0;
    const total = cpuMs(() => {
      for (const x of msgs) {
        const r = owner.accept(x.topic, x.payload, 0);
        if (r.ok) lines += r.lines.length;
      }
    });
    const pairs = (n * (n - 1)) / 2;
    const computed = owner.intervalsComputed;
    perPair = (total - base) / Math.max(1, computed) / pairs;
    console.log(
      `group of ${n} gateways (${pairs} pairs): ${computed} intervals, ${lines} flow points; CPU ${total.toFixed(0)} ms against ${base.toFixed(0)} ms to read and validate the same sketches (${(total / Math.max(base, 1e-3)).toFixed(1)}x); ${perPair.toFixed(1)} ms per pair and interval; standing by ${held.toFixed(0)} ms (${(held / Math.max(base, 1e-3)).toFixed(1)}x, ${((held - base) / Math.max(1, computed) / pairs).toFixed(1)} ms per pair and interval)`,
    );
  }
  // The limit: a 5-min interval of a group costs pairs x perPair; at 10 % of one core (30 s per 5 min)
  const budgetMs = 30_000;
  const maxPairs = budgetMs / perPair;
  const maxN = Math.floor((1 + Math.sqrt(1 + 8 * maxPairs)) / 2);
  console.log(
    `limit: at ${perPair.toFixed(1)} ms per pair and interval, 10 % of one core (30 s per 5 min) computes ${Math.floor(maxPairs)} pairs: a group of at most ${maxN} gateways per core-tenth (pairs grow as n(n - 1) / 2); split larger corridors into groups`,
  );
}
