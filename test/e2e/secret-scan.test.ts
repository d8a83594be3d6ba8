/**
 * The secret scan that every e2e test file runs after its tests
 * (test/support/secret-scan.ts) does find a secret a rebill process printed:
 * `preview` echoes a bad --start value, here a watched one.
 */
import { describe, expect, it } from 'vitest';
import { clearSecretLeaks, secretLeaks, spawnRebill, watchSecret } from './support/processes.js';

describe('secret scan of rebill output', () => {
  it('records a watched secret that a child printed, naming the process but not the value', async () => {
    const secret = 'sk_live_not_a_date_123';
    watchSecret(secret);
    const child = spawnRebill(['preview', '--start', secret, '--every', 'MONTH']);
    const exit = await child.exited;
    expect(exit.code).toBe(2);
    expect(child.stderr()).toContain(secret);
    const leaks = secretLeaks();
    expect(leaks).toHaveLength(1);
    expect(leaks[0]).toMatch(/^rebill preview \(pid \d+\) printed a watched secret \(sk_…\)$/);
    expect(leaks[0]).not.toContain(secret);
    clearSecretLeaks();
  });
});
