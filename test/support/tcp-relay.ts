// A TCP relay in front of a real broker, to cut connections on the way: `reset()` resets the client
// side of every connection open now (the client reads ECONNRESET, as from a firewall or NAT that
// drops a connection), while new connections go through as before. `hold()` keeps what the broker
// sends back from the clients until `release()` hands it on, in order (a client that has not read
// its connection yet, as on a loaded machine), while what the clients send goes through at once.
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpRelay {
  port = 0;
  private readonly sockets: Socket[] = [];
  private server: Server | null = null;
  /** While held: what the broker sent, per client connection, not passed on yet (null: its end). */
  private held: Array<{ to: Socket; data: Buffer | null }> | null = null;

  constructor(private readonly upstreamPort: number) {}

  async start(): Promise<this> {
    this.server = createServer((c) => {
      const up = connect(this.upstreamPort, '127.0.0.1');
      c.pipe(up);
      const pass = (data: Buffer | null) => (data ? c.write(data) : c.end());
      up.on('data', (data: Buffer) => (this.held ? this.held.push({ to: c, data }) : pass(data)));
      up.on('end', () => (this.held ? this.held.push({ to: c, data: null }) : pass(null)));
      for (const s of [c, up]) s.on('error', () => {});
      this.sockets.push(c);
      c.on('close', () => up.destroy());
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  /** From now on what the broker sends waits in the relay (see release). */
  hold(): void {
    this.held ??= [];
  }

  /** Passes on what was held, in order, and lets what follows through at once. */
  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const { to, data } of held) if (!to.destroyed) data ? to.write(data) : to.end();
  }

  reset(): void {
    for (const s of this.sockets.splice(0)) s.resetAndDestroy();
  }

  close(): void {
    this.reset();
    this.server?.close();
  }
}
