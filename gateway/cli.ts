// `presence gateway` and `presence doctor`.
import type { Command, Option } from 'commander';
import { addOptions, renameOldFlags } from '../scripts/lib/config-loader.ts';
import { ConfigError, GATEWAY_OPTIONS, loadConfigWithSources, PAGE_CREDENTIALS_HINT, startFileError, type GatewayFlags } from './config.ts';
import { exitAfterOutput, exitConfig, exitUsage } from '../scripts/lib/usage.ts';
import { QueueFolderError, QueueLockedError } from './queue.ts';
import { HttpPortError } from '../scripts/lib/http.ts';
import { WebAuthError } from '../scripts/lib/web.ts';
import { corridorOf } from './corridor.ts';
import { keepMemoryOutOfCoreDumps, refuseMemoryDumpOption } from '../scripts/lib/coredump.ts';
import { redactUrlsIn } from '../scripts/lib/secrets.ts';
import { DURATION_HINT, durationMs, durationNote } from '../scripts/lib/duration.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The longest --frames-timeout of doctor (a wait past 24.8 days overflowed Node's timer: no wait at all). */
const FRAMES_TIMEOUT_MAX_MS = 3_600_000;

/** Options shared by `gateway` and `doctor` (doctor checks what the gateway would use); one per GATEWAY_OPTIONS entry. */
function addConfigOptions(cmd: Command): Command {
  cmd.option('-c, --config <file>', 'configuration file (YAML or JSON; env PRESENCE_GATEWAY_CONFIG); the environment and flags override it');
  addOptions(cmd, GATEWAY_OPTIONS, { '--source': (o: Option) => o.argParser(collect) });
  return cmd.option(
    '--speed <speed>',
    'file replay speed: 1 (real time, the default), 10, ... or max (the default for a FIFO or a device, read as its writer writes) (sources[].speed)',
  );
}

/** Old flag names still work: each used prints one deprecation line naming the new one. */
export function gatewayFlags<T extends GatewayFlags>(flags: T): T {
  return renameOldFlags(flags as T & Record<string, unknown>, GATEWAY_OPTIONS, true);
}

function configOrExit(flags: GatewayFlags) {
  try {
    const { config: cfg, sources } = loadConfigWithSources(flags);
    // Files named as sources, and the TLS files, are checked before anything starts (not a log line after the start).
    const missing = startFileError(cfg, flags);
    if (missing) throw missing;
    // The corridor's secret file too (read, checked, forgotten: the gateway reads it again at start).
    corridorOf(cfg)?.secret.fill(0);
    return { cfg, sources };
  } catch (e) {
    if (e instanceof ConfigError) exitConfig('gateway', e);
    throw e;
  }
}

export function registerGateway(program: Command): void {
  addConfigOptions(
    program.command('gateway').description('Count Wi-Fi probe requests and BLE advertisements per window and publish the counts over MQTT'),
  ).action(async (given: GatewayFlags) => {
    // before anything is read (the corridor secret with the configuration, then frames)
    refuseMemoryDumpOption('gateway');
    const { cfg, sources } = configOrExit(gatewayFlags(given));
    const coreDumps = keepMemoryOutOfCoreDumps();
    const { Gateway } = await import('./gateway.ts');
    const gw = new Gateway({ config: cfg });
    if (coreDumps) gw.log.warn({ err: coreDumps }, 'cannot keep memory out of core dumps: a crash with core dumps enabled could write frames to disk');
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        gw.log.warn({ signal: sig }, 'second signal: exiting now; unacknowledged windows stay queued');
        process.exit(1);
      }
      gw.log.info({ signal: sig }, 'stopping');
      void gw.stop().then(() => process.exit(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // A closed terminal or ssh session: stop as on SIGTERM (Node's default ended the process at
    // once, and the open window's counts with it). The gateway has nothing to reload.
    process.on('SIGHUP', onSignal);
    try {
      await gw.start();
    } catch (e) {
      // A usage error: its line and hint only, no log line before them (scripts/lib/usage.ts).
      // A taken port is named where it was set: the flag, or the config file and its key.
      if (e instanceof HttpPortError) exitUsage('gateway', e.from(sources));
      if (e instanceof QueueFolderError) exitUsage('gateway', e);
      if (e instanceof WebAuthError) exitUsage('gateway', e, PAGE_CREDENTIALS_HINT);
      if (e instanceof QueueLockedError) {
        gw.log.fatal({ err: redactUrlsIn(e.message) }, 'cannot start');
        process.exit(2);
      }
      gw.log.fatal({ err: redactUrlsIn((e as Error).message) }, 'cannot start');
      process.exit(1);
    }
    await gw.done;
    const failed = gw.sources.filter((s) => s.state === 'failed');
    process.exit(failed.length ? 1 : 0);
  });

  addConfigOptions(
    program
      .command('doctor')
      .description('Check this machine step by step for running a gateway (capture permission, monitor mode, frames, broker, clock) and say what to fix'),
  )
    .option(
      '--frames-timeout <duration>',
      'how long to wait for frames from each capture command (and a FIFO given as a file source), e.g. 5s, 30s; at most 1h',
      '5s',
    )
    .option('--json', 'print the results as JSON')
    .option(
      '--service-user <user>',
      "the user who runs the service: check that it exists and, run as root, that it can read the files the gateway reads at start (default: the unit's User=, when --config is the file the unit's ExecStart names)",
    )
    .action(async (given: GatewayFlags & { framesTimeout: string; json?: boolean; serviceUser?: string }) => {
      const flags = gatewayFlags(given);
      // A bad --frames-timeout is a usage error said before any check runs (it ended doctor with an
      // uncaught DurationError and its stack, after the checks before the frames had run).
      const timeoutMs = durationMs(flags.framesTimeout ?? '5s');
      if (Number.isNaN(timeoutMs))
        exitUsage('doctor', new Error(`--frames-timeout: ${DURATION_HINT} (got "${flags.framesTimeout}")${durationNote(flags.framesTimeout)}`));
      if (timeoutMs > FRAMES_TIMEOUT_MAX_MS)
        exitUsage(
          'doctor',
          new Error(`--frames-timeout: must be at most 1h, how long doctor waits for frames from each source (got "${flags.framesTimeout}")`),
        );
      // doctor reads frames from the gateway's sources (a live radio's addresses) as the gateway does
      refuseMemoryDumpOption('doctor');
      const coreDumps = keepMemoryOutOfCoreDumps();
      if (coreDumps) process.stderr.write(`presence doctor: cannot keep memory out of core dumps: ${coreDumps}\n`);
      const { runDoctor, printReport } = await import('./doctor.ts');
      const results = await runDoctor(flags);
      printReport(results, !!flags.json);
      await exitAfterOutput(results.some((r) => r.level === 'fail') ? 1 : 0);
    });
}
