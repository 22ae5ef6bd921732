// An MQTT client that acknowledges a QoS 1 message (PUBACK) only once the caller says it is done with
// it, in the order the messages arrived, without stopping the flow of messages in between.
//
//   const intake = new DeferredAckClient(url, options, { maxUnacked: 30000 });
//   intake.onMessage((topic, payload, packet) => store(payload));   // a promise: PUBACK after it resolves
//   intake.on('connect', (connack, { protocolVersion }) => subscribe(intake.client));
//   intake.connect();
//
// Contract:
// - The handler runs once per PUBLISH, in arrival order, synchronously inside the client's packet
//   loop (do the work elsewhere; return a promise for it). It returns nothing (acknowledge now) or a
//   promise: the PUBACK is sent after it resolves and after every earlier message of the same connection
//   was acknowledged (MQTT 3.1.1 4.6 / MQTT 5 4.6: PUBACKs in PUBLISH order). Several messages may
//   share one promise (a batch).
// - Nothing is acknowledged before its handler's promise resolves, on any path.
// - A message received on a connection that has since closed gets no PUBACK: its packet id means
//   nothing on the new connection, and the broker (persistent session) delivers it again there.
// - A handler that throws, or whose promise rejects, leaves its message without PUBACK on this
//   connection (the broker keeps it and delivers it again when the session resumes); the error is
//   emitted as 'handlerError' and later messages are acknowledged as usual.
// - With `maxUnacked` messages unacknowledged, the client stops reading the socket (`paused`) until
//   acknowledgements bring the number below it again: memory stays bounded whatever the broker does.
//   (An MQTT 5 broker also stops at the receive maximum the client announced.) While paused, the
//   broker's answers (PINGRESP, SUBACK) wait unread behind the held PUBLISH, so the client keeps the
//   connection alive itself: a PINGREQ every half keepalive, and mqtt.js's keepalive timer restarted
//   with it. Left to mqtt.js, the connection was closed for a "Keepalive timeout" every 1.5
//   keepalives while writes failed (logged as the broker being unreachable; at start, with a session
//   backlog above max_buffer, the SUBACK never came and the process stopped). A broker that goes away
//   meanwhile shows as the socket's error or close.
// - MQTT 5 is tried first when asked for; a broker that refuses it (MQTT 3.1.1 only, e.g. Aedes) gets
//   MQTT 3.1.1 on the next attempt ('fallback' event).
//
// This is the only file that relies on mqtt.js behaviour beyond its documented API. Checked against
// mqtt@5.16.0 (pinned exactly in package.json; test/aggregator-ack.test.ts watches the wire):
// 1. `client.handleMessage(packet, callback)` is documented as overridable ("handle messages with
//    backpressure, one at a time; always call callback"). Not documented, from
//    build/lib/handlers/publish.js: for QoS 1 it runs after the 'message' event, and calling its
//    callback with a truthy error skips mqtt.js's own PUBACK (`if (err) return done(err)`), while
//    `done` (the packet loop's nextTickWork, which ignores its argument) reads the next packet. Not
//    calling the callback stops the loop in build/lib/client.js `connect()`: no further packet is
//    handled (PINGRESP included) and the socket's Writable backs up: that is how reading pauses.
//    Why not `customHandleAcks`: its done() always sends a PUBACK (an error reason code still
//    completes the delivery in MQTT 5), and it also runs inside the one-packet-at-a-time loop.
// 2. With no public way to send an acknowledgement later, the deferred PUBACKs are written as bytes
//    to `client.stream` (public: the current connection's stream, replaced at each reconnect) while
//    `client.connected`: a run of them in one write, 4 bytes each (0x40, remaining length 2, the
//    packet id; the same in MQTT 3.1.1 and 5, where reason code 0 without properties may be left
//    out, as mqtt-packet does too). Through mqtt.js (`_sendPacket`, private), each PUBACK was three
//    writes, a cork and a tick of its own: 2.5-4 % of the aggregator's CPU in a profile of
//    bench/aggregator.ts (28 Nov), next to nothing as one write.
// 3. `client.options` is read again at each (re)connect: `protocolVersion` and `properties` for the
//    CONNECT packet and the packet parser (build/lib/client.js `connect()`, `_sendConnect()`), and
//    `reconnectOnConnackError` by the CONNACK handler right after it emits 'error' for a refused
//    CONNACK (build/lib/handlers/connack.js). Changing them from the 'error' listener is how the
//    fallback to MQTT 3.1.1 reconnects with the other version.
// 6. `client.sendPing()` and `client.reschedulePing(true)` (public methods, in client.d.ts) write a
//    PINGREQ and restart the KeepaliveManager's count (build/lib/KeepaliveManager.js: a PINGREQ at
//    its second half-keepalive tick, `onKeepaliveTimeout` at its third; only a received packet
//    restarts it on its own). Called every half keepalive while paused, they keep the manager from
//    timing out a connection whose PINGRESP sits unread.
// 4. A packet callback held from a connection that has closed is never called: the closed
//    connection's loop is gone (build/lib/client.js `_currentPump`), and the new one has its own.
// 5. The 'packetreceive' event (documented) fires for the CONNACK before any PUBLISH that follows it
//    is handled. 'connect' comes from the end of the outgoing store's replay (build/lib/client.js
//    `_onConnect`); in 5.16.0, with the empty store this client has, that is before the next packet
//    (the test sees a resumed session's PUBLISHes in the CONNACK's TCP read acknowledged), but
//    nothing promises it, so the connection count moves on at the CONNACK instead.
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';

/** Return nothing to acknowledge now, or a promise: acknowledged (in order) once it resolves. */
export type MessageHandler = (topic: string, payload: Buffer, packet: IPublishPacket) => void | PromiseLike<unknown>;

export interface DeferredAckOptions {
  /** Unacknowledged messages at which the client stops reading from the broker. */
  maxUnacked: number;
}

export interface DeferredAckEvents {
  /** Each successful connection; `generation` counts them from 1. */
  connect: [connack: IConnackPacket, info: { protocolVersion: 4 | 5; generation: number }];
  /** The broker refused MQTT 5; the next attempt uses MQTT 3.1.1. */
  fallback: [];
  close: [];
  /** Errors of the client other than the MQTT 5 refusal handled by the fallback. */
  error: [err: Error & { code?: number | string }];
  /** PUBACKs sent (a count, after each run of them). */
  acked: [count: number];
  /** A handler threw or its promise rejected; that message was not acknowledged. */
  handlerError: [err: unknown, topic: string];
}

/** Passed to mqtt.js's handleMessage callback: "don't send the PUBACK now, read on" (see 1. above). */
const DEFERRED = Object.freeze(new Error('acknowledged later'));

interface Entry {
  gen: number;
  id: number | undefined;
  qos: number;
  /** 0 pending, 1 acknowledge, 2 never acknowledge (handler failed). */
  state: 0 | 1 | 2;
}

/** Messages in a row whose handlers returned the same promise; `topics` for 'handlerError'. */
interface Group {
  promise: PromiseLike<unknown>;
  entries: Entry[];
  topics: string[];
}

export class DeferredAckClient extends EventEmitter<DeferredAckEvents> {
  private mqttClient: MqttClient | null = null;
  private handler: MessageHandler | null = null;
  private gen = 0;
  private version: 4 | 5;
  private readonly entries: Entry[] = [];
  private head = 0;
  private held: { gen: number; callback: (err?: Error) => void } | null = null;
  /** While paused: the timer that keeps the connection alive (see the header). */
  private pingTimer: NodeJS.Timeout | null = null;
  private drainQueued = false;
  /** The latest promise a handler returned, and the messages handed it since (see receive). */
  private group: Group | null = null;
  /** The packet ids of a run of PUBACKs being written (drain). */
  private readonly ackIds: number[] = [];

  constructor(
    private readonly url: string,
    private readonly options: IClientOptions,
    private readonly ackOptions: DeferredAckOptions,
  ) {
    super();
    this.version = options.protocolVersion === 5 ? 5 : 4;
  }

  /** Sets the handler; call before connect(). */
  onMessage(handler: MessageHandler): this {
    this.handler = handler;
    return this;
  }

  /** The mqtt.js client, for its public API (subscribeAsync, endAsync, ...). Null before connect(). */
  get client(): MqttClient | null {
    return this.mqttClient;
  }

  get connected(): boolean {
    return this.mqttClient?.connected ?? false;
  }

  /** The protocol version in use (4 after a fallback). */
  get protocolVersion(): 4 | 5 {
    return this.version;
  }

  /** Messages received and not yet acknowledged (or dropped unacknowledged). */
  get unacked(): number {
    return this.entries.length - this.head;
  }

  /** True while the client does not read from the broker because `maxUnacked` is reached. */
  get paused(): boolean {
    return this.held !== null;
  }

  /** Connects (and reconnects by itself after a lost connection). */
  connect(): MqttClient {
    if (!this.handler) throw new Error('DeferredAckClient: call onMessage() before connect()');
    if (this.mqttClient) throw new Error('DeferredAckClient: connect() was already called');
    const client = mqtt.connect(this.url, this.options);
    this.mqttClient = client;
    client.handleMessage = (packet, callback) => this.receive(packet as IPublishPacket, callback);
    client.on('packetreceive', (packet) => {
      // A new connection starts at its CONNACK: messages the broker sends right after it (a resumed
      // session's queue) belong to it, whenever mqtt.js gets round to emitting 'connect' (see 5.).
      if (packet.cmd !== 'connack') return;
      this.gen++;
      this.release(); // a held callback belongs to the closed connection's packet loop
    });
    client.on('connect', (connack) => {
      client.options.reconnectOnConnackError = false;
      this.emit('connect', connack, { protocolVersion: this.version, generation: this.gen });
    });
    client.on('close', () => this.emit('close'));
    client.on('error', (err: Error & { code?: number | string }) => {
      // MQTT 3.1.1-only brokers refuse MQTT 5: 1 = "unacceptable protocol version" (3.1.1), 132 =
      // "unsupported protocol version" (5).
      if (this.version === 5 && (err.code === 1 || err.code === 132)) {
        this.version = 4;
        client.options.protocolVersion = 4;
        delete client.options.properties;
        // Read by mqtt.js right after this 'error' for a refused CONNACK: reconnect instead of stopping.
        client.options.reconnectOnConnackError = true;
        this.emit('fallback');
        return;
      }
      this.emit('error', err);
    });
    return client;
  }

  /** Ends the connection (mqtt.js `endAsync`); unacknowledged messages stay with the broker. */
  async end(force = false): Promise<void> {
    this.release();
    await this.mqttClient?.endAsync(force);
  }

  /** Stops reading: `callback` is called once acknowledgements bring the count below maxUnacked. */
  private hold(callback: (err?: Error) => void): void {
    this.held = { gen: this.gen, callback };
    const client = this.mqttClient;
    const keepaliveMs = (client?.options.keepalive ?? 0) * 1000;
    if (!client || keepaliveMs <= 0 || this.pingTimer) return;
    this.pingTimer = setInterval(
      () => {
        if (!this.held || !client.connected) return;
        client.sendPing();
        client.reschedulePing(true);
      },
      Math.max(1, Math.floor(keepaliveMs / 2)),
    );
    this.pingTimer.unref(); // does not keep a stopped process alive
  }

  /** Forgets a held callback (reading resumes, or its connection is gone) and stops the pings. */
  private release(): { gen: number; callback: (err?: Error) => void } | null {
    const h = this.held;
    this.held = null;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    return h;
  }

  private receive(packet: IPublishPacket, callback: (err?: Error) => void): void {
    const entry: Entry = { gen: this.gen, id: packet.messageId, qos: packet.qos, state: 0 };
    this.entries.push(entry);
    let result: void | PromiseLike<unknown>;
    try {
      // mqtt-packet always parses the payload into a Buffer.
      result = this.handler!(packet.topic, packet.payload as Buffer, packet);
    } catch (err) {
      this.fail(entry, err, packet.topic);
      result = undefined;
    }
    if (result && typeof result.then === 'function') {
      // Messages handed the same promise one after another (a batch: thousands of them) share one
      // reaction to it instead of one each: per message, two closures and a promise fewer to keep
      // until the write, and one microtask fewer when it lands.
      let g = this.group;
      if (g === null || g.promise !== result) {
        g = { promise: result, entries: [], topics: [] };
        this.group = g;
        this.react(g);
      }
      g.entries.push(entry);
      g.topics.push(packet.topic);
    } else if (entry.state === 0) {
      entry.state = 1;
      this.drain();
    }
    if (this.unacked >= this.ackOptions.maxUnacked) this.hold(callback);
    else callback(DEFERRED);
  }

  /** Settles a group's messages once its promise does: those added until the reaction runs, also
   *  after the promise settled; a message handed the promise later starts a group of its own. */
  private react(g: Group): void {
    const done = () => {
      if (this.group === g) this.group = null;
    };
    g.promise.then(
      () => {
        done();
        for (const e of g.entries) this.settle(e, 1);
      },
      (err: unknown) => {
        done();
        for (let i = 0; i < g.entries.length; i++) this.fail(g.entries[i], err, g.topics[i]);
      },
    );
  }

  private fail(entry: Entry, err: unknown, topic: string): void {
    this.emit('handlerError', err, topic);
    this.settle(entry, 2);
  }

  /** Marks an entry; the PUBACKs go out once per burst of settled promises (one microtask later). */
  private settle(entry: Entry, state: 1 | 2): void {
    entry.state = state;
    if (!this.drainQueued) {
      this.drainQueued = true;
      queueMicrotask(() => {
        this.drainQueued = false;
        this.drain();
      });
    }
  }

  /** Sends PUBACKs for the leading run of settled messages, in arrival order. */
  private drain(): void {
    const client = this.mqttClient;
    const entries = this.entries;
    const ids = this.ackIds;
    while (this.head < entries.length && entries[this.head].state !== 0) {
      const e = entries[this.head++];
      if (e.state === 1 && e.qos > 0 && e.gen === this.gen && e.id !== undefined && client?.connected) ids.push(e.id);
    }
    const sent = ids.length;
    if (sent) {
      const bytes = Buffer.allocUnsafe(sent * 4);
      for (let i = 0; i < sent; i++) {
        bytes[i * 4] = 0x40; // PUBACK
        bytes[i * 4 + 1] = 2;
        bytes.writeUInt16BE(ids[i], i * 4 + 2);
      }
      ids.length = 0;
      client!.stream.write(bytes);
    }
    if (this.head > 4096 && this.head * 2 > entries.length) {
      entries.splice(0, this.head);
      this.head = 0;
    }
    if (sent) this.emit('acked', sent);
    if (this.held && this.unacked < this.ackOptions.maxUnacked) {
      const h = this.release()!;
      if (h.gen === this.gen) h.callback(DEFERRED);
    }
  }
}
