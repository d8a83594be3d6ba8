import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Every rebill process a test spawns is checked for the secrets it was given (issue 8, item 7).
    setupFiles: ['test/support/secret-scan.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Crash and drain tests spawn real daemons; two cores, so keep the pool small.
    maxWorkers: 2,
  },
});
