export * from './subscription.js';
export * from './collection.js';
export * from './view.js';
export * from './plan.js';
export * from './customer.js';
