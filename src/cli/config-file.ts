/** Shared by the commands that read the daemon's config file. */
import { ConfigError, formatProblems, loadConfig, type Config } from '../config/index.js';
import { EXIT_CONFIG } from '../errors.js';

/** `--config`, else REBILL_CONFIG, else config/rebill.yaml. */
export function configPath(flag: string | undefined): string {
  return flag ?? process.env.REBILL_CONFIG ?? 'config/rebill.yaml';
}

/** Loads the config, or prints every problem and returns the exit code 78. */
export function loadConfigOrReport(file: string): Config | typeof EXIT_CONFIG {
  try {
    return loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${formatProblems(err.problems)}\n${err.problems.length} problem${err.problems.length === 1 ? '' : 's'} in ${file}\n`);
    return EXIT_CONFIG;
  }
}
