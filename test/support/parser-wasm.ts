// A test-only WebAssembly build of the frame parsers (firmware/assembly/frame.ts, results.ts) that exposes what
// the product module keeps inside: the result slots of one parsed frame. Tests compare them with
// TShark frame by frame. Compiled once per source state into the OS temp folder; never shipped.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const assembly = join(root, 'firmware', 'assembly');

/** Area a frame is placed in, with MARGIN bytes of filler on both sides of it. */
export const AREA_BYTES = 1 << 20;
const MARGIN = 1 << 13;

export interface ParsedSlot {
  /** Address as displayed, e.g. "74:42:c0:94:26:bb". */
  address: string;
  kind: number;
  rssi: number;
  seq: number;
}
export interface Parsed {
  radio: number;
  status: number;
  slots: ParsedSlot[];
}

export interface ParserWasm {
  /**
   * Parses `data` with 8 KiB of bytes of value `fill` on both sides: parsing the same frame with
   * different fills must give the same result, or the parser read outside the frame.
   */
  parse(linkType: number, data: Uint8Array, ignoreFcs?: boolean, fill?: number): Parsed;
  resultMax: number;
  slotSize: number;
}

function sourcesHash(): string {
  const h = createHash('sha256');
  for (const f of readdirSync(assembly).sort()) h.update(f).update(readFileSync(join(assembly, f)));
  return h.digest('hex').slice(0, 16);
}

export function buildParserWasm(): string {
  const dir = join(tmpdir(), 'presence-parser-wasm');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `parser-${sourcesHash()}.wasm`);
  if (existsSync(out)) return out;
  const entry = join(dir, `entry-${process.pid}.ts`);
  const frame = relative(dir, join(assembly, 'frame')).split('\\').join('/');
  const results = relative(dir, join(assembly, 'results')).split('\\').join('/');
  writeFileSync(
    entry,
    `export { parseFrame, frameRadio, frameStatus } from '${frame}';\n` +
      `export { resultsPtr, resultCount, RESULT_MAX, SLOT_SIZE } from '${results}';\n` +
      `const AREA: usize = memory.data(${AREA_BYTES}, 16);\n` +
      `export function areaPtr(): usize { return AREA; }\n`,
  );
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync(
    process.execPath,
    [
      join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js'),
      entry,
      '--runtime',
      'stub',
      '-O3',
      '--noAssert',
      '--use',
      'abort=',
      '--initialMemory',
      '32',
      '--maximumMemory',
      '32',
      '-o',
      tmp,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], cwd: root },
  );
  renameSync(tmp, out);
  return out;
}

declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
};

export function loadParserWasm(): ParserWasm {
  const bytes = readFileSync(buildParserWasm());
  const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as Record<string, any>;
  const area: number = ex.areaPtr();
  const resultMax: number = ex.RESULT_MAX.value;
  const slotSize: number = ex.SLOT_SIZE.value;
  let mem = new Uint8Array(ex.memory.buffer);
  return {
    resultMax,
    slotSize,
    parse(linkType, data, ignoreFcs = false, fill = 0) {
      if (data.length > AREA_BYTES - 2 * MARGIN) throw new Error('frame larger than the test area');
      if (mem.buffer !== ex.memory.buffer) mem = new Uint8Array(ex.memory.buffer);
      const ptr = area + AREA_BYTES - MARGIN - data.length;
      // MARGIN bytes of `fill` on both sides of the frame
      mem.fill(fill, ptr - MARGIN, area + AREA_BYTES);
      mem.set(data, ptr);
      ex.parseFrame(linkType >>> 0, ptr, data.length, ignoreFcs ? 1 : 0);
      const status: number = ex.frameStatus.value;
      const count: number = ex.resultCount.value;
      const results: number = ex.resultsPtr();
      const slots: ParsedSlot[] = [];
      const dv = new DataView(ex.memory.buffer);
      for (let i = 0; i < count; i++) {
        const s = results + i * slotSize;
        slots.push({
          address: [...mem.subarray(s, s + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':'),
          kind: mem[s + 6],
          rssi: dv.getInt8(s + 7),
          seq: dv.getUint16(s + 8, true),
        });
      }
      return { radio: ex.frameRadio.value, status, slots };
    },
  };
}
