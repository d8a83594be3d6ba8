/**
 * The baseline of `pg-dispatch-zero-latency`: what this machine's PostgreSQL
 * can do when nothing but the lean rows are written. Raw `pg` on one
 * connection, the same schema, the server's default durability
 * (synchronous_commit on: every commit waits for its WAL flush, as rebill's
 * do), 500 charges a batch and one commit per batch, as the engine does
 * since its claims ride in the outcome commit of the batch before (a
 * batch's attempt rows are durable before its gateway calls): the
 * PostgreSQL form of ./raw-dispatch.ts:
 *
 *   1. intent: claim up to 500 due rows (`UPDATE ... FROM (SELECT ... FOR
 *      UPDATE SKIP LOCKED)`, the lease), insert their attempt rows
 *      (in_flight, one `unnest` insert); commit;
 *   2. the "gateway" answers captured at once (no call, no ledger);
 *   3. outcome: the attempts captured, the subscriptions advanced to their
 *      next cycle with their leases released, one charge.succeeded event
 *      each (one `unnest` statement per table); then, in the same
 *      transaction, step 1 for the next batch; commit.
 *
 * No re-reads, no calendar work per row (every bench row has the same
 * schedule), no outbox lock (one writer), no cycle or ledger rows: the least
 * SQL that records the same facts (claimed, attempted, captured, advanced,
 * announced), as the SQLite baseline is.
 */
import pg from 'pg';
import { toDbTime } from '../../src/store/index.js';

export interface RawPgDispatchResult {
  readonly charges: number;
  readonly seconds: number;
  /** CPU seconds (user + system) of the loop in this process (the server's own CPU is not in it). */
  readonly cpuSeconds: number;
}

interface ClaimedRow {
  id: string;
  next_cycle: number;
  next_attempt: number;
  amount_minor: string;
  currency: string;
  gateway: string;
  mode: string;
}

/** Collects every due row of the database at `url` as described above; the time excludes connecting. */
export async function rawPgDispatch(url: string, nextDueAt: string, batch = 500): Promise<RawPgDispatchResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const owner = `raw:${process.pid}`;
    /** Step 1 in the open transaction: the batch claimed, its keys. */
    const claimAndIntend = async (now: number): Promise<{ rows: ClaimedRow[]; keys: string[] }> => {
      const at = toDbTime(now);
      const { rows } = await client.query<ClaimedRow>({
        name: 'raw-claim',
        text: `update subscriptions s set lease_owner = $1, lease_until = $2
               from (select id from subscriptions where work_at <= $3 and (lease_until is null or lease_until < $3)
                     order by work_at limit $4 for update skip locked) due
               where s.id = due.id
               returning s.id, s.next_cycle, s.next_attempt, s.amount_minor, s.currency, s.gateway, s.mode`,
        values: [owner, toDbTime(now + 120_000), at, batch],
      });
      const keys = rows.map((r) => `${r.id}:${r.next_cycle}:${r.next_attempt}`);
      if (rows.length === 0) return { rows, keys };
      await client.query({
        name: 'raw-intent',
        text: `insert into attempts (idempotency_key, subscription_id, cycle, attempt, gateway, mode, state, amount_minor, currency, sends, created_at, updated_at)
               select k, s, c, a, g, m, 'in_flight', amt, cur, 1, $9, $9
               from unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::bigint[], $8::text[]) as v(k, s, c, a, g, m, amt, cur)`,
        values: [keys, rows.map((r) => r.id), rows.map((r) => r.next_cycle), rows.map((r) => r.next_attempt), rows.map((r) => r.gateway), rows.map((r) => r.mode), rows.map((r) => r.amount_minor), rows.map((r) => r.currency), at],
      });
      return { rows, keys };
    };
    /** Step 3 in the open transaction. */
    const record = async ({ rows, keys }: { rows: ClaimedRow[]; keys: string[] }, now: number): Promise<void> => {
      const done = toDbTime(now);
      const externalIds = keys.map((k) => `sim_${k}`);
      await client.query({
        name: 'raw-outcome',
        text: `update attempts a set state = 'captured', external_id = v.x, updated_at = $3
               from unnest($1::text[], $2::text[]) as v(k, x) where a.idempotency_key = v.k`,
        values: [keys, externalIds, done],
      });
      await client.query({
        name: 'raw-advance',
        text: `update subscriptions s set completed_cycles = s.completed_cycles + 1, last_paid_cycle = v.c, next_cycle = v.c + 1, next_attempt = 1,
                 action_at = $4, work_at = $4, latest_payment_external_id = v.x, lease_owner = null, lease_until = null, updated_at = $5
               from unnest($1::text[], $2::int[], $3::text[]) as v(id, c, x) where s.id = v.id and s.lease_owner = $6`,
        values: [rows.map((r) => r.id), rows.map((r) => r.next_cycle), externalIds, nextDueAt, done, owner],
      });
      await client.query({
        name: 'raw-event',
        text: `insert into events (type, subscription_id, cycle, attempt, occurred_at, payload)
               select 'charge.succeeded', s, c, a, $4, p from unnest($1::text[], $2::int[], $3::int[], $5::text[]) as v(s, c, a, p)`,
        values: [
          rows.map((r) => r.id),
          rows.map((r) => r.next_cycle),
          rows.map((r) => r.next_attempt),
          done,
          rows.map((r, i) =>
            JSON.stringify({ amount: (Number(r.amount_minor) / 100).toFixed(2), currency: r.currency, mode: r.mode, idempotencyKey: keys[i], status: 'captured', externalId: externalIds[i] }),
          ),
        ],
      });
    };

    let charges = 0;
    const from = performance.now();
    const cpu = process.cpuUsage();
    await client.query('begin');
    let claimed = await claimAndIntend(Date.now());
    await client.query('commit');
    while (claimed.rows.length > 0) {
      // The outcomes of one batch and the claim of the next: one commit.
      await client.query('begin');
      const now = Date.now();
      await record(claimed, now);
      charges += claimed.rows.length;
      claimed = await claimAndIntend(now);
      await client.query('commit');
    }
    const used = process.cpuUsage(cpu);
    return { charges, seconds: (performance.now() - from) / 1000, cpuSeconds: (used.user + used.system) / 1e6 };
  } finally {
    await client.end();
  }
}
