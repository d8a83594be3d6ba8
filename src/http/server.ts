/**
 * The HTTP server inside `rebill run` (SPEC section 9): health, readiness and
 * (when the metrics module is wired) Prometheus metrics. The engine and store
 * know nothing of HTTP; this module reads them through their own interfaces.
 *
 * Lifecycle: `listen()` after the database is migrated and the start checks
 * passed; `close()` first on SIGTERM, before the engine drains: from then on
 * every new request gets 503 problem+json with Retry-After, requests already
 * in flight finish, then the socket closes.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { HttpConfig } from '../config/index.js';
import type { Engine } from '../engine/index.js';
import type { Db } from '../store/index.js';
import { adminApi, type AdminApiDeps } from './api/index.js';
import { registerGatewayCallbacks, type GatewayCallbackSettings } from './callbacks.js';
import { problem, sendProblem, RETRY_AFTER_SECONDS } from './problem.js';
import { readinessProbe, type ReadinessSettings } from './probes.js';
import { evaluateReadiness, HEALTH_JSON } from './readiness.js';

/** Request bodies over this are refused with 413 (SPEC section 9). */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * The metrics hooks the server calls (implemented by src/http/metrics.ts):
 * one observation per response, and the registry `/metrics` serves.
 */
export interface HttpMetrics {
  readonly registry: { metrics(): Promise<string>; readonly contentType: string };
  observeHttp(route: string, method: string, status: number, seconds: number): void;
  authFailure(): void;
}

/** Everything the server needs, as one object (no singletons). */
export interface HttpServerDeps {
  readonly config: Pick<HttpConfig, 'host' | 'port'>;
  readonly engine: Engine;
  readonly db: Db;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly readiness: ReadinessSettings;
  readonly metrics?: HttpMetrics;
  /** The `/v1` admin API; absent, only health, readiness and metrics are served. */
  readonly adminApi?: Omit<AdminApiDeps, 'db' | 'clock' | 'authFailure'>;
  /** Gateway callbacks (`POST /v1/gateway-callbacks/{gateway}`); absent: no such route. */
  readonly callbacks?: GatewayCallbackSettings;
}

export interface HttpServer {
  /** The fastify instance (tests add routes to it before listen). */
  readonly app: FastifyInstance;
  /** Binds http.host:http.port and resolves with the bound address (`127.0.0.1:PORT`, the real port when 0 was asked). */
  listen(): Promise<string>;
  /** Refuses new requests (503), waits for those in flight, closes the socket. Idempotent. */
  close(): Promise<void>;
}

/** Builds the server (not yet listening). */
export function createHttpServer(deps: HttpServerDeps): HttpServer {
  const { config, logger, metrics } = deps;
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    // Our own 503 (problem+json with Retry-After) replaces fastify's plain one while closing.
    return503OnClosing: false,
    // Idle keep-alive sockets close at once on close(); busy ones after their response.
    forceCloseConnections: 'idle',
    // Paths the router refuses before any route runs answer problem+json like everything else
    // (fastify's own is plain JSON with its error code). An id longer than a path segment may be
    // (ids are at most 100 characters) names nothing: 404.
    frameworkErrors: (err, request, reply) => {
      if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') return sendProblem(reply, problem(404, 'no such resource: a path segment is longer than any id (100 characters)'));
      if (err.code === 'FST_ERR_BAD_URL') return sendProblem(reply, problem(400, 'the URL is not valid (malformed percent-encoding?)'));
      logger.error({ err, method: request.method }, 'HTTP request failed before routing');
      return sendProblem(reply, problem(500));
    },
  });
  let closing = false;
  let closed: Promise<void> | null = null;

  // The hooks that run on every request take fastify's callback form: an async hook costs a
  // promise and its resolution per request.
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) return done();
    reply.header('connection', 'close');
    sendProblem(reply, problem(503, 'rebill is stopping; retry on another instance or after the restart'));
  });
  // A keep-alive connection busy when close() begins is not idle then, so the close does not end it,
  // and nothing did once its response was sent: the close (and the engine's drain after it) waited
  // for the client to hang up, or for keepAliveTimeout (72 s). While closing, each response ends the
  // connections it left idle (one with a request pipelined behind it is not idle: that gets its 503).
  app.addHook('onResponse', (_request, _reply, done) => {
    if (closing) app.server.closeIdleConnections();
    done();
  });

  if (metrics) {
    app.addHook('onResponse', (request, reply, done) => {
      metrics.observeHttp(request.routeOptions.url ?? 'unknown', request.method, reply.statusCode, reply.elapsedTime / 1000);
      done();
    });
  }

  app.setNotFoundHandler((request, reply) => sendProblem(reply, problem(404, `no route ${request.method} ${request.url.split('?')[0]}`)));

  app.setErrorHandler((thrown, request, reply) => {
    const err = thrown as { statusCode?: unknown; message?: string };
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      // The client gets a title only; the log gets the error (the logger masks secrets).
      logger.error({ err: thrown, method: request.method, route: request.routeOptions.url }, 'HTTP request failed');
      return sendProblem(reply, problem(status));
    }
    // Client errors from fastify itself (malformed JSON, body too large, bad content type): its message is about the input.
    return sendProblem(reply, problem(status, typeof err.message === 'string' ? err.message : undefined));
  });

  app.get('/healthz', async (_request, reply) => {
    // Liveness only: never touches the database, so a slow disk never gets the process killed.
    return reply.header('cache-control', 'no-store').send({ status: 'pass' });
  });

  const gather = readinessProbe({ db: deps.db, engine: deps.engine, clock: deps.clock, settings: deps.readiness });
  app.get('/readyz', async (_request, reply) => {
    const doc = evaluateReadiness(await gather());
    if (doc.status === 'fail') reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    return reply
      .code(doc.status === 'fail' ? 503 : 200)
      .header('cache-control', 'no-store')
      .type(HEALTH_JSON)
      .send(JSON.stringify(doc));
  });

  if (deps.callbacks) registerGatewayCallbacks(app, { ...deps.callbacks, engine: deps.engine, db: deps.db, clock: deps.clock, logger, metrics });

  if (metrics) {
    app.get('/metrics', async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    });
  }

  if (deps.adminApi) {
    void app.register(
      adminApi({ ...deps.adminApi, db: deps.db, clock: deps.clock, ...(metrics ? { authFailure: () => metrics.authFailure() } : {}) }),
      { prefix: '/v1' },
    );
  }

  return {
    app,
    async listen() {
      await app.listen({ host: config.host, port: config.port });
      const address = app.server.address();
      if (address === null || typeof address === 'string') return String(address);
      return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
    },
    close() {
      closing = true;
      closed ??= app.close();
      return closed;
    },
  };
}
