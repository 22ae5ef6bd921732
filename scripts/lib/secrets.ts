// Secrets come from a value or from a file holding it (first line), so a password never has to be
// on a command line: MQTT_PASSWORD or MQTT_PASSWORD_FILE, --mqtt-password-file, mqtt.password_file.
import { type Stats, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { warning } from './deprecate.ts';
import { readAtMost } from './small-file.ts';

/** The name of the user this process runs as ("uid N" when it has no name). */
export function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/**
 * What is wrong with who may read a secret (a secret file, or a config file holding one) and its fix,
 * or null when only the readers it needs can read it. `chmod 600` is the fix for the file's own user
 * (and root); anyone else it would lock out. A service user that reads a root-owned file through its
 * group (mode 0640, group presence: how docs/deployment.md installs the services' secrets) needs that
 * group: only "every user of the machine" is then a problem, also for root checking such a file (sudo
 * presence doctor), whose chmod 600 would lock the service user out. A file this user reads only because
 * every user may is fixed by making it this user's.
 */
export function readableSecretProblem(path: string, st: Pick<Stats, 'mode' | 'uid' | 'gid'>): string | null {
  const mode = st.mode & 0o777;
  const modeText = `mode ${mode.toString(8).padStart(4, '0')}`;
  const uid = process.getuid?.();
  // Root checking a file that root's own group does not own, readable by that group (mode 0640, group
  // presence: `sudo presence doctor` on the secrets docs/deployment.md installs for the services): the
  // group is there so that the service user reads it, and chmod 600 would lock that user out, so
  // that the service stopped at its next start. Only every user is a problem there.
  if (uid === 0 && st.gid !== 0 && mode & 0o040)
    return mode & 0o004 ? `can be read by every user of the machine (${modeText}): chmod o-rwx ${path} (its group reads it: the service user's)` : null;
  if (uid === undefined || uid === 0 || uid === st.uid) return mode & 0o044 ? `can be read by others than its owner (${modeText}): chmod 600 ${path}` : null;
  const groups = [process.getgid?.(), ...(process.getgroups?.() ?? [])];
  if (groups.includes(st.gid) && mode & 0o040)
    return mode & 0o004 ? `can be read by every user of the machine (${modeText}): chmod o-rwx ${path} (${currentUser()} reads it through its group)` : null;
  if ((mode & 0o044) === 0) return null;
  const user = currentUser();
  return `can be read by others than its owner (${modeText}), uid ${st.uid}: chown ${user} ${path} && chmod 600 ${path} (${user} runs this; chmod 600 alone would lock it out)`;
}

/** A secret file is at most this big (a password, a token, a certificate's key fits many times over). */
export const MAX_SECRET_BYTES = 64 * 1024;

/** The first line of a secret file, without its line ending. Throws an Error naming the file (but a missing one whose name may be the secret: missingSecretFile). */
export function readSecretFile(path: string, what: string): string {
  const given = path;
  let text: string;
  try {
    // Checked before reading: a fifo would block the read forever, a device or a huge file fill memory.
    const st = statSync(path);
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a fifo' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'a socket';
      throw new Error(`${what}: ${path} is not a regular file (${kind})`);
    }
    if (st.size > MAX_SECRET_BYTES)
      throw new Error(`${what}: ${path} is ${+(st.size / 1024).toFixed(1)} KiB; a secret file is at most ${MAX_SECRET_BYTES / 1024} KiB`);
    const bytes = readAtMost(path, MAX_SECRET_BYTES);
    if (!bytes) throw new Error(`${what}: ${path} holds more than ${MAX_SECRET_BYTES / 1024} KiB; a secret file is at most ${MAX_SECRET_BYTES / 1024} KiB`);
    text = bytes.toString('utf8');
    const readable = readableSecretProblem(path, st);
    if (readable) warning(`${what}: ${path} ${readable}`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!code) throw e;
    if (code === 'ENOENT' && (!given.includes('/') || writtenWithoutFolder.has(given))) throw new Error(missingSecretFile(what, given));
    throw new Error(`${what}: cannot read ${path} (${code})`);
  }
  return firstLineSecret(text, path, what);
}

/**
 * The paths of secret files (`mqtt.password_file`, `influx.token_file`, ...) a config file gave without
 * a folder, as resolved against the config file's folder (resolvePaths): `/etc/presence/hunter2` for a
 * `password_file: hunter2` holds no `/` as written, and may be the password itself.
 */
const writtenWithoutFolder = new Map<string, string>();

/** Notes that the config file `file` wrote the secret file `resolved` as `written` (see writtenWithoutFolder). */
export function noteSecretFileAsWritten(resolved: string, written: string, file: string): void {
  if (!written.includes('/')) writtenWithoutFolder.set(resolved, file);
}

/**
 * The line for a secret file that is not there: `what: PATH does not exist` when the name as given
 * (`given`) holds a `/`, else without the name. A password given where the path of its file goes
 * (`--mqtt-password-file hunter2`, the `-file` flag taken for the other one, `password_file: hunter2`
 * in a config file) is no file, and the line that named it put the password on stderr and in the
 * journal; a path with a folder in it is no such slip, and is shown (as `shown`, resolved, when given)
 * so that a typo in it can be seen. A config file's value is judged as written there, not as resolved
 * against the file's folder (noteSecretFileAsWritten); `what` names the file and the key.
 */
export function missingSecretFile(what: string, given: string, shown = given): string {
  const file = writtenWithoutFolder.get(given) ?? writtenWithoutFolder.get(shown);
  if (file !== undefined)
    return `${what}: no such file, and the value written in ${file} is not shown, as one without a / may be the secret itself, written where the path of the file holding it goes; fix: write there the path of a file whose first line is the secret (a relative path starts from the config file's folder)`;
  return given.includes('/')
    ? `${what}: ${shown} does not exist`
    : `${what}: does not exist; the name given is not shown, as one without a / may be the secret itself, given where the path of the file holding it goes`;
}

/** The secret of a secret file's text: its first line, which may not be empty (an empty file, or the secret on a later line, is a mistake, not an empty password). */
export function firstLineSecret(text: string, path: string, what: string): string {
  const first = text.split(/\r?\n/)[0];
  if (first === '') throw new Error(`${what}: ${path} ${text.trim() === '' ? 'is empty' : 'has an empty first line'}: the secret is the file's first line`);
  return first;
}

/** Query parameters that carry a secret (InfluxDB 1.x takes `u` and `p`; tokens, keys). */
const SECRET_PARAM = /^(p|pass|passwd|password|pwd|token|access_token|secret|api[-_]?key|key|auth|authorization|sig|signature)$/i;

/**
 * A URL safe for logs, status and /healthz: no user name or password (userinfo) and no value of a
 * secret-looking query parameter. Every component logs URLs through this one helper.
 */
export function redactUrl(url: string | undefined): string {
  if (url === undefined || url === '') return '';
  let u: URL;
  try {
    new URL(url);
    // A password that starts with digits and holds a / (`mqtt://user:12/ss@host`) parses as a port
    // and a path: its user information is taken out as typed first.
    u = new URL(withoutUserinfo(url));
  } catch {
    return '(unparsable url)';
  }
  u.username = '';
  u.password = '';
  for (const name of [...u.searchParams.keys()]) if (SECRET_PARAM.test(name)) u.searchParams.set(name, 'REDACTED');
  return u.toString();
}

/**
 * True when the text is a URL the product takes: one with a host that Node's URL parser reads, and no
 * `@` after that host (atAfterHost). A scheme pattern alone lets `mqtt://user:password@[::1` through,
 * which then throws, with the password, inside a client library.
 */
export function isParsableUrl(text: string): boolean {
  return parsesWithHost(text) && !atAfterHost(text) && outOfRangePort(text) === undefined && !badUserinfoEscape(text);
}

/**
 * True when a URL's user name or password holds a `%` that starts no `%XX` escape, or escapes that are
 * no UTF-8 (`mqtt://u:p%Zz@host`, `http://u:%FF@host`): Node reads such a URL, but the user name and
 * password cannot be decoded, and mqtt.js and the InfluxDB clients threw "URI malformed" at the start
 * (the aggregator with a stack trace).
 */
export function badUserinfoEscape(text: string): boolean {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return false;
  }
  try {
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
    return false;
  } catch {
    return true;
  }
}

/** Why a URL with a bad escape in its user name or password is refused, and the fix (the end of a one-line error). */
export const USERINFO_ESCAPE_HINT =
  'holds a % in its user name or password that starts no %XX escape (or escapes that are no UTF-8), so they cannot be read; fix: write a % there as %25, or give the user name and password apart from the URL';

/**
 * The port of a URL, as typed, when it is outside 1-65535 and the URL would be one with another port
 * (`mqtt://host:99999`, which no parser reads; `mqtt://host:0`, which none can connect to); else undefined.
 */
export function outOfRangePort(text: string): string | undefined {
  const bare = withoutUserinfo(text);
  const m = /^([a-z][a-z0-9+.-]*:\/\/(?:\[[^\]/?#]*\]|[^:/?#[\]]*):)(\d+)(?=[/?#]|$)/i.exec(bare);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port >= 1 && port <= 65535) return undefined;
  return parsesWithHost(`${m[1]}1${bare.slice(m[0].length)}`) ? m[2] : undefined;
}

/** Why a URL with a port outside 1-65535 is refused (the end of a one-line error). */
export const PORT_RANGE_HINT = 'is out of range (1-65535)';

/** True when Node's URL parser reads the text as a URL with a host. */
function parsesWithHost(text: string): boolean {
  try {
    return new URL(text).hostname !== '';
  } catch {
    return false;
  }
}

/**
 * True when a URL a parser reads holds an `@` after its host, in its path, query or fragment
 * (`http://influx:8086/a@b`). Such a text cannot be told from a URL whose password holds a /, ? or #
 * not percent-encoded: `http://user:8086/a@b` (user `user`, password `8086/a`) reads as host `user`, port
 * 8086 and path `/a@b`. No URL the product takes holds one (isParsableUrl), so that in every URL it takes
 * the user information is exactly what comes before the last `@`, which the redaction takes out; a
 * credential-free URL it takes is never shortened.
 */
export function atAfterHost(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.pathname + u.search + u.hash).includes('@');
  } catch {
    return false;
  }
}

/** Why a URL with an @ after its host is refused, and the fix (the end of a one-line error). */
export const AT_AFTER_HOST_HINT =
  'holds an @ after its host (in its path, query or fragment), which cannot be told from a password holding a /, ? or # (mqtt://user:12/ss@host reads as host user, port 12); fix: write an @ in a path or query as %40, and a /, ?, # or @ in a password as %2F, %3F, %23, %40';

/**
 * A URL as the user typed it, for an error that echoes it: its user name and password (and the value
 * of a secret-looking query parameter) taken out, nothing else changed. `redactUrl` would print
 * `http://in flux:8086` as "(unparsable url)", and `redactUrlsIn` as `http://in/ flux:8086`.
 * Text that no URL parser reads as one with a host is a typo (`http//user:pw@host`, `mqtt:/user:pw@host`,
 * `user:pw@host:8086`, a password with a `/` in it): everything from after its scheme (a prefix that
 * ends in a slash) up to its last `@` is taken out, where the user information of a URL would be;
 * so it is from a URL a parser misreads (`mqtt://user:12/ss@host`, see userinfoEnd).
 */
export function redactTypedUrl(text: string): string {
  const bare = withoutUserinfo(text);
  if (!parsesWithHost(bare)) return bare;
  const u = new URL(bare);
  return [...u.searchParams.keys()].some((k) => SECRET_PARAM.test(k)) ? redactUrl(bare) : bare;
}

/** The scheme of a URL as typed, up to its slashes (`mqtt://`, also `http//` or `mqtt:/`); '' when it has none. */
const TYPED_SCHEME = /^[a-z][a-z0-9+.-]*:?\/+/i;

/**
 * Where the user information of a URL as typed ends: the index of the `@` before its host, or -1 when
 * it has none. `start` is where its authority begins, after `scheme://`. The last `@` of the text
 * ends it whenever a password can be seen: an `@` before the first `/`, `?` or `#` (`u:p@ss@host`,
 * also `u:p@ss/x@host`, whose password holds a `/` after an `@`), a text no parser reads with an `@`
 * (`user:pa/ss@host`, which parsers see as host `user` and port `pa`), and a `name:digits` before
 * the first `/`, `?` or `#` with an `@` later (`user:12/ss@host` parses as host `user`, port 12).
 * Read so, a URL with an `@` in its path after a port (`http://influx:8086/x@y`) loses more than
 * its user information; a password is never left in. No URL the product takes is such a one
 * (atAfterHost): in those, the last `@` is where the parser ends the user information.
 */
function userinfoEnd(text: string, start: number): number {
  const at = text.lastIndexOf('@');
  if (at < start) return -1;
  const authority = /^[^/?#]*/.exec(text.slice(start))?.[0] ?? '';
  return authority.includes('@') || !parsesWithHost(text) || /^[^[\]:]*:\d*$/.test(authority) ? at : -1;
}

/** A URL as typed without its user information (see userinfoEnd); the rest unchanged. */
function withoutUserinfo(text: string): string {
  const start = TYPED_SCHEME.exec(text)?.[0].length ?? 0;
  const at = userinfoEnd(text, start);
  return at < 0 ? text : text.slice(0, start) + text.slice(at + 1);
}

/**
 * Why a flag's value is not an http(s) URL of InfluxDB, as one line naming the flag, the value (without
 * credentials) and an example; undefined when it is one. Checked before any connection, so a typo is
 * not reported as an InfluxDB that "cannot be reached: Invalid URL".
 */
export function influxUrlProblem(text: string, name = '--influx-url'): string | undefined {
  const shown = `${name} ${JSON.stringify(redactTypedUrl(text))}`;
  if (!/^https?:\/\//i.test(text))
    return `${shown} does not start with http:// or https:// (InfluxDB answers HTTP); fix: give an http(s) URL, like http://influxdb:8086`;
  if (atAfterHost(text)) return `${shown} ${AT_AFTER_HOST_HINT}`;
  if (badUserinfoEscape(text)) return `${shown} ${USERINFO_ESCAPE_HINT}`;
  const port = outOfRangePort(text);
  if (port !== undefined) return `${shown}: port ${port} ${PORT_RANGE_HINT}; fix: give InfluxDB's port, like http://influxdb:8086`;
  if (!isParsableUrl(text)) return `${shown} is not a valid URL; fix: give InfluxDB's address as an http(s) URL, like http://influxdb:8086`;
  return undefined;
}

/** A URL inside a free text: a scheme, ://, then up to white space, a quote or an angle bracket. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;

/** The characters that end a URL in a free text (URL_IN_TEXT), and those up to the next one. */
const URL_TAIL = /^[^\s"'<>]*/;

/**
 * The index of the `@` that ends the user information of `url`, a URL of a free text cut at `from`
 * (by white space, a quote or an angle bracket: a password may hold any of them, `mqtt://u:pa ss@host`,
 * which parsers read and mqtt.js takes), or -1 when what follows the cut is not taken for more of it.
 * Never past a line break, into another URL (`://`) or to the `***@` of user information already taken
 * out (withoutBareUserinfo: a text redacted once, `org "***@h"`, is not cut again). Up to the next `@`:
 * - when the URL's authority so far is no host with an optional port (`mqtt://u:Sp1`, `mqtt://u:`,
 *   `mqtt://u:pa/ss`): a password begun, whatever is between (`mqtt://u:correct horse staple@broker`,
 *   `mqtt://u:Sp1 Q2"Q3'Q4@broker`, `mqtt://u:"pw"@h`);
 * - when it holds an `@` with a bare host after it (no port or path: `u:Sp1 Q2@Q3 Q4@influx`, a password
 *   holding an `@` and a space), or is a bare host and a `:` comes before the next `@` (`mqtt://u S1:Q2@broker`,
 *   a user name with a space): if at most one white space is before that `@` and each cut there is followed
 *   by a letter, a digit or the `@` itself.
 * So a URL with a port or a path is never run on into the text after it (`mqtt://broker:1883 (source
 * ssh pi@gw)`), nor a host into a sentence (`mqtt://broker; ask ops@example.org`), JSON (`"mqtt://broker",
 * "mail":"ops@example.org"`) or another URL. Sentence punctuation before a white space
 * (`mqtt://broker:1883:`, `(mqtt://b:1883),`) is no part of the URL there. Not found so: a password
 * starting with a port-like number or a path before its white space (`mqtt://u:12 34@host`).
 */
function userinfoAfterCut(text: string, url: string, from: number): number {
  const at = text.indexOf('@', from);
  if (at < 0) return -1;
  const gap = text.slice(from, at);
  if (/[\r\n]/.test(gap) || gap.includes('://') || /(?:^|[\s"'`<>(/=:])\*\*\*$/.test(gap)) return -1;
  const trim = (s: string) => (/\s/.test(text[from]) ? s.replace(/[.,;:!?)\]}]+$/, '') : s);
  const rest = url.slice(url.indexOf('://') + 3);
  const userinfoAt = rest.lastIndexOf('@');
  const authority = /^[^/?#]*/.exec(rest)?.[0] ?? '';
  let bareHost: boolean;
  if (userinfoAt >= 0) bareHost = /^[^:/?#]*$/.test(trim(rest.slice(userinfoAt + 1)));
  else if (!/^(?:\[[^\]]*\]|[^:[\]]*)(?::\d+)?$/.test(trim(authority))) return at;
  else bareHost = /^[^:/?#]*$/.test(trim(rest)) && gap.includes(':');
  const cutsFollowed = [...gap.matchAll(/[\s"'<>]/g)].every((m) => /[\p{L}\p{N}@]/u.test(text[from + m.index + 1]));
  return bareHost && (gap.match(/\s/g)?.length ?? 0) <= 1 && cutsFollowed ? at : -1;
}

/**
 * The URLs of a free text, each as [start, end, text]: as URL_IN_TEXT finds them, except that a URL
 * cut by white space, a quote or an angle bracket runs on to the end of what follows the `@` that ends
 * its user information where userinfoAfterCut finds one after the cut.
 */
function urlsIn(text: string): [start: number, end: number, url: string][] {
  const out: [number, number, string][] = [];
  const re = new RegExp(URL_IN_TEXT.source, 'gi');
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let end = m.index + m[0].length;
    for (let at = userinfoAfterCut(text, text.slice(m.index, end), end); at >= 0; at = userinfoAfterCut(text, text.slice(m.index, end), end))
      end = at + 1 + (URL_TAIL.exec(text.slice(at + 1))?.[0].length ?? 0);
    re.lastIndex = end;
    out.push([m.index, end, text.slice(m.index, end)]);
  }
  return out;
}

/**
 * True when the text holds a URL with credentials: a user name or password (`mqtt://user:password@broker`,
 * also one no parser reads, `mqtt://u:p@[::1`, `mqtt://user:pa/ss@broker`, or one holding a space or a quote,
 * `mqtt://user:pa ss@broker`) or a value of a secret-looking query parameter
 * (`http://influx:8086/?u=writer&p=...`, `?token=...`), as redactUrl takes out.
 */
export function holdsUrlCredentials(text: string): boolean {
  if (withoutBareUserinfo(text) !== text || withoutTokens(text) !== text) return true;
  for (const [, , url] of urlsIn(text)) {
    // User information as redactTypedUrl takes it out, also where no parser reads it (a password
    // holding a /, `mqtt://user:pa/ss@broker`) or one reads it wrongly (`mqtt://user:12/ss@broker`).
    if (userinfoEnd(url, url.indexOf('://') + 3) >= 0) return true;
    try {
      for (const [k, v] of new URL(url).searchParams) if (v !== '' && SECRET_PARAM.test(k)) return true;
    } catch {
      // No parser reads it, and it has no @: nothing where user information would be.
    }
  }
  return false;
}

/**
 * Replaces every URL with credentials inside a free text (an error message) by its redacted form:
 * its user information taken out as redactTypedUrl does, also where no parser reads the URL
 * (`mqtt://user:pa/ss@broker:1883`, `mqtts://u:p@ss@broker`), then a URL a parser reads as redactUrl does.
 * A URL cut by a space, a quote or an angle bracket loses what follows up to the `@` that ends its user
 * information where there is one (urlsIn, userinfoAfterCut): `mqtt://u:pa ss@broker:1883 refused` becomes
 * `mqtt://broker:1883 refused`; `mqtt://broker:1883; ask ops@example.org` stays as it is.
 */
export function redactUrlsIn(text: string): string {
  let out = '';
  let from = 0;
  for (const [start, end, found] of urlsIn(text)) {
    // Punctuation that ends a sentence or a clause is the text's, kept as it is (`mqtt://u:p@h: refused`
    // is no URL with an empty port, to be shown as `mqtt://h refused`).
    const punctuation = /[.,;:!?]*$/.exec(found)?.[0] ?? '';
    const url = found.slice(0, found.length - punctuation.length);
    const bare = withoutUserinfo(url);
    const r = redactUrl(bare);
    out += text.slice(from, start) + (r === '(unparsable url)' ? bare : r) + punctuation;
    from = end;
  }
  return withoutTokens(withoutBareUserinfo(out + text.slice(from)));
}

/** A line for stderr or a log without the credentials of any URL (or token) in it: redactUrlsIn, only where holdsUrlCredentials finds some. */
export function redactedLine(text: string): string {
  return holdsUrlCredentials(text) ? redactUrlsIn(text) : text;
}

/** An HTTP Authorization header's credentials (`Authorization: Token ...`, `"authorization":"Bearer ..."`). */
const AUTHORIZATION = /\b(authorization["']?\s*[:=]\s*["']?(?:(?:token|bearer|basic)\s+)?)(?!\*\*\*)[^\s"',;}]+/gi;
/** A token after its scheme outside a header (`Token abc123...`): one holding a digit or ending in `=`, so `Bearer authentication` stays. */
const SCHEME_TOKEN = /\b((?:token|bearer)\s+)(?=[\w.~+/=-]{8,})(?=[^\s"',;}]*(?:\d|=(?![\w])))[\w.~+/=-]+/gi;
/** A secret flag or variable with its value (`--influx-token=...`, `MQTT_PASSWORD=...`); a `-file`/`_FILE` one names a file. */
const SECRET_ASSIGNMENT = /(^|[^\w-])((?:--)?[\w-]*(?:password|passwd|token|secret)=)(?!\*\*\*|REDACTED\b)[^\s"'&,;]+/gi;

/**
 * A free text with the value of every token or password that is not in a URL replaced by `***`: an
 * Authorization header (`Authorization: Token ...`), a token after its scheme (`Bearer eyJ0...`), a
 * secret flag or variable (`--influx-token=...`, `INFLUX_TOKEN=...`). Their names stay.
 */
export function withoutTokens(text: string): string {
  return text.replace(AUTHORIZATION, '$1***').replace(SCHEME_TOKEN, '$1***').replace(SECRET_ASSIGNMENT, '$1$2***');
}

/** A word of a free text that holds an `@`: up to white space, a quote, a backtick or an angle bracket. */
const WORD_WITH_AT = /[^\s"'`<>]*@[^\s"'`<>]*/g;

/** A user name and a password in quotes before an `@` and a host, without a scheme's `//`: `u:"pa ss"@broker`, `mqtt:/u:'pw'@broker`. */
const QUOTED_USERINFO = /(^|[\s(=,;[{])([^\s"'`<>@]*?):(["'])[^\r\n]*?\3@(?=[\p{L}\p{N}[])/gu;

/** A time of day, perhaps after a date (`12:30`, `2026-11-28T12:30:05`): before an `@` (`at 12:30@lobby`) no user name and password. */
const TIME_OF_DAY = /^(?:\d{4}-\d\d-\d\d[T ]?)?\d{1,2}:\d\d(?::\d\d(?:[.,]\d+)?)?$/;

/** A scheme of a broker or InfluxDB URL typed without its `//` (`mqtt:/`, `https:`); another word with a colon is no scheme (`/usr/bin:/opt/...`). */
const KNOWN_SCHEME_PREFIX = /^(?:mqtts?|wss?|tcp|tls|ssl|https?):\/*/i;

/**
 * A free text with the user information of every URL-like word without `://` replaced by `***`: a
 * broker or InfluxDB address with credentials given without its scheme (`user:secret@broker:1883`,
 * `user:secret@broker.example.org`), with a scheme missing a slash (`mqtt:/user:secret@broker`, what a
 * path made of `mqtt://user:secret@broker` becomes) or its colon (`http//user:secret@host`). Such a
 * word has an `@` followed by a host (a letter, digit or `[`), and before it, after the word's last `/`
 * or `=` before its first `:` (`/var/lib/mqtt:/...`, `--site=...`), a broker's or InfluxDB's scheme and
 * anything (`mqtt:/TOKEN@broker`), or a `user:password`. The `***` shows where the credentials were;
 * the host, a path before them and a scheme stay: `/var/lib/mqtt:/***@broker`, `--site=***@broker`.
 * A password in quotes is found too (`u:"pa ss"@broker` becomes `***@broker`).
 * Left whole, as no credentials: an e-mail address (`ops@example.org`, no `:` before its `@`),
 * `mailto:`, `name:@host` (no password), a time of day (`at 12:30@lobby`), and a list of paths
 * (`PATH=/usr/bin:/opt/python@3.11/bin`: a "password" holding a `/` counts only when it does not start
 * with one and no `/` follows the host, `user:pa/ss@broker:1883`). A word with `://` is left to the URL
 * rules (urlsIn). Not found: a user information holding white space, a quote or an angle bracket not
 * around all of the password (nothing in the text tells where it begins without a scheme), or a
 * password holding a `/` before a host with a path.
 */
export function withoutBareUserinfo(text: string): string {
  if (!text.includes('@')) return text;
  // A password in quotes (`u:"pa ss"@broker`, as a shell or a YAML line holds it) before the words are cut at quotes.
  const unquoted = text.replace(
    QUOTED_USERINFO,
    (_m, lead: string, user: string) => `${lead}${user.slice(0, Math.max(user.lastIndexOf('/'), user.lastIndexOf('=')) + 1)}***@`,
  );
  return unquoted.replace(WORD_WITH_AT, (word) => {
    if (word.includes('://')) return word;
    const at = word.lastIndexOf('@');
    const host = word.slice(at + 1);
    if (!/^[\p{L}\p{N}[]/u.test(host)) return word;
    const before = word.slice(0, at);
    const colon = before.indexOf(':');
    if (colon < 0) return word;
    const start = Math.max(before.lastIndexOf('/', colon), before.lastIndexOf('=', colon)) + 1;
    const info = before.slice(start);
    const scheme = KNOWN_SCHEME_PREFIX.exec(info)?.[0] ?? '';
    if (scheme) {
      if (info.length === scheme.length) return word;
    } else {
      const password = info.slice(info.indexOf(':') + 1);
      if (/^mailto:/i.test(info) || password === '' || TIME_OF_DAY.test(info)) return word;
      if (password.includes('/') && (password.startsWith('/') || host.includes('/'))) return word;
    }
    return `${word.slice(0, start)}${scheme}***${word.slice(at)}`;
  });
}

/** Connection settings of an InfluxDB with the credentials taken out of its URL. */
export interface InfluxCredentials {
  /** The URL without user name and password (fetch refuses a URL with credentials). */
  url: string;
  username?: string;
  password?: string;
  token?: string;
}

/**
 * Splits `http://user:password@host:8086` into the URL without credentials and the user name and
 * password (percent-decoded), the one place every InfluxDB client of the project does it. Credentials
 * given separately win over those in the URL. With `api: 'v2'` and no token given, the URL's userinfo
 * is the token: `user:password` (InfluxDB 1.8's v2 form) or the one part given (a 2.x token). An unparsable URL is returned as it is.
 */
export function influxCredentials<T extends Partial<InfluxCredentials>>(c: T, api: 'v1' | 'v2' = 'v1'): T {
  if (!c.url) return c;
  let u: URL;
  try {
    u = new URL(c.url);
  } catch {
    return c;
  }
  if (!u.username && !u.password) return c;
  const username = decodeURIComponent(u.username) || undefined;
  const password = decodeURIComponent(u.password) || undefined;
  u.username = '';
  u.password = '';
  let url = u.toString();
  if (!c.url.endsWith('/') && url.endsWith('/') && u.pathname === '/') url = url.slice(0, -1);
  const out: T = { ...c, url };
  if (api === 'v2') out.token ??= username && password ? `${username}:${password}` : (password ?? username);
  else if (c.username === undefined && c.password === undefined) {
    if (username !== undefined) out.username = username;
    if (password !== undefined) out.password = password;
  }
  return out;
}

/**
 * Why a path a command writes (a file or folder it makes) may not be the one given: it holds a URL's
 * credentials, pasted there (`--out mqtt://user:secret@broker`), and a file or folder so named shows
 * them to every user who lists its folder. One line naming the flag and the value without them;
 * undefined for any other path.
 */
export function pathCredentialsProblem(name: string, path: string): string | undefined {
  if (!holdsUrlCredentials(path)) return undefined;
  return `${name} "${redactUrlsIn(path)}": holds a URL's user name and password, not a path: a file or folder so named shows them to every user who lists its folder`;
}

/** A JSON string literal (a key or a value) of a log line. */
const JSON_STRING = /"(?:[^"\\]|\\.)*"/g;

/**
 * A log line (one JSON object, as pino writes it) with the credentials of every URL or URL-like
 * word, and every token or password value outside one (withoutTokens), in its keys and values taken
 * out, as redactUrlsIn does: the last guard of every log, whatever a
 * call site put in it (a path or name that holds a URL pasted into the wrong flag, a client library's
 * error). Only a string that holds credentials is rewritten; the rest of the line stays byte for byte.
 */
export function redactLogLine(line: string): string {
  if (!line.includes('@') && !line.includes('://') && withoutTokens(line) === line) return line;
  return line.replace(JSON_STRING, (literal) => {
    let text: string;
    try {
      text = JSON.parse(literal) as string;
    } catch {
      return literal;
    }
    return holdsUrlCredentials(text) ? JSON.stringify(redactUrlsIn(text)) : literal;
  });
}
