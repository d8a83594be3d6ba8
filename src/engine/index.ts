export * from './engine.js';
export * from './writer.js';
export * from './runtime.js';
export * from './circuit.js';
export * from './observer.js';
export * from './callbacks.js';
