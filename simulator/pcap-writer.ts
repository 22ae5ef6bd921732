// Capture file encoders and buffered sinks: classic pcap (one link type per file, microsecond
// timestamps) and pcapng (one Section Header Block, one Interface Description Block per radio,
// Enhanced Packet Blocks). Writes are streamed through a fixed buffer; nothing holds a capture in memory.
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { isDiskFull } from '../scripts/lib/atomic-file.ts';

export type CaptureFormat = 'pcap' | 'pcapng';

export const SNAPLEN = 65535;

/** Classic pcap global header (magic a1b2c3d4, version 2.4, microsecond timestamps). */
export function pcapHeader(linkType: number, snaplen = SNAPLEN): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(0xa1b2c3d4, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  b.writeInt32LE(0, 8); // thiszone
  b.writeUInt32LE(0, 12); // sigfigs
  b.writeUInt32LE(snaplen, 16);
  b.writeUInt32LE(linkType, 20);
  return b;
}

function splitUs(timestampMs: number): [number, number] {
  const us = Math.round(timestampMs * 1000);
  const sec = Math.floor(us / 1e6);
  return [sec, us - sec * 1e6];
}

/** Classic pcap record header + data. */
export function pcapRecord(timestampMs: number, data: Uint8Array): Buffer {
  const b = Buffer.alloc(16 + data.length);
  const [sec, usec] = splitUs(timestampMs);
  b.writeUInt32LE(sec, 0);
  b.writeUInt32LE(usec, 4);
  b.writeUInt32LE(data.length, 8);
  b.writeUInt32LE(data.length, 12);
  b.set(data, 16);
  return b;
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

function block(type: number, body: Buffer): Buffer {
  const len = 12 + body.length;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(type, 0);
  b.writeUInt32LE(len, 4);
  body.copy(b, 8);
  b.writeUInt32LE(len, len - 4);
  return b;
}

export interface CaptureInterface {
  linkType: number;
  /** Interface name (if_name), e.g. "wlan0mon". */
  name: string;
  /** Free text (if_description). */
  description?: string;
}

/** pcapng Section Header Block + one Interface Description Block per interface (microsecond resolution). */
export function pcapngHeader(interfaces: readonly CaptureInterface[], application = 'presence-counter simulator'): Buffer {
  const shbBody = Buffer.concat([
    Buffer.from([0x4d, 0x3c, 0x2b, 0x1a]), // byte-order magic, little-endian
    Buffer.from([1, 0, 0, 0]), // version 1.0
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // section length unknown
    option(4, Buffer.from(application)), // shb_userappl
    option(0, Buffer.alloc(0)),
  ]);
  const parts = [block(0x0a0d0d0a, shbBody)];
  for (const i of interfaces) {
    const head = Buffer.alloc(8);
    head.writeUInt16LE(i.linkType, 0);
    head.writeUInt32LE(SNAPLEN, 4);
    const opts = [option(2, Buffer.from(i.name))];
    if (i.description) opts.push(option(3, Buffer.from(i.description)));
    opts.push(option(9, Buffer.from([6]))); // if_tsresol: 10^-6
    opts.push(option(0, Buffer.alloc(0)));
    parts.push(block(1, Buffer.concat([head, ...opts])));
  }
  return Buffer.concat(parts);
}

/** pcapng Enhanced Packet Block (microsecond timestamps). */
export function pcapngPacket(iface: number, timestampMs: number, data: Uint8Array): Buffer {
  const padded = pad4(data.length);
  const len = 32 + padded;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(6, 0);
  b.writeUInt32LE(len, 4);
  b.writeUInt32LE(iface, 8);
  const us = Math.round(timestampMs * 1000);
  b.writeUInt32LE(Math.floor(us / 4294967296), 12);
  b.writeUInt32LE(us % 4294967296, 16);
  b.writeUInt32LE(data.length, 20);
  b.writeUInt32LE(data.length, 24);
  b.set(data, 28);
  b.writeUInt32LE(len, len - 4);
  return b;
}

/** Where encoded bytes go. */
export interface Sink {
  write(chunk: Uint8Array): void;
  /** Resolves when buffered bytes may be written again (backpressure of a stream sink). */
  drain?(): Promise<void>;
  close(): Promise<void>;
}

/** A file written synchronously through a 1 MiB buffer: fast, deterministic, bounded memory. */
export class FileSink implements Sink {
  private fd: number | null;
  private buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  bytes = 0;
  constructor(readonly path: string) {
    this.fd = openSync(path, 'w');
  }
  write(chunk: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.path}: written after close`);
    this.bytes += chunk.length;
    if (chunk.length > this.buf.length - this.used) this.flush();
    if (chunk.length > this.buf.length) {
      writeSync(this.fd, chunk);
      return;
    }
    this.buf.set(chunk, this.used);
    this.used += chunk.length;
  }
  flush(): void {
    if (this.fd === null || this.used === 0) return;
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.buf, off, this.used - off);
    this.used = 0;
  }
  async close(): Promise<void> {
    if (this.fd === null) return;
    this.flush();
    closeSync(this.fd);
    this.fd = null;
  }
}

/** The reader of a capture stream closed it (EPIPE): `presence simulate --live | head -c 1000`. */
export class ReaderClosedError extends Error {
  constructor(
    readonly stream: Writable,
    what: string,
  ) {
    super(`the reader closed ${what} (EPIPE)`);
    this.name = 'ReaderClosedError';
  }
}

/** A write to a capture stream failed (a full disk, an I/O error): `stream` says which, `code` why. */
export class CaptureStreamError extends Error {
  constructor(
    readonly stream: Writable,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'CaptureStreamError';
  }
}

/** A stream (stdout, a named pipe, a socket) honouring backpressure. */
export class StreamSink implements Sink {
  private blocked = false;
  private failure: Error | null = null;
  /**
   * `name`: what the stream is, for its errors (a gateway and its pipe, "stdout"); with several,
   * which one failed. `option`: the option that gave its path (--pipe, --out), named in what to do
   * when its disk is full.
   */
  constructor(
    private readonly stream: Writable,
    private readonly end = true,
    name?: string,
    option?: string,
  ) {
    // A reader that goes away (EPIPE) surfaces at the next write or drain, not as a crash.
    const what = name ? `the capture stream ${name}` : 'the capture stream';
    stream.on('error', (e: NodeJS.ErrnoException) => {
      const full = option && isDiskFull(e) ? `; fix: free some space on its device, or give ${option} a path on another one, then run it again` : '';
      this.failure ??= e.code === 'EPIPE' ? new ReaderClosedError(stream, what) : new CaptureStreamError(stream, e.code, `${what}: ${e.message}${full}`);
    });
  }
  write(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (!this.stream.write(chunk)) this.blocked = true;
  }
  async drain(): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.blocked) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        this.stream.off('drain', onDrain);
        this.stream.off('error', done);
        this.stream.off('close', onClose);
        if (err) reject(this.failure ?? err);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(new Error('capture stream closed by the reader'));
      this.stream.once('drain', onDrain);
      this.stream.once('error', done);
      this.stream.once('close', onClose);
    });
    this.blocked = false;
  }
  async close(): Promise<void> {
    if (!this.end || this.failure) return;
    await new Promise<void>((resolve) => this.stream.end(resolve));
  }
}

/** Bytes in memory (tests, small captures). */
export class MemorySink implements Sink {
  chunks: Buffer[] = [];
  write(chunk: Uint8Array): void {
    this.chunks.push(Buffer.from(chunk));
  }
  async close(): Promise<void> {}
  buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/**
 * Writes a gateway's capture: pcapng with one interface per radio into one sink, or classic pcap
 * with one sink per radio (classic pcap holds one link type per file).
 */
export class CaptureWriter {
  frames = 0;
  private constructor(
    readonly format: CaptureFormat,
    private readonly sinks: readonly Sink[],
  ) {}

  /** pcapng: all interfaces in one sink. */
  static pcapng(sink: Sink, interfaces: readonly CaptureInterface[]): CaptureWriter {
    sink.write(pcapngHeader(interfaces));
    return new CaptureWriter('pcapng', [sink]);
  }

  /** Classic pcap: sinks[i] receives interface i. */
  static pcap(sinks: readonly Sink[], interfaces: readonly CaptureInterface[]): CaptureWriter {
    if (sinks.length !== interfaces.length) throw new Error('one sink per interface is needed for classic pcap');
    interfaces.forEach((i, n) => {
      sinks[n].write(pcapHeader(i.linkType));
    });
    return new CaptureWriter('pcap', sinks);
  }

  write(iface: number, timestampMs: number, data: Uint8Array): void {
    this.frames++;
    if (this.format === 'pcapng') this.sinks[0].write(pcapngPacket(iface, timestampMs, data));
    else this.sinks[iface].write(pcapRecord(timestampMs, data));
  }

  async drain(): Promise<void> {
    for (const s of this.sinks) await s.drain?.();
  }

  async close(): Promise<void> {
    for (const s of this.sinks) await s.close();
  }
}
