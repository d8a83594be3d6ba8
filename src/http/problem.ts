/**
 * RFC 9457 problem details (`application/problem+json`), the one error shape
 * of every HTTP response (SPEC section 9). Bodies carry a title and a detail
 * written for the client, never a stack trace or an internal message.
 */
import type { FastifyReply } from 'fastify';

export const PROBLEM_JSON = 'application/problem+json';

/** A problem body; `errors` lists JSON pointers into the request when the input was at fault. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail?: string;
  readonly errors?: ReadonlyArray<{ readonly pointer: string; readonly detail: string }>;
}

/** Seconds a client should wait before retrying a 503 (the daemon is stopping, or not ready). */
export const RETRY_AFTER_SECONDS = 5;

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** A problem with the standard title for `status`; `type` is about:blank unless a specific one is given. */
export function problem(status: number, detail?: string, extra: Partial<Problem> = {}): Problem {
  return { type: 'about:blank', title: TITLES[status] ?? 'Error', status, ...(detail ? { detail } : {}), ...extra };
}

/** Sends `body` as problem+json (with Retry-After on 503). */
export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  if (body.status === 503) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
  return reply.code(body.status).type(PROBLEM_JSON).send(JSON.stringify(body));
}
