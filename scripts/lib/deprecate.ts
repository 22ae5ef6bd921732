// Old names (flags, environment variables, config keys) keep working; each use prints one line
// naming the new name, once per process, on stderr (or wherever a test points the sink).

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
