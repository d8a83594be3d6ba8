/**
 * The bench harness's shape (never its figures: timings depend on the machine
 * and are not asserted anywhere in `npm test`). The one run here is the
 * in-process calendar scenario at --quick size.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonLine, row, atLeast, atMost, below } from '../../bench/harness.js';
import { SCENARIOS } from '../../bench/scenarios/index.js';
import { root } from '../support/cli.js';

function bench(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/run.ts'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

describe('npm run bench', () => {
  it('reports every row the issue names, each scenario once', () => {
    const names = SCENARIOS.flatMap((s) => s.rows);
    expect(new Set(names).size).toBe(names.length);
    for (const name of [
      'dispatch-zero-latency',
      'dispatch-latency-bound',
      'schedule-lag',
      'sweep-scale',
      'memory-1m',
      'seed-100k',
      'import-100k',
      'webhook-relay',
      'api-create',
      'calendar',
      'simulate-year',
      'pg-dispatch-zero-latency',
      'pg-scale-out',
      'pg-peer-graphile-worker',
    ]) {
      expect(names).toContain(name);
    }
  });

  it('rows: ratio is value / baseline, pass follows the target, no target means pass null', () => {
    expect(row('a', 2, 'x/s', 4, atLeast(0.5))).toMatchObject({ ratio: 0.5, target: '>= 0.5', pass: true });
    expect(row('b', 1300, 'ms', 1000, atMost(1))).toMatchObject({ ratio: 1.3, target: '<= 1', pass: false });
    expect(row('c', 300, 'MB', 300, below(1))).toMatchObject({ ratio: 1, target: '< 1', pass: false });
    expect(row('d', 5, 'x/s', 10, null)).toMatchObject({ ratio: 0.5, target: null, pass: null });
    const parsed = JSON.parse(jsonLine([row('a', 2, 'x/s', 4, atLeast(0.5), 'a note')])) as { scenarios: object[] };
    expect(parsed.scenarios).toEqual([{ name: 'a', value: 2, unit: 'x/s', baseline: 4, ratio: 0.5, target: '>= 0.5', pass: true }]);
  });

  it('--json --quick --only calendar prints a last line {"scenarios":[...]} with the required keys, and exits 0', async () => {
    const run = await bench(['--json', '--quick', '--only', 'calendar']);
    expect(run.code, run.stderr).toBe(0);
    const last = run.stdout.trimEnd().split('\n').at(-1)!;
    const parsed = JSON.parse(last) as { scenarios: Array<Record<string, unknown>> };
    expect(parsed.scenarios.map((s) => s.name)).toEqual(['calendar']);
    const [calendar] = parsed.scenarios;
    expect(Object.keys(calendar!).sort()).toEqual(['baseline', 'name', 'pass', 'ratio', 'target', 'unit', 'value']);
    expect(calendar).toMatchObject({ unit: 'instants/s', target: null, pass: null });
    expect(typeof calendar!.value).toBe('number');
    expect(typeof calendar!.baseline).toBe('number');
  });

  it('a PostgreSQL row whose server cannot be reached fails alone: value null, pass false, saying so; exit 1', async () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const run = await bench(['--json', '--quick', '--only', 'pg-scale-out,calendar'], { REBILL_BENCH_POSTGRES_URL: 'postgres://postgres@127.0.0.1:1/postgres' });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain('PostgreSQL is not reachable at postgres://postgres@127.0.0.1:1/postgres');
    const parsed = JSON.parse(run.stdout.trimEnd().split('\n').at(-1)!) as { scenarios: Array<Record<string, unknown>> };
    expect(parsed.scenarios.map((s) => s.name)).toEqual(['calendar', 'pg-scale-out']);
    expect(parsed.scenarios[1]).toMatchObject({ value: null, ratio: null, pass: false });
    expect(typeof parsed.scenarios[0]!.value).toBe('number');
  });

  it('refuses an unknown row name or flag with exit 2 and the usage', async () => {
    const unknown = await bench(['--only', 'no-such-row']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--only: unknown row no-such-row');
    const flag = await bench(['--fast']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('usage: npm run bench');
  });
});
