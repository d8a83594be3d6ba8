/**
 * `rebill simulate` (SPEC section 10): runSimulation drives the real engine on
 * a VirtualClock. These tests read its timeline the way the CLI prints it
 * (eventJson), so they check the same output a user sees.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadScenario, parseScenario } from '../../src/config/index.js';
import { eventJson, runSimulation } from '../../src/engine/simulate.js';

// A copy of the shared conformance scenario, so the test needs nothing outside the repository.
const CONFORMANCE = fileURLToPath(new URL('../fixtures/conformance/scenario.yaml', import.meta.url));

type Line = { at: string; type: string; subscriptionId: string; cycle?: number; attempt?: number; amount?: string; currency?: string; [k: string]: unknown };

async function timeline(scenarioText: string): Promise<Line[]> {
  const result = await runSimulation(parseScenario(scenarioText, 'scenario.yaml', {}));
  return result.events.map((e) => eventJson(e) as Line);
}

const of = (lines: Line[], id: string, type?: string) => lines.filter((l) => l.subscriptionId === id && (type === undefined || l.type === type));

describe('runSimulation', () => {
  it('streams the timeline in batches sorted by at, each final when handed over, together the same as sorting everything at the end', async () => {
    const batches: Line[][] = [];
    const result = await runSimulation(loadScenario(CONFORMANCE, {}), { onEvents: (events) => void batches.push(events.map((e) => eventJson(e) as Line)) });
    expect(batches.length).toBeGreaterThan(1);
    const streamed = batches.flat();
    const sorted = result.events.map((e) => eventJson(e) as Line).sort((a, b) => a.at.localeCompare(b.at));
    expect(streamed).toEqual(sorted);
  });

  it('stops after the step in which `stopped` turns true', async () => {
    let seen = 0;
    const result = await runSimulation(loadScenario(CONFORMANCE, {}), { onEvents: (events) => void (seen += events.length), stopped: () => seen > 0 });
    expect(result.steps).toBe(1);
    expect(seen).toBe(result.events.length);
  });

  it('reproduces the conformance timeline: w1 weekly JPY, m1 failing with P2D/P5D retries, m2 finishing after maxCycles 2', async () => {
    const result = await runSimulation(loadScenario(CONFORMANCE, {}));
    const lines = result.events.map((e) => eventJson(e) as Line);
    // Sorted by `at`, as the CLI prints them.
    expect(lines.map((l) => l.at)).toEqual([...lines.map((l) => l.at)].sort());

    const w1 = of(lines, 'w1', 'charge.succeeded');
    expect(w1.map((l) => l.at)).toEqual([
      '2025-01-06T00:00:00Z',
      '2025-01-13T00:00:00Z',
      '2025-01-20T00:00:00Z',
      '2025-01-27T00:00:00Z',
      '2025-02-03T00:00:00Z',
      '2025-02-10T00:00:00Z',
      '2025-02-17T00:00:00Z',
      '2025-02-24T00:00:00Z',
    ]);
    expect(w1.every((l) => l.amount === '500' && l.currency === 'JPY' && l.attempt === 1)).toBe(true);
    expect(w1.map((l) => l.cycle)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    const m1 = of(lines, 'm1').filter((l) => l.type !== 'subscription.created');
    expect(m1.map((l) => [l.at, l.type, l.attempt ?? null])).toEqual([
      ['2024-12-31T00:00:00Z', 'charge.failed', 1],
      ['2025-01-02T00:00:00Z', 'charge.failed', 2],
      ['2025-01-07T00:00:00Z', 'charge.failed', 3],
      ['2025-01-07T00:00:00Z', 'subscription.payment_failed', 3],
      ['2025-01-07T00:00:00Z', 'subscription.cancelled', null],
    ]);
    expect(m1[0]).toMatchObject({ amount: '4.99', currency: 'USD', declineCode: 'insufficient_funds', willRetry: true, nextAttemptAt: '2025-01-02T00:00:00Z' });
    expect(m1[2]).toMatchObject({ willRetry: false, nextAttemptAt: null });
    expect(m1[4]).toMatchObject({ terminationType: 'paymentCancel' });

    const m2 = of(lines, 'm2').filter((l) => l.type !== 'subscription.created');
    expect(m2.map((l) => [l.at, l.type])).toEqual([
      ['2024-12-31T00:00:00Z', 'charge.succeeded'],
      ['2025-01-31T00:00:00Z', 'charge.succeeded'],
      // The last paid period (Jan 31 .. Feb 28, clamped) runs out, then the subscription finishes.
      ['2025-02-28T00:00:00Z', 'subscription.finished'],
    ]);
    expect(m2[0]).toMatchObject({ amount: '4.99', currency: 'USD', cycle: 1 });
  });

  it('1,000 subscriptions x 1 year of monthly billing: exactly 12,000 captures, each cycle once', async () => {
    const subscriptions = Array.from({ length: 1000 }, (_, i) => {
      // Start dates spread over every day of January, month ends included (Jan 29..31 clamp in short months).
      const day = String(1 + (i % 31)).padStart(2, '0');
      return `  - { id: s${String(i).padStart(4, '0')}, planId: monthly, paymentToken: tok_ok, startDate: "2025-01-${day}" }`;
    });
    const text = [
      'start: "2025-01-01T00:00:00Z"',
      'until: "2025-12-31T23:59:59Z"',
      'gateways: { sim: { type: simulator } }',
      'plans:',
      '  - { id: monthly, amount: "9.99", currency: USD, every: MONTH, sendOnHour: 10, gateway: sim }',
      'subscriptions:',
      ...subscriptions,
    ].join('\n');

    const started = performance.now();
    const result = await runSimulation(parseScenario(text, 'year.yaml', {}));
    const elapsed = performance.now() - started;
    const captures = result.events.filter((e) => e.type === 'charge.succeeded');
    console.log(`simulate: 1,000 subscriptions x 1 year -> ${captures.length} captures in ${(elapsed / 1000).toFixed(2)} s (${result.steps} clock steps)`);

    expect(captures).toHaveLength(12_000);
    const perSubscription = new Map<string, number[]>();
    for (const e of captures) perSubscription.set(e.subscriptionId!, [...(perSubscription.get(e.subscriptionId!) ?? []), e.cycle!]);
    expect(perSubscription.size).toBe(1000);
    expect([...perSubscription.values()].every((cycles) => cycles.join() === '1,2,3,4,5,6,7,8,9,10,11,12')).toBe(true);
    expect(result.events.filter((e) => e.type === 'charge.failed')).toHaveLength(0);
    // The Jan 31 starters are charged on the clamped month ends and return to the 31st.
    const jan31 = captures.filter((e) => e.subscriptionId === 's0030').map((e) => eventJson(e).at);
    expect(jan31.slice(0, 4)).toEqual(['2025-01-31T10:00:00Z', '2025-02-28T10:00:00Z', '2025-03-31T10:00:00Z', '2025-04-30T10:00:00Z']);
  });

  it('scenario actions pause, resume and cancel take effect at their instants', async () => {
    const lines = await timeline(
      [
        'start: "2025-01-01T00:00:00Z"',
        'until: "2025-07-01T00:00:00Z"',
        'gateways: { sim: { type: simulator } }',
        'plans:',
        '  - { id: monthly, amount: "10", currency: EUR, every: MONTH, gateway: sim }',
        'subscriptions:',
        '  - { id: paused, planId: monthly, paymentToken: tok_ok, startDate: "2025-01-10" }',
        '  - { id: autoresume, planId: monthly, paymentToken: tok_ok, startDate: "2025-01-10" }',
        '  - { id: periodend, planId: monthly, paymentToken: tok_ok, startDate: "2025-01-10" }',
        '  - { id: cancelled, planId: monthly, paymentToken: tok_ok, startDate: "2025-01-10" }',
        'actions:',
        '  - { at: "2025-02-01T00:00:00Z", subscriptionId: paused, do: pause }',
        '  - { at: "2025-04-20T12:00:00Z", subscriptionId: paused, do: resume }',
        '  - { at: "2025-02-01T00:00:00Z", subscriptionId: autoresume, do: pause, resumeDate: "2025-03-05" }',
        '  - { at: "2025-02-15T00:00:00Z", subscriptionId: periodend, do: cancel, atPeriodEnd: true }',
        '  - { at: "2025-02-15T00:00:00Z", subscriptionId: cancelled, do: cancel }',
      ].join('\n'),
    );
    const flow = (id: string) => of(lines, id).map((l) => `${l.at.slice(0, 10)} ${l.type}${l.cycle ? ` #${l.cycle}` : ''}`);

    // Paused Feb 1 .. Apr 20: no charge in between; the next cycle is the first one due after the resume (May 10).
    expect(flow('paused')).toEqual([
      '2025-01-01 subscription.created',
      '2025-01-10 charge.succeeded #1',
      '2025-02-01 subscription.paused',
      '2025-04-20 subscription.resumed',
      '2025-04-20 cycle.skipped #2',
      '2025-04-20 cycle.skipped #3',
      '2025-04-20 cycle.skipped #4',
      '2025-05-10 charge.succeeded #5',
      '2025-06-10 charge.succeeded #6',
    ]);
    // resumeDate resumes by itself at the start of that local date.
    expect(flow('autoresume')).toEqual([
      '2025-01-01 subscription.created',
      '2025-01-10 charge.succeeded #1',
      '2025-02-01 subscription.paused',
      '2025-03-05 subscription.resumed',
      '2025-03-05 cycle.skipped #2',
      '2025-03-10 charge.succeeded #3',
      '2025-04-10 charge.succeeded #4',
      '2025-05-10 charge.succeeded #5',
      '2025-06-10 charge.succeeded #6',
    ]);
    expect(of(lines, 'autoresume', 'subscription.resumed')[0]!.at).toBe('2025-03-05T00:00:00Z');
    // Cancelled at period end on Feb 15: the Feb 10 period is the last one; terminated when it ends (Mar 10).
    expect(flow('periodend')).toEqual([
      '2025-01-01 subscription.created',
      '2025-01-10 charge.succeeded #1',
      '2025-02-10 charge.succeeded #2',
      '2025-02-15 subscription.cancelled',
      '2025-03-10 subscription.cancelled',
    ]);
    expect(of(lines, 'periodend', 'subscription.cancelled').map((l) => [l.at, l.terminationType, l.atPeriodEnd])).toEqual([
      ['2025-02-15T00:00:00Z', 'userCancel', true],
      ['2025-03-10T00:00:00Z', 'userCancel', true],
    ]);
    // Cancelled immediately on Feb 15: nothing after.
    expect(flow('cancelled')).toEqual([
      '2025-01-01 subscription.created',
      '2025-01-10 charge.succeeded #1',
      '2025-02-10 charge.succeeded #2',
      '2025-02-15 subscription.cancelled',
    ]);
  });
});
