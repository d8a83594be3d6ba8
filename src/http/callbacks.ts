/**
 * `POST /v1/gateway-callbacks/{gateway}` (SPEC section 9): a gateway tells
 * rebill that a pending payment settled or a payment link was paid, sooner
 * than the next status query would find out.
 *
 * Not behind the admin API's bearer tokens: the gateway signs each callback
 * instead (CoolPay / QuickPay: `QuickPay-Checksum-Sha256`, hex HMAC-SHA256 of
 * the raw body keyed with the gateway's `callbackSecret`). The HMAC covers the
 * bytes as sent, so this plugin keeps the raw body as a Buffer (its own
 * content-type parser, encapsulated: the rest of the server parses JSON as
 * usual) and parses JSON only after the signature matched.
 *
 * Answers: 200 for every verified callback, whatever it changed (a gateway
 * retries anything else, and a replay or an order_id that is not ours will
 * not become settleable by retrying); 401 and nothing read or written for a
 * missing or wrong signature; 404 when the gateway is not configured for
 * callbacks; 400 for a signed body that is not a payment or agreement; 503
 * while the clock guard holds (nothing is stamped with a clock that jumped;
 * the gateway retries later). The secret and the body are never echoed or
 * logged.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { GatewayConfig } from '../config/index.js';
import type { CollectionPolicy } from '../domain/index.js';
import { settleFromCallback, type Engine } from '../engine/index.js';
import { CallbackBodyError, COOLPAY_CHECKSUM_HEADER, readCoolpayCallback, verifyCoolpayCallback } from '../gateways/index.js';
import type { Db } from '../store/index.js';
import { problem, sendProblem } from './problem.js';
import type { HttpMetrics } from './server.js';

/** The route, for metrics and docs. */
export const GATEWAY_CALLBACK_ROUTE = '/v1/gateway-callbacks/:gateway';

/** What `rebill run` passes for callbacks: the configured gateways and the policy settlements follow. */
export interface GatewayCallbackSettings {
  /** The `gateways:` config section; a coolpay gateway takes callbacks once it has a `callbackSecret`. */
  readonly gateways: Readonly<Record<string, GatewayConfig>>;
  readonly policy: CollectionPolicy;
}

export interface GatewayCallbackDeps extends GatewayCallbackSettings {
  readonly engine: Pick<Engine, 'kick' | 'health'>;
  readonly db: Db;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics?: Pick<HttpMetrics, 'authFailure'> | undefined;
}

/** Registers the callback route as an encapsulated plugin (its raw-body parser stays inside it). */
export function registerGatewayCallbacks(app: FastifyInstance, deps: GatewayCallbackDeps): void {
  const { gateways, logger } = deps;
  const settleDeps = { db: deps.db, clock: deps.clock, policy: deps.policy, logger, kick: () => deps.engine.kick() };

  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

    scope.post<{ Params: { gateway: string } }>(GATEWAY_CALLBACK_ROUTE, async (request, reply) => {
      const name = request.params.gateway;
      const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
      const config = Object.hasOwn(gateways, name) ? gateways[name] : undefined;
      if (!config) return sendProblem(reply, problem(404, `no gateway ${shown} in gateways:`));
      if (config.type !== 'coolpay') {
        return sendProblem(reply, problem(404, `gateway ${shown} is type ${config.type}, which sends no callbacks; only coolpay gateways do`));
      }
      const secret = config.callbackSecret;
      if (!secret) {
        return sendProblem(
          reply,
          problem(404, `gateway ${shown} takes no callbacks: set gateways.${name}.callbackSecret to the CoolPay account's private key (callbacks are signed with it)`),
        );
      }

      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const checksum = request.headers[COOLPAY_CHECKSUM_HEADER.toLowerCase()];
      if (!verifyCoolpayCallback(raw, checksum, secret)) {
        deps.metrics?.authFailure();
        logger.warn({ gateway: name, signature: checksum === undefined ? 'missing' : 'mismatch', remote: request.ip }, 'gateway callback refused: bad signature');
        return sendProblem(reply, problem(401, `missing or wrong ${COOLPAY_CHECKSUM_HEADER} signature`, { title: 'Unauthorized' }));
      }

      let body: unknown;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return sendProblem(reply, problem(400, 'the callback body is not JSON'));
      }
      const resourceType = request.headers['quickpay-resource-type'];
      let report;
      try {
        report = readCoolpayCallback(body, typeof resourceType === 'string' ? resourceType : undefined);
      } catch (err) {
        if (err instanceof CallbackBodyError) return sendProblem(reply, problem(400, err.message));
        throw err;
      }

      if (!deps.engine.health().clockGuard.ok) {
        return sendProblem(reply, problem(503, 'the wall clock jumped; rebill records no outcome until it is back in line'));
      }
      const result = await settleFromCallback(settleDeps, name, report);
      return reply.code(200).send({ received: true, result: result.kind });
    });
  });
}
