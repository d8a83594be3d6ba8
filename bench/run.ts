/**
 * `npm run bench [-- --json] [--quick] [--only a,b] [--list]`: every scenario
 * of bench/scenarios against its baseline, measured in the same run on the
 * same machine (see bench/RESULTS.md for what each figure means).
 *
 * stdout carries the table, or with --json exactly one line,
 * {"scenarios":[{name,value,unit,baseline,ratio,target,pass}...]};
 * progress goes to stderr. Exit 0 when every scenario ran (a missed target
 * is a `pass: false`, not a failure), 1 when one crashed, 2 for bad flags.
 * Never part of `npm test`: figures depend on the machine and its load.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { benchContext, benchRoot, jsonLine, table, type Row } from './harness.js';
import { SCENARIOS } from './scenarios/index.js';
import { commitsPerSecond } from './support/disk.js';
import { killStragglers, REBILL_BIN, ROOT } from './support/processes.js';

const USAGE = `usage: npm run bench -- [--json] [--quick] [--only NAME[,NAME...]] [--list]
  --json    print the results as one JSON line (the last line of stdout)
  --quick   every scenario scaled down (same shape), all of them in under a minute
  --only    run the scenarios that report these rows (see --list)
  --list    list the rows and what they measure`;

interface Flags {
  json: boolean;
  quick: boolean;
  only: Set<string> | null;
  list: boolean;
}

function parseFlags(argv: readonly string[]): Flags | string {
  const flags: Flags = { json: false, quick: false, only: null, list: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') flags.json = true;
    else if (arg === '--quick') flags.quick = true;
    else if (arg === '--list') flags.list = true;
    else if (arg === '--help' || arg === '-h') return '';
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      if (!value) return '--only: expected a comma-separated list of row names';
      flags.only = new Set(value.split(',').map((s) => s.trim()).filter(Boolean));
    } else return `unknown argument "${arg}"`;
  }
  if (flags.only) {
    const known = new Set(SCENARIOS.flatMap((s) => s.rows));
    const unknown = [...flags.only].filter((name) => !known.has(name));
    if (unknown.length) return `--only: unknown row${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${[...known].join(', ')})`;
  }
  return flags;
}

/** Newest modification time under a directory (ms). */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/**
 * The daemon runs from dist/: a source tree newer than its build would be
 * measured as the old code. Rebuild first (`npm run build`) when it is stale.
 */
function ensureBuilt(): void {
  if (process.env.BENCH_BIN) return;
  const built = join(ROOT, 'dist/src/cli/index.js');
  const sources = Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'migrations')));
  if (existsSync(built) && statSync(built).mtimeMs >= sources) return;
  process.stderr.write('dist/ is older than src/: running npm run build first\n');
  const result = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (result.status !== 0) throw new Error('npm run build failed');
}

/** Date, commit, machine: the header of the table and of RESULTS.md. */
function describeRun(quick: boolean): string {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim()) commit += ' (with uncommitted changes)';
  } catch {
    // not a git checkout
  }
  const cpu = cpus();
  return [
    `rebill bench${quick ? ' --quick' : ''}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${commit}`,
    `machine: ${cpu.length} cpus (${cpu[0]?.model.trim() ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}, load average ${loadavg()[0]!.toFixed(1)} at the start`,
    ...(process.env.BENCH_BIN ? [`rebill: ${REBILL_BIN}`] : []),
  ].join('\n');
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if (typeof flags === 'string') {
    process.stderr.write(`${flags ? `${flags}\n` : ''}${USAGE}\n`);
    return flags ? 2 : 0;
  }
  if (flags.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.rows.join(', ')}\n    ${s.description}\n`);
    return 0;
  }
  const selected = SCENARIOS.filter((s) => !flags.only || s.rows.some((name) => flags.only!.has(name)));
  if (selected.some((s) => !s.inProcess)) ensureBuilt();
  const root = benchRoot();
  const header = `${describeRun(flags.quick)}\ndisk: ${commitsPerSecond(root).toFixed(0)} durable commits/s at the start (one row each, synchronous=FULL)`;
  process.stderr.write(`${header}\n`);
  const ctx = benchContext(flags.quick, root);
  const rows: Row[] = [];
  let crashed = 0;
  let diskAtEnd = NaN;
  const from = performance.now();
  try {
    for (const scenario of selected) {
      const started = performance.now();
      process.stderr.write(`${scenario.rows.join(', ')}\n`);
      try {
        const measured = await scenario.run(ctx);
        rows.push(...measured.filter((r) => !flags.only || flags.only.has(r.name)));
      } catch (err) {
        crashed++;
        const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
        process.stderr.write(`  CRASHED: ${message}\n`);
        const firstLine = message.split('\n')[0]!;
        for (const name of scenario.rows.filter((n) => !flags.only || flags.only.has(n))) {
          rows.push({ name, value: NaN, unit: '-', baseline: null, ratio: null, target: null, pass: false, note: `crashed: ${firstLine}` });
        }
      } finally {
        const killed = killStragglers();
        if (killed) process.stderr.write(`  killed ${killed} leftover process${killed > 1 ? 'es' : ''}\n`);
        process.stderr.write(`  (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
      }
    }
    diskAtEnd = commitsPerSecond(root);
  } finally {
    if (process.env.BENCH_KEEP === '1') process.stderr.write(`kept ${root}\n`);
    else rmSync(root, { recursive: true, force: true });
  }
  const footer = `all scenarios: ${((performance.now() - from) / 1000).toFixed(1)} s; at the end: load average ${loadavg()[0]!.toFixed(1)}, disk ${diskAtEnd.toFixed(0)} commits/s`;
  process.stderr.write(`${footer}\n`);
  if (flags.json) process.stdout.write(`${jsonLine(rows)}\n`);
  else process.stdout.write(`${header}\n${footer}\n\n${table(rows)}\n`);
  return crashed ? 1 : 0;
}

process.exitCode = await main();
