/**
 * What a bench scenario is and what it reports. A scenario measures one or
 * more rows; each row is a value, the baseline it is compared to (measured in
 * the same run on the same machine, or a fixed figure the issue names), their
 * ratio (always value / baseline) and the target that ratio must meet.
 *
 * Adding a scenario: a file in bench/scenarios/ exporting a `Scenario`, and
 * one line in bench/scenarios/index.ts. Everything else (flags, `--only`, the
 * table, the JSON line, clean-up after a crash) is the harness's.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A ratio's target: `>=`, `<=` or `<` a number; null for a report-only row. */
export interface Target {
  readonly op: '>=' | '<=' | '<';
  readonly value: number;
}

/** One line of the table and one object of the JSON line. */
export interface Row {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline: number | null;
  readonly ratio: number | null;
  /** `">= 0.5"`, `"<= 1"`, `"< 1"`, or null. */
  readonly target: string | null;
  /** Whether the ratio meets the target; null when there is no target. */
  readonly pass: boolean | null;
  /** How it was measured, for the human table (not in the JSON line). */
  readonly note?: string;
}

/** Builds a row: ratio = value / baseline, pass from the target. */
export function row(name: string, value: number, unit: string, baseline: number | null, target: Target | null, note?: string): Row {
  const ratio = baseline === null || baseline === 0 ? null : value / baseline;
  let pass: boolean | null = null;
  if (target && ratio !== null) {
    pass = target.op === '>=' ? ratio >= target.value : target.op === '<=' ? ratio <= target.value : ratio < target.value;
  }
  return { name, value, unit, baseline, ratio, target: target ? `${target.op} ${target.value}` : null, pass, ...(note ? { note } : {}) };
}

export const atLeast = (value: number): Target => ({ op: '>=', value });
export const atMost = (value: number): Target => ({ op: '<=', value });
export const below = (value: number): Target => ({ op: '<', value });

export interface BenchContext {
  /** `--quick`: every size scaled down, same shape. */
  readonly quick: boolean;
  /** `full` normally, `quick` under --quick. */
  size(full: number, quick: number): number;
  /** Subject/baseline alternations for scenarios cheap enough to repeat: 3, or 1 under --quick. */
  readonly rounds: number;
  /** A fresh directory under the run's temporary directory (removed at the end unless BENCH_KEEP=1). */
  dir(name: string): string;
  /** A progress line on stderr (stdout carries the table or the JSON line only). */
  log(message: string): void;
}

export interface Scenario {
  /** The rows it reports, by name, in table order (`--only` selects by these). */
  readonly rows: readonly string[];
  /** One line saying what it measures, for `--list`. */
  readonly description: string;
  /** true: runs in the bench process only (no `bin/rebill.js`, so no build needed). */
  readonly inProcess?: boolean;
  run(ctx: BenchContext): Promise<Row[]>;
}

/** The context of one run. */
export function benchContext(quick: boolean, root: string): BenchContext {
  return {
    quick,
    size: (full, small) => (quick ? small : full),
    rounds: quick ? 1 : 3,
    dir: (name) => mkdtempSync(join(root, `${name}-`)),
    log: (message) => process.stderr.write(`  ${message}\n`),
  };
}

/** The run's temporary directory. */
export function benchRoot(): string {
  return mkdtempSync(join(tmpdir(), 'rebill-bench-'));
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** A figure with 3 significant digits, thousands grouped (`25,300`, `0.512`). */
export function fmt(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return x === null ? '-' : String(x);
  const abs = Math.abs(x);
  if (abs >= 1000) return Math.round(x).toLocaleString('en-US');
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

/** The human table. */
export function table(rows: readonly Row[]): string {
  const head = ['scenario', 'value', 'unit', 'baseline', 'ratio', 'target', 'pass'];
  const cells = rows.map((r) => [r.name, fmt(r.value), r.unit, fmt(r.baseline), fmt(r.ratio), r.target ?? '-', r.pass === null ? '-' : r.pass ? 'yes' : 'NO']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const right = new Set([1, 3, 4]);
  const line = (c: readonly string[]) => c.map((x, i) => (right.has(i) ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)];
  const notes = rows.filter((r) => r.note);
  if (notes.length) out.push('', ...notes.map((r) => `${r.name}: ${r.note}`));
  return out.join('\n');
}

/** The `--json` line: exactly the keys the issue names. */
export function jsonLine(rows: readonly Row[]): string {
  return JSON.stringify({ scenarios: rows.map(({ name, value, unit, baseline, ratio, target, pass }) => ({ name, value, unit, baseline, ratio, target, pass })) });
}
