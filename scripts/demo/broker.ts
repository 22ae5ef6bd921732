// An MQTT broker inside the demo's own process, so `npm start` needs nothing installed: Aedes
// (MQTT 3.1.1) on a free loopback port. It reports every message a client publishes.
import { createServer, type Server } from 'node:net';

/** Aedes (MQTT 3.1.1) in this process on a free loopback port. */
export class EmbeddedBroker {
  private server: Server | null = null;
  private aedes: any = null;
  port = 0;

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(onPublish?: (topic: string, payload: Buffer) => void): Promise<this> {
    const { Aedes } = (await import('aedes')) as unknown as { Aedes: { createBroker(o?: object): Promise<any> } };
    this.aedes = await Aedes.createBroker();
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
