/**
 * The admin API in-process over real HTTP on 127.0.0.1: a real SQLite file, a
 * real engine (not started unless asked), the server `rebill run` builds, and
 * the catalog from a real config text. `call` sends a request with a token
 * and returns status, headers and the parsed body.
 */
import type { FastifyInstance } from 'fastify';
import { VirtualClock } from '../../src/clock.js';
import { parseConfig, type Config } from '../../src/config/index.js';
import type { Engine } from '../../src/engine/index.js';
import { createHttpServer, type HttpServer } from '../../src/http/index.js';
import { catalogOf } from '../../src/service/index.js';
import { WriteBatcher } from '../../src/store/index.js';
import { dumpTables, type TableDump } from './db-dump.js';
import { daemonEngine, openTempDb, testServerDeps, type TempDb } from './engine-harness.js';

export const WRITE_TOKEN = 'test-write-token-0123456789';
export const READ_TOKEN = 'test-read-token-0123456789';

/** Two plans on the simulator: monthly USD 9.99 charged at 10:00 UTC, and a link-mode JPY yearly plan. */
export const API_CONFIG = `
http: { host: 127.0.0.1, port: 0, tokens: [{ token: "${WRITE_TOKEN}", scope: write }, { token: "${READ_TOKEN}", scope: read }] }
gateways: { sim: { type: simulator } }
plans:
  - { id: gold-monthly, description: Gold, amount: "9.99", currency: USD, every: MONTH, sendOnHour: 10, gateway: sim }
  - { id: yen-yearly, amount: "1500", currency: JPY, every: YEAR, mode: link, gateway: sim }
`;

export interface ApiHarness {
  readonly url: string;
  readonly tmp: TempDb;
  readonly clock: VirtualClock;
  readonly engine: Engine;
  readonly server: HttpServer;
  readonly config: Config;
  /** How often the API woke the engine. */
  readonly wakes: () => number;
  /** The group commit the API's writes go through (its stats, hold). */
  readonly writes: WriteBatcher;
  call(method: string, path: string, options?: CallOptions): Promise<ApiResponse>;
  /** Every row of every table (see dumpTables), to show that a refused request changed nothing. */
  dump(options?: { except?: readonly string[] }): Promise<TableDump>;
  /**
   * A restart: closes this server, its engine and its database connection
   * (the file stays), then builds a new server on the same file, config and
   * clock. Use the returned harness from then on; its close removes the file.
   */
  reopen(): Promise<ApiHarness>;
  close(): Promise<void>;
}

export interface StartOptions {
  /** The virtual instant the clock starts at (default 2026-03-01T12:00:00Z). */
  readonly now?: number;
  readonly configText?: string;
  readonly startEngine?: boolean;
  /** Called with the fastify instance before it listens (add hooks, e.g. onRoute). */
  readonly beforeListen?: (app: FastifyInstance) => void;
}

export interface CallOptions {
  /** A JSON value (stringified), or raw text sent as is. */
  readonly body?: unknown;
  readonly raw?: string;
  /** Default: the write token; null sends no Authorization header. */
  readonly token?: string | null;
  readonly headers?: Record<string, string>;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly contentType: string;
  readonly text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

/** Starts the API on a fresh database at virtual instant `now`. */
export async function startApi(options: StartOptions = {}): Promise<ApiHarness> {
  const config = parseConfig(options.configText ?? API_CONFIG, 'api-test.yaml', {});
  const tmp = await openTempDb({}, { name: 'api' });
  const clock = new VirtualClock(options.now ?? Date.parse('2026-03-01T12:00:00Z'));
  return serve(config, tmp, clock, options);
}

async function serve(config: Config, tmp: TempDb, clock: VirtualClock, options: StartOptions): Promise<ApiHarness> {
  const engine = daemonEngine(tmp.db, clock);
  let wakes = 0;
  const writes = new WriteBatcher(tmp.db);
  const server = createHttpServer({
    ...testServerDeps(tmp, clock, engine),
    adminApi: {
      tokens: config.http.tokens,
      catalog: catalogOf(config),
      wake: (dueAt) => {
        wakes++;
        engine.kick(dueAt);
      },
      version: 'test',
      writes,
    },
  });
  options.beforeListen?.(server.app);
  const address = await server.listen();
  if (options.startEngine) engine.start();
  const url = `http://${address}`;
  const stop = async () => {
    await server.close();
    await engine.stop(0).catch(() => {});
  };
  return {
    url,
    tmp,
    clock,
    engine,
    server,
    config,
    wakes: () => wakes,
    writes,
    async call(method, path, call = {}) {
      const headers: Record<string, string> = { ...(call.headers ?? {}) };
      const token = call.token === undefined ? WRITE_TOKEN : call.token;
      if (token !== null) headers.authorization = `Bearer ${token}`;
      let body: string | undefined;
      if (call.raw !== undefined) body = call.raw;
      else if (call.body !== undefined) body = JSON.stringify(call.body);
      if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
      const response = await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
      const text = await response.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      return { status: response.status, headers: response.headers, contentType: response.headers.get('content-type') ?? '', text, body: parsed };
    },
    dump: (dumpOptions) => dumpTables(tmp.db, dumpOptions),
    async reopen() {
      await stop();
      const reopened = await tmp.reopen();
      return serve(config, reopened, clock, { ...options, startEngine: options.startEngine ?? false });
    },
    async close() {
      await stop();
      await tmp.close().catch(() => {});
    },
  };
}
