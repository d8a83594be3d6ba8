/**
 * Payment-link e-mails end to end (issue 9, item 2): the real `rebill run`
 * daemon with a link-mode plan that opts in, and a real SMTP server (the
 * smtp-server package, AUTH required) in this test process on 127.0.0.1. The
 * SMTP password comes from the environment and must never appear in the
 * daemon's output (the secret scan after this file checks every line too).
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon } from './support/daemon.js';
import { exitWithin, logLines, readDb, todayUtc, waitFor, watchSecret, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';
import { runCli } from '../support/cli.js';
import { freePort, startSmtpCatcher, type SmtpCatcher } from '../support/smtp.js';

const newDir = e2eSuite('link-emails');
const SMTP_USER = 'rebill';
const SMTP_PASSWORD = 'e2e-smtp-Pa55word-4242';
watchSecret(SMTP_PASSWORD);

const catchers: SmtpCatcher[] = [];
afterEach(async () => {
  for (const c of catchers.splice(0)) await c.close();
});

/** A config: the simulator, a link-mode plan that e-mails its links, the seeds, and notifications.email at `port`. */
function config(dir: string, port: number, seeds: ReadonlyArray<{ id: string; customer: Record<string, string> }>, email: Record<string, unknown> = {}): string {
  return writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${path.join(dir, 'rebill.db')}` },
    gateways: { sim: { type: 'simulator' } },
    scheduler: { sweep: '* * * * * *' },
    logging: { level: 'info' },
    plans: [{ id: 'links', description: 'Monthly membership', amount: '9.99', currency: 'USD', every: 'MONTH', mode: 'link', emailLinks: true }],
    subscriptions: seeds.map((s) => ({ id: s.id, planId: 'links', startDate: todayUtc(), customer: s.customer })),
    notifications: {
      email: { smtp: `smtp://${SMTP_USER}:\${SMTP_PASSWORD}@127.0.0.1:${port}`, from: 'Example Billing <billing@example.com>', ...email },
    },
  });
}

interface EmailRow {
  attempt_key: string;
  state: string;
  tries: number;
  last_error: string | null;
  message_id: string | null;
}

function linkEmails(dbFile: string): EmailRow[] {
  return readDb(dbFile, (db) => db.prepare('select attempt_key, state, tries, last_error, message_id from link_emails order by attempt_key').all() as EmailRow[]);
}

function attempt(dbFile: string, key: string): { link_url: string; sends: number; state: string } {
  return readDb(dbFile, (db) => db.prepare('select link_url, sends, state from attempts where idempotency_key = ?').get(key) as { link_url: string; sends: number; state: string });
}

describe('payment-link e-mails from rebill run', () => {
  it('e-mails the link of a link-mode plan that opts in (link, amount, due date), skips a customer without an address, and drains on SIGTERM', async () => {
    const dir = newDir('sent');
    const catcher = await startSmtpCatcher({ auth: { user: SMTP_USER, pass: SMTP_PASSWORD } });
    catchers.push(catcher);
    const file = config(dir, catcher.port, [
      { id: 'ann', customer: { email: 'ann@example.com', firstName: 'Ann', lastName: 'Lee' } },
      { id: 'nomail', customer: { firstName: 'No', lastName: 'Mail' } },
    ]);
    const dbFile = path.join(dir, 'rebill.db');
    const daemon = await startDaemon(file, path.join(dir, 'rebill.log'), { SMTP_PASSWORD });

    const [mail] = await catcher.waitFor(1, 30_000);
    const link = attempt(dbFile, 'ann:1:1').link_url;
    expect(link).toMatch(/^https:\/\//);
    expect(mail!.user).toBe(SMTP_USER);
    expect(mail!.rcptTo).toEqual(['ann@example.com']);
    expect(mail!.headers.get('subject')).toBe('Payment due: 9.99 USD for Monthly membership');
    expect(mail!.text).toContain(`Hello Ann Lee,`);
    expect(mail!.text).toContain(`your payment of 9.99 USD for Monthly membership is due on ${todayUtc()}.`);
    expect(mail!.text).toContain(`\n${link}\n`);
    expect(mail!.headers.get('x-rebill-attempt')).toBe('ann:1:1');

    const rows = await waitFor(() => {
      const r = linkEmails(dbFile);
      return r.length === 2 && r.every((e) => e.state !== 'pending') ? r : undefined;
    }, { timeoutMs: 15_000, describe: () => JSON.stringify(linkEmails(dbFile)) });
    expect(rows).toEqual([
      { attempt_key: 'ann:1:1', state: 'sent', tries: 1, last_error: null, message_id: mail!.headers.get('message-id') },
      { attempt_key: 'nomail:1:1', state: 'skipped', tries: 0, last_error: 'the customer has no e-mail address', message_id: null },
    ]);

    // Recorded on the attempt: the operator CLI beside the running daemon shows it.
    const show = await runCli(['subscriptions', 'show', 'ann', '--json', '--config', file], { cleanRebillEnv: true, env: { SMTP_PASSWORD } });
    expect(show.code).toBe(0);
    const charge = (JSON.parse(show.stdout) as { charges: Array<{ linkUrl: string; linkEmail: Record<string, unknown> }> }).charges[0]!;
    expect(charge.linkUrl).toBe(link);
    expect(charge.linkEmail).toMatchObject({ status: 'sent', tries: 1, to: 'ann@example.com', error: null, messageId: mail!.headers.get('message-id') });

    daemon.kill('SIGTERM');
    const exit = await exitWithin(daemon, 20_000);
    expect(exit.code).toBe(0);
    const lines = logLines(daemon.stdout());
    expect(lines.find((l) => l.msg === 'payment link e-mailed')).toMatchObject({ subscriptionId: 'ann', key: 'ann:1:1', tries: 1 });
    expect(lines.filter((l) => String(l.msg).startsWith('payment-link e-mail skipped')).map((l) => l.subscriptionId)).toEqual(['nomail']);
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped cleanly', drained: true });
    expect(daemon.stdout() + daemon.stderr()).not.toContain(SMTP_PASSWORD);
    expect(catcher.received).toHaveLength(1);
  });

  it('SMTP down at first: the daemon retries on its schedule and delivers once the server is up, with the one link the gateway made', async () => {
    const dir = newDir('retry');
    const port = await freePort();
    const file = config(dir, port, [{ id: 'bob', customer: { email: 'bob@example.com' } }], { retrySchedule: ['PT1S'] });
    const dbFile = path.join(dir, 'rebill.db');
    const daemon = await startDaemon(file, path.join(dir, 'rebill.log'), { SMTP_PASSWORD });

    const failing = await waitFor(() => linkEmails(dbFile).find((e) => e.tries >= 2), { timeoutMs: 20_000, describe: () => JSON.stringify(linkEmails(dbFile)) });
    expect(failing).toMatchObject({ attempt_key: 'bob:1:1', state: 'pending', last_error: expect.stringMatching(/ECONNREFUSED/) });
    const catcher = await startSmtpCatcher({ port, auth: { user: SMTP_USER, pass: SMTP_PASSWORD } });
    catchers.push(catcher);

    const [mail] = await catcher.waitFor(1, 20_000);
    const sent = await waitFor(() => linkEmails(dbFile).find((e) => e.state === 'sent'), { timeoutMs: 10_000 });
    expect(sent.tries).toBeGreaterThanOrEqual(3);
    const stored = attempt(dbFile, 'bob:1:1');
    // The gateway was sent the key once (one link); the e-mail carries that link.
    expect(stored.sends).toBe(1);
    expect(mail!.text).toContain(stored.link_url);
    expect(readDb(dbFile, (db) => db.prepare("select count(*) as n from events where type = 'payment_link.sent'").get())).toEqual({ n: 1 });
    expect(logLines(daemon.stdout()).filter((l) => l.msg === 'payment-link e-mail failed; will retry').length).toBeGreaterThanOrEqual(2);

    daemon.kill('SIGTERM');
    expect((await exitWithin(daemon, 20_000)).code).toBe(0);
    expect(daemon.stdout() + daemon.stderr()).not.toContain(SMTP_PASSWORD);
  });
});
