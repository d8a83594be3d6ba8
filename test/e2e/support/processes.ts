/**
 * End-to-end helpers: the compiled CLI (`node bin/rebill.js ...`) as real
 * child processes, temp directories, config files and a read-only view of
 * the daemon's SQLite file. Needs dist/ (`npm run build`; `npm test` builds first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { parse as parseYaml, stringify } from 'yaml';
import { isSecretKey } from '../../../src/logger.js';
import { bin, root, withoutRebillEnv } from '../../support/cli.js';
import { tempDir as freshDir } from '../../support/temp.js';

export { bin, requireBuild, root } from '../../support/cli.js';

/** A fresh `rebill-e2e-<prefix>-XXXXXX` under the OS temp dir; the caller removes it. */
export function tempDir(prefix: string): string {
  return freshDir(`e2e-${prefix}`);
}

/** The child's environment: ours without REBILL_* (a stray override would change the daemon's settings). */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...withoutRebillEnv(), ...extra };
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly startedAt: number;
  readonly exited: Promise<Exit>;
  /** Everything written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` on stdout; rejects on exit or after `timeoutMs`. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Sends `signal` unless the process is already gone. */
  kill(signal: NodeJS.Signals): void;
  alive(): boolean;
}

const running = new Set<Child>();

// ---------------------------------------------------------------------------
// Secrets never appear in logs (issue 8, item 7): every line every rebill child
// prints is checked for the secret values it was given (the config's tokens,
// keys, secrets and payment tokens) and for those a test registered (a token
// sent over the API). test/support/secret-scan.ts fails the file on a leak.

const watched = new Set<string>();
const leaks: string[] = [];

/** Registers a secret value a test hands to a daemon some other way than its config (API body, env). */
export function watchSecret(value: string): void {
  if (value.length >= 6) watched.add(value);
}

/** The leaks found so far in this test file: which process printed which secret (named by where it came from, not by value). */
export function secretLeaks(): readonly string[] {
  return leaks;
}

/** Forgets the leaks recorded so far (only the scanner's own test, which leaks on purpose). */
export function clearSecretLeaks(): void {
  leaks.length = 0;
}

/** Every string under a secret-named key of a parsed YAML document, and every URL's password, with its key path. */
function secretValues(value: unknown, path: string, out: Map<string, string>): void {
  if (Array.isArray(value)) value.forEach((v, i) => secretValues(v, `${path}[${i}]`, out));
  else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (typeof v === 'string' && !v.includes('${')) {
        const password = urlPassword(v);
        if (password !== undefined && password.length >= 6) out.set(password, `the password in ${at}`);
      }
      if (isSecretKey(key) && typeof v === 'string' && v.length >= 6 && !v.includes('${')) out.set(v, at);
      else secretValues(v, at, out);
    }
  }
}

/** The password of a URL with credentials (`smtp://user:password@host`), decoded; undefined for anything else. */
function urlPassword(text: string): string | undefined {
  if (!text.includes('://')) return undefined;
  try {
    const password = new URL(text).password;
    return password === '' ? undefined : decodeURIComponent(password);
  } catch {
    return undefined;
  }
}

/** The secrets in the `--config` file of `args`, by value -> key path. */
function configSecrets(args: readonly string[], cwd: string): Map<string, string> {
  const out = new Map<string, string>();
  const i = args.indexOf('--config');
  const file = i >= 0 ? args[i + 1] : undefined;
  if (!file) return out;
  try {
    secretValues(parseYaml(fs.readFileSync(file.startsWith('/') ? file : `${cwd}/${file}`, 'utf8')), '', out);
  } catch {
    // An unreadable or invalid config is what some tests pass on purpose.
  }
  return out;
}

function scanForSecrets(args: readonly string[], pid: number, text: string, fromConfig: ReadonlyMap<string, string>): void {
  for (const [value, where] of fromConfig) if (text.includes(value)) leaks.push(`rebill ${args[0]} (pid ${pid}) printed the value of ${where}`);
  for (const value of watched) if (!fromConfig.has(value) && text.includes(value)) leaks.push(`rebill ${args[0]} (pid ${pid}) printed a watched secret (${value.slice(0, 3)}…)`);
}

/**
 * Spawns `node bin/rebill.js ...args`. stdout/stderr are kept in memory and,
 * with `logFile`, appended to that file (the daemon logs JSON lines on stdout).
 */
export function spawnRebill(args: readonly string[], options: { cwd?: string; logFile?: string; env?: Record<string, string> } = {}): Child {
  const cwd = options.cwd ?? root;
  const proc = spawn(process.execPath, [bin, ...args], { cwd, env: childEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid === undefined) throw new Error(`could not spawn rebill ${args.join(' ')}`);
  const secrets = configSecrets(args, cwd);
  let out = '';
  let err = '';
  const log = options.logFile === undefined ? undefined : fs.createWriteStream(options.logFile, { flags: 'a' });
  const listeners = new Set<() => void>();
  proc.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    log?.write(chunk);
    for (const l of listeners) l();
  });
  proc.stderr!.on('data', (chunk: Buffer) => {
    err += chunk.toString();
    log?.write(chunk);
  });
  const exited = new Promise<Exit>((resolve) => {
    // 'close' (not 'exit'): every byte of stdout/stderr has been read by then.
    proc.once('close', (code, signal) => {
      log?.end();
      scanForSecrets(args, proc.pid!, out + err, secrets);
      resolve({ code, signal });
    });
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
    running.delete(child);
    for (const l of listeners) l();
  });
  const child: Child = {
    process: proc,
    pid: proc.pid,
    startedAt: Date.now(),
    exited,
    stdout: () => out,
    stderr: () => err,
    alive: () => !gone && proc.exitCode === null && proc.signalCode === null,
    kill(signal) {
      if (child.alive()) proc.kill(signal);
    },
    waitForStdout(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(out);
          if (match) return done(() => resolve(match));
          if (gone) return done(() => reject(new Error(`rebill ${args[0]} exited before printing ${pattern}; stderr:\n${err}\nstdout tail:\n${out.slice(-2000)}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`rebill ${args[0]}: no ${pattern} within ${timeoutMs} ms; stderr:\n${err}`))), timeoutMs);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
  };
  running.add(child);
  return child;
}

/** SIGKILLs every child still running (afterEach / afterAll). */
export async function killAll(): Promise<void> {
  const left = [...running];
  for (const child of left) child.kill('SIGKILL');
  await Promise.all(left.map((c) => c.exited));
}

/** Waits for exit, failing after `timeoutMs`; returns how long it took. */
export async function exitWithin(child: Child, timeoutMs: number): Promise<Exit & { ms: number }> {
  const from = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    child.exited,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`pid ${child.pid} did not exit within ${timeoutMs} ms; stderr:\n${child.stderr()}`)), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  return { ...result, ms: Date.now() - from };
}

export interface FakeGatewayProcess {
  readonly child: Child;
  readonly url: string;
  ledger(): Promise<LedgerCapture[]>;
  /** CoolPay `GET /payments?order_id=K`: the payments the gateway has for a key (any state). */
  payments(orderId: string): Promise<Array<{ order_id: string; state: string }>>;
}

export interface LedgerCapture {
  readonly order_id: string;
  readonly amount: number;
  readonly currency: string;
  readonly payment_id: number;
  readonly captured_at: string;
}

/** `rebill fake-gateway --port PORT --ledger FILE [...args]` as a child process (port 0: a free one); resolves once it listens. */
export async function startFakeGateway(ledgerFile: string, apiKey = 'test', port = 0, args: readonly string[] = []): Promise<FakeGatewayProcess> {
  const child = spawnRebill(['fake-gateway', '--port', String(port), '--ledger', ledgerFile, ...args]);
  const ready = await child.waitForStdout(/^fake-gateway listening on (http:\/\/127\.0\.0\.1:(\d+))$/m);
  const url = ready[1]!;
  const authorization = `Basic ${Buffer.from(`:${apiKey}`).toString('base64')}`;
  return {
    child,
    url,
    async ledger() {
      const response = await fetch(`${url}/__ledger`);
      if (!response.ok) throw new Error(`GET /__ledger answered ${response.status}`);
      return (await response.json()) as LedgerCapture[];
    },
    async payments(orderId) {
      const response = await fetch(`${url}/payments?order_id=${encodeURIComponent(orderId)}`, {
        headers: { Authorization: authorization, 'Accept-Version': 'v10', Accept: 'application/json' },
      });
      if (!response.ok) throw new Error(`GET /payments answered ${response.status}`);
      return (await response.json()) as Array<{ order_id: string; state: string }>;
    },
  };
}

/** Writes `config` as YAML to `file` (with TEST_HTTP when it has no http section) and returns the path. */
export function writeConfig(file: string, config: unknown): string {
  fs.writeFileSync(file, stringify(withTestHttp(config)));
  return file;
}

/**
 * Where a test daemon listens unless its config says otherwise: loopback, on a
 * port the kernel picks, so daemons of parallel tests never collide (the
 * default 0.0.0.0:8080 is for operators, and no test may depend on it).
 */
export const TEST_HTTP = { host: '127.0.0.1', port: 0 } as const;

/** `config` with `http: TEST_HTTP` when it has no http section. */
export function withTestHttp(config: unknown): unknown {
  if (config === null || typeof config !== 'object' || Array.isArray(config) || 'http' in config) return config;
  return { http: TEST_HTTP, ...config };
}

/** Today's date in UTC, `yyyy-MM-dd`: with sendOnHour 0 and no trial, cycle 1 of a subscription starting today is due now. */
export function todayUtc(now = Date.now()): string {
  return new Date(now).toISOString().slice(0, 10);
}

export interface AttemptRow {
  idempotency_key: string;
  subscription_id: string;
  cycle: number;
  attempt: number;
  state: string;
  sends: number;
  decline_code: string | null;
  external_id: string | null;
  error: string | null;
}

export interface CycleRow {
  subscription_id: string;
  cycle: number;
  status: string;
  attempts: number;
}

export interface SubscriptionRow {
  id: string;
  status: string;
  next_action: string;
  next_cycle: number;
  next_attempt: number;
  action_at: string | null;
  lease_owner: string | null;
  lease_until: string | null;
}

/**
 * Reads the daemon's database without writing to it: each call opens the
 * file read-only, runs one query and closes it, so no long-lived reader holds
 * a WAL snapshot while daemons come and go.
 */
export function readDb<T>(dbFile: string, query: (db: Database.Database) => T): T {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    return query(db);
  } finally {
    db.close();
  }
}

export function attempts(dbFile: string): AttemptRow[] {
  return readDb(dbFile, (db) => db.prepare('SELECT * FROM attempts ORDER BY subscription_id, cycle, attempt').all() as AttemptRow[]);
}

export function cycles(dbFile: string): CycleRow[] {
  return readDb(dbFile, (db) => db.prepare('SELECT * FROM cycles ORDER BY subscription_id, cycle').all() as CycleRow[]);
}

export function subscriptions(dbFile: string): SubscriptionRow[] {
  return readDb(dbFile, (db) => db.prepare('SELECT * FROM subscriptions ORDER BY id').all() as SubscriptionRow[]);
}

/**
 * Polls `probe` until it returns a value other than undefined; throws with `describe()` after
 * `timeoutMs`. SQLite errors (file not there yet, schema not migrated yet) are retried; any other
 * error from `probe` fails at once.
 */
export async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; describe?: () => string },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    let value: T | undefined;
    try {
      value = await probe();
    } catch (err) {
      // The database file may not exist yet, or be mid-migration: try again. Anything else fails at once.
      const transient = err instanceof Error && (err.name === 'SqliteError' || /^SQLITE_/.test(String((err as { code?: unknown }).code)));
      if (!transient || Date.now() > deadline) throw err;
    }
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${options.timeoutMs} ms${options.describe ? `: ${options.describe()}` : ''}`);
    await sleep(options.intervalMs ?? 50);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The daemon's JSON log lines (pino), skipping anything that is not JSON. */
export function logLines(text: string): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A line torn by SIGKILL.
    }
  }
  return lines;
}

/** mulberry32: a small seeded PRNG, so a failing crash schedule can be replayed with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
