// The one way a number is read from text (a flag, an environment variable, a scenario's
// string): decimal notation only, e.g. 12, -70, 0.5, .5, 1e3. JavaScript's Number() also takes
// "0x10" (16), "0b11", "0o7", "Infinity" and "" or "  " (0), so `--minutes 0x10` ran 16 minutes
// and an empty value read as 0: each is refused here and the caller names the flag.

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** The number written in `text` (surrounding spaces allowed), or NaN when it is not decimal notation. */
export function decimal(text: string): number {
  const t = text.trim();
  return DECIMAL.test(t) ? Number(t) : Number.NaN;
}
