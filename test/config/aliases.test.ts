/**
 * Issue 7, item 12: a "billion laughs" file (nine levels of nine aliases)
 * ran check-config past 60 s and 4 GB, because the loader walks the YAML
 * node tree itself and expanded every alias. The walk now applies the yaml
 * library's own alias limit (maxAliasCount, 100, counted as its toJS counts
 * it), so the file is refused with a located problem before any expansion.
 */
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/index.js';
import { problemsOf } from '../support/problems.js';


/** `levels` anchors, each a list of nine aliases of the one before: 9^levels strings when expanded. */
function bomb(levels: number): string {
  const lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
  for (let i = 1; i <= levels; i++) lines.push(`l${i}: &l${i} [${Array.from({ length: 9 }, () => `*l${i - 1}`).join(', ')}]`);
  lines.push(`plans: *l${levels}`, '');
  return lines.join('\n');
}

describe('YAML aliases', () => {
  it('refuses a nine-level alias bomb with one problem at the alias that crosses the limit', () => {
    const problems = problemsOf(() => parseConfig(bomb(9), 'bomb.yaml', {}));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'bomb.yaml', path: '' });
    expect(problems[0]!.line).toBeGreaterThan(1);
    expect(problems[0]!.message).toMatch(/^YAML aliases: \*l\d would expand the document beyond 100 aliased nodes/);
  });

  it('refuses an alias inside the node it names, which would expand forever', () => {
    const problems = problemsOf(() => parseConfig('x: &x [*x, *x]\nplans: []\n', 'self.yaml', {}));
    expect(problems).toEqual([{ file: 'self.yaml', line: 1, column: 8, path: '', message: 'YAML aliases: *x refers to the node that contains it' }]);
  });

  it('still expands ordinary aliases: shared plan fields, used a few times', () => {
    const text = [
      'gateways: { sim: { type: simulator } }',
      'plans:',
      '  - &base { id: a, amount: "1", currency: USD, every: MONTH, timezone: Europe/Berlin }',
      '  - { id: b, amount: "2", currency: USD, every: &weekly WEEK, timezone: Europe/Berlin }',
      '  - { id: c, amount: "3", currency: USD, every: *weekly, timezone: Europe/Berlin }',
      'subscriptions:',
      '  - &sub { id: s1, planId: a, paymentToken: tok_ok, startDate: "2025-01-01" }',
      ...Array.from({ length: 20 }, (_, i) => `  - { id: s${i + 2}, planId: a, paymentToken: tok_ok, startDate: "2025-01-01", metadata: { from: *weekly } }`),
      '',
    ].join('\n');
    const config = parseConfig(text, 'ok.yaml', {});
    expect(config.plans.map((p) => p.every)).toEqual([
      { unit: 'month', count: 1 },
      { unit: 'week', count: 1 },
      { unit: 'week', count: 1 },
    ]);
    expect(config.subscriptions).toHaveLength(21);
    expect([...config.subscriptions][20]!.metadata).toEqual({ from: 'WEEK' });
  });

  it('counts like yaml: a file is refused exactly when yaml.parse (toJS) refuses it', () => {
    const shapes = [
      (n: number) => [`x: [${Array.from({ length: n }, () => '*m').join(', ')}]`],
      (n: number) => ['y: &n [*m, *m]', `x: [${Array.from({ length: n }, () => '*n').join(', ')}]`],
      (n: number) => ['y: &n [*m, *m, *m]', 'z: &o [*n, *n, *n]', `x: [${Array.from({ length: n }, () => '*o').join(', ')}]`],
    ];
    for (const shape of shapes) {
      for (let n = 1; n <= 110; n++) {
        const text = ['gateways: { sim: { type: simulator } }', 'plans: [{ id: a, amount: "1", currency: USD, every: &m MONTH }]', ...shape(n), ''].join('\n');
        let yamlRefuses = false;
        try {
          parseYaml(text);
        } catch (err) {
          yamlRefuses = /Excessive alias count/.test((err as Error).message);
        }
        // The extra top-level keys are unknown either way; what matters is whether the aliases were refused.
        const refused = problemsOf(() => parseConfig(text, 'a.yaml', {})).some((p) => p.message.startsWith('YAML aliases:'));
        expect(refused, `${shape(n).join(' / ').slice(0, 60)}... with ${n} aliases`).toBe(yamlRefuses);
      }
    }
  });
});
