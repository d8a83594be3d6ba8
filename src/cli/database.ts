/** Opening the configured database for a command, with a one-line error instead of a stack trace. */
import type { Config } from '../config/index.js';
import { openDatabase, type Db } from '../store/index.js';

/** Opens `config.database`, or prints why not and returns exit code 1. */
export function openDatabaseOrReport(config: Config): Db | 1 {
  try {
    return openDatabase(config.database.url, { synchronous: config.database.synchronous });
  } catch (err) {
    const url = config.database.url.replace(/\/\/[^@]*@/, '//***@');
    process.stderr.write(`cannot open database ${url}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
