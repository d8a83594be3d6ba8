/**
 * Every error of the admin API as problem+json (SPEC section 9): the typed
 * errors of the service, domain and store layers map to a status and a
 * problem type here, once; input problems carry JSON pointers into the body
 * (`/customer/email`) or name the query parameter. Nothing else of an error
 * reaches the client: 5xx bodies have a title only.
 */
import { schemaProblems, type PathSegment } from '../../config/index.js';
import { LifecycleError } from '../../domain/index.js';
import { NotFoundError } from '../../store/index.js';
import { ConflictError, FilterError, InputError } from '../../service/index.js';
import { problem, type Problem } from '../problem.js';
import { JsonBodyError } from './json.js';
import type * as z from 'zod';

/** One input problem: a key path and what is wrong there. */
export interface PathMessage {
  readonly path: readonly PathSegment[];
  readonly message: string;
}

/** Where in the request an input problem is. */
export type RequestPart = 'body' | 'querystring' | 'params' | 'headers';

/** A request that failed its schema: the problems by part, with their key paths. */
export class RequestInputError extends Error {
  readonly statusCode = 400;
  constructor(
    readonly part: RequestPart,
    readonly problems: readonly PathMessage[],
  ) {
    super(`invalid request ${part}`);
  }
}

/** RFC 6901: `~` and `/` inside a key are escaped. */
export function jsonPointer(path: readonly PathSegment[]): string {
  return path.map((segment) => `/${String(segment).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** A zod failure on one part of a request, as a RequestInputError. */
export function schemaError(part: RequestPart, schema: z.ZodType, value: unknown, issues: readonly z.core.$ZodIssue[]): RequestInputError {
  return new RequestInputError(part, schemaProblems(issues, schema, value));
}

/** Problem types are URNs: stable names a client can switch on, not pages to fetch. */
export const PROBLEM_TYPE = 'urn:rebill:problem:';
const TYPE_BASE = PROBLEM_TYPE;

function inputProblem(part: RequestPart, problems: readonly PathMessage[]): Problem {
  const errors = problems.map((p) =>
    part === 'body'
      ? { pointer: jsonPointer(p.path), detail: p.message }
      : { parameter: String(p.path[0] ?? part), pointer: jsonPointer(p.path), detail: p.message },
  );
  const first = problems[0];
  const where = part === 'body' ? 'request body' : part === 'querystring' ? 'query' : part === 'params' ? 'path' : 'headers';
  const detail = first ? `invalid ${where}: ${first.path.length > 0 ? `${first.path.join('.')}: ` : ''}${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}` : `invalid ${where}`;
  return problem(400, detail, { type: `${TYPE_BASE}invalid-request`, title: 'Invalid request', errors });
}

/**
 * The problem for an error thrown while handling a request, or undefined when
 * it is not one of ours (the server's error handler then answers 500).
 */
export function problemFor(err: unknown): Problem | undefined {
  if (err instanceof RequestInputError) return inputProblem(err.part, err.problems);
  if (err instanceof JsonBodyError) return inputProblem('body', [{ path: err.path, message: err.message }]);
  if (err instanceof InputError) return inputProblem('body', err.problems);
  if (err instanceof FilterError) return inputProblem('querystring', [{ path: [err.parameter], message: err.message.replace(`${err.parameter}: `, '') }]);
  if (err instanceof NotFoundError) return problem(404, err.message, { type: `${TYPE_BASE}not-found` });
  if (err instanceof ConflictError || err instanceof LifecycleError) {
    return problem(409, err.message, { type: `${TYPE_BASE}${err.code.toLowerCase().replace(/_/g, '-')}`, title: 'Conflict' });
  }
  return undefined;
}
