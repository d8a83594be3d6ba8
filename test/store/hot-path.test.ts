/**
 * The engine's hot-path store (HotPathStore, SQLite implementation) on a real
 * database file: claim and intent in one transaction, outcomes written only
 * against the lease and version the engine saw (a re-read only when that
 * fails), only the changed columns, and the simulator ledger written by the
 * next hot-path commit.
 */
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  beginAttempt,
  cancel,
  dueStep,
  pause,
  settleAttempt,
  type AttemptInfo,
  type Outcome,
  type Subscription,
} from '../../src/domain/index.js';
import { settleFromCallback } from '../../src/engine/index.js';
import { hotPathStore, getSubscription, updateSubscription, type ClaimDecision, type Claimed, type HotPathStore, type OutcomeWrite } from '../../src/store/index.js';
import { addSubscription, attemptsOf, cyclesOf, eventsOf, ledgerOf, policy, silentLogger } from '../support/engine-harness.js';
import { openTempDb, type TempDb } from '../support/temp.js';

const at = (text: string): number => Date.parse(text);
const DUE = at('2025-01-31T10:00:00Z');
const NOW = DUE + 5_000;
const LEASE = 60_000;

let temp: TempDb;
let store: HotPathStore;

beforeEach(async () => {
  temp = await openTempDb({}, { name: 'hot-path' });
  store = hotPathStore(temp.db);
});

afterEach(() => temp.close());

/** The stored version and lease of a row (columns the domain type does not carry). */
async function rowMeta(id: string): Promise<{ version: number; leaseOwner: string | null; leaseUntil: string | null }> {
  const row = await temp.db.selectFrom('subscriptions').select(['version', 'lease_owner', 'lease_until']).where('id', '=', id).executeTakeFirstOrThrow();
  return { version: Number(row.version), leaseOwner: row.lease_owner, leaseUntil: row.lease_until };
}

/** Claims every due row and starts an attempt for each collect step (what the engine's sweep does). */
async function claimAndBegin(token: string, now = NOW): Promise<Claimed[]> {
  const { claimed } = await store.claim({ token, now, limit: 100, leaseMs: LEASE }, (rows) =>
    rows.map((row): ClaimDecision => {
      const step = dueStep(row.subscription, now);
      if (step !== 'collect') return { kind: 'release' };
      const begun = beginAttempt(row.subscription, now, now + LEASE);
      return { kind: 'begin', transition: begun, attempt: { key: begun.key, cycle: begun.cycle, attempt: begun.attempt } };
    }),
  );
  return claimed;
}

/** The outcome write the engine makes for a started attempt. */
function outcomeOf(claimed: Claimed, token: string, outcome: Outcome, attempt?: AttemptInfo): OutcomeWrite {
  if (claimed.decision.kind !== 'begin') throw new Error('not an intent');
  const sub: Subscription = claimed.decision.transition.subscription;
  const { key, cycle, attempt: number } = claimed.decision.attempt;
  return {
    token,
    subscription: sub,
    version: claimed.version,
    attempt: attempt ?? { key, cycle, attempt: number, mode: sub.mode, state: 'in_flight', sends: 1, createdAt: NOW },
    settle: (s, a, now) => settleAttempt(s, a, outcome, now, policy()),
  };
}

describe('claim and intent (one transaction)', () => {
  it('claims due rows, writes the in_flight attempt, the reconcile pointer and the lease in one commit, and bumps the version', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'a', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'later', startDate: '2025-02-15' }, { sendOnHour: 10 });
    expect(await rowMeta('a')).toEqual({ version: 0, leaseOwner: null, leaseUntil: null });

    const claimed = await claimAndBegin('d1/1');
    expect(claimed.map((c) => [c.subscription.id, c.decision.kind, c.version])).toEqual([['a', 'begin', 1]]);
    expect(await attemptsOf(temp.db, 'a')).toMatchObject([{ key: 'a:1:1', state: 'in_flight', sends: 1 }]);
    const sub = await getSubscription(temp.db, 'a');
    expect({ next: sub.nextAction, at: sub.actionAt }).toEqual({ next: 'reconcile', at: NOW + LEASE });
    expect(await rowMeta('a')).toEqual({ version: 1, leaseOwner: 'd1/1', leaseUntil: new Date(NOW + LEASE).toISOString() });
    expect((await cyclesOf(temp.db, 'a')).map((c) => [c.cycle, c.status, c.attempts])).toEqual([[1, 'collecting', 1]]);
    // The row not due yet was neither read nor leased.
    expect(await rowMeta('later')).toEqual({ version: 0, leaseOwner: null, leaseUntil: null });
    // A second claim finds nothing: the row is leased and its work moved to the lease's end.
    expect(await claimAndBegin('d2/1')).toEqual([]);
  });

  it('a claim whose transaction fails leaves nothing behind: no lease, no attempt, no version change', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'a', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await expect(
      store.claim({ token: 'd1/1', now: NOW, limit: 10, leaseMs: LEASE }, () => {
        throw new Error('decide failed');
      }),
    ).rejects.toThrow('decide failed');
    expect(await rowMeta('a')).toEqual({ version: 0, leaseOwner: null, leaseUntil: null });
    expect(await attemptsOf(temp.db, 'a')).toEqual([]);
  });

  it('a claim that carries outcomes records them first in its own transaction: one commit ends one batch and starts the next', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'a', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'b', startDate: '2025-01-31' }, { sendOnHour: 11 });
    const [claimedA] = await claimAndBegin('d1/1');
    const later = DUE + 3_600_000 + 5_000;
    const { claimed, written } = await store.claim(
      { token: 'd1/2', now: later, limit: 10, leaseMs: LEASE },
      (rows) =>
        rows.map((row): ClaimDecision => {
          const begun = beginAttempt(row.subscription, later, later + LEASE);
          return { kind: 'begin', transition: begun, attempt: { key: begun.key, cycle: begun.cycle, attempt: begun.attempt } };
        }),
      { now: later, items: [outcomeOf(claimedA!, 'd1/1', { kind: 'captured', externalId: 'sim_a:1:1' })] },
    );
    expect(written).toMatchObject([{ kind: 'written', state: 'captured', subscription: { id: 'a', nextCycle: 2 } }]);
    // `a` was recorded before the due rows were read: captured, its lease given back, not due again.
    expect(claimed.map((c) => [c.subscription.id, c.decision.kind])).toEqual([['b', 'begin']]);
    expect(await attemptsOf(temp.db, 'a')).toMatchObject([{ key: 'a:1:1', state: 'captured' }]);
    expect(await rowMeta('a')).toEqual({ version: 2, leaseOwner: null, leaseUntil: null });
    expect(await attemptsOf(temp.db, 'b')).toMatchObject([{ key: 'b:1:1', state: 'in_flight' }]);
    expect(await rowMeta('b')).toMatchObject({ version: 1, leaseOwner: 'd1/2' });
  });

  it('a claim that carries outcomes and fails writes neither: the outcomes can then be recorded alone', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'a', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'b', startDate: '2025-01-31' }, { sendOnHour: 11 });
    const [claimedA] = await claimAndBegin('d1/1');
    const later = DUE + 3_600_000 + 5_000;
    const outcome = outcomeOf(claimedA!, 'd1/1', { kind: 'captured', externalId: 'sim_a:1:1' });
    await expect(
      store.claim(
        { token: 'd1/2', now: later, limit: 10, leaseMs: LEASE },
        () => {
          throw new Error('decide failed');
        },
        { now: later, items: [outcome] },
      ),
    ).rejects.toThrow('decide failed');
    expect(await attemptsOf(temp.db, 'a')).toMatchObject([{ state: 'in_flight' }]);
    expect(await rowMeta('a')).toMatchObject({ version: 1, leaseOwner: 'd1/1' });
    expect(await rowMeta('b')).toEqual({ version: 0, leaseOwner: null, leaseUntil: null });
    expect(await store.recordOutcomes(later, [outcome])).toMatchObject([{ kind: 'written', state: 'captured' }]);
  });

  it('open attempts (reconcile, poll) are claimed before new collections that fell due earlier, and their attempt row comes with them', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'fresh', startDate: '2025-01-31' }, { sendOnHour: 9 });
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'open', startDate: '2025-01-31' }, { sendOnHour: 10 });
    // `open` was started by a daemon that died: in_flight, pointer reconcile, due now (later than `fresh`).
    const nowText = new Date(NOW).toISOString();
    await sql`update subscriptions set next_action = 'reconcile', action_at = ${nowText}, work_at = ${nowText} where id = 'open'`.execute(temp.db);
    await sql`insert into attempts (idempotency_key, subscription_id, cycle, attempt, gateway, mode, state, amount_minor, currency, sends, created_at, updated_at)
              values ('open:1:1', 'open', 1, 1, 'sim', 'charge', 'in_flight', 999, 'USD', 1, ${nowText}, ${nowText})`.execute(temp.db);

    const { claimed } = await store.claim({ token: 'd1/1', now: NOW, limit: 1, leaseMs: LEASE }, (rows) =>
      rows.map((row) => ({ kind: 'query', key: `${row.subscription.id}:1:1` })),
    );
    expect(claimed.map((c) => c.subscription.id)).toEqual(['open']);
    expect(claimed[0]!.attempt).toMatchObject({ key: 'open:1:1', state: 'in_flight', sends: 1 });
    // A status query is a lease, not a state write: the version stays.
    expect(await rowMeta('open')).toMatchObject({ version: 0, leaseOwner: 'd1/1' });
  });

  it('release with a due instant moves the work (a state write) and leaves no lease; keep leases without a state write', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'held', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'refused', startDate: '2025-01-31' }, { sendOnHour: 11 });
    const probeAt = NOW + 30_000;
    const { claimed } = await store.claim({ token: 'd1/1', now: DUE + 3_600_000, limit: 10, leaseMs: LEASE }, (rows) =>
      rows.map((row): ClaimDecision => (row.subscription.id === 'held' ? { kind: 'release', dueAt: probeAt } : { kind: 'keep' })),
    );
    expect(claimed.map((c) => [c.subscription.id, c.decision.kind, c.version])).toEqual([
      ['held', 'release', 1],
      ['refused', 'keep', 0],
    ]);
    expect(await rowMeta('held')).toEqual({ version: 1, leaseOwner: null, leaseUntil: null });
    expect((await getSubscription(temp.db, 'held')).actionAt).toBe(probeAt);
    expect(await rowMeta('refused')).toMatchObject({ version: 0, leaseOwner: 'd1/1' });
  });
});

describe('outcomes (conditional writes)', () => {
  it('round trip: the outcome is written against lease and version, the lease given back, only the changed columns written', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'a', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const [claimed] = await claimAndBegin('d1/1');
    const before = await temp.db.selectFrom('subscriptions').selectAll().where('id', '=', 'a').executeTakeFirstOrThrow();

    const [result] = await store.recordOutcomes(NOW + 100, [outcomeOf(claimed!, 'd1/1', { kind: 'captured', externalId: 'sim_a:1:1' })]);
    expect(result).toMatchObject({ kind: 'written', state: 'captured', subscription: { nextAction: 'collect', nextCycle: 2, completedCycles: 1 } });
    expect(await attemptsOf(temp.db, 'a')).toMatchObject([{ key: 'a:1:1', state: 'captured', sends: 1 }]);
    expect((await cyclesOf(temp.db, 'a')).map((c) => [c.cycle, c.status])).toEqual([[1, 'paid']]);
    expect((await eventsOf(temp.db, 'a')).map((e) => e.type)).toEqual(['subscription.created', 'charge.succeeded']);
    const after = await temp.db.selectFrom('subscriptions').selectAll().where('id', '=', 'a').executeTakeFirstOrThrow();
    expect({ version: after.version, lease: after.lease_owner }).toEqual({ version: 2, lease: null });
    // Columns the capture did not change are left exactly as stored.
    const changed = Object.keys(after).filter((k) => (after as Record<string, unknown>)[k] !== (before as Record<string, unknown>)[k]).sort();
    expect(changed).toEqual(
      ['action_at', 'completed_cycles', 'last_paid_cycle', 'latest_payment_external_id', 'lease_owner', 'lease_until', 'next_action', 'next_cycle', 'updated_at', 'version', 'work_at'].sort(),
    );
  });

  it('an API pause between intent and outcome: the version moved, the row is re-read and the capture settles against the paused row', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'p', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const [claimed] = await claimAndBegin('d1/1');
    // The API pauses it while the charge is at the gateway (the lease is the engine's; the API ignores it).
    await updateSubscription(temp.db, 'p', NOW + 50, (s) => pause(s, {}, NOW + 50));
    expect(await rowMeta('p')).toMatchObject({ version: 2, leaseOwner: 'd1/1' });

    const [result] = await store.recordOutcomes(NOW + 100, [outcomeOf(claimed!, 'd1/1', { kind: 'captured', externalId: 'x' })]);
    expect(result).toMatchObject({ kind: 'written', state: 'captured' });
    const sub = await getSubscription(temp.db, 'p');
    // The money moved, so the capture is recorded; the pause made meanwhile stands.
    expect({ status: sub.status, completed: sub.completedCycles, next: sub.nextAction, cycle: sub.nextCycle }).toEqual({ status: 'paused', completed: 1, next: 'collect', cycle: 2 });
    expect(await rowMeta('p')).toEqual({ version: 3, leaseOwner: null, leaseUntil: null });
    expect((await eventsOf(temp.db, 'p')).map((e) => e.type)).toEqual(['subscription.created', 'subscription.paused', 'charge.succeeded']);
  });

  it('an API cancel between intent and outcome: a decline does not schedule a retry on the cancelled subscription', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'c', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const [claimed] = await claimAndBegin('d1/1');
    await updateSubscription(temp.db, 'c', NOW + 50, (s) => cancel(s, {}, NOW + 50));
    const [result] = await store.recordOutcomes(NOW + 100, [outcomeOf(claimed!, 'd1/1', { kind: 'declined', code: 'insufficient_funds', hard: false })]);
    expect(result).toMatchObject({ kind: 'written', state: 'rejected', subscription: { status: 'terminated', nextAction: 'none' } });
    expect((await eventsOf(temp.db, 'c', 'charge.failed'))[0]!.data).toMatchObject({ willRetry: false });
  });

  it('a lease lost to another owner: nothing is recorded, the attempt stays in_flight for the new owner to reconcile', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'l', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const [claimed] = await claimAndBegin('d1/1');
    // The lease ran out and another daemon claimed the row (its status query is out now).
    await sql`update subscriptions set lease_owner = 'd2/7' where id = 'l'`.execute(temp.db);
    const [result] = await store.recordOutcomes(NOW + 100, [outcomeOf(claimed!, 'd1/1', { kind: 'captured', externalId: 'x' })]);
    expect(result).toEqual({ kind: 'lease_lost' });
    expect(await attemptsOf(temp.db, 'l')).toMatchObject([{ state: 'in_flight' }]);
    expect(await rowMeta('l')).toEqual({ version: 1, leaseOwner: 'd2/7', leaseUntil: new Date(NOW + LEASE).toISOString() });
    expect(await eventsOf(temp.db, 'l', 'charge.succeeded')).toEqual([]);
  });

  it('an attempt a gateway callback settled meanwhile is not recorded twice: only the lease is given back', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'cb', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const [claimed] = await claimAndBegin('d1/1');
    const settled = await settleFromCallback(
      { db: temp.db, clock: { now: () => NOW + 50, sleepUntil: async () => undefined }, policy: policy(), logger: silentLogger, kick: () => undefined },
      'sim',
      { kind: 'result', key: 'cb:1:1', result: { kind: 'captured', externalId: 'from-callback' } },
    );
    expect(settled).toMatchObject({ kind: 'settled', state: 'captured' });
    const [result] = await store.recordOutcomes(NOW + 100, [outcomeOf(claimed!, 'd1/1', { kind: 'captured', externalId: 'from-engine' })]);
    expect(result).toEqual({ kind: 'already_settled', state: 'captured' });
    expect(await eventsOf(temp.db, 'cb', 'charge.succeeded')).toHaveLength(1);
    expect(await rowMeta('cb')).toMatchObject({ leaseOwner: null });
    expect((await getSubscription(temp.db, 'cb')).completedCycles).toBe(1);
  });

  it('not_found re-sends under the same lease: the attempt is in_flight again with sends + 1, the row untouched', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'r', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const [claimed] = await claimAndBegin('d1/1');
    const [result] = await store.recordOutcomes(NOW + 100, [outcomeOf(claimed!, 'd1/1', { kind: 'not_found' })]);
    expect(result).toMatchObject({ kind: 'resend', version: 1, attempt: { key: 'r:1:1', state: 'in_flight', sends: 2 } });
    expect(await attemptsOf(temp.db, 'r')).toMatchObject([{ state: 'in_flight', sends: 2 }]);
    expect(await rowMeta('r')).toMatchObject({ version: 1, leaseOwner: 'd1/1' });
  });

  it('a batch where one outcome fails rolls back as a whole; the rows are untouched and can be written one by one', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'ok', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'bad', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const claimed = await claimAndBegin('d1/1');
    const ok = outcomeOf(claimed.find((c) => c.subscription.id === 'ok')!, 'd1/1', { kind: 'captured', externalId: 'x' });
    const bad: OutcomeWrite = {
      ...outcomeOf(claimed.find((c) => c.subscription.id === 'bad')!, 'd1/1', { kind: 'captured', externalId: 'y' }),
      settle: () => {
        throw new Error('calendar refused');
      },
    };
    await expect(store.recordOutcomes(NOW + 100, [ok, bad])).rejects.toThrow('calendar refused');
    expect(await attemptsOf(temp.db, 'ok')).toMatchObject([{ state: 'in_flight' }]);
    expect(await store.recordOutcomes(NOW + 100, [ok])).toMatchObject([{ kind: 'written' }]);
  });
});

describe('leases and the simulator ledger', () => {
  it('release gives back only the leases the token holds; extendLeases moves the expiry of the rows given, each only under its token', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'a', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'b', startDate: '2025-01-31' }, { sendOnHour: 10 });
    await claimAndBegin('d1/1');
    await store.extendLeases([{ id: 'a', token: 'd1/1' }, { id: 'b', token: 'd1/0' }], NOW, 10 * LEASE);
    expect((await rowMeta('a')).leaseUntil).toBe(new Date(NOW + 10 * LEASE).toISOString());
    expect((await rowMeta('b')).leaseUntil).toBe(new Date(NOW + LEASE).toISOString());
    await store.release('other/1', ['a']);
    expect((await rowMeta('a')).leaseOwner).toBe('d1/1');
    await store.release('d1/1', ['a'], NOW + 1);
    expect(await rowMeta('a')).toEqual({ version: 2, leaseOwner: null, leaseUntil: null });
    expect((await getSubscription(temp.db, 'a')).actionAt).toBe(NOW + 1);
    expect((await rowMeta('b')).leaseOwner).toBe('d1/1');
  });

  it('a staged ledger entry is read back at once, written by the next hot-path commit, and kept staged when that commit fails', async () => {
    await addSubscription(temp.db, NOW - 86_400_000, { id: 'a', startDate: '2025-01-31' }, { sendOnHour: 10 });
    const [claimed] = await claimAndBegin('d1/1');
    store.stageLedgerEntry('sim', 'a:1:1', JSON.stringify({ key: 'a:1:1', result: { kind: 'captured' } }), NOW);
    expect(store.staged).toBe(1);
    expect(await store.ledgerEntry('sim', 'a:1:1', NOW + 100)).toContain('captured');
    expect(await store.ledgerEntry('other', 'a:1:1', NOW + 100)).toBeUndefined();
    expect(await ledgerOf(temp.db, 'a')).toEqual([]);

    // A failing commit writes nothing, the entry included, and keeps it staged.
    await expect(store.recordOutcomes(NOW + 100, [{ ...outcomeOf(claimed!, 'd1/1', { kind: 'captured', externalId: 'x' }), settle: () => { throw new Error('boom'); } }])).rejects.toThrow('boom');
    expect(store.staged).toBe(1);
    expect(await ledgerOf(temp.db, 'a')).toEqual([]);

    // The outcome's commit writes it with the outcome.
    await store.recordOutcomes(NOW + 100, [outcomeOf(claimed!, 'd1/1', { kind: 'captured', externalId: 'x' })]);
    expect(store.staged).toBe(0);
    expect(await ledgerOf(temp.db, 'a')).toEqual([{ key: 'a:1:1', result: 'captured' }]);
    expect(await store.ledgerEntry('sim', 'a:1:1', NOW + 100)).toContain('captured');
  });

  it('the first ledger lookup of a key a claim just inserted is answered without a read (nobody can have sent it); later ones, ones after half the lease and ones after its outcome read the ledger', async () => {
    for (const id of ['a', 'b', 'c']) await addSubscription(temp.db, NOW - 86_400_000, { id, startDate: '2025-01-31' }, { sendOnHour: 10 });
    const claimed = await claimAndBegin('d1/1');
    // Rows no real run can have (an entry for a key before its first call): they show which lookups read.
    await temp.db
      .insertInto('simulator_ledger')
      .values(['a', 'b', 'c'].map((id) => ({ idempotency_key: `${id}:1:1`, gateway: 'sim', entry: '{"stored":true}', created_at: new Date(NOW).toISOString() })))
      .execute();
    expect(await store.ledgerEntry('sim', 'a:1:1', NOW + 10)).toBeUndefined();
    expect(await store.ledgerEntry('sim', 'a:1:1', NOW + 20)).toContain('stored');
    // Half the lease on, another daemon could soon take the row over and send the key: read.
    expect(await store.ledgerEntry('sim', 'b:1:1', NOW + LEASE / 2)).toContain('stored');
    await store.recordOutcomes(NOW + 30, [outcomeOf(claimed.find((x) => x.subscription.id === 'c')!, 'd1/1', { kind: 'captured', externalId: 'x' })]);
    expect(await store.ledgerEntry('sim', 'c:1:1', NOW + 40)).toContain('stored');
  });

  it('one store per database: the engine and the simulator gateways built on the same Db share the staged entries', () => {
    expect(hotPathStore(temp.db)).toBe(store);
  });
});
