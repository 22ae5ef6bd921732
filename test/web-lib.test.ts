// The shared web pieces (scripts/lib/web.ts) on a real HTTP server: the event stream hub drops
// clients that stop reading (their buffers stay bounded; by bytes, and by broadcasts in a row with
// bytes unsent) while every reading client gets every event; the access rule (loopback open to
// loopback Host names only, elsewhere basic auth or a bearer token, secrets from files);
// uPlot served from the installed package; and a page using it in real headless Chromium, under
// the page's Content-Security-Policy, with no console error. The leak scan finds a planted address
// in a page and nothing in the assets.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AggregatorWeb } from '../aggregator/web.ts';
import { RecentWrites } from '../aggregator/recent.ts';
import { listenHttp } from '../gateway/http.ts';
import { listenServer, type ListeningServer } from '../scripts/lib/http.ts';
import { ASSETS, assets, isLoopback, SseHub, sseEvent, staticPage, webAccess, WebAuthError, webHandler, type WebAccess } from '../scripts/lib/web.ts';
import { launchBrowser, needChromium, openPage, type Browser } from './support/browser.ts';
import { scan } from './support/leak.ts';
import { waitFor } from './gateway-support.ts';

const tmp = mkdtempSync(join(tmpdir(), 'presence-web-lib-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>web lib test</title>
<link rel="stylesheet" href="/assets/uPlot.min.css"><script src="/assets/uPlot.iife.min.js"></script></head>
<body><div id="chart"></div><p id="n">0</p>
<script>
const data = [[1, 2, 3], [0, 0, 0]];
const u = new uPlot({ width: 400, height: 200, series: [{}, { label: 'events', stroke: '#0072B2' }], axes: [{}, { label: 'events' }] }, data, document.getElementById('chart'));
const es = new EventSource('/events');
es.addEventListener('tick', (e) => {
  const v = JSON.parse(e.data);
  document.getElementById('n').textContent = String(v.n);
  data[1][2] = v.n;
  u.setData(data);
});
</script></body></html>
`;

function pageFile(html = PAGE): string {
  const f = join(tmp, `page-${Math.random().toString(36).slice(2)}.html`);
  writeFileSync(f, html);
  return f;
}

async function serve(access: WebAccess, hub: SseHub, html = PAGE): Promise<ListeningServer> {
  const web = webHandler({ access, pages: { '/': staticPage(pageFile(html)) }, streams: { '/events': { hub, initial: () => [['tick', { n: 0 }]] } } });
  const server: Server = createServer((req, res) => {
    if (web(req, res)) return;
    res.writeHead(404);
    res.end('not found\n');
  });
  return listenServer(server, '127.0.0.1', 0);
}

/** A client reading the stream and counting events. */
function reader(port: number): Promise<{ res: IncomingMessage; events: () => number; text: () => string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events' }, (res) => {
      let n = 0;
      let tail = ''; // shorter than the marker: a marker is never counted twice
      let all = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        const s = tail + d;
        n += s.split('event: tick\n').length - 1;
        tail = s.slice(-11);
        if (all.length < 200_000) all += d;
      });
      resolve({ res, events: () => n, text: () => all });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Waits for `cond`, checking after every turn of the event loop (data events run in between). */
async function soon(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A client that sends its request and never reads a byte. */
/**
 * Broadcasts events of 32 KiB, each once every reader has read the previous one, until dropped()
 * holds; fails when `limit` events were sent first. Returns how many were sent.
 */
async function broadcastUntilDrop(hub: SseHub, readers: Array<{ events: () => number }>, dropped: () => boolean, limit: number, what: string): Promise<number> {
  const payload = { n: 0, pad: 'x'.repeat(32 * 1024) };
  let sent = 0;
  while (!dropped()) {
    payload.n = ++sent;
    hub.broadcast('tick', payload);
    await soon(() => readers.every((r) => r.events() >= sent + 1), `event ${sent} read by every reader`);
    expect(sent, what).toBeLessThan(limit);
  }
  return sent;
}

function stalled(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      s.pause();
      resolve(s);
    });
    s.on('error', reject);
  });
}

describe('event stream hub', () => {
  it('drops the clients that stop reading, counts them, keeps every buffer bounded; readers get every event', async () => {
    const hub = new SseHub({ maxBufferBytes: 64 * 1024, heartbeatMs: 0, writeIntervalMs: 0 });
    const srv = await serve(webAccess('127.0.0.1'), hub);
    const readers = await Promise.all(Array.from({ length: 40 }, () => reader(srv.port)));
    const stuck = await Promise.all(Array.from({ length: 10 }, () => stalled(srv.port)));
    const drops: number[] = [];
    hub.on('drop', (_c, buffered) => drops.push(buffered));
    await waitFor(() => hub.size === 50, 10_000, '50 clients connected');
    // Events of 8 KiB, the next one once every reader has had the previous one (so no reader can
    // fall behind), until the kernel's buffers of the stalled clients are full and they are dropped.
    const payload = { n: 0, pad: 'x'.repeat(8192) };
    let sent = 0;
    while (drops.length < 10) {
      payload.n = ++sent;
      hub.broadcast('tick', payload);
      // the +1: the initial event each reader got on connecting
      await soon(() => readers.every((r) => r.events() >= sent + 1 || r.res.destroyed), `event ${sent} read by every reader`);
      expect(sent, 'stalled clients dropped before 64 MiB per client were sent').toBeLessThan(8192);
    }
    expect(hub.dropped).toBe(10);
    expect(hub.size).toBe(40);
    expect(hub.peakBuffered).toBeLessThanOrEqual(64 * 1024);
    for (const b of drops) expect(b).toBeLessThanOrEqual(64 * 1024);
    for (const r of readers) expect(r.events()).toBe(sent + 1);
    // The server closed the dropped clients' connections (the readers' remain).
    const connections = () => new Promise<number>((r, j) => srv.server.getConnections((e, n) => (e ? j(e) : r(n))));
    let open = -1;
    for (let i = 0; i < 400 && open !== 40; i++) {
      open = await connections();
      if (open !== 40) await new Promise((r) => setTimeout(r, 25));
    }
    expect(open).toBe(40);
    for (const s of stuck) s.destroy();
    hub.close();
    await srv.close();
  });

  it('drops a client that still has unsent bytes at stallEvents broadcasts in a row, long before maxBufferBytes', async () => {
    // maxBufferBytes far above what is sent: only the stall rule can drop the client. Events of
    // 32 KiB, each once every reader has had the previous one; the stalled client's kernel buffer
    // fills first (a few MB on loopback), then Node starts buffering for it.
    const hub = new SseHub({ maxBufferBytes: 1 << 30, stallEvents: 5, heartbeatMs: 0 });
    const srv = await serve(webAccess('127.0.0.1'), hub);
    const readers = await Promise.all(Array.from({ length: 3 }, () => reader(srv.port)));
    const stuck = await stalled(srv.port);
    await waitFor(() => hub.size === 4, 10_000, '4 clients connected');
    const drops: Array<{ reason: string; buffered: number; behindFor: number }> = [];
    hub.on('drop', (c, buffered, reason) => drops.push({ reason, buffered, behindFor: hub.events - c.behindSince! }));
    const sent = await broadcastUntilDrop(hub, readers, () => drops.length > 0, 2048, 'the stalled client dropped before 64 MiB were sent to it');
    expect(drops).toHaveLength(1);
    expect(drops[0]!.reason).toBe('stalled');
    // dropped at the 5th broadcast after the one that found it behind, holding at most the event
    // being sent when its kernel buffer filled and the 5 sent since
    expect(drops[0]!.behindFor).toBe(5);
    expect(drops[0]!.buffered).toBeLessThanOrEqual(6 * (32 * 1024 + 100));
    expect(hub.size).toBe(3);
    for (const r of readers) expect(r.events()).toBe(sent + 1);
    stuck.destroy();
    hub.close();
    await srv.close();
  });

  it('a stream is the events as they are, without chunked framing (one socket write per event and viewer), ended by closing', async () => {
    const hub = new SseHub({ heartbeatMs: 0 });
    const srv = await serve(webAccess('127.0.0.1'), hub);
    const raw: Buffer[] = [];
    const s = connect(srv.port, '127.0.0.1', () => s.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
    s.on('data', (d) => raw.push(d));
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    await waitFor(() => hub.size === 1, 10_000, 'the client connected');
    hub.broadcast('tick', { n: 1 });
    hub.close(); // ends the stream: the server closes the connection
    await closed;
    const text = Buffer.concat(raw).toString('utf8');
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    expect(head).not.toMatch(/transfer-encoding/i);
    expect(head).toMatch(/^connection: close$/im);
    expect(text.slice(head.length + 4)).toBe('retry: 2000\n\nevent: tick\ndata: {"n":0}\n\nevent: tick\ndata: {"n":1}\n\n');
    await srv.close();
  });

  it("a client that stops reading is dropped after about maxBufferBytes, its kernel send queue counted (Linux) at 3 reads in a row, not after the kernel's buffer filled", async () => {
    // Events of 32 KiB, each once the readers had the previous one; the kernel's send queue read at
    // every write. Without it the stalled client takes about 4 MB on loopback before Node holds
    // a byte for it.
    const hub = new SseHub({ maxBufferBytes: 512 * 1024, stallEvents: 0, writeIntervalMs: 0, kernelProbeMs: 0, heartbeatMs: 0 });
    const srv = await serve(webAccess('127.0.0.1'), hub);
    const readers = await Promise.all(Array.from({ length: 2 }, () => reader(srv.port)));
    const stuck = await stalled(srv.port);
    await waitFor(() => hub.size === 3, 10_000, '3 clients connected');
    const drops: Array<{ sent: number; reason: string }> = [];
    hub.on('drop', (c, _buffered, reason) => drops.push({ sent: c.sent, reason }));
    const sent = await broadcastUntilDrop(hub, readers, () => drops.length > 0, 256, 'dropped before 8 MiB were sent to it');
    expect(drops[0]!.reason).toBe('buffer');
    // 512 KiB in its send queue, and what its own receive buffer took (acknowledged, not counted)
    expect(drops[0]!.sent).toBeLessThan(1536 * 1024);
    for (const r of readers) expect(r.events()).toBe(sent + 1);
    stuck.destroy();
    hub.close();
    await srv.close();
  });

  it('events broadcast within writeIntervalMs of the last write go to each client together, in one write, in order; a client arriving meanwhile gets only those after it', async () => {
    const hub = new SseHub({ heartbeatMs: 0, writeIntervalMs: 5000 }); // long: the test's own pauses stay far below it
    const srv = await serve(webAccess('127.0.0.1'), hub);
    const a = await reader(srv.port);
    await waitFor(() => hub.size === 1, 10_000, 'a connected');
    hub.broadcast('tick', { n: 1 }); // after a quiet spell: at once
    expect(hub.writes).toBe(1);
    await soon(() => a.events() === 2, 'event 1 at a');
    for (let n = 2; n <= 4; n++) hub.broadcast('tick', { n }); // within 5 s of the last write: they wait
    expect(hub.writes).toBe(1);
    const b = await reader(srv.port); // its first picture at once, then only what comes after it
    await waitFor(() => hub.size === 2, 10_000, 'b connected');
    await soon(() => b.events() === 1, "b's initial event");
    hub.broadcast('tick', { n: 5 });
    await soon(() => a.events() === 6 && b.events() === 2, 'events 2-5 at a, 5 at b');
    expect(hub.writes).toBe(3); // one write to a (1), then one to a (2-5) and one to b (5)
    const ns = (t: string) => [...t.matchAll(/"n":(\d+)/g)].map((m) => Number(m[1]));
    expect(ns(a.text())).toEqual([0, 1, 2, 3, 4, 5]);
    expect(ns(b.text())).toEqual([0, 5]);
    a.res.destroy();
    b.res.destroy();
    hub.close();
    await srv.close();
  });

  it('refuses clients beyond maxClients with 503; an event is one data line of JSON', async () => {
    const hub = new SseHub({ maxClients: 2, heartbeatMs: 0 });
    const srv = await serve(webAccess('127.0.0.1'), hub);
    const a = await reader(srv.port);
    const b = await reader(srv.port);
    const third = await fetch(`http://127.0.0.1:${srv.port}/events`);
    expect(third.status).toBe(503);
    expect(hub.refused).toBe(1);
    expect(sseEvent('x', { s: 'a\nb' })).toBe('event: x\ndata: {"s":"a\\nb"}\n\n');
    expect(() => sseEvent('x\ny', 1)).toThrow(/line break/);
    a.res.destroy();
    b.res.destroy();
    hub.close();
    await srv.close();
  });
});

describe('access', () => {
  it('knows loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.168.1.2', 'gateway.local', '10.0.0.1', '::ffff:10.0.0.1']) expect(isLoopback(h), h).toBe(false);
  });

  it('rejects half-given or empty credentials, naming the key', () => {
    expect(() => webAccess('0.0.0.0', { user: 'u' })).toThrow(WebAuthError);
    expect(() => webAccess('0.0.0.0', { user: 'u' })).toThrow(/http\.password/);
    expect(() => webAccess('0.0.0.0', { password: 'p' })).toThrow(/http\.user/);
    expect(() => webAccess('0.0.0.0', { token: '' })).toThrow(/http\.token/);
    expect(() => webAccess('0.0.0.0', { token_file: join(tmp, 'missing') })).toThrow(/http\.token_file: cannot read/);
  });

  it('beyond loopback a password or token of fewer than 12 characters is refused, naming the key and not the value; on loopback it is taken', () => {
    const file = join(tmp, 'short-token');
    writeFileSync(file, 'tok\n');
    const fix =
      /: a page served on 0\.0\.0\.0 can be reached from the network, where a short secret is guessed; fix: use at least 12 \(openssl rand -base64 18 makes one\), or serve the page on 127\.0\.0\.1 \(http\.host\)$/;
    const refusal = (host: string, cfg: Parameters<typeof webAccess>[1]) => {
      try {
        webAccess(host, cfg);
      } catch (e) {
        expect(e).toBeInstanceOf(WebAuthError);
        return (e as Error).message;
      }
      return null;
    };
    expect(refusal('0.0.0.0', { token_file: file })).toMatch(new RegExp(`^http\\.token_file holds 3 characters${fix.source}`));
    expect(refusal('0.0.0.0', { token: 'elevenchars' })).toMatch(new RegExp(`^http\\.token holds 11 characters${fix.source}`));
    expect(refusal('0.0.0.0', { user: 'ops', password: 'pw' })).toMatch(new RegExp(`^http\\.password holds 2 characters${fix.source}`));
    // characters, not bytes: 11 letters of two bytes each are still too few
    expect(refusal('0.0.0.0', { token: 'ééééééééééé' })).toMatch(/^http\.token holds 11 characters/);
    for (const m of [refusal('0.0.0.0', { token_file: file }), refusal('0.0.0.0', { user: 'ops', password: 'pw' })]) expect(m).not.toMatch(/\btok\b|\bpw\b/);
    expect(refusal('::', { token: 'twelve-chars' })).toBeNull();
    expect(refusal('127.0.0.1', { token_file: file })).toBeNull();
    expect(refusal('localhost', { user: 'ops', password: 'pw' })).toBeNull();
  });

  it('open on loopback: only requests addressed to a loopback name (no DNS rebinding); with credentials any name', async () => {
    const hub = new SseHub({ heartbeatMs: 0 });
    const open = await serve(webAccess('127.0.0.1'), hub);
    const get = (port: number, path: string, host: string, auth?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, path, method: path.endsWith('events') ? 'HEAD' : 'GET', headers: { host, ...(auth ? { authorization: auth } : {}) } },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode!, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    for (const host of [`127.0.0.1:${open.port}`, `localhost:${open.port}`, `[::1]:${open.port}`, '127.0.0.1', 'LOCALHOST'])
      expect((await get(open.port, '/', host)).status, host).toBe(200);
    for (const host of [`attacker.example:${open.port}`, 'attacker.example', `192.168.1.5:${open.port}`, '127.0.0.1.attacker.example']) {
      for (const path of ['/', '/events', '/assets/uPlot.iife.min.js']) {
        const r = await get(open.port, path, host);
        expect(r.status, `${host} ${path}`).toBe(421);
        if (path === '/') expect(r.body).toMatch(/addressed to 127\.0\.0\.1, \[::1\] or localhost/);
      }
    }
    await open.close();
    // With a token the Host does not matter (a reverse proxy may pass its own name).
    const withToken = await serve(webAccess('127.0.0.1', { token: 'tok-1' }), hub);
    expect((await get(withToken.port, '/', 'gateway.example.org', 'Bearer tok-1')).status).toBe(200);
    expect((await get(withToken.port, '/', 'gateway.example.org')).status).toBe(401);
    await withToken.close();
    hub.close();
    // The aggregator's page and its JSON snapshot follow the same rule.
    const agg = new AggregatorWeb(new RecentWrites(), '127.0.0.1', {}, { heartbeatMs: 0 });
    const aggSrv = await listenServer(
      createServer((req, res) => {
        if (!agg.handle(req, res)) res.writeHead(404).end();
      }),
      '127.0.0.1',
      0,
    );
    for (const path of ['/', '/api/recent', '/api/events']) {
      expect((await get(aggSrv.port, path, 'attacker.example')).status, path).toBe(421);
      expect((await get(aggSrv.port, path, `127.0.0.1:${aggSrv.port}`)).status, path).toBe(200);
    }
    agg.close();
    await aggSrv.close();
  });

  it('beyond loopback: 403 naming the keys without credentials; basic auth or a bearer token when given', async () => {
    const hub = new SseHub({ heartbeatMs: 0 });
    // No credentials on 0.0.0.0 (the rule is decided by the host given; the test server listens on loopback).
    const none = await serve(webAccess('0.0.0.0'), hub);
    const r = await fetch(`http://127.0.0.1:${none.port}/`);
    expect(r.status).toBe(403);
    expect(await r.text()).toMatch(/http\.user and http\.password .* or http\.token/);
    expect((await fetch(`http://127.0.0.1:${none.port}/events`)).status).toBe(403);
    expect((await fetch(`http://127.0.0.1:${none.port}/assets/uPlot.iife.min.js`)).status).toBe(403);
    await none.close();

    const pw = join(tmp, 'pw');
    writeFileSync(pw, 's3cret passphrase\nignored second line\n');
    const tok = join(tmp, 'tok');
    writeFileSync(tok, 'tok-123456789\n');
    const both = await serve(webAccess('0.0.0.0', { user: 'ops', password_file: pw, token_file: tok }), hub);
    const url = `http://127.0.0.1:${both.port}/`;
    const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    const plain = await fetch(url);
    expect(plain.status).toBe(401);
    expect(plain.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect((await fetch(url, { headers: basic('ops', 's3cret passphrase') })).status).toBe(200);
    expect((await fetch(url, { headers: basic('ops', 'wrong') })).status).toBe(401);
    expect((await fetch(url, { headers: basic('other', 's3cret passphrase') })).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: 'Bearer tok-123456789' } })).status).toBe(200);
    expect((await fetch(url, { headers: { authorization: 'Bearer tok-123456780' } })).status).toBe(401);
    expect((await fetch(url, { headers: basic('anyone', 'tok-123456789') })).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${both.port}/assets/uPlot.min.css`, { headers: { authorization: 'Bearer tok-123456789' } })).status).toBe(200);
    expect((await fetch(url, { method: 'POST', headers: { authorization: 'Bearer tok-123456789' } })).status).toBe(405);
    await both.close();
    hub.close();
  });
});

describe("slow clients on the gateway's server", () => {
  it('one trickling its headers (408) or its body is closed by the server; an event stream stays open past both limits', async () => {
    const hub = new SseHub({ heartbeatMs: 0 });
    const web = webHandler({ access: webAccess('127.0.0.1'), pages: {}, assets: false, streams: { '/events': { hub } } });
    const srv = await listenHttp(0, '127.0.0.1', { '/healthz': async () => ({ code: 200, type: 'text/plain', body: 'ok' }) }, 'test', {
      handle: web,
      paths: ['/events'],
    });
    const stream = await reader(srv.port);
    const trickle = (first: string, more: string) =>
      new Promise<string>((resolve, reject) => {
        let got = '';
        const s = connect(srv.port, '127.0.0.1', () => s.write(first));
        const t = setInterval(() => s.writable && s.write(more), 500);
        s.on('data', (d) => (got += d));
        s.on('close', () => {
          clearInterval(t);
          resolve(got);
        });
        s.on('error', reject);
      });
    // headers that never end; a body (Content-Length 1000) a byte at a time: each closed by the server
    const [headers, body] = await Promise.all([
      trickle('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', 'X-A: b\r\n'),
      trickle('POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n', 'x'),
    ]);
    expect(headers).toMatch(/^HTTP\/1\.1 408/);
    // (a POST is answered 405 at once, the body unread; the server still closes the connection)
    expect(body).toMatch(/^HTTP\/1\.1 (405|408)/);
    // The stream, open since before both, is still served.
    hub.broadcast('tick', { n: 1 });
    await soon(() => stream.events() >= 1, 'the event on the stream');
    expect(stream.res.destroyed).toBe(false);
    // /healthz is read-only: GET and HEAD only
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await fetch(`http://127.0.0.1:${srv.port}/healthz`, { method });
      expect(r.status, method).toBe(405);
      expect(r.headers.get('allow')).toBe('GET, HEAD');
    }
    expect((await fetch(`http://127.0.0.1:${srv.port}/healthz`, { method: 'HEAD' })).status).toBe(200);
    hub.close();
    await srv.close();
  }, 60_000);
});

describe('assets and page', () => {
  it('serves uPlot from the installed package with its type; the page with a CSP naming its inline script', async () => {
    const hub = new SseHub({ heartbeatMs: 0 });
    const srv = await serve(webAccess('127.0.0.1'), hub);
    for (const path of Object.keys(ASSETS)) {
      const r = await fetch(`http://127.0.0.1:${srv.port}${path}`);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type')).toMatch(path.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      expect(Buffer.from(await r.arrayBuffer()).equals(assets().get(path)!.body)).toBe(true);
    }
    const page = await fetch(`http://127.0.0.1:${srv.port}/`);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/]+=*'/);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect((await fetch(`http://127.0.0.1:${srv.port}/nope`)).status).toBe(404);
    hub.close();
    await srv.close();
  });

  it('the leak scan finds a planted address in a page, and nothing in the assets', () => {
    const addr = Uint8Array.from([0x5c, 0x12, 0xab, 0x07, 0x3e, 0x91]);
    expect(scan('page', PAGE.replace('events', '5C:12:AB:07:3E:91'), [addr])).not.toEqual([]);
    expect(scan('page', PAGE, [addr])).toEqual([]);
    for (const [path, f] of assets()) expect(scan(path, f.body, [addr], { hashLike: false })).toEqual([]);
  });
});

const SUITE = 'web page in Chromium';
const hasChromium = needChromium(SUITE);

describe.skipIf(!hasChromium)(SUITE, () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('loads the page, its uPlot chart and its stream under the CSP, with no console error', async () => {
    const hub = new SseHub({ heartbeatMs: 0 });
    const srv = await serve(webAccess('127.0.0.1'), hub);
    const v = await openPage(browser, `http://127.0.0.1:${srv.port}/`);
    await v.page.waitForSelector('#chart canvas');
    await waitFor(() => hub.size === 1, 10_000, 'the page connected to /events');
    hub.broadcast('tick', { n: 42 });
    await v.page.waitForFunction("document.getElementById('n')?.textContent === '42'");
    expect(v.errors).toEqual([]);
    await v.page.close();
    hub.close();
    await srv.close();
  });

  it('a page whose inline script changed after it was read is blocked by the CSP (the check can fail)', async () => {
    const hub = new SseHub({ heartbeatMs: 0 });
    const access = webAccess('127.0.0.1');
    const file = pageFile();
    const page = staticPage(file);
    const tampered = { ...page, body: Buffer.from(PAGE.replace("label: 'events'", "label: 'changed'")) };
    const web = webHandler({ access, pages: { '/': tampered }, streams: { '/events': { hub } } });
    const srv = await listenServer(
      createServer((req, res) => {
        if (!web(req, res)) res.writeHead(404).end();
      }),
      '127.0.0.1',
      0,
    );
    const v = await openPage(browser, `http://127.0.0.1:${srv.port}/`);
    await waitFor(() => v.errors.some((e) => /Content Security Policy/i.test(e)), 10_000, 'a CSP error in the console');
    await v.page.close();
    hub.close();
    await srv.close();
  });

  it('basic auth in the browser: the page and its stream with the credentials', async () => {
    const hub = new SseHub({ heartbeatMs: 0 });
    const srv = await serve(webAccess('0.0.0.0', { user: 'ops', password: 'pw-of-12-chars' }), hub);
    const v = await openPage(browser, `http://127.0.0.1:${srv.port}/`, { auth: { username: 'ops', password: 'pw-of-12-chars' } });
    await waitFor(() => hub.size === 1, 10_000, 'the page connected to /events');
    hub.broadcast('tick', { n: 7 });
    await v.page.waitForFunction("document.getElementById('n')?.textContent === '7'");
    expect(v.errors).toEqual([]);
    await v.page.close();
    hub.close();
    await srv.close();
  });
});
