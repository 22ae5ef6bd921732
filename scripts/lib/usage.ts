// Usage errors of every `presence` command, one way: what is wrong on one line (one line per
// problem when a configuration has several), then one hint line, exit code 2.
//
//   presence gateway: unknown option '--windw' (did you mean --window?)
//   hint: presence gateway --help lists the options
//
// Runtime failures (a broker that goes away, a capture that fails) are not usage errors: they are
// logged and end with exit code 1.
import { ConfigError } from './config-loader.ts';
import { holdsUrlCredentials, redactUrlsIn } from './secrets.ts';

/** A mistake in how a command was called: a flag, an argument, a file named on the command line. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** True for a configuration error found in a config file (its `where` names the file). */
function inConfigFile(e: ConfigError): boolean {
  return !/^(configuration|flags)\b/.test(e.where);
}

/**
 * The hint after a mistake in a component's config file: where its keys are described, since
 * `--help` lists the flags only (a file's keys are snake_case and nested, not the flags' names).
 */
function configFileHint(command: 'gateway' | 'aggregator'): string {
  return `${command}/README.md, "Configuration", lists every key of the file with its type and default (presence ${command} --help lists the flags)`;
}

/** The lines of a usage or configuration error, without the command prefix. */
export function problemLines(e: Error): string[] {
  if (e instanceof ConfigError) {
    // Problems from flags or the environment already name the flag or variable; a file's name its file.
    const fromFile = inConfigFile(e);
    return e.problems.map((p) => (fromFile ? `${e.where}: ${p}` : p));
  }
  return e.message.split('\n').filter((l) => l.trim() !== '');
}

/** The hint after a file named in a configuration (a capture, a TLS file) that is missing or unreadable. */
export const MISSING_FILE_HINT =
  "check the path: a relative path in a config file starts from the file's folder, one on the command line from the current folder";

/** The hint after a file named in a configuration that is there but may not be read. */
export const UNREADABLE_FILE_HINT =
  'the file is there, but the user that runs the command may not read it (or its folder): give that user read access, with the chown or chmod the line names where it names one';

/** The hint after a secret file with nothing on its first line. */
export const EMPTY_SECRET_HINT = "write the secret on the file's first line, e.g. printf '%s\\n' 'SECRET' > FILE && chmod 600 FILE";

/**
 * The hint for missing or unreadable files: "check the path" for a missing one, read access for one
 * that is there (a root-only password file copied by scp is the right path: checking it does not help).
 */
export function fileProblemsHint(problems: string[]): string {
  if (problems.every((p) => /(is empty|has an empty first line): the \w+ is the file's first line$/.test(p))) return EMPTY_SECRET_HINT;
  const unreadable = (p: string) => /\(permission denied\)|cannot be read by /.test(p);
  if (problems.every(unreadable)) return UNREADABLE_FILE_HINT;
  if (problems.some(unreadable)) return `${MISSING_FILE_HINT}; and ${UNREADABLE_FILE_HINT}`;
  return MISSING_FILE_HINT;
}

export function defaultHint(command: string): string {
  return `presence ${command} --help lists the options`;
}

/**
 * A line as a terminal may show it: every control character but tab (escape, carriage return, bell,
 * DEL, C1) and every invisible format character (zero-width, bidirectional overrides and isolates,
 * BOM, line and paragraph separators) written as \uXXXX. A line echoes what it was given (a file
 * name, a config key or value, a flag's value): given `\e]0;...\a` or U+202E it could retitle the
 * terminal, clear it or show the line's text reversed, and a zero-width character in a value the line
 * says is wrong would not be seen.
 */
export function printable(line: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
  return line.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/gu, (c) => {
    const cp = c.codePointAt(0) ?? 0;
    return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}

/** Prints a usage or configuration error (one line per problem, one hint line) and exits 2. */
export function exitUsage(command: string, e: Error, hint?: string): never {
  // A value echoed in a line may be a URL, or a broker address, with credentials pasted into a flag
  // or key of another kind (--queue-dir, --site): named without them (redactUrlsIn), whatever built the line.
  const lines = problemLines(e).map((l) => `presence ${command}: ${printable(holdsUrlCredentials(l) ? redactUrlsIn(l) : l)}\n`);
  const h = hint ?? (e as { hint?: string }).hint ?? defaultHint(command);
  process.stderr.write(`${lines.join('')}hint: ${printable(h)}\n`);
  process.exit(2);
}

/** exitUsage for a configuration error of the gateway or the aggregator: its own hint, else for a
 *  mistake in the config file where its keys are described, else the command's --help. */
export function exitConfig(command: 'gateway' | 'aggregator', e: ConfigError): never {
  exitUsage(command, e, e.hint ?? (inConfigFile(e) ? configFileHint(command) : undefined));
}

/** True for errors that mean "called wrongly" (exit 2), not "failed while running" (exit 1). */
export function isUsageError(e: unknown): e is Error {
  return e instanceof UsageError || e instanceof ConfigError;
}

/**
 * The line for standard output that could not be written (a full disk behind `> out.txt`,
 * /dev/full, an I/O error), instead of the stream error's stack trace: what failed, that what was
 * printed before it is all that got there, and what to do. A reader that went away (EPIPE) is not
 * this: callers handle it first.
 */
export function outputFailedLine(command: string, e: NodeJS.ErrnoException): string {
  const code = e.code ?? 'error';
  const why =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'no space left on the device it goes to (or the quota is full); fix: free some, or send the output elsewhere, then run it again'
      : code === 'EBADF'
        ? 'it is closed; fix: run it with its output open (not >&-)'
        : 'fix: check the device or file it goes to, or send the output elsewhere, then run it again';
  return `presence${command ? ` ${command}` : ''}: cannot write to standard output (${code}): the output is incomplete; ${why}\n`;
}

/**
 * Exits once what was written to standard output has gone out or failed: process.exit right after a
 * write to a full disk (/dev/full, `> out.txt`) ended before the write's error was seen, so the
 * output was lost with exit 0. A failure already said (outputFailedLine, the CLI's handler) makes
 * the exit code at least 1.
 */
export async function exitAfterOutput(code: number): Promise<never> {
  await new Promise<void>((resolve) => {
    if (process.stdout.destroyed || process.stdout.writableEnded) resolve();
    else process.stdout.write('', () => resolve());
  });
  // the stream's error event comes on the tick after the failed write's callback
  await new Promise<void>((resolve) => setImmediate(resolve));
  process.exit(Math.max(code, Number(process.exitCode ?? 0)));
}
