/**
 * The baseline of `dispatch-zero-latency`: what this machine's SQLite can do
 * when nothing but the lean rows are written. Raw better-sqlite3 prepared
 * statements on the same schema, the same pragmas as rebill's openDatabase
 * (WAL, synchronous=FULL, foreign keys), 500 charges a batch and one commit
 * per batch, as the engine does since its claims ride in the outcome commit
 * of the batch before (the safety rule holds: a batch's attempt rows are
 * durable before its gateway calls):
 *
 *   1. intent: claim up to 500 due rows (`UPDATE ... RETURNING`, the lease),
 *      insert their attempt rows (in_flight); commit;
 *   2. the "gateway" answers captured at once (no call, no ledger);
 *   3. outcome: the attempt captured, the subscription advanced to its next
 *      cycle with its lease released, one charge.succeeded event; then, in
 *      the same transaction, step 1 for the next batch; commit.
 *
 * No re-reads, no calendar work per row (every bench row has the same
 * schedule, so the next due instant is computed once), only changed
 * columns. The cycle row and the simulator's ledger row that the daemon also
 * writes are left out: the baseline is the least SQL that records the same
 * facts (claimed, attempted, captured, advanced, announced).
 */
import SQLite from 'better-sqlite3';

export interface RawDispatchResult {
  readonly charges: number;
  readonly seconds: number;
  /** CPU seconds (user + system) of the loop. */
  readonly cpuSeconds: number;
}

/** Collects every due row of the database at `file` as described above; the time excludes opening it. */
export function rawDispatch(file: string, nextDueAt: string, batch = 500): RawDispatchResult {
  const db = new SQLite(file);
  try {
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    const owner = `raw:${process.pid}`;
    const claim = db.prepare<[string, string, string, string, number], { id: string; next_cycle: number; next_attempt: number; amount_minor: number; currency: string; gateway: string; mode: string }>(
      `update subscriptions set lease_owner = ?, lease_until = ?
        where id in (select id from subscriptions where work_at <= ? and (lease_until is null or lease_until < ?) order by work_at limit ?)
        returning id, next_cycle, next_attempt, amount_minor, currency, gateway, mode`,
    );
    const intent = db.prepare(
      `insert into attempts (idempotency_key, subscription_id, cycle, attempt, gateway, mode, state, amount_minor, currency, sends, created_at, updated_at)
       values (?, ?, ?, ?, ?, ?, 'in_flight', ?, ?, 1, ?, ?)`,
    );
    const outcome = db.prepare(`update attempts set state = 'captured', external_id = ?, updated_at = ? where idempotency_key = ?`);
    const advance = db.prepare(
      `update subscriptions set completed_cycles = completed_cycles + 1, last_paid_cycle = ?, next_cycle = ?, next_attempt = 1,
              action_at = ?, work_at = ?, latest_payment_external_id = ?, lease_owner = null, lease_until = null, updated_at = ?
        where id = ? and lease_owner = ?`,
    );
    const event = db.prepare(`insert into events (type, subscription_id, cycle, attempt, occurred_at, payload) values ('charge.succeeded', ?, ?, ?, ?, ?)`);

    type Claimed = ReturnType<typeof claim.all>[number] & { key: string };
    const begin = db.transaction((now: string, until: string): Claimed[] => {
      const rows = claim.all(owner, until, now, now, batch).map((r) => ({ ...r, key: `${r.id}:${r.next_cycle}:${r.next_attempt}` }));
      for (const r of rows) intent.run(r.key, r.id, r.next_cycle, r.next_attempt, r.gateway, r.mode, r.amount_minor, r.currency, now, now);
      return rows;
    });
    const finish = db.transaction((rows: Claimed[], now: string) => {
      for (const r of rows) {
        const externalId = `sim_${r.key}`;
        outcome.run(externalId, now, r.key);
        advance.run(r.next_cycle, r.next_cycle + 1, nextDueAt, nextDueAt, externalId, now, r.id, owner);
        const payload = JSON.stringify({ amount: (r.amount_minor / 100).toFixed(2), currency: r.currency, mode: r.mode, idempotencyKey: r.key, status: 'captured', externalId });
        event.run(r.id, r.next_cycle, r.next_attempt, now, payload);
      }
    });

    // The outcomes of one batch and the claim of the next: one commit.
    const finishAndBegin = db.transaction((rows: Claimed[]): Claimed[] => {
      const now = Date.now();
      finish(rows, new Date(now).toISOString());
      return begin(new Date(now).toISOString(), new Date(now + 120_000).toISOString());
    });

    let charges = 0;
    const from = performance.now();
    const cpu = process.cpuUsage();
    const now = Date.now();
    let rows = begin.immediate(new Date(now).toISOString(), new Date(now + 120_000).toISOString());
    while (rows.length > 0) {
      charges += rows.length;
      rows = finishAndBegin.immediate(rows);
    }
    const used = process.cpuUsage(cpu);
    return { charges, seconds: (performance.now() - from) / 1000, cpuSeconds: (used.user + used.system) / 1e6 };
  } finally {
    db.close();
  }
}
