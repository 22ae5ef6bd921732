// Whether the user running a command can read a file it was given, asked before a long job opens it,
// as a sentence with the fix (a capture root wrote with mode 0600 is the usual case).
import { accessSync, constants } from 'node:fs';

/** What is wrong with a file the user may not read, and the fix, in the words every such message uses. */
export const PERMISSION_DENIED = {
  problem: 'cannot be read (permission denied)',
  fix: 'give the user running this read access (e.g. chmod o+r on the file) or run as its owner',
} as const;

/** Why `path` cannot be read by this process, with the fix, or null when it can. */
export function unreadableProblem(path: string): string | null {
  try {
    accessSync(path, constants.R_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      return `${PERMISSION_DENIED.problem}; fix: ${PERMISSION_DENIED.fix}`;
    }
    return `cannot be read (${code ?? (e as Error).message})`;
  }
}
