/**
 * The config's seeds as `rebill run` holds them (SeedList): rows of values in
 * Buffers, read back a slice at a time as the validated objects they were.
 */
import { describe, expect, it } from 'vitest';
import { seedSubscriptionSchema, type SeedSubscription } from '../../src/config/schema.js';
import { SeedList } from '../../src/config/seeds.js';

describe('SeedList', () => {
  it('gives back the validated seeds, in order, over several slices', () => {
    const seeds: SeedSubscription[] = Array.from({ length: 1234 }, (_, k) =>
      seedSubscriptionSchema.parse(
        k % 2 === 0
          ? { id: `s${k}`, planId: 'gold', startDate: '2099-01-01' }
          : {
              id: `s${k}`,
              planId: 'gold',
              paymentToken: 'tok_ok',
              startDate: '2099-01-01',
              endDate: '2100-01-01',
              sendOnHour: 0,
              timezone: 'Europe/Berlin',
              externalId: `ext-${k}`,
              source: 'crm',
              customer: { email: `u${k}@example.com`, firstName: 'Zoë' },
              metadata: { a: '1', 'b c': '"quoted"' },
            },
      ),
    );
    const list = SeedList.of(seeds);
    expect(list.length).toBe(1234);
    expect([...list]).toEqual(seeds);
    // Each read parses the text again: the caller's objects are its own.
    expect([...list][0]).not.toBe([...list][0]);
  });
});
