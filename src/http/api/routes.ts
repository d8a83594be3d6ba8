/**
 * The `/v1` routes (SPEC section 9). Each is a thin call into src/service:
 * validate (by schema), call, send. Writes go through runWrite (group commit,
 * Idempotency-Key, engine wake-up; all but creates read their subscription for
 * update: `rowLocks`); reads through the service's list and view
 * functions that the operator CLI uses too.
 */
import type { FastifyInstance, FastifyBaseLogger, RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import {
  cancelInputSchema,
  emptyInputSchema,
  pauseInputSchema,
  subscriptionInputSchema,
  subscriptionPatchSchema,
} from '../../config/index.js';
import {
  cancelSubscriptionCommand,
  createSubscriptionCommand,
  getSchedulePreview,
  getSubscriptionView,
  listCharges,
  listEventBodies,
  listWebhookDeliveries,
  redeliverEventCommand,
  listSubscriptions,
  pauseSubscriptionCommand,
  planObject as renderPlan,
  resumeSubscriptionCommand,
  retrySubscriptionCommand,
  updateSubscriptionCommand,
} from '../../service/index.js';
import type { AdminApiDeps } from './index.js';
import type { WriteBatcher } from '../../store/index.js';
import { runWrite } from './idempotency.js';
import {
  chargeListQuery,
  chargeObject,
  deliveryListQuery,
  deliveryObject,
  eventIdParams,
  eventListQuery,
  eventObject,
  idParams,
  noQuery,
  page,
  planObject,
  problemObject,
  scheduledCycle,
  scheduleQuery,
  subscriptionListQuery,
  subscriptionObject,
} from './schemas.js';

type Api = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

const idempotencyHeader = z
  .object({ 'idempotency-key': z.string().optional().meta({ description: 'a unique key per logical request (a UUID); retries with the same key and body replay the first response for 24 h' }) })
  .loose();

const errors = {
  400: problemObject.meta({ description: 'invalid input: errors[] point at each problem' }),
  401: problemObject.meta({ description: 'no or unknown bearer token' }),
  403: problemObject.meta({ description: 'the token lacks the scope' }),
};
const writeErrors = {
  ...errors,
  404: problemObject.meta({ description: 'no such subscription' }),
  409: problemObject.meta({ description: 'the subscription is in a state that does not allow this, or a request with this Idempotency-Key is in progress' }),
  413: problemObject.meta({ description: 'body over 1 MiB' }),
  422: problemObject.meta({ description: 'Idempotency-Key reused with another request' }),
};

/** Registers every `/v1` route on the (prefixed, encapsulated) API instance. */
export function registerRoutes(api: Api, deps: AdminApiDeps & { readonly writes: WriteBatcher }): void {
  const { db, clock, catalog } = deps;
  const read = { scope: 'read' as const };
  const write = { scope: 'write' as const };
  const tags = (tag: string) => [tag];
  const rowLocks = { locksRows: true };

  // ---- subscriptions
  api.post(
    '/subscriptions',
    {
      config: write,
      schema: {
        operationId: 'createSubscription',
        summary: 'Create a subscription (on a plan, or with its schedule inline)',
        description: 'A live subscription with the same source + externalId is returned with 200 instead of a duplicate.',
        tags: tags('subscriptions'),
        headers: idempotencyHeader,
        querystring: noQuery,
        body: subscriptionInputSchema,
        response: { 200: subscriptionObject, 201: subscriptionObject, ...writeErrors },
      },
    },
    (request, reply) =>
      runWrite(request, reply, deps, async (trx, now) => {
        const outcome = await createSubscriptionCommand(trx, catalog, request.body, now);
        return { status: outcome.created ? 201 : 200, body: outcome.subscription, dueAt: outcome.dueAt };
      }),
  );

  api.get(
    '/subscriptions',
    {
      config: read,
      schema: { operationId: 'listSubscriptions', summary: 'List subscriptions (oldest first)', tags: tags('subscriptions'), querystring: subscriptionListQuery, response: { 200: page(subscriptionObject), ...errors } },
    },
    async (request) => listSubscriptions(db, request.query, clock.now()),
  );

  api.get(
    '/subscriptions/:id',
    {
      config: read,
      schema: { operationId: 'getSubscription', summary: 'One subscription', tags: tags('subscriptions'), querystring: noQuery, params: idParams, response: { 200: subscriptionObject, ...errors, 404: writeErrors[404] } },
    },
    async (request) => getSubscriptionView(db, request.params.id, clock.now()),
  );

  api.patch(
    '/subscriptions/:id',
    {
      config: write,
      schema: {
        operationId: 'updateSubscription',
        summary: 'Update the payment token (a card update), metadata or the customer',
        description: 'The next attempt, and a retry already scheduled, use the new payment token. Metadata keys are merged; null removes a key. Writes subscription.updated.',
        tags: tags('subscriptions'),
        headers: idempotencyHeader,
        querystring: noQuery,
        params: idParams,
        body: subscriptionPatchSchema,
        response: { 200: subscriptionObject, ...writeErrors },
      },
    },
    (request, reply) => runWrite(request, reply, deps, async (trx, now) => ({ status: 200, body: await updateSubscriptionCommand(trx, request.params.id, request.body, now) }), rowLocks),
  );

  api.post(
    '/subscriptions/:id/pause',
    {
      config: write,
      schema: {
        operationId: 'pauseSubscription',
        summary: 'Pause now or from pauseDate, until resumeDate or until resumed',
        description: 'Dates are local dates in the subscription time zone. No cycle is collected while paused; on resume the next cycle is the first due after it (no back-billing).',
        tags: tags('subscriptions'),
        headers: idempotencyHeader,
        querystring: noQuery,
        params: idParams,
        body: pauseInputSchema.optional(),
        response: { 200: subscriptionObject, ...writeErrors },
      },
    },
    (request, reply) => runWrite(request, reply, deps, async (trx, now) => ({ status: 200, body: await pauseSubscriptionCommand(trx, request.params.id, request.body ?? {}, now) }), rowLocks),
  );

  api.post(
    '/subscriptions/:id/resume',
    {
      config: write,
      schema: { operationId: 'resumeSubscription', summary: 'Resume a paused subscription (or drop a pause not yet started)', tags: tags('subscriptions'), headers: idempotencyHeader, querystring: noQuery, params: idParams, body: emptyInputSchema.optional(), response: { 200: subscriptionObject, ...writeErrors } },
    },
    (request, reply) => runWrite(request, reply, deps, async (trx, now) => ({ status: 200, body: await resumeSubscriptionCommand(trx, request.params.id, now) }), rowLocks),
  );

  api.post(
    '/subscriptions/:id/cancel',
    {
      config: write,
      schema: {
        operationId: 'cancelSubscription',
        summary: 'Cancel now (terminated) or at the end of the current period (stopped)',
        tags: tags('subscriptions'),
        headers: idempotencyHeader,
        querystring: noQuery,
        params: idParams,
        body: cancelInputSchema.optional(),
        response: { 200: subscriptionObject, ...writeErrors },
      },
    },
    (request, reply) =>
      runWrite(request, reply, deps, async (trx, now) => ({ status: 200, body: await cancelSubscriptionCommand(trx, request.params.id, { atPeriodEnd: request.body?.atPeriodEnd ?? false }, now) }), rowLocks),
  );

  api.post(
    '/subscriptions/:id/retry',
    {
      config: write,
      schema: {
        operationId: 'retrySubscription',
        summary: "Collect the open cycle's next attempt now",
        description: 'Within the attempt budget: the attempt the retry policy scheduled runs now instead. 409 when nothing is open.',
        tags: tags('subscriptions'),
        headers: idempotencyHeader,
        querystring: noQuery,
        params: idParams,
        body: emptyInputSchema.optional(),
        response: { 200: subscriptionObject, ...writeErrors },
      },
    },
    (request, reply) => runWrite(request, reply, deps, async (trx, now) => ({ status: 200, body: await retrySubscriptionCommand(trx, request.params.id, now) }), rowLocks),
  );

  api.get(
    '/subscriptions/:id/charges',
    {
      config: read,
      schema: { operationId: 'listSubscriptionCharges', summary: "One subscription's charges (attempts), oldest first", tags: tags('charges'), params: idParams, querystring: chargeListQuery, response: { 200: page(chargeObject), ...errors, 404: writeErrors[404] } },
    },
    async (request) => {
      await getSubscriptionView(db, request.params.id, clock.now()); // 404 for an unknown id, not an empty list
      return listCharges(db, { ...request.query, subscriptionId: request.params.id });
    },
  );

  api.get(
    '/subscriptions/:id/schedule',
    {
      config: read,
      schema: { operationId: 'getSubscriptionSchedule', summary: 'The next due dates', tags: tags('subscriptions'), params: idParams, querystring: scheduleQuery, response: { 200: z.object({ data: z.array(scheduledCycle) }), ...errors, 404: writeErrors[404] } },
    },
    async (request) => ({ data: await getSchedulePreview(db, request.params.id, request.query.count, clock.now()) }),
  );

  // ---- charges, events, plans
  api.get(
    '/charges',
    {
      config: read,
      schema: { operationId: 'listCharges', summary: 'Charges (attempts) of all subscriptions, oldest first', tags: tags('charges'), querystring: chargeListQuery, response: { 200: page(chargeObject), ...errors } },
    },
    async (request) => listCharges(db, request.query),
  );

  api.get(
    '/events',
    {
      config: read,
      schema: {
        operationId: 'listEvents',
        summary: 'The event outbox, in commit order, for polling',
        description: 'Pass the last id seen as `after`; nextCursor is the last id of a full page.',
        tags: tags('events'),
        querystring: eventListQuery,
        response: { 200: page(eventObject), ...errors },
      },
    },
    async (request) => listEventBodies(db, request.query, clock.now()),
  );

  api.get(
    '/webhook-deliveries',
    {
      config: read,
      schema: {
        operationId: 'listWebhookDeliveries',
        summary: 'Webhook deliveries, one per endpoint and event, by event id',
        tags: tags('events'),
        querystring: deliveryListQuery,
        response: { 200: page(deliveryObject), ...errors },
      },
    },
    async (request) => listWebhookDeliveries(db, request.query),
  );

  api.post(
    '/events/:id/redeliver',
    {
      config: write,
      schema: {
        operationId: 'redeliverEvent',
        summary: "Send an event's webhooks again",
        description: 'Its deliveries (delivered or failed) go back to pending, due now; they keep the same webhook-id.',
        tags: tags('events'),
        headers: idempotencyHeader,
        querystring: noQuery,
        params: eventIdParams,
        body: emptyInputSchema.optional(),
        response: { 200: z.object({ data: z.array(deliveryObject) }), ...writeErrors, 404: problemObject.meta({ description: 'no such event' }) },
      },
    },
    (request, reply) => runWrite(request, reply, deps, async (trx, now) => ({ status: 200, body: await redeliverEventCommand(trx, request.params.id, now) }), rowLocks),
  );

  api.get(
    '/plans',
    { config: read, schema: { operationId: 'listPlans', summary: 'The configured plans', tags: tags('plans'), querystring: noQuery, response: { 200: z.object({ data: z.array(planObject) }), ...errors } } },
    async () => ({ data: catalog.plans.map(renderPlan) }),
  );
}
