// An MQTT broker inside the demo's own process, so `npm start` needs nothing installed: Aedes
// (MQTT 3.1.1) on a free loopback port. It reports every message a client publishes, and counts those
// the aggregator subscribes to as they come in.
import { createServer, type Server } from 'node:net';
import { parseTopic } from '../../contract/index.ts';

/** Aedes (MQTT 3.1.1) in this process on a free loopback port. */
export class EmbeddedBroker {
  private server: Server | null = null;
  private aedes: any = null;
  port = 0;
  /**
   * Messages clients published on counts and status topics: what the aggregator, subscribed to both,
   * is sent. Counted as the broker takes a message in, before it acknowledges it to the publisher
   * (Aedes sends the PUBACK of a QoS 1 message before it passes the message on to its subscribers),
   * so once a gateway is done its messages are all counted here, whether or not they have reached
   * the aggregator yet.
   */
  published = 0;

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(onPublish?: (topic: string, payload: Buffer) => void): Promise<this> {
    const { Aedes } = (await import('aedes')) as unknown as { Aedes: { createBroker(o?: object): Promise<any> } };
    this.aedes = await Aedes.createBroker({
      // Aedes's own rule (no client publishes to $SYS/), and the count of what the aggregator is sent.
      authorizePublish: (_client: unknown, packet: { topic: string }, callback: (err: Error | null) => void) => {
        if (packet.topic.startsWith('$SYS/')) return callback(new Error('$SYS/ topic is reserved'));
        const kind = parseTopic(packet.topic)?.kind;
        if (kind === 'counts' || kind === 'status') this.published++;
        callback(null);
      },
    });
    if (onPublish) this.aedes.on('publish', (packet: { topic: string; payload: Buffer }, client: unknown) => client && onPublish(packet.topic, packet.payload));
    this.server = createServer(this.aedes.handle);
    await new Promise<void>((res, rej) => {
      this.server!.once('error', rej);
      this.server!.listen(0, '127.0.0.1', () => res());
    });
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.aedes ? this.aedes.close(() => r()) : r()));
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server?.unref();
  }
}
