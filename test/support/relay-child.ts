/**
 * A webhook relay alone in a process of its own, for tests that SIGKILL it
 * mid-batch (a daemon that dies holding leased stream heads). Run with
 * `node --import tsx`; argv: database URL, webhook URL, owner. The secret
 * comes in WEBHOOK_SECRET. Prints `ready` once its loop runs.
 */
import { pino } from 'pino';
import { systemClock } from '../../src/clock.js';
import { openDatabase } from '../../src/store/index.js';
import { createRelay } from '../../src/webhooks/index.js';

const [url, hookUrl, owner] = process.argv.slice(2) as [string, string, string];
const db = openDatabase(url);
const relay = createRelay({
  db,
  clock: systemClock,
  logger: pino({ level: 'silent' }),
  webhooks: [{ url: hookUrl, secret: process.env.WEBHOOK_SECRET!, events: ['*'], enabled: true, retrySchedule: ['PT1S'], maxAgeHours: 72, timeoutSeconds: 30 }],
  // Short leases: the test waits for them to run out on PostgreSQL.
  options: { owner, concurrency: 2, window: 8, recordBatch: 4, leaseMs: 1_500 },
});
await relay.init();
relay.start();
process.stdout.write('ready\n');
