/**
 * The admin write operations (SPEC section 9), shared by the `/v1` API and
 * any CLI command that changes a subscription: create (on a plan or with an
 * inline schedule, deduplicated by id and by live source + externalId), a
 * card or contact update, pause, resume, cancel and retry-now. Each runs
 * inside the caller's transaction, so the API can store its idempotent
 * response with the change, and returns the public subscription object.
 *
 * Input shape is checked by the schemas in src/config (one schema per request);
 * what only the running config knows (its plans and gateways) is checked here,
 * and reported as an InputError with the key path of each problem.
 */
import { DateTime } from 'luxon';
import {
  inlineGatewayProblems,
  inlinePlanOf,
  linkEmailProblems,
  planReferenceProblems,
  tokenProblems,
  type Config,
  type PlanConfig,
  type SubscriptionInput,
  type SubscriptionProblem,
} from '../config/index.js';
import {
  cancel,
  LifecycleError,
  pause,
  resume,
  retryNow,
  subscriptionFromPlan,
  updateDetails,
  workAt,
  type PlanTerms,
  type Subscription,
} from '../domain/index.js';
import { RebillError } from '../errors.js';
import {
  createSubscriptionIn,
  customerExists,
  getSubscription,
  isNoOp,
  newId,
  setSubscriptionCustomer,
  updateCustomerIn,
  updateSubscriptionIn,
  writeTransition,
  type Conn,
  type Trx,
} from '../store/index.js';
import { getSubscriptionView, subscriptionObject, type SubscriptionObject } from './subscriptions.js';

/** Input that is well-formed but does not fit the running config (unknown plan, missing token, ...). */
export class InputError extends RebillError {
  constructor(readonly problems: readonly SubscriptionProblem[]) {
    super('INPUT_INVALID', problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; '));
  }
}

/** A create whose explicit id is taken by another subscription. */
export class ConflictError extends RebillError {}

/** What the write operations know of the running config. */
export interface Catalog {
  readonly plans: readonly PlanConfig[];
  /** Configured gateway names. */
  readonly gateways: readonly string[];
  /** notifications.email is configured, so an inline link schedule may set emailLinks (default false). */
  readonly linkEmails?: boolean;
}

/** The catalog of a loaded configuration (the daemon's API and `subscriptions import` alike). */
export function catalogOf(config: Pick<Config, 'plans' | 'gateways' | 'notifications'>): Catalog {
  return { plans: config.plans, gateways: Object.keys(config.gateways), linkEmails: config.notifications.email !== undefined };
}

export interface CreateOutcome {
  /** false: an existing live subscription with the same source + externalId was returned (HTTP 200). */
  readonly created: boolean;
  readonly subscription: SubscriptionObject;
  /** The earliest instant the engine has work for the new subscription (null: none, or nothing was created). */
  readonly dueAt: number | null;
}

/** What a validated input becomes once it fits the catalog: the subscription to store (see createSubscriptionIn). */
export type SubscriptionDraft = ReturnType<typeof subscriptionFromPlan>;

/**
 * The catalog's checks of a validated input (plan exists, gateway configured,
 * token given for charge mode) and, when they pass, the subscription to store:
 * for createSubscriptionCommand and the CSV import alike. Whether a customerId
 * exists is the database's business (see customerProblems). Throws InputError.
 */
export function subscriptionDraft(catalog: Catalog, input: SubscriptionInput, now: number): SubscriptionDraft {
  const problems: SubscriptionProblem[] = [];
  let terms: PlanTerms | undefined;
  if (input.planId !== undefined) {
    const plans = new Map(catalog.plans.map((p) => [p.id, p]));
    problems.push(...planReferenceProblems(input, plans));
    const plan = plans.get(input.planId);
    if (plan) terms = plan;
  } else {
    const inline = inlinePlanOf(input)!;
    const gatewayProblems = inlineGatewayProblems(inline.gateway, catalog.gateways);
    problems.push(
      ...gatewayProblems,
      ...tokenProblems(input.paymentToken, inline.mode, 'the schedule uses mode charge'),
      ...linkEmailProblems(inline.emailLinks, inline.mode, catalog.linkEmails ?? false),
    );
    // An inline schedule belongs to no plan: its id is dropped below.
    if (gatewayProblems.length === 0) terms = { ...inline, id: '', gateway: inline.gateway ?? catalog.gateways[0]! };
  }
  if (problems.length > 0 || !terms) throw new InputError(problems);
  const timezone = input.timezone ?? terms.timezone;
  const snapshot = subscriptionFromPlan(terms, {
    id: input.id ?? newId('sub_', now),
    // No start date: the subscription starts today, in its own time zone.
    startDate: input.startDate ?? DateTime.fromMillis(now, { zone: timezone }).toISODate()!,
    paymentToken: input.paymentToken,
    endDate: input.endDate,
    sendOnHour: input.sendOnHour,
    timezone: input.timezone,
    externalId: input.externalId,
    source: input.source,
    customerId: input.customerId ?? null,
    customer: input.customer,
    metadata: input.metadata,
  });
  // An inline schedule belongs to no plan.
  return input.planId === undefined ? { ...snapshot, planId: null } : snapshot;
}

/** An unknown customerId, as a problem at `customerId` (none when the input names no customer id, or one that exists). */
export async function customerProblems(trx: Conn, input: SubscriptionInput): Promise<SubscriptionProblem[]> {
  if (input.customerId === undefined || (await customerExists(trx, input.customerId))) return [];
  return [{ path: ['customerId'], message: `unknown customer "${input.customerId}"` }];
}

/**
 * Creates a subscription from a validated input. A live subscription with the
 * same (source, externalId) is returned instead of a duplicate; an explicit id
 * that exists is a ConflictError. Throws InputError for an unknown plan or
 * gateway, a missing token or an unknown customerId.
 */
export async function createSubscriptionCommand(trx: Trx, catalog: Catalog, input: SubscriptionInput, now: number): Promise<CreateOutcome> {
  let draft: SubscriptionDraft | undefined;
  const problems: SubscriptionProblem[] = [];
  try {
    draft = subscriptionDraft(catalog, input, now);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    problems.push(...err.problems);
  }
  problems.push(...(await customerProblems(trx, input)));
  if (problems.length > 0 || !draft) throw new InputError(problems);
  if (input.id !== undefined && (await trx.selectFrom('subscriptions').select('id').where('id', '=', input.id).executeTakeFirst())) {
    throw new ConflictError('SUBSCRIPTION_EXISTS', `a subscription with id "${input.id}" already exists; retry a create with the same Idempotency-Key instead`);
  }
  const created = await createSubscriptionIn(trx, draft, now, { newId: input.id === undefined });
  // The row as written (or as found): reading it back cost a select and a parse per create.
  return {
    created: created.created,
    subscription: await subscriptionObject(trx, created.subscription, now, created.customer),
    dueAt: created.created ? workAt(created.subscription) : null,
  };
}

/** A validated `PATCH /v1/subscriptions/{id}` body. */
export interface SubscriptionPatch {
  readonly paymentToken?: string;
  readonly metadata?: Readonly<Record<string, string | null>>;
  readonly customer?: { readonly email?: string; readonly phone?: string; readonly firstName?: string; readonly lastName?: string };
}

/**
 * A card or contact update: the new token is stored on the row, so the next
 * attempt, and a retry the policy already scheduled, send it (the engine reads
 * the token from the row it claims). Writes `subscription.updated`.
 */
export async function updateSubscriptionCommand(trx: Trx, id: string, patch: SubscriptionPatch, now: number): Promise<SubscriptionObject> {
  const current = await getSubscription(trx, id);
  if (patch.paymentToken !== undefined && current.mode === 'link') {
    throw new InputError([{ path: ['paymentToken'], message: `subscription ${id} collects by payment link (mode link); it has no payment token to update` }]);
  }
  let customerChanged = false;
  if (patch.customer !== undefined && Object.keys(patch.customer).length > 0) {
    // Checked before the customer row is touched: a terminated subscription changes nothing.
    updateDetails(current, {}, now);
    const customerId = await updateCustomerIn(trx, current.customerId, patch.customer, now);
    if (customerId !== current.customerId) await setSubscriptionCustomer(trx, id, customerId);
    customerChanged = true;
  }
  await updateSubscriptionIn(trx, id, now, (sub) =>
    asInputProblem('METADATA_TOO_LARGE', ['metadata'], (err) => err.message.replace(/^metadata would have (\d+) keys/, 'would have $1 keys once merged with the stored ones'), () =>
      updateDetails(sub, { ...(patch.paymentToken !== undefined ? { paymentToken: patch.paymentToken } : {}), ...(patch.metadata ? { metadata: patch.metadata } : {}), customerChanged }, now),
    ),
  );
  return getSubscriptionView(trx, id, now);
}

/**
 * Runs a domain step, reporting its LifecycleError `code` as an InputError at
 * `path`: a refusal caused by the value given (a resume date already past,
 * metadata past 50 keys once merged), not by the subscription's state, is a
 * 400 that names the field, not a 409.
 */
function asInputProblem<T>(code: string, path: readonly string[], message: (err: LifecycleError) => string, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof LifecycleError && err.code === code) throw new InputError([{ path, message: message(err) }]);
    throw err;
  }
}

/** The start of a local date in the subscription's time zone (pause and resume dates). */
function startOfLocalDate(sub: Subscription, date: string): number {
  return DateTime.fromISO(date, { zone: sub.schedule.timezone }).startOf('day').toMillis();
}

/** Pauses now or from `pauseDate`, until `resumeDate` or until resumed (both local dates of the subscription). */
export async function pauseSubscriptionCommand(trx: Trx, id: string, body: { pauseDate?: string; resumeDate?: string }, now: number): Promise<SubscriptionObject> {
  await updateSubscriptionIn(trx, id, now, (sub) =>
    asInputProblem(
      'PAUSE_INVALID',
      ['resumeDate'],
      () => `must be after the pause starts and after today (local dates in ${sub.schedule.timezone}); got "${body.resumeDate}"`,
      () =>
        pause(
          sub,
          {
            pauseAt: body.pauseDate === undefined ? null : startOfLocalDate(sub, body.pauseDate),
            resumeAt: body.resumeDate === undefined ? null : startOfLocalDate(sub, body.resumeDate),
          },
          now,
        ),
    ),
  );
  return getSubscriptionView(trx, id, now);
}

/** Resumes a paused subscription (no back-billing), or drops a pause that has not started. */
export async function resumeSubscriptionCommand(trx: Trx, id: string, now: number): Promise<SubscriptionObject> {
  await updateSubscriptionIn(trx, id, now, (sub) => resume(sub, now));
  return getSubscriptionView(trx, id, now);
}

/** Cancels now (terminated, userCancel) or at the end of the current period (stopped). */
export async function cancelSubscriptionCommand(trx: Trx, id: string, body: { atPeriodEnd: boolean }, now: number): Promise<SubscriptionObject> {
  await updateSubscriptionIn(trx, id, now, (sub) => cancel(sub, { atPeriodEnd: body.atPeriodEnd }, now));
  return getSubscriptionView(trx, id, now);
}

/** Makes the open cycle's next attempt due now (LifecycleError NOTHING_TO_RETRY when nothing is open). */
export async function retrySubscriptionCommand(trx: Trx, id: string, now: number): Promise<SubscriptionObject> {
  const sub = await getSubscription(trx, id);
  const transition = retryNow(sub, now);
  if (!isNoOp(sub, transition)) await writeTransition(trx, transition, now, 'ignore');
  return getSubscriptionView(trx, id, now);
}
