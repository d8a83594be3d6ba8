/**
 * Docker cannot build here (no registry), so the Dockerfile is checked by
 * reading it: every rule below is something that has broken real billing
 * containers (npm swallowing SIGTERM, root user, a file volume for WAL, a
 * COPY of a path that does not exist).
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

function parse(text: string): Instruction[] {
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

const instructions = parse(readFileSync('Dockerfile', 'utf8'));
const stages = instructions.filter((i) => i.op === 'FROM');
const finalStage = instructions.slice(instructions.lastIndexOf(stages.at(-1)!));

describe('Dockerfile', () => {
  it('uses only known instructions', () => {
    const known = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);
    for (const i of instructions) expect(known.has(i.op), `line ${i.line}: ${i.op}`).toBe(true);
  });

  it('is a multi-stage build on a glibc Node 20 image with pinned tags', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.args).toMatch(/^node:20-bookworm-slim\b/);
  });

  it('installs from the lock file and ships production dependencies only', () => {
    const runs = instructions.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    expect(runs).toMatch(/npm ci\b/);
    expect(runs).toMatch(/--omit=dev/);
    expect(runs).not.toMatch(/npm install\b/);
  });

  it('runs as the unprivileged node user in the final stage', () => {
    const user = finalStage.filter((i) => i.op === 'USER').at(-1);
    expect(user?.args).toBe('node');
  });

  it('starts node in exec form under an init, never through npm (npm does not forward SIGTERM)', () => {
    const cmd = finalStage.filter((i) => i.op === 'CMD').at(-1)!;
    const entry = finalStage.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    const argv = JSON.parse(cmd.args) as string[];
    expect(argv[0]).toBe('node');
    expect(argv).toContain('run');
    expect(cmd.args).not.toMatch(/npm/);
    expect(entry && (JSON.parse(entry.args) as string[])[0]).toMatch(/tini$/);
  });

  it('keeps the database in a directory volume and the config at /etc/rebill/rebill.yaml', () => {
    expect(finalStage.some((i) => i.op === 'VOLUME' && /\/data\b/.test(i.args))).toBe(true);
    const env = finalStage.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
    expect(env).toMatch(/REBILL_CONFIG=\/etc\/rebill\/rebill\.yaml/);
    expect(env).toMatch(/REBILL_DATABASE_URL=sqlite:\/data\//);
  });

  it('has a HEALTHCHECK that uses node (slim images have no curl)', () => {
    const hc = finalStage.find((i) => i.op === 'HEALTHCHECK');
    expect(hc?.args).toMatch(/CMD \["node"/);
    expect(hc?.args).not.toMatch(/curl|wget/);
  });

  it('copies only paths that exist in the repository', () => {
    for (const copy of instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      const parts = copy.args.split(/\s+/);
      for (const src of parts.slice(0, -1)) expect(existsSync(src), `line ${copy.line}: ${src}`).toBe(true);
    }
  });

  it('builds with the same tsconfig the project builds with', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.scripts.build).toMatch(/tsconfig\.build\.json/);
  });
});
