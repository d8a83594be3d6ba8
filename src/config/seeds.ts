/**
 * The config's seed subscriptions as `rebill run` holds them from loading
 * until seeding is done: validated, as JSON text a slice at a time.
 *
 * As objects (about 550 bytes a seed with every default filled in), 100,000
 * seeds were most of the daemon's live heap, and V8 lets the heap grow to
 * about four times what its last full GC found alive before it runs the next
 * one: the garbage that seeding promotes filled that room (seed-100k-memory,
 * bench/RESULTS.md). As JSON rows of their values they take about 85 bytes
 * a seed (objects' JSON: 220), kept in Buffers, outside the V8 heap, so that
 * they do not count towards that growth; iterating parses one slice at a time.
 */
import { seedSubscriptionSchema, type SeedSubscription } from './schema.js';

/** A validated seed's fields in the schema's order: each one is there (the schema's defaults fill those not written). */
const FIELDS = Object.keys(seedSubscriptionSchema.shape) as ReadonlyArray<keyof SeedSubscription>;

/** Seeds per slice of text when a validated list is turned into a SeedList. */
const SLICE_SEEDS = 500;

export class SeedList implements Iterable<SeedSubscription> {
  /** `slices`: each made by SeedList.slice, in order; `length` seeds in all. */
  constructor(
    private readonly slices: readonly Buffer[],
    readonly length: number,
  ) {}

  /** A list that is already in memory (a small config, read as one document). */
  static of(seeds: readonly SeedSubscription[]): SeedList {
    const slices: Buffer[] = [];
    for (let start = 0; start < seeds.length; start += SLICE_SEEDS) slices.push(SeedList.slice(seeds.slice(start, start + SLICE_SEEDS)));
    return new SeedList(slices, seeds.length);
  }

  /** One slice of validated seeds as the constructor takes it: a row of values per seed, FIELDS' names left out. */
  static slice(seeds: readonly SeedSubscription[]): Buffer {
    return Buffer.from(JSON.stringify(seeds.map((seed) => FIELDS.map((field) => seed[field]))), 'utf8');
  }

  *[Symbol.iterator](): Iterator<SeedSubscription> {
    for (const slice of this.slices) {
      for (const row of JSON.parse(slice.toString('utf8')) as unknown[][]) yield Object.fromEntries(FIELDS.map((field, i) => [field, row[i]])) as SeedSubscription;
    }
  }
}
