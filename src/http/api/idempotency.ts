/**
 * Running a write (POST or PATCH) of the admin API, with the `Idempotency-Key`
 * rules of SPEC section 9: the first response for a key is stored for 24 h
 * and replayed for the same request (`Idempotent-Replayed: true`); the same
 * key with another method, path or body is 422; a request still running with
 * that key is 409.
 *
 * Money safety: the key is claimed (committed) before the change runs, and
 * its response is stored in the change's own transaction, so ten parallel
 * POSTs with one key create one subscription, and a crash mid-request leaves
 * no change without its stored response for a retry to miss. Client errors
 * (4xx) are stored and replayed too (Stripe does the same): the request
 * failed the same way it would again. A 5xx releases the key for a retry.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../../clock.js';
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  inTransaction,
  releaseIdempotencyKey,
  type Db,
  type Trx,
} from '../../store/index.js';
import { PROBLEM_JSON, problem, sendProblem, type Problem } from '../problem.js';
import { PROBLEM_TYPE, problemFor, RequestInputError } from './errors.js';

/** How long a response is kept for replay (SPEC: 24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
/** A claim older than this whose request never completed is taken over (its request died). */
export const IDEMPOTENCY_LOCK_MS = 60_000;

/** What a write handler answers: a status and a JSON body. */
export interface WriteResponse {
  readonly status: number;
  readonly body: unknown;
}

export interface WriteDeps {
  readonly db: Db;
  readonly clock: Clock;
  /** Called after a change commits: due work may have been created or moved earlier. */
  readonly wake: () => void;
}

/** The raw (parsed, untransformed) body of each request, for the request hash. */
export const rawBodies = new WeakMap<object, unknown>();

/** JSON with object keys sorted, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are the same request. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

function send(reply: FastifyReply, response: WriteResponse): FastifyReply {
  if (response.status >= 400) return sendProblem(reply, response.body as Problem);
  return reply.code(response.status).type('application/json').send(JSON.stringify(response.body));
}

function asResponse(p: Problem): WriteResponse {
  return { status: p.status, body: p };
}

/**
 * Runs `command` in one transaction and sends its response, honouring the
 * request's Idempotency-Key. Errors the API maps (problemFor) become their
 * problem responses; anything else propagates to the server's 500 handler.
 */
export async function runWrite(request: FastifyRequest, reply: FastifyReply, deps: WriteDeps, command: (trx: Trx, now: number) => Promise<WriteResponse>): Promise<void> {
  await writeOnce(request, reply, deps, command);
}

async function writeOnce(request: FastifyRequest, reply: FastifyReply, deps: WriteDeps, command: (trx: Trx, now: number) => Promise<WriteResponse>): Promise<FastifyReply> {
  const header = request.headers['idempotency-key'];
  const now = deps.clock.now();
  if (header === undefined) {
    const response = await runMapped(deps, (trx) => command(trx, now));
    if (response.status < 400) deps.wake();
    return send(reply, response);
  }
  if (Array.isArray(header) || !KEY_PATTERN.test(header)) {
    throw new RequestInputError('headers', [{ path: ['Idempotency-Key'], message: 'expected one key of 1..255 visible ASCII characters (a UUID is a good choice)' }]);
  }
  const path = request.url;
  const requestHash = createHash('sha256').update(`${request.method} ${path}\n${canonical(rawBodies.get(request) ?? null)}`).digest('hex');
  const claim = await claimIdempotencyKey(deps.db, { key: header, requestHash, method: request.method, path }, now, { ttlMs: IDEMPOTENCY_TTL_MS, lockMs: IDEMPOTENCY_LOCK_MS });
  switch (claim.kind) {
    case 'replay':
      reply.header('idempotent-replayed', 'true');
      return claim.status >= 400
        ? reply.code(claim.status).type(PROBLEM_JSON).send(claim.body)
        : reply.code(claim.status).type('application/json').send(claim.body);
    case 'mismatch':
      return sendProblem(
        reply,
        problem(422, `Idempotency-Key was already used for another request (${claim.method} ${claim.path}, or another body); use a new key for a new request`, {
          type: `${PROBLEM_TYPE}idempotency-key-reused`,
        }),
      );
    case 'in_progress':
      reply.header('retry-after', '1');
      return sendProblem(
        reply,
        problem(409, 'a request with this Idempotency-Key is still in progress; retry after it completes to get its response', {
          type: `${PROBLEM_TYPE}idempotency-key-in-progress`,
        }),
      );
    case 'claimed':
      break;
  }
  let response: WriteResponse;
  try {
    response = await inTransaction(deps.db, async (trx) => {
      const out = await command(trx, now);
      if (!(await completeIdempotencyKey(trx, header, claim.token, out.status, JSON.stringify(out.body)))) throw new LostClaim();
      return out;
    });
    deps.wake();
  } catch (err) {
    const mapped = err instanceof LostClaim ? undefined : problemFor(err);
    if (!mapped) {
      await releaseIdempotencyKey(deps.db, header, claim.token).catch(() => {});
      throw err;
    }
    // The change rolled back; its error is this key's answer.
    response = asResponse(mapped);
    await inTransaction(deps.db, (trx) => completeIdempotencyKey(trx, header, claim.token, response.status, JSON.stringify(response.body)));
  }
  return send(reply, response);
}

/** The claim ran past IDEMPOTENCY_LOCK_MS and another request took the key: roll back. */
class LostClaim extends Error {}

async function runMapped(deps: WriteDeps, fn: (trx: Trx) => Promise<WriteResponse>): Promise<WriteResponse> {
  try {
    return await inTransaction(deps.db, fn);
  } catch (err) {
    const mapped = problemFor(err);
    if (!mapped) throw err;
    return asResponse(mapped);
  }
}
