// Progress of long work: a bar on stderr on a terminal (cli-progress, loaded when used), or plain lines where no terminal shows one.

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

/**
 * One bar at a time for the stages of a run, each ending where the next starts (`simulating last
 * week`, then `replaying last week ...`), on stderr when it is a terminal: create() loads the bar
 * library once, so that a stage can start inside a synchronous callback (the simulator's).
 */
export class StageBars {
  private bar: ReturnType<typeof makeBar> | null = null;

  private constructor(
    private readonly lib: typeof import('cli-progress'),
    private readonly unit: string,
  ) {}

  /** Bars of `unit` on stderr, or null when it is no terminal. */
  static async create(unit: string): Promise<StageBars | null> {
    if (!process.stderr.isTTY) return null;
    return new StageBars(await import('cli-progress'), unit);
  }

  /** Ends the bar shown, if any, and starts one for `label` out of `total`. */
  stage(label: string, total: number): void {
    this.stop();
    this.bar = makeBar(this.lib, label, total, this.unit, false);
    this.bar.start(total, 0);
  }

  update(n: number): void {
    this.bar?.update(n);
  }

  /** Ends the bar shown (it stays on its line as it was drawn last). */
  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
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

/**
 * Plain progress lines for the stretches of a run that printed nothing, the calibration run's, the
 * simulator's and the gateways' replay (over a minute for the default run, hours for a long one), when the live table is
 * not shown (stdout not a terminal, or --no-live): a line at each quarter of the simulated minutes of
 * a stage (at most one a second), and at least every `everyMs` between them, e.g.
 * "replaying today through 3 gateways: 12 of 30 simulated minutes (40%)". No terminal codes.
 */
export class ProgressLines {
  private label = '';
  private done: () => number = () => 0;
  private quarter = 0;
  private last = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly write: (s: string) => void,
    private readonly totalS: number,
    private readonly everyMs = 10_000,
  ) {
    // The replay lets go of the event loop: a line every everyMs even between two windows (--speed 1).
    // The simulator does not: its own callbacks call tick().
    this.timer = setInterval(() => this.tick(), Math.min(1000, everyMs));
    this.timer.unref();
  }

  /** A new stage: `label` ("simulating today"), and how many simulated seconds of it are done. */
  stage(label: string, done: () => number): void {
    this.flush();
    this.label = label;
    this.done = done;
    this.quarter = 0;
    this.last = Date.now();
  }

  /** Prints the stage's line when it has reached another quarter, or `everyMs` passed since the last line. */
  tick(): void {
    this.line(false);
  }

  /** The stage's line when it has reached a quarter not printed yet (its end: 100%), at once. */
  private flush(): void {
    this.line(true);
  }

  private line(atEnd: boolean): void {
    if (!this.label) return;
    const doneS = Math.max(0, Math.min(this.totalS, this.done()));
    const quarter = Math.floor((4 * doneS) / this.totalS);
    const now = Date.now();
    // A quarter reached within a second of the last line (a stage of a few seconds) waits for the
    // next tick, or the stage's end.
    if (now - this.last < this.everyMs && (quarter <= this.quarter || (now - this.last < 1000 && !atEnd))) return;
    this.quarter = Math.max(this.quarter, quarter);
    this.last = now;
    const min = (s: number) => String(+(s / 60).toFixed(1));
    this.write(`${this.label}: ${min(doneS)} of ${min(this.totalS)} simulated minutes (${Math.floor((100 * doneS) / this.totalS)}%)\n`);
  }

  /** The end of a stage whose result is printed next: its line if not printed yet (100%), and no
   *  more lines until the next stage. */
  finish(): void {
    this.flush();
    this.label = '';
  }

  /** The end of the last stage: its line if not printed yet (100%), and no more lines. */
  end(): void {
    this.flush();
    this.stop();
  }

  /** No more lines (a run cut short or failed). */
  stop(): void {
    this.label = '';
    clearInterval(this.timer);
  }
}
