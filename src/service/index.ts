/**
 * The service layer: the admin operations that the operator CLI and the
 * `/v1` API both call, so the two never diverge. It validates inputs once
 * (FilterError, code INVALID_FILTER, naming the parameter), reads through
 * the store and renders the public JSON objects; it knows nothing of HTTP
 * or of the terminal.
 */
export * from './filters.js';
export * from './subscriptions.js';
export * from './charges.js';
export * from './status.js';
export * from './detail.js';
export * from './commands.js';
export * from './events.js';
export * from './plans.js';
export * from './import.js';
export * from './webhooks.js';
