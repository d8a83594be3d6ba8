/**
 * Disk full while seeding (issue 7 item 9): `rebill run` on a real, small
 * tmpfs. SQLite fails with SQLITE_FULL and rolls back by itself; the daemon
 * must report that, not "cannot rollback - no transaction is active".
 * Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is skipped, and
 * test/store/open.test.ts covers the same path with PRAGMA max_page_count.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitWithin, logLines, spawnRebill, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('disk-full');

/** Whether a tmpfs can be mounted here (root in a privileged sandbox); tried once on a scratch directory. */
function canMountTmpfs(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = path.join(newDir('probe'), 'mnt');
  mkdirSync(probe);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' }).status === 0;
  if (mounted) execFileSync('umount', [probe]);
  rmdirSync(probe);
  return mounted;
}

describe('disk full', () => {
  const mountable = canMountTmpfs();
  it.skipIf(!mountable)('seeding on a full disk exits 1 naming SQLITE_FULL, never the rollback error (real tmpfs)', async () => {
    const dir = newDir('tmpfs');
    const mnt = path.join(dir, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
    try {
      const seeds = Array.from({ length: 5000 }, (_, i) => ({ id: `seed-${i}`, planId: 'p', paymentToken: 'tok_ok', startDate: '2099-01-01' }));
      const config = writeConfig(path.join(dir, 'rebill.yaml'), {
        database: { url: `sqlite:${path.join(mnt, 'rebill.db')}` },
        scheduler: { sweep: '0 0 1 1 *' },
        gateways: { gw: { type: 'simulator' } },
        plans: [{ id: 'p', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'gw' }],
        subscriptions: seeds,
      });
      const daemon = spawnRebill(['run', '--config', config]);
      const exit = await exitWithin(daemon, 60_000);
      expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 1, signal: null });
      const output = daemon.stdout() + daemon.stderr();
      expect(output).not.toMatch(/cannot rollback/);
      const fatal = logLines(daemon.stdout()).find((l) => l.msg === 'rebill failed') as { err?: { message?: string; code?: string } } | undefined;
      expect(fatal?.err, output).toMatchObject({ code: 'SQLITE_FULL' });
      expect(fatal!.err!.message).toMatch(/database or disk is full/);
    } finally {
      execFileSync('umount', [mnt]);
    }
  }, 90_000);
});
