/**
 * simulate-year: `rebill simulate` of N monthly subscriptions (start days
 * spread over January, a few declining tokens among them) over 2025, wall
 * seconds from spawn to exit with the timeline written to a file. The only
 * absolute figure of the bench (<= 10 s for 1,000); it is reported, and its
 * pass says whether that held here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { atMost, row, type Scenario } from '../harness.js';
import { runRebill } from '../support/processes.js';

/** Mostly good cards, some retried declines, as a real book has. */
const TOKENS = ['tok_ok', 'tok_ok', 'tok_ok', 'tok_ok', 'tok_ok', 'tok_ok', 'tok_ok', 'tok_ok', 'tok_flaky_1', 'tok_insufficient'];

export const simulateYear: Scenario = {
  rows: ['simulate-year'],
  description: '`rebill simulate` of N monthly subscriptions for a year, wall seconds (absolute: <= 10 s for 1,000)',
  async run(ctx) {
    const n = ctx.size(1_000, 50);
    const dir = ctx.dir('simulate');
    const lines = [
      'start: "2025-01-01T00:00:00Z"',
      'until: "2026-01-01T00:00:00Z"',
      'gateways: { sim: { type: simulator } }',
      'retry: { attempts: 3, delays: [P1D, P3D], onFinalFailure: terminate }',
      'plans:',
      '  - { id: monthly, amount: "9.99", currency: USD, every: MONTH, sendOnHour: 9, timezone: Europe/Berlin }',
      'subscriptions:',
    ];
    for (let i = 0; i < n; i++) lines.push(`  - { id: s${i}, planId: monthly, paymentToken: ${TOKENS[i % TOKENS.length]}, startDate: "2025-01-${String((i % 28) + 1).padStart(2, '0')}" }`);
    const scenario = join(dir, 'year.yaml');
    writeFileSync(scenario, `${lines.join('\n')}\n`);
    const result = await runRebill(['simulate', scenario, '--json'], { dir, name: 'simulate' });
    const timeline = readFileSync(result.child.logFile, 'utf8');
    const captured = timeline.split('\n').filter((l) => l.includes('"type":"charge.succeeded"')).length;
    // Every subscription pays at least its first 11 months (tok_insufficient ones are terminated after cycle 1).
    if (captured < n * 0.8 * 11) throw new Error(`the simulation captured only ${captured} charges:\n${result.child.tail()}`);
    ctx.log(`${n} subscriptions: ${result.seconds.toFixed(1)} s, peak RSS ${result.peakRssMb.toFixed(0)} MB`);
    return [row('simulate-year', result.seconds, 's', 10, atMost(1), `${n} monthly subscriptions over 2025, ${captured} captures, spawn -> exit, peak RSS ${result.peakRssMb.toFixed(0)} MB`)];
  },
};
