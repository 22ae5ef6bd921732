// The aggregator's calibration file: loaded at start (a file that does not parse stops the
// aggregator with the reason, never a silent default) and reloaded on SIGHUP (a bad file then keeps
// the calibration in use and logs why).
import type { Logger } from 'pino';
import { Calibration } from './apply.ts';
import { readCalibration } from './file.ts';

export function loadCalibration(file: string): Calibration {
  return new Calibration(readCalibration(file), file);
}

/** Reloads `file` into `target.calibration` on each SIGHUP; returns a function that stops listening. */
export function reloadOnSighup(target: { calibration: Calibration | null; log: Logger }, file: string): () => void {
  const onHup = () => {
    try {
      const next = loadCalibration(file);
      target.calibration = next;
      target.log.info({ file, zones: next.zones(), radio: next.radio, field: next.field }, 'calibration reloaded');
    } catch (e) {
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
