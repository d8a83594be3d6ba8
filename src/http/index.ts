/** The HTTP surface of `rebill run`: server, readiness, problem details, metrics. */
export * from './server.js';
export * from './readiness.js';
export * from './probes.js';
export * from './problem.js';
export * from './metrics.js';
export * from './callbacks.js';
