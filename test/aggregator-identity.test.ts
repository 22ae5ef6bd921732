// Bound identities in the aggregator: the gateway registry (unknown gateways, another site or zone),
// the limit on unregistered gateways (made-up ids cannot grow memory without bound), and conflicts
// (another message for an accepted window or seq is rejected; an identical one is a redelivery).
// First the pure rules, then the same through a real Mosquitto into a line-protocol file, with the
// rejections counted in presence_aggregator_rejected_total{reason}.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { need } from './support/need.ts';
import { Mosquitto } from './support/mosquitto.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { resolveConfig, loadConfig, ConfigError } from '../aggregator/config.ts';
import { countsDigest, digestValues, GatewayIdentity, RecentMap, schemaDigestValues, type GatewaysConfig } from '../aggregator/registry.ts';
import { provisionGateway, provisionReport } from '../aggregator/provision.ts';
import { encode, type CountsMessage } from '../contract/index.ts';
import { countsItem, publishAll, publisher, status, statusItem, until, window } from './aggregator-helpers.ts';

type LogLine = { level: number; msg: string; reason?: string; detail?: string };
const repo = join(import.meta.dirname, '..');
const capturing = (lines: LogLine[]) => pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });

const T0 = Date.parse('2026-03-01T10:00:00Z');
const gw = (over: Partial<GatewaysConfig> = {}): GatewaysConfig => ({ registry: {}, allow_unknown: true, max_known: 10_000, conflict_memory: 1000, ...over });

describe('gateway registry and limits (pure)', () => {
  const registry = { 'gw-plein-1': { site: 'dam', zone: 'plein', credential: 'dam/gw-plein-1' } };

  it('with a registry, unknown gateways are rejected by default; registered ones only for their site and zone', () => {
    const cfg = resolveConfig({ gateways: { registry } }).gateways;
    expect(cfg.allow_unknown).toBe(false);
    const id = new GatewayIdentity(cfg, pino({ level: 'silent' }));
    expect(id.admit('dam', 'gw-plein-1', 'plein')).toBeNull();
    expect(id.admit('dam', 'gw-plein-1', undefined)).toBeNull(); // a status without a zone
    expect(id.admit('dam', 'gw-made-up', 'plein')).toMatchObject({ reason: 'unknown_gateway' });
    expect(id.admit('damrak', 'gw-plein-1', 'plein')).toEqual({
      reason: 'identity_mismatch',
      detail:
        'gateway gw-plein-1 is registered for site dam, not damrak; fix: gateway.site dam on the gateway, or move the entry (presence provision gateway --site damrak --zone plein --id gw-plein-1 --aggregator-config FILE --rotate, then SIGHUP)',
    });
    expect(id.admit('dam', 'gw-plein-1', 'kalverstraat')).toMatchObject({
      reason: 'identity_mismatch',
      detail:
        'gateway gw-plein-1 is registered for zone plein of site dam, not zone kalverstraat; fix: gateway.zone plein on the gateway, or move the entry (presence provision gateway --site dam --zone kalverstraat --id gw-plein-1 --aggregator-config FILE --rotate, then SIGHUP)',
    });
    expect(id.admit('dam', 'constructor', 'plein')).toMatchObject({ reason: 'unknown_gateway' }); // no prototype keys
  });

  it('allow_unknown: true with a registry accepts others (up to max_known), still binding registered ones', () => {
    const id = new GatewayIdentity(resolveConfig({ gateways: { registry, allow_unknown: true } }).gateways, pino({ level: 'silent' }));
    expect(id.admit('west', 'gw-other', 'z')).toBeNull();
    expect(id.admit('damrak', 'gw-plein-1', 'plein')).toMatchObject({ reason: 'identity_mismatch' });
  });

  it('without a registry every gateway is accepted up to max_known; past it, rejected with one warning', () => {
    const cfg = resolveConfig({}).gateways;
    expect(cfg).toEqual({ registry: {}, allow_unknown: true, max_known: 10_000, conflict_memory: 50_000 });
    const lines: LogLine[] = [];
    const id = new GatewayIdentity(gw({ max_known: 3 }), capturing(lines));
    for (const g of ['a', 'b', 'c']) expect(id.admit('s', g, 'z')).toBeNull();
    for (let i = 0; i < 100; i++) expect(id.admit('s', `made-up-${i}`, 'z')).toMatchObject({ reason: 'gateway_limit' });
    expect(id.admit('s', 'b', 'z')).toBeNull(); // known ones go on
    expect(id.known).toBe(3);
    expect(lines.filter((l) => l.msg.startsWith('gateway limit reached'))).toHaveLength(1);
  });

  it('the registry is validated with the file, key and reason', () => {
    expect(() => resolveConfig({ gateways: { registry: { 'GW 1': { site: 'dam', zone: 'plein' } } } })).toThrow(ConfigError);
    expect(() => resolveConfig({ gateways: { registry: { 'gw-1': { site: 'Dam Square', zone: 'plein' } } } })).toThrow(
      /gateways\.registry\.gw-1\.site: gateway ids, sites and zones must be lower case letters, digits, - and _ \(up to 63\).* \(got "Dam Square"\)$/m,
    );
    expect(() => resolveConfig({ gateways: { registry: { 'gw-1': { site: 'dam' } } } })).toThrow(/gateways\.registry\.gw-1\.zone: is required/);
    expect(() => resolveConfig({ gateways: { registry: { 'gw-1': { site: 'dam', zone: 'plein', mac: 'x' } } } })).toThrow(/unknown key "mac"/);
    expect(loadConfig({ maxGateways: '25' }, {}).gateways.max_known).toBe(25);
  });
});

describe('presence provision writes the registry readably', () => {
  it('a new config file gets block style with one line per gateway, however long its names; the aggregator loads it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-provision-style-'));
    try {
      const file = join(dir, 'aggregator.yaml');
      for (const id of ['gw-neude-noordzijde-01', 'gw-neude-noordzijde-02'])
        provisionGateway({ site: 'utrecht-centrum-oost', zone: 'neude-noordzijde-plein', id, aggregatorConfig: file });
      const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
      expect(lines.slice(0, 3)).toEqual(['aggregator:', '  gateways:', '    registry:']);
      expect(lines.slice(3)).toEqual(
        ['01', '02'].map(
          (n) =>
            `      gw-neude-noordzijde-${n}: { site: utrecht-centrum-oost, zone: neude-noordzijde-plein, credential: utrecht-centrum-oost/gw-neude-noordzijde-${n} }`,
        ),
      );
      expect(Object.keys(loadConfig({ config: file }).gateways.registry)).toEqual(['gw-neude-noordzijde-01', 'gw-neude-noordzijde-02']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('presence provision refuses a config file that is already invalid, naming the key', () => {
  it('gateways or its registry that is no mapping is one line, and the file is left as it was (gateways: x crashed with a TypeError)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-provision-invalid-'));
    try {
      const file = join(dir, 'aggregator.yaml');
      for (const [text, problem] of [
        ['gateways: x\n', 'gateways: must be a mapping (key: value) (got "x")'],
        ['gateways:\n  registry: abc\n', 'gateways.registry: must be a mapping (key: value) (got "abc")'],
        ['gateways:\n  registry: [1, 2]\n', 'gateways.registry: must be a mapping (key: value) (got [1,2])'],
      ]) {
        writeFileSync(file, text);
        expect(() => provisionGateway({ site: 'dam', zone: 'noord', id: 'gw-a', aggregatorConfig: file })).toThrow(
          `${file} is not a valid aggregator config (fix it, then provision again):\n  ${problem}`,
        );
        expect(readFileSync(file, 'utf8')).toBe(text);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('presence provision says what to do on the gateway', () => {
  it('asks for the password file to be copied only when one was written: a registry move alone made none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'presence-provision-report-'));
    try {
      const cfg = join(dir, 'aggregator.yaml');
      const o = { site: 'dam', zone: 'plein', id: 'gw-1', aggregatorConfig: cfg, passwordFile: join(dir, 'passwd'), secretOut: join(dir, 'gw-1.pw') };
      const first = provisionReport(o, provisionGateway(o));
      expect(first).toContain('copy the password file there');
      expect(first).toContain('reload Mosquitto');
      // the gateway moves to another zone: the registry only, --rotate, no --password-file
      const move = { site: 'dam', zone: 'noord', id: 'gw-1', aggregatorConfig: cfg, rotate: true };
      const r = provisionGateway(move);
      expect(r.secretFile).toBeNull();
      const report = provisionReport(move, r);
      expect(report).not.toContain('copy the password file');
      expect(report).not.toContain('reload Mosquitto');
      expect(report).toContain('no password was made here, as no --password-file was given: the gateway keeps the password file it has');
      expect(report).toContain('    zone: noord');
      expect(report).toContain('re-read its registry');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('conflicts (pure)', () => {
  const m = window('dam', 'gw-1', 7, T0, 60_000, 'plein');

  it('the identical message again is a redelivery; other counts for the same window are a conflict', () => {
    const id = new GatewayIdentity(gw(), pino({ level: 'silent' }));
    expect(id.checkCounts(m)).toBeNull();
    expect(id.checkCounts(structuredClone(m))).toBeNull();
    const changed = { ...m, wifi: { ...m.wifi, devices: 0 } };
    expect(id.checkCounts(changed)).toMatchObject({ reason: 'conflict', detail: expect.stringContaining(`window ${m.start} of dam/gw-1 was accepted before`) });
    // same window, other seq: two gateways configured with one site and id; the conflict says so
    expect(id.checkCounts({ ...m, seq: 99 })).toMatchObject({
      reason: 'conflict',
      detail: expect.stringContaining(
        'this one is seq 99: the same window under two seqs comes from two gateways configured as dam/gw-1 (the same --site and --id on two machines; each logs "session taken over") or a capture counted twice; fix: give each gateway its own id',
      ),
    });
    expect(id.checkCounts(changed)!.detail).not.toContain('two seqs'); // same seq, other counts: no such guess
    expect(id.checkCounts({ ...m, complete: false })).toMatchObject({ reason: 'conflict' });
  });

  it('two parts of one window, both cut short under two seqs (a capture replayed a run per file): the conflict says why and how to count it once', () => {
    const id = new GatewayIdentity(gw(), pino({ level: 'silent' }));
    const first = { ...m, seq: 2, complete: false };
    const next = { ...m, seq: 3, complete: false, wifi: { ...m.wifi, devices: 3 } };
    expect(id.checkCounts(first)).toBeNull();
    const v = id.checkCounts(next);
    expect(v).toMatchObject({ reason: 'conflict', detail: expect.stringContaining('both are cut short: two runs of the gateway each counted a part of it') });
    expect(v!.detail).toContain('fix: give the files to one run (--source pcap:FIRST --source pcap:NEXT)');
    // a whole window against other counts says no such thing
    const whole = new GatewayIdentity(gw(), pino({ level: 'silent' }));
    expect(whole.checkCounts(m)).toBeNull();
    expect(whole.checkCounts({ ...m, seq: 8, complete: false })!.detail).not.toContain('cut short');
  });

  it('the digest is of the content, not of the JSON text', () => {
    const { wifi, ble, ...rest } = m;
    const reordered = JSON.parse(JSON.stringify({ ble, wifi, ...rest })) as CountsMessage;
    expect(countsDigest(reordered)).toBe(countsDigest(m));
    expect(countsDigest({ ...m, start: m.start.replace('.000Z', 'Z') })).toBe(countsDigest(m));
    expect(countsDigest({ ...m, wifi: { ...m.wifi, rejected: 0 } })).not.toBe(countsDigest(m));
    expect(countsDigest({ ...m, wifi: { ...m.wifi, devices: m.wifi.devices + 1 } })).not.toBe(countsDigest(m));
    // every field of the contract counts, also objects other than the radios
    const withPrivacy = { ...m, privacy: { min_count: 5 } } as CountsMessage;
    expect(countsDigest(withPrivacy)).not.toBe(countsDigest(m));
    expect(countsDigest({ ...withPrivacy, privacy: { min_count: 6 } } as CountsMessage)).not.toBe(countsDigest(withPrivacy));
  });

  it("the digest reads every field of the schema, by name as by the schema's own list, and each one changes it", () => {
    const full = {
      ...m,
      wifi: { ...m.wifi, probes: 11, adverts: 12, rejected: 13, weak: 14, exact: true, suppressed: false },
      ble: { ...m.ble, probes: 21, adverts: 22, rejected: 23, weak: 24, exact: false, suppressed: true },
      privacy: { min_count: 5, epsilon: 0.5 },
    } as CountsMessage;
    const s = Date.parse(m.start);
    const e = Date.parse(m.end);
    const broken = { ...m, wifi: 7, privacy: 'x' } as unknown as CountsMessage;
    for (const x of [m, full, broken]) expect(digestValues(x, s, e)).toEqual(schemaDigestValues(x, s, e));
    // every value of the full message is read: changing any one changes the digest
    const values = schemaDigestValues(full, s, e);
    expect(values.filter((v) => v === undefined)).toEqual([]);
    const digest = countsDigest(full);
    for (const radio of ['wifi', 'ble'] as const)
      for (const [k, v] of Object.entries(full[radio]))
        expect(countsDigest({ ...full, [radio]: { ...full[radio], [k]: typeof v === 'boolean' ? !v : (v as number) + 1 } })).not.toBe(digest);
    expect(countsDigest({ ...full, privacy: { min_count: 5, epsilon: 0.25 } })).not.toBe(digest);
  });

  it('an accepted seq with another window not after it is a conflict; a later window under an old seq (queue folder lost) is accepted', () => {
    const id = new GatewayIdentity(gw(), pino({ level: 'silent' }));
    expect(id.checkCounts(m)).toBeNull();
    expect(id.checkCounts({ ...m, start: new Date(T0 - 60_000).toISOString(), end: new Date(T0).toISOString() })).toMatchObject({
      reason: 'conflict',
      detail: expect.stringContaining('seq 7 of dam/gw-1 was accepted before'),
    });
    expect(id.checkCounts({ ...m, start: new Date(T0 + 3_600_000).toISOString(), end: new Date(T0 + 3_660_000).toISOString() })).toBeNull();
  });

  it('its memory keeps the most recently set keys, a key set again moving to the newest end, in a bounded queue', () => {
    const r = new RecentMap<number>();
    for (let i = 0; i < 5; i++) r.set(`k${i}`, i, 3);
    expect([r.get('k0'), r.get('k1'), r.get('k2'), r.get('k3'), r.get('k4')]).toEqual([undefined, undefined, 2, 3, 4]);
    r.set('k2', 20, 3); // k2 is the newest now: k3 is the oldest
    r.set('k5', 5, 3);
    expect([r.get('k2'), r.get('k3'), r.get('k4'), r.get('k5')]).toEqual([20, undefined, 4, 5]);
    // one key set again and again, and a lowered limit: the queue stays near the entries held
    for (let i = 0; i < 100_000; i++) r.set('same', i, 3);
    expect(r.get('same')).toBe(99_999);
    expect(r.size).toBe(3);
    expect(r.queued).toBeLessThanOrEqual(2 * 3 + 17);
    for (let i = 0; i < 100_000; i++) r.set(`n${i}`, i, 1000);
    r.set('last', -1, 10);
    expect(r.size).toBe(10);
    expect(r.get('n99999')).toBe(99_999);
    expect(r.get('n99990')).toBeUndefined();
    expect(r.queued).toBeLessThanOrEqual(2 * 10 + 17);
  });

  it('its memory moves a key set again to the newest end when the value is the same (a number, or one object)', () => {
    const r = new RecentMap<number>();
    r.set('a', 1, 2);
    r.set('b', 2, 2);
    r.set('a', 1, 2); // a is the newest now: b is the oldest
    r.set('c', 3, 2);
    expect([r.get('a'), r.get('b'), r.get('c'), r.size]).toEqual([1, undefined, 3, 2]);
    const o = {};
    const s = new RecentMap<object>();
    for (let i = 0; i < 1000; i++) {
      s.set('same', o, 3); // set again and again across compactions, always the newest
      s.set(`k${i}`, {}, 3);
      expect(s.get('same'), String(i)).toBe(o);
    }
  });

  it('its memory forgets what a Map in insertion order (a key set again deleted first) forgets, limits raised and lowered (property, seeded)', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let run = 0; run < 100; run++) {
      const ref = new Map<string, number>();
      const r = new RecentMap<number>();
      let limit = 1 + rnd(20);
      for (let i = 0; i < 1000; i++) {
        if (rnd(50) === 0) limit = 1 + rnd(25);
        const k = `k${rnd(40)}`;
        const v = rnd(3); // few values: equal ones set again often
        ref.delete(k);
        ref.set(k, v);
        while (ref.size > limit) ref.delete(ref.keys().next().value!);
        r.set(k, v, limit);
        const wrong = [...ref].filter(([kk, vv]) => r.get(kk) !== vv);
        if (r.size !== ref.size || wrong.length) expect({ run, i, size: r.size, wrong }).toEqual({ run, i, size: ref.size, wrong: [] });
      }
    }
  });

  it('remembers at most conflict_memory messages (the oldest are forgotten), and 0 turns it off', () => {
    const id = new GatewayIdentity(gw({ conflict_memory: 10 }), pino({ level: 'silent' }));
    for (let i = 0; i < 25; i++) expect(id.checkCounts(window('dam', 'gw-1', i, T0 + i * 60_000, 60_000, 'plein'))).toBeNull();
    expect(id.remembered).toBe(10);
    const old = window('dam', 'gw-1', 0, T0, 60_000, 'plein');
    expect(id.checkCounts({ ...old, wifi: { ...old.wifi, devices: 0 } })).toBeNull(); // forgotten: not covered
    const recent = window('dam', 'gw-1', 24, T0 + 24 * 60_000, 60_000, 'plein');
    expect(id.checkCounts({ ...recent, wifi: { ...recent.wifi, devices: 0 } })).toMatchObject({ reason: 'conflict' });
    // Windows under one seq outlive it in the seq memory: a gateway that started its seq again sent
    // seq 2 twice, so with room for 2 the window of seq 1 is forgotten but seq 1 is not, and other
    // counts for that very window under seq 1 are still a conflict
    const two = new GatewayIdentity(gw({ conflict_memory: 2 }), pino({ level: 'silent' }));
    const first = window('dam', 'gw-1', 1, T0, 60_000, 'plein');
    expect(two.checkCounts(first)).toBeNull();
    expect(two.checkCounts(window('dam', 'gw-1', 2, T0 + 60_000, 60_000, 'plein'))).toBeNull();
    expect(two.checkCounts(window('dam', 'gw-1', 2, T0 + 120_000, 60_000, 'plein'))).toBeNull();
    expect(two.checkCounts({ ...first, wifi: { ...first.wifi, devices: 0 } })).toMatchObject({
      reason: 'conflict',
      detail: expect.stringContaining('seq 1 of dam/gw-1'),
    });
    const off = new GatewayIdentity(gw({ conflict_memory: 0 }), pino({ level: 'silent' }));
    expect(off.checkCounts(m)).toBeNull();
    expect(off.checkCounts({ ...m, wifi: { ...m.wifi, devices: 0 } })).toBeNull();
    expect(off.remembered).toBe(0);
  });

  it('rejects a window that overlaps an accepted one of the gateway with another start (overlap); touching ones, other gateways and forgotten ones pass', () => {
    const id = new GatewayIdentity(gw({ conflict_memory: 3 }), pino({ level: 'silent' }));
    const five = window('dam', 'gw-1', 1, T0 + 300_000, 300_000, 'plein'); // 5-min window
    expect(id.checkCounts(five)).toBeNull();
    expect(id.checkCounts(five)).toBeNull(); // a redelivery
    // restarted with 1-min windows inside it, or its clock went back
    expect(id.checkCounts(window('dam', 'gw-1', 2, T0 + 420_000, 60_000, 'plein'))).toMatchObject({
      reason: 'overlap',
      detail: expect.stringMatching(
        /^window \S+ - \S+ \(seq 2\) of dam\/gw-1 overlaps window \S+ - \S+ accepted before \(seq 1\); .*fix: keep the gateway's clock synchronised \(NTP\) and one window length per gateway$/,
      ),
    });
    expect(id.checkCounts(window('dam', 'gw-1', 3, T0 + 240_000, 120_000, 'plein'))).toMatchObject({ reason: 'overlap' }); // ends inside it
    expect(id.checkCounts(window('dam', 'gw-1', 4, T0 + 540_000, 600_000, 'plein'))).toMatchObject({ reason: 'overlap' }); // starts inside it
    expect(id.checkCounts(window('dam', 'gw-1', 5, T0, 900_000, 'plein'))).toMatchObject({ reason: 'overlap' }); // holds it
    expect(id.checkCounts(window('dam', 'gw-2', 1, T0 + 420_000, 60_000, 'plein'))).toBeNull(); // another gateway
    // touching: ends where it starts, starts where it ends (one comes late: sorted in)
    expect(id.checkCounts(window('dam', 'gw-1', 7, T0 + 600_000, 60_000, 'plein'))).toBeNull();
    expect(id.checkCounts(window('dam', 'gw-1', 6, T0 + 240_000, 60_000, 'plein'))).toBeNull();
    // room for 3: the 5-min window is forgotten, and with it its span
    expect(id.checkCounts(window('dam', 'gw-1', 8, T0 + 660_000, 60_000, 'plein'))).toBeNull();
    expect(id.checkCounts(window('dam', 'gw-1', 9, T0 + 420_000, 60_000, 'plein'))).toBeNull();
    // the late one sorted in is still there
    expect(id.checkCounts(window('dam', 'gw-1', 10, T0 + 250_000, 10_000, 'plein'))).toMatchObject({ reason: 'overlap' });
  });

  it('a reload (SIGHUP) that lowers conflict_memory forgets the oldest beyond it at once, and 0 forgets everything: turned on again, it starts empty', () => {
    const id = new GatewayIdentity(gw({ conflict_memory: 10 }), pino({ level: 'silent' }));
    for (let i = 0; i < 10; i++) expect(id.checkCounts(window('dam', 'gw-1', i, T0 + i * 60_000, 60_000, 'plein'))).toBeNull();
    id.reload(gw({ conflict_memory: 4 }));
    expect(id.remembered).toBe(4);
    const w = (i: number) => window('dam', 'gw-1', i, T0 + i * 60_000, 60_000, 'plein');
    expect(id.checkCounts({ ...w(5), wifi: { ...w(5).wifi, devices: 0 } })).toBeNull(); // forgotten at the reload
    expect(id.checkCounts({ ...w(9), wifi: { ...w(9).wifi, devices: 0 } })).toMatchObject({ reason: 'conflict' }); // kept
    id.reload(gw({ conflict_memory: 0 }));
    expect(id.remembered).toBe(0);
    // meanwhile other counts for window 9 are accepted and written over the stored point (not compared)
    expect(id.checkCounts({ ...w(9), wifi: { ...w(9).wifi, devices: 1 } })).toBeNull();
    id.reload(gw({ conflict_memory: 10 }));
    // on again: what was accepted before it was off is not held against what was written since
    expect(id.checkCounts({ ...w(9), wifi: { ...w(9).wifi, devices: 1 } })).toBeNull();
    expect(id.remembered).toBe(1);
  });
});

const ok = need('mosquitto', 'mosquitto', 'aggregator identity');

describe.skipIf(!ok)('aggregator identity with a real Mosquitto', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-identity-'));
  const aggs: Aggregator[] = [];

  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    for (const a of aggs) await a.stop(2000).catch(() => {});
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(name: string, gateways: Record<string, unknown>, lines: LogLine[] = []) {
    const out = join(dir, `${name}.lp`);
    const agg = new Aggregator(
      { mqtt: { url: broker.url, clientId: `identity-${name}` }, out, http: { port: null }, batch: { flushInterval: 10 }, gateways },
      { logger: capturing(lines) },
    );
    aggs.push(agg);
    const rejected = new Map<string, number>();
    agg.on('rejected', (reason: string) => rejected.set(reason, (rejected.get(reason) ?? 0) + 1));
    await agg.start();
    const read = () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []);
    const metric = async (reason: string) => {
      const text = await agg.metrics.registry.getSingleMetricAsString('presence_aggregator_rejected_total');
      return Number(new RegExp(`reason="${reason}"} (\\d+)`).exec(text)?.[1] ?? NaN);
    };
    return { agg, rejected, read, metric };
  }

  it('a registered gateway is stored; unknown ones, another site or another zone are rejected and counted', async () => {
    const { agg, read, metric } = await start('registry', { registry: { 'gw-plein-1': { site: 'dam', zone: 'plein' } } });
    const pub = await publisher(broker.url);
    const t = Date.now() - 3_600_000;
    await publishAll(pub, [
      countsItem(window('dam', 'gw-plein-1', 1, t, 60_000, 'plein')),
      countsItem(window('damrak', 'gw-plein-1', 2, t + 60_000, 60_000, 'plein')), // another site
      countsItem(window('dam', 'gw-plein-1', 3, t + 120_000, 60_000, 'kalverstraat')), // another zone
      countsItem(window('dam', 'gw-made-up', 1, t, 60_000, 'plein')), // not registered
      statusItem({ ...status('dam', 'gw-made-up'), zone: 'plein' }),
      statusItem(status('dam', 'gw-plein-1')),
    ]);
    await until(
      'all handled',
      () => agg.stats(),
      (s) => s.received === 6 && s.queueDepth === 0,
    );
    await agg.drain();
    const lines = read();
    expect(lines.filter((l) => l.startsWith('presence,'))).toHaveLength(2);
    expect(lines.every((l) => l.includes('gateway=gw-plein-1') && l.includes('site=dam'))).toBe(true);
    expect(lines.some((l) => l.includes('zone=kalverstraat'))).toBe(false);
    // its status, and the marker of its one window
    expect(lines.filter((l) => l.startsWith('gateway_status,'))).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith('gateway_status,') && l.includes(' window_complete='))).toHaveLength(1);
    expect(await metric('identity_mismatch')).toBe(2);
    expect(await metric('unknown_gateway')).toBe(2);
    await pub.endAsync();
  });

  it('made-up gateway ids past max_known are rejected: known gateways and memory stay bounded', async () => {
    const lines: LogLine[] = [];
    const { agg, read, metric } = await start('limit', { max_known: 50 }, lines);
    const pub = await publisher(broker.url);
    const t = Date.now() - 3_600_000;
    const items = Array.from({ length: 2000 }, (_, i) => countsItem(window('dam', `made-up-${i}`, 1, t, 60_000, 'plein')));
    await publishAll(pub, items);
    await until(
      'all handled',
      () => agg.stats(),
      (s) => s.received === 2000 && s.queueDepth === 0,
    );
    await agg.drain();
    expect(new Set(read().map((l) => /gateway=([^,]+)/.exec(l)![1])).size).toBe(50);
    expect(await metric('gateway_limit')).toBe(1950);
    expect(agg.identity.known).toBe(50);
    expect(await agg.metrics.registry.getSingleMetricAsString('presence_aggregator_gateways_known')).toMatch(/ 50$/m);
    expect(lines.filter((l) => l.msg.startsWith('gateway limit reached'))).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'message rejected').length).toBeLessThanOrEqual(10); // rate-limited
    await pub.endAsync();
  });

  it('a different message for a stored window is rejected as a conflict; a redelivery of the same one is written again, unchanged', async () => {
    const { agg, read, metric } = await start('conflict', {});
    const pub = await publisher(broker.url);
    const m = window('dam', 'gw-c', 5, Date.parse('2025-06-01T12:00:00Z'), 60_000, 'plein');
    const topic = countsItem(m).topic;
    await pub.publishAsync(topic, encode(m), { qos: 1 });
    // The attack of issue 10: devices 5 -> 0 for a stored window.
    await pub.publishAsync(topic, encode({ ...m, wifi: { ...m.wifi, devices: 0 } }), { qos: 1 });
    // The same counts, written by another serializer (keys in another order, no milliseconds).
    const { wifi: w0, ble: b0, ...rest } = m;
    await pub.publishAsync(topic, JSON.stringify({ ble: b0, wifi: w0, ...rest, start: m.start.replace('.000Z', 'Z') }), { qos: 1 });
    await until(
      'all handled',
      () => agg.stats(),
      (s) => s.received === 3 && s.queueDepth === 0,
    );
    await agg.drain();
    const wifi = read().filter((l) => l.includes('radio=wifi'));
    expect(wifi).toHaveLength(2);
    expect(wifi[0]).toBe(wifi[1]);
    expect(wifi[0]).toContain(`devices=${m.wifi.devices}i`);
    expect(await metric('conflict')).toBe(1);
    await pub.endAsync();
  });
});

describe.skipIf(!ok)('presence aggregator reloads the gateway registry on SIGHUP (real process)', () => {
  const broker = new Mosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'presence-agg-registry-hup-'));
  let proc: ChildProcess | null = null;

  beforeAll(async () => {
    await broker.start();
  });
  afterAll(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await new Promise((r) => proc!.once('exit', r));
    }
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a gateway provisioned into the config file is accepted after SIGHUP; a broken file keeps the registry in use', async () => {
    const cfg = join(dir, 'aggregator.yaml');
    const out = join(dir, 'presence.lp');
    writeFileSync(
      cfg,
      `aggregator:\n  out: ${out}\n  http: { port: null }\n  batch: { flush_interval: 10ms }\n  gateways:\n    registry:\n      gw-a: { site: dam, zone: plein }\n`,
    );
    proc = spawn(
      process.execPath,
      [join(repo, 'scripts/presence.js'), 'aggregator', '--config', cfg, '--mqtt-url', broker.url, '--mqtt-client-id', 'registry-hup'],
      {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, INFLUX_URL: '', PRESENCE_AGGREGATOR_CONFIG: '' },
      },
    );
    let log = '';
    proc.stderr!.on('data', (d) => (log += d));
    await until(
      'subscribed',
      () => log,
      (l) => l.includes('"msg":"subscribed"'),
    );
    const pub = await publisher(broker.url);
    const t = Date.now() - 3_600_000;
    const lines = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
    const count = (re: RegExp) => (log.match(re) ?? []).length;

    await publishAll(pub, [countsItem(window('dam', 'gw-b', 1, t, 60_000, 'noord')), countsItem(window('dam', 'gw-a', 1, t, 60_000, 'plein'))]);
    await until('gw-a stored', lines, (l) => l.includes('gateway=gw-a'));
    await until(
      'gw-b rejected',
      () => log,
      (l) => /"reason":"unknown_gateway"/.test(l),
    );
    expect(lines()).not.toContain('gateway=gw-b');

    provisionGateway({ site: 'dam', zone: 'noord', id: 'gw-b', aggregatorConfig: cfg });
    proc.kill('SIGHUP');
    await until(
      'reloaded',
      () => count(/gateway registry reloaded/g),
      (n) => n === 1,
    );
    await publishAll(pub, [countsItem(window('dam', 'gw-b', 2, t + 60_000, 60_000, 'noord'))]);
    await until('gw-b stored', lines, (l) => l.includes('gateway=gw-b'));

    writeFileSync(cfg, readFileSync(cfg, 'utf8') + '  nonsense_key: 1\n');
    proc.kill('SIGHUP');
    await until(
      'not reloaded',
      () => count(/gateway registry not reloaded/g),
      (n) => n === 1,
    );
    expect(log).toMatch(/has an unknown key \\"nonsense_key\\"/);
    await publishAll(pub, [countsItem(window('dam', 'gw-b', 3, t + 120_000, 60_000, 'noord'))]);
    await until(
      'gw-b still accepted',
      () =>
        lines()
          .split('\n')
          .filter((l) => l.includes('gateway=gw-b')).length,
      (n) => n === 6, // two windows: wifi, ble and the marker each
    );
    await pub.endAsync();
  });
});
