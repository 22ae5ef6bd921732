// A copy of the firmware module that also exports every one of its globals, so that a test can
// read the module's state that lives outside linear memory (AssemblyScript's top-level `let`s are
// WebAssembly globals: a memory scan never sees them). The module itself is unchanged: only
// export entries are added, named GLOBAL_PREFIX + index.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GLOBAL_PREFIX = '__test_global_';

function readLeb(b: Uint8Array, o: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  let x: number;
  do {
    x = b[o++]!;
    value += (x & 0x7f) * 2 ** shift;
    shift += 7;
  } while (x & 0x80);
  return { value, next: o };
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let x = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) x |= 0x80;
    out.push(x);
  } while (n > 0);
  return out;
}

/** Skips an import's description (after module and field names); returns whether it is a global. */
function skipImportDesc(b: Uint8Array, o: number): { global: boolean; next: number } {
  const kind = b[o++]!;
  if (kind === 0) return { global: false, next: readLeb(b, o).next }; // function: type index
  if (kind === 1) {
    o++; // table: reftype, then limits
    const flags = b[o++]!;
    o = readLeb(b, o).next;
    if (flags & 1) o = readLeb(b, o).next;
    return { global: false, next: o };
  }
  if (kind === 2) {
    const flags = b[o++]!;
    o = readLeb(b, o).next;
    if (flags & 1) o = readLeb(b, o).next;
    return { global: false, next: o };
  }
  return { global: true, next: o + 2 }; // global: valtype, mutability
}

/** The module's bytes with an export added for every global (imported ones first, as numbered). */
export function exportAllGlobals(wasm: Uint8Array): { bytes: Uint8Array; globals: number } {
  const sections: { id: number; body: Uint8Array }[] = [];
  let o = 8;
  while (o < wasm.length) {
    const id = wasm[o++]!;
    const size = readLeb(wasm, o);
    sections.push({ id, body: wasm.subarray(size.next, size.next + size.value) });
    o = size.next + size.value;
  }
  let globals = 0;
  for (const s of sections) {
    if (s.id === 2) {
      let p = readLeb(s.body, 0);
      for (let i = 0; i < p.value; i++) {
        let q = p.next;
        for (let k = 0; k < 2; k++) {
          const len = readLeb(s.body, q);
          q = len.next + len.value;
        }
        const d = skipImportDesc(s.body, q);
        if (d.global) globals++;
        p = { value: p.value, next: d.next };
      }
    }
    if (s.id === 6) globals += readLeb(s.body, 0).value;
  }
  const added: number[] = [];
  for (let i = 0; i < globals; i++) {
    const name = new TextEncoder().encode(`${GLOBAL_PREFIX}${i}`);
    added.push(...leb(name.length), ...name, 0x03, ...leb(i));
  }
  const exportAt = sections.findIndex((s) => s.id === 7);
  let body: number[];
  if (exportAt >= 0) {
    const count = readLeb(sections[exportAt]!.body, 0);
    body = [...leb(count.value + globals), ...sections[exportAt]!.body.subarray(count.next), ...added];
    sections[exportAt] = { id: 7, body: Uint8Array.from(body) };
  } else {
    // the export section comes after the global section (id 6) and before the start section (8)
    const at = sections.findIndex((s) => s.id !== 0 && s.id > 7 && s.id !== 12);
    body = [...leb(globals), ...added];
    sections.splice(at < 0 ? sections.length : at, 0, { id: 7, body: Uint8Array.from(body) });
  }
  const out: number[] = [...wasm.subarray(0, 8)];
  for (const s of sections) out.push(s.id, ...leb(s.body.length), ...s.body);
  return { bytes: Uint8Array.from(out), globals };
}

/** Names of the globals in index order, from the text format next to the module when the build wrote one. */
export function globalNames(wasmPath: string): string[] {
  const wat = wasmPath.replace(/\.wasm$/, '.wat');
  if (!existsSync(wat)) return [];
  const names: string[] = [];
  for (const m of readFileSync(wat, 'utf8').matchAll(/^\s*\((?:import\s+"[^"]*"\s+"[^"]*"\s+)?\(?global\s+\$(\S+)/gm)) names.push(m[1]!);
  return names;
}

/** Writes the module with every global exported to a temporary file; returns its path and the globals' names. */
export function moduleWithGlobals(wasmPath: string): { path: string; globals: number; names: string[] } {
  const { bytes, globals } = exportAllGlobals(readFileSync(wasmPath));
  const path = join(mkdtempSync(join(tmpdir(), 'presence-globals-')), 'presence.wasm');
  writeFileSync(path, bytes);
  return { path, globals, names: globalNames(wasmPath) };
}

/** Every global's value (number or bigint), by index. */
export function globalValues(exports: object, globals: number): (number | bigint)[] {
  const x = exports as Record<string, { value: number | bigint }>;
  return Array.from({ length: globals }, (_, i) => x[`${GLOBAL_PREFIX}${i}`]!.value);
}
