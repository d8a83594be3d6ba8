export * from './interval.js';
export * from './schedule.js';
