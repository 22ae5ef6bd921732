// The wire contract between gateways and aggregators: topics, version, payload schemas
// (schemas/*.schema.json), their TypeScript types and validators. Every side (gateway, aggregator,
// simulator load mode, scripts, tests) imports this module; nothing else defines a topic or a
// payload field. See README.md.
export * from './topics.ts';
export * from './types.ts';
export * from './validate.ts';
