/**
 * The admin API's request and response schemas. Request bodies are the
 * schemas of src/config (one schema per request, shared with the config file
 * and the CSV import); query and path schemas are here, strict so an unknown
 * parameter is refused, with their values checked by the service (one place
 * for the filter rules, shared with the CLI). Response schemas document the
 * objects the service renders (SPEC sections 5, 8, 9) in the OpenAPI document.
 */
import * as z from 'zod';

/** The named response objects: they become `components.schemas` of the OpenAPI document. */
export const apiRegistry = z.registry<{ id: string; description?: string }>();

const text = (description: string) => z.string().optional().meta({ description });

export const idParams = z.strictObject({ id: z.string().meta({ description: 'subscription id' }) });
export const eventIdParams = z.strictObject({ id: z.string().meta({ description: 'event id (evt_000000000042)' }) });

const paging = {
  limit: text('page size, 1..500 (default 100)'),
  cursor: text('nextCursor of the previous page'),
};

export const subscriptionListQuery = z.strictObject({
  status: text('active | paused | stopped | terminated'),
  planId: text('plan id'),
  source: text('the integrating system'),
  externalId: text("the integrating system's id"),
  email: text("the customer's email, exact"),
  ...paging,
});

export const chargeListQuery = z.strictObject({
  status: text('in_flight | captured | rejected | pending | unknown'),
  since: text('ISO-8601 instant with a zone: charges created at or after it'),
  ...paging,
});

export const eventListQuery = z.strictObject({
  after: text('the last event id seen (polling)'),
  type: text('an event type (charge.succeeded) or a family (charge.*)'),
  subscriptionId: text('one subscription'),
  limit: text('page size, 1..500 (default 100)'),
});

export const deliveryListQuery = z.strictObject({
  status: text('pending | delivered | failed'),
  endpoint: text('an endpoint id (we_..., a hash of its URL)'),
  eventId: text('one event (evt_000000000042)'),
  ...paging,
});

export const scheduleQuery = z.strictObject({ count: text('how many due dates, 1..100 (default 12)') });

/** Routes that take no query parameters refuse any: `POST /v1/subscriptions?dryRun=true` must not create. */
export const noQuery = z.strictObject({});

// ---------------------------------------------------------------------------
// Responses (documentation)

const instant = z.string().meta({ description: 'ISO-8601 instant, UTC' });
const nullableInstant = instant.nullable();

export const customerObject = z
  .object({ id: z.string(), email: z.string().optional(), phone: z.string().optional(), firstName: z.string().optional(), lastName: z.string().optional() })
  .register(apiRegistry, { id: 'Customer' });

export const subscriptionObject = z
  .object({
    id: z.string(),
    externalId: z.string().nullable(),
    source: z.string().nullable(),
    planId: z.string().nullable(),
    customer: customerObject.nullable(),
    paymentToken: z.string().nullable().meta({ description: 'masked (tok_…42): a read never returns a whole token' }),
    description: z.string().nullable(),
    amount: z.string().meta({ description: 'decimal string in major units ("9.99", "1500" for JPY)' }),
    currency: z.string(),
    status: z.enum(['active', 'paused', 'stopped', 'terminated']),
    terminationType: z.enum(['userCancel', 'publisherCancel', 'paymentCancel', 'finished']).nullable(),
    startDate: z.string(),
    endDate: z.string().nullable(),
    currentCycle: z.number().int(),
    completedCycles: z.number().int(),
    currentPeriodStart: nullableInstant,
    currentPeriodEnd: nullableInstant,
    inTrial: z.boolean(),
    nextPaymentAction: z.enum(['charge', 'sendLink', 'retry', 'none']),
    nextPaymentAt: nullableInstant,
    pause: z.object({ pauseDate: nullableInstant, resumeDate: nullableInstant }).nullable(),
    latestPaymentExternalId: z.string().nullable(),
    metadata: z.record(z.string(), z.string()),
    createdAt: instant,
    updatedAt: instant,
  })
  .register(apiRegistry, { id: 'Subscription' });

export const chargeObject = z
  .object({
    id: z.string().meta({ description: 'the attempt idempotency key <subscriptionId>:<cycle>:<attempt>' }),
    subscriptionId: z.string(),
    cycle: z.number().int(),
    attempt: z.number().int(),
    operation: z.enum(['initial', 'recurring']),
    status: z.enum(['in_flight', 'captured', 'rejected', 'pending', 'unknown']),
    amount: z.string(),
    currency: z.string(),
    gateway: z.string(),
    externalPaymentId: z.string().nullable(),
    declineCode: z.string().nullable(),
    rejectedReason: z.string().nullable(),
    hardDecline: z.boolean().nullable(),
    linkUrl: z.string().nullable(),
    linkEmail: z
      .object({
        status: z.enum(['pending', 'sent', 'failed', 'skipped']),
        tries: z.number().int().meta({ description: 'SMTP conversations so far' }),
        to: z.string().nullable(),
        lastTryAt: nullableInstant,
        nextTryAt: nullableInstant,
        sentAt: nullableInstant,
        messageId: z.string().nullable(),
        error: z.string().nullable().meta({ description: 'the last failure, or why it was skipped' }),
      })
      .nullable()
      .meta({ description: 'the e-mail that carries linkUrl to the customer (plans with emailLinks); null otherwise' }),
    dueAt: nullableInstant,
    createdAt: instant,
    updatedAt: instant,
  })
  .register(apiRegistry, { id: 'Charge' });

export const eventObject = z
  .object({
    id: z.string(),
    type: z.string(),
    timestamp: instant,
    data: z.object({ subscription: subscriptionObject.nullable().optional(), charge: chargeObject.optional(), link: z.object({ url: z.string() }).optional() }).loose(),
  })
  .register(apiRegistry, { id: 'Event' });

export const deliveryObject = z
  .object({
    endpoint: z.string().meta({ description: 'endpoint id: a hash of its URL' }),
    eventId: z.string(),
    eventType: z.string(),
    subscriptionId: z.string().nullable(),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int(),
    nextAttemptAt: nullableInstant,
    lastAttemptAt: nullableInstant,
    lastStatusCode: z.number().int().nullable(),
    lastDurationMs: z.number().int().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: nullableInstant,
  })
  .register(apiRegistry, { id: 'WebhookDelivery' });

export const planObject = z
  .object({
    id: z.string(),
    version: z.string(),
    description: z.string().nullable(),
    amount: z.string(),
    currency: z.string(),
    every: z.object({ unit: z.enum(['day', 'week', 'month', 'year']), count: z.number().int() }),
    sendOnHour: z.number().int(),
    timezone: z.string(),
    monthEnd: z.enum(['clamp', 'overflow']),
    mode: z.enum(['charge', 'link']),
    gateway: z.string(),
    trial: z.string().nullable(),
    maxCycles: z.number().int().nullable(),
    endDate: z.string().nullable(),
  })
  .register(apiRegistry, { id: 'Plan' });

export const scheduledCycle = z.object({ cycle: z.number().int(), dueAt: instant });

export const problemObject = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    errors: z.array(z.object({ pointer: z.string().optional(), parameter: z.string().optional(), detail: z.string() })).optional(),
  })
  .register(apiRegistry, { id: 'Problem', description: 'application/problem+json (RFC 9457)' });

/** `{data: [...], nextCursor}` of a list. */
export function page<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), nextCursor: z.string().nullable() });
}
