import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { listSubscriptions, parseSubscriptionListQuery, type SubscriptionListQuery, type SubscriptionObject } from '../service/index.js';
import type { CommandContext } from './index.js';
import { lineOutput } from './output.js';
import { asUsageError, withReadDatabase } from './read-database.js';
import { money, table } from './table.js';

interface ListFlags {
  config?: string;
  status?: string;
  plan?: string;
  source?: string;
  externalId?: string;
  email?: string;
  limit?: string;
  cursor?: string;
  json?: boolean;
}

/** Page size when the command pages through everything itself. */
const PAGE = 500;

/**
 * `rebill subscriptions list [--status S] [--plan P] [--json]`: oldest first.
 * Without `--limit` every matching subscription is printed (paged
 * internally); with it, one page, and the cursor of the next one (on stderr
 * for the table, `nextCursor` in the JSON).
 */
export function registerSubscriptionsList(group: Command, ctx: CommandContext): void {
  group
    .command('list')
    .description('list subscriptions, oldest first')
    .option('--config <file>', 'configuration file (default: $REBILL_CONFIG, else config/rebill.yaml)')
    .option('--status <status>', 'active, paused, stopped or terminated')
    .option('--plan <id>', 'plan id')
    .option('--source <source>', 'source system')
    .option('--external-id <id>', 'id in the source system')
    .option('--email <email>', "customer's email")
    .option('--limit <n>', 'one page of at most n (1..500)')
    .option('--cursor <cursor>', 'the page after this cursor (from a previous --limit run)')
    .option('--json', 'print one JSON document {"data": [...], "nextCursor": ...}')
    .action(async (flags: ListFlags) => {
      const query: SubscriptionListQuery = {};
      if (flags.status !== undefined) query.status = flags.status;
      if (flags.plan !== undefined) query.planId = flags.plan;
      if (flags.source !== undefined) query.source = flags.source;
      if (flags.externalId !== undefined) query.externalId = flags.externalId;
      if (flags.email !== undefined) query.email = flags.email;
      if (flags.cursor !== undefined) query.cursor = flags.cursor;
      // Bad flags are usage errors (exit 2) before anything is opened.
      try {
        parseSubscriptionListQuery({ ...query, ...(flags.limit !== undefined ? { limit: flags.limit } : {}) });
      } catch (err) {
        throw asUsageError(err);
      }
      await withReadDatabase(flags.config, ctx, async (db) => {
        const now = systemClock.now();
        const data: SubscriptionObject[] = [];
        let nextCursor: string | null;
        try {
          if (flags.limit !== undefined) {
            const page = await listSubscriptions(db, { ...query, limit: flags.limit }, now);
            data.push(...page.data);
            nextCursor = page.nextCursor;
          } else {
            let cursor = query.cursor;
            do {
              const page = await listSubscriptions(db, { ...query, limit: PAGE, ...(cursor ? { cursor } : {}) }, now);
              data.push(...page.data);
              cursor = page.nextCursor ?? undefined;
            } while (cursor);
            nextCursor = null;
          }
        } catch (err) {
          throw asUsageError(err);
        }
        const out = lineOutput();
        if (flags.json) {
          await out.line(JSON.stringify({ data, nextCursor }));
        } else {
          const rows = data.map((s) => [
            s.id,
            s.status,
            s.planId,
            money(s.amount, s.currency),
            s.currentCycle,
            s.nextPaymentAction,
            s.nextPaymentAt,
            s.customer?.email ?? s.customer?.id,
          ]);
          for (const line of table(['ID', 'STATUS', 'PLAN', 'AMOUNT', 'CYCLE', 'NEXT', 'NEXT AT', 'CUSTOMER'], rows)) {
            if (out.closed) break;
            await out.line(line);
          }
          if (nextCursor !== null && !out.closed) process.stderr.write(`more: --cursor ${nextCursor}\n`);
        }
        ctx.exitCode = 0;
      });
    });
}
