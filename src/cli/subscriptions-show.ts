import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { getSubscriptionDetail, parseCount, type Charge, type SubscriptionDetail } from '../service/index.js';
import { NotFoundError } from '../store/index.js';
import type { CommandContext } from './index.js';
import { lineOutput } from './output.js';
import { asUsageError, withReadDatabase } from './read-database.js';
import { keyValues, money, table } from './table.js';

/**
 * `rebill subscriptions show ID [--json]`: the subscription, every charge it
 * has had, and its next due dates. Exit 1 with one line for an unknown id.
 */
export function registerSubscriptionsShow(group: Command, ctx: CommandContext): void {
  group
    .command('show')
    .description('one subscription, its charges and its next due dates')
    .argument('<id>', 'subscription id')
    .option('--config <file>', 'configuration file (default: $REBILL_CONFIG, else config/rebill.yaml)')
    .option('--count <n>', 'how many next due dates (1..100)', '5')
    .option('--json', 'print one JSON document {"subscription", "charges", "nextDueDates"}')
    .action(async (id: string, flags: { config?: string; count: string; json?: boolean }) => {
      let count: number;
      try {
        count = parseCount(flags.count, 5);
      } catch (err) {
        throw asUsageError(err);
      }
      await withReadDatabase(flags.config, ctx, async (db) => {
        let detail: SubscriptionDetail;
        try {
          detail = await getSubscriptionDetail(db, id, count, systemClock.now());
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
          process.stderr.write(`${err.message}\n`);
          ctx.exitCode = 1;
          return;
        }
        const { subscription, charges, nextDueDates } = detail;
        const out = lineOutput();
        if (flags.json) {
          await out.line(JSON.stringify({ subscription, charges, nextDueDates }));
          ctx.exitCode = 0;
          return;
        }
        const s = subscription;
        // The link e-mail column only for a subscription whose links were e-mailed.
        const emailed = charges.some((c) => c.linkEmail !== null);
        const customer = s.customer ? [s.customer.email, s.customer.phone, [s.customer.firstName, s.customer.lastName].filter(Boolean).join(' ')].filter(Boolean).join(', ') : null;
        const lines = [
          ...keyValues([
            ['id', s.id],
            ['status', s.terminationType ? `${s.status} (${s.terminationType})` : s.status],
            ['plan', s.planId],
            ['description', s.description],
            ['amount', money(s.amount, s.currency)],
            ['customer', s.customer ? `${s.customer.id}${customer ? ` (${customer})` : ''}` : null],
            ['payment token', s.paymentToken],
            ['source', s.source && s.externalId ? `${s.source} / ${s.externalId}` : (s.source ?? s.externalId)],
            ['start date', s.startDate],
            ['end date', s.endDate],
            ['current cycle', `${s.currentCycle} (${s.completedCycles} completed)${s.inTrial ? ', in trial' : ''}`],
            ['current period', s.currentPeriodStart ? `${s.currentPeriodStart} .. ${s.currentPeriodEnd}` : null],
            ['next payment', s.nextPaymentAction === 'none' ? 'none' : `${s.nextPaymentAction} at ${s.nextPaymentAt}`],
            ['pause', s.pause ? `from ${s.pause.pauseDate}${s.pause.resumeDate ? ` until ${s.pause.resumeDate}` : ''}` : null],
            ['latest payment', s.latestPaymentExternalId],
            ['created', s.createdAt],
            ['updated', s.updatedAt],
          ]),
          '',
          `charges (${charges.length})`,
          ...(charges.length === 0
            ? ['  none']
            : table(
                ['CYCLE', 'ATTEMPT', 'OPERATION', 'STATUS', 'AMOUNT', 'DUE AT', 'CREATED', 'EXTERNAL ID', 'DECLINE', ...(emailed ? ['LINK E-MAIL'] : [])],
                charges.map((c) => [
                  c.cycle,
                  c.attempt,
                  c.operation,
                  c.status,
                  money(c.amount, c.currency),
                  c.dueAt,
                  c.createdAt,
                  c.externalPaymentId,
                  c.declineCode ? `${c.declineCode}${c.hardDecline ? ' (hard)' : ''}: ${c.rejectedReason}` : null,
                  ...(emailed ? [linkEmailCell(c.linkEmail)] : []),
                ]),
              ).map((l) => `  ${l}`)),
          '',
          `next due dates (${nextDueDates.length})`,
          ...(nextDueDates.length === 0 ? ['  none'] : table(['CYCLE', 'DUE AT'], nextDueDates.map((d) => [d.cycle, d.dueAt])).map((l) => `  ${l}`)),
        ];
        for (const line of lines) {
          if (out.closed) break;
          await out.line(line);
        }
        ctx.exitCode = 0;
      });
    });
}

/** `sent 2025-01-31T10:00:01Z`, `pending (2 tries, next 2025-...): <error>`, `skipped: <reason>`. */
function linkEmailCell(e: Charge['linkEmail']): string | null {
  if (e === null) return null;
  if (e.status === 'sent') return `sent ${e.sentAt}`;
  const tries = e.tries > 0 ? `${e.tries} ${e.tries === 1 ? 'try' : 'tries'}` : '';
  const next = e.status === 'pending' && e.nextTryAt ? `next ${e.nextTryAt}` : '';
  const detail = [tries, next].filter(Boolean).join(', ');
  return `${e.status}${detail ? ` (${detail})` : ''}${e.error ? `: ${e.error}` : ''}`;
}
