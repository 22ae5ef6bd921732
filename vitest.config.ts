import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // `presence` runs the compiled build: compile what changed before any test starts.
    // One temporary folder per run, removed at its end (test/support/tmp.ts).
    globalSetup: ['test/support/build.ts', 'test/support/tmp.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites start real servers on free ports; two workers suit a 2-core machine.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
