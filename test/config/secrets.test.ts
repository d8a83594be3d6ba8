/**
 * Issue 7, item 14: check-config echoed a mistyped secret (`apiKey: 12345678`
 * -> "expected a string; got 12345678"). Values under a secret key (the
 * logger's definition: token, key, secret, password, ... in any case, at any
 * depth) never appear in a config message; the kind of value is given instead.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, formatProblems, parseConfig } from '../../src/config/index.js';
import { isSecretKey, redactSecrets } from '../../src/logger.js';

function messagesOf(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, 's.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return formatProblems(err.problems);
    throw err;
  }
  throw new Error('expected the configuration to be rejected');
}

const PLAN = ['plans:', '  - { id: p, amount: "1", currency: USD, every: MONTH }'];

describe('secrets in config messages', () => {
  it('a mistyped apiKey or paymentToken is described by its kind, never its value', () => {
    const messages = messagesOf(
      [
        'gateways:',
        '  cp: { type: coolpay, baseUrl: "http://127.0.0.1:1", apiKey: 12345678, callbackSecret: [987654] }',
        '  hook: { type: http, url: "http://127.0.0.1:2", secret: true }',
        ...PLAN.map((l) => l.replace('every: MONTH', 'every: MONTH, gateway: cp')),
        'subscriptions:',
        '  - { id: s1, planId: p, paymentToken: 12345, startDate: "2025-01-01", metadata: { ClientSecret: 4242, plain: 77 } }',
        'http: { tokens: [{ token: 31337, scope: write }] }',
        'webhooks: [{ url: "http://127.0.0.1:3", secret: 2718 }]',
        '',
      ].join('\n'),
    );
    expect(messages).toEqual([
      's.yaml:2:63: gateways.cp.apiKey: expected a string; got a number',
      's.yaml:2:89: gateways.cp.callbackSecret: expected a string; got a list',
      's.yaml:3:58: gateways.hook.secret: expected a string; got true or false',
      's.yaml:7:40: subscriptions[0].paymentToken: expected a string; got a number',
      's.yaml:7:98: subscriptions[0].metadata.ClientSecret: expected a string (quote numbers and booleans); got a number',
      's.yaml:7:111: subscriptions[0].metadata.plain: expected a string (quote numbers and booleans); got 77',
      's.yaml:8:27: http.tokens[0].token: expected a string; got a number',
      's.yaml:9:49: webhooks[0].secret: expected a string; got a number',
    ]);
    for (const secret of ['12345678', '987654', '12345', '4242', '31337', '2718']) expect(messages.join('\n')).not.toContain(secret);
  });

  it('a broken ${...} reference in a secret does not quote the text (it may be the secret)', () => {
    const messages = messagesOf(['gateways:', '  cp: { type: coolpay, baseUrl: "http://127.0.0.1:1", apiKey: "sk_live_abc${oops" }', ...PLAN, ''].join('\n'));
    expect(messages).toEqual(['s.yaml:2:63: gateways.cp.apiKey: unterminated reference (expected ${VAR}, ${VAR:-default} or ${file:/path})']);
    const elsewhere = messagesOf(['gateways: { sim: { type: simulator } }', 'plans:', '  - { id: p, description: "a${b", amount: "1", currency: USD, every: MONTH }', ''].join('\n'));
    expect(elsewhere.join('\n')).toContain('unterminated reference "${b"');
  });

  it('an env override of a secret is not echoed either', () => {
    const messages = messagesOf(['gateways: { sim: { type: simulator } }', ...PLAN, ''].join('\n'), { REBILL_HTTP_TOKENS: '[{ token: 99887766, scope: write }]' });
    expect(messages).toEqual(['$REBILL_HTTP_TOKENS: http.tokens[0].token: expected a string; got a number']);
  });

  it('the config and the logger share one notion of a secret key', () => {
    for (const key of ['apiKey', 'APIKEY', 'paymentToken', 'token', 'secret', 'callbackSecret', 'webhookSecret', 'password', 'dbPassword', 'authorization']) {
      expect(isSecretKey(key), key).toBe(true);
      expect(redactSecrets({ [key]: 'x' }), key).toEqual({ [key]: '[redacted]' });
    }
    for (const key of ['amount', 'planId', 'tokens', 'idempotencyKey', 'key', 'subscriptionId']) expect(isSecretKey(key), key).toBe(false);
  });
});
