/**
 * The bench's seeder on PostgreSQL (bench/support/seed.ts): the rows it
 * copies are the rows rebill's own seeding code stores for the same seed,
 * apart from the id and the creation instants, and a row's own due instant
 * lands in its work pointer.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { writeBenchConfig } from '../../bench/support/config.js';
import { seedSubscriptions, utcDate } from '../../bench/support/seed.js';
import { loadConfig, seedSubscriptionSchema } from '../../src/config/index.js';
import { upsertSeeds } from '../../src/engine/index.js';
import { openDatabase, toDbTime } from '../../src/store/index.js';
import { createTestPostgres, type TestPostgres } from '../support/postgres.js';

let database: TestPostgres | undefined;
afterAll(async () => {
  await database?.drop();
});

const INSTANTS = new Set(['created_at', 'updated_at', 'occurred_at']);
const comparable = (row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).filter(([k]) => !INSTANTS.has(k) && k !== 'id' && k !== 'subscription_id'));

describe('bench seeder on PostgreSQL', () => {
  it('copies exactly the rows upsertSeeds stores, in row order, with per-row due instants', async () => {
    database = await createTestPostgres('benchseed');
    const dir = mkdtempSync(path.join(tmpdir(), 'rebill-benchseed-'));
    const config = writeBenchConfig({ dir, databaseUrl: database.url });
    const due = Date.UTC(2030, 0, 2, 3, 4, 5);
    const seeded = await seedSubscriptions(config, {
      count: 3,
      templates: [{ startDate: utcDate() }, { startDate: utcDate(-40), paymentToken: 'tok_other' }],
      row: (i) => ({ template: i === 1 ? 1 : 0, ...(i === 2 ? { dueAt: due } : {}) }),
    });

    // The reference: the same seeds through rebill's own code, under ids of their own.
    const loaded = loadConfig(config, {});
    const db = openDatabase(database.url);
    try {
      await upsertSeeds(
        db,
        loaded.plans,
        [
          seedSubscriptionSchema.parse({ id: 'ref-0', planId: loaded.plans[0]!.id, paymentToken: 'tok_ok', startDate: utcDate() }),
          seedSubscriptionSchema.parse({ id: 'ref-1', planId: loaded.plans[0]!.id, paymentToken: 'tok_other', startDate: utcDate(-40) }),
        ],
        Date.now(),
      );
    } finally {
      await db.destroy();
    }

    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const rows = async (text: string, id: string) => (await client.query<Record<string, unknown>>(text, [id])).rows;
      const of = async (id: string) => ({
        sub: (await rows('select * from subscriptions where id = $1', id)).map(comparable),
        cycles: (await rows('select * from cycles where subscription_id = $1 order by cycle', id)).map(comparable),
        events: (await rows('select * from events where subscription_id = $1 order by id', id)).map(comparable),
      });
      const ids = [0, 1, 2].map(seeded.id);
      const [ref0, ref1, b0, b1, b2] = [await of('ref-0'), await of('ref-1'), await of(ids[0]!), await of(ids[1]!), await of(ids[2]!)];
      expect(ref0.sub).toHaveLength(1);
      expect(ref1.cycles.length, 'a start 40 days ago has a cycle row').toBeGreaterThan(0);
      expect(b0).toEqual(ref0);
      expect(b1).toEqual(ref1);
      expect(b2.sub[0]).toEqual({ ...ref0.sub[0], action_at: toDbTime(due), work_at: toDbTime(due) });
      expect(b2.events).toEqual(ref0.events);

      const templates = await client.query("select id from subscriptions where id like 'template-%'");
      expect(templates.rows).toEqual([]);
      const order = await client.query<{ subscription_id: string }>("select subscription_id from events where subscription_id like 'b%' order by id");
      const owners = order.rows.map((r) => r.subscription_id);
      expect(owners, 'event ids follow row order').toEqual([...owners].sort());
      expect(seeded.lastEventId).toBeGreaterThan(0);
    } finally {
      await client.end();
    }
  });
});
