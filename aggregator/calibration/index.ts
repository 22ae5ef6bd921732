// Calibration of counts to people: the public API.
//
//   import { fit, fitZone, applyZone, leaveOneOut, Calibration, readCalibration } from './aggregator/calibration/index.ts';
//   const z = fitZone([{ estimate: 12, people: 3, session: 'day-1' }, ...]);   // people = k * (estimate - b)
//   applyZone(z, 20);                                                          // { value, low, high }
export {
  fit,
  fitZone,
  priorFromZones,
  FitError,
  type Sample,
  type ZoneFit,
  type FitResult,
  type FitOptions,
  type Prior,
  type Param,
  type DataSummary,
} from './fit.ts';
export { applyZone, Calibration, type People } from './apply.ts';
export { leaveOneOut, type EvalSample, type LeaveOneOut, type Scores, type SessionScores } from './evaluate.ts';
export {
  readCalibration,
  parseCalibration,
  writeCalibration,
  formatCalibration,
  toCalibrationFile,
  checkCalibration,
  CalibrationFileError,
  FORMAT,
  type CalibrationFile,
  type ZoneCalibration,
  type Estimator,
} from './file.ts';
export { readOccupancy, parseOccupancy, readPointCounts, parsePointCounts, meanOccupancy, TruthError, type Occupancy, type PointCount } from './truth.ts';
export { pairOccupancy, pairPointCounts, type CountedWindow, type PairedWindow } from './pair.ts';
export { MIN_SESSIONS, MIN_WINDOWS } from './checks.ts';
export { pairCaptures, countCapture, sessionName, type CaptureTruth, type CaptureOptions } from './capture.ts';
