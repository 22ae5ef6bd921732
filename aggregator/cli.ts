// `presence aggregator`: MQTT -> validation -> InfluxDB (or a line-protocol file).
import type { Command, Option } from 'commander';
import { Aggregator } from './aggregator.ts';
import { addOptions, renameOldFlags, type SettingSources } from '../scripts/lib/config-loader.ts';
import { CALIBRATION_FILE_HINT, loadCalibration, reloadOnSighup } from './calibration/reload.ts';
import { warnCalibratedZonesOutsideRegistry } from './calibration/hooks.ts';
import { PreflightError } from './preflight.ts';
import { HttpPortError } from '../scripts/lib/http.ts';
import { exitConfig, exitUsage, fileProblemsHint } from '../scripts/lib/usage.ts';
import { tlsFileProblemsIn } from '../scripts/lib/mqtt-options.ts';
import { AGGREGATOR_OPTIONS, ConfigError, loadConfigWithSources, type AggregatorFlags, type AggregatorConfig } from './config.ts';
import { keepMemoryOutOfCoreDumps, refuseMemoryDumpOption } from '../scripts/lib/coredump.ts';
import { redactUrlsIn } from '../scripts/lib/secrets.ts';
import { StoppedError } from './intake.ts';

export function registerAggregator(program: Command): void {
  const cmd = program
    .command('aggregator')
    .description(
      'Subscribe to gateway counts and status, validate them, write them to InfluxDB (or a line-protocol file); acknowledge each message only once written.',
    )
    .option('-c, --config <file>', 'YAML or JSON config file, keys at the top or under "aggregator:" (env PRESENCE_AGGREGATOR_CONFIG)');
  addOptions(cmd, AGGREGATOR_OPTIONS, { '--mqtt-version': (o: Option) => o.choices(['4', '5']) });
  cmd.action(async (given: AggregatorFlags) => {
    // Nor may a node option write them to a file (a heap snapshot, a report) or open a debugger on them.
    refuseMemoryDumpOption('aggregator');
    let config: AggregatorConfig;
    let sources: SettingSources;
    try {
      // Old flag names still work: each used prints one deprecation line naming the new one.
      ({ config, sources } = loadConfigWithSources(renameOldFlags(given as AggregatorFlags & Record<string, unknown>, AGGREGATOR_OPTIONS, true)));
      // The TLS files before anything starts (not a "cannot start" log line at the first connect).
      const tls = tlsFileProblemsIn(config.mqtt, given as AggregatorFlags, given.config || process.env.PRESENCE_AGGREGATOR_CONFIG || undefined);
      if (tls.length) throw new ConfigError(tls, 'flags', fileProblemsHint(tls));
    } catch (e) {
      if (e instanceof ConfigError) exitConfig('aggregator', e);
      throw e;
    }
    // A calibration file that does not parse stops the aggregator here: never a silent default. The
    // line names where the file was given: the flag, or the config file's key (it said --calibration
    // for both).
    const calibrationFile = config.calibration;
    let calibration = null;
    if (calibrationFile) {
      try {
        calibration = loadCalibration(calibrationFile);
      } catch (e) {
        const from = sources.of('calibration');
        const named = from.from === 'file' ? `${from.name} (${from.note})` : from.name;
        exitUsage('aggregator', new Error(`${named} ${(e as Error).message}`), CALIBRATION_FILE_HINT);
      }
    }
    // A corridor group's sketches and the broker and database credentials stay out of core dumps.
    const coreDumps = keepMemoryOutOfCoreDumps();
    const aggregator = new Aggregator(config, { processMetrics: true, calibration });
    if (coreDumps)
      aggregator.log.warn(
        { err: coreDumps },
        "cannot keep memory out of core dumps: a crash with core dumps enabled could write a corridor group's sketches and the credentials to disk",
      );
    if (calibration && calibrationFile) {
      aggregator.log.info({ file: calibrationFile, zones: calibration.zones(), radio: calibration.radio, field: calibration.field }, 'calibration loaded');
      warnCalibratedZonesOutsideRegistry(calibration, calibrationFile, aggregator.identity, aggregator.log);
      reloadOnSighup(aggregator, calibrationFile);
    }
    // SIGHUP also re-reads the config file's gateway registry (presence provision gateway adds to it).
    const configFile = given.config || process.env.PRESENCE_AGGREGATOR_CONFIG;
    if (configFile)
      process.on('SIGHUP', () => {
        try {
          const { config: reloaded, sources: reloadedSources } = loadConfigWithSources(
            renameOldFlags(given as AggregatorFlags & Record<string, unknown>, AGGREGATOR_OPTIONS, false),
          );
          const next = reloaded.gateways;
          aggregator.identity.reload(next);
          aggregator.log.info(
            { file: configFile, gateways_registered: aggregator.identity.registered, allow_unknown: next.allow_unknown },
            'gateway registry reloaded',
          );
          // The calibration file is read again at its path (reloadOnSighup); another path, or one given
          // or taken out in the config file, is not taken up by SIGHUP: said, not silently ignored.
          const named = reloaded.calibration ?? null;
          if (named !== (calibrationFile ?? null))
            aggregator.log.warn(
              { file: configFile, calibration: named, in_use: calibrationFile ?? null },
              `calibration: the config file now names ${named ?? 'none'}, the aggregator goes on with ${calibrationFile ?? 'none'}: another calibration path takes a restart (systemctl restart presence-aggregator); SIGHUP re-reads the file in use`,
            );
          // Corridor groups are set up at start (their subscriptions, sketch windows, the share-out
          // among aggregators): a group or member changed in the config file (a gateway taken out of
          // its group after a theft, a new group) is not taken up by SIGHUP: said, not silently ignored.
          if (JSON.stringify(reloaded.corridors) !== JSON.stringify(config.corridors))
            aggregator.log.warn(
              { file: configFile, corridors: reloaded.corridors.map((c) => c.group), in_use: config.corridors.map((c) => c.group) },
              'corridors: the config file now lists other corridor groups, members or settings than those in use, which stay: corridors take a restart (systemctl restart presence-aggregator); SIGHUP re-reads the gateway registry and the calibration only',
            );
          // Every other setting (the broker, the database, the file, batches, the page) is set up at
          // start too: one changed in the config file is said, by its key (never its value), not
          // silently left as it was.
          const others = sources.changedFrom(
            reloadedSources,
            AGGREGATOR_OPTIONS.map((o) => o.key).filter((k) => !k.startsWith('gateways.') && k !== 'calibration' && k !== 'corridors'),
          );
          if (others.length)
            aggregator.log.warn(
              { file: configFile, settings: others },
              `the config file now gives other values for ${others.join(', ')} than those in use, which stay: they take a restart (systemctl restart presence-aggregator); SIGHUP re-reads the gateway registry and the calibration only`,
            );
        } catch (e) {
          aggregator.log.error({ file: configFile, err: (e as Error).message }, 'gateway registry not reloaded; keeping the one in use');
        }
      });
    // After both reloads (listeners run in the order they were added): the calibration's zones
    // against the registry in use.
    if (calibrationFile)
      process.on('SIGHUP', () => {
        if (aggregator.calibration) warnCalibratedZonesOutsideRegistry(aggregator.calibration, calibrationFile, aggregator.identity, aggregator.log);
      });
    // With nothing to reload, SIGHUP (a `systemctl reload`, a log rotation) would end the process as
    // Node's default does, with nothing logged: it is said and ignored instead.
    if (!calibrationFile && !configFile)
      process.on('SIGHUP', () => aggregator.log.info('SIGHUP: nothing to reload (no --calibration and no --config file); going on'));
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      aggregator.log.info({ signal }, 'stopping');
      aggregator.stop().then(
        () => process.exit(0),
        (err) => {
          aggregator.log.error({ err: String(err) }, 'stop failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    try {
      await aggregator.start();
    } catch (e) {
      // A signal came before the broker answered: the stop under way ends the process.
      if (e instanceof StoppedError) return;
      if (e instanceof HttpPortError) {
        // A usage error: its line and hint only, no log line before them (scripts/lib/usage.ts).
        aggregator.log.level = 'silent';
        await aggregator.stop(1000).catch(() => {});
        exitUsage('aggregator', e.from(sources));
      }
      if (e instanceof PreflightError) {
        // A setup mistake found at start: the fix on stderr, exit 2 as for a config error.
        aggregator.log.fatal({ err: e.message }, 'cannot start');
        await aggregator.stop(1000).catch(() => {});
        process.stderr.write(`presence aggregator: ${e.message}\n`);
        process.exit(2);
      }
      aggregator.log.fatal({ err: redactUrlsIn((e as Error).message) }, 'cannot start');
      await aggregator.stop(0).catch(() => {});
      process.exit(1);
    }
  });
}
