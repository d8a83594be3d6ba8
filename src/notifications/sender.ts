/**
 * The payment-link e-mail sender inside `rebill run` (issue 9, item 2): reads
 * the due rows of `link_emails` (queued with the link, in the transaction
 * that recorded it), sends each through SMTP with nodemailer, and records
 * the outcome on the row: `sent` (Message-ID, the server's answer, when),
 * or a failed try counted with its error and retried on the backoff until
 * `maxAgeHours` after the link, then `failed`.
 *
 * What it never does:
 * - Ask the gateway for a link. The e-mail carries the URL stored on the
 *   attempt; a retried e-mail carries the same one.
 * - Send a link that is no longer open: an attempt that was paid or given up
 *   meanwhile gets `skipped`, as does a customer without an e-mail address
 *   (logged once; nothing to retry).
 * At least once: a crash between the server's "250 OK" and the commit sends
 * the e-mail again at the next start, with the same Message-ID.
 */
import { createTransport } from 'nodemailer';
import type { Logger } from 'pino';
import { parseForwardDuration } from '../calendar/index.js';
import type { Clock } from '../clock.js';
import type { LinkEmailConfig } from '../config/index.js';
import { redactUrlPasswords } from '../logger.js';
import { dueLinkEmails, nextLinkEmailAt, recordLinkEmailTries, runExclusively, type Db, type DueLinkEmail, type LinkEmailTry } from '../store/index.js';
import { linkEmailMessage } from './message.js';

/** How a try ended, as metrics count it. */
export type LinkEmailOutcome = 'sent' | 'retry' | 'failed' | 'skipped';

/** What the sender reports as it goes (metrics). */
export interface LinkEmailObserver {
  outcome(outcome: LinkEmailOutcome): void;
}

export interface LinkEmailSenderOptions {
  /** Due e-mails read per pass and recorded in one commit (default 100). */
  readonly batchSize?: number;
  /** SMTP conversations at once, one pooled connection each (default 4). */
  readonly concurrency?: number;
  /** How often an idle sender looks for new e-mails (default 1000 ms). */
  readonly pollMs?: number;
}

export interface LinkEmailSenderDeps {
  readonly db: Db;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly email: LinkEmailConfig;
  readonly observer?: LinkEmailObserver;
  readonly options?: LinkEmailSenderOptions;
}

/** What stop() did. */
export interface LinkEmailStopReport {
  /** true: every conversation in flight finished and was recorded. */
  readonly drained: boolean;
  /** E-mails whose conversation was cut off by the drain limit: left pending, sent again at the next start. */
  readonly abandoned: number;
}

export interface LinkEmailSender {
  /** One pass: send what is due now and record it. Returns the e-mails handled (sent, failed, skipped). */
  tick(): Promise<number>;
  /** Runs the loop until stop(). */
  start(): void;
  /** Wakes an idle loop (new e-mails were queued). */
  kick(): void;
  /** Takes no new e-mail, lets those in flight finish for up to `drainMs`, records them, closes the connections. */
  stop(drainMs?: number): Promise<LinkEmailStopReport>;
}

/** The wait after failed try number `tries` (1-based): the schedule's step, the last one repeating. */
export function linkEmailRetryDelayMs(scheduleMs: readonly number[], tries: number): number {
  return scheduleMs[Math.min(Math.max(tries, 1), scheduleMs.length) - 1]!;
}

/** An SMTP error in one line: nodemailer's message plus the server's reply code, credentials masked, bounded. */
function smtpError(err: unknown): string {
  const e = err as Error & { code?: string; responseCode?: number };
  const text = e?.message ? e.message : String(err);
  const code = e?.responseCode !== undefined && !text.includes(String(e.responseCode)) ? ` (${e.responseCode})` : '';
  return redactUrlPasswords(`${text}${code}`).replace(/\s+/g, ' ').slice(0, 500);
}

/**
 * The nodemailer connection options of `notifications.email`: the URL
 * without its credentials (nodemailer would let the URL's user override an
 * explicit `auth`), and the credentials as `auth`, the password from
 * `password:` when given.
 */
function transportOptions(email: LinkEmailConfig, concurrency: number) {
  const url = new URL(email.smtp);
  const user = decodeURIComponent(url.username);
  const pass = email.password ?? decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  const timeout = email.timeoutSeconds * 1000;
  return {
    url: url.toString(),
    ...(user !== '' || pass !== '' ? { auth: { user, pass } } : {}),
    pool: true as const,
    maxConnections: concurrency,
    // A message is retried by rebill, on its schedule, not requeued by the pool (that could send it twice unrecorded).
    maxRequeues: 0,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    logger: false,
  };
}

export function createLinkEmailSender(deps: LinkEmailSenderDeps): LinkEmailSender {
  const { db, clock, logger, email } = deps;
  const batchSize = deps.options?.batchSize ?? 100;
  const concurrency = deps.options?.concurrency ?? 4;
  const pollMs = deps.options?.pollMs ?? 1000;
  const scheduleMs = email.retrySchedule.map((d) => parseForwardDuration(d).toMillis());
  const maxAgeMs = email.maxAgeHours * 3_600_000;
  const transport = createTransport(transportOptions(email, concurrency));
  let stopping = false;
  // Set when the drain limit cut conversations off: their errors are ours, not the server's, and are not recorded.
  let halted = false;
  let abandoned = 0;
  let wake = new AbortController();
  let loopDone: Promise<void> = Promise.resolve();

  /** Decides one due e-mail: skip it, or send it and say how that went. Undefined: abandoned (halted). */
  async function handle(row: DueLinkEmail): Promise<LinkEmailTry | undefined> {
    const base = { attemptKey: row.attemptKey, nextTryAt: null, messageId: null, smtpResponse: null };
    const where = { subscriptionId: row.subscriptionId, cycle: row.cycle, key: row.attemptKey };
    const skip = (reason: string, level: 'info' | 'warn' = 'warn'): LinkEmailTry => {
      // Logged once: a skipped e-mail is final, so this line is never repeated for it.
      logger[level]({ ...where, reason }, `payment-link e-mail skipped: ${reason}`);
      deps.observer?.outcome('skipped');
      return { ...base, at: clock.now(), state: 'skipped', counted: false, error: reason, recipient: null };
    };
    // Only an open link is worth an e-mail; a paid or expired one would mislead the customer.
    if (row.attemptState !== 'pending') return skip(`the attempt is ${row.attemptState}; its link is no longer open`, 'info');
    if (row.linkUrl === null) return skip('the gateway gave the attempt no link URL');
    if (row.email === null || row.email === '') return skip('the customer has no e-mail address');
    const message = linkEmailMessage({ ...row, email: row.email }, email);
    const tries = row.tries + 1;
    try {
      const info = await transport.sendMail({
        from: email.from,
        to: message.to,
        subject: message.subject,
        text: message.text,
        messageId: message.messageId,
        headers: message.headers,
        // The Date header from rebill's clock, like every other instant it records.
        date: new Date(clock.now()),
      });
      const at = clock.now();
      logger.info({ ...where, messageId: message.messageId, tries }, 'payment link e-mailed');
      deps.observer?.outcome('sent');
      return { ...base, at, state: 'sent', counted: true, error: null, recipient: message.to, messageId: message.messageId, smtpResponse: String(info.response ?? '').slice(0, 500) };
    } catch (err) {
      if (halted) {
        abandoned++;
        return undefined;
      }
      const at = clock.now();
      const error = smtpError(err);
      const next = at + linkEmailRetryDelayMs(scheduleMs, tries);
      const failed = next > row.createdAt + maxAgeMs;
      if (failed) logger.error({ ...where, tries, error }, `payment-link e-mail failed for good after ${tries} tries (maxAgeHours ${email.maxAgeHours})`);
      else logger.warn({ ...where, tries, error, nextTryAt: new Date(next).toISOString() }, 'payment-link e-mail failed; will retry');
      deps.observer?.outcome(failed ? 'failed' : 'retry');
      return { ...base, at, state: failed ? 'failed' : 'pending', counted: true, nextTryAt: failed ? null : next, error, recipient: message.to, messageId: message.messageId };
    }
  }

  /** One pass: the due e-mails, `concurrency` at a time; one commit for their outcomes. */
  async function pass(): Promise<number> {
    const due = await dueLinkEmails(db, clock.now(), batchSize);
    if (due.length === 0) return 0;
    const done: LinkEmailTry[] = [];
    let next = 0;
    const worker = async () => {
      while (next < due.length && !stopping) {
        const outcome = await handle(due[next++]!);
        if (outcome) done.push(outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, due.length) }, worker));
    await recordLinkEmailTries(db, done);
    return done.length;
  }

  async function loop(): Promise<void> {
    while (!stopping) {
      try {
        const signal = wake.signal;
        if ((await pass()) > 0) continue;
        const nextAt = await nextLinkEmailAt(db);
        if (!stopping) await clock.sleepUntil(Math.min(nextAt ?? Infinity, clock.now() + pollMs), signal);
      } catch (err) {
        if (stopping) return;
        logger.error({ err }, 'link e-mail pass failed; retrying');
        await clock.sleepUntil(clock.now() + 1000, wake.signal);
      }
    }
  }

  return {
    tick: pass,
    start() {
      // Several daemons on one PostgreSQL database: one sends at a time (a row tried by two would be
      // e-mailed twice); another takes over if it dies.
      loopDone = runExclusively(db, 'rebill:link-emails', loop, {
        stopped: () => stopping,
        wait: (ms) => clock.sleepUntil(clock.now() + ms, wake.signal),
        onWaiting: () => logger.info('another daemon sends the payment-link e-mails; taking over if it stops'),
      });
    },
    kick() {
      const previous = wake;
      wake = new AbortController();
      previous.abort();
    },
    async stop(drainMs = 10_000) {
      stopping = true;
      wake.abort();
      const limit = new AbortController();
      const drained = await Promise.race([loopDone.then(() => true), clock.sleepUntil(clock.now() + drainMs, limit.signal).then(() => false)]);
      limit.abort();
      if (!drained) {
        // Conversations still running past the limit are cut off; their e-mails stay pending for the next start.
        halted = true;
        transport.close({ force: true });
        await loopDone;
      }
      transport.close();
      return { drained, abandoned };
    },
  };
}
