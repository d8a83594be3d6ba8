import { describe, expect, it } from 'vitest';
import { ACQUIRER_CODES, declineFromOperation, HARD_DECLINE_CODES } from '../../src/gateways/index.js';

describe('CoolPay rejection -> rebill decline code', () => {
  it('every code in the table round-trips through its acquirer code, hard exactly when HARD_DECLINE_CODES says so', () => {
    for (const [code, { aqCode, message }] of Object.entries(ACQUIRER_CODES)) {
      expect(declineFromOperation({ qp_status_code: '40000', aq_status_code: aqCode, aq_status_msg: message })).toEqual({
        code,
        hard: HARD_DECLINE_CODES.has(code),
      });
    }
  });

  it.each([
    [{ aq_status_msg: 'Insufficient funds on account' }, 'insufficient_funds', false],
    [{ aq_status_msg: 'Card reported stolen' }, 'stolen_card', true],
    [{ qp_status_msg: 'Do not honour' }, 'do_not_honor', false],
    [{ qp_status_code: '41000', qp_status_msg: 'CoF deleted by scheme' }, 'invalid_account', true],
    [{ qp_status_code: '40000', aq_status_code: '99', aq_status_msg: 'Something new' }, 'do_not_honor', false],
    [undefined, 'do_not_honor', false],
  ])('%o -> %s (hard %s)', (op, code, hard) => {
    expect(declineFromOperation(op)).toEqual({ code, hard });
  });
});
