/**
 * The HTTP server over real HTTP on 127.0.0.1 (issue 8 items 1 and 2): a real
 * engine on a real SQLite file, a virtual clock for the sweep's age, raw
 * sockets for what happens to requests while the server closes.
 */
import net from 'node:net';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { VirtualClock } from '../../src/clock.js';
import { createHttpServer, type HttpMetrics, type HttpServer } from '../../src/http/index.js';
import { daemonEngine, openTempDb, testServerDeps, type TempDb } from '../support/engine-harness.js';

const T0 = Date.parse('2026-03-01T12:00:00Z');
let open: Array<{ server: HttpServer; tmp: TempDb }> = [];

afterEach(async () => {
  for (const { server, tmp } of open) {
    await server.close();
    await tmp.close().catch(() => {});
  }
  open = [];
});

async function start(options: { metrics?: HttpMetrics; routes?: (server: HttpServer) => void } = {}) {
  const tmp = await openTempDb({}, { name: 'http' });
  const clock = new VirtualClock(T0);
  const engine = daemonEngine(tmp.db, clock);
  const server = createHttpServer({
    ...testServerDeps(tmp, clock, engine),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  options.routes?.(server);
  const address = await server.listen();
  open.push({ server, tmp });
  return { tmp, clock, engine, server, address, url: `http://${address}` };
}

/**
 * A server with GET /slow, which answers {"done":true} only once `release()`
 * is called (`inFlight` resolves when it is entered), and a raw socket
 * connected to it, for writing requests byte by byte.
 */
async function slowRouteOnRawSocket() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const inFlight = new Promise<void>((resolve) => (entered = resolve));
  const { server, address } = await start({
    routes: (s) =>
      s.app.get('/slow', async () => {
        entered();
        await released;
        return { done: true };
      }),
  });
  const [host, port] = [address.split(':')[0]!, Number(address.split(':')[1])];
  const socket = net.connect(port, host);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { server, address, socket, inFlight, release };
}

/** Sends raw HTTP/1.1 text on `socket` and resolves with everything read until `until` matches. */
function readUntil(socket: net.Socket, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (until.test(text)) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => resolve(text));
  });
}

describe('rebill HTTP server', () => {
  it('listens on 127.0.0.1 with port 0 and reports the real port', async () => {
    const { address } = await start();
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(Number(address.split(':')[1])).toBeGreaterThan(0);
  });

  it('GET /healthz is 200 {"status":"pass"} and never touches the database (it answers with the database closed)', async () => {
    const { url, tmp } = await start();
    await tmp.db.destroy();
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'pass' });
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get('retry-after')).toBe('5');
    const doc = (await ready.json()) as { checks: Record<string, Array<{ status: string }>> };
    expect(doc.checks['database:responseTime']![0]!.status).toBe('fail');
  });

  it('GET /readyz is health+json: pass after a sweep, 503 once the sweep is 3 intervals old, pass again after the next sweep', async () => {
    const { url, clock, engine } = await start();
    await engine.sweep();
    const first = await fetch(`${url}/readyz`);
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^application\/health\+json/);
    expect(await first.json()).toMatchObject({ status: 'pass', checks: { 'scheduler:lastSweep': [{ status: 'pass', observedValue: 0 }] } });

    clock.advance(3 * 60_000 + 1_000); // the engine is never woken: no sweep for 3 intervals
    const stale = await fetch(`${url}/readyz`);
    expect(stale.status).toBe(503);
    expect(await stale.json()).toMatchObject({ status: 'fail', checks: { 'scheduler:lastSweep': [{ status: 'fail', observedValue: 181 }] } });

    await engine.sweep();
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('an unknown route is a 404 problem+json; a failing handler is a 500 without stack or message', async () => {
    const { url } = await start({
      routes: (s) =>
        s.app.get('/boom', async () => {
          throw new Error('secret internal detail at /srv/x.ts:12');
        }),
    });
    const missing = await fetch(`${url}/v2/nothing?x=1`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await missing.json()).toEqual({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'no route GET /v2/nothing' });
    const boom = await fetch(`${url}/boom`);
    expect(boom.status).toBe(500);
    const text = await boom.text();
    expect(JSON.parse(text)).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500 });
    expect(text).not.toMatch(/secret|\.ts|at /);
  });

  it('close(): the request in flight finishes, a new request on a busy connection gets 503 problem+json with Retry-After, then new connections are refused', async () => {
    const { server, address, socket, inFlight, release } = await slowRouteOnRawSocket();
    const responses = readUntil(socket, /"done":true[\s\S]*HTTP\/1\.1 503[\s\S]*\r\n\r\n\{[^}]*\}/);
    socket.write(`GET /slow HTTP/1.1\r\nHost: ${address}\r\n\r\n`);
    await inFlight;

    const closed = server.close();
    // Pipelined behind the request in flight, arriving after close() began.
    socket.write(`GET /healthz HTTP/1.1\r\nHost: ${address}\r\n\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 50)); // let the second request be parsed while the first still runs
    release();
    const text = await responses;
    socket.destroy();
    await closed;

    const [first, second] = text.split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 200/);
    expect(first).toMatch(/\{"done":true\}$/);
    expect(second).toMatch(/^HTTP\/1\.1 503/);
    expect(second).toMatch(/\r\nretry-after: 5\r\n/i);
    expect(second).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(second).toMatch(/"status":503/);
    await expect(fetch(`http://${address}/healthz`)).rejects.toThrow();
  });

  it('close(): a keep-alive connection whose request was in flight is ended after its response, so the close does not wait for the client or keepAliveTimeout', async () => {
    const { server, address, socket, inFlight, release } = await slowRouteOnRawSocket();
    onTestFinished(() => void socket.destroy());
    const endedByServer = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    const response = readUntil(socket, /"done":true/);
    socket.write(`GET /slow HTTP/1.1\r\nHost: ${address}\r\n\r\n`); // HTTP/1.1: keep-alive unless told otherwise
    await inFlight;

    const closed = server.close();
    // The response is sent only once the close has looked for idle connections (then the socket stops listening).
    for (let i = 0; i < 10_000 && server.app.server.listening; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(server.app.server.listening).toBe(false);
    release();
    expect(await response).toMatch(/^HTTP\/1\.1 200[\s\S]*\{"done":true\}$/);
    await endedByServer; // the server ended the connection; the client kept it open
    await closed;
  });

  it('calls the metrics hook once per response with the route pattern, and serves GET /metrics from its registry', async () => {
    const seen: Array<[string, string, number]> = [];
    const metrics: HttpMetrics = {
      registry: { contentType: 'text/plain; version=0.0.4; charset=utf-8', metrics: async () => '# HELP rebill_up 1\n# TYPE rebill_up gauge\nrebill_up 1\n' },
      observeHttp: (route, method, status, seconds) => {
        expect(seconds).toBeGreaterThanOrEqual(0);
        seen.push([route, method, status]);
      },
      authFailure: () => {},
    };
    const { url } = await start({ metrics });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/missing`)).status).toBe(404);
    const scrape = await fetch(`${url}/metrics`);
    expect(scrape.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await scrape.text()).toContain('rebill_up 1');
    await new Promise((resolve) => setTimeout(resolve, 20)); // onResponse runs after the body is sent
    expect(seen.slice(0, 2)).toEqual([
      ['/healthz', 'GET', 200],
      ['unknown', 'GET', 404],
    ]);
  });
});
