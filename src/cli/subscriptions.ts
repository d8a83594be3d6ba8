import type { Command } from 'commander';
import type { CommandContext } from './index.js';
import { registerSubscriptionsList } from './subscriptions-list.js';
import { registerSubscriptionsShow } from './subscriptions-show.js';

/** `rebill subscriptions <list|show>`: the operator's view of subscriptions (SPEC section 10). */
export function registerSubscriptions(program: Command, ctx: CommandContext): void {
  const group = program.command('subscriptions').description('list and inspect subscriptions (read-only beside a running daemon)');
  registerSubscriptionsList(group, ctx);
  registerSubscriptionsShow(group, ctx);
}
