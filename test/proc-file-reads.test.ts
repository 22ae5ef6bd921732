// Files a person names (config, secret, calibration, truth, scenario) are read at most to their
// limit, whatever their size says: a file under /proc says 0 bytes and can hold far more
// (/proc/self/pagemap: gigabytes; a config path linked there read 5 GB before it was stopped),
// and a file can grow between its stat and its read. /proc/kallsyms is the kernel's symbol list:
// a few MiB of text behind a size of 0, more than every limit here.
import { readFileSync, statSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readConfigFile, MAX_CONFIG_BYTES } from '../scripts/lib/config-loader.ts';
import { MAX_SECRET_BYTES, readSecretFile } from '../scripts/lib/secrets.ts';
import { readAtMost, readSmallFileBytes } from '../scripts/lib/small-file.ts';

const PROC = '/proc/kallsyms';
const usable = (() => {
  try {
    return statSync(PROC).size === 0 && readFileSync(PROC).length > 4 * 2 ** 20;
  } catch {
    return false;
  }
})();

const tmp = mkdtempSync(join(tmpdir(), 'proc-file-reads-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.skipIf(!usable)('a file whose stat says 0 bytes but that holds more than the limit', () => {
  it('a config file linked to it is refused as too big, not read whole or parsed', () => {
    const link = join(tmp, 'presence.yaml');
    symlinkSync(PROC, link);
    expect(() => readConfigFile(link)).toThrow(`config file ${link} holds more than 1 MiB; a config file is at most 1 MiB`);
    expect(MAX_CONFIG_BYTES).toBe(2 ** 20);
  });

  it('a secret file is refused as too big', () => {
    expect(MAX_SECRET_BYTES).toBe(64 * 1024);
    expect(() => readSecretFile(PROC, 'mqtt.password_file')).toThrow(`mqtt.password_file: ${PROC} holds more than 64 KiB; a secret file is at most 64 KiB`);
  });

  it('a calibration, truth or scenario file is refused as too big', () => {
    expect(() => readSmallFileBytes(PROC, 4 * 2 ** 20)).toThrow('holds more than 4 MiB; at most 4 MiB is read');
  });

  it('readAtMost stops one chunk past the limit', () => {
    expect(readAtMost(PROC, 1000)).toBeNull();
    const head = readAtMost('/proc/self/stat', 4096);
    expect(head?.length).toBeGreaterThan(0);
  });
});
