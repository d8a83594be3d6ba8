/** Shared by the commands that read a config or scenario file. */
import { ConfigError, formatProblems, loadConfig, type Config } from '../config/index.js';
import { EXIT_CONFIG } from '../errors.js';

export { configFilePath as configPath } from '../config/index.js';

/** Prints every problem of a ConfigError on stderr, one per line, then a count line. */
export function reportConfigError(err: ConfigError, file: string): void {
  const lines = formatProblems(err.problems);
  process.stderr.write(`${lines.join('\n')}\n${lines.length} problem${lines.length === 1 ? '' : 's'} in ${file}\n`);
}

/** Loads the config, or prints every problem and returns the exit code 78. */
export function loadConfigOrReport(file: string): Config | typeof EXIT_CONFIG {
  try {
    return loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    reportConfigError(err, file);
    return EXIT_CONFIG;
  }
}
