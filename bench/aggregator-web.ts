// The aggregator's page under load: the aggregator (in this process) writes N counts messages from
// Mosquitto into a real influxd, in three modes in the same run, alternating, three rounds each:
//   off      http.port null: no page (the aggregator bench's setting; the baseline)
//   page     the page on (the default), nobody watching
//   viewers  the page on with 50 viewers of its event stream in another process: 40 reading every
//            event, 10 that never read a byte
// The publisher sends the N messages while the aggregator runs (so the viewers are connected while
// they flow); reported is messages/s from the first publish to the last acknowledgement (median of
// the rounds), and each mode's ratio to `off`. The publisher is the same in every mode.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { Aggregator } from '../aggregator/aggregator.ts';
import { publishAll } from './aggregator.ts';
import { loadMessages } from '../simulator/load.ts';
import { Influxd } from '../test/support/influxd.ts';
import { Mosquitto } from '../test/support/mosquitto.ts';
import { hasBinary } from '../test/support/need.ts';

const SMOKE = !!process.env.BENCH_SMOKE;
const ROUNDS = SMOKE ? 1 : 3;
const GATEWAYS = SMOKE ? 20 : 200;
const WINDOWS = SMOKE ? 10 : 100; // x 200 gateways = 20,000 messages per round and mode
const READERS = 40;
const STALLED = 10;
/** Goal: with the page on and 50 viewers the aggregator keeps at least this share of its rate. */
const GOAL_RATIO = 0.8;

type Mode = 'off' | 'page' | 'viewers';

/** 40 readers and 10 stalled viewers of http://127.0.0.1:port/api/events in a child process. */
function viewers(port: number): Promise<ChildProcess> {
  const code = `
    const http = require('node:http'); const net = require('node:net');
    let open = 0; const done = () => { if (++open === ${READERS + STALLED}) process.stdout.write('ready\\n'); };
    for (let i = 0; i < ${READERS}; i++) http.get('http://127.0.0.1:${port}/api/events', (res) => { res.on('data', () => {}); done(); });
    for (let i = 0; i < ${STALLED}; i++) { const s = net.connect(${port}, '127.0.0.1', () => { s.write('GET /api/events HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n'); s.pause(); done(); }); s.on('error', () => {}); }
  `;
  const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    p.stdout!.on('data', (d) => String(d).includes('ready') && resolve(p));
    p.on('exit', (c) => reject(new Error(`viewers exited ${c}`)));
  });
}

async function once(url: string, influx: Influxd, mode: Mode, round: number, index: number): Promise<{ rate: number; dropped: number }> {
  const agg = new Aggregator(
    {
      mqtt: { url, clientId: `bench-web-${mode}-${round}`, receiveMaximum: 20_000 },
      influx: { url: influx.url, api: 'v1', database: 'presence' },
      batch: { size: 5000, flushInterval: '100ms', concurrency: 2, maxBuffer: 30_000 },
      http: { port: mode === 'off' ? null : 0 },
    },
    { logger: pino({ level: 'warn' }, pino.destination(2)) },
  );
  await agg.start();
  const v = mode === 'viewers' ? await viewers(agg.httpPort!) : null;
  const c = await mqtt.connectAsync(url, { clientId: `bench-web-pub-${mode}-${round}`, protocolVersion: 5 });
  const t0 = performance.now();
  // Each run writes windows of its own (a time range per run), so nothing is a duplicate.
  const start = Date.parse('2026-01-01T00:00:00Z') + index * WINDOWS * 1000;
  const { n } = await publishAll(
    c,
    loadMessages({ gateways: GATEWAYS, windows: WINDOWS, windowMs: 1000, site: 'bench', seed: 7 + index, start, seqStart: index * WINDOWS }),
  );
  while (agg.stats().acked < n) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - t0;
  const dropped = agg.web?.hub.dropped ?? 0;
  await c.endAsync();
  v?.kill();
  await agg.stop();
  return { rate: (n / ms) * 1000, dropped };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(): Promise<void> {
  if (!hasBinary('mosquitto') || !hasBinary('influxd')) {
    console.log('aggregator-web: SKIPPED (needs mosquitto and influxd: apt-get install -y mosquitto influxdb)');
    if (process.env.BENCH_SMOKE || process.env.CI === 'true') process.exitCode = 1;
    return;
  }
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  try {
    await Promise.all([broker.start(), influx.start()]);
    console.log(
      `aggregator-web: ${cpus().length} CPU cores shared by Mosquitto, influxd, the viewers and this process; load average ${loadavg()[0].toFixed(1)} at the start`,
    );
    const rates: Record<Mode, number[]> = { off: [], page: [], viewers: [] };
    let dropped = 0;
    let index = 0;
    for (let round = 0; round < ROUNDS; round++)
      for (const mode of ['off', 'page', 'viewers'] as const) {
        const r = await once(broker.url, influx, mode, round, index++);
        rates[mode].push(r.rate);
        dropped += r.dropped;
      }
    const off = median(rates.off);
    const fmt = (x: number) => Math.round(x).toLocaleString('en');
    console.log(
      `aggregator-web: ${GATEWAYS * WINDOWS} messages per run, published while the aggregator writes; msg/s from the first publish to the last PUBACK, median of ${ROUNDS}:`,
    );
    console.log(`aggregator-web:   page off (baseline)            ${fmt(off)} msg/s  (runs ${rates.off.map(fmt).join(', ')})`);
    for (const mode of ['page', 'viewers'] as const) {
      const m = median(rates[mode]);
      const label = mode === 'page' ? 'page on, no viewer          ' : `page on, ${READERS + STALLED} viewers (${STALLED} stalled)`;
      console.log(`aggregator-web:   ${label}  ${fmt(m)} msg/s  ratio ${(m / off).toFixed(2)}  (runs ${rates[mode].map(fmt).join(', ')})`);
    }
    console.log(
      `aggregator-web: stalled viewers dropped over the viewer runs: ${dropped} of ${STALLED * ROUNDS}; goal: ratio with viewers >= ${GOAL_RATIO}: ${median(rates.viewers) / off >= GOAL_RATIO ? 'met' : 'missed'}`,
    );
  } finally {
    await broker.dispose();
    await influx.dispose();
  }
}
