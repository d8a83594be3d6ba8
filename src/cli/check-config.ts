import type { Command } from 'commander';
import type { CommandContext } from './index.js';

export function registerCheckConfig(program: Command, ctx: CommandContext): void {
  program.command('check-config').description('not yet implemented').action(() => {
    process.stderr.write('check-config: not yet implemented\n');
    ctx.exitCode = 1;
  });
}
