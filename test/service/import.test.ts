/**
 * Issue 9 item 3 (SPEC section 11): the CSV import's service, on a real
 * SQLite file. A good file, a file with bad lines, the same file twice, a dry
 * run, a bad header, and a 100,000-line file streamed in (its time and
 * memory are measured by hand, not asserted here).
 */
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planSchema, type PlanConfig } from '../../src/config/index.js';
import { ImportFileError, importSubscriptions, type Catalog, type RejectedLine } from '../../src/service/index.js';
import { openTempDb, type TempDb } from '../support/temp.js';

const NOW = Date.parse('2025-03-15T08:00:00Z');

/** The config's own reading of a plan, as `rebill run` hands it to the import. */
const MONTHLY: PlanConfig = { ...planSchema.parse({ id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' }), gateway: 'sim' };

const CATALOG: Catalog = { plans: [MONTHLY], gateways: ['sim'] };

let store: TempDb;
beforeEach(async () => {
  store = await openTempDb({}, { name: 'import' });
});
afterEach(async () => {
  await store.close();
});

async function run(csv: string | Iterable<string>, options: { dryRun?: boolean } = {}) {
  const rejected: RejectedLine[] = [];
  const source = typeof csv === 'string' ? Readable.from([csv]) : Readable.from(csv);
  const summary = await importSubscriptions(store.db, CATALOG, source, { now: NOW, dryRun: options.dryRun ?? false, onRejected: (r) => void rejected.push(r) });
  return { summary, rejected };
}

async function count(table: 'subscriptions' | 'customers' | 'cycles'): Promise<number> {
  const row = await store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

const GOOD = [
  'id,planId,paymentToken,startDate,customer.email,customer.firstName,metadata.partnerId,amount,currency,every,sendOnHour,maxCycles,externalId,source',
  's-1,monthly,tok_ok,2025-04-01,ann@example.com,Ann,p-1,,,,,,,',
  's-2,,tok_ok,2025-01-31,bob@example.com,,,"12.50",EUR,MONTH,9,12,,',
  ',,tok_ok,2025-04-01,ann@example.com,,,5,USD,WEEK,,,ord-7,shop',
].join('\n');

describe('importSubscriptions', () => {
  it('stores every line of a good file: on a plan or with an inline schedule, nested customer and metadata columns', async () => {
    const { summary, rejected } = await run(GOOD);
    expect(rejected).toEqual([]);
    expect(summary).toEqual({ lines: 3, imported: 3, existing: 0, rejected: 0 });
    const rows = await store.db.selectFrom('subscriptions').selectAll().orderBy('created_at').orderBy('id').execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get('s-1')).toMatchObject({ plan_id: 'monthly', amount_minor: 999, currency: 'USD' });
    // numeric text for sendOnHour / maxCycles, the amount judged by its text
    expect(byId.get('s-2')).toMatchObject({ plan_id: null, amount_minor: 1250, currency: 'EUR' });
    expect(JSON.parse(byId.get('s-2')!.schedule)).toMatchObject({ sendOnHour: 9 });
    const external = rows.find((r) => r.external_id === 'ord-7')!;
    expect(external).toMatchObject({ source: 'shop', amount_minor: 500 });
    // ann@example.com is one customer, shared by both of her lines
    expect(await count('customers')).toBe(2);
    expect(byId.get('s-1')!.customer_id).toBe(external.customer_id);
  });

  it('rejects bad lines with their line number and field, stores the good ones and none of the bad', async () => {
    const csv = [
      'id,planId,paymentToken,startDate,customer.email',
      'g-1,monthly,tok_ok,2025-04-01,ann@example.com',
      'b-1,monthly,tok_ok,2025-04-01,x',
      'b-2,nope,tok_ok,2025-04-01,',
      'b-3,monthly,,2025-02-30,',
      'b-4,monthly,tok_ok',
      ',monthly,tok_ok,2025-04-01,',
      'g-2,monthly,tok_ok,,',
    ].join('\n');
    const { summary, rejected } = await run(csv);
    expect(summary).toEqual({ lines: 7, imported: 2, existing: 0, rejected: 5 });
    expect(rejected.map((r) => [r.line, r.problems])).toEqual([
      [3, [{ field: 'customer.email', message: 'expected an email address; got "x"' }]],
      [4, [{ field: 'planId', message: 'unknown plan "nope"; defined: monthly' }]],
      [5, [{ field: 'startDate', message: 'expected a date yyyy-MM-dd; got "2025-02-30"' }]],
      [6, [{ field: '(line)', message: 'expected 5 fields as in the header; got 3' }]],
      [7, [{ field: 'id', message: expect.stringMatching(/^required \(or externalId/) }]],
    ]);
    expect(rejected[0]!.cells).toEqual(['b-1', 'monthly', 'tok_ok', '2025-04-01', 'x']);
    const ids = (await store.db.selectFrom('subscriptions').select('id').orderBy('id').execute()).map((r) => r.id);
    expect(ids).toEqual(['g-1', 'g-2']);
  });

  it('rejects an unknown customerId, as the API does', async () => {
    const { summary, rejected } = await run('id,planId,paymentToken,customerId\nc-1,monthly,tok_ok,cus_missing\n');
    expect(summary).toMatchObject({ imported: 0, rejected: 1 });
    expect(rejected[0]!.problems).toEqual([{ field: 'customerId', message: 'unknown customer "cus_missing"' }]);
  });

  it('creates no duplicates when the same file is imported twice (by id, and by source + externalId)', async () => {
    await run(GOOD);
    const before = { subs: await count('subscriptions'), customers: await count('customers'), cycles: await count('cycles') };
    const { summary } = await run(GOOD);
    expect(summary).toEqual({ lines: 3, imported: 0, existing: 3, rejected: 0 });
    expect({ subs: await count('subscriptions'), customers: await count('customers'), cycles: await count('cycles') }).toEqual(before);
  });

  it('counts a line repeated within the file as existing', async () => {
    const { summary } = await run('id,planId,paymentToken\nr-1,monthly,tok_ok\nr-1,monthly,tok_ok\n');
    expect(summary).toEqual({ lines: 2, imported: 1, existing: 1, rejected: 0 });
    expect(await count('subscriptions')).toBe(1);
  });

  it('writes nothing in a dry run, and still reports the bad lines', async () => {
    const { summary, rejected } = await run(`${GOOD}\nb-1,monthly,,,x,,,,,,,,,`, { dryRun: true });
    expect(summary).toMatchObject({ lines: 4, imported: 3, rejected: 1 });
    expect(rejected[0]!.line).toBe(5);
    expect(await count('subscriptions')).toBe(0);
    expect(await count('customers')).toBe(0);
  });

  it('refuses a file with an unknown column up front, naming it with a did-you-mean, and writes nothing', async () => {
    const attempt = run('id,planId,paymentToken,customer.emial,curency\ns-1,monthly,tok_ok,a@example.com,USD\n');
    await expect(attempt).rejects.toThrow(ImportFileError);
    await expect(attempt).rejects.toThrow(/column 4 "customer\.emial": unknown column \(did you mean customer\.email\?\); column 5 "curency": unknown column \(did you mean currency\?\)/);
    expect(await count('subscriptions')).toBe(0);
  });

  it('refuses an empty file and a repeated column', async () => {
    await expect(run('')).rejects.toThrow(/the file is empty/);
    await expect(run('id,id\na,b\n')).rejects.toThrow(/column 2 "id": repeated/);
  });

  it('imports a 100,000-line file streamed in chunks', async () => {
    const N = 100_000;
    function* file(): Generator<string> {
      yield 'id,planId,paymentToken,startDate,customer.email,metadata.batch\n';
      let chunk = '';
      for (let i = 0; i < N; i++) {
        chunk += `big-${i},monthly,tok_ok,2025-04-01,c${i}@example.com,b${i % 7}\n`;
        if (chunk.length > 64 * 1024) {
          yield chunk;
          chunk = '';
        }
      }
      yield chunk;
    }
    const { summary, rejected } = await run(file());
    expect(rejected).toEqual([]);
    expect(summary).toEqual({ lines: N, imported: N, existing: 0, rejected: 0 });
    expect(await count('subscriptions')).toBe(N);
    expect(await count('customers')).toBe(N);
  }, 120_000);
});
