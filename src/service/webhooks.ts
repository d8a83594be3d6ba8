/**
 * Webhook deliveries as the admin API and the CLI show them (SPEC section 8):
 * one object per (endpoint, event), and redelivery of an event (its
 * deliveries go back to pending, due now; the relay sends them in order).
 * Endpoints are named by id (a hash of the URL): a URL may carry a token.
 */
import { eventsByIds, listDeliveries, NotFoundError, redeliverEvent, type Conn, type Db, type DeliveryRow, type DeliveryState } from '../store/index.js';
import { eventId, parseEventId } from './events.js';
import { decodeCursor, encodeCursor, parseEnum, parseLimit, parseText } from './filters.js';
import type { Page } from './subscriptions.js';

export const DELIVERY_STATUSES: readonly DeliveryState[] = ['pending', 'delivered', 'failed'];

/** The public delivery object. */
export interface DeliveryObject {
  endpoint: string;
  eventId: string;
  eventType: string;
  subscriptionId: string | null;
  status: DeliveryState;
  attempts: number;
  nextAttemptAt: string | null;
  lastAttemptAt: string | null;
  lastStatusCode: number | null;
  lastDurationMs: number | null;
  lastError: string | null;
  deliveredAt: string | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function deliveryObject(d: DeliveryRow): DeliveryObject {
  return {
    endpoint: d.endpointId,
    eventId: eventId(d.eventId),
    eventType: d.eventType,
    subscriptionId: d.subscriptionId,
    status: d.state,
    attempts: d.attempts,
    nextAttemptAt: iso(d.nextAttemptAt),
    lastAttemptAt: iso(d.lastAttemptAt),
    lastStatusCode: d.lastStatus,
    lastDurationMs: d.lastDurationMs,
    lastError: d.lastError,
    deliveredAt: iso(d.deliveredAt),
  };
}

/** The filters of `GET /v1/webhook-deliveries`, as given (text). */
export interface DeliveryListQuery {
  status?: string;
  endpoint?: string;
  eventId?: string;
  limit?: number | string;
  cursor?: string;
}

/** One page of deliveries, by event then endpoint. */
export async function listWebhookDeliveries(db: Db, query: DeliveryListQuery): Promise<Page<DeliveryObject>> {
  const status = parseEnum('status', query.status, DELIVERY_STATUSES);
  const endpoint = parseText('endpoint', query.endpoint);
  const event = parseEventId('eventId', query.eventId);
  const limit = parseLimit(query.limit);
  const cursor = decodeCursor(query.cursor);
  const rows = await listDeliveries(db, {
    ...(status ? { state: status } : {}),
    ...(endpoint ? { endpointId: endpoint } : {}),
    ...(event !== undefined ? { eventId: event } : {}),
    ...(cursor ? { after: { eventId: cursor.createdAt, endpointId: cursor.id } } : {}),
    limit: limit + 1,
  });
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return { data: page.map(deliveryObject), nextCursor: rows.length > limit && last ? encodeCursor({ createdAt: last.eventId, id: last.endpointId }) : null };
}

/**
 * Puts an event's deliveries (every endpoint it went to, or was due to go to)
 * back to pending, due now, and returns them. NotFoundError (404) for an
 * unknown event; an event no endpoint subscribed to returns an empty list.
 */
export async function redeliverEventCommand(db: Conn, id: string, now: number): Promise<{ data: DeliveryObject[] }> {
  const number = parseEventId('id', id)!;
  const [event] = await eventsByIds(db, [number]);
  if (!event) throw new NotFoundError('EVENT_NOT_FOUND', `no event ${id}`);
  await redeliverEvent(db, number, now);
  return { data: (await listDeliveries(db, { eventId: number })).map(deliveryObject) };
}
