import type { Command } from 'commander';
import type { CommandContext } from './index.js';

export function registerMigrate(program: Command, ctx: CommandContext): void {
  program.command('migrate').description('not yet implemented').action(() => {
    process.stderr.write('migrate: not yet implemented\n');
    ctx.exitCode = 1;
  });
}
