import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionPool } from '../../src/gateways/http-connections.js';

/**
 * A raw TCP server on 127.0.0.1 that answers each request (head and body,
 * read up to the blank line plus Content-Length) with `answer(n)`: the bytes
 * to write, as one string or as pieces written one by one. It counts
 * connections and keeps the requests it read.
 */
async function rawServer(answer: (n: number, socket: net.Socket) => string | string[] | null) {
  const requests: string[] = [];
  /** The connection each request arrived on. */
  const carriers: net.Socket[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        requests.push(buffered.slice(0, end + 4 + length));
        carriers.push(socket);
        buffered = buffered.slice(end + 4 + length);
        const out = answer(requests.length, socket);
        if (out === null) continue;
        const pieces = typeof out === 'string' ? [out] : out;
        void (async () => {
          for (const piece of pieces) {
            socket.write(piece, 'utf8');
            if (pieces.length > 1) await new Promise((resolve) => setTimeout(resolve, 1));
          }
        })();
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const pool = new ConnectionPool(`http://127.0.0.1:${port}`);
  const close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  servers.push(close);
  return { pool, port, requests, carriers, sockets, connections: () => connections, close };
}

const servers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of servers.splice(0)) await close();
});

const timedOut = () => Object.assign(new Error('timed out'), { name: 'TimeoutError' });
const json = (status: number, body: string, extra = '') => `HTTP/1.1 ${status} X\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

/** undici gives a connection back to its pool after the answer's callbacks have returned: a call made in the same turn gets another one. */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

async function failure(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected the request to fail');
}

describe('ConnectionPool', () => {
  it('sends Host, the headers and Content-Length, reads a Content-Length answer, and reuses the connection', async () => {
    const server = await rawServer((n) => json(200, `{"n":${n},"text":"é"}`));
    const first = await server.pool.request('POST', '/v1/pay?x=1', ['Authorization', 'Basic a2V5', 'Idempotency-Key', 's:1:1'], '{"amount":999}', 5000, timedOut);
    await nextTurn();
    const second = await server.pool.request('GET', '/v1/pay', ['Accept', 'application/json'], undefined, 5000, timedOut);
    expect(first).toEqual({ status: 200, body: '{"n":1,"text":"é"}' });
    expect(second.body).toBe('{"n":2,"text":"é"}');
    expect(server.connections()).toBe(1);
    const [head, body] = server.requests[0]!.split('\r\n\r\n');
    const lines = head!.split('\r\n');
    expect(lines[0]).toBe('POST /v1/pay?x=1 HTTP/1.1');
    expect(lines.map((l) => l.toLowerCase())).toEqual(expect.arrayContaining([`host: 127.0.0.1:${server.port}`, 'content-length: 14']));
    expect(lines).toEqual(expect.arrayContaining(['Authorization: Basic a2V5', 'Idempotency-Key: s:1:1']));
    expect(body).toBe('{"amount":999}');
    expect(server.requests[1]).toMatch(/^GET \/v1\/pay HTTP\/1\.1\r\n/);
    expect(server.requests[1]).toContain('\r\nAccept: application/json\r\n');
    expect(server.requests[1]!.toLowerCase()).not.toContain('content-length');
  });

  it('reads a chunked answer that arrives a few bytes at a time, with chunk extensions and trailers', async () => {
    const body = 'HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{"id"\r\nA\r\n:1234567,"\r\n7\r\nstate":\r\n3\r\n"x"\r\n1\r\n}\r\n0\r\nX-Trailer: yes\r\n\r\n';
    const pieces: string[] = [];
    for (let i = 0; i < body.length; i += 3) pieces.push(body.slice(i, i + 3));
    const server = await rawServer(() => pieces);
    const answer = await server.pool.request('GET', '/p', [], undefined, 5000, timedOut);
    expect(answer).toEqual({ status: 202, body: '{"id":1234567,"state":"x"}' });
    // Read to its end: the connection is reused.
    await nextTurn();
    await server.pool.request('GET', '/p', [], undefined, 5000, timedOut);
    expect(server.connections()).toBe(1);
  });

  it('skips an interim 103 answer, and closes a connection whose answer says Connection: close', async () => {
    const server = await rawServer((n) => `HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n${json(200, `{"n":${n}}`, 'Connection: close\r\n')}`);
    expect((await server.pool.request('GET', '/a', [], undefined, 5000, timedOut)).body).toBe('{"n":1}');
    await nextTurn();
    expect((await server.pool.request('GET', '/a', [], undefined, 5000, timedOut)).body).toBe('{"n":2}');
    expect(server.connections()).toBe(2);
  });

  it('reads an answer without length to the end of the connection', async () => {
    const server = await rawServer((_n, socket) => {
      socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"all":"of it"}');
      return null;
    });
    expect(await server.pool.request('GET', '/a', [], undefined, 5000, timedOut)).toEqual({ status: 200, body: '{"all":"of it"}' });
  });

  it('an unsolicited 100 Continue fails the call (undici: a bad response): outcome unknown, as any broken answer', async () => {
    const server = await rawServer((n) => `HTTP/1.1 100 Continue\r\n\r\n${json(200, `{"n":${n}}`)}`);
    expect((await failure(server.pool.request('POST', '/a', [], '{}', 5000, timedOut))).code).toBe('UND_ERR_SOCKET');
  });

  it('a connection that closes before the whole body fails the call (UND_ERR_SOCKET), and the next call gets a new connection', async () => {
    const server = await rawServer((n, socket) => {
      if (n === 1) {
        socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial"');
        return null;
      }
      return json(200, '{"ok":true}');
    });
    const err = await failure(server.pool.request('POST', '/a', [], '{}', 5000, timedOut));
    expect(err.code).toBe('UND_ERR_SOCKET');
    expect((await server.pool.request('POST', '/a', [], '{}', 5000, timedOut)).body).toBe('{"ok":true}');
    expect(server.connections()).toBe(2);
  });

  it('an idle connection the server closed is not reused', async () => {
    const server = await rawServer(() => json(200, '{}'));
    await server.pool.request('GET', '/a', [], undefined, 5000, timedOut);
    for (const socket of server.sockets) socket.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await server.pool.request('GET', '/a', [], undefined, 5000, timedOut)).status).toBe(200);
    expect(server.connections()).toBe(2);
  });

  it('the deadline fails the call with the given error and drops the connection', async () => {
    const server = await rawServer(() => null);
    const err = await failure(server.pool.request('POST', '/slow', [], '{}', 50, timedOut));
    expect(err.name).toBe('TimeoutError');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.carriers).toHaveLength(1);
    expect(server.sockets.has(server.carriers[0]!)).toBe(false);
  });

  it('an answer that is not HTTP fails the call', async () => {
    const server = await rawServer(() => 'SSH-2.0-OpenSSH\r\n\r\n');
    expect((await failure(server.pool.request('GET', '/a', [], undefined, 5000, timedOut))).name).toBe('HTTPParserError');
  });

  it('bytes after a complete answer (never asked for) drop the connection instead of reusing it', async () => {
    const server = await rawServer((n) => (n === 1 ? json(200, '{"n":1}') + json(200, '{"n":"extra"}') : json(200, `{"n":${n}}`)));
    expect((await server.pool.request('GET', '/a', [], undefined, 5000, timedOut)).body).toBe('{"n":1}');
    expect((await server.pool.request('GET', '/a', [], undefined, 5000, timedOut)).body).toBe('{"n":2}');
    expect(server.connections()).toBe(2);
  });

  it('refuses a header value with a line break, and a path with a space, before sending anything', async () => {
    const server = await rawServer(() => json(200, '{}'));
    expect((await failure(server.pool.request('GET', '/a', ['Idempotency-Key', 'k\r\nX-Injected: 1'], undefined, 5000, timedOut))).code).toBe('UND_ERR_INVALID_ARG');
    expect((await failure(server.pool.request('GET', '/a b', [], undefined, 5000, timedOut))).code).toBe('UND_ERR_INVALID_ARG');
    expect(server.connections()).toBe(0);
  });

  it('a refused connection fails the call with ECONNREFUSED', async () => {
    const server = await rawServer(() => null);
    await server.close();
    expect((await failure(server.pool.request('GET', '/a', [], undefined, 5000, timedOut))).code).toBe('ECONNREFUSED');
  });
});
