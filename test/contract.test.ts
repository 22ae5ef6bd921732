import { describe, expect, it } from 'vitest';
import {
  countsTopic, statusTopic, parseTopic, sharedFilter, COUNTS_FILTER, validateCounts, validateStatus,
  offlineStatus, encode, MAX_PAYLOAD_BYTES, type CountsMessage,
} from '../contract/index.ts';

const good: CountsMessage = {
  v: 1, site: 'utrecht', zone: 'neude', gateway: 'gw-01', seq: 1234,
  start: '2026-04-27T12:00:00.000Z', end: '2026-04-27T12:01:00.000Z', complete: true,
  wifi: { frames: 812, devices: 140, estimate: 61 }, ble: { frames: 3011, devices: 95, estimate: 70 },
};

describe('wire contract', () => {
  it('builds and splits topics', () => {
    expect(countsTopic('utrecht', 'gw-01')).toBe('presence/v1/utrecht/gw-01/counts');
    expect(statusTopic('utrecht', 'gw-01')).toBe('presence/v1/utrecht/gw-01/status');
    expect(parseTopic('presence/v1/utrecht/gw-01/counts')).toEqual({ site: 'utrecht', gateway: 'gw-01', kind: 'counts' });
    expect(parseTopic('presence/v2/utrecht/gw-01/counts')).toBeNull();
    expect(parseTopic('presence/v1/utrecht/gw-01/other')).toBeNull();
    expect(parseTopic('presence/v1/Utrecht/gw 01/counts')).toBeNull();
    expect(sharedFilter('agg', COUNTS_FILTER)).toBe('$share/agg/presence/v1/+/+/counts');
  });

  it('accepts the example payload of the issue, with extra keys', () => {
    expect(validateCounts(good)).toEqual({ ok: true, value: good });
    expect(validateCounts({ ...good, extra: 1, wifi: { ...good.wifi, probes: 3, exact: true } }).ok).toBe(true);
  });

  it('names every bad field', () => {
    const bad = { ...good, seq: -1, wifi: { frames: 1, devices: 'x' } } as unknown;
    const r = validateCounts(bad);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toContain('/seq must be >= 0');
      expect(r.reason).toContain('/wifi/devices must be integer');
      expect(r.reason).toContain('/wifi/estimate is required');
    }
    const noV = { ...good } as Record<string, unknown>;
    delete noV.v;
    expect(validateCounts(noV)).toEqual({ ok: false, reason: '/v is required' });
    expect(validateCounts({ ...good, v: 2 })).toEqual({ ok: false, reason: '/v must be 1' });
    expect(validateCounts({ ...good, end: good.start })).toEqual({ ok: false, reason: '/end must be after /start' });
    expect(validateCounts({ ...good, start: 'yesterday' }).ok).toBe(false);
  });

  it('has no field that could carry an address', () => {
    const payload = encode(good).toString();
    expect(payload.length).toBeLessThan(MAX_PAYLOAD_BYTES);
    expect(payload).not.toMatch(/([0-9a-f]{2}[:-]){5}[0-9a-f]{2}/i);
  });

  it('validates status and the last will', () => {
    expect(validateStatus(offlineStatus('utrecht', 'gw-01')).ok).toBe(true);
    const r = validateStatus({ v: 1, site: 'utrecht', gateway: 'gw-01', state: 'sleeping' });
    expect(r).toEqual({ ok: false, reason: '/state must be one of online, offline' });
  });
});
