// A TCP relay in front of a real broker, to cut connections on the way: `reset()` resets the client
// side of every connection open now (the client reads ECONNRESET, as from a firewall or NAT that
// drops a connection), while new connections go through as before.
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpRelay {
  port = 0;
  private readonly sockets: Socket[] = [];
  private server: Server | null = null;

  constructor(private readonly upstreamPort: number) {}

  async start(): Promise<this> {
    this.server = createServer((c) => {
      const up = connect(this.upstreamPort, '127.0.0.1');
      c.pipe(up).pipe(c);
      for (const s of [c, up]) s.on('error', () => {});
      this.sockets.push(c);
      c.on('close', () => up.destroy());
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  reset(): void {
    for (const s of this.sockets.splice(0)) s.resetAndDestroy();
  }

  close(): void {
    this.reset();
    this.server?.close();
  }
}
