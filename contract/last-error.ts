// A source's `last_error` in the status: a fixed sentence per error_code, plus at most the exit code
// and the signal the gateway itself saw. Never any text of the capture tool (its stderr goes to the
// log only, through redactFreeText), so nothing a tool prints (an address in any form, a device
// name, an environment dump) can reach the broker. LAST_ERROR_PATTERN is the status schema's
// `last_error` pattern (test/contract.test.ts checks they are the same): it cannot hold a run of
// more than 3 hex digits.
import type { SourceErrorCode } from './types.ts';

/** The fixed sentence for each error_code. */
export const LAST_ERROR_SENTENCES: Readonly<Record<SourceErrorCode, string>> = {
  cannot_start: 'the capture command could not be started',
  exited: 'the capture command exited',
  bad_capture: 'the capture is not a valid pcap or pcapng stream',
  read_failed: 'the capture could not be read',
  failed: 'the source failed',
};

/** Signals a `last_error` may name (Linux's standard signals). */
export const LAST_ERROR_SIGNALS = [
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGKILL',
  'SIGUSR1',
  'SIGSEGV',
  'SIGUSR2',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGSTKFLT',
  'SIGCHLD',
  'SIGCONT',
  'SIGSTOP',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGURG',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGVTALRM',
  'SIGPROF',
  'SIGWINCH',
  'SIGIO',
  'SIGPWR',
  'SIGSYS',
] as const;

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const facts = `(?: with code [0-9]{1,3})?(?: by (?:${LAST_ERROR_SIGNALS.join('|')}))?`;

/** What a `last_error` may be: one of the fixed sentences, the exited one optionally with exit code and signal. */
export const LAST_ERROR_PATTERN = `^(?:${Object.values(LAST_ERROR_SENTENCES)
  .map((s) => esc(s) + (s === LAST_ERROR_SENTENCES.exited ? facts : ''))
  .join('|')})$`;

const LAST_ERROR_RE = new RegExp(LAST_ERROR_PATTERN);

/** True if `text` is a `last_error` the contract accepts. */
export function isLastError(text: string): boolean {
  return LAST_ERROR_RE.test(text);
}

/** The `last_error` for a failure: the fixed sentence of `code`; for `exited`, the exit code (0-255) and signal when known. */
export function lastErrorText(code: SourceErrorCode, exit?: { code?: number | null; signal?: string | null }): string {
  let s = LAST_ERROR_SENTENCES[code];
  if (code === 'exited' && exit) {
    if (typeof exit.code === 'number' && Number.isInteger(exit.code) && exit.code >= 0 && exit.code <= 255) s += ` with code ${exit.code}`;
    if (exit.signal && (LAST_ERROR_SIGNALS as readonly string[]).includes(exit.signal)) s += ` by ${exit.signal}`;
  }
  return s;
}
