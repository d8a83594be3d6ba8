/**
 * The hooks a daemon e2e file shares: it needs dist/, SIGKILLs any child a
 * test left running, and removes its temp directories after the last test,
 * unless a test failed: then it keeps the evidence and says where.
 */
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { killAll, requireBuild, tempDir } from './processes.js';

/**
 * Registers the hooks for the calling file; `label` names it in the "kept" line.
 * Returns `newDir(name)`, a fresh temp directory that the hooks clean up.
 */
export function e2eSuite(label: string): (name: string) => string {
  const dirs: string[] = [];
  let failed = false;

  beforeAll(requireBuild);

  afterEach(async (ctx) => {
    await killAll();
    if (ctx.task.result?.state === 'fail') failed = true;
  });

  afterAll(() => {
    // Keep the evidence (database, ledger, logs) when something failed.
    if (failed) console.log(`e2e ${label}: kept ${dirs.join(', ')}`);
    else for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  return (name) => {
    const dir = tempDir(name);
    dirs.push(dir);
    return dir;
  };
}
