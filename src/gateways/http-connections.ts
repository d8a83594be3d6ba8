/**
 * Keep-alive HTTP/1.1 connections to one origin, for the gateway adapters'
 * JSON calls (http-client.ts) and the webhook relay's deliveries: an undici
 * `Pool` driven through its low-level `dispatch` API. One request at a time
 * per connection (no pipelining), a new connection whenever none is idle: how
 * many are open is bounded by the caller's concurrency (the dispatcher's, the
 * relay's), which bounds the calls.
 *
 * Why not node:http (nor undici's `request`, nor fetch): against a gateway
 * that answers in 20 ms the daemon's event loop is the limit, and node:http's
 * per-request machinery (a ClientRequest and an IncomingMessage stream, the
 * agent's bookkeeping, socket listeners attached and removed per request) cost
 * 130-160 us of CPU per call in a fresh process; `request` wraps the answer in
 * a stream. `dispatch` hands the status and the body's chunks to a plain
 * handler. The daemon's CPU per charge against that gateway, runs
 * alternated: 468-470 us with node:http, 360-438 us with this. undici parses the
 * answers (Content-Length, chunked, to the end of the connection; interim 1xx
 * skipped, but an unsolicited 100 Continue fails the call as a bad response),
 * checks header names and values and the request path, and speaks TLS with
 * SNI and certificate checks. Idle connections do not keep the process
 * alive.
 *
 * Every failure (connection refused or reset, a connection that closes
 * before the whole answer, an answer that is not HTTP/1.x, a body over the
 * limit, the deadline) rejects the call; the caller cannot know whether the
 * gateway acted, and treats it as such. On the deadline the request is
 * aborted, which destroys its connection.
 */
import { Pool, type Dispatcher } from 'undici';

/** A gateway's answer: status and body text (UTF-8). */
export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/** Largest body accepted: a gateway's JSON answer is a few KiB; a runaway body must not fill the memory. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** An error with a code, as node:net and undici report them: the message names what went wrong. */
function failure(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Connections to one origin. */
export class ConnectionPool {
  private readonly pool: Pool;

  /** `origin`: scheme, host and port (`https://api.example:8443`); undici derives the Host header, TLS and SNI from it. */
  constructor(origin: string) {
    this.pool = new Pool(origin, {
      // The call's own deadline (below) covers connecting, the answer and its body.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  /**
   * Sends one request and resolves with the answer. `headers` are name/value
   * pairs; Host and Content-Length are added. The deadline covers waiting for
   * a connection, connecting, the answer and its body: when it passes, the
   * request is aborted (its connection destroyed) and the call fails with
   * `timedOut()`.
   */
  request(method: string, path: string, headers: readonly string[], body: string | undefined, timeoutMs: number, timedOut: () => Error): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      let controller: Dispatcher.DispatchController | null = null;
      let settled = false;
      let status = 0;
      const chunks: Buffer[] = [];
      let bytes = 0;
      const settle = (err: Error | null, answer?: HttpAnswer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(answer!);
      };
      const timer = setTimeout(() => {
        const err = timedOut();
        // Not on a connection yet (queued, connecting): abort as soon as it is.
        if (controller && !controller.aborted) controller.abort(err);
        settle(err);
      }, timeoutMs);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
          if (settled) c.abort(timedOut());
        },
        onResponseStart(_c, statusCode) {
          status = statusCode;
        },
        onResponseData(c, chunk) {
          bytes += chunk.length;
          if (bytes > MAX_BODY_BYTES) c.abort(failure('ERR_BODY_TOO_LARGE', 'the answer body is too large'));
          else chunks.push(chunk);
        },
        onResponseEnd() {
          settle(null, { status, body: Buffer.concat(chunks, bytes).toString('utf8') });
        },
        onResponseError(_c, err) {
          settle(err);
        },
      };
      try {
        this.pool.dispatch({ method: method as Dispatcher.HttpMethod, path, headers: headers as string[], body: body ?? null }, handler);
      } catch (err) {
        settle(err as Error);
      }
    });
  }

  /** Closes every connection at once: calls in flight fail (their outcome unknown to the caller). */
  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}
