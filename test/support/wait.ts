/**
 * Waiting on events, not on the clock. A test waits for the thing it checks (a message, a log line, a
 * file, a counter) and asserts then; the bound here is only a safety net that turns a hang into an
 * error naming what never came, set close to the test timeout so that a slow, loaded machine never
 * reaches it while a broken implementation still fails.
 */
export const SAFETY_NET_MS = 50_000;

/** Resolves once `cond()` holds (checked every `everyMs`); rejects naming `what` after the safety net. */
export async function eventually(what: string, cond: () => boolean | Promise<boolean>, safetyNetMs = SAFETY_NET_MS, everyMs = 25): Promise<void> {
  const deadline = Date.now() + safetyNetMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`never happened (safety net of ${safetyNetMs} ms): ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
