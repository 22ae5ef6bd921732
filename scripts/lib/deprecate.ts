// Old names (flags, environment variables, config keys) keep working; each use prints one line
// naming the new name, once per process, on stderr (or wherever a test points the sink); other
// warnings about a setting (a config file holding secrets that others can read) go the same way.

type Sink = (line: string) => void;

let sink: Sink = (line) => process.stderr.write(`${line}\n`);
const seen = new Set<string>();

/** Reports that `old` was used instead of `replacement`, once per process per old name. */
export function deprecated(kind: 'flag' | 'environment variable' | 'config key', old: string, replacement: string, where?: string): void {
  const id = `${kind} ${old}`;
  if (seen.has(id)) return;
  seen.add(id);
  sink(`presence: warning: ${kind} ${old}${where ? ` (in ${where})` : ''} is deprecated, use ${replacement}; the old name still works for now`);
}

/**
 * Reports a duration written as a bare number where the setting always took one: it is read in its
 * old unit (a running config keeps its meaning) and the line says how to write it; once per process
 * per name.
 */
export function bareDuration(name: string, value: string, unit: 'ms' | 's', where?: string): void {
  const id = `bare ${name}`;
  if (seen.has(id)) return;
  seen.add(id);
  sink(
    `presence: warning: ${name}${where ? ` (in ${where})` : ''}: ${value} without a unit is deprecated; read as ${unit === 's' ? 'seconds' : 'milliseconds'}, as before; use ${value}${unit}`,
  );
}

/** Prints one warning line (`presence: warning: ...`), once per process per text, where deprecation lines go. */
export function warning(text: string): void {
  const id = `warning ${text}`;
  if (seen.has(id)) return;
  seen.add(id);
  sink(`presence: warning: ${text}`);
}

/** Runs `fn` with deprecation lines collected instead of printed; returns them with the result. */
export function captureDeprecations<T>(fn: () => T): { result: T; lines: string[] } {
  const lines: string[] = [];
  const before = sink;
  seen.clear();
  sink = (l) => lines.push(l);
  try {
    return { result: fn(), lines };
  } finally {
    sink = before;
    seen.clear();
  }
}
