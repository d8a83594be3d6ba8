/** Every migration, in order. Listed statically so the compiled daemon needs no directory scan. */
import type { Migration } from 'kysely';
import * as m0001 from './0001_initial.js';
import * as m0002 from './0002_attempt_outage.js';
import * as m0003 from './0003_idempotency_keys.js';
import * as m0004 from './0004_webhook_deliveries.js';
import * as m0005 from './0005_link_emails.js';
import * as m0006 from './0006_hot_path.js';
import * as m0007 from './0007_webhook_leases.js';

export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_attempt_outage': m0002,
  '0003_idempotency_keys': m0003,
  '0004_webhook_deliveries': m0004,
  '0005_link_emails': m0005,
  '0006_hot_path': m0006,
  '0007_webhook_leases': m0007,
};
