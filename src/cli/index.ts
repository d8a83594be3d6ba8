/**
 * `rebill` command line: one file per command, each parsing its flags and
 * calling the layers below. This file wires them into commander and turns
 * usage errors into exit code 2 with a one-line reason and the usage.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { EXIT_USAGE } from '../errors.js';
import { registerPreview } from './preview.js';
import { registerCheckConfig } from './check-config.js';
import { registerMigrate } from './migrate.js';
import { registerRun } from './run.js';
import { registerSimulate } from './simulate.js';
import { registerFakeGateway } from './fake-gateway.js';
import { registerStatus } from './status.js';
import { registerSubscriptions } from './subscriptions.js';
import { registerBackup } from './backup.js';
import { registerWebhooks } from './webhooks.js';
import { registerMigrateTo } from './migrate-to.js';

/** Where a command reports its exit code; commander actions cannot return one. */
export interface CommandContext {
  exitCode: number;
}

/** Thrown by a command for bad arguments that commander cannot see (a bad date, a bad interval). */
export class UsageError extends Error {}

export async function main(argv: readonly string[]): Promise<number> {
  const ctx: CommandContext = { exitCode: 0 };
  const program = new Command('rebill')
    .description('Self-hosted recurring billing: calendar-correct schedules, exactly-once collection.')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerRun(program, ctx);
  registerMigrate(program, ctx);
  registerMigrateTo(program, ctx);
  registerCheckConfig(program, ctx);
  registerPreview(program, ctx);
  registerSimulate(program, ctx);
  registerFakeGateway(program, ctx);
  registerStatus(program, ctx);
  registerSubscriptions(program, ctx);
  registerBackup(program, ctx);
  registerWebhooks(program, ctx);
  // Nested commands (`subscriptions list`) need it too, or commander would exit the process itself.
  const override = (command: Command): void => {
    for (const sub of command.commands) {
      sub.exitOverride();
      override(sub);
    }
  };
  override(program);

  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      // commander already printed "error: ..." on one line; add the usage of the command that failed.
      process.stderr.write(`${usageOf(program, argv)}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\n${usageOf(program, argv)}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
}

/**
 * The `version` of the package.json above this module: dist/src/cli/ when
 * built, src/cli/ under the tests, so the file is looked for upwards.
 */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'rebill' && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

/** The usage line of the deepest command named in argv (`rebill subscriptions show <id> [options]`). */
function usageOf(program: Command, argv: readonly string[]): string {
  let command = program;
  const names: string[] = [];
  for (const arg of argv) {
    const sub = command.commands.find((c) => c.name() === arg);
    if (!sub) break;
    command = sub;
    names.push(sub.name());
  }
  return `usage: rebill ${[...names, command.usage()].join(' ')}`;
}
