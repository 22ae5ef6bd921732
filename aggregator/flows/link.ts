// The corridor link: the aggregator's second MQTT connection, for corridor sketches and the
// ownership of groups (./ownership.ts). A clean session (clean=true, no session expiry): the
// broker queues nothing for it while it is away, so no sketch waits in a broker's session store
// or persistence file for an aggregator that is gone; a sketch missed while disconnected is lost,
// as it would be in the aggregator's memory anyway. Its last will clears the instance's retained
// alive message when the connection is lost; a clean stop clears it first.
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { QOS, SKETCH_FILTER } from '../../contract/index.ts';
import type { AggregatorConfig } from '../config.ts';
import { mqttOptions, StoppedError } from '../intake.ts';
import { redactUrl, redactUrlsIn } from '../../scripts/lib/secrets.ts';
import { brokerErrorFix } from '../../scripts/lib/mqtt-options.ts';
import { ALIVE_FILTER, aliveTopic, type Ownership } from './ownership.ts';

export class CorridorLink {
  private client: MqttClient | null = null;
  private abortStart?: () => void;

  constructor(
    private readonly config: AggregatorConfig['mqtt'],
    private readonly ownership: Ownership,
    private readonly log: Logger,
    private readonly onMessage: (topic: string, payload: Buffer, retained: boolean) => void,
    private readonly onSubscribed: () => void,
  ) {}

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects, subscribes to the sketches and the alive messages, announces this instance; resolves once done. */
  start(): Promise<void> {
    const base = mqttOptions(this.config, this.config.protocolVersion);
    const options = {
      ...base,
      clientId: `${this.config.clientId}-corridor`,
      clean: true,
      properties: this.config.protocolVersion === 5 ? { maximumPacketSize: base.properties?.maximumPacketSize } : undefined,
      will: { topic: aliveTopic(this.ownership.self), payload: Buffer.alloc(0), qos: QOS, retain: true },
    };
    const client = mqtt.connect(this.config.url, options);
    this.client = client;
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.retain));
    // As the intake (../intake.ts): a refused CONNACK on a reconnect (the broker restarted with a
    // changed password file) is tried again every second (mqtt.js would stop for good, and no flow be
    // computed again while the process runs), and each kind of error is logged once, not every second.
    let lastError = '';
    client.on('error', (err: Error & { code?: number | string }) => {
      if (typeof err.code === 'number') client.options.reconnectOnConnackError = true;
      if (err.message === lastError) return;
      lastError = err.message;
      this.log.error(
        {
          err: redactUrlsIn(err.message),
          code: err.code,
          broker: redactUrl(this.config.url),
          fix: brokerErrorFix(err.message, this.config.url, client.connected),
        },
        'corridor link: no connection to the MQTT broker; tried again every second (this line again only when the error changes)',
      );
    });
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      this.abortStart = () => {
        if (settled) return;
        settled = true;
        reject(new StoppedError('stopped before the MQTT broker answered'));
      };
      client.on('connect', () => {
        lastError = '';
        client
          .subscribeAsync({ [SKETCH_FILTER]: { qos: QOS }, [ALIVE_FILTER]: { qos: QOS } })
          .then(async (granted) => {
            for (const g of granted) if (g.qos > 2) throw new Error(`broker refused the subscription to ${g.topic} (code ${g.qos})`);
            await client.publishAsync(aliveTopic(this.ownership.self), this.ownership.payload(), { qos: QOS, retain: true });
            this.log.info({ instance: this.ownership.self, groups: this.ownership.groups }, 'corridor link subscribed');
            this.onSubscribed();
            if (!settled) {
              settled = true;
              resolve();
            }
          })
          .catch((err: Error) => {
            this.log.error({ err: err.message }, 'corridor link: subscribe failed');
            if (!settled) {
              settled = true;
              reject(err);
            }
          });
      });
    });
  }

  /** Clears this instance's alive message and disconnects. */
  async stop(): Promise<void> {
    this.abortStart?.();
    const c = this.client;
    if (!c) return;
    if (c.connected) await c.publishAsync(aliveTopic(this.ownership.self), Buffer.alloc(0), { qos: QOS, retain: true }).catch(() => {});
    await c.endAsync().catch(() => {});
  }
}
