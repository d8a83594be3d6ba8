/**
 * Issue 7, item 13: `rebill preview ... | head -2` and `rebill simulate ... |
 * head -1` crashed with an EPIPE stack trace, and simulate printed nothing
 * until the whole scenario had run (62 s for a long one). Real CLI processes
 * here, read by a reader that closes the pipe early, as `head` does.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bin, requireBuild, root, withoutRebillEnv } from '../support/cli.js';
import { fileTempDir } from '../support/temp.js';

const tmp = fileTempDir('pipes');

interface EarlyClose {
  /** The lines read before the pipe was closed. */
  lines: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the CLI, reads `wanted` lines of stdout, then closes the pipe (like `head -n wanted`) and waits for the exit. */
function readThenClose(args: readonly string[], wanted: number): Promise<EarlyClose> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: root,
      env: { ...withoutRebillEnv(), TZ: 'UTC', NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    const lines: string[] = [];
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      buffered += s;
      let newline: number;
      while (lines.length < wanted && (newline = buffered.indexOf('\n')) >= 0) {
        lines.push(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
      if (lines.length >= wanted) child.stdout.destroy();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ lines, code, signal, stderr }));
  });
}

/**
 * A century of daily billing for 200 subscriptions: millions of events, far more than a
 * test could wait for if nothing were printed until the end.
 */
const century = join(tmp, 'century.yaml');

beforeAll(() => {
  requireBuild();
  writeFileSync(
    century,
    [
      'start: "2025-01-01T00:00:00Z"',
      'until: "2124-12-31T00:00:00Z"',
      'plans: [{ id: daily, amount: "1.00", currency: USD, every: DAY }]',
      'subscriptions:',
      ...Array.from({ length: 200 }, (_, i) => `  - { id: s${i}, planId: daily, paymentToken: tok_ok }`),
      '',
    ].join('\n'),
  );
});

describe('output into a pipe that closes early', () => {
  it('preview | head -2: two lines, exit 0, nothing on stderr', async () => {
    const run = await readThenClose(['preview', '--start', '2025-01-31', '--every', 'DAY', '--count', '20000'], 2);
    expect(run.lines).toEqual(['    1  2025-01-31T00:00:00Z  Fri 2025-01-31 00:00 UTC', '    2  2025-02-01T00:00:00Z  Sat 2025-02-01 00:00 UTC']);
    expect(run.stderr).toBe('');
    expect(run).toMatchObject({ code: 0, signal: null });
  }, 60_000);

  it('simulate streams its timeline: the first line of a century-long scenario arrives, then | head -1 ends it with exit 0', async () => {
    const run = await readThenClose(['simulate', '--json', century], 1);
    expect(run.lines).toHaveLength(1);
    expect(JSON.parse(run.lines[0]!)).toMatchObject({ at: '2025-01-01T00:00:00Z', type: 'subscription.created', subscriptionId: 's0' });
    expect(run.stderr).toBe('');
    expect(run).toMatchObject({ code: 0, signal: null });
  }, 120_000);

  it('simulate text output | head -3 on the same scenario: three lines, exit 0, no stack trace', async () => {
    const run = await readThenClose(['simulate', century], 3);
    expect(run.lines.map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ['2025-01-01T00:00:00Z', 'subscription.created', 's0'],
      ['2025-01-01T00:00:00Z', 'subscription.created', 's1'],
      ['2025-01-01T00:00:00Z', 'subscription.created', 's2'],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
  }, 120_000);
});
