import type { Command } from 'commander';
import type { CommandContext } from './index.js';

export function registerFakeGateway(program: Command, ctx: CommandContext): void {
  program.command('fake-gateway').description('not yet implemented').action(() => {
    process.stderr.write('fake-gateway: not yet implemented\n');
    ctx.exitCode = 1;
  });
}
