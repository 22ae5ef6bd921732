// The deferred PUBACK, watched on the wire. The aggregator talks to a real Mosquitto through a
// transparent TCP relay that passes every byte on unchanged and parses both directions with
// mqtt-packet; its writes go to a real influxd through an HTTP gate the test opens and closes. The
// packets show, whatever mqtt.js version is installed (aggregator/mqtt-ack.ts relies on its
// internals):
// - no PUBACK for a message before the write holding it is confirmed;
// - PUBACKs in the order the PUBLISHes arrived, also when a later batch is written first;
// - one PUBACK per message, none from mqtt.js itself;
// - with batch.maxBuffer messages unacknowledged it reads no further, and reads on after the PUBACKs;
// - a message whose handler throws or whose promise rejects gets no PUBACK (the broker keeps it),
//   and the messages around it are acknowledged in order;
// - after a lost connection, nothing received on it is acknowledged on the next one (its packet ids
//   mean nothing there); the copies the broker delivers again are, once each;
// - a `presence aggregator` process killed (SIGKILL) while its writes are unconfirmed acknowledged
//   nothing; the broker delivers the messages again to the next process, which acknowledges them
//   on its connection, and each window is stored exactly once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { MqttClient } from 'mqtt';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Influxd } from './support/influxd.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { DeferredAckClient } from '../aggregator/mqtt-ack.ts';
import { countsItem, publishAll, publisher, until, windows } from './aggregator-helpers.ts';
import type { CountsMessage } from '../contract/index.ts';

const ok = need('mosquitto', 'mosquitto', 'aggregator-ack') && need('influxd', 'influxdb', 'aggregator-ack');
const repo = join(import.meta.dirname, '..');

/** One ordered record of what happened, shared by the relay and the gate. */
type Event =
  | { at: 'relay'; conn: number; dir: 'toClient' | 'toBroker'; packet: Packet }
  | { at: 'relay'; conn: number; dir: 'closed' }
  | { at: 'gate'; request: number; what: 'received' | 'forwarded' | 'answered'; status?: number };

class Timeline extends EventEmitter {
  readonly events: Event[] = [];
  add(e: Event): void {
    this.events.push(e);
    this.emit('change');
  }
  /** Resolves once `fn` returns a value other than undefined/false, re-checked after each event. */
  waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v: T | undefined | false;
        try {
          v = fn();
        } catch (err) {
          this.off('change', check);
          clearTimeout(timer);
          reject(err);
          return true;
        }
        if (v === undefined || v === false) return false;
        this.off('change', check);
        clearTimeout(timer);
        resolve(v);
        return true;
      };
      const timer = setTimeout(() => {
        this.off('change', check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      if (!check()) this.on('change', check);
    });
  }
  packets(conn: number, dir: 'toClient' | 'toBroker', cmd: Packet['cmd']): Array<{ index: number; packet: Packet }> {
    const out: Array<{ index: number; packet: Packet }> = [];
    this.events.forEach((e, index) => {
      if (e.at === 'relay' && e.conn === conn && e.dir === dir && e.packet.cmd === cmd) out.push({ index, packet: e.packet });
    });
    return out;
  }
  index(pred: (e: Event) => boolean): number {
    return this.events.findIndex(pred);
  }
}

/** Passes bytes between the aggregator and Mosquitto unchanged; parses copies of them. */
class Relay {
  private server: Server | null = null;
  private connections = 0;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly timeline: Timeline,
    private readonly brokerPort: number,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((client) => this.relay(client));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  private relay(client: Socket): void {
    const conn = ++this.connections;
    const broker = connect(this.brokerPort, '127.0.0.1');
    this.sockets.add(client).add(broker);
    let toBroker: ReturnType<typeof mqttPacket.parser> | null = null;
    let toClient: ReturnType<typeof mqttPacket.parser> | null = null;
    let head = Buffer.alloc(0);
    const record = (dir: 'toClient' | 'toBroker') => (packet: Packet) => this.timeline.add({ at: 'relay', conn, dir, packet });
    const parsers = (protocolVersion: number) => {
      toBroker = mqttPacket.parser({ protocolVersion });
      toClient = mqttPacket.parser({ protocolVersion });
      toBroker.on('packet', record('toBroker'));
      toClient.on('packet', record('toClient'));
      for (const p of [toBroker, toClient])
        p.on('error', (err) =>
          this.timeline.add({
            at: 'relay',
            conn,
            dir: 'toClient',
            packet: { cmd: 'disconnect', reasonCode: -1, properties: { reasonString: `parse error: ${err.message}` } } as unknown as Packet,
          }),
        );
    };
    client.on('data', (buf: Buffer) => {
      broker.write(buf);
      if (toBroker) return void toBroker.parse(buf);
      // The CONNECT's protocol level tells how to parse the rest: fixed header, remaining length
      // (1-4 bytes), protocol name ("MQTT", 2 + 4 bytes), level.
      head = Buffer.concat([head, buf]);
      let i = 1;
      while (i < head.length && head[i] & 0x80) i++;
      const level = i + 7 < head.length ? head[i + 7] : undefined;
      if (level === undefined) return;
      parsers(level);
      toBroker!.parse(head);
    });
    broker.on('data', (buf: Buffer) => {
      client.write(buf);
      toClient?.parse(buf);
    });
    let closed = false;
    const close = () => {
      client.destroy();
      broker.destroy();
      if (!closed) {
        closed = true;
        this.timeline.add({ at: 'relay', conn, dir: 'closed' });
      }
    };
    for (const s of [client, broker]) {
      s.on('close', close);
      s.on('error', close);
    }
  }

  /** Cuts every connection (both sides), as a network failure would. */
  drop(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  async stop(): Promise<void> {
    this.drop();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** An HTTP gate in front of influxd: holds each write until the test forwards it and answers. */
class WriteGate {
  private server: HttpServer | null = null;
  readonly requests: Array<{ body: string; forward(): Promise<number>; answer(): void }> = [];
  /** Forward and answer every request at once (after the test has done with holding). */
  pass = false;
  port = 0;

  constructor(
    private readonly timeline: Timeline,
    private readonly upstream: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createHttpServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (!req.url?.startsWith('/write')) {
      // The aggregator's start-up checks (/ping, /query): passed on at once, not held or counted.
      const r = await fetch(this.upstream + req.url, {
        method: req.method,
        headers: req.headers['content-type'] ? { 'content-type': String(req.headers['content-type']) } : {},
        body: req.method === 'GET' ? undefined : body,
      });
      const headers: Record<string, string> = {};
      r.headers.forEach((v, k) => {
        headers[k] = v;
      });
      delete headers['content-encoding'];
      delete headers['content-length'];
      res.writeHead(r.status, headers).end(Buffer.from(await r.arrayBuffer()));
      return;
    }
    const request = this.requests.length;
    let status = 0;
    const forward = async () => {
      const r = await fetch(this.upstream + req.url, { method: req.method, headers: { 'content-type': 'text/plain' }, body });
      status = r.status;
      await r.arrayBuffer();
      this.timeline.add({ at: 'gate', request, what: 'forwarded', status });
      return status;
    };
    const answer = () => {
      this.timeline.add({ at: 'gate', request, what: 'answered', status });
      res.writeHead(status).end();
    };
    this.requests.push({ body, forward, answer });
    this.timeline.add({ at: 'gate', request, what: 'received' });
    if (this.pass) {
      await forward();
      answer();
    }
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** What identifies a window in both a PUBLISH payload and a line of line protocol. */
const key = (m: Pick<CountsMessage, 'gateway' | 'start'>) => `gateway=${m.gateway},radio=wifi,|${Date.parse(m.start)}`;
const lineKeys = (body: string) =>
  body
    .split('\n')
    .filter((l) => l.startsWith('presence,') && l.includes('radio=wifi'))
    .map((l) => `gateway=${/gateway=([^,]+)/.exec(l)![1]},radio=wifi,|${l.slice(l.lastIndexOf(' ') + 1)}`);
const publishKey = (p: Packet) => key(JSON.parse((p as { payload: Buffer }).payload.toString('utf8')) as CountsMessage);
const messageId = (p: Packet) => (p as { messageId?: number }).messageId!;

describe.skipIf(!ok)('aggregator PUBACK on the wire (real Mosquitto, mqtt.js as installed)', () => {
  const broker = new Mosquitto();
  const influx = new Influxd('presence');
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-ack-'));
  const procs: ChildProcess[] = [];
  let pub: MqttClient;
  const wifi = (site: string) => influx.count('presence', 'devices', `"radio"='wifi' AND "site"='${site}'`);

  beforeAll(async () => {
    await Promise.all([broker.start(), influx.start()]);
    pub = await publisher(broker.url);
  });

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await pub?.endAsync().catch(() => {});
    await Promise.all([broker.dispose(), influx.dispose()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends no PUBACK before the write is confirmed, and PUBACKs in arrival order when a later batch lands first', async () => {
    const timeline = new Timeline();
    const relay = new Relay(timeline, broker.port);
    const gate = new WriteGate(timeline, influx.url);
    await Promise.all([relay.start(), gate.start()]);
    const agg = new Aggregator({
      mqtt: { url: relay.url, clientId: 'agg-ack-order' },
      influx: { url: gate.url, api: 'v1', database: 'presence', timeout: '5m' },
      // Batches are cut by size only (10 messages), two written at once.
      batch: { size: 10, flushInterval: '10m', concurrency: 2 },
      http: { port: null },
      logLevel: 'error',
    });
    try {
      await agg.start();
      const msgs = windows('site-ack', 2, 10); // 20 windows
      await publishAll(pub, msgs.slice(0, 10).map(countsItem), 1);
      await timeline.waitFor('the first write at the gate', () => gate.requests.length >= 1);
      await publishAll(pub, msgs.slice(10).map(countsItem), 1);
      await timeline.waitFor('the second write at the gate', () => gate.requests.length >= 2);

      const publishes = timeline.packets(1, 'toClient', 'publish');
      expect(publishes).toHaveLength(20);
      expect(publishes.every((p) => (p.packet as { qos?: number }).qos === 1)).toBe(true);
      // Both writes are held at the gate: nothing may be acknowledged yet.
      expect(timeline.packets(1, 'toBroker', 'puback')).toHaveLength(0);
      const batchOf = new Map<string, number>();
      gate.requests.forEach((r, i) => {
        for (const k of lineKeys(r.body)) batchOf.set(k, i);
      });
      expect(batchOf.size).toBe(20);
      expect(publishes.slice(0, 10).every((p) => batchOf.get(publishKey(p.packet)) === 0)).toBe(true);

      // The second batch is written first ...
      expect(await gate.requests[1].forward()).toBe(204);
      const secondWritten = new Promise((r) => agg.once('written', r));
      gate.requests[1].answer();
      await secondWritten;
      expect(await wifi('site-ack')).toBe(10);
      // ... then the first.
      expect(await gate.requests[0].forward()).toBe(204);
      gate.requests[0].answer();
      await timeline.waitFor('20 PUBACKs', () => timeline.packets(1, 'toBroker', 'puback').length >= 20);
      await agg.drain(30_000);

      const pubacks = timeline.packets(1, 'toBroker', 'puback');
      expect(pubacks).toHaveLength(20);
      // In the order the PUBLISHes came in, one each.
      expect(pubacks.map((p) => messageId(p.packet))).toEqual(publishes.map((p) => messageId(p.packet)));
      expect(pubacks.every((p) => ((p.packet as { reasonCode?: number }).reasonCode ?? 0) === 0)).toBe(true);
      // Each after the answer to its own write, and (order) after the answer to the first write.
      const answered = (request: number) => timeline.index((e) => e.at === 'gate' && e.request === request && e.what === 'answered');
      const idOf = new Map(publishes.map((p) => [messageId(p.packet), batchOf.get(publishKey(p.packet))!]));
      for (const p of pubacks) {
        expect(p.index).toBeGreaterThan(answered(idOf.get(messageId(p.packet))!));
        expect(p.index).toBeGreaterThan(answered(0));
      }
      expect(agg.stats()).toMatchObject({ received: 20, acked: 20, queueDepth: 0 });
      expect(await wifi('site-ack')).toBe(20);
    } finally {
      await agg.stop(2000);
      await Promise.all([relay.stop(), gate.stop()]);
    }
  });

  it('stops reading from the broker at batch.maxBuffer unacknowledged messages and reads on once they are acknowledged', async () => {
    const timeline = new Timeline();
    const relay = new Relay(timeline, broker.port);
    const gate = new WriteGate(timeline, influx.url);
    await Promise.all([relay.start(), gate.start()]);
    const agg = new Aggregator({
      mqtt: { url: relay.url, clientId: 'agg-ack-pause' },
      influx: { url: gate.url, api: 'v1', database: 'presence', timeout: '5m' },
      batch: { size: 5, flushInterval: '10m', concurrency: 2, maxBuffer: 5 },
      http: { port: null },
      logLevel: 'silent',
    });
    try {
      await agg.start();
      const msgs = windows('site-pause', 1, 20);
      await publishAll(pub, msgs.map(countsItem), 1);
      // The broker sent all 20 (its inflight limit is far above); the aggregator took 5, wrote them as
      // one batch (held at the gate) and stopped reading.
      await timeline.waitFor('20 PUBLISHes to the aggregator', () => timeline.packets(1, 'toClient', 'publish').length >= 20);
      await timeline.waitFor('the first write at the gate', () => gate.requests.length >= 1);
      // An aggregator that read on would take the next messages within moments; this pause only gives
      // it the chance to (it cannot make a correct one fail).
      await new Promise((r) => setTimeout(r, 300));
      expect(agg.stats().received).toBe(5);
      expect(gate.requests).toHaveLength(1);
      expect(timeline.packets(1, 'toBroker', 'puback')).toHaveLength(0);
      gate.pass = true;
      expect(await gate.requests[0].forward()).toBe(204);
      gate.requests[0].answer();
      await timeline.waitFor('20 PUBACKs', () => timeline.packets(1, 'toBroker', 'puback').length >= 20);
      const publishes = timeline.packets(1, 'toClient', 'publish');
      expect(timeline.packets(1, 'toBroker', 'puback').map((p) => messageId(p.packet))).toEqual(publishes.map((p) => messageId(p.packet)));
      expect(agg.stats()).toMatchObject({ received: 20, acked: 20, queueDepth: 0 });
      expect(gate.requests).toHaveLength(4); // batches of 5
      expect(await wifi('site-pause')).toBe(20);
    } finally {
      await agg.stop(2000);
      await Promise.all([relay.stop(), gate.stop()]);
    }
  });

  it('acknowledges nothing of a lost connection on the next one; the copies the broker delivers again are acknowledged once', async () => {
    const timeline = new Timeline();
    const relay = new Relay(timeline, broker.port);
    const gate = new WriteGate(timeline, influx.url);
    await Promise.all([relay.start(), gate.start()]);
    const agg = new Aggregator({
      mqtt: { url: relay.url, clientId: 'agg-ack-reconnect' },
      influx: { url: gate.url, api: 'v1', database: 'presence', timeout: '5m' },
      batch: { size: 10, flushInterval: '10m', concurrency: 2 },
      http: { port: null },
      logLevel: 'silent',
    });
    try {
      await agg.start();
      const msgs = windows('site-reconnect', 1, 11);
      await publishAll(pub, msgs.slice(0, 10).map(countsItem), 1);
      await timeline.waitFor('the first write at the gate', () => gate.requests.length >= 1);
      relay.drop();
      // mqtt.js reconnects; the broker delivers the 10 unacknowledged messages again: a second batch.
      await timeline.waitFor('the second write at the gate', () => gate.requests.length >= 2);
      const redelivered = timeline.packets(2, 'toClient', 'publish');
      expect(redelivered).toHaveLength(10);
      expect(redelivered.every((p) => (p.packet as { dup?: boolean }).dup === true)).toBe(true);
      // The write of the first connection's copies lands now: they must not be acknowledged here.
      expect(await gate.requests[0].forward()).toBe(204);
      const firstWritten = new Promise((r) => agg.once('written', r));
      gate.requests[0].answer();
      await firstWritten;
      expect(await gate.requests[1].forward()).toBe(204);
      gate.requests[1].answer();
      await timeline.waitFor('10 PUBACKs on the second connection', () => timeline.packets(2, 'toBroker', 'puback').length >= 10);
      // One more message through the same socket: any stray PUBACK was sent before its PUBACK.
      gate.pass = true;
      await publishAll(pub, [countsItem(msgs[10])], 1);
      const last = (await timeline.waitFor('one more message', () => timeline.packets(2, 'toClient', 'publish')[10])).packet;
      await until(
        'the aggregator to take it',
        () => agg.stats().received,
        (n) => n === 21,
      );
      expect(await agg.drain(30_000)).toBe(true); // writes the partial batch holding it
      await timeline.waitFor('its PUBACK', () => timeline.packets(2, 'toBroker', 'puback').some((p) => messageId(p.packet) === messageId(last)));
      const publishes = timeline.packets(2, 'toClient', 'publish');
      expect(publishes).toHaveLength(11);
      expect(timeline.packets(1, 'toBroker', 'puback')).toHaveLength(0);
      expect(timeline.packets(2, 'toBroker', 'puback').map((p) => messageId(p.packet))).toEqual(publishes.map((p) => messageId(p.packet)));
      expect(agg.stats()).toMatchObject({ received: 21, acked: 11 });
      expect(await wifi('site-reconnect')).toBe(11);
    } finally {
      await agg.stop(2000);
      await Promise.all([relay.stop(), gate.stop()]);
    }
  });

  it('a handler that throws or whose promise rejects leaves its message without PUBACK; the messages around it are acknowledged in order', async () => {
    const timeline = new Timeline();
    const relay = new Relay(timeline, broker.port);
    await relay.start();
    const client = new DeferredAckClient(
      relay.url,
      { clientId: 'agg-ack-fail', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } },
      { maxUnacked: 100 },
    );
    const failed: string[] = [];
    client.on('handlerError', (_err, topic) => failed.push(topic));
    client.onMessage((topic) => {
      if (topic.endsWith('/throws')) throw new Error('the handler threw');
      if (topic.endsWith('/rejects')) return Promise.reject(new Error('the write failed'));
      return new Promise<void>((r) => setTimeout(r, 20));
    });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => client.client!.subscribeAsync('ack-fail/#', { qos: 1 }).then(() => resolve(), reject));
        client.connect();
      });
      const topics = ['ack-fail/ok-1', 'ack-fail/rejects', 'ack-fail/ok-2', 'ack-fail/throws', 'ack-fail/ok-3'];
      for (const t of topics) await pub.publishAsync(t, 'x', { qos: 1 });
      await timeline.waitFor('5 PUBLISHes', () => timeline.packets(1, 'toClient', 'publish').length >= 5);
      await timeline.waitFor('3 PUBACKs', () => timeline.packets(1, 'toBroker', 'puback').length >= 3);
      await new Promise((r) => setTimeout(r, 300)); // time for a PUBACK that should not come
      const publishes = timeline.packets(1, 'toClient', 'publish');
      const idOf = new Map(publishes.map((p) => [(p.packet as { topic: string }).topic, messageId(p.packet)]));
      expect([...idOf.keys()]).toEqual(topics);
      const acked = timeline.packets(1, 'toBroker', 'puback').map((p) => messageId(p.packet));
      expect(acked).toEqual(['ack-fail/ok-1', 'ack-fail/ok-2', 'ack-fail/ok-3'].map((t) => idOf.get(t)));
      expect(failed.sort()).toEqual(['ack-fail/rejects', 'ack-fail/throws']);
      expect(client.unacked).toBe(0); // settled: acknowledged or left to the broker
    } finally {
      await client.end(true);
      await relay.stop();
    }
  });

  it('messages handed one promise are acknowledged in order once it resolves, one handed it after it resolved too; one rejected promise leaves each of its messages unacknowledged', async () => {
    const timeline = new Timeline();
    const relay = new Relay(timeline, broker.port);
    await relay.start();
    const client = new DeferredAckClient(
      relay.url,
      { clientId: 'agg-ack-shared', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } },
      { maxUnacked: 100 },
    );
    const failed: string[] = [];
    client.on('handlerError', (_err, topic) => failed.push(topic));
    let open!: () => void;
    const batch = new Promise<void>((r) => (open = r));
    const refused = Promise.reject(new Error('the write failed'));
    refused.catch(() => {});
    client.onMessage((topic) => (topic.includes('/refused-') ? refused : batch));
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => client.client!.subscribeAsync('ack-shared/#', { qos: 1 }).then(() => resolve(), reject));
        client.connect();
      });
      const first = ['ack-shared/a', 'ack-shared/b', 'ack-shared/c'];
      for (const t of first) await pub.publishAsync(t, 'x', { qos: 1 });
      await timeline.waitFor('3 PUBLISHes', () => timeline.packets(1, 'toClient', 'publish').length >= 3);
      await new Promise((r) => setTimeout(r, 300)); // time for a PUBACK that should not come
      expect(timeline.packets(1, 'toBroker', 'puback')).toEqual([]);
      open();
      await timeline.waitFor('3 PUBACKs', () => timeline.packets(1, 'toBroker', 'puback').length >= 3);
      // The same promise, resolved long since, handed to later messages; between them two messages
      // share a rejected one.
      const later = ['ack-shared/refused-1', 'ack-shared/refused-2', 'ack-shared/d', 'ack-shared/e'];
      for (const t of later) await pub.publishAsync(t, 'x', { qos: 1 });
      await timeline.waitFor('5 PUBACKs', () => timeline.packets(1, 'toBroker', 'puback').length >= 5);
      await new Promise((r) => setTimeout(r, 300));
      const publishes = timeline.packets(1, 'toClient', 'publish');
      const idOf = new Map(publishes.map((p) => [(p.packet as { topic: string }).topic, messageId(p.packet)]));
      expect([...idOf.keys()]).toEqual([...first, ...later]);
      const acked = timeline.packets(1, 'toBroker', 'puback').map((p) => messageId(p.packet));
      expect(acked).toEqual([...first, 'ack-shared/d', 'ack-shared/e'].map((t) => idOf.get(t)));
      expect(failed).toEqual(['ack-shared/refused-1', 'ack-shared/refused-2']);
      expect(client.unacked).toBe(0);
    } finally {
      await client.end(true);
      await relay.stop();
    }
  });

  it('a process killed before its writes are confirmed acknowledged nothing; the next one gets the messages again and stores each once', async () => {
    const timeline = new Timeline();
    const relay = new Relay(timeline, broker.port);
    const gate = new WriteGate(timeline, influx.url);
    await Promise.all([relay.start(), gate.start()]);
    const config = join(dir, 'aggregator.yaml');
    writeFileSync(
      config,
      [
        'aggregator:',
        '  mqtt:',
        `    url: ${relay.url}`,
        '    client_id: agg-ack-crash',
        '  influx:',
        `    url: ${gate.url}`,
        '    api: v1',
        '    database: presence',
        '    timeout: 5m',
        '  batch:',
        '    size: 10',
        '    flush_interval: 10m',
        '    concurrency: 2',
        '  http:',
        '    port: null',
        '  log:',
        '    level: info',
        '',
      ].join('\n'),
    );
    const startCli = () => {
      const p = spawn(process.execPath, [join(repo, 'scripts/presence.js'), 'aggregator', '--config', config], {
        cwd: repo,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      procs.push(p);
      let log = '';
      p.stderr!.on('data', (d) => (log += d));
      p.once('exit', () => timeline.emit('change'));
      return { p, log: () => log };
    };
    try {
      const first = startCli();
      await timeline.waitFor('the first process to subscribe', () => {
        if (first.p.exitCode !== null) throw new Error(`aggregator exited ${first.p.exitCode}: ${first.log()}`);
        return timeline.packets(1, 'toClient', 'suback').length > 0;
      });
      const msgs = windows('site-crash', 2, 10); // 20 windows, two batches of 10
      await publishAll(pub, msgs.map(countsItem), 1);
      await timeline.waitFor('both writes at the gate', () => gate.requests.length >= 2);
      // The first write lands in influxd but its answer never reaches the process; the second never
      // reaches influxd.
      expect(await gate.requests[0].forward()).toBe(204);
      expect(await wifi('site-crash')).toBe(10);
      first.p.kill('SIGKILL');
      await timeline.waitFor('the first connection to close', () => timeline.index((e) => e.at === 'relay' && e.conn === 1 && e.dir === 'closed') >= 0);
      const delivered = timeline.packets(1, 'toClient', 'publish');
      expect(delivered).toHaveLength(20);
      expect(timeline.packets(1, 'toBroker', 'puback')).toHaveLength(0);

      gate.pass = true;
      const second = startCli();
      await timeline.waitFor('20 PUBACKs on the second connection', () => {
        if (second.p.exitCode !== null) throw new Error(`aggregator exited ${second.p.exitCode}: ${second.log()}`);
        return timeline.packets(2, 'toBroker', 'puback').length >= 20;
      });
      const redelivered = timeline.packets(2, 'toClient', 'publish');
      expect(redelivered.map((p) => publishKey(p.packet)).sort()).toEqual(delivered.map((p) => publishKey(p.packet)).sort());
      expect(redelivered.every((p) => (p.packet as { dup?: boolean }).dup === true)).toBe(true);
      const pubacks = timeline.packets(2, 'toBroker', 'puback');
      expect(pubacks.map((p) => messageId(p.packet))).toEqual(redelivered.map((p) => messageId(p.packet)));
      // No PUBACK before a write on this connection was answered.
      const firstAnswer = timeline.index((e) => e.at === 'gate' && e.what === 'answered');
      expect(pubacks.every((p) => p.index > firstAnswer)).toBe(true);
      expect(await wifi('site-crash')).toBe(20);
      expect(await influx.count('presence', 'devices', `"radio"='ble' AND "site"='site-crash'`)).toBe(20);

      second.p.kill('SIGTERM');
      await new Promise((r) => (second.p.exitCode !== null ? r(null) : second.p.once('exit', r)));
      expect(second.p.exitCode).toBe(0);
    } finally {
      await Promise.all([relay.stop(), gate.stop()]);
    }
  });
});
