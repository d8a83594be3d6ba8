/**
 * Translating a CoolPay/QuickPay rejection into rebill's decline codes.
 *
 * A rejected operation carries `qp_status_code` (the gateway's own category,
 * 40000 = "rejected by acquirer") and the acquirer's `aq_status_code` /
 * `aq_status_msg`, which are ISO 8583 style response codes ("51 Insufficient
 * funds"). The acquirer code decides; the message is a fallback for
 * acquirers that only send text. Whether a code is hard is never decided
 * here: HARD_DECLINE_CODES in gateway.ts is the one list.
 */
import { HARD_DECLINE_CODES } from './gateway.js';

/** rebill decline code -> the ISO 8583 response code and text an acquirer sends for it. */
export const ACQUIRER_CODES: Readonly<Record<string, { readonly aqCode: string; readonly message: string }>> = {
  insufficient_funds: { aqCode: '51', message: 'Insufficient funds' },
  do_not_honor: { aqCode: '05', message: 'Do not honor' },
  stolen_card: { aqCode: '43', message: 'Stolen card, pick up' },
  lost_card: { aqCode: '41', message: 'Lost card, pick up' },
  closed_account: { aqCode: '46', message: 'Closed account' },
  invalid_card_number: { aqCode: '14', message: 'Invalid card number' },
  pickup_card: { aqCode: '04', message: 'Pick up card' },
  card_not_supported: { aqCode: '57', message: 'Transaction not permitted to cardholder' },
  invalid_account: { aqCode: '53', message: 'No such account' },
  expired_card: { aqCode: '54', message: 'Expired card' },
  suspected_fraud: { aqCode: '59', message: 'Suspected fraud' },
  exceeds_limit: { aqCode: '61', message: 'Exceeds withdrawal amount limit' },
  restricted_card: { aqCode: '62', message: 'Restricted card' },
  // Not an ISO 8583 code: only `rebill fake-gateway` sends it, for a card token outside the simulator's table.
  unknown_test_token: { aqCode: 'ZT', message: 'Unknown test token' },
};

const BY_AQ_CODE: ReadonlyMap<string, string> = new Map(Object.entries(ACQUIRER_CODES).map(([code, v]) => [v.aqCode, code]));

/** Phrases in acquirer / gateway messages, for acquirers that send no usable code. Checked in order. */
const BY_MESSAGE: ReadonlyArray<readonly [RegExp, string]> = [
  [/insufficient|not sufficient funds/i, 'insufficient_funds'],
  [/stolen/i, 'stolen_card'],
  [/lost/i, 'lost_card'],
  [/closed/i, 'closed_account'],
  [/invalid card|card number/i, 'invalid_card_number'],
  [/pick ?up/i, 'pickup_card'],
  [/expired/i, 'expired_card'],
  [/do not hono(u)?r/i, 'do_not_honor'],
];

/** The CoolPay gateway's own status codes that say something about the card on file. */
const BY_QP_CODE: ReadonlyMap<string, string> = new Map([
  // Card-on-file token deleted by the scheme: the agreement can never be charged again.
  ['41000', 'invalid_account'],
  ['40300', 'suspected_fraud'],
]);

export interface RejectedOperation {
  readonly qp_status_code?: string | null;
  readonly qp_status_msg?: string | null;
  readonly aq_status_code?: string | null;
  readonly aq_status_msg?: string | null;
}

/**
 * Our decline for a rejected operation. Unknown reasons become a soft
 * `do_not_honor`: the generic "issuer said no", which a later attempt may pass.
 */
export function declineFromOperation(op: RejectedOperation | undefined): { code: string; hard: boolean } {
  const code =
    (op?.aq_status_code ? BY_AQ_CODE.get(op.aq_status_code.trim()) : undefined) ??
    (op?.qp_status_code ? BY_QP_CODE.get(op.qp_status_code) : undefined) ??
    messageCode(op?.aq_status_msg) ??
    messageCode(op?.qp_status_msg) ??
    'do_not_honor';
  return { code, hard: HARD_DECLINE_CODES.has(code) };
}

function messageCode(message: string | null | undefined): string | undefined {
  if (!message) return undefined;
  return BY_MESSAGE.find(([pattern]) => pattern.test(message))?.[1];
}
