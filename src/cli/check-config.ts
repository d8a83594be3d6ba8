import type { Command } from 'commander';
import { configWarnings } from '../config/index.js';
import { checkExistingDatabase } from './database.js';
import type { CommandContext } from './index.js';
import { configPath, loadConfigOrReport } from './config-file.js';

/**
 * `rebill check-config [--config F]`: validate the configuration without
 * starting anything (SPEC section 10). Exit 0 with a one-line summary, or 78
 * with every problem on stderr, one per line, so CI and deploy hooks can gate
 * on it before a bad file reaches a running daemon. It refuses everything
 * `run` refuses (SPEC section 4), including a plan or gateway removed while
 * live subscriptions in the existing database still use it.
 */
export function registerCheckConfig(program: Command, ctx: CommandContext): void {
  program
    .command('check-config')
    .description('validate a configuration file and exit (0 valid, 78 invalid)')
    .option('--config <file>', 'configuration file (default: $REBILL_CONFIG, else config/rebill.yaml)')
    .action(async (flags: { config?: string }) => {
      const file = configPath(flags.config);
      const config = loadConfigOrReport(file);
      if (typeof config === 'number') {
        ctx.exitCode = config;
        return;
      }
      // What `run` would refuse against the database it would use (read-only; nothing is created).
      const refused = await checkExistingDatabase(config, file);
      if (refused !== 0) {
        ctx.exitCode = refused;
        return;
      }
      for (const warning of configWarnings(config)) process.stderr.write(`${file}: warning: ${warning}\n`);
      process.stdout.write(`config OK: ${config.plans.length} plans, ${Object.keys(config.gateways).length} gateways (${file})\n`);
      ctx.exitCode = 0;
    });
}
