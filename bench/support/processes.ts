/**
 * Child processes of the bench: `bin/rebill.js` commands (the daemon's real
 * code path, compiled in dist/) and small helper servers, each logging to a
 * file in the scenario's directory (a pipe read by the bench would cost the
 * bench CPU the child needs) and each reporting its peak RSS as it exits
 * (./peak-rss.mjs, preloaded with --import).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const ROOT = resolve(here, '../..');
/** The CLI every scenario runs; BENCH_BIN points the bench at another build (a before/after comparison). */
export const REBILL_BIN = resolve(process.env.BENCH_BIN ?? join(ROOT, 'bin/rebill.js'));
const PEAK_RSS_PRELOAD = join(here, 'peak-rss.mjs');

/** Every child still running, so a failed scenario never leaves one behind. */
const running = new Set<ChildProcess>();

/** Kills (SIGKILL) every child the bench started that is still running; called after each scenario. */
export function killStragglers(): number {
  let killed = 0;
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      killed++;
    }
  }
  running.clear();
  return killed;
}

/** The environment of a child: the bench's, without REBILL_* overrides that would change what is measured. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REBILL_') && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, ...extra };
}

export interface Child {
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** The end of the child's output, for error messages. */
  tail(chars?: number): string;
  /** Peak RSS in MB, as the child wrote it when it exited (NaN before that, or when it was killed). */
  peakRssMb(): number;
  /** SIGTERM (or `signal`), then waits for the exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnOptions {
  /** Where the log and the peak-RSS file go. */
  readonly dir: string;
  /** A name for the log file (`<name>.log`). */
  readonly name: string;
  readonly env?: Record<string, string>;
}

/** Runs `node [--import peak-rss] <script> ...args`, logging to `<dir>/<name>.log`. */
export function spawnNode(script: string, args: readonly string[], options: SpawnOptions): Child {
  const logFile = join(options.dir, `${options.name}.log`);
  const peakFile = join(options.dir, `${options.name}.peak-rss`);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', PEAK_RSS_PRELOAD, script, ...args], {
    cwd: options.dir,
    stdio: ['ignore', fd, fd],
    env: childEnv({ BENCH_PEAK_RSS_FILE: peakFile, ...options.env }),
  });
  closeSync(fd);
  running.add(child);
  const exited = new Promise<number | null>((resolveExit, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      running.delete(child);
      resolveExit(code);
    });
  });
  const tail = (chars = 3000) => {
    try {
      return readFileSync(logFile, 'utf8').slice(-chars);
    } catch {
      return '';
    }
  };
  return {
    pid: child.pid!,
    logFile,
    exited,
    tail,
    peakRssMb() {
      if (!existsSync(peakFile)) return NaN;
      return Number(readFileSync(peakFile, 'utf8')) / 1024;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** `node bin/rebill.js ...args`. */
export function spawnRebill(args: readonly string[], options: SpawnOptions): Child {
  return spawnNode(REBILL_BIN, args, options);
}

/** Runs a rebill command to its end; throws with its output unless it exits with one of `okCodes`. */
export async function runRebill(args: readonly string[], options: SpawnOptions & { readonly okCodes?: readonly number[] }): Promise<{ seconds: number; peakRssMb: number; code: number | null; child: Child }> {
  const from = performance.now();
  const child = spawnRebill(args, options);
  const code = await child.exited;
  const seconds = (performance.now() - from) / 1000;
  if (!(options.okCodes ?? [0]).includes(code ?? -1)) throw new Error(`rebill ${args.join(' ')} exited ${code}:\n${child.tail()}`);
  return { seconds, peakRssMb: child.peakRssMb(), code, child };
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

/**
 * Waits until `GET /healthz` on the port answers 200, polling every `everyMs`.
 * The daemon listens right before it starts the engine and the relay (in the
 * same tick), so the first 200 marks "rebill ready" even at log level warn.
 * Returns Date.now() at that answer; throws if the child exits first.
 */
export async function waitHealthy(child: Child, port: number, timeoutMs = 120_000, everyMs = 20): Promise<number> {
  let exited: number | null | undefined;
  void child.exited.then((code) => (exited = code));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`rebill exited ${exited} before it was ready:\n${child.tail()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return Date.now();
    } catch {
      // not listening yet
    }
    await sleep(everyMs);
  }
  throw new Error(`rebill was not ready after ${timeoutMs} ms:\n${child.tail()}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until the child's log has a line matching `pattern`; returns the match. */
export async function waitForLog(child: Child, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  let exited: number | null | undefined;
  void child.exited.then((code) => (exited = code));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(child.tail(Infinity));
    if (match) return match;
    if (exited !== undefined) throw new Error(`process exited ${exited} before logging ${pattern}:\n${child.tail()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} in the log after ${timeoutMs} ms:\n${child.tail()}`);
    await sleep(20);
  }
}

/** `rebill fake-gateway` on a free port with `--latency-ms`; resolves with its URL once it listens. */
export async function startFakeGatewayProcess(dir: string, latencyMs: number): Promise<{ child: Child; url: string }> {
  const child = spawnRebill(['fake-gateway', '--port', '0', '--latency-ms', String(latencyMs)], { dir, name: 'fake-gateway' });
  const match = await waitForLog(child, /fake-gateway listening on (http:\/\/\S+)/);
  return { child, url: match[1]! };
}
