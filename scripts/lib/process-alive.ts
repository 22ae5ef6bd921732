// Whether a process id from a lock file still names a running process, for the locks that a run
// killed can leave behind (the gateway's queue folder, presence provision's files, the demo's folder).

/** Whether process `pid` is running: signal 0 reaches it, or it is another user's (EPERM). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
