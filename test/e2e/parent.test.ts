/**
 * `npm start` and signals (issue 7 item 11): npm passes SIGTERM to the shell
 * that runs the start script, which dies without passing it on, so the daemon
 * used to keep running as an orphan. The daemon notices its parent is gone and
 * stops as on SIGTERM. Real processes: npm itself, and a plain shell parent.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bin, childEnv, logLines, waitFor, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('parent');

// Daemons and parents this file started; a failed test must not leave an orphan running.
const started = new Set<number>();
afterEach(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  started.clear();
});

const npmAvailable = spawnSync('npm', ['--version'], { stdio: 'ignore' }).status === 0;

/** A daemon config in `dir` with nothing to collect (the test is about the process, not billing). */
function idleConfig(dir: string): string {
  return writeConfig(path.join(dir, 'rebill.yaml'), {
    database: { url: `sqlite:${path.join(dir, 'rebill.db')}` },
    scheduler: { sweep: '0 0 1 1 *' },
    gateways: { gw: { type: 'simulator' } },
    plans: [{ id: 'p', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'gw' }],
  });
}

interface Parent {
  readonly process: ChildProcess;
  output(): string;
}

function spawnParent(command: string, args: string[], cwd: string): Parent {
  const proc = spawn(command, args, { cwd, env: childEnv({ npm_config_update_notifier: 'false', npm_config_fund: 'false' }), stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid !== undefined) started.add(proc.pid);
  let out = '';
  proc.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return { process: proc, output: () => out };
}

/** Whether `pid` still runs (a zombie waiting for a reaper has exited). */
function running(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (existsSync('/proc/self/stat')) {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(stat, 'utf8'));
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits for the daemon's ready line in the parent's output and returns the daemon's pid (pino logs it). */
async function daemonPid(parent: Parent): Promise<number> {
  const pid = await waitFor(() => logLines(parent.output()).find((l) => l.msg === 'rebill ready')?.pid as number | undefined, {
    timeoutMs: 30_000,
    describe: () => parent.output(),
  });
  started.add(pid);
  return pid;
}

async function expectStopsByItself(parent: Parent, pid: number): Promise<void> {
  const stop = await waitFor(() => logLines(parent.output()).find((l) => l.msg === 'stopped cleanly'), { timeoutMs: 20_000, describe: () => parent.output() });
  expect(stop).toMatchObject({ pid, drained: true });
  const why = logLines(parent.output()).find((l) => typeof l.msg === 'string' && /^parent process \d+ exited/.test(l.msg));
  expect(why, parent.output()).toMatchObject({ pid, level: 40 });
  await waitFor(() => (running(pid) ? undefined : true), { timeoutMs: 10_000, describe: () => `daemon pid ${pid} still running` });
}

describe('the daemon stops when its parent is gone', () => {
  it.skipIf(!npmAvailable)('SIGTERM to `npm start` stops the daemon too (npm passes it to sh, which does not pass it on)', async () => {
    const dir = newDir('npm');
    const config = idleConfig(dir);
    writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name: 'parent-test', version: '0.0.0', private: true, scripts: { start: `node ${JSON.stringify(bin)} run --config ${JSON.stringify(config)}` } }),
    );
    const npm = spawnParent('npm', ['start'], dir);
    const pid = await daemonPid(npm);
    npm.process.kill('SIGTERM');
    await expectStopsByItself(npm, pid);
  }, 60_000);

  it('a shell parent that is SIGKILLed (the daemon gets no signal at all)', async () => {
    const dir = newDir('sh');
    const config = idleConfig(dir);
    // `; true` keeps sh from exec'ing node, so the daemon's parent is the shell.
    const sh = spawnParent('sh', ['-c', `"${process.execPath}" "${bin}" run --config "${config}"; true`], dir);
    const pid = await daemonPid(sh);
    sh.process.kill('SIGKILL');
    await expectStopsByItself(sh, pid);
  }, 60_000);
});
