// The schema files of the contract (schemas/*.json), read from the package as JSON text rather than
// imported as JSON modules (`import ... with { type: 'json' }`): the older Node 20 releases that
// engines.node allows (20.12 among them) print "ExperimentalWarning: Importing JSON modules is an
// experimental feature" on stderr for those, on every start of `presence` (a non-JSON line in the
// gateway's journal). They are found under the package root, the same from the TypeScript sources
// and from the compiled build (package.json `files` ships contract/schemas/ and the aggregator's
// calibration.schema.json; packageJson in scripts/package-root.ts). Each keeps the type TypeScript gives its JSON file.
import { packageJson } from '../scripts/package-root.ts';

export const countsSchemaJson = packageJson<typeof import('./schemas/counts.schema.json', { with: { type: 'json' }})>('contract/schemas/counts.schema.json');
export const statusSchemaJson = packageJson<typeof import('./schemas/status.schema.json', { with: { type: 'json' }})>('contract/schemas/status.schema.json');
export const sketchSchemaJson = packageJson<typeof import('./schemas/sketch.schema.json', { with: { type: 'json' }})>('contract/schemas/sketch.schema.json');
