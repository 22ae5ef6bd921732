// Files replaced whole, atomically: a new temporary file beside the target (`PATH.tmp-PID`, created
// exclusively with mode 0600 whatever the umask), filled, given its mode (and owner), then renamed
// over the target. Used by the commands that write secrets and the files around them
// (presence corridor init and join, presence provision gateway). A target that is there and is no
// regular file (a link to /dev/stdout, a fifo, a device), or a link to an open file of the process
// (/dev/stdout when the output goes to a file), is refused: the rename would replace it.
//
// On any failure the temporary file is removed (it may hold a secret: a target that is a folder,
// or a folder that cannot be written, left `PATH.tmp-PID` with the secret in it) and a
// FileWriteError says what is wrong with the target in words, not with the temporary name:
//
//   try { writeFileAtomic(path, text, { mode: 0o600 }); }
//   catch (e) { if (e instanceof FileWriteError) throw new UsageError(`--out ${e.message}`); throw e; }
import { chmodSync, chownSync, lstatSync, readlinkSync, realpathSync, renameSync, rmSync, type Stats, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** A file that could not be written: `message` is "PATH: why; fix", `code` the system's error code. */
export class FileWriteError extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'FileWriteError';
  }
}

/** A write that failed for a full disk or a full quota. */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** What to do when a path the user gave is on a full disk (after the line naming its option and path). */
export const DISK_FULL_FIX = 'free some there, or choose a path on another device, then run it again';

/** "PATH: why; what to do" for a system error writing `path` (ENOTREG: the path is no regular file; EFDLINK: a link to an open file, /dev/stdout). */
export function fileWriteProblem(path: string, e: { code?: string }): FileWriteError {
  const code = e.code ?? 'EIO';
  const dir = dirname(path);
  const why =
    code === 'EACCES' || code === 'EPERM'
      ? `permission denied: this user may not write in ${dir}; run it as a user who may (sudo), or choose another path`
      : code === 'ENOENT'
        ? `the folder ${dir} does not exist or cannot hold files; check the path`
        : code === 'EISDIR'
          ? 'is a folder; give the path of a file'
          : code === 'ENOTREG'
            ? 'is not a regular file (a fifo, a device or a socket); give the path of a file'
            : code === 'EFDLINK'
              ? 'is a link to an open file of this process (/dev/stdout, /dev/fd/N), which the file would replace; give the path of a file'
              : code === 'ENOTDIR'
                ? `a part of ${dir} is a file, not a folder; check the path`
                : code === 'EROFS'
                  ? `${dir} is on a read-only file system; choose a path on a writable one`
                  : isDiskFull(e)
                    ? `no space left on the device of ${dir} (or the quota is full); ${DISK_FULL_FIX}`
                    : code === 'EEXIST'
                      ? `its temporary file ${path}.tmp-${process.pid} is there already (left by an earlier run that stopped); remove it, then run it again`
                      : `cannot be written (${code}); check the path and the device`;
  return new FileWriteError(path, code, `${path}: ${why}`);
}

export interface AtomicWriteOptions {
  /** Mode of the file once written (the temporary file is 0600 until then). */
  mode: number;
  /** Owner to give it (root only), e.g. the one of the file it replaces. */
  owner?: { uid: number; gid: number };
}

/** True when `path` is, or links through, an open file of a process (/dev/stdout, /dev/fd/N, /proc/self/fd/N). */
function linksToDescriptor(path: string): boolean {
  const inProc = (p: string) => {
    try {
      return /^\/proc\/[^/]+\/fd$/.test(realpathSync(dirname(p)));
    } catch {
      return false;
    }
  };
  let p = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    if (inProc(p)) return true;
    let link: string;
    try {
      if (!lstatSync(p).isSymbolicLink()) return false;
      link = readlinkSync(p);
    } catch {
      return false;
    }
    p = resolve(dirname(p), link);
  }
  return false;
}

/** Replaces `path` with `text` atomically; throws FileWriteError, leaving no temporary file behind. */
export function writeFileAtomic(path: string, text: string | Buffer, o: AtomicWriteOptions): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let created = false;
  // A target that is there and no regular file, through any link (/dev/stdout, a fifo, a device):
  // the rename would put the file in place of the link or node (as root, /dev/stdout itself).
  let target: Stats | undefined;
  try {
    target = statSync(path);
  } catch {}
  if (target && !target.isFile()) throw fileWriteProblem(path, { code: target.isDirectory() ? 'EISDIR' : 'ENOTREG' });
  // /dev/stdout with the output redirected to a file is a link to a regular file, through /proc:
  // the rename would still replace the link (as root, /dev/stdout itself).
  if (linksToDescriptor(path)) throw fileWriteProblem(path, { code: 'EFDLINK' });
  try {
    // A new file, never one that is there (wx): a link put at that name is not followed.
    writeFileSync(tmp, '', { mode: 0o600, flag: 'wx' });
    created = true;
    chmodSync(tmp, 0o600);
    writeFileSync(tmp, text);
    chmodSync(tmp, o.mode);
    if (o.owner) chownSync(tmp, o.owner.uid, o.owner.gid);
    renameSync(tmp, path);
  } catch (e) {
    // Only the file made here (an existing one at that name is not ours to remove).
    if (created) rmSync(tmp, { force: true });
    // A rename onto a folder fails on the target, the rest on the temporary name: both said of the target.
    throw fileWriteProblem(path, e as NodeJS.ErrnoException);
  }
}
