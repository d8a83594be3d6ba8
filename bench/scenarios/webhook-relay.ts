/**
 * webhook-relay: can the outbox relay deliver events as fast as the engine
 * writes them? Two phases on one database, in one run:
 *
 * 1. `rebill run` without webhooks collects N due charges (simulator); the
 *    engine's event rate is the events it wrote over its collection window
 *    (first intent to last outcome, the daemon's own stamps).
 * 2. `rebill run` again, now with one webhook endpoint, a node:http receiver
 *    on 127.0.0.1 in the bench process that answers 204 at once. The
 *    endpoint was registered (its cursor) before phase 1, so the relay finds
 *    every event of phase 1 waiting: a backlog, which is what shows its
 *    capacity. The delivery rate is those events over the time from the
 *    daemon's "rebill ready" line to the last one received.
 *
 * The row is delivered/s over written/s: >= 1 means the outbox cannot grow
 * without bound while the engine collects at full speed.
 *
 * 3. The ceiling, for the detail: a bare client on the relay's HTTP library
 *    (undici; ../support/bare-webhook-client.mjs, a process of its own, the relay's
 *    16 keep-alive sockets) POSTs as many bodies of the same mean size to the
 *    same receiver: a relay with no other work could deliver that fast here.
 */
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import SQLite from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WEBHOOK_EVENT_TYPES } from '../../src/config/index.js';
import { endpointId } from '../../src/webhooks/index.js';
import { atLeast, row, type Scenario } from '../harness.js';
import { writeBenchConfig } from '../support/config.js';
import { collect, sqliteRecords, startDaemon, waitFor } from '../support/daemon.js';
import { freePort, ROOT, spawnNode, waitForLog } from '../support/processes.js';
import { seedSubscriptions, utcDate } from '../support/seed.js';

export const webhookRelay: Scenario = {
  rows: ['webhook-relay'],
  description: 'events delivered/s by the relay to a local 204 receiver (from a backlog) vs events written/s by the engine collecting N charges',
  async run(ctx) {
    const n = ctx.size(10_000, 500);
    const received = new Set<string>();
    let lastAt = 0;
    let bytes = 0;
    let bareReceived = 0;
    const receiver = createServer((req, res) => {
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => {
        if (String(req.headers['webhook-id']).startsWith('bare_')) {
          bareReceived++;
          res.writeHead(204).end();
          return;
        }
        received.add(String(req.headers['webhook-id']));
        lastAt = Date.now();
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((ok) => receiver.listen(0, '127.0.0.1', ok));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
      const secret = `whsec_${randomBytes(24).toString('base64')}`;
      const dir = ctx.dir('relay');
      const port = await freePort();
      const config = writeBenchConfig({ dir, httpPort: port });
      const seeded = await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: () => ({ template: 0 }) });
      // The endpoint as the relay registers it, its cursor at the end of the seeding events.
      const sqlite = new SQLite(join(dir, 'rebill.db'));
      const now = new Date().toISOString();
      sqlite.prepare('insert into webhook_endpoints (id, url, cursor, created_at, updated_at) values (?, ?, ?, ?, ?)').run(endpointId(url), url, seeded.lastEventId, now, now);
      sqlite.close();

      const engine = await collect({ dir, config, port, expected: n, timeoutMs: 120_000 + n * 10 });
      const written = new SQLite(join(dir, 'rebill.db'), { readonly: true });
      const types = WEBHOOK_EVENT_TYPES as readonly string[];
      const events = (written.prepare('select type from events where id > ?').all(seeded.lastEventId) as Array<{ type: string }>).filter((e) => types.includes(e.type)).length;
      written.close();
      const writeRate = events / engine.seconds;
      ctx.log(`engine: ${events} events in ${engine.seconds.toFixed(2)} s = ${writeRate.toFixed(0)}/s`);

      writeBenchConfig({ dir, httpPort: port, webhooks: [{ url, secret }], logLevel: 'info' });
      const daemon = await startDaemon(dir, config, port, 'relay');
      try {
        const ready = await waitForLog(daemon.child, /"time":"([^"]+)"[^\n]*"msg":"rebill ready"/);
        const readyAt = Date.parse(ready[1]!);
        await waitFor(daemon.child, () => received.size >= events, `${events} deliveries`, 60_000 + events * 10, 50);
        const records = sqliteRecords(dir);
        const { count } = await records.window();
        await records.close();
        if (count !== n) throw new Error(`phase 2 made ${count - n} attempts; it should only deliver`);
        await daemon.stop();
        const seconds = (lastAt - readyAt) / 1000;
        const deliverRate = events / seconds;
        ctx.log(`relay: ${events} delivered in ${seconds.toFixed(2)} s = ${deliverRate.toFixed(0)}/s`);
        const ceiling = await bareClient(ctx.dir('relay-bare'), url, events, Math.round(bytes / received.size));
        if (bareReceived !== events) throw new Error(`the bare client's receiver counted ${bareReceived} requests, expected ${events}`);
        ctx.log(`bare client: ${events} in ${ceiling.seconds.toFixed(2)} s = ${(events / ceiling.seconds).toFixed(0)}/s, ${((ceiling.cpuSeconds / events) * 1e6).toFixed(0)} us CPU each`);
        return [
          row(
            'webhook-relay',
            deliverRate,
            'events/s',
            writeRate,
            atLeast(1),
            `${n} charges wrote ${events} events in ${engine.seconds.toFixed(1)} s; the relay delivered them (a backlog, one endpoint) in ${seconds.toFixed(1)} s; ` +
              `ceiling: a bare undici client (16 at a time, same receiver, ${Math.round(bytes / received.size)}-byte bodies) did ${(events / ceiling.seconds).toFixed(0)}/s (${((ceiling.cpuSeconds / events) * 1e6).toFixed(0)} us CPU each), ${(events / ceiling.seconds / writeRate).toFixed(2)} of the write rate`,
          ),
        ];
      } catch (err) {
        await daemon.child.stop('SIGKILL');
        throw err;
      }
    } finally {
      receiver.closeAllConnections();
      await new Promise((ok) => receiver.close(ok));
    }
  },
};

/** Runs ../support/bare-webhook-client.mjs against the receiver: its wall and CPU seconds for `count` POSTs. */
async function bareClient(dir: string, url: string, count: number, bytes: number): Promise<{ seconds: number; cpuSeconds: number }> {
  const child = spawnNode(join(ROOT, 'bench/support/bare-webhook-client.mjs'), [url, String(count), String(bytes), '16'], { dir, name: 'bare-client' });
  const code = await child.exited;
  const line = readFileSync(join(dir, 'bare-client.log'), 'utf8').trim().split('\n').at(-1) ?? '';
  if (code !== 0) throw new Error(`the bare webhook client exited ${code}: ${line}`);
  return JSON.parse(line) as { seconds: number; cpuSeconds: number };
}
