// A progress bar on stderr for long work, shown only on a terminal (cli-progress, loaded when used).

export interface Progress {
  update(n: number): void;
  stop(): void;
}

/**
 * A bar `LABEL [====] 42% | n/total UNIT` on stderr when it is a terminal and `show` holds; else null.
 *
 * It leaves the terminal's modes alone (the cursor stays visible, line wrapping on): Ctrl-C ends a
 * command at once, before any code of its own could run (a simulation does not let go of the event
 * loop), so a cursor hidden or wrapping turned off by the bar stayed so in the shell afterwards. The
 * bar is narrowed to fit the terminal's width instead, so that it redraws in place on one line.
 */
export async function progressBar(label: string, total: number, unit: string, show = true): Promise<Progress | null> {
  if (!process.stderr.isTTY || !show) return null;
  const bar = makeBar(await import('cli-progress'), label, total, unit, false);
  bar.start(total, 0);
  return bar;
}

/**
 * A bar as progressBar's that appears only once the work has run `afterMs` (work that ends sooner
 * shows none) and is taken off the line when stopped, for a step whose result is printed after it.
 * Updates within a synchronous loop draw it (cli-progress redraws on update when its timer cannot run).
 */
export async function delayedProgressBar(label: string, total: number, unit: string, afterMs = 1000): Promise<Progress | null> {
  if (!process.stderr.isTTY) return null;
  const lib = await import('cli-progress');
  const t0 = Date.now();
  let bar: ReturnType<typeof makeBar> | null = null;
  return {
    update(n: number) {
      if (!bar && Date.now() - t0 >= afterMs) {
        bar = makeBar(lib, label, total, unit, true);
        bar.start(total, n);
      } else bar?.update(n);
    },
    stop() {
      bar?.stop();
    },
  };
}

function makeBar(lib: typeof import('cli-progress'), label: string, total: number, unit: string, clearOnComplete: boolean) {
  const format = `${label} [{bar}] {percentage}% | {value}/{total} ${unit}`;
  return new lib.SingleBar(
    { stream: process.stderr, format, hideCursor: false, linewrap: true, clearOnComplete, barsize: barWidth(format, total, process.stderr.columns) },
    lib.Presets.shades_classic,
  );
}

/** The bar's width in characters: 40, or less (at least 10) so that the whole line fits `columns`
 *  (80 where the terminal gives no width, as cli-progress then cuts its lines at 80). */
export function barWidth(format: string, total: number, columns: number | undefined): number {
  columns ||= 80;
  const rest = format.replace('{bar}', '').replace('{percentage}', '100').replace('{value}', String(total)).replace('{total}', String(total)).length;
  return Math.max(10, Math.min(40, columns - 1 - rest));
}
