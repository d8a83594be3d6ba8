/**
 * `rebill webhooks list|redeliver` (SPEC section 8): the webhook deliveries,
 * and an event sent again. `list` is read-only beside a running daemon;
 * `redeliver` writes one small transaction (the daemon's relay picks it up
 * within a poll; a stopped daemon sends it at its next start).
 */
import type { Command } from 'commander';
import { systemClock } from '../clock.js';
import { listWebhookDeliveries, redeliverEventCommand, type DeliveryObject } from '../service/index.js';
import { NotFoundError } from '../store/index.js';
import { configPath, loadConfigOrReport } from './config-file.js';
import type { CommandContext } from './index.js';
import { lineOutput } from './output.js';
import { asUsageError, openForWriting, withReadDatabase } from './read-database.js';
import { table } from './table.js';

const PAGE = 500;

async function print(deliveries: readonly DeliveryObject[], json: boolean, nextCursor: string | null): Promise<void> {
  const out = lineOutput();
  if (json) {
    await out.line(JSON.stringify({ data: deliveries, nextCursor }));
    return;
  }
  const rows = deliveries.map((d) => [d.eventId, d.eventType, d.endpoint, d.status, d.attempts, d.lastStatusCode ?? d.lastError ?? '', d.nextAttemptAt ?? d.deliveredAt ?? '']);
  for (const line of table(['EVENT', 'TYPE', 'ENDPOINT', 'STATUS', 'ATTEMPTS', 'LAST', 'NEXT/DELIVERED AT'], rows)) {
    if (out.closed) break;
    await out.line(line);
  }
  if (nextCursor !== null && !out.closed) process.stderr.write(`more: --cursor ${nextCursor}\n`);
}

export function registerWebhooks(program: Command, ctx: CommandContext): void {
  const group = program.command('webhooks').description('webhook deliveries: list them, send an event again');
  group
    .command('list')
    .description('list webhook deliveries by event (read-only beside a running daemon)')
    .option('--config <file>', 'configuration file (default: $REBILL_CONFIG, else config/rebill.yaml)')
    .option('--status <status>', 'pending, delivered or failed')
    .option('--endpoint <id>', 'an endpoint id (we_...)')
    .option('--event <id>', 'one event (evt_000000000042)')
    .option('--limit <n>', 'one page of at most n (1..500)')
    .option('--cursor <cursor>', 'the page after this cursor (from a previous --limit run)')
    .option('--json', 'print one JSON document {"data": [...], "nextCursor": ...}')
    .action(async (flags: { config?: string; status?: string; endpoint?: string; event?: string; limit?: string; cursor?: string; json?: boolean }) => {
      const query = {
        ...(flags.status !== undefined ? { status: flags.status } : {}),
        ...(flags.endpoint !== undefined ? { endpoint: flags.endpoint } : {}),
        ...(flags.event !== undefined ? { eventId: flags.event } : {}),
      };
      await withReadDatabase(flags.config, ctx, async (db) => {
        const data: DeliveryObject[] = [];
        let nextCursor: string | null = null;
        try {
          if (flags.limit !== undefined) {
            const page = await listWebhookDeliveries(db, { ...query, limit: flags.limit, ...(flags.cursor ? { cursor: flags.cursor } : {}) });
            data.push(...page.data);
            nextCursor = page.nextCursor;
          } else {
            let cursor = flags.cursor;
            do {
              const page = await listWebhookDeliveries(db, { ...query, limit: PAGE, ...(cursor ? { cursor } : {}) });
              data.push(...page.data);
              cursor = page.nextCursor ?? undefined;
            } while (cursor);
          }
        } catch (err) {
          throw asUsageError(err);
        }
        await print(data, flags.json === true, nextCursor);
        ctx.exitCode = 0;
      });
    });
  group
    .command('redeliver <event>')
    .description("send an event's webhooks again (its deliveries go back to pending, due now)")
    .option('--config <file>', 'configuration file (default: $REBILL_CONFIG, else config/rebill.yaml)')
    .option('--json', 'print one JSON document {"data": [...]}')
    .action(async (event: string, flags: { config?: string; json?: boolean }) => {
      const config = loadConfigOrReport(configPath(flags.config));
      if (typeof config === 'number') {
        ctx.exitCode = config;
        return;
      }
      // The same checks as every command that writes beside a running daemon (an existing, migrated database).
      const db = await openForWriting(config);
      if (typeof db === 'number') {
        ctx.exitCode = db;
        return;
      }
      try {
        let result: { data: DeliveryObject[] };
        try {
          result = await db.transaction().execute((trx) => redeliverEventCommand(trx, event, systemClock.now()));
        } catch (err) {
          if (err instanceof NotFoundError) {
            process.stderr.write(`${err.message}\n`);
            ctx.exitCode = 1;
            return;
          }
          throw asUsageError(err);
        }
        await print(result.data, flags.json === true, null);
        if (!flags.json && result.data.length === 0) process.stderr.write(`no endpoint takes event ${event}: nothing to send\n`);
        ctx.exitCode = 0;
      } finally {
        await db.destroy();
      }
    });
}
