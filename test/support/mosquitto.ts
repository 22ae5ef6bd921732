// A real Mosquitto (Debian package `mosquitto`) on a free loopback port with a temp config.
// Persistence is on, so a graceful stop/start keeps queued QoS 1 messages of persistent sessions.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.ts';
import { stopGracefully } from './process.ts';

export interface MosquittoOptions {
  /** Extra lines for mosquitto.conf (listeners for TLS, password_file, ...). */
  extraConfig?: (dir: string) => string;
  /** Replace the default plain listener (used for TLS-only brokers). */
  listenerConfig?: (port: number, dir: string) => string;
}

export class Mosquitto {
  readonly dir = mkdtempSync(join(tmpdir(), 'presence-mosquitto-'));
  port = 0;
  private proc: ChildProcess | null = null;

  constructor(private readonly opts: MosquittoOptions = {}) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the broker; one already running is left as it is. A second start spawned a second
   * broker on the same port, which failed to bind and exited, and took the first one's place here:
   * stop() and dispose() then stopped the exited one and the first outlived the run
   * (test/gateway-deploy.test.ts started it in two tests).
   */
  async start(): Promise<this> {
    if (this.running) return this;
    if (!this.port) this.port = await freePort();
    const listener = this.opts.listenerConfig ? this.opts.listenerConfig(this.port, this.dir) : `listener ${this.port} 127.0.0.1\nallow_anonymous true\n`;
    const conf = [
      // Started as root, Mosquitto would switch to its own user, which cannot write the private
      // temp folder: persistence and the log would fail silently. Stay root (no effect otherwise).
      'user root',
      'per_listener_settings false',
      listener,
      'persistence true',
      `persistence_location ${this.dir}/`,
      'autosave_interval 1',
      // The default (1000) drops QoS 1 bursts for slow or offline persistent sessions.
      'max_queued_messages 1000000',
      'max_inflight_messages 100',
      'max_packet_size 1048576',
      `log_dest file ${join(this.dir, 'mosquitto.log')}`,
      'log_type error',
      'log_type warning',
      'log_type notice',
      this.opts.extraConfig?.(this.dir) ?? '',
    ].join('\n');
    writeFileSync(join(this.dir, 'mosquitto.conf'), conf + '\n');
    this.proc = spawn('mosquitto', ['-c', join(this.dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    this.proc.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<never>((_, reject) =>
      this.proc!.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${stderr}${this.log()}`))),
    );
    await Promise.race([waitForPort(this.port), exited]);
    exited.catch(() => {});
    return this;
  }

  /** True while the broker this started has not exited. */
  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Graceful stop (SIGTERM: persistence saved). */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    await stopGracefully(p);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  log(): string {
    const f = join(this.dir, 'mosquitto.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
