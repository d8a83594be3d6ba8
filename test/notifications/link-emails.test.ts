/**
 * Payment-link e-mails (issue 9, item 2) in-process: the real engine with the
 * simulator on a virtual clock, the real sender (nodemailer) and a real SMTP
 * server on 127.0.0.1. Backoff is moved through by advancing the clock, never
 * waited for.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import type { LinkEmailConfig } from '../../src/config/index.js';
import { subscriptionFromPlan } from '../../src/domain/index.js';
import { daemonGateways, removedButInUse, type Engine } from '../../src/engine/index.js';
import type { Gateway } from '../../src/gateways/index.js';
import { createMetrics } from '../../src/http/index.js';
import { createLinkEmailSender, linkEmailMessageId, type LinkEmailSender } from '../../src/notifications/index.js';
import { listCharges } from '../../src/service/index.js';
import { createSubscription, syncPlanEmailLinks } from '../../src/store/index.js';
import { addSubscription, attemptsOf, daemonEngine, eventsOf, ledgerOf, ms, openTempDb, planTerms, silentLogger, type TempDb } from '../support/engine-harness.js';
import { freePort, startSmtpCatcher, type SmtpCatcher } from '../support/smtp.js';

const FROM = 'Example Billing <billing@example.com>';
const DUE = '2025-01-15T09:00:00Z';

function emailConfig(port: number, overrides: Partial<LinkEmailConfig> = {}): LinkEmailConfig {
  return {
    smtp: `smtp://127.0.0.1:${port}`,
    from: FROM,
    fromAddress: 'billing@example.com',
    subject: 'Payment due: {{amount}} {{currency}} for {{description}}',
    template: 'Hello {{customerName}}, {{amount}} {{currency}} is due on {{dueDate}} (cycle {{cycle}} of {{subscriptionId}}).\nPay here: {{link}}\n',
    retrySchedule: ['PT1M', 'PT5M', 'PT30M', 'PT2H'],
    maxAgeHours: 72,
    timeoutSeconds: 5,
    ...overrides,
  };
}

/** The simulator, counting the payment links it is asked to create, per attempt key. */
function countingGateways(t: TempDb, clock: VirtualClock): { gateways: Map<string, Gateway>; links: Map<string, number> } {
  const links = new Map<string, number>();
  const sim = daemonGateways(t.db, clock, { sim: { type: 'simulator' } }).get('sim')!;
  const counted: Gateway = {
    ...sim,
    charge: (request) => sim.charge(request),
    status: (key, request) => sim.status(key, request),
    sendLink(request) {
      links.set(request.idempotencyKey, (links.get(request.idempotencyKey) ?? 0) + 1);
      return sim.sendLink(request);
    },
  };
  return { gateways: new Map([['sim', counted]]), links };
}

/** Polls `condition` every 10 ms (real time: the SMTP conversation runs on real sockets), for up to 10 s. */
async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}

/** A logger whose lines the test reads. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('payment-link e-mails', () => {
  let t: TempDb;
  let clock: VirtualClock;
  let engine: Engine;
  let links: Map<string, number>;
  // Senders stop before the servers close: a server waits for the pool's open connections.
  const senders: LinkEmailSender[] = [];
  const closers: Array<() => Promise<unknown>> = [];

  beforeEach(async () => {
    t = await openTempDb({}, { name: 'link-emails' });
    clock = new VirtualClock(ms(DUE) + 1000);
    const counting = countingGateways(t, clock);
    links = counting.links;
    engine = daemonEngine(t.db, clock, {}, { gateways: counting.gateways });
  });
  afterEach(async () => {
    for (const s of senders.splice(0)) await s.stop(0);
    for (const close of closers.splice(0)) await close();
    await engine.stop(0);
    await t.close();
  });

  function sender(port: number, overrides: Partial<LinkEmailConfig> = {}, logger = silentLogger, observer?: { outcome(o: string): void }): LinkEmailSender {
    const s = createLinkEmailSender({ db: t.db, clock, logger, email: emailConfig(port, overrides), ...(observer ? { observer } : {}) });
    senders.push(s);
    return s;
  }

  async function smtp(options: Parameters<typeof startSmtpCatcher>[0] = {}): Promise<SmtpCatcher> {
    const catcher = await startSmtpCatcher(options);
    closers.push(() => catcher.close());
    return catcher;
  }

  /** A link-mode subscription on the gold plan (9.99 USD) that e-mails its links, cycle 1 due at DUE. */
  async function linkSubscription(id: string, customer: { email?: string; firstName?: string; lastName?: string } | null, plan: { emailLinks?: boolean } = {}) {
    // tok_pending: the simulator's link stays unpaid, so status polls never settle it.
    await addSubscription(t.db, ms('2025-01-01T00:00:00Z'), { id, paymentToken: 'tok_pending', startDate: '2025-01-15', customer }, { mode: 'link', sendOnHour: 9, emailLinks: true, ...plan });
  }

  async function chargeOf(id: string) {
    const [charge] = (await listCharges(t.db, { subscriptionId: id })).data;
    return charge!;
  }

  it('a link-mode subscription falls due: the e-mail reaches the customer with the link, the amount as written and the due date; the attempt shows sent', async () => {
    const catcher = await smtp();
    await linkSubscription('ann', { email: 'ann@example.com', firstName: 'Ann', lastName: 'Lee' });
    await engine.sweepUntilIdle();
    const [attempt] = await attemptsOf(t.db, 'ann');
    expect(attempt).toMatchObject({ key: 'ann:1:1', state: 'pending' });
    const [sent] = await eventsOf(t.db, 'ann', 'payment_link.sent');
    const link = String(sent!.data.linkUrl);
    // Queued in the transaction that recorded the link: pending before the sender ever ran.
    expect((await chargeOf('ann')).linkEmail).toMatchObject({ status: 'pending', tries: 0, sentAt: null });

    expect(await sender(catcher.port).tick()).toBe(1);
    const [mail] = await catcher.waitFor(1);
    expect(mail!.rcptTo).toEqual(['ann@example.com']);
    expect(mail!.mailFrom).toBe('billing@example.com');
    expect(mail!.headers.get('to')).toBe('ann@example.com');
    expect(mail!.headers.get('subject')).toBe('Payment due: 9.99 USD for Gold membership');
    expect(mail!.text).toBe(`Hello Ann Lee, 9.99 USD is due on 2025-01-15 (cycle 1 of ann).\nPay here: ${link}\n`);
    expect(mail!.headers.get('message-id')).toBe(linkEmailMessageId('ann:1:1', 'billing@example.com'));
    expect(mail!.headers.get('x-rebill-attempt')).toBe('ann:1:1');
    // The Date header comes from rebill's clock (virtual here), not the machine's.
    expect(Date.parse(mail!.headers.get('date')!)).toBe(clock.now());

    const charge = await chargeOf('ann');
    expect(charge.linkUrl).toBe(link);
    expect(charge.linkEmail).toEqual({
      status: 'sent',
      tries: 1,
      to: 'ann@example.com',
      lastTryAt: new Date(clock.now()).toISOString().replace('.000Z', 'Z'),
      nextTryAt: null,
      sentAt: new Date(clock.now()).toISOString().replace('.000Z', 'Z'),
      messageId: linkEmailMessageId('ann:1:1', 'billing@example.com'),
      error: null,
    });
    expect(await sender(catcher.port).tick()).toBe(0);
    expect(catcher.received).toHaveLength(1);
  });

  it('a plan without emailLinks queues no e-mail: the charge shows linkEmail null', async () => {
    await linkSubscription('quiet', { email: 'q@example.com' }, { emailLinks: false });
    await engine.sweepUntilIdle();
    expect((await attemptsOf(t.db, 'quiet')).map((a) => a.state)).toEqual(['pending']);
    expect((await chargeOf('quiet')).linkEmail).toBeNull();
    expect(await sender(await freePort()).tick()).toBe(0);
  });

  it('SMTP down, then 451, then 550: retried after 1 min, 5 min and 30 min, then delivered with the same link; the gateway made ONE link', async () => {
    const port = await freePort();
    await linkSubscription('bob', { email: 'bob@example.com' });
    await engine.sweepUntilIdle();
    const [sent] = await eventsOf(t.db, 'bob', 'payment_link.sent');
    const link = String(sent!.data.linkUrl);
    const mailer = sender(port);
    const t0 = clock.now();

    // Nothing listens on the port.
    expect(await mailer.tick()).toBe(1);
    let email = (await chargeOf('bob')).linkEmail!;
    expect(email).toMatchObject({ status: 'pending', tries: 1, sentAt: null, nextTryAt: new Date(t0 + 60_000).toISOString().replace('.000Z', 'Z') });
    expect(email.error).toMatch(/ECONNREFUSED/);

    // Not due before its retry instant.
    clock.set(t0 + 59_000);
    expect(await mailer.tick()).toBe(0);

    // The server is up but refuses for now (451), then for good (550): each is one counted try.
    const catcher = await smtp({ port, answer: 451 });
    clock.set(t0 + 60_000);
    await engine.sweepUntilIdle();
    expect(await mailer.tick()).toBe(1);
    email = (await chargeOf('bob')).linkEmail!;
    expect(email).toMatchObject({ status: 'pending', tries: 2, nextTryAt: new Date(t0 + 60_000 + 300_000).toISOString().replace('.000Z', 'Z') });
    expect(email.error).toMatch(/451/);

    catcher.answer = 550;
    clock.set(t0 + 360_000);
    await engine.sweepUntilIdle();
    expect(await mailer.tick()).toBe(1);
    email = (await chargeOf('bob')).linkEmail!;
    expect(email).toMatchObject({ status: 'pending', tries: 3, nextTryAt: new Date(t0 + 360_000 + 1_800_000).toISOString().replace('.000Z', 'Z') });
    expect(email.error).toMatch(/550/);
    expect(catcher.refused).toBe(2);

    catcher.answer = 'accept';
    clock.set(t0 + 2_160_000);
    await engine.sweepUntilIdle(); // the engine's status polls in between leave the link pending and ask for no new one
    expect(await mailer.tick()).toBe(1);
    const [mail] = await catcher.waitFor(1);
    expect(mail!.text).toContain(link);
    expect(mail!.headers.get('message-id')).toBe(linkEmailMessageId('bob:1:1', 'billing@example.com'));
    expect((await chargeOf('bob')).linkEmail).toMatchObject({ status: 'sent', tries: 4, error: null, sentAt: new Date(t0 + 2_160_000).toISOString().replace('.000Z', 'Z') });

    // One link for the attempt: the gateway was asked once, its ledger has one entry, every event and the attempt carry it.
    expect(links).toEqual(new Map([['bob:1:1', 1]]));
    expect(await ledgerOf(t.db, 'bob')).toEqual([{ key: 'bob:1:1', result: 'pending' }]);
    expect((await eventsOf(t.db, 'bob', 'payment_link.sent')).map((e) => e.data.linkUrl)).toEqual([link]);
    expect((await chargeOf('bob')).linkUrl).toBe(link);
  });

  it('gives up after maxAgeHours: failed, every try counted, never tried again', async () => {
    const port = await freePort();
    await linkSubscription('cat', { email: 'cat@example.com' });
    await engine.sweepUntilIdle();
    const outcomes: string[] = [];
    const mailer = sender(port, { maxAgeHours: 1, retrySchedule: ['PT1M', 'PT5M', 'PT30M'] }, silentLogger, { outcome: (o) => outcomes.push(o) });
    const t0 = clock.now();
    // Tries at 0, +1 min, +6 min, +36 min; the next would be at +66 min, past the hour.
    for (const at of [0, 60_000, 360_000, 2_160_000]) {
      clock.set(t0 + at);
      expect(await mailer.tick()).toBe(1);
    }
    expect(outcomes).toEqual(['retry', 'retry', 'retry', 'failed']);
    expect((await chargeOf('cat')).linkEmail).toMatchObject({ status: 'failed', tries: 4, nextTryAt: null, error: expect.stringMatching(/ECONNREFUSED/) });
    const catcher = await smtp({ port });
    clock.set(t0 + 48 * 3_600_000);
    expect(await mailer.tick()).toBe(0);
    expect(catcher.received).toHaveLength(0);
  });

  it('a customer without an e-mail address: skipped once with the reason, logged once, never retried', async () => {
    const catcher = await smtp();
    const { logger, lines } = capturingLogger();
    const outcomes: string[] = [];
    await linkSubscription('dan', { firstName: 'Dan' });
    await linkSubscription('eve', null);
    await engine.sweepUntilIdle();
    const mailer = sender(catcher.port, {}, logger, { outcome: (o) => outcomes.push(o) });
    expect(await mailer.tick()).toBe(2);
    for (const id of ['dan', 'eve']) {
      expect((await chargeOf(id)).linkEmail).toEqual({ status: 'skipped', tries: 0, to: null, lastTryAt: null, nextTryAt: null, sentAt: null, messageId: null, error: 'the customer has no e-mail address' });
    }
    clock.advance(7 * 86_400_000);
    expect(await mailer.tick()).toBe(0);
    expect(outcomes).toEqual(['skipped', 'skipped']);
    expect(catcher.received).toHaveLength(0);
    const skipped = lines.filter((l) => String(l.msg).startsWith('payment-link e-mail skipped'));
    expect(skipped.map((l) => [l.subscriptionId, l.reason, l.level])).toEqual([
      ['dan', 'the customer has no e-mail address', 40],
      ['eve', 'the customer has no e-mail address', 40],
    ]);
  });

  it('an attempt paid before its e-mail went out: skipped, the closed link is not sent', async () => {
    const catcher = await smtp();
    // No token: the simulator reports the link paid at the first status poll (after pendingPoll, 5 min).
    await addSubscription(t.db, ms('2025-01-01T00:00:00Z'), { id: 'fay', paymentToken: null, startDate: '2025-01-15', customer: { email: 'fay@example.com' } }, { mode: 'link', sendOnHour: 9, emailLinks: true });
    await engine.sweepUntilIdle();
    clock.advance(300_000);
    await engine.sweepUntilIdle();
    expect((await attemptsOf(t.db, 'fay')).map((a) => a.state)).toEqual(['captured']);
    expect(await sender(catcher.port).tick()).toBe(1);
    expect((await chargeOf('fay')).linkEmail).toMatchObject({ status: 'skipped', tries: 0, error: 'the attempt is captured; its link is no longer open' });
    expect(catcher.received).toHaveLength(0);
  });

  it('a resend after a lost record (a crash after the server accepted) carries the same Message-ID and link', async () => {
    const catcher = await smtp();
    await linkSubscription('gus', { email: 'gus@example.com' });
    await engine.sweepUntilIdle();
    await sender(catcher.port).tick();
    // What a crash between the server's 250 and the commit leaves behind: the row still pending.
    await t.db.updateTable('link_emails').set({ state: 'pending', sent_at: null, next_try_at: new Date(clock.now()).toISOString() }).where('attempt_key', '=', 'gus:1:1').execute();
    await sender(catcher.port).tick();
    const mails = await catcher.waitFor(2);
    expect(mails[1]!.headers.get('message-id')).toBe(mails[0]!.headers.get('message-id'));
    expect(mails[1]!.text).toBe(mails[0]!.text);
    expect(links.get('gus:1:1')).toBe(1);
  });

  it('an AUTH server: the credentials of the URL (or of password:) are used; a wrong password is a counted try with the 535 reply', async () => {
    const catcher = await smtp({ auth: { user: 'rebill', pass: 'p/ss@w:rd' } });
    await linkSubscription('hal', { email: 'hal@example.com' });
    await engine.sweepUntilIdle();
    const wrong = sender(catcher.port, { smtp: `smtp://rebill:nope@127.0.0.1:${catcher.port}` });
    expect(await wrong.tick()).toBe(1);
    expect((await chargeOf('hal')).linkEmail).toMatchObject({ status: 'pending', tries: 1, error: expect.stringMatching(/535/) });
    expect((await chargeOf('hal')).linkEmail!.error).not.toContain('nope');
    clock.advance(60_000);
    // A password with "/", "@" and ":" in the URL must be percent-encoded; password: takes it as it is.
    expect(await sender(catcher.port, { smtp: `smtp://rebill:${encodeURIComponent('p/ss@w:rd')}@127.0.0.1:${catcher.port}` }).tick()).toBe(1);
    await linkSubscription('ian', { email: 'ian@example.com' });
    await engine.sweepUntilIdle();
    expect(await sender(catcher.port, { smtp: `smtp://rebill@127.0.0.1:${catcher.port}`, password: 'p/ss@w:rd' }).tick()).toBe(1);
    const mails = await catcher.waitFor(2);
    expect(mails.map((m) => m.user)).toEqual(['rebill', 'rebill']);
  });

  it('stop() lets a conversation in flight finish and records it (the loop takes nothing new)', async () => {
    const catcher = await smtp();
    catcher.hold = true;
    await linkSubscription('kim', { email: 'kim@example.com' });
    await engine.sweepUntilIdle();
    const mailer = sender(catcher.port);
    mailer.start();
    await waitUntil(() => catcher.held === 1);
    const stopped = mailer.stop(60_000);
    setTimeout(() => catcher.release(), 100);
    expect(await stopped).toEqual({ drained: true, abandoned: 0 });
    expect((await chargeOf('kim')).linkEmail).toMatchObject({ status: 'sent', tries: 1 });
    expect(catcher.received).toHaveLength(1);
  });

  it('stop() past its drain limit cuts the conversation off: not counted as a try, left pending for the next start', async () => {
    const catcher = await smtp();
    catcher.hold = true;
    closers.unshift(async () => catcher.release());
    await linkSubscription('lou', { email: 'lou@example.com' });
    await engine.sweepUntilIdle();
    const mailer = sender(catcher.port);
    mailer.start();
    await waitUntil(() => catcher.held === 1);
    const stopped = mailer.stop(5_000);
    clock.advance(5_000); // the drain limit runs on rebill's clock
    expect(await stopped).toEqual({ drained: false, abandoned: 1 });
    expect((await chargeOf('lou')).linkEmail).toMatchObject({ status: 'pending', tries: 0, error: null });
  });

  it('live inline schedules that e-mail their links need notifications.email at start (removedButInUse); a plan sync leaves them alone', async () => {
    const inline = subscriptionFromPlan(planTerms({ id: '', mode: 'link', emailLinks: true }), { id: 'inline-1', startDate: '2030-01-01', customer: { email: 'i@example.com' } });
    await createSubscription(t.db, { ...inline, planId: null, planVersion: null }, clock.now());
    expect(await syncPlanEmailLinks(t.db, [{ id: 'gold-monthly', emailLinks: false }])).toBe(0);
    const without = await removedButInUse(t.db, { plans: [], gateways: { sim: {} }, notifications: {} });
    expect(without).toEqual([
      {
        section: 'notifications',
        id: 'email',
        count: 1,
        message: 'notifications.email is not configured but 1 live subscription with an inline schedule e-mails its payment links (emailLinks: true); configure it, or its links would never reach the customer',
      },
    ]);
    expect(await removedButInUse(t.db, { plans: [], gateways: { sim: {} }, notifications: { email: emailConfig(25) } })).toEqual([]);
  });

  it('a plan that starts e-mailing its links applies to its existing subscriptions (syncPlanEmailLinks), and the metrics count the outcomes', async () => {
    const catcher = await smtp();
    await linkSubscription('joe', { email: 'joe@example.com' }, { emailLinks: false });
    expect(await syncPlanEmailLinks(t.db, [{ id: 'gold-monthly', emailLinks: true }])).toBe(1);
    expect(await syncPlanEmailLinks(t.db, [{ id: 'gold-monthly', emailLinks: true }])).toBe(0);
    await engine.sweepUntilIdle();
    const metrics = createMetrics({ db: t.db, clock, queueBound: 100, gateways: ['sim'], processMetrics: false });
    const before = await metrics.registry.getSingleMetric('rebill_link_emails_pending')!.get();
    expect(before.values[0]!.value).toBe(1);
    const mailer = createLinkEmailSender({ db: t.db, clock, logger: silentLogger, email: emailConfig(catcher.port), observer: metrics.linkEmailObserver });
    senders.push(mailer);
    await mailer.tick();
    await catcher.waitFor(1);
    const text = await metrics.registry.metrics();
    expect(text).toContain('rebill_link_emails_total{outcome="sent"} 1');
    expect(text).toContain('rebill_link_emails_total{outcome="retry"} 0');
    expect(text).toContain('rebill_link_emails_pending 0');
  });
});
