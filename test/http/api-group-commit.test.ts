/**
 * The group commit of the API's writes (src/store/write-batcher.ts): creates
 * sent together share one transaction, each in a savepoint of its own, so each
 * gets its own answer (201, the 200 of an externalId already live, a 400, a
 * 409, a 5xx) and the database holds exactly the rows and events of those
 * answered 2xx; nothing is answered 2xx unless its transaction committed.
 * The batcher is held while the requests arrive, so that they share a batch
 * is known, not a matter of timing.
 */
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { dialectOf } from '../../src/store/index.js';
import { startApi, type ApiHarness, type ApiResponse } from '../support/api-harness.js';
import { refuseInserts } from '../support/db-faults.js';

const CREATE = '/v1/subscriptions';
const base = { planId: 'gold-monthly', paymentToken: 'tok_ok', startDate: '2026-04-01', source: 'shop' };

let api: ApiHarness;
afterEach(async () => {
  await api?.close();
});

/** Sends every request while the batcher is held, and releases it once all of them wait in it. */
async function sendTogether(h: ApiHarness, requests: ReadonlyArray<{ body: unknown; headers?: Record<string, string> }>, reachingTheStore: number): Promise<ApiResponse[]> {
  const release = h.writes.hold();
  const before = h.writes.stats().writes;
  const responses = Promise.all(requests.map((r) => h.call('POST', CREATE, r)));
  try {
    while (h.writes.stats().writes - before < reachingTheStore) await new Promise((resolve) => setTimeout(resolve, 5));
  } finally {
    release();
  }
  return responses;
}

describe('group commit of API writes', () => {
  it('50 creates sent together: one transaction, each its own answer, exactly the rows and events of the 2xx ones', async () => {
    api = await startApi();
    const taken = (await api.call('POST', CREATE, { body: { ...base, externalId: 'taken' } })).body.id as string;
    const start = api.writes.stats();

    const requests = [
      ...Array.from({ length: 30 }, (_, i) => ({ body: { ...base, externalId: `ok-${i}`, customer: { email: `u${i}@example.com` } } })),
      ...Array.from({ length: 5 }, () => ({ body: { ...base, externalId: 'dup' } })),
      ...Array.from({ length: 5 }, () => ({ body: { ...base, externalId: 'keyed' }, headers: { 'idempotency-key': 'shared-key' } })),
      ...Array.from({ length: 3 }, (_, i) => ({ body: { ...base, externalId: `bad-plan-${i}`, planId: 'platinum' } })), // 400 inside the batch
      ...Array.from({ length: 3 }, (_, i) => ({ body: { ...base, externalId: `bad-customer-${i}`, customerId: 'cus_nobody' } })), // 400 inside the batch
      ...Array.from({ length: 2 }, () => ({ body: { ...base, id: taken } })), // 409: the id is taken
      ...Array.from({ length: 2 }, () => ({ body: { ...base, sendOnHour: 99 } })), // 400 by the schema: never reaches the store
    ];
    expect(requests).toHaveLength(50);
    const responses = await sendTogether(api, requests, 48);

    const stats = api.writes.stats();
    expect(stats.writes - start.writes).toBe(48);
    expect(stats.transactions - start.transactions).toBe(1);

    const ok = responses.slice(0, 30);
    for (const r of ok) expect(r.status, r.text).toBe(201);
    const dup = responses.slice(30, 35);
    expect(dup.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 201]);
    expect(new Set(dup.map((r) => r.body.id)).size).toBe(1);
    const keyed = responses.slice(35, 40);
    // The first claims the key; the others, in the same uncommitted transaction, find it in progress.
    expect(keyed.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409]);
    for (const r of keyed.filter((k) => k.status === 409)) expect(r.body.type).toBe('urn:rebill:problem:idempotency-key-in-progress');
    for (const r of responses.slice(40, 43)) expect(r.body.errors?.[0]?.pointer, r.text).toBe('/planId');
    for (const r of responses.slice(43, 46)) expect(r.body.errors?.[0]?.pointer, r.text).toBe('/customerId');
    for (const r of responses.slice(40, 46)) expect(r.status).toBe(400);
    for (const r of responses.slice(46, 48)) expect(r.status).toBe(409);
    for (const r of responses.slice(48, 50)) expect(r.status).toBe(400);

    const keyedCreated = keyed.find((r) => r.status === 201)!;
    // A create answers with the object a read of it gives.
    for (const r of [...ok, ...dup, ...keyed].filter((x) => x.status < 300)) expect((await api.call('GET', `${CREATE}/${r.body.id}`)).text).toBe(r.text);
    const retried = await api.call('POST', CREATE, { body: { ...base, externalId: 'keyed' }, headers: { 'idempotency-key': 'shared-key' } });
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect(retried.text).toBe(keyedCreated.text);

    const dump = await api.dump();
    const created = [taken, ...ok.map((r) => r.body.id as string), dup.find((r) => r.status === 201)!.body.id as string, keyedCreated.body.id as string];
    const subs = dump.subscriptions as Array<{ id: string; external_id: string }>;
    expect(subs.map((s) => s.id).sort()).toEqual([...created].sort());
    expect((dump.customers as unknown[]).length).toBe(30);
    // Every creation wrote the events one create writes alone, none of the refused did.
    const events = dump.events as Array<{ id: number; type: string; subscription_id: string }>;
    const typesOf = (id: string) => events.filter((e) => e.subscription_id === id).map((e) => e.type);
    expect(typesOf(taken).length).toBeGreaterThan(0);
    for (const id of created) expect(typesOf(id)).toEqual(typesOf(taken));
    expect(new Set(events.map((e) => e.subscription_id))).toEqual(new Set(created));
    expect((dump.idempotency_keys as Array<{ key: string; state: string; response_status: number }>).map((k) => [k.key, k.state, Number(k.response_status)])).toEqual([['shared-key', 'done', 201]]);
  });

  it('a create that fails in the database fails alone: the others of its transaction are 201 and stored', async () => {
    api = await startApi();
    const lift = await refuseInserts(api.tmp.db, 'subscriptions', 'disk on fire', { column: 'external_id', value: 'boom' });
    const requests = ['a', 'b', 'boom', 'c', 'd'].map((externalId) => ({ body: { ...base, externalId }, headers: { 'idempotency-key': `k-${externalId}` } }));
    const start = api.writes.stats();
    const responses = await sendTogether(api, requests, 5);
    expect(api.writes.stats().transactions - start.transactions).toBe(1);
    expect(responses.map((r) => r.status)).toEqual([201, 201, 500, 201, 201]);
    expect(responses[2]!.body).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500 });
    const dump = await api.dump();
    expect((dump.subscriptions as Array<{ external_id: string }>).map((s) => s.external_id).sort()).toEqual(['a', 'b', 'c', 'd']);
    // The 5xx freed its key; the others' answers are stored.
    expect((dump.idempotency_keys as Array<{ key: string }>).map((k) => k.key).sort()).toEqual(['k-a', 'k-b', 'k-c', 'k-d']);
    await lift();
    expect((await api.call('POST', CREATE, requests[2]!)).status).toBe(201);
  });

  it('SQLite: a write that rolls back the whole transaction fails every write of it, even those already done: none is answered 2xx', async (ctx) => {
    api = await startApi();
    if (dialectOf(api.tmp.db) !== 'sqlite') ctx.skip();
    // raise(rollback) ends the transaction itself, as SQLITE_FULL or an I/O error would.
    await sql`create trigger lose_all before insert on subscriptions when new.external_id = 'boom' begin select raise(rollback, 'transaction lost'); end`.execute(api.tmp.db);
    const requests = ['a', 'b', 'boom', 'c'].map((externalId) => ({ body: { ...base, externalId } }));
    const responses = await sendTogether(api, requests, 4);
    expect(responses.map((r) => r.status)).toEqual([500, 500, 500, 500]);
    expect((await api.dump()).subscriptions).toEqual([]);
    await sql`drop trigger lose_all`.execute(api.tmp.db);
    expect((await api.call('POST', CREATE, requests[0]!)).status).toBe(201);
  });
});

describe('PostgreSQL: a batch and a write in a transaction of its own (pause, cancel, PATCH) with one Idempotency-Key', () => {
  it('never deadlock: the cancel (first with the key) is answered 200, the create that reused the key 409, the other create of the batch 201', async (ctx) => {
    api = await startApi();
    if (dialectOf(api.tmp.db) !== 'postgres') ctx.skip();
    const sub = await api.call('POST', CREATE, { body: { ...base, externalId: 'to-cancel' } });
    expect(sub.status).toBe(201);
    const id = (sub.body as { id: string }).id;
    await api.tmp.db.connection().execute(async (blocker) => {
      // Another transaction holds a customer id the batch's first create inserts: the batch waits
      // there, holding the outbox lock, with its second write (the reused key) still to come.
      await sql`begin`.execute(blocker);
      await sql`insert into customers (id, email, created_at) values ('cus_block', 'block@example.com', '2026-03-01T12:00:00.000Z')`.execute(blocker);
      const release = api.writes.hold();
      const batch = Promise.all([
        api.call('POST', CREATE, { body: { ...base, externalId: 'first', customer: { id: 'cus_block', email: 'first@example.com' } } }),
        api.call('POST', CREATE, { body: { ...base, externalId: 'second' }, headers: { 'idempotency-key': 'shared-key' } }),
      ]);
      while (api.writes.stats().queued < 2) await new Promise((resolve) => setTimeout(resolve, 5));
      release();
      const waiting = async (n: number) => {
        for (;;) {
          const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_locks where not granted`.execute(api.tmp.db);
          if (rows[0]!.n >= n) return;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      };
      await waiting(1);
      // The cancel claims the key, locks its row and then waits for the outbox lock the batch holds.
      const cancelled = api.call('POST', `${CREATE}/${id}/cancel`, { body: {}, headers: { 'idempotency-key': 'shared-key' } });
      await waiting(2);
      await sql`rollback`.execute(blocker);
      const [[first, second], cancel] = await Promise.all([batch, cancelled]);
      expect({ first: first.status, cancel: cancel.status }).toEqual({ first: 201, cancel: 200 });
      // The cancel had the key first and was still running when the batch came to it.
      expect(second.status).toBe(409);
      expect((await api.call('GET', `${CREATE}/${id}`)).body).toMatchObject({ status: 'terminated' });
      expect((await api.call('GET', `${CREATE}?externalId=second`)).body).toMatchObject({ data: [] });
    });
  });
});
