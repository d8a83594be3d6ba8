/**
 * One daemon per SQLite file (SPEC section 4, issue 7 item 8): real `rebill run`
 * processes on one database file, with a real fake gateway (CoolPay over HTTP on
 * 127.0.0.1). A second daemon exits 1 at once naming the holder's pid; the
 * holder collects exactly once; a SIGKILLed holder's lock goes with it.
 */
import { describe, expect, it } from 'vitest';
import { assertExactlyOnce, cycleOneAttempts, daemonConfig, READY, startDaemon, withFakeGateway } from './support/daemon.js';
import { exitWithin, logLines, spawnRebill, waitFor, type Child } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('one-daemon');
const IDS = ['s1', 's2', 's3'];
const subs = IDS.map((id) => ({ id, token: 'tok_ok' }));

/** The line a refused second daemon prints, with the pid it names. */
const IN_USE = /^database .+ is in use by another rebill daemon: pid (\d+) \(running since [^)]+\) holds .+\.lock; a SQLite database serves one daemon\n$/;

async function collected(dbFile: string, gateway: Awaited<ReturnType<typeof withFakeGateway>>['gateway']): Promise<void> {
  await waitFor(() => (cycleOneAttempts(dbFile).filter((a) => a.state === 'captured').length >= IDS.length ? true : undefined), {
    timeoutMs: 30_000,
    describe: () => JSON.stringify(cycleOneAttempts(dbFile)),
  });
  await assertExactlyOnce(gateway, dbFile, IDS);
}

function lockErrors(child: Child): string[] {
  return logLines(child.stdout())
    .filter((l) => /locked|SQLITE_BUSY/i.test(JSON.stringify(l)))
    .map((l) => JSON.stringify(l));
}

describe('one daemon per SQLite file', () => {
  it('two daemons started together on a fresh file: one exits 1 at once naming the other pid, the other collects', async () => {
    const env = await withFakeGateway(newDir('together'));
    const config = daemonConfig(env.dir, env.gateway, subs, {});
    const a = spawnRebill(['run', '--config', config], { logFile: env.logFile });
    const b = spawnRebill(['run', '--config', config], { logFile: env.logFile });
    // Exactly one of them exits (the loser); which one is up to the race.
    const loser = await Promise.race([a.exited.then(() => a), b.exited.then(() => b)]);
    const winner = loser === a ? b : a;
    const exit = await loser.exited;
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 1, signal: null });
    const match = IN_USE.exec(loser.stderr());
    expect(match, `loser's stderr:\n${loser.stderr()}`).not.toBeNull();
    expect(Number(match![1])).toBe(winner.pid);
    expect(loser.stdout()).not.toMatch(READY);
    await winner.waitForStdout(READY, 30_000);
    await collected(env.dbFile, env.gateway);
    expect(lockErrors(winner)).toEqual([]);
    winner.kill('SIGTERM');
    expect((await exitWithin(winner, 30_000)).code).toBe(0);
  }, 90_000);

  it('a daemon started beside a running one exits 1 naming its pid; the running one is undisturbed', async () => {
    const env = await withFakeGateway(newDir('staggered'));
    const config = daemonConfig(env.dir, env.gateway, subs, {});
    const first = await startDaemon(config, env.logFile);
    await collected(env.dbFile, env.gateway);
    const second = spawnRebill(['run', '--config', config], { logFile: env.logFile });
    const exit = await exitWithin(second, 15_000);
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 1, signal: null });
    expect(Number(IN_USE.exec(second.stderr())?.[1])).toBe(first.pid);
    // A read-only command works beside the running daemon.
    const check = spawnRebill(['check-config', '--config', config]);
    expect((await exitWithin(check, 15_000)).code, check.stderr()).toBe(0);
    expect(first.alive()).toBe(true);
    expect(lockErrors(first)).toEqual([]);
    first.kill('SIGTERM');
    expect((await exitWithin(first, 30_000)).code).toBe(0);
    await assertExactlyOnce(env.gateway, env.dbFile, IDS);
  }, 90_000);

  it("a SIGKILLed daemon's lock is taken over by the next start, which collects", async () => {
    const env = await withFakeGateway(newDir('takeover'));
    // Nothing to collect yet for the first daemon: the seeds are added before the second start.
    const empty = daemonConfig(env.dir, env.gateway, [], {});
    const first = await startDaemon(empty, env.logFile);
    first.kill('SIGKILL');
    expect((await exitWithin(first, 15_000)).signal).toBe('SIGKILL');
    const config = daemonConfig(env.dir, env.gateway, subs, {});
    const next = await startDaemon(config, env.logFile);
    await collected(env.dbFile, env.gateway);
    next.kill('SIGTERM');
    expect((await exitWithin(next, 30_000)).code).toBe(0);
  }, 90_000);
});
