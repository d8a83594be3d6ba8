/**
 * Setup file of every test file (vitest.config.ts): after the file's tests,
 * fail if any rebill child process it spawned printed a secret it was given
 * (issue 8, item 7: tokens, payment tokens and secrets never appear in logs).
 */
import { afterAll } from 'vitest';
import { secretLeaks } from '../e2e/support/processes.js';

afterAll(() => {
  const leaks = secretLeaks();
  if (leaks.length > 0) throw new Error(`secrets in rebill output:\n${[...new Set(leaks)].join('\n')}`);
});
