/**
 * `notifications.email` and the plans' `emailLinks` opt-in (issue 9, item 2):
 * defaults, `${...}` expansion of the SMTP password and of a template file,
 * and every refusal with its exact message at file:line, the SMTP password
 * never shown. The same opt-in rule for an inline API / CSV schedule, and
 * check-config's exit 78.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, formatProblems, parseConfig, subscriptionInputSchema, type Config } from '../../src/config/index.js';
import { DEFAULT_LINK_EMAIL_SUBJECT, DEFAULT_LINK_EMAIL_TEMPLATE } from '../../src/notifications/index.js';
import { InputError, subscriptionDraft } from '../../src/service/index.js';
import { runCli } from '../support/cli.js';
import { fileTempDir } from '../support/temp.js';

const tmp = fileTempDir('link-email-config');
const GATEWAYS = 'gateways: { sim: { type: simulator } }';
const LINK_PLAN = '  - { id: links, amount: "9.99", currency: USD, every: MONTH, mode: link, emailLinks: true }';

function parse(lines: readonly string[], env: Record<string, string> = {}): Config {
  return parseConfig(`${lines.join('\n')}\n`, 'c.yaml', env);
}

function problems(lines: readonly string[], env: Record<string, string> = {}): string[] {
  try {
    parse(lines, env);
  } catch (err) {
    if (err instanceof ConfigError) return formatProblems(err.problems);
    throw err;
  }
  throw new Error('expected the configuration to be refused');
}

describe('notifications.email', () => {
  it('takes smtp and from, fills in the defaults, and expands ${SMTP_PASSWORD} in the URL', () => {
    const config = parse(
      [GATEWAYS, 'plans:', LINK_PLAN, 'notifications:', '  email:', '    smtp: "smtps://billing:${SMTP_PASSWORD}@mail.example.com:465"', '    from: "Example Billing <billing@example.com>"'],
      { SMTP_PASSWORD: 's3cret' },
    );
    expect(config.notifications.email).toEqual({
      smtp: 'smtps://billing:s3cret@mail.example.com:465',
      from: 'Example Billing <billing@example.com>',
      fromAddress: 'billing@example.com',
      subject: DEFAULT_LINK_EMAIL_SUBJECT,
      template: DEFAULT_LINK_EMAIL_TEMPLATE,
      retrySchedule: ['PT1M', 'PT5M', 'PT30M', 'PT2H', 'PT5H', 'PT10H'],
      maxAgeHours: 72,
      timeoutSeconds: 30,
    });
    expect(config.plans[0]).toMatchObject({ id: 'links', mode: 'link', emailLinks: true });
  });

  it('is optional; plans default to emailLinks: false, which is not part of the plan version', () => {
    const off = parse([GATEWAYS, 'plans:', '  - { id: p, amount: "9.99", currency: USD, every: MONTH, mode: link }']);
    expect(off.notifications.email).toBeUndefined();
    expect(off.plans[0]!.emailLinks).toBe(false);
    const on = parse([GATEWAYS, 'plans:', LINK_PLAN.replace('id: links', 'id: p'), 'notifications: { email: { smtp: "smtp://127.0.0.1:2525", from: b@example.com } }']);
    expect(on.plans[0]!.version).toBe(off.plans[0]!.version);
  });

  it('reads the template from a file with ${file:...}, and takes the password from password: as it is', () => {
    const template = join(tmp, 'link-email.txt');
    writeFileSync(template, 'Dear {{customerName}},\npay {{amount}} {{currency}} by {{dueDate}}: {{link}}\n');
    const config = parse(
      [
        GATEWAYS,
        'plans:',
        LINK_PLAN,
        'notifications:',
        '  email:',
        '    smtp: "smtp://billing@127.0.0.1:2525"',
        '    password: "${SMTP_PASSWORD}"',
        '    from: billing@example.com',
        '    subject: "{{ amount }} {{currency}} due {{dueDate}}"',
        `    template: "\${file:${template}}"`,
      ],
      { SMTP_PASSWORD: 'p/ss@w:rd' },
    );
    expect(config.notifications.email).toMatchObject({
      password: 'p/ss@w:rd',
      subject: '{{ amount }} {{currency}} due {{dueDate}}',
      // The file's last newline is dropped, as for a secret file.
      template: 'Dear {{customerName}},\npay {{amount}} {{currency}} by {{dueDate}}: {{link}}',
    });
  });

  it('refuses a plan that opts in without notifications.email, and a charge plan that opts in, at the emailLinks line', () => {
    expect(problems([GATEWAYS, 'plans:', LINK_PLAN, '  - id: cards', '    amount: "5.00"', '    currency: EUR', '    every: MONTH', '    emailLinks: true'])).toEqual([
      'c.yaml:3:87: plans[0].emailLinks: needs notifications.email (the SMTP server that sends the links); configure it or remove emailLinks',
      'c.yaml:8:17: plans[1].emailLinks: only applies to mode: link (an e-mailed payment link); got mode: charge',
      'c.yaml:8:17: plans[1].emailLinks: needs notifications.email (the SMTP server that sends the links); configure it or remove emailLinks',
    ]);
  });

  it('refuses an unknown placeholder (with a hint), a {{ left open, a bad from, a bad smtp URL, and a password given twice; never showing the password', () => {
    const lines = [
      GATEWAYS,
      'plans:',
      LINK_PLAN,
      'notifications:',
      '  email:',
      '    smtp: "http://billing:hunter2-secret@mail.example.com"',
      '    password: other-secret',
      '    from: billing',
      '    subject: "{{Amount}} due {{when}}"',
      '    template: "pay {{link"',
      '    retrySchedule: []',
      '    timeoutSeconds: 0',
    ];
    const known = 'known: {{link}}, {{amount}}, {{currency}}, {{dueDate}}, {{customerName}}, {{subscriptionId}}, {{description}}, {{cycle}}';
    const messages = problems(lines);
    expect(messages).toEqual([
      'c.yaml:6:11: notifications.email.smtp: expected smtp://[user[:password]@]host[:port] or smtps://...; got "http://***@mail.example.com"',
      'c.yaml:8:11: notifications.email.from: expected an address such as billing@example.com or "Example Billing <billing@example.com>"; got "billing"',
      `c.yaml:9:14: notifications.email.subject: unknown placeholder {{Amount}} (did you mean {{amount}}?); ${known}`,
      `c.yaml:9:14: notifications.email.subject: unknown placeholder {{when}}; ${known}`,
      'c.yaml:10:15: notifications.email.template: a "{{" is never closed with "}}"',
      'c.yaml:11:20: notifications.email.retrySchedule: expected at least 1 item',
      'c.yaml:12:21: notifications.email.timeoutSeconds: expected a whole number 1..600; got 0',
    ]);
    const twice = problems([GATEWAYS, 'plans:', LINK_PLAN, 'notifications:', '  email:', '    smtp: "smtp://billing:hunter2-secret@mail.example.com"', '    password: other-secret', '    from: b@example.com']);
    expect(twice).toEqual(['c.yaml:7:15: notifications.email.password: the smtp URL has a password already; give it in one place']);
    for (const secret of ['hunter2', 'other-secret']) expect([...messages, ...twice].join('\n')).not.toContain(secret);
  });

  it('an SMTP password with "/" in the URL is refused without showing it, pointing at percent-encoding or password:', () => {
    const messages = problems([GATEWAYS, 'plans:', LINK_PLAN, 'notifications:', '  email: { smtp: "smtp://u:${PW}@mail.example.com:587", from: b@example.com }'], { PW: 'ab/cd-secret' });
    expect(messages).toEqual([
      'c.yaml:5:18: notifications.email.smtp: expected smtp://[user[:password]@]host[:port] or smtps://...; got "smtp://***@mail.example.com:587" (a password with "/", "@", "?" or "#" must be percent-encoded, or given as password:)',
    ]);
    expect(messages.join('\n')).not.toContain('cd-secret');
  });

  it('an unset ${SMTP_PASSWORD} is a problem at the smtp line', () => {
    expect(problems([GATEWAYS, 'plans:', LINK_PLAN, 'notifications:', '  email: { smtp: "smtp://u:${SMTP_PASSWORD}@mail.example.com", from: b@example.com }'])).toEqual([
      'c.yaml:5:18: notifications.email.smtp: environment variable SMTP_PASSWORD is not set (use ${SMTP_PASSWORD:-default} for a default)',
    ]);
  });

  it('check-config exits 78 with the problem at file:line', async () => {
    const path = join(tmp, 'opt-in.yaml');
    writeFileSync(path, `${['plans:', LINK_PLAN, GATEWAYS].join('\n')}\n`);
    const run = await runCli(['check-config', '--config', path], { cleanRebillEnv: true, cwd: tmp });
    expect(run.stderr).toContain(`${path}:2:87: plans[0].emailLinks: needs notifications.email (the SMTP server that sends the links); configure it or remove emailLinks\n1 problem in ${path}\n`);
    expect(run.code).toBe(78);
  });
});

describe('emailLinks on an inline schedule (API body, CSV line)', () => {
  const plans = parse([GATEWAYS, 'plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH }']).plans;
  const input = (body: Record<string, unknown>) => subscriptionInputSchema.parse({ amount: '9.99', currency: 'USD', every: 'MONTH', startDate: '2030-01-01', ...body });
  const problemsOf = (catalog: { linkEmails?: boolean }, body: Record<string, unknown>) => {
    try {
      subscriptionDraft({ plans, gateways: ['sim'], ...catalog }, input(body), Date.parse('2029-12-01T00:00:00Z'));
      return [];
    } catch (err) {
      if (err instanceof InputError) return err.problems.map((p) => `${p.path.join('.')}: ${p.message}`);
      throw err;
    }
  };

  it('is taken for a link schedule when notifications.email is configured, and stored with the subscription', () => {
    expect(problemsOf({ linkEmails: true }, { mode: 'link', emailLinks: true })).toEqual([]);
    const draft = subscriptionDraft({ plans, gateways: ['sim'], linkEmails: true }, input({ mode: 'link', emailLinks: true }), Date.parse('2029-12-01T00:00:00Z'));
    expect(draft.emailLinks).toBe(true);
  });

  it('is refused by the same rule as a plan: charge mode, or no notifications.email', () => {
    expect(problemsOf({ linkEmails: true }, { mode: 'charge', paymentToken: 'tok_ok', emailLinks: true })).toEqual(['emailLinks: only applies to mode: link (an e-mailed payment link); got mode: charge']);
    expect(problemsOf({}, { mode: 'link', emailLinks: true })).toEqual(['emailLinks: needs notifications.email (the SMTP server that sends the links); configure it or remove emailLinks']);
  });

  it('is not allowed beside a planId (the plan decides)', () => {
    const result = subscriptionInputSchema.safeParse({ planId: 'p', paymentToken: 'tok_ok', emailLinks: true });
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['emailLinks', 'not allowed with planId: the plan "p" decides it (leave out planId to give the schedule inline)']]);
  });
});

describe('the SMTP URL in logs', () => {
  it('the smtp key is a secret key (redacted whole), and every URL password in a logged string is masked', async () => {
    const { isSecretKey, redactSecrets } = await import('../../src/logger.js');
    expect(isSecretKey('smtp')).toBe(true);
    expect(redactSecrets({ smtp: 'smtp://u:pw@h', host: 'h' })).toEqual({ smtp: '[redacted]', host: 'h' });
    expect(redactSecrets({ error: 'connect to smtps://billing:hunter2@mail.example.com:465 failed', nested: ['postgres://a:b@db/x'] })).toEqual({
      error: 'connect to smtps://billing:[redacted]@mail.example.com:465 failed',
      nested: ['postgres://a:[redacted]@db/x'],
    });
    expect(redactSecrets({ url: 'https://hooks.example:8443/path?q=1@x' })).toEqual({ url: 'https://hooks.example:8443/path?q=1@x' });
  });
});
