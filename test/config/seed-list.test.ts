/**
 * Issue 7, item 18 (seeds at scale): a large `subscriptions:` list is read
 * item by item instead of as one yaml document (13 s and ~1 GB for 100,000
 * seeds). Reading it that way must change nothing: the same values, the same
 * problems at the same file:line:column, the same positions for every key
 * path. The reference is the whole-document reading.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, formatProblems, parseConfig, type PathSegment } from '../../src/config/index.js';
import { isAmountPath } from '../../src/config/schema.js';
import { readYamlSource, type SourceTree } from '../../src/config/source.js';

/** Seed items in many spellings: one-line flow maps (read directly), and everything the yaml library must read. */
const ITEMS: ReadonlyArray<(k: number, i: string) => string> = [
  (k, i) => `${i}- { id: s${k}, planId: gold, paymentToken: tok_ok, startDate: "2099-01-01", customer: { email: "u${k}@example.com" } }`,
  (k, i) => `${i}- { id: s${k}, planId: gold, paymentToken: 'tok_ok', startDate: '2099-01-01', sendOnHour: 9 }  # a comment`,
  (k, i) => `${i}- {id: s${k},planId: gold , paymentToken: tok_ok, startDate: "2099-01-01", metadata: { a: "1", b: 2 }, customer: {} }`,
  (k, i) => `${i}- id: s${k}\n${i}  planId: gold\n${i}  paymentToken: tok_ok\n${i}  startDate: "2099-01-01"`,
  (k, i) => `${i}- id: s${k}\n${i}  planId: gold\n${i}  customer:\n${i}    email: not-an-email\n${i}  startDate: 2099-01-01`,
  (k, i) => `${i}- { id: s${k}, planId: nope, paymentToken: tok_ok, startDate: "2099-02-30", endDate: "1999-01-01" }`,
  (k, i) => `${i}- { id: s${k}, planId: gold, paymentTokn: tok_ok, startDate: "2099-01-01" }`,
  (k, i) => `${i}- { id: s${k}, id: x${k}, planId: gold, paymentToken: tok_ok, startDate: "2099-01-01" }`,
  (k, i) => `${i}- { __proto__: x, id: s${k}, planId: gold, paymentToken: tok_ok, startDate: "2099-01-01" }`,
  (k, i) => `${i}- { id: s${k}, planId: gold, paymentToken: 12345, startDate: 20990101, sendOnHour: 0x10 }`,
  (k, i) => `${i}- { id: s${k}, planId: gold, paymentToken: null, startDate: "2099-01-01", endDate: true, sendOnHour: 012 }`,
  (k, i) => `${i}- { id: "s\\u0041${k}", planId: gold, paymentToken: "tok\\"ok", startDate: '2099-01-0''1' }`,
  (k, i) => `${i}- { id: s${k}, planId: gold, paymentToken: "\${SEED_TOKEN}", startDate: "\${SEED_UNSET}" }`,
  (k, i) => `${i}- { id: s${k}, planId: gold, amount: 9.990, source: 10, externalId: True }`,
  (k, i) => `${i}- { id: s${k}, planId: gold plan, paymentToken: tok_ok }`,
  (k, i) => `${i}- { id: s${k}, planId: gold, }`,
  (k, i) => `${i}- { id:s${k}, planId: gold }`,
  (k, i) => `${i}- { id: s${k}, planId: gold }#no-space`,
  (k, i) => `${i}- { id: s${k}, planId: gold, startDate: "2099-01-01" } # {`,
  (_, i) => `${i}-`,
  (k, i) => `${i}- just-a-string-${k}`,
  (_, i) => `${i}- [ a, b ]`,
  (k, i) => `${i}- { id: s${k}, metadata: { ${Array.from({ length: 3 }, (_, n) => `k${n}: "v"`).join(', ')} }, planId: gold }\n\n${i}  # trailing comment`,
  (k, i) => `${i}-   id: s${k}\n${i}    planId: gold  # the plan\n${i}    customer: { email: "u${k}@example.com" }\n${i}    metadata:   # none\n${i}      a: "1"\n${i}      b:\n${i}        c: 2\n${i}    sendOnHour: 7`,
  (k, i) => `${i}- id: s${k}\n${i}  planId: gold\n${i}    more text\n${i}  paymentToken: tok_ok`,
  (k, i) => `${i}- id: s${k}\n${i}  planId:\n${i}  paymentToken: tok_ok`,
  (k, i) => `${i}- id: s${k}\n${i}  planId: gold\n${i}  # inside\n${i}  paymentToken: 'tok'\n\n${i}  startDate: "2099-01-01"`,
  (k, i) => `${i}- id: s${k}\n${i}  planId: gold\n${i}  metadata:\n${i}   a: "1"\n${i}  customer:\n${i}      email: "e@example.com"\n${i}     phone: "1"`,
  (k, i) => `${i}- id: s${k}\n${i}  planId: gold, silver\n${i}  customer: { email: x }, y\n${i}  endDate: "2099-01-01" z`,
  (k, i) => `${i}- id: s${k}\n${i}  id: t${k}\n${i}  __proto__: 1\n${i}  planId: "\${SEED_UNSET}"\n${i}  tags:\n${i}    - a`,
  (k, i) => `${i}- id: s${k}\n${i}  Null: y\n${i}  planId: gold\n${i}  False: n`,
  (k, i) => `${i}- id: s${k}\n${i}  planId: gold\n${i}  metadata:\n${i}    a: |\n${i}      text\n${i}  true: x\n${i}  Null: y\n${i}  paymentToken:tok`,
];

/** Rare items that make the file invalid YAML: the whole-document reading reports them. */
const BROKEN: ReadonlyArray<(k: number, i: string) => string> = [
  (k, i) => `${i}- { id: s${k}, planId: gold`,
  (k, i) => `${i}- id: s${k}\n${i} planId: gold`,
  (k, i) => `${i}- { id: s${k}, planId: "gold }`,
];

const HEAD = 'gateways: { sim: { type: simulator } }\nplans:\n  - { id: gold, amount: "9.99", currency: USD, every: MONTH }\n';

function read(text: string, wholeDocument: boolean): SourceTree {
  const env = { SEED_TOKEN: 'tok_ok' };
  return readYamlSource(text, 'seeds.yaml', { env, baseDir: '.', referenced: new Set() }, { asWritten: isAmountPath, wholeDocument });
}

/** Every key path of a value, depth first. */
function pathsOf(value: unknown, path: PathSegment[] = []): PathSegment[][] {
  const out: PathSegment[][] = [path];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...pathsOf(v, [...path, i])));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...pathsOf(v, [...path, k]));
  return out;
}

function expectSameReading(text: string): void {
  const sliced = read(text, false);
  const whole = read(text, true);
  expect(sliced.problems).toEqual(whole.problems);
  expect(sliced.warnings).toEqual(whole.warnings);
  expect(sliced.value).toEqual(whole.value);
  const paths = pathsOf(whole.value);
  // Also paths that were not written: a missing key is located at its nearest written ancestor.
  for (let i = 0; i < 60; i++) paths.push(['subscriptions', i, 'planId'], ['subscriptions', i, 'customer', 'email']);
  for (const path of paths) {
    expect(sliced.has(path), JSON.stringify(path)).toBe(whole.has(path));
    expect(sliced.locate(path, 'key'), JSON.stringify(path)).toEqual(whole.locate(path, 'key'));
    expect(sliced.locate(path, 'value'), JSON.stringify(path)).toEqual(whole.locate(path, 'value'));
  }
}

const fileArb = fc.record({
  indent: fc.constantFrom('', '  ', '    '),
  items: fc.array(fc.record({ kind: fc.nat({ max: ITEMS.length - 1 }), gap: fc.constantFrom('', '', '', '\n', '\n# between\n', '\n  # indented comment\n') }), { minLength: 1, maxLength: 40 }),
  broken: fc.option(fc.record({ at: fc.nat({ max: 39 }), kind: fc.nat({ max: BROKEN.length - 1 }) }), { freq: 8 }),
  keyComment: fc.constantFrom('', '   ', '  # the seeds'),
  tail: fc.constantFrom('', 'logging: { level: info }\n', '# done\nhttp:\n  port: 9090\n'),
});

describe('the seed list read item by item', () => {
  it('gives the same values, problems and positions as reading the whole document (fast-check)', () => {
    fc.assert(
      fc.property(fileArb, ({ indent, items, broken, keyComment, tail }) => {
        const lines = items.map(({ kind, gap }, k) => {
          const item = broken && broken.at === k ? BROKEN[broken.kind]!(k, indent) : ITEMS[kind]!(k, indent);
          return `${item}\n${gap}`;
        });
        expectSameReading(`${HEAD}subscriptions:${keyComment}\n${lines.join('')}${tail}`);
      }),
      { numRuns: 300, seed: 20261201 },
    );
  });

  it('keeps the whole-document reading for files it cannot split safely', () => {
    const seed = '  - { id: a, planId: gold, paymentToken: tok_ok, startDate: "2099-01-01" }\n';
    for (const text of [
      `${HEAD}subscriptions:\n${seed}subscriptions:\n${seed}`,
      `${HEAD}subscriptions: []\n`,
      `${HEAD}subscriptions:\n  [ { id: a } ]\n`,
      `${HEAD}x: &c { email: "a@example.com" }\nsubscriptions:\n  - { id: a, planId: gold, customer: *c }\n`,
      `${HEAD}subscriptions:\n\t- { id: a }\n`,
      `---\n${HEAD}subscriptions:\n${seed}---\nsubscriptions:\n${seed}`,
      `note: "multi\nsubscriptions:\n${seed}"\n`,
      `${HEAD}subscriptions:\n${seed} - { id: b }\n`,
      `${HEAD}subscriptions:\n${seed}  id: b\n`,
      `${HEAD.replace(/\n/g, '\r\n')}subscriptions:\r\n${seed}`,
    ]) {
      expectSameReading(text);
    }
  });

  it('validates a list read in slices as the whole document: the same seeds, or the same problems (fast-check)', () => {
    // Several of parseConfig's slices (500 seeds each) per file. A file with CR line ends is read as one
    // document (the reference), its lines and columns those of the file with LF.
    const outcome = (text: string): { seeds: unknown[] } | { problems: string[] } => {
      try {
        return { seeds: [...parseConfig(text, 'seeds.yaml', { SEED_TOKEN: 'tok_ok' }).subscriptions] };
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        return { problems: formatProblems(err.problems) };
      }
    };
    const valid = [0, 1, 3];
    fc.assert(
      fc.property(
        fc.record({ n: fc.integer({ min: 501, max: 1300 }), odd: fc.array(fc.record({ at: fc.nat({ max: 1300 }), kind: fc.nat({ max: ITEMS.length - 1 }) }), { maxLength: 4 }), repeat: fc.option(fc.nat({ max: 1300 })) }),
        ({ n, odd, repeat }) => {
          const items = Array.from({ length: n }, (_, k) => {
            const kind = odd.find((o) => o.at === k)?.kind ?? valid[k % valid.length]!;
            // A repeated id far from the first: the duplicate is found across slices.
            return ITEMS[kind]!(repeat !== null && k === n - 1 ? repeat % (n - 1) : k, '  ');
          });
          const text = `${HEAD}subscriptions:\n${items.join('\n')}\nlogging: { level: info }\n`;
          expect(outcome(text)).toEqual(outcome(text.replace(/\n/g, '\r\n')));
        },
      ),
      { numRuns: 15, seed: 20261207 },
    );
  });

  it('locates each problem of a large seed list at its own line', () => {
    const n = 3000;
    const lines = Array.from({ length: n }, (_, k) => {
      if (k === 1234) return `  - { id: s${k}, planId: silver, paymentToken: tok_ok, startDate: "2099-01-01" }`;
      if (k === 2345) return `  - { id: s${k}, planId: gold, paymentToken: tok_ok, startDate: "2099-02-30" }`;
      if (k === 2999) return `  - { id: s1, planId: gold, paymentToken: tok_ok, startDate: "2099-01-01", pamentToken: x }`;
      return `  - { id: s${k}, planId: gold, paymentToken: tok_ok, startDate: "2099-01-01", customer: { email: "u${k}@example.com" } }`;
    });
    const text = `${HEAD}subscriptions:\n${lines.join('\n')}\n`;
    const first = 5; // the line of seed 0
    let messages: string[] = [];
    try {
      parseConfig(text, 'big.yaml', {});
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      messages = formatProblems(err.problems);
    }
    const column = (k: number, text: string) => lines[k]!.indexOf(text) + 1;
    expect(messages).toEqual([
      `big.yaml:${first + 1234}:${column(1234, 'silver')}: subscriptions[1234].planId: unknown plan "silver"; defined: gold`,
      `big.yaml:${first + 2345}:${column(2345, '"2099-02-30"')}: subscriptions[2345].startDate: expected a date yyyy-MM-dd; got "2099-02-30"`,
      `big.yaml:${first + 2999}:${column(2999, 's1')}: subscriptions[2999].id: duplicate subscription id "s1" (also subscriptions[1])`,
      `big.yaml:${first + 2999}:${column(2999, 'pamentToken')}: subscriptions[2999].pamentToken: unknown key (did you mean paymentToken?)`,
    ]);
  });
});
