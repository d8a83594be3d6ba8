import type { Command } from 'commander';
import { ConfigError, loadScenario } from '../config/index.js';
import { reportConfigError } from './config-file.js';
import { eventJson, runSimulation } from '../engine/simulate.js';
import { EXIT_USAGE } from '../errors.js';
import type { CommandContext } from './index.js';
import { lineOutput } from './output.js';

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
      // The timeline is printed as it becomes final, so a long scenario shows its first events at once
      // and `| head -1` ends the run instead of crashing on EPIPE.
      const out = lineOutput();
      const counts = { all: 0, captured: 0, failed: 0, paymentFailed: 0 };
      await runSimulation(scenario, {
        stopped: () => out.closed,
        onEvents: async (events) => {
          for (const event of events) {
            const e = eventJson(event);
            counts.all++;
            if (e.type === 'charge.succeeded') counts.captured++;
            if (e.type === 'charge.failed') counts.failed++;
            if (e.type === 'subscription.payment_failed') counts.paymentFailed++;
            await out.line(flags.json ? JSON.stringify(e) : textLine(e));
          }
          // Let a closed pipe's EPIPE be seen: the engine's database calls may never yield to the event loop.
          await new Promise((resolve) => setImmediate(resolve));
        },
      });
      if (!flags.json) {
        await out.line(`${counts.all} events: ${counts.captured} captured, ${counts.failed} failed attempts, ${counts.paymentFailed} payment failures`);
      }
      ctx.exitCode = 0;
    });
}

/** One timeline line of the text output: instant, type, subscription, then what the event has of cycle, amount, status, decline and retry. */
function textLine(e: Record<string, unknown>): string {
  const { at, type, subscriptionId, cycle, attempt, amount, currency, status, declineCode, nextAttemptAt } = e;
  const parts = [String(at), String(type).padEnd(28), String(subscriptionId).padEnd(12)];
  if (cycle !== undefined) parts.push(`cycle ${String(cycle)}${attempt !== undefined ? `/${String(attempt)}` : ''}`);
  if (amount !== undefined) parts.push(`${String(amount)} ${String(currency)}`);
  if (status !== undefined) parts.push(String(status));
  if (declineCode) parts.push(String(declineCode));
  if (nextAttemptAt) parts.push(`retry at ${String(nextAttemptAt)}`);
  return parts.join('  ');
}
