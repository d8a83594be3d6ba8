/**
 * No image can be built here, so the image's CMD and HEALTHCHECK are run as
 * they are written in the Dockerfile, outside a container, with only these
 * translations (each one what docker itself would provide):
 *   - the program "node" -> this node (process.execPath);
 *   - the image's WORKDIR (/app) -> the repository root (bin/, dist/, node_modules/);
 *   - the final stage's ENV, with /etc/rebill/rebill.yaml -> a temp copy of the file
 *     the Dockerfile COPYs there, and /data -> a temp directory (the volume);
 *   - `docker run -e REBILL_ADMIN_TOKEN=... -e REBILL_HTTP_PORT=<free port>`: the token the
 *     image requires on 0.0.0.0, and a free port instead of 8080 so parallel runs never collide.
 * tini (the ENTRYPOINT) is not run: it only forwards signals to the CMD.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireBuild, root, withoutRebillEnv } from '../support/cli.js';
import { fileTempDir } from '../support/temp.js';
import { environment, execForm, finalStage, healthcheck, last } from './dockerfile.js';

const dir = fileTempDir('image-commands');
const children = new Set<ChildProcess>();

beforeAll(requireBuild);
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

/** The Dockerfile's ENV with the container paths moved into `dir`, plus the run-time variables. */
function containerEnv(port: number): NodeJS.ProcessEnv {
  const env = environment();
  const configCopy = finalStage.find((i) => i.op === 'COPY' && i.args.endsWith(` ${env.REBILL_CONFIG}`))!;
  const config = path.join(dir, 'etc-rebill', 'rebill.yaml');
  mkdirSync(path.dirname(config), { recursive: true });
  copyFileSync(path.join(root, configCopy.args.split(/\s+/)[0]!), config);
  const data = path.join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const translated = Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, v.replace(/^\/etc\/rebill\/rebill\.yaml$/, config).replace(/^sqlite:\/data\//, `sqlite:${data}/`)]),
  );
  expect(translated.REBILL_CONFIG).toBe(config);
  expect(translated.REBILL_DATABASE_URL).toBe(`sqlite:${data}/rebill.db`);
  return { ...withoutRebillEnv(), NODE_OPTIONS: '', ...translated, REBILL_ADMIN_TOKEN: 'image-test-admin-token-0123456789', REBILL_HTTP_PORT: String(port) };
}

function start(argv: readonly string[], env: NodeJS.ProcessEnv): ChildProcess & { output: () => string } {
  const [program, ...args] = argv;
  expect(program).toBe('node');
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  return Object.assign(child, { output: () => output });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('close', (code) => resolve(code))));
}

/** Runs the HEALTHCHECK's command line to completion and returns its exit code. */
async function runHealthcheck(port: number): Promise<number | null> {
  const check = start(healthcheck().argv, { ...withoutRebillEnv(), NODE_OPTIONS: '', ...environment(), REBILL_HTTP_PORT: String(port) });
  return exitOf(check);
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("the image's CMD and HEALTHCHECK, run from the repository", () => {
  it('CMD starts the daemon with the image\'s ENV; HEALTHCHECK exits 0 while it is up and non-zero once it stopped; SIGTERM exits 0', async () => {
    const port = await freePort();
    const cmd = execForm(last('CMD')!.args);
    const daemon = start(cmd, containerEnv(port));
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (/"msg":"rebill ready"/.test(daemon.output())) done(resolve);
        else if (daemon.exitCode !== null) done(() => reject(new Error(`CMD exited ${daemon.exitCode}:\n${daemon.output()}`)));
      }, 50);
      const done = (settle: () => void) => {
        clearInterval(poll);
        settle();
      };
    });
    expect(daemon.output()).toMatch(new RegExp(`"http":"[^"]*:${port}"`));
    expect(await runHealthcheck(port)).toBe(0);
    daemon.kill('SIGTERM');
    expect(await exitOf(daemon)).toBe(0);
    expect(await runHealthcheck(port)).not.toBe(0);
  }, 60_000);

  describe('HEALTHCHECK is strict', () => {
    const servers: Server[] = [];
    afterAll(async () => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise((resolve) => s.close(resolve));
      }
    });
    async function answering(status: number | 'never', body: string): Promise<number> {
      const server = createServer((_req, res) => {
        if (status !== 'never') res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      });
      servers.push(server);
      return listen(server);
    }

    it('exits non-zero when nothing listens', async () => {
      expect(await runHealthcheck(await freePort())).not.toBe(0);
    });

    it('exits non-zero when /healthz answers 500 (even with a "pass" body)', async () => {
      expect(await runHealthcheck(await answering(500, '{"status":"pass"}'))).not.toBe(0);
    });

    it('exits non-zero on 200 with another status or a body that is not JSON', async () => {
      expect(await runHealthcheck(await answering(200, '{"status":"fail"}'))).not.toBe(0);
      expect(await runHealthcheck(await answering(200, '<html>ok</html>'))).not.toBe(0);
    });

    it('exits 0 for 200 {"status":"pass"} (what the daemon answers)', async () => {
      expect(await runHealthcheck(await answering(200, '{"status":"pass"}'))).toBe(0);
    });

    it('gives up and exits non-zero when the server accepts but never answers', async () => {
      expect(await runHealthcheck(await answering('never', ''))).not.toBe(0);
    }, 20_000);
  });
});
