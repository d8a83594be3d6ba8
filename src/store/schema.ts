/**
 * The kysely Database interface: one typed row per table. Instants are UTC ISO
 * text of fixed width (see migrations/0001_initial.ts), money integer minor units.
 */
import type { Generated } from 'kysely';

export interface CustomerTable {
  id: string;
  email: string | null;
  phone: string | null;
  first_name: string | null;
  last_name: string | null;
  created_at: string;
}

export interface SubscriptionTable {
  id: string;
  external_id: string | null;
  source: string | null;
  plan_id: string | null;
  plan_version: string | null;
  customer_id: string | null;
  payment_token: string | null;
  description: string | null;
  amount_minor: number;
  currency: string;
  mode: string;
  gateway: string;
  schedule: string;
  status: string;
  termination_type: string | null;
  completed_cycles: number;
  last_paid_cycle: number;
  next_action: string;
  next_cycle: number;
  next_attempt: number;
  action_at: string | null;
  pause_at: string | null;
  resume_at: string | null;
  paused_at: string | null;
  ended_at: string | null;
  work_at: string | null;
  lease_owner: string | null;
  lease_until: string | null;
  latest_payment_external_id: string | null;
  metadata: string | null;
  created_at: string;
  updated_at: string;
  /** Migration 0005: 1 when its payment links are e-mailed (the plan's emailLinks, or its own inline). */
  email_links: Generated<number>;
  /** Migration 0006: bumped by every write of the row's state (not by lease-only writes). */
  version: Generated<number>;
}

export interface CycleTable {
  subscription_id: string;
  cycle: number;
  due_at: string;
  status: string;
  amount_minor: number;
  currency: string;
  attempts: number;
  settled_at: string | null;
  created_at: string;
}

export interface AttemptTable {
  idempotency_key: string;
  subscription_id: string;
  cycle: number;
  attempt: number;
  gateway: string;
  mode: string;
  state: string;
  amount_minor: number;
  currency: string;
  decline_code: string | null;
  hard_decline: number | null;
  external_id: string | null;
  link_url: string | null;
  error: string | null;
  sends: number;
  created_at: string;
  updated_at: string;
  /** Migration 0002: start of the current run of unavailable outcomes, or null. */
  unavailable_since: string | null;
  unavailable_count: Generated<number>;
}

export interface EventTable {
  id: Generated<number>;
  type: string;
  subscription_id: string | null;
  cycle: number | null;
  attempt: number | null;
  occurred_at: string;
  payload: string;
}

export interface SimulatorLedgerTable {
  idempotency_key: string;
  gateway: string;
  entry: string;
  created_at: string;
}

/** Migration 0003: admin API idempotency keys (SPEC section 9). */
export interface IdempotencyKeyTable {
  key: string;
  request_hash: string;
  method: string;
  path: string;
  state: string;
  response_status: number | null;
  response_body: string | null;
  lock_token: string | null;
  locked_until: string | null;
  created_at: string;
  expires_at: string;
}

/** Migration 0004: webhook endpoints and their outbox cursor (SPEC section 8). */
export interface WebhookEndpointTable {
  id: string;
  url: string;
  cursor: number;
  created_at: string;
  updated_at: string;
}

/** Migration 0004: one row per (endpoint, event) to deliver. */
export interface WebhookDeliveryTable {
  endpoint_id: string;
  event_id: number;
  subscription_id: string | null;
  event_type: string;
  event_at: string;
  state: string;
  attempts: Generated<number>;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status: number | null;
  last_duration_ms: number | null;
  last_error: string | null;
  delivered_at: string | null;
  created_at: string;
  updated_at: string;
  /** Migration 0007: the daemon whose claim holds this stream head, and until when. */
  lease_owner: string | null;
  lease_until: string | null;
}

/** Migration 0004: every delivery attempt. */
export interface WebhookAttemptTable {
  id: Generated<number>;
  endpoint_id: string;
  event_id: number;
  attempt: number;
  at: string;
  status: number | null;
  duration_ms: number;
  error: string | null;
}

/** Migration 0005: one payment-link e-mail per attempt (issue 9, item 2). */
export interface LinkEmailTable {
  attempt_key: string;
  subscription_id: string;
  state: string;
  tries: Generated<number>;
  next_try_at: string | null;
  last_try_at: string | null;
  last_error: string | null;
  recipient: string | null;
  message_id: string | null;
  smtp_response: string | null;
  sent_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface Database {
  customers: CustomerTable;
  subscriptions: SubscriptionTable;
  cycles: CycleTable;
  attempts: AttemptTable;
  events: EventTable;
  simulator_ledger: SimulatorLedgerTable;
  idempotency_keys: IdempotencyKeyTable;
  webhook_endpoints: WebhookEndpointTable;
  webhook_deliveries: WebhookDeliveryTable;
  webhook_attempts: WebhookAttemptTable;
  link_emails: LinkEmailTable;
}
