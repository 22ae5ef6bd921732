// A key given twice in one object of a payload: `{"devices": 3, "devices": 900}` is JSON
// (RFC 8259 only says names SHOULD be unique), and JSON.parse keeps the last value without a word,
// so which count a receiver stores depends on its parser. The contract's payloads hold each field
// once; a receiver refuses one that does not (the aggregator: `invalid`, contract/README.md).
//
// The check runs on every message, so it is made cheap for the messages that pass it: without a
// backslash in the text (no escape, so every string reads in the text as it parses), each member
// of an object holds exactly one ':' outside its strings, so the text's ':' count equals the parsed
// value's members plus the ':' inside its strings exactly when no member was dropped, i.e. no key
// came twice (a key given twice drops a member, and its ':' with it). A counts message, once
// valid, has a known shape, so its members are counted without walking it (repeatedKeyInCounts).
// Only a text with an escape, or one that fails that count, is scanned key by key.
import type { CountsMessage } from './types.ts';
import { keyName } from './validate.ts';

/**
 * The path of the first key given twice in one object of `text` (`/wifi/devices`), or null when
 * each key comes once. `value` is `JSON.parse(text)`: `text` must be valid JSON. A key that is not a
 * field name (it could hold an address) is named as such, never as written.
 */
export function repeatedKey(text: string, value: unknown): string | null {
  if (text.indexOf('\\') === -1 && colonsIn(text) === colonsOf(value)) return null;
  return scanRepeated(text);
}

/**
 * repeatedKey for a counts message that passed validateCounts (`m`, parsed from `text`): its
 * members are counted from the contract's shape, the cheap way for the message every window sends.
 */
export function repeatedKeyInCounts(text: string, m: CountsMessage): string | null {
  if (text.indexOf('\\') === -1 && colonsIn(text) === countsColons(m)) return null;
  return scanRepeated(text);
}

/** colonsOf a valid counts message: its members (top level, wifi, ble, privacy) and the ':' of its times (ids hold none). */
function countsColons(m: CountsMessage): number {
  return (
    Object.keys(m).length +
    Object.keys(m.wifi).length +
    Object.keys(m.ble).length +
    (m.privacy ? Object.keys(m.privacy).length : 0) +
    colonsIn(m.start) +
    colonsIn(m.end)
  );
}

function colonsIn(s: string): number {
  let n = 0;
  for (let i = s.indexOf(':'); i !== -1; i = s.indexOf(':', i + 1)) n++;
  return n;
}

/** Members of every object in `v` plus the ':' in its strings (keys and values). */
function colonsOf(v: unknown): number {
  if (typeof v === 'string') return v.indexOf(':') === -1 ? 0 : colonsIn(v);
  if (typeof v !== 'object' || v === null) return 0;
  let n = 0;
  if (Array.isArray(v)) {
    for (const x of v) n += colonsOf(x);
    return n;
  }
  for (const k in v) n += 1 + (k.indexOf(':') === -1 ? 0 : colonsIn(k)) + colonsOf((v as Record<string, unknown>)[k]);
  return n;
}

interface Frame {
  /** The object's keys so far, or null for an array. */
  keys: Set<string> | null;
  path: string;
  /** The last key (object) or the index (array) of the value being read. */
  at: string;
}

/** Reads valid JSON text key by key; the path of the first key seen twice in one object, or null. */
function scanRepeated(text: string): string | null {
  const stack: Frame[] = [];
  let top: Frame | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const from = i;
      let escaped = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      if (!top?.keys) continue; // a string in an array or at the top: a value
      let j = i + 1;
      while (j < text.length && (text[j] === ' ' || text[j] === '\t' || text[j] === '\n' || text[j] === '\r')) j++;
      if (text[j] !== ':') continue; // a member's value
      const raw = text.slice(from, i + 1);
      const key: string = escaped ? JSON.parse(raw) : raw.slice(1, -1);
      if (top.keys.has(key)) return `${top.path}/${keyName(key)}`;
      top.keys.add(key);
      top.at = keyName(key);
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const path: string = top ? `${top.path}/${top.at}` : '';
      if (top) stack.push(top);
      top = { keys: c === 0x7b ? new Set() : null, path, at: '0' };
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      top = stack.pop() ?? null;
    } else if (c === 0x2c /* , */ && top && !top.keys) {
      top.at = String(Number(top.at) + 1);
    }
  }
  return null;
}
