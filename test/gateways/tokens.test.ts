import { describe, expect, it } from 'vitest';
import { attemptFromOrderId, chargeDecision, linkDecision, parseToken } from '../../src/gateways/index.js';

describe('simulator tokens', () => {
  it.each([
    ['tok_ok', { kind: 'approve' }],
    ['tok_insufficient', { kind: 'decline', code: 'insufficient_funds', hard: false }],
    ['tok_do_not_honor', { kind: 'decline', code: 'do_not_honor', hard: false }],
    ['tok_stolen', { kind: 'decline', code: 'stolen_card', hard: true }],
    ['tok_lost', { kind: 'decline', code: 'lost_card', hard: true }],
    ['tok_closed', { kind: 'decline', code: 'closed_account', hard: true }],
    ['tok_flaky_2', { kind: 'flaky', failures: 2 }],
    ['tok_timeout', { kind: 'lose_response' }],
    ['tok_pending', { kind: 'pending' }],
    ['tok_slow_250', { kind: 'slow', delayMs: 250 }],
    ['tok_5xx', { kind: 'server_error' }],
    ['tok_anything_else', { kind: 'unknown' }],
    ['tok_flaky_x', { kind: 'unknown' }],
    ['tok_visa_4242', { kind: 'unknown' }],
    ['4242424242424242', { kind: 'unknown' }],
    ['card_1NvXyZ2eZvKYlo2C', { kind: 'unknown' }],
    [null, { kind: 'missing' }],
    ['', { kind: 'missing' }],
  ])('%s parses to its behaviour', (token, behaviour) => {
    expect(parseToken(token)).toEqual(behaviour);
  });

  it('tok_flaky_2 declines attempts 1 and 2 with a soft do_not_honor, then approves', () => {
    const flaky = parseToken('tok_flaky_2');
    expect([1, 2, 3].map((attempt) => chargeDecision(flaky, attempt))).toEqual([
      { kind: 'decline', code: 'do_not_honor', hard: false },
      { kind: 'decline', code: 'do_not_honor', hard: false },
      { kind: 'approve' },
    ]);
  });

  it('a missing token is a hard invalid_card_number in charge mode but a paid link in link mode', () => {
    expect(chargeDecision(parseToken(null), 1)).toEqual({ kind: 'decline', code: 'invalid_card_number', hard: true });
    expect(linkDecision(parseToken(null), 1)).toEqual({ kind: 'approve' });
  });

  it('a token outside the table is a hard unknown_test_token decline on every attempt, in charge and link mode', () => {
    for (const token of ['tok_visa_4242', '4242424242424242', 'card_1NvXyZ2eZvKYlo2C', 'tok_flaky_x']) {
      for (const attempt of [1, 2, 3]) {
        expect(chargeDecision(parseToken(token), attempt)).toEqual({ kind: 'decline', code: 'unknown_test_token', hard: true });
        expect(linkDecision(parseToken(token), attempt)).toEqual({ kind: 'decline', code: 'unknown_test_token', hard: true });
      }
    }
  });

  it('transport tokens approve at the issuer', () => {
    for (const token of ['tok_timeout', 'tok_slow_5', 'tok_5xx']) expect(chargeDecision(parseToken(token), 1)).toEqual({ kind: 'approve' });
  });

  it.each([
    ['sub-1:3:2', 2],
    ['a:b:c:1:3', 3],
    ['no-attempt', 1],
    ['sub:1:0', 1],
    ['sub:1:x', 1],
  ])('order_id %s is attempt %i', (orderId, attempt) => {
    expect(attemptFromOrderId(orderId)).toBe(attempt);
  });
});
