/**
 * Running a write (POST or PATCH) of the admin API, with the `Idempotency-Key`
 * rules of SPEC section 9: the first response for a key is stored for 24 h
 * and replayed for the same request (`Idempotent-Replayed: true`); the same
 * key with another method, path or body is 422; a request still running with
 * that key is 409.
 *
 * Every write goes through the store's group commit (WriteBatcher): it runs
 * in a savepoint of a transaction shared with the writes that arrived with
 * it, and is answered once that transaction has committed.
 *
 * Money safety: the key is claimed, the change made and its response stored
 * in that one savepoint, so ten parallel POSTs with one key create one
 * subscription (the first claims it; the others find it claimed), and a crash
 * leaves no change without its stored response for a retry to miss. Client
 * errors (4xx) are stored and replayed too (Stripe does the same): the request
 * failed the same way it would again; the change is rolled back to a nested
 * savepoint and the claim kept. A 5xx rolls the whole savepoint back, claim
 * included: the key is free for a retry.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../../clock.js';
import { claimIdempotencyKey, completeIdempotencyKey, inSavepoint, type Db, type IdempotencyClaim, type Trx, type WriteBatcher, type WriteOptions } from '../../store/index.js';
import { PROBLEM_JSON, problem, sendProblem, type Problem } from '../problem.js';
import { PROBLEM_TYPE, problemFor, RequestInputError } from './errors.js';

/** How long a response is kept for replay (SPEC: 24 h). */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
/** A claim older than this whose request never completed is taken over (its request died; claims were committed on their own before 0.2). */
export const IDEMPOTENCY_LOCK_MS = 60_000;

/** What a write handler answers: a status and a JSON body. */
export interface WriteResponse {
  readonly status: number;
  readonly body: unknown;
  /**
   * The earliest instant the change made engine work due, passed to `wake`:
   * null when it made none; absent when the handler does not know (the
   * engine is woken now).
   */
  readonly dueAt?: number | null;
}

export interface WriteDeps {
  readonly db: Db;
  /** The group commit every write goes through. */
  readonly writes: WriteBatcher;
  readonly clock: Clock;
  /** Called after a change commits: due work may have been created or moved earlier (`dueAt`: see WriteResponse). */
  readonly wake: (dueAt?: number | null) => void;
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
 * Runs `command` through the group commit and sends its response, honouring
 * the request's Idempotency-Key. Errors the API maps (problemFor) become their
 * problem responses; anything else propagates to the server's 500 handler.
 * `options.locksRows`: the command reads the subscription for update (see
 * WriteOptions).
 */
export async function runWrite(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: WriteDeps,
  command: (trx: Trx, now: number) => Promise<WriteResponse>,
  options: WriteOptions = {},
): Promise<void> {
  const header = request.headers['idempotency-key'];
  const now = deps.clock.now();
  if (header === undefined) {
    let response: WriteResponse;
    try {
      response = await deps.writes.run((trx) => command(trx, now), options);
    } catch (err) {
      const mapped = problemFor(err);
      if (!mapped) throw err;
      response = asResponse(mapped);
    }
    if (response.status < 400) deps.wake(response.dueAt);
    send(reply, response);
    return;
  }
  if (Array.isArray(header) || !KEY_PATTERN.test(header)) {
    throw new RequestInputError('headers', [{ path: ['Idempotency-Key'], message: 'expected one key of 1..255 visible ASCII characters (a UUID is a good choice)' }]);
  }
  const path = request.url;
  const requestHash = createHash('sha256').update(`${request.method} ${path}\n${canonical(rawBodies.get(request) ?? null)}`).digest('hex');
  const outcome = await deps.writes.run(async (trx): Promise<{ claim: IdempotencyClaim; response?: WriteResponse }> => {
    const claim = await claimIdempotencyKey(trx, deps.db, { key: header, requestHash, method: request.method, path }, now, { ttlMs: IDEMPOTENCY_TTL_MS, lockMs: IDEMPOTENCY_LOCK_MS, ownTransaction: options.locksRows === true });
    if (claim.kind !== 'claimed') return { claim };
    let response: WriteResponse;
    try {
      response = await inSavepoint(trx, () => command(trx, now));
    } catch (err) {
      const mapped = problemFor(err);
      if (!mapped) throw err; // a 5xx: the claim rolls back with the rest
      // The change rolled back; its error is this key's answer.
      response = asResponse(mapped);
    }
    if (!(await completeIdempotencyKey(trx, header, claim.token, response.status, JSON.stringify(response.body)))) throw new LostClaim();
    return { claim, response };
  }, options);
  const { claim, response } = outcome;
  switch (claim.kind) {
    case 'claimed':
      if (response!.status < 400) deps.wake(response!.dueAt);
      send(reply, response!);
      return;
    case 'replay':
      reply.header('idempotent-replayed', 'true');
      if (claim.status >= 400) reply.code(claim.status).type(PROBLEM_JSON).send(claim.body);
      else reply.code(claim.status).type('application/json').send(claim.body);
      return;
    case 'mismatch':
      sendProblem(
        reply,
        problem(422, `Idempotency-Key was already used for another request (${claim.method} ${claim.path}, or another body); use a new key for a new request`, {
          type: `${PROBLEM_TYPE}idempotency-key-reused`,
        }),
      );
      return;
    case 'in_progress':
      reply.header('retry-after', '1');
      sendProblem(
        reply,
        problem(409, 'a request with this Idempotency-Key is still in progress; retry after it completes to get its response', {
          type: `${PROBLEM_TYPE}idempotency-key-in-progress`,
        }),
      );
      return;
  }
}

/** The claim is no longer this request's (another took the key over): roll back. */
class LostClaim extends Error {}
