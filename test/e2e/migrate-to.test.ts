/**
 * Issue 11 item 7: `rebill migrate-to postgres://...`, the move from one
 * SQLite container to daemons on PostgreSQL. A real `rebill run` fills a
 * SQLite file (captures, declines with a retry due, a pending charge, a
 * payment link whose e-mail could not be sent yet, webhook deliveries with
 * one stream held back, an Idempotency-Key); the copy is refused while that
 * daemon runs, then made into a fresh PostgreSQL database created by the
 * test; every table is compared row by row; the SQLite file is marked as
 * moved (`run` refuses it, naming where it went; `status` still reads it; it is
 * not copied again); a daemon started on PostgreSQL carries on where the
 * SQLite one stopped, collecting nothing twice; and `--reopen-source` rolls
 * the move back (after which a copy into the non-empty database is refused).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { createTestPostgres, withClient, type TestPostgres } from '../support/postgres.js';
import { freePort, startSmtpCatcher } from '../support/smtp.js';
import { startDaemon } from './support/daemon.js';
import { logLines, readDb, todayUtc, waitFor, writeConfig } from './support/processes.js';
import { e2eSuite } from './support/suite.js';

const newDir = e2eSuite('migrate-to');
const cli = (args: readonly string[]) => runCli(args, { cleanRebillEnv: true });
const WRITE = 'migrate-to-write-token-0123456789';
const SECRET = `whsec_${Buffer.from('migrate-to-webhook-secret-0123').toString('base64')}`;
/** Trust auth ignores it; it is there to show that no output ever prints it. */
const PASSWORD = 'Sup3r-s3cret-pg-Passw0rd';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The URL of a fresh test database, with a password added to it, dropped after the test. */
async function freshPostgres(label: string): Promise<{ server: TestPostgres; url: string }> {
  const server = await createTestPostgres(label);
  cleanups.push(() => server.drop());
  const url = new URL(server.url);
  url.password = PASSWORD;
  return { server, url: url.toString() };
}

/** A webhook receiver that answers 500 to the events of `s-held` while `hold` is true, 200 otherwise. */
async function webhookReceiver() {
  const state = { hold: true, delivered: [] as string[] };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (state.hold && body.includes('"id":"s-held"')) return void res.writeHead(500).end();
      state.delivered.push(String(req.headers['webhook-id']));
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, state };
}

function config(dir: string, databaseUrl: string, hooks: string, smtpPort: number, name = 'rebill.yaml'): string {
  const today = todayUtc();
  const charge = (id: string, paymentToken: string, startDate = today) => ({ id, planId: 'monthly', paymentToken, startDate, customer: { email: `${id}@example.com` } });
  return writeConfig(path.join(dir, name), {
    database: { url: databaseUrl },
    http: { host: '127.0.0.1', port: 0, tokens: [{ token: WRITE, scope: 'write' }] },
    gateways: { sim: { type: 'simulator' } },
    // A pending charge is asked about again 10 s after it was recorded: by then the SQLite daemon has
    // (normally) stopped and the PostgreSQL one asks.
    scheduler: { sweep: '* * * * * *', pendingPollSeconds: 10, drainSeconds: 2 },
    logging: { level: 'info' },
    webhooks: [{ url: hooks, secret: SECRET, events: ['*'], retrySchedule: ['PT1S'] }],
    notifications: { email: { smtp: `smtp://127.0.0.1:${smtpPort}`, from: 'billing@example.com', retrySchedule: ['PT1S'] } },
    plans: [
      { id: 'monthly', description: 'Monthly', amount: '9.99', currency: 'USD', every: 'MONTH', gateway: 'sim' },
      { id: 'links', description: 'Links', amount: '5.00', currency: 'EUR', every: 'MONTH', mode: 'link', emailLinks: true, gateway: 'sim' },
    ],
    subscriptions: [
      charge('s-ok', 'tok_ok'),
      charge('s-soft', 'tok_insufficient'),
      charge('s-hard', 'tok_stolen'),
      charge('s-pending', 'tok_pending'),
      charge('s-future', 'tok_ok', '2199-01-01'),
      charge('s-held', 'tok_ok'),
      { id: 's-link', planId: 'links', startDate: today, customer: { email: 'link@example.com' } },
    ],
  });
}

const MIGRATOR_TABLES = ['kysely_migration', 'kysely_migration_lock'];

/** Every table of the SQLite file (but kysely's and the moved mark), rows as text (null stays null), sorted. */
function sqliteRows(file: string): Record<string, string[]> {
  return readDb(file, (db) => {
    const names = (db.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name").all() as Array<{ name: string }>).map((r) => r.name);
    const copied = names.filter((n) => !MIGRATOR_TABLES.includes(n) && n !== 'rebill_moved');
    return Object.fromEntries(copied.map((n) => [n, normalize(db.prepare(`select * from "${n}"`).all() as Array<Record<string, unknown>>)]));
  });
}

/** The same from PostgreSQL (int8 comes back as text there, int4 as a number: both become text). */
async function postgresRows(url: string): Promise<Record<string, string[]>> {
  return withClient(url, async (client) => {
    const names = (await client.query<{ name: string }>("select tablename as name from pg_tables where schemaname = 'public' order by tablename")).rows.map((r) => r.name);
    const out: Record<string, string[]> = {};
    for (const n of names.filter((name) => !MIGRATOR_TABLES.includes(name))) out[n] = normalize((await client.query(`select * from "${n}"`)).rows as Array<Record<string, unknown>>);
    return out;
  });
}

function normalize(rows: Array<Record<string, unknown>>): string[] {
  return rows.map((row) => JSON.stringify(Object.fromEntries(Object.entries(row).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v === null ? null : String(v)])))).sort();
}


describe('rebill migrate-to postgres://...', () => {
  it('refuses while the daemon runs; copies every table exactly; marks the file moved (run refuses, status reads, reopen lifts it); refuses a non-empty target; a daemon on PostgreSQL carries on', async () => {
    const dir = newDir('move');
    const dbFile = path.join(dir, 'rebill.db');
    const hooks = await webhookReceiver();
    const smtpPort = await freePort(); // SMTP is down while SQLite runs: the link e-mail waits for its next try
    const sqliteConfig = config(dir, `sqlite:${dbFile}`, hooks.url, smtpPort);
    const daemon = await startDaemon(sqliteConfig, path.join(dir, 'sqlite.log'));
    const base = `http://${String(logLines(daemon.stdout()).find((l) => l.msg === 'rebill ready')!.http)}`;
    const created = await fetch(`${base}/v1/subscriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${WRITE}`, 'content-type': 'application/json', 'idempotency-key': 'create-api-1' },
      body: JSON.stringify({ id: 's-api', planId: 'monthly', paymentToken: 'tok_ok', startDate: todayUtc() }),
    });
    expect(created.status).toBe(201);

    const state = (key: string) => readDb(dbFile, (db) => (db.prepare('select state from attempts where idempotency_key = ?').get(key) as { state: string } | undefined)?.state);
    await waitFor(
      () => {
        const settled = state('s-ok:1:1') === 'captured' && state('s-api:1:1') === 'captured' && state('s-soft:1:1') === 'rejected' && state('s-hard:1:1') === 'rejected';
        const pending = state('s-pending:1:1') !== undefined && state('s-link:1:1') !== undefined;
        const emailTried = readDb(dbFile, (db) => (db.prepare("select count(*) as n from link_emails where tries >= 1 and state = 'pending'").get() as { n: number }).n) === 1;
        const heldTried = readDb(dbFile, (db) => (db.prepare("select count(*) as n from webhook_attempts where status = 500").get() as { n: number }).n) >= 1;
        return settled && pending && emailTried && heldTried ? true : undefined;
      },
      { timeoutMs: 30_000, describe: () => JSON.stringify(readDb(dbFile, (db) => db.prepare('select idempotency_key, state from attempts').all())) },
    );

    const { server, url } = await freshPostgres('moveto');
    const refused = await cli(['migrate-to', url, '--config', sqliteConfig]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`migrate-to: database ${dbFile} is in use by another rebill daemon: pid ${daemon.pid}`);
    expect(refused.stderr).toContain('stop it first');
    // Refused before the target was touched: not even migrated.
    expect(await withClient(server.url, async (c) => (await c.query("select count(*)::int as n from pg_tables where schemaname = 'public'")).rows[0].n)).toBe(0);

    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    const before = sqliteRows(dbFile);
    const pendingAtCopy = before.attempts!.some((r) => r.includes('"idempotency_key":"s-pending:1:1"') && r.includes('"state":"pending"'));
    const linkOpenAtCopy = before.attempts!.some((r) => r.includes('"idempotency_key":"s-link:1:1"') && r.includes('"state":"pending"'));

    const moved = await cli(['migrate-to', url, '--config', sqliteConfig, '--json']);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    for (const out of [moved.stdout, moved.stderr, refused.stderr]) expect(out).not.toContain(PASSWORD);
    const report = JSON.parse(moved.stdout);
    expect(report).toMatchObject({ source: dbFile, target: expect.stringContaining('[redacted]@'), verified: true });
    expect(report.tables.map((t: { name: string }) => t.name).sort()).toEqual(Object.keys(before).sort());
    for (const t of report.tables as Array<{ name: string; rows: number }>) expect(t.rows, t.name).toBe(before[t.name]!.length);
    expect(report.rows).toBe(Object.values(before).reduce((n, rows) => n + rows.length, 0));

    // Every table, every row, every column: the same (the SQLite file's tables unchanged by the copy).
    expect(await postgresRows(url)).toEqual(before);
    expect(sqliteRows(dbFile)).toEqual(before);
    // ...but the file is marked as moved (the password masked, never stored): `run` refuses it
    // before touching anything, in one line; `status` still reads it, as the archive.
    const mark = readDb(dbFile, (db) => db.prepare('select * from rebill_moved').all()) as Array<{ target: string; moved_at: string; row_count: number; table_counts: string }>;
    expect(mark).toHaveLength(1);
    expect(mark[0]!.target).toBe(report.target);
    expect(mark[0]!.row_count).toBe(report.rows);
    expect(JSON.parse(mark[0]!.table_counts)).toEqual(Object.fromEntries(report.tables.map((t: { name: string; rows: number }) => [t.name, t.rows])));
    const onMoved = await cli(['run', '--config', sqliteConfig]);
    expect(onMoved.code).toBe(1);
    expect(onMoved.stderr).toBe(
      `database ${dbFile} was moved to ${report.target} on ${mark[0]!.moved_at} by rebill migrate-to (${report.rows} rows); point database.url (or REBILL_DATABASE_URL) there; ` +
        `rebill will not run on this file: it would collect again the cycles collected on PostgreSQL (to roll the move back instead: rebill migrate-to --reopen-source --from ${dbFile})\n`,
    );
    const status = await cli(['status', '--config', sqliteConfig, '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).subscriptions.total).toBe(before.subscriptions!.length);
    expect(status.stderr).toMatch(/^note: database \S+ was moved to postgres:\/\/postgres:\[redacted\]@127\.0\.0\.1:5432\/\S+ on /);
    expect(sqliteRows(dbFile)).toEqual(before);
    for (const name of ['subscriptions', 'attempts', 'cycles', 'events', 'idempotency_keys', 'link_emails', 'webhook_deliveries', 'webhook_attempts', 'webhook_endpoints', 'simulator_ledger']) {
      expect(before[name]!.length, `${name} has rows in the source`).toBeGreaterThan(0);
    }
    const maxEventId = readDb(dbFile, (db) => (db.prepare('select max(id) as id from events').get() as { id: number }).id);
    expect(report.sequences).toContainEqual({ table: 'events', column: 'id', next: maxEventId + 1 });

    // A moved file is not copied again (it would make a second database collecting its cycles).
    const again = await cli(['migrate-to', url, '--config', sqliteConfig]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^migrate-to: database \S+ was moved to postgres:\/\/postgres:\[redacted\]@127\.0\.0\.1:5432\/\S+ on .*; it is not copied again/);
    for (const out of [again.stderr, onMoved.stderr, status.stderr]) expect(out).not.toContain(PASSWORD);
    expect(await postgresRows(url)).toEqual(before);

    // A daemon on PostgreSQL carries on: the pending charge is settled, the held webhooks and the
    // waiting e-mail are delivered, and nothing the SQLite daemon settled is collected again.
    hooks.state.hold = false;
    const smtp = await startSmtpCatcher({ port: smtpPort });
    cleanups.push(() => smtp.close());
    const pgDaemon = await startDaemon(config(dir, server.url, hooks.url, smtpPort, 'postgres.yaml'), path.join(dir, 'postgres.log'));
    // The waiting e-mail is sent from PostgreSQL, unless the link was paid first (a loaded machine can let the
    // SQLite daemon's poll, or the PostgreSQL daemon's, settle it before the sender's try): then it is skipped, never sent.
    const emailState = await waitFor(
      () =>
        withClient(server.url, async (c) => {
          const pendingState = (await c.query("select state from attempts where idempotency_key = 's-pending:1:1'")).rows[0].state as string;
          const undelivered = Number((await c.query("select count(*) as n from webhook_deliveries where state <> 'delivered'")).rows[0].n);
          const email = (await c.query("select state from link_emails")).rows.map((r) => r.state as string);
          return pendingState === 'captured' && undelivered === 0 && (email.join() === 'sent' || email.join() === 'skipped') ? email.join() : undefined;
        }),
      { timeoutMs: 30_000 },
    );
    if (emailState === 'sent') await smtp.waitFor(1, 30_000);
    expect(smtp.received).toHaveLength(emailState === 'sent' ? 1 : 0);
    if (linkOpenAtCopy && emailState === 'skipped') console.log('migrate-to e2e: the link was paid before its e-mail was tried on PostgreSQL (hand-over of the e-mail not shown this run)');
    pgDaemon.kill('SIGTERM');
    expect((await pgDaemon.exited).code).toBe(0);

    const after = await postgresRows(server.url);
    const keys = (rows: string[]) => rows.map((r) => (JSON.parse(r) as { idempotency_key: string }).idempotency_key).sort();
    expect(keys(after.attempts!), 'no attempt made twice').toEqual(keys(before.attempts!));
    const captured = after.attempts!.map((r) => JSON.parse(r) as { subscription_id: string; cycle: string; state: string }).filter((a) => a.state === 'captured');
    expect(captured.map((a) => `${a.subscription_id}:${a.cycle}`).filter((k, i, all) => all.indexOf(k) !== i), 'a cycle captured twice').toEqual([]);
    expect(captured.map((a) => a.subscription_id)).toEqual(expect.arrayContaining(['s-ok', 's-api', 's-pending']));
    expect(hooks.state.delivered.filter((id, i, all) => all.indexOf(id) !== i), 'an event delivered twice').toEqual([]);
    // New events continue the copied ids (the settled charge when it was still pending at the copy).
    const newEvents = after.events!.length - before.events!.length;
    if (pendingAtCopy) expect(newEvents).toBeGreaterThan(0);
    const ids = await withClient(server.url, async (c) => {
      const maxBefore = (await c.query('select max(id) as id from events')).rows[0].id as string;
      const added = (await c.query("insert into events (type, occurred_at, payload) values ('test.probe', '2026-01-01T00:00:00.000Z', '{}') returning id")).rows[0].id as string;
      const firstNew = (await c.query('select min(id) as id from events where id > $1', [maxEventId])).rows[0].id as string;
      return { maxBefore: Number(maxBefore), added: Number(added), firstNew: Number(firstNew) };
    });
    expect(ids.added).toBeGreaterThan(ids.maxBefore);
    expect(ids.maxBefore).toBeGreaterThanOrEqual(maxEventId);
    // The first id PostgreSQL handed out is the one after the last copied (the probe's, when the daemon wrote none).
    expect(ids.firstNew).toBe(maxEventId + 1);

    // Rolling the move back: the mark goes, `run` starts on the file again; the copy into the now
    // non-empty PostgreSQL database is then refused (never merged) and changes nothing.
    const reopened = await cli(['migrate-to', '--reopen-source', '--config', sqliteConfig]);
    expect(reopened.code).toBe(0);
    expect(reopened.stdout).toContain(`reopened ${dbFile}: the move to ${report.target} on ${mark[0]!.moved_at} is rolled back`);
    expect(reopened.stdout).toContain('must not be used from now on');
    expect(readDb(dbFile, (db) => db.prepare("select count(*) as n from sqlite_master where name = 'rebill_moved'").get())).toEqual({ n: 0 });
    const onPostgres = await postgresRows(server.url);
    const copyAgain = await cli(['migrate-to', url, '--config', sqliteConfig]);
    expect(copyAgain.code).toBe(1);
    expect(copyAgain.stderr).toMatch(/^migrate-to: target postgres:\/\/postgres:\[redacted\]@127\.0\.0\.1:5432\/\S+ already holds rebill data \(customers: 7 rows, subscriptions: 8 rows, .*\); migrate-to copies only into an empty database and never merges/);
    expect(await postgresRows(server.url)).toEqual(onPostgres);
    const back = await startDaemon(sqliteConfig, path.join(dir, 'sqlite-again.log'));
    back.kill('SIGTERM');
    expect((await back.exited).code).toBe(0);
    for (const out of [reopened.stdout, reopened.stderr, copyAgain.stderr]) expect(out).not.toContain(PASSWORD);
  }, 120_000);

  it('names a bad target or source in one line, never with its password; a row PostgreSQL cannot store rolls the whole copy back', async () => {
    const dir = newDir('bad');
    const dbFile = path.join(dir, 'rebill.db');
    const file = config(dir, `sqlite:${dbFile}`, 'http://127.0.0.1:9/hooks', 9);
    expect((await cli(['migrate', '--config', file])).code).toBe(0);

    const down = await cli(['migrate-to', `postgres://postgres:${PASSWORD}@127.0.0.1:${await freePort()}/rebill`, '--config', file]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^migrate-to: cannot connect to PostgreSQL at postgres:\/\/postgres:\[redacted\]@127\.0\.0\.1:\d+\/rebill: connect ECONNREFUSED/);

    const missing = await cli(['migrate-to', `postgres://postgres:${PASSWORD}@127.0.0.1:5432/rebill_no_such_db_4242`, '--config', file]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('database "rebill_no_such_db_4242" does not exist');

    const notPostgres = await cli(['migrate-to', `mysql://root:${PASSWORD}@127.0.0.1/rebill`, '--config', file]);
    expect(notPostgres.code).toBe(2);
    expect(notPostgres.stderr).toMatch(/^error: the target must be a postgres:\/\/ or postgresql:\/\/ URL; got "mysql:\/\/root:\[redacted\]@127\.0\.0\.1\/rebill"\nusage: rebill migrate-to/);

    const { url } = await freshPostgres('bad');
    const noSource = await cli(['migrate-to', url, '--from', path.join(dir, 'none.db')]);
    expect(noSource.code).toBe(1);
    expect(noSource.stderr).toBe(`migrate-to: no database at ${path.join(dir, 'none.db')}: nothing to copy (check database.url / REBILL_DATABASE_URL, or --from)\n`);

    // A row PostgreSQL cannot store (a NUL in text), in a table copied after others: nothing is committed.
    const sqlite = new Database(dbFile);
    sqlite.prepare("insert into customers (id, email, created_at) values ('c-1', 'c@example.com', '2026-01-01T00:00:00.000Z')").run();
    sqlite.prepare("insert into events (type, occurred_at, payload) values ('subscription.created', '2026-01-01T00:00:00.000Z', ?)").run('{"x":"a\u0000b"}');
    sqlite.close();
    const nul = await cli(['migrate-to', url, '--from', `sqlite:${dbFile}`]);
    expect(nul.code).toBe(1);
    expect(nul.stderr).toBe('migrate-to: table events, row 1, column payload: the text holds a NUL character, which PostgreSQL text cannot store; nothing was committed\n');
    expect(await postgresRows(url)).toMatchObject({ customers: [], events: [] });

    for (const run of [down, missing, notPostgres, noSource, nul]) expect(run.stdout + run.stderr).not.toContain(PASSWORD);
    expect(new Database(dbFile, { readonly: true }).prepare('select count(*) as n from subscriptions').get()).toEqual({ n: 0 });
    // A copy that was not committed leaves the file unmarked.
    expect(new Database(dbFile, { readonly: true }).prepare("select count(*) as n from sqlite_master where name = 'rebill_moved'").get()).toEqual({ n: 0 });
  }, 60_000);
});
