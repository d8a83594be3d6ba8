/**
 * Profiling helper for api-create (not a bench row): starts `rebill run` as
 * the scenario does (with `--cpu-prof` into $PROF when set), warms up 1 s,
 * loads POST /v1/subscriptions for argv[2] seconds (default 8) at 32
 * connections (IDEM=1: each with an Idempotency-Key), and prints creates/s
 * and the daemon's CPU time per create (utime+stime from /proc): a figure
 * that a shared machine's load disturbs less than creates/s. RUNS=n: n runs
 * against the same daemon, one line each. BARE=1: the bench's baseline
 * (bench/support/bare-server.mjs) instead of `rebill run`.
 * `npx tsx bench/_prof-api.ts 8`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import autocannon from 'autocannon';
import { BENCH_PLAN, BENCH_TOKEN, writeBenchConfig } from './support/config.js';
import { freePort } from './support/processes.js';

const seconds = Number(process.argv[2] ?? 8);
const dir = '/tmp/apiprof/run';
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const port = await freePort();
const config = writeBenchConfig({ dir, httpPort: port });
const args = process.env.PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF}`] : [];
const command = process.env.BARE ? ['bench/support/bare-server.mjs', String(port)] : ['bin/rebill.js', 'run', '--config', config];
const child = spawn(process.execPath, [...args, ...command], { stdio: ['ignore', 'ignore', 'inherit'] });
for (;;) {
  await new Promise((r) => setTimeout(r, 100));
  try { const r = await fetch(`http://127.0.0.1:${port}/healthz`); if (r.ok || process.env.BARE) break; } catch {}
}
const run = (d: number) => autocannon({
  url: `http://127.0.0.1:${port}/v1/subscriptions`, method: 'POST', connections: 32, duration: d,
  headers: { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json', ...(process.env.IDEM ? { 'idempotency-key': 'k[<id>]' } : {}) },
  idReplacement: true,
  body: JSON.stringify({ planId: BENCH_PLAN, paymentToken: 'tok_ok', startDate: '2099-01-01', customer: { email: 'u[<id>]@example.com' } }),
});
const cpu = () => { const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
await run(1);
for (let i = 0; i < Number(process.env.RUNS ?? 1); i++) {
  const c0 = cpu();
  const r = await run(seconds);
  const used = cpu() - c0;
  console.log(`2xx/s ${(r['2xx'] / r.duration).toFixed(0)} non2xx ${r.non2xx} errors ${r.errors}; daemon CPU ${used} ms for ${r['2xx']} = ${(used * 1000 / r['2xx']).toFixed(0)} us/create`);
}
child.kill('SIGTERM');
await new Promise((res) => child.on('exit', res));
