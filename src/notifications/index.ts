/**
 * Notifications to customers: payment links by e-mail (`notifications.email`,
 * plans with `emailLinks: true`).
 */
export * from './template.js';
export * from './message.js';
export * from './sender.js';
