/**
 * Keep-alive HTTP/1.1 connections to one gateway origin, for the gateway
 * adapters' JSON calls (http-client.ts). One request at a time per
 * connection (no pipelining), idle connections reused last-in first-out, a
 * new one opened whenever none is idle: how many are open is bounded by the
 * dispatcher's concurrency, which bounds the calls.
 *
 * Why not node:http: against a gateway that answers in 20 ms, the daemon's
 * event loop is the limit, and node:http's per-request machinery (a
 * ClientRequest and an IncomingMessage stream, the agent's bookkeeping,
 * a parser and half a dozen socket listeners attached and removed per
 * request) cost 130-160 us of CPU per call in a fresh process, where this
 * module costs 40-50 us for the same call (measured at concurrency 64 against
 * `rebill fake-gateway --latency-ms 20`, 5,000 calls). What a gateway
 * call needs is small: send a request, read one answer framed by
 * Content-Length, chunked transfer coding or the end of the connection.
 *
 * Every failure (connection refused or reset, a connection that closes
 * before the whole answer, an answer that is not HTTP/1.x, a header block or
 * body over the limits, the deadline) rejects the call and destroys the
 * connection: the caller cannot know whether the gateway acted, and treats
 * it as such. A connection is reused only after an answer that was read to
 * its end and did not ask to close.
 */
import net from 'node:net';
import tls from 'node:tls';

/** A gateway's answer: status and body text (UTF-8). */
export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/** Where connections go. */
export interface ConnectionTarget {
  readonly https: boolean;
  /** Host name or IP (IPv6 without brackets). */
  readonly hostname: string;
  readonly port: number;
  /** The Host header value. */
  readonly host: string;
}

/** Largest header block accepted (node:http's default limit is 16 KiB). */
const MAX_HEAD_BYTES = 64 * 1024;
/** Largest body accepted: a gateway's JSON answer is a few KiB; a runaway body must not fill the memory. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Characters a request target may not hold (node:http's rule: no spaces or controls). */
const INVALID_PATH = /[^\u0021-\u00ff]/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Characters a header value may not hold (node:http's rule): a CR or LF would end the header. */
const INVALID_HEADER_VALUE = /[^\t\u0020-\u007e\u0080-\u00ff]/;
const NOT_ASCII = /[^\u0000-\u007f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: [^\r\n]*)?$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?$/;

/** An error as node:net reports one, with a code (`ECONNRESET`, `HPE_INVALID`): the message names what went wrong. */
function failure(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** How the body of the answer being read is framed. */
type Framing =
  | { kind: 'length'; left: number }
  /** Chunked: a size line, its data, the CRLF after it; after the last (empty) chunk, trailer lines up to an empty one. */
  | { kind: 'chunked'; state: 'size' | 'data' | 'crlf' | 'trailers'; left: number }
  | { kind: 'close' }
  | { kind: 'none' };

/** One call on a connection: its answer so far and how to settle it. */
interface Exchange {
  resolve(answer: HttpAnswer): void;
  reject(err: Error): void;
  status: number;
  /** The answer asked to close the connection after it (or is HTTP/1.0 without keep-alive). */
  close: boolean;
  framing: Framing | null;
  body: Buffer[];
  bodyBytes: number;
}

class Connection {
  /** Bytes received and not consumed yet. */
  private pending: Buffer | null = null;
  private exchange: Exchange | null = null;
  closed = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly pool: ConnectionPool,
  ) {
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('end', () => this.ended());
    socket.on('error', (err: Error) => this.fail(err));
    socket.on('close', () => this.fail(failure('ECONNRESET', 'the connection closed before the whole answer arrived')));
  }

  /** Sends one request; `settle` learns the answer (or the failure). */
  send(request: string, ascii: boolean, body: string | undefined, exchange: Exchange): void {
    this.exchange = exchange;
    this.socket.ref();
    if (ascii) {
      this.socket.write(body === undefined ? request : request + body);
    } else {
      // Header values may hold latin1 (as node:http writes them); the body is UTF-8.
      this.socket.cork();
      this.socket.write(request, 'latin1');
      if (body !== undefined) this.socket.write(body, 'utf8');
      this.socket.uncork();
    }
  }

  /** Ends the connection and fails the call on it, if any (a deadline, a bad answer). */
  destroy(err: Error): void {
    this.fail(err);
  }

  private received(chunk: Buffer): void {
    const exchange = this.exchange;
    if (!exchange) {
      // Nothing was asked: bytes from the server on an idle connection are a protocol error.
      this.fail(failure('HPE_UNEXPECTED_DATA', 'the gateway sent data nobody asked for'));
      return;
    }
    this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    try {
      this.parse(exchange);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** Reads as much of the answer as has arrived. */
  private parse(exchange: Exchange): void {
    while (this.pending !== null && this.exchange === exchange) {
      if (exchange.framing === null) {
        if (!this.parseHead(exchange)) return;
        continue;
      }
      if (!this.parseBody(exchange, exchange.framing)) return;
    }
  }

  /** The status line and headers; false until the whole block has arrived. */
  private parseHead(exchange: Exchange): boolean {
    const buffer = this.pending!;
    const end = buffer.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buffer.length > MAX_HEAD_BYTES) throw failure('HPE_HEADER_OVERFLOW', 'the answer header is too large');
      return false;
    }
    if (end > MAX_HEAD_BYTES) throw failure('HPE_HEADER_OVERFLOW', 'the answer header is too large');
    const lines = buffer.toString('latin1', 0, end).split('\r\n');
    this.consume(end + 4);
    const status = STATUS_LINE.exec(lines[0]!);
    if (!status) throw failure('HPE_INVALID_CONSTANT', 'the answer is not HTTP/1.x');
    const code = Number(status[2]);
    let length: number | null = null;
    let chunked = false;
    let encoded = false;
    let close = status[1] === '0';
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) throw failure('HPE_INVALID_HEADER_TOKEN', 'the answer has a malformed header line');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== null && length !== Number(value))) throw failure('HPE_UNEXPECTED_CONTENT_LENGTH', 'the answer has a bad Content-Length');
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        encoded = true;
        const codings = value.toLowerCase().split(',');
        chunked = codings[codings.length - 1]!.trim() === 'chunked';
      } else if (name === 'connection') {
        for (const token of value.toLowerCase().split(',')) {
          if (token.trim() === 'close') close = true;
          else if (token.trim() === 'keep-alive' && status[1] === '0') close = false;
        }
      }
    }
    if (code >= 100 && code < 200) {
      // An interim answer (100 Continue, 103 Early Hints): the real one follows. 101 would switch protocols.
      if (code === 101) throw failure('HPE_UNEXPECTED_UPGRADE', 'the gateway switched protocols');
      return true;
    }
    exchange.status = code;
    exchange.close = close;
    if (code === 204 || code === 304) exchange.framing = { kind: 'none' };
    else if (encoded && chunked) exchange.framing = { kind: 'chunked', state: 'size', left: 0 };
    else if (encoded) exchange.framing = { kind: 'close' };
    else if (length !== null) exchange.framing = { kind: 'length', left: length };
    else exchange.framing = { kind: 'close' };
    if (exchange.framing.kind === 'close') exchange.close = true;
    if (exchange.framing.kind === 'none' || (exchange.framing.kind === 'length' && exchange.framing.left === 0)) this.complete(exchange);
    return true;
  }

  /** Body bytes; false when more must arrive first. */
  private parseBody(exchange: Exchange, framing: Framing): boolean {
    const buffer = this.pending!;
    switch (framing.kind) {
      case 'none':
        return false;
      case 'close':
        this.keep(exchange, buffer, buffer.length);
        this.pending = null;
        return false;
      case 'length': {
        const take = Math.min(framing.left, buffer.length);
        this.keep(exchange, buffer, take);
        this.consume(take);
        framing.left -= take;
        if (framing.left === 0) this.complete(exchange);
        return this.pending !== null;
      }
      case 'chunked':
        switch (framing.state) {
          case 'size': {
            const end = buffer.indexOf('\r\n');
            if (end < 0) return this.lineTooLong(buffer.length);
            const size = CHUNK_SIZE.exec(buffer.toString('latin1', 0, end));
            if (!size) throw failure('HPE_INVALID_CHUNK_SIZE', 'the answer has a malformed chunk');
            this.consume(end + 2);
            framing.left = parseInt(size[1]!, 16);
            framing.state = framing.left === 0 ? 'trailers' : 'data';
            return this.pending !== null;
          }
          case 'data': {
            const take = Math.min(framing.left, buffer.length);
            this.keep(exchange, buffer, take);
            this.consume(take);
            framing.left -= take;
            if (framing.left === 0) framing.state = 'crlf';
            return this.pending !== null;
          }
          case 'crlf':
            if (buffer.length < 2) return false;
            if (buffer[0] !== 13 || buffer[1] !== 10) throw failure('HPE_INVALID_CHUNK_SIZE', 'the answer has a malformed chunk');
            this.consume(2);
            framing.state = 'size';
            return this.pending !== null;
          case 'trailers': {
            // Trailer fields carry nothing a gateway call needs; the empty line ends the body.
            const end = buffer.indexOf('\r\n');
            if (end < 0) return this.lineTooLong(buffer.length);
            this.consume(end + 2);
            if (end === 0) this.complete(exchange);
            return this.pending !== null;
          }
        }
    }
  }

  /** A chunk or trailer line not complete yet: wait, unless it is already beyond any sane length. */
  private lineTooLong(bytes: number): boolean {
    if (bytes > MAX_HEAD_BYTES) throw failure('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'the answer has an overlong chunk line');
    return false;
  }

  private keep(exchange: Exchange, buffer: Buffer, bytes: number): void {
    if (bytes === 0) return;
    exchange.bodyBytes += bytes;
    if (exchange.bodyBytes > MAX_BODY_BYTES) throw failure('ERR_BODY_TOO_LARGE', 'the answer body is too large');
    exchange.body.push(bytes === buffer.length ? buffer : buffer.subarray(0, bytes));
  }

  private consume(bytes: number): void {
    const buffer = this.pending!;
    this.pending = bytes >= buffer.length ? null : buffer.subarray(bytes);
  }

  /** The whole answer is in: settle the call, then reuse or close the connection. */
  private complete(exchange: Exchange): void {
    this.exchange = null;
    const body = exchange.body.length === 1 ? exchange.body[0]!.toString('utf8') : Buffer.concat(exchange.body).toString('utf8');
    // Bytes beyond the answer were never asked for (no pipelining): the connection is not reused.
    if (exchange.close || this.pending !== null) this.close();
    else this.pool.release(this);
    exchange.resolve({ status: exchange.status, body });
  }

  /** The server ended its side: the end of a close-delimited answer, or of a connection no longer usable. */
  private ended(): void {
    const exchange = this.exchange;
    if (exchange?.framing?.kind === 'close') {
      this.complete(exchange);
      return;
    }
    this.fail(failure('ECONNRESET', 'the connection closed before the whole answer arrived'));
  }

  private fail(err: Error): void {
    const exchange = this.exchange;
    this.exchange = null;
    this.close();
    exchange?.reject(err);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = null;
    this.pool.forget(this);
    this.socket.destroy();
  }

  /** Idle: does not keep the process alive (as node:http's agent unrefs its free sockets). */
  idle(): void {
    this.socket.unref();
  }
}

/** Connections to one origin. */
export class ConnectionPool {
  /** Idle connections, the most recently used last. */
  private readonly idle: Connection[] = [];

  constructor(private readonly target: ConnectionTarget) {}

  /**
   * Sends one request and resolves with the answer. `headers` are name/value
   * pairs; Host and Content-Length are added. The deadline covers connecting,
   * the answer and its body: when it passes, the connection is destroyed and
   * the call fails with `timedOut()`.
   */
  request(method: string, path: string, headers: readonly string[], body: string | undefined, timeoutMs: number, timedOut: () => Error): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      if (INVALID_PATH.test(path)) throw failure('ERR_UNESCAPED_CHARACTERS', 'the request path contains unescaped characters');
      let head = `${method} ${path} HTTP/1.1\r\nHost: ${this.target.host}\r\n`;
      for (let i = 0; i + 1 < headers.length; i += 2) {
        const name = headers[i]!;
        const value = headers[i + 1]!;
        if (!TOKEN.test(name)) throw failure('ERR_INVALID_HTTP_TOKEN', `header name must be a valid HTTP token ["${name}"]`);
        if (INVALID_HEADER_VALUE.test(value)) throw failure('ERR_INVALID_CHAR', `invalid character in header content ["${name}"]`);
        head += `${name}: ${value}\r\n`;
      }
      if (body !== undefined) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
      head += '\r\n';
      const connection = this.idle.pop() ?? this.connect();
      const timer = setTimeout(() => connection.destroy(timedOut()), timeoutMs);
      connection.send(head, !NOT_ASCII.test(head) && (body === undefined || !NOT_ASCII.test(body)), body, {
        resolve(answer) {
          clearTimeout(timer);
          resolve(answer);
        },
        reject(err) {
          clearTimeout(timer);
          reject(err);
        },
        status: 0,
        close: false,
        framing: null,
        body: [],
        bodyBytes: 0,
      });
    });
  }

  /** A connection whose answer was read to its end, ready for the next request. */
  release(connection: Connection): void {
    connection.idle();
    this.idle.push(connection);
  }

  /** A connection that closed (idle or not): never handed out again. */
  forget(connection: Connection): void {
    const at = this.idle.indexOf(connection);
    if (at >= 0) this.idle.splice(at, 1);
  }

  private connect(): Connection {
    const { https, hostname, port } = this.target;
    const socket = https ? tls.connect({ host: hostname, port, servername: net.isIP(hostname) ? '' : hostname}) : net.connect({ host: hostname, port });
    socket.setNoDelay(true);
    return new Connection(socket, this);
  }
}
