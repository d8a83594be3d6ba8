/**
 * The Dockerfile read as docker reads it: instructions with their line,
 * continuation lines joined, comments dropped. Shared by the file checks and
 * the test that runs the image's CMD and HEALTHCHECK outside a container.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { root } from '../support/cli.js';

export interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + ' ' + lines[++i]!.trim();
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (m) out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start + 1 });
  }
  return out;
}

export const instructions = parseDockerfile(readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
export const stages = instructions.filter((i) => i.op === 'FROM');
export const finalStage = instructions.slice(instructions.lastIndexOf(stages.at(-1)!));

/** The last `op` of the final stage. */
export function last(op: string): Instruction | undefined {
  return finalStage.filter((i) => i.op === op).at(-1);
}

/** An exec-form argument list (`["node", "bin/rebill.js", "run"]`); throws for the shell form. */
export function execForm(args: string): string[] {
  const argv = JSON.parse(args) as unknown;
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return argv as string[];
}

/** The HEALTHCHECK's options (`--timeout=5s` -> timeout: "5s") and its exec-form command. */
export function healthcheck(): { options: Record<string, string>; argv: string[] } {
  const hc = last('HEALTHCHECK');
  if (!hc) throw new Error('no HEALTHCHECK in the final stage');
  const m = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])$/.exec(hc.args);
  if (!m) throw new Error(`HEALTHCHECK is not "[--opt=value ...] CMD [exec form]": ${hc.args}`);
  const options = Object.fromEntries(
    m[1]!
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((o) => o.slice(2).split('=') as [string, string]),
  );
  return { options, argv: execForm(m[2]!) };
}

/** The final stage's ENV as a map (`ENV A=1 \ B=2` form). */
export function environment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of finalStage.filter((x) => x.op === 'ENV')) {
    for (const m of i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  return env;
}

/** Seconds of a docker duration (`5s`, `1m30s`). */
export function seconds(duration: string): number {
  let total = 0;
  for (const m of duration.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return total;
}
