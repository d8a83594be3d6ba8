import { defineConfig } from 'vitest/config';

/**
 * The suites that run on both dialects: the `postgres` project runs them
 * again with REBILL_TEST_DIALECT=postgres, each test on a database of its own
 * (test/support/postgres.ts). A suite joins this list once everything it
 * touches works on PostgreSQL.
 */
const PORTABLE_SUITES = [
  'test/store/store.test.ts',
  'test/store/batch-rows.test.ts',
  'test/store/postgres.test.ts',
  'test/service/service.test.ts',
  'test/service/import.test.ts',
  'test/http/api-*.test.ts',
  'test/webhooks/*.test.ts',
];

export default defineConfig({
  test: {
    // Every rebill process a test spawns is checked for the secrets it was given (issue 8, item 7).
    setupFiles: ['test/support/secret-scan.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Crash and drain tests spawn real daemons; two cores, so keep the pool small.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'sqlite', include: ['test/**/*.test.ts'], exclude: ['test/store/postgres.test.ts'] } },
      { extends: true, test: { name: 'postgres', include: PORTABLE_SUITES, env: { REBILL_TEST_DIALECT: 'postgres' } } },
    ],
  },
});
