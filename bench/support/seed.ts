/**
 * Seeding at bench scale (up to 1,000,000 subscriptions in seconds): each
 * kind of row is first created once through rebill's own seeding code
 * (`upsertSeeds`, what `rebill run` does with a config seed), so it is
 * exactly the row the daemon would store; then it is copied with raw
 * prepared statements in one transaction at synchronous=OFF (the subscription
 * row, its cycles and its events, the id replaced, optionally its due
 * instant), and the templates are deleted. On PostgreSQL the copy is one
 * `insert ... select` per table from the template rows, joined to `unnest`
 * arrays of the new ids and due instants (the rows never leave the server).
 * Seeding is never what a scenario times.
 */
import SQLite from 'better-sqlite3';
import { CompiledQuery } from 'kysely';
import { loadConfig, seedSubscriptionSchema } from '../../src/config/index.js';
import { upsertSeeds } from '../../src/engine/index.js';
import { dialectOf, migrateToLatest, openDatabase, toDbTime, type Db } from '../../src/store/index.js';

/** One kind of seeded row: a subscription of the bench plan starting on `startDate` (00:00 UTC). */
export interface SeedTemplate {
  readonly startDate: string;
  /** Default tok_ok. */
  readonly paymentToken?: string;
}

export interface SeedSpec {
  readonly count: number;
  readonly templates: readonly SeedTemplate[];
  /**
   * Row i: which template it copies and, optionally, its own due instant
   * (written to the work pointer, action_at and work_at, as a retry or a
   * rescheduled collection would be; the cycle stays the template's).
   */
  readonly row: (i: number) => { readonly template: number; readonly dueAt?: number };
}

export interface Seeded {
  /** Ids in row order. */
  readonly id: (i: number) => string;
  /** The outbox's last event id after seeding. */
  readonly lastEventId: number;
}

/** The id of seeded row i: fixed width, so text order is row order. */
export function seededId(i: number): string {
  return `b${String(i).padStart(7, '0')}`;
}

/** Today's UTC date plus `days`, as yyyy-MM-dd. */
export function utcDate(days = 0): string {
  const d = new Date();
  d.setUTCHours(0, 0, 0, 0);
  return new Date(d.getTime() + days * 86_400_000).toISOString().slice(0, 10);
}

/** Migrates the database of `configFile` and seeds it per `spec`. */
export async function seedSubscriptions(configFile: string, spec: SeedSpec): Promise<Seeded> {
  const config = loadConfig(configFile, {});
  const url = config.database.url;
  const db = openDatabase(url);
  const now = Date.now();
  try {
    await migrateToLatest(db);
    const seeds = spec.templates.map((t, n) =>
      seedSubscriptionSchema.parse({ id: `template-${n}`, planId: config.plans[0]!.id, paymentToken: t.paymentToken ?? 'tok_ok', startDate: t.startDate }),
    );
    await upsertSeeds(db, config.plans, seeds, now);
    if (dialectOf(db) === 'postgres') return await copyOnPostgres(db, spec);
  } finally {
    await db.destroy();
  }

  const sqlite = new SQLite(url.slice('sqlite:'.length));
  try {
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = OFF');
    sqlite.pragma('foreign_keys = OFF');
    const templates = spec.templates.map((_, n) => {
      const id = `template-${n}`;
      return {
        id,
        sub: sqlite.prepare('select * from subscriptions where id = ?').get(id) as Record<string, unknown>,
        cycles: sqlite.prepare('select * from cycles where subscription_id = ?').all(id) as Record<string, unknown>[],
        events: sqlite.prepare('select * from events where subscription_id = ? order by id').all(id) as Record<string, unknown>[],
      };
    });
    const statements = templates.map((t) => ({
      sub: new BatchInsert(sqlite, 'subscriptions', Object.keys(t.sub)),
      cycle: t.cycles[0] ? new BatchInsert(sqlite, 'cycles', Object.keys(t.cycles[0])) : undefined,
      event: t.events[0] ? new BatchInsert(sqlite, 'events', Object.keys(t.events[0]).filter((c) => c !== 'id')) : undefined,
    }));
    sqlite.transaction(() => {
      for (let i = 0; i < spec.count; i++) {
        const { template: n, dueAt } = spec.row(i);
        const t = templates[n]!;
        const s = statements[n]!;
        const id = seededId(i);
        const due = dueAt === undefined ? undefined : toDbTime(dueAt);
        s.sub.add(s.sub.columns.map((c) => (c === 'id' ? id : due !== undefined && (c === 'action_at' || c === 'work_at') ? due : t.sub[c])));
        for (const cycle of t.cycles) s.cycle!.add(s.cycle!.columns.map((c) => (c === 'subscription_id' ? id : cycle[c])));
        for (const event of t.events) {
          s.event!.add(
            s.event!.columns.map((c) => (c === 'subscription_id' ? id : c === 'payload' ? String(event.payload).replaceAll(`"${t.id}"`, `"${id}"`) : event[c])),
          );
        }
      }
      for (const s of statements) for (const batch of [s.sub, s.cycle, s.event]) batch?.flush();
      for (const t of templates) {
        sqlite.prepare('delete from events where subscription_id = ?').run(t.id);
        sqlite.prepare('delete from cycles where subscription_id = ?').run(t.id);
        sqlite.prepare('delete from subscriptions where id = ?').run(t.id);
      }
    })();
    const last = sqlite.prepare('select coalesce(max(id), 0) as id from events').get() as { id: number };
    sqlite.pragma('wal_checkpoint(TRUNCATE)');
    return { id: seededId, lastEventId: last.id };
  } finally {
    sqlite.close();
  }
}

/** The template of row i is `template-<n>`; its copies are inserted in row order (event ids too). */
async function copyOnPostgres(db: Db, spec: SeedSpec): Promise<Seeded> {
  const ids: string[] = [];
  const templates: number[] = [];
  const due: Array<string | null> = [];
  for (let i = 0; i < spec.count; i++) {
    const { template, dueAt } = spec.row(i);
    ids.push(seededId(i));
    templates.push(template);
    due.push(dueAt === undefined ? null : toDbTime(dueAt));
  }
  const run = async (conn: Db, text: string, params: unknown[] = []) => (await conn.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, params))).rows;
  const columns = async (table: string) =>
    (await run(db, 'select column_name as c from information_schema.columns where table_schema = current_schema() and table_name = $1 order by ordinal_position', [table]))
      .map((r) => String(r.c))
      .filter((c) => !(table === 'events' && c === 'id'));
  const [subColumns, cycleColumns, eventColumns] = [await columns('subscriptions'), await columns('cycles'), await columns('events')];
  const quoted = (cols: readonly string[]) => cols.map((c) => `"${c}"`).join(', ');
  const rows = `unnest($1::text[], $2::int[], $3::text[]) with ordinality as r(id, template, due, n)`;
  const of = (alias: string) => `${alias}.subscription_id = 'template-' || r.template`;
  const select = (cols: readonly string[], alias: string, value: (c: string) => string | undefined) => cols.map((c) => value(c) ?? `${alias}."${c}"`).join(', ');
  const params = [ids, templates, due];
  await db.transaction().execute(async (trx) => {
    await run(
      trx,
      `insert into subscriptions (${quoted(subColumns)})
       select ${select(subColumns, 't', (c) => (c === 'id' ? 'r.id' : c === 'action_at' || c === 'work_at' ? `coalesce(r.due, t."${c}")` : undefined))}
       from ${rows} join subscriptions t on t.id = 'template-' || r.template order by r.n`,
      params,
    );
    await run(
      trx,
      `insert into cycles (${quoted(cycleColumns)})
       select ${select(cycleColumns, 'c', (col) => (col === 'subscription_id' ? 'r.id' : undefined))}
       from ${rows} join cycles c on ${of('c')} order by r.n, c.cycle`,
      params,
    );
    await run(
      trx,
      `insert into events (${quoted(eventColumns)})
       select ${select(eventColumns, 'e', (c) => (c === 'subscription_id' ? 'r.id' : c === 'payload' ? `replace(e.payload, '"template-' || r.template || '"', '"' || r.id || '"')` : undefined))}
       from ${rows} join events e on ${of('e')} order by r.n, e.id`,
      params,
    );
    const names = spec.templates.map((_, n) => `template-${n}`);
    for (const table of ['events', 'cycles']) await run(trx, `delete from ${table} where subscription_id = any($1::text[])`, [names]);
    await run(trx, 'delete from subscriptions where id = any($1::text[])', [names]);
  });
  const [last] = await run(db, 'select coalesce(max(id), 0) as id from events');
  return { id: seededId, lastEventId: Number(last!.id) };
}

/** Multi-row inserts: rows are buffered and written ROWS_PER_STATEMENT at a time (a third of the time of one insert per row). */
class BatchInsert {
  private static readonly ROWS_PER_STATEMENT = 50;
  private readonly pending: unknown[] = [];
  private readonly full: SQLite.Statement;

  constructor(
    private readonly sqlite: SQLite.Database,
    private readonly table: string,
    readonly columns: readonly string[],
  ) {
    this.full = this.statement(BatchInsert.ROWS_PER_STATEMENT);
  }

  private statement(rows: number): SQLite.Statement {
    const tuple = `(${this.columns.map(() => '?').join(', ')})`;
    return this.sqlite.prepare(`insert into ${this.table} (${this.columns.map((c) => `"${c}"`).join(', ')}) values ${new Array<string>(rows).fill(tuple).join(', ')}`);
  }

  add(values: readonly unknown[]): void {
    this.pending.push(...values);
    if (this.pending.length === this.columns.length * BatchInsert.ROWS_PER_STATEMENT) {
      this.full.run(this.pending);
      this.pending.length = 0;
    }
  }

  flush(): void {
    if (this.pending.length === 0) return;
    this.statement(this.pending.length / this.columns.length).run(this.pending);
    this.pending.length = 0;
  }
}
