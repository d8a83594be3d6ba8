import type { CollectRequest } from '../../src/gateways/index.js';

/** A collect request for attempt `attempt` of cycle `cycle`, keyed the way the engine keys it. */
export function collectRequest(
  paymentToken: string | null,
  options: { subscriptionId?: string; cycle?: number; attempt?: number; amountMinor?: number; currency?: string } = {},
): CollectRequest {
  const subscriptionId = options.subscriptionId ?? 'sub-1';
  const cycle = options.cycle ?? 1;
  const attempt = options.attempt ?? 1;
  return {
    idempotencyKey: `${subscriptionId}:${cycle}:${attempt}`,
    subscriptionId,
    cycle,
    attempt,
    amount: { amountMinor: options.amountMinor ?? 999, currency: options.currency ?? 'USD' },
    description: 'Gold membership',
    paymentToken,
    customer: { email: 'a@example.com' },
  };
}
