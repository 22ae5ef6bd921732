// `presence gateway` and `presence doctor`.
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, type GatewayFlags } from './config.ts';
import { QueueLockedError } from './queue.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Options shared by `gateway` and `doctor` (doctor checks what the gateway would use). */
function addConfigOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'configuration file (YAML or JSON); flags override it')
    .option('--site <id>', 'site id (gateway.site)')
    .option('--zone <id>', 'zone id (gateway.zone)')
    .option('--id <id>', 'gateway id (gateway.id)')
    .option('--window <duration>', 'window length, e.g. 60s, 5m (gateway.window; default 60s)')
    .option('--rssi-min <dBm>', 'drop frames with a known signal below this (gateway.rssi_min_dbm)')
    .option('--ignore-fcs', 'count Wi-Fi frames whose FCS check fails (gateway.ignore_fcs)')
    .addOption(new Option('--clock <clock>', 'clock that closes windows (gateway.clock)').choices(['auto', 'wall', 'capture']))
    .option(
      '--source <spec>',
      'capture source, repeatable: pcap:FILE, pcap:- or stdin, cmd:"tcpdump -i wlan0mon -U -w -"; optional NAME= prefix, @wifi/@ble suffix',
      collect,
    )
    .option('--speed <speed>', 'file replay speed: 1 (real time), 10, ... or max')
    .option('--mqtt <url>', 'broker URL, mqtt://host:1883 or mqtts://host:8883 (mqtt.url)')
    .option('--mqtt-username <name>', 'broker user name (mqtt.username)')
    .option('--mqtt-password <password>', 'broker password (mqtt.password; prefer PRESENCE_MQTT_PASSWORD or --mqtt-password-file)')
    .option('--mqtt-password-file <file>', 'file holding the broker password (mqtt.password_file)')
    .option('--mqtt-ca <file>', 'CA certificate (PEM) that signed the broker certificate (mqtt.ca)')
    .option('--mqtt-cert <file>', 'client certificate (PEM) (mqtt.cert)')
    .option('--mqtt-key <file>', 'client key (PEM) (mqtt.key)')
    .option('--mqtt-insecure', 'do not check the broker certificate (mqtt.reject_unauthorized: false)')
    .option('--keepalive <duration>', 'MQTT keepalive; the broker sends the last will after 1.5x this (mqtt.keepalive; default 30s)')
    .option('--client-id <id>', 'MQTT client id (mqtt.client_id; default presence-gw-SITE-ID)')
    .option('--queue-dir <dir>', 'folder of the durable window queue (queue.dir)')
    .option('--queue-max <n>', 'most windows kept unacknowledged; the oldest is dropped past it (queue.max_windows)')
    .option('--status-interval <duration>', 'republish status at least this often (status.interval; default 60s)')
    .addOption(new Option('--log-level <level>', 'log level (log.level)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']));
}

function configOrExit(flags: GatewayFlags) {
  try {
    return loadConfig(flags);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`presence gateway: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

export function registerGateway(program: Command): void {
  addConfigOptions(
    program
      .command('gateway')
      .description('Count Wi-Fi probe requests and BLE advertisements per window and publish the counts over MQTT'),
  ).action(async (flags: GatewayFlags) => {
    const cfg = configOrExit(flags);
    const { Gateway } = await import('./gateway.ts');
    const gw = new Gateway({ config: cfg });
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
    try {
      await gw.start();
    } catch (e) {
      if (e instanceof QueueLockedError) {
        gw.log.fatal({ err: e.message }, 'cannot start');
        process.exit(2);
      }
      gw.log.fatal({ err: (e as Error).message }, 'cannot start');
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
    .option('--frames-timeout <duration>', 'how long to wait for frames from each capture command', '5s')
    .option('--json', 'print the results as JSON')
    .action(async (flags: GatewayFlags & { framesTimeout: string; json?: boolean }) => {
      const { runDoctor, printReport } = await import('./doctor.ts');
      const results = await runDoctor(flags);
      printReport(results, !!flags.json);
      process.exit(results.some((r) => r.level === 'fail') ? 1 : 0);
    });
}
