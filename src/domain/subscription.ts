/**
 * The subscription lifecycle (SPEC section 5) as pure functions over plain
 * data: (state, input, now) -> (new state, cycle writes, events). No I/O and no
 * clock: `now` is epoch milliseconds passed in by the caller.
 *
 * A subscription row carries a work pointer instead of its whole future
 * (DESIGN.md): `nextAction` says what happens next to `nextCycle` /
 * `nextAttempt`, `actionAt` says when. Scheduled pause and resume instants
 * sit beside it; the store indexes the earliest of the three as `work_at`.
 */
import { DateTime } from 'luxon';
import {
  currentCycleAt,
  cycleExists,
  dueAt,
  firstCycleAtOrAfter,
  resolveSchedule,
  type ResolvedSchedule,
  type Schedule,
} from '../calendar/index.js';
import type { Money } from '../money/index.js';
import { RebillError } from '../errors.js';

export type SubscriptionStatus = 'active' | 'paused' | 'stopped' | 'terminated';
export type TerminationType = 'userCancel' | 'publisherCancel' | 'paymentCancel' | 'finished';
export type DispatchMode = 'charge' | 'link';

/**
 * What the engine does next when `actionAt` comes:
 * - collect: start attempt `nextAttempt` of `nextCycle` (a new idempotency key);
 * - reconcile: that attempt's outcome is unknown (in flight when a process died,
 *   or a timeout): ask the gateway about its key before anything else;
 * - poll: that attempt is pending at the gateway: ask again;
 * - end: the current period is over and the subscription ends (stopped, or last cycle paid);
 * - none: nothing is scheduled (paused without a resume date, or terminated).
 */
export type NextAction = 'collect' | 'reconcile' | 'poll' | 'end' | 'none';

/** The schedule snapshot stored with a subscription: plan edits never change it. */
export interface StoredSchedule extends Schedule {
  readonly backfill: boolean;
}

export interface Subscription {
  readonly id: string;
  readonly externalId: string | null;
  readonly source: string | null;
  readonly planId: string | null;
  readonly planVersion: string | null;
  readonly customerId: string | null;
  readonly paymentToken: string | null;
  readonly description: string | null;
  readonly amount: Money;
  readonly mode: DispatchMode;
  readonly gateway: string;
  readonly schedule: StoredSchedule;
  readonly status: SubscriptionStatus;
  readonly terminationType: TerminationType | null;
  readonly completedCycles: number;
  readonly lastPaidCycle: number;
  readonly nextAction: NextAction;
  readonly nextCycle: number;
  readonly nextAttempt: number;
  readonly actionAt: number | null;
  readonly pauseAt: number | null;
  readonly resumeAt: number | null;
  readonly pausedAt: number | null;
  readonly endedAt: number | null;
  readonly latestPaymentExternalId: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type CycleStatus = 'collecting' | 'pending' | 'paid' | 'failed' | 'skipped';

/** A cycle history row to insert or update. */
export interface CycleWrite {
  readonly cycle: number;
  readonly dueAt: number;
  readonly status: CycleStatus;
  readonly attempts?: number;
  readonly settledAt?: number | null;
}

export type EventType =
  | 'subscription.created'
  | 'subscription.paused'
  | 'subscription.resumed'
  | 'subscription.cancelled'
  | 'subscription.finished'
  | 'subscription.payment_failed'
  | 'subscription.updated'
  | 'charge.succeeded'
  | 'charge.failed'
  | 'charge.pending'
  | 'payment_link.sent'
  | 'cycle.skipped';

/**
 * Why a cycle was recorded `skipped` (SPEC section 6): the start date was in the
 * past, the daemon was down across due dates, the cycle fell due while an
 * earlier one was still being collected (retries), or it was due while paused.
 */
export type SkipReason = 'past_start' | 'catch_up' | 'due_during_retry' | 'paused';

/** An outbox event: written in the same transaction as the state change it reports. */
export interface DomainEvent {
  readonly type: EventType;
  readonly subscriptionId: string;
  readonly at: number;
  readonly cycle?: number;
  readonly attempt?: number;
  readonly data: Readonly<Record<string, unknown>>;
}

/** The result of every transition: the new state plus what to persist with it, atomically. */
export interface Transition {
  readonly subscription: Subscription;
  readonly cycles: readonly CycleWrite[];
  readonly events: readonly DomainEvent[];
}

export class LifecycleError extends RebillError {}

const resolvedByObject = new WeakMap<Schedule, ResolvedSchedule>();
/** Many subscriptions share a schedule shape (same plan, same start): resolve each shape once. */
const resolvedByShape = new Map<string, ResolvedSchedule>();

/** The resolved schedule of a subscription (a pure cache: the result depends only on the snapshot). */
export function scheduleOf(sub: Pick<Subscription, 'schedule'>): ResolvedSchedule {
  let r = resolvedByObject.get(sub.schedule);
  if (r) return r;
  const shape = JSON.stringify(sub.schedule);
  r = resolvedByShape.get(shape);
  if (!r) {
    r = resolveSchedule(sub.schedule);
    if (resolvedByShape.size >= 10_000) resolvedByShape.delete(resolvedByShape.keys().next().value!);
    resolvedByShape.set(shape, r);
  }
  resolvedByObject.set(sub.schedule, r);
  return r;
}

/** Due instant of cycle n in epoch ms. */
export function cycleDueAt(sub: Pick<Subscription, 'schedule'>, n: number): number {
  return dueAt(scheduleOf(sub), n).toMillis();
}

function exists(sub: Pick<Subscription, 'schedule'>, n: number): boolean {
  return cycleExists(scheduleOf(sub), n);
}

/** The latest cycle whose due instant is <= now (0 before the first, e.g. in a trial). */
export function currentCycle(sub: Pick<Subscription, 'schedule'>, now: number): number {
  return currentCycleAt(scheduleOf(sub), DateTime.fromMillis(now, { zone: 'utc' }));
}

function firstCycleFrom(sub: Pick<Subscription, 'schedule'>, instant: number): number {
  return firstCycleAtOrAfter(scheduleOf(sub), DateTime.fromMillis(instant, { zone: 'utc' }));
}

/** The earliest instant at which the engine must look at this subscription, or null. */
export function workAt(sub: Pick<Subscription, 'status' | 'nextAction' | 'actionAt' | 'pauseAt' | 'resumeAt'>): number | null {
  // A terminated subscription still settles an attempt that is open at the gateway.
  if (sub.status === 'terminated') return isOpenAttempt(sub) ? sub.actionAt : null;
  const times: number[] = [];
  // A paused subscription starts no new attempt, so its collect pointer is not work (its resume is).
  const idle = sub.status === 'paused' && sub.nextAction === 'collect';
  if (sub.nextAction !== 'none' && sub.actionAt !== null && !idle) times.push(sub.actionAt);
  if (sub.pauseAt !== null) times.push(sub.pauseAt);
  if (sub.resumeAt !== null) times.push(sub.resumeAt);
  return times.length ? Math.min(...times) : null;
}

function event(sub: Subscription, type: EventType, at: number, extra: Partial<DomainEvent> & { data?: Record<string, unknown> } = {}): DomainEvent {
  return { type, subscriptionId: sub.id, at, data: extra.data ?? {}, ...(extra.cycle !== undefined ? { cycle: extra.cycle } : {}), ...(extra.attempt !== undefined ? { attempt: extra.attempt } : {}) };
}

/**
 * Records cycles [from, to) as skipped: the history rows plus one `cycle.skipped`
 * event each, written in the same transaction. Every place that skips a cycle
 * goes through here, so no cycle is ever skipped silently. Stops at the end of
 * the schedule.
 */
export function skipCycles(sub: Subscription, from: number, to: number, reason: SkipReason, now: number): { cycles: CycleWrite[]; events: DomainEvent[] } {
  const cycles: CycleWrite[] = [];
  const events: DomainEvent[] = [];
  for (let n = from; n < to && exists(sub, n); n++) {
    const due = cycleDueAt(sub, n);
    cycles.push({ cycle: n, dueAt: due, status: 'skipped' });
    events.push(event(sub, 'cycle.skipped', now, { cycle: n, data: { reason, dueAt: iso(due) } }));
  }
  return { cycles, events };
}

/** The cycle.skipped events of a transition, summed up for one log line (null: none skipped). */
export function skippedSummary(events: readonly DomainEvent[]): { reason: string; cycles: string; count: number; firstDueAt: unknown; lastDueAt: unknown } | null {
  const skipped = events.filter((e) => e.type === 'cycle.skipped');
  if (skipped.length === 0) return null;
  const first = skipped[0]!;
  const last = skipped.at(-1)!;
  return {
    reason: String(first.data.reason),
    cycles: first.cycle === last.cycle ? String(first.cycle) : `${first.cycle}-${last.cycle}`,
    count: skipped.length,
    firstDueAt: first.data.dueAt,
    lastDueAt: last.data.dueAt,
  };
}

function with_(sub: Subscription, patch: Partial<Subscription>, now: number): Subscription {
  return { ...sub, ...patch, updatedAt: now };
}

/** Input for a new subscription, after validation at the edge (config seed, API, CSV). */
export type NewSubscription = Omit<
  Subscription,
  | 'status'
  | 'terminationType'
  | 'completedCycles'
  | 'lastPaidCycle'
  | 'nextAction'
  | 'nextCycle'
  | 'nextAttempt'
  | 'actionAt'
  | 'pauseAt'
  | 'resumeAt'
  | 'pausedAt'
  | 'endedAt'
  | 'latestPaymentExternalId'
  | 'createdAt'
  | 'updatedAt'
>;

/**
 * Creates a subscription and points it at its first collectable cycle.
 * A start date in the past collects the current period now; earlier cycles
 * are recorded as `skipped` unless the schedule has `backfill` (SPEC section 2).
 */
export function createSubscription(input: NewSubscription, now: number): Transition {
  // Object.assign, not `{ ...input, status, ... }`: V8 builds that literal ~15x slower (about 35 us, most of a seed's cost).
  const base: Subscription = Object.assign({}, input, {
    status: 'active',
    terminationType: null,
    completedCycles: 0,
    lastPaidCycle: 0,
    nextAction: 'collect',
    nextCycle: 1,
    nextAttempt: 1,
    actionAt: null,
    pauseAt: null,
    resumeAt: null,
    pausedAt: null,
    endedAt: null,
    latestPaymentExternalId: null,
    createdAt: now,
    updatedAt: now,
  } satisfies Omit<Subscription, keyof NewSubscription>);
  scheduleOf(base); // throws ScheduleError for a bad snapshot before anything is stored
  const created = event(base, 'subscription.created', now, { data: { planId: base.planId } });
  const current = currentCycle(base, now);
  let first = 1;
  let skipped: ReturnType<typeof skipCycles> = { cycles: [], events: [] };
  if (current > 1 && !input.schedule.backfill) {
    first = current;
    skipped = skipCycles(base, 1, current, 'past_start', now);
  }
  const moved = pointAtCycle(base, first, now);
  return { subscription: moved.subscription, cycles: [...skipped.cycles, ...moved.cycles], events: [created, ...skipped.events, ...moved.events] };
}

/**
 * Points an active subscription at cycle n (attempt 1), or finishes it when the
 * schedule has no cycle n (endDate / maxCycles reached).
 */
function pointAtCycle(sub: Subscription, n: number, now: number): Transition {
  if (!exists(sub, n)) {
    // The schedule is over: end when the last period runs out (the customer paid for it).
    const endAt = sub.lastPaidCycle > 0 ? Math.max(cycleDueAt(sub, n), now) : now;
    return { subscription: with_(sub, { nextAction: 'end', nextCycle: n, nextAttempt: 1, actionAt: endAt }, now), cycles: [], events: [] };
  }
  return {
    subscription: with_(sub, { nextAction: 'collect', nextCycle: n, nextAttempt: 1, actionAt: cycleDueAt(sub, n) }, now),
    cycles: [],
    events: [],
  };
}

/** What the engine should do with a claimed subscription at `now`. */
export type Step = 'pause' | 'resume' | 'end' | 'collect' | 'reconcile' | 'poll' | 'none';

/**
 * Picks the one step that is due. Scheduled pause/resume instants compete with
 * the work pointer by time; a pause or resume at the same instant as a charge
 * goes first, so "pause on the 15th" stops the charge due on the 15th.
 */
export function dueStep(sub: Subscription, now: number): Step {
  if (sub.status === 'terminated') return isOpenAttempt(sub) && sub.actionAt! <= now ? (sub.nextAction as Step) : 'none';
  const candidates: Array<[number, Step]> = [];
  if (sub.pauseAt !== null && sub.pauseAt <= now && sub.status === 'active') candidates.push([sub.pauseAt, 'pause']);
  if (sub.resumeAt !== null && sub.resumeAt <= now && sub.status === 'paused') candidates.push([sub.resumeAt, 'resume']);
  if (sub.actionAt !== null && sub.actionAt <= now && sub.nextAction !== 'none') {
    const step = sub.nextAction;
    // While paused, only finish what is already at the gateway; no new attempts.
    if (!(sub.status === 'paused' && step === 'collect')) candidates.push([sub.actionAt + 0.5, step]);
  }
  if (candidates.length === 0) return 'none';
  candidates.sort((a, b) => a[0] - b[0]);
  return candidates[0]![1];
}

export interface PauseRequest {
  /** When the pause starts; absent or <= now: immediately. */
  readonly pauseAt?: number | null;
  /** When collection resumes by itself; absent: paused until resumed. */
  readonly resumeAt?: number | null;
}

/** Pauses now, or schedules a pause (and optionally the resume). */
export function pause(sub: Subscription, request: PauseRequest, now: number): Transition {
  if (sub.status !== 'active' && sub.status !== 'paused') {
    throw new LifecycleError('SUBSCRIPTION_NOT_ACTIVE', `subscription ${sub.id} is ${sub.status}; only an active subscription can be paused`);
  }
  const resumeAt = request.resumeAt ?? null;
  const pauseAt = request.pauseAt ?? null;
  if (resumeAt !== null && resumeAt <= Math.max(now, pauseAt ?? now)) {
    throw new LifecycleError('PAUSE_INVALID', 'resumeDate must be after the pause starts');
  }
  // Already paused: only the resume date moves. A scheduled pauseAt on a paused row would be
  // work that never becomes a step (dueStep pauses active rows only), claimed by every sweep.
  if (sub.status === 'paused') return { subscription: with_(sub, { resumeAt }, now), cycles: [], events: [] };
  if (pauseAt !== null && pauseAt > now) {
    return { subscription: with_(sub, { pauseAt, resumeAt }, now), cycles: [], events: [] };
  }
  const paused = with_(sub, { status: 'paused', pauseAt: null, resumeAt, pausedAt: now }, now);
  return {
    subscription: paused,
    cycles: [],
    events: [event(paused, 'subscription.paused', now, { data: { resumeAt: resumeAt === null ? null : iso(resumeAt) } })],
  };
}

/** The scheduled pause instant has come. */
export function applyScheduledPause(sub: Subscription, now: number): Transition {
  if (sub.status === 'active' && sub.resumeAt !== null && sub.resumeAt <= now) {
    // The whole pause window has passed (the sweep ran late): pause now and let the resume step
    // follow at once. Validating the old resumeAt against `now` would fail this step forever.
    const paused = with_(sub, { status: 'paused', pauseAt: null, pausedAt: now }, now);
    return { subscription: paused, cycles: [], events: [event(paused, 'subscription.paused', now, { data: { resumeAt: iso(sub.resumeAt) } })] };
  }
  return pause(with_(sub, { pauseAt: null }, now), { resumeAt: sub.resumeAt }, now);
}

/**
 * Resumes collection. No back-billing: the next cycle is the first one due at
 * or after the resume instant; an unfinished cycle from before the pause and
 * every cycle due while paused are recorded as skipped.
 */
export function resume(sub: Subscription, now: number): Transition {
  if (sub.status !== 'paused') {
    if (sub.status === 'active' && sub.pauseAt !== null) {
      // Resuming a subscription whose pause has not started yet cancels the scheduled pause.
      return { subscription: with_(sub, { pauseAt: null, resumeAt: null }, now), cycles: [], events: [] };
    }
    throw new LifecycleError('SUBSCRIPTION_NOT_PAUSED', `subscription ${sub.id} is ${sub.status}, not paused`);
  }
  const resumed = with_(sub, { status: 'active', pauseAt: null, resumeAt: null, pausedAt: null }, now);
  const events = [event(resumed, 'subscription.resumed', now)];
  if (sub.nextAction === 'reconcile' || sub.nextAction === 'poll') {
    // An attempt is still open at the gateway: it settles first, then the pointer moves on as usual.
    return { subscription: resumed, cycles: [], events };
  }
  const from = Math.max(sub.nextCycle, firstCycleFrom(sub, now));
  const skipped = skipCycles(resumed, sub.nextCycle, from, 'paused', now);
  const moved = pointAtCycle(resumed, from, now);
  return { subscription: moved.subscription, cycles: [...skipped.cycles, ...moved.cycles], events: [...events, ...skipped.events, ...moved.events] };
}

export interface CancelRequest {
  /** true: `stopped` now, `terminated` (userCancel) when the current period ends. */
  readonly atPeriodEnd?: boolean;
  readonly by?: 'user' | 'publisher';
}

/** Cancels now (terminated) or at the end of the current period (stopped). */
export function cancel(sub: Subscription, request: CancelRequest, now: number): Transition {
  if (sub.status === 'terminated') {
    throw new LifecycleError('SUBSCRIPTION_TERMINATED', `subscription ${sub.id} is already terminated`);
  }
  const type: TerminationType = request.by === 'publisher' ? 'publisherCancel' : 'userCancel';
  if (request.atPeriodEnd) {
    if (sub.status === 'stopped') return { subscription: sub, cycles: [], events: [] };
    // The period the customer is in ends when the cycle after the current one falls due.
    const periodEnd = cycleDueAt(sub, currentCycle(sub, now) + 1);
    if (periodEnd > now && sub.status !== 'paused') {
      const open = sub.nextAction === 'reconcile' || sub.nextAction === 'poll';
      const stopped = with_(
        sub,
        open ? { status: 'stopped', pauseAt: null, resumeAt: null } : { status: 'stopped', nextAction: 'end', actionAt: periodEnd, pauseAt: null, resumeAt: null },
        now,
      );
      return {
        subscription: stopped,
        cycles: open ? [] : abandonedRetry(sub, now),
        events: [event(stopped, 'subscription.cancelled', now, { data: { atPeriodEnd: true, terminationType: type, endsAt: iso(periodEnd) } })],
      };
    }
  }
  return terminate(sub, type, now, { atPeriodEnd: Boolean(request.atPeriodEnd) });
}

/** A card or contact update (SPEC 9 `PATCH /v1/subscriptions/{id}`). */
export interface DetailsChange {
  /** The new payment token (a card update after a decline): the next attempt, and a retry already scheduled, use it. */
  readonly paymentToken?: string;
  /** Keys to set; a null value removes the key. */
  readonly metadata?: Readonly<Record<string, string | null>>;
  /** The customer's contact details changed (stored with the customer, named in the event). */
  readonly customerChanged?: boolean;
}

/** The most metadata keys a subscription carries (SPEC section 5). */
export const MAX_METADATA_KEYS = 50;

/**
 * Applies a card or contact update: `subscription.updated` names what changed
 * (never the token itself). A terminated subscription is final. A change that
 * changes nothing writes no event.
 */
export function updateDetails(sub: Subscription, change: DetailsChange, now: number): Transition {
  if (sub.status === 'terminated') {
    throw new LifecycleError('SUBSCRIPTION_TERMINATED', `subscription ${sub.id} is terminated; it can no longer be changed`);
  }
  const changed: string[] = [];
  const patch: { paymentToken?: string; metadata?: Record<string, string> } = {};
  if (change.paymentToken !== undefined && change.paymentToken !== sub.paymentToken) {
    if (sub.mode === 'link') throw new LifecycleError('PAYMENT_TOKEN_UNUSED', `subscription ${sub.id} collects by payment link; it has no payment token to update`);
    patch.paymentToken = change.paymentToken;
    changed.push('paymentToken');
  }
  if (change.metadata !== undefined) {
    const next: Record<string, string> = { ...sub.metadata };
    for (const [key, value] of Object.entries(change.metadata)) {
      if (value === null) delete next[key];
      else next[key] = value;
    }
    if (Object.keys(next).length > MAX_METADATA_KEYS) {
      throw new LifecycleError('METADATA_TOO_LARGE', `metadata would have ${Object.keys(next).length} keys; at most ${MAX_METADATA_KEYS}`);
    }
    if (JSON.stringify(Object.entries(next).sort()) !== JSON.stringify(Object.entries(sub.metadata).sort())) {
      patch.metadata = next;
      changed.push('metadata');
    }
  }
  if (change.customerChanged) changed.push('customer');
  if (changed.length === 0) return { subscription: sub, cycles: [], events: [] };
  const updated = with_(sub, patch, now);
  return { subscription: updated, cycles: [], events: [event(updated, 'subscription.updated', now, { data: { changed } })] };
}

/**
 * `POST /v1/subscriptions/{id}/retry`: the open cycle's next attempt, which the
 * retry policy scheduled for later, is due now. The attempt budget is
 * unchanged (it is the same attempt, earlier). Nothing open -> LifecycleError
 * NOTHING_TO_RETRY (an attempt at the gateway, no failed attempt waiting, or
 * a subscription that is not active).
 */
export function retryNow(sub: Subscription, now: number): Transition {
  if (sub.status !== 'active') {
    throw new LifecycleError('NOTHING_TO_RETRY', `subscription ${sub.id} is ${sub.status}; nothing to retry`);
  }
  if (isOpenAttempt(sub)) {
    throw new LifecycleError('NOTHING_TO_RETRY', `attempt ${sub.nextAttempt} of cycle ${sub.nextCycle} is still at the gateway; its outcome settles first`);
  }
  if (sub.nextAction !== 'collect' || sub.nextAttempt <= 1) {
    throw new LifecycleError('NOTHING_TO_RETRY', `subscription ${sub.id} has no failed attempt waiting for a retry`);
  }
  if (sub.actionAt !== null && sub.actionAt <= now) return { subscription: sub, cycles: [], events: [] };
  return { subscription: with_(sub, { actionAt: now }, now), cycles: [], events: [] };
}

/** An attempt is at the gateway with its outcome not yet recorded (in flight, unknown or pending). */
export function isOpenAttempt(sub: Pick<Subscription, 'nextAction' | 'actionAt'>): boolean {
  return (sub.nextAction === 'reconcile' || sub.nextAction === 'poll') && sub.actionAt !== null;
}

function terminate(sub: Subscription, type: TerminationType, now: number, data: Record<string, unknown> = {}): Transition {
  // Cancelling does not make money already moving stop: an open attempt keeps its pointer so the
  // engine still reconciles or polls it (a crash meanwhile must not leave it in_flight forever).
  const pointer = isOpenAttempt(sub) ? {} : { nextAction: 'none' as const, actionAt: null };
  const ended = with_(sub, { status: 'terminated', terminationType: type, ...pointer, pauseAt: null, resumeAt: null, endedAt: now }, now);
  const kind: EventType = type === 'finished' ? 'subscription.finished' : 'subscription.cancelled';
  return { subscription: ended, cycles: abandonedRetry(sub, now), events: [event(ended, kind, now, { data: { terminationType: type, ...data } })] };
}

/**
 * A cancel that lands while a retry is scheduled drops that retry (a stopped or
 * terminated subscription is not dunned), so the cycle's history row is closed
 * as `failed`, as a decline on a stopped subscription closes it, instead of
 * staying `collecting` with nothing left to collect it.
 */
function abandonedRetry(sub: Subscription, now: number): CycleWrite[] {
  if (sub.nextAction !== 'collect' || sub.nextAttempt <= 1) return [];
  return [{ cycle: sub.nextCycle, dueAt: cycleDueAt(sub, sub.nextCycle), status: 'failed', attempts: sub.nextAttempt - 1, settledAt: now }];
}

/** The `end` step: a stopped subscription reaches its period end, or the schedule is complete. */
export function applyEnd(sub: Subscription, now: number): Transition {
  if (sub.status === 'stopped') return terminate(sub, 'userCancel', now, { atPeriodEnd: true });
  return terminate(sub, 'finished', now);
}

/** The idempotency key of an attempt, as sent to the gateway (SPEC section 6). */
export function idempotencyKey(subscriptionId: string, cycle: number, attempt: number): string {
  return `${subscriptionId}:${cycle}:${attempt}`;
}

/**
 * Starts attempt `nextAttempt` of `nextCycle`: the caller commits the attempt
 * row (in_flight) together with this state before calling the gateway. The
 * pointer becomes `reconcile` at the lease's end, so a process that dies with
 * the call in flight leaves a row the next sweep settles by asking the gateway.
 *
 * Catch-up: a first attempt whose cycle is older than the current period (the
 * daemon was down across several due dates) moves to the current period and
 * records the cycles in between as skipped, unless the schedule backfills.
 */
export function beginAttempt(
  sub: Subscription,
  now: number,
  reconcileAt: number,
): Transition & { key: string; cycle: number; attempt: number } {
  let cycle = sub.nextCycle;
  if (sub.nextAttempt === 1 && !sub.schedule.backfill && laterCycleDue(sub, cycle, now)) {
    const current = currentCycle(sub, now);
    for (; cycle < current && exists(sub, cycle + 1); cycle++);
  }
  const skipped = skipCycles(sub, sub.nextCycle, cycle, 'catch_up', now);
  const key = idempotencyKey(sub.id, cycle, sub.nextAttempt);
  const next = with_(sub, { nextAction: 'reconcile', nextCycle: cycle, actionAt: reconcileAt }, now);
  return {
    key,
    cycle,
    attempt: sub.nextAttempt,
    subscription: next,
    cycles: [...skipped.cycles, { cycle, dueAt: cycleDueAt(sub, cycle), status: 'collecting', attempts: sub.nextAttempt }],
    events: skipped.events,
  };
}

/** Canonical instant text: UTC ISO-8601 with `Z`, milliseconds only when not zero (`2025-01-31T00:00:00Z`). */
export function iso(ms: number): string {
  // The lines of one batch name the same few instants (due dates, the next one): remember the last.
  if (ms === lastIso.ms) return lastIso.text;
  // Date's own formatting for years 0-9999 (the same text as luxon's, which costs a DateTime per log line).
  const date = new Date(ms);
  const year = date.getUTCFullYear();
  let text: string;
  if (year >= 0 && year <= 9999) {
    text = date.toISOString();
    if (text.endsWith('.000Z')) text = `${text.slice(0, -5)}Z`;
  } else {
    text = DateTime.fromMillis(ms, { zone: 'utc' }).toISO({ suppressMilliseconds: true })!;
  }
  lastIso = { ms, text };
  return text;
}

let lastIso = { ms: NaN, text: '' };

/**
 * Whether a cycle after `n` is already due at `now`, i.e. whether the current
 * period is past cycle n (due instants increase with the cycle number). Only
 * then is the catch-up scan worth running: in the common case (the row's
 * cycle is the current one) the memoised due instant of n + 1 answers it
 * without building a DateTime and searching for the current cycle per charge.
 */
function laterCycleDue(sub: Subscription, n: number, now: number): boolean {
  return cycleDueAt(sub, n + 1) <= now;
}

/**
 * After cycle n settles (paid, or failed under onFinalFailure=keep): point at
 * n+1. If the daemon was down for several periods, cycles older than the
 * current period are skipped unless the schedule backfills: catch-up never
 * bills more than the plan allows.
 */
export function advanceAfter(sub: Subscription, settledCycle: number, now: number): Transition {
  let next = settledCycle + 1;
  const first = next;
  if (!sub.schedule.backfill && sub.status === 'active' && laterCycleDue(sub, first, now)) {
    const current = currentCycle(sub, now);
    for (; next < current && exists(sub, next); next++);
  }
  // The cycles passed over fell due while cycle `settledCycle` was still being collected (its retries,
  // a pending payment, or the daemon being down meanwhile).
  const { cycles, events: skippedEvents } = skipCycles(sub, first, next, 'due_during_retry', now);
  if (sub.status === 'stopped') {
    const periodEnd = Math.max(cycleDueAt(sub, next), now);
    return { subscription: with_(sub, { nextAction: 'end', nextCycle: next, nextAttempt: 1, actionAt: periodEnd }, now), cycles, events: skippedEvents };
  }
  if (sub.status === 'paused') {
    return { subscription: with_(sub, { nextAction: 'collect', nextCycle: next, nextAttempt: 1, actionAt: cycleDueAt(sub, next) }, now), cycles, events: skippedEvents };
  }
  const moved = pointAtCycle(sub, next, now);
  return { subscription: moved.subscription, cycles: [...cycles, ...moved.cycles], events: [...skippedEvents, ...moved.events] };
}
