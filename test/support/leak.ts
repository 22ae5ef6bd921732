// The leak scan: "no address in any form" means the same everywhere it is checked (what the gateway
// publishes, logs and queues: test/gateway-leak.test.ts; the web pages, their event streams and
// assets: test/gateway-web.test.ts and the aggregator's page tests). A scan looks for every written
// form of each address (both byte orders), the 12 digits with anything but letters and digits
// between them after NFKC, the raw bytes, and (unless told otherwise) any hash-like run.

import { execFileSync } from 'node:child_process';

export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

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
      const from = Math.ceil((8 * k) / 6);
      const to = Math.floor((8 * (k + 6)) / 6);
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

/**
 * Addresses (any form) and hash-like runs in a blob. `hashLike: false` leaves out the hash-like runs
 * (for third-party code such as a minified chart library, whose identifiers and tables can look so):
 * addresses are always searched.
 */
export function scan(where: string, blob: Buffer | string, addresses: Uint8Array[], opts: { hashLike?: boolean } = {}): Finding[] {
  if (typeof blob === 'string') blob = Buffer.from(blob, 'utf8');
  const out: Finding[] = [];
  const text = blob.toString('latin1');
  const lower = text.toLowerCase();
  // The same text as Unicode, NFKC-normalised (full-width forms become ASCII), format characters
  // (zero-width) removed: the forms are searched in both.
  const norm = blob
    .toString('utf8')
    .normalize('NFKC')
    .replace(/\p{Cf}+/gu, '');
  for (const addr of addresses) {
    const { text: forms, binary } = addressForms(addr);
    for (const f of forms) {
      const mixed = /[a-z]/i.test(f) && f.length >= 8 && /[+/=_-]|[A-Z].*[a-z]|[a-z].*[A-Z]/.test(f);
      const found = mixed ? text.includes(f) || norm.includes(f) : lower.includes(f.toLowerCase()) || norm.toLowerCase().includes(f.toLowerCase());
      if (found) out.push({ where, what: `address ${hex(addr)} as "${f}"` });
    }
    // The 12 hex digits in order with anything but letters and digits between them (any separator,
    // white space, `0x`, `\x` escapes, JSON escapes of a log line), either byte order.
    for (const a of [Buffer.from(addr), Buffer.from(addr).reverse()]) {
      const sep = '(?:[^0-9a-z\\\\]|\\\\+(?:[tnrbf"/]|u[0-9a-f]{4}|x)|0x){0,12}';
      const re = new RegExp(`(?<![0-9a-z])${[...a.toString('hex')].join(sep)}(?![0-9a-z])`, 'i');
      if (re.test(norm)) out.push({ where, what: `address ${hex(addr)} as its digits apart` });
    }
    for (const b of binary) if (blob.includes(b)) out.push({ where, what: `address ${hex(addr)} as raw bytes` });
  }
  if (opts.hashLike === false) return out;
  // Hash-like content: 8+ bytes as hex, or a long mixed base64 run.
  for (const m of text.matchAll(/[0-9a-fA-F]{16,}/g)) out.push({ where, what: `hex run "${m[0].slice(0, 24)}"` });
  for (const m of text.matchAll(/[A-Za-z0-9+]{16,}={0,2}/g))
    if (/\d/.test(m[0]) && /[A-Z]/.test(m[0]) && /[a-z]/.test(m[0])) out.push({ where, what: `base64-like run "${m[0].slice(0, 24)}"` });
  return out;
}

/** Every device address TShark sees in a capture. */
export function tsharkAddresses(file: string): Uint8Array[] {
  const fields = [
    'wlan.sa',
    'wlan.ta',
    'wlan.ra',
    'wlan.da',
    'wlan.bssid',
    'btle.advertising_address',
    'btle.scanning_address',
    'btle.initiator_address',
    'bthci_evt.bd_addr',
  ];
  const out = execFileSync('tshark', ['-n', '-r', file, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const set = new Set<string>();
  for (const m of out.matchAll(/\b([0-9a-f]{2}(?::[0-9a-f]{2}){5})\b/gi)) {
    const h = m[1].toLowerCase().replace(/:/g, '');
    if (h !== 'ffffffffffff' && h !== '000000000000') set.add(h);
  }
  return [...set].map((h) => Uint8Array.from(Buffer.from(h, 'hex')));
}
