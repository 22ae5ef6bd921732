import type { ChildProcess } from 'node:child_process';

/** SIGTERM and wait for the exit (servers save their state); no-op when it is not running. */
export async function stopGracefully(p: ChildProcess | null): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
}
