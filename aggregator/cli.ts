// `presence aggregator`: MQTT -> validation -> InfluxDB (or a line-protocol file).
import { Command, Option } from 'commander';
import { Aggregator } from './aggregator.ts';
import { ConfigError, loadConfig, type AggregatorFlags } from './config.ts';

export function registerAggregator(program: Command): void {
  program
    .command('aggregator')
    .description('Subscribe to gateway counts and status, validate them, write them to InfluxDB (or a line-protocol file); acknowledge each message only once written.')
    .option('-c, --config <file>', 'YAML or JSON config file (keys at the top or under "aggregator:")')
    .option('--mqtt-url <url>', 'broker URL: mqtt://host:1883, mqtts://host:8883 (env MQTT_URL)')
    .option('--mqtt-username <name>', 'broker user name (env MQTT_USERNAME)')
    .option('--mqtt-password <password>', 'broker password (env MQTT_PASSWORD)')
    .option('--mqtt-ca <file>', 'PEM file of the CA that signed the broker certificate')
    .option('--mqtt-cert <file>', 'PEM client certificate (mutual TLS)')
    .option('--mqtt-key <file>', 'PEM key of the client certificate')
    .option('--mqtt-insecure', 'accept a broker certificate that does not verify')
    .addOption(new Option('--mqtt-version <n>', 'MQTT protocol version (5 falls back to 4 when the broker refuses it)').choices(['4', '5']))
    .option('--client-id <id>', 'fixed MQTT client id; the broker keeps the session under it')
    .option('--group <name>', 'shared-subscription group: instances with the same group split the counts (env MQTT_GROUP)')
    .option('--influx-url <url>', 'InfluxDB URL (env INFLUX_URL); without it, line protocol goes to --out')
    .addOption(new Option('--influx-api <api>', 'v2: /api/v2/write (InfluxDB 2.x, 1.8+, VictoriaMetrics); v1: /write (InfluxDB 1.x) (env INFLUX_API)').choices(['v2', 'v1']))
    .option('--influx-token <token>', 'v2 API token (env INFLUX_TOKEN)')
    .option('--influx-org <org>', 'v2 organisation (env INFLUX_ORG)')
    .option('--influx-bucket <bucket>', 'v2 bucket (env INFLUX_BUCKET)')
    .option('--influx-db <database>', '1.x database (env INFLUX_DB)')
    .option('--influx-rp <policy>', '1.x retention policy (env INFLUX_RP)')
    .option('--influx-username <name>', '1.x user (env INFLUX_USERNAME)')
    .option('--influx-password <password>', '1.x password (env INFLUX_PASSWORD)')
    .option('-o, --out <file>', 'line-protocol file when no InfluxDB URL is set (default ./presence.lp)')
    .option('--batch-size <n>', 'messages per write (default 5000)')
    .option('--flush-interval <duration>', 'longest wait before a partial batch is written, e.g. 200ms')
    .option('--max-buffer <n>', 'unacknowledged messages held at most before reading pauses (default 20000)')
    .option('--http-port <port>', 'port of /healthz and /metrics (default 9464; "off" to disable)')
    .option('--http-host <host>', 'address of /healthz and /metrics (default 0.0.0.0)')
    .option('--max-ahead <duration>', 'reject windows starting further ahead of the clock (default 5m)')
    .addOption(new Option('--log-level <level>', 'log level (env LOG_LEVEL)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (flags: AggregatorFlags) => {
      let config;
      try {
        config = loadConfig(flags);
      } catch (e) {
        if (e instanceof ConfigError) {
          process.stderr.write(`presence aggregator: ${e.message}\n`);
          process.exit(2);
        }
        throw e;
      }
      const aggregator = new Aggregator(config, { processMetrics: true });
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
        aggregator.log.fatal({ err: (e as Error).message }, 'cannot start');
        await aggregator.stop(0).catch(() => {});
        process.exit(1);
      }
    });
}
