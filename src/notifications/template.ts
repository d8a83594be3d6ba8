/**
 * The text of a payment-link e-mail: `{{name}}` placeholders in the subject and
 * the body, filled from the attempt the link belongs to. Pure: the config
 * schema checks templates with `templateProblems` (an unknown placeholder is a
 * config error, not a blank in a customer's inbox) and the sender fills them
 * with `renderTemplate`, so both read placeholders the same way.
 */

/** Every placeholder a link e-mail may use, with what it becomes (README "Payment-link e-mails"). */
export const LINK_EMAIL_PLACEHOLDERS = {
  link: 'the payment link URL the gateway created for the attempt',
  amount: 'the amount as a decimal in major units, e.g. 9.99',
  currency: 'the ISO 4217 code, e.g. USD',
  dueDate: "the cycle's due date (yyyy-MM-dd) in the subscription's time zone",
  customerName: "the customer's first and last name, else their e-mail address",
  subscriptionId: 'the subscription id',
  description: "the subscription's description, else its plan id",
  cycle: 'the cycle number (1 for the first payment)',
} as const;

export type LinkEmailPlaceholder = keyof typeof LINK_EMAIL_PLACEHOLDERS;

/** The values a template is filled with. */
export type LinkEmailValues = Readonly<Record<LinkEmailPlaceholder, string>>;

export const DEFAULT_LINK_EMAIL_SUBJECT = 'Payment due: {{amount}} {{currency}} for {{description}}';

export const DEFAULT_LINK_EMAIL_TEMPLATE = [
  'Hello {{customerName}},',
  '',
  'your payment of {{amount}} {{currency}} for {{description}} is due on {{dueDate}}.',
  'You can pay it here:',
  '',
  '{{link}}',
  '',
  'Subscription: {{subscriptionId}}',
  '',
].join('\n');

/** `{{name}}`: anything but braces between the pairs; spaces around the name are ignored (`{{ link }}`). */
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

const KNOWN = Object.keys(LINK_EMAIL_PLACEHOLDERS) as LinkEmailPlaceholder[];

function isPlaceholder(name: string): name is LinkEmailPlaceholder {
  return (KNOWN as string[]).includes(name);
}

/**
 * What is wrong with a template, one message per problem: an unknown
 * placeholder (with a case-insensitive hint), or `{{` left open.
 */
export function templateProblems(text: string): string[] {
  const problems: string[] = [];
  for (const match of text.matchAll(PLACEHOLDER)) {
    const name = match[1]!;
    if (isPlaceholder(name)) continue;
    const meant = KNOWN.find((k) => k.toLowerCase() === name.toLowerCase());
    problems.push(`unknown placeholder {{${name}}}${meant ? ` (did you mean {{${meant}}}?)` : ''}; known: ${KNOWN.map((k) => `{{${k}}}`).join(', ')}`);
  }
  const rest = text.replace(PLACEHOLDER, '');
  if (rest.includes('{{')) problems.push('a "{{" is never closed with "}}"');
  return problems;
}

/** The template with every placeholder replaced by its value (templates are checked by templateProblems first). */
export function renderTemplate(text: string, values: LinkEmailValues): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => (isPlaceholder(name) ? values[name] : whole));
}
