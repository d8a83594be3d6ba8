/**
 * Generated ids are UUIDv7 (store/ids.ts): the instant given, then random
 * bits, so ids of later creates sort after earlier ones (new keys go to the
 * right edge of the primary-key B-tree).
 */
import { describe, expect, it } from 'vitest';
import { newId } from '../../src/store/index.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('newId', () => {
  it('is the prefix and a UUIDv7 whose first 48 bits are the instant given', () => {
    const now = Date.parse('2025-06-15T08:00:00.123Z');
    const id = newId('sub_', now);
    expect(id.startsWith('sub_')).toBe(true);
    const uuid = id.slice('sub_'.length);
    expect(uuid).toMatch(UUID_V7);
    expect(parseInt(uuid.slice(0, 8) + uuid.slice(9, 13), 16)).toBe(now);
  });

  it('ids of later instants sort after earlier ones, and ids of one instant differ', () => {
    const base = Date.parse('2025-06-15T08:00:00Z');
    const ids = [0, 1, 2, 1_000, 86_400_000].map((ms) => newId('cus_', base + ms));
    expect([...ids].sort()).toEqual(ids);
    const same = new Set(Array.from({ length: 1_000 }, () => newId('cus_', base)));
    expect(same.size).toBe(1_000);
  });
});
