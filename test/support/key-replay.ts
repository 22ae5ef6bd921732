// node:crypto with its CSPRNG draws kept and handed out again, for tests that count one capture
// twice under the same window keys (the keys themselves stay the CSPRNG's): while `keys.mode` is
// 'record' every draw is kept, while it is 'replay' the kept draws are handed out again in order.
// A test file mocks node:crypto with it:
//   const keys = vi.hoisted(() => ({ mode: 'off' as KeyReplay['mode'], kept: [] as Uint8Array[], next: 0 }));
//   vi.mock('node:crypto', async (importOriginal) => (await import('./support/key-replay.ts')).replayingCrypto(await importOriginal(), keys));

export interface KeyReplay {
  mode: 'off' | 'record' | 'replay';
  kept: Uint8Array[];
  next: number;
}

export function replayingCrypto(real: typeof import('node:crypto'), keys: KeyReplay): typeof import('node:crypto') {
  const randomFillSync = ((buf: Uint8Array, offset = 0, size = buf.length - offset) => {
    const out = real.randomFillSync(buf, offset, size);
    if (keys.mode === 'record') keys.kept.push(Uint8Array.from(buf.subarray(offset, offset + size)));
    else if (keys.mode === 'replay') buf.set(keys.kept[keys.next++]!, offset);
    return out;
  }) as typeof real.randomFillSync;
  return { ...real, default: { ...real, randomFillSync }, randomFillSync } as typeof import('node:crypto');
}
