/**
 * Seeds at scale (issue 7 item 18): time and peak RSS of `rebill run` from
 * spawn to "rebill ready" with N config seeds, on a fresh database and again on
 * the existing one. A script, not a test (timings depend on the machine).
 *
 *   npx tsx bench/seeds.ts            # N = 10000 and 100000
 *   BENCH_SEEDS=5000 BENCH_BIN=/other/bin/rebill.js npx tsx bench/seeds.ts
 *
 * Peak RSS is the daemon's VmHWM from /proc (Linux), read at the ready line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BIN = resolve(process.env.BENCH_BIN ?? 'bin/rebill.js');
const SIZES = (process.env.BENCH_SEEDS ?? '10000,100000').split(',').map(Number);

function writeConfig(dir: string, n: number): string {
  const lines = [
    `database: { url: "sqlite:${join(dir, 'rebill.db')}" }`,
    'scheduler: { sweep: "0 0 1 1 *" }',
    'logging: { level: info }',
    'gateways: { sim: { type: simulator } }',
    'plans:',
    '  - { id: gold, amount: "9.99", currency: USD, every: MONTH, gateway: sim }',
    'subscriptions:',
  ];
  // Start dates in the future: nothing is due, so "ready" measures start-up only.
  for (let i = 0; i < n; i++) lines.push(`  - { id: seed-${i}, planId: gold, paymentToken: tok_ok, startDate: "2099-01-01", customer: { email: "u${i}@example.com" } }`);
  const file = join(dir, 'rebill.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function start(config: string): Promise<{ ms: number; peakMb: number; seedingMs: number | null }> {
  const from = performance.now();
  const child = spawn(process.execPath, [BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const result = await new Promise<{ ms: number; peakMb: number; seedingMs: number | null }>((resolveReady, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!out.includes('"msg":"rebill ready"')) return;
      const ms = performance.now() - from;
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
      const done = /"ms":(\d+)[^\n]*"msg":"seeding done"/.exec(out);
      resolveReady({ ms, peakMb: peakKb / 1024, seedingMs: done ? Number(done[1]) : null });
    });
    child.once('exit', (code) => reject(new Error(`rebill run exited ${code} before ready:\n${err}\n${out.slice(-2000)}`)));
  });
  child.removeAllListeners('exit');
  child.kill('SIGTERM');
  await new Promise((r) => child.once('close', r));
  return result;
}

for (const n of SIZES) {
  const dir = mkdtempSync(join(tmpdir(), 'rebill-bench-seeds-'));
  try {
    const config = writeConfig(dir, n);
    for (const label of ['fresh database', 'existing database']) {
      const r = await start(config);
      const seeding = r.seedingMs === null ? '' : `, seeding ${(r.seedingMs / 1000).toFixed(1)} s`;
      console.log(`${n} seeds, ${label}: ready after ${(r.ms / 1000).toFixed(1)} s${seeding}, peak RSS ${r.peakMb.toFixed(0)} MB (${BIN})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
