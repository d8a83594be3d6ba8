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
  'test/store/hot-path.test.ts',
  'test/store/postgres.test.ts',
  'test/service/service.test.ts',
  'test/http/api-create.test.ts',
  'test/http/api-reads.test.ts',
  'test/http/api-lifecycle.test.ts',
  'test/http/api-idempotency.test.ts',
  'test/http/api-group-commit.test.ts',
  'test/http/api-card-update.test.ts',
  'test/http/api-link-emails.test.ts',
  'test/http/callbacks.test.ts',
  'test/http/metrics.test.ts',
  'test/http/server.test.ts',
  'test/webhooks/*.test.ts',
  'test/engine/conditional-outcome.test.ts',
  'test/engine/containment.test.ts',
  'test/engine/logging.test.ts',
  'test/engine/seeds.test.ts',
];
// Not here, to keep `npm test` within its time: suites whose SQL the ones above already run (the
// CSV import's batches: batch-rows; the API's refusals, auth and OpenAPI document, which never
// reach the database; backpressure's 20,000 due at once: the scale-out e2e test collects 10,000
// on PostgreSQL with three daemons). And the suites driven by @sinonjs/fake-timers
// (test/engine/fake-timers, outage, engine-faults), which advance time without waiting for the
// network I/O a PostgreSQL connection needs; what they test (the retry policy, the calendar, the
// clock guard) does not depend on the database.

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
