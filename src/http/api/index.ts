/**
 * The `/v1` admin API (SPEC section 9) as one encapsulated fastify plugin:
 * bearer auth with scopes, a lossless JSON body parser, one zod schema per
 * request part (which also yields the handler's types and the OpenAPI
 * document at `/v1/openapi.json`), idempotent writes, problem+json errors.
 * Every operation is a call into src/service, which the operator CLI uses
 * too; nothing here knows SQL or the engine.
 */
import swagger from '@fastify/swagger';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { createJsonSchemaTransform, createJsonSchemaTransformObject, type ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import type { Clock } from '../../clock.js';
import { parseWithConfigMessages } from '../../config/index.js';
import { WriteBatcher, type Db } from '../../store/index.js';
import type { Catalog } from '../../service/index.js';
import { PROBLEM_JSON, problem, sendProblem } from '../problem.js';
import { allows, tokenChecker, type Scope, type TokenConfig } from './auth.js';
import { problemFor, PROBLEM_TYPE, RequestInputError, schemaError, type RequestPart } from './errors.js';
import { rawBodies } from './idempotency.js';
import { parseJsonBody } from './json.js';
import { registerRoutes } from './routes.js';
import { apiRegistry } from './schemas.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The token scope a `/v1` route needs; absent: no bearer token (the OpenAPI document). */
    scope?: Scope;
  }
}

export type { Scope, TokenConfig } from './auth.js';

/** Everything the admin API needs. */
export interface AdminApiDeps {
  readonly db: Db;
  readonly clock: Clock;
  readonly tokens: readonly TokenConfig[];
  readonly catalog: Catalog;
  /**
   * Wakes the engine after a change that may have made work due (a create with a past start, a retry).
   * `dueAt`: the earliest instant the change made work due (null: none; absent: unknown, wake now).
   */
  readonly wake: (dueAt?: number | null) => void;
  /** Counts failed authentications (`rebill_http_auth_failures_total`). */
  readonly authFailure?: () => void;
  /** The version shown in the OpenAPI document. */
  readonly version: string;
  /** The group commit of the API's writes (default: one made here on `db`; tests pass theirs to read its stats). */
  readonly writes?: WriteBatcher;
}

const PARTS: Record<string, RequestPart> = { body: 'body', querystring: 'querystring', params: 'params', headers: 'headers' };

/** The admin API as a fastify plugin; register it with `{ prefix: '/v1' }`. */
export function adminApi(deps: AdminApiDeps): FastifyPluginAsync {
  return async (api) => {
      // Requests are validated by their zod schemas with the config's messages; responses are
      // plain JSON (their schemas document them, they do not re-validate what the service built).
      api.setValidatorCompiler(({ schema, httpPart }) => {
        const zodSchema = schema as unknown as z.ZodType;
        const part = PARTS[httpPart ?? 'body'] ?? 'body';
        return (input: unknown) => {
          // A POST without a body (curl -X POST) arrives as null: the same as no body.
          const data = part === 'body' && input === null ? undefined : input;
          const result = parseWithConfigMessages(zodSchema, data);
          if (result.success) return { value: result.data };
          if (part === 'body' && data === undefined) {
            return { error: new RequestInputError('body', [{ path: [], message: 'required: send a JSON object (Content-Type: application/json)' }]) };
          }
          return { error: schemaError(part, zodSchema, data, result.error.issues) };
        };
      });
      api.setSerializerCompiler(() => (data) => JSON.stringify(data));

      // Only JSON bodies (anything else is 415), parsed without losing an amount's text.
      api.removeAllContentTypeParsers();
      api.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, (request, body, done) => {
        try {
          const parsed = parseJsonBody(body as string);
          rawBodies.set(request, parsed);
          done(null, parsed);
        } catch (err) {
          done(err as Error, undefined);
        }
      });

      const check = tokenChecker(deps.tokens);
      const authorize = (request: FastifyRequest, reply: FastifyReply, needed: Scope): boolean => {
        const auth = check(request.headers.authorization);
        if (auth.kind !== 'granted') {
          deps.authFailure?.();
          reply.header('www-authenticate', 'Bearer realm="rebill"');
          const detail =
            deps.tokens.length === 0
              ? 'no admin tokens are configured (http.tokens); add one to use the API'
              : auth.kind === 'missing'
                ? 'send Authorization: Bearer <token> (a token from http.tokens)'
                : 'unknown bearer token';
          sendProblem(reply, problem(401, detail, { type: `${PROBLEM_TYPE}unauthorized` }));
          return false;
        }
        if (!allows(auth.scope, needed)) {
          deps.authFailure?.();
          sendProblem(reply, problem(403, `this token has scope ${auth.scope}; ${request.method} ${request.routeOptions.url} needs ${needed}`, { type: `${PROBLEM_TYPE}forbidden` }));
          return false;
        }
        return true;
      };
      // A route's scope is checked before its body is read. Callback form, as the server's hooks
      // (server.ts); a response sent here ends the request without done().
      api.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
        const needed = request.routeOptions.config.scope;
        if (needed === undefined || authorize(request, reply, needed)) done();
      });

      api.setErrorHandler((err, _request, reply) => {
        const mapped = problemFor(err);
        if (mapped) return sendProblem(reply, mapped);
        throw err; // the server's handler: fastify's own 4xx, or a 500 with a title only
      });

      await api.register(swagger, {
        openapi: {
          openapi: '3.1.0',
          info: {
            title: 'rebill admin API',
            version: deps.version,
            description:
              'Subscriptions, charges, events and plans of a rebill daemon. Every request needs `Authorization: Bearer <token>` ' +
              '(scope `read` for GETs, `write` for changes). POST and PATCH honour `Idempotency-Key`. Errors are ' +
              '`application/problem+json` with JSON pointers. Amounts are decimal strings in major units.',
          },
          servers: [{ url: '/' }],
          components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
          security: [{ bearer: [] }],
        },
        transform: createJsonSchemaTransform({ skipList: [], schemaRegistry: apiRegistry, zodToJsonConfig: { unrepresentable: 'any' } }),
        transformObject: createJsonSchemaTransformObject({ schemaRegistry: apiRegistry, zodToJsonConfig: { unrepresentable: 'any' } }),
      });

      api.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) =>
        reply.type('application/json').send(JSON.stringify(api.swagger())),
      );

      registerRoutes(api.withTypeProvider<ZodTypeProvider>(), { ...deps, writes: deps.writes ?? new WriteBatcher(deps.db) });
  };
}

export { PROBLEM_JSON };
