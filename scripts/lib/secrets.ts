// Secrets come from a value or from a file holding it (first line), so a password never has to be
// on a command line: MQTT_PASSWORD or MQTT_PASSWORD_FILE, --mqtt-password-file, mqtt.password_file.
import { readFileSync } from 'node:fs';

/** The first line of a secret file, without its line ending. Throws an Error naming the file. */
export function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return text.split(/\r?\n/)[0];
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
    u = new URL(url);
  } catch {
    return '(unparsable url)';
  }
  u.username = '';
  u.password = '';
  for (const name of [...u.searchParams.keys()]) if (SECRET_PARAM.test(name)) u.searchParams.set(name, 'REDACTED');
  return u.toString();
}

/** Replaces every URL with credentials inside a free text (an error message) by its redacted form. */
export function redactUrlsIn(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi, (m) => {
    const r = redactUrl(m);
    return r === '(unparsable url)' ? m.replace(/\/\/[^/@\s]*@/, '//') : r;
  });
}
