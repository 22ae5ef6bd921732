// A progress bar on stderr for long work, shown only on a terminal (cli-progress, loaded when used).

export interface Progress {
  update(n: number): void;
  stop(): void;
}

/** A bar `LABEL [====] 42% | n/total UNIT` on stderr when it is a terminal and `show` holds; else null. */
export async function progressBar(label: string, total: number, unit: string, show = true): Promise<Progress | null> {
  if (!process.stderr.isTTY || !show) return null;
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit}`, hideCursor: true },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return bar;
}
