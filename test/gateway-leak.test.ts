// Privacy: nothing the gateway publishes, logs or writes to disk contains a device address (in any
// common text or binary form) or anything hash-like. Sources: simulated frames whose addresses we
// chose, and real captures whose addresses TShark lists. Every byte published (subscribed to `#`),
// every log line (stderr at trace level) and every file in the queue folder is scanned, and every
// payload must consist of the contract's fields with numeric counts only. Every status message of a
// run is scanned, and so is the retained status a subscriber arriving afterwards gets. A capture
// command whose frames carry known addresses prints them on stderr in the usual written forms and
// in forms no pattern list foresees (\x escapes, odd separators, base64, full-width, zero-width),
// run after run, so they reach the gateway as source failures (the redacted text in the log, the
// fixed error_code and last_error in the status): none may appear anywhere. The scan also looks
// for the 12 digits with anything but letters and digits between them, after NFKC. A control
// sample shows the scanner does catch a planted address and a planted hash, and that the stderr
// lines hold every address.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mosquitto } from './support/mosquitto.ts';
import { capturesDir, need } from './support/need.ts';
import { bleCapture, spawnGateway, subscriber, waitFor, wifiCapture, type Received } from './gateway-support.ts';
import { freePort } from './support/ports.ts';
import { addressForms, scan, tsharkAddresses, type Finding } from './support/leak.ts';
import { countsTopic, isLastError, parseTopic, statusTopic, validateCounts, validateStatus, type StatusMessage } from '../contract/index.ts';

const SUITE = 'gateway leak';
const ok = need('mosquitto', 'mosquitto', SUITE) && need('tshark', 'tshark', SUITE);
const captures = capturesDir(SUITE);

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * Lines a capture tool might print about these addresses, both byte orders, a few per line around
 * other words: the usual written forms, and forms no list of patterns foresees (`\x` escapes,
 * `|` `/` tab `::` ` - ` separators, single hex digits apart, base64, full-width digits and letters,
 * zero-width characters between the digits).
 */
export function stderrLines(addresses: Uint8Array[]): string[] {
  const forms: string[] = [];
  for (const addr of addresses)
    for (const a of [Buffer.from(addr), Buffer.from(addr).reverse()]) {
      const h = a.toString('hex');
      for (const s of [h, h.toUpperCase()]) {
        const p = s.match(/../g)!;
        forms.push(p.join(':'), p.join('-'), p.join('.'), p.join('_'), p.join(' '), p.map((x) => `0x${x}`).join(', '), p.map((x) => `0x${x}`).join(','));
        forms.push(
          s,
          `0x${s}`,
          `${s.slice(0, 4)}.${s.slice(4, 8)}.${s.slice(8)}`,
          `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`,
          `${s.slice(0, 6)}-${s.slice(6)}`,
          `${s.slice(0, 6)}:${s.slice(6)}`,
        );
      }
      forms.push(
        h
          .match(/../g)!
          .map((x) => x.replace(/^0/, ''))
          .join(':'),
      ); // ether_ntoa
      const p = h.match(/../g)!;
      forms.push(`b'${p.map((x) => `\\x${x}`).join('')}'`, p.join('|'), p.join('/'), p.join('\t'), p.join('::'), p.join(' - '), [...h.toUpperCase()].join(' '));
      forms.push(a.toString('base64'), a.toString('base64url'));
      forms.push([...p.join(':')].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join('')); // full width
      forms.push([...h].join('\u200d'), p.join('\u200b:')); // zero-width joiners / spaces between the digits
    }
  const words = ['dev', 'from', 'addr=', '[', 'bssid', 'peer:', 'station', '(', 'src'];
  const lines: string[] = [];
  for (let i = 0; i < forms.length; i += 8)
    lines.push(
      forms
        .slice(i, i + 8)
        .map((f, k) => `${words[(i + k) % words.length]} ${f}`)
        .join(' ') + ' went away',
    );
  return lines;
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

/** Has the subscriber got, at or after index `from`, a status of `site` saying offline? */
function offlineStatusSince(messages: Received[], from: number, site: string): boolean {
  return messages.slice(from).some((m) => m.topic === statusTopic(site, 'g') && (JSON.parse(m.payload.toString()) as StatusMessage).state === 'offline');
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
    const base = {
      v: 1,
      site: 's',
      zone: 'z',
      gateway: 'g',
      seq: 1,
      start: '2026-01-01T00:00:00.000Z',
      end: '2026-01-01T00:00:01.000Z',
      complete: true,
      wifi: { frames: 1, devices: 1, estimate: 1 },
      ble: { frames: 0, devices: 0, estimate: 0 },
    };
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
  /** The retained status of a site's gateway, as a subscriber arriving now gets it. */
  const retainedStatus = async (site: string): Promise<Received[]> => {
    const late = await subscriber(broker.url, { filter: statusTopic(site, 'g'), clean: true });
    await waitFor(() => late.messages.length > 0, 30_000, `${site}: retained status`);
    await late.client.endAsync();
    expect(late.messages[0].retain).toBe(true);
    return late.messages;
  };
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
      const common = [
        '--site',
        run.site,
        '--zone',
        'z',
        '--id',
        'g',
        ...run.sources().flatMap((s) => ['--source', s]),
        '--speed',
        'max',
        '--window',
        '5s',
        '--log-level',
        'trace',
        '--queue-dir',
        queueDir,
        ...(run.extra ?? []),
      ];
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
      const from = sub.value!.messages.length;
      const online = spawnGateway([...common, '--mqtt-url', broker.url]);
      expect(await online.exited, online.stderr().slice(-2000)).toBe(0);
      findings.push(...scan(`${run.site} log`, Buffer.from(online.stderr()), addresses));
      for (const f of filesUnder(queueDir)) findings.push(...scan(f.path, f.data, addresses));
      // The offline status is the last thing a gateway that stops publishes: once it is here, so is
      // everything the run published before it (one connection, in order), and all of it is scanned.
      await waitFor(() => offlineStatusSince(sub.value!.messages, from, run.site), 30_000, `${run.site}: the final offline status`);
      const mine = sub.value!.messages.filter((m) => parseTopic(m.topic)?.site === run.site);
      expect(mine.filter((m) => m.topic.endsWith('/counts')).length).toBeGreaterThan(0);
      // Every status published during the run and the retained one a newcomer gets are scanned too.
      expect(mine.filter((m) => m.topic.endsWith('/status')).length, `${run.site}: status messages`).toBeGreaterThan(0);
      for (const m of [...mine, ...(await retainedStatus(run.site))]) {
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

  it('tool: a capture command printing its addresses on stderr in every written form; nothing of them in any status, log line or file', async () => {
    // The command's frames carry these addresses (they are counted), and its stderr names them in
    // many forms (stderrLines), both byte orders; each run prints one line and
    // then exits or writes garbage, so the line is relayed as a source failure (exited /
    // bad_capture) into the log and the status's last_error, run after run.
    const site = 'tool';
    const cap = wifiCapture(join(tmp, 'tool.pcap'), { devices: 6, startMs: start, durationMs: 2_000, framesPerS: 30, salt: 11 });
    const addresses = cap.addresses;
    seen.push(...addresses);
    const lines = stderrLines(addresses);
    const linesFile = join(tmp, 'tool-stderr.txt');
    writeFileSync(linesFile, `${lines.join('\n')}\n`);
    // Control: the lines do hold every address (the scanner finds each one in them).
    const inLines = scan('stderr lines', readFileSync(linesFile), addresses);
    for (const a of addresses)
      expect(
        inLines.some((f) => f.what.includes(hex(a))),
        hex(a),
      ).toBe(true);
    const script = join(tmp, 'tool.sh');
    const counter = join(tmp, 'tool.count');
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        `n=$(cat '${counter}' 2>/dev/null || echo 0); echo $((n + 1)) > '${counter}'`,
        `cat '${cap.path}'`,
        `sed -n "$((n % ${lines.length} + 1))p" '${linesFile}' >&2`,
        // odd runs: garbage after the capture (bad_capture, "(stderr: LINE)"); even runs: exit 3 ("exited with code 3: LINE")
        'if [ $((n % 2)) = 1 ]; then printf "garbage that is no pcap record at all"; sleep 1; else exit 3; fi',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const queueDir = join(tmp, `q-${site}`);
    const configFile = join(tmp, 'tool.json');
    writeFileSync(
      configFile,
      JSON.stringify({ sources: [{ type: 'command', name: 'tool', radio: 'wifi', command: script, restart_min: '100ms', restart_max: '200ms' }] }),
    );
    const gw = spawnGateway([
      '--config',
      configFile,
      '--site',
      site,
      '--zone',
      'z',
      '--id',
      'g',
      '--mqtt-url',
      broker.url,
      '--window',
      '1s',
      '--status-interval',
      '1s',
      '--log-level',
      'trace',
      '--queue-dir',
      queueDir,
    ]);
    const runs = () => (existsSync(counter) ? Number(readFileSync(counter, 'utf8')) : 0);
    const mineNow = () => sub.value!.messages.filter((m) => parseTopic(m.topic)?.site === site);
    try {
      await waitFor(() => runs() > lines.length + 1, 150_000, 'every stderr line printed by a run of the command');
      await waitFor(
        () => mineNow().some((m) => m.topic.endsWith('/counts') && JSON.parse(m.payload.toString()).wifi.devices > 0),
        20_000,
        'counts of the command',
      );
    } catch (e) {
      gw.proc.kill('SIGKILL');
      throw e;
    }
    gw.proc.kill('SIGTERM');
    expect(await gw.exited, gw.stderr().slice(-2000)).toBe(0);
    const log = gw.stderr();
    // The stderr lines did go through the gateway: relayed to the log only, redacted, with a fixed code.
    expect(log).toContain('<redacted>');
    expect(log).toMatch(/"code":"exited"/);
    expect(log).toMatch(/"code":"bad_capture"/);
    findings.push(...scan(`${site} log`, Buffer.from(log), addresses));
    for (const f of filesUnder(queueDir)) findings.push(...scan(f.path, f.data, addresses));
    // As above: everything published before the final offline status has arrived with it.
    await waitFor(() => offlineStatusSince(sub.value!.messages, 0, site), 30_000, `${site}: the final offline status`);
    const mine = mineNow();
    const statuses = mine.filter((m) => m.topic.endsWith('/status')).map((m) => JSON.parse(m.payload.toString()) as StatusMessage);
    for (const m of [...mine, ...(await retainedStatus(site))]) {
      findings.push(...scan(m.topic, Buffer.concat([Buffer.from(m.topic), m.payload]), addresses));
      shape.push(...shapeProblems(m.topic, m.payload, ['tool']));
    }
    expect(findings).toEqual([]);
    expect(shape).toEqual([]);
    const errors = statuses.flatMap((st) => st.sources ?? []).filter((s) => s.last_error);
    // The status carries the fixed sentences only, never the tool's text.
    expect(errors.some((s) => s.error_code === 'exited' && s.last_error === 'the capture command exited with code 3')).toBe(true);
    expect(errors.some((s) => s.error_code === 'bad_capture' && s.last_error === 'the capture is not a valid pcap or pcapng stream')).toBe(true);
    for (const s of errors) expect(isLastError(s.last_error!), s.last_error).toBe(true);
  }, 180_000); // one command run per stderr line, each restarted: a minute or more on a loaded machine

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
