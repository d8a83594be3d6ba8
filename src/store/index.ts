export * from './db.js';
export * from './schema.js';
export * from './repository.js';
export * from './simulator-ledger.js';
export * from './lock.js';
export * from './admin-queries.js';
export * from './probe.js';
export * from './idempotency.js';
