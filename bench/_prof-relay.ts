/**
 * Profiling helper for webhook-relay (not a bench row): seeds N subscriptions
 * due now and collects them with no webhook (once per N: the collected
 * database is kept in /tmp/relayprof/template-N and copied for each run),
 * then spawns `rebill run` with one endpoint (`--cpu-prof` into $PROF when
 * set), a node:http receiver in this process answering 204, and prints the
 * delivery rate and the daemon's CPU time per delivery (utime+stime from
 * /proc, between its "rebill ready" line and the last event received: the
 * outbox scan is inside that window, as in the row).
 * BARE=1 then runs the row's bare undici client (bench/support/bare-webhook-client.mjs) against the
 * same receiver: its CPU per request, under the same load, is the HTTP part of
 * a delivery; the rest of the daemon's is the relay's own work.
 * `npx tsx bench/_prof-relay.ts 10000`; PROF=<dir> adds --cpu-prof, PRELOAD=<module> an --import.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { endpointId } from '../src/webhooks/index.js';
import { writeBenchConfig } from './support/config.js';
import { collect, cpuSecondsOf, waitFor } from './support/daemon.js';
import { freePort, REBILL_BIN, ROOT, spawnNode, spawnRebill, waitForLog } from './support/processes.js';
import { seedSubscriptions, utcDate } from './support/seed.js';

const n = Number(process.argv[2] ?? 10_000);
const template = `/tmp/relayprof/template-${n}`;
const dir = '/tmp/relayprof/run';
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

let received = 0;
let firstAt = 0;
let lastAt = 0;
/** The longest pause between two receipts, and when it ended (a stall in the relay's pipeline shows here). */
let longestGap = { ms: 0, at: 0, after: 0 };
/** Pauses over 20 ms between receipts: how many, and their total (the wall time the relay sent nothing). */
const pauses = { count: 0, ms: 0 };
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const now = Date.now();
    if (received === 0) firstAt = now;
    else {
      if (now - lastAt > longestGap.ms) longestGap = { ms: now - lastAt, at: now, after: received };
      if (now - lastAt > 20) {
        pauses.count++;
        pauses.ms += now - lastAt;
      }
    }
    received++;
    lastAt = now;
    res.writeHead(204).end();
  });
});
await new Promise<void>((ok) => receiver.listen(0, '127.0.0.1', ok));
const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;

if (!existsSync(join(template, 'rebill.db'))) {
  rmSync(template, { recursive: true, force: true });
  mkdirSync(template, { recursive: true });
  const port = await freePort();
  const config = writeBenchConfig({ dir: template, httpPort: port });
  const seeded = await seedSubscriptions(config, { count: n, templates: [{ startDate: utcDate() }], row: () => ({ template: 0 }) });
  // An endpoint whose cursor is the end of the seeding events: it is re-keyed to this run's URL below.
  const db = new SQLite(join(template, 'rebill.db'));
  const now = new Date().toISOString();
  db.prepare('insert into webhook_endpoints (id, url, cursor, created_at, updated_at) values (?, ?, ?, ?, ?)').run('we_template', 'http://template', seeded.lastEventId, now, now);
  db.close();
  await collect({ dir: template, config, port, expected: n, timeoutMs: 120_000 + n * 10 });
}
copyFileSync(join(template, 'rebill.db'), join(dir, 'rebill.db'));
const db = new SQLite(join(dir, 'rebill.db'));
db.prepare('update webhook_endpoints set id = ?, url = ?').run(endpointId(url), url);
const events = (db.prepare('select count(*) as n from events e, webhook_endpoints w where e.id > w.cursor').get() as { n: number }).n;
db.close();

const port = await freePort();
const config = writeBenchConfig({ dir, httpPort: port, webhooks: [{ url, secret: `whsec_${randomBytes(24).toString('base64')}` }], logLevel: 'info' });
// Node refuses --cpu-prof in NODE_OPTIONS (and the bench's spawn drops NODE_OPTIONS): flags go on the command line,
// before the script. PRELOAD=<module> adds `--import <module>` (e.g. a wrapper timing each statement).
const flags = [...(process.env.PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF}`] : []), ...(process.env.PRELOAD ? ['--import', process.env.PRELOAD] : [])];
const child = flags.length > 0 ? spawnNode(flags[0]!, [...flags.slice(1), REBILL_BIN, 'run', '--config', config], { dir, name: 'daemon' }) : spawnRebill(['run', '--config', config], { dir, name: 'daemon' });
try {
  const ready = await waitForLog(child, /"time":"([^"]+)"[^\n]*"msg":"rebill ready"/);
  const cpuFrom = cpuSecondsOf(child.pid);
  const readyAt = Date.parse(ready[1]!);
  let cpuTo = NaN;
  await waitFor(
    child,
    () => {
      if (received < events) return false;
      cpuTo = cpuSecondsOf(child.pid);
      return true;
    },
    `${events} deliveries`,
    60_000 + events * 10,
    20,
  );
  const seconds = (lastAt - readyAt) / 1000;
  const cpu = cpuTo - cpuFrom;
  console.log(
    `${events} delivered in ${seconds.toFixed(2)} s = ${(events / seconds).toFixed(0)}/s; daemon CPU ${cpu.toFixed(2)} s = ${((cpu * 1e6) / events).toFixed(0)} us/delivery; ` +
      `first after ${firstAt - readyAt} ms; longest pause ${longestGap.ms} ms (after ${longestGap.after} received); ${pauses.count} pauses over 20 ms, ${pauses.ms} ms in all`,
  );
  await child.stop();
  if (process.env.BARE) {
    const bare = spawnNode(join(ROOT, 'bench/support/bare-webhook-client.mjs'), [url, String(events), '2439', '16'], { dir, name: 'bare-client' });
    if ((await bare.exited) !== 0) throw new Error(`the bare client failed:\n${bare.tail()}`);
    const { seconds: bareSeconds, cpuSeconds } = JSON.parse(readFileSync(join(dir, 'bare-client.log'), 'utf8').trim().split('\n').at(-1)!) as { seconds: number; cpuSeconds: number };
    console.log(`bare client: ${events} in ${bareSeconds.toFixed(2)} s = ${(events / bareSeconds).toFixed(0)}/s, ${((cpuSeconds * 1e6) / events).toFixed(0)} us CPU each`);
  }
} finally {
  await child.stop();
  receiver.closeAllConnections();
  receiver.close();
}
console.error(join(dir, 'daemon.log'));
