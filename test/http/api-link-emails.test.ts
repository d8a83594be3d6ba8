/**
 * Payment-link e-mails through the `/v1` API (issue 9, item 2): the charge
 * object's `linkEmail` in `GET /v1/subscriptions/{id}/charges` and
 * `GET /v1/charges` before and after the sender ran (a real SMTP server on
 * 127.0.0.1), and `emailLinks` on an inline schedule, refused (400 at its
 * pointer) without notifications.email.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLinkEmailSender } from '../../src/notifications/index.js';
import { startApi, WRITE_TOKEN, type ApiHarness } from '../support/api-harness.js';
import { silentLogger } from '../support/engine-harness.js';
import { startSmtpCatcher, type SmtpCatcher } from '../support/smtp.js';

const configText = (smtpPort: number) => `
http: { host: 127.0.0.1, port: 0, tokens: [{ token: "${WRITE_TOKEN}", scope: write }] }
gateways: { sim: { type: simulator } }
notifications:
  email: { smtp: "smtp://127.0.0.1:${smtpPort}", from: "Billing <billing@example.com>" }
plans:
  - { id: links, description: Links, amount: "9.99", currency: USD, every: MONTH, mode: link, emailLinks: true }
`;

describe('linkEmail on the charge object', () => {
  let api: ApiHarness | undefined;
  let catcher: SmtpCatcher | undefined;
  afterEach(async () => {
    await api?.close();
    await catcher?.close();
    api = undefined;
    catcher = undefined;
  });

  it('pending once the link is recorded, sent after the sender ran; in both charge lists', async () => {
    catcher = await startSmtpCatcher();
    api = await startApi({ configText: configText(catcher.port) });
    const created = await api.call('POST', '/v1/subscriptions', { body: { planId: 'links', startDate: '2026-02-15', customer: { email: 'ann@example.com' } } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    await api.engine.sweepUntilIdle();

    const before = await api.call('GET', `/v1/subscriptions/${id}/charges`);
    expect(before.status).toBe(200);
    expect(before.body.data).toHaveLength(1);
    expect(before.body.data[0]).toMatchObject({ status: 'pending', linkUrl: expect.stringMatching(/^https:/), linkEmail: { status: 'pending', tries: 0, to: null, sentAt: null, error: null } });

    const sender = createLinkEmailSender({ db: api.tmp.db, clock: api.clock, logger: silentLogger, email: api.config.notifications.email! });
    expect(await sender.tick()).toBe(1);
    await sender.stop(0);
    const [mail] = await catcher.waitFor(1);
    expect(mail!.text).toContain(before.body.data[0].linkUrl as string);

    const sentAt = new Date(api.clock.now()).toISOString().replace('.000Z', 'Z');
    const after = await api.call('GET', `/v1/subscriptions/${id}/charges`);
    expect(after.body.data[0].linkEmail).toEqual({ status: 'sent', tries: 1, to: 'ann@example.com', lastTryAt: sentAt, nextTryAt: null, sentAt, messageId: mail!.headers.get('message-id'), error: null });
    const all = await api.call('GET', '/v1/charges');
    expect(all.body.data.map((c: { id: string; linkEmail: { status: string } | null }) => [c.id, c.linkEmail?.status])).toEqual([[`${id}:1:1`, 'sent']]);
  });

  it('an inline link schedule may set emailLinks; without notifications.email it is 400 at /emailLinks', async () => {
    api = await startApi({ configText: configText(25) });
    const inline = { amount: '5.00', currency: 'EUR', every: 'MONTH', mode: 'link', emailLinks: true, startDate: '2026-04-01' };
    expect((await api.call('POST', '/v1/subscriptions', { body: inline })).status).toBe(201);
    const charge = await api.call('POST', '/v1/subscriptions', { body: { ...inline, mode: 'charge', paymentToken: 'tok_ok' } });
    expect(charge.status).toBe(400);
    expect(charge.body.errors).toEqual([{ pointer: '/emailLinks', detail: 'only applies to mode: link (an e-mailed payment link); got mode: charge' }]);
    await api.close();

    api = await startApi();
    const refused = await api.call('POST', '/v1/subscriptions', { body: inline });
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toEqual([{ pointer: '/emailLinks', detail: 'needs notifications.email (the SMTP server that sends the links); configure it or remove emailLinks' }]);
  });
});
