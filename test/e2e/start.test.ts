/**
 * `npm start` as a user runs it: the package's start script (`node bin/rebill.js
 * run --config config/rebill.yaml`) in a fresh working directory holding a copy
 * of the shipped config/rebill.yaml, so its relative `sqlite:./data/rebill.db`
 * lands there. The example daemon must come up, collect the example seed
 * subscriptions, and stop cleanly on SIGTERM.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { READY } from './support/daemon.js';
import { bin, exitWithin, killAll, logLines, requireBuild, root, spawnRebill, tempDir, waitFor } from './support/processes.js';

beforeAll(requireBuild);
afterEach(killAll);

// archive-yearly has maxCycles 3 (2025-02-28, 2026-02-28, 2027-02-28, Tokyo): from 2028-02-28 on it has ended, with nothing to collect.
const ARCHIVE_LIVE = Date.now() < Date.parse('2028-02-28T00:00:00+09:00');
const SEEDS = ['demo-gold-1', 'demo-team-1', ...(ARCHIVE_LIVE ? ['demo-archive-1'] : []), 'demo-gold-2'];

describe('npm start (the example config)', () => {
  it('starts, logs "rebill ready", visibly collects the example seed subscriptions, and exits 0 on SIGTERM', async () => {
    const script = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
    const match = /^node bin\/rebill\.js (.+)$/.exec(script);
    expect(match, `npm start is "${script}"`).not.toBeNull();
    const args = match![1]!.split(/\s+/);
    expect(args).toEqual(['run', '--config', 'config/rebill.yaml']);

    const dir = tempDir('start');
    try {
      fs.mkdirSync(path.join(dir, 'config'));
      fs.copyFileSync(path.join(root, 'config/rebill.yaml'), path.join(dir, 'config/rebill.yaml'));
      expect(bin).toBe(path.join(root, 'bin/rebill.js'));
      // The shipped port is 8080; a free one here, so parallel runs never collide (the host stays the config's loopback).
      const daemon = spawnRebill(args, { cwd: dir, logFile: path.join(dir, 'rebill.log'), env: { REBILL_HTTP_PORT: '0' } });
      const ready = await daemon.waitForStdout(READY, 30_000);
      expect(ready).toBeTruthy();
      const readyLine = logLines(daemon.stdout()).find((l) => l.msg === 'rebill ready')!;
      expect(readyLine).toMatchObject({ config: 'config/rebill.yaml', database: 'sqlite:./data/rebill.db', seeded: 4 });
      // Loopback out of the box: the example's fallback admin token is public knowledge.
      expect(readyLine.http).toMatch(/^127\.0\.0\.1:\d+$/);
      const health = await fetch(`http://${String(readyLine.http)}/healthz`);
      expect({ status: health.status, body: await health.json() }).toEqual({ status: 200, body: { status: 'pass' } });

      // Every example start date is in the past, so each seed's current cycle is collected right away.
      const outcomes = await waitFor(
        () => {
          const byId = new Map<string, Record<string, unknown>>();
          for (const line of logLines(daemon.stdout())) {
            if (typeof line.subscriptionId === 'string' && typeof line.outcome === 'string' && !byId.has(line.subscriptionId)) byId.set(line.subscriptionId, line);
          }
          return SEEDS.every((id) => byId.has(id)) ? byId : undefined;
        },
        { timeoutMs: 30_000, describe: () => `log so far:\n${daemon.stdout()}` },
      );
      for (const id of SEEDS) console.log(`e2e start: ${id}: ${outcomes.get(id)!.msg} (${String(outcomes.get(id)!.outcome)})`);
      expect(outcomes.get('demo-gold-1')).toMatchObject({ outcome: 'captured', state: 'captured' });
      expect(outcomes.get('demo-gold-2')).toMatchObject({ outcome: 'captured', state: 'captured' });
      // tok_flaky_1: the first attempt of each cycle declines softly, and the retry is scheduled.
      expect(outcomes.get('demo-team-1')).toMatchObject({ outcome: 'declined', state: 'rejected', next: 'collect' });
      if (ARCHIVE_LIVE) expect(outcomes.get('demo-archive-1')).toMatchObject({ outcome: 'declined', state: 'rejected' });

      daemon.kill('SIGTERM');
      const exit = await exitWithin(daemon, 30_000);
      expect({ code: exit.code, signal: exit.signal }, daemon.stderr()).toEqual({ code: 0, signal: null });
      expect(logLines(daemon.stdout()).at(-1)).toMatchObject({ msg: 'stopped cleanly', drained: true });
      // The relative database path resolved against the working directory, not the package.
      expect(fs.existsSync(path.join(dir, 'data/rebill.db'))).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
