// The wire contract between gateways and aggregators: topics, version, payload schemas
// (schemas/*.schema.json), their TypeScript types and validators, and the address redaction that
// keeps free text safe to publish. Every side (gateway, aggregator, simulator load mode, scripts,
// tests) imports this module; nothing else defines a topic or a payload field. See README.md.
export * from './topics.ts';
export * from './types.ts';
export * from './validate.ts';
export * from './repeated-key.ts';
export * from './redact.ts';
export * from './last-error.ts';
export * from './sketch.ts';
export * from './influx.ts';
