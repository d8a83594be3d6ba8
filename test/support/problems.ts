/** Config test helper: the problems a refused file produced. */
import { ConfigError, type ConfigProblem } from '../../src/config/index.js';

/** Runs `run` and returns the problems of the ConfigError it throws; fails the test if it does not throw one. */
export function problemsOf(run: () => unknown): ConfigProblem[] {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error('expected a ConfigError');
}
