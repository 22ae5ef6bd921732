// Reading an HTTP answer from a server that may not be the one asked for (a wrong URL, a proxy, a
// hostile host): its body is read up to a limit, never whole whatever its length, and the text it
// sends is shown in a message with every control character escaped, so it cannot drive the terminal.

/** An answer longer than the limit a caller set. */
export class BodyTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`the answer is longer than ${maxBytes / 2 ** 20} MiB`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Text a server sent, as an error message may show it: at most `max` characters, every control
 * character escaped (\u001b...), so an answer cannot move the cursor or retitle the terminal.
 */
export function serverText(text: string, max = 200): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
  return text.slice(0, max).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The body of a response as text, refused past `max` bytes (the rest is not read). */
export async function boundedText(res: Response, max: number, tooLarge: (max: number) => Error = (m) => new BodyTooLargeError(m)): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > max) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge(max);
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let n = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(max);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Why a parsed /query answer is not InfluxQL's shape ({results: [{series: [{columns, values}]}]}), or null. */
export function notInfluxQlShape(body: unknown): string | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'it is not a JSON object';
  const b = body as { results?: unknown; error?: unknown };
  if (b.error !== undefined && typeof b.error !== 'string') return '"error" is not a string';
  if (b.results === undefined) return b.error === undefined ? 'it has no "results"' : null;
  if (!Array.isArray(b.results)) return '"results" is not a list';
  for (const r of b.results) {
    if (r === null || typeof r !== 'object') return 'a result is not an object';
    const { series, error } = r as { series?: unknown; error?: unknown };
    if (error !== undefined && typeof error !== 'string') return 'a result\'s "error" is not a string';
    if (series === undefined) continue;
    if (!Array.isArray(series)) return '"series" is not a list';
    for (const s of series) {
      if (s === null || typeof s !== 'object') return 'a series is not an object';
      const { columns, values, tags } = s as { columns?: unknown; values?: unknown; tags?: unknown };
      if (!Array.isArray(columns) || !columns.every((c) => typeof c === 'string')) return 'a series has no list of column names';
      if (values !== undefined && (!Array.isArray(values) || !values.every((v) => Array.isArray(v)))) return 'a series\' "values" is not a list of rows';
      if (tags !== undefined && (tags === null || typeof tags !== 'object' || !Object.values(tags).every((t) => typeof t === 'string')))
        return 'a series\' "tags" are not names and strings';
    }
  }
  return null;
}
