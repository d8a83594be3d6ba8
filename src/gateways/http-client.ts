/**
 * The one place gateway adapters talk HTTP: keep-alive HTTP/1.1 connections
 * per gateway (./http-connections.ts, an undici Pool driven through
 * `dispatch`) with a timeout, or an injected fetch (tests), and the
 * translation of transport failures into the two error classes the engine
 * understands. Built-in fetch (web streams, an AbortSignal.timeout per call)
 * cost about half of the daemon's CPU per charge against a 20 ms gateway,
 * and node:http most of what was left of a call (see http-connections.ts).
 * Everything that leaves this module as an error is safe to log: it names
 * the gateway and the route template (never a credential, a card token or a
 * full URL with one in it).
 */
import { ConnectionPool } from './http-connections.js';
import { GatewayProtocolError, GatewayUnavailableError } from './gateway.js';

export interface JsonRequest {
  readonly method: 'GET' | 'POST' | 'PUT';
  /** Path and query below the caller's baseUrl, starting with `/` (already URL-encoded). */
  readonly path: string;
  /** Route template for messages, e.g. `POST /subscriptions/{id}/recurring`. */
  readonly route: string;
  /** Header names and values, in pairs: `[name, value, name, value, ...]`. */
  readonly headers: readonly string[];
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
  /** Where requests go; see httpOrigin. */
  readonly origin: HttpOrigin;
  readonly timeoutSeconds: number;
  /** Sends through this fetch instead (tests that watch or alter requests); absent: the origin's keep-alive connections. */
  readonly fetch?: typeof fetch;
  /** Strings never to repeat in an error message (the API key), should a gateway echo them back. */
  readonly secrets?: readonly string[];
}

/** A gateway's base URL, read once, and its connections: every request only adds its path. */
export interface HttpOrigin {
  /** The base URL without a trailing slash (`https://api.coolpay.example/v1`). */
  readonly url: string;
  /** The base URL's path without a trailing slash (`/v1`, or empty). */
  readonly basePath: string;
  readonly connections: ConnectionPool;
}

/** Reads a gateway's base URL once (throws TypeError for one that is not an http(s) URL). */
export function httpOrigin(baseUrl: string): HttpOrigin {
  const url = new URL(baseUrl);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError('not an http(s) URL');
  return {
    url: url.href.replace(/\/+$/, ''),
    basePath: url.pathname.replace(/\/+$/, ''),
    connections: new ConnectionPool(url.origin),
  };
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
  let text: string;
  let status: number;
  try {
    // The timeout covers the body too: a gateway that stalls mid-body is as unknown as one that never answers.
    ({ status, text } = caller.fetch ? await viaFetch(caller.fetch, caller.origin, request, timeoutMs) : await viaConnections(caller.origin, request, timeoutMs));
  } catch (err) {
    throw transportError(what, err, caller.timeoutSeconds);
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

/** The error a request that ran out of time fails with (both paths). */
function timeoutError(cause?: unknown): Error {
  return Object.assign(new Error('timed out', cause === undefined ? undefined : { cause }), { name: 'TimeoutError' });
}

/** One request through an injected fetch; redirects are errors (an outcome we cannot know). */
async function viaFetch(f: typeof fetch, origin: HttpOrigin, request: JsonRequest, timeoutMs: number): Promise<{ status: number; text: string }> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const headers: Array<[string, string]> = [];
    for (let i = 0; i < request.headers.length; i += 2) headers.push([request.headers[i]!, request.headers[i + 1]!]);
    const init: RequestInit = { method: request.method, headers, signal, redirect: 'error' };
    if (request.body !== undefined) init.body = request.body;
    const response = await f(`${origin.url}${request.path}`, init);
    return { status: response.status, text: await response.text() };
  } catch (err) {
    throw signal.aborted ? timeoutError(err) : err;
  }
}

/**
 * One request on the gateway's keep-alive connections; the timeout covers
 * connecting, the answer and its body. A redirect is an error, as with
 * fetch's `redirect: 'error'`.
 */
async function viaConnections(origin: HttpOrigin, request: JsonRequest, timeoutMs: number): Promise<{ status: number; text: string }> {
  const answer = await origin.connections.request(request.method, `${origin.basePath}${request.path}`, request.headers, request.body, timeoutMs, timeoutError);
  if (answer.status >= 300 && answer.status < 400) throw new Error(`unexpected redirect (${answer.status})`);
  return { status: answer.status, text: answer.body };
}

/** A timeout, connection refused/reset or a socket closed before the answer: all "outcome unknown". */
function transportError(what: string, err: unknown, timeoutSeconds: number): GatewayUnavailableError {
  const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
  if (timedOut) {
    return new GatewayUnavailableError(`${what} timed out after ${timeoutSeconds} s`, { code: 'GATEWAY_TIMEOUT', cause: safeCause(err) });
  }
  const reason = describeNetworkError(err);
  return new GatewayUnavailableError(`${what} failed: ${reason}`, { cause: safeCause(err) });
}

/** Socket errors carry their code (ECONNREFUSED); undici reports "fetch failed" with the useful part in `cause`. */
function describeNetworkError(err: unknown): string {
  const own = err instanceof Error ? (err as Error & { code?: unknown }) : undefined;
  if (own && typeof own.code === 'string') return `${own.code} (${own.message})`;
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
