import type { Command } from 'commander';
import type { CommandContext } from './index.js';

export function registerSimulate(program: Command, ctx: CommandContext): void {
  program.command('simulate').description('not yet implemented').action(() => {
    process.stderr.write('simulate: not yet implemented\n');
    ctx.exitCode = 1;
  });
}
