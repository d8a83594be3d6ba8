/**
 * Config seeds at scale (issue 7 item 18) and the removed-but-in-use check
 * (items 5, 16), against a real SQLite file: the batched upsert creates each
 * seed once, is idempotent on re-run, reports progress, and names the seeds
 * whose edited paymentToken or plan amount is not applied.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig, type Config } from '../../src/config/index.js';
import { cancel } from '../../src/domain/index.js';
import { removedButInUse, seedWarnings, upsertSeeds } from '../../src/engine/index.js';
import { updateSubscription } from '../../src/store/index.js';
import { openTempDb, type TempDb } from '../support/temp.js';

const NOW = Date.parse('2025-01-15T08:00:00Z');

interface SeedSpec {
  token?: string;
  amount?: string;
  count: number;
}

/** A config with `count` seeds s0.. on plan p (sim gateway); seeds 0-4 share a customer email, 10-12 have externalIds. */
function config(spec: SeedSpec): Config {
  const seeds = Array.from({ length: spec.count }, (_, i) => {
    const customer = i < 5 ? ', customer: { email: shared@example.com }' : '';
    const external = i >= 10 && i < 13 ? `, externalId: ext-${i}, source: crm` : '';
    return `  - { id: s${i}, planId: p, paymentToken: ${spec.token ?? 'tok_ok'}, startDate: "2025-01-31"${customer}${external} }`;
  });
  const text = [
    'gateways: { sim: { type: simulator } }',
    'plans:',
    `  - { id: p, amount: "${spec.amount ?? '9.99'}", currency: USD, every: MONTH }`,
    '  - { id: q, amount: "1.00", currency: USD, every: MONTH }',
    'subscriptions:',
    ...seeds,
  ].join('\n');
  return parseConfig(text, 'seeds.yaml', {});
}

let store: TempDb;
beforeEach(async () => {
  store = await openTempDb({}, { name: 'seeds' });
});
afterEach(async () => {
  await store.close();
});

async function counts() {
  const subscriptions = await store.db.selectFrom('subscriptions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  const created = await store.db
    .selectFrom('events')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('type', '=', 'subscription.created')
    .executeTakeFirstOrThrow();
  const customers = await store.db.selectFrom('customers').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return { subscriptions: Number(subscriptions.n), createdEvents: Number(created.n), customers: Number(customers.n) };
}

describe('upsertSeeds in batches', () => {
  it('creates each seed once across batch boundaries, reports progress, and is idempotent on re-run', async () => {
    const cfg = config({ count: 23 });
    const progress: number[] = [];
    const first = await upsertSeeds(store.db, cfg.plans, cfg.subscriptions, NOW, { batchSize: 5, onProgress: (done) => progress.push(done) });
    expect(first).toMatchObject({ total: 23, created: 23, existing: 0, tokenNotApplied: [] });
    expect(progress).toEqual([5, 10, 15, 20, 23]);
    // The five seeds with the same email share one customer, found across the batch's own inserts.
    expect(await counts()).toEqual({ subscriptions: 23, createdEvents: 23, customers: 1 });
    const ids = (await store.db.selectFrom('subscriptions').select('id').orderBy('id').execute()).map((r) => r.id);
    expect(ids).toEqual([...cfg.subscriptions].map((s) => s.id).sort());
    const cycles = await store.db.selectFrom('cycles').select(['subscription_id', 'cycle']).execute();
    expect(new Set(cycles.map((c) => `${c.subscription_id}:${c.cycle}`)).size).toBe(cycles.length);

    const again = await upsertSeeds(store.db, cfg.plans, cfg.subscriptions, NOW + 1000, { batchSize: 7 });
    expect(again).toMatchObject({ total: 23, created: 0, existing: 23, tokenNotApplied: [] });
    expect(again.amountNotApplied.size).toBe(0);
    expect(seedWarnings(again, cfg.plans)).toEqual([]);
    expect(await counts()).toEqual({ subscriptions: 23, createdEvents: 23, customers: 1 });
  });

  it('a seed whose id is new but whose live (source, externalId) exists is not created again', async () => {
    const cfg = config({ count: 13 });
    await upsertSeeds(store.db, cfg.plans, cfg.subscriptions, NOW);
    const renamed = [...cfg.subscriptions].map((s) => (s.externalId ? { ...s, id: `${s.id}-renamed` } : s));
    const report = await upsertSeeds(store.db, cfg.plans, renamed, NOW);
    expect(report).toMatchObject({ created: 0, existing: 13 });
    expect((await counts()).subscriptions).toBe(13);
  });

  it('warns, naming the seeds (a few, then "and N more"), when a seed paymentToken or its plan amount was edited; never prints a token', async () => {
    const cfg = config({ count: 8 });
    await upsertSeeds(store.db, cfg.plans, cfg.subscriptions, NOW);
    const edited = config({ count: 8, token: 'tok_SECRET_new', amount: '12.50' });
    const report = await upsertSeeds(store.db, edited.plans, edited.subscriptions, NOW, { batchSize: 3 });
    expect(report.tokenNotApplied).toEqual(['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7']);
    expect([...report.amountNotApplied]).toEqual([['p', ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7']]]);
    const warnings = seedWarnings(report, edited.plans);
    expect(warnings).toEqual([
      '8 existing seed subscriptions kept the stored paymentToken; a changed paymentToken in the config is not applied (seeds are created once, by id): s0, s1, s2, s3, s4 and 3 more',
      'plan "p" now charges USD 12.50, but 8 existing seed subscriptions keep the amount they were created with (editing a plan changes new subscriptions only): s0, s1, s2, s3, s4 and 3 more',
    ]);
    expect(warnings.join('\n')).not.toMatch(/tok_/);
    // Nothing was changed in the database.
    const tokens = new Set((await store.db.selectFrom('subscriptions').select(['payment_token', 'amount_minor']).execute()).map((r) => `${r.payment_token}/${r.amount_minor}`));
    expect([...tokens]).toEqual(['tok_ok/999']);
  });
});

describe('removedButInUse', () => {
  it('counts live subscriptions per removed plan and gateway; terminated ones do not count', async () => {
    const cfg = config({ count: 4 });
    await upsertSeeds(store.db, cfg.plans, cfg.subscriptions, NOW);
    await updateSubscription(store.db, 's3', NOW, (sub) => cancel(sub, { by: 'publisher' }, NOW));
    expect(await removedButInUse(store.db, cfg)).toEqual([]);
    const withoutP = { plans: cfg.plans.filter((p) => p.id !== 'p'), gateways: { other: {} } };
    expect(await removedButInUse(store.db, withoutP)).toEqual([
      { section: 'plans', id: 'p', count: 3, message: 'plan "p" was removed but 3 live subscriptions still use it; put it back or cancel them first' },
      {
        section: 'gateways',
        id: 'sim',
        count: 3,
        message: 'gateway "sim" was removed or renamed but 3 live subscriptions still use it (their attempts could never be sent); put it back under that name',
      },
    ]);
  });
});
