/**
 * Profiling helper for dispatch-latency-bound (not a bench row): seeds N due
 * (argv[2], default 5000), starts `rebill fake-gateway --latency-ms 20` and
 * `rebill run` (CoolPay adapter, concurrency 64) as the scenario does, and
 * prints charges/s (the daemon's own window) with the CPU time per charge of
 * the daemon and of the fake gateway (utime+stime from /proc, between the
 * first attempt and the last capture): figures that a shared machine's load
 * disturbs less than charges/s. PROF=<dir> writes `--cpu-prof` profiles of
 * both processes there. `npx tsx bench/_prof-latency.ts 5000`.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { writeBenchConfig } from './support/config.js';
import { cpuSecondsOf, sqliteRecords } from './support/daemon.js';
import { freePort, REBILL_BIN, sleep } from './support/processes.js';
import { seedSubscriptions, utcDate } from './support/seed.js';

const n = Number(process.argv[2] ?? 5000);
const dir = '/tmp/latprof/run';
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
/** `node [--cpu-prof] bin/rebill.js ...args`, logging to <dir>/<name>.log. */
function start(name: string, args: string[]) {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, 'a');
  const flags = process.env.PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  // STRACE=1: the daemon runs under `strace -f -c` (syscall counts in <dir>/daemon.strace).
  const [command, argv] =
    process.env.STRACE && name === 'daemon' ? ['strace', ['-f', '-c', '-o', join(dir, 'daemon.strace'), process.execPath, ...flags, REBILL_BIN, ...args]] : [process.execPath, [...flags, REBILL_BIN, ...args]];
  const child = spawn(command, argv, { cwd: dir, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return { pid: child.pid!, log: () => readFileSync(log, 'utf8'), stop: () => (child.kill('SIGTERM'), exited) };
}
const gateway = start('fake-gateway', ['fake-gateway', '--port', '0', '--latency-ms', '20']);
let url: string | undefined;
while (!(url = /fake-gateway listening on (http:\/\/\S+)/.exec(gateway.log())?.[1])) await sleep(20);
const port = await freePort();
const config = writeBenchConfig({ dir, httpPort: port, gateway: { type: 'coolpay', baseUrl: url }, scheduler: { concurrency: 64 } });
await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: () => ({ template: 0 }) });
const load = loadavg()[0]!.toFixed(1);
const daemon = start('daemon', ['run', '--config', config]);
const records = sqliteRecords(dir);
/** CPU seconds of a process's main thread alone (its event loop; not the compiler and GC threads). */
const mainThread = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
let from: { d: number; g: number; dm: number; gm: number } | undefined;
for (;;) {
  if (!from && (await records.attempts()) > 0) from = { d: cpuSecondsOf(daemon.pid), g: cpuSecondsOf(gateway.pid), dm: mainThread(daemon.pid), gm: mainThread(gateway.pid) };
  if ((await records.captured()) >= n) break;
  await sleep(100);
}
const to = { d: cpuSecondsOf(daemon.pid), g: cpuSecondsOf(gateway.pid), dm: mainThread(daemon.pid), gm: mainThread(gateway.pid) };
const w = await records.window();
// Claims and outcome commits: attempts share created_at per claim and updated_at per outcome batch.
const commits = records.db.prepare('select count(distinct created_at) as claims, count(distinct updated_at) as outcomes from attempts').get() as { claims: number; outcomes: number };
// The daemon's own view: gateway call durations (event-loop delays included) and sweeps (claims).
const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
const callMs = (1000 * metric('rebill_attempt_duration_seconds_sum')) / metric('rebill_attempt_duration_seconds_count');
const sweepMs = (1000 * metric('rebill_sweep_duration_seconds_sum')) / metric('rebill_sweep_duration_seconds_count');
await records.close();
await daemon.stop();
await gateway.stop();
const seconds = (w.to - w.from) / 1000;
const us = (s: number) => ((s * 1e6) / n).toFixed(0);
console.log(
  `${n} in ${seconds.toFixed(2)} s = ${(n / seconds).toFixed(0)}/s; daemon CPU ${(to.d - from!.d).toFixed(2)} s = ${us(to.d - from!.d)} us/charge (main thread ${us(to.dm - from!.dm)}); gateway CPU ${(to.g - from!.g).toFixed(2)} s = ${us(to.g - from!.g)} us/charge (main thread ${us(to.gm - from!.gm)}); load ${load} -> ${loadavg()[0]!.toFixed(1)}\n  gateway call ${callMs.toFixed(1)} ms on average (64 / that = ${((64 / callMs) * 1000).toFixed(0)}/s); ${metric('rebill_sweep_duration_seconds_count')} sweeps of ${sweepMs.toFixed(1)} ms on average; ${commits.claims} claims, ${commits.outcomes} outcome commits`,
);
