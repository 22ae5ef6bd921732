// Privacy: nothing the gateway publishes, logs or writes to disk contains a device address (in any
// common text or binary form) or anything hash-like. Sources: simulated frames whose addresses we
// chose, and real captures whose addresses TShark lists. Every byte published (subscribed to `#`),
// every log line (stderr at trace level) and every file in the queue folder is scanned, and every
// payload must consist of the contract's fields with numeric counts only. A control sample shows the
// scanner does catch a planted address and a planted hash.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from './support/mosquitto.ts';
import { capturesDir, need } from './support/need.ts';
import { bleCapture, spawnGateway, subscriber, waitFor, wifiCapture, type Received } from './gateway-support.ts';
import { freePort } from './support/ports.ts';
import { countsTopic, parseTopic, validateCounts, validateStatus, type StatusMessage } from '../contract/index.ts';

const SUITE = 'gateway leak';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('tshark', 'tshark', SUITE);
const captures = capturesDir(SUITE);

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Every text form of an address we look for (both byte orders: BLE puts addresses on air reversed). */
export function addressForms(addr: Uint8Array): { text: string[]; binary: Buffer[] } {
  const text: string[] = [];
  const binary: Buffer[] = [];
  for (const a of [Buffer.from(addr), Buffer.from(addr).reverse()]) {
    const h = a.toString('hex');
    const pairs = h.match(/../g)!;
    for (const s of [h, h.toUpperCase()]) {
      const p = s.match(/../g)!;
      text.push(p.join(':'), p.join('-'), s, `${s.slice(0, 4)}.${s.slice(4, 8)}.${s.slice(8)}`);
    }
    text.push(pairs.map((x) => x.replace(/^0/, '')).join(':')); // 1:2:a:... (no leading zeros)
    // base64 at each of the three alignments: the characters that depend on the address alone.
    for (let k = 0; k < 3; k++) {
      const enc = Buffer.concat([Buffer.alloc(k), a]).toString('base64');
      let from = Math.ceil((8 * k) / 6);
      let to = Math.floor((8 * (k + 6)) / 6);
      text.push(enc.slice(from, to));
      const url = enc.slice(from, to).replace(/\+/g, '-').replace(/\//g, '_');
      text.push(url);
    }
    binary.push(a);
  }
  return { text: [...new Set(text)], binary };
}

export interface Finding {
  where: string;
  what: string;
}

/** Addresses (any form) and hash-like runs in a blob. */
export function scan(where: string, blob: Buffer, addresses: Uint8Array[]): Finding[] {
  const out: Finding[] = [];
  const text = blob.toString('latin1');
  const lower = text.toLowerCase();
  for (const addr of addresses) {
    const { text: forms, binary } = addressForms(addr);
    for (const f of forms) {
      const found = /[a-z]/i.test(f) && f.length >= 8 && /[+/=_-]|[A-Z].*[a-z]|[a-z].*[A-Z]/.test(f) ? text.includes(f) : lower.includes(f.toLowerCase());
      if (found) out.push({ where, what: `address ${hex(addr)} as "${f}"` });
    }
    for (const b of binary) if (blob.includes(b)) out.push({ where, what: `address ${hex(addr)} as raw bytes` });
  }
  // Hash-like content: 8+ bytes as hex, or a long mixed base64 run.
  for (const m of text.matchAll(/[0-9a-fA-F]{16,}/g)) out.push({ where, what: `hex run "${m[0].slice(0, 24)}"` });
  for (const m of text.matchAll(/[A-Za-z0-9+]{16,}={0,2}/g))
    if (/\d/.test(m[0]) && /[A-Z]/.test(m[0]) && /[a-z]/.test(m[0])) out.push({ where, what: `base64-like run "${m[0].slice(0, 24)}"` });
  return out;
}

/** Problems with a payload's shape: it must be valid against the contract's closed schemas (only the
 *  contract's fields, counts numeric, strings within their patterns, last_error without an address
 *  form), and name only the gateway's own sources. The field lists are the contract's, not this file's. */
export function shapeProblems(topic: string, payload: Buffer, sourceNames: string[]): string[] {
  const p: string[] = [];
  let m: unknown;
  try {
    m = JSON.parse(payload.toString('utf8'));
  } catch {
    return [`${topic}: not JSON`];
  }
  const t = parseTopic(topic);
  if (!t) return [`${topic}: not a contract topic`];
  const v = t.kind === 'counts' ? validateCounts(m) : validateStatus(m);
  if (!v.ok) return [`${topic}: ${v.code}: ${v.reason}`];
  if (t.kind === 'status')
    for (const s of (v.value as StatusMessage).sources ?? []) if (!sourceNames.includes(s.name)) p.push(`${topic}: unknown source name ${s.name}`);
  return p;
}

/** Every device address TShark sees in a capture. */
function tsharkAddresses(file: string): Uint8Array[] {
  const fields = ['wlan.sa', 'wlan.ta', 'wlan.ra', 'wlan.da', 'wlan.bssid', 'btle.advertising_address', 'btle.scanning_address', 'btle.initiator_address', 'bthci_evt.bd_addr'];
  const out = execFileSync('tshark', ['-n', '-r', file, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  const set = new Set<string>();
  for (const m of out.matchAll(/\b([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b/gi)) {
    const h = m[1].toLowerCase().replace(/:/g, '');
    if (h !== 'ffffffffffff' && h !== '000000000000') set.add(h);
  }
  return [...set].map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
}

function filesUnder(dir: string): Array<{ path: string; data: Buffer }> {
  const out: Array<{ path: string; data: Buffer }> = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push({ path: p, data: readFileSync(p) });
  }
  return out;
}

describe('leak scanner (control)', () => {
  const addr = Uint8Array.from([0x3c, 0x22, 0xfb, 0x01, 0xa0, 0x9e]);
  it('finds a planted address in every form, and hash-like runs', () => {
    const forms = addressForms(addr);
    for (const f of forms.text) expect(scan('control', Buffer.from(`{"msg":"x ${f} y"}`), [addr]).length, f).toBeGreaterThan(0);
    expect(scan('control', Buffer.concat([Buffer.from('ab'), Buffer.from(addr), Buffer.from('cd')]), [addr])).not.toEqual([]);
    expect(scan('control', Buffer.from('{"k":"' + Buffer.concat([Buffer.from([1, 2]), Buffer.from(addr)]).toString('base64') + '"}'), [addr])).not.toEqual([]);
    expect(scan('control', Buffer.from('{"h":"9f86d081884c7d65"}'), [])).not.toEqual([]);
    expect(scan('control', Buffer.from('{"h":"n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}'), [])).not.toEqual([]);
    expect(scan('control', Buffer.from('{"start":"2026-01-01T00:00:00.000Z","wifi":{"devices":3}}'), [addr])).toEqual([]);
  });
  it('rejects a payload with a field beyond the contract or a non-numeric count', () => {
    const base = { v: 1, site: 's', zone: 'z', gateway: 'g', seq: 1, start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T00:00:01.000Z', complete: true, wifi: { frames: 1, devices: 1, estimate: 1 }, ble: { frames: 0, devices: 0, estimate: 0 } };
    expect(shapeProblems(countsTopic('s', 'g'), Buffer.from(JSON.stringify(base)), [])).toEqual([]);
    expect(shapeProblems(countsTopic('s', 'g'), Buffer.from(JSON.stringify({ ...base, devices: ['3c22fb01a09e'] })), [])).not.toEqual([]);
    expect(shapeProblems(countsTopic('s', 'g'), Buffer.from(JSON.stringify({ ...base, wifi: { ...base.wifi, top: 'a1b2' } })), [])).not.toEqual([]);
  });
});

describe.skipIf(!ok)(SUITE, () => {
  const broker = new Mosquitto();
  const tmp = mkdtempSync(join(tmpdir(), 'presence-gw-leak-'));
  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    await broker.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  const sub = { value: null as null | Awaited<ReturnType<typeof subscriber>> };
  const seen: Uint8Array[] = [];
  const findings: Finding[] = [];
  const shape: string[] = [];
  beforeAll(async () => {
    sub.value = await subscriber(broker.url, { filter: '#' });
  });

  const start = Date.parse('2026-06-01T12:00:00.000Z');
  const runs: Array<{ site: string; sources: () => string[]; names: string[]; addresses: () => Uint8Array[]; extra?: string[]; offline?: boolean }> = [];
  let sim: { wifi: ReturnType<typeof wifiCapture>; ble: ReturnType<typeof bleCapture> } | null = null;
  const simulated = () =>
    (sim ??= {
      wifi: wifiCapture(join(tmp, 'sim-wifi.pcap'), { devices: 12, startMs: start + 100, durationMs: 6_000, framesPerS: 80, salt: 7 }),
      ble: bleCapture(join(tmp, 'sim-ble.pcap'), { devices: 9, startMs: start + 50, durationMs: 6_000, framesPerS: 80, salt: 8 }),
    });
  runs.push({
    site: 'sim',
    sources: () => [`wifi=pcap:${simulated().wifi.path}@wifi`, `ble=pcap:${simulated().ble.path}@ble`],
    names: ['wifi', 'ble'],
    addresses: () => [...simulated().wifi.addresses, ...simulated().ble.addresses],
    offline: true,
  });
  if (captures)
    for (const [site, file, extra, offline] of [
      ['oppo', join(captures, 'wifi', 'OppoFindX3Neo-A_anonymized.pcap'), ['--ignore-fcs'], true],
      ['n02', join(captures, 'wifi', 'n-02.cap'), [], false],
      ['ble', join(captures, 'ble', 'take_2__ble_all_adv.pcap'), [], true],
      ['hci', join(captures, 'ble', 'horizon74_btsnoop_hci.lt201.pcap'), [], false],
      ['nrf', join(captures, 'ble', 'anechoic__nRF52__nrf52_capture_0.pcapng'), [], false],
    ] as Array<[string, string, string[], boolean]>) {
      let cached: Uint8Array[] | null = null;
      runs.push({ site, sources: () => [`pcap:${file}`], names: ['file0'], addresses: () => (cached ??= tsharkAddresses(file)), extra, offline });
    }

  for (const run of runs) {
    it(`${run.site}: nothing address- or hash-like in the queue folder, the log or on the wire`, async () => {
      const addresses = run.addresses();
      expect(addresses.length).toBeGreaterThan(0);
      seen.push(...addresses);
      const queueDir = join(tmp, `q-${run.site}`);
      const common = ['--site', run.site, '--zone', 'z', '--id', 'g', ...run.sources().flatMap((s) => ['--source', s]), '--speed', 'max', '--window', '5s', '--log-level', 'trace', '--queue-dir', queueDir, ...(run.extra ?? [])];
      if (run.offline) {
        // Broker unreachable: every window stays in the queue folder; scan what was written there.
        const offline = spawnGateway([...common, '--mqtt-url', `mqtt://127.0.0.1:${await freePort()}`]);
        await waitFor(() => offline.stderr().includes('sources ended'), 30_000, `${run.site}: replay with the broker down`);
        offline.proc.kill('SIGTERM');
        await offline.exited;
        const stored = filesUnder(queueDir);
        expect(stored.filter((f) => f.path.includes('/windows/')).length, `${run.site}: queued windows`).toBeGreaterThan(0);
        for (const f of stored) findings.push(...scan(f.path, f.data, addresses));
        for (const f of stored.filter((x) => x.path.endsWith('.json'))) shape.push(...shapeProblems(countsTopic(run.site, 'g'), f.data, run.names));
        findings.push(...scan(`${run.site} log (broker down)`, Buffer.from(offline.stderr()), addresses));
      }
      // Broker up: queued windows (if any) and a fresh replay are published.
      const online = spawnGateway([...common, '--mqtt-url', broker.url]);
      expect(await online.exited, online.stderr().slice(-2000)).toBe(0);
      findings.push(...scan(`${run.site} log`, Buffer.from(online.stderr()), addresses));
      for (const f of filesUnder(queueDir)) findings.push(...scan(f.path, f.data, addresses));
      await new Promise((r) => setTimeout(r, 200));
      const mine = sub.value!.messages.filter((m) => parseTopic(m.topic)?.site === run.site);
      expect(mine.filter((m) => m.topic.endsWith('/counts')).length).toBeGreaterThan(0);
      for (const m of mine) {
        findings.push(...scan(m.topic, Buffer.concat([Buffer.from(m.topic), m.payload]), addresses));
        shape.push(...shapeProblems(m.topic, m.payload, run.names));
      }
      // Addresses did go through the firmware: devices were counted.
      const counted = mine.filter((m) => m.topic.endsWith('/counts')).map((m) => JSON.parse(m.payload.toString()));
      expect(counted.some((c) => c.wifi.devices + c.ble.devices > 0)).toBe(true);
      expect(findings).toEqual([]);
      expect(shape).toEqual([]);
    });
  }

  it('every byte on the broker, across all runs, is clean of every address seen', async () => {
    const messages: Received[] = sub.value!.messages;
    expect(messages.length).toBeGreaterThan(10);
    const all: Finding[] = [];
    const blob = Buffer.concat(messages.flatMap((m) => [Buffer.from(m.topic), Buffer.from('\n'), m.payload, Buffer.from('\n')]));
    all.push(...scan('all messages', blob, seen));
    expect(all).toEqual([]);
    await sub.value!.client.endAsync();
  });
});
