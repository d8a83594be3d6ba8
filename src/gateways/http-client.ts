/**
 * The one place gateway adapters talk HTTP: built-in fetch with a timeout,
 * and the translation of transport failures into the two error classes the
 * engine understands. Everything that leaves this module as an error is safe
 * to log: it names the gateway and the route template (never a credential,
 * a card token or a full URL with one in it).
 */
import { GatewayProtocolError, GatewayUnavailableError } from './gateway.js';

export interface JsonRequest {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly url: string;
  /** Route template for messages, e.g. `POST /subscriptions/{id}/recurring`. */
  readonly route: string;
  readonly headers: Record<string, string>;
  /** Already serialised JSON body (signatures are computed over these exact bytes). */
  readonly body?: string;
}

export interface JsonResponse {
  readonly status: number;
  /** Parsed body; undefined for an empty body. */
  readonly json: unknown;
}

export interface HttpCaller {
  /** Gateway name for messages (`coolpay`). */
  readonly gateway: string;
  readonly timeoutSeconds: number;
  readonly fetch: typeof fetch;
  /** Strings never to repeat in an error message (the API key), should a gateway echo them back. */
  readonly secrets?: readonly string[];
}

/**
 * Sends one request and returns any answer below 500 with its parsed JSON.
 * Throws GatewayUnavailableError for a timeout (code GATEWAY_TIMEOUT), a
 * network error or a lost response, and a 5xx: in all of them the request
 * may or may not have been processed. Throws GatewayProtocolError for a body
 * that is not JSON. Deciding what a 4xx means is the adapter's job.
 */
export async function sendJson(caller: HttpCaller, request: JsonRequest): Promise<JsonResponse> {
  const what = `${caller.gateway} gateway: ${request.route}`;
  const timeoutMs = Math.max(1, Math.round(caller.timeoutSeconds * 1000));
  const signal = AbortSignal.timeout(timeoutMs);
  let text: string;
  let status: number;
  try {
    const init: RequestInit = { method: request.method, headers: request.headers, signal, redirect: 'error' };
    if (request.body !== undefined) init.body = request.body;
    const response = await caller.fetch(request.url, init);
    status = response.status;
    // The timeout covers the body too: a gateway that stalls mid-body is as unknown as one that never answers.
    text = await response.text();
  } catch (err) {
    throw transportError(what, err, caller.timeoutSeconds, signal);
  }
  if (status >= 500) {
    throw new GatewayUnavailableError(`${what} answered ${status}${redact(briefMessage(text), caller.secrets)}`);
  }
  if (text.trim() === '') return { status, json: undefined };
  try {
    return { status, json: JSON.parse(text) };
  } catch (cause) {
    throw new GatewayProtocolError(`${what} answered ${status} with a body that is not JSON`, { cause: safeCause(cause) });
  }
}

/** A timeout, connection refused/reset or a socket closed before the answer: all "outcome unknown". */
function transportError(what: string, err: unknown, timeoutSeconds: number, signal: AbortSignal): GatewayUnavailableError {
  const timedOut = signal.aborted || (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'));
  if (timedOut) {
    return new GatewayUnavailableError(`${what} timed out after ${timeoutSeconds} s`, { code: 'GATEWAY_TIMEOUT', cause: safeCause(err) });
  }
  const reason = describeNetworkError(err);
  return new GatewayUnavailableError(`${what} failed: ${reason}`, { cause: safeCause(err) });
}

/** undici reports "fetch failed" with the useful part (ECONNREFUSED, "other side closed") in `cause`. */
function describeNetworkError(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  const message = typeof cause?.message === 'string' ? cause.message : err instanceof Error ? err.message : String(err);
  return code ? `${code} (${message})` : message;
}

/**
 * Keeps only the name and message of an underlying error. fetch errors can
 * carry the request (with its Authorization header) in nested properties;
 * a logger that serialises `cause` deeply must never find a credential there.
 */
function safeCause(err: unknown): Error {
  if (err instanceof Error) {
    const copy = new Error(err.message);
    copy.name = err.name;
    return copy;
  }
  return new Error(String(err));
}

/** A short, single-line excerpt of an error body for messages. */
export function briefMessage(text: string): string {
  let message = text;
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed?.message === 'string') message = parsed.message;
  } catch {
    // Not JSON: quote the raw text instead.
  }
  const line = message.replace(/\s+/g, ' ').trim().slice(0, 200);
  return line ? `: ${line}` : '';
}

/** Replaces every occurrence of a secret (and its Basic-auth encoding) with `[redacted]`. */
export function redact(text: string, secrets: readonly string[] | undefined): string {
  let out = text;
  for (const secret of secrets ?? []) {
    if (secret.length < 4) continue;
    for (const form of [secret, Buffer.from(`:${secret}`).toString('base64')]) out = out.split(form).join('[redacted]');
  }
  return out;
}
