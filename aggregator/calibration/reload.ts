// The aggregator's calibration file: loaded at start (a file that does not parse stops the
// aggregator with the reason, never a silent default) and reloaded on SIGHUP (a bad file then keeps
// the calibration in use and logs why).
import type { Logger } from 'pino';
import { Calibration } from './apply.ts';
import { readCalibration } from './file.ts';

/** The fix for a calibration file that does not read (after its line naming the file, the line and the problem). */
export const CALIBRATION_FILE_HINT = 'give the file presence calibrate wrote (aggregator/README.md, "Calibration: people from counts")';

export function loadCalibration(file: string): Calibration {
  return new Calibration(readCalibration(file), file);
}

/** What a failed reload leaves for /healthz ("degraded" until a reload succeeds). */
export function reloadProblem(file: string, err: string): string {
  return `calibration ${file} not reloaded on SIGHUP (${err}): the calibration loaded before is still in use; fix: correct the file (or write it again with presence calibrate), then send SIGHUP again`;
}

/**
 * Reloads `file` into `target.calibration` on each SIGHUP; returns a function that stops listening.
 * A failed reload keeps the calibration in use, logs why and leaves `calibrationProblem` set (the
 * aggregator's /healthz then says "degraded" with it) until a reload succeeds: the next restart
 * would refuse the file, so it must not wait for someone to read the log.
 */
export function reloadOnSighup(target: { calibration: Calibration | null; calibrationProblem?: string | null; log: Logger }, file: string): () => void {
  const onHup = () => {
    try {
      const next = loadCalibration(file);
      target.calibration = next;
      target.calibrationProblem = null;
      target.log.info({ file, zones: next.zones(), radio: next.radio, field: next.field }, 'calibration reloaded');
    } catch (e) {
      target.calibrationProblem = reloadProblem(file, (e as Error).message);
      target.log.error(
        {
          file,
          err: (e as Error).message,
          kept: target.calibration?.zones() ?? [],
          fix: 'correct the file (or write it again with presence calibrate), then send SIGHUP again',
        },
        'calibration not reloaded; keeping the one in use',
      );
    }
  };
  process.on('SIGHUP', onHup);
  return () => process.off('SIGHUP', onHup);
}
