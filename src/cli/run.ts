import type { Command } from 'commander';
import type { CommandContext } from './index.js';

export function registerRun(program: Command, ctx: CommandContext): void {
  program.command('run').description('not yet implemented').action(() => {
    process.stderr.write('run: not yet implemented\n');
    ctx.exitCode = 1;
  });
}
