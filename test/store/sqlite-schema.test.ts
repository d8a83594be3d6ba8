/**
 * Released migrations never change what they do to a SQLite database: the
 * schema after 0001-0004, as the build that released them left it
 * (test/fixtures/sqlite-schema-0004.json), is what this build makes. 0001 and
 * 0004 were later taught PostgreSQL's types; this shows SQLite's SQL stayed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Migrator, sql } from 'kysely';
import { afterEach, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { openDatabase, type Db } from '../../src/store/index.js';
import { removeDir, tempDir } from '../support/temp.js';

let dir: string;
let db: Db;
afterEach(async () => {
  await db.destroy();
  removeDir(dir);
});

it('migrating a fresh SQLite file to 0004 gives exactly the released schema', async () => {
  dir = tempDir('schema');
  db = openDatabase(`sqlite:${join(dir, 'x.db')}`);
  const result = await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateTo('0004_webhook_deliveries');
  expect(result.error).toBeUndefined();
  const { rows } = await sql<{ type: string; name: string; sql: string }>`select type, name, sql from sqlite_master where name not like 'kysely_%' and name not like 'sqlite_%' order by type, name`.execute(db);
  const released = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'sqlite-schema-0004.json'), 'utf8')) as unknown;
  expect(rows).toEqual(released);
});
