import type { Command } from 'commander';
import { ConfigError, loadScenario } from '../config/index.js';
import { reportConfigError } from './config-file.js';
import { eventJson, runSimulation } from '../engine/simulate.js';
import { EXIT_USAGE } from '../errors.js';
import type { CommandContext } from './index.js';

/** `rebill simulate SCENARIO.yaml [--json]`: the real engine on a virtual clock (SPEC section 10). */
export function registerSimulate(program: Command, ctx: CommandContext): void {
  program
    .command('simulate')
    .description('run a scenario through the real engine on a virtual clock and print the timeline')
    .argument('<scenario>', 'scenario YAML file')
    .option('--json', 'one JSON object per line, sorted by time')
    .action(async (file: string, flags: { json?: boolean }) => {
      let scenario;
      try {
        scenario = loadScenario(file);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        reportConfigError(err, file);
        ctx.exitCode = EXIT_USAGE;
        return;
      }
      const { events } = await runSimulation(scenario);
      // Events are stored in commit order; a stable sort by instant keeps per-subscription order.
      const lines = events.map(eventJson).sort((a, b) => String(a.at).localeCompare(String(b.at)));
      const out: string[] = [];
      if (flags.json) {
        for (const line of lines) out.push(JSON.stringify(line));
      } else {
        for (const e of lines) {
          const { at, type, subscriptionId, cycle, attempt, amount, currency, status, declineCode, nextAttemptAt } = e as Record<string, unknown>;
          const parts = [String(at), String(type).padEnd(28), String(subscriptionId).padEnd(12)];
          if (cycle !== undefined) parts.push(`cycle ${String(cycle)}${attempt !== undefined ? `/${String(attempt)}` : ''}`);
          if (amount !== undefined) parts.push(`${String(amount)} ${String(currency)}`);
          if (status !== undefined) parts.push(String(status));
          if (declineCode) parts.push(String(declineCode));
          if (nextAttemptAt) parts.push(`retry at ${String(nextAttemptAt)}`);
          out.push(parts.join('  '));
        }
        const count = (t: string) => lines.filter((l) => l.type === t).length;
        out.push(`${lines.length} events: ${count('charge.succeeded')} captured, ${count('charge.failed')} failed attempts, ${count('subscription.payment_failed')} payment failures`);
      }
      process.stdout.write(out.join('\n') + '\n');
      ctx.exitCode = 0;
    });
}
