import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { writeBenchConfig } from './support/config.js';
import { freePort } from './support/processes.js';
import { seedSubscriptions, utcDate } from './support/seed.js';

const n = Number(process.argv[2] ?? 20000);
const dir = '/tmp/prof/run';
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const port = await freePort();
const config = writeBenchConfig({ dir, httpPort: port });
await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: () => ({ template: 0 }) });
const args = process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : [];
const t0 = Date.now();
const child = spawn(process.execPath, [...args, 'bin/rebill.js', 'run', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
let worst = 0;
const db = new SQLite(join(dir, 'rebill.db'), { readonly: true });
let first = 0;
for (;;) {
  await new Promise((r) => setTimeout(r, 100));
  const s = Date.now();
  let ok = false; try { const out = (await import("node:child_process")).execFileSync("curl", ["-s","-o","/dev/null","-m","30","-w","%{time_connect} %{time_starttransfer} %{time_total}", `http://127.0.0.1:${port}/healthz`]).toString(); if (process.env.TRACE) console.log("curl", out); ok = out.length > 0 && !out.startsWith("0.000000"); worst = Math.max(worst, Date.now() - s); } catch {}
  const c = (db.prepare("select count(*) n from attempts where state='captured'").get() as { n: number }).n;
  if (process.env.TRACE) console.log(`${Date.now() - t0} ms: healthz ${ok ? Date.now() - s : 'refused'} captured ${c}`);
  if (c > 0 && !first) first = Date.now();
  if (c >= n) break;
}
const secs = (Date.now() - first) / 1000;
console.log(`${n} in ${secs.toFixed(2)} s from first capture seen = ${(n / secs).toFixed(0)}/s; total ${(Date.now() - t0) / 1000}s; worst healthz ${worst} ms`);
child.kill('SIGTERM');
await new Promise((r) => child.on('exit', r));
