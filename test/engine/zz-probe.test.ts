import { expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { cancel, pause, resume } from '../../src/domain/index.js';
import { getSubscription, nextWorkAt, updateSubscription } from '../../src/store/index.js';
import { addSubscription, attemptsOf, cyclesOf, daemonEngine, eventsOf, ms, openTempDb } from '../support/engine-harness.js';

async function run(t: any, engine: any, clock: VirtualClock, until: string) {
  for (;;) {
    await engine.sweepUntilIdle();
    const next = await nextWorkAt(t.db);
    if (next === null || next > ms(until)) break;
    clock.set(Math.max(next, clock.now() + 1));
  }
  clock.set(Math.max(clock.now(), ms(until)));
}

it('probe cancel during retry', async () => {
  const t = await openTempDb();
  const clock = new VirtualClock(ms('2025-01-01T00:00:00Z'));
  const engine = daemonEngine(t.db, clock);
  await addSubscription(t.db, clock.now(), { id: 'a', paymentToken: 'tok_insufficient', startDate: '2025-01-15' });
  await addSubscription(t.db, clock.now(), { id: 'b', paymentToken: 'tok_insufficient', startDate: '2025-01-15' });
  await addSubscription(t.db, clock.now(), { id: 'c', paymentToken: 'tok_insufficient', startDate: '2025-01-15' });
  await run(t, engine, clock, '2025-01-15T12:00:00Z');
  await updateSubscription(t.db, 'a', clock.now(), (s) => cancel(s, {}, clock.now()));
  await updateSubscription(t.db, 'b', clock.now(), (s) => cancel(s, { atPeriodEnd: true }, clock.now()));
  await updateSubscription(t.db, 'c', clock.now(), (s) => pause(s, {}, clock.now()));
  await run(t, engine, clock, '2025-03-20T00:00:00Z');
  await updateSubscription(t.db, 'c', clock.now(), (s) => resume(s, clock.now()));
  await run(t, engine, clock, '2025-04-01T00:00:00Z');
  for (const id of ['a', 'b', 'c']) {
    console.log(id, await getSubscription(t.db, id).then((s) => [s.status, s.terminationType, s.nextAction, s.nextCycle, s.nextAttempt]));
    console.log(id, await cyclesOf(t.db, id));
    console.log(id, (await attemptsOf(t.db, id)).map((a) => [a.key, a.state]));
    console.log(id, (await eventsOf(t.db, id)).map((e) => [e.at, e.type]));
  }
  await t.close();
});
