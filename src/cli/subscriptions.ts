import type { Command } from 'commander';
import type { CommandContext } from './index.js';
import { registerSubscriptionsImport } from './subscriptions-import.js';
import { registerSubscriptionsList } from './subscriptions-list.js';
import { registerSubscriptionsShow } from './subscriptions-show.js';

/** `rebill subscriptions <list|show|import>`: the operator's view of subscriptions, and the CSV import (SPEC sections 10, 11). */
export function registerSubscriptions(program: Command, ctx: CommandContext): void {
  const group = program.command('subscriptions').description('list and inspect subscriptions (read-only beside a running daemon), or import them from CSV');
  registerSubscriptionsList(group, ctx);
  registerSubscriptionsShow(group, ctx);
  registerSubscriptionsImport(group, ctx);
}
