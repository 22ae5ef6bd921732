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
