/**
 * One payment-link e-mail as data: recipient, subject, text and the headers
 * that make a resend recognisable. Pure: the sender turns it into an SMTP
 * conversation.
 */
import { createHash } from 'node:crypto';
import { DateTime } from 'luxon';
import type { LinkEmailConfig } from '../config/index.js';
import { formatAmount } from '../money/index.js';
import type { DueLinkEmail } from '../store/index.js';
import { renderTemplate, type LinkEmailValues } from './template.js';

export interface LinkEmailMessage {
  readonly to: string;
  readonly subject: string;
  readonly text: string;
  /** `<rebill.<hash of the attempt key>@<from domain>>`: the same for every try of one attempt's e-mail. */
  readonly messageId: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * The Message-ID of an attempt's link e-mail, derived from its idempotency key
 * only: a resend after a crash (sent, but not yet recorded) carries the same
 * id, so mail systems and people can tell it is the same message. The key is
 * hashed because `:` and some id characters are not allowed in a Message-ID;
 * the `X-Rebill-Attempt` header carries it readably.
 */
export function linkEmailMessageId(attemptKey: string, fromAddress: string): string {
  const domain = fromAddress.slice(fromAddress.lastIndexOf('@') + 1);
  return `<rebill.${createHash('sha256').update(attemptKey).digest('hex').slice(0, 32)}@${domain}>`;
}

/** The placeholder values of a due e-mail (see LINK_EMAIL_PLACEHOLDERS). */
export function linkEmailValues(row: DueLinkEmail): LinkEmailValues {
  const name = [row.firstName, row.lastName].filter((part) => part !== null && part !== '').join(' ');
  return {
    link: row.linkUrl ?? '',
    amount: formatAmount({ amountMinor: row.amountMinor, currency: row.currency }),
    currency: row.currency,
    dueDate: row.dueAt === null ? '' : (DateTime.fromMillis(row.dueAt, { zone: row.timezone }).toISODate() ?? ''),
    customerName: name || row.email || '',
    subscriptionId: row.subscriptionId,
    description: row.description ?? row.planId ?? row.subscriptionId,
    cycle: String(row.cycle),
  };
}

/** The message for a due e-mail whose attempt has a link and whose customer has an address. */
export function linkEmailMessage(row: DueLinkEmail & { email: string }, config: Pick<LinkEmailConfig, 'subject' | 'template' | 'fromAddress'>): LinkEmailMessage {
  const values = linkEmailValues(row);
  return {
    to: row.email,
    // A subject is one header line: a description with a line break must not start another header.
    subject: renderTemplate(config.subject, values).replace(/[\r\n]+/g, ' '),
    text: renderTemplate(config.template, values),
    messageId: linkEmailMessageId(row.attemptKey, config.fromAddress),
    headers: { 'X-Rebill-Attempt': row.attemptKey, 'X-Rebill-Subscription': row.subscriptionId },
  };
}
