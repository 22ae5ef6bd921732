// The engine's clock: one binary heap of timed tasks. Ties are broken so a run is reproducible:
// a window end goes before anything else at the same instant, then tasks in the order they were
// scheduled.

/** What a task does when its time comes (see sim.ts for the loop that runs them). */
export const TASK = {
  /** Close the truth window of every gateway. */
  WINDOW: 0,
  /** A crowd's next arrival (ref: the crowd). */
  ARRIVAL: 1,
  /** A device starts a Wi-Fi scan (ref: the device). */
  SCAN: 2,
  /** A device sends the next probe request of its scan (ref: the device). */
  PROBE: 3,
  /** A device sends a BLE advertisement (ref: the device). */
  ADVERT: 4,
  /** Sample who is in reach of every gateway, for the truth. */
  TICK: 5,
} as const;
export type TaskKind = (typeof TASK)[keyof typeof TASK];

export interface Task {
  t: number;
  pri: number;
  n: number;
  kind: TaskKind;
  ref: unknown;
}

function less(x: Task, y: Task): boolean {
  return x.t < y.t || (x.t === y.t && (x.pri < y.pri || (x.pri === y.pri && x.n < y.n)));
}

export class TaskQueue {
  private a: Task[] = [];
  private n = 0;

  get size(): number {
    return this.a.length;
  }

  /** Schedules `kind` at time t (s since the start of the run). */
  push(t: number, kind: TaskKind, ref: unknown): void {
    const item: Task = { t, pri: kind === TASK.WINDOW ? 0 : 1, n: this.n++, kind, ref };
    const a = this.a;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  /** The earliest task, removed from the queue. */
  pop(): Task | undefined {
    const a = this.a;
    if (!a.length) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l], a[m])) m = l;
        if (r < a.length && less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
