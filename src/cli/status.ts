import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { statusReport, type StatusReport } from '../service/index.js';
import type { CommandContext } from './index.js';
import { lineOutput } from './output.js';
import { withReadDatabase } from './read-database.js';
import { keyValues } from './table.js';

/**
 * `rebill status [--config F] [--json]` (SPEC section 10): counts by status,
 * the due backlog and its oldest due instant, declines in the last 24 h and
 * the webhook situation, read-only beside a running daemon.
 */
export function registerStatus(program: Command, ctx: CommandContext): void {
  program
    .command('status')
    .description('subscriptions by status, due backlog, failures in the last 24 h (read-only)')
    .option('--config <file>', 'configuration file (default: $REBILL_CONFIG, else config/rebill.yaml)')
    .option('--json', 'print one JSON document')
    .action(async (flags: { config?: string; json?: boolean }) => {
      await withReadDatabase(flags.config, ctx, async (db) => {
        const report = await statusReport(db, systemClock.now());
        const out = lineOutput();
        if (flags.json) {
          await out.line(JSON.stringify(report));
        } else {
          const s = report.subscriptions;
          const b = report.dueBacklog;
          const attempts = Object.entries(report.attempts).map(([state, n]) => `${state} ${n}`).join(', ');
          const lines = keyValues([
            ['at', report.at],
            ['subscriptions', `${s.total} (active ${s.active}, paused ${s.paused}, stopped ${s.stopped}, terminated ${s.terminated})`],
            ['due backlog', b.count === 0 ? '0' : `${b.count}, oldest due ${b.oldestDueAt} (${b.oldestDueAgeSeconds} s ago)`],
            ['failures (24 h)', `${report.failuresLast24h.rejected} declined (${report.failuresLast24h.hard} hard) since ${report.failuresLast24h.since}`],
            ['attempts', attempts || 'none'],
            ['webhooks', webhookLine(report.webhooks)],
          ]);
          for (const line of lines) await out.line(line);
        }
        ctx.exitCode = 0;
      });
    });
}

/** `3 pending (oldest 2026-01-01T00:00:00.000Z, 12 s ago), 40 delivered, 0 failed; 43 events in the outbox`. */
function webhookLine(w: StatusReport['webhooks']): string {
  const pending = w.deliveries.pending === 0 ? '0 pending' : `${w.deliveries.pending} pending (oldest ${w.oldestPendingAt}, ${w.oldestPendingAgeSeconds} s ago)`;
  return `${pending}, ${w.deliveries.delivered} delivered, ${w.deliveries.failed} failed; ${w.events} events in the outbox`;
}
