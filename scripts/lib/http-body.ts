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

/** A request whose answer did not arrive in full within its deadline (fetchText). */
export class DeadlineError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no full answer within ${timeoutMs / 1000} s`);
    this.name = 'DeadlineError';
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

/** A secret shorter than this is hidden only where no letter or digit stands right beside it. */
const SHORT_SECRET = 8;

/** serverText of a server's text with the credentials sent to it (a server or proxy may echo them) shown as ***. */
export function withoutSecrets(text: string, secrets: readonly (string | undefined)[], max = 200): string {
  let t = text.slice(0, 64 * 1024);
  for (const secret of secrets) {
    if (!secret) continue;
    if (secret.length >= SHORT_SECRET) t = t.split(secret).join('***');
    // A short one only where it stands alone: as a part of words too (a password "r" in InfluxDB's
    // "reader not authorized ... requires admin privilege") it made the server's line unreadable,
    // and each *** showed where the password's letters stood, so the line gave the password away.
    else t = t.replace(new RegExp(`(?<![\\p{L}\\p{N}])${secret.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\p{L}\\p{N}])`, 'gu'), '***');
  }
  return serverText(t, max);
}

/**
 * An endpoint under a server URL's path (`ping` under http://proxy/influxdb is http://proxy/influxdb/ping,
 * not the proxy's /ping); the URL's own query and fragment are not carried over.
 */
export function endpointUnder(url: string, path: string): URL {
  const base = new URL(url);
  base.search = '';
  base.hash = '';
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return new URL(path, base);
}

/**
 * The credentials a request to InfluxDB sends, as a server or proxy could echo them back: the token,
 * the password, and the Basic header's user:password, as it is and in base64 (what the header holds).
 */
export function sentCredentials(c: { token?: string; username?: string; password?: string }): string[] {
  const pair = c.username ? `${c.username}:${c.password ?? ''}` : undefined;
  return [c.token, c.password, pair, pair && Buffer.from(pair).toString('base64')].filter((x): x is string => !!x);
}

/**
 * fetch with one deadline for the request and its whole answer (a server may stop sending
 * half-way), the answer read as text up to `maxBytes`: DeadlineError past the deadline,
 * BodyTooLargeError past the size.
 */
export async function fetchText(url: URL, init: RequestInit, timeoutMs: number, maxBytes: number): Promise<{ res: Response; text: string }> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { ...init, signal });
    return { res, text: await boundedText(res, maxBytes) };
  } catch (e) {
    if (signal.aborted) throw new DeadlineError(timeoutMs);
    throw e;
  }
}

/** The body of a response as text, refused past `max` bytes (the rest is not read). */
export async function boundedText(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > max) {
    await res.body?.cancel().catch(() => {});
    throw new BodyTooLargeError(max);
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
      throw new BodyTooLargeError(max);
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
