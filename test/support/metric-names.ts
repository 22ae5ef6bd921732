// Prometheus naming conventions of a /metrics text: a counter's name ends in _total, nothing else's does.
// Only the project's own metrics (presence_*): prom-client's standard ones keep their usual names
// (nodejs_active_handles_total is a gauge there).
export function metricNameProblems(text: string): string[] {
  const problems: string[] = [];
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (!t) continue;
    const [, name, type] = t;
    if (!name.startsWith('presence_')) continue;
    if (type === 'counter' && !name.endsWith('_total')) problems.push(`${name}: a counter whose name does not end in _total`);
    if (type !== 'counter' && name.endsWith('_total')) problems.push(`${name}: a ${type} whose name ends in _total`);
  }
  return problems;
}

/** The TYPE of each metric in a /metrics text. */
export function metricTypes(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out[m[1]] = m[2];
  return out;
}
