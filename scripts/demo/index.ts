// `presence demo`: the command, and the demo's parts for tests and other scripts.
//   run.ts       runDemo: broker, aggregator, the two periods, live table, summary
//   pipeline.ts  runPeriod: simulator -> real gateways -> broker (also used by the end-to-end test)
//   broker.ts    EmbeddedBroker: Aedes on a free loopback port
//   table.ts     CountTable and the feed that fills it from the broker
//   calibration.ts  the people calibration, fitted on another seed before today's period
//   summary.ts   the error against the truth and where the results are
//   size.ts      what a run writes into --out, estimated before it for the check of the free space
// The page is the aggregator's own (aggregator/web.ts), on 127.0.0.1, fed the simulator's truth.
import { decimal } from '../lib/decimal.ts';
import { exitUsage, isUsageError, UsageError } from '../lib/usage.ts';
import { pathCredentialsProblem } from '../lib/secrets.ts';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEMO_HTTP_PORT, runDemo, type DemoOptions } from './run.ts';

export { receivedAndDrained, runDemo, type DemoOptions } from './run.ts';
export { runPeriod, type PeriodOptions, type PeriodResult, type GatewayRun } from './pipeline.ts';
export { EmbeddedBroker } from './broker.ts';
export { CountTable, countsFeed, DEVICES_UNCALIBRATED, tableTitle } from './table.ts';
export { countingError, peopleError, summary } from './summary.ts';
export { fitDemoCalibration, type DemoCalibration } from './calibration.ts';

function positive(text: string): number {
  const n = decimal(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number above 0');
  return n;
}
function whole(text: string): number {
  const n = decimal(text);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('must be a whole number');
  return n;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'Run the whole pipeline here, nothing installed: simulated crowd -> gateways (WASM) -> embedded MQTT broker -> aggregator -> line-protocol file (or InfluxDB with INFLUX_URL)',
    )
    .option('--scenario <name|file>', 'built-in scenario or scenario file', 'kingsday-square')
    .option('--minutes <n>', 'simulated minutes', positive, 30)
    .option('--window <duration>', 'window length', '60s')
    .option('--speed <factor|max>', 'replay speed of the captures (1 = real time)', '30')
    .option(
      '--scale <factor>',
      "multiplier of the scenario's crowd (kingsday-square at 0.1: 50 people at the start, about 320 after 30 minutes)",
      positive,
      0.1,
    )
    .option('--seed <n>', 'simulator seed', whole, 1)
    .option('-o, --out <dir>', 'folder for the results', 'presence-demo')
    .option('--no-last-week', 'skip simulating the same time one week earlier')
    .option(
      '--no-live',
      'print the table once at the end instead of updating it, with plain progress lines of the calibration run, the simulator and the replay before it (as when the output is not a terminal)',
    )
    .option(
      '--keep-pcaps',
      'keep the simulated captures (by default the ones this run wrote are deleted at the end, no other file: about 94 MB for the default run)',
    )
    .option(
      '--no-calibrate',
      'skip fitting a people calibration on another seed first: the table then shows devices (uncalibrated: the estimate, devices present averaged over the window, not the distinct addresses) only',
    )
    .addOption(
      new Option('--log-format <format>', 'lines of <out>/demo.log: json (one object a line) or pretty (readable); auto is json, the log is a file')
        .choices(['auto', 'pretty', 'json'])
        .default('auto'),
    )
    .option(
      '--calibration-radio <radio>',
      'radio whose estimate the people calibration maps: wifi, ble, or auto (the one that follows people better on the calibration run)',
      'auto',
    )
    .option(
      '--http-port <port|off>',
      `port of the page on 127.0.0.1 (live charts of what the aggregator writes, the simulator's truth, the gateways' states); default ${DEMO_HTTP_PORT}, or a free port when it is taken; 0: any free port; off: no page`,
    )
    .option('--hold', 'after the run, keep serving the page (it says the replay finished) until Ctrl-C (the default on a terminal)')
    .option('--no-hold', 'exit at the end of the run (the default when the output is not a terminal)')
    .action(async (o: DemoOptions) => {
      try {
        // --out "" (a variable that was not set) was the working folder: marked as the demo's and written into.
        if (o.out === '') throw new UsageError('--out is empty: give the folder for the results (default presence-demo)');
        const outProblem = pathCredentialsProblem('--out', o.out);
        if (outProblem) throw new UsageError(outProblem, 'give the folder for the results there');
        const r = await runDemo({ ...o, hold: o.hold ?? process.stdout.isTTY === true });
        process.exit(r.complete ? 0 : 1);
      } catch (e) {
        if (isUsageError(e)) exitUsage('demo', e);
        process.stderr.write(`presence demo: ${(e as Error).message}\n`);
        process.exit(1);
      }
    });
}
