/**
 * Docker cannot build here (no registry), so the Dockerfile is checked by
 * reading it: every rule below is something that has broken real billing
 * containers (npm swallowing SIGTERM, root user, a file volume for WAL, a
 * COPY of a path that does not exist).
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { environment, execForm, finalStage, healthcheck, instructions, last, seconds, stages } from './dockerfile.js';

describe('Dockerfile', () => {
  it('uses only known instructions', () => {
    const known = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);
    for (const i of instructions) expect(known.has(i.op), `line ${i.line}: ${i.op}`).toBe(true);
  });

  it('is a multi-stage build on a glibc Node 20 image with pinned tags', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.args).toMatch(/^node:20-[a-z]+-slim\b/);
    expect(new Set(stages.map((s) => s.args.split(/\s+/)[0])).size).toBe(1); // one base: the native build matches the runtime
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

  it('has a strict HEALTHCHECK: node fetch of /healthz, 200 with status pass, within docker\'s timeout', () => {
    const { options, argv } = healthcheck();
    expect(argv[0]).toBe('node');
    const script = argv.join(' ');
    expect(script).not.toMatch(/curl|wget/);
    expect(script).toMatch(/fetch\(/);
    expect(script).toMatch(/\/healthz/);
    expect(script).toMatch(/status===200/);
    expect(script).toMatch(/'pass'/);
    expect(script).not.toMatch(/REBILL_HEALTH_STRICT/); // strict always, now that /healthz exists
    // The fetch gives up before docker kills the check, so a hung daemon is "unhealthy", not a killed probe.
    const abortMs = Number(/AbortSignal\.timeout\((\d+)\)/.exec(script)?.[1]);
    expect(abortMs).toBeGreaterThan(0);
    expect(abortMs / 1000).toBeLessThan(seconds(options.timeout ?? '30s'));
    for (const key of ['interval', 'timeout', 'start-period', 'retries']) expect(options, key).toHaveProperty(key);
  });

  it('exposes the port the HEALTHCHECK asks by default, with the database and config where the ENV says', () => {
    expect(last('EXPOSE')?.args).toBe('8080');
    expect(healthcheck().argv.join(' ')).toMatch(/\|\|8080\b/);
    const env = environment();
    expect(env.REBILL_HTTP_HOST).toBe('0.0.0.0');
    expect(env.NODE_ENV).toBe('production');
    expect(finalStage.some((i) => i.op === 'COPY' && i.args.endsWith(env.REBILL_CONFIG!))).toBe(true);
  });

  it('ships the compiled build and the production node_modules of the build stage, with tini installed', () => {
    const copies = finalStage.filter((i) => i.op === 'COPY').map((i) => i.args);
    expect(copies).toContain('--from=build /app/node_modules ./node_modules');
    expect(copies).toContain('--from=build /app/dist ./dist');
    expect(copies.some((c) => c.startsWith('src') || c.includes(' src '))).toBe(false);
    const buildRuns = instructions.slice(0, instructions.indexOf(stages.at(-1)!)).filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    expect(buildRuns).toMatch(/python3/);
    expect(buildRuns).toMatch(/g\+\+/);
    expect(buildRuns).toMatch(/npm ci\b.*npm prune --omit=dev/);
    expect(finalStage.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n')).toMatch(/install .*\btini\b/);
    expect(execForm(last('ENTRYPOINT')!.args)).toEqual(['/usr/bin/tini', '--']);
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

describe('.dockerignore', () => {
  const ignored = readFileSync('.dockerignore', 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  it('keeps the host\'s build output, dependencies, databases and secrets out of the build context', () => {
    for (const entry of ['node_modules', '.git', 'dist', 'data', '*.db', '*.db-wal', '*.db-shm', '.env']) expect(ignored, entry).toContain(entry);
  });

  it('does not ignore anything the Dockerfile copies', () => {
    for (const copy of instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      for (const src of copy.args.split(/\s+/).slice(0, -1)) expect(ignored.some((entry) => src === entry || src.startsWith(`${entry}/`)), `line ${copy.line}: ${src}`).toBe(false);
    }
  });
});
