/**
 * The compiled CLI as users run it: `node bin/rebill.js ...` in a child
 * process. bin/ runs dist/, so these need `npm run build` first (`npm test`
 * builds before it runs the suite).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const bin = path.join(root, 'bin/rebill.js');

/** Fails early, with the fix, when the CLI has not been compiled. */
export function requireBuild(): void {
  if (!existsSync(path.join(root, 'dist/src/cli/index.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
}

/** Our environment without REBILL_* variables, which would otherwise override the child's settings. */
export function withoutRebillEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REBILL_')) env[name] = value;
  return env;
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Extra variables for the child, applied last. */
  env?: Record<string, string>;
  /** The child's working directory; the repository root unless given. */
  cwd?: string;
  /** Drop the caller's REBILL_* variables (see withoutRebillEnv). Off unless asked for. */
  cleanRebillEnv?: boolean;
}

/**
 * Runs `node bin/rebill.js ...args` to completion and collects its exit code and output.
 * The child's zone and locale are pinned (TZ=UTC, C.UTF-8) so text output does not depend
 * on the machine, and NODE_OPTIONS is cleared so the test runner's flags do not leak in.
 */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  const base = options.cleanRebillEnv ? withoutRebillEnv() : process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? root,
      env: { ...base, TZ: 'UTC', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', NODE_OPTIONS: '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
