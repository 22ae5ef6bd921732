// Files a person names (a scenario, a calibration) are read whole; these checks come first, so a
// wrong path fails at once with a sentence instead of hanging on a fifo or filling memory from a
// device or a huge file. (Config and secret files have their own, same checks in config-loader.ts
// and secrets.ts.)
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** 1.9 MiB, 64 KiB. */
const size = (bytes: number) => (bytes >= 2 ** 20 ? `${+(bytes / 2 ** 20).toFixed(1)} MiB` : `${+(bytes / 1024).toFixed(1)} KiB`);

/** What is wrong with a path that should be a regular file of at most maxBytes, or null. */
export function smallFileProblem(path: string, maxBytes: number): string | null {
  const st = statSync(path);
  if (st.isDirectory()) return 'is a folder, not a file';
  if (!st.isFile()) return `is not a regular file (${st.isFIFO() ? 'a fifo' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'a socket'})`;
  if (st.size > maxBytes) return oversizedCapture(path) ?? `is ${size(st.size)}; at most ${size(maxBytes)} is read`;
  return null;
}

/**
 * A file's bytes, at most maxBytes of them: null when it holds more. The size a stat gives is not
 * enough: a file under /proc says 0 and can hold gigabytes (/proc/self/pagemap: a config path
 * linked there read 5 GB before it was stopped), and a file can grow between the stat and the read.
 */
export function readAtMost(path: string, maxBytes: number): Buffer | null {
  const fd = openSync(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    const buf = Buffer.allocUnsafe(Math.min(maxBytes + 1, 64 * 1024));
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return Buffer.concat(chunks, total);
      total += n;
      if (total > maxBytes) return null;
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
  } finally {
    closeSync(fd);
  }
}

/** The bytes of a small regular file; throws an Error whose message is the problem (fs errors as they are). */
export function readSmallFileBytes(path: string, maxBytes: number): Buffer {
  const problem = smallFileProblem(path, maxBytes);
  if (problem) throw Object.assign(new Error(problem), { code: 'ESMALLFILE' });
  const bytes = readAtMost(path, maxBytes);
  if (!bytes) throw Object.assign(new Error(`holds more than ${size(maxBytes)}; at most ${size(maxBytes)} is read`), { code: 'ESMALLFILE' });
  return bytes;
}

/** The text (UTF-8) of a small regular file; throws as readSmallFileBytes does. */
export function readSmallFile(path: string, maxBytes: number): string {
  return readSmallFileBytes(path, maxBytes).toString('utf8');
}

/** A control character other than white space (tab, line ends, form feed) or escape: not text. */
export function isBinaryText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 9 || (c > 13 && c < 32 && c !== 27)) return true;
  }
  return false;
}

/**
 * What makes bytes that should be a YAML or JSON text something else, or null: a capture (pcap or
 * pcapng, named by its magic number: the file most often given in the wrong place here), UTF-16
 * text, or other binary data. Said as such, instead of the YAML parser's complaint about line 1.
 */
export function notTextProblem(bytes: Buffer): string | null {
  const magic = bytes.length >= 4 ? bytes.readUInt32LE(0) : -1;
  if ([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1].includes(magic)) return 'is a pcap capture, not a text file';
  if (magic === 0x0a0d0d0a) return 'is a pcapng capture, not a text file';
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) return 'is UTF-16 text; save it as UTF-8';
  if (isBinaryText(bytes.subarray(0, 4096).toString('latin1'))) return 'is not a text file (it holds binary data)';
  return null;
}

/**
 * 'is a pcap capture, not a text file' when the file at path starts as a capture does, else null:
 * for a file too big to be read whole, whose size alone would send a person to make it smaller.
 */
export function oversizedCapture(path: string): string | null {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(4);
    if (readSync(fd, head, 0, 4, 0) < 4) return null;
    const problem = notTextProblem(head);
    return problem?.includes('capture') ? problem : null;
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
